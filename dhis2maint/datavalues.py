"""Server health inside DHIS2 itself (#25): integrity and scheduler counts as data values.

Many DHIS2 deployments have no Prometheus: DHIS2's own dashboards are what their people
look at.  This module puts what dhis2maint knows -- each integrity check's count, the
issues per severity, the scheduler's findings per kind -- into DHIS2 as daily aggregate
data values, with the metadata they need and a dashboard "Server health (dhis2maint)".

Pure functions (no HTTP; tested on their own):

* :func:`uid_from_code` -- a valid, stable DHIS2 UID from a code, so setup run twice
  changes nothing and creates no duplicate;
* :func:`check_codes` / :func:`metadata_payload` -- the codes and the one
  ``POST /api/metadata`` payload (data elements, group, data set, visualizations,
  dashboard) for a check list, a code prefix and an organisation unit;
* :func:`values_from_report`, :func:`values_from_health`,
  :func:`values_from_history_run` -- the data values of a run (only checks that ran:
  a failed check sends nothing, never 0), dated :func:`period_of` its day;
* :func:`read_import_summary`, :func:`read_metadata_report` -- DHIS2's answers on every
  version (a bare summary on 2.36 or with ``/api/37/``; a WebMessage wrapping it from 2.37).

:class:`DataValuesMixin` gives :class:`~dhis2maint.Session` ``setup_data_values``,
``push_data_values``, ``push_history_values``, ``data_values_status`` and
``server_calendar``.

Nothing is retried after a POST may have reached DHIS2: a lost answer is an error with
``outcome_unknown`` set (see :mod:`dhis2maint.transport`), never a second POST.
"""
from __future__ import annotations  # models are built on first use, not to annotate

import datetime
import hashlib
import re
from typing import (TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set,
                    Tuple, Union)

from . import models, versions
from .errors import ConfigurationError, Dhis2Error, InvalidResponseError, error_for_response
from .transport import _read_body, decode_json

if TYPE_CHECKING:
    from typing import Protocol

    from .models import (DataValue, DataValueImportSummary, DataValuesStatus, ImportConflict,
                         ImportCount, MetadataImportReport, MetadataTypeReport)

    from ._typing import SessionTransport

    class RunInfo(Protocol):
        """What is read of a :class:`dhis2maint.history.RunInfo` (not imported: history
        imports sqlite3 and the session)."""

        @property
        def id(self) -> int: ...

        @property
        def run_at(self) -> datetime.datetime: ...

        @property
        def server_time(self) -> Optional[datetime.datetime]: ...

    class History(Protocol):
        """What is used of a :class:`dhis2maint.history.History`."""

        def runs(self, server: Optional[str] = None) -> Sequence[RunInfo]: ...

        def load_report(self, run_id: int) -> models.DataIntegrityReport: ...
else:
    SessionTransport = object

__all__ = [
    "DEFAULT_PREFIX", "DASHBOARD_NAME", "SEVERITIES", "FINDING_KINDS", "PLAIN_CALENDARS",
    "SETUP_AUTHORITIES", "setup_refused",
    "DataValue", "ImportCount", "ImportConflict", "DataValueImportSummary", "MetadataTypeReport",
    "MetadataImportReport", "DataValuesStatus", "ImportConflictError",
    "uid_from_code", "check_codes", "object_codes", "metadata_payload", "period_of",
    "values_from_report", "values_from_health", "values_from_history_run",
    "read_import_summary", "read_metadata_report", "DataValuesMixin",
]

_MODELS = ("DataValue", "ImportCount", "ImportConflict", "DataValueImportSummary",
           "MetadataTypeReport", "MetadataImportReport", "DataValuesStatus")


def __getattr__(name: str) -> Any:
    """This module's records live in :mod:`dhis2maint.models` (built on first use,
    so ``import dhis2maint`` builds none, #20.10); they are importable from here too."""
    if name in _MODELS:
        return getattr(models, name)
    raise AttributeError("module {!r} has no attribute {!r}".format(__name__, name))


# POST /api/metadata has no authority of its own (MetadataImportExportController, 2.36-2.43):
# the import asks each object type's create authority (its SchemaDescriptor: public or
# private add; visualizations and dashboards may always be created private).
# F_METADATA_IMPORT is the Import/Export app's, not the endpoint's.

#: object type -> the authorities that let a user create it (None: anyone, as private)
SETUP_AUTHORITIES: Tuple[Tuple[str, Optional[Tuple[str, ...]]], ...] = (
    ("DataElement", ("F_DATAELEMENT_PUBLIC_ADD", "F_DATAELEMENT_PRIVATE_ADD")),
    ("DataElementGroup", ("F_DATAELEMENTGROUP_PUBLIC_ADD", "F_DATAELEMENTGROUP_PRIVATE_ADD")),
    ("DataSet", ("F_DATASET_PUBLIC_ADD", "F_DATASET_PRIVATE_ADD")),
    ("Visualization", None),
    ("Dashboard", None),
)


def setup_refused(authorities: Iterable[str]) -> List[str]:
    """The object types of setup a user with ``authorities`` may not create (DHIS2
    answers E3000 for each); empty when setup may create them all."""
    have = set(authorities)
    if "ALL" in have:
        return []
    return [kind for kind, any_of in SETUP_AUTHORITIES
            if any_of is not None and not have.intersection(any_of)]


#: the code prefix of every object setup creates (``MI_`` is tool-dq-workbench's)
DEFAULT_PREFIX = "DM_"
#: the dashboard's name
DASHBOARD_NAME = "Server health (dhis2maint)"
#: issues per severity: one data element each
SEVERITIES = ("INFO", "WARNING", "SEVERE", "CRITICAL")
#: scheduler findings per kind (:class:`~dhis2maint.models.HealthFinding` ``kind``)
FINDING_KINDS = ("failed", "stuck", "overdue", "disabled_system_job", "missing_system_job",
                 "analytics_stale", "analytics_never", "scheduler_dead")
#: ``/api/system/info`` ``calendar`` values whose days are the ISO (Gregorian) days.
#: Any other calendar (ethiopian, nepali, persian, …) is a :class:`ConfigurationError`
#: naming it: its periods are not the Gregorian ``yyyyMMdd`` of the run's day.
PLAIN_CALENDARS = ("iso8601", "gregorian")

# DHIS2's column lengths (BaseIdentifiableObject name/code, BaseNameableObject shortName;
# hibernate mappings of dataelement, dataset, dataelementgroup, visualization, dashboard)
NAME_MAX = 230
SHORT_NAME_MAX = 50
CODE_MAX = 50
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,9}$")
_UID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{10}$")
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ALNUM = _LETTERS + "0123456789"


class ImportConflictError(Dhis2Error):
    """DHIS2 answered an import with conflicts or error reports (an exit-3 failure on the
    command line): ``conflicts`` names each one; ``summary`` is the whole
    :class:`DataValueImportSummary` or :class:`MetadataImportReport`."""

    def __init__(self, message: str, conflicts: Sequence[ImportConflict] = (),
                 summary: Union[DataValueImportSummary, MetadataImportReport, None] = None,
                 ) -> None:
        super().__init__(message)
        self.conflicts = list(conflicts)
        self.summary = summary


# --- pure functions: UIDs, codes, names -----------------------------------------------


def uid_from_code(code: str) -> str:
    """A valid DHIS2 UID (``CodeGenerator.isValidUid``: a letter, then 10 letters or
    digits) derived from ``code`` alone: the same code always gives the same UID."""
    if not isinstance(code, str) or not code:
        raise ValueError("a code is required to derive a UID, got {!r}".format(code))
    digest = int.from_bytes(hashlib.sha256(("dhis2maint:" + code).encode("utf-8")).digest(),
                            "big")
    chars = [_LETTERS[digest % len(_LETTERS)]]
    digest //= len(_LETTERS)
    for _ in range(10):
        chars.append(_ALNUM[digest % len(_ALNUM)])
        digest //= len(_ALNUM)
    return "".join(chars)


def _check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise ConfigurationError(
            "prefix must be 1 to 10 letters, digits or '_' starting with a letter (e.g. DM_ "
            "or MI_), got {!r}".format(prefix))
    return prefix


def _short_hash(text: str, n: int = 4) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n].upper()


_known_ambiguous = None  # type: Optional[Set[str]]


def _ambiguous_codes(names: Iterable[str]) -> Set[str]:
    """Check codes two check names share: in the packaged catalogue (2.36's legacy names,
    2.42, 2.43: e.g. PRAWS) and among ``names``."""
    global _known_ambiguous
    if _known_ambiguous is None:
        import json
        import os

        path = os.path.join(os.path.dirname(__file__), "checks-2.42.json")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            known = [c["name"] for c in data.get("checks", [])]
            known += [c["name"] for c in data.get("changes_2.43", {}).get("added", [])]
            known += [c["name"] for c in data.get("legacy", [])]
        except (OSError, ValueError, KeyError, TypeError):  # pragma: no cover - package data
            known = []
        _known_ambiguous = _collisions(known)
    return _known_ambiguous | _collisions(names)


def _collisions(names: Iterable[str]) -> Set[str]:
    seen = {}  # type: Dict[str, str]
    shared = set()  # type: Set[str]
    for name in names:
        code = versions.check_code(name)
        if seen.setdefault(code, name) != name:
            shared.add(code)
    return shared


def check_codes(names: Iterable[str], prefix: str = DEFAULT_PREFIX) -> Dict[str, str]:
    """Check name -> its data element's code: ``prefix`` + the check's code as DHIS2 2.39+
    computes it (``categories_no_options`` -> ``DM_CNO``).  A code two checks share (in
    the packaged catalogue or among ``names``) gets ``_`` + 4 hex digits of the name."""
    _check_prefix(prefix)
    names = list(dict.fromkeys(names))
    shared = _ambiguous_codes(names)
    out = {}
    for name in names:
        code = versions.check_code(name) or _short_hash(name)
        if code in shared:
            code = "{}_{}".format(code, _short_hash(name))
        out[name] = (prefix + code)[:CODE_MAX]
    return out


def object_codes(prefix: str = DEFAULT_PREFIX) -> Dict[str, str]:
    """The codes of the objects that are not per check: ``issues_<severity>``,
    ``findings_<kind>``, ``checks_failed``, ``group``, ``data_set``, ``chart``,
    ``table``, ``dashboard`` -> code."""
    _check_prefix(prefix)
    out = {"issues_" + s.lower(): "{}ISSUES_{}".format(prefix, s) for s in SEVERITIES}
    out.update(("findings_" + k, "{}SCHED_{}".format(prefix, k.upper())) for k in FINDING_KINDS)
    out.update(checks_failed=prefix + "CHECKS_FAILED", group=prefix + "SERVER_HEALTH",
               data_set=prefix + "SERVER_HEALTH_DS", chart=prefix + "CHART_SEVERITY",
               table=prefix + "TABLE_CHECKS", dashboard=prefix + "DASHBOARD")
    return out


def _unique(texts: Sequence[Tuple[str, str]], limit: int) -> List[str]:
    """Each ``(text, key)`` clipped to ``limit`` characters and unique (case-insensitive,
    as DHIS2's unique indexes on names): a text cut or taken gets `` ~`` + a hash of key."""
    taken = set()  # type: Set[str]
    out = []
    for text, key in texts:
        text = " ".join(text.split())
        candidate = text
        if len(candidate) > limit or candidate.lower() in taken:
            tail = " ~" + _short_hash(key)
            candidate = text[:limit - len(tail)].rstrip() + tail
            n = 6
            while candidate.lower() in taken:
                tail = " ~" + _short_hash(key + str(n), n)
                candidate = text[:limit - len(tail)].rstrip() + tail
                n += 1
        taken.add(candidate.lower())
        out.append(candidate)
    return out


def _label(prefix: str) -> str:
    return prefix.rstrip("_") or prefix


def _severity_text(value: Any) -> str:
    return str(getattr(value, "value", value) or "WARNING").upper()


# --- pure functions: the metadata -----------------------------------------------------


def metadata_payload(checks: Iterable[models.DataIntegrityCheck],
                     org_unit: Union[str, Sequence[str]], prefix: str = DEFAULT_PREFIX,
                     existing: Optional[Mapping[str, str]] = None) -> Dict[str, List[Dict[str, Any]]]:
    """The one ``POST /api/metadata`` payload setup sends (object type -> objects);
    ``org_unit``: one UID or several (the data set's and the visualizations' org units).

    One data element per check in ``checks`` (AGGREGATE, ZERO_POSITIVE_INT, aggregation
    LAST, its section and severity in the description), one per severity, one per
    scheduler finding kind, one for failed checks; a data element group; a data set
    (Daily) assigned to ``org_unit``; a line chart of issues by severity over the last 90
    days and a pivot table of issues per check (last 7 days); the dashboard
    :data:`DASHBOARD_NAME` with both.  UIDs are :func:`uid_from_code` of the codes,
    or ``existing[code]`` for an object that already has that code (a tool-dq-workbench
    data element with ``prefix="MI_"``), so a second setup changes nothing.  Names (230)
    and short names (50) are clipped and kept unique.  The shapes are the same on
    2.36-2.43 (``Visualization``, dashboard item type ``VISUALIZATION``, period type
    ``Daily``, relative period ``last90Days``).
    """
    _check_prefix(prefix)
    units = [org_unit] if isinstance(org_unit, str) else list(org_unit)
    if not units:
        raise ConfigurationError("org_unit: at least one organisation unit is required")
    for unit in units:
        _check_org_unit(unit)
    existing = existing or {}
    checks = list(checks)
    label = _label(prefix)

    def uid(code: str) -> str:
        return existing.get(code) or uid_from_code(code)

    codes = check_codes([c.name for c in checks], prefix)
    other = object_codes(prefix)
    rows = []  # type: List[Tuple[str, str, str, str]]  # code, name, short base, description
    for check in checks:
        title = check.display_name or check.name.replace("_", " ")
        description = "Issues found by the DHIS2 data-integrity check {} (section: {}; " \
                      "severity: {}), as counted by dhis2maint.".format(
                          check.name, check.section or "-", _severity_text(check.severity))
        rows.append((codes[check.name], "{} {}".format(label, title),
                     "{} {}".format(label, title), description))
    for severity in SEVERITIES:
        rows.append((other["issues_" + severity.lower()],
                     "{} Integrity issues: {}".format(label, severity),
                     "{} Issues {}".format(label, severity),
                     "Issues of all data-integrity checks of severity {} that ran "
                     "(a failed check adds none), as counted by dhis2maint.".format(severity)))
    rows.append((other["checks_failed"], "{} Integrity checks failed".format(label),
                 "{} Checks failed".format(label),
                 "Data-integrity checks that failed on the server in a run."))
    for kind in FINDING_KINDS:
        words = kind.replace("_", " ")
        rows.append((other["findings_" + kind], "{} Scheduler findings: {}".format(label, words),
                     "{} Scheduler {}".format(label, words),
                     "Scheduler health findings of kind {} (dhis2maint's scheduler check)."
                     .format(kind)))
    names = _unique([(r[1], r[0]) for r in rows], NAME_MAX)
    shorts = _unique([(r[2], r[0]) for r in rows], SHORT_NAME_MAX)
    elements = []  # type: List[Dict[str, Any]]
    for (code, _name, _short, description), name, short in zip(rows, names, shorts):
        elements.append({
            "id": uid(code), "code": code, "name": name, "shortName": short,
            "formName": name, "description": description[:NAME_MAX * 4],
            "domainType": "AGGREGATE", "valueType": "ZERO_POSITIVE_INT",
            "aggregationType": "LAST", "zeroIsSignificant": True,
        })
    element_refs = [{"id": e["id"]} for e in elements]
    group = {"id": uid(other["group"]), "code": other["group"],
             "name": "{} Server health (dhis2maint)".format(label),
             "shortName": "{} Server health".format(label)[:SHORT_NAME_MAX],
             "dataElements": element_refs}
    data_set = {"id": uid(other["data_set"]), "code": other["data_set"],
                "name": "{} Server health (dhis2maint)".format(label),
                "shortName": "{} Server health".format(label)[:SHORT_NAME_MAX],
                "periodType": "Daily", "openFuturePeriods": 1, "expiryDays": 0,
                "dataSetElements": [{"dataElement": {"id": e["id"]},
                                     "dataSet": {"id": uid(other["data_set"])}}
                                    for e in elements],
                "organisationUnits": [{"id": u} for u in units]}
    by_severity = [e for e in elements if e["code"].startswith(prefix + "ISSUES_")]
    per_check = [e for e in elements if e["code"] in set(codes.values())]

    def items(objs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        return [{"dataDimensionItemType": "DATA_ELEMENT", "dataElement": {"id": o["id"]}}
                for o in objs]

    chart = {"id": uid(other["chart"]), "code": other["chart"],
             "name": "{} Integrity issues by severity, last 90 days".format(label),
             "type": "LINE", "columnDimensions": ["dx"], "rowDimensions": ["pe"],
             "filterDimensions": ["ou"], "dataDimensionItems": items(by_severity),
             "relativePeriods": {"last90Days": True},
             "organisationUnits": [{"id": u} for u in units]}
    table = {"id": uid(other["table"]), "code": other["table"],
             "name": "{} Integrity issues per check, last 7 days".format(label),
             "type": "PIVOT_TABLE", "columnDimensions": ["pe"], "rowDimensions": ["dx"],
             "filterDimensions": ["ou"], "dataDimensionItems": items(per_check),
             "relativePeriods": {"last7Days": True}, "hideEmptyRows": True,
             "organisationUnits": [{"id": u} for u in units]}
    dashboard_uid = uid(other["dashboard"])
    dashboard = {"id": dashboard_uid, "code": other["dashboard"], "name": DASHBOARD_NAME,
                 "description": "Data-integrity issues and scheduler findings dhis2maint "
                                "pushes every day.",
                 "dashboardItems": [
                     {"id": uid(other["dashboard"] + "_1"), "type": "VISUALIZATION",
                      "visualization": {"id": chart["id"]}, "x": 0, "y": 0, "width": 58,
                      "height": 20},
                     {"id": uid(other["dashboard"] + "_2"), "type": "VISUALIZATION",
                      "visualization": {"id": table["id"]}, "x": 0, "y": 20, "width": 58,
                      "height": 30}]}
    return {"dataElements": elements, "dataElementGroups": [group], "dataSets": [data_set],
            "visualizations": [chart, table], "dashboards": [dashboard]}


# --- pure functions: the data values --------------------------------------------------


def period_of(day: Union[datetime.date, datetime.datetime], calendar: str = "iso8601") -> str:
    """The Daily period (``yyyyMMdd``) of ``day`` on a server whose calendar is
    ``calendar`` (``/api/system/info`` ``calendar``).  Only ISO/Gregorian calendars
    (:data:`PLAIN_CALENDARS`) are supported: any other is a :class:`ConfigurationError`
    naming it (converting to ethiopian, nepali, … days is not done)."""
    name = (calendar or "iso8601").strip().lower()
    if name not in PLAIN_CALENDARS:
        raise ConfigurationError(
            "the server's calendar is {!r}: dhis2maint writes daily periods only for the "
            "iso8601/gregorian calendars (it does not convert days to the {} calendar)"
            .format(calendar, calendar))
    if isinstance(day, datetime.datetime):
        day = day.date()
    return day.strftime("%Y%m%d")


def _run_day(*candidates: Optional[datetime.datetime]) -> datetime.date:
    for when in candidates:
        if when is not None:
            return when.date()
    return datetime.datetime.now(datetime.timezone.utc).date()  # utcnow() is deprecated (3.12)


def _check_org_unit(org_unit: str) -> str:
    if not isinstance(org_unit, str) or not _UID_RE.match(org_unit):
        raise ConfigurationError("org_unit must be a DHIS2 UID, got {!r}".format(org_unit))
    return org_unit


def values_from_report(report: models.DataIntegrityReport, org_unit: str,
                       prefix: str = DEFAULT_PREFIX, calendar: str = "iso8601",
                       day: Optional[datetime.date] = None) -> List[DataValue]:
    """The data values of an integrity run: each check that ran (its count), the issues
    per severity over the checks that ran (a severity none of whose checks ran sends
    nothing), and the failed checks.  A failed check sends nothing, never 0.  ``day``
    defaults to the run's day by the server's clock (``server_time``), else ``run_at``."""
    _check_org_unit(org_unit)
    period = period_of(day or _run_day(report.server_time, report.run_at), calendar)
    codes = check_codes(list(report.results), prefix)
    other = object_codes(prefix)
    values = []
    per_severity = {}  # type: Dict[str, int]
    failed = 0
    for name, result in report.results.items():
        if models._check_failed(result):
            failed += 1
            continue
        count = models._issue_count(result)
        severity = _severity_text(result.severity)
        if severity not in SEVERITIES:
            severity = "WARNING"
        per_severity[severity] = per_severity.get(severity, 0) + count
        code = codes[name]
        values.append(models.DataValue(uid_from_code(code), period, org_unit, str(count), code))
    for severity in SEVERITIES:
        if severity in per_severity:
            code = other["issues_" + severity.lower()]
            values.append(models.DataValue(uid_from_code(code), period, org_unit,
                                    str(per_severity[severity]), code))
    if report.results:
        code = other["checks_failed"]
        values.append(models.DataValue(uid_from_code(code), period, org_unit, str(failed), code))
    return values


def values_from_health(health: models.SchedulerHealth, org_unit: str,
                       prefix: str = DEFAULT_PREFIX, calendar: str = "iso8601",
                       day: Optional[datetime.date] = None) -> List[DataValue]:
    """The scheduler findings per kind of a health verdict (every kind: 0 when none),
    dated the server's day (``server_time``) unless ``day`` is given."""
    _check_org_unit(org_unit)
    period = period_of(day or _run_day(health.server_time), calendar)
    other = object_codes(prefix)
    counts = dict.fromkeys(FINDING_KINDS, 0)
    for finding in health.findings:
        if finding.kind in counts:
            counts[finding.kind] += 1
    return [models.DataValue(uid_from_code(other["findings_" + k]), period, org_unit, str(n),
                      other["findings_" + k]) for k, n in counts.items()]


def values_from_history_run(history: "History", run: Union["RunInfo", int], org_unit: str,
                            prefix: str = DEFAULT_PREFIX,
                            calendar: str = "iso8601") -> List[DataValue]:
    """The data values of a run recorded in ``history`` (a :class:`RunInfo` or its id),
    dated the run's day by the server's clock (else its client UTC start)."""
    run_id = run if isinstance(run, int) else run.id
    report = history.load_report(run_id)
    if not isinstance(run, int):
        report.server_time = report.server_time or run.server_time
        report.run_at = report.run_at or run.run_at
    return values_from_report(report, org_unit, prefix, calendar)


# --- pure functions: reading DHIS2's answers ------------------------------------------


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _unwrap(body: Any, what: str, kind: str) -> Dict[str, Any]:
    """The summary itself: ``body`` (2.36, ``/api/37/``) or its WebMessage's ``response``."""
    if not isinstance(body, dict):
        raise InvalidResponseError("{} answered {} instead of an {}".format(
            what, type(body).__name__, kind))
    inner = body.get("response")
    if "httpStatusCode" in body or "httpStatus" in body:  # a WebMessage (2.37+)
        if not isinstance(inner, dict):
            raise InvalidResponseError("{} answered a WebMessage without an {} ({})".format(
                what, kind, str(body.get("message") or body.get("status"))[:200]))
        return inner
    return body


def read_import_summary(body: Any, what: str = "POST /api/dataValueSets"
                        ) -> DataValueImportSummary:
    """An ``ImportSummary``, bare (2.36; ``/api/37/…``) or in a WebMessage (2.37+; 409
    when it has conflicts), as :class:`DataValueImportSummary`."""
    summary = _unwrap(body, what, "import summary")
    if "importCount" not in summary and "status" not in summary:
        raise InvalidResponseError("{} answered JSON without an import summary (keys: {})"
                                   .format(what, ", ".join(sorted(summary)[:8])))
    counts = summary.get("importCount") or {}
    conflicts = [models.ImportConflict(
        None if c.get("object") is None else str(c.get("object")), str(c.get("value") or ""),
        c.get("errorCode"), c.get("property"))
        for c in summary.get("conflicts") or () if isinstance(c, dict)]
    options = summary.get("importOptions") or {}
    return models.DataValueImportSummary(
        status=str(summary.get("status") or "SUCCESS"),
        import_count=models.ImportCount(_int(counts.get("imported")), _int(counts.get("updated")),
                                 _int(counts.get("ignored")), _int(counts.get("deleted"))),
        conflicts=conflicts, description=summary.get("description"),
        dry_run=bool(options.get("dryRun", False)))


def _klass(name: Any) -> str:
    return str(name or "?").rsplit(".", 1)[-1]


def _stats(stats: Any) -> ImportCount:
    stats = stats if isinstance(stats, dict) else {}
    return models.ImportCount(_int(stats.get("created")), _int(stats.get("updated")),
                       _int(stats.get("ignored")), _int(stats.get("deleted")))


def read_metadata_report(body: Any, what: str = "POST /api/metadata") -> MetadataImportReport:
    """A metadata ``ImportReport``, bare (2.36) or in a WebMessage (2.37+; 409 when not
    OK), as :class:`MetadataImportReport`."""
    report = _unwrap(body, what, "import report")
    if "stats" not in report and "typeReports" not in report:
        raise InvalidResponseError("{} answered JSON without an import report (keys: {})"
                                   .format(what, ", ".join(sorted(report)[:8])))
    type_reports = report.get("typeReports") or []
    if isinstance(type_reports, dict):  # keyed by class on some versions
        type_reports = list(type_reports.values())
    types = {}
    errors = []
    for tr in type_reports:
        if not isinstance(tr, dict):
            continue
        klass = _klass(tr.get("klass"))
        type_errors = []
        for obj in tr.get("objectReports") or ():
            for er in (obj or {}).get("errorReports") or ():
                type_errors.append(models.ImportConflict(
                    obj.get("uid") or klass, str(er.get("message") or ""),
                    er.get("errorCode"), er.get("errorProperty")))
        types[klass] = models.MetadataTypeReport(klass, _stats(tr.get("stats")), type_errors)
        errors.extend(type_errors)
    return models.MetadataImportReport(status=str(report.get("status") or "OK"),
                                count=_stats(report.get("stats")), types=types, errors=errors)


# --- the Session methods ---------------------------------------------------------------

#: the object types setup imports, with their API collections
_COLLECTIONS = ("dataElements", "dataElementGroups", "dataSets", "visualizations", "dashboards")


class DataValuesMixin(SessionTransport):
    """Server health as DHIS2 data values; mixed into :class:`~dhis2maint.Session`."""

    def server_calendar(self) -> str:
        """The server's calendar: ``GET /api/system/info`` ``calendar`` (``iso8601``
        when it does not say)."""
        info = self._json("GET", "system/info", params={"fields": "calendar"}, expect=dict)
        return str(info.get("calendar") or "iso8601")

    def _post_import(self, path: str, params: Dict[str, str], body: Any) -> Any:
        """POST an import once and decode its answer, a 409 (conflicts, 2.37+) included:
        read whole within ``stream_deadline`` and ``max_body_bytes`` (a long conflict
        list is not cut), never re-sent."""
        what = "POST /api/" + path
        response = self._send("POST", path, params=params, json_body=body, stream=True,
                              ok_statuses=(409,))
        try:
            _read_body(response, what, "POST", self.stream_deadline, self.max_body_bytes)
        finally:
            response.close()
        body = decode_json(response, what, expect=dict)
        if response.status_code == 409 and not isinstance(body.get("response"), dict):
            # a 409 that is no import summary (e.g. a lock): DHIS2's own words, an ApiError
            raise error_for_response(response, "POST", "/api/" + path,
                                     getattr(self, "source", None))
        return body

    def _root_org_unit(self) -> str:
        """``GET /api/organisationUnits?level=1``: the one root (else ConfigurationError)."""
        body = self._json("GET", "organisationUnits", expect=dict, params={
            "level": 1, "fields": "id,name", "paging": "false"})
        roots = [u.get("id") for u in body.get("organisationUnits") or () if isinstance(u, dict)]
        if len(roots) != 1:
            raise ConfigurationError(
                "the organisation unit hierarchy has {} roots ({}): give org_unit".format(
                    len(roots), ", ".join(str(r) for r in roots[:5]) or "none"))
        return self._uid(roots[0], "the root organisation unit")

    def _existing_codes(self, prefix: str) -> Dict[str, str]:
        """Code -> UID of every object of the types setup imports whose code starts with
        ``prefix``: ``GET /api/<type>?filter=code:like:<prefix>``."""
        found = {}  # type: Dict[str, str]
        for collection in _COLLECTIONS:
            body = self._json("GET", collection, expect=dict, params={
                "filter": "code:like:" + prefix, "fields": "id,code", "paging": "false"})
            for obj in body.get(collection) or ():
                code = obj.get("code") if isinstance(obj, dict) else None
                if isinstance(code, str) and code.startswith(prefix) and obj.get("id"):
                    found[code] = str(obj["id"])
        return found

    def _data_set(self, prefix: str) -> Optional[Dict[str, Any]]:
        """The data set setup made: ``GET /api/dataSets?filter=code:eq:…``, or None."""
        code = object_codes(prefix)["data_set"]
        body = self._json("GET", "dataSets", expect=dict, params={
            "filter": "code:eq:" + code, "paging": "false",
            "fields": "id,code,periodType,access,organisationUnits[id,path]"})
        sets = [s for s in body.get("dataSets") or () if isinstance(s, dict)]
        return sets[0] if sets else None

    def _kept_org_units(self, prefix: str) -> List[str]:
        """The org units setup assigns without ``org_unit``: those the data set already
        has (a setup again keeps them), else the hierarchy's root."""
        data_set = self._data_set(prefix)
        units = [str(u.get("id")) for u in (data_set or {}).get("organisationUnits") or ()
                 if isinstance(u, dict) and u.get("id")]
        return units or [self._root_org_unit()]

    def _push_org_unit(self, prefix: str, org_unit: Optional[str]) -> str:
        if org_unit is not None:
            return self._uid(org_unit, "org_unit")
        data_set = self._data_set(prefix)
        units = [u.get("id") for u in (data_set or {}).get("organisationUnits") or ()]
        if len(units) == 1:
            return self._uid(units[0], "the data set's organisation unit")
        return self._root_org_unit()

    def setup_data_values(self, org_unit: Optional[str] = None, prefix: str = DEFAULT_PREFIX,
                          dry_run: bool = False,
                          checks: Optional[Iterable[models.DataIntegrityCheck]] = None
                          ) -> MetadataImportReport:
        """Create or update the metadata the data values need, in one import:
        ``POST /api/metadata?importStrategy=CREATE_AND_UPDATE&atomicMode=ALL``
        (``importMode=VALIDATE`` with ``dry_run``: validated and counted, nothing
        changes; ``/api/metadata`` takes no ``dryRun`` parameter).

        See :func:`metadata_payload`.  ``org_unit`` (a UID) gets the data set; None: the
        hierarchy's root (``GET /api/organisationUnits?level=1``).  ``checks``: the check
        list (default: the server's, :meth:`list_integrity_checks`).  Objects whose code
        already exists keep their UID; without ``org_unit`` a data set that exists keeps
        its organisation units.  Raises :class:`ConfigurationError` for a bad
        prefix or org unit (before anything is sent), :class:`ImportConflictError`
        naming each error report when DHIS2 refuses the import (atomic: nothing is
        imported).  The POST is sent once: a lost answer is an error with
        ``outcome_unknown`` set.
        """
        _check_prefix(prefix)
        if org_unit is not None:
            org_unit = self._uid(org_unit, "org_unit")
        check_list = list(checks) if checks is not None else \
            self.list_integrity_checks()  # type: ignore[attr-defined]
        targets = [org_unit] if org_unit else self._kept_org_units(prefix)
        payload = metadata_payload(check_list, targets, prefix, self._existing_codes(prefix))
        # /api/metadata has no dryRun parameter (DefaultMetadataImportService.getParamsFromMap
        # ignores it and COMMITs): its dry run is importMode=VALIDATE
        params = {"importStrategy": "CREATE_AND_UPDATE", "atomicMode": "ALL",
                  "importMode": "VALIDATE" if dry_run else "COMMIT"}
        report = read_metadata_report(self._post_import("metadata", params, payload))
        report.dry_run = bool(dry_run)
        report.prefix = prefix
        report.org_unit = targets[0]
        if report.errors or report.status == "ERROR":
            shown = "; ".join(str(c) for c in report.errors[:5]) or report.status
            raise ImportConflictError(
                "POST /api/metadata -> {} error report{} (nothing imported): {}{}".format(
                    len(report.errors), "" if len(report.errors) == 1 else "s", shown,
                    " …" if len(report.errors) > 5 else ""), report.errors, report)
        return report

    def push_data_values(self, values: Union[Iterable[DataValue], models.DataIntegrityReport,
                                             models.SchedulerHealth],
                         dry_run: bool = False, org_unit: Optional[str] = None,
                         prefix: str = DEFAULT_PREFIX) -> DataValueImportSummary:
        """Send data values: ``POST /api/dataValueSets?importStrategy=CREATE_AND_UPDATE``
        (``dryRun=true`` with ``dry_run``), so a re-run of the same day overwrites.

        ``values``: :class:`DataValue` records, or a :class:`DataIntegrityReport` /
        :class:`SchedulerHealth` whose values are built here (:func:`values_from_report`,
        :func:`values_from_health`) for ``org_unit`` (None: the data set's one org unit,
        else the hierarchy's root) on the server's calendar.  Conflicts raise
        :class:`ImportConflictError` naming each; values ignored without a conflict
        (re-sent unchanged) are not an error.  The POST is sent once: a lost answer is
        an error with ``outcome_unknown`` set, never a retry.
        """
        _check_prefix(prefix)
        if isinstance(values, (models.DataIntegrityReport, models.SchedulerHealth)):
            unit = self._push_org_unit(prefix, org_unit)
            calendar = self.server_calendar()
            if isinstance(values, models.DataIntegrityReport):
                values = values_from_report(values, unit, prefix, calendar)
            else:
                values = values_from_health(values, unit, prefix, calendar)
        values = list(values)
        for value in values:
            if not isinstance(value, models.DataValue):
                raise ConfigurationError("values must be DataValue records, got {!r}".format(
                    type(value).__name__))
        periods = sorted({v.period for v in values})
        params = {"importStrategy": "CREATE_AND_UPDATE",
                  "dryRun": "true" if dry_run else "false"}
        summary = read_import_summary(self._post_import(
            "dataValueSets", params, {"dataValues": [v.to_json() for v in values]}))
        summary.dry_run = bool(dry_run)
        summary.period = ",".join(periods) or None
        summary.sent = len(values)
        if summary.conflicts or summary.status == "ERROR":
            names = {v.data_element: v.code for v in values if v.code}
            shown = "; ".join(
                "{}{}".format(c, " ({})".format(names[c.object]) if c.object in names else "")
                for c in summary.conflicts[:5]) or summary.description or summary.status
            raise ImportConflictError(
                "POST /api/dataValueSets -> {} conflict{}: {}{}".format(
                    len(summary.conflicts), "" if len(summary.conflicts) == 1 else "s", shown,
                    " …" if len(summary.conflicts) > 5 else ""), summary.conflicts, summary)
        return summary

    def push_history_values(self, history: "History",
                            since: Union[str, datetime.date, datetime.datetime, None] = None,
                            server: Optional[str] = None, org_unit: Optional[str] = None,
                            prefix: str = DEFAULT_PREFIX, dry_run: bool = False
                            ) -> List[DataValueImportSummary]:
        """Backfill from a history: one ``POST /api/dataValueSets`` per recorded run of
        ``server`` (default: this session's ``base_url``) since ``since`` (a date,
        ``YYYY-MM-DD``), oldest first; runs of one day overwrite each other, as
        CREATE_AND_UPDATE does.  On a conflict the :class:`ImportConflictError` carries
        ``pushed``: the summaries of the runs sent before it."""
        _check_prefix(prefix)
        cutoff = _since_date(since)
        runs = [r for r in history.runs(server or self.base_url)
                if cutoff is None or (r.server_time or r.run_at).date() >= cutoff]
        runs.sort(key=lambda r: r.run_at)
        if not runs:
            return []
        unit = self._push_org_unit(prefix, org_unit)
        calendar = self.server_calendar()
        done = []  # type: List[DataValueImportSummary]
        for run in runs:
            values = values_from_history_run(history, run, unit, prefix, calendar)
            try:
                done.append(self.push_data_values(values, dry_run=dry_run, prefix=prefix))
            except Dhis2Error as exc:
                setattr(exc, "pushed", list(done))
                raise
        return done

    def data_values_status(self, prefix: str = DEFAULT_PREFIX,
                           org_unit: Optional[str] = None) -> DataValuesStatus:
        """What pushing needs (for the doctor): which of setup's objects exist
        (``GET /api/dataElements|dataSets|…?filter=code:like:<prefix>``) and which are
        missing (a check a DHIS2 upgrade added is named); whether the user may create
        each type setup makes (``GET /api/me``: see :data:`SETUP_AUTHORITIES`) and may
        write data values to the data set (its ``access.data.write``) and the org unit
        (within the user's org units, ``GET /api/me?fields=organisationUnits[id,path]``)."""
        _check_prefix(prefix)
        if org_unit is not None:
            org_unit = self._uid(org_unit, "org_unit")
        checks = self.list_integrity_checks()  # type: ignore[attr-defined]
        codes = check_codes([c.name for c in checks], prefix)
        other = object_codes(prefix)
        expected = list(codes.values()) + [other[k] for k in other]
        existing = self._existing_codes(prefix)
        status = models.DataValuesStatus(prefix=prefix, expected=expected)
        status.present = [c for c in expected if c in existing]
        status.missing = [c for c in expected if c not in existing]
        status.missing_checks = [n for n, c in codes.items() if c not in existing]
        user = self.whoami()  # type: ignore[attr-defined]
        refused = setup_refused(user.authorities)
        status.can_import_metadata = not refused
        data_set = self._data_set(prefix)
        problems = []
        if status.missing:
            if len(status.missing) == len(expected):
                problems.append("the data-value metadata (prefix {}) is not set up".format(prefix))
            elif status.missing_checks:
                problems.append("{} check{} without a data element: {}".format(
                    len(status.missing_checks), "" if len(status.missing_checks) == 1 else "s",
                    ", ".join(status.missing_checks[:10])))
            else:
                problems.append("missing: {}".format(", ".join(status.missing[:10])))
        if status.missing and not status.can_import_metadata:
            problems.append("the user may not create {} (POST /api/metadata asks each type's "
                            "add authority)".format(", ".join(refused)))
        if data_set is not None:
            status.data_set = str(data_set.get("id"))
            units = [u for u in data_set.get("organisationUnits") or () if isinstance(u, dict)]
            if org_unit is None and len(units) == 1:
                org_unit = str(units[0].get("id"))
            status.org_unit = org_unit
            access = data_set.get("access") or {}
            data_access = access.get("data") if isinstance(access, dict) else None
            may_write = bool(isinstance(data_access, dict) and data_access.get("write")) \
                or "ALL" in user.authorities
            in_scope = True
            if org_unit is not None:
                in_scope = self._org_unit_in_scope(org_unit)
                if org_unit not in [u.get("id") for u in units]:
                    problems.append("the data set is not assigned to organisation unit {}"
                                    .format(org_unit))
            status.can_write_data = may_write and in_scope
            if not may_write:
                problems.append("the user may not write data values to the data set {} "
                                "(its data sharing)".format(status.data_set))
            if not in_scope:
                problems.append("organisation unit {} is outside the user's organisation "
                                "units".format(org_unit))
        else:
            status.org_unit = org_unit
        status.problems = problems
        if status.missing:
            status.follow_ups = (models.FollowUp(
                "setup_data_values", (("prefix", prefix),) + (
                    (("org_unit", org_unit),) if org_unit else ()),
                "create the missing metadata"),)
        return status

    def _org_unit_in_scope(self, org_unit: str) -> bool:
        """Whether ``org_unit`` is one of the user's data capture org units or below one:
        ``GET /api/me?fields=organisationUnits[id]`` and ``GET /api/organisationUnits/{id}``."""
        me = self._json("GET", "me", params={"fields": "organisationUnits[id]"}, expect=dict)
        mine = {str(u.get("id")) for u in me.get("organisationUnits") or ()
                if isinstance(u, dict)}
        if org_unit in mine:
            return True
        unit = self._json("GET", "organisationUnits/" + self._segment(org_unit),
                          params={"fields": "id,path"}, expect=dict)
        return bool(mine & set(str(unit.get("path") or "").split("/")))


def _since_date(since: Union[str, datetime.date, datetime.datetime, None]
                ) -> Optional[datetime.date]:
    if since is None:
        return None
    if isinstance(since, datetime.datetime):
        return since.date()
    if isinstance(since, datetime.date):
        return since
    try:
        return datetime.datetime.strptime(str(since).strip(), "%Y-%m-%d").date()
    except ValueError:
        raise ConfigurationError("since must be a date YYYY-MM-DD, got {!r}".format(since)) \
            from None
