"""Every DHIS2 version difference dhis2maint knows about, in one place.

Code elsewhere asks ``supports(version, "feature")`` or calls
``require(version, "feature", "what the user asked for")`` instead of comparing
version numbers itself, so a new DHIS2 release means editing this table only.
"""
import re
from typing import Optional, Sequence, Tuple

from .errors import InvalidResponseError, UnsupportedServerError

__all__ = ["parse_version", "supports", "require", "at_least", "Version", "check_code",
           "FEATURES", "ANALYTICS_PARAMETERS", "BACKPORTED_FEATURES", "MAINTENANCE_NAMES",
           "maintenance_name"]

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
    # summary/details integrity jobs post task notifications (JobType.isUsingNotifications);
    # on 2.37-2.40 they run with a no-op JobProgress and their feed stays empty
    "integrity_run_notifications": ((2, 41), None),
    # GET /api/jobConfigurations/{id} knows run-once jobs
    "job_configurations": ((2, 41), None),
    # JobConfiguration has executedBy and errorCodes (schedulingType: every version)
    "job_error_codes": ((2, 41), None),
    # POST /api/predictorGroups/{uid}/run (PredictorGroupController; 2.36/2.37 lack it)
    "predictor_group_run": ((2, 38), None),
    # GET /api/dataIntegrity lists `code` and `checks` accepts codes (2.37/2.38: names and
    # wildcards only; dhis2maint derives the codes the same way, see check_code)
    "integrity_codes": ((2, 39), None),
    # NotificationLevel LOOP
    "notification_loop_level": ((2, 37), None),
    # saving a category combo generates its option combos
    "coc_generated_on_save": ((2, 0), (2, 43)),
    # /api/maintenance/* answer 200 + WebMessage (before: 204 No Content)
    "maintenance_ok_message": ((2, 43), None),
    # soft-deleted removal paths named after the new tracker model (softDeletedEventRemoval
    # etc.): 2.41+ (2.41 also keeps the old names); see MAINTENANCE_NAMES
    "maintenance_tracker_names": ((2, 41), None),
    "maintenance_relationship_removal": ((2, 39), None),
    # validation analysis accepts maxResults: backported to 2.41.4 and 2.42.1 (not 2.42.0),
    # so the patch-level truth is in BACKPORTED_FEATURES; this row is the coarse range
    "validation_max_results": ((2, 41), None),
}

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
    first, gone = FEATURES[feature]
    version = tuple(version[:2])
    return version >= first and (gone is None or version < gone)


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
    first, gone = FEATURES[feature]
    if version[:2] < first:
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
