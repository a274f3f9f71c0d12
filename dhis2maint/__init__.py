"""dhis2maint: keep a DHIS2 server healthy from Python.

Data-integrity checks, background jobs (analytics, resource tables, monitoring,
predictors, validation, maintenance, category option combos) and their task
notifications, for DHIS2 2.36 - 2.43.  Everything starts from :class:`Session`.
"""
__version__ = "0.1.0"

import typing as _typing

from . import models
from .convert import from_json, to_json
from .datavalues import ImportConflictError
from .errors import (ApiError, AuthenticationError, BadRequest, ConfigurationError,
                     ConflictError, Dhis2Error, InvalidResponseError, JobFailedError,
                     NotFound, PermissionDenied, ServerError, TaskTimeoutError,
                     TransportError, UnsupportedServerError)
from .integrity import compare_reports
from .session import BasicAuth, Session, TokenAuth
from .versions import parse_version

if _typing.TYPE_CHECKING:
    from .models import (CategoryComboState, CategoryOptionCombo, CountChange,
                         DataIntegrityCheck, DataIntegrityIssue, DataIntegrityReport,
                         DataIntegrityResult, DataIntegritySeverity, DoctorCheck, DoctorReport,
                         HealthFinding, IntegrityIssueRow, IssueChange, Job, JobConfiguration,
                         JobStatus, JobType, JobTypeInfo, Notification, NotificationDataType,
                         NotificationLevel, PredictorRun, ReportComparison, RunningJob,
                         SchedulerHealth, UserInfo, ValidationResult, ValidationViolation)

# The models are built on first use (see dhis2maint.models); so are these names.
_MODELS = frozenset((
    "CategoryComboState", "CategoryOptionCombo", "CountChange", "DataIntegrityCheck",
    "DataIntegrityIssue", "DataIntegrityReport", "DataIntegrityResult", "DataIntegritySeverity",
    "DoctorCheck", "DoctorReport", "HealthFinding", "IntegrityIssueRow", "IssueChange", "Job",
    "JobConfiguration", "JobStatus", "JobType", "JobTypeInfo", "Notification",
    "NotificationDataType", "NotificationLevel", "PredictorRun", "ReportComparison",
    "RunningJob", "SchedulerHealth", "UserInfo", "ValidationResult", "ValidationViolation"))


def __getattr__(name: str) -> _typing.Any:
    if name in _MODELS:
        value = getattr(models, name)
        globals()[name] = value
        return value
    raise AttributeError("module {!r} has no attribute {!r}".format(__name__, name))


def __dir__() -> _typing.List[str]:
    return sorted(set(globals()) | _MODELS)


__all__ = [
    "__version__",
    "Session", "TokenAuth", "BasicAuth",
    "to_json", "from_json", "parse_version",
    # errors
    "Dhis2Error", "ConfigurationError", "TransportError", "ApiError", "BadRequest",
    "AuthenticationError", "PermissionDenied", "NotFound", "ConflictError", "ServerError",
    "InvalidResponseError", "UnsupportedServerError", "JobFailedError", "TaskTimeoutError",
    "ImportConflictError",
    # models
    "DataIntegrityCheck", "DataIntegrityIssue", "DataIntegrityResult", "DataIntegrityReport",
    "IntegrityIssueRow", "DataIntegritySeverity", "Notification", "NotificationLevel",
    "NotificationDataType", "Job", "JobType", "JobStatus", "JobConfiguration",
    "PredictorRun", "ValidationViolation", "CategoryOptionCombo", "CategoryComboState",
    # scheduler, validation results, health (#15)
    "JobTypeInfo", "RunningJob", "ValidationResult", "UserInfo", "HealthFinding",
    "SchedulerHealth", "DoctorCheck", "DoctorReport",
    # integrity report comparison
    "compare_reports", "ReportComparison", "CountChange", "IssueChange",
]
