"""The stand-in's server state: the data-integrity check catalogue and the
deterministic issues its checks find, simulated job runs (plans on the wall clock,
notifications, cached results, flattened reports) and the seeded metadata
(categories, predictors, org units, validation rules).

Route modules read and change it through ``api.state`` with ``api.state.lock``
held.  Standard library only; part of :mod:`dhis2maint.testing`.
"""
import collections
import functools
import heapq
import itertools
import json
import os
import pkgutil
import re
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple, cast

from ._standin_http import _ALNUM, _dumps, _fmt_hms, _fmt_time, _hash_int, _od, _uid_from
from ._standin_versions import _TABLE_TYPES

# ---------------------------------------------------------------------------
# check catalogue and issue generation
# ---------------------------------------------------------------------------
_M6 = 62 ** 6
_MUL = 2654435761  # coprime with 62**6: issue ids are unique per check
_T2 = []  # type: List[str]  # the 3844 two-character alphanumeric strings, built on first use


def _load_catalogue_file():
    # type: () -> Dict[str, Any]
    """checks-2.42.json: next to this file, else as package data (e.g. from a zip)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checks-2.42.json")
    if os.path.exists(path):
        with open(path, "rb") as f:
            data = f.read()  # type: Optional[bytes]
    else:
        data = pkgutil.get_data("dhis2maint", "checks-2.42.json")
    if data is None:
        raise RuntimeError("dhis2maint/checks-2.42.json is missing")
    return cast(Dict[str, Any], json.loads(data.decode("utf-8"),
                                           object_pairs_hook=collections.OrderedDict))


def _code_of(name):
    # type: (str) -> str
    return "".join(w[0].upper() for w in name.split("_") if w)


class _Checks(object):
    """The data-integrity checks one simulated version knows, and `checks` name matching."""

    def __init__(self, catalogue, data):
        # type: (str, Dict[str, Any]) -> None
        self.kind = catalogue
        self.legacy = list(data["legacy"])  # 33 legacy checks with flattened-report keys
        self.legacy_by_modern = {e["modernName"]: e for e in self.legacy if "modernName" in e}
        self.legacy_by_name = {e["name"]: e for e in self.legacy}
        checks = []  # type: List[Dict[str, Any]]
        if catalogue in ("2.42", "2.43"):
            checks = [collections.OrderedDict(c) for c in data["checks"]]
            if catalogue == "2.43":
                change = data["changes_2.43"]
                yaml_part = [c for c in checks if not c["isProgrammatic"] and c["name"] not in change["removed"]]
                yaml_part += [collections.OrderedDict(c) for c in change["added"]]
                for c in yaml_part:
                    c["isSlow"] = c["name"] in change["slow"]
                checks = yaml_part + [c for c in checks if c["isProgrammatic"]]
        else:  # 2.36 - 2.38: the 33 legacy checks (+ six YAML category checks on 2.37/2.38)
            for e in self.legacy:
                checks.append(collections.OrderedDict([
                    ("name", e["name"]), ("displayName", e["name"]), ("section", "Legacy"),
                    ("severity", "WARNING"), ("description", e["name"].replace("_", " ")),
                    ("isProgrammatic", True), ("isSlow", False), ("code", _code_of(e["name"]))]))
            if catalogue == "mixed":
                yaml = {c["name"]: c for c in data["checks"]}
                checks += [collections.OrderedDict(yaml[n]) for n in data["mixed_yaml_2.37"]]
        self.all = checks
        self.by_name = collections.OrderedDict((c["name"], c) for c in checks)

    def default_names(self):
        # type: () -> List[str]
        """What a run with no `checks` runs: non-slow checks (everything on legacy servers)."""
        return [c["name"] for c in self.all if not c["isSlow"]]

    def expand(self, tokens, modern=True):
        # type: (List[str], bool) -> List[str]
        """Names matching `tokens` (code, wildcard or name, in that order), unknown ones dropped."""
        out = collections.OrderedDict()  # type: Dict[str, None]
        for token in tokens:
            token = token.strip()
            if not token:
                continue
            if modern and token.upper() == token and "_" not in token:
                matches = [c["name"] for c in self.all if c.get("code") == token]
            elif "*" in token:
                pattern = token.lower().replace("-", "_")
                if modern:
                    pattern = re.sub(r"[^*_a-z0-9]", "", pattern)
                regex = re.compile(".*".join(re.escape(p) for p in pattern.split("*")) + r"\Z")
                matches = [n for n in self.by_name if regex.match(n)]
            else:
                name = token.lower().replace("-", "_")
                matches = [name] if name in self.by_name else []
            for n in matches:
                out[n] = None
        return list(out)

    def run_order(self, names):
        # type: (List[str]) -> List[str]
        """Execution order: fast (non-slow) before slow, catalogue order within each."""
        index = {n: i for i, n in enumerate(self.by_name)}
        return sorted(names, key=lambda n: (self.by_name[n]["isSlow"], index[n]))


_LABELS = {
    "categories": "Category", "categoryOptions": "Category option", "categoryCombos": "Category combo",
    "categoryOptionCombos": "Category option combo", "categoryOptionGroupSets": "Category option group set",
    "dataSets": "Data set", "organisationUnits": "Org unit", "optionSets": "Option set", "optionGroups": "Option group",
    "programs": "Program", "tracker": "Tracked entity", "programStages": "Program stage", "events": "Event",
    "dataElements": "Data element", "programIndicators": "Program indicator", "programRules": "Program rule",
    "visualizations": "Visualization", "maps": "Map", "dashboards": "Dashboard", "pushAnalysis": "Push analysis",
    "indicatorTypes": "Indicator type", "indicators": "Indicator", "periods": "Period",
    "validationRules": "Validation rule", "dataElementGroups": "Data element group",
    "indicatorGroups": "Indicator group", "programIndicatorGroups": "Program indicator group",
    "indicatorGroupSets": "Indicator group set", "validationRuleGroups": "Validation rule group",
    "organisationUnitGroups": "Org unit group", "categoryOptionGroups": "Category option group",
    "userGroups": "User group", "users": "User", "userRoles": "User role", "fileResources": "File resource",
    "trackedEntityAttributes": "Tracked entity attribute",
}
_WORDS = ["Bo", "Bombali", "Bonthe", "Kailahun", "Kambia", "Kenema", "Koinadugu", "Kono", "Moyamba",
          "Port Loko", "Pujehun", "Tonkolili", "Western Area", "Ngelehun", "Baoma", "Jembe", "Gbo", "Lugbu"]
_COMMENTS = ["Expression is not well-formed", "Invalid data element reference", "Division by zero in expression",
             "Missing closing bracket", "Unknown function name"]
# legacy report type -> how the issues of such a check look
_SHAPE_OF_TYPE = {"L": "plain", "M": "refs", "C": "comment", "G": "group"}


class _IssueMaker(object):
    """Deterministic fake issues of one check: ids, names, comments, refs; fast enough for millions."""

    def __init__(self, seed, check, shape, style):
        # type: (int, Dict[str, Any], str, str) -> None
        name = check["name"]
        self.h = _hash_int(seed, name)
        self.prefix = _uid_from("issue", seed, name)[:5]
        self.ref_prefix = _uid_from("ref", seed, name)[:5]
        self.off = self.h % _M6
        self.label = _LABELS.get(check.get("issuesIdType", ""), "Indicator" if shape == "group" else "Object")
        self.shape, self.style = shape, style  # style: yaml (SQL checks) or java ("Name:uid" names, refs always)

    def _uid(self, prefix, i):
        # type: (str, int) -> str
        if not _T2:
            _T2.extend(a + b for a in _ALNUM for b in _ALNUM)
        j = (i * _MUL + self.off) % _M6
        return prefix + _T2[j // 14776336] + _T2[(j // 3844) % 3844] + _T2[j % 3844]

    def issue(self, i):
        # type: (int) -> Tuple[Optional[str], str, Optional[str], List[Tuple[str, str]]]
        """(uid or None, display name, comment or None, refs as (uid, name)) of issue number i."""
        word = _WORDS[(i + self.h) % len(_WORDS)]
        refs = []  # type: List[Tuple[str, str]]
        if self.shape in ("refs", "group"):
            n = 2 + (i + self.h) % 2 if self.shape == "group" else 1 + (i + self.h) % 3
            refs = [(self._uid(self.ref_prefix, i * 4 + k), "%s %s %d-%d" % (
                self.label if self.shape == "group" else "Group", word, i + 1, k + 1)) for k in range(n)]
        if self.shape == "group":
            return None, "Formula group %d" % (i + 1), None, refs
        comment = _COMMENTS[(i + self.h) % len(_COMMENTS)] if self.shape == "comment" else None
        return self._uid(self.prefix, i), "%s %s %d" % (self.label, word, i + 1), comment, refs

    def json_pieces(self, count, offset=0):
        # type: (int, int) -> Iterator[str]
        """The issues array content (without brackets) as string pieces; constant memory.
        `offset` skips the first issues (drift: they were resolved)."""
        fast = self.shape == "plain" and self.style == "yaml"
        label, h, nw, words, prefix = self.label, self.h, len(_WORDS), _WORDS, self.prefix
        uid = self._uid
        for start in range(offset, offset + count, 1000):
            parts = []
            for i in range(start, min(offset + count, start + 1000)):
                if fast:
                    parts.append('{"id":"%s","name":"%s %s %d"}' % (uid(prefix, i), label, words[(i + h) % nw], i + 1))
                else:
                    parts.append(_dumps(self.issue_json(i)))
            yield ("," if start > offset else "") + ",".join(parts)

    def issue_json(self, i):
        # type: (int) -> collections.OrderedDict[str, Any]
        uid, name, comment, refs = self.issue(i)
        if self.style == "java":
            return _od(("id", uid), ("name", name if uid is None else "%s:%s" % (name, uid)), ("comment", comment),
                       ("refs", sorted("%s:%s" % (r[1], r[0]) for r in refs)))
        return _od(("id", uid), ("name", name), ("comment", comment),
                   ("refs", ["%s:%s" % (r[1], r[0]) for r in refs] if refs else None))


# ---------------------------------------------------------------------------
# jobs
# ---------------------------------------------------------------------------
class _Job(object):
    """One simulated job run: its plan (start/end on the wall clock) and what it has posted so far."""

    def __init__(self, jid, job_type, kind, name, created, params, checks):
        # type: (str, str, str, str, float, Optional[Dict[str, Any]], List[str]) -> None
        self.id, self.job_type, self.kind, self.name = jid, job_type, kind, name
        self.created, self.params, self.checks = created, params, checks
        self.start = None  # type: Optional[float]  # None: never runs
        self.end = None  # type: Optional[float]
        self.failed = None  # type: Optional[str]
        self.notifications = []  # type: List[Dict[str, Any]]  # oldest first
        self.remaining = set()  # type: Set[str]  # checks queued or running in this job
        self.report = None  # type: Optional[Dict[str, Any]]

    def finished(self, now):
        # type: (float) -> bool
        return self.end is not None and now >= self.end

    def busy(self, now):
        # type: (float) -> bool
        """Queued or running (not finished), and it will run."""
        return self.start is not None and not self.finished(now)


class _Result(object):
    """A cached summary/details entry; the issues themselves are regenerated on demand."""
    __slots__ = ("name", "start", "finish", "count", "error", "stored", "offset")

    def __init__(self, name, start, finish, count, error, stored, offset=0):
        # type: (str, float, float, int, Optional[str], float, int) -> None
        self.name, self.start, self.finish, self.count = name, start, finish, count
        self.error, self.stored, self.offset = error, stored, offset


# ---------------------------------------------------------------------------
# server state
# ---------------------------------------------------------------------------
class _State(object):
    """All mutable server data; every method expects `self.lock` to be held by the caller."""

    CACHE_SECONDS = 3600.0
    # (declared here so type checkers do not narrow the keys to the seeded literals)
    options: Dict[str, str]
    categories: Dict[str, Dict[str, Any]]
    predictors: Dict[str, Tuple[str, int]]
    validation_rules: Dict[str, Tuple[str, str, str]]

    def __init__(self, owner, features, checks, seed, issues):
        # type: (Any, Dict[str, Any], _Checks, int, Optional[Dict[str, int]]) -> None
        self.owner, self.f, self.checks, self.seed = owner, features, checks, seed
        self.lock = threading.RLock()
        self.jobs = collections.OrderedDict()  # type: Dict[str, _Job]
        self._events = []  # type: List[Tuple[float, int, Callable[[], None]]]
        self._seq = itertools.count()
        self._job_counter = itertools.count(1)
        self.cache = {"summary": {}, "details": {}}  # type: Dict[str, Dict[str, _Result]]
        # check name -> number of jobs that have it queued or running
        self.running = {"summary": collections.Counter(), "details": collections.Counter()}  # type: Dict[str, Any]
        self.avg_ms = {}  # type: Dict[str, int]
        self.issue_counts = dict(issues or {})
        self.default_issue_count = None  # type: Optional[int]
        self.integrity_runs = 0  # integrity jobs started: the drift round
        self.failing_checks = {}  # type: Dict[str, str]
        self.job_failures = collections.deque()  # type: collections.deque[str]
        self.conflicts = 0
        self.maintenance_log = []  # type: List[str]
        self._init_metadata()

    # -- time-driven events ------------------------------------------------
    def schedule(self, t, fn):
        # type: (float, Callable[[], None]) -> None
        heapq.heappush(self._events, (t, next(self._seq), fn))

    def advance(self, now):
        # type: (float) -> None
        """Apply every job event due by `now`, in time order."""
        while self._events and self._events[0][0] <= now:
            heapq.heappop(self._events)[2]()

    # -- issues ------------------------------------------------------------
    def issue_count(self, name):
        # type: (str) -> int
        if name in self.issue_counts:
            return self.issue_counts[name]
        if self.default_issue_count is not None:
            return self.default_issue_count
        h = _hash_int(self.seed, "count", name)
        return 0 if h % 3 == 0 else (h // 3) % 5 + 1

    def issue_maker(self, name):
        # type: (str) -> _IssueMaker
        check = self.checks.by_name.get(name) or {"name": name}
        legacy = self.checks.legacy_by_name.get(name) or self.checks.legacy_by_modern.get(name)
        if legacy:
            shape = _SHAPE_OF_TYPE[legacy["type"]]
        else:
            h = _hash_int(self.seed, "shape", name)
            shape = "comment" if h % 4 == 0 else "refs" if h % 5 == 0 else "plain"
        java = check.get("isProgrammatic", False)
        return _IssueMaker(self.seed, check, shape, "java" if java else "yaml")

    def percentage(self, name, count):
        # type: (str, int) -> float
        denominator = count + 5 + _hash_int(self.seed, "denominator", name) % 200
        return round(100.0 * count / denominator, 2)

    # -- notifications -----------------------------------------------------
    def notify(self, job, t, level, message, completed, data=None):
        # type: (_Job, float, str, Optional[str], bool, Optional[Dict[str, Any]]) -> None
        if level == "LOOP" and not self.f["loop_level"]:
            level = "INFO"
        if self.f["notification_ids"] == "job":
            nid = job.id
        else:
            nid = _uid_from("notification", int(t * 1000), next(self._seq))
        n = _od(("id", nid), ("uid", nid), ("level", level), ("category", job.job_type), ("time", _fmt_time(t)),
                ("message", message), ("completed", completed))
        if data is not None and self.f["params_data"]:
            n["dataType"] = "PARAMETERS"
            n["data"] = data
        if job.notifications and job.notifications[-1]["level"] == "LOOP":
            job.notifications.pop()  # a newer message replaces a LOOP one
        job.notifications.append(n)

    # -- starting jobs -----------------------------------------------------
    def new_job(self, job_type, kind, params, checks, now):
        # type: (str, str, Optional[Dict[str, Any]], List[str], float) -> _Job
        """Create a job and plan its run; `kind` is summary, details, report, analytics, resource or monitoring."""
        n = next(self._job_counter)
        jid = _uid_from("job", self.seed, n, job_type)
        name = self._job_name(job_type, kind, int(now * 1000))
        job = _Job(jid, job_type, kind, name, now, params, checks)
        others = [j for j in self.jobs.values() if j.job_type == job.job_type and j.busy(now)]
        self.jobs[jid] = job
        start = now + max(0.0, float(self.owner.start_delay or 0))
        if others and self.f["queue_same_type"]:
            start = max([start] + [j.end for j in others if j.end is not None])
        elif others and kind in ("analytics", "resource", "monitoring"):
            return job  # <= 2.40: the scheduler refuses to run it; it never runs and posts nothing
        failure = self.job_failures.popleft() if self.job_failures else None
        if kind in ("summary", "details", "report"):
            self._plan_integrity(job, start, failure)
        else:
            self._plan_other(job, start, failure)
        return job

    def _job_name(self, job_type, kind, millis):
        # type: (str, str, int) -> str
        naming = self.f["job_naming"]
        if naming == "paren":
            return "%s (%d)" % (job_type, millis)
        if naming == "underscore" and job_type.startswith("DATA_INTEGRITY"):
            return "%s_%d" % (job_type, millis)
        if kind in ("summary", "details", "report"):
            if self.f["integrity_api"] == "legacy":
                return "runAsyncDataIntegrity"
            return {"summary": "runSummariesCheck", "details": "runDetailsCheck"}.get(kind, "runDataIntegrity")
        return {"analytics": "inMemoryAnalyticsJob", "resource": "inMemoryResourceTableJob",
                "monitoring": "inMemoryMonitoringJob"}[kind]

    def _plan_integrity(self, job, t0, failure):
        # type: (_Job, float, Optional[str]) -> None
        mode = self.f["integrity_progress"] if self.f["integrity_api"] != "legacy" else "none"
        if self.owner.verbose_notifications and self.f["integrity_api"] != "legacy":
            mode = "verbose"
        cache_kind = "summary" if job.kind == "summary" else "details"
        checks = job.checks
        duration = float(self.owner.job_seconds) if checks or job.kind == "report" else 0.0
        step = duration / len(checks) if checks else 0.0
        fail_at = t0 + duration / 2.0 if failure is not None else None
        failing = dict(self.failing_checks)
        counts = {c: self.issue_count(c) for c in checks}
        # drift: in run r a check with issues has r more, and its first r*drift are resolved
        r, d = self.integrity_runs, int(self.owner.drift or 0)
        self.integrity_runs += 1
        offsets = {c: r * d for c in checks if d and counts[c] > 0}
        counts.update((c, counts[c] + r) for c in offsets)
        params = job.params
        ev = self.schedule

        if job.kind == "report":
            ev(t0, lambda: self.notify(job, t0, "INFO", "Starting data integrity job", False))

        def begin() -> None:
            job.remaining = set(checks)
            self.running[cache_kind].update(checks)
            if mode != "none":
                job.notifications[:] = []  # the first JobProgress message clears the job's feed
                self.notify(job, t0, "INFO", "Data integrity check" if mode == "verbose" else "", False, params)
            if mode == "verbose":
                self.notify(job, t0, "INFO", "Data Integrity %s checks" % cache_kind, False)
        ev(t0, begin)

        for i, name in enumerate(checks):
            ts, te = t0 + i * step, t0 + (i + 1) * step
            if fail_at is not None and te > fail_at:
                break
            description = self.checks.by_name[name].get("description")
            if mode == "verbose" and description:
                ev(ts, functools.partial(self.notify, job, ts, "LOOP", "[%d/%d] %s" % (i, len(checks), description),
                                         False))
            ev(te, functools.partial(self._check_done, job, cache_kind, mode, name, ts, te, counts[name],
                                     failing.get(name), offsets.get(name, 0)))

        def finish(t, error):
            # type: (float, Optional[str]) -> None
            for name in list(job.remaining):
                self._not_running(job, cache_kind, name)
            if error is not None:
                job.failed = error
                self.notify(job, t, "ERROR", error, True)
                return
            if mode != "none":
                self.notify(job, t, "INFO", None if mode == "verbose" else "", True)
            if job.kind == "report":
                self.notify(job, t, "INFO", "Data integrity checks completed in %f sec." % (t - t0), True)
                job.report = self._flattened_report(checks, counts)

        if failure is not None and fail_at is not None:
            job.start, job.end = t0, fail_at
            ev(fail_at, lambda: finish(fail_at, "Process failed: " + failure))
        else:
            job.start, job.end = t0, t0 + duration
            ev(t0 + duration, lambda: finish(t0 + duration, None))

    def _check_done(self, job, cache_kind, mode, name, ts, te, count, error_message, offset=0):
        # type: (_Job, str, str, str, float, float, int, Optional[str], int) -> None
        self._not_running(job, cache_kind, name)
        if error_message is not None:
            error = "Check failed because an exception was thrown: " + error_message
            self.cache[cache_kind][name] = _Result(name, ts, te, -1, error, te)
            if mode != "none":
                self.notify(job, te, "ERROR", error_message, False)
            return
        self.cache[cache_kind][name] = _Result(name, ts, te, count, None, te, offset)
        self.avg_ms[name] = int(round((te - ts) * 1000))

    def _not_running(self, job, cache_kind, name):
        # type: (_Job, str, str) -> None
        if name in job.remaining:
            job.remaining.discard(name)
            counter = self.running[cache_kind]
            counter[name] -= 1
            if counter[name] <= 0:
                del counter[name]

    def _plan_other(self, job, t0, failure):
        # type: (_Job, float, Optional[str]) -> None
        duration = float(self.owner.job_seconds)
        params = job.params or {}
        if job.kind == "analytics":
            first, last = "Analytics table update process", "Analytics tables updated: %s"
            stages = [] if params.get("skipResourceTables") else ["Generating resource tables"]
            skipped = set(params.get("skipTableTypes") or [])
            stages += ["Performing analytics table update for %s" % t for t in _TABLE_TYPES if t not in skipped]
            stages.append("Updating system settings")
        elif job.kind == "resource":
            first, last = "Generating resource tables", "Resource tables generated: %s"
            stages = ["[%d/6] Generating resource table: %s" % (i, t) for i, t in enumerate(
                ["_orgunitstructure", "_dataelementstructure", "_periodstructure", "_dateperiodstructure",
                 "_categorystructure", "_dataelementcategoryoptioncombo"])]
        else:
            first, last = "Data validation", "Data validation done"
            stages = ["Preparing analysis parameters", "Running validation rules"]
        step = duration / (len(stages) + 1)
        fail_at = t0 + duration / 2.0 if failure is not None else None
        self.schedule(t0, lambda: self.notify(job, t0, "INFO", first, False, job.params))
        for i, text in enumerate(stages):
            t = t0 + (i + 1) * step
            if fail_at is not None and t > fail_at:
                break
            level = "LOOP" if text.startswith("[") else "INFO"
            self.schedule(t, functools.partial(self.notify, job, t, level, text, False))
        if failure is not None and fail_at is not None:
            job.start, job.end = t0, fail_at

            def fail() -> None:
                job.failed = "Process failed: " + failure
                self.notify(job, fail_at, "ERROR", job.failed, True)
            self.schedule(fail_at, fail)
        else:
            job.start, job.end = t0, t0 + duration
            self.schedule(t0 + duration, lambda: self.notify(
                job, t0 + duration, "INFO", last % _fmt_hms(duration) if "%s" in last else last, True))

    # -- integrity results ---------------------------------------------------
    def cached(self, kind, now):
        # type: (str, float) -> Dict[str, _Result]
        cache = self.cache[kind]
        for name in [n for n, r in cache.items() if now - r.stored > self.CACHE_SECONDS]:
            del cache[name]
        return cache

    def _flattened_report(self, checks, counts):
        # type: (List[str], Dict[str, int]) -> collections.OrderedDict[str, Any]
        """The FlattenedDataIntegrityReport of a REPORT job (2.36 or 2.37 format)."""
        old = self.f["report_format"] == "2.36"
        modern = self.f["integrity_api"] == "modern"
        ran = set(checks)
        report = collections.OrderedDict()
        for entry in self.checks.legacy:
            name = entry.get("modernName") if modern else entry["name"]
            if name is None or (name not in ran and not old):
                continue
            maker = self.issue_maker(name)
            issues = [maker.issue(i) for i in range(counts.get(name, 0))] \
                if name in ran else []  # type: List[Tuple[Optional[str], Optional[str], Optional[str], List[Tuple[str, str]]]]
            every = int(self.owner.nameless_every or 0)
            if every > 0:  # objects without a display name
                issues = [(u, None if u and i % every == 0 else d, c, r) for i, (u, d, c, r) in enumerate(issues)]

            def label(uid, display, names_only=old):
                # type: (Optional[str], Optional[str], bool) -> str
                # FlattenedDataIntegrityReport@2.36: defaultIfBlank(displayName, uid); @2.37:
                # "name:uid", or the uid alone when the name is null
                if names_only:
                    return display or uid or ""
                return ("%s:%s" % (display, uid) if display else uid) if uid else (display or "")
            kind = entry["type"]
            if kind == "L":
                value = [label(u, d) for u, d, _, _ in issues]  # type: Any
            elif kind == "G":
                value = [[label(ru, rd) for ru, rd in refs] for _, _, _, refs in issues]
            elif kind == "C":
                value = collections.OrderedDict((label(u, d, False), c or "") for u, d, c, _ in issues)
            else:  # M: object -> the objects it refers to
                value = collections.OrderedDict()
                for u, d, _, refs in issues:
                    targets = [label(ru, rd) for ru, rd in refs]
                    value[label(u, d, False)] = targets if old else sorted(targets)
            report[entry["reportKey"]] = value
        return report

    # -- seeded metadata -----------------------------------------------------
    def _init_metadata(self):
        # type: () -> None
        self.options = collections.OrderedDict([
            ("xYerKDKCefk", "default"), ("Xh88p1nyefp", "Male"), ("Cn6pJh4nEg3", "Female"),
            ("FbLZS3ueWbQ", "Under 5"), ("uYxK4wmcPqA", "5 and over"), ("Yjte6foKMny", "Fixed"),
            ("pq2XI5kz2BY", "Outreach")])
        self.categories = collections.OrderedDict([
            ("GLevLNI9wkl", {"name": "default", "options": ["xYerKDKCefk"]}),
            ("cX5k9anHEHd", {"name": "Sex", "options": ["Xh88p1nyefp", "Cn6pJh4nEg3"]}),
            ("YNZyaJHiHYq", {"name": "Age group", "options": ["FbLZS3ueWbQ", "uYxK4wmcPqA"]}),
            ("fMZEcRHuamy", {"name": "Location Fixed/Outreach", "options": ["Yjte6foKMny", "pq2XI5kz2BY"]}),
        ])
        self.combos = collections.OrderedDict()  # type: Dict[str, Dict[str, Any]]
        for uid, name, cats, complete in [
                ("bjDvmb4bfuf", "default", ["GLevLNI9wkl"], True),
                ("WBW7RjsApsv", "Sex", ["cX5k9anHEHd"], True),
                ("t3aNCvHsoSn", "Age and sex", ["YNZyaJHiHYq", "cX5k9anHEHd"], self.f["coc_on_save"])]:
            self.combos[uid] = {"name": name, "categories": cats, "cocs": []}
            if complete:
                self.update_cocs(uid, 0.0)
        for coc in self.combos["bjDvmb4bfuf"]["cocs"]:
            coc["id"] = "HllvX50cXC0"  # the well-known default category option combo
        self.predictors = collections.OrderedDict([
            ("a4Tz9PZk2Wq", ("ANC 1-3 Dropout prediction", 12)),
            ("b7RnXc2LpQe", ("Malaria cases forecast", 24)),
            ("c3VhKd8WmTs", ("BCG coverage prediction", 6))])
        self.predictor_groups = {"gP9sHqL4kRt": ("Monthly predictors", ["a4Tz9PZk2Wq", "b7RnXc2LpQe"])}
        self.failing_predictors = set()  # type: Set[str]
        tree = [("ImspTQPwCqd", "Sierra Leone", None),
                ("O6uvpzGd5pu", "Bo", "ImspTQPwCqd"), ("fdc6uOvgoji", "Bombali", "ImspTQPwCqd"),
                ("kJq2mPyFEHo", "Kenema", "ImspTQPwCqd"),
                ("DiszpKrYNg8", "Ngelehun CHC", "O6uvpzGd5pu"), ("Rp268JB6Ne4", "Adonkia CHP", "O6uvpzGd5pu"),
                ("cDw53Ej8rju", "Afro Arab Clinic", "fdc6uOvgoji"), ("GvFqTavdpGE", "Agape CHP", "fdc6uOvgoji"),
                ("plnHVbJR6p4", "Ahamadyya Mission Cl", "kJq2mPyFEHo"), ("BV4IomHvri4", "Ahmadiyya Muslim Hospital",
                                                                         "kJq2mPyFEHo")]
        self.org_units = collections.OrderedDict()  # type: Dict[str, Dict[str, Any]]
        for uid, name, parent in tree:
            path = (self.org_units[parent]["path"] if parent else "") + "/" + uid
            self.org_units[uid] = {"name": name, "parent": parent, "path": path}
        self.validation_rules = collections.OrderedDict([
            ("sxamEpoUXb5", ("ANC 1 visits >= ANC 2 visits", "MEDIUM", "greater_than_or_equal_to")),
            ("ZoG4yXZi3c3", ("Measles doses <= children under 1", "HIGH", "less_than_or_equal_to")),
            ("NdVrKqtdgUx", ("Malaria positive <= malaria tested", "LOW", "less_than_or_equal_to"))])
        self.validation_groups = {"RmhRgOVrOnb": ["sxamEpoUXb5", "ZoG4yXZi3c3"]}
        self.data_elements = {"fbfJHSPpUQD": "ANC 1st visit", "cYeuwXTCPkU": "ANC 2nd visit"}

    def update_cocs(self, combo_uid, visible_at, keep_obsolete=False):
        # type: (str, float, bool) -> Tuple[List[str], List[str]]
        """Add missing and drop obsolete option combos of a combo; returns (added, deleted) names.
        With `keep_obsolete` (they are in use) the obsolete ones stay and are returned as deleted
        candidates the caller reports as ignored."""
        combo = self.combos[combo_uid]
        wanted = [[]]  # type: List[List[str]]
        for cat in combo["categories"]:
            wanted = [prefix + [o] for prefix in wanted for o in self.categories[cat]["options"]]
        wanted_keys = {frozenset(w) for w in wanted if w}
        deleted = [c["name"] for c in combo["cocs"] if frozenset(c["options"]) not in wanted_keys]
        if not keep_obsolete:
            combo["cocs"] = [c for c in combo["cocs"] if frozenset(c["options"]) in wanted_keys]
        have = {frozenset(c["options"]) for c in combo["cocs"]}
        added = []
        for options in wanted:
            if options and frozenset(options) not in have:
                name = ", ".join(self.options[o] for o in options)
                combo["cocs"].append({"id": _uid_from("coc", combo_uid, *sorted(options)), "name": name,
                                      "options": options, "visible_at": visible_at})
                added.append(name)
        return added, deleted

    def update_all_cocs(self, now):
        # type: (float) -> None
        """Regenerate every combo's option combos (they appear after coc_generation_delay)."""
        for uid in list(self.combos):
            self.update_cocs(uid, now + float(self.owner.coc_generation_delay or 0))
