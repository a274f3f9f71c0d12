"""A standard-library stand-in for a DHIS2 server, for tests and demos.

``Dhis2StandIn`` speaks the DHIS2 Web API wire formats that dhis2maint uses
(data integrity, task notifications, job configurations, resource/analytics
tables, maintenance, predictors, validation analysis, category combos) for
DHIS2 2.36 to 2.43, over real HTTP on a free local port::

    from dhis2maint.testing import Dhis2StandIn

    with Dhis2StandIn(version="2.42", job_seconds=0.3) as srv:
        requests.get(srv.url + "/api/system/info", auth=("admin", "district"))

Jobs are simulated: a job runs for ``job_seconds`` of wall-clock time from its
start, and everything it does (notifications, cached results) is computed
lazily from the clock whenever a request comes in, so no background thread is
involved and results are deterministic for a given ``seed``.

Task notifications follow DHIS2's source: DATA_INTEGRITY(_DETAILS) is not a
"notifying" job type, so on 2.41+ an integrity job's feed holds only an empty
start message (carrying the job parameters), ERROR messages of failed checks
and an empty ``completed`` message; on 2.37-2.40 summary/details jobs post no
notifications at all (poll ``/summary/running`` or GET with ``timeout``).
Set ``verbose_notifications = True`` for stage and ``[i/n]`` LOOP messages.
Analytics, resource-table and monitoring jobs always post progress messages.

Fault knobs (``fail_next``, ``hang_next``, ``truncate_next``, ``drop_response_next``, ``html_next``,
``delay``, ``trickle``, ``fail_next_job``, ``conflict_next``,
``drop_feed_after_completion``, ``login_redirect``, ``set_issue_count``,
``fail_check``) let tests provoke the failures a real server or its proxy
produces; hostile ones (``gzip_bomb_next``, ``endless_body_next``, ``nan_next``,
``deep_nesting_next``, ``redirect_next``, ``huge_header_next``, ``answer_next``)
what a broken or compromised proxy could send; ``outage`` closes the listening
socket for a while (connection refused) while jobs go on.  Run ``python -m
dhis2maint.testing --port 8080`` for a server in the foreground; every knob
has a flag (``--help``).

This module uses only the standard library and imports nothing else from
dhis2maint but its stdlib-only siblings ``_standin_scheduler`` (job
configurations, /api/scheduling, /api/scheduler, /api/me, validation results;
``srv.scheduler``) and ``_standin_http`` (the HTTP plumbing both share).  It is
not imported by ``import dhis2maint``.
"""

import argparse
import base64
import binascii
import collections
import datetime
import functools
import heapq
import itertools
import gzip
import json
import os
import pkgutil
import re
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import (Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Set, Tuple,
                    TypeVar, cast)
from urllib.parse import parse_qs, quote, urlsplit

from ._standin_http import (_ALNUM, _CHUNK, _JSON_TYPE, _HttpError, _Response, _dumps, _fmt_hms,
                            _fmt_time, _hash_int, _od, _uid_from, _web_message)
from ._standin_scheduler import SchedulerState

__all__ = ["Dhis2StandIn", "RecordedRequest", "DEFAULT_USERS", "DEFAULT_TOKEN", "main"]

DEFAULT_USERS = {"admin": "district"}
DEFAULT_TOKEN = "d2pat_standin0000000000000000000000000000"

# ---------------------------------------------------------------------------
# Every difference between DHIS2 versions lives in this table (one column per
# version, in _VERSIONS order).  Nothing else in the module compares versions.
# ---------------------------------------------------------------------------
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

MAINT = ("ALL", "F_PERFORM_MAINTENANCE")
PREDICT = ("ALL", "F_PREDICTOR_RUN")
VALIDATE = ("ALL", "F_RUN_VALIDATION")
ALL_ONLY = ("ALL",)

_UID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{10}$")
_M6 = 62 ** 6
_MUL = 2654435761  # coprime with 62**6: issue ids are unique per check
_T2 = []  # type: List[str]  # the 3844 two-character alphanumeric strings, built on first use


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


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------
def _parse_bool(name, raw):
    # type: (str, str) -> bool
    if raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise _HttpError(400, "Value '%s' is not valid for parameter %s. It should be of type boolean" % (raw, name))


def _month_index(d):
    # type: (datetime.date) -> int
    return d.year * 12 + d.month - 1


def _parse_date(name, raw):
    # type: (str, Optional[str]) -> datetime.date
    """DHIS2 accepts yyyy-MM-dd, yyyy-MM, yyyy and ISO date-times."""
    if raw is None or raw == "":
        raise _HttpError(400, "Required request parameter '%s' for method parameter type Date is not present"
                         % name)
    m = re.match(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
                 r"(?:Z|[+-]\d{2}:?\d{2})?)?)?)?$", raw.strip())
    try:
        if not m:
            raise ValueError(raw)
        return datetime.date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
    except ValueError:
        raise _HttpError(400, "Value '%s' is not valid for parameter %s. It should be of type Date" % (raw, name))


class RecordedRequest(NamedTuple):
    """One request as received: method, path (without query), query (dict str -> list of str),
    headers (plain dict), body (bytes)."""

    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]
    body: bytes

_LOGIN_PAGE = (
    "<!DOCTYPE html>\n<html>\n<head>\n<title>DHIS 2</title>\n"
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n</head>\n<body>\n'
    '<div id="loginField">\n<form id="loginForm" action="../../dhis-web-commons-security/login.action" '
    'method="post">\n<input type="text" id="j_username" name="j_username">\n'
    '<input type="password" id="j_password" name="j_password" autocomplete="off">\n'
    '<input type="submit" id="submit" value="Sign in">\n</form>\n</div>\n</body>\n</html>\n')

_NGINX_REASONS = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out",
                  500: "Internal Server Error", 429: "Too Many Requests"}


def _nginx_page(code):
    # type: (int) -> bytes
    try:
        reason = _NGINX_REASONS.get(code) or HTTPStatus(code).phrase
    except ValueError:
        reason = "Error"
    return ("<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n"
            "<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n" % (code, reason, code, reason)
            ).encode("ascii")


# ---------------------------------------------------------------------------
# check catalogue and issue generation
# ---------------------------------------------------------------------------
def _load_catalogue_file():
    # type: () -> Dict[str, Any]
    """checks-2.42.json: next to this file, else as package data (e.g. from a zip)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checks-2.42.json")
    if os.path.exists(path):
        with open(path, "rb") as f:
            data = f.read()  # type: Optional[bytes]
    else:
        data = pkgutil.get_data("dhis2maint", "checks-2.42.json")
    if data is None:
        raise RuntimeError("dhis2maint/checks-2.42.json is missing")
    return cast(Dict[str, Any], json.loads(data.decode("utf-8"),
                                           object_pairs_hook=collections.OrderedDict))


def _code_of(name):
    # type: (str) -> str
    return "".join(w[0].upper() for w in name.split("_") if w)


class _Checks(object):
    """The data-integrity checks one simulated version knows, and `checks` name matching."""

    def __init__(self, catalogue, data):
        # type: (str, Dict[str, Any]) -> None
        self.kind = catalogue
        self.legacy = list(data["legacy"])  # 33 legacy checks with flattened-report keys
        self.legacy_by_modern = {e["modernName"]: e for e in self.legacy if "modernName" in e}
        self.legacy_by_name = {e["name"]: e for e in self.legacy}
        checks = []  # type: List[Dict[str, Any]]
        if catalogue in ("2.42", "2.43"):
            checks = [collections.OrderedDict(c) for c in data["checks"]]
            if catalogue == "2.43":
                change = data["changes_2.43"]
                yaml_part = [c for c in checks if not c["isProgrammatic"] and c["name"] not in change["removed"]]
                yaml_part += [collections.OrderedDict(c) for c in change["added"]]
                for c in yaml_part:
                    c["isSlow"] = c["name"] in change["slow"]
                checks = yaml_part + [c for c in checks if c["isProgrammatic"]]
        else:  # 2.36 - 2.38: the 33 legacy checks (+ six YAML category checks on 2.37/2.38)
            for e in self.legacy:
                checks.append(collections.OrderedDict([
                    ("name", e["name"]), ("displayName", e["name"]), ("section", "Legacy"),
                    ("severity", "WARNING"), ("description", e["name"].replace("_", " ")),
                    ("isProgrammatic", True), ("isSlow", False), ("code", _code_of(e["name"]))]))
            if catalogue == "mixed":
                yaml = {c["name"]: c for c in data["checks"]}
                checks += [collections.OrderedDict(yaml[n]) for n in data["mixed_yaml_2.37"]]
        self.all = checks
        self.by_name = collections.OrderedDict((c["name"], c) for c in checks)

    def default_names(self):
        # type: () -> List[str]
        """What a run with no `checks` runs: non-slow checks (everything on legacy servers)."""
        return [c["name"] for c in self.all if not c["isSlow"]]

    def expand(self, tokens, modern=True):
        # type: (List[str], bool) -> List[str]
        """Names matching `tokens` (code, wildcard or name, in that order), unknown ones dropped."""
        out = collections.OrderedDict()  # type: Dict[str, None]
        for token in tokens:
            token = token.strip()
            if not token:
                continue
            if modern and token.upper() == token and "_" not in token:
                matches = [c["name"] for c in self.all if c.get("code") == token]
            elif "*" in token:
                pattern = token.lower().replace("-", "_")
                if modern:
                    pattern = re.sub(r"[^*_a-z0-9]", "", pattern)
                regex = re.compile(".*".join(re.escape(p) for p in pattern.split("*")) + r"\Z")
                matches = [n for n in self.by_name if regex.match(n)]
            else:
                name = token.lower().replace("-", "_")
                matches = [name] if name in self.by_name else []
            for n in matches:
                out[n] = None
        return list(out)

    def run_order(self, names):
        # type: (List[str]) -> List[str]
        """Execution order: fast (non-slow) before slow, catalogue order within each."""
        index = {n: i for i, n in enumerate(self.by_name)}
        return sorted(names, key=lambda n: (self.by_name[n]["isSlow"], index[n]))


_LABELS = {
    "categories": "Category", "categoryOptions": "Category option", "categoryCombos": "Category combo",
    "categoryOptionCombos": "Category option combo", "categoryOptionGroupSets": "Category option group set",
    "dataSets": "Data set", "organisationUnits": "Org unit", "optionSets": "Option set", "optionGroups": "Option group",
    "programs": "Program", "tracker": "Tracked entity", "programStages": "Program stage", "events": "Event",
    "dataElements": "Data element", "programIndicators": "Program indicator", "programRules": "Program rule",
    "visualizations": "Visualization", "maps": "Map", "dashboards": "Dashboard", "pushAnalysis": "Push analysis",
    "indicatorTypes": "Indicator type", "indicators": "Indicator", "periods": "Period",
    "validationRules": "Validation rule", "dataElementGroups": "Data element group",
    "indicatorGroups": "Indicator group", "programIndicatorGroups": "Program indicator group",
    "indicatorGroupSets": "Indicator group set", "validationRuleGroups": "Validation rule group",
    "organisationUnitGroups": "Org unit group", "categoryOptionGroups": "Category option group",
    "userGroups": "User group", "users": "User", "userRoles": "User role", "fileResources": "File resource",
    "trackedEntityAttributes": "Tracked entity attribute",
}
_WORDS = ["Bo", "Bombali", "Bonthe", "Kailahun", "Kambia", "Kenema", "Koinadugu", "Kono", "Moyamba",
          "Port Loko", "Pujehun", "Tonkolili", "Western Area", "Ngelehun", "Baoma", "Jembe", "Gbo", "Lugbu"]
_COMMENTS = ["Expression is not well-formed", "Invalid data element reference", "Division by zero in expression",
             "Missing closing bracket", "Unknown function name"]
# legacy report type -> how the issues of such a check look
_SHAPE_OF_TYPE = {"L": "plain", "M": "refs", "C": "comment", "G": "group"}


class _IssueMaker(object):
    """Deterministic fake issues of one check: ids, names, comments, refs; fast enough for millions."""

    def __init__(self, seed, check, shape, style):
        # type: (int, Dict[str, Any], str, str) -> None
        name = check["name"]
        self.h = _hash_int(seed, name)
        self.prefix = _uid_from("issue", seed, name)[:5]
        self.ref_prefix = _uid_from("ref", seed, name)[:5]
        self.off = self.h % _M6
        self.label = _LABELS.get(check.get("issuesIdType", ""), "Indicator" if shape == "group" else "Object")
        self.shape, self.style = shape, style  # style: yaml (SQL checks) or java ("Name:uid" names, refs always)

    def _uid(self, prefix, i):
        # type: (str, int) -> str
        if not _T2:
            _T2.extend(a + b for a in _ALNUM for b in _ALNUM)
        j = (i * _MUL + self.off) % _M6
        return prefix + _T2[j // 14776336] + _T2[(j // 3844) % 3844] + _T2[j % 3844]

    def issue(self, i):
        # type: (int) -> Tuple[Optional[str], str, Optional[str], List[Tuple[str, str]]]
        """(uid or None, display name, comment or None, refs as (uid, name)) of issue number i."""
        word = _WORDS[(i + self.h) % len(_WORDS)]
        refs = []  # type: List[Tuple[str, str]]
        if self.shape in ("refs", "group"):
            n = 2 + (i + self.h) % 2 if self.shape == "group" else 1 + (i + self.h) % 3
            refs = [(self._uid(self.ref_prefix, i * 4 + k), "%s %s %d-%d" % (
                self.label if self.shape == "group" else "Group", word, i + 1, k + 1)) for k in range(n)]
        if self.shape == "group":
            return None, "Formula group %d" % (i + 1), None, refs
        comment = _COMMENTS[(i + self.h) % len(_COMMENTS)] if self.shape == "comment" else None
        return self._uid(self.prefix, i), "%s %s %d" % (self.label, word, i + 1), comment, refs

    def json_pieces(self, count, offset=0):
        # type: (int, int) -> Iterator[str]
        """The issues array content (without brackets) as string pieces; constant memory.
        `offset` skips the first issues (drift: they were resolved)."""
        fast = self.shape == "plain" and self.style == "yaml"
        label, h, nw, words, prefix = self.label, self.h, len(_WORDS), _WORDS, self.prefix
        uid = self._uid
        for start in range(offset, offset + count, 1000):
            parts = []
            for i in range(start, min(offset + count, start + 1000)):
                if fast:
                    parts.append('{"id":"%s","name":"%s %s %d"}' % (uid(prefix, i), label, words[(i + h) % nw], i + 1))
                else:
                    parts.append(_dumps(self.issue_json(i)))
            yield ("," if start > offset else "") + ",".join(parts)

    def issue_json(self, i):
        # type: (int) -> collections.OrderedDict[str, Any]
        uid, name, comment, refs = self.issue(i)
        if self.style == "java":
            return _od(("id", uid), ("name", name if uid is None else "%s:%s" % (name, uid)), ("comment", comment),
                       ("refs", sorted("%s:%s" % (r[1], r[0]) for r in refs)))
        return _od(("id", uid), ("name", name), ("comment", comment),
                   ("refs", ["%s:%s" % (r[1], r[0]) for r in refs] if refs else None))


# ---------------------------------------------------------------------------
# jobs
# ---------------------------------------------------------------------------
class _Job(object):
    """One simulated job run: its plan (start/end on the wall clock) and what it has posted so far."""

    def __init__(self, jid, job_type, kind, name, created, params, checks):
        # type: (str, str, str, str, float, Optional[Dict[str, Any]], List[str]) -> None
        self.id, self.job_type, self.kind, self.name = jid, job_type, kind, name
        self.created, self.params, self.checks = created, params, checks
        self.start = None  # type: Optional[float]  # None: never runs
        self.end = None  # type: Optional[float]
        self.failed = None  # type: Optional[str]
        self.notifications = []  # type: List[Dict[str, Any]]  # oldest first
        self.remaining = set()  # type: Set[str]  # checks queued or running in this job
        self.report = None  # type: Optional[Dict[str, Any]]

    def finished(self, now):
        # type: (float) -> bool
        return self.end is not None and now >= self.end

    def busy(self, now):
        # type: (float) -> bool
        """Queued or running (not finished), and it will run."""
        return self.start is not None and not self.finished(now)


class _Result(object):
    """A cached summary/details entry; the issues themselves are regenerated on demand."""
    __slots__ = ("name", "start", "finish", "count", "error", "stored", "offset")

    def __init__(self, name, start, finish, count, error, stored, offset=0):
        # type: (str, float, float, int, Optional[str], float, int) -> None
        self.name, self.start, self.finish, self.count = name, start, finish, count
        self.error, self.stored, self.offset = error, stored, offset


# ---------------------------------------------------------------------------
# server state
# ---------------------------------------------------------------------------
class _State(object):
    """All mutable server data; every method expects `self.lock` to be held by the caller."""

    CACHE_SECONDS = 3600.0
    # (declared here so type checkers do not narrow the keys to the seeded literals)
    options: Dict[str, str]
    categories: Dict[str, Dict[str, Any]]
    predictors: Dict[str, Tuple[str, int]]
    validation_rules: Dict[str, Tuple[str, str, str]]

    def __init__(self, owner, features, checks, seed, issues):
        # type: (Dhis2StandIn, Dict[str, Any], _Checks, int, Optional[Dict[str, int]]) -> None
        self.owner, self.f, self.checks, self.seed = owner, features, checks, seed
        self.lock = threading.RLock()
        self.jobs = collections.OrderedDict()  # type: Dict[str, _Job]
        self._events = []  # type: List[Tuple[float, int, Callable[[], None]]]
        self._seq = itertools.count()
        self._job_counter = itertools.count(1)
        self.cache = {"summary": {}, "details": {}}  # type: Dict[str, Dict[str, _Result]]
        # check name -> number of jobs that have it queued or running
        self.running = {"summary": collections.Counter(), "details": collections.Counter()}  # type: Dict[str, Any]
        self.avg_ms = {}  # type: Dict[str, int]
        self.issue_counts = dict(issues or {})
        self.default_issue_count = None  # type: Optional[int]
        self.integrity_runs = 0  # integrity jobs started: the drift round
        self.failing_checks = {}  # type: Dict[str, str]
        self.job_failures = collections.deque()  # type: collections.deque[str]
        self.conflicts = 0
        self.maintenance_log = []  # type: List[str]
        self._init_metadata()

    # -- time-driven events ------------------------------------------------
    def schedule(self, t, fn):
        # type: (float, Callable[[], None]) -> None
        heapq.heappush(self._events, (t, next(self._seq), fn))

    def advance(self, now):
        # type: (float) -> None
        """Apply every job event due by `now`, in time order."""
        while self._events and self._events[0][0] <= now:
            heapq.heappop(self._events)[2]()

    # -- issues ------------------------------------------------------------
    def issue_count(self, name):
        # type: (str) -> int
        if name in self.issue_counts:
            return self.issue_counts[name]
        if self.default_issue_count is not None:
            return self.default_issue_count
        h = _hash_int(self.seed, "count", name)
        return 0 if h % 3 == 0 else (h // 3) % 5 + 1

    def issue_maker(self, name):
        # type: (str) -> _IssueMaker
        check = self.checks.by_name.get(name) or {"name": name}
        legacy = self.checks.legacy_by_name.get(name) or self.checks.legacy_by_modern.get(name)
        if legacy:
            shape = _SHAPE_OF_TYPE[legacy["type"]]
        else:
            h = _hash_int(self.seed, "shape", name)
            shape = "comment" if h % 4 == 0 else "refs" if h % 5 == 0 else "plain"
        java = check.get("isProgrammatic", False)
        return _IssueMaker(self.seed, check, shape, "java" if java else "yaml")

    def percentage(self, name, count):
        # type: (str, int) -> float
        denominator = count + 5 + _hash_int(self.seed, "denominator", name) % 200
        return round(100.0 * count / denominator, 2)

    # -- notifications -----------------------------------------------------
    def notify(self, job, t, level, message, completed, data=None):
        # type: (_Job, float, str, Optional[str], bool, Optional[Dict[str, Any]]) -> None
        if level == "LOOP" and not self.f["loop_level"]:
            level = "INFO"
        if self.f["notification_ids"] == "job":
            nid = job.id
        else:
            nid = _uid_from("notification", int(t * 1000), next(self._seq))
        n = _od(("id", nid), ("uid", nid), ("level", level), ("category", job.job_type), ("time", _fmt_time(t)),
                ("message", message), ("completed", completed))
        if data is not None and self.f["params_data"]:
            n["dataType"] = "PARAMETERS"
            n["data"] = data
        if job.notifications and job.notifications[-1]["level"] == "LOOP":
            job.notifications.pop()  # a newer message replaces a LOOP one
        job.notifications.append(n)

    # -- starting jobs -----------------------------------------------------
    def new_job(self, job_type, kind, params, checks, now):
        # type: (str, str, Optional[Dict[str, Any]], List[str], float) -> _Job
        """Create a job and plan its run; `kind` is summary, details, report, analytics, resource or monitoring."""
        n = next(self._job_counter)
        jid = _uid_from("job", self.seed, n, job_type)
        name = self._job_name(job_type, kind, int(now * 1000))
        job = _Job(jid, job_type, kind, name, now, params, checks)
        others = [j for j in self.jobs.values() if j.job_type == job.job_type and j.busy(now)]
        self.jobs[jid] = job
        start = now + max(0.0, float(self.owner.start_delay or 0))
        if others and self.f["queue_same_type"]:
            start = max([start] + [j.end for j in others if j.end is not None])
        elif others and kind in ("analytics", "resource", "monitoring"):
            return job  # <= 2.40: the scheduler refuses to run it; it never runs and posts nothing
        failure = self.job_failures.popleft() if self.job_failures else None
        if kind in ("summary", "details", "report"):
            self._plan_integrity(job, start, failure)
        else:
            self._plan_other(job, start, failure)
        return job

    def _job_name(self, job_type, kind, millis):
        # type: (str, str, int) -> str
        naming = self.f["job_naming"]
        if naming == "paren":
            return "%s (%d)" % (job_type, millis)
        if naming == "underscore" and job_type.startswith("DATA_INTEGRITY"):
            return "%s_%d" % (job_type, millis)
        if kind in ("summary", "details", "report"):
            if self.f["integrity_api"] == "legacy":
                return "runAsyncDataIntegrity"
            return {"summary": "runSummariesCheck", "details": "runDetailsCheck"}.get(kind, "runDataIntegrity")
        return {"analytics": "inMemoryAnalyticsJob", "resource": "inMemoryResourceTableJob",
                "monitoring": "inMemoryMonitoringJob"}[kind]

    def _plan_integrity(self, job, t0, failure):
        # type: (_Job, float, Optional[str]) -> None
        mode = self.f["integrity_progress"] if self.f["integrity_api"] != "legacy" else "none"
        if self.owner.verbose_notifications and self.f["integrity_api"] != "legacy":
            mode = "verbose"
        cache_kind = "summary" if job.kind == "summary" else "details"
        checks = job.checks
        duration = float(self.owner.job_seconds) if checks or job.kind == "report" else 0.0
        step = duration / len(checks) if checks else 0.0
        fail_at = t0 + duration / 2.0 if failure is not None else None
        failing = dict(self.failing_checks)
        counts = {c: self.issue_count(c) for c in checks}
        # drift: in run r a check with issues has r more, and its first r*drift are resolved
        r, d = self.integrity_runs, int(self.owner.drift or 0)
        self.integrity_runs += 1
        offsets = {c: r * d for c in checks if d and counts[c] > 0}
        counts.update((c, counts[c] + r) for c in offsets)
        params = job.params
        ev = self.schedule

        if job.kind == "report":
            ev(t0, lambda: self.notify(job, t0, "INFO", "Starting data integrity job", False))

        def begin() -> None:
            job.remaining = set(checks)
            self.running[cache_kind].update(checks)
            if mode != "none":
                job.notifications[:] = []  # the first JobProgress message clears the job's feed
                self.notify(job, t0, "INFO", "Data integrity check" if mode == "verbose" else "", False, params)
            if mode == "verbose":
                self.notify(job, t0, "INFO", "Data Integrity %s checks" % cache_kind, False)
        ev(t0, begin)

        for i, name in enumerate(checks):
            ts, te = t0 + i * step, t0 + (i + 1) * step
            if fail_at is not None and te > fail_at:
                break
            description = self.checks.by_name[name].get("description")
            if mode == "verbose" and description:
                ev(ts, functools.partial(self.notify, job, ts, "LOOP", "[%d/%d] %s" % (i, len(checks), description),
                                         False))
            ev(te, functools.partial(self._check_done, job, cache_kind, mode, name, ts, te, counts[name],
                                     failing.get(name), offsets.get(name, 0)))

        def finish(t, error):
            # type: (float, Optional[str]) -> None
            for name in list(job.remaining):
                self._not_running(job, cache_kind, name)
            if error is not None:
                job.failed = error
                self.notify(job, t, "ERROR", error, True)
                return
            if mode != "none":
                self.notify(job, t, "INFO", None if mode == "verbose" else "", True)
            if job.kind == "report":
                self.notify(job, t, "INFO", "Data integrity checks completed in %f sec." % (t - t0), True)
                job.report = self._flattened_report(checks, counts)

        if failure is not None and fail_at is not None:
            job.start, job.end = t0, fail_at
            ev(fail_at, lambda: finish(fail_at, "Process failed: " + failure))
        else:
            job.start, job.end = t0, t0 + duration
            ev(t0 + duration, lambda: finish(t0 + duration, None))

    def _check_done(self, job, cache_kind, mode, name, ts, te, count, error_message, offset=0):
        # type: (_Job, str, str, str, float, float, int, Optional[str], int) -> None
        self._not_running(job, cache_kind, name)
        if error_message is not None:
            error = "Check failed because an exception was thrown: " + error_message
            self.cache[cache_kind][name] = _Result(name, ts, te, -1, error, te)
            if mode != "none":
                self.notify(job, te, "ERROR", error_message, False)
            return
        self.cache[cache_kind][name] = _Result(name, ts, te, count, None, te, offset)
        self.avg_ms[name] = int(round((te - ts) * 1000))

    def _not_running(self, job, cache_kind, name):
        # type: (_Job, str, str) -> None
        if name in job.remaining:
            job.remaining.discard(name)
            counter = self.running[cache_kind]
            counter[name] -= 1
            if counter[name] <= 0:
                del counter[name]

    def _plan_other(self, job, t0, failure):
        # type: (_Job, float, Optional[str]) -> None
        duration = float(self.owner.job_seconds)
        params = job.params or {}
        if job.kind == "analytics":
            first, last = "Analytics table update process", "Analytics tables updated: %s"
            stages = [] if params.get("skipResourceTables") else ["Generating resource tables"]
            skipped = set(params.get("skipTableTypes") or [])
            stages += ["Performing analytics table update for %s" % t for t in _TABLE_TYPES if t not in skipped]
            stages.append("Updating system settings")
        elif job.kind == "resource":
            first, last = "Generating resource tables", "Resource tables generated: %s"
            stages = ["[%d/6] Generating resource table: %s" % (i, t) for i, t in enumerate(
                ["_orgunitstructure", "_dataelementstructure", "_periodstructure", "_dateperiodstructure",
                 "_categorystructure", "_dataelementcategoryoptioncombo"])]
        else:
            first, last = "Data validation", "Data validation done"
            stages = ["Preparing analysis parameters", "Running validation rules"]
        step = duration / (len(stages) + 1)
        fail_at = t0 + duration / 2.0 if failure is not None else None
        self.schedule(t0, lambda: self.notify(job, t0, "INFO", first, False, job.params))
        for i, text in enumerate(stages):
            t = t0 + (i + 1) * step
            if fail_at is not None and t > fail_at:
                break
            level = "LOOP" if text.startswith("[") else "INFO"
            self.schedule(t, functools.partial(self.notify, job, t, level, text, False))
        if failure is not None and fail_at is not None:
            job.start, job.end = t0, fail_at

            def fail() -> None:
                job.failed = "Process failed: " + failure
                self.notify(job, fail_at, "ERROR", job.failed, True)
            self.schedule(fail_at, fail)
        else:
            job.start, job.end = t0, t0 + duration
            self.schedule(t0 + duration, lambda: self.notify(
                job, t0 + duration, "INFO", last % _fmt_hms(duration) if "%s" in last else last, True))

    # -- integrity results ---------------------------------------------------
    def cached(self, kind, now):
        # type: (str, float) -> Dict[str, _Result]
        cache = self.cache[kind]
        for name in [n for n, r in cache.items() if now - r.stored > self.CACHE_SECONDS]:
            del cache[name]
        return cache

    def _flattened_report(self, checks, counts):
        # type: (List[str], Dict[str, int]) -> collections.OrderedDict[str, Any]
        """The FlattenedDataIntegrityReport of a REPORT job (2.36 or 2.37 format)."""
        old = self.f["report_format"] == "2.36"
        modern = self.f["integrity_api"] == "modern"
        ran = set(checks)
        report = collections.OrderedDict()
        for entry in self.checks.legacy:
            name = entry.get("modernName") if modern else entry["name"]
            if name is None or (name not in ran and not old):
                continue
            maker = self.issue_maker(name)
            issues = [maker.issue(i) for i in range(counts.get(name, 0))] \
                if name in ran else []  # type: List[Tuple[Optional[str], Optional[str], Optional[str], List[Tuple[str, str]]]]
            every = int(self.owner.nameless_every or 0)
            if every > 0:  # objects without a display name
                issues = [(u, None if u and i % every == 0 else d, c, r) for i, (u, d, c, r) in enumerate(issues)]

            def label(uid, display, names_only=old):
                # type: (Optional[str], Optional[str], bool) -> str
                # FlattenedDataIntegrityReport@2.36: defaultIfBlank(displayName, uid); @2.37:
                # "name:uid", or the uid alone when the name is null
                if names_only:
                    return display or uid or ""
                return ("%s:%s" % (display, uid) if display else uid) if uid else (display or "")
            kind = entry["type"]
            if kind == "L":
                value = [label(u, d) for u, d, _, _ in issues]  # type: Any
            elif kind == "G":
                value = [[label(ru, rd) for ru, rd in refs] for _, _, _, refs in issues]
            elif kind == "C":
                value = collections.OrderedDict((label(u, d, False), c or "") for u, d, c, _ in issues)
            else:  # M: object -> the objects it refers to
                value = collections.OrderedDict()
                for u, d, _, refs in issues:
                    targets = [label(ru, rd) for ru, rd in refs]
                    value[label(u, d, False)] = targets if old else sorted(targets)
            report[entry["reportKey"]] = value
        return report

    # -- seeded metadata -----------------------------------------------------
    def _init_metadata(self):
        # type: () -> None
        self.options = collections.OrderedDict([
            ("xYerKDKCefk", "default"), ("Xh88p1nyefp", "Male"), ("Cn6pJh4nEg3", "Female"),
            ("FbLZS3ueWbQ", "Under 5"), ("uYxK4wmcPqA", "5 and over"), ("Yjte6foKMny", "Fixed"),
            ("pq2XI5kz2BY", "Outreach")])
        self.categories = collections.OrderedDict([
            ("GLevLNI9wkl", {"name": "default", "options": ["xYerKDKCefk"]}),
            ("cX5k9anHEHd", {"name": "Sex", "options": ["Xh88p1nyefp", "Cn6pJh4nEg3"]}),
            ("YNZyaJHiHYq", {"name": "Age group", "options": ["FbLZS3ueWbQ", "uYxK4wmcPqA"]}),
            ("fMZEcRHuamy", {"name": "Location Fixed/Outreach", "options": ["Yjte6foKMny", "pq2XI5kz2BY"]}),
        ])
        self.combos = collections.OrderedDict()  # type: Dict[str, Dict[str, Any]]
        for uid, name, cats, complete in [
                ("bjDvmb4bfuf", "default", ["GLevLNI9wkl"], True),
                ("WBW7RjsApsv", "Sex", ["cX5k9anHEHd"], True),
                ("t3aNCvHsoSn", "Age and sex", ["YNZyaJHiHYq", "cX5k9anHEHd"], self.f["coc_on_save"])]:
            self.combos[uid] = {"name": name, "categories": cats, "cocs": []}
            if complete:
                self.update_cocs(uid, 0.0)
        for coc in self.combos["bjDvmb4bfuf"]["cocs"]:
            coc["id"] = "HllvX50cXC0"  # the well-known default category option combo
        self.predictors = collections.OrderedDict([
            ("a4Tz9PZk2Wq", ("ANC 1-3 Dropout prediction", 12)),
            ("b7RnXc2LpQe", ("Malaria cases forecast", 24)),
            ("c3VhKd8WmTs", ("BCG coverage prediction", 6))])
        self.predictor_groups = {"gP9sHqL4kRt": ("Monthly predictors", ["a4Tz9PZk2Wq", "b7RnXc2LpQe"])}
        self.failing_predictors = set()  # type: Set[str]
        tree = [("ImspTQPwCqd", "Sierra Leone", None),
                ("O6uvpzGd5pu", "Bo", "ImspTQPwCqd"), ("fdc6uOvgoji", "Bombali", "ImspTQPwCqd"),
                ("kJq2mPyFEHo", "Kenema", "ImspTQPwCqd"),
                ("DiszpKrYNg8", "Ngelehun CHC", "O6uvpzGd5pu"), ("Rp268JB6Ne4", "Adonkia CHP", "O6uvpzGd5pu"),
                ("cDw53Ej8rju", "Afro Arab Clinic", "fdc6uOvgoji"), ("GvFqTavdpGE", "Agape CHP", "fdc6uOvgoji"),
                ("plnHVbJR6p4", "Ahamadyya Mission Cl", "kJq2mPyFEHo"), ("BV4IomHvri4", "Ahmadiyya Muslim Hospital",
                                                                         "kJq2mPyFEHo")]
        self.org_units = collections.OrderedDict()  # type: Dict[str, Dict[str, Any]]
        for uid, name, parent in tree:
            path = (self.org_units[parent]["path"] if parent else "") + "/" + uid
            self.org_units[uid] = {"name": name, "parent": parent, "path": path}
        self.validation_rules = collections.OrderedDict([
            ("sxamEpoUXb5", ("ANC 1 visits >= ANC 2 visits", "MEDIUM", "greater_than_or_equal_to")),
            ("ZoG4yXZi3c3", ("Measles doses <= children under 1", "HIGH", "less_than_or_equal_to")),
            ("NdVrKqtdgUx", ("Malaria positive <= malaria tested", "LOW", "less_than_or_equal_to"))])
        self.validation_groups = {"RmhRgOVrOnb": ["sxamEpoUXb5", "ZoG4yXZi3c3"]}
        self.data_elements = {"fbfJHSPpUQD": "ANC 1st visit", "cYeuwXTCPkU": "ANC 2nd visit"}

    def update_cocs(self, combo_uid, visible_at, keep_obsolete=False):
        # type: (str, float, bool) -> Tuple[List[str], List[str]]
        """Add missing and drop obsolete option combos of a combo; returns (added, deleted) names.
        With `keep_obsolete` (they are in use) the obsolete ones stay and are returned as deleted
        candidates the caller reports as ignored."""
        combo = self.combos[combo_uid]
        wanted = [[]]  # type: List[List[str]]
        for cat in combo["categories"]:
            wanted = [prefix + [o] for prefix in wanted for o in self.categories[cat]["options"]]
        wanted_keys = {frozenset(w) for w in wanted if w}
        deleted = [c["name"] for c in combo["cocs"] if frozenset(c["options"]) not in wanted_keys]
        if not keep_obsolete:
            combo["cocs"] = [c for c in combo["cocs"] if frozenset(c["options"]) in wanted_keys]
        have = {frozenset(c["options"]) for c in combo["cocs"]}
        added = []
        for options in wanted:
            if options and frozenset(options) not in have:
                name = ", ".join(self.options[o] for o in options)
                combo["cocs"].append({"id": _uid_from("coc", combo_uid, *sorted(options)), "name": name,
                                      "options": options, "visible_at": visible_at})
                added.append(name)
        return added, deleted


# ---------------------------------------------------------------------------
# routes
# ---------------------------------------------------------------------------
class _Request(object):
    """A parsed request as the route handlers see it."""

    def __init__(self, method, path, query, headers, body, base, user, now):
        # type: (str, str, Dict[str, List[str]], Any, bytes, str, str, float) -> None
        self.method, self.path, self.query, self.headers = method, path, query, headers
        self.body, self.base, self.user, self.now = body, base, user, now

    def arg(self, name, default=None):
        # type: (str, Optional[str]) -> Optional[str]
        values = self.query.get(name)
        return values[0] if values else default

    def json(self):
        # type: () -> Any
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError as e:
            raise _HttpError(400, "JSON parse error: %s" % e)

    def fields(self):
        # type: () -> Optional[List[str]]
        """Top-level names of the `fields` parameter, or None for all."""
        raw = ",".join(self.query.get("fields", []))
        if not raw:
            return None
        depth, names, cur = 0, [], ""
        for ch in raw:
            if ch in "[(":
                depth += 1
            elif ch in "])":
                depth -= 1
            elif ch == "," and depth == 0:
                names.append(cur)
                cur = ""
                continue
            if depth == 0 and ch not in "])":
                cur += ch
        names.append(cur)
        names = [n.strip().split("~")[0].split("::")[0] for n in names if n.strip()]
        return None if any(n in ("*", ":all", ":owner") for n in names) else names


_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def _route(methods, pattern, authority=None, feature=None):
    # type: (str, str, Optional[Tuple[str, ...]], Optional[str]) -> Callable[[_Fn], _Fn]
    """Decorator: register an _Api method for `methods` (space separated) and a path regex under /api/."""
    def register(fn):
        # type: (_Fn) -> _Fn
        _ROUTES.append((tuple(methods.split()), re.compile("^" + pattern + "$"), fn, authority, feature))
        return fn
    return register


_ROUTES = []  # type: List[Tuple[Tuple[str, ...], Any, Callable[..., _Response], Optional[Tuple[str, ...]], Optional[str]]]
from . import _standin_messages  # noqa: E402  # watch (#22): POST /api/messageConversations
_standin_messages.register(_route)


class _Api(object):
    """The route handlers: each takes a _Request (plus path groups) and returns a _Response."""

    def __init__(self, owner):
        # type: (Dhis2StandIn) -> None
        self.owner = owner
        self.state = owner._state
        self.f = owner._features

    # -- dispatch ------------------------------------------------------------
    def handle(self, req):
        # type: (_Request) -> _Response
        path = req.path
        if path.rstrip("/") == "/dhis-web-commons/security/login.action":
            return _Response(200, _LOGIN_PAGE.encode("utf-8"), "text/html;charset=UTF-8")
        if not (path == "/api" or path.startswith("/api/")):
            raise _HttpError(404, "No resource found for path %s" % path)
        auth = self._authenticate(req)
        if auth is not None:
            return auth
        rest = path[5:].strip("/")
        m = re.match(r"^(\d+)/(.*)$", rest)
        if m and 28 <= int(m.group(1)) <= self.f["api_max_version"]:
            rest = m.group(2)
        if rest.endswith(".json"):
            rest = rest[:-5]
        scheduled = self.owner.scheduler.handle(self, req, rest)  # _standin_scheduler.py
        if scheduled is not None:
            return scheduled
        allowed = []  # type: List[str]
        for methods, regex, fn, authority, feature in _ROUTES:
            match = regex.match(rest)
            if not match or (feature and not self._has(feature)):
                continue
            if req.method not in methods:
                allowed.extend(methods)
                continue
            if authority:
                self._require(req.user, authority)
            with self.state.lock:
                self.state.advance(req.now)
            return fn(self, req, *match.groups())
        if allowed:
            raise _HttpError(405, "Request method '%s' is not supported" % req.method,
                             headers=[("Allow", ", ".join(sorted(set(allowed))))])
        raise _HttpError(404, "No endpoint %s %s" % (req.method, path))

    def _has(self, feature):
        # type: (str) -> bool
        if feature in ("integrity_list", "integrity_sets"):
            return self.f["integrity_api"] != "legacy" and (feature == "integrity_list" or self.f["list_filters"])
        return bool(self.f[feature])

    def _authenticate(self, req):
        # type: (_Request) -> Optional[_Response]
        owner = self.owner
        header = req.headers.get("Authorization") or ""
        scheme, _, value = header.strip().partition(" ")
        user = None
        if scheme.lower() == "basic":
            try:
                name, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
            except (binascii.Error, ValueError):
                name, password = "", None
            if name in owner.users and owner.users[name] == password:
                user = name
        elif scheme.lower() in ("apitoken", "bearer"):
            user = owner.tokens.get(value.strip())
            if user is not None and user not in owner.users:
                user = None
        if user is not None:
            req.user = user
            return None
        if owner.login_redirect:
            return _Response(302, b"", headers=[("Location", req.base + "/dhis-web-commons/security/login.action")])
        return _Response.json(_web_message(401, "Unauthorized"), 401,
                              headers=[("WWW-Authenticate", 'Basic realm="DHIS2"')])

    def _require(self, user, authorities):
        # type: (str, Tuple[str, ...]) -> None
        have = set(self.owner.authorities_of(user))
        if not have.intersection(authorities):
            raise _HttpError(403, "Access is denied, requires one Authority from [%s]" % ", ".join(authorities))

    # -- system --------------------------------------------------------------
    @_route("GET", r"system/info")
    def system_info(self, req):
        # type: (_Request) -> _Response
        owner = self.owner
        info = _od(("contextPath", req.base), ("userAgent", req.headers.get("User-Agent")),
                   ("calendar", "iso8601"), ("dateFormat", "yyyy-mm-dd"), ("serverDate", _fmt_time(req.now)),
                   ("serverTimeZoneId", time.strftime("%Z") or "UTC"), ("version", owner.full_version),
                   ("revision", _uid_from("rev", owner.full_version)[:7].lower()),
                   ("buildTime", _fmt_time(1700000000.0 + 86400 * owner._minor)),
                   ("environmentVariable", "DHIS2_HOME"), ("systemId", _uid_from("system", owner.seed)),
                   ("systemName", "DHIS 2 stand-in"), ("instanceBaseUrl", req.base),
                   ("isMetadataVersionEnabled", False), ("emailConfigured", False), ("redisEnabled", False))
        info.update(owner.scheduler.system_info_extra(req))
        return _Response.json(_filter_fields(info, req.fields()))

    @_route("GET", r"me")
    def me(self, req):
        # type: (_Request) -> _Response
        return _Response.json(_od(("id", _uid_from("user", req.user)), ("username", req.user),
                                  ("displayName", req.user.title()),
                                  ("authorities", list(self.owner.authorities_of(req.user)))))

    # -- data integrity: catalogue -------------------------------------------
    def _check_json(self, check):
        # type: (Dict[str, Any]) -> collections.OrderedDict[str, Any]
        if not self.f["list_filters"]:  # 2.37/2.38 descriptor
            keys = ("name", "displayName", "section", "severity", "description", "introduction", "recommendation")
            return collections.OrderedDict((k, check[k]) for k in keys if k in check)
        out = collections.OrderedDict((k, v) for k, v in check.items() if k != "code")
        if check["name"] in self.state.avg_ms:
            out["averageExecutionTime"] = self.state.avg_ms[check["name"]]
        out["code"] = check["code"]
        return out

    def _checks_param(self, req, use_body=False):
        # type: (_Request, bool) -> List[str]
        """Raw `checks` names: JSON array body (if allowed and non-empty) wins over the query."""
        if use_body and self.f["json_body_checks"] and req.body.strip():
            body = req.json()
            if isinstance(body, list) and body:
                return [str(x) for x in body]
        values = req.query.get("checks", [])
        if len(values) == 1:
            return [v.strip() for v in values[0].split(",") if v.strip()]
        return [v for v in values if v.strip()]

    def _expand(self, tokens):
        # type: (List[str]) -> List[str]
        return self.state.checks.expand(tokens, modern=self.f["integrity_api"] == "modern")

    @_route("GET", r"dataIntegrity", feature="integrity_list")
    def integrity_list(self, req):
        # type: (_Request) -> _Response
        checks = self.state.checks
        tokens = self._checks_param(req)
        selected = [checks.by_name[n] for n in self._expand(tokens)] if tokens else list(checks.all)
        if self.f["list_filters"]:
            section = (req.arg("section") or "").strip()
            if section:
                selected = [c for c in selected if c["section"] == section]
            for param, key in (("slow", "isSlow"), ("programmatic", "isProgrammatic")):
                raw = req.arg(param)
                if raw is not None and raw != "":
                    want = _parse_bool(param, raw)
                    selected = [c for c in selected if c[key] == want]
        with self.state.lock:
            return _Response.json([self._check_json(c) for c in selected])

    # -- data integrity: runs --------------------------------------------------
    def _take_conflict(self, req, integrity):
        # type: (_Request, bool) -> None
        """Answer 409 if conflict_next() asked for it."""
        with self.state.lock:
            if self.state.conflicts > 0:
                self.state.conflicts -= 1
                msg = "Data integrity check is already running" if integrity else "Job is already running."
                raise _HttpError(409, msg, error_code="E1004")

    def _job_reply(self, req, job, location=None):
        # type: (_Request, _Job, Optional[str]) -> _Response
        response = _od(("responseType", "JobConfiguration" if self.f["response_type"] else None),
                       ("name", job.name), ("id", job.id), ("created", _fmt_time(job.created)),
                       ("jobType", job.job_type), ("jobStatus", self.f["created_job_status"]),
                       ("jobParameters", job.params),
                       ("relativeNotifierEndpoint", "/api/system/tasks/%s/%s" % (job.job_type, job.id)))
        headers = [("Location", location)] if location else []
        return _Response.json(_web_message(200, "Initiated " + job.name, response=response), headers=headers)

    @_route("POST", r"dataIntegrity", authority=MAINT)
    def integrity_run_plain(self, req):
        # type: (_Request) -> _Response
        if self.f["integrity_api"] == "legacy":  # 2.36: no parameters at all
            self._take_conflict(req, True)
            with self.state.lock:
                job = self.state.new_job("DATA_INTEGRITY", "report", None, [e["name"] for e in
                                                                          self.state.checks.legacy], req.now)
            return self._job_reply(req, job)
        kind = "report" if self.f["plain_post_type"] == "REPORT" else "summary"
        return self._integrity_run(req, kind, "details")

    @_route("POST", r"dataIntegrity/(summary|details)", authority=MAINT, feature="integrity_list")
    def integrity_run(self, req, kind):
        # type: (_Request, str) -> _Response
        return self._integrity_run(req, kind, kind)

    def _integrity_run(self, req, kind, location_kind):
        # type: (_Request, str, str) -> _Response
        self._take_conflict(req, True)
        raw = self._checks_param(req, use_body=True)
        job_type = self.f["details_job_type"] if kind == "details" else "DATA_INTEGRITY"
        state = self.state
        with state.lock:
            if self.f["integrity_conflict"] and any(j.job_type == job_type and j.busy(req.now)
                                                    for j in state.jobs.values()):
                raise _HttpError(409, "Data integrity check is already running",
                                 error_code=self.f["integrity_conflict_code"])
            if raw:
                names = self._expand(raw)
            elif kind == "report":  # the report needs the legacy checks (their 2.39+ equivalents)
                key = "modernName" if self.f["integrity_api"] == "modern" else "name"
                names = [e[key] for e in state.checks.legacy if e.get(key) in state.checks.by_name]
            elif self.f["integrity_api"] == "modern":
                names = state.checks.default_names()
            else:
                names = list(state.checks.by_name)
            names = state.checks.run_order(names)
            if kind == "details" and self.f["integrity_api"] == "modern":
                params = _od(("checks", raw))  # type: Optional[Dict[str, Any]]
            elif self.f["integrity_api"] == "modern":
                params = _od(("type", kind.upper()), ("checks", raw))
            else:
                params = _od(("checks", raw), ("type", kind.upper()))
            job = state.new_job(job_type, kind, params, names, req.now)
        location = "%s/api/dataIntegrity/%s?checks=%s" % (req.base, location_kind,
                                                          quote(",".join(raw), safe=",*"))
        return self._job_reply(req, job, location)

    # -- data integrity: results -----------------------------------------------
    def _wait_for(self, kind, names, timeout_ms):
        # type: (str, List[str], int) -> None
        """Wait (up to timeout) until every name has a cache entry; timeout < 0 waits without limit."""
        if timeout_ms == 0 or not names:
            return
        deadline = None if timeout_ms < 0 else time.time() + timeout_ms / 1000.0
        while True:
            with self.state.lock:
                now = self.owner._now()
                self.state.advance(now)
                cache = self.state.cached(kind, now)
                if all(n in cache for n in names):
                    return
            if deadline is not None and time.time() >= deadline:
                return
            if self.owner._stop_event.wait(0.02):
                return

    def _timeout(self, req):
        # type: (_Request) -> int
        raw = req.arg("timeout", "0") or "0"
        try:
            return int(raw)
        except ValueError:
            raise _HttpError(400, "Value '%s' is not valid for parameter timeout. It should be of type long" % raw)

    def _result_head(self, result, kind):
        # type: (_Result, str) -> collections.OrderedDict[str, Any]
        check = self.state.checks.by_name[result.name]
        out = self._check_json(check)
        if self.f["list_filters"]:
            out["startTime"] = _fmt_time(result.start)
        out["finishedTime"] = _fmt_time(result.finish)
        if result.error:
            out["error"] = result.error
        if kind == "summary":
            out["count"] = result.count
            yaml = not check.get("isProgrammatic") and check.get("section") != "Legacy"
            if result.error is None and yaml:
                out["percentage"] = self.state.percentage(result.name, result.count)
        return out

    def _details_pieces(self, result):
        # type: (_Result) -> Iterator[str]
        head = _dumps(self._result_head(result, "details"))
        yield head[:-1] + ',"issues":['
        if result.error is None and result.count > 0:
            for piece in self.state.issue_maker(result.name).json_pieces(result.count, result.offset):
                yield piece
        yield "]}"

    def _results_map(self, kind, results):
        # type: (str, List[_Result]) -> Iterator[str]
        yield "{"
        for i, result in enumerate(results):
            yield ("," if i else "") + _dumps(result.name) + ":"
            if kind == "summary":
                yield _dumps(self._result_head(result, kind))
            else:
                for piece in self._details_pieces(result):
                    yield piece
        yield "}"

    @_route("GET", r"dataIntegrity/(summary|details)/(running|completed)", feature="integrity_sets")
    def integrity_sets(self, req, kind, which):
        # type: (_Request, str, str) -> _Response
        with self.state.lock:
            if which == "running":
                names = [n for n, c in self.state.running[kind].items() if c > 0]
            else:
                names = list(self.state.cached(kind, req.now))
        return _Response.json(names)

    @_route("GET", r"dataIntegrity/metrics", authority=MAINT, feature="metrics")
    def integrity_metrics(self, req):
        # type: (_Request) -> _Response
        families = [("dhis_data_integrity_issues_count_total", "Number of issues found by data integrity checks"),
                    ("dhis_data_integrity_issues_percentage", "Percentage of objects with issues"),
                    ("dhis_data_integrity_check_duration_milliseconds", "Duration of data integrity checks")]
        lines = []
        with self.state.lock:
            cached = list(self.state.cached("summary", req.now).values())
            for metric, helptext in families:
                lines += ["# HELP %s %s" % (metric, helptext), "# TYPE %s gauge" % metric]
                for r in cached:
                    check = self.state.checks.by_name[r.name]
                    labels = '{check="%s",severity="%s",object_type="%s"}' % (
                        r.name, check["severity"], check.get("issuesIdType", "null"))
                    if metric.endswith("count_total"):
                        lines.append("%s%s %d" % (metric, labels, r.count))
                    elif metric.endswith("percentage"):
                        if r.error is None and not check.get("isProgrammatic"):
                            lines.append("%s%s %s" % (metric, labels, self.state.percentage(r.name, r.count)))
                    else:
                        lines.append("%s%s %d" % (metric, labels, int((r.finish - r.start) * 1000)))
        return _Response(200, ("\n".join(lines) + "\n").encode("utf-8"), "text/plain;version=0.0.4;charset=utf-8")

    @_route("GET", r"dataIntegrity/(summary|details)", authority=MAINT, feature="integrity_list")
    def integrity_results(self, req, kind):
        # type: (_Request, str) -> _Response
        tokens = self._checks_param(req)
        names = self._expand(tokens) if tokens else []
        self._wait_for(kind, names, self._timeout(req))
        with self.state.lock:
            cache = self.state.cached(kind, self.owner._now())
            results = [cache[n] for n in names if n in cache] if tokens else list(cache.values())
        return _Response.json_stream(self._results_map(kind, results))

    @_route("GET", r"dataIntegrity/([^/]+)/(summary|details)", authority=MAINT, feature="integrity_list")
    def integrity_result_one(self, req, check, kind):
        # type: (_Request, str, str) -> _Response
        if self.f["integrity_api"] == "modern":
            names = self._expand([check])
        else:
            names = [check] if check in self.state.checks.by_name else []
        self._wait_for(kind, names[:1], self._timeout(req))
        with self.state.lock:
            cache = self.state.cached(kind, self.owner._now())
            found = [cache[n] for n in names if n in cache]
        if not found:
            return _Response.empty(200)
        if kind == "summary":
            return _Response.json_stream([_dumps(self._result_head(found[0], kind))])
        return _Response.json_stream(self._details_pieces(found[0]))

    # -- task notifications ------------------------------------------------------
    def _job_type(self, raw):
        # type: (str) -> str
        job_type = raw.upper()
        valid = _JOB_TYPE_SETS[self.f["job_types"]]
        if job_type not in valid:
            raise _HttpError(400, "Value '%s' is not valid for parameter jobType. Valid values are: [%s]"
                             % (raw, ", ".join(sorted(valid))))
        return job_type

    def _job_id(self, raw):
        # type: (str) -> str
        if self.f["uid_job_ids"] and not _UID_RE.match(raw):
            raise _HttpError(400, "Value '%s' is not valid for parameter uid. UID must be an alphanumeric string "
                                  "of 11 characters starting with a letter." % raw)
        return raw

    def _feed(self, job, now):
        # type: (_Job, float) -> List[Dict[str, Any]]
        if self.owner.drop_feed_after_completion and job.finished(now):
            return []
        return list(reversed(job.notifications))

    def _gist(self, req):
        # type: (_Request) -> bool
        raw = req.arg("gist")
        return self.f["task_gist"] and (raw is None or raw == "" or _parse_bool("gist", raw))

    def _feeds_of_type(self, job_type, now, gist):
        # type: (str, float, bool) -> collections.OrderedDict[str, Any]
        jobs = [j for j in self.state.jobs.values() if j.job_type == job_type]
        jobs = [j for j in jobs if self._feed(j, now)]
        jobs.sort(key=lambda j: j.notifications[-1]["time"], reverse=True)
        out = collections.OrderedDict()
        for j in jobs:
            feed = self._feed(j, now)
            out[j.id] = [feed[0], feed[-1]] if gist and len(feed) > 2 else feed
        return out

    @_route("GET", r"system/tasks")
    def tasks_all(self, req):
        # type: (_Request) -> _Response
        gist = self._gist(req)
        out = collections.OrderedDict()
        with self.state.lock:
            for job_type in sorted(_JOB_TYPE_SETS[self.f["job_types"]]):
                feeds = self._feeds_of_type(job_type, req.now, gist)
                if feeds or not self.f["task_gist"]:
                    out[job_type] = feeds
        return _Response.json(out)

    @_route("GET DELETE", r"system/tasks/([^/]+)")
    def tasks_type(self, req, job_type):
        # type: (_Request, str) -> _Response
        job_type = self._job_type(job_type)
        if req.method == "DELETE":
            return self._tasks_delete(req, job_type, None)
        with self.state.lock:
            return _Response.json(self._feeds_of_type(job_type, req.now, self._gist(req)))

    @_route("GET DELETE", r"system/tasks/([^/]+)/([^/]+)")
    def tasks_job(self, req, job_type, job_id):
        # type: (_Request, str, str) -> _Response
        job_type, job_id = self._job_type(job_type), self._job_id(job_id)
        if req.method == "DELETE":
            return self._tasks_delete(req, job_type, job_id)
        with self.state.lock:
            job = self.state.jobs.get(job_id)
            if job is None or job.job_type != job_type:
                return _Response.json([])
            return _Response.json(self._feed(job, req.now))

    def _tasks_delete(self, req, job_type, job_id):
        # type: (_Request, str, Optional[str]) -> _Response
        if not self.f["tasks_delete"]:
            raise _HttpError(405, "Request method 'DELETE' is not supported")
        with self.state.lock:
            for job in self.state.jobs.values():
                if job.job_type == job_type and job_id in (None, job.id) and job.finished(req.now):
                    job.notifications[:] = []
        return _Response.empty(204)

    @_route("GET", r"system/taskSummaries/([^/]+)")
    def task_summaries_type(self, req, job_type):
        # type: (_Request, str) -> _Response
        job_type = self._job_type(job_type)
        with self.state.lock:
            out = collections.OrderedDict((j.id, j.report) for j in self.state.jobs.values()
                                          if j.job_type == job_type and j.report is not None)
        return _Response.json(out)

    @_route("GET", r"system/taskSummaries/([^/]+)/([^/]+)")
    def task_summary(self, req, job_type, job_id):
        # type: (_Request, str, str) -> _Response
        job_type, job_id = self._job_type(job_type), self._job_id(job_id)
        with self.state.lock:
            job = self.state.jobs.get(job_id)
            report = job.report if job is not None and job.job_type == job_type else None
        if report is not None:
            return _Response.json(report)
        if self.f["report_format"] == "2.36":
            return _Response(200, b"null", _JSON_TYPE)
        return _Response.empty(200)

    # -- job configurations (2.41+) ------------------------------------------------
    @_route("GET", r"jobConfigurations/([^/]+)", feature="job_configurations")
    def job_configuration(self, req, job_id):
        # type: (_Request, str) -> _Response
        job_id = self._job_id(job_id)
        now = req.now
        with self.state.lock:
            job = self.state.jobs.get(job_id)
            if job is None:
                raise _HttpError(404, "JobConfiguration with id %s could not be found." % job_id,
                                 error_code="E1005")
            start, end = job.start, job.end
            started = start is not None and start <= now
            finished = start is not None and end is not None and now >= end
            if start is not None and end is not None and finished:
                status, last_status = "DISABLED", "FAILED" if job.failed else "COMPLETED"
                last_run = (_fmt_time(start), _fmt_time(end), _fmt_hms(end - start, 2))  # type: Tuple[Any, ...]
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
                      ("errorCodes", (self.owner.job_error_codes if job.failed else "")
                       if finished else None))
        return _Response.json(_filter_fields(out, req.fields()))

    # -- resource tables, analytics, monitoring ------------------------------------
    def _other_job(self, req, job_type, kind, params):
        # type: (_Request, str, str, Optional[Dict[str, Any]]) -> _Response
        self._take_conflict(req, False)
        with self.state.lock:
            job = self.state.new_job(job_type, kind, params, [], req.now)
        location = "%s/api/system/tasks/%s" % (req.base, job_type) if self.f["job_location"] else None
        return self._job_reply(req, job, location)

    @_route("POST PUT", r"resourceTables/analytics", authority=MAINT)
    def run_analytics(self, req):
        # type: (_Request) -> _Response
        full = self.f["analytics_params"] == "full"
        names = [n for n, _ in _ANALYTICS_FLAGS] + ["skipResourceTables", "skipOutliers"]
        flags = {}
        for name in names:
            raw = req.arg(name)
            if raw is not None and raw != "" and (full or name in _LEGACY_ANALYTICS_FLAGS):
                flags[name] = _parse_bool(name, raw)
        last_years = None
        raw = req.arg("lastYears")
        if raw:
            try:
                last_years = int(raw)
            except ValueError:
                raise _HttpError(400, "Value '%s' is not valid for parameter lastYears. It should be of type "
                                      "Integer" % raw)
        skip = []  # type: List[str]
        for name, types in _ANALYTICS_FLAGS:
            if flags.get(name):
                skip += types
        params = _od(("lastYears", last_years), ("skipTableTypes", skip), ("skipPrograms", []),
                     ("skipResourceTables", flags.get("skipResourceTables", False)),
                     ("skipOutliers", flags.get("skipOutliers", False) if full else None))
        return self._other_job(req, "ANALYTICS_TABLE", "analytics", params)

    @_route("POST PUT", r"resourceTables", authority=MAINT)
    def run_resource_tables(self, req):
        # type: (_Request) -> _Response
        return self._other_job(req, "RESOURCE_TABLE", "resource", None)

    @_route("POST PUT", r"resourceTables/monitoring", authority=MAINT)
    def run_monitoring(self, req):
        # type: (_Request) -> _Response
        return self._other_job(req, "MONITORING", "monitoring", None)

    # -- predictors ------------------------------------------------------------------
    def _prediction_months(self, req):
        # type: (_Request) -> int
        start = _parse_date("startDate", req.arg("startDate"))
        end = _parse_date("endDate", req.arg("endDate"))
        if start > end and self.f["predictor_date_order"]:
            raise _HttpError(409, "Start date is after end date: `%s`, `%s`" % (start, end), error_code="E7206")
        return max(1, _month_index(end) - _month_index(start) + 1)

    def _predict(self, uid, months):
        # type: (str, int) -> int
        name, per_month = self.state.predictors[uid]
        if uid in self.state.failing_predictors:
            raise _HttpError(409, "Unable to predict " + name, dev_message="Simulated predictor failure")
        return per_month * months

    @_route("POST PUT", r"predictors/run", authority=PREDICT)
    def predictors_run_all(self, req):
        # type: (_Request) -> _Response
        months = self._prediction_months(req)
        with self.state.lock:
            total = sum(self._predict(uid, months) for uid in list(self.state.predictors))
        return _Response.message(200, "Generated %d predictions" % total)

    @_route("POST PUT", r"predictors/([^/]+)/run", authority=PREDICT)
    def predictor_run(self, req, uid):
        # type: (_Request, str) -> _Response
        months = self._prediction_months(req)
        with self.state.lock:
            if uid not in self.state.predictors:
                raise _HttpError(409, "Unable to predict " + uid, dev_message="Predictor not found: " + uid)
            return _Response.message(200, "Generated %d predictions" % self._predict(uid, months))

    @_route("POST PUT", r"predictorGroups/([^/]+)/run", authority=PREDICT, feature="predictor_group_run")
    def predictor_group_run(self, req, uid):
        # type: (_Request, str) -> _Response
        months = self._prediction_months(req)
        with self.state.lock:
            members = self.state.predictor_groups.get(uid, ("", []))[1]
            try:
                total = sum(self._predict(p, months) for p in members)
            except _HttpError as e:
                raise _HttpError(409, "Unable to predict from predictor group " + uid, dev_message=e.dev_message)
        return _Response.message(200, "Generated %d predictions" % total)

    # -- validation rule analysis --------------------------------------------------
    @_route("POST", r"dataAnalysis/validationRules", authority=VALIDATE)
    def validation_analysis(self, req):
        # type: (_Request) -> _Response
        body = req.json() or {}
        if not isinstance(body, dict):
            raise _HttpError(400, "Request body must be a JSON object")
        state = self.state
        ou = body.get("ou")
        if ou not in state.org_units:
            raise _HttpError(400, "No organisation unit defined")
        start = _parse_date("startDate", body.get("startDate"))
        end = _parse_date("endDate", body.get("endDate"))
        max_results = body.get("maxResults") if self.f["validation_max_results"] else None
        if max_results is None:
            max_results = 500
        elif not isinstance(max_results, int) or not 1 <= max_results <= 500:
            raise _HttpError(400, "maxResults must be between 1 and 500")
        rules = list(state.validation_rules)
        if body.get("vrg"):
            rules = [r for r in rules if r in state.validation_groups.get(body["vrg"], [])]
        units = [u for u, data in state.org_units.items() if "/" + ou in data["path"]
                 and not any(o["parent"] == u for o in state.org_units.values())]
        violations = []
        for month in range(_month_index(start), min(_month_index(end), _month_index(start) + 35) + 1):
            year, mon = divmod(month, 12)
            period = "%04d%02d" % (year, mon + 1)
            for rule in rules:
                for unit in units:
                    h = _hash_int(state.seed, rule, unit, period)
                    if h % 4:
                        continue
                    description, importance, operator = state.validation_rules[rule]
                    data = state.org_units[unit]
                    ancestors = [state.org_units[a]["name"] for a in data["path"].strip("/").split("/")[:-1]]
                    left = float(h % 97)
                    right = left + 1 + h % 13 if operator.startswith("greater") else max(0.0, left - 1 - h % 13)
                    violations.append(_od(
                        ("validationRuleId", rule), ("validationRuleDescription", description),
                        ("organisationUnitId", unit), ("organisationUnitDisplayName", data["name"]),
                        ("organisationUnitPath", data["path"]),
                        ("organisationUnitAncestorNames", " / ".join(ancestors)),
                        ("periodId", period),
                        ("periodDisplayName", datetime.date(year, mon + 1, 1).strftime("%B %Y")),
                        ("attributeOptionComboId", "HllvX50cXC0"), ("attributeOptionComboDisplayName", "default"),
                        ("importance", importance), ("leftSideValue", left), ("operator", operator),
                        ("rightSideValue", right)))
        return _Response.json(violations[:max_results])

    # -- maintenance -------------------------------------------------------------------
    def _maintenance_done(self, op, empty_body=False):
        # type: (str, bool) -> _Response
        with self.state.lock:
            self.state.maintenance_log.append(op)
        if not self.f["maintenance_ok_body"]:
            return _Response.empty(204)
        return _Response.empty(200) if empty_body else _Response.json(_web_message(200))

    @_route("POST PUT", r"maintenance", authority=MAINT)
    def maintenance_flags(self, req):
        # type: (_Request) -> _Response
        ops = []
        for flag, op in _MAINT_FLAGS:
            raw = req.arg(flag)
            if raw is not None and raw != "" and _parse_bool(flag, raw):
                ops.append(op)
        with self.state.lock:
            for op in ops:
                if op == "categoryOptionComboUpdate":
                    self._update_all_cocs(req.now)
                self.state.maintenance_log.append(op)
        return _Response.empty(200 if self.f["maintenance_ok_body"] else 204)

    @_route("GET", r"maintenance/appReload", authority=MAINT)
    def maintenance_app_reload(self, req):
        # type: (_Request) -> _Response
        with self.state.lock:
            self.state.maintenance_log.append("appReload")
        return _Response.message(200, "Apps reloaded")

    @_route("POST PUT", r"maintenance/categoryOptionComboUpdate/categoryCombo/([^/]+)", authority=MAINT)
    def maintenance_coc_update_one(self, req, uid):
        # type: (_Request, str) -> _Response
        state = self.state
        with state.lock:
            if uid not in state.combos:
                raise _HttpError(409, "CategoryCombo does not exist: " + uid)
            state.maintenance_log.append("categoryOptionComboUpdate/categoryCombo/" + uid)
            combo_name = state.combos[uid]["name"]
            in_use = bool(self.owner.coc_in_use)
            added, deleted = state.update_cocs(uid, req.now + float(self.owner.coc_generation_delay or 0),
                                               keep_obsolete=in_use)
        ignored = deleted if in_use else []
        deleted = [] if in_use else deleted
        # DefaultCategoryOptionComboGenerateService.java@2.42: one ImportSummary per change; an
        # obsolete combo that cannot be deleted is a WARNING summary with ignored 1
        summaries = []
        for verb, names, key in (("Added missing", added, "imported"), ("Deleted obsolete", deleted, "deleted"),
                                 (None, ignored, "ignored")):
            for name in names:
                count = _od(("imported", 0), ("updated", 0), ("ignored", 0), ("deleted", 0))
                count[key] = 1
                if verb is None:
                    text = ("Could not delete category option combo: `%s` due to `Object could not be "
                            "deleted because it is associated with another object: DataValue`" % name)
                else:
                    text = "%s category option combo: `%s` for category combo: `%s`" % (verb, name, combo_name)
                summaries.append(_od(
                    ("responseType", "ImportSummary"), ("status", "WARNING" if verb is None else "SUCCESS"),
                    ("description", text),
                    ("importCount", count), ("conflicts", []), ("rejectedIndexes", [])))
        status = "WARNING" if ignored else "SUCCESS"
        response = _od(("responseType", "ImportSummaries"), ("status", status), ("imported", len(added)),
                       ("updated", 0), ("deleted", len(deleted)), ("ignored", len(ignored)),
                       ("total", len(summaries)), ("importSummaries", summaries))
        if ignored:  # WebMessageUtils.importSummaries@2.42: WARNING -> HTTP 409, status WARNING
            return _Response.message(409, "One or more conflicts encountered, please check import summary.",
                                     status="WARNING", response=response)
        return _Response.message(200, "Import was successful.", response=response)

    def _update_all_cocs(self, now):
        # type: (float) -> None
        for uid in list(self.state.combos):
            self.state.update_cocs(uid, now + float(self.owner.coc_generation_delay or 0))

    @_route("POST PUT", r"maintenance/dataPruning/(organisationUnits|dataElements)/([^/]+)", authority=ALL_ONLY)
    def maintenance_data_pruning(self, req, what, uid):
        # type: (_Request, str, str) -> _Response
        known = self.state.org_units if what == "organisationUnits" else self.state.data_elements
        if uid not in known:
            label = "Organisation unit" if what == "organisationUnits" else "Data element"
            raise _HttpError(409, "%s does not exist: %s" % (label, uid))
        with self.state.lock:
            self.state.maintenance_log.append("dataPruning/%s/%s" % (what, uid))
        return _Response.message(200, "Data was pruned successfully")

    @_route("POST PUT", r"maintenance/([A-Za-z]+)", authority=MAINT)
    def maintenance_op(self, req, op):
        # type: (_Request, str) -> _Response
        if op not in _MAINT_PATHS[self.f["maintenance_paths"]]:
            raise _HttpError(404, "No endpoint %s /api/maintenance/%s" % (req.method, op))
        if op == "categoryOptionComboUpdate":
            with self.state.lock:
                self._update_all_cocs(req.now)
        return self._maintenance_done("cacheClear" if op == "cache" else op,
                                      empty_body=op == "analyticsTablesClear")

    # -- category metadata -----------------------------------------------------------
    def _combo_json(self, uid, now):
        # type: (str, float) -> collections.OrderedDict[str, Any]
        state = self.state
        combo = state.combos[uid]
        cats = [_od(("id", c), ("name", state.categories[c]["name"]),
                    ("categoryOptions", [_od(("id", o), ("name", state.options[o]))
                                         for o in state.categories[c]["options"]]))
                for c in combo["categories"]]
        cocs = [_od(("id", c["id"]), ("name", c["name"])) for c in combo["cocs"] if c["visible_at"] <= now]
        return _od(("id", uid), ("name", combo["name"]),
                   ("dataDimensionType", "DISAGGREGATION"), ("categories", cats), ("categoryOptionCombos", cocs))

    @staticmethod
    def _listing(req, key, items):
        # type: (_Request, str, List[Any]) -> _Response
        if (req.arg("paging") or "").lower() == "false":
            return _Response.json(_od((key, items)))
        pager = _od(("page", 1), ("total", len(items)), ("pageSize", 50), ("pageCount", 1))
        return _Response.json(_od(("pager", pager), (key, items[:50])))

    def _not_found(self, klass, uid):
        # type: (str, str) -> _HttpError
        return _HttpError(404, "%s with id %s could not be found." % (klass, uid), error_code="E1005")

    @_route("GET", r"categoryCombos")
    def category_combos(self, req):
        # type: (_Request) -> _Response
        with self.state.lock:
            items = [self._combo_json(uid, req.now) for uid in self.state.combos]
        return self._listing(req, "categoryCombos", items)

    @_route("GET", r"categoryCombos/([^/]+)")
    def category_combo(self, req, uid):
        # type: (_Request, str) -> _Response
        with self.state.lock:
            if uid not in self.state.combos:
                raise self._not_found("CategoryCombo", uid)
            return _Response.json(self._combo_json(uid, req.now))

    def _object_report(self, code, klass, uid, errors=None):
        # type: (int, str, str, Optional[List[Dict[str, Any]]]) -> _Response
        report = _od(("responseType", "ObjectReport"), ("klass", "org.hisp.dhis.category." + klass),
                     ("uid", uid), ("errorReports", errors or []))
        if errors:
            return _Response.message(409, "One or more errors occurred, please see full details in import "
                                          "report.", status="WARNING", response=report)
        return _Response.message(code, None, response=report)

    def _refs(self, body, key, known, klass):
        # type: (Dict[str, Any], str, Dict[str, Any], str) -> Tuple[List[str], List[Dict[str, Any]]]
        uids = []  # type: List[str]
        errors = []  # type: List[Dict[str, Any]]
        for ref in body.get(key) or []:
            uid = ref.get("id") if isinstance(ref, dict) else None
            if uid in known:
                uids.append(uid)
            else:
                errors.append(_od(("message", "Invalid reference [%s] (%s) on object" % (uid, klass)),
                                  ("mainKlass", "org.hisp.dhis.category." + klass), ("errorCode", "E5002")))
        return uids, errors

    def _new_uid(self, body, prefix):
        # type: (Dict[str, Any], str) -> str
        if isinstance(body.get("id"), str) and _UID_RE.match(body["id"]):
            return cast(str, body["id"])
        return _uid_from(prefix, self.owner.seed, next(self.state._seq))

    def _body_object(self, req):
        # type: (_Request) -> Dict[str, Any]
        body = req.json()
        if not isinstance(body, dict):
            raise _HttpError(400, "Request body must be a JSON object")
        if not body.get("name"):
            raise _HttpError(409, "Missing required property `name`", error_code="E4000")
        return body

    @_route("POST", r"categoryCombos")
    def category_combo_create(self, req):
        # type: (_Request) -> _Response
        return self._save_combo(req, None)

    @_route("PUT", r"categoryCombos/([^/]+)")
    def category_combo_update(self, req, uid):
        # type: (_Request, str) -> _Response
        with self.state.lock:
            if uid not in self.state.combos:
                raise self._not_found("CategoryCombo", uid)
        return self._save_combo(req, uid)

    def _save_combo(self, req, uid):
        # type: (_Request, Optional[str]) -> _Response
        body = self._body_object(req)
        state = self.state
        with state.lock:
            cats, errors = self._refs(body, "categories", state.categories, "Category")
            uid = uid or self._new_uid(body, "combo")
            if errors:
                return self._object_report(409, "CategoryCombo", uid, errors)
            combo = state.combos.setdefault(uid, {"cocs": []})
            combo["name"], combo["categories"] = body["name"], cats
            if self.f["coc_on_save"]:
                state.update_cocs(uid, req.now + float(self.owner.coc_generation_delay or 0))
        return self._object_report(201 if req.method == "POST" else 200, "CategoryCombo", uid)

    @_route("GET", r"categoryOptionCombos")
    def category_option_combos(self, req):
        # type: (_Request) -> _Response
        wanted = None
        for f in req.query.get("filter", []):
            m = re.match(r"^categoryCombo\.id:eq:(.+)$", f)
            if m:
                wanted = m.group(1)
        items = []
        with self.state.lock:
            for uid, combo in self.state.combos.items():
                if wanted is not None and uid != wanted:
                    continue
                for c in combo["cocs"]:
                    if c["visible_at"] <= req.now:
                        items.append(_od(("id", c["id"]), ("name", c["name"]), ("categoryCombo", _od(("id", uid))),
                                         ("categoryOptions", [_od(("id", o)) for o in c["options"]])))
        return self._listing(req, "categoryOptionCombos", items)

    @_route("GET", r"categories")
    def categories(self, req):
        # type: (_Request) -> _Response
        with self.state.lock:
            items = [_od(("id", u), ("name", c["name"]),
                         ("categoryOptions", [_od(("id", o), ("name", self.state.options[o])) for o in c["options"]]))
                     for u, c in self.state.categories.items()]
        return self._listing(req, "categories", items)

    @_route("POST", r"categories")
    def category_create(self, req):
        # type: (_Request) -> _Response
        body = self._body_object(req)
        with self.state.lock:
            options, errors = self._refs(body, "categoryOptions", self.state.options, "Category")
            uid = self._new_uid(body, "category")
            if errors:
                return self._object_report(409, "Category", uid, errors)
            self.state.categories[uid] = {"name": body["name"], "options": options}
        return self._object_report(201, "Category", uid)

    @_route("GET", r"categoryOptions")
    def category_options(self, req):
        # type: (_Request) -> _Response
        with self.state.lock:
            items = [_od(("id", u), ("name", n)) for u, n in self.state.options.items()]
        return self._listing(req, "categoryOptions", items)

    @_route("POST", r"categoryOptions")
    def category_option_create(self, req):
        # type: (_Request) -> _Response
        body = self._body_object(req)
        with self.state.lock:
            uid = self._new_uid(body, "option")
            self.state.options[uid] = body["name"]
        return self._object_report(201, "CategoryOption", uid)


def _filter_fields(obj, fields):
    # type: (Dict[str, Any], Optional[List[str]]) -> Dict[str, Any]
    if not fields:
        return obj
    return collections.OrderedDict((k, v) for k, v in obj.items() if k in fields)


# ---------------------------------------------------------------------------
# fault injection
# ---------------------------------------------------------------------------
def _fault_path_matches(wanted, path):
    # type: (str, Optional[str]) -> bool
    if path is None:
        return False
    if wanted.startswith("/"):
        return path.startswith(wanted)
    return path.rstrip("/") == "/api/" + wanted.strip("/")


class _Faults(object):
    """Per-request faults waiting to be used, each with a remaining count and an optional method."""

    KINDS = ("hang", "fail", "html", "truncate", "drop", "empty", "hostile")

    def __init__(self):
        # type: () -> None
        self.lock = threading.Lock()
        self.pending = {k: [] for k in self.KINDS}  # type: Dict[str, List[List[Any]]]

    def add(self, fault, count, method, **params):
        # type: (str, int, Optional[str], **Any) -> None
        with self.lock:
            self.pending[fault].append([int(count), method.upper() if method else None, params])

    def take(self, kind, method, path=None):
        # type: (str, str, Optional[str]) -> Optional[Dict[str, Any]]
        """Use up one fault of `kind` that applies to `method` and `path`: a fault's path that
        starts with "/" is a prefix ("/api/system/info"), any other names /api/`path` exactly
        ("dataIntegrity/summary"). Returns the fault's parameters or None."""
        with self.lock:
            for entry in self.pending[kind]:
                wanted = entry[2].get("path")
                if wanted and not _fault_path_matches(wanted, path):
                    continue
                if entry[0] > 0 and entry[1] in (None, method):
                    entry[0] -= 1
                    if entry[0] == 0:
                        self.pending[kind].remove(entry)
                    return cast(Dict[str, Any], entry[2])
        return None

    def clear(self):
        # type: () -> None
        with self.lock:
            for k in self.KINDS:
                self.pending[k] = []


# ---------------------------------------------------------------------------
# Hostile answers
# ---------------------------------------------------------------------------
_BOMBS = {}  # type: Dict[Tuple[int, int], bytes]
_BOMB_LOCK = threading.Lock()


def _gzip_bomb(size, layers):
    # type: (int, int) -> bytes
    """`size` bytes of JSON whitespace ending in {} (valid JSON!), gzipped `layers` times;
    built once per process (1 GiB takes ~2 s)."""
    key = (size, layers)
    if layers > 1:
        inner = _gzip_bomb(size, layers - 1)
        with _BOMB_LOCK:
            if key not in _BOMBS:
                _BOMBS[key] = gzip.compress(inner, 9)
            return _BOMBS[key]
    with _BOMB_LOCK:
        if key not in _BOMBS:
            packer = _gzip_packer()
            block = b" " * (1 << 20)
            out = []
            left = size - 2
            while left > 0:
                piece = block if left >= len(block) else block[:left]
                out.append(packer.compress(piece))
                left -= len(piece)
            out.append(packer.compress(b"{}"))
            out.append(packer.flush())
            _BOMBS[key] = b"".join(out)
        return _BOMBS[key]


def _gzip_packer():
    # type: () -> Any
    import zlib

    return zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing


def _endless(head, unit):
    # type: (bytes, bytes) -> Iterator[bytes]
    yield head
    block = unit * max(1, _CHUNK // len(unit))
    while True:
        yield block


def _hostile_response(params):
    # type: (Dict[str, Any]) -> _Response
    kind = params["kind"]
    if kind == "gzip_bomb":
        layers = int(params.get("layers", 1))
        body = _gzip_bomb(int(params.get("size", 1 << 30)), layers)
        return _Response(200, body, _JSON_TYPE,
                         [("Content-Encoding", ", ".join(["gzip"] * layers))])
    if kind == "endless":
        ctype = params.get("content_type") or _JSON_TYPE
        if "html" in ctype:
            stream = _endless(b"<html><body>", b"<p>Service unavailable</p>\n")
        else:
            stream = _endless(b'{"endless":[', b"0,")
        return _Response(int(params.get("status", 200)), content_type=ctype, stream=stream,
                         headers=list(params.get("headers") or []))
    if kind == "redirect":
        return _Response(int(params.get("status", 302)), b"", None,
                         [("Location", params["location"])])
    if kind == "huge_header":
        return _Response(200, b"{}", _JSON_TYPE, [("X-Filler", "a" * int(params.get("size", 70000)))])
    # answer: anything
    body = params.get("body") or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    return _Response(int(params.get("status", 200)), body, params.get("content_type") or _JSON_TYPE,
                     list(params.get("headers") or []))


_NUMBERS = re.compile(rb'"(percentage|averageExecutionTime)":-?[0-9][0-9.eE+-]*')
_ISSUES_OPEN = re.compile(rb'"issues":\[(\]?)')


def _corrupt(resp, params):
    # type: (_Response, Dict[str, Any]) -> _Response
    """DHIS2's answer with NaN percentages (kind nan) or a first issue whose refs nest
    `depth` deep (kind deep)."""
    body = resp.body if resp.stream is None else b"".join(resp.stream)
    if params["kind"] == "nan":
        body = _NUMBERS.sub(b'"\\1":NaN', body or b"")
    else:
        depth = int(params.get("depth", 990))
        nested = b"[" * depth + b"]" * depth

        def first_issue(match):
            # type: (Any) -> bytes
            issue = b'{"id":"deepNested1","name":"deep","refs":[' + nested + b"]}"
            return b'"issues":[' + issue + (b"]" if match.group(1) else b",")
        body = _ISSUES_OPEN.sub(first_issue, body or b"", count=1)
    headers = [h for h in resp.headers if h[0].lower() != "content-type"]
    return _Response(resp.status, body, _JSON_TYPE, headers)


# ---------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address, owner):
        # type: (Tuple[str, int], Dhis2StandIn) -> None
        self.owner = owner
        self.connections = set()  # type: Set[socket.socket]
        self.connections_lock = threading.Lock()
        ThreadingHTTPServer.__init__(self, address, _Handler)

    def process_request(self, request, client_address):
        # type: (Any, Any) -> None
        with self.connections_lock:
            self.connections.add(request)
        ThreadingHTTPServer.process_request(self, request, client_address)

    def shutdown_request(self, request):
        # type: (Any) -> None
        with self.connections_lock:
            self.connections.discard(request)
        ThreadingHTTPServer.shutdown_request(self, request)

    def close_connections(self):
        # type: () -> None
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        # type: (Any, Any) -> None
        if self.owner.verbose:
            ThreadingHTTPServer.handle_error(self, request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; without TCP_NODELAY, Nagle's
    # algorithm and the client's delayed ACK add ~40 ms to every response.
    disable_nagle_algorithm = True

    @property
    def owner(self):
        # type: () -> Dhis2StandIn
        return cast(_Server, self.server).owner

    def version_string(self):
        # type: () -> str
        return "dhis2maint-standin"

    def date_time_string(self, timestamp=None):
        # type: (Optional[float]) -> str
        """The Date header, off by the stand-in's scheduler.clock_skew."""
        now = time.time() if timestamp is None else timestamp
        return BaseHTTPRequestHandler.date_time_string(self, self.owner.scheduler.date_header_time(now))

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        # type: (str, *Any) -> None
        if self.owner.verbose:
            BaseHTTPRequestHandler.log_message(self, format, *args)

    def _handle_command(self):
        # type: () -> None
        self._dispatch(self.command)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle_command

    def _read_body(self):
        # type: () -> bytes
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []  # type: List[bytes]
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self, method):
        # type: (str) -> None
        owner = self.owner
        try:
            self._serve(owner, method)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
            self.close_connection = True
        except OSError:
            self.close_connection = True

    def _serve(self, owner, method):
        # type: (Dhis2StandIn, str) -> None
        url = urlsplit(self.path)
        body = self._read_body()
        query = parse_qs(url.query, keep_blank_values=True)
        owner._record(RecordedRequest(method, url.path, query, dict(self.headers.items()), body))
        stop = owner._stop_event
        if owner.delay and stop.wait(float(owner.delay)):
            self.close_connection = True
            return
        faults = owner._faults
        if faults.take("hang", method) is not None:
            stop.wait(60.0)
            self.close_connection = True
            return
        fail = faults.take("fail", method)
        if fail is not None:
            code = fail["status"]
            headers = [("Retry-After", str(fail["retry_after"]))] if fail.get("retry_after") is not None else []
            if fail["html"]:
                resp = _Response(code, _nginx_page(code), "text/html", headers)
            else:
                resp = _Response.json(_web_message(code, _NGINX_REASONS.get(code) or HTTPStatus(code).phrase),
                                      code, headers)
            self._send(resp, False)
            return
        if faults.take("html", method) is not None:
            self._send(_Response(200, _LOGIN_PAGE.encode("utf-8"), "text/html;charset=UTF-8"), False)
            return
        hostile = faults.take("hostile", method, url.path)
        if hostile is not None and hostile["kind"] not in ("nan", "deep"):
            self._send(_hostile_response(hostile), False)
            return
        truncate = faults.take("truncate", method) is not None
        drop = faults.take("drop", method) is not None
        base = "http://" + self.headers["Host"] if self.headers.get("Host") else owner.url
        req = _Request(method, url.path, query, self.headers, body, base, "", owner._now())
        try:
            resp = owner._api.handle(req)
        except _HttpError as e:
            resp = _Response.json(_web_message(e.code, e.message, error_code=e.error_code,
                                               dev_message=e.dev_message), e.code, e.headers)
        except Exception as e:  # a bug in the stand-in: answer like a server error
            if owner.verbose:
                import traceback
                traceback.print_exc()
            resp = _Response.json(_web_message(500, "%s: %s" % (type(e).__name__, e)), 500)
        if drop:  # the work is done, the answer is lost
            self._abort()
            return
        if resp.status < 300 and faults.take("empty", method, url.path) is not None:
            resp = _Response.empty(200)  # the work is done, the body is lost (proxy, restart)
        if hostile is not None:  # nan / deep: DHIS2's own answer, corrupted
            resp = _corrupt(resp, hostile)
        self._send(resp, truncate)

    def _send(self, resp, truncate):
        # type: (_Response, bool) -> None
        self.send_response(resp.status)
        for key, value in resp.headers:
            self.send_header(key, value)
        if resp.stream is not None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._send_chunks(resp.stream, truncate)
            return
        body = resp.body or b""
        if resp.status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if truncate:
            self.wfile.write(body[:len(body) // 2])
            self._abort()
        elif body:
            self.wfile.write(body)

    def _send_chunks(self, stream, truncate):
        # type: (Iterator[bytes], bool) -> None
        owner = self.owner
        stop = owner._stop_event
        for chunk in stream:
            if not chunk:
                continue
            if stop.is_set():
                return self._abort()
            if truncate:  # half of the first chunk, then hang up without the last-chunk marker
                half = chunk[:max(1, len(chunk) // 2)]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(half), half))
                return self._abort()
            rate = owner.trickle
            if rate:
                piece = max(1, int(rate) // 20)
                for i in range(0, len(chunk), piece):
                    part = chunk[i:i + piece]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    if stop.wait(len(part) / float(rate)):
                        return self._abort()
            else:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def _abort(self):
        # type: () -> None
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# ---------------------------------------------------------------------------
# public facade
# ---------------------------------------------------------------------------
class Dhis2StandIn(object):
    """A simulated DHIS2 server on a local port.

    Parameters: `version` ("2.36" to "2.43", or a full version like "2.42.3.1" or "2.43-SNAPSHOT"),
    `users` (username -> password, default admin/district), `tokens` (personal access token ->
    username), `job_seconds` (how long each simulated job runs), `issues` (check name -> issue
    count; other checks get 0-5 issues derived from `seed`), `host`, `port` (0 = any free port),
    `verbose` (log requests and errors to stderr).

    Attributes that tests may set at any time::

      authorities                dict username -> list of authority strings (default ["ALL"]).
      delay                      seconds every response waits before it is sent (0 = off).
      trickle                    bytes/second at which chunked bodies are sent (0/None = off).
      start_delay                seconds a new job shows an empty feed before it starts (default 0).
      job_seconds                duration of each simulated job.
      drop_feed_after_completion /api/system/tasks/{type}/{id} answers [] once the job finished.
      login_redirect             unauthenticated /api calls get 302 to the login page instead of 401.
      coc_generation_delay       generated category option combos only appear after this many seconds.
      nameless_every             in flattened integrity reports every n-th object has no display name
                                 (DHIS2 then writes its bare UID); 0 = off.
      job_error_codes            errorCodes a failed job's /api/jobConfigurations record shows (2.41+),
                                 e.g. "E7010 E7131" (default "").
      coc_in_use                 obsolete category option combos are in use: the per-combo update keeps
                                 them and answers 409 with a WARNING ImportSummaries, as DHIS2 does.
      drift                      integrity runs differ (0 = off): in the r-th run (from 0) each check with
                                 issues has r more and its first r*drift issues are gone (resolved), so
                                 history, trends and new-issue detection have something to show.
      verbose_notifications      integrity jobs post stage and "[i/n]" LOOP messages (real DHIS2 doesn't:
                                 DATA_INTEGRITY is not a notifying job type).
      maintenance_log            names of the maintenance operations run, in order.
      requests                   every RecordedRequest, in arrival order.
      scheduler                  job configurations and scheduler state (_standin_scheduler.SchedulerState).

    Hostile knobs (a broken or compromised proxy): gzip_bomb_next, endless_body_next,
    nan_next, deep_nesting_next, redirect_next, huge_header_next, answer_next (each
    optionally for one `path` prefix), and outage(seconds, after) which closes the
    listening socket -- connection refused -- while simulated jobs go on.
    """

    def __init__(self, version: str = "2.42", users: Optional[Dict[str, str]] = None,
                 tokens: Optional[Dict[str, str]] = None, job_seconds: float = 2.0,
                 issues: Optional[Dict[str, int]] = None, seed: int = 0, host: str = "127.0.0.1",
                 port: int = 0, verbose: bool = False) -> None:
        self._minor, self.full_version = _parse_version(version)
        self.version = str(version)
        self._features = _features(self._minor)
        self.users = dict(users if users is not None else DEFAULT_USERS)
        first_user = next(iter(self.users), "admin")
        self.tokens = dict(tokens if tokens is not None else {DEFAULT_TOKEN: first_user})
        self.authorities = {}  # type: Dict[str, List[str]]
        self.job_seconds = float(job_seconds)
        self.seed = seed
        self.host, self.port = host, int(port)
        self.verbose = verbose
        self.delay = 0.0  # type: float
        self.trickle = None  # type: Optional[float]
        self.start_delay = 0.0  # type: float
        self.drop_feed_after_completion = False
        self.login_redirect = False
        self.coc_generation_delay = 0.0  # type: float
        self.coc_in_use = False
        self.nameless_every = 0
        self.job_error_codes = ""
        self.verbose_notifications = False
        self.drift = 0  # type: int
        self.requests = []  # type: List[RecordedRequest]
        self._requests_lock = threading.Lock()
        self._faults = _Faults()
        self._stop_event = threading.Event()
        checks = _Checks(self._features["catalogue"], _load_catalogue_file())
        self._state = _State(self, self._features, checks, seed, issues)
        self._api = _Api(self)
        self.scheduler = SchedulerState(self)
        self._httpd = None  # type: Optional[_Server]
        self._thread = None  # type: Optional[threading.Thread]
        self._serving = False
        self._url = None  # type: Optional[str]
        self._down = threading.Event()  # set while an outage has the socket closed

    def __repr__(self) -> str:
        where = self.url if self._httpd is not None else "not started"
        return "<Dhis2StandIn %s %s>" % (self.full_version, where)

    # -- lifecycle ---------------------------------------------------------------
    def _bind(self) -> _Server:
        if self._httpd is None:
            self._stop_event.clear()
            # after an outage: the same port again
            port = int(self._url.rsplit(":", 1)[1]) if self._url else self.port
            self._httpd = _Server((self.host, port), self)
            host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
            self._url = "http://%s:%d" % (host, self._httpd.server_port)
        return self._httpd

    @property
    def url(self) -> str:
        """Base URL without trailing slash, e.g. "http://127.0.0.1:PORT" (binds the socket if not yet bound)."""
        if self._url is None:
            self._bind()
        return self._url or ""

    def start(self) -> "Dhis2StandIn":
        """Serve in a daemon thread; returns self."""
        if self._down.is_set():
            return self  # an outage: come_back() starts it again
        httpd = self._bind()
        if self._thread is None and not self._serving:
            self._serving = True
            self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="Dhis2StandIn", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until stop() is called (or KeyboardInterrupt)."""
        httpd = self._bind()
        self._serving = True
        try:
            httpd.serve_forever(poll_interval=0.05)
        finally:
            self._serving = False
            self._close()

    def stop(self) -> None:
        """Stop serving, wake hung/trickling handlers, drop open connections, close the socket."""
        self._stop_event.set()
        httpd = self._httpd
        if httpd is None:
            return
        if self._serving and self._thread is not threading.current_thread():
            httpd.shutdown()  # returns once serve_forever's loop has ended
        if self._thread is not None:
            self._thread.join(1.0)
            self._thread = None
        self._serving = False
        self._close()

    def _close(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.close_connections()
            httpd.server_close()

    def __enter__(self) -> "Dhis2StandIn":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- recording -----------------------------------------------------------------
    def _record(self, request: RecordedRequest) -> None:
        with self._requests_lock:
            self.requests.append(request)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._requests_lock:
            del self.requests[:]

    def _now(self) -> float:
        return time.time()

    def authorities_of(self, username: str) -> List[str]:
        """The authorities of a user: srv.authorities[username] if set, else ["ALL"]."""
        return list(self.authorities.get(username, ["ALL"]))

    @property
    def maintenance_log(self) -> List[str]:
        """Maintenance operations run so far, e.g. ["cacheClear", "analyticsTablesClear"]."""
        with self._state.lock:
            return list(self._state.maintenance_log)

    # -- fault knobs -----------------------------------------------------------------
    def fail_next(self, count: int = 1, status: int = 503, method: Optional[str] = None,
                  retry_after: Optional[Any] = None, html: bool = True) -> None:
        """The next `count` requests (of `method`, if given) get `status` with an nginx-like HTML page
        (or a DHIS2 WebMessage when html=False), plus Retry-After if `retry_after` is given."""
        self._faults.add("fail", count, method, status=int(status), retry_after=retry_after, html=html)

    def hang_next(self, count: int = 1, method: Optional[str] = None) -> None:
        """The next `count` requests are read and never answered (until stop() or 60 s, then the
        connection is closed without a reply)."""
        self._faults.add("hang", count, method)

    def truncate_next(self, count: int = 1, method: Optional[str] = None) -> None:
        """The next `count` responses announce the full Content-Length but carry half the body (chunked
        ones stop mid-way without the last chunk); the connection is then closed."""
        self._faults.add("truncate", count, method)

    def drop_response_next(self, count: int = 1, method: Optional[str] = None) -> None:
        """The next `count` requests (of `method`, if given) are carried out (a POST starts its
        job) but the connection is closed without an answer, as when a proxy or the network
        drops it: the client cannot know whether anything happened."""
        self._faults.add("drop", count, method)

    def empty_next(self, count: int = 1, method: Optional[str] = None,
                   path: Optional[str] = None) -> None:
        """The next `count` successful answers (of `method`, and to /api/`path` exactly if given,
        e.g. "dataIntegrity/summary") are HTTP 200 with an empty body (the request is carried out)."""
        self._faults.add("empty", count, method, path=path)

    def html_next(self, count: int = 1, method: Optional[str] = None) -> None:
        """The next `count` requests get 200 text/html: the DHIS2 login page."""
        self._faults.add("html", count, method)

    def set_delay(self, seconds: float) -> None:
        """Every response waits `seconds` before it is sent."""
        self.delay = float(seconds or 0)

    def set_trickle(self, bytes_per_second: Optional[float]) -> None:
        """Send chunked (streamed) bodies in small pieces at this rate; 0/None = full speed."""
        self.trickle = bytes_per_second or None

    def fail_next_job(self, message: str = "Process failed: Simulated failure") -> None:
        """The next job started fails half-way: an ERROR completed notification with `message`
        (a leading "Process failed: " is added if missing) and lastExecutedStatus FAILED (2.41+)."""
        prefix = "Process failed: "
        with self._state.lock:
            self._state.job_failures.append(message[len(prefix):] if message.startswith(prefix) else message)

    def conflict_next(self, count: int = 1) -> None:
        """The next `count` job-starting POSTs answer 409 E1004 ("Job is already running.", or
        "Data integrity check is already running" for integrity runs)."""
        with self._state.lock:
            self._state.conflicts += int(count)

    def set_issue_count(self, check_name: str, n: int) -> None:
        """Runs started from now on find `n` issues for that check (details are streamed, so millions work)."""
        with self._state.lock:
            self._state.issue_counts[check_name] = int(n)

    def fail_check(self, name: str, message: str = "Simulated check failure") -> None:
        """Runs started from now on fail this check: summary count -1 with `error`, details issues []."""
        with self._state.lock:
            self._state.failing_checks[name] = message

    def fail_predictor(self, uid: str) -> None:
        """Runs of this predictor answer 409 "Unable to predict <name>"."""
        with self._state.lock:
            self._state.failing_predictors.add(uid)

    # -- hostile knobs ---------------------------------------------------------------------
    def _hostile(self, kind, count, method, path, **params):
        # type: (str, int, Optional[str], Optional[str], **Any) -> None
        params.update(kind=kind, path=path)
        self._faults.add("hostile", count, method, **params)

    def gzip_bomb_next(self, count: int = 1, size: int = 1 << 30, layers: int = 1,
                       method: Optional[str] = None, path: Optional[str] = None) -> None:
        """The next `count` requests get `size` bytes of JSON whitespace (valid JSON) gzipped
        `layers` times (``Content-Encoding: gzip, gzip`` for 2): 1 GiB is ~1 MB once, 2 KB twice."""
        self._hostile("gzip_bomb", count, method, path, size=int(size), layers=int(layers))

    def endless_body_next(self, count: int = 1, status: int = 200,
                          content_type: Optional[str] = None, method: Optional[str] = None,
                          path: Optional[str] = None) -> None:
        """The next `count` requests get a chunked body that never ends (JSON ``{"endless":[0,0,…``,
        or an HTML page with content_type "text/html"), at full speed, until the client hangs up."""
        self._hostile("endless", count, method, path, status=int(status), content_type=content_type)

    def nan_next(self, count: int = 1, method: Optional[str] = None,
                 path: Optional[str] = None) -> None:
        """The next `count` answers carry ``NaN`` (not JSON) as their ``percentage`` and
        ``averageExecutionTime`` numbers."""
        self._hostile("nan", count, method, path)

    def deep_nesting_next(self, count: int = 1, depth: int = 990, method: Optional[str] = None,
                          path: Optional[str] = None) -> None:
        """The next `count` answers with an "issues" array get a first issue whose refs are
        a list nested `depth` deep."""
        self._hostile("deep", count, method, path, depth=int(depth))

    def redirect_next(self, location: str, count: int = 1, status: int = 302,
                      method: Optional[str] = None, path: Optional[str] = None) -> None:
        """The next `count` requests get `status` with ``Location: location`` (e.g. another host)."""
        self._hostile("redirect", count, method, path, location=location, status=int(status))

    def huge_header_next(self, count: int = 1, size: int = 70000, method: Optional[str] = None,
                         path: Optional[str] = None) -> None:
        """The next `count` answers carry a header line of `size` bytes (clients refuse > 64 KiB)."""
        self._hostile("huge_header", count, method, path, size=int(size))

    def answer_next(self, body: Any, count: int = 1, status: int = 200,
                    content_type: Optional[str] = None,
                    headers: Optional[List[Tuple[str, str]]] = None, method: Optional[str] = None,
                    path: Optional[str] = None) -> None:
        """The next `count` requests get this answer instead of DHIS2's (e.g. another
        application's ``{"status":"UP"}`` at /api/system/info)."""
        self._hostile("answer", count, method, path, body=body, status=int(status),
                      content_type=content_type, headers=list(headers or []))

    def go_down(self) -> None:
        """Close the listening socket and every open connection: clients get connection
        refused until come_back().  Jobs go on (their state lives on)."""
        self._down.set()
        httpd = self._httpd
        if httpd is None:
            return
        if self._thread is not None:
            httpd.shutdown()
            self._thread.join(1.0)
            self._thread = None
        self._serving = False
        self._close()

    def come_back(self) -> None:
        """Listen again on the same port after go_down()."""
        self._down.clear()
        if self._stop_event.is_set():
            return
        self.start()

    @property
    def is_down(self) -> bool:
        """True during an outage (go_down / outage)."""
        return self._down.is_set()

    def outage(self, seconds: float, after: float = 0.0) -> threading.Thread:
        """In `after` seconds, go down for `seconds` (connection refused), then come back on
        the same port; runs in a daemon thread (returned), jobs survive.  stop() ends it."""
        def run():
            # type: () -> None
            if self._stop_event.wait(float(after)):
                return
            self.go_down()
            self._stop_event.wait(float(seconds))
            self.come_back()
        thread = threading.Thread(target=run, name="Dhis2StandIn-outage", daemon=True)
        thread.start()
        return thread

    def set_default_issue_count(self, n: Optional[int]) -> None:
        """Runs started from now on find `n` issues for every check without its own count."""
        with self._state.lock:
            self._state.default_issue_count = None if n is None else int(n)

    def reset_faults(self) -> None:
        """Clear every fault knob (pending request faults, delay, trickle, job failures, conflicts,
        failing checks/predictors, feed dropping, login redirect, COC delay)."""
        self._faults.clear()
        self.delay, self.trickle = 0.0, None
        self.drop_feed_after_completion = False
        self.login_redirect = False
        self.coc_generation_delay = 0.0
        self.coc_in_use = False
        with self._state.lock:
            self._state.job_failures.clear()
            self._state.conflicts = 0
            self._state.failing_checks.clear()
            self._state.failing_predictors.clear()

    # -- introspection helpers for tests --------------------------------------------------
    def job_ids(self, job_type: Optional[str] = None) -> List[str]:
        """Ids of the jobs started so far (optionally of one job type), oldest first."""
        with self._state.lock:
            return [j.id for j in self._state.jobs.values() if job_type in (None, j.job_type)]

    def check_names(self) -> List[str]:
        """Names of the data-integrity checks this version lists."""
        return list(self._state.checks.by_name)


def _count_and(text, what, convert=str):
    # type: (str, str, Callable[[str], Any]) -> Tuple[int, Any]
    """'N' or 'N:VALUE' (VALUE converted) -> (N, VALUE or None)."""
    count, _, value = text.partition(":")
    try:
        return int(count), (convert(value) if value else None)
    except ValueError:
        raise argparse.ArgumentTypeError("{}: expected N or N:VALUE, got {!r}".format(what, text))


def _pair(text):
    # type: (str) -> Tuple[float, float]
    after, sep, seconds = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(after), float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError("expected AFTER:SECONDS, e.g. 30:60, got {!r}".format(text))


def _issue_count(text):
    # type: (str) -> Tuple[Optional[str], int]
    name, sep, n = text.rpartition("=")
    try:
        return (name if sep else None), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError("expected N or CHECK=N, got {!r}".format(text))


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m dhis2maint.testing`: one flag per fault knob."""
    parser = argparse.ArgumentParser(
        prog="python -m dhis2maint.testing",
        description="Run a simulated DHIS2 server for tests and demos; the fault flags make it "
                    "misbehave on purpose so you can rehearse failures of your own jobs and DAGs.")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--version", default="2.42", help="DHIS2 version to simulate (2.36 to 2.43)")
    parser.add_argument("--job-seconds", type=float, default=2.0, help="how long each simulated job runs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated integrity issues")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    data = parser.add_argument_group("data")
    data.add_argument("--issues", type=_issue_count, action="append", default=[], metavar="[CHECK=]N",
                      help="integrity issues found: N for every check, or CHECK=N for one (repeatable)")
    data.add_argument("--fail-check", action="append", default=[], metavar="CHECK",
                      help="runs fail this check (repeatable)")
    data.add_argument("--fail-predictor", action="append", default=[], metavar="UID")
    data.add_argument("--verbose-notifications", action="store_true",
                      help="integrity jobs post stage and [i/n] messages (real DHIS2 does not)")
    data.add_argument("--nameless-every", type=int, metavar="N",
                      help="in 2.36's flattened integrity reports every N-th object has no "
                           "display name (DHIS2 then writes its bare UID)")
    data.add_argument("--drift", type=int, metavar="N",
                      help="integrity runs differ: in the r-th run (from 0) each check with issues "
                           "has r more and its first r*N issues are resolved (for history/trends)")
    faults = parser.add_argument_group("faults (N = how many requests; once when N is left out)")
    faults.add_argument("--fail-next", metavar="N[:STATUS]", type=lambda t: _count_and(t, "--fail-next", int),
                        help="the next N requests get STATUS (default 503) with an nginx page")
    faults.add_argument("--hang-next", type=int, metavar="N", help="the next N requests are never answered")
    faults.add_argument("--truncate-next", type=int, metavar="N", help="the next N bodies stop half-way")
    faults.add_argument("--drop-response-next", type=int, metavar="N",
                        help="the next N requests are carried out but their answer is lost")
    faults.add_argument("--html-next", type=int, metavar="N", help="the next N requests get the login page")
    faults.add_argument("--delay", type=float, metavar="S", help="every answer waits S seconds")
    faults.add_argument("--trickle", type=float, metavar="BYTES_PER_S", help="send streamed bodies slowly")
    faults.add_argument("--start-delay", type=float, metavar="S",
                        help="new jobs show an empty feed for S seconds before they start")
    faults.add_argument("--fail-next-job", nargs="?", const="Process failed: Simulated failure",
                        metavar="MESSAGE", help="the next job started fails half-way")
    faults.add_argument("--job-error-codes", metavar="CODES",
                        help="errorCodes a failed job's /api/jobConfigurations record shows "
                             "(2.41+), e.g. \"E7010 E7131\"")
    faults.add_argument("--conflict-next", type=int, metavar="N", help="the next N job starts answer 409")
    faults.add_argument("--drop-feed-after-completion", action="store_true",
                        help="a finished job's task feed answers [] (as after a restart)")
    faults.add_argument("--login-redirect", action="store_true",
                        help="unauthenticated calls get 302 to the login page instead of 401")
    faults.add_argument("--coc-generation-delay", type=float, metavar="S",
                        help="generated category option combos appear S seconds late")
    faults.add_argument("--coc-in-use", action="store_true",
                        help="obsolete category option combos are in use: the per-combo COC update "
                             "keeps them and answers 409 with a WARNING ImportSummaries")
    faults.add_argument("--outage", type=_pair, action="append", default=[], metavar="AFTER:SECONDS",
                        help="AFTER seconds from now, close the listening socket (connection refused) "
                             "for SECONDS; jobs go on (repeatable)")
    hostile = parser.add_argument_group("hostile answers (a broken or compromised proxy)")
    hostile.add_argument("--gzip-bomb", type=int, nargs="?", const=1, metavar="N",
                         help="the next N answers are 1 GiB of JSON whitespace gzipped (~1 MB)")
    hostile.add_argument("--stacked-gzip", type=int, nargs="?", const=1, metavar="N",
                         help="the next N answers are 2 GiB gzipped twice (Content-Encoding: gzip, gzip)")
    hostile.add_argument("--endless-body", type=int, nargs="?", const=1, metavar="N",
                         help="the next N answers are JSON that never ends")
    hostile.add_argument("--endless-html", metavar="N[:STATUS]", type=lambda t: _count_and(t, "--endless-html", int),
                         help="the next N answers are an endless HTML page with STATUS (default 500)")
    hostile.add_argument("--nan", type=int, nargs="?", const=1, metavar="N",
                         help="the next N answers carry \"percentage\":NaN")
    hostile.add_argument("--deep-nesting", metavar="N[:DEPTH]", type=lambda t: _count_and(t, "--deep-nesting", int),
                         help="the next N answers with issues get refs nested DEPTH (default 990) deep")
    hostile.add_argument("--redirect-to", metavar="URL", help="the next answer is 302 to URL")
    hostile.add_argument("--huge-header", type=int, nargs="?", const=1, metavar="N",
                         help="the next N answers carry a 70 KB header line")
    hostile.add_argument("--not-dhis2", action="store_true",
                         help="/api/system/info answers like another application ({\"status\":\"UP\"})")
    hostile.add_argument("--empty-next", type=int, nargs="?", const=1, metavar="N",
                         help="the next N successful answers are HTTP 200 with an empty body "
                              "(the request is carried out: a POST starts its job)")
    hostile.add_argument("--only-path", metavar="PREFIX",
                         help="hostile and empty answers only for paths starting with PREFIX, "
                              "e.g. /api/dataIntegrity/details")
    hostile.add_argument("--only-method", metavar="METHOD", type=str.upper,
                         help="hostile and empty answers only for this method, e.g. GET")
    return parser


def apply_faults(srv: Dhis2StandIn, args: argparse.Namespace) -> None:
    """Set the knobs the parsed flags ask for (see build_parser)."""
    for name, n in args.issues:
        if name is None:
            srv.set_default_issue_count(n)
        else:
            srv.set_issue_count(name, n)
    for name in args.fail_check:
        srv.fail_check(name)
    for uid in args.fail_predictor:
        srv.fail_predictor(uid)
    srv.verbose_notifications = bool(args.verbose_notifications)
    if args.fail_next:
        count, status = args.fail_next
        srv.fail_next(count, status or 503)
    for flag, knob in (("hang_next", srv.hang_next), ("truncate_next", srv.truncate_next),
                       ("drop_response_next", srv.drop_response_next), ("html_next", srv.html_next),
                       ("conflict_next", srv.conflict_next)):
        if getattr(args, flag):
            knob(getattr(args, flag))
    if args.delay:
        srv.set_delay(args.delay)
    if args.trickle:
        srv.set_trickle(args.trickle)
    if args.start_delay:
        srv.start_delay = args.start_delay
    if args.fail_next_job:
        srv.fail_next_job(args.fail_next_job)
    srv.drop_feed_after_completion = bool(args.drop_feed_after_completion)
    srv.login_redirect = bool(args.login_redirect)
    if args.coc_generation_delay:
        srv.coc_generation_delay = args.coc_generation_delay
    srv.coc_in_use = bool(args.coc_in_use)
    if args.nameless_every:
        srv.nameless_every = args.nameless_every
    if args.drift:
        srv.drift = args.drift
    if args.job_error_codes:
        srv.job_error_codes = args.job_error_codes
    path, method = args.only_path, args.only_method
    if args.gzip_bomb:
        srv.gzip_bomb_next(args.gzip_bomb, path=path, method=method)
    if args.stacked_gzip:
        srv.gzip_bomb_next(args.stacked_gzip, size=2 << 30, layers=2, path=path,
                           method=method)
    if args.endless_body:
        srv.endless_body_next(args.endless_body, path=path, method=method)
    if args.endless_html:
        count, status = args.endless_html
        srv.endless_body_next(count, status=status or 500, content_type="text/html", path=path,
                              method=method)
    if args.nan:
        srv.nan_next(args.nan, path=path, method=method)
    if args.deep_nesting:
        count, depth = args.deep_nesting
        srv.deep_nesting_next(count, depth=depth or 990, path=path, method=method)
    if args.redirect_to:
        srv.redirect_next(args.redirect_to, path=path, method=method)
    if args.huge_header:
        srv.huge_header_next(args.huge_header, path=path, method=method)
    if args.empty_next:
        srv.empty_next(args.empty_next, path=path, method=method)
    if args.not_dhis2:
        srv.answer_next('{"status":"UP","groups":["liveness","readiness"]}', count=1 << 30,
                        path="/api/system/info")
    for after, seconds in args.outage:
        srv.outage(seconds, after=after)


def main(argv: Optional[List[str]] = None) -> int:
    """`python -m dhis2maint.testing`: run a stand-in in the foreground until Ctrl-C."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        srv = Dhis2StandIn(version=args.version, job_seconds=args.job_seconds, seed=args.seed,
                           host=args.host, port=args.port, verbose=args.verbose)
    except ValueError as e:
        parser.error(str(e))
    user, password = next(iter(srv.users.items()))
    token = next(iter(srv.tokens))
    try:
        url = srv.url
    except OSError as e:
        print("cannot listen on %s:%d: %s" % (args.host, args.port, e), file=sys.stderr)
        return 1
    print("DHIS2 %s stand-in at %s  username/password %s/%s  token %s" % (
        srv.full_version, url, user, password, token), flush=True)
    # ready to paste into another terminal (#21.5)
    print("\n# in another terminal:\nexport DHIS2_URL=%s\nexport DHIS2_USERNAME=%s\n"
          "export DHIS2_PASSWORD=%s\n# or, for the token: export DHIS2_PAT=%s\n"
          "dhis2maint doctor" % (url, user, password, token), flush=True)
    try:
        srv.start()  # in a thread, so an outage can close and reopen the socket
        apply_faults(srv, args)
        while not srv._stop_event.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
