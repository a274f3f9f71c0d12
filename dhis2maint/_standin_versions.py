"""The stand-in's server-side version table: every difference between the DHIS2
versions it simulates (2.36 to 2.43) is a row of :data:`_VERSION_FEATURES` (one
column per version, in ``_VERSIONS`` order) or one of the per-version tables below
(job types, maintenance paths).  Route modules read the row for their server as
``api.f[name]`` or gate a route on it (``route(..., feature=name)``); the scheduler
(``_standin_scheduler``) still compares its ``minor`` in place.

Standard library only; part of :mod:`dhis2maint.testing`.
"""
import re
from typing import Any, Dict, Tuple

_VERSIONS = ("2.36", "2.37", "2.38", "2.39", "2.40", "2.41", "2.42", "2.43")
_F, _T = False, True
_VERSION_FEATURES = {
    # data integrity API generation: legacy = only POST + flattened report
    "integrity_api": ("legacy", "mixed", "mixed", "modern", "modern", "modern", "modern", "modern"),
    # which check catalogue GET /api/dataIntegrity serves
    "catalogue": ("legacy", "mixed", "mixed", "2.42", "2.42", "2.42", "2.42", "2.43"),
    # `type` of the job started by a plain POST /api/dataIntegrity (None: no parameters)
    "plain_post_type": (None, "REPORT", "REPORT", "REPORT", "REPORT", "REPORT", "SUMMARY", "SUMMARY"),
    # format of the flattened report stored in taskSummaries by REPORT jobs
    "report_format": ("2.36", "2.37", "2.37", "2.37", "2.37", "2.37", None, None),
    "details_job_type": ("DATA_INTEGRITY",) * 3 + ("DATA_INTEGRITY_DETAILS",) * 5,
    # checks may also be sent as a JSON array body
    "json_body_checks": (_F, _F, _F, _T, _T, _T, _T, _T),
    # 409 "Data integrity check is already running" while one of that job type runs
    "integrity_conflict": (_F, _T, _T, _T, _T, _F, _F, _F),
    "integrity_conflict_code": (None, None, None, None, "E1004", None, None, None),
    # a second start of a running job type is queued (200) and runs afterwards
    "queue_same_type": (_F, _F, _F, _F, _F, _T, _T, _T),
    # job names: legacy = runDataIntegrity/inMemoryAnalyticsJob, underscore = TYPE_<ms>, paren = TYPE (<ms>)
    "job_naming": ("legacy", "legacy", "legacy", "underscore", "underscore", "paren", "paren", "paren"),
    "response_type": (_F, _F, _F, _F, _F, _F, _T, _T),
    # Location header on /api/resourceTables* replies
    "job_location": (_F, _F, _F, _F, _F, _F, _T, _T),
    "created_job_status": ("RUNNING", "SCHEDULED", "SCHEDULED", "SCHEDULED", "SCHEDULED",
                           "NOT_STARTED", "NOT_STARTED", "NOT_STARTED"),
    "job_configurations": (_F, _F, _F, _F, _F, _T, _T, _T),
    # job ids in /api/system/tasks/{type}/{id} and jobConfigurations must be UIDs (else 400)
    "uid_job_ids": (_F, _F, _F, _F, _F, _F, _T, _T),
    # JobProgress notifications of integrity jobs: none = NoopJobProgress (DATA_INTEGRITY is
    # not a notifying job type), error-only = start/end with message "" plus ERRORs
    "integrity_progress": ("none",) * 5 + ("error-only",) * 3,
    "loop_level": (_F, _T, _T, _T, _T, _T, _T, _T),
    "params_data": (_F, _F, _T, _T, _T, _T, _T, _T),
    "notification_ids": ("job", "job", "job", "time", "time", "time", "time", "time"),
    "task_gist": (_F, _F, _F, _T, _T, _T, _T, _T),
    "tasks_delete": (_F, _F, _F, _F, _F, _F, _T, _T),
    # GET /api/dataIntegrity filters section/slow/programmatic, running/completed sets, startTime
    "list_filters": (_F, _F, _F, _T, _T, _T, _T, _T),
    "metrics": (_F, _F, _F, _F, _F, _F, _T, _T),
    "analytics_params": ("legacy", "legacy", "legacy", "full", "full", "full", "full", "full"),
    "maintenance_paths": ("2.38", "2.38", "2.38", "2.40", "2.40", "2.41", "2.42", "2.42"),
    # 2.43: maintenance endpoints answer 200 {"httpStatus":"OK",...} instead of 204
    "maintenance_ok_body": (_F, _F, _F, _F, _F, _F, _F, _T),
    # category option combos generated when a category combo is saved
    "coc_on_save": (_T, _T, _T, _T, _T, _T, _T, _F),
    "validation_max_results": (_F, _F, _F, _F, _F, _F, _T, _T),
    "predictor_date_order": (_F, _F, _F, _F, _F, _F, _F, _T),
    # POST /api/predictorGroups/{uid}/run (PredictorGroupController.java: 2.38+)
    "predictor_group_run": (_F, _F, _T, _T, _T, _T, _T, _T),
    "api_max_version": (36, 37, 38, 39, 40, 41, 42, 43),
    # /api/scheduling/running(/types), /api/scheduling/cancel/{type} (2.37+); GET /api/scheduler (2.40+)
    "scheduling_api": (_F, _T, _T, _T, _T, _T, _T, _T),
    "scheduler_api": (_F, _F, _F, _F, _T, _T, _T, _T),
    # /api/me/authorities answers any method on 2.36 (@RequestMapping, MeController.java@2.36:280);
    # @GetMapping from 2.37 (MeController.java@2.37:286)
    "me_any_method": (_T, _F, _F, _F, _F, _F, _F, _F),
    # /api/me: top-level username (MeDto, 2.38+); userCredentials.username (until 2.41)
    "me_username": (_F, _F, _T, _T, _T, _T, _T, _T),
    "me_user_credentials": (_T, _T, _T, _T, _T, _T, _F, _F),
    # --- data values and metadata imports (#25; _standin_datavalues) ---
    # POST /api/dataValueSets and /api/metadata answer a WebMessage wrapping the summary (409 when
    # it has conflicts) from 2.37 (WebMessageUtils.importSummary/importReport,
    # withPlainResponseBefore(V38): /api/37/... and older paths still get the bare summary)
    "import_web_message": (_F, _T, _T, _T, _T, _T, _T, _T),
    # ImportConflict.errorCode/property/indexes (2.37+; 2.36: object and value only)
    "conflict_error_codes": (_F, _T, _T, _T, _T, _T, _T, _T),
    # re-sent unchanged data values count as ignored (dataValueUpdateShouldBeIgnored, 2.38+;
    # before: updated)
    "unchanged_values_ignored": (_F, _F, _T, _T, _T, _T, _T, _T),
    "job_types": _VERSIONS,
}

# JobType.java (dhis-2/dhis-api/src/main/java/org/hisp/dhis/scheduling/JobType.java) per branch:
# job type -> (first minor, last minor) that has it; 44 = master
_JOB_TYPE_RANGES = {}  # type: Dict[str, Tuple[int, int]]
for _first, _last, _names in (
        (36, 44, "DATA_STATISTICS DATA_INTEGRITY RESOURCE_TABLE ANALYTICS_TABLE CONTINUOUS_ANALYTICS_TABLE "
                 "DATA_SYNC FILE_RESOURCE_CLEANUP IMAGE_PROCESSING META_DATA_SYNC SMS_SEND SEND_SCHEDULED_MESSAGE "
                 "PROGRAM_NOTIFICATIONS VALIDATION_RESULTS_NOTIFICATION CREDENTIALS_EXPIRY_ALERT MONITORING "
                 "PREDICTOR DATA_SET_NOTIFICATION REMOVE_USED_OR_EXPIRED_RESERVED_VALUES TRACKER_IMPORT_JOB "
                 "TRACKER_IMPORT_NOTIFICATION_JOB TRACKER_IMPORT_RULE_ENGINE_JOB "
                 "COMPLETE_DATA_SET_REGISTRATION_IMPORT DATAVALUE_IMPORT_INTERNAL METADATA_IMPORT DATAVALUE_IMPORT "
                 "DISABLE_INACTIVE_USERS MOCK GML_IMPORT"),
        (36, 40, "LEADER_ELECTION LEADER_RENEWAL ANALYTICSTABLE_UPDATE PROGRAM_DATA_SYNC"),
        (36, 41, "TRACKER_PROGRAMS_DATA_SYNC EVENT_PROGRAMS_DATA_SYNC EVENT_IMPORT ENROLLMENT_IMPORT TEI_IMPORT"),
        (36, 42, "PUSH_ANALYSIS"),
        (37, 44, "ACCOUNT_EXPIRY_ALERT TEST"),
        (38, 42, "TRACKER_SEARCH_OPTIMIZATION"),
        (38, 44, "SYSTEM_VERSION_UPDATE_CHECK"),
        (39, 44, "DATA_INTEGRITY_DETAILS AGGREGATE_DATA_EXCHANGE GEOJSON_IMPORT"),
        (40, 44, "MATERIALIZED_SQL_VIEW_UPDATE"),
        (41, 44, "HTML_PUSH_ANALYTICS LOCK_EXCEPTION_CLEANUP HOUSEKEEPING DATA_VALUE_TRIM"),
        (42, 44, "SINGLE_EVENT_DATA_SYNC TRACKED_ENTITY_DATA_SYNC SMS_INBOUND_PROCESSING"),
        (43, 44, "TRACKER_TRIGRAM_INDEX_MAINTENANCE")):
    for _name in _names.split():
        _JOB_TYPE_RANGES[_name] = (_first, _last)
_JOB_TYPE_SETS = {"2.%d" % minor: frozenset(n for n, (lo, hi) in _JOB_TYPE_RANGES.items() if lo <= minor <= hi)
                  for minor in range(36, 44)}

# /api/maintenance/{path} operations per era (POST and PUT; GET appReload is separate)
_MAINT_COMMON = ["analyticsTablesClear", "analyticsTablesAnalyze", "expiredInvitationsClear", "ouPathsUpdate",
                 "periodPruning", "zeroDataValueRemoval", "softDeletedDataValueRemoval"]
_MAINT_OLD = ["softDeletedProgramStageInstanceRemoval", "softDeletedProgramInstanceRemoval",
              "softDeletedTrackedEntityInstanceRemoval"]
_MAINT_NEW = ["softDeletedEventRemoval", "softDeletedEnrollmentRemoval", "softDeletedTrackedEntityRemoval"]
_MAINT_TAIL = ["sqlViewsCreate", "sqlViewsDrop", "categoryOptionComboUpdate", "cacheClear", "cache"]
_MAINT_PATHS = {
    "2.38": _MAINT_COMMON + _MAINT_OLD + _MAINT_TAIL,
    "2.40": _MAINT_COMMON + _MAINT_OLD + ["softDeletedRelationshipRemoval"] + _MAINT_TAIL,
    "2.41": _MAINT_COMMON + _MAINT_OLD + _MAINT_NEW + ["softDeletedRelationshipRemoval"] + _MAINT_TAIL,
    "2.42": _MAINT_COMMON + _MAINT_NEW + ["softDeletedRelationshipRemoval"] + _MAINT_TAIL,
}
# flags of POST /api/maintenance in execution order -> operation name recorded in maintenance_log
_MAINT_FLAGS = [
    ("analyticsTableClear", "analyticsTablesClear"), ("analyticsTableAnalyze", "analyticsTablesAnalyze"),
    ("expiredInvitationsClear", "expiredInvitationsClear"), ("ouPathsUpdate", "ouPathsUpdate"),
    ("periodPruning", "periodPruning"), ("zeroDataValueRemoval", "zeroDataValueRemoval"),
    ("softDeletedDataValueRemoval", "softDeletedDataValueRemoval"),
    ("softDeletedRelationshipRemoval", "softDeletedRelationshipRemoval"),
    ("softDeletedEventRemoval", "softDeletedEventRemoval"),
    ("softDeletedEnrollmentRemoval", "softDeletedEnrollmentRemoval"),
    ("softDeletedTrackedEntityInstanceRemoval", "softDeletedTrackedEntityInstanceRemoval"),
    ("softDeletedTrackedEntityRemoval", "softDeletedTrackedEntityRemoval"),
    ("sqlViewsDrop", "sqlViewsDrop"), ("sqlViewsCreate", "sqlViewsCreate"),
    ("categoryOptionComboUpdate", "categoryOptionComboUpdate"), ("cacheClear", "cacheClear"),
    ("appReload", "appReload"), ("resourceTableUpdate", "resourceTableUpdate"),
]

_ANALYTICS_FLAGS = [  # query flag -> analytics table types it skips
    ("skipAggregate", ["DATA_VALUE", "COMPLETENESS", "COMPLETENESS_TARGET"]),
    ("skipValidationResult", ["VALIDATION_RESULT"]),
    ("skipEvents", ["EVENT"]),
    ("skipEnrollment", ["ENROLLMENT"]),
    ("skipOrgUnitOwnership", ["OWNERSHIP"]),
    ("skipTrackedEntities", ["TRACKED_ENTITY_INSTANCE", "TRACKED_ENTITY_INSTANCE_EVENTS",
                             "TRACKED_ENTITY_INSTANCE_ENROLLMENTS"]),
]
_LEGACY_ANALYTICS_FLAGS = ("skipResourceTables", "skipAggregate", "skipEvents", "skipEnrollment")
_TABLE_TYPES = ["DATA_VALUE", "COMPLETENESS", "COMPLETENESS_TARGET", "ORG_UNIT_TARGET", "VALIDATION_RESULT",
                "EVENT", "ENROLLMENT", "OWNERSHIP", "TRACKED_ENTITY_INSTANCE", "TRACKED_ENTITY_INSTANCE_EVENTS",
                "TRACKED_ENTITY_INSTANCE_ENROLLMENTS"]


def _features(minor):
    # type: (int) -> Dict[str, Any]
    column = _VERSIONS.index("2.%d" % min(max(minor, 36), 43))
    return {name: values[column] for name, values in _VERSION_FEATURES.items()}


def _parse_version(version):
    # type: (str) -> Tuple[int, str]
    """Return (minor, full version string as /api/system/info reports it)."""
    m = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?(-.+)?$", str(version).strip())
    if not m or int(m.group(1)) != 2 or int(m.group(2)) < 36:
        raise ValueError("unsupported DHIS2 version %r (2.36 to 2.43 are simulated)" % (version,))
    full = version if (m.group(3) or m.group(5)) else version + ".0"
    return int(m.group(2)), full
