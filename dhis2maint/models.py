"""The typed records dhis2maint returns: attrs classes and enums.

Field names are snake_case here and camelCase on the wire; :mod:`dhis2maint.convert`
turns one into the other.  Enum fields hold an enum member, or the raw string when
a newer DHIS2 sends a value this version does not know (every enum here is a
``str`` enum, so ``row.severity == "SEVERE"`` works either way).
"""
from __future__ import annotations  # field types are resolved when a class is built

import datetime
import enum
import threading
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Tuple, Union,
                    cast)

import attr

if TYPE_CHECKING:
    from attr import s as _attrs

__all__ = [
    "DataIntegritySeverity",
    "NotificationLevel",
    "NotificationDataType",
    "JobType",
    "JobStatus",
    "DataIntegrityCheck",
    "DataIntegrityIssue",
    "DataIntegrityResult",
    "DataIntegrityReport",
    "IntegrityIssueRow",
    "CountChange",
    "IssueChange",
    "ReportComparison",
    "Notification",
    "Job",
    "JobConfiguration",
    "JobTypeInfo",
    "RunningJob",
    "ValidationResult",
    "UserInfo",
    "FollowUp",
    "HealthFinding",
    "SchedulerHealth",
    "DoctorCheck",
    "DoctorReport",
    "PredictorRun",
    "ValidationViolation",
    "CategoryOptionCombo",
    "CategoryComboState",
    "ImportSummary",
    "DataValue",
    "ImportCount",
    "ImportConflict",
    "DataValueImportSummary",
    "MetadataTypeReport",
    "MetadataImportReport",
    "DataValuesStatus",
    "severity_rank",
]


class _Model:
    """Base of the models: one shared ``__repr__`` (``Name(field=value, …)``, as
    attrs writes it) instead of one generated and compiled per class, which
    keeps ``import dhis2maint`` fast -- Airflow re-imports DAG files constantly."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "{}({})".format(type(self).__name__, ", ".join(
            "{}={!r}".format(a.name, getattr(self, a.name))
            for a in attr.fields(cast(Any, type(self))) if a.repr))


# -- lazily built models ----------------------------------------------------------------
#
# Making ~25 attrs classes (generating and compiling their methods) was most of
# what ``import dhis2maint`` added to ``import requests, attr, cattr``, and Airflow
# re-imports DAG files constantly (#20.10).  So a model class is written here as
# usual, but ``@_attrs`` (``attr.s`` to type checkers) only notes the plain class;
# the attrs class is made on first use -- ``models.Job``, ``from .models import
# Job``, pickle, autodoc -- through the module's ``__getattr__`` (PEP 562), its
# string field types resolved then (building the models they name).  After that
# it is an ordinary module attribute: one class object per name, for good.

_PENDING: Dict[str, Tuple[type, Dict[str, Any]]] = {}
_BUILT_HOOKS: Dict[str, List[Callable[[type], None]]] = {}
_BUILD_LOCK = threading.RLock()


if not TYPE_CHECKING:
    def _attrs(**options: Any) -> Callable[[type], type]:
        def note(cls: type) -> type:
            _PENDING[cls.__name__] = (cls, options)
            return cls  # unbound again at the end of the module
        return note


class _Models(dict):  # type: ignore[type-arg]
    """The namespace field types are evaluated in: a model's name builds it."""

    def __missing__(self, name: str) -> Any:
        if name in _PENDING:
            return _build(name)
        raise KeyError(name)


def _build(name: str) -> type:
    with _BUILD_LOCK:
        built = globals().get(name)
        if built is not None:
            return cast(type, built)
        cls, options = _PENDING[name]
        built = attr.s(**options)(cls)
        globals()[name] = built
        try:
            attr.resolve_types(built, globals(), _Models())
        except BaseException:
            del globals()[name]
            raise
        del _PENDING[name]
        for hook in _BUILT_HOOKS.pop(name, ()):
            hook(built)
        return cast(type, built)


def _model(name: str) -> Any:
    """Model ``name`` from inside this module, where a global lookup cannot build it."""
    return globals().get(name) or _build(name)


def __getattr__(name: str) -> Any:
    if name in _PENDING:
        return _build(name)
    raise AttributeError("module {!r} has no attribute {!r}".format(__name__, name))


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_PENDING))


def when_built(name: str, hook: Callable[[type], None]) -> None:
    """Call ``hook(cls)`` once model ``name`` exists (now, when it already does):
    how :mod:`dhis2maint.convert` registers a model's hooks without building it."""
    with _BUILD_LOCK:
        if name in _PENDING:
            _BUILT_HOOKS.setdefault(name, []).append(hook)
            return
    hook(globals()[name])


class _StrEnum(str, enum.Enum):
    def __str__(self) -> str:
        return cast(str, self.value)


class DataIntegritySeverity(_StrEnum):
    """How bad a data-integrity check's findings are, mildest first."""

    INFO = "INFO"
    WARNING = "WARNING"
    SEVERE = "SEVERE"
    CRITICAL = "CRITICAL"


_SEVERITY_ORDER = {"INFO": 0, "WARNING": 1, "SEVERE": 2, "CRITICAL": 3}


def severity_rank(severity: Union["DataIntegritySeverity", str]) -> int:
    """0 (INFO) … 3 (CRITICAL) for a severity or its case-insensitive name.

    A severity a newer server invents ranks as WARNING (1), DHIS2's default.
    Raises ``ValueError`` for ``None`` or a non-string.
    """
    if isinstance(severity, str):
        return _SEVERITY_ORDER.get(str(severity).upper(), 1)
    raise ValueError("not a severity: {!r}".format(severity))


class NotificationLevel(_StrEnum):
    """A task notification's level; ``LOOP`` (2.37+) marks a progress message that
    the next one replaces, ``ERROR`` a failure (the job's end when ``completed``)."""

    OFF = "OFF"
    DEBUG = "DEBUG"
    LOOP = "LOOP"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


class NotificationDataType(_StrEnum):
    """What a notification's ``data`` holds: ``PARAMETERS`` (the job's parameters,
    on its first message; 2.38+)."""

    PARAMETERS = "PARAMETERS"


class JobType(_StrEnum):
    """DHIS2's job types: every value of ``JobType.java`` from 2.36 to master (2.44).

    The comment on each says which versions have it (``scheduling/JobType.java`` of
    each release branch); a server still rejects a type it does not know (400).
    """

    # 2.36 – master
    DATA_STATISTICS = "DATA_STATISTICS"
    DATA_INTEGRITY = "DATA_INTEGRITY"
    RESOURCE_TABLE = "RESOURCE_TABLE"
    ANALYTICS_TABLE = "ANALYTICS_TABLE"
    CONTINUOUS_ANALYTICS_TABLE = "CONTINUOUS_ANALYTICS_TABLE"
    DATA_SYNC = "DATA_SYNC"
    FILE_RESOURCE_CLEANUP = "FILE_RESOURCE_CLEANUP"
    IMAGE_PROCESSING = "IMAGE_PROCESSING"
    META_DATA_SYNC = "META_DATA_SYNC"
    SMS_SEND = "SMS_SEND"
    SEND_SCHEDULED_MESSAGE = "SEND_SCHEDULED_MESSAGE"
    PROGRAM_NOTIFICATIONS = "PROGRAM_NOTIFICATIONS"
    VALIDATION_RESULTS_NOTIFICATION = "VALIDATION_RESULTS_NOTIFICATION"
    CREDENTIALS_EXPIRY_ALERT = "CREDENTIALS_EXPIRY_ALERT"
    MONITORING = "MONITORING"
    PREDICTOR = "PREDICTOR"
    DATA_SET_NOTIFICATION = "DATA_SET_NOTIFICATION"
    REMOVE_USED_OR_EXPIRED_RESERVED_VALUES = "REMOVE_USED_OR_EXPIRED_RESERVED_VALUES"
    TRACKER_IMPORT_JOB = "TRACKER_IMPORT_JOB"
    TRACKER_IMPORT_NOTIFICATION_JOB = "TRACKER_IMPORT_NOTIFICATION_JOB"
    TRACKER_IMPORT_RULE_ENGINE_JOB = "TRACKER_IMPORT_RULE_ENGINE_JOB"
    COMPLETE_DATA_SET_REGISTRATION_IMPORT = "COMPLETE_DATA_SET_REGISTRATION_IMPORT"
    DATAVALUE_IMPORT_INTERNAL = "DATAVALUE_IMPORT_INTERNAL"
    METADATA_IMPORT = "METADATA_IMPORT"
    DATAVALUE_IMPORT = "DATAVALUE_IMPORT"
    DISABLE_INACTIVE_USERS = "DISABLE_INACTIVE_USERS"
    MOCK = "MOCK"
    GML_IMPORT = "GML_IMPORT"
    # 2.36 – 2.40
    LEADER_ELECTION = "LEADER_ELECTION"
    LEADER_RENEWAL = "LEADER_RENEWAL"
    ANALYTICSTABLE_UPDATE = "ANALYTICSTABLE_UPDATE"
    PROGRAM_DATA_SYNC = "PROGRAM_DATA_SYNC"
    # 2.36 – 2.41
    TRACKER_PROGRAMS_DATA_SYNC = "TRACKER_PROGRAMS_DATA_SYNC"
    EVENT_PROGRAMS_DATA_SYNC = "EVENT_PROGRAMS_DATA_SYNC"
    EVENT_IMPORT = "EVENT_IMPORT"
    ENROLLMENT_IMPORT = "ENROLLMENT_IMPORT"
    TEI_IMPORT = "TEI_IMPORT"
    # 2.36 – 2.42
    PUSH_ANALYSIS = "PUSH_ANALYSIS"
    # 2.37 – master
    ACCOUNT_EXPIRY_ALERT = "ACCOUNT_EXPIRY_ALERT"
    TEST = "TEST"
    # 2.38 – 2.42
    TRACKER_SEARCH_OPTIMIZATION = "TRACKER_SEARCH_OPTIMIZATION"
    # 2.38 – master
    SYSTEM_VERSION_UPDATE_CHECK = "SYSTEM_VERSION_UPDATE_CHECK"
    # 2.39 – master
    DATA_INTEGRITY_DETAILS = "DATA_INTEGRITY_DETAILS"
    AGGREGATE_DATA_EXCHANGE = "AGGREGATE_DATA_EXCHANGE"
    GEOJSON_IMPORT = "GEOJSON_IMPORT"
    # 2.40 – master
    MATERIALIZED_SQL_VIEW_UPDATE = "MATERIALIZED_SQL_VIEW_UPDATE"
    # 2.41 – master
    HTML_PUSH_ANALYTICS = "HTML_PUSH_ANALYTICS"
    LOCK_EXCEPTION_CLEANUP = "LOCK_EXCEPTION_CLEANUP"
    HOUSEKEEPING = "HOUSEKEEPING"
    DATA_VALUE_TRIM = "DATA_VALUE_TRIM"
    # 2.42 – master
    SINGLE_EVENT_DATA_SYNC = "SINGLE_EVENT_DATA_SYNC"
    TRACKED_ENTITY_DATA_SYNC = "TRACKED_ENTITY_DATA_SYNC"
    SMS_INBOUND_PROCESSING = "SMS_INBOUND_PROCESSING"
    # 2.43 – master
    TRACKER_TRIGRAM_INDEX_MAINTENANCE = "TRACKER_TRIGRAM_INDEX_MAINTENANCE"


class JobStatus(_StrEnum):
    """A job configuration's status (``/api/jobConfigurations``); a finished run-once
    job is ``DISABLED`` with ``last_executed_status`` ``COMPLETED``/``FAILED``/``STOPPED``."""

    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    DISABLED = "DISABLED"
    COMPLETED = "COMPLETED"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    NOT_STARTED = "NOT_STARTED"


# ---------------------------------------------------------------------------
# Data integrity


@_attrs(auto_attribs=True, slots=True, repr=False)
class DataIntegrityCheck(_Model):
    """One data-integrity check as ``GET /api/dataIntegrity`` lists it."""

    name: str
    display_name: Optional[str] = None
    section: Optional[str] = None
    section_order: Optional[int] = None
    severity: Union[DataIntegritySeverity, str, None] = None
    description: Optional[str] = None
    introduction: Optional[str] = None
    recommendation: Optional[str] = None
    issues_id_type: Optional[str] = None
    is_slow: bool = False
    is_programmatic: bool = False
    average_execution_time: Optional[int] = None
    code: Optional[str] = None


@_attrs(auto_attribs=True, slots=True, repr=False, frozen=True)
class DataIntegrityIssue(_Model):
    """One finding of a check: the object's UID (when it has one), a name, and more."""

    id: Optional[str] = None
    name: Optional[str] = None
    comment: Optional[str] = None
    refs: List[str] = attr.Factory(list)


@_attrs(auto_attribs=True, slots=True, repr=False)
class DataIntegrityResult(_Model):
    """A check's result: a summary (``count``/``percentage``) or details (``issues``).

    ``count`` is DHIS2's count for a summary; for details it is ``len(issues)``.
    ``error`` is set (and ``count`` is -1) when the check failed on the server.
    ``issues`` is ``None`` for a summary.
    """

    name: str
    display_name: Optional[str] = None
    section: Optional[str] = None
    severity: Union[DataIntegritySeverity, str, None] = None
    code: Optional[str] = None
    count: Optional[int] = None
    percentage: Optional[float] = None
    issues: Optional[List[DataIntegrityIssue]] = None
    start_time: Optional[datetime.datetime] = None
    finished_time: Optional[datetime.datetime] = None
    error: Optional[str] = None
    average_execution_time: Optional[int] = None
    issues_id_type: Optional[str] = None
    # What DHIS2 says about the check itself (unwrapped into every result on
    # 2.37+; 2.37/2.38 send only description/introduction/recommendation).
    description: Optional[str] = None
    introduction: Optional[str] = None
    recommendation: Optional[str] = None
    is_slow: Optional[bool] = None
    is_programmatic: Optional[bool] = None
    section_order: Optional[int] = None

    @property
    def failed(self) -> bool:
        """True when the check itself failed on the server (see ``error``)."""
        return self.error is not None


@_attrs(auto_attribs=True, slots=True, repr=False)
class DataIntegrityReport(_Model):
    """Results by check name, in the order DHIS2 (or the legacy mapping) gave them.

    ``details`` says whether the results carry issues.  Round-trips through JSON
    with :func:`dhis2maint.to_json` / :func:`dhis2maint.from_json` (dicts:
    ``dhis2maint.convert.report_to_dict`` / ``report_from_dict``) so runs can be
    saved and compared later.
    """

    results: Dict[str, DataIntegrityResult] = attr.Factory(dict)
    details: bool = False
    #: Where the report came from (``None`` when unknown, e.g. an old saved file):
    #: the server's base URL (never credentials), its DHIS2 version text, the
    #: run's job id, when the run was made by the client's clock (UTC) and by
    #: the server's (server-local, DHIS2 sends no zone).
    base_url: Optional[str] = None
    dhis2_version: Optional[str] = None
    job_id: Optional[str] = None
    run_at: Optional[datetime.datetime] = None
    server_time: Optional[datetime.datetime] = None

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[DataIntegrityResult]:
        return iter(self.results.values())

    def __getitem__(self, name: str) -> DataIntegrityResult:
        return self.results[name]

    def __contains__(self, name: object) -> bool:
        return name in self.results

    def issue_rows(self) -> Iterator["IntegrityIssueRow"]:
        """Every issue as an :class:`IntegrityIssueRow`, check by check."""
        row = _model("IntegrityIssueRow")
        for result in self.results.values():
            for issue in result.issues or ():
                yield row(result.name, result.display_name,
                                        result.severity, issue)

    # -- the verdict, as SchedulerHealth gives it (#21.6) --

    @property
    def total_issues(self) -> int:
        """Issues over every check that ran; a failed check (``count`` -1) adds none."""
        return sum(_issue_count(r) for r in self.results.values())

    @property
    def failed_checks(self) -> List[DataIntegrityResult]:
        """The checks that failed on the server (``error`` set, or ``count`` -1)."""
        return [r for r in self.results.values() if _check_failed(r)]

    def at_least(self, severity: Union[DataIntegritySeverity, str]
                 ) -> List[DataIntegrityResult]:
        """The checks with issues whose severity is ``severity`` (a name, any case)
        or worse; ``ValueError`` for an unknown severity."""
        return [r for r in self.results.values()
                if _issue_count(r) > 0 and _at_least(r.severity, severity)]


def _check_failed(result: DataIntegrityResult) -> bool:
    return result.error is not None or (result.count is not None and result.count < 0)


def _issue_count(result: DataIntegrityResult) -> int:
    """The issues a result reports: 0 for a failed check, else its count (summary)
    or its issues (details)."""
    if _check_failed(result):
        return 0
    if result.count is not None:
        return result.count
    return len(result.issues or ())


@_attrs(auto_attribs=True, slots=True, repr=False, frozen=True)
class IntegrityIssueRow(_Model):
    """One issue tagged with its check: what :meth:`Session.iter_integrity_issues` yields."""

    check_name: str
    check_display_name: Optional[str]
    severity: Union[DataIntegritySeverity, str, None]
    issue: DataIntegrityIssue


def _at_least(severity: Union[DataIntegritySeverity, str, None],
              min_severity: Union[DataIntegritySeverity, str, None]) -> bool:
    if min_severity is None:
        return True
    if str(min_severity).upper() not in _SEVERITY_ORDER:
        raise ValueError("severity must be one of {}, got {!r}".format(
            ", ".join(_SEVERITY_ORDER), min_severity))
    return severity_rank(str(severity or "WARNING")) >= severity_rank(str(min_severity))


@_attrs(auto_attribs=True, slots=True, repr=False, frozen=True)
class CountChange(_Model):
    """How one check's count differs between two reports (see :func:`compare_reports`).

    ``old``/``new`` are the counts; ``None`` when the check is missing from that
    report, ``-1`` when it failed there.  ``severity`` and ``display_name`` come
    from the newer report that has the check.
    """

    check_name: str
    display_name: Optional[str] = None
    severity: Union[DataIntegritySeverity, str, None] = None
    old: Optional[int] = None
    new: Optional[int] = None

    @property
    def appeared(self) -> bool:
        """The check is only in the new report."""
        return self.old is None and self.new is not None

    @property
    def disappeared(self) -> bool:
        """The check is only in the old report."""
        return self.new is None and self.old is not None

    @property
    def failed(self) -> bool:
        """The check failed on the server in the new report (count -1)."""
        return self.new is not None and self.new < 0

    @property
    def delta(self) -> Optional[int]:
        """``new - old`` when both counts are known and valid, else ``None``."""
        if self.old is None or self.new is None or self.old < 0 or self.new < 0:
            return None
        return self.new - self.old

    @property
    def worsened(self) -> bool:
        """The count rose (both counts known and valid)."""
        delta = self.delta
        return delta is not None and delta > 0

    @property
    def improved(self) -> bool:
        """The count fell (both counts known and valid)."""
        delta = self.delta
        return delta is not None and delta < 0


@_attrs(auto_attribs=True, slots=True, repr=False, frozen=True)
class IssueChange(_Model):
    """The same issue (same check and id, or name when it has no id) in both
    reports, with a different comment, name or refs."""

    old: IntegrityIssueRow
    new: IntegrityIssueRow


@_attrs(auto_attribs=True, slots=True, repr=False)
class ReportComparison(_Model):
    """What changed between two data-integrity reports (:func:`dhis2maint.compare_reports`).

    * ``new_issues``: issues in the new report that the old one did not have (new
      report order); ``resolved_issues``: issues gone since the old report (old
      report order).  Only checks that carry issues in BOTH reports are compared,
      so both lists are empty for summary reports (``issues_compared`` is False).
    * ``changed_issues``: same issue, different comment/refs/name.
    * ``count_changes``: check name -> :class:`CountChange`, for every check whose
      count differs, appeared or disappeared (unchanged checks are left out).
    """

    new_issues: List[IntegrityIssueRow] = attr.Factory(list)
    resolved_issues: List[IntegrityIssueRow] = attr.Factory(list)
    changed_issues: List[IssueChange] = attr.Factory(list)
    count_changes: Dict[str, CountChange] = attr.Factory(dict)
    issues_compared: bool = False

    @property
    def has_changes(self) -> bool:
        return bool(self.new_issues or self.resolved_issues or self.changed_issues
                    or self.count_changes)

    def worsened(self, min_severity: Union[DataIntegritySeverity, str, None] = None
                 ) -> List[CountChange]:
        """Count changes whose count rose, for checks of ``min_severity`` or worse."""
        return [c for c in self.count_changes.values()
                if c.worsened and _at_least(c.severity, min_severity)]

    def improved(self, min_severity: Union[DataIntegritySeverity, str, None] = None
                 ) -> List[CountChange]:
        """Count changes whose count fell, for checks of ``min_severity`` or worse."""
        return [c for c in self.count_changes.values()
                if c.improved and _at_least(c.severity, min_severity)]

    def new_issues_at_least(self, min_severity: Union[DataIntegritySeverity, str, None]
                            ) -> List[IntegrityIssueRow]:
        """``new_issues`` of checks of ``min_severity`` or worse."""
        return [r for r in self.new_issues if _at_least(r.severity, min_severity)]


# ---------------------------------------------------------------------------
# Jobs and notifications


@_attrs(auto_attribs=True, slots=True, repr=False)
class Notification(_Model):
    """One task notification from ``/api/system/tasks/{jobType}/{jobId}``."""

    id: Optional[str] = None
    uid: Optional[str] = None
    level: Union[NotificationLevel, str, None] = None
    category: Union[JobType, str, None] = None
    time: Optional[datetime.datetime] = None
    message: Optional[str] = None
    completed: bool = False
    data_type: Union[NotificationDataType, str, None] = None
    data: Any = None

    @property
    def failed(self) -> bool:
        return self.level == NotificationLevel.ERROR

    def __str__(self) -> str:
        """One readable line: time, level, message (``job.wait(on_notification=print)``)."""
        when = self.time.isoformat(sep=" ", timespec="seconds") if self.time else "-"
        text = " ".join(str(self.message or "").split())
        return "{} {} {}{}".format(when, self.level or "-", text,
                                   " (completed)" if self.completed else "").rstrip()


@_attrs(auto_attribs=True, slots=True, repr=False, eq=False)
class Job(_Model):
    """A background job DHIS2 accepted: ``id``, ``job_type``, ``created`` and DHIS2's fields.

    ``wait()`` follows it to the end (see :meth:`Session.wait_for_task`).
    """

    id: str
    job_type: Union[JobType, str]
    created: Optional[datetime.datetime] = None
    name: Optional[str] = None
    job_status: Union[JobStatus, str, None] = None
    job_parameters: Optional[Dict[str, Any]] = None
    relative_notifier_endpoint: Optional[str] = None
    message: Optional[str] = None
    session: Any = attr.ib(default=None, repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Job):
            return NotImplemented
        return (self.id, str(self.job_type)) == (other.id, str(other.job_type))

    def __hash__(self) -> int:
        return hash((self.id, str(self.job_type)))

    def wait(self, timeout: Optional[float] = None, poll_interval: Optional[float] = None,
             on_notification: Optional[Callable[[Notification], Any]] = None,
             max_interval: Optional[float] = None) -> Notification:
        """Follow this job until it ends; return the final :class:`Notification`.

        Raises :class:`JobFailedError` or :class:`TaskTimeoutError`; see
        :meth:`Session.wait_for_task`.
        """
        if self.session is None:
            raise ValueError("this Job is not bound to a Session; use session.wait_for_task()")
        kwargs: Dict[str, float] = {}
        if poll_interval is not None:
            kwargs["poll_interval"] = poll_interval
        if max_interval is not None:
            kwargs["max_interval"] = max_interval
        return cast("Notification", self.session.wait_for_task(
            self.job_type, self.id, timeout=timeout, on_notification=on_notification, **kwargs))


@_attrs(auto_attribs=True, slots=True, repr=False)
class JobConfiguration(_Model):
    """A job configuration as ``/api/jobConfigurations`` lists it (every version), or
    the stored record of a run-once job (``/api/jobConfigurations/{id}``, 2.41+).

    Fields a version does not send stay ``None`` (see the README's table): e.g.
    ``last_finished``, ``last_alive``, ``error_codes``, ``executed_by`` and
    ``queue_name`` are 2.41+; ``next_execution_time`` is stored on 2.36,
    "next fire after now" on 2.37-2.40 and computed from ``last_executed`` on
    2.41+ (so only there can it lie in the past).  All times are the server's
    local time without a zone.  Read ``enabled``, not ``job_status``, for "is it on".
    """

    id: Optional[str] = None
    name: Optional[str] = None
    job_type: Union[JobType, str, None] = None
    enabled: Optional[bool] = None
    job_status: Union[JobStatus, str, None] = None
    last_executed_status: Union[JobStatus, str, None] = None
    last_executed: Optional[datetime.datetime] = None
    last_finished: Optional[datetime.datetime] = None
    last_alive: Optional[datetime.datetime] = None
    last_runtime_execution: Optional[str] = None
    display_name: Optional[str] = None
    cron_expression: Optional[str] = None
    delay: Optional[int] = None
    scheduling_type: Optional[str] = None
    configurable: Optional[bool] = None
    next_execution_time: Optional[datetime.datetime] = None
    max_delayed_execution_time: Optional[datetime.datetime] = None
    error_codes: Optional[str] = None
    queue_name: Optional[str] = None
    queue_position: Optional[int] = None
    executed_by: Any = None
    user_uid: Optional[str] = None
    job_parameters: Optional[Dict[str, Any]] = None
    leader_only_job: Optional[bool] = None
    created: Optional[datetime.datetime] = None
    last_updated: Optional[datetime.datetime] = None

    @property
    def is_run_once(self) -> bool:
        """An ad-hoc run (2.41+ ``ONCE_ASAP`` row without cron, delay or queue), not a
        scheduled job (DHIS2's ``JobConfiguration.isRunOnce``)."""
        return (str(self.scheduling_type or "") == "ONCE_ASAP" and not self.cron_expression
                and self.delay is None and not self.queue_name)

    @property
    def error_code_list(self) -> List[str]:
        """``error_codes`` ("E4000 E7006", 2.41+) as a list; ``[]`` when there are none."""
        return (self.error_codes or "").split()

    @property
    def runtime_seconds(self) -> Optional[float]:
        """``last_runtime_execution`` (``H:MM:SS.mmm``) in seconds, or ``None``."""
        return parse_hms(self.last_runtime_execution)


# ---------------------------------------------------------------------------
# Synchronous operations


@_attrs(auto_attribs=True, slots=True, repr=False)
class PredictorRun(_Model):
    """The answer of a predictor run: DHIS2's message and the predictions it generated."""

    message: Optional[str] = None
    predictions: Optional[int] = None
    status: Optional[str] = None
    #: the predictor or predictor group UID that was run (both None: all predictors)
    predictor: Optional[str] = None
    predictor_group: Optional[str] = None


@_attrs(auto_attribs=True, slots=True, repr=False)
class ValidationViolation(_Model):
    """One validation rule violation from ``POST /api/dataAnalysis/validationRules``."""

    validation_rule_id: Optional[str] = None
    validation_rule_description: Optional[str] = None
    organisation_unit_id: Optional[str] = None
    organisation_unit_display_name: Optional[str] = None
    organisation_unit_path: Optional[str] = None
    organisation_unit_ancestor_names: Optional[str] = None
    period_id: Optional[str] = None
    period_display_name: Optional[str] = None
    attribute_option_combo_id: Optional[str] = None
    attribute_option_combo_display_name: Optional[str] = None
    importance: Optional[str] = None
    left_side_value: Optional[float] = None
    operator: Optional[str] = None
    right_side_value: Optional[float] = None


@_attrs(auto_attribs=True, slots=True, repr=False, frozen=True)
class CategoryOptionCombo(_Model):
    """One category option combo: its UID and name."""

    id: Optional[str] = None
    name: Optional[str] = None


@_attrs(auto_attribs=True, slots=True, repr=False)
class CategoryComboState(_Model):
    """A category combo's option combos against what its categories call for.

    ``expected_count`` is the product of the categories' option counts.
    """

    id: str
    name: Optional[str] = None
    expected_count: int = 0
    category_option_combos: List[CategoryOptionCombo] = attr.Factory(list)

    @property
    def count(self) -> int:
        return len(self.category_option_combos)

    @property
    def complete(self) -> bool:
        return self.count >= self.expected_count


@_attrs(auto_attribs=True, slots=True, repr=False)
class ImportSummary(_Model):
    """What DHIS2 reports for a per-combo option-combo update
    (``POST /api/maintenance/categoryOptionComboUpdate/categoryCombo/{uid}``).

    ``imported`` = option combos added, ``deleted`` = obsolete ones pruned,
    ``updated`` = renamed, ``ignored`` = obsolete but not deletable (in use).
    ``descriptions`` holds each item's text, e.g. "Added missing category option
    combo: …"; ``conflicts`` the items' conflict texts.
    """

    status: Optional[str] = None
    message: Optional[str] = None
    imported: int = 0
    updated: int = 0
    deleted: int = 0
    ignored: int = 0
    total: int = 0
    descriptions: List[str] = attr.Factory(list)
    conflicts: List[str] = attr.Factory(list)


def parse_hms(text: Optional[str]) -> Optional[float]:
    """DHIS2's ``H:MM:SS.mmm`` duration (hours unbounded) in seconds; ``None`` when
    absent or unreadable."""
    if not text or not isinstance(text, str):
        return None
    parts = text.strip().split(":")
    if len(parts) != 3:
        return None
    try:
        return int(parts[0]) * 3600 + int(parts[1]) * 60 + float(parts[2])
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# Scheduler, validation results, health (issue #15)


@_attrs(auto_attribs=True, slots=True, repr=False)
class JobTypeInfo(_Model):
    """A job type a user may configure (``GET /api/jobConfigurations/jobTypes``)."""

    job_type: Union[JobType, str, None] = None
    name: Optional[str] = None
    scheduling_type: Optional[str] = None
    key: Optional[str] = None
    job_parameters: List[Any] = attr.Factory(list)


@_attrs(auto_attribs=True, slots=True, repr=False)
class RunningJob(_Model):
    """A job running now (``GET /api/scheduling/running``, 2.37+): DHIS2's ProcessInfo
    plus the job type it was listed under."""

    job_type: Union[JobType, str, None] = None
    job_id: Optional[str] = None
    status: Optional[str] = None
    description: Optional[str] = None
    started_time: Optional[datetime.datetime] = None
    completed_time: Optional[datetime.datetime] = None
    cancelled_time: Optional[datetime.datetime] = None
    summary: Optional[str] = None
    error: Optional[str] = None
    stages: List[str] = attr.Factory(list)


@_attrs(auto_attribs=True, slots=True, repr=False)
class ValidationResult(_Model):
    """One stored validation rule violation (``GET /api/validationResults``).

    ``id`` is DHIS2's numeric id (not a UID); the references are flattened to
    their id and name.
    """

    id: Optional[int] = None
    validation_rule_id: Optional[str] = None
    validation_rule_name: Optional[str] = None
    importance: Optional[str] = None
    organisation_unit_id: Optional[str] = None
    organisation_unit_name: Optional[str] = None
    period_id: Optional[str] = None
    attribute_option_combo_id: Optional[str] = None
    leftside_value: Optional[float] = None
    rightside_value: Optional[float] = None
    day_in_period: Optional[int] = None
    notification_sent: Optional[bool] = None
    created: Optional[datetime.datetime] = None


@_attrs(auto_attribs=True, slots=True, repr=False)
class UserInfo(_Model):
    """Who the session is logged in as (``GET /api/me`` + ``/api/me/authorities``)."""

    id: Optional[str] = None
    username: Optional[str] = None
    display_name: Optional[str] = None
    authorities: List[str] = attr.Factory(list)

    @property
    def superuser(self) -> bool:
        """Holds ``ALL`` (passes every ``hasRole('ALL') or …`` check)."""
        return "ALL" in self.authorities


@_attrs(auto_attribs=True, slots=True, frozen=True, repr=False)
class FollowUp(_Model):
    """What to do next, as data: an action and its arguments.

    The library decides *what* to do; each face words it for its reader --
    Python names the :class:`~dhis2maint.Session` call, the command line names
    its command, the MCP server names its tool.  ``action`` is a stable verb
    (``"wait_for_task"``, ``"run_job_configuration"``, …) and ``args`` its
    arguments as ordered ``(name, value)`` pairs; ``note`` is optional plain,
    face-neutral text saying what it is for, worded to read ``<note> with <call>``
    ("follow it" -> "follow it with session.wait_for_task(…)"; see
    :mod:`dhis2maint.followups`).
    """

    action: str
    args: Tuple[Tuple[str, Any], ...] = ()
    note: str = ""

    def arg(self, name: str, default: Any = None) -> Any:
        """The value of argument ``name`` (``default`` when absent)."""
        for key, value in self.args:
            if key == name:
                return value
        return default


@_attrs(auto_attribs=True, slots=True, repr=False)
class HealthFinding(_Model):
    """One thing wrong with the scheduler, with what to do about it.

    ``kind``: ``failed``, ``stuck``, ``overdue``, ``disabled_system_job``,
    ``missing_system_job``, ``analytics_stale``, ``analytics_never``,
    ``scheduler_dead``.  ``severity``: INFO, WARNING, SEVERE or CRITICAL
    (the integrity severities, so ``--fail-on`` works the same).

    What to do is data: ``follow_ups`` (:class:`FollowUp` records, e.g. run the
    job again) and ``advice`` (face-neutral text that needs no call, e.g. "check
    the server log"); ``what_to_do`` is both in one sentence in Python's words
    (``session.run_job_configuration('…', wait=True)``).  The command line and
    the MCP server word the same follow-ups as their own commands and tools.
    """

    kind: str
    severity: str
    message: str
    what_to_do: str
    job_id: Optional[str] = None
    job_name: Optional[str] = None
    job_type: Union[JobType, str, None] = None
    error_codes: List[str] = attr.Factory(list)
    since: Optional[datetime.datetime] = None
    follow_ups: Tuple[FollowUp, ...] = ()
    advice: str = ""


@_attrs(auto_attribs=True, slots=True, repr=False)
class SchedulerHealth(_Model):
    """:meth:`Session.scheduler_health`'s verdict: the findings, worst first.

    ``server_time`` is the server's own clock (naive, server-local) that every
    job time was compared with.
    """

    server_version: Optional[str] = None
    server_time: Optional[datetime.datetime] = None
    jobs_checked: int = 0
    findings: List[HealthFinding] = attr.Factory(list)

    @property
    def ok(self) -> bool:
        """No finding of WARNING or worse."""
        return not self.at_least("WARNING")

    @property
    def worst(self) -> Optional[str]:
        """The worst finding's severity, or ``None`` when there are none."""
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=severity_rank)

    def at_least(self, severity: Union[DataIntegritySeverity, str]
                 ) -> List[HealthFinding]:
        """The findings of ``severity`` (a name, any case) or worse."""
        return [f for f in self.findings if _at_least(f.severity, severity)]


@_attrs(auto_attribs=True, slots=True, repr=False)
class DoctorCheck(_Model):
    """One line of :meth:`Session.doctor`: ``status`` is ``pass``, ``warn``, ``fail``
    or ``skip``; ``fix`` says what to do when it is not ``pass``, in Python's
    words; as data: ``follow_ups`` (:class:`FollowUp` records) and ``advice``
    (the face-neutral rest), as on :class:`HealthFinding`."""

    name: str
    status: str
    detail: str
    fix: Optional[str] = None
    follow_ups: Tuple[FollowUp, ...] = ()
    advice: Optional[str] = None


@_attrs(auto_attribs=True, slots=True, repr=False)
class DoctorReport(_Model):
    """Everything :meth:`Session.doctor` checked, in order."""

    url: str
    checks: List[DoctorCheck] = attr.Factory(list)

    @property
    def failed(self) -> List[DoctorCheck]:
        """The checks that failed."""
        return [c for c in self.checks if c.status == "fail"]

    @property
    def ok(self) -> bool:
        """No check failed (warnings allowed)."""
        return not self.failed


# -- server health as DHIS2 data values (dhis2maint.datavalues, #25) ------------------


def _new_import_count() -> "ImportCount":
    return cast("ImportCount", _model("ImportCount")())  # a default, built on first use


@_attrs(auto_attribs=True, slots=True, frozen=True, repr=False)
class DataValue(_Model):
    """One aggregate data value as ``POST /api/dataValueSets`` takes it (by UID).
    ``code`` is the data element's code, for messages."""

    data_element: str
    period: str
    org_unit: str
    value: str
    code: str = ""

    def to_json(self) -> Dict[str, str]:
        """The ``dataValues`` entry DHIS2 reads."""
        return {"dataElement": self.data_element, "period": self.period,
                "orgUnit": self.org_unit, "value": self.value}


@_attrs(auto_attribs=True, slots=True, repr=False)
class ImportCount(_Model):
    """How many objects or values were imported (created), updated, ignored, deleted."""

    imported: int = 0
    updated: int = 0
    ignored: int = 0
    deleted: int = 0

    @property
    def total(self) -> int:
        return self.imported + self.updated + self.ignored + self.deleted


@_attrs(auto_attribs=True, slots=True, frozen=True, repr=False)
class ImportConflict(_Model):
    """One conflict or error report DHIS2 gave: what (``object``: a UID, a property, an
    object type), why (``value``: DHIS2's message), ``error_code`` (``E7610``, 2.38+)."""

    object: Optional[str]
    value: str
    error_code: Optional[str] = None
    property: Optional[str] = None

    def __str__(self) -> str:
        code = " [{}]".format(self.error_code) if self.error_code else ""
        what = "{}: ".format(self.object) if self.object else ""
        return "{}{}{}".format(what, self.value, code)


@_attrs(auto_attribs=True, slots=True, repr=False)
class DataValueImportSummary(_Model):
    """``POST /api/dataValueSets``' answer: ``status`` SUCCESS/WARNING/ERROR, the counts,
    the conflicts.  Values re-sent unchanged count as ``ignored`` without a conflict:
    that is not an error.  ``period`` the period sent (one POST per day)."""

    status: str
    import_count: ImportCount = attr.Factory(_new_import_count)
    conflicts: List[ImportConflict] = attr.Factory(list)
    description: Optional[str] = None
    dry_run: bool = False
    period: Optional[str] = None
    sent: int = 0

    @property
    def ok(self) -> bool:
        return not self.conflicts and self.status not in ("ERROR", "WARNING")


@_attrs(auto_attribs=True, slots=True, repr=False)
class MetadataTypeReport(_Model):
    """One object type of a metadata import: ``object_type`` (``DataElement``), its
    counts (``imported`` = created), and its errors."""

    object_type: str
    count: ImportCount = attr.Factory(_new_import_count)
    errors: List[ImportConflict] = attr.Factory(list)


@_attrs(auto_attribs=True, slots=True, repr=False)
class MetadataImportReport(_Model):
    """``POST /api/metadata``'s answer: ``status`` OK/WARNING/ERROR, the counts over all
    types (``imported`` = created), per object type, and every error report."""

    status: str
    count: ImportCount = attr.Factory(_new_import_count)
    types: Dict[str, MetadataTypeReport] = attr.Factory(dict)
    errors: List[ImportConflict] = attr.Factory(list)
    dry_run: bool = False
    prefix: str = "DM_"  # datavalues.DEFAULT_PREFIX
    org_unit: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.status == "OK" and not self.errors


@_attrs(auto_attribs=True, slots=True, repr=False)
class DataValuesStatus(_Model):
    """What pushing needs, as :meth:`Session.data_values_status` found it.

    ``expected`` codes setup would create, ``present`` those that exist, ``missing``
    those that do not; ``missing_checks`` the check names among them (a check a DHIS2
    upgrade added: setup again adds it).  ``data_set``/``org_unit`` UIDs (``None`` when
    unknown).  ``can_import_metadata``: the user may create each type setup makes
    (``datavalues.SETUP_AUTHORITIES``: its public or private add, or ALL).  ``can_write_data``:
    the data set's data sharing lets the user write, and the org unit is within the
    user's org units (``None`` when the data set does not exist yet).  ``problems``:
    one face-neutral sentence per thing wrong.
    """

    prefix: str
    expected: List[str] = attr.Factory(list)
    present: List[str] = attr.Factory(list)
    missing: List[str] = attr.Factory(list)
    missing_checks: List[str] = attr.Factory(list)
    data_set: Optional[str] = None
    org_unit: Optional[str] = None
    can_import_metadata: bool = False
    can_write_data: Optional[bool] = None
    problems: List[str] = attr.Factory(list)
    follow_ups: Tuple[FollowUp, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def _unbind_pending() -> None:  # each is built on first use (see _build)
    for name in _PENDING:
        del globals()[name]


_unbind_pending()
