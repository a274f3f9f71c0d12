"""Every DHIS2 version difference dhis2maint knows about, in one place.

Code elsewhere asks ``supports(version, "feature")`` or calls
``require(version, "feature", "what the user asked for")`` instead of comparing
version numbers itself, so a new DHIS2 release means editing this table only.
"""
import re
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from .errors import InvalidResponseError, UnsupportedServerError

__all__ = ["parse_version", "supports", "require", "at_least", "Version", "check_code",
           "Feature", "FEATURES", "AUTHORITIES", "SUPPORTED_VERSIONS", "task_features",
           "lacking", "tested", "within", "authorities", "analytics_parameters_to_check",
           "require_analytics_parameter",
           "ANALYTICS_PARAMETERS", "BACKPORTED_FEATURES", "MAINTENANCE_NAMES",
           "maintenance_name", "version_text"]

_VERSION = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?([-+_ ].*)?\s*$")
_SNAPSHOT = re.compile(r"snapshot", re.I)


class Version(Tuple[int, ...]):
    """A DHIS2 version: a tuple such as ``(2, 41, 4)`` that also keeps the text the
    server sent (``text``) and whether it is a development build (``snapshot``,
    e.g. ``2.41.4-SNAPSHOT``).  Compares, hashes and prints as the plain tuple."""

    text: str = ""
    snapshot: bool = False

    def __new__(cls, parts: Sequence[int], text: Optional[str] = None,
                snapshot: bool = False) -> "Version":
        self = super().__new__(cls, tuple(parts))
        self.text = text if text is not None else ".".join(str(p) for p in parts)
        self.snapshot = bool(snapshot)
        return self

    def __getnewargs__(self) -> Tuple[Tuple[int, ...], str, bool]:
        return (tuple(self), self.text, self.snapshot)

    def __repr__(self) -> str:
        return repr(tuple(self))


def parse_version(text: Optional[str]) -> Tuple[int, ...]:
    """``"2.42.1"`` -> ``(2, 42, 1)``; ``"2.42.3.1"`` -> ``(2, 42, 3, 1)``;
    ``"2.43-SNAPSHOT"`` -> ``(2, 43, 0)`` with ``snapshot`` True.  Returns a
    :class:`Version`.  Raises :class:`InvalidResponseError` for anything else (the
    text came from the server)."""
    match = _VERSION.match(str(text)) if text is not None else None
    if not match:
        raise InvalidResponseError("not a DHIS2 version string: {!r}".format(text))
    major, minor, patch, hotfix, suffix = match.groups()
    parts: Tuple[int, ...] = (int(major), int(minor), int(patch or 0))
    if hotfix is not None:
        parts += (int(hotfix),)
    return Version(parts, str(text).strip(), bool(suffix and _SNAPSHOT.search(suffix)))


def _release_key(version: Sequence[int]) -> Tuple[int, ...]:
    """``version`` padded to four numbers for patch-level comparisons.  A SNAPSHOT of
    x.y.z is a build on the way to x.y.z: it has only what x.y.(z-1) has, so its
    patch number counts one lower (x.y.0-SNAPSHOT: before every x.y release)."""
    parts = tuple(version) + (0,) * (4 - len(version))
    if getattr(version, "snapshot", False):
        parts = parts[:2] + (parts[2] - 1, 1 << 30)
    return parts[:4]


def at_least(version: Sequence[int], first: Sequence[int]) -> bool:
    """Whether ``version`` is ``first`` or newer, compared on the full version
    (patch level), with a SNAPSHOT build counting as its previous patch release."""
    return _release_key(version) >= tuple(first) + (0,) * (4 - len(first))


def check_code(name: str) -> str:
    """A data-integrity check's code as DHIS2 2.39+ computes it
    (``DataIntegrityCheck.getCodeFromName``): the first letter of each
    ``_``-separated word, upper-cased; ``categories_no_options`` -> ``CNO``."""
    return "".join(word[0].upper() for word in name.split("_") if word)


class Feature(NamedTuple):
    """One row of :data:`FEATURES`: a DHIS2 capability dhis2maint adapts to.

    ``first``: the first version that has it; ``gone``: the first version that
    no longer has it (``None``: still there); both compared on the minor version
    (patch-level differences live in :data:`BACKPORTED_FEATURES`).
    ``description``: one line saying what it is, as the doctor lists what a
    server lacks.  ``kind``: ``"api"`` a capability a user may miss on an older
    server (the doctor lists what the server lacks), ``"detail"`` a difference
    dhis2maint adapts to without the user noticing, ``"task"`` something a user
    does (the doctor's authority checks, ``doctor --need``).
    """

    name: str
    first: Tuple[int, ...]
    gone: Optional[Tuple[int, ...]]
    description: str
    kind: str = "detail"


_ALL = (2, 0)  # every version dhis2maint knows

#: The version table: every DHIS2 feature whose presence depends on the version.
#: Sources: the DHIS2 source of each branch (see the comments and ops notes).
_FEATURE_ROWS = (
    # --- data integrity
    Feature("integrity_flattened_report", (2, 36), (2, 42),
            "POST /api/dataIntegrity with the flattened report in taskSummaries"),
    Feature("integrity_checks_api", (2, 37), None,
            "integrity summary/details API (2.36: flattened report only)", kind="api"),
    Feature("integrity_filters", (2, 39), None,
            "integrity check filters (section, slow, programmatic) and "
            "/summary|/details/running|completed", kind="api"),
    # POST /api/dataIntegrity/details runs as job type DATA_INTEGRITY_DETAILS (before: DATA_INTEGRITY)
    Feature("integrity_details_job_type", (2, 39), None,
            "integrity details runs as job type DATA_INTEGRITY_DETAILS"),
    Feature("integrity_drops_unknown_names", (2, 41), None,
            "unknown integrity check names are dropped (before: nulls, or a job that never "
            "ends)"),
    # JobType.isUsingNotifications; on 2.37-2.40 they run with a no-op JobProgress
    Feature("integrity_run_notifications", (2, 41), None,
            "task notifications for summary/details integrity runs", kind="api"),
    # 2.37/2.38: names and wildcards only; dhis2maint derives the codes (check_code)
    Feature("integrity_codes", (2, 39), None,
            "integrity check codes (GET /api/dataIntegrity lists `code`, `checks` takes them)", kind="api"),
    # --- jobs, tasks and the scheduler
    Feature("notification_loop_level", (2, 37), None, "task notification level LOOP"),
    Feature("running_job_types", (2, 37), None,
            "/api/scheduling: running jobs and cancel by job type", kind="api"),
    Feature("job_cancel_by_type", (2, 37), None, "cancel the running job of a job type"),
    # 2.36 stores lastExecuted at the END of a run; 2.37+ at its start
    Feature("last_executed_is_start", (2, 37), None,
            "a running job's lastExecuted is the start of the run"),
    # 2.36 plans nextExecutionTime at startup only
    Feature("next_execution_replanned", (2, 37), None,
            "a job's next run is re-planned while DHIS2 runs (2.36: at startup only)"),
    Feature("job_enable_endpoints", (2, 38), None,
            "jobs enable/disable endpoints (PATCH used instead)", kind="api"),
    Feature("ping", (2, 38), None, "GET /api/ping", kind="api"),
    # a system job refused: HTTP 422 before, 409 Conflict from 2.38 (scheduler notes)
    Feature("system_job_conflict_409", (2, 38), None,
            "changing a system job is refused with 409 Conflict (before: 422)"),
    Feature("scheduler_list", (2, 40), None, "/api/scheduler and DELETE /api/system/tasks", kind="api"),
    Feature("job_configurations", (2, 41), None,
            "stored run-once jobs: GET /api/jobConfigurations/{id} knows ad-hoc runs", kind="api"),
    Feature("run_once_job_rows", (2, 41), None,
            "ad-hoc runs are job configuration rows (ONCE_ASAP)"),
    Feature("job_error_codes", (2, 41), None, "a job configuration's executedBy and errorCodes", kind="api"),
    Feature("job_heartbeat", (2, 41), None, "a running job's heartbeat (lastAlive)", kind="api"),
    Feature("job_progress", (2, 41), None, "GET /api/jobConfigurations/{id}/progress"),
    # sch/JobConfiguration@2.41: the new scheduler's columns
    Feature("job_run_fields", (2, 41), None,
            "job configurations list lastFinished, lastAlive, errorCodes, queueName, "
            "queuePosition, executedBy and maxDelayedExecutionTime"),
    Feature("scheduling_type", (2, 41), None,
            "job configurations take schedulingType (FIXED_DELAY for a delay)"),
    # 2.41+ answers 409 "Failed to transition job into ONCE_ASAP state"; before, DHIS2
    # accepts the run of a disabled job and does nothing
    Feature("disabled_job_run_refused", (2, 41), None,
            "running a disabled job is refused (before: accepted, and nothing runs)"),
    Feature("job_cancel_by_id", (2, 41), None, "cancel one running job by its id", kind="api"),
    Feature("scheduler_seconds_to_next", (2, 41), None,
            "secondsToNextExecutionTime in /api/scheduler (exact overdue detection)", kind="api"),
    # HOUSEKEEPING every 20 s re-creates the system jobs by UID (before: at startup, by name)
    Feature("system_jobs_by_uid", (2, 41), None,
            "system jobs re-created by uid every 20 s (Housekeeping)"),
    Feature("predictor_group_run", (2, 38), None,
            "POST /api/predictorGroups/{uid}/run", kind="api"),
    # validation analysis accepts maxResults: backported to 2.41.4 and 2.42.1 (not 2.42.0),
    # so the patch-level truth is in BACKPORTED_FEATURES; this row is the coarse range
    Feature("validation_max_results", (2, 41), None, "validation analysis maxResults"),
    # --- metadata, system, users
    Feature("coc_generated_on_save", _ALL, (2, 43),
            "saving a category combo generates its option combos"),
    Feature("system_info_fields", (2, 38), None, "GET /api/system/info?fields="),
    # MeDto (ctl/user/MeDto.java@2.38); 2.36/2.37: userCredentials.username only
    Feature("me_username", (2, 38), None, "GET /api/me has a top-level username"),
    # --- data values and metadata imports (#25, datavalues.py reads both shapes on every version)
    # WebMessageUtils.importSummary/importReport + withPlainResponseBefore(V38) (2.37): a WebMessage
    # (409 when there are conflicts or errors) unless the path is /api/37/ or older; 2.36: bare
    Feature("import_summary_web_message", (2, 37), None,
            "POST /api/dataValueSets and /api/metadata answer a WebMessage wrapping the import "
            "summary (409 with conflicts); before, the bare summary"),
    # dxf2/importsummary/ImportConflict.java@2.37: errorCode, property, indexes, objects
    Feature("import_conflict_codes", (2, 37), None,
            "data value import conflicts carry an errorCode (E7610, …)"),
    # DefaultDataValueSetService.dataValueUpdateShouldBeIgnored (2.38)
    Feature("unchanged_values_ignored", (2, 38), None,
            "re-sent unchanged data values count as ignored (before: updated)"),
    # --- maintenance
    Feature("maintenance_ok_message", (2, 43), None,
            "/api/maintenance/* answer 200 with a WebMessage (before: 204 No Content)"),
    # soft-deleted removal named after the new tracker model (2.41 keeps the old names too);
    # see MAINTENANCE_NAMES
    Feature("maintenance_tracker_names", (2, 41), None,
            "soft-deleted removal paths named after the tracker model"),
    Feature("maintenance_relationship_removal", (2, 39), None,
            "soft-deleted relationship removal"),
    # --- what a user does: the doctor's authority checks (AUTHORITIES says who may)
    Feature("integrity", _ALL, None, "run data-integrity checks and read their results",
            kind="task"),
    Feature("analytics", _ALL, None, "rebuild analytics and resource tables, run monitoring",
            kind="task"),
    Feature("maintenance", _ALL, None,
            "/api/maintenance operations (cache clear, soft-deleted removal, …)", kind="task"),
    Feature("data_pruning", _ALL, None, "delete all data of an org unit or data element",
            kind="task"),
    Feature("predictors", _ALL, None, "run predictors", kind="task"),
    Feature("validation", _ALL, None, "run validation rule analysis", kind="task"),
    Feature("validation_notifications", _ALL, None, "send validation result notifications",
            kind="task"),
    Feature("validation_result_deletion", _ALL, None, "delete stored validation results",
            kind="task"),
    Feature("scheduler_admin", _ALL, None, "create, update and delete job configurations",
            kind="task"),
    Feature("job_cancel", (2, 41), None,
            "cancel one running job by id (or be the job's executor)", kind="task"),
)

#: feature name -> :class:`Feature` (the version table).
FEATURES = {feature.name: feature for feature in _FEATURE_ROWS}  # type: Dict[str, Feature]

_M = ("ALL", "F_PERFORM_MAINTENANCE")

#: task feature -> ((first, gone or None, any-of authorities), ...): the authorities the
#: endpoints behind it ask for on each version (@PreAuthorize/@RequiresAuthority of
#: ctl/DataIntegrityController, ResourceTableController, MaintenanceController,
#: PredictorController(+Group), DataAnalysisController, validation/ValidationController
#: (sendNotifications), validation/ValidationResultController,
#: sd/JobConfigurationSchemaDescriptor, sch/JobConfigurationController (cancel)).
AUTHORITIES = {
    "integrity": ((_ALL, None, _M),),
    "analytics": ((_ALL, None, _M),),
    "maintenance": ((_ALL, None, _M),),
    "data_pruning": ((_ALL, None, ("ALL",)),),
    "predictors": ((_ALL, None, ("ALL", "F_PREDICTOR_RUN")),),
    "validation": ((_ALL, None, ("ALL", "F_RUN_VALIDATION")),),
    "validation_notifications": ((_ALL, (2, 42), ("ALL", "M_dhis-web-app-management")),
                                 ((2, 42), None, ("ALL", "F_RUN_VALIDATION"))),
    # hasRole('F_PERFORM_MAINTENANCE') without hasRole('ALL') up to 2.41: ALL alone is refused
    "validation_result_deletion": ((_ALL, (2, 42), ("F_PERFORM_MAINTENANCE",)),
                                   ((2, 42), None, _M)),
    "scheduler_admin": ((_ALL, None, ("ALL", "F_SCHEDULING_ADMIN")),),
    "job_cancel": (((2, 41), None, _M),),
}  # type: Dict[str, Tuple[Tuple[Tuple[int, ...], Optional[Tuple[int, ...]], Tuple[str, ...]], ...]]

#: Oldest and newest DHIS2 minor versions dhis2maint is built and tested for.
SUPPORTED_VERSIONS = ((2, 36), (2, 43))


def task_features() -> List[Feature]:
    """The features a user does (the doctor's authority checks), in table order."""
    return [feature for feature in _FEATURE_ROWS if feature.kind == "task"]


def lacking(version: Sequence[int]) -> List[Feature]:
    """The ``api`` features a server of ``version`` lacks that newer ones have, in
    table order (what the doctor lists)."""
    return [feature for feature in _FEATURE_ROWS
            if feature.kind == "api" and feature.gone is None
            and not supports(version, feature.name)]


def tested(version: Sequence[int]) -> bool:
    """Whether ``version`` is within :data:`SUPPORTED_VERSIONS`."""
    return SUPPORTED_VERSIONS[0] <= tuple(version[:2]) <= SUPPORTED_VERSIONS[1]


def within(version: Sequence[int], first: Sequence[int], gone: Optional[Sequence[int]]) -> bool:
    """Whether ``version`` is ``first`` or newer and older than ``gone`` (minor versions;
    ``gone`` ``None``: no end) -- for tables kept beside their domain (system jobs)."""
    minor = tuple(version[:2])
    return minor >= tuple(first) and (gone is None or minor < tuple(gone))


def authorities(version: Sequence[int], feature: str) -> Optional[Tuple[str, ...]]:
    """The authorities of which a user needs one for task ``feature`` on ``version``;
    ``None`` where the version lacks the feature."""
    if not supports(version, feature):
        return None
    for first, gone, any_of in AUTHORITIES[feature]:
        if within(version, first, gone):
            return any_of
    return None


# feature -> ((first, gone), ...) compared on the FULL version, for features backported
# in a patch release.  supports()/require() consult this table first.
BACKPORTED_FEATURES = {
    # ValidationRulesAnalysisParams.maxResults: tags 2.41.4+ and 2.42.1+ have it
    "validation_max_results": (((2, 41, 4), (2, 42)), ((2, 42, 1), None)),
    # GET /api/system/tasks[/{jobType}] abridge each job to [newest, oldest] (`gist`, default on)
    # and list the most recently active job first; before: complete lists in hash order.
    # (Informational: get_latest_task does not depend on it.)
    "task_gist": (((2, 40, 8), (2, 41)), ((2, 41, 4), None)),
}

# POST /api/resourceTables/analytics parameter -> first version that accepts it, compared
# on the full version (checked against the release tags of ResourceTableController).
# Spring ignores unknown query parameters, so an unsupported one would be silently dropped.
ANALYTICS_PARAMETERS = {
    "lastYears": (2, 0),
    "skipResourceTables": (2, 0),
    "skipAggregate": (2, 0),
    "skipEvents": (2, 0),
    "skipEnrollment": (2, 0),
    "skipOrgUnitOwnership": (2, 39),
    "skipTrackedEntities": (2, 41),
    "skipOutliers": (2, 41),
    "skipValidationResult": (2, 41, 1),
}

def analytics_parameters_to_check(names: Iterable[str]) -> List[str]:
    """Those of the analytics parameters ``names`` that some supported DHIS2 lacks
    (the others need no look-up of the server's version), oldest first."""
    oldest = SUPPORTED_VERSIONS[0]
    return [name for first, name in sorted((ANALYTICS_PARAMETERS[n], n) for n in names)
            if not at_least(oldest, first)]


def require_analytics_parameter(version: Sequence[int], name: str) -> None:
    """:class:`UnsupportedServerError` unless a server of ``version`` accepts the
    analytics parameter ``name`` (compared on the full version)."""
    first = ANALYTICS_PARAMETERS[name]
    if not at_least(version, first):
        raise UnsupportedServerError(
            "analytics parameter {} needs DHIS2 {} or newer; this server runs {}".format(
                name, version_text(first), version_text(version)))


# /api/maintenance names that differ by version: (kind, 2.42 name) -> ((first version,
# name the server uses from then on), ...) newest first.  kind "path" is a sub-path of
# /api/maintenance, kind "flag" a boolean parameter of POST /api/maintenance.  A server
# older than the last entry lacks the operation.  Names not listed are the same on 2.36+.
MAINTENANCE_NAMES = {
    ("path", "softDeletedEventRemoval"): (
        ((2, 41), "softDeletedEventRemoval"), ((2, 0), "softDeletedProgramStageInstanceRemoval")),
    ("path", "softDeletedEnrollmentRemoval"): (
        ((2, 41), "softDeletedEnrollmentRemoval"), ((2, 0), "softDeletedProgramInstanceRemoval")),
    ("path", "softDeletedTrackedEntityRemoval"): (
        ((2, 41), "softDeletedTrackedEntityRemoval"),
        ((2, 0), "softDeletedTrackedEntityInstanceRemoval")),
    ("path", "softDeletedRelationshipRemoval"): (((2, 39), "softDeletedRelationshipRemoval"),),
    ("flag", "softDeletedTrackedEntityRemoval"): (
        ((2, 41), "softDeletedTrackedEntityRemoval"),
        ((2, 0), "softDeletedTrackedEntityInstanceRemoval")),
    ("flag", "softDeletedRelationshipRemoval"): (((2, 39), "softDeletedRelationshipRemoval"),),
}


def maintenance_name(version: Sequence[int], kind: str, name: str) -> str:
    """The name a server of ``version`` uses for the 2.42 maintenance ``name``
    (``kind`` ``"path"`` or ``"flag"``); :class:`UnsupportedServerError` if it has none."""
    entries = MAINTENANCE_NAMES.get((kind, name))
    if entries is None:
        return name
    for first, server_name in entries:
        if tuple(version) >= first:
            return server_name
    raise UnsupportedServerError("maintenance {} {!r} needs DHIS2 {} or newer; this server "
                                 "runs {}".format(kind, name, version_text(entries[-1][0]),
                                                  version_text(version)))


def supports(version: Sequence[int], feature: str) -> bool:
    """Whether a server of ``version`` (a tuple) has ``feature`` (a FEATURES key)."""
    if feature in BACKPORTED_FEATURES:
        return any(at_least(version, first) and (gone is None or not at_least(version, gone))
                   for first, gone in BACKPORTED_FEATURES[feature])
    row = FEATURES[feature]
    return within(version, row.first, row.gone)


def version_text(version: Sequence[int]) -> str:
    """``(2, 42, 1)`` -> ``"2.42.1"``; a :class:`Version` gives the server's own text
    (so a SNAPSHOT build says so)."""
    text = getattr(version, "text", None)
    return text if text else ".".join(str(p) for p in version)


def require(version: Tuple[int, ...], feature: str, what: str) -> None:
    """Raise :class:`UnsupportedServerError` unless ``version`` supports ``feature``."""
    if supports(version, feature):
        return
    if feature in BACKPORTED_FEATURES:
        need = "DHIS2 " + " or ".join(
            "{}+{}".format(version_text(first), "" if gone is None else
                           " (before {})".format(version_text(gone)))
            for first, gone in BACKPORTED_FEATURES[feature])
        raise UnsupportedServerError("{} needs {}; this server runs {}".format(
            what, need, version_text(version)))
    first, gone = FEATURES[feature][1:3]
    if not within(version, first, None):
        need = "DHIS2 {} or newer".format(version_text(first))
    else:
        assert gone is not None  # supports() was False, so the feature is gone here
        need = "DHIS2 older than {}".format(version_text(gone))
    raise UnsupportedServerError("{} needs {}; this server runs {}".format(
        what, need, version_text(version)))


# The 33 legacy data-integrity checks of DHIS2 2.36-2.38 and their keys in the flattened
# report (FlattenedDataIntegrityReport, /api/system/taskSummaries/DATA_INTEGRITY/{id}):
# (report key, kind, check name on 2.37/2.38, the 2.42 check that replaced it or None).
# kind: "L" list of names, "M" map name -> list of names, "C" map name -> reason,
# "G" list of groups (indicators sharing a formula).  Order = the report's field order.
# integrity.py maps every flattened report through this one table.
LEGACY_INTEGRITY_CHECKS = (
    ("dataElementsWithoutDataSet", "L", "data_elements_without_data_sets",
     "data_elements_without_datasets"),
    ("dataElementsWithoutGroups", "L", "data_elements_without_groups",
     "data_elements_aggregate_no_groups"),
    ("dataElementsAssignedToDataSetsWithDifferentPeriodTypes", "M",
     "data_elements_assigned_to_data_sets_with_different_period_types",
     "data_elements_aggregate_with_different_period_types"),
    ("dataElementsViolatingExclusiveGroupSets", "M", "data_elements_violating_exclusive_group_sets",
     "data_elements_violating_exclusive_group_sets"),
    ("dataElementsInDataSetNotInForm", "M", "data_elements_in_data_set_not_in_form",
     "data_elements_in_data_set_not_in_form"),
    ("invalidCategoryCombos", "L", "category_combos_being_invalid", "invalid_category_combos"),
    ("dataSetsNotAssignedToOrganisationUnits", "L", "data_sets_not_assigned_to_org_units",
     "datasets_not_assigned_to_org_units"),
    ("indicatorsWithIdenticalFormulas", "G", "indicators_with_identical_formulas",
     "indicators_with_identical_formulas"),
    ("indicatorsWithoutGroups", "L", "indicators_without_groups", "indicators_not_grouped"),
    ("invalidIndicatorNumerators", "C", "indicators_with_invalid_numerator",
     "indicators_with_invalid_numerator"),
    ("invalidIndicatorDenominators", "C", "indicators_with_invalid_denominator",
     "indicators_with_invalid_denominator"),
    ("indicatorsViolatingExclusiveGroupSets", "M", "indicators_violating_exclusive_group_sets",
     "indicators_violating_exclusive_group_sets"),
    ("duplicatePeriods", "L", "periods_duplicates", "periods_same_start_date_period_type"),
    ("organisationUnitsWithCyclicReferences", "L", "org_units_with_cyclic_references",
     "org_units_with_cyclic_references"),
    ("orphanedOrganisationUnits", "L", "org_units_being_orphaned", "orgunits_orphaned"),
    ("organisationUnitsWithoutGroups", "L", "org_units_without_groups",
     "organisation_units_without_groups"),
    ("organisationUnitsViolatingExclusiveGroupSets", "M", "org_units_violating_exclusive_group_sets",
     "organisation_units_violating_exclusive_group_sets"),
    ("organisationUnitGroupsWithoutGroupSets", "L", "org_unit_groups_without_group_sets", None),
    ("validationRulesWithoutGroups", "L", "validation_rules_without_groups",
     "validation_rules_without_groups"),
    ("invalidValidationRuleLeftSideExpressions", "C",
     "validation_rules_with_invalid_left_side_expression",
     "validation_rules_with_invalid_left_side_expression"),
    ("invalidValidationRuleRightSideExpressions", "C",
     "validation_rules_with_invalid_right_side_expression",
     "validation_rules_with_invalid_right_side_expression"),
    ("invalidProgramIndicatorExpressions", "C", "program_indicators_with_invalid_expressions",
     "program_indicators_with_invalid_expressions"),
    ("programIndicatorsWithNoExpression", "L", "program_indicators_without_expression",
     "program_indicators_without_expression"),
    ("invalidProgramIndicatorFilters", "C", "program_indicators_with_invalid_filters",
     "program_indicators_with_invalid_filters"),
    ("programRulesWithNoCondition", "M", "program_rules_without_condition",
     "program_rules_without_condition"),
    ("programRulesWithNoPriority", "M", "program_rules_without_priority",
     "program_rules_no_priority"),
    ("programRulesWithNoAction", "M", "program_rules_without_action", "program_rules_no_action"),
    ("programRuleVariablesWithNoDataElement", "M", "program_rule_variables_without_data_element",
     "program_rule_variables_without_data_element"),
    ("programRuleVariablesWithNoAttribute", "M", "program_rule_variables_without_attribute",
     "program_rule_variables_without_attribute"),
    ("programRuleActionsWithNoDataObject", "M", "program_rule_actions_without_data_object",
     "program_rule_actions_without_data_object"),
    ("programRuleActionsWithNoNotification", "M", "program_rule_actions_without_notification",
     "program_rule_actions_without_notification"),
    ("programRuleActionsWithNoSectionId", "M", "program_rule_actions_without_section",
     "program_rule_actions_without_section"),
    ("programRuleActionsWithNoStageId", "M", "program_rule_actions_without_stage",
     "program_rule_actions_without_stage_id"),
)
