"""Data integrity: list checks, run them, read and stream results, compare runs.

:class:`IntegrityMixin` gives :class:`dhis2maint.Session` its data-integrity
methods; :func:`compare_reports` compares two saved reports.

Versions (differences live in :mod:`dhis2maint.versions`):

* **2.39+**: ``/api/dataIntegrity`` with filters, ``/summary``, ``/details``,
  single-check results, ``…/running`` and ``…/completed``; details runs use job
  type ``DATA_INTEGRITY_DETAILS``; slow checks run only when named.
* **2.37, 2.38**: the same endpoints without list filters or running/completed
  lists; every run is job type ``DATA_INTEGRITY``; no slow checks.
* **2.36**: only ``POST /api/dataIntegrity``, which runs all 33 legacy checks
  and leaves a flattened report in ``/api/system/taskSummaries``.  It is mapped
  onto the same models through ``versions.LEGACY_INTEGRITY_CHECKS``: one
  :class:`DataIntegrityResult` per legacy check, named by its check name.

Results live about an hour in DHIS2's cache and a GET returns older runs'
entries too, so :meth:`IntegrityMixin.run_integrity_checks` reads only after the
job completed, only the names the run covered, and drops entries that finished
before the job was created (both times come from the server's clock).  On
2.37-2.40 summary/details jobs post no task notifications at all (DHIS2 runs
them with a no-op progress tracker), so there the run is followed through its
cached results instead of ``job.wait()``.
"""
from __future__ import annotations  # models are built on first use, not to annotate

import collections
import datetime
import logging
import re
import time
from typing import (TYPE_CHECKING, Any, Callable, DefaultDict, Deque, Dict, Iterable, Iterator,
                    List, Optional, Sequence, Set, Tuple, Union, cast)

from . import convert, models, polling, versions
from .errors import ConfigurationError, InvalidResponseError, TaskTimeoutError
from .jobs import log_progress
from .jobstart import start_job

__all__ = ["IntegrityMixin", "compare_reports", "legacy_report"]

log = logging.getLogger("dhis2maint")

_SEVERITIES = ("INFO", "WARNING", "SEVERE", "CRITICAL")
#: Longest comma-joined ``checks`` value sent when READING results of a run that
#: named no checks; beyond it everything cached is read and filtered here.
_MAX_CHECKS_PARAM = 4000
#: How long (seconds) 2.36's report may take to appear after its job completed,
#: when run_integrity_checks got no timeout.
LEGACY_REPORT_WAIT = 120.0
_UID = re.compile(r"^[A-Za-z][A-Za-z0-9]{10}$")



# --- argument checking ------------------------------------------------------------


def _check_names(checks: Union[str, Iterable[Any], None]) -> Optional[List[str]]:
    """The ``checks`` argument as a list of names (order kept, duplicates dropped),
    or None for "no selection".  A single string is one name."""
    if checks is None:
        return None
    if isinstance(checks, str):
        checks = [checks]
    try:
        items = list(checks)
    except TypeError:
        raise ValueError("checks must be a list of check names, got {!r}".format(
            checks)) from None
    names = []
    for item in items:
        if isinstance(item, models.DataIntegrityCheck):
            item = _Resolved(item.name, item)
        if not isinstance(item, str) or not item.strip():
            raise ValueError("check names must be non-empty strings, got {!r}".format(item))
        if "," in item:
            raise ValueError("check name {!r} contains a comma; pass a list of names "
                             "instead".format(item))
        if not isinstance(item, _Resolved):
            item = item.strip()
        if item not in names:
            names.append(item)
    return names or None


class _Resolved(str):
    """A check name that came as a :class:`DataIntegrityCheck` (from this server's
    list), so it needs no look-up before it is used."""

    check: models.DataIntegrityCheck

    def __new__(cls, name: str, check: models.DataIntegrityCheck) -> "_Resolved":
        self = super().__new__(cls, name)
        self.check = check
        return self


def _severity_value(severity: Union[models.DataIntegritySeverity, str, None]) -> Optional[str]:
    """``DataIntegritySeverity`` or a case-insensitive name -> upper-case name."""
    if severity is None:
        return None
    text = severity.value if isinstance(severity, models.DataIntegritySeverity) else severity
    if isinstance(text, str) and text.strip().upper() in _SEVERITIES:
        return text.strip().upper()
    raise ValueError("severity must be one of {} (any case), got {!r}".format(
        ", ".join(_SEVERITIES), severity))


def _checks_param(names: Optional[Sequence[str]]) -> Optional[Dict[str, str]]:
    return {"checks": ",".join(names)} if names else None


# --- client-side check-name matching (2.36, 2.37/2.38 list) -------------------------


def _token_matcher(token: str) -> Callable[[str, Optional[str]], bool]:
    """A predicate over (name, code) following DHIS2's rules: an all-caps token
    without ``_`` is a code, a token with ``*`` a wildcard over the whole name,
    anything else a name (lower-cased, ``-`` -> ``_``)."""
    if token.upper() == token and "_" not in token and "*" not in token \
            and any(ch.isalpha() for ch in token):
        return lambda name, code: code is not None and code == token \
            or name == token.lower().replace("-", "_")
    if "*" in token:
        text = re.sub(r"[^*_a-z0-9]", "", token.lower().replace("-", "_"))
        pattern = re.compile("^" + ".*".join(re.escape(p) for p in text.split("*")) + "$")
        return lambda name, code: pattern.match(name) is not None
    wanted = token.lower().replace("-", "_")
    return lambda name, code: name == wanted


def _selected(names: Iterable[Optional[str]], tokens: Iterable[str],
              code: Optional[str] = None) -> bool:
    """Whether a check known by any of ``names`` matches any of ``tokens``."""
    matchers = [_token_matcher(t) for t in tokens]
    return any(m(n, code) for m in matchers for n in names if n)


def _is_code_token(token: str) -> bool:
    """DHIS2's rule (DefaultDataIntegrityService.expandChecks@2.39+): a token that is
    all upper case and has no ``_`` is a check code -- also ``DATA*``."""
    return token.upper() == token and "_" not in token


def _wildcard(token: str) -> "re.Pattern[str]":
    text = re.sub(r"[^*_a-z0-9]+", "", token.lower().replace("-", "_"))
    return re.compile("^" + ".*".join(re.escape(p) for p in text.split("*")) + "$")


def match_checks(tokens: Sequence[str], checks: Sequence[models.DataIntegrityCheck],
                 server_codes: bool = True
                 ) -> Tuple[List[models.DataIntegrityCheck], List[str]]:
    """Expand ``tokens`` over ``checks`` the way DHIS2 2.39+ does: ``(selected, unmatched)``.

    Each token is, in this order, a code (all upper case, no ``_``: ``CNO``), a
    wildcard (has ``*``; lower-cased, ``-`` -> ``_``, other characters dropped,
    must match the whole name) or a name (lower-cased, ``-`` -> ``_``).  Order is
    the tokens' order, duplicates dropped.  With ``server_codes`` False (2.36-2.38,
    which have no codes) codes are derived from the names as 2.39+ derives them
    (:func:`versions.check_code`) and a code-like token that matches no code is
    tried as a name, as those servers read it.  On 2.36 the 2.42 name of a legacy
    check's successor is accepted too.
    """
    selected: Dict[str, models.DataIntegrityCheck] = collections.OrderedDict()
    unmatched: List[str] = []
    for token in tokens:
        found: List[models.DataIntegrityCheck] = []
        if _is_code_token(token):
            for check in checks:
                codes = [check.code] if server_codes else [
                    versions.check_code(n) for n in _names_of(check)]
                if token in codes:
                    found.append(check)
        if not found and "*" in token and not (server_codes and _is_code_token(token)):
            pattern = _wildcard(token)
            found = [c for c in checks if any(pattern.match(n) for n in _names_of(c))]
        elif not found and not (server_codes and _is_code_token(token)):
            wanted = token.lower().replace("-", "_")
            found = [c for c in checks if wanted in _names_of(c)]
        if not found:
            unmatched.append(token)
        for check in found:
            selected.setdefault(check.name, check)
    return list(selected.values()), unmatched


def _names_of(check: models.DataIntegrityCheck) -> Tuple[str, ...]:
    modern = _MODERN_NAMES.get(check.name) if check.section == "Legacy" else None
    return (check.name, modern) if modern else (check.name,)


def _unmatched_error(unmatched: List[str], checks: Sequence[models.DataIntegrityCheck],
                     version: Sequence[int], server_codes: bool) -> ConfigurationError:
    import difflib  # only for this message: not on every 'import dhis2maint' (#20.10)

    names = [c.name for c in checks]
    codes: Dict[str, str] = {}
    for check in checks:
        for name in _names_of(check):
            code = check.code if server_codes else versions.check_code(name)
            if code:
                codes.setdefault(code, check.name)
    parts = []
    for token in unmatched:
        if _is_code_token(token):
            close = ["{} ({})".format(c, codes[c]) for c in
                     difflib.get_close_matches(token, list(codes), n=3, cutoff=0.5)]
            lowered = token.lower().replace("-", "_")
            close += [n for n in difflib.get_close_matches(lowered.replace("*", ""), names, n=3)
                      if n not in close][:3 - len(close)]
            note = " (all capitals without '_': DHIS2 reads it as a check code{})".format(
                "; write {} for a wildcard".format(token.lower()) if "*" in token else "")
        else:
            probe = token.lower().replace("-", "_").replace("*", "")
            close = difflib.get_close_matches(probe, names, n=3)
            note = ""
        parts.append("{!r}{}{}".format(token, note, " -- did you mean {}?".format(
            ", ".join(close)) if close else ""))
    unknown = ConfigurationError(
        "no data-integrity check on this server (DHIS2 {}) matches {}".format(
            versions.version_text(version), "; ".join(parts)))
    unknown.follow_ups = (models.FollowUp("list_integrity_checks", (), "list the checks"),)
    return unknown


# --- the 2.36 flattened report ------------------------------------------------------


# legacy check name -> the 2.42 check that replaced it (accepted as an alias on 2.36)
_MODERN_NAMES = {check: modern for _k, _t, check, modern in versions.LEGACY_INTEGRITY_CHECKS}


def _legacy_checks() -> List[models.DataIntegrityCheck]:
    """The 33 legacy checks as 2.37 describes them (section "Legacy", WARNING)."""
    return [models.DataIntegrityCheck(name=check, display_name=check, section="Legacy",
                                      severity=models.DataIntegritySeverity.WARNING,
                                      description=check.replace("_", " "))
            for _key, _kind, check, _modern in versions.LEGACY_INTEGRITY_CHECKS]


def _looks_like_uid(text: str) -> bool:
    """A DHIS2 UID (a letter, then 10 letters or digits) that is not an ordinary word:
    generated UIDs carry a digit or a capital after the first character, so an
    11-letter name such as "Vaccination" stays a name."""
    return bool(_UID.match(text)) and any(ch.isdigit() or ch.isupper() for ch in text[1:])


def _legacy_issue_from_text(text: object, comment: Optional[str] = None,
                            refs: Optional[List[str]] = None) -> models.DataIntegrityIssue:
    """``"Name:uid"`` -> issue(id=uid, name=Name); a bare UID (an object without a
    display name: FlattenedDataIntegrityReport writes ``defaultIfBlank(displayName,
    uid)`` on 2.36 and the uid alone on 2.37+) -> issue(id=uid); any other text
    (2.36 lists carry display names only) -> issue(name=text)."""
    text = str(text)
    head, sep, tail = text.rpartition(":")
    if sep and head and _UID.match(tail):
        return models.DataIntegrityIssue(tail, head, comment, refs or [])
    if _looks_like_uid(text):
        return models.DataIntegrityIssue(text, None, comment, refs or [])
    return models.DataIntegrityIssue(None, text, comment, refs or [])


def _legacy_issues(value: Any, kind: str, key: str,
                   what: str) -> List[models.DataIntegrityIssue]:
    def bad(expected: str) -> InvalidResponseError:
        return InvalidResponseError("{}: flattened report key {!r} should be {}, got {}".format(
            what, key, expected, type(value).__name__))

    if kind == "L":
        if not isinstance(value, list):
            raise bad("a list")
        return [_legacy_issue_from_text(item) for item in value]
    if kind == "G":
        if not isinstance(value, list) or not all(isinstance(g, list) for g in value):
            raise bad("a list of lists")
        return [models.DataIntegrityIssue(None, None, None, sorted(str(r) for r in group))
                for group in value]
    if not isinstance(value, dict):
        raise bad("an object")
    if kind == "C":
        return [_legacy_issue_from_text(name, comment=None if reason is None else str(reason))
                for name, reason in value.items()]
    issues = []  # "M"
    for name, refs in value.items():
        if refs is not None and not isinstance(refs, list):
            raise bad("an object of lists")
        issues.append(_legacy_issue_from_text(name, refs=sorted(str(r) for r in refs or ())))
    return issues


def legacy_report(flat: Optional[Dict[str, Any]], details: bool = True,
                  checks: Optional[Sequence[str]] = None,
                  what: str = "the flattened report") -> models.DataIntegrityReport:
    """A :class:`DataIntegrityReport` from 2.36's flattened report (also 2.37-2.41's).

    One result per legacy key present, named by its check name (section
    "Legacy", severity WARNING).  ``checks`` selects by legacy check name or by
    the 2.42 name of its successor (codes and ``*`` wildcards work too).
    """
    if flat is None:
        return models.DataIntegrityReport(results={}, details=details)
    if not isinstance(flat, dict):
        raise InvalidResponseError("{}: expected a JSON object, got {}".format(
            what, type(flat).__name__))
    results = {}
    for key, kind, check, modern in versions.LEGACY_INTEGRITY_CHECKS:
        if key not in flat or flat[key] is None:
            continue
        if checks and not _selected((check, modern), checks):
            continue
        issues = _legacy_issues(flat[key], kind, key, what)
        results[check] = models.DataIntegrityResult(
            name=check, display_name=check, section="Legacy",
            severity=models.DataIntegritySeverity.WARNING, count=len(issues),
            issues=issues if details else None)
    return models.DataIntegrityReport(results=results, details=details)


# --- streaming helpers ----------------------------------------------------------------


def _progress(job: models.Job, done: int, total: int, completed: bool) -> models.Notification:
    """A synthesised notification for runs DHIS2 posts none for (2.37-2.40)."""
    return models.Notification(
        level=models.NotificationLevel.INFO, category=job.job_type,
        message="{} of {} checks finished (dhis2maint, from the cached results)".format(
            done, total), completed=completed)


def _emit(job: models.Job, notification: models.Notification,
          on_notification: Optional[Callable[[models.Notification], Any]]) -> None:
    """Log a synthesised notification like a real one (see jobs.log_progress), then
    hand it to ``on_notification``."""
    log_progress(str(job.job_type), job.id, notification)
    if on_notification is not None:
        on_notification(notification)


# --- comparing reports ------------------------------------------------------------------


def _count(result: Optional[models.DataIntegrityResult]) -> Optional[int]:
    if result is None:
        return None
    if result.error is not None:
        return -1
    if result.count is not None:
        return result.count
    return len(result.issues) if result.issues is not None else None


def _exact_key(issue: models.DataIntegrityIssue) -> Tuple[Any, ...]:
    return issue.id, issue.name, issue.comment, tuple(issue.refs or ())


def _identity_key(issue: models.DataIntegrityIssue) -> Tuple[Any, ...]:
    if issue.id:
        return "id", issue.id
    if issue.name is not None:
        return "name", issue.name
    return "content", issue.comment, tuple(issue.refs or ())


def _diff_issues(old: models.DataIntegrityResult, new: models.DataIntegrityResult
                 ) -> Tuple[List[models.IntegrityIssueRow], List[models.IntegrityIssueRow],
                            List[models.IssueChange]]:
    """(new rows, resolved rows, IssueChanges) of one check present in both."""
    row = models.IntegrityIssueRow
    assert old.issues is not None and new.issues is not None  # compare_reports checked
    exact: DefaultDict[Tuple[Any, ...], Deque[int]] = collections.defaultdict(collections.deque)
    for index, issue in enumerate(old.issues):
        exact[_exact_key(issue)].append(index)
    matched = [False] * len(old.issues)
    unmatched_new = []
    for issue in new.issues:
        queue = exact.get(_exact_key(issue))
        if queue:
            matched[queue.popleft()] = True
        else:
            unmatched_new.append(issue)
    by_identity: DefaultDict[Tuple[Any, ...], Deque[int]] = collections.defaultdict(
        collections.deque)
    for index, issue in enumerate(old.issues):
        if not matched[index]:
            by_identity[_identity_key(issue)].append(index)
    added, changed = [], []
    for issue in unmatched_new:
        new_row = row(new.name, new.display_name, new.severity, issue)
        queue = by_identity.get(_identity_key(issue))
        if queue:
            index = queue.popleft()
            matched[index] = True
            changed.append(models.IssueChange(
                row(old.name, old.display_name, old.severity, old.issues[index]), new_row))
        else:
            added.append(new_row)
    resolved = [row(old.name, old.display_name, old.severity, issue)
                for index, issue in enumerate(old.issues) if not matched[index]]
    return added, resolved, changed


def compare_reports(old: models.DataIntegrityReport,
                    new: models.DataIntegrityReport) -> models.ReportComparison:
    """What changed from report ``old`` to report ``new``: a :class:`ReportComparison`.

    Counts are compared for every check in either report (``count_changes``
    lists those that differ, appeared or disappeared).  Issues are compared for
    checks that carry issues in both reports and did not fail in either: an
    issue is identified by its check and its id -- or its name when it has none,
    or its comment and refs when it has neither.  Repeated issues are matched
    one to one, so a duplicate that goes away counts as resolved.  An issue
    found in both with another comment, name or refs is a ``changed_issues``
    entry, not new + resolved.  Works on summary reports too (counts only).
    """
    for label, report in (("old", old), ("new", new)):
        if not isinstance(report, models.DataIntegrityReport):
            raise TypeError("compare_reports: {} must be a DataIntegrityReport, got {}".format(
                label, type(report).__name__))
    names = list(new.results) + [name for name in old.results if name not in new.results]
    count_changes = {}
    new_issues, resolved_issues, changed_issues = [], [], []
    compared = False
    for name in names:
        before = old.results.get(name)
        after = new.results.get(name)
        old_count, new_count = _count(before), _count(after)
        if old_count != new_count:
            source = after if after is not None else before
            assert source is not None  # the name came from one of them
            count_changes[name] = models.CountChange(
                name, source.display_name, source.severity, old_count, new_count)
        if before is None or after is None or before.issues is None or after.issues is None \
                or before.error is not None or after.error is not None:
            continue
        compared = True
        added, resolved, changed = _diff_issues(before, after)
        new_issues.extend(added)
        resolved_issues.extend(resolved)
        changed_issues.extend(changed)
    return models.ReportComparison(new_issues=new_issues, resolved_issues=resolved_issues,
                                   changed_issues=changed_issues, count_changes=count_changes,
                                   issues_compared=compared)


def _wait_options(poll_interval: Optional[float], max_interval: Optional[float]
                  ) -> Dict[str, float]:
    """The pacing a caller gave, as ``Job.wait`` keywords (left out: its defaults)."""
    return {key: value for key, value in (("poll_interval", poll_interval),
                                          ("max_interval", max_interval)) if value is not None}


def _finished_before(finished: Optional[datetime.datetime],
                     created: Optional[datetime.datetime]) -> bool:
    """True only when both server times are known, comparable and finished < created."""
    if finished is None or created is None:
        return False
    if (finished.tzinfo is None) != (created.tzinfo is None):
        return False
    return finished < created


# --- the mixin ---------------------------------------------------------------------------


if TYPE_CHECKING:
    from . import stream
    from ._typing import SessionTransport as _Transport
else:
    _Transport = object


class IntegrityMixin(_Transport):
    """Data-integrity methods of :class:`dhis2maint.Session`."""

    def _legacy_integrity(self) -> bool:
        """True on 2.36: no /api/dataIntegrity/summary|details, flattened report only."""
        return not versions.supports(self.server_version, "integrity_checks_api")

    # --- checks ------------------------------------------------------------------

    def list_integrity_checks(self, section: Optional[str] = None,
                              severity: Union[models.DataIntegritySeverity, str, None] = None,
                              slow: Optional[bool] = None,
                              checks: Union[str, Iterable[Union[str, models.DataIntegrityCheck]], None] = None
                              ) -> List[models.DataIntegrityCheck]:
        """The server's data-integrity checks: ``GET /api/dataIntegrity``.

        :param section: exact, case-sensitive section name (e.g. ``"Categories"``).
        :param severity: only checks of this severity: a
            :class:`DataIntegritySeverity` or ``"info"``/``"WARNING"``/… (any case).
        :param slow: ``True`` only slow checks, ``False`` only the default-run ones.
        :param checks: names, codes (``CNO``) or wildcards (``program*``), matched as
            DHIS2 matches them (see :func:`match_checks`); the result keeps their order.

        Without ``checks``, 2.39+ filters ``section`` and ``slow`` on the server.
        With ``checks`` the whole list is read and matched here, so a token that
        matches no check raises :class:`ConfigurationError` naming it (and up to
        three close matches) instead of giving an empty list.  2.37/2.38 filter
        everything here; codes are derived from the names as 2.39+ computes them.
        ``severity`` is always filtered here.  2.36 has no such endpoint: the 33
        legacy checks are returned (section "Legacy", severity WARNING).

        Raises ``ValueError`` for a bad argument, the usual :class:`ApiError`
        family, :class:`InvalidResponseError` for an unexpected answer.
        """
        names = _check_names(checks)
        wanted_severity = _severity_value(severity)
        if slow is not None and not isinstance(slow, bool):
            raise ValueError("slow must be True, False or None, got {!r}".format(slow))
        if section is not None and not isinstance(section, str):
            raise ValueError("section must be a string, got {!r}".format(section))
        if names:
            found = self._resolve_checks(names)
        else:
            params = {}
            if versions.supports(self.server_version, "integrity_filters"):
                if section:
                    params["section"] = section
                if slow is not None:
                    params["slow"] = "true" if slow else "false"
            found = self._all_integrity_checks(params or None)
        result = []
        for check in found:
            if section and check.section != section:
                continue
            if slow is not None and bool(check.is_slow) != slow:
                continue
            if wanted_severity is not None and str(check.severity or "").upper() != \
                    wanted_severity:
                continue
            result.append(check)
        return result

    def _all_integrity_checks(self, params: Optional[Dict[str, str]] = None
                              ) -> List[models.DataIntegrityCheck]:
        """Every check: ``GET /api/dataIntegrity`` (2.36: the 33 legacy checks)."""
        if self._legacy_integrity():
            return _legacy_checks()
        what = "GET /api/dataIntegrity"
        data = self._json("GET", "dataIntegrity", params=params, expect=list)
        return [convert.structure(item, models.DataIntegrityCheck, what)
                for item in data if item is not None]  # 2.39/2.40: null = unknown name

    def resolve_integrity_checks(
            self, checks: Union[str, Iterable[Union[str, models.DataIntegrityCheck]]]
    ) -> List[models.DataIntegrityCheck]:
        """The checks that names, codes or wildcards select on this server, in their
        order: ``GET /api/dataIntegrity`` (2.36: the legacy list), matched as DHIS2
        matches ``checks`` (:func:`match_checks`).

        Raises :class:`ConfigurationError` naming every token that matches no check,
        with up to three close matches each -- DHIS2 itself would silently run or
        read nothing for it.  Every method taking ``checks`` does this first.
        """
        names = _check_names(checks)
        if not names:
            raise ValueError("resolve_integrity_checks needs at least one check name")
        return self._resolve_checks(names)

    def _resolve_checks(self, names: List[str]) -> List[models.DataIntegrityCheck]:
        resolved = [n for n in names if isinstance(n, _Resolved)]
        if len(resolved) == len(names):
            return [n.check for n in resolved]
        server_codes = versions.supports(self.server_version, "integrity_codes")
        available = self._all_integrity_checks()
        selected, unmatched = match_checks(names, available, server_codes)
        if unmatched:
            raise _unmatched_error(unmatched, available, self.server_version, server_codes)
        return selected

    def _selection(self, checks: Union[str, Iterable[Any], None]
                   ) -> Tuple[Optional[List[str]], Optional[List[str]],
                              Optional[List[models.DataIntegrityCheck]]]:
        """``(tokens, expanded names, the matched DataIntegrityCheck objects)`` for a
        ``checks`` argument; (None, None, None) for no selection.  Raises
        :class:`ConfigurationError` for unknown tokens."""
        names = _check_names(checks)
        if not names:
            return None, None, None
        selected = self._resolve_checks(names)
        return names, [c.name for c in selected], selected

    # --- running ------------------------------------------------------------------

    def start_integrity_run(self, checks: Union[str, Iterable[Union[str, models.DataIntegrityCheck]], None] = None,
                            details: bool = False) -> models.Job:
        """Start a data-integrity job and return its :class:`Job` (not waiting).

        ``checks`` (names, codes, wildcards or :class:`DataIntegrityCheck` objects)
        are first matched against ``GET /api/dataIntegrity``: a token that matches
        no check raises :class:`ConfigurationError` before anything is started.

        * 2.39+: ``POST /api/dataIntegrity/summary`` (job type ``DATA_INTEGRITY``) or
          ``/details`` (``DATA_INTEGRITY_DETAILS``) with ``checks=a,b``.  Without
          ``checks`` DHIS2 runs every check that is not slow.
        * 2.37/2.38: the same paths, with the matched check names (these servers
          know no codes); job type ``DATA_INTEGRITY`` for both; without
          ``checks`` every check runs.
        * 2.36: ``POST /api/dataIntegrity``, which always runs all 33 legacy checks
          (it takes no parameters); ``checks`` is then applied when the results are
          read (:meth:`run_integrity_checks`, :meth:`get_integrity_report`).

        The POST is sent once, never retried.  Raises :class:`ConflictError` when
        a 2.37-2.40 server is already running integrity checks.
        """
        tokens, expanded, _selected = self._selection(checks)
        return self._start_integrity_run(tokens, expanded, details)

    def _start_integrity_run(self, tokens: Optional[List[str]], expanded: Optional[List[str]],
                             details: bool) -> models.Job:
        version = self.server_version
        if self._legacy_integrity():
            if expanded:
                log.info("DHIS2 %s runs all legacy integrity checks; the selection is "
                         "applied when the results are read", versions.version_text(version))
            return start_job(self, "dataIntegrity", models.JobType.DATA_INTEGRITY)
        if details and versions.supports(version, "integrity_details_job_type"):
            job_type = models.JobType.DATA_INTEGRITY_DETAILS
        else:
            job_type = models.JobType.DATA_INTEGRITY
        path = "dataIntegrity/details" if details else "dataIntegrity/summary"
        send = expanded
        if tokens and versions.supports(version, "integrity_codes") \
                and len(",".join(expanded or [])) > _MAX_CHECKS_PARAM:
            send = tokens  # the server expands them exactly as match_checks did
        return start_job(self, path, job_type, params=_checks_param(send))

    def run_integrity_checks(self, checks: Union[str, Iterable[Union[str, models.DataIntegrityCheck]], None] = None,
                             details: bool = False, timeout: Optional[float] = None,
                             on_notification: Optional[
                                 Callable[[models.Notification], Any]] = None,
                             include_slow: bool = False, poll_interval: Optional[float] = None,
                             max_interval: Optional[float] = None
                             ) -> models.DataIntegrityReport:
        """Run checks, follow the job to its end, and return this run's results.

        :param checks: names, codes, wildcards or :class:`DataIntegrityCheck`
            objects (e.g. ``list_integrity_checks(slow=True)``); ``None`` = DHIS2's
            default set (every check that is not slow).  A token that matches no
            check raises :class:`ConfigurationError` before anything runs.
        :param details: read issues (``/details``), not just counts.
        :param timeout: seconds for the whole call (``None`` = no limit); on
            expiry :class:`TaskTimeoutError` (the job may still be running).
        :param on_notification: called with each new task :class:`Notification`.
        :param include_slow: with ``checks=None``, list the checks first
            (``GET /api/dataIntegrity``) and name every one, slow ones included.
            Without it the slow checks DHIS2 leaves out are counted and logged
            (INFO).  With ``checks`` it changes nothing (named checks run whether
            slow or not).
        :param poll_interval: / :param max_interval: as for :meth:`wait_for_task`.

        Outages (refused connections, timeouts, 502/503/504) while the job is
        followed and its results read are ridden out for up to
        ``Session.outage_grace`` seconds, as in :meth:`wait_for_task`.

        Steps: ``GET /api/dataIntegrity`` (the checks this run covers),
        :meth:`start_integrity_run`, ``job.wait()`` (``GET
        /api/system/tasks/{type}/{id}``), then ``GET /api/dataIntegrity/summary``
        (or ``/details``) for the names this run covered.  DHIS2 keeps results
        for an hour and returns older runs' entries too, so an entry whose
        ``finishedTime`` is before the job's ``created`` time is left out (both
        are server times).  An empty body there is :class:`InvalidResponseError`.

        2.37-2.40 post no task notifications for these jobs, so the run is
        followed through its results instead: ``GET …/summary|details``
        (2.39/2.40: ``GET …/running`` in between) is polled until each covered
        check has a result newer than the job; ``on_notification`` then receives
        synthesised "N of M checks finished" notifications.

        2.36: ``POST /api/dataIntegrity``, wait, then poll ``GET
        /api/system/taskSummaries/DATA_INTEGRITY/{id}`` until the flattened
        report is there (within ``timeout``, or :data:`LEGACY_REPORT_WAIT` s
        without one); ``checks`` filters it.

        Raises :class:`ConfigurationError`, :class:`JobFailedError`,
        :class:`TaskTimeoutError`, :class:`ConflictError` (2.37-2.40: already
        running), and the usual errors.
        """
        polling.settings(self, timeout, poll_interval, max_interval)  # before anything is sent
        tokens, expanded, selected = self._selection(checks)
        if tokens and include_slow:
            log.info("include_slow has no effect with named checks: they run whether slow "
                     "or not")
        started = polling.Wait.now()
        waits = _wait_options(poll_interval, max_interval)
        run_at = _utcnow()
        if self._legacy_integrity():
            job = self._start_integrity_run(tokens, expanded, details)
            job.wait(timeout=timeout, on_notification=on_notification, **waits)
            flat = self._await_legacy_report(job, timeout, started, poll_interval, max_interval)
            return self._stamp(legacy_report(flat, details, expanded,
                                             "GET /api/system/taskSummaries/DATA_INTEGRITY/{id}"),
                               job, run_at, _legacy_checks())
        version = self.server_version
        notifies = versions.supports(version, "integrity_run_notifications")
        available, job = self._start_run(tokens, expanded, selected, details, include_slow)
        if tokens is None:
            expanded = [c.name for c in available if include_slow or not c.is_slow]
        if notifies:
            job.wait(timeout=timeout, on_notification=on_notification, **waits)
            report = self._job_outage(job).call(self._read_run_results, job, details, expanded)
            return self._stamp(report, job, run_at, available)
        assert expanded is not None  # listed above when the server posts no notifications
        return self._stamp(self._poll_run_results(job, details, expanded, timeout, started,
                                                  on_notification, poll_interval, max_interval),
                           job, run_at, available)

    def _job_wait(self, job: models.Job, timeout: Optional[float], started: Optional[float],
                  poll_interval: Optional[float], max_interval: Optional[float],
                  default_poll: float, default_max: float) -> polling.Wait:
        """The wait for a data-integrity job's results (the caller's pace, else the defaults)."""
        settings = polling.settings(self, timeout, poll_interval, max_interval,
                                    default_poll=default_poll, default_max=default_max)
        return polling.Wait(settings, "data-integrity job {}".format(job.id),
                            (models.FollowUp("get_integrity_report", (), "read its results"),),
                            started=started)

    def _job_outage(self, job: models.Job) -> polling.Outage:
        return self._job_wait(job, None, None, None, None, 1.0, 10.0).outage


    def _start_run(self, tokens: Optional[List[str]], expanded: Optional[List[str]],
                   selected: Optional[List[models.DataIntegrityCheck]], details: bool,
                   include_slow: bool) -> Tuple[List[models.DataIntegrityCheck], models.Job]:
        """Start the job of a run (2.37+): ``(the checks it covers, job)``.  Without
        ``tokens`` the checks are listed first and the slow ones DHIS2 leaves out of its
        default run are logged (INFO)."""
        if tokens is not None:
            return selected or [], self._start_integrity_run(tokens, expanded, details)
        available = self._all_integrity_checks()
        skipped = [c.name for c in available if c.is_slow and not include_slow]
        if skipped:
            log.info("%d slow data-integrity checks are not part of DHIS2's default run "
                     "and were not run; name them, or pass include_slow=True", len(skipped))
        covered = [c.name for c in available if include_slow or not c.is_slow]
        send = covered if include_slow else None
        return ([c for c in available if include_slow or not c.is_slow],
                self._start_integrity_run(send, send, details))

    def _read_results(self, kind: str, expanded: Optional[List[str]]
                      ) -> Tuple[models.DataIntegrityReport, Optional[Set[str]]]:
        """``GET /api/dataIntegrity/summary|details`` for ``expanded`` names (None: all
        cached) -> (report, names to keep or None).  An empty body is an error: DHIS2
        answers ``{}`` when nothing is cached."""
        keep = None
        read = expanded
        if expanded is not None and len(",".join(expanded)) > _MAX_CHECKS_PARAM:
            keep, read = set(expanded), None  # read everything, filter here
        data = self._json("GET", "dataIntegrity/" + kind, params=_checks_param(read),
                          expect=dict)
        report = convert.report_from_dict(data, kind == "details",
                                          "GET /api/dataIntegrity/" + kind)
        return report, keep

    def _read_run_results(self, job: models.Job, details: bool,
                          expanded: Optional[List[str]]) -> models.DataIntegrityReport:
        """This run's results: ``GET /api/dataIntegrity/summary|details`` for the
        expanded names, minus entries older than the job."""
        kind = "details" if details else "summary"
        if expanded is not None and not expanded:  # the run covered no check
            return models.DataIntegrityReport(results={}, details=details)
        report, keep = self._read_results(kind, expanded)
        results = {}
        for key, result in report.results.items():
            if keep is not None and key not in keep and result.name not in keep:
                continue
            if _finished_before(result.finished_time, job.created):
                log.debug("dropping %s: its result (%s) is older than job %s (%s)", key,
                          result.finished_time, job.id, job.created)
                continue
            results[key] = result
        return models.DataIntegrityReport(results=results, details=details)

    def _poll_run_results(self, job: models.Job, details: bool, expanded: List[str],
                          timeout: Optional[float], started: float,
                          on_notification: Optional[Callable[[models.Notification], Any]],
                          poll_interval: Optional[float] = None,
                          max_interval: Optional[float] = None
                          ) -> models.DataIntegrityReport:
        """2.37-2.40: summary/details jobs post no task notifications, so the run is
        followed through its results: done when every covered check has an entry
        that finished after the job was created.  2.39/2.40 ask ``…/running``
        between reads so big details bodies are fetched once; 2.37/2.38 re-read the
        results.  ``on_notification`` gets synthesised progress notifications.  The
        pace: ``poll_interval`` (default 0.5 s) growing to ``max_interval`` (5 s); it
        does not drop back on progress, so big bodies are not re-read faster."""
        has_running = versions.supports(self.server_version, "integrity_filters")
        total = len(expanded)
        reported = -1
        wait = self._job_wait(job, timeout, started, poll_interval, max_interval, 0.5, 5.0)
        done = 0
        while True:
            down = False  # DHIS2 is out: count nothing, poll again
            busy: List[str] = []  # covered checks still queued or running (2.39/2.40)
            if has_running:
                running = wait.poll(self._integrity_name_list, details, "running")
                if running is polling.DOWN:
                    down = True
                else:
                    running = set(running)
                    busy = [name for name in expanded if name in running]
            if busy:
                done = total - len(busy)
            elif not down:
                report = wait.poll(self._read_run_results, job, details, expanded)
                if report is not polling.DOWN:
                    missing = [name for name in expanded if name not in report.results]
                    done = total - len(missing)
                    if not missing:
                        _emit(job, _progress(job, done, total, True), on_notification)
                        return cast(models.DataIntegrityReport, report)
            if done != reported:
                _emit(job, _progress(job, done, total, False), on_notification)
            reported = done
            if not wait.pause():
                assert timeout is not None  # only a deadline ends the pauses
                raise TaskTimeoutError(
                    "data-integrity job {} did not finish within {:g} s ({} of {} checks "
                    "have results); it may still be running".format(job.id, timeout, done, total),
                    job_id=job.id, job_type=str(job.job_type),
                    last_message="{} of {} checks finished".format(done, total))

    def _await_legacy_report(self, job: models.Job, timeout: Optional[float],
                             started: float, poll_interval: Optional[float] = None,
                             max_interval: Optional[float] = None) -> Dict[str, Any]:
        """Poll 2.36's taskSummaries until the job's flattened report is stored (pace:
        ``poll_interval`` default 0.2 s, growing to ``max_interval``, 2 s)."""
        limit = LEGACY_REPORT_WAIT if timeout is None else max(0.0, timeout - (
            polling.Wait.now() - started))
        path = "system/taskSummaries/DATA_INTEGRITY/" + self._segment(job.id, "job id")
        wait = self._job_wait(job, limit, None, poll_interval, max_interval, 0.2, 2.0)
        while True:
            flat = wait.poll(self._json, "GET", path, expect=dict, allow_empty=True)
            if flat is not None and flat is not polling.DOWN:
                return cast(Dict[str, Any], flat)
            if not wait.pause():
                raise TaskTimeoutError(
                    "data-integrity job {} completed but its report did not appear in "
                    "/api/system/taskSummaries within {:g} s".format(job.id, limit),
                    job_id=job.id, job_type=str(job.job_type), last_message=None)

    # --- reading results ----------------------------------------------------------

    def get_integrity_report(self, checks: Union[str, Iterable[Union[str, models.DataIntegrityCheck]], None] = None,
                             details: bool = True) -> models.DataIntegrityReport:
        """The cached results, without running anything.

        2.37+: ``GET /api/dataIntegrity/details`` (or ``/summary`` with
        ``details=False``), ``checks=a,b`` when given; without ``checks`` every
        cached result (DHIS2 keeps them about an hour, slow checks included).
        2.36: the newest flattened report in ``GET
        /api/system/taskSummaries/DATA_INTEGRITY`` (empty report if none).

        ``checks`` are matched against ``GET /api/dataIntegrity`` first: a token
        that matches no check raises :class:`ConfigurationError`.  A check that
        exists but has no cached result is simply absent from the report (see
        :meth:`missing_integrity_results`).  An empty body is
        :class:`InvalidResponseError`; ``{}`` is "nothing cached".

        For a large details report prefer :meth:`iter_integrity_issues`.
        """
        _tokens, expanded, selected = self._selection(checks)
        if self._legacy_integrity():
            what = "GET /api/system/taskSummaries/DATA_INTEGRITY"
            data = self._json("GET", "system/taskSummaries/DATA_INTEGRITY", expect=dict,
                              allow_empty=True)
            flat = None
            for value in (data or {}).values():  # insertion order: the newest is last
                if isinstance(value, dict):
                    flat = value
            return self._stamp(legacy_report(flat, details, expanded, what), None, _utcnow(),
                               _legacy_checks())
        kind = "details" if details else "summary"
        run_at = _utcnow()
        report, keep = self._read_results(kind, expanded)
        if keep is not None:
            report = models.DataIntegrityReport(
                results={k: r for k, r in report.results.items() if k in keep or r.name in keep},
                details=details)
        info = selected
        if report.results and not versions.supports(self.server_version, "integrity_filters") \
                and info is None:
            info = self._all_integrity_checks()  # 2.37/2.38 results lack the check's info
        return self._stamp(report, None, run_at, info)

    @staticmethod
    def missing_integrity_results(report: models.DataIntegrityReport,
                                  checks: Sequence[Any]) -> List[str]:
        """The names among ``checks`` (names or :class:`DataIntegrityCheck` objects,
        e.g. from :meth:`resolve_integrity_checks`) that have no result in
        ``report``: never run, or their cached result expired (about an hour)."""
        have = set(report.results) | {r.name for r in report.results.values()}
        names = [c.name if isinstance(c, models.DataIntegrityCheck) else str(c) for c in checks]
        return [n for n in names if n not in have]

    def iter_integrity_issues(self, checks: Union[str, Iterable[Any], None] = None,
                              on_check: Optional[Callable[[models.DataIntegrityResult], None]]
                              = None) -> Iterator[models.IntegrityIssueRow]:
        """Every cached issue as an :class:`IntegrityIssueRow`, streamed.

        ``GET /api/dataIntegrity/details`` (``checks=a,b`` when given) is read in
        64 KiB chunks and each issue is yielded as soon as it is complete, so
        memory stays flat for any size and the first rows arrive long before the
        body ends.  Leaving the loop early closes the connection.

        The whole body must arrive within ``Session.stream_deadline`` seconds
        (:class:`TransportError` naming the deadline), each read within the
        session timeout.  A truncated, empty or malformed body raises
        :class:`InvalidResponseError` after every complete row was yielded.

        2.36: the rows of :meth:`get_integrity_report` (not streamed).
        Arguments are checked at once; the requests (``GET /api/dataIntegrity`` to
        match ``checks`` -- :class:`ConfigurationError` for a token that matches no
        check -- then the details) are sent on the first ``next()``.

        ``on_check``: called with each check's :class:`DataIntegrityResult`
        (``issues`` None, ``count`` the issues streamed, -1 when it failed) right
        after its last row -- also for checks without issues -- so a caller can
        write or record whole reports while reading.
        """
        names = _check_names(checks)
        return self._iter_integrity_issues(names, on_check)

    def _iter_integrity_issues(self, names: Optional[List[str]],
                               on_check: Optional[Callable[[models.DataIntegrityResult], None]]
                               = None) -> Iterator[models.IntegrityIssueRow]:
        from . import stream  # the incremental parser; loaded only when streaming

        parser = stream.IssueStreamParser("GET /api/dataIntegrity/details")
        # One generator step per row (stream.build_rows); the requests and the
        # connection's life are in the pieces, one step per run of issues (#20.10).
        return stream.build_rows(parser, self._integrity_pieces(parser, names, on_check))

    def _integrity_pieces(self, parser: stream.IssueStreamParser, names: Optional[List[str]],
                          on_check: Optional[Callable[[models.DataIntegrityResult], None]]
                          ) -> Iterator[stream.Piece]:
        """The details body's pieces for :meth:`_iter_integrity_issues` (see
        ``IssueStreamParser.pieces``): sends the requests on the first step and
        closes the response when it ends or is closed."""
        from . import stream

        _tokens, expanded, selected = self._selection(names)
        if self._legacy_integrity():
            report = self.get_integrity_report(checks=selected, details=True)
            for result in report:
                rows = [models.IntegrityIssueRow(result.name, result.display_name,
                                                 result.severity, issue)
                        for issue in result.issues or ()]
                parser.rows += len(rows)
                yield None, rows
                if on_check is not None:
                    on_check(_without_issues(result))
            return
        what = parser.what
        keep = None
        read = expanded
        if expanded is not None and len(",".join(expanded)) > _MAX_CHECKS_PARAM:
            keep, read = set(expanded), None
        started = time.monotonic()
        response = self._send("GET", "dataIntegrity/details", params=_checks_param(read),
                              stream=True,
                              timeout=(self.timeout, min(self.timeout, self.stream_deadline)))
        chunks = self._body_chunks(response, what, started)
        if on_check is not None:
            report_check = on_check

            def end_of_check(key: str, meta: Dict[str, Any], count: int) -> None:
                report_check(_result_from_meta(key, meta, count, what))
            parser.on_check = end_of_check
        try:
            pieces = stream.body_pieces(parser, chunks, what)
            if keep is None:
                yield from pieces
            else:  # the whole body was asked for: pass on the selected checks' issues
                for meta, items in pieces:
                    if meta is not None and meta[0] not in keep:
                        parser.rows += len(items)  # read, not built
                    elif meta is not None or (items and items[0].check_name in keep):
                        yield meta, items
        finally:
            chunks.close()  # stops its deadline timer
            response.close()  # also when the caller leaves the loop early

    def get_integrity_check_result(self, name: str, details: bool = False
                                   ) -> Optional[models.DataIntegrityResult]:
        """One check's cached result, or ``None`` when DHIS2 has none (never run,
        or expired): ``GET /api/dataIntegrity/{name}/summary`` (or ``/details``).

        2.37+; 2.36 raises :class:`UnsupportedServerError`.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError("check name must be a non-empty string, got {!r}".format(name))
        versions.require(self.server_version, "integrity_checks_api",
                         "reading one integrity check's result")
        kind = "details" if details else "summary"
        path = "dataIntegrity/{}/{}".format(self._segment(name.strip(), "check name"), kind)
        what = "GET /api/dataIntegrity/{{check}}/{}".format(kind)
        data = self._json("GET", path, expect=dict, allow_empty=True)
        if data is None:
            return None
        if "name" not in data:
            data = dict(data, name=name.strip())
        return convert.result_from_dict(data, details, what)

    def running_integrity_checks(self, details: bool = False) -> List[str]:
        """Names of checks queued or running: ``GET /api/dataIntegrity/summary/running``
        (or ``/details/running``).  2.39+, else :class:`UnsupportedServerError`."""
        return self._integrity_name_list(details, "running")

    def completed_integrity_checks(self, details: bool = False) -> List[str]:
        """Names of checks with a cached result (failed ones included): ``GET
        /api/dataIntegrity/summary/completed`` (or ``/details/completed``).  2.39+."""
        return self._integrity_name_list(details, "completed")

    def _integrity_name_list(self, details: bool, which: str) -> List[str]:
        kind = "details" if details else "summary"
        versions.require(self.server_version, "integrity_filters",
                         "listing {} integrity checks".format(which))
        path = "dataIntegrity/{}/{}".format(kind, which)
        data = self._json("GET", path, expect=list)
        if not all(isinstance(item, str) for item in data):
            raise InvalidResponseError("GET /api/{}: expected a list of check names".format(path))
        return cast(List[str], data)

    def iter_integrity_run(
            self, checks: Union[str, Iterable[Union[str, models.DataIntegrityCheck]], None] = None,
            timeout: Optional[float] = None,
            on_notification: Optional[Callable[[models.Notification], Any]] = None,
            include_slow: bool = False,
            on_check: Optional[Callable[[models.DataIntegrityResult], None]] = None,
            poll_interval: Optional[float] = None, max_interval: Optional[float] = None
    ) -> Tuple[models.DataIntegrityReport, Iterator[models.IntegrityIssueRow]]:
        """Run a details check run and STREAM its issues (constant memory).

        Like :meth:`run_integrity_checks` with ``details=True``, but returns
        ``(report, rows)`` at once after the job ended: ``rows`` iterates this
        run's :class:`IntegrityIssueRow` objects while ``GET
        /api/dataIntegrity/details`` is read; ``report`` is a details report with
        the run's provenance whose ``results`` fill (without issues) as each
        check's object ends; ``on_check(result)`` is called then too.

        2.41+ only streams: a check whose result is older than the job raises
        :class:`InvalidResponseError` after its rows.  2.36-2.40 (where the run
        is followed through its results) read the whole report and then iterate it.
        """
        polling.settings(self, timeout, poll_interval, max_interval)  # before anything is sent
        report = models.DataIntegrityReport(results={}, details=True)

        def collect(result: models.DataIntegrityResult) -> None:
            report.results[result.name] = result
            if on_check is not None:
                on_check(result)

        version = self.server_version
        if self._legacy_integrity() or not versions.supports(version,
                                                             "integrity_run_notifications"):
            whole = self.run_integrity_checks(checks, details=True, timeout=timeout,
                                              on_notification=on_notification,
                                              include_slow=include_slow,
                                              poll_interval=poll_interval,
                                              max_interval=max_interval)
            for field in ("base_url", "dhis2_version", "job_id", "run_at", "server_time"):
                setattr(report, field, getattr(whole, field))

            def replay() -> Iterator[models.IntegrityIssueRow]:
                for result in whole:
                    for issue in result.issues or ():
                        yield models.IntegrityIssueRow(result.name, result.display_name,
                                                       result.severity, issue)
                    collect(_without_issues(result))
            return report, replay()
        tokens, expanded, selected = self._selection(checks)
        run_at = _utcnow()
        available, job = self._start_run(tokens, expanded, selected, True, include_slow)
        waits = _wait_options(poll_interval, max_interval)
        job.wait(timeout=timeout, on_notification=on_notification, **waits)
        self._stamp(report, job, run_at)
        read = _check_names(available)  # already matched: no second look-up
        keep = set(c.name for c in available)
        stale: List[str] = []

        def checked(result: models.DataIntegrityResult) -> None:
            if result.name not in keep:
                return
            if _finished_before(result.finished_time, job.created):
                stale.append(result.name)
            fill_check_info(models.DataIntegrityReport({result.name: result}), available)
            collect(result)

        def rows() -> Iterator[models.IntegrityIssueRow]:
            if not read:  # the run covered no check
                return
            for row in self._iter_integrity_issues(read, checked):
                if row.check_name in keep:
                    yield row
            if stale:
                raise InvalidResponseError(
                    "GET /api/dataIntegrity/details: {} check result(s) are older than job {} "
                    "(e.g. {}): DHIS2 did not run them".format(len(stale), job.id, stale[0]))
        return report, rows()

    def _stamp(self, report: models.DataIntegrityReport, job: Optional[models.Job],
               run_at: datetime.datetime,
               checks: Optional[Iterable[models.DataIntegrityCheck]] = None
               ) -> models.DataIntegrityReport:
        """The report with its provenance set (see :func:`stamp_report`)."""
        return stamp_report(report, self.base_url, self.server_version, job, run_at, checks)


# --- provenance and check information (#12.7, #12.8) ------------------------------------


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


#: Check fields copied onto a result that lacks them (older servers, 2.36's mapping).
_CHECK_INFO = ("display_name", "section", "section_order", "description", "introduction",
               "recommendation", "issues_id_type", "is_slow", "is_programmatic", "code")


def fill_check_info(report: models.DataIntegrityReport,
                    checks: Optional[Iterable[models.DataIntegrityCheck]]
                    ) -> models.DataIntegrityReport:
    """Copy what the check list says (``checks``: :class:`DataIntegrityCheck` objects)
    onto the report's results where DHIS2 did not send it with the result."""
    by_name = {c.name: c for c in checks or ()}
    for key, result in report.results.items():
        check = by_name.get(result.name) or by_name.get(key)
        if check is None:
            continue
        for field in _CHECK_INFO:
            if getattr(result, field, None) is None and getattr(check, field, None) is not None:
                setattr(result, field, getattr(check, field))
    return report


def _report_server_time(report: models.DataIntegrityReport) -> Optional[datetime.datetime]:
    """The newest ``finishedTime`` of the report's results (server clock), or None."""
    times = [r.finished_time for r in report if r.finished_time is not None]
    try:
        return max(times) if times else None
    except TypeError:  # naive and aware mixed
        return None


def stamp_report(report: models.DataIntegrityReport, base_url: Optional[str],
                 version: Optional[Sequence[int]], job: Optional[models.Job] = None,
                 run_at: Optional[datetime.datetime] = None,
                 checks: Optional[Iterable[models.DataIntegrityCheck]] = None
                 ) -> models.DataIntegrityReport:
    """Set a report's provenance: base URL, DHIS2 version text, the job's id, the
    client's UTC time (``run_at``) and the server's (the job's ``created``, else the
    newest result's ``finishedTime``); fill check information from ``checks``."""
    report.base_url = base_url
    report.dhis2_version = versions.version_text(version) if version is not None else None
    report.job_id = job.id if job is not None else None
    report.run_at = run_at
    report.server_time = (job.created if job is not None else None) or \
        _report_server_time(report)
    if checks:
        fill_check_info(report, checks)
    return report


def _without_issues(result: models.DataIntegrityResult) -> models.DataIntegrityResult:
    import attr

    return attr.evolve(result, issues=None)


def _result_from_meta(key: str, meta: Dict[str, Any], count: int,
                      what: str) -> models.DataIntegrityResult:
    """The result a streamed check's metadata describes (``count``: issues streamed)."""
    data = {k: v for k, v in meta.items() if k != "issues"}
    data.setdefault("name", key)
    result = convert.result_from_dict(data, False, what)
    result.count = -1 if result.error is not None else count
    return result
