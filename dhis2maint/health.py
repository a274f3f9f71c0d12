"""Scheduler health and ``doctor``: :class:`HealthMixin` of :class:`Session`, and the
pure functions behind it (testable without HTTP).

* :func:`evaluate_scheduler` turns fetched data (job configurations, the server's
  own time, ``/api/scheduler`` entries on 2.41+, the running job types on
  2.37-2.40, ``/api/system/info``) into :class:`HealthFinding` items.  Every job
  time is compared with the SERVER's time (``serverDate``): DHIS2 writes times in
  its own zone without saying which, so the client clock is never used.
* :func:`authority_checks` says, for a user's authorities and a DHIS2 version,
  which dhis2maint commands will be refused and why (the table
  :data:`FEATURE_AUTHORITIES`, from the ``@PreAuthorize``/``@RequiresAuthority``
  annotations of each endpoint in DHIS2's source).
* :func:`clock_skew` reads an HTTP ``Date`` header against the client clock.
"""
import datetime
import email.utils
import re
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple, cast
from urllib.parse import urlsplit

from . import convert, models
from .errors import (ApiError, AuthenticationError, Dhis2Error, InvalidResponseError, NotFound,
                     TransportError, UnsupportedServerError)

__all__ = ["HealthMixin", "evaluate_scheduler", "authority_checks", "clock_skew",
           "lacking_features", "cron_period", "FEATURE_AUTHORITIES", "SYSTEM_JOBS",
           "SUPPORTED_VERSIONS"]

#: Oldest and newest DHIS2 minor versions dhis2maint is built and tested for.
SUPPORTED_VERSIONS = ((2, 36), (2, 43))

#: DHIS2's built-in jobs: (uid, name, job type, first version, gone version or None)
#: (core/startup/SchedulerStart.java@2.36/@2.37:80/@2.38:80, api/scheduling/JobType.java@2.41-2.43).
#: 2.36-2.40 re-create them at startup by NAME, 2.41+ by UID (HOUSEKEEPING, every 20 s).
SYSTEM_JOBS = (
    ("pd6O228pqr0", "File resource clean up", "FILE_RESOURCE_CLEANUP", (2, 36), None),
    ("BFa3jDsbtdO", "Data statistics", "DATA_STATISTICS", (2, 36), None),
    ("Js3vHn2AVuG", "Validation result notification", "VALIDATION_RESULTS_NOTIFICATION",
     (2, 36), None),
    ("sHMedQF7VYa", "Credentials expiry alert", "CREDENTIALS_EXPIRY_ALERT", (2, 36), None),
    ("YvAwAmrqAtN", "Dataset notification", "DATA_SET_NOTIFICATION", (2, 36), None),
    ("uwWCT2BMmlq", "Remove expired or used reserved values",
     "REMOVE_USED_OR_EXPIRED_RESERVED_VALUES", (2, 36), None),
    ("fUWM1At1TUx", "User account expiry alert", "ACCOUNT_EXPIRY_ALERT", (2, 37), None),
    ("vt21671bgno", "System version update check notification", "SYSTEM_VERSION_UPDATE_CHECK",
     (2, 38), None),
    ("DHIS2rocks1", "Housekeeping", "HOUSEKEEPING", (2, 41), None),
    ("D2datatrim8", "Data value trim", "DATA_VALUE_TRIM", (2, 41), None),
)
_HOUSEKEEPING = "DHIS2rocks1"

_M = ("ALL", "F_PERFORM_MAINTENANCE")

#: feature -> (what it is, the dhis2maint commands that need it,
#:             ((first version, gone version or None, any-of authorities), ...))
#: Sources (DHIS2 source, cite path@branch): ctl/DataIntegrityController, ResourceTableController,
#: MaintenanceController, PredictorController(+Group), DataAnalysisController,
#: validation/ValidationController (sendNotifications), validation/ValidationResultController,
#: sd/JobConfigurationSchemaDescriptor, sch/JobConfigurationController (cancel); the
#: README's "Doctor" section says what each version's annotations ask for.
FEATURE_AUTHORITIES = (
    ("integrity", "run data-integrity checks and read their results",
     ("integrity run", "integrity report", "integrity issues"),
     (((2, 0), None, _M),)),
    ("analytics", "rebuild analytics and resource tables, run monitoring",
     ("refresh analytics", "refresh resource-tables", "refresh monitoring"),
     (((2, 0), None, _M),)),
    ("maintenance", "/api/maintenance operations (cache clear, soft-deleted removal, …)",
     ("maintenance …",), (((2, 0), None, _M),)),
    ("data pruning", "delete all data of an org unit or data element",
     ("maintenance prune-organisation-unit-data", "maintenance prune-data-element-data"),
     (((2, 0), None, ("ALL",)),)),
    ("predictors", "run predictors", ("predictors run",),
     (((2, 0), None, ("ALL", "F_PREDICTOR_RUN")),)),
    ("validation", "run validation rule analysis", ("validation run",),
     (((2, 0), None, ("ALL", "F_RUN_VALIDATION")),)),
    ("validation notifications", "send validation result notifications", ("validation notify",),
     (((2, 0), (2, 42), ("ALL", "M_dhis-web-app-management")),
      ((2, 42), None, ("ALL", "F_RUN_VALIDATION")))),
    # hasRole('F_PERFORM_MAINTENANCE') without hasRole('ALL') up to 2.41: ALL alone is refused
    ("validation result deletion", "delete stored validation results",
     ("validation delete-results",),
     (((2, 0), (2, 42), ("F_PERFORM_MAINTENANCE",)), ((2, 42), None, _M))),
    ("scheduler admin", "create, update and delete job configurations",
     ("jobs create", "jobs delete"), (((2, 0), None, ("ALL", "F_SCHEDULING_ADMIN")),)),
    ("job cancel", "cancel one running job by id (or be the job's executor)",
     ("jobs cancel ID",), (((2, 41), None, _M),)),
)

#: (first version, gone version or None, what a server outside that range lacks)
_FEATURE_RANGES = (
    ((2, 37), None, "integrity summary/details API (2.36: flattened report only)"),
    ((2, 37), None, "/api/scheduling: running jobs and cancel by job type"),
    ((2, 38), None, "jobs enable/disable endpoints (PATCH used instead)"),
    ((2, 38), None, "GET /api/ping"),
    ((2, 39), None, "integrity check filters (section, slow, programmatic)"),
    ((2, 40), None, "/api/scheduler and DELETE /api/system/tasks"),
    ((2, 41), None, "per-job cancel, heartbeat (lastAlive), error codes, stored run-once jobs"),
    ((2, 41), None, "secondsToNextExecutionTime (exact overdue detection)"),
    ((2, 42), None, "integrity metrics"),
)


def lacking_features(version: Sequence[int]) -> List[str]:
    """What a server of ``version`` lacks that dhis2maint can use on newer ones."""
    minor = tuple(version[:2])
    return [text for first, gone, text in _FEATURE_RANGES
            if minor < first or (gone is not None and minor >= gone)]


def _authorities_for(rules: Iterable[Tuple[Tuple[int, int], Optional[Tuple[int, int]],
                                            Tuple[str, ...]]],
                     version: Sequence[int]) -> Optional[Tuple[str, ...]]:
    minor = tuple(version[:2])
    for first, gone, any_of in rules:
        if minor >= first and (gone is None or minor < gone):
            return any_of
    return None


def authority_checks(authorities: Iterable[str], version: Sequence[int],
                     need: Iterable[str] = ()) -> List[models.DoctorCheck]:
    """One :class:`DoctorCheck` per feature of :data:`FEATURE_AUTHORITIES`: ``pass``
    when ``authorities`` hold one of those the feature needs on ``version``,
    else ``fail`` for features in ``need`` and ``warn`` for the others; ``skip``
    where the version lacks the feature.  Each non-pass line names the commands
    that will be refused (HTTP 403) and the authority to grant."""
    have = set(authorities)
    need = set(need)
    unknown = need - {name for name, _, _, _ in FEATURE_AUTHORITIES}
    if unknown:
        raise ValueError("unknown feature(s) {}; known: {}".format(
            ", ".join(sorted(unknown)), ", ".join(n for n, _, _, _ in FEATURE_AUTHORITIES)))
    out = []
    for name, what, commands, rules in FEATURE_AUTHORITIES:
        any_of = _authorities_for(rules, version)
        label = "authority: " + name
        if any_of is None:
            out.append(models.DoctorCheck(label, "skip", "not in DHIS2 {}".format(
                ".".join(map(str, version[:2])))))
            continue
        if have.intersection(any_of):
            held = sorted(have.intersection(any_of))[0]
            out.append(models.DoctorCheck(label, "pass", "{} ({})".format(what, held)))
            continue
        note = ""
        if "ALL" in have and "ALL" not in any_of:
            note = " -- ALL is not enough here: DHIS2 checks this authority alone"
        out.append(models.DoctorCheck(
            label, "fail" if name in need else "warn",
            "`{}` will be refused (HTTP 403): needs one of {}{}".format(
                "`, `".join(commands), ", ".join(any_of), note),
            fix="give the user a role with {}".format(" or ".join(
                a for a in any_of if a != "ALL") or "ALL")))
    return out


def clock_skew(date_header: Optional[str], sent_at: float, received_at: float) -> Optional[float]:
    """Seconds the server's clock is ahead of the client's (negative: behind), from
    an HTTP ``Date`` header and the client's epoch times around the request
    (compared with their midpoint); ``None`` without a readable header.  The
    header is truncated to the second, so half a second is added and |skew|
    below 1 s means "in sync"."""
    if not date_header:
        return None
    try:
        stamp = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    midpoint = (sent_at + received_at) / 2.0
    # The header is truncated to the second: +0.5 s is the expected truncation.
    return stamp.timestamp() + 0.5 - midpoint


# --- cron: only how often a schedule fires -----------------------------------------------

_STEP = re.compile(r"^(?:\*|\d+)/(\d+)$")


def cron_period(cron: Optional[str], delay: Optional[int] = None) -> Optional[float]:
    """Roughly how many seconds lie between two runs of a Spring cron expression
    (``"0 0 3 ? * *"`` -> 86400), or ``delay`` for FIXED_DELAY; ``None`` when it
    cannot be told.  Used to see a missed run on 2.36-2.40, where DHIS2 does not
    keep the time a job was due."""
    if delay is not None and not cron:
        try:
            return float(delay)
        except (TypeError, ValueError):
            return None
    if not cron:
        return None
    parts = cron.split()
    if len(parts) != 6:
        return None
    second, minute, hour, dom, month, dow = parts

    def every(field: str, unit: float) -> Optional[float]:
        if field == "*":
            return unit
        match = _STEP.match(field)
        if match:
            return unit * int(match.group(1))
        if "," in field:
            return None  # several per period: at most the period
        return 0.0  # a fixed value

    for field, unit in ((second, 1.0), (minute, 60.0), (hour, 3600.0)):
        step = every(field, unit)
        if step:
            return step
        if step is None:
            return unit * {1.0: 60, 60.0: 60, 3600.0: 24}[unit]
    if dow not in ("*", "?"):
        return 7 * 86400.0
    if dom not in ("*", "?"):
        return 31 * 86400.0 if month in ("*", "?") else 366 * 86400.0
    if month not in ("*", "?"):
        return 366 * 86400.0
    return 86400.0


# --- the verdict ----------------------------------------------------------------------

_SEVERITY_ORDER = {"CRITICAL": 0, "SEVERE": 1, "WARNING": 2, "INFO": 3}


def _naive(value: Any) -> Optional[datetime.datetime]:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=None)
    try:
        parsed = convert.parse_datetime(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=None) if parsed is not None else None


def _ago(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return "{:.0f} s".format(seconds)
    if seconds < 7200:
        return "{:.0f} min".format(seconds / 60)
    if seconds < 3 * 86400:
        return "{:.1f} h".format(seconds / 3600)
    return "{:.1f} days".format(seconds / 86400)


def _label(config: models.JobConfiguration) -> str:
    return "'{}' ({}, {})".format(config.name or config.display_name or "?",
                                  config.job_type or "?", config.id or "?")


def _status(value: Any) -> str:
    return str(value or "").upper()


def evaluate_scheduler(configs: Sequence[models.JobConfiguration], server_time: datetime.datetime,
                       version: Sequence[int],
                       scheduler_entries: Optional[List[Dict[str, Any]]] = None,
                       running_types: Optional[Iterable[str]] = None,
                       system_info: Optional[Dict[str, Any]] = None,
                       max_runtime_hours: float = 6.0, analytics_max_age_hours: float = 26.0,
                       stale_heartbeat_minutes: float = 10.0) -> models.SchedulerHealth:
    """The scheduler's health from data already fetched (no HTTP).

    ``server_time``: the server's clock (``serverDate``, naive server-local);
    ``scheduler_entries``: ``GET /api/scheduler`` (2.41+, for the server's own
    ``secondsToNextExecutionTime``); ``running_types``: ``GET
    /api/scheduling/running/types`` (2.37-2.40, the in-memory truth);
    ``system_info``: ``GET /api/system/info`` (``lastAnalyticsTableSuccess``).

    Findings: ``failed`` (last run FAILED), ``stuck`` (RUNNING with a stale
    heartbeat on 2.41+, a RUNNING row no process backs on 2.37-2.40, or running
    past ``max_runtime_hours`` / 3x its last runtime), ``overdue`` (2.41+: due
    more than 60 s ago but not started; before: no run for 1.5 schedule periods
    + 1 h), ``disabled_system_job``, ``missing_system_job``, ``scheduler_dead``
    (2.41+: Housekeeping idle > 5 min), ``analytics_stale`` /
    ``analytics_never``.  Run-once rows (2.41+ ad-hoc jobs) are ignored.
    """
    minor = tuple(version[:2])
    now = _naive(server_time)
    if now is None:
        raise ValueError("server_time is required (the server's serverDate)")
    findings: List[models.HealthFinding] = []
    jobs = [c for c in configs if not (minor >= (2, 41) and c.is_run_once)]
    running = None if running_types is None else set(str(t) for t in running_types)
    seconds_to_next: Dict[str, float] = {}
    for entry in scheduler_entries or ():
        if not isinstance(entry, dict):
            continue
        secs = entry.get("secondsToNextExecutionTime")
        if isinstance(secs, bool) or not isinstance(secs, (int, float)):
            continue  # absent (2.40) or not a number: fall back to the job's own times
        members = entry.get("sequence")
        for member in members if isinstance(members, list) else ():
            if isinstance(member, dict) and member.get("id"):
                seconds_to_next.setdefault(str(member["id"]), float(secs))

    def add(kind: str, severity: str, config: Optional[models.JobConfiguration], message: str,
            what_to_do: str, since: Any = None, codes: Any = None) -> None:
        findings.append(models.HealthFinding(
            kind=kind, severity=severity, message=message, what_to_do=what_to_do,
            job_id=config.id if config else None, job_name=config.name if config else None,
            job_type=config.job_type if config else None, error_codes=list(codes or []),
            since=since))

    for config in jobs:
        status = _status(config.job_status)
        last_status = _status(config.last_executed_status)
        last = _naive(config.last_executed)
        enabled = config.enabled is not False
        # -- last run failed
        if last_status == "FAILED":
            codes = config.error_code_list
            add("failed", "SEVERE" if enabled else "WARNING", config,
                "last run of {}{} FAILED{}".format(
                    _label(config), " at " + last.isoformat(sep=" ", timespec="seconds") if last else "",
                    "; error codes " + " ".join(codes) if codes else ""),
                "see why with `dhis2maint jobs show {0}` and the server log{1}; run it again "
                "with `dhis2maint jobs run {0} --wait`".format(
                    config.id, " (2.41+: GET /api/jobConfigurations/{}/progress)".format(config.id)
                    if minor >= (2, 41) else ""),
                since=last, codes=codes)
        # -- stuck or long-running
        if status == "RUNNING":
            if minor >= (2, 41):
                alive = _naive(config.last_alive)
                idle = (now - alive).total_seconds() if alive else None
                if idle is None or idle > stale_heartbeat_minutes * 60:
                    add("stuck", "SEVERE", config,
                        "{} is RUNNING but its heartbeat (lastAlive) is {}; DHIS2 marks it "
                        "FAILED after {:g} min, and no other job of its type can start "
                        "meanwhile".format(_label(config),
                                           "missing" if idle is None else _ago(idle) + " old",
                                           stale_heartbeat_minutes),
                        "revert it (POST /api/jobConfigurations/{0}/revert, needs "
                        "F_PERFORM_MAINTENANCE) or `dhis2maint jobs cancel {0}`; if it comes back, "
                        "check the server log for the job".format(config.id), since=alive)
                    continue
            elif running is not None and str(config.job_type) not in running:
                add("stuck", "WARNING", config,
                    "{} is marked RUNNING but no {} process runs (a run that died, or a "
                    "restart; DHIS2 {} resets only enabled jobs at startup)".format(
                        _label(config), config.job_type, ".".join(map(str, minor))),
                    "disable and enable it (`dhis2maint jobs disable {0}` then `jobs enable {0}`) "
                    "or restart DHIS2".format(config.id), since=last)
                continue
            elif minor < (2, 37) and not enabled:
                add("stuck", "WARNING", config,
                    "{} is disabled but marked RUNNING (DHIS2 2.36 resets only enabled jobs "
                    "at startup)".format(_label(config)),
                    "enable it and let it run once, or set its jobstatus in the database",
                    since=last)
                continue
            if last is not None and minor >= (2, 37):  # lastExecuted = this run's start
                runtime = (now - last).total_seconds()
                usual = config.runtime_seconds
                limit = max_runtime_hours * 3600
                if usual:
                    limit = min(limit, max(3 * usual, usual + 600))
                if runtime > limit:
                    add("stuck", "WARNING", config,
                        "{} has been RUNNING for {} (usual runtime {}, limit {})".format(
                            _label(config), _ago(runtime),
                            config.last_runtime_execution or "unknown", _ago(limit)),
                        "follow it with `dhis2maint jobs show {0}`; if it makes no progress "
                        "cancel it{1}".format(
                            config.id, " (`dhis2maint jobs cancel {}`)".format(config.id)
                            if minor >= (2, 41) else
                            " (`dhis2maint jobs cancel --type {}`)".format(config.job_type)
                            if minor >= (2, 37) else " by restarting DHIS2"),
                        since=last)
            continue
        # -- disabled system job
        if not enabled:
            if config.configurable is False and str(config.job_type) not in (
                    "LEADER_ELECTION", "LEADER_RENEWAL"):
                add("disabled_system_job", "WARNING", config,
                    "system job {} is disabled; DHIS2 normally runs it".format(_label(config)),
                    "the API refuses to change system jobs ({}): set enabled=true for uid {} in "
                    "the jobconfiguration table, then restart DHIS2".format(
                        "HTTP 422" if minor < (2, 38) else "409", config.id))
            continue
        # -- overdue (Housekeeping itself: see scheduler_dead below)
        if config.id == _HOUSEKEEPING:
            continue
        if minor >= (2, 41):
            secs = seconds_to_next.get(str(config.id))
            if secs is not None:
                if secs < -60:
                    add("overdue", "SEVERE", config,
                        "{} was due {} ago and has not started (server's "
                        "secondsToNextExecutionTime {:.0f})".format(_label(config), _ago(secs),
                                                                   secs),
                        "another {} job may be RUNNING (see `dhis2maint jobs list --status "
                        "RUNNING`), this node may not be the leader, or the scheduler loop is "
                        "dead: check Housekeeping and the server log".format(config.job_type),
                        since=last)
                continue
            nxt = _naive(config.next_execution_time)
            if nxt is not None and (now - nxt).total_seconds() > 60:
                add("overdue", "SEVERE", config,
                    "{} was due at {} ({} ago by the server's clock) and has not "
                    "started".format(_label(config), nxt.isoformat(sep=" ", timespec="seconds"),
                                     _ago((now - nxt).total_seconds())),
                    "check for a RUNNING {} job and the scheduler (Housekeeping) in the "
                    "server log".format(config.job_type), since=nxt)
            continue
        period = cron_period(config.cron_expression, config.delay)
        if minor < (2, 37):
            nxt = _naive(config.next_execution_time)
            if nxt is not None and (now - nxt).total_seconds() > 3600:
                add("overdue", "WARNING", config,
                    "{} was due at {} ({} ago by the server's clock) and has not run".format(
                        _label(config), nxt.isoformat(sep=" ", timespec="seconds"),
                        _ago((now - nxt).total_seconds())),
                    "DHIS2 2.36 re-plans jobs only at startup: restart DHIS2 or run it now "
                    "with `dhis2maint jobs run {}`".format(config.id), since=nxt)
                continue
        if period and last is not None:
            gap = (now - last).total_seconds()
            if gap > 1.5 * period + 3600:
                add("overdue", "WARNING", config,
                    "{} last ran {} ago but is scheduled about every {} ({})".format(
                        _label(config), _ago(gap), _ago(period),
                        config.cron_expression or "delay {} s".format(config.delay)),
                    "runs were missed (downtime, or the scheduler stopped): run it now with "
                    "`dhis2maint jobs run {}` and check the server log".format(config.id),
                    since=last)
    # -- system jobs that should exist
    by_id = {c.id: c for c in jobs}
    names = {c.name for c in jobs}
    for uid, name, job_type, first, gone in SYSTEM_JOBS:
        if minor < first or (gone is not None and minor >= gone):
            continue
        present = uid in by_id if minor >= (2, 41) else (name in names or uid in by_id)
        if not present:
            critical = uid == _HOUSEKEEPING
            add("missing_system_job", "CRITICAL" if critical else "WARNING", None,
                "system job '{}' ({}, {}) is missing".format(name, job_type, uid),
                "DHIS2 re-creates it {}; if it stays missing, restart DHIS2 and read the "
                "server log".format("within 20 s (Housekeeping)" if minor >= (2, 41) and
                                    not critical else "at startup"))
    # -- the 2.41+ scheduler loop
    housekeeping = by_id.get(_HOUSEKEEPING) if minor >= (2, 41) else None
    if housekeeping is not None:
        hk_last = _naive(housekeeping.last_executed)
        idle = (now - hk_last).total_seconds() if hk_last else None
        if idle is None or idle > 300:
            add("scheduler_dead", "CRITICAL", housekeeping,
                "the scheduler loop looks dead: Housekeeping (every 20 s) last ran {}".format(
                    "never" if idle is None else _ago(idle) + " ago"),
                "no scheduled job will start: restart DHIS2 and look for JobScheduler errors "
                "in the server log", since=hk_last)
    # -- analytics tables
    if system_info is not None:
        raw = system_info.get("lastAnalyticsTableSuccess")
        when = _naive(raw)
        if when is None or when.year <= 1970:
            add("analytics_never", "WARNING", None,
                "the analytics tables have never been generated (lastAnalyticsTableSuccess "
                "{})".format("absent" if raw is None else raw),
                "run `dhis2maint refresh analytics` and schedule an ANALYTICS_TABLE job")
        else:
            age = (now - when).total_seconds()
            if age > analytics_max_age_hours * 3600:
                add("analytics_stale", "WARNING", None,
                    "the analytics tables are {} old (last success {}, limit {:g} h)".format(
                        _ago(age), when.isoformat(sep=" ", timespec="seconds"), analytics_max_age_hours),
                    "run `dhis2maint refresh analytics`; check the ANALYTICS_TABLE job with "
                    "`dhis2maint jobs list --type ANALYTICS_TABLE`", since=when)
    findings.sort(key=lambda f: (_SEVERITY_ORDER.get(f.severity, 9), f.kind, f.job_name or ""))
    return models.SchedulerHealth(server_version=".".join(map(str, version)), server_time=now,
                                  jobs_checked=len(jobs), findings=findings)


# --- the mixin --------------------------------------------------------------------------


def _tls_days_left(url: str, verify: Any, timeout: float) -> Tuple[str, str, Optional[str]]:
    """(status, detail, fix) for the server's TLS certificate."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        local = parts.hostname in ("localhost", "127.0.0.1", "::1")
        return ("skip" if local else "warn",
                "n/a: {} is http://, not TLS".format(parts.hostname),
                None if local else "use https:// so credentials are not sent in clear")
    if verify is False:
        return ("warn", "certificate not checked: TLS verification is off (--insecure)",
                "trust the server's CA (REQUESTS_CA_BUNDLE=/path/ca.pem) instead of turning "
                "checks off")
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    host, port = parts.hostname or "", parts.port or 443
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                cert = tls.getpeercert() or {}
    except ssl.SSLError as exc:
        return ("fail", "TLS failed: {}".format(getattr(exc, "reason", None) or exc),
                "renew the certificate or trust its CA (REQUESTS_CA_BUNDLE=/path/ca.pem)")
    except OSError as exc:
        return ("warn", "could not open a direct TLS connection to check the certificate "
                        "({}; a proxy?)".format(type(exc).__name__), None)
    not_after = cert.get("notAfter")
    if not not_after:
        return ("warn", "the certificate has no expiry date", None)
    days = (ssl.cert_time_to_seconds(str(not_after)) - time.time()) / 86400.0  # always a str
    if days < 0:
        return ("fail", "certificate expired {:.0f} days ago".format(-days),
                "renew the certificate")
    if days < 14:
        return ("warn", "certificate valid, expires in {:.0f} days".format(days),
                "renew the certificate soon")
    return ("pass", "certificate valid, expires in {:.0f} days".format(days), None)


#: The fix of a URL that is not DHIS2's API.
_WRONG_URL_FIX = ("check DHIS2_URL: it must be the DHIS2 server itself, with its context path "
                  "(e.g. https://host/dhis when DHIS2 lives under /dhis)")


if TYPE_CHECKING:
    import requests

    from ._typing import SessionTransport

    class _Transport(SessionTransport, requests.Session):
        """doctor() reads requests.Session's ``verify`` too."""
else:
    _Transport = object


class HealthMixin(_Transport):
    """``scheduler_health``, ``doctor`` and ``whoami`` of :class:`dhis2maint.Session`
    (mixed in; they use the session's transport helpers and SchedulerMixin)."""

    def _system_info(self, fields: str) -> Dict[str, Any]:
        params = {"fields": fields} if tuple(self.server_version[:2]) >= (2, 38) else None
        return cast(Dict[str, Any], self._json("GET", "system/info", params=params, expect=dict))

    def scheduler_health(self, now: Optional[datetime.datetime] = None,
                         max_runtime_hours: float = 6.0,
                         analytics_max_age_hours: float = 26.0) -> models.SchedulerHealth:
        """Is the scheduler healthy?  -> :class:`SchedulerHealth` with typed findings,
        worst first (see :func:`evaluate_scheduler` for the rules).

        Reads ``GET /api/system/info`` (the server's ``serverDate`` and
        ``lastAnalyticsTableSuccess``), ``GET /api/jobConfigurations``, and on
        2.41+ ``GET /api/scheduler`` (the server's own ``secondsToNextExecutionTime``)
        or on 2.37-2.40 ``GET /api/scheduling/running/types``.  ``now`` overrides
        the server's time (a naive datetime in the SERVER's zone); the client
        clock is never used.
        """
        info = self._system_info("version,serverDate,serverTimeZoneId,"
                                 "lastAnalyticsTableSuccess,databaseInfo")
        server_time = _naive(now) if now is not None else _naive(info.get("serverDate"))
        if server_time is None:
            raise InvalidResponseError("GET /api/system/info: no readable serverDate; pass "
                                       "now= (the server's local time)")
        version = self.server_version
        configs = self.list_job_configurations()
        entries = running = None
        minor = tuple(version[:2])
        if minor >= (2, 41):
            entries = self._json("GET", "scheduler", expect=list)
        elif minor >= (2, 37):
            running = self._json("GET", "scheduling/running/types", expect=list)
        return evaluate_scheduler(configs, server_time, version, scheduler_entries=entries,
                                  running_types=running, system_info=info,
                                  max_runtime_hours=max_runtime_hours,
                                  analytics_max_age_hours=analytics_max_age_hours)

    def whoami(self) -> models.UserInfo:
        """Who the session is logged in as: ``GET /api/me?fields=…`` (2.36: the username
        is ``userCredentials.username``) and, when the reply has no authorities,
        ``GET /api/me/authorities`` -> :class:`UserInfo`.  No credential is returned."""
        old = tuple(self.server_version[:2]) < (2, 38)
        fields = "id,displayName,userCredentials[username],authorities" if old else \
            "id,username,displayName,authorities"
        me = self._json("GET", "me", params={"fields": fields}, expect=dict)
        username = me.get("username")
        if not username and isinstance(me.get("userCredentials"), dict):
            username = me["userCredentials"].get("username")
        authorities = me.get("authorities")
        if not isinstance(authorities, list):
            authorities = self._json("GET", "me/authorities", expect=list)
        return models.UserInfo(id=me.get("id"), username=username,
                               display_name=me.get("displayName") or me.get("name"),
                               authorities=sorted(str(a) for a in authorities))

    def doctor(self, need: Iterable[str] = (),
               max_skew_seconds: float = 60.0) -> models.DoctorReport:
        """Check everything a nightly script depends on -> :class:`DoctorReport`: one
        :class:`DoctorCheck` (pass/warn/fail/skip + the fix) each for: the URL
        answers; TLS (days to certificate expiry; n/a for http://); the credentials
        are accepted; who the user is; the DHIS2 version is supported and what it
        lacks; the user's authorities per feature (``need``: feature names whose
        missing authority is a failure, not a warning -- see
        :data:`FEATURE_AUTHORITIES`); clock skew from the HTTP ``Date`` header; the
        scheduler health summary.  Never raises for a DHIS2 or network problem:
        that is a failed check.  Credentials never appear in the report.
        """
        need = list(need)
        authority_checks((), (2, 43), need)  # validates the names first
        checks: List[models.DoctorCheck] = []
        report = models.DoctorReport(url=self.base_url, checks=checks)

        def add(name: str, status: str, detail: str, fix: Optional[str] = None) -> None:
            checks.append(models.DoctorCheck(name, status, detail, fix))

        # reachable: any HTTP answer will do (GET /api/ping needs no login on 2.38+)
        sent = time.time()
        date_header = None
        try:
            response = self._send("GET", "system/ping")
            date_header = response.headers.get("Date")
            add("reachable", "pass", "{} answered in {:.0f} ms".format(
                self.base_url, (time.time() - sent) * 1000))
        except TransportError as exc:
            add("reachable", "fail", str(exc), "check DHIS2_URL, DNS, the firewall and that "
                                               "DHIS2 is up")
            return report
        except NotFound as exc:  # every DHIS2 answers /api/system/ping: a wrong URL (#21.5)
            add("url", "fail", "{} answered HTTP 404 for /api/system/ping: no DHIS2 API at this "
                               "URL".format(self.base_url), _WRONG_URL_FIX)
            return report
        except ApiError as exc:
            refused = exc.response
            date_header = refused.headers.get("Date") if refused is not None else None
            add("reachable", "pass", "{} answered (HTTP {})".format(self.base_url,
                                                                   exc.status_code))
        received = time.time()
        status, detail, fix = _tls_days_left(self.base_url, self.verify, self.timeout)
        add("tls", status, detail, fix)
        # credentials + who
        try:
            user = self.whoami()
        except AuthenticationError as exc:
            add("credentials", "fail", "DHIS2 refused the {} credentials: {}".format(
                self.auth_kind, exc.dhis2_message or "HTTP {}".format(exc.status_code)),
                AuthenticationError.hint)
            return report
        except (NotFound, InvalidResponseError, UnsupportedServerError) as exc:
            # not DHIS2 at this URL (a 404, another application): the URL is wrong,
            # not the credentials (#21.5)
            add("url", "fail", str(exc), _WRONG_URL_FIX)
            return report
        except Dhis2Error as exc:
            add("credentials", "fail", str(exc), None)
            return report
        add("credentials", "pass", "{} credentials accepted".format(self.auth_kind))
        add("user", "pass", "{} ({}), {} authorit{}{}".format(
            user.username or "?", user.display_name or "?", len(user.authorities),
            "y" if len(user.authorities) == 1 else "ies",
            ", superuser (ALL)" if user.superuser else ""))
        # version
        version = self.server_version
        minor = tuple(version[:2])
        text = ".".join(map(str, version))
        lacks = lacking_features(version)
        if SUPPORTED_VERSIONS[0] <= minor <= SUPPORTED_VERSIONS[1]:
            add("version", "pass" if not lacks else "warn",
                "DHIS2 {} is supported{}".format(text, "; it lacks: " + "; ".join(lacks)
                                                 if lacks else ""),
                "upgrade DHIS2 for the missing features" if lacks else None)
        else:
            add("version", "warn", "DHIS2 {} is outside the tested range 2.36-2.43".format(text),
                "expect differences; report what breaks")
        for check in authority_checks(user.authorities, version, need):
            checks.append(check)
        # clock skew
        skew = clock_skew(date_header, sent, received)
        if skew is None:
            add("clock", "skip", "no Date header in DHIS2's answer (a proxy removed it?)")
        elif abs(skew) <= max(2.0, max_skew_seconds):
            add("clock", "pass", "server clock {:+.0f} s from this machine's".format(skew))
        else:
            add("clock", "warn" if abs(skew) < 900 else "fail",
                "server clock is {} {} this machine's".format(_ago(skew),
                                                              "ahead of" if skew > 0 else
                                                              "behind"),
                "sync both clocks with NTP (job times are compared in server time, but logs "
                "and tokens are not)")
        # scheduler
        try:
            health = self.scheduler_health()
        except Dhis2Error as exc:
            add("scheduler", "fail", "could not read the scheduler: {}".format(exc), None)
            return report
        worst = health.worst
        kinds: Dict[str, int] = {}
        for finding in health.findings:
            kinds[finding.kind] = kinds.get(finding.kind, 0) + 1
        summary = "{} jobs, {} finding{}{}".format(
            health.jobs_checked, len(health.findings), "" if len(health.findings) == 1 else "s",
            " ({})".format(", ".join("{} {}".format(n, k) for k, n in sorted(kinds.items())))
            if kinds else "")
        if worst in ("SEVERE", "CRITICAL"):
            add("scheduler", "fail", summary + ", worst " + worst, "run `dhis2maint jobs health`")
        elif worst == "WARNING":
            add("scheduler", "warn", summary, "run `dhis2maint jobs health`")
        else:
            add("scheduler", "pass", summary)
        return report
