"""Background jobs and synchronous maintenance: :class:`JobsMixin` of :class:`Session`.

Three kinds of server work live here:

* **Jobs** DHIS2 runs in the background: analytics tables, resource tables,
  monitoring.  Their triggers return a :class:`~dhis2maint.models.Job`;
  :meth:`JobsMixin.wait_for_task` (or ``job.wait()``) follows its task
  notifications to the end.
* **Synchronous runs** that answer with a result: predictors, category option
  combo updates (validation analysis: validation.py).  Jobs start through
  jobstart.py; job configurations live in jobconfigs.py.
* **Maintenance operations** under ``/api/maintenance``: synchronous too; they
  return when the server is done (2.36-2.42: 204, 2.43+: 200 with a WebMessage).

How waiting works (see :meth:`JobsMixin.wait_for_task`): one GET of
``/api/system/tasks/{jobType}/{jobId}`` per poll; the delay starts at
``poll_interval``, grows x1.5 up to ``max_interval`` -- and never past max(2 s,
10 % of the time waited) -- while nothing new arrives and drops back on every new
notification; the deadline is wall-clock (monotonic).  If the feed is wiped, or
stays empty far past the start, a 2.41+ server's ``/api/jobConfigurations/{id}``
tells the outcome instead.  Refused connections, timeouts and 502/503/504 are
ridden out for ``Session.outage_grace`` seconds.  Every wait here is a
:class:`dhis2maint.polling.Wait`: the package's one engine and clock.
"""
from __future__ import annotations  # models are built on first use, not to annotate

import datetime
import json
import logging
import re
from typing import (TYPE_CHECKING, Any, Callable, Dict, Generator, Iterable, Iterator, List,
                    NamedTuple, Optional, Set, Tuple, Union, cast)

from . import convert, models, polling, versions
from .errors import (ApiError, InvalidResponseError, JobFailedError, NotFound,
                     TaskTimeoutError, UnsupportedServerError)
from .arguments import date_range, flag, job_type_text, positive_int, tolerant_job_type
from .jobstart import later, start_job, task_feed
from .transport import SMALL_BODY_BYTES, decode_json

__all__ = ["JobsMixin", "ANALYTICS_FLAGS", "MaintenanceOperation", "MAINTENANCE_OPERATIONS",
           "MAINTENANCE_FLAGS",
           "START_GRACE", "FALLBACK_RECHECK", "says_failed"]

log = logging.getLogger("dhis2maint")

#: Seconds an empty feed counts as "not started yet" before a 2.41+ server's
#: /api/jobConfigurations is asked (DHIS2 picks ad-hoc jobs up within ~20 s, later
#: when another job of the type runs).
START_GRACE = 60.0
#: Least seconds between two /api/jobConfigurations look-ups of one wait.
FALLBACK_RECHECK = 30.0

_PREDICTIONS = re.compile(r"Generated\s+(\d{1,18})\s+prediction", re.I)
# Counts and negations ("0 failed", "failed items: 0", "no failed checks") are not failures.
_NOT_A_FAILURE = re.compile(
    r"\b\d+\s+(?:\w+\s+)?(?:failed|failures?|errors?)\b"
    r"|\b(?:failed|failures?|errors?)(?:\s+\w+)?\s*[:=]\s*\d+"
    r"|\b(?:no|none|nothing|without|never|zero)\s+(?:\w+\s+)?(?:failed|failures?|errors?)\b",
    re.I)
_FAILURE = re.compile(r"\bfailed\b|\bfailure\b|\baborted\b|^\s*error\b", re.I)
_UNFINISHED = frozenset(["RUNNING", "SCHEDULED", "NOT_STARTED"])
_FAILED_STATUSES = frozenset(["FAILED", "STOPPED"])
_COMBO_FIELDS = "id,name,categories[id,name,categoryOptions[id]],categoryOptionCombos[id,name]"


def says_failed(message: Optional[str]) -> bool:
    """Whether a COMPLETED notification's text reports a failure ("Process failed: …",
    "Job failed: …", "… failed: <reason>"), ignoring counts like "0 failed" or
    "12 successful and 3 failed items" (a finished job with some failed items)."""
    if not message:
        return False
    return bool(_FAILURE.search(_NOT_A_FAILURE.sub(" ", message)))


def log_progress(job_type: str, job_id: str, notification: models.Notification) -> None:
    """Log one new notification of a followed job on the ``dhis2maint`` logger at
    INFO: job type, job id, level (unless INFO) and message, so task logs
    (Airflow's, cron's) show progress without a callback.  Silent unless the
    application configures logging."""
    level = notification.level
    level_text = getattr(level, "value", level) or "INFO"
    text = notification.message or ""
    if not text:  # DHIS2 posts the job's parameters, and completedProcess(null), without one
        text = "completed" if notification.completed else (
            "started" if notification.data_type == models.NotificationDataType.PARAMETERS
            else "(no message)")
    elif notification.completed:
        text += " (completed)"
    log.info("%s job %s: %s%s", job_type, job_id,
             "" if level_text == "INFO" else "[{}] ".format(level_text), text)


def _notification_key(notification: models.Notification) -> Tuple[Any, ...]:
    # 2.42+ derives id from the millisecond timestamp (two messages can share it) and
    # 2.36-2.38 stamp every message of an ad-hoc job with the job id, so id alone is
    # not unique.  `completed` is left out: the stale rule flips it on a seen message.
    return (notification.id or notification.uid, notification.time, notification.message,
            str(notification.level))


def _message_of(body: Any) -> Optional[str]:
    return body.get("message") if isinstance(body, dict) else None


# ---------------------------------------------------------------------------
# Maintenance operations: one table the methods below and the CLI share.

class MaintenanceOperation(NamedTuple):
    """One ``/api/maintenance`` operation.

    ``name`` is the Session method, ``path`` the 2.42 sub-path of /api/maintenance
    (``{uid}`` where a UID goes; older names come from ``versions.MAINTENANCE_NAMES``),
    ``destructive`` says it deletes data or objects for good.
    """

    name: str
    path: str
    http_method: str
    destructive: bool
    takes_uid: bool
    summary: str


def _op(name: str, path: str, destructive: bool, summary: str, http_method: str = "POST",
        takes_uid: bool = False) -> "MaintenanceOperation":
    return MaintenanceOperation(name, path, http_method, destructive, takes_uid, summary)


#: Every maintenance operation, in DHIS2's own order (each face names them by ``name``).
MAINTENANCE_OPERATIONS = (
    _op("clear_analytics_tables", "analyticsTablesClear", True,
        "drop all analytics tables (analytics is empty until the next analytics run)"),
    _op("analyze_analytics_tables", "analyticsTablesAnalyze", False,
        "run ANALYZE on the analytics tables"),
    _op("clear_expired_invitations", "expiredInvitationsClear", True,
        "delete the user accounts whose invitation has expired"),
    _op("update_org_unit_paths", "ouPathsUpdate", False,
        "rebuild the path of every organisation unit"),
    _op("prune_periods", "periodPruning", True, "delete the periods nothing refers to"),
    _op("remove_zero_data_values", "zeroDataValueRemoval", True,
        "delete zero values of SUM data elements where zero is not significant"),
    _op("remove_soft_deleted_data_values", "softDeletedDataValueRemoval", True,
        "purge soft-deleted data values"),
    _op("remove_soft_deleted_events", "softDeletedEventRemoval", True,
        "purge soft-deleted events"),
    _op("remove_soft_deleted_enrollments", "softDeletedEnrollmentRemoval", True,
        "purge soft-deleted enrollments"),
    _op("remove_soft_deleted_tracked_entities", "softDeletedTrackedEntityRemoval", True,
        "purge soft-deleted tracked entities"),
    _op("remove_soft_deleted_relationships", "softDeletedRelationshipRemoval", True,
        "purge soft-deleted relationships (2.39+)"),
    _op("create_sql_views", "sqlViewsCreate", False, "create the database views of all SQL views"),
    _op("drop_sql_views", "sqlViewsDrop", True, "drop the database views of all SQL views"),
    _op("update_category_option_combos", "categoryOptionComboUpdate", False,
        "add missing and prune obsolete category option combos of every category combo"),
    _op("clear_cache", "cacheClear", False, "clear DHIS2's application caches"),
    _op("reload_apps", "appReload", False, "reload the installed apps", http_method="GET"),
    _op("prune_organisation_unit_data", "dataPruning/organisationUnits/{uid}", True,
        "delete all data of one organisation unit (user needs ALL)", takes_uid=True),
    _op("prune_data_element_data", "dataPruning/dataElements/{uid}", True,
        "delete all data of one data element (user needs ALL)", takes_uid=True),
)
_OPERATIONS = {op.name: op for op in MAINTENANCE_OPERATIONS}

#: The boolean flags of ``POST /api/maintenance`` (2.42 names), in the order DHIS2 runs them.
MAINTENANCE_FLAGS = (
    "analyticsTableClear", "analyticsTableAnalyze", "expiredInvitationsClear", "ouPathsUpdate",
    "periodPruning", "zeroDataValueRemoval", "softDeletedDataValueRemoval",
    "softDeletedRelationshipRemoval", "softDeletedEventRemoval", "softDeletedEnrollmentRemoval",
    "softDeletedTrackedEntityRemoval", "sqlViewsDrop", "sqlViewsCreate",
    "categoryOptionComboUpdate", "cacheClear", "appReload", "resourceTableUpdate",
)

#: refresh_analytics keyword -> DHIS2 query parameter (also the CLI's --skip-* flags)
ANALYTICS_FLAGS = (
    ("skip_resource_tables", "skipResourceTables"),
    ("skip_aggregate", "skipAggregate"),
    ("skip_events", "skipEvents"),
    ("skip_enrollment", "skipEnrollment"),
    ("skip_org_unit_ownership", "skipOrgUnitOwnership"),
    ("skip_outliers", "skipOutliers"),
    ("skip_tracked_entities", "skipTrackedEntities"),
    ("skip_validation_results", "skipValidationResult"),
)


# ---------------------------------------------------------------------------
# Following a job


class _Follower:
    """The state of one wait: what was seen, the next delay, and whether the next
    poll asks /api/jobConfigurations instead of the task feed."""

    seen: Set[Tuple[Any, ...]]
    incomplete_seen: Set[Tuple[Any, ...]]
    newest: Optional[models.Notification]
    pending_final: Optional[models.Notification]
    fallback: Optional[bool]
    last_check: Optional[float]

    def __init__(self, session: "JobsMixin", job_type: Union[models.JobType, str], job_id: str,
                 timeout: Optional[float], poll_interval: float, max_interval: float) -> None:
        self.settings = polling.settings(session, timeout, poll_interval, max_interval)
        self.session = session
        self.type_text = job_type_text(job_type)
        self.job_type = tolerant_job_type(self.type_text)
        self.job_id = session._uid(job_id, "job id")
        self.timeout = self.settings.timeout
        self.seen = set()
        self.incomplete_seen = set()
        self.newest = None
        self.ask_configuration = False
        self.pending_final = None  # a completion the stale rule may have made up
        self.fallback = None  # whether the server has /api/jobConfigurations for run-once jobs
        self.last_check = None
        self.wait: Optional[polling.Wait] = None

    def _resume(self) -> Tuple[models.FollowUp, ...]:
        """What to do when the wait gives up: follow the job again."""
        return (models.FollowUp("wait_for_task", (("job_type", self.type_text),
                                                  ("job_id", self.job_id)), "follow it"),)

    def describe(self) -> str:
        return "{} job {}".format(self.type_text, self.job_id)

    def run(self) -> Generator[models.Notification, None, models.Notification]:
        """Generator: yields new notifications oldest first, returns the final one."""
        wait = self.wait = polling.Wait(self.settings, self.describe(), self._resume())
        while True:
            now = wait.now()
            if self.ask_configuration:
                self.ask_configuration = False
                self.last_check = now
                final = wait.poll(self._from_configuration)
                if final is polling.DOWN:
                    self.ask_configuration = True  # ask again once DHIS2 is back
                    final = None
                progress = final is not None
                if final is not None:
                    if final is not self.pending_final:
                        log_progress(self.type_text, self.job_id, final)
                        yield final
                    return cast(models.Notification, final)
            else:
                feed = wait.poll(self.session.get_task_notifications, self.job_type, self.job_id)
                if feed is polling.DOWN:
                    progress = False
                else:
                    new = self._new(feed)
                    progress = bool(new)
                    for notification in new:
                        log_progress(self.type_text, self.job_id, notification)
                        yield notification
                    final = self._judge(feed, now - wait.start, now)
                    if final is not None:
                        return final
            if not wait.pause(progress):
                raise self._timeout()

    def _new(self, feed: List[models.Notification]) -> List[models.Notification]:
        new = []
        for notification in reversed(feed):  # DHIS2 lists newest first
            key = _notification_key(notification)
            if not notification.completed:
                self.incomplete_seen.add(key)
            if key not in self.seen:
                self.seen.add(key)
                new.append(notification)
        if feed:
            self.newest = feed[0]
        return new

    def _judge(self, feed: List[models.Notification], elapsed: float,
               now: float) -> Optional[models.Notification]:
        """The final notification, None to keep polling, or JobFailedError."""
        if not feed:
            wiped = bool(self.seen)
            if (wiped or elapsed >= START_GRACE) and self._may_check(now):
                self.ask_configuration = self._has_fallback()
            return None
        newest = feed[0]
        if not newest.completed:
            return None
        if newest.level == models.NotificationLevel.ERROR or says_failed(newest.message):
            raise JobFailedError(
                "{} failed: {}".format(self.describe(), newest.message or "(no message)"),
                job_id=self.job_id, job_type=self.job_type, notification=newest)
        if self._made_up_by_stale_rule(newest) and self._has_fallback():
            # 2.41+ marks the newest message completed when the job is no longer
            # RUNNING (cancelled, aborted, or its last message not yet written):
            # ask the job's record for the real outcome.
            self.pending_final = newest
            self.ask_configuration = True
            return None
        return newest

    def _made_up_by_stale_rule(self, newest: models.Notification) -> bool:
        key = _notification_key(newest)
        return (key in self.incomplete_seen
                or newest.level == models.NotificationLevel.LOOP
                or newest.data_type == models.NotificationDataType.PARAMETERS)

    def _may_check(self, now: float) -> bool:
        return self.last_check is None or now - self.last_check >= FALLBACK_RECHECK

    def _has_fallback(self) -> bool:
        if self.fallback is None:
            self.fallback = versions.supports(self.session.server_version, "job_configurations")
        return self.fallback

    def _from_configuration(self) -> Optional[models.Notification]:
        """One GET /api/jobConfigurations/{id}: the final notification, None while
        the job is queued or running, or an error."""
        try:
            config = self.session.get_job_configuration(self.job_id)
        except NotFound as exc:
            raise NotFound(
                "{}: its task notifications are gone and /api/jobConfigurations/{} answers 404 "
                "(finished run-once jobs are deleted by HOUSEKEEPING, by default after a "
                "day): its outcome cannot be known".format(self.describe(), self.job_id),
                status_code=404, method="GET", path=exc.path, request=exc.request,
                response=exc.response) from exc
        status = str(config.job_status or "")
        last = str(config.last_executed_status or "")
        if status in _UNFINISHED:
            self.pending_final = None
            return None
        if status in _FAILED_STATUSES or last in _FAILED_STATUSES:
            raise JobFailedError(
                "{} ended with status {}{} (from /api/jobConfigurations; its task notifications "
                "were not available){}".format(
                    self.describe(), last if last in _FAILED_STATUSES else status,
                    "; DHIS2 error codes: {}".format(config.error_codes.strip())
                    if config.error_codes and config.error_codes.strip() else "",
                    "; last message: {}".format(self.pending_final.message)
                    if self.pending_final is not None and self.pending_final.message else ""),
                job_id=self.job_id, job_type=self.job_type, notification=self.pending_final)
        if last == "COMPLETED" or status == "COMPLETED":
            if self.pending_final is not None:
                return self.pending_final
            return models.Notification(
                level=models.NotificationLevel.INFO, category=self.job_type,
                time=config.last_finished or config.last_executed,
                message="Job completed (jobStatus {}, lastExecutedStatus {}, from "
                        "/api/jobConfigurations; its task notifications were not "
                        "available)".format(status or "?", last or "?"),
                completed=True)
        raise JobFailedError(
            "{} did not run: /api/jobConfigurations reports jobStatus {} and "
            "lastExecutedStatus {}".format(self.describe(), status or "?", last or "?"),
            job_id=self.job_id, job_type=self.job_type, notification=self.pending_final)

    def _timeout(self) -> TaskTimeoutError:
        assert self.timeout is not None  # only called at a deadline
        down = self.wait.outage.down_for() if self.wait is not None else None
        last = self.newest.message if self.newest is not None else None
        late = TaskTimeoutError(
            "{} did not finish within {:g} s{}{}; it may still be running on the server".format(
                self.describe(), self.timeout,
                "; DHIS2's last message: {!r}".format(last) if last else
                "; DHIS2 has reported nothing for it yet",
                "; DHIS2 has not answered for the last {:.0f} s".format(down)
                if down is not None else ""),
            job_id=self.job_id, job_type=self.job_type, last_message=last)
        late.follow_ups = self._resume()
        return late


if TYPE_CHECKING:
    from ._typing import SessionTransport as _Transport
else:
    _Transport = object


class JobsMixin(_Transport):
    """Job, run and maintenance methods of :class:`dhis2maint.Session` (mixed in;
    they use only its transport helpers)."""

    # --- starting jobs ---------------------------------------------------------

    def refresh_analytics(self, last_years: Optional[int] = None,
                          skip_resource_tables: bool = False, skip_aggregate: bool = False,
                          skip_events: bool = False, skip_enrollment: bool = False,
                          skip_org_unit_ownership: bool = False, skip_outliers: bool = False,
                          skip_tracked_entities: bool = False,
                          skip_validation_results: bool = False) -> models.Job:
        """Start an analytics table update: ``POST /api/resourceTables/analytics`` -> :class:`Job`
        (type ANALYTICS_TABLE).

        Only ``True`` flags and ``last_years`` (when given) are sent.  Each flag needs
        a server that knows it (``versions.ANALYTICS_PARAMETERS``): 2.36+ for
        resource tables, aggregate, events, enrollment; 2.39+ org unit ownership;
        2.41+ outliers and tracked entities; 2.41.1+ validation results.  Setting
        one the server lacks raises :class:`UnsupportedServerError` (DHIS2 would
        silently ignore it).  ``last_years``: whole years back from now (absent =
        all years).  The request is sent once, never retried.
        """
        flags = {
            "skip_resource_tables": skip_resource_tables, "skip_aggregate": skip_aggregate,
            "skip_events": skip_events, "skip_enrollment": skip_enrollment,
            "skip_org_unit_ownership": skip_org_unit_ownership, "skip_outliers": skip_outliers,
            "skip_tracked_entities": skip_tracked_entities,
            "skip_validation_results": skip_validation_results,
        }
        params = {}
        if last_years is not None:
            params["lastYears"] = str(positive_int(last_years, "last_years"))
        for keyword, name in ANALYTICS_FLAGS:
            if flag(flags[keyword], keyword):
                params[name] = "true"
        self._require_analytics_parameters(params)
        return start_job(self, "resourceTables/analytics", models.JobType.ANALYTICS_TABLE,
                               params=params or None)

    def _require_analytics_parameters(self, params: Iterable[str]) -> None:
        needs = versions.analytics_parameters_to_check(params)
        if not needs:
            return  # every supported DHIS2 takes them: no version look-up needed
        version = self.server_version
        for name in needs:
            versions.require_analytics_parameter(version, name)

    def refresh_resource_tables(self) -> models.Job:
        """Start a resource table update: ``POST /api/resourceTables`` -> :class:`Job`
        (type RESOURCE_TABLE), all versions.  Sent once, never retried."""
        return start_job(self, "resourceTables", models.JobType.RESOURCE_TABLE)

    def refresh_monitoring(self) -> models.Job:
        """Start the monitoring job (validation rule analysis with notifications):
        ``POST /api/resourceTables/monitoring`` -> :class:`Job` (type MONITORING).
        Sent once, never retried."""
        return start_job(self, "resourceTables/monitoring", models.JobType.MONITORING)

    # --- task notifications ---------------------------------------------------

    def get_task_notifications(self, job_type: Union[models.JobType, str],
                               job_id: Optional[str] = None) -> List[models.Notification]:
        """A job's task notifications, newest first as DHIS2 lists them.

        With ``job_id``: ``GET /api/system/tasks/{jobType}/{jobId}`` (every kept
        message; ``[]`` when nothing is stored yet -- normal for up to ~20 s after
        a start -- or any more).  Without: the messages of the most recently active
        job of that type (see :meth:`get_latest_task`).

        ``job_type`` is a :class:`JobType` or its name (letters and underscores);
        ``job_id`` must be a UID.  Raises ``ValueError`` for either, and the usual
        :class:`ApiError` subclasses (400 for a type the server does not know).
        Unknown levels and job types from a newer server stay plain strings.
        """
        if job_id is None:
            return self.get_latest_task(job_type)[1]
        type_text = job_type_text(job_type)
        job_id = self._uid(job_id, "job id")
        path = "system/tasks/{}/{}".format(type_text, self._segment(job_id))
        data = self._json("GET", path, expect=list)
        return _notifications(data, "GET /api/" + path)

    def get_latest_task(self, job_type: Union[models.JobType, str]
                        ) -> Tuple[Optional[str], List[models.Notification]]:
        """``(job_id, notifications)`` of the most recently active job of ``job_type``,
        or ``(None, [])`` when DHIS2 has none.

        ``GET /api/system/tasks/{jobType}`` maps job ids to messages.  2.40+ lists
        the most recently active job first but abridges each job to [newest, oldest]
        (``gist``); 2.36-2.39 give complete lists in no particular order.  So the
        job whose newest message is the latest wins (ties: the first listed), and
        when its list may be abridged (two or more messages) its complete list is
        read with ``GET /api/system/tasks/{jobType}/{jobId}``.
        """
        type_text = job_type_text(job_type)
        best_id, best, best_time = None, [], None
        for job_id, items in task_feed(self, type_text).items():
            notifications = _notifications(items, "GET /api/system/tasks/" + type_text)
            if not notifications:
                continue
            newest = notifications[0].time
            if best_id is None or (newest is not None and (best_time is None or
                                                           later(newest, best_time))):
                best_id, best, best_time = job_id, notifications, newest
        if best_id is not None and len(best) >= 2 and _is_uid(best_id):
            best = self.get_task_notifications(type_text, best_id)
        return best_id, best

    def iter_task_notifications(self, job_type: Union[models.JobType, str], job_id: str,
                                timeout: Optional[float] = None, poll_interval: float = 1.0,
                                max_interval: float = 10.0) -> Iterator[models.Notification]:
        """Yield a job's NEW notifications, oldest first, until it completes.

        Polls like :meth:`wait_for_task` (same arguments, one request per poll) and
        yields each notification once (identified by id, time, message and level).
        DHIS2 replaces a LOOP message with the next one, so fast "[i/n] …" items may
        be skipped.  Normally the last item is the final notification (not when
        the stale rule marked an already-yielded message completed).  Raises what
        :meth:`wait_for_task` raises, after yielding the failure's message.
        """
        follower = _Follower(self, job_type, job_id, timeout, poll_interval, max_interval)
        return follower.run()

    def wait_for_task(self, job_type: Union[models.JobType, str], job_id: str,
                      timeout: Optional[float] = None, poll_interval: float = 1.0,
                      max_interval: float = 10.0,
                      on_notification: Optional[Callable[[models.Notification], Any]] = None
                      ) -> models.Notification:
        """Follow a job to its end and return its final :class:`Notification`.

        Each poll is ONE request on this session: ``GET
        /api/system/tasks/{jobType}/{jobId}``.  The first poll is immediate; the
        delay then starts at ``poll_interval`` seconds, grows x1.5 per poll that
        brings nothing new, up to ``max_interval``, and drops back to
        ``poll_interval`` whenever a new notification arrives; it never grows past
        max(:data:`polling.LAG_FLOOR` = 2 s, :data:`polling.LAG_SHARE` = 10 % of the
        time waited so far), so the end of a job is noticed within that (plus one
        request).  ``timeout``
        (seconds, ``None`` = no limit) is a wall-clock deadline: the last poll
        happens at the deadline, never later.  ``on_notification(notification)``
        is called once per new notification, oldest first (its exceptions
        propagate).

        The job has ended when the newest notification is ``completed``:

        * level ERROR, or a text that says it failed ("Process failed: …",
          "Job failed: …"; counts like "0 failed" are not failures) ->
          :class:`JobFailedError` with DHIS2's message;
        * otherwise success: that notification is returned.

        An ERROR with ``completed: false`` is a stage or item failure the job may
        survive (DHIS2's NotifierJobProgress.failedStage/failedWorkItem): it goes
        to ``on_notification`` and the wait goes on.

        An empty feed right after the start is normal (DHIS2 picks ad-hoc jobs up
        within ~20 s, later when another job of the type runs).  When the feed is
        empty after messages were seen (wiped, server restarted), or still empty
        :data:`START_GRACE` seconds after the start, a 2.41+ server is asked
        ``GET /api/jobConfigurations/{id}`` instead (still one request per poll;
        at most every :data:`FALLBACK_RECHECK` s; plus, once per session, ``GET
        /api/system/info`` for the version): ``lastExecutedStatus`` COMPLETED ->
        success, returned as a synthetic completed INFO notification whose
        message says it came from /api/jobConfigurations; FAILED or STOPPED ->
        :class:`JobFailedError` (``notification`` None); 404 -> :class:`NotFound`
        saying the outcome cannot be known; queued or running -> back to the feed.
        The same record confirms a completion DHIS2's stale rule may have made up
        (2.41+ marks the newest message completed once the job is not RUNNING).
        On 2.36-2.40 there is no fallback: polling goes on until the deadline.

        Outages: refused connections, timeouts and 502/503/504 do not end the
        wait; it goes on polling the same job for up to ``Session.outage_grace``
        seconds (default 900, 0 = fail at once), logging a WARNING when DHIS2
        stops answering and INFO when it is back, then :class:`TransportError`
        naming the job.  ``timeout`` still wins.  If DHIS2 restarted and forgot
        the job's messages, the /api/jobConfigurations fallback above decides.

        Raises :class:`TaskTimeoutError` (``job_id``, ``job_type``, ``last_message``)
        at the deadline, ``ValueError`` for a bad type or id and
        :class:`ConfigurationError` (a ValueError) for a non-finite or negative
        timeout or interval, and the transport's errors (idempotent GETs are
        retried by the session first).
        """
        follower = _Follower(self, job_type, job_id, timeout, poll_interval, max_interval)
        steps = follower.run()
        try:
            while True:
                try:
                    notification = next(steps)
                except StopIteration as stop:
                    return cast(models.Notification, stop.value)
                if on_notification is not None:
                    on_notification(notification)
        except KeyboardInterrupt as interrupt:
            # Ctrl-C stops the wait, not the job: it goes on in DHIS2.  Say how to
            # follow it again, as data each face words (#21.3).
            setattr(interrupt, "follow_ups", (models.FollowUp(
                "wait_for_task", (("job_type", follower.type_text), ("job_id", follower.job_id)),
                "the job goes on in DHIS2; follow it again"),))
            raise

    # --- synchronous runs -------------------------------------------------------

    def run_predictors(self, start_date: Union[datetime.date, str],
                       end_date: Union[datetime.date, str],
                       predictors: Union[str, Iterable[str], None] = None,
                       predictor_groups: Union[str, Iterable[str], None] = None
                       ) -> List[models.PredictorRun]:
        """Run predictors synchronously; one :class:`PredictorRun` per request, in order.

        Without ``predictors`` and ``predictor_groups``: ``POST /api/predictors/run``
        (all predictors; DHIS2 stops at the first failure) -> a one-item list.
        Otherwise ``POST /api/predictors/{uid}/run`` per predictor, then ``POST
        /api/predictorGroups/{uid}/run`` per group; each run names its
        ``predictor``/``predictor_group``.  ``predictions`` is parsed from
        DHIS2's "Generated N predictions".

        Predictor groups need DHIS2 2.38+ (:class:`UnsupportedServerError` before,
        raised before any run is posted).
        Dates: ``datetime.date``/``datetime`` or ``'YYYY-MM-DD'``; ``ValueError`` if
        malformed or start is after end, or for a bad UID or an empty list.
        :class:`ConflictError` when DHIS2 cannot predict ("Unable to predict …");
        runs before the failing one have already written their predictions.
        """
        start, end = date_range(start_date, end_date)
        params = {"startDate": start, "endDate": end}
        targets = []
        for values, what in ((predictors, "predictors"), (predictor_groups, "predictor_groups")):
            if values is None:
                continue
            if isinstance(values, str):
                values = [values]
            values = list(values)
            if not values:
                raise ValueError("{} is empty; pass None to run all predictors".format(what))
            for uid in values:
                targets.append((what, self._uid(uid, what[:-1].replace("_", " ") + " UID")))
        if not targets:
            return [self._predictor_run("predictors/run", params, None, None)]
        if any(what == "predictor_groups" for what, _uid in targets):
            # checked before anything is posted, so no predictor runs half-way
            versions.require(self.server_version, "predictor_group_run",
                             "running a predictor group (POST /api/predictorGroups/{uid}/run)")
        runs = []
        for what, uid in targets:
            if what == "predictors":
                runs.append(self._predictor_run("predictors/{}/run".format(self._segment(uid)),
                                                params, uid, None))
            else:
                runs.append(self._predictor_run(
                    "predictorGroups/{}/run".format(self._segment(uid)), params, None, uid))
        return runs

    def _predictor_run(self, path: str, params: Dict[str, Any], predictor: Optional[str],
                       group: Optional[str]) -> models.PredictorRun:
        body = self._json("POST", path, params=params, expect=dict)
        message = body.get("message")
        if message is not None and not isinstance(message, str):
            message = json.dumps(message)  # not DHIS2's shape; keep it readable
        match = _PREDICTIONS.search(message or "")
        return models.PredictorRun(
            message=message, predictions=int(match.group(1)) if match else None,
            status=body.get("status"), predictor=predictor, predictor_group=group)

    # --- category option combos ----------------------------------------------------

    def update_category_option_combos(self, category_combo: Optional[str] = None
                                      ) -> Optional[models.ImportSummary]:
        """Add missing and prune obsolete category option combos, synchronously.

        Without ``category_combo``: ``POST /api/maintenance/categoryOptionComboUpdate``
        (every combo; 2.42: 204, 2.43: 200 OK) -> ``None``.  With a combo UID: ``POST
        /api/maintenance/categoryOptionComboUpdate/categoryCombo/{uid}`` -> an
        :class:`ImportSummary` (imported = added, deleted = pruned, ignored = obsolete
        combos that could not be deleted).  DHIS2 answers a WARNING summary (some
        obsolete combos still in use; the missing ones were added) with HTTP 409:
        that is a success here, returned with ``status`` ``"WARNING"`` and the reasons
        in ``descriptions``.  Raises :class:`ConflictError` for an unknown combo
        ("CategoryCombo does not exist") or an ERROR summary (invalid combo).
        """
        if category_combo is None:
            self._maintenance("update_category_option_combos")
            return None
        uid = self._uid(category_combo, "category_combo")
        path = "maintenance/categoryOptionComboUpdate/categoryCombo/" + self._segment(uid)
        what = "POST /api/" + path
        # WebMessageUtils.importSummaries answers a WARNING summary with HTTP 409 too
        # (the missing combos WERE added; some obsolete ones could not be deleted)
        response = self._send("POST", path, ok_statuses=(409,))
        if response.status_code == 409:
            from .errors import _web_message, error_for_response

            web = _web_message(response)
            inner = web.get("response") if web is not None else None
            if web is None or not (str(web.get("status", "")).upper() == "WARNING"
                                   and isinstance(inner, dict)
                                   and str(inner.get("status", "")).upper() == "WARNING"):
                raise error_for_response(response, "POST", "/api/" + path)
            summary = _import_summary(web, what)
            log.warning("%s: DHIS2 answered WARNING (HTTP 409): %s", what,
                        "; ".join(summary.descriptions) or summary.message)
            return summary

        body = decode_json(response, what, expect=dict)
        return _import_summary(body, what)

    def get_category_combo_state(self, uid: str) -> models.CategoryComboState:
        """A category combo's option combos against what its categories call for:
        ``GET /api/categoryCombos/{uid}?fields=…`` -> :class:`CategoryComboState`
        (``expected_count`` = product of the categories' option counts).
        Raises :class:`NotFound` for an unknown combo."""
        uid = self._uid(uid, "category combo UID")
        path = "categoryCombos/" + self._segment(uid)
        data = self._json("GET", path, params={"fields": _COMBO_FIELDS}, expect=dict)
        return _combo_state(data, uid, "GET /api/" + path)

    def wait_for_coc_generation(self, category_combo: str, expected_count: Optional[int] = None,
                                timeout: Optional[float] = 60, poll_interval: float = 1.0,
                                max_interval: Optional[float] = None
                                ) -> models.CategoryComboState:
        """Make DHIS2 generate a combo's option combos and wait until they are there.

        Triggers ``POST /api/maintenance/categoryOptionComboUpdate/categoryCombo/{uid}``
        (needed on 2.43+, where saving a combo no longer generates them; harmless
        before), then polls ``GET /api/categoryCombos/{uid}`` every ``poll_interval``
        seconds until the number of option combos equals ``expected_count`` (default:
        the product of its categories' option counts) and returns that state.
        A WARNING answer to the update (HTTP 409: obsolete combos still in use could
        not be deleted, the missing ones were added) is not an error: polling goes
        on, and the kept obsolete combos count towards the target.
        ``max_interval`` (default: ``poll_interval``, a fixed pace) lets the pause
        grow while the count stands still, as in :meth:`wait_for_task`.
        Polling rides out outages like :meth:`wait_for_task` (``outage_grace``).
        Settings are checked before anything is sent (:class:`ConfigurationError`).
        Raises :class:`TaskTimeoutError` after ``timeout`` seconds (``job_id`` = the
        combo UID, ``last_message`` = "n of m …"), :class:`ConflictError` for an
        unknown combo.
        """
        uid = self._uid(category_combo, "category_combo")
        if expected_count is not None and (isinstance(expected_count, bool) or
                                           not isinstance(expected_count, int) or
                                           expected_count < 0):
            raise ValueError("expected_count must be None or a whole number >= 0, got {!r}"
                             .format(expected_count))
        settings = polling.settings(self, timeout, poll_interval, max_interval,
                                    default_max=None)
        wait = polling.Wait(settings, "category combo {}".format(uid))
        summary = self.update_category_option_combos(uid)
        # a WARNING answer: obsolete combos still in use were kept ("ignored"); they stay
        kept = summary.ignored if summary is not None else 0
        counted = None
        while True:
            state = wait.poll(self.get_category_combo_state, uid)
            target = None
            progress = False
            if state is not polling.DOWN:
                target = state.expected_count if expected_count is None else expected_count
                if state.count == target or (kept and state.count == target + kept):
                    return cast(models.CategoryComboState, state)
                progress, counted = state.count != counted, state.count
            if not wait.pause(progress):
                assert settings.timeout is not None  # only a deadline ends the pauses
                text = "{} of {} category option combos present".format(state.count, target) \
                    if state is not polling.DOWN else "DHIS2 was not answering"
                raise TaskTimeoutError(
                    "category combo {}: option combos not generated within {:g} s ({})".format(
                        uid, settings.timeout, text), job_id=uid, job_type=None,
                    last_message=text)

    # --- maintenance ---------------------------------------------------------------

    def _maintenance(self, name: str, uid: Optional[str] = None) -> Optional[str]:
        """Run one MAINTENANCE_OPERATIONS entry; DHIS2's message or None."""
        op = _OPERATIONS[name]
        path = op.path
        if ("path", path) in versions.MAINTENANCE_NAMES:
            path = versions.maintenance_name(self.server_version, "path", path)
        if op.takes_uid:
            path = path.replace("{uid}", self._segment(self._uid(uid, "UID")))
        return self._maintenance_request(op.http_method, "maintenance/" + path)

    def _maintenance_request(self, method: str, path: str,
                             params: Optional[Dict[str, str]] = None) -> Optional[str]:
        what = "{} /api/{}".format(method, path)
        response = self._send(method, path, params=params, max_bytes=SMALL_BODY_BYTES)
        if response.status_code == 204 or not response.content.strip():
            return None
        body = decode_json(response, what, expect=dict)
        if str(body.get("status", "OK")).upper() not in ("OK", "SUCCESS"):
            raise ApiError("{} -> HTTP {} but DHIS2 reports status {}: {}".format(
                what, response.status_code, body.get("status"), body.get("message")),
                status_code=response.status_code, method=method, path="/api/" + path,
                dhis2_message=body.get("message"), web_message=body,
                request=response.request, response=response)
        return _message_of(body)

    def run_maintenance(self, **flags: bool) -> Optional[str]:
        """Several maintenance tasks in one synchronous request: ``POST /api/maintenance``.

        Flags are DHIS2's names (``softDeletedEventRemoval=True``) or their snake_case
        (``soft_deleted_event_removal=True``); see :data:`MAINTENANCE_FLAGS`, which
        is also the order DHIS2 runs them in.  MANY ARE DESTRUCTIVE (analytics table
        clear, the soft-deleted removals, zero data value removal, ...).  Only
        ``True`` flags are sent; renamed flags are translated for older servers
        (``versions.MAINTENANCE_NAMES``).  Returns DHIS2's message (2.43+) or None.
        ``ValueError`` for an unknown flag, a non-bool value or no flag set.
        """
        params = {}
        for key, value in flags.items():
            name = key if key in MAINTENANCE_FLAGS else convert.camel(key)
            if name not in MAINTENANCE_FLAGS:
                raise ValueError("unknown maintenance flag {!r}; known: {}".format(
                    key, ", ".join(MAINTENANCE_FLAGS)))
            if flag(value, key):
                params[name] = "true"
        if not params:
            raise ValueError("run_maintenance() needs at least one flag set to True")
        if any(("flag", name) in versions.MAINTENANCE_NAMES for name in params):
            version = self.server_version
            params = {versions.maintenance_name(version, "flag", name): value
                      for name, value in params.items()}
        return self._maintenance_request("POST", "maintenance", params=params)

    def clear_analytics_tables(self) -> Optional[str]:
        """DESTRUCTIVE: drop every analytics table; analytics answers nothing until the
        next analytics run.  ``POST /api/maintenance/analyticsTablesClear``; returns
        when done with DHIS2's message or None (all versions)."""
        return self._maintenance("clear_analytics_tables")

    def analyze_analytics_tables(self) -> Optional[str]:
        """Run ANALYZE on the analytics tables (planner statistics):
        ``POST /api/maintenance/analyticsTablesAnalyze``; DHIS2's message or None."""
        return self._maintenance("analyze_analytics_tables")

    def clear_expired_invitations(self) -> Optional[str]:
        """DESTRUCTIVE: delete the user accounts whose invitation has expired.
        ``POST /api/maintenance/expiredInvitationsClear``; DHIS2's message or None."""
        return self._maintenance("clear_expired_invitations")

    def update_org_unit_paths(self) -> Optional[str]:
        """Rebuild every organisation unit's path (after hierarchy edits in the database):
        ``POST /api/maintenance/ouPathsUpdate``; DHIS2's message or None."""
        return self._maintenance("update_org_unit_paths")

    def prune_periods(self) -> Optional[str]:
        """DESTRUCTIVE: delete the periods no data or object refers to.
        ``POST /api/maintenance/periodPruning``; DHIS2's message or None."""
        return self._maintenance("prune_periods")

    def remove_zero_data_values(self) -> Optional[str]:
        """DESTRUCTIVE: delete the zero values of SUM data elements where zero is not
        significant.  ``POST /api/maintenance/zeroDataValueRemoval``; message or None."""
        return self._maintenance("remove_zero_data_values")

    def remove_soft_deleted_data_values(self) -> Optional[str]:
        """DESTRUCTIVE: permanently purge soft-deleted data values.
        ``POST /api/maintenance/softDeletedDataValueRemoval``; message or None."""
        return self._maintenance("remove_soft_deleted_data_values")

    def remove_soft_deleted_events(self) -> Optional[str]:
        """DESTRUCTIVE: permanently purge soft-deleted events.
        ``POST /api/maintenance/softDeletedEventRemoval`` (before 2.41:
        ``softDeletedProgramStageInstanceRemoval``); message or None."""
        return self._maintenance("remove_soft_deleted_events")

    def remove_soft_deleted_enrollments(self) -> Optional[str]:
        """DESTRUCTIVE: permanently purge soft-deleted enrollments.
        ``POST /api/maintenance/softDeletedEnrollmentRemoval`` (before 2.41:
        ``softDeletedProgramInstanceRemoval``); message or None."""
        return self._maintenance("remove_soft_deleted_enrollments")

    def remove_soft_deleted_tracked_entities(self) -> Optional[str]:
        """DESTRUCTIVE: permanently purge soft-deleted tracked entities.
        ``POST /api/maintenance/softDeletedTrackedEntityRemoval`` (before 2.41:
        ``softDeletedTrackedEntityInstanceRemoval``); message or None."""
        return self._maintenance("remove_soft_deleted_tracked_entities")

    def remove_soft_deleted_relationships(self) -> Optional[str]:
        """DESTRUCTIVE: permanently purge soft-deleted relationships.
        ``POST /api/maintenance/softDeletedRelationshipRemoval``, 2.39+
        (:class:`UnsupportedServerError` before); message or None."""
        return self._maintenance("remove_soft_deleted_relationships")

    def create_sql_views(self) -> Optional[str]:
        """Create the database views of all SQL views:
        ``POST /api/maintenance/sqlViewsCreate``; DHIS2's message or None."""
        return self._maintenance("create_sql_views")

    def drop_sql_views(self) -> Optional[str]:
        """DESTRUCTIVE: drop the database views of all SQL views (reports using them
        fail until :meth:`create_sql_views`).  ``POST /api/maintenance/sqlViewsDrop``."""
        return self._maintenance("drop_sql_views")

    def clear_cache(self) -> Optional[str]:
        """Clear DHIS2's application caches (Hibernate, analytics, apps, tracker preheat):
        ``POST /api/maintenance/cacheClear``; DHIS2's message or None."""
        return self._maintenance("clear_cache")

    def reload_apps(self) -> Optional[str]:
        """Reload the installed apps: ``GET /api/maintenance/appReload`` -> "Apps reloaded"."""
        return self._maintenance("reload_apps")

    def prune_organisation_unit_data(self, uid: str) -> Optional[str]:
        """DESTRUCTIVE: delete ALL data of one organisation unit (data values, events,
        enrollments, ...).  ``POST /api/maintenance/dataPruning/organisationUnits/{uid}``;
        the user needs the ALL authority.  Returns "Data was pruned successfully";
        :class:`ConflictError` for an unknown unit or when pruning failed."""
        return self._maintenance("prune_organisation_unit_data", uid)

    def prune_data_element_data(self, uid: str) -> Optional[str]:
        """DESTRUCTIVE: delete ALL data values of one data element.
        ``POST /api/maintenance/dataPruning/dataElements/{uid}``; the user needs the
        ALL authority.  Returns "Data was pruned successfully"; :class:`ConflictError`
        for an unknown element or when pruning failed."""
        return self._maintenance("prune_data_element_data", uid)


# ---------------------------------------------------------------------------
# Reading DHIS2's answers


def _is_uid(value: object) -> bool:
    return isinstance(value, str) and re.match(r"^[A-Za-z][A-Za-z0-9]{10}$", value) is not None


def _notifications(items: List[Any], what: str) -> List[models.Notification]:
    return [convert.structure(item, models.Notification, what) for item in items]


def _import_summary(body: Any, what: str) -> models.ImportSummary:
    """The ImportSummaries WebMessage of a per-combo update -> ImportSummary."""
    if body is None:
        return models.ImportSummary()
    response = body.get("response")
    if response is None:
        return models.ImportSummary(status=body.get("status"), message=body.get("message"))
    if not isinstance(response, dict):
        raise InvalidResponseError("{}: 'response' is not a JSON object".format(what))
    summaries = response.get("importSummaries") or []
    if not isinstance(summaries, list):
        raise InvalidResponseError("{}: 'importSummaries' is not a list".format(what))
    descriptions, conflicts = [], []
    for item in summaries:
        if not isinstance(item, dict):
            raise InvalidResponseError("{}: an import summary is not a JSON object".format(what))
        if item.get("description"):
            descriptions.append(str(item["description"]))
        for conflict in item.get("conflicts") or ():
            if isinstance(conflict, dict):
                conflicts.append(str(conflict.get("value") or conflict.get("object") or conflict))
            else:
                conflicts.append(str(conflict))
    try:
        return models.ImportSummary(
            status=response.get("status"), message=body.get("message"),
            imported=int(response.get("imported") or 0), updated=int(response.get("updated") or 0),
            deleted=int(response.get("deleted") or 0), ignored=int(response.get("ignored") or 0),
            total=int(response.get("total") or 0), descriptions=descriptions, conflicts=conflicts)
    except (TypeError, ValueError, OverflowError):
        raise InvalidResponseError("{}: import counts are not numbers".format(what)) from None


def _combo_state(data: Dict[str, Any], uid: str, what: str) -> models.CategoryComboState:
    categories = data.get("categories") or []
    combos = data.get("categoryOptionCombos") or []
    if not isinstance(categories, list) or not isinstance(combos, list):
        raise InvalidResponseError("{}: categories/categoryOptionCombos are not lists".format(what))
    # DHIS2's CombinationGenerator: one combo per choice of an option from each
    # category, categories without options skipped; no options at all -> none.
    expected = 0
    for category in categories:
        options = category.get("categoryOptions") if isinstance(category, dict) else None
        if not isinstance(options, list):
            raise InvalidResponseError("{}: a category has no categoryOptions list".format(what))
        if options:
            expected = max(expected, 1) * len(options)
    option_combos = []
    for combo in combos:
        if not isinstance(combo, dict):
            raise InvalidResponseError("{}: an option combo is not a JSON object".format(what))
        option_combos.append(models.CategoryOptionCombo(id=combo.get("id"), name=combo.get("name")))
    return models.CategoryComboState(id=str(data.get("id") or uid), name=data.get("name"),
                                     expected_count=expected,
                                     category_option_combos=option_combos)
