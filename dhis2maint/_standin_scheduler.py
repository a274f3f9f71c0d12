"""The stand-in's scheduler: job configurations (/api/jobConfigurations, run-once jobs
included), /api/scheduling, /api/scheduler, validation results -- the state the
scheduler and health features read.

Part of :mod:`dhis2maint.testing` (standard library only).  ``Dhis2StandIn.scheduler``
is a :class:`SchedulerState`; its routes are on the one registry (``_standin_routes``),
registered with :func:`_scheduled`, which calls them on the stand-in's scheduler under
its lock with ``now`` on the server's clock.

The default state is an admin's bad morning, per version (DHIS2 source shapes,
``scheduler-and-health.md``): DHIS2's system jobs (``core/startup/SchedulerStart.java``
@2.36/@2.38, ``api/scheduling/JobType.java@2.41+``), a job whose last run
FAILED (with ``errorCodes`` on 2.41+), a stuck RUNNING analytics job (2.41+: a
45-minute-old heartbeat; 2.37-2.40: a RUNNING row no process backs; 2.36: a
disabled job left RUNNING), a disabled system job, an overdue resource-table
job, analytics tables three days old and 120 validation results.
``srv.scheduler.reset(healthy=True)`` gives a scheduler with nothing wrong.
"""
import collections
import re
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

from ._standin_http import (_HttpError, _Request, _Response, _filter_fields, _fmt_hms, _fmt_time, _od,
                            _uid_from, _web_message)
from ._standin_routes import ANY, _Api, route

__all__ = ["SchedulerState"]

_CRON = re.compile(r"^[0-9*?/,\-LW#A-Za-z]+$")
_DAY = 86400.0

# (uid, name, job type, cron or None, delay or None, first minor)
_SYSTEM_JOBS = (
    ("pd6O228pqr0", "File resource clean up", "FILE_RESOURCE_CLEANUP", "0 0 2 ? * *", None, 36),
    ("BFa3jDsbtdO", "Data statistics", "DATA_STATISTICS", "0 0 2 ? * *", None, 36),
    ("Js3vHn2AVuG", "Validation result notification", "VALIDATION_RESULTS_NOTIFICATION",
     "0 0 7 ? * *", None, 36),
    ("sHMedQF7VYa", "Credentials expiry alert", "CREDENTIALS_EXPIRY_ALERT", "0 0 2 ? * *", None, 36),
    ("YvAwAmrqAtN", "Dataset notification", "DATA_SET_NOTIFICATION", "0 0 2 ? * *", None, 36),
    ("uwWCT2BMmlq", "Remove expired or used reserved values",
     "REMOVE_USED_OR_EXPIRED_RESERVED_VALUES", "0 0 2 ? * *", None, 36),
    ("fUWM1At1TUx", "User account expiry alert", "ACCOUNT_EXPIRY_ALERT", "0 0 2 ? * *", None, 37),
    ("vt21671bgno", "System version update check notification", "SYSTEM_VERSION_UPDATE_CHECK",
     "17 41 4 ? * *", None, 38),
    ("DHIS2rocks1", "Housekeeping", "HOUSEKEEPING", None, 20, 41),
    ("D2datatrim8", "Data value trim", "DATA_VALUE_TRIM", "0 0 1 ? * *", None, 41),
)
_SYSTEM_TYPES = frozenset(j[2] for j in _SYSTEM_JOBS) | {"LEADER_ELECTION"}

# api/scheduling/JobType.java per branch: the types /jobTypes lists (scheduler-and-health.md 2.6)
_TYPES_236 = ("DATA_INTEGRITY RESOURCE_TABLE ANALYTICS_TABLE CONTINUOUS_ANALYTICS_TABLE DATA_SYNC "
              "TRACKER_PROGRAMS_DATA_SYNC EVENT_PROGRAMS_DATA_SYNC META_DATA_SYNC "
              "SEND_SCHEDULED_MESSAGE PROGRAM_NOTIFICATIONS MONITORING PUSH_ANALYSIS PREDICTOR "
              "DISABLE_INACTIVE_USERS").split()


def _job_types(minor: int) -> List[str]:
    types: List[str] = list(_TYPES_236)
    if minor >= 38:
        types += ["TRACKER_SEARCH_OPTIMIZATION", "TEST"]
    if minor >= 40:
        types += ["DATA_INTEGRITY_DETAILS", "AGGREGATE_DATA_EXCHANGE", "MATERIALIZED_SQL_VIEW_UPDATE"]
    if minor >= 41:
        types += ["HTML_PUSH_ANALYTICS", "LOCK_EXCEPTION_CLEANUP"]
    if minor >= 42:
        types = [t for t in types if t not in ("TRACKER_PROGRAMS_DATA_SYNC", "EVENT_PROGRAMS_DATA_SYNC")]
        types += ["TRACKED_ENTITY_DATA_SYNC", "SINGLE_EVENT_DATA_SYNC"]
    if minor >= 43:
        types = [t for t in types if t not in ("PUSH_ANALYSIS", "TRACKER_SEARCH_OPTIMIZATION")]
        types += ["TRACKER_TRIGRAM_INDEX_MAINTENANCE"]
    return types


_M = TypeVar("_M", bound=Callable[..., Any])


def _scheduled(methods: str, pattern: str, feature: Optional[str] = None) -> Callable[[_M], _M]:
    """:func:`~dhis2maint._standin_routes.route` for a :class:`SchedulerState` method
    ``fn(self, api, req, now, *groups)``: it runs on the stand-in's scheduler, under its
    lock, with ``now`` the server-local clock (:meth:`SchedulerState.local`)."""
    def register(fn: _M) -> _M:
        def handler(api: _Api, req: _Request, *groups: Optional[str]) -> _Response:
            state: SchedulerState = api.owner.scheduler
            with state.lock:
                answer: _Response = fn(state, api, req, state.local(req.now), *groups)
                return answer
        route(methods, pattern, feature=feature)(handler)
        return fn
    return register


def _period_of(cron: Optional[str], delay: Optional[int]) -> float:
    if delay:
        return float(delay)
    fields = (cron or "").split()
    if len(fields) == 6 and fields[2] in ("*",) or len(fields) == 6 and "/" in fields[2]:
        return 3600.0
    if len(fields) == 6 and fields[5] not in ("*", "?"):
        return 7 * _DAY
    return _DAY


class SchedulerState(object):
    """Job configurations and friends of one stand-in.  Knobs tests may set:

    ``zone_offset``  seconds the server's local time (serverDate, job times) is ahead of
                     the client's -- a server in another time zone (no HTTP Date change);
    ``clock_skew``   seconds the server's clock is wrong by (Date header too);
    ``fail_next_run``  the next POST …/execute run ends FAILED (2.41+: errorCodes set).
    """

    def __init__(self, owner: Any) -> None:
        self.owner = owner
        self.minor = owner._minor
        self.lock = threading.RLock()
        self.zone_offset = 0.0
        self.clock_skew = 0.0
        self.fail_next_run = False
        self.reset()

    # -- state ---------------------------------------------------------------------
    def local(self, now: float) -> float:
        """Server-local 'now' (what serverDate shows) for the real epoch `now`."""
        return now + self.clock_skew + self.zone_offset

    def reset(self, healthy: bool = False) -> None:
        """The default bad-morning state, or with healthy=True nothing wrong."""
        with self.lock:
            t = self.local(time.time())
            self.t0 = t
            self.jobs: Dict[str, Dict[str, Any]] = collections.OrderedDict()
            for uid, name, job_type, cron, delay, first in _SYSTEM_JOBS:
                if self.minor < first:
                    continue
                self._add(uid, name, job_type, cron, delay, configurable=False,
                          last=t - 2 * 3600, runtime=1.5)
            self._add("UsrMonitor1", "Morning monitoring", "MONITORING", "0 0 6 ? * *",
                      params={"relativeStart": -7, "relativeEnd": 0, "sendNotifications": True,
                              "persistResults": True}, last=t - 3600, runtime=42.0)
            self._add("UsrPredict1", "Weekly predictors", "PREDICTOR", "0 0 5 ? * MON",
                      params={"relativeStart": -30, "relativeEnd": 0, "predictors": []},
                      enabled=False, last=t - 9 * _DAY, runtime=30.0)
            self.analytics_success: Optional[float] = t - 5 * 3600
            if not healthy:
                self._add("UsrMetaSyn1", "Metadata sync", "META_DATA_SYNC", "0 30 0 ? * *",
                          params={"dataValuesPageSize": 10000}, last=t - 8 * 3600, runtime=12.0,
                          status="FAILED", codes="E5002 E7600")
                stuck_enabled = self.minor >= 37
                self._add("UsrAnalyt1c", "Nightly analytics", "ANALYTICS_TABLE", "0 0 3 ? * *",
                          params={"lastYears": 2, "skipResourceTables": False},
                          last=t - 7 * 3600, runtime=3 * 3600.0 + 12.5,
                          running=True, enabled=stuck_enabled, alive=t - 45 * 60)
                self._add("UsrResTab1e", "Resource tables", "RESOURCE_TABLE", "0 0 1 ? * *",
                          last=t - 3 * _DAY - 600, runtime=95.0)
                self.jobs["YvAwAmrqAtN"]["enabled"] = False
                self.analytics_success = t - 3 * _DAY
            else:
                self._add("UsrAnalyt1c", "Nightly analytics", "ANALYTICS_TABLE", "0 0 3 ? * *",
                          params={"lastYears": 2, "skipResourceTables": False},
                          last=t - 4 * 3600, runtime=3 * 3600.0 + 12.5)
            self.validation_results = self._validation_results(t)

    def _add(self, uid: str, name: str, job_type: str, cron: Optional[str],
             delay: Optional[int] = None, configurable: bool = True, params: Any = None,
             enabled: bool = True, last: Optional[float] = None, runtime: Optional[float] = None,
             status: str = "COMPLETED", codes: Optional[str] = None, running: bool = False,
             alive: Optional[float] = None) -> None:
        self.jobs[uid] = {
            "id": uid, "name": name, "jobType": job_type, "cron": cron, "delay": delay,
            "configurable": configurable, "params": params, "enabled": enabled,
            "created": self.t0 - 400 * _DAY, "updated": self.t0 - 30 * _DAY,
            "last": last, "runtime": runtime, "status": status if last else "NOT_STARTED",
            "codes": codes if self.minor >= 41 else None, "running": running, "alive": alive,
            "run": None, "executedBy": None,
        }

    def _validation_results(self, t: float) -> List[Dict[str, Any]]:
        rules = [("Vr1SdY8cL8r", "ANC 1 >= ANC 2", "HIGH"), ("Vr2Sn9xB0pQ", "Measles <= BCG", "MEDIUM"),
                 ("Vr3Ko2wZ7eT", "Stock in >= stock out", "LOW")]
        units = [("ImspTQPwCqd", "Sierra Leone"), ("O6uvpzGd5pu", "Bo"), ("fdc6uOvgoji", "Bombali")]
        periods = ["202401", "202402", "202403", "202404"]
        out = []
        for i in range(120):
            rule = rules[i % 3]
            unit = units[(i // 3) % 3]
            out.append({"id": 1000 + i, "rule": rule, "unit": unit, "period": periods[(i // 9) % 4],
                        "left": float(10 + i % 7), "right": float(20 + i % 5),
                        "sent": i % 4 == 0, "created": t - _DAY * (1 + i % 40)})
        return out

    # -- the run state machine ---------------------------------------------------
    def _settle(self, job: Dict[str, Any], now: float) -> None:
        run = job["run"]
        if run is None:
            return
        start, end, outcome = run
        if now < start:
            return
        if now < end and outcome != "STOPPED":
            job["running"] = True
            job["alive"] = now
            if self.minor >= 37:
                job["last"] = start
            return
        job["running"] = False
        job["run"] = None
        job["alive"] = None
        job["status"] = outcome
        job["last"] = end if self.minor < 37 else start
        job["finished"] = end
        job["runtime"] = end - start
        if self.minor >= 41:
            job["codes"] = "E7600" if outcome == "FAILED" else ""

    def _view(self, job: Dict[str, Any], now: float) -> "collections.OrderedDict[str, Any]":
        """A job as /api/jobConfigurations serialises it on this version."""
        minor = self.minor
        self._settle(job, now)
        running = job["running"]
        last, cron, delay = job["last"], job["cron"], job["delay"]
        period = _period_of(cron, delay)
        if job["id"] == "DHIS2rocks1" and not getattr(self, "scheduler_dead", False):
            last = now - (now % 20.0)
        if minor >= 41:  # JobTrigger: from lastExecuted (+1 s), may be in the past
            base = last if last is not None else now - 4 * 3600
            nxt: Optional[float] = base + period
            scheduling_type = "FIXED_DELAY" if delay else "CRON"
        elif minor >= 37:  # next fire after now; null without cron
            if cron:
                ref = last if last is not None else now
                nxt = ref + period * (int((now - ref) // period) + 1)
            else:
                nxt = None
            scheduling_type = "FIXED_DELAY" if job["jobType"] == "CONTINUOUS_ANALYTICS_TABLE" else "CRON"
        else:  # 2.36: persisted at run start/end and startup
            nxt = (last + period) if last is not None else None
            scheduling_type = "FIXED_DELAY" if job["jobType"] == "CONTINUOUS_ANALYTICS_TABLE" else "CRON"
        if running:
            status = "RUNNING"
        elif not job["enabled"] and (minor < 38 or minor >= 41):
            status = "DISABLED"
        else:
            status = "SCHEDULED"
        last_status = job["status"]
        runtime = None
        if job.get("runtime") is not None and not (minor >= 41 and running):
            runtime = _fmt_hms(job["runtime"], 2)
        out = _od(("name", job["name"]), ("id", job["id"]), ("displayName", job["name"]),
                  ("created", _fmt_time(job["created"])), ("lastUpdated", _fmt_time(job["updated"])),
                  ("jobType", job["jobType"]), ("cronExpression", cron), ("delay", delay),
                  ("schedulingType", scheduling_type), ("enabled", job["enabled"]),
                  ("configurable", job["configurable"]), ("leaderOnlyJob", True),
                  ("jobStatus", status), ("lastExecutedStatus", last_status),
                  ("lastExecuted", _fmt_time(last) if last is not None else None),
                  ("lastRuntimeExecution", runtime),
                  ("nextExecutionTime", _fmt_time(nxt) if nxt is not None else None),
                  ("jobParameters", job["params"]))
        if minor >= 41:
            out["lastFinished"] = _fmt_time(job.get("finished") or (last + (job["runtime"] or 0))) \
                if last is not None and not running else None
            if running and job.get("alive") is not None:
                out["lastAlive"] = _fmt_time(job["alive"])
            if job["codes"] is not None:
                out["errorCodes"] = job["codes"]
            if cron and nxt is not None:  # always set on 2.41+
                out["maxDelayedExecutionTime"] = _fmt_time(nxt + 4 * 3600)
            if job.get("executedBy"):
                out["executedBy"] = job["executedBy"]
                out["userUid"] = job["executedBy"]
        return collections.OrderedDict((k, v) for k, v in out.items() if v is not None)

    # -- job configurations -------------------------------------------------------------
    @_scheduled("GET", r"jobConfigurations")
    def _list(self, api: _Api, req: _Request, now: float) -> _Response:
        items = [self._view(j, now) for j in self.jobs.values()]
        if self.minor >= 41:  # ad-hoc jobs are rows too (schedulingType ONCE_ASAP)
            state = api.state
            with state.lock:
                for run in list(state.jobs.values()):
                    running = run.busy(req.now) and run.start is not None and run.start <= req.now
                    items.append(_od(("name", run.name), ("id", run.id), ("jobType", run.job_type),
                                     ("schedulingType", "ONCE_ASAP"), ("enabled", not run.finished(req.now)),
                                     ("configurable", False),
                                     ("jobStatus", "RUNNING" if running
                                      else "DISABLED" if run.finished(req.now) else "NOT_STARTED"),
                                     ("lastExecutedStatus", ("FAILED" if run.failed else "COMPLETED")
                                      if run.finished(req.now) else "NOT_STARTED")))
        fields = req.fields()
        if fields is None and req.arg("fields") is None:
            items = [_od(("id", i["id"]), ("displayName", i.get("displayName") or i["name"]))
                     for i in items]  # Preset.ID_NAME: the list's default fields
        elif fields:
            items = [collections.OrderedDict((k, v) for k, v in i.items() if k in fields) for i in items]
        return api.listing(req, "jobConfigurations", items)

    def _job(self, uid: str) -> Dict[str, Any]:
        job = self.jobs.get(uid)
        if job is None:
            if self.minor >= 40:
                raise _HttpError(404, "JobConfiguration with id %s could not be found." % uid,
                                 error_code="E1005")
            raise _HttpError(404, "Object not found for uid: %s" % uid)
        return job

    @_scheduled("GET", r"jobConfigurations/jobTypes")
    def _job_types_route(self, api: _Api, req: _Request, now: float) -> _Response:
        return _Response.json({"jobTypes": [self._type_info(t) for t in _job_types(self.minor)]})

    @_scheduled(ANY, r"jobConfigurations/([^/]+)(?:/([a-z]+))?")
    def _one(self, api: _Api, req: _Request, now: float, uid: str,
             action: Optional[str]) -> _Response:
        m, method = self.minor, req.method
        if action is None:
            if uid not in self.jobs and method == "GET":
                return _run_once_job(api, req, uid)
            if method == "GET":
                out = self._view(self._job(uid), now)
                fields = req.fields()
                if fields:
                    out = collections.OrderedDict((k, v) for k, v in out.items() if k in fields)
                return _Response.json(out)
            if method == "PUT":
                return self._update(api, req, now, uid)
            if method == "DELETE":
                return self._delete(api, req, uid)
            if method == "PATCH" and m < 41:
                return self._patch(api, req, uid)
            raise _HttpError(405, "Request method '%s' is not supported" % method)
        if action == "execute" and (method == "POST" or (method == "GET" and m < 37)):
            return self._execute(api, req, now, uid)
        if action in ("enable", "disable") and method == "POST" and m >= 38:
            job = self._job(uid)
            if not job["configurable"]:
                raise _HttpError(409, "Job %s is a system job that cannot be modified." % uid)
            job["enabled"] = action == "enable"
            return _Response.empty(204)
        if action == "cancel" and method == "POST" and m >= 41:
            job = self._job(uid)
            auths = set(api.owner.authorities_of(req.user))
            if not auths.intersection(("ALL", "F_PERFORM_MAINTENANCE")) and \
                    job.get("executedBy") != _uid_from("user", req.user):
                raise _HttpError(403, "User has no access to JobConfiguration:%s" % uid, error_code="E1006")
            self._settle(job, now)
            if job["running"]:
                self._stop(job, now)
            return _Response.empty(204)
        raise _HttpError(404, "No endpoint %s /api/%s" % (method, req.path[5:]))

    def _stop(self, job: Dict[str, Any], now: float) -> None:
        start = job["run"][0] if job["run"] else (job["last"] or now)
        job["run"] = (start, now, "STOPPED")
        job["running"] = False
        self._settle(job, now)
        job["status"] = "STOPPED"

    def _execute(self, api: _Api, req: _Request, now: float, uid: str) -> _Response:
        m = self.minor
        job = self.jobs.get(uid)
        if job is None:
            if m < 37:  # no null check before checkConfigurable (JobConfigurationController@2.36:96-98)
                raise _HttpError(500, "java.lang.NullPointerException")
            job = self._job(uid)  # raises the 404
        if m < 37 and not job["configurable"]:
            raise _HttpError(403, "Job %s is a system job that cannot be executed." % uid)
        self._settle(job, now)
        report = _od(("klass", "org.hisp.dhis.scheduling.JobConfiguration"), ("index", 0), ("errorReports", []))
        if job["running"]:
            if m >= 41:
                raise _HttpError(409, "Job is already running.")
            report["errorReports"] = [_od(("message", "Failed to execute job: `%s`." % job["name"]),
                                          ("mainKlass", "org.hisp.dhis.scheduling.JobConfiguration"),
                                          ("errorCode", "E7006"))]
            return _Response.json(report)
        if not job["enabled"]:
            if m >= 41:
                raise _HttpError(409, "Failed to transition job into ONCE_ASAP state.")
            return _Response.json(report)  # accepted, nothing runs (DefaultJobInstance@2.36:78-81)
        start = now + (0.2 if m >= 41 else 0.0)
        outcome = "FAILED" if self.fail_next_run else "COMPLETED"
        self.fail_next_run = False
        job["run"] = (start, start + float(self.owner.job_seconds), outcome)
        return _Response.json(report)

    def _require_admin(self, api: _Api, req: _Request, verb: str) -> None:
        auths = set(api.owner.authorities_of(req.user))
        if not auths.intersection(("ALL", "F_SCHEDULING_ADMIN")):
            raise _HttpError(403, "You don't have the proper permissions to %s this object." % verb)

    def _validate(self, body: Dict[str, Any], uid: str,
                  exclude: Optional[str] = None) -> List[Dict[str, Any]]:
        errors: List[Dict[str, Any]] = []
        cron, delay, job_type = body.get("cronExpression"), body.get("delay"), body.get("jobType")

        def err(code: str, message: str) -> None:
            errors.append(_od(("message", message), ("mainKlass", "org.hisp.dhis.scheduling.JobConfiguration"),
                              ("errorCode", code), ("errorProperty", "cronExpression")))

        uses_delay = (body.get("schedulingType") == "FIXED_DELAY" or (delay and not cron)) if self.minor >= 41 \
            else job_type == "CONTINUOUS_ANALYTICS_TABLE"
        if uses_delay:
            if not delay:
                err("E7007", "Delay must be not null for job with scheduling type FIXED_DELAY: `%s`" % uid)
        elif not cron:
            err("E7004", "Cron expression must be not null for job with scheduling type CRON: `%s`" % uid)
        elif len(str(cron).split()) != 6 or not all(_CRON.match(p) for p in str(cron).split()):
            err("E7005", "Cron expression is invalid: `{0}`")  # no argument passed (hook@2.42:197)
        else:
            for other in self.jobs.values():
                if other["id"] != exclude and other["jobType"] == job_type and other["cron"] == cron:
                    err("E7000", "Job of same type already scheduled with cron expression: `%s`" % cron)
        return errors

    def _conflict(self, errors: List[Dict[str, Any]], uid: str) -> _Response:
        report = _od(("responseType", "ObjectReport"), ("uid", uid),
                     ("klass", "org.hisp.dhis.scheduling.JobConfiguration"), ("errorReports", errors))
        return _Response.json(_web_message(409, "One or more errors occurred, please see full details in "
                                                "import report.", status="ERROR", response=report), 409)

    @_scheduled("POST", r"jobConfigurations")
    def _create(self, api: _Api, req: _Request, now: float) -> _Response:
        self._require_admin(api, req, "create")
        body = req.json()
        if not isinstance(body, dict):
            raise _HttpError(400, "Request body must be a JSON object")
        job_type = body.get("jobType")
        if job_type in _SYSTEM_TYPES:
            raise _HttpError(409 if self.minor >= 40 else 400,
                             "Job %s must be configurable but was not." % body.get("name"))
        if job_type not in _job_types(self.minor):
            raise _HttpError(400, "Value '%s' is not valid for parameter jobType" % job_type)
        given = body.get("id")
        uid = given if isinstance(given, str) else _uid_from("jobconf", len(self.jobs), now)
        errors = self._validate(body, uid)
        if not body.get("name"):
            errors.append(_od(("message", "Missing required property `name`."), ("errorCode", "E4000")))
        if errors:
            return self._conflict(errors, uid)
        self._add(uid, body["name"], job_type, body.get("cronExpression"), body.get("delay"),
                  params=body.get("jobParameters"), enabled=body.get("enabled", True) is not False)
        self.jobs[uid]["created"] = self.jobs[uid]["updated"] = now
        report = _od(("responseType", "ObjectReport"), ("uid", uid),
                     ("klass", "org.hisp.dhis.scheduling.JobConfiguration"), ("errorReports", []))
        return _Response.json(_web_message(201, None, response=report), 201,
                              headers=[("Location", "%s/api/jobConfigurations/%s" % (req.base, uid))])

    def _update(self, api: _Api, req: _Request, now: float, uid: str) -> _Response:
        self._require_admin(api, req, "update")
        job = self._job(uid)
        if not job["configurable"]:
            raise _HttpError(409 if self.minor >= 40 else 422, "Job %s is a system job that cannot be modified." % uid)
        body = req.json()
        if not isinstance(body, dict):
            raise _HttpError(400, "Request body must be a JSON object")
        body.setdefault("jobType", job["jobType"])
        if self.minor >= 41:
            body["jobType"] = job["jobType"]  # not updatable (hbm@2.41:27)
        errors = self._validate(body, uid, exclude=uid)
        if errors:
            return self._conflict(errors, uid)
        job.update(name=body.get("name") or job["name"], cron=body.get("cronExpression"),
                   delay=body.get("delay"), params=body.get("jobParameters", job["params"]), updated=now)
        if self.minor < 38 and "enabled" in body:  # 2.38+: after.setEnabled(before.isEnabled())
            job["enabled"] = body["enabled"] is not False
        return _Response.json(_web_message(200, None, response=_od(
            ("responseType", "ObjectReport"), ("uid", uid), ("errorReports", []))))

    def _patch(self, api: _Api, req: _Request, uid: str) -> _Response:
        self._require_admin(api, req, "update")
        job = self._job(uid)
        # prePatchEntity: WebMessageException(UNPROCESSABLE_ENTITY) on 2.36-2.38
        # (sch/JobConfigurationController.java@2.36:120-126, @2.37:124-130, @2.38:146-151).
        # 2.39/2.40 have no prePatchEntity (the client only PATCHes on 2.36/2.37; the
        # stand-in keeps the 422 there rather than model the import hook's E7003).
        if not job["configurable"]:
            raise _HttpError(422, "Job %s is a system job that cannot be modified." % uid)
        body = req.json()
        if not isinstance(body, dict):
            raise _HttpError(400, "Request body must be a JSON object")
        if "enabled" in body:
            job["enabled"] = body["enabled"] is not False
        return _Response.empty(204)

    def _delete(self, api: _Api, req: _Request, uid: str) -> _Response:
        self._require_admin(api, req, "delete")
        job = self._job(uid)
        if not job["configurable"]:
            raise _HttpError(409 if self.minor >= 40 else 422, "Job %s is a system job that cannot be deleted." % uid)
        del self.jobs[uid]
        return _Response.json(_web_message(200, None, response=_od(
            ("responseType", "ObjectReport"), ("uid", uid), ("errorReports", []))))

    def _type_info(self, job_type: str) -> "collections.OrderedDict[str, Any]":
        name = job_type.replace("_", " ").capitalize()
        info = _od(("name", name), ("jobType", job_type),
                   ("key", (job_type.lower().replace("_", "") + "Job") if self.minor < 37 else None),
                   ("schedulingType", "FIXED_DELAY" if job_type == "CONTINUOUS_ANALYTICS_TABLE" else "CRON"),
                   ("jobParameters", []))
        return info

    # -- /api/scheduling, /api/scheduler -----------------------------------------------------
    def _running(self, api: _Api, now: float) -> Dict[str, List[Dict[str, Any]]]:
        out: Dict[str, List[Dict[str, Any]]] = collections.OrderedDict()
        for job in self.jobs.values():
            self._settle(job, now)
            live = job["run"] is not None and job["running"]
            if job["running"] and (live or self.minor >= 41):  # 2.41+: the DB row is the truth
                out.setdefault(job["jobType"], []).append(_od(
                    ("jobId", job["id"]), ("status", "RUNNING"), ("description", job["name"]),
                    ("startedTime", _fmt_time(job["last"])), ("stages", ["Running %s" % job["name"]])))
        state = api.state
        with state.lock:
            for run in list(state.jobs.values()):
                if run.start is not None and run.start <= self.owner._now() and not run.finished(self.owner._now()):
                    out.setdefault(run.job_type, []).append(_od(
                        ("jobId", run.id), ("status", "RUNNING"), ("description", run.name),
                        ("startedTime", _fmt_time(self.local(run.start))), ("stages", [])))
        return out

    @_scheduled("GET", r"scheduling/running/types", feature="scheduling_api")
    def _running_types(self, api: _Api, req: _Request, now: float) -> _Response:
        return _Response.json(sorted(self._running(api, now)))

    @_scheduled("GET", r"scheduling/running", feature="scheduling_api")
    def _running_route(self, api: _Api, req: _Request, now: float) -> _Response:
        return _Response.json(self._running(api, now))

    @_scheduled("POST", r"scheduling/cancel/([^/]+)", feature="scheduling_api")
    def _cancel_type(self, api: _Api, req: _Request, now: float, raw: str) -> _Response:
        job_type = raw.upper()
        if not re.match(r"^[A-Z_]+$", job_type):
            raise _HttpError(400, "No enum constant org.hisp.dhis.scheduling.JobType.%s" % job_type)
        for job in self.jobs.values():
            self._settle(job, now)
            if job["jobType"] == job_type and job["running"] and (job["run"] or self.minor >= 41):
                self._stop(job, now)
                break
        return _Response.empty(204)

    @_scheduled("GET", r"scheduler", feature="scheduler_api")
    def _scheduler(self, api: _Api, req: _Request, now: float) -> _Response:
        entries = []
        for job in self.jobs.values():
            view = self._view(job, now)
            nxt = view.get("nextExecutionTime")
            entry = _od(("name", job["name"]), ("type", job["jobType"]), ("cronExpression", job["cron"]),
                        ("delay", job["delay"]), ("nextExecutionTime", nxt))
            if self.minor >= 41 and nxt:
                secs = int(round(_parse_local(nxt) - now))
                entry["maxDelayedExecutionTime"] = view.get("maxDelayedExecutionTime")
                entry["secondsToNextExecutionTime"] = secs
                if job["cron"]:
                    entry["secondsToMaxDelayedExecutionTime"] = secs + 4 * 3600
            entry["status"] = view["jobStatus"]
            entry["enabled"] = job["enabled"]
            entry["configurable"] = job["configurable"]
            entry["sequence"] = [_od(("id", job["id"]), ("name", job["name"]), ("type", job["jobType"]),
                                     ("cronExpression", job["cron"]), ("delay", job["delay"]),
                                     ("nextExecutionTime", nxt), ("status", view["jobStatus"]))]
            entries.append(entry)
        entries.sort(key=lambda e: (e.get("nextExecutionTime") is None, e.get("nextExecutionTime") or ""))
        return _Response.json(entries)

    # -- validation results ----------------------------------------------------------
    def _result_json(self, r: Dict[str, Any]) -> "collections.OrderedDict[str, Any]":
        return _od(("id", r["id"]), ("created", _fmt_time(r["created"])), ("leftsideValue", r["left"]),
                   ("rightsideValue", r["right"]), ("dayInPeriod", 15), ("notificationSent", r["sent"]),
                   ("validationRule", _od(("id", r["rule"][0]), ("name", r["rule"][1]),
                                          ("importance", r["rule"][2]))),
                   ("organisationUnit", _od(("id", r["unit"][0]), ("name", r["unit"][1]))),
                   ("period", _od(("id", r["period"]))),
                   ("attributeOptionCombo", _od(("id", "HllvX50cXC0"))))

    def _matching(self, req: _Request, delete: bool) -> List[Dict[str, Any]]:
        vr = set(req.query.get("vr", []))
        ou = set(req.query.get("ou", []))
        pe = set(req.query.get("pe", []))
        created, created_date = req.arg("created"), req.arg("createdDate")
        out = []
        for r in self.validation_results:
            if vr and r["rule"][0] not in vr:
                continue
            if ou and r["unit"][0] not in ou:
                continue
            if pe and not any(r["period"].startswith(p) or p.startswith(r["period"]) for p in pe):
                continue
            if delete and req.arg("notificationSent") is not None and \
                    r["sent"] != (req.arg("notificationSent") == "true"):
                continue
            if delete and created and not _fmt_time(r["created"]).replace("-", "").startswith(created):
                continue
            if not delete and created_date and _fmt_time(r["created"])[:10] < created_date:
                continue
            out.append(r)
        return out

    @_scheduled(ANY, r"validationResults")
    def _validation_results_route(self, api: _Api, req: _Request, now: float) -> _Response:
        if req.method == "GET":
            items = self._matching(req, False)
            page = max(1, int(req.arg("page") or 1))
            size = max(1, int(req.arg("pageSize") or 50))
            if (req.arg("paging") or "").lower() == "false":
                return _Response.json(_od(("validationResults", [self._result_json(r) for r in items])))
            count = (len(items) + size - 1) // size
            chunk = items[(page - 1) * size:page * size]
            return _Response.json(_od(("pager", _od(("page", page), ("pageCount", count), ("total", len(items)),
                                                    ("pageSize", size))),
                                      ("validationResults", [self._result_json(r) for r in chunk])))
        if req.method == "DELETE":
            # hasRole('F_PERFORM_MAINTENANCE') only <= 2.41 (ValidationResultController.java@2.41:118)
            api.require(req.user, ("ALL", "F_PERFORM_MAINTENANCE") if self.minor >= 42
                         else ("F_PERFORM_MAINTENANCE",))
            doomed = set(id(r) for r in self._matching(req, True))
            self.validation_results = [r for r in self.validation_results if id(r) not in doomed]
            return _Response.empty(204)
        raise _HttpError(405, "Request method '%s' is not supported" % req.method)

    @_scheduled("POST PUT", r"validation/sendNotifications")
    def _send_notifications(self, api: _Api, req: _Request, now: float) -> _Response:
        api.require(req.user, ("ALL", "F_RUN_VALIDATION") if self.minor >= 42
                     else ("ALL", "M_dhis-web-app-management"))
        for r in self.validation_results:
            r["sent"] = True
        if self.minor >= 41:
            with api.state.lock:
                job = api.state.new_job("VALIDATION_RESULTS_NOTIFICATION", "monitoring", None, [], req.now)
            return api.job_reply(req, job)
        return _Response.json(_web_message(200, "Initiated validation result notification"))

    def system_info_extra(self, req: _Request) -> Dict[str, Any]:
        """Fields /api/system/info adds: the server-local clock and analytics freshness."""
        now = self.local(req.now)
        out: Dict[str, Any] = collections.OrderedDict()
        out["serverDate"] = _fmt_time(now)
        success = self.analytics_success
        if success is None and self.minor >= 42:
            success = 0.0 - (time.timezone if time.daylight == 0 else time.altzone)  # epoch default
        if success is not None:
            out["lastAnalyticsTableSuccess"] = _fmt_time(success)
            secs = max(0, int(now - success))
            out["intervalSinceLastAnalyticsTableSuccess"] = "%d h, %d m, %d s" % (
                secs // 3600, secs % 3600 // 60, secs % 60)
            out["lastAnalyticsTableRuntime"] = "0:12:03.120"
        if self.minor >= 41:
            out["databaseInfo"] = _od(("spatialSupport", True), ("time", _fmt_time(now)))
        return out

    def date_header_time(self, now: float) -> float:
        return now + self.clock_skew


def _parse_local(text: str) -> float:
    base, _, millis = text.partition(".")
    return time.mktime(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + int(millis or 0) / 1000.0


def _run_once_job(api: _Api, req: _Request, job_id: str) -> _Response:
    """GET /api/jobConfigurations/{id} of a job started on its own (an integrity run, an
    analytics job ...): 2.41+ stores those as ONCE_ASAP configurations, earlier versions
    have no such row."""
    if not api.has("job_configurations"):
        raise _HttpError(404, "No endpoint %s %s" % (req.method, req.path))
    job_id = api.job_id(job_id)
    now = req.now
    with api.state.lock:
        job = api.state.jobs.get(job_id)
        if job is None:
            raise _HttpError(404, "JobConfiguration with id %s could not be found." % job_id,
                             error_code="E1005")
        start, end = job.start, job.end
        started = start is not None and start <= now
        finished = start is not None and end is not None and now >= end
        if start is not None and end is not None and finished:
            status, last_status = "DISABLED", "FAILED" if job.failed else "COMPLETED"
            last_run: Tuple[Any, ...] = (_fmt_time(start), _fmt_time(end), _fmt_hms(end - start, 2))
        elif start is not None and started:
            status, last_status, last_run = "RUNNING", "RUNNING", (_fmt_time(start), None, None)
        else:
            status, last_status, last_run = "SCHEDULED", "NOT_STARTED", (None, None, None)
        out = _od(("name", job.name), ("id", job.id), ("created", _fmt_time(job.created)),
                  ("lastUpdated", last_run[1] or _fmt_time(job.created)),
                  ("jobType", job.job_type), ("schedulingType", "ONCE_ASAP"),
                  ("jobStatus", status), ("lastExecutedStatus", last_status),
                  ("lastExecuted", last_run[0]), ("lastFinished", last_run[1]),
                  ("lastAlive", _fmt_time(now) if status == "RUNNING" else None),
                  ("lastRuntimeExecution", last_run[2]),
                  ("enabled", not finished), ("jobParameters", job.params),
                  ("configurable", False), ("executedBy", _uid_from("user", req.user)),
                  ("userUid", _uid_from("user", req.user)),
                  # DefaultJobSchedulerLoopService.updateProgress@2.42: sorted codes joined
                  # by " ", "" after a run without errors, absent before any run
                  ("errorCodes", (api.owner.job_error_codes if job.failed else "")
                   if finished else None))
    return _Response.json(_filter_fields(out, req.fields()))
