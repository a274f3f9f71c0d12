"""Every DHIS2 version difference dhis2maint knows about, in one place.

Code elsewhere asks ``supports(version, "feature")`` or calls
``require(version, "feature", "what the user asked for")`` instead of comparing
version numbers itself, so a new DHIS2 release means editing this table only.
"""
import re

from .errors import InvalidResponseError, UnsupportedServerError

__all__ = ["parse_version", "supports", "require", "FEATURES", "ANALYTICS_PARAMETERS"]

_VERSION = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[-+_ ].*)?\s*$")


def parse_version(text):
    """``"2.42.1"`` -> ``(2, 42, 1)``; ``"2.42.3.1"`` -> ``(2, 42, 3, 1)``;
    ``"2.43-SNAPSHOT"`` -> ``(2, 43, 0)``.  Raises :class:`InvalidResponseError`
    for anything else (the text came from the server)."""
    match = _VERSION.match(str(text)) if text is not None else None
    if not match:
        raise InvalidResponseError("not a DHIS2 version string: {!r}".format(text))
    major, minor, patch, hotfix = match.groups()
    parts = (int(major), int(minor), int(patch or 0))
    return parts + (int(hotfix),) if hotfix is not None else parts


# feature -> (first version that has it, first version that no longer has it or None)
FEATURES = {
    # POST /api/dataIntegrity + flattened report in taskSummaries (2.36 – 2.41)
    "integrity_flattened_report": ((2, 36), (2, 42)),
    # GET /api/dataIntegrity, /summary, /details, single-check endpoints, POST /summary|/details
    "integrity_checks_api": ((2, 37), None),
    # GET /api/dataIntegrity?section=&slow=&programmatic= and /summary/running|completed
    "integrity_filters": ((2, 39), None),
    # POST /api/dataIntegrity/details runs as job type DATA_INTEGRITY_DETAILS (before: DATA_INTEGRITY)
    "integrity_details_job_type": ((2, 39), None),
    # unknown check names are dropped by the server (before: nulls, or a job that never ends)
    "integrity_drops_unknown_names": ((2, 41), None),
    # GET /api/jobConfigurations/{id} knows run-once jobs
    "job_configurations": ((2, 41), None),
    # NotificationLevel LOOP
    "notification_loop_level": ((2, 37), None),
    # saving a category combo generates its option combos
    "coc_generated_on_save": ((2, 0), (2, 43)),
    # /api/maintenance/* answer 200 + WebMessage (before: 204 No Content)
    "maintenance_ok_message": ((2, 43), None),
    # soft-deleted removal paths named after the tracker model of 2.39+
    "maintenance_tracker_names": ((2, 39), None),
    "maintenance_relationship_removal": ((2, 39), None),
    # validation analysis accepts maxResults
    "validation_max_results": ((2, 42), None),
}

# analytics parameter -> first version that accepts it
ANALYTICS_PARAMETERS = {
    "lastYears": (2, 0),
    "skipResourceTables": (2, 0),
    "skipAggregate": (2, 0),
    "skipEvents": (2, 0),
    "skipEnrollment": (2, 0),
    "skipOrgUnitOwnership": (2, 39),
    "skipValidationResult": (2, 39),
    "skipTrackedEntities": (2, 39),
    "skipOutliers": (2, 39),
}


def supports(version, feature):
    """Whether a server of ``version`` (a tuple) has ``feature`` (a FEATURES key)."""
    first, gone = FEATURES[feature]
    version = tuple(version[:2])
    return version >= first and (gone is None or version < gone)


def version_text(version):
    return ".".join(str(p) for p in version)


def require(version, feature, what):
    """Raise :class:`UnsupportedServerError` unless ``version`` supports ``feature``."""
    if supports(version, feature):
        return
    first, gone = FEATURES[feature]
    if version[:2] < first:
        need = "DHIS2 {} or newer".format(version_text(first))
    else:
        need = "DHIS2 older than {}".format(version_text(gone))
    raise UnsupportedServerError("{} needs {}; this server runs {}".format(
        what, need, version_text(version)))
