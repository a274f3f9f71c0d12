"""Scheduler health: :class:`HealthMixin` of :class:`Session`, and the pure
functions behind it (testable without HTTP).

* :func:`evaluate_scheduler` turns fetched data (job configurations, the server's
  own time, ``/api/scheduler`` entries on 2.41+, the running job types on
  2.37-2.40, ``/api/system/info``) into :class:`HealthFinding` items.  Every job
  time is compared with the SERVER's time (``serverDate``): DHIS2 writes times in
  its own zone without saying which, so the client clock is never used.  What to
  do about each is data (``follow_ups``); see :mod:`dhis2maint.followups`.
* :func:`cron_period` tells how often a schedule fires.

``doctor``, ``whoami`` and the authority table live in :mod:`dhis2maint.doctor`
(their names are importable from here too, as before).
"""
from __future__ import annotations  # models are built on first use, not to annotate

import datetime
import re
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple, cast

from . import convert, followups, models, versions
from .doctor import (FEATURE_AUTHORITIES, SUPPORTED_VERSIONS, authority_checks, clock_skew,
                     lacking_features)
from .doctor import ago as _ago
from .errors import InvalidResponseError

__all__ = ["HealthMixin", "evaluate_scheduler", "authority_checks", "clock_skew",
           "lacking_features", "cron_period", "FEATURE_AUTHORITIES", "SYSTEM_JOBS",
           "SUPPORTED_VERSIONS"]

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
    def has(feature: str) -> bool:
        return versions.supports(version, feature)

    now = _naive(server_time)
    if now is None:
        raise ValueError("server_time is required (the server's serverDate)")
    findings: List[models.HealthFinding] = []
    jobs = [c for c in configs if not (has("run_once_job_rows") and c.is_run_once)]
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
            advice: str = "", follow_ups: Tuple[models.FollowUp, ...] = (),
            since: Any = None, codes: Any = None) -> None:
        findings.append(models.HealthFinding(
            kind=kind, severity=severity, message=message,
            what_to_do=followups.python_text(follow_ups, advice),
            job_id=config.id if config else None, job_name=config.name if config else None,
            job_type=config.job_type if config else None, error_codes=list(codes or []),
            since=since, follow_ups=follow_ups, advice=advice))

    def step(action: str, note: str, **args: Any) -> models.FollowUp:
        return models.FollowUp(action, tuple(args.items()), note)

    def running_ones(config: models.JobConfiguration, note: str) -> models.FollowUp:
        return step("list_job_configurations", note, job_type=str(config.job_type),
                    status="RUNNING")

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
                "read the server log{}".format(
                    " and GET /api/jobConfigurations/{}/progress".format(config.id)
                    if has("job_progress") else ""),
                (step("get_job_configuration", "see why", job_id=config.id),
                 step("run_job_configuration", "run it again", job_id=config.id, wait=True)),
                since=last, codes=codes)
        # -- stuck or long-running
        if status == "RUNNING":
            if has("job_heartbeat"):
                alive = _naive(config.last_alive)
                idle = (now - alive).total_seconds() if alive else None
                if idle is None or idle > stale_heartbeat_minutes * 60:
                    add("stuck", "SEVERE", config,
                        "{} is RUNNING but its heartbeat (lastAlive) is {}; DHIS2 marks it "
                        "FAILED after {:g} min, and no other job of its type can start "
                        "meanwhile".format(_label(config),
                                           "missing" if idle is None else _ago(idle) + " old",
                                           stale_heartbeat_minutes),
                        "or revert it (POST /api/jobConfigurations/{}/revert, needs "
                        "F_PERFORM_MAINTENANCE); if it comes back, check the server log for "
                        "the job".format(config.id),
                        (step("cancel_job", "cancel it", job_id=config.id),), since=alive)
                    continue
            elif running is not None and str(config.job_type) not in running:
                add("stuck", "WARNING", config,
                    "{} is marked RUNNING but no {} process runs (a run that died, or a "
                    "restart; DHIS2 {} resets only enabled jobs at startup)".format(
                        _label(config), config.job_type, ".".join(map(str, version[:2]))),
                    "or restart DHIS2",
                    (step("disable_job_configuration", "disable it", job_id=config.id),
                     step("enable_job_configuration", "then enable it", job_id=config.id)),
                    since=last)
                continue
            elif not has("running_job_types") and not enabled:
                add("stuck", "WARNING", config,
                    "{} is disabled but marked RUNNING (DHIS2 2.36 resets only enabled jobs "
                    "at startup)".format(_label(config)),
                    "let it run once, or set its jobstatus in the database",
                    (step("enable_job_configuration", "enable it", job_id=config.id),),
                    since=last)
                continue
            if last is not None and has("last_executed_is_start"):
                runtime = (now - last).total_seconds()
                usual = config.runtime_seconds
                limit = max_runtime_hours * 3600
                if usual:
                    limit = min(limit, max(3 * usual, usual + 600))
                if runtime > limit:
                    stop = "if it makes no progress, cancel it"
                    steps = [step("get_job_configuration", "follow it", job_id=config.id)]
                    if has("job_cancel_by_id"):
                        steps.append(step("cancel_job", stop, job_id=config.id))
                    elif has("job_cancel_by_type"):
                        steps.append(step("cancel_job", stop, job_type=str(config.job_type)))
                    add("stuck", "WARNING", config,
                        "{} has been RUNNING for {} (usual runtime {}, limit {})".format(
                            _label(config), _ago(runtime),
                            config.last_runtime_execution or "unknown", _ago(limit)),
                        "" if len(steps) > 1 else stop + " by restarting DHIS2",
                        tuple(steps), since=last)
            continue
        # -- disabled system job
        if not enabled:
            if config.configurable is False and str(config.job_type) not in (
                    "LEADER_ELECTION", "LEADER_RENEWAL"):
                add("disabled_system_job", "WARNING", config,
                    "system job {} is disabled; DHIS2 normally runs it".format(_label(config)),
                    "the API refuses to change system jobs ({}): in the database, UPDATE "
                    "jobconfiguration SET enabled = true WHERE uid = '{}', then restart "
                    "DHIS2".format("409" if has("system_job_conflict_409") else "HTTP 422",
                                   config.id))
            continue
        # -- overdue (Housekeeping itself: see scheduler_dead below)
        if config.id == _HOUSEKEEPING:
            continue
        if has("scheduler_seconds_to_next"):
            secs = seconds_to_next.get(str(config.id))
            if secs is not None:
                if secs < -60:
                    add("overdue", "SEVERE", config,
                        "{} was due {} ago and has not started (server's "
                        "secondsToNextExecutionTime {:.0f})".format(_label(config), _ago(secs),
                                                                   secs),
                        "else this node may not be the leader, or the scheduler loop is dead: "
                        "check Housekeeping and the server log",
                        (running_ones(config, "see whether another {} job is RUNNING".format(
                            config.job_type)),), since=last)
                continue
            nxt = _naive(config.next_execution_time)
            if nxt is not None and (now - nxt).total_seconds() > 60:
                add("overdue", "SEVERE", config,
                    "{} was due at {} ({} ago by the server's clock) and has not "
                    "started".format(_label(config), nxt.isoformat(sep=" ", timespec="seconds"),
                                     _ago((now - nxt).total_seconds())),
                    "check the scheduler (Housekeeping) in the server log",
                    (running_ones(config, "look for a RUNNING {} job".format(config.job_type)),),
                    since=nxt)
            continue
        period = cron_period(config.cron_expression, config.delay)
        if not has("next_execution_replanned"):
            nxt = _naive(config.next_execution_time)
            if nxt is not None and (now - nxt).total_seconds() > 3600:
                add("overdue", "WARNING", config,
                    "{} was due at {} ({} ago by the server's clock) and has not run".format(
                        _label(config), nxt.isoformat(sep=" ", timespec="seconds"),
                        _ago((now - nxt).total_seconds())),
                    "or restart DHIS2 (DHIS2 2.36 re-plans jobs only at startup)",
                    (step("run_job_configuration", "run it now", job_id=config.id),), since=nxt)
                continue
        if period and last is not None:
            gap = (now - last).total_seconds()
            if gap > 1.5 * period + 3600:
                add("overdue", "WARNING", config,
                    "{} last ran {} ago but is scheduled about every {} ({})".format(
                        _label(config), _ago(gap), _ago(period),
                        config.cron_expression or "delay {} s".format(config.delay)),
                    "check the server log",
                    (step("run_job_configuration", "runs were missed (downtime, or the "
                          "scheduler stopped): run it now", job_id=config.id),), since=last)
    # -- system jobs that should exist
    by_id = {c.id: c for c in jobs}
    names = {c.name for c in jobs}
    by_uid = has("system_jobs_by_uid")
    for uid, name, job_type, first, gone in SYSTEM_JOBS:
        if not versions.within(version, first, gone):
            continue
        present = uid in by_id if by_uid else (name in names or uid in by_id)
        if not present:
            critical = uid == _HOUSEKEEPING
            add("missing_system_job", "CRITICAL" if critical else "WARNING", None,
                "system job '{}' ({}, {}) is missing".format(name, job_type, uid),
                "DHIS2 re-creates it {}; if it stays missing, restart DHIS2 and read the "
                "server log".format("within 20 s (Housekeeping)" if by_uid and not critical
                                    else "at startup"))
    # -- the 2.41+ scheduler loop
    housekeeping = by_id.get(_HOUSEKEEPING) if by_uid else None
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
                "schedule an ANALYTICS_TABLE job",
                (step("refresh_analytics", "build them"),))
        else:
            age = (now - when).total_seconds()
            if age > analytics_max_age_hours * 3600:
                add("analytics_stale", "WARNING", None,
                    "the analytics tables are {} old (last success {}, limit {:g} h)".format(
                        _ago(age), when.isoformat(sep=" ", timespec="seconds"), analytics_max_age_hours),
                    "",
                    (step("refresh_analytics", "rebuild them"),
                     step("list_job_configurations", "check the ANALYTICS_TABLE job",
                          job_type="ANALYTICS_TABLE")), since=when)
    findings.sort(key=lambda f: (_SEVERITY_ORDER.get(f.severity, 9), f.kind, f.job_name or ""))
    return models.SchedulerHealth(server_version=".".join(map(str, version)), server_time=now,
                                  jobs_checked=len(jobs), findings=findings)


# --- the mixin --------------------------------------------------------------------------


if TYPE_CHECKING:
    from ._typing import SessionTransport as _Transport
else:
    _Transport = object


class HealthMixin(_Transport):
    """``scheduler_health`` of :class:`dhis2maint.Session` (mixed in; it uses the
    session's transport helpers and ``list_job_configurations``)."""

    def _system_info(self, fields: str) -> Dict[str, Any]:
        params = {"fields": fields} if versions.supports(self.server_version,
                                                         "system_info_fields") else None
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
            raise InvalidResponseError("GET /api/system/info: no readable serverDate; give "
                                       "the server's local time as `now`")
        version = self.server_version
        configs = self.list_job_configurations()
        entries = running = None
        if versions.supports(version, "scheduler_seconds_to_next"):
            entries = self._json("GET", "scheduler", expect=list)
        elif versions.supports(version, "running_job_types"):
            running = self._json("GET", "scheduling/running/types", expect=list)
        return evaluate_scheduler(configs, server_time, version, scheduler_entries=entries,
                                  running_types=running, system_info=info,
                                  max_runtime_hours=max_runtime_hours,
                                  analytics_max_age_hours=analytics_max_age_hours)
