"""Job configurations, tasks and running jobs: :class:`JobConfigsMixin` of :class:`Session`.

Everything about ``/api/jobConfigurations`` lives here -- list, get, run, wait,
enable, disable, cancel, create, update, delete, the job types -- with the task
lists (``/api/system/tasks``) and what runs now (``/api/scheduling/running``).
DHIS2 keeps scheduler state in three generations (see the README's "Scheduled
jobs and health"): 2.36; 2.37-2.40 (running/completed processes in memory per
job type, ``/api/scheduling`` from 2.37); 2.41+ (the database is the truth,
per-job ``cancel``).  Every method here asks :attr:`Session.server_version`
where the request differs and raises :class:`UnsupportedServerError` where the
server lacks the endpoint.

Like jobs.py this module uses only the session's transport helpers (``_json``,
``_send``, ``_uid``, ``_segment``, ``server_version``); it never imports
session.py.
"""
from __future__ import annotations  # models are built on first use, not to annotate

import datetime
import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Union, cast

from . import convert, jobstart, models, polling, versions
from .errors import (ApiError, ConflictError, InvalidResponseError, JobFailedError,
                     TaskTimeoutError, TransportError, UnsupportedServerError)
from .jobstart import send_start

__all__ = ["JobConfigsMixin", "configuration_fields"]

log = logging.getLogger("dhis2maint")

_BASE_FIELDS = ("id,name,displayName,jobType,cronExpression,delay,schedulingType,enabled,"
                "configurable,jobStatus,lastExecuted,lastExecutedStatus,lastRuntimeExecution,"
                "nextExecutionTime,jobParameters,userUid,leaderOnlyJob,created,lastUpdated")
# 2.41+ (JobConfiguration.java@2.41: lastFinished, lastAlive, errorCodes, queueName,
# queuePosition, executedBy, maxDelayedExecutionTime are JSON properties there only)
_FIELDS_241 = ",lastFinished,lastAlive,errorCodes,queueName,queuePosition,executedBy," \
              "maxDelayedExecutionTime"
_FINAL = frozenset(["COMPLETED", "FAILED", "STOPPED"])


def configuration_fields(version: Sequence[int]) -> str:
    """The ``fields`` of ``/api/jobConfigurations`` a server of ``version`` knows."""
    return _BASE_FIELDS + (_FIELDS_241 if versions.supports(version, "job_run_fields") else "")


def _status_text(value: Any) -> str:
    return str(value or "").upper()


def _type_text(job_type: Union[models.JobType, str]) -> str:
    text = job_type.value if isinstance(job_type, models.JobType) else job_type
    if not isinstance(text, str) or not text.replace("_", "").isalpha():
        raise ValueError("job type must be a JobType or a name such as 'ANALYTICS_TABLE', "
                         "got {!r}".format(job_type))
    return text.upper()


def _with_reports(exc: ApiError, context: Optional[str] = None) -> ApiError:
    """The same error, its message extended with DHIS2's errorReports (E7005 "Cron
    expression is invalid", E7000 "Job of same type already scheduled…") and
    ``context`` (what was sent: DHIS2's E7005 text does not name the expression)."""
    web = exc.web_message or {}
    response = web.get("response") if isinstance(web, dict) else None
    reports = []
    if isinstance(response, dict):
        reports = list(response.get("errorReports") or [])
        for kind in response.get("typeReports") or []:
            for obj in (kind or {}).get("objectReports") or []:
                reports.extend((obj or {}).get("errorReports") or [])
    texts = []
    for report in reports:
        if isinstance(report, dict) and report.get("message"):
            code = report.get("errorCode")
            texts.append("{}{}".format(report["message"], " ({})".format(code) if code else ""))
    if not texts:
        return exc
    if context:
        texts.append(context)
    new = type(exc)("{} [{}]".format(exc.message, "; ".join(texts)), status_code=exc.status_code,
                    method=exc.method, path=exc.path, dhis2_message="; ".join(texts),
                    error_code=exc.error_code, web_message=exc.web_message,
                    request=exc.request, response=exc.response)
    return new


def _is_system_job_refusal(exc: ApiError) -> bool:
    """DHIS2's "Job X is a system job that cannot be modified.": 422 on 2.36/2.37
    (WebMessageException(UNPROCESSABLE_ENTITY)), 409 from 2.38 (CONFLICT /
    ConflictException)."""
    return exc.status_code in (409, 422) and "system job" in (exc.dhis2_message or "")


if TYPE_CHECKING:
    from ._typing import SessionTransport as _Transport
else:
    _Transport = object


class JobConfigsMixin(_Transport):
    """Job configuration, task and running-job methods of :class:`dhis2maint.Session`
    (mixed in; they use only its transport helpers)."""

    # --- job configurations ---------------------------------------------------------

    def list_job_configurations(self, job_type: Union[models.JobType, str, None] = None,
                                enabled: Optional[bool] = None,
                                status: Union[models.JobStatus, str, None] = None
                                ) -> List[models.JobConfiguration]:
        """Every job configuration: ``GET /api/jobConfigurations?paging=false&fields=…``
        -> list of :class:`JobConfiguration` (all versions; any logged-in user).

        Only the fields the server's version has are asked for.  Filters are applied
        here: ``job_type`` (a :class:`JobType` or name), ``enabled`` (True/False) and
        ``status`` (matches ``job_status`` or ``last_executed_status``, e.g.
        ``"FAILED"`` for jobs whose last run failed).  2.41+ lists ad-hoc run-once
        jobs too (``is_run_once``).
        """
        if enabled is not None and not isinstance(enabled, bool):
            raise ValueError("enabled must be None, True or False, got {!r}".format(enabled))
        type_text = _type_text(job_type) if job_type is not None else None
        status_text = _status_text(status) if status is not None else None
        data = self._json("GET", "jobConfigurations",
                          params={"paging": "false",
                                  "fields": configuration_fields(self.server_version)},
                          expect=dict)
        items = data.get("jobConfigurations")
        if not isinstance(items, list):
            raise InvalidResponseError("GET /api/jobConfigurations: no 'jobConfigurations' list")
        configs = convert.structure(items, List[models.JobConfiguration],
                                    "GET /api/jobConfigurations")
        out = []
        for config in configs:
            if type_text is not None and str(config.job_type) != type_text:
                continue
            if enabled is not None and bool(config.enabled) != enabled:
                continue
            if status_text is not None and status_text not in (
                    _status_text(config.job_status), _status_text(config.last_executed_status)):
                continue
            out.append(config)
        return out

    def get_job_configuration(self, job_id: str) -> models.JobConfiguration:
        """A job's stored record: ``GET /api/jobConfigurations/{id}`` -> :class:`JobConfiguration`
        (every field the version has; scheduled jobs on every version).

        Run-once jobs started by the triggers are stored on 2.41+ until HOUSEKEEPING
        deletes them (default one day after they finish); earlier versions keep
        them in memory only (404).  Raises :class:`NotFound` for an unknown id.
        """
        job_id = self._uid(job_id, "job id")
        path = "jobConfigurations/" + self._segment(job_id)
        data = self._json("GET", path, params={"fields": configuration_fields(self.server_version)},
                          expect=dict)
        return convert.structure(data, models.JobConfiguration, "GET /api/" + path)

    def _configuration(self, job_id: str,
                       fields: str = "id,name,jobType,enabled,jobStatus,configurable,"
                                     "lastExecuted,lastExecutedStatus"
                       ) -> models.JobConfiguration:
        job_id = self._uid(job_id, "job configuration id")
        path = "jobConfigurations/" + self._segment(job_id)
        data = self._json("GET", path, params={"fields": fields}, expect=dict)
        return convert.structure(data, models.JobConfiguration, "GET /api/" + path)

    def run_job_configuration(self, job_id: str, wait: bool = False,
                              timeout: Optional[float] = None, poll_interval: float = 1.0,
                              on_change: Optional[Callable[[models.JobConfiguration], Any]] = None,
                              max_interval: float = 10.0) -> models.Job:
        """Run a job configuration now: ``POST /api/jobConfigurations/{id}/execute``
        -> a :class:`Job` (its id is the configuration's id).

        The configuration is read first (``GET /api/jobConfigurations/{id}``).  A
        DISABLED job is refused here with :class:`ConflictError`: 2.41+ would answer
        409, 2.36-2.40 accept the run and silently do nothing.  DHIS2 2.36-2.40
        answer HTTP 200 with an ObjectReport whose ``errorReports`` say when it was
        not started (E7006, a job of that type is already running): that becomes a
        :class:`ConflictError` too.  2.36 refuses system jobs (403).

        The POST goes through the one job-start path (``dhis2maint.jobstart``):
        sent once; a lost, empty or oversized answer is ``outcome_unknown`` (the
        job MAY have started: :class:`TransportError`, or
        :class:`InvalidResponseError` for an empty one).  With
        ``Session(recover_job_starts=True)`` the configuration's record is read
        again (up to ``RECOVERY_WAIT`` s) and a run that began after the one
        read before the POST is adopted (``message`` says so).

        With ``wait=True`` the configuration is polled (see
        :meth:`wait_for_job_configuration`, with ``timeout``, ``poll_interval``
        and ``max_interval``, checked before anything is sent) until this run
        has finished; a FAILED or STOPPED run raises :class:`JobFailedError`.
        """
        if wait:  # a bad setting must not start a job it then cannot wait for
            polling.settings(self, timeout, poll_interval, max_interval)
        job_id = self._uid(job_id, "job configuration id")
        before = self._configuration(job_id, configuration_fields(self.server_version))
        if before.enabled is False:
            refused = ConflictError(
                "job configuration {} ({}) is disabled: {}".format(
                    job_id, before.name or "?",
                    "DHIS2 answers 409 \"Failed to transition job into ONCE_ASAP state\""
                    if versions.supports(self.server_version, "disabled_job_run_refused") else
                    "DHIS2 {} would accept the run and do nothing".format(
                        versions.version_text(self.server_version))),
                status_code=None, method="POST",
                path="/api/jobConfigurations/{}/execute".format(job_id))
            refused.follow_ups = (models.FollowUp(
                "enable_job_configuration", (("job_id", job_id),), "enable it first"),)
            raise refused
        path = "jobConfigurations/{}/execute".format(self._segment(job_id))
        what = "POST /api/" + path

        def recover(exc: BaseException) -> Optional[models.Job]:
            if not getattr(self, "recover_job_starts", False):
                return None
            return self._recover_run(job_id, before, what, exc)

        def may_have_started(exc: BaseException) -> str:
            return ("{} -- job configuration {} ({}) MAY have started: look before running "
                    "it again".format(exc, job_id, before.name or "?"))

        try:
            body = send_start(self, "POST", path, recover, may_have_started, follow_ups=(
                models.FollowUp("get_job_configuration", (("job_id", job_id),),
                                "read its record (lastExecuted, jobStatus)"),))
        except ApiError as exc:
            raise _with_reports(exc)
        if isinstance(body, models.Job):
            if wait:
                self.wait_for_job_configuration(job_id, before, timeout=timeout,
                                                poll_interval=poll_interval,
                                                max_interval=max_interval, on_change=on_change)
            return body
        reports = body.get("errorReports") or []
        if reports:
            texts = "; ".join(str(r.get("message") if isinstance(r, dict) else r)
                              for r in reports)
            raise ConflictError("POST /api/{} -> DHIS2 did not start the job: {}".format(
                path, texts), status_code=200, method="POST", path="/api/" + path,
                dhis2_message=texts, web_message=body)
        job = models.Job(id=job_id, job_type=before.job_type or "", name=before.name,
                         job_status=before.job_status, session=self,
                         message="started job configuration {}".format(before.name or job_id))
        if wait:
            self.wait_for_job_configuration(job_id, before, timeout=timeout,
                                            poll_interval=poll_interval,
                                            max_interval=max_interval, on_change=on_change)
        return job

    def _recover_run(self, job_id: str, before: models.JobConfiguration, what: str,
                     cause: BaseException) -> Optional[models.Job]:
        """After a lost answer to ``…/execute``: the run, if the configuration's record
        shows one that began after ``before`` (RUNNING, or lastExecuted/lastFinished
        moved) within ``RECOVERY_WAIT`` s; None otherwise."""
        wait = polling.Wait(polling.Settings(jobstart.RECOVERY_WAIT, jobstart.RECOVERY_POLL,
                                             jobstart.RECOVERY_POLL, 0.0),
                            "recovering job configuration {}".format(job_id))
        fields = configuration_fields(self.server_version)
        while True:
            try:
                config = self._configuration(job_id, fields)
            except (ApiError, InvalidResponseError, TransportError):
                config = None
            if config is not None and (
                    _status_text(config.job_status) == "RUNNING"
                    or config.last_executed != before.last_executed
                    or (config.last_finished is not None
                        and config.last_finished != before.last_finished)):
                log.warning("%s: the answer was lost (%s); job configuration %s has run since, "
                            "adopted as this run", what, type(cause).__name__, job_id)
                return models.Job(
                    id=job_id, job_type=config.job_type or before.job_type or "",
                    name=config.name or before.name, job_status=config.job_status,
                    session=self, message="recovered from /api/jobConfigurations/{} after the "
                                          "answer to {} was lost".format(job_id, what))
            if not wait.pause():
                return None

    def wait_for_job_configuration(self, job_id: str, before: models.JobConfiguration,
                                   timeout: Optional[float] = None, poll_interval: float = 1.0,
                                   max_interval: float = 10.0,
                                   on_change: Optional[Callable[[models.JobConfiguration], Any]]
                                   = None) -> models.JobConfiguration:
        """Poll ``GET /api/jobConfigurations/{id}`` until the run started after
        ``before`` (the record read before the start) has finished; return the record.

        Finished = ``last_executed`` (2.41+: or ``last_finished``) differs from
        ``before``, the job is not RUNNING and ``last_executed_status`` is
        COMPLETED, FAILED or STOPPED (2.36 writes ``last_executed`` at the end of a
        run, 2.37+ at its start).  FAILED/STOPPED raise :class:`JobFailedError`;
        :class:`TaskTimeoutError` after ``timeout`` seconds (the job may go on).
        ``on_change(config)`` is called whenever the job's status changes.

        Paced and bounded like :meth:`wait_for_task` (the pause drops back to
        ``poll_interval`` when the status changes); outages are ridden out for
        ``Session.outage_grace`` seconds, then :class:`TransportError`.  Bad
        settings are :class:`ConfigurationError` before anything is sent.
        """
        settings = polling.settings(self, timeout, poll_interval, max_interval)
        job_id = self._uid(job_id, "job configuration id")
        wait = polling.Wait(settings, "job configuration {}".format(job_id))
        fields = configuration_fields(self.server_version)
        seen = (_status_text(before.job_status), _status_text(before.last_executed_status),
                before.last_executed)  # report changes only
        config = before
        while True:
            read = wait.poll(self._configuration, job_id, fields)
            changed = False
            if read is not polling.DOWN:
                config = cast(models.JobConfiguration, read)
                state = (_status_text(config.job_status),
                         _status_text(config.last_executed_status), config.last_executed)
                changed = state != seen
                if changed:
                    seen = state
                    if on_change is not None:
                        on_change(config)
                if self._run_ended(job_id, before, config, state):
                    return config
            if not wait.pause(changed):
                limit = settings.timeout
                assert limit is not None  # only a deadline ends the pauses
                raise TaskTimeoutError(
                    "job configuration {} ({}) did not finish within {:g} s (jobStatus {}{}); "
                    "it may still run on the server".format(
                        job_id, config.name or "?", limit, seen[0] or "?",
                        "; DHIS2 was not answering" if read is polling.DOWN else ""),
                    job_id=job_id, job_type=config.job_type, last_message=seen[0])

    @staticmethod
    def _run_ended(job_id: str, before: models.JobConfiguration,
                   config: models.JobConfiguration, state: Any) -> bool:
        """Whether the run started after ``before`` has ended (JobFailedError if it failed)."""
        moved = (config.last_executed != before.last_executed
                 or (config.last_finished is not None
                     and config.last_finished != before.last_finished))
        if not (moved and state[0] != "RUNNING" and state[1] in _FINAL):
            return False
        if state[1] != "COMPLETED":
            codes = " ".join(config.error_code_list)
            raise JobFailedError(
                "job configuration {} ({}) ended {}{}".format(
                    job_id, config.name or "?", state[1],
                    " with error codes " + codes if codes else ""),
                job_id=job_id, job_type=config.job_type)
        return True

    def _toggle(self, job_id: str, enabled: bool) -> models.JobConfiguration:
        job_id = self._uid(job_id, "job configuration id")
        segment = self._segment(job_id)
        try:
            if versions.supports(self.server_version, "job_enable_endpoints"):
                # sch/JobConfigurationController.java@2.38:113-137, @2.42:182-206: 204
                self._send("POST", "jobConfigurations/{}/{}".format(
                    segment, "enable" if enabled else "disable"))
            else:
                # 2.36/2.37: no /enable; a JSON merge PATCH sets `enabled` and reschedules
                # (sch/JobConfigurationController.java@2.36:152-164, @2.37:156-168)
                self._send("PATCH", "jobConfigurations/" + segment,
                           json_body={"enabled": bool(enabled)})
        except ApiError as exc:
            if _is_system_job_refusal(exc):
                raise self._system_job_refused(job_id, enabled, exc) from None
            raise _with_reports(exc)
        return self._configuration(job_id, configuration_fields(self.server_version))

    def _system_job_refused(self, job_id: str, enabled: bool, exc: ApiError) -> ConflictError:
        """DHIS2's refusal to enable/disable a system job, as one :class:`ConflictError`
        on every version (DHIS2 answers 422 on 2.36/2.37, 409 from 2.38)."""
        name = None
        try:
            name = self._configuration(job_id, "id,name").name
        except (ApiError, InvalidResponseError):
            pass
        return ConflictError(
            "job configuration {} ({}) is a system job: DHIS2 {} refuses to {} it ({} {} -> "
            "HTTP {}: {}); system jobs cannot be changed through the API".format(
                job_id, name or "?", versions.version_text(self.server_version),
                "enable" if enabled else "disable", exc.method or "?", exc.path or "?",
                exc.status_code, exc.dhis2_message or "refused"),
            status_code=exc.status_code, method=exc.method, path=exc.path,
            dhis2_message=exc.dhis2_message, error_code=exc.error_code,
            web_message=exc.web_message, request=exc.request, response=exc.response,
            dev_message=exc.dev_message)

    def enable_job_configuration(self, job_id: str) -> models.JobConfiguration:
        """Enable a job: ``POST /api/jobConfigurations/{id}/enable`` (2.38+, 204), or a
        JSON merge ``PATCH {"enabled": true}`` on 2.36/2.37; returns the record.

        A system job (``configurable`` false) is refused by DHIS2 on every version:
        HTTP 422 on 2.36/2.37 (``prePatchEntity``,
        ``sch/JobConfigurationController.java@2.36:120-126``, ``@2.37:124-130``), 409
        from 2.38 (``@2.38:113-137``, ``@2.42:182-206``).  Either becomes
        :class:`ConflictError` naming the job and "system job" (its ``status_code`` is
        what DHIS2 answered).  2.41+ a job without a schedule -> :class:`ConflictError`
        ("Job requires schedule setup before it can be enabled.")."""
        return self._toggle(job_id, True)

    def disable_job_configuration(self, job_id: str) -> models.JobConfiguration:
        """Disable a job: ``POST /api/jobConfigurations/{id}/disable`` (2.38+), or
        ``PATCH {"enabled": false}`` on 2.36/2.37; returns the record.  A system job
        -> :class:`ConflictError` on every version, as for
        :meth:`enable_job_configuration`."""
        return self._toggle(job_id, False)

    def cancel_job(self, job_id: Optional[str] = None,
                   job_type: Union[models.JobType, str, None] = None) -> None:
        """Ask DHIS2 to cancel a running job (cooperative: it stops at its next check).

        ``job_id``: ``POST /api/jobConfigurations/{id}/cancel`` (2.41+; needs
        superuser, ``F_PERFORM_MAINTENANCE`` or being the job's executor, else 403).
        ``job_type``: ``POST /api/scheduling/cancel/{type}`` (2.37+; cancels the
        running process of that type -- on 2.41+ the most recently started).
        :class:`UnsupportedServerError` where the server has no such endpoint
        (2.36 has none; 2.37-2.40 only cancel by type).
        """
        if (job_id is None) == (job_type is None):
            raise ValueError("give job_id or job_type (exactly one)")
        version = self.server_version
        if job_id is not None:
            job_id = self._uid(job_id, "job id")
            if not versions.supports(version, "job_cancel_by_id"):
                raise UnsupportedServerError(
                    "cancelling one job by id needs DHIS2 2.41 or newer; this server runs {}{}"
                    .format(versions.version_text(version),
                            "; cancel the running job of its type instead"
                            if versions.supports(version, "job_cancel_by_type") else ""))
            self._send("POST", "jobConfigurations/{}/cancel".format(self._segment(job_id)))
            return None
        assert job_type is not None  # exactly one of the two was given (checked above)
        type_text = _type_text(job_type)
        if not versions.supports(version, "job_cancel_by_type"):
            raise UnsupportedServerError(
                "cancelling a running job needs DHIS2 2.37 or newer (/api/scheduling); this "
                "server runs {}".format(versions.version_text(version)))
        self._send("POST", "scheduling/cancel/" + self._segment(type_text))
        return None

    def create_job_configuration(self, name: str, job_type: Union[models.JobType, str],
                                 cron_expression: Optional[str] = None,
                                 delay: Optional[int] = None,
                                 job_parameters: Optional[Dict[str, Any]] = None,
                                 enabled: bool = True) -> models.JobConfiguration:
        """Create a job: ``POST /api/jobConfigurations`` -> the new :class:`JobConfiguration`.

        Give ``cron_expression`` (Spring's 6 fields, seconds first: ``"0 0 3 ? * *"``)
        or ``delay`` (seconds; FIXED_DELAY -- on 2.36-2.40 only for
        CONTINUOUS_ANALYTICS_TABLE).  DHIS2 validates: an invalid cron (E7005), a
        second job of the same type on the same cron (E7000), bad parameters
        (E4008/E4029) or a system job type become :class:`ConflictError` or
        :class:`BadRequest` carrying DHIS2's messages.  Needs ``F_SCHEDULING_ADMIN``.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError("name must be a non-empty string")
        if (cron_expression is None) == (delay is None):
            raise ValueError("give cron_expression or delay (exactly one)")
        body: Dict[str, Any] = {"name": name.strip(), "jobType": _type_text(job_type),
                                "enabled": bool(enabled)}
        if cron_expression is not None:
            body["cronExpression"] = str(cron_expression).strip()
        else:
            if isinstance(delay, bool) or not isinstance(delay, int) or delay < 1:
                raise ValueError("delay must be a whole number of seconds >= 1, got {!r}".format(
                    delay))
            body["delay"] = delay
            if versions.supports(self.server_version, "scheduling_type"):
                body["schedulingType"] = "FIXED_DELAY"
        if job_parameters is not None:
            if not isinstance(job_parameters, dict):
                raise ValueError("job_parameters must be a dict")
            body["jobParameters"] = job_parameters
        try:
            reply = self._json("POST", "jobConfigurations", json_body=body, expect=dict)
        except ApiError as exc:
            raise _with_reports(exc, "sent cronExpression {!r}".format(cron_expression)
                                if cron_expression is not None else None)
        response = reply.get("response") if isinstance(reply, dict) else None
        uid = (response or {}).get("uid") if isinstance(response, dict) else None
        if not uid:
            raise InvalidResponseError("POST /api/jobConfigurations: the reply has no "
                                       "response.uid; DHIS2 said {!r}".format(
                                           str(reply.get("message"))[:200]))
        return self._configuration(uid, configuration_fields(self.server_version))

    def update_job_configuration(self, job_id: str, name: Optional[str] = None,
                                 cron_expression: Optional[str] = None,
                                 delay: Optional[int] = None,
                                 job_parameters: Optional[Dict[str, Any]] = None
                                 ) -> models.JobConfiguration:
        """Change a job's name, schedule or parameters: ``GET`` the record, then ``PUT
        /api/jobConfigurations/{id}`` with the changes -> the updated record.

        ``enabled`` is not changed here (2.38+ ignore it in a PUT): use
        :meth:`enable_job_configuration`.  System jobs -> :class:`ConflictError`
        (2.40+) or 422 (2.36/2.38); errors carry DHIS2's messages.
        """
        job_id = self._uid(job_id, "job configuration id")
        path = "jobConfigurations/" + self._segment(job_id)
        current = self._json("GET", path, expect=dict)
        body = {k: v for k, v in current.items()
                if k in ("id", "name", "code", "jobType", "cronExpression", "delay",
                         "schedulingType", "enabled", "jobParameters", "executedBy")}
        if name is not None:
            body["name"] = name
        if cron_expression is not None:
            body["cronExpression"] = cron_expression
            body.pop("delay", None)
            if "schedulingType" in body:
                body["schedulingType"] = "CRON"
        if delay is not None:
            body["delay"] = delay
            body.pop("cronExpression", None)
            if "schedulingType" in body:
                body["schedulingType"] = "FIXED_DELAY"
        if job_parameters is not None:
            body["jobParameters"] = job_parameters
        try:
            self._send("PUT", path, json_body=body)
        except ApiError as exc:
            raise _with_reports(exc, "sent cronExpression {!r}".format(cron_expression)
                                if cron_expression is not None else None)
        return self._configuration(job_id, configuration_fields(self.server_version))

    def delete_job_configuration(self, job_id: str) -> None:
        """Delete a job: ``DELETE /api/jobConfigurations/{id}`` (needs
        ``F_SCHEDULING_ADMIN``; system jobs -> :class:`ConflictError` on 2.40+, 422
        before; unknown id -> :class:`NotFound`)."""
        job_id = self._uid(job_id, "job configuration id")
        try:
            self._send("DELETE", "jobConfigurations/" + self._segment(job_id))
        except ApiError as exc:
            raise _with_reports(exc)

    def list_job_types(self) -> List[models.JobTypeInfo]:
        """The job types a user may configure: ``GET /api/jobConfigurations/jobTypes``
        -> list of :class:`JobTypeInfo` (all versions)."""
        data = self._json("GET", "jobConfigurations/jobTypes", expect=dict)
        items = data.get("jobTypes")
        if not isinstance(items, list):
            raise InvalidResponseError("GET /api/jobConfigurations/jobTypes: no 'jobTypes' list")
        return convert.structure(items, List[models.JobTypeInfo],
                                 "GET /api/jobConfigurations/jobTypes")

    # --- tasks ------------------------------------------------------------------------

    def list_task_types(self) -> List[str]:
        """The job types DHIS2 holds task notifications for: the keys of ``GET
        /api/system/tasks`` with at least one job, sorted (all versions)."""
        data = self._json("GET", "system/tasks", expect=dict)
        return sorted(str(k) for k, v in data.items() if v)  # 2.36-2.38 list empty types too

    def list_tasks(self, job_type: Union[models.JobType, str]) -> List[str]:
        """The job ids DHIS2 still holds notifications for, newest first: ``GET
        /api/system/tasks/{jobType}`` ordered by each job's newest message time."""
        type_text = _type_text(job_type)
        path = "system/tasks/" + self._segment(type_text)
        data = self._json("GET", path, expect=dict)
        newest = {}
        for job_id, items in data.items():
            if not isinstance(items, list):
                raise InvalidResponseError("GET /api/{}: messages of job {} are not a list".format(
                    path, job_id))
            times = []
            for item in items:
                try:
                    stamp = convert.parse_datetime(item.get("time")) if isinstance(item, dict) \
                        else None
                except ValueError:
                    stamp = None
                if stamp is not None:
                    times.append(stamp.replace(tzinfo=None))
            newest[str(job_id)] = max(times) if times else None
        order = list(newest)  # DHIS2's own order breaks ties (2.40+: most recent first)
        return sorted(order, key=lambda j: (newest[j] is None, _neg(newest[j]), order.index(j)))

    def running_jobs(self) -> List[models.RunningJob]:
        """What runs now, any type: ``GET /api/scheduling/running`` (2.37+; 2.41+ from
        the database, so a stale RUNNING row shows) -> list of :class:`RunningJob`.

        2.36 has no such endpoint: the job configurations whose ``jobStatus`` is
        RUNNING are listed instead (ad-hoc jobs are not visible there).
        """
        if not versions.supports(self.server_version, "running_job_types"):
            return [models.RunningJob(job_type=c.job_type, job_id=c.id, status="RUNNING",
                                      description=c.name)
                    for c in self.list_job_configurations(status="RUNNING")
                    if _status_text(c.job_status) == "RUNNING"]
        data = self._json("GET", "scheduling/running", expect=dict)
        out = []
        for type_name, processes in data.items():
            if not isinstance(processes, list):
                raise InvalidResponseError("GET /api/scheduling/running: {} is not a list".format(
                    type_name))
            for process in processes:
                if not isinstance(process, dict):
                    raise InvalidResponseError("GET /api/scheduling/running: a process is not a "
                                               "JSON object")
                # convert's hook keeps each stage's description
                out.append(convert.structure(dict(process, jobType=type_name), models.RunningJob,
                                             "GET /api/scheduling/running"))
        return out

def _neg(stamp: Optional[datetime.datetime]) -> float:
    if stamp is None:
        return 0.0
    return -(stamp - stamp.min).total_seconds()
