"""dhis2maint: keep a DHIS2 server healthy from Python.

Data-integrity checks, background jobs (analytics, resource tables, monitoring,
predictors, validation, maintenance, category option combos) and their task
notifications, for DHIS2 2.36 - 2.43.  Everything starts from :class:`Session`.
"""
__version__ = "0.1.0"

from .convert import from_json, to_json
from .errors import (ApiError, AuthenticationError, BadRequest, ConfigurationError,
                     ConflictError, Dhis2Error, InvalidResponseError, JobFailedError,
                     NotFound, PermissionDenied, ServerError, TaskTimeoutError,
                     TransportError, UnsupportedServerError)
from .models import (CategoryComboState, CategoryOptionCombo, DataIntegrityCheck,
                     DataIntegrityIssue, DataIntegrityReport, DataIntegrityResult,
                     DataIntegritySeverity, IntegrityIssueRow, Job, JobConfiguration,
                     JobStatus, JobType, Notification, NotificationDataType,
                     NotificationLevel, PredictorRun, ValidationViolation)
from .models import (DoctorCheck, DoctorReport, HealthFinding, JobTypeInfo, RunningJob,
                     SchedulerHealth, UserInfo, ValidationResult)
from .integrity import compare_reports
from .models import CountChange, IssueChange, ReportComparison
from .session import BasicAuth, Session, TokenAuth
from .versions import parse_version

__all__ = [
    "__version__",
    "Session", "TokenAuth", "BasicAuth",
    "to_json", "from_json", "parse_version",
    # errors
    "Dhis2Error", "ConfigurationError", "TransportError", "ApiError", "BadRequest",
    "AuthenticationError", "PermissionDenied", "NotFound", "ConflictError", "ServerError",
    "InvalidResponseError", "UnsupportedServerError", "JobFailedError", "TaskTimeoutError",
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
