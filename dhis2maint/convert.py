"""JSON <-> models: the one cattrs converter and every hook it uses.

* Wire names are camelCase, attribute names snake_case (``display_name`` <->
  ``displayName``); unknown JSON keys are ignored.
* Enums are tolerant: a value this version does not know stays a plain string.
* DHIS2 timestamps (``2024-05-01T10:11:12.345``, sometimes with a zone or ``Z``)
  become :class:`datetime.datetime`; naive when DHIS2 sent no zone.
* Structure functions are generated once per class, on first use, and cached by
  cattrs; nothing is generated at import time.

Any failure to build a model raises :class:`InvalidResponseError` naming what
was being read -- never a bare ``KeyError``/``ValueError`` from cattrs.
"""
from __future__ import annotations  # no model class is built to annotate (#20.10)

import contextlib
import datetime
import enum
import gc
import json
import re
from typing import Any, Callable, Dict, Iterator, List, Optional, Type, TypeVar, Union, cast

import attr
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from . import models
from .errors import InvalidResponseError

_T = TypeVar("_T")

__all__ = ["structure", "unstructure", "to_json", "from_json", "issue_from_dict",
           "parse_datetime", "camel", "report_to_dict", "report_from_dict",
           "comparison_to_dict"]

_converter = cattrs.Converter(detailed_validation=False)

# The attrs classes read from / written to JSON with camelCase keys.  Job is
# built by hand in jobs.py (it carries a session), so it is not listed.
# Names, not classes: a model is built on its first use (see dhis2maint.models).
_MODELS = frozenset((
    "DataIntegrityCheck",
    "DataIntegrityIssue",
    "DataIntegrityResult",
    "Notification",
    "JobConfiguration",
    "PredictorRun",
    "ValidationViolation",
    "CategoryOptionCombo",
    # scheduler and health (issue #15)
    "JobTypeInfo",
    "RunningJob",
    "ValidationResult",
    "UserInfo",
    "HealthFinding",
    "SchedulerHealth",
    "DoctorCheck",
    "DoctorReport",
))
_ENUMS = (
    models.DataIntegritySeverity,
    models.NotificationLevel,
    models.NotificationDataType,
    models.JobType,
    models.JobStatus,
)


def camel(name: str) -> str:
    """``display_name`` -> ``displayName``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# --- datetimes --------------------------------------------------------------

_DATETIME = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d\d(?::?\d\d)?)?$"
)


def parse_datetime(value: Union[str, float, datetime.datetime, None]
                   ) -> Optional[datetime.datetime]:
    """Parse a DHIS2 timestamp; ``None`` stays ``None``.

    Accepts ``2024-05-01``, ``2024-05-01T10:11``, ``…:12``, ``…:12.345`` (any
    fraction), and an optional ``Z``/``+02:00``/``+0200`` zone.  Epoch
    milliseconds (a number) are read as UTC.
    """
    if value is None or isinstance(value, datetime.datetime):
        return value
    if isinstance(value, bool):
        raise ValueError("not a timestamp: {!r}".format(value))
    if isinstance(value, (int, float)):
        try:
            return datetime.datetime.fromtimestamp(value / 1000.0, tz=datetime.timezone.utc)
        except (OverflowError, OSError, ValueError):  # out of range, inf, nan
            raise ValueError("not a timestamp: {!r}".format(value)) from None
    match = _DATETIME.match(str(value).strip())
    if not match:
        raise ValueError("not a DHIS2 timestamp: {!r}".format(value))
    year, month, day, hour, minute, second, frac, zone = match.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    tz = None
    if zone == "Z":
        tz = datetime.timezone.utc
    elif zone:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        minutes = int(digits[:2]) * 60 + int(digits[2:4] or 0)
        tz = datetime.timezone(sign * datetime.timedelta(minutes=minutes))
    return datetime.datetime(int(year), int(month), int(day), int(hour or 0),
                             int(minute or 0), int(second or 0), micro, tzinfo=tz)


def format_datetime(value: Optional[datetime.datetime]) -> Optional[str]:
    """The inverse of :func:`parse_datetime`, in DHIS2's millisecond format."""
    if value is None:
        return None
    text = value.strftime("%Y-%m-%dT%H:%M:%S.") + "{:03d}".format(value.microsecond // 1000)
    offset = value.utcoffset()
    if offset is not None:
        text += "Z" if not offset else value.strftime("%z")[:3] + ":" + value.strftime("%z")[3:]
    return text


_converter.register_structure_hook(datetime.datetime, lambda v, _: parse_datetime(v))
_converter.register_unstructure_hook(datetime.datetime, format_datetime)


# --- tolerant enums -----------------------------------------------------------


def _tolerant(enum_cls: Type[enum.Enum]) -> Callable[[Any, Any], Any]:
    members = enum_cls._value2member_map_

    def structure_enum(value: Any, _: Any) -> Any:
        if value is None:
            return None
        member = members.get(value)
        if member is not None:
            return member
        if isinstance(value, str):
            return value  # a newer server's value: keep it as sent
        raise ValueError("{} is not a {}".format(value, enum_cls.__name__))

    return structure_enum


for _enum in _ENUMS:
    _hook = _tolerant(_enum)
    _converter.register_structure_hook(_enum, _hook)
    for _union in (Union[_enum, str, None], Union[_enum, str]):
        # Bind the loop variables: each predicate matches its own union only.
        _converter.register_structure_hook_func(
            lambda t, u=_union: t == u, _hook)  # type: ignore[misc]  # mypy: lambda with a default
_converter.register_unstructure_hook(enum.Enum, lambda e: e.value)


# --- camelCase models, generated lazily ----------------------------------------


def _renames(cls: Any) -> Dict[str, Any]:
    overrides = {a.name: override(rename=camel(a.name)) for a in attr.fields(cls)}
    return overrides


def _structure_fn(cls: Any) -> Callable[[Any, Any], Any]:
    # cattrs 22.x defaults to detailed validation per function, not per converter.
    return make_dict_structure_fn(cls, _converter, _cattrs_detailed_validation=False,
                                  **_renames(cls))


def _is_model(cls: Any) -> bool:
    name = getattr(cls, "__name__", None)
    return name in _MODELS and vars(models).get(name) is cls


_converter.register_structure_hook_factory(_is_model, _structure_fn)


# --- DHIS2 shapes that differ from the model's own (#20.8) ----------------------
# Each hook reshapes what DHIS2 sends into the model's camelCase form, then builds the
# model with its generated hook; the model's own (flat, saved) form passes unchanged.


def _ref(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _reshaped(cls: Any, reshape: Callable[[Dict[str, Any]], Dict[str, Any]]) -> Callable[[Any, Any], Any]:
    generated: List[Callable[[Any, Any], Any]] = []

    def structure_reshaped(data: Any, _: Any) -> Any:
        if not generated:
            generated.append(_structure_fn(cls))
        return generated[0](reshape(data) if isinstance(data, dict) else data, cls)
    return structure_reshaped


def _validation_result_shape(data: Dict[str, Any]) -> Dict[str, Any]:
    """``GET /api/validationResults`` nests its references: ``validationRule{id,name,
    importance}``, ``organisationUnit{id,name}``, ``period{id}`` (or the period id),
    ``attributeOptionCombo{id}``; the model holds them flat."""
    flat = dict(data)
    if "validationRule" in flat:
        rule = flat.pop("validationRule")
        flat.update(validationRuleId=_ref(rule, "id"), validationRuleName=_ref(rule, "name"),
                    importance=_ref(rule, "importance"))
    if "organisationUnit" in flat:
        unit = flat.pop("organisationUnit")
        flat.update(organisationUnitId=_ref(unit, "id"), organisationUnitName=_ref(unit, "name"))
    if "period" in flat:
        period = flat.pop("period")
        flat["periodId"] = _ref(period, "id") if isinstance(period, dict) else period
    if "attributeOptionCombo" in flat:
        flat["attributeOptionComboId"] = _ref(flat.pop("attributeOptionCombo"), "id")
    return flat


def _running_job_shape(data: Dict[str, Any]) -> Dict[str, Any]:
    """A ProcessInfo of ``GET /api/scheduling/running`` (with ``jobType``, the key it was
    listed under, added by the caller): its ``stages`` may be objects; the model keeps
    each stage's description."""
    shaped = dict(data)
    stages = shaped.get("stages") or []
    if isinstance(stages, list):
        shaped["stages"] = [s if isinstance(s, str) else str(_ref(s, "description") or s)
                            for s in stages]
    return shaped


# (registered as each model is built: registering now would build them)
models.when_built("ValidationResult", lambda cls: _converter.register_structure_hook(
    cls, _reshaped(cls, _validation_result_shape)))
models.when_built("RunningJob", lambda cls: _converter.register_structure_hook(
    cls, _reshaped(cls, _running_job_shape)))
_converter.register_unstructure_hook_factory(
    _is_model, lambda cls: make_dict_unstructure_fn(cls, _converter, **_renames(cls)))


def _check_mapping(data: Any, cls: Any) -> None:
    if not isinstance(data, dict):
        raise TypeError("expected a JSON object for {}, got {}".format(
            cls.__name__, type(data).__name__))


def structure(data: Any, cls: Type[_T], what: str = "the response") -> _T:
    """Build ``cls`` (a model, or ``List[model]``) from decoded JSON.

    ``what`` names the source for the error message, e.g. ``"GET /api/dataIntegrity"``.
    """
    try:
        if attr.has(cls):
            _check_mapping(data, cls)
        return _converter.structure(data, cls)
    except Exception as exc:  # cattrs raises many kinds; one typed error out
        raise InvalidResponseError(
            "{}: unexpected JSON for {}: {}".format(what, _type_name(cls), _describe(exc))
        ) from exc


def _type_name(cls: Any) -> str:
    return getattr(cls, "__name__", None) or str(cls).replace("dhis2maint.models.", "")


def _describe(exc: Any) -> str:
    while getattr(exc, "exceptions", None):  # an ExceptionGroup from cattrs
        exc = exc.exceptions[0]
    if isinstance(exc, KeyError):
        return "missing field {}".format(exc)
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:199] + "…"


def unstructure(obj: Any) -> Any:
    """Models -> JSON-ready dicts/lists with camelCase keys; ``None`` fields dropped."""
    return _drop_none(_converter.unstructure(obj))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


# --- the hot path: issues, without cattrs ----------------------------------------


def issue_from_dict(data: Any) -> models.DataIntegrityIssue:
    """A :class:`DataIntegrityIssue` from one decoded issue object.

    Hand-written because streams build hundreds of thousands of them; it
    accepts exactly what the generated hook would, and raises ``TypeError``
    for a non-object so callers can report the position.
    """
    if not isinstance(data, dict):
        raise TypeError("an issue must be a JSON object, got {}".format(type(data).__name__))
    ident = data.get("id")
    name = data.get("name")
    comment = data.get("comment")
    refs = data.get("refs")
    if refs is None:
        refs = []
    elif not isinstance(refs, list):
        refs = [str(refs)]
    elif not all(type(r) is str for r in refs):
        refs = [r if isinstance(r, str) else _ref_text(r) for r in refs]
    return models.DataIntegrityIssue(
        None if ident is None else str(ident),
        None if name is None else str(name),
        None if comment is None else str(comment),
        refs,
    )


# --- reports -------------------------------------------------------------------

_REPORT_FORMAT = 1


def result_from_dict(data: Any, details: Optional[bool] = None, what: str = "the response"
                     ) -> models.DataIntegrityResult:
    """One summary or details object (DHIS2's shape) -> :class:`DataIntegrityResult`."""
    if not isinstance(data, dict):
        raise InvalidResponseError("{}: a check result must be a JSON object, got {}".format(
            what, type(data).__name__))
    issues = data.get("issues")
    if issues is not None:
        if not isinstance(issues, list):
            raise InvalidResponseError("{}: 'issues' of {} is not a list".format(
                what, data.get("name")))
        body = {k: v for k, v in data.items() if k != "issues"}
    else:
        body = data
    result = structure(body, models.DataIntegrityResult, what)
    if issues is not None:
        try:
            result.issues = [issue_from_dict(i) for i in issues]
        except TypeError as exc:
            raise InvalidResponseError("{}: issue of {}: {}".format(what, result.name, exc))
        if result.count is None:
            result.count = -1 if result.error is not None else len(result.issues)
    elif details:
        result.issues = []
    return result


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while building many objects.

    Decoding a 100,000-issue report allocates a few hundred thousand dicts,
    lists and models, none of them cyclic; the collector would run hundreds of
    times for nothing (about half the time of a large report on 3.7-3.12).
    Re-enabled on exit only if it was on, so nested and concurrent uses are safe.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def report_from_dict(data: Any, details: Optional[bool] = None, what: str = "the report"
                     ) -> models.DataIntegrityReport:
    """A :class:`DataIntegrityReport` from DHIS2's ``{name: result}`` map, or from
    :func:`report_to_dict` output."""
    with gc_paused():
        return _report_from_dict(data, details, what)


def _report_from_dict(data: Any, details: Optional[bool], what: str
                      ) -> models.DataIntegrityReport:
    if not isinstance(data, dict):
        raise InvalidResponseError("{}: expected a JSON object, got {}".format(
            what, type(data).__name__))
    if "dhis2maint" in data and isinstance(data.get("results"), dict):
        results_in = data["results"]
        details = bool(data.get("details")) if details is None else details
    else:
        results_in = data
    results = {}
    for key, value in results_in.items():
        if isinstance(value, dict) and "name" not in value:
            value = dict(value, name=key)
        results[key] = result_from_dict(value, details, what)
    if details is None:
        details = any(r.issues is not None for r in results.values())
    report = models.DataIntegrityReport(results=results, details=bool(details))
    if results_in is not data:
        _read_source(report, data.get("source"), what)
    return report


#: ``DataIntegrityReport`` attribute -> key in a saved report's ``"source"`` object.
SOURCE_KEYS = (("base_url", "baseUrl"), ("dhis2_version", "dhis2Version"),
               ("job_id", "jobId"), ("run_at", "runAt"), ("server_time", "serverTime"))


def source_dict(report: models.DataIntegrityReport) -> Dict[str, str]:
    """A report's provenance as the JSON object saved reports carry (None values dropped)."""
    out: Dict[str, str] = {}
    for attr_name, key in SOURCE_KEYS:
        value = getattr(report, attr_name, None)
        if isinstance(value, datetime.datetime):
            value = format_datetime(value)
        if value is not None:
            out[key] = value
    return out


def _read_source(report: models.DataIntegrityReport, source: Any, what: str) -> None:
    """Fill a report's provenance from a saved ``"source"`` object (absent before 0.2)."""
    if source is None:
        return
    if not isinstance(source, dict):
        raise InvalidResponseError("{}: 'source' should be an object, got {}".format(
            what, type(source).__name__))
    for attr_name, key in SOURCE_KEYS:
        value: Any = source.get(key)
        if value is None:
            continue
        try:
            if attr_name in ("run_at", "server_time"):
                value = parse_datetime(value)
            elif not isinstance(value, str):
                raise ValueError("not a string: {!r}".format(value))
        except ValueError as exc:
            raise InvalidResponseError("{}: source {}: {}".format(what, key, exc)) from None
        setattr(report, attr_name, value)


def report_to_dict(report: models.DataIntegrityReport) -> Dict[str, Any]:
    """A report as a versioned, JSON-ready dict (what :func:`to_json` writes)."""
    head: Dict[str, Any] = {"dhis2maint": _REPORT_FORMAT, "details": report.details}
    source = source_dict(report)
    if source:
        head["source"] = source
    return dict(head, **{
        "results": {name: unstructure(result) for name, result in report.results.items()},
    })


def _row_to_dict(row: models.IntegrityIssueRow) -> Dict[str, Any]:
    return {"checkName": row.check_name, "checkDisplayName": row.check_display_name,
            "severity": None if row.severity is None else str(row.severity),
            "issue": unstructure(row.issue)}


def comparison_to_dict(comparison: models.ReportComparison) -> Dict[str, Any]:
    """A JSON-ready dict of a :class:`ReportComparison`."""
    return {
        "issuesCompared": comparison.issues_compared,
        "newIssues": [_row_to_dict(r) for r in comparison.new_issues],
        "resolvedIssues": [_row_to_dict(r) for r in comparison.resolved_issues],
        "changedIssues": [{"old": _row_to_dict(c.old), "new": _row_to_dict(c.new)}
                          for c in comparison.changed_issues],
        "countChanges": {
            name: {"checkName": c.check_name, "displayName": c.display_name,
                   "severity": None if c.severity is None else str(c.severity),
                   "old": c.old, "new": c.new}
            for name, c in comparison.count_changes.items()},
    }


def to_json(report: models.DataIntegrityReport, **kwargs: Any) -> str:
    """Serialise a :class:`DataIntegrityReport` to a JSON string (kwargs go to ``json.dumps``)."""
    kwargs.setdefault("ensure_ascii", False)
    kwargs.setdefault("allow_nan", False)  # NaN/Infinity are not JSON
    return json.dumps(report_to_dict(report), **kwargs)


def from_json(text: Union[str, bytes]) -> models.DataIntegrityReport:
    """Read a report saved with :func:`to_json` (or DHIS2's own summary/details JSON)."""
    try:
        if isinstance(text, bytes):
            # As json.loads does for bytes; the strict decoder only reads str.
            text = text.decode(json.detect_encoding(text))
        data = strict_loads(text)
    except NonFiniteNumber as exc:
        raise InvalidResponseError("saved report is not valid JSON: {} is not a number "
                                   "JSON allows".format(exc)) from None
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        raise InvalidResponseError("saved report is not valid JSON: {}".format(
            type(exc).__name__ if isinstance(exc, MemoryError) else exc)) from None
    return report_from_dict(data, what="saved report")


# --- strict JSON: what DHIS2 may send ------------------------------------------------


class NonFiniteNumber(Exception):
    """``NaN``, ``Infinity`` or a number too large for a float in a JSON body.

    Not a ``ValueError`` on purpose: it must pass the decoders' "incomplete or
    malformed?" handling and reach the caller, who turns it into
    :class:`InvalidResponseError`."""


def _reject_constant(name: str) -> float:
    raise NonFiniteNumber(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0:  # inf or nan
        raise NonFiniteNumber(text)
    return value


#: A JSON decoder that rejects NaN/Infinity (Python's default accepts them).
STRICT_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
strict_loads = STRICT_DECODER.decode
strict_raw_decode = STRICT_DECODER.raw_decode


#: Deepest list/object nesting kept in a ref that is not a string.  DHIS2's refs are
#: strings; this bounds what a broken server can make us carry, the same on every
#: Python (3.13's decoder reads nesting that 3.7-3.12 refuse with RecursionError).
MAX_REF_DEPTH = 32


def _ref_text(value: Any) -> str:
    """A ref that is not a string, as JSON text; TypeError (the caller's "bad issue")
    when it cannot be re-encoded (nested more than MAX_REF_DEPTH deep, NaN)."""
    if _deeper_than(value, MAX_REF_DEPTH):
        raise TypeError("a ref cannot be kept as JSON text (nested too deeply: more than "
                        "{} levels)".format(MAX_REF_DEPTH))
    try:
        return json.dumps(value, allow_nan=False)
    except (RecursionError, ValueError, OverflowError, MemoryError) as exc:
        raise TypeError("a ref cannot be kept as JSON text ({})".format(
            "nested too deeply" if isinstance(exc, RecursionError) else type(exc).__name__)) \
            from None


def _deeper_than(value: Any, limit: int) -> bool:
    """True when lists/objects in ``value`` nest more than ``limit`` levels (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1)
                         for child in (item.values() if isinstance(item, dict) else item))
    return False


#: Deepest list/object nesting kept in a free-form field (a notification's ``data``,
#: job parameters).  DHIS2 nests these a few levels; deeper is a broken or hostile
#: server, refused the same on every Python before it can overflow the stack of a
#: writer later (json.dumps, cattrs, the HTML page).
MAX_VALUE_DEPTH = 64


def _structure_bounded_any(value: Any, _type: Any) -> Any:
    """Free-form (``Any``) fields: kept as decoded, when no deeper than MAX_VALUE_DEPTH."""
    if isinstance(value, (list, dict)) and _deeper_than(value, MAX_VALUE_DEPTH):
        raise ValueError("a value is nested too deeply (more than {} levels)".format(
            MAX_VALUE_DEPTH))
    return value


_converter.register_structure_hook_func(lambda t: t is Any, _structure_bounded_any)


def _structure_finite_float(value: Any, _type: Any) -> float:
    """Float fields (``percentage``): Jackson writes a Java NaN as the string "NaN",
    which ``float()`` would accept; a report must not hold NaN or Infinity."""
    number = float(value)
    if number - number != 0:
        raise ValueError("{!r} is not a finite number".format(value))
    return number


_converter.register_structure_hook(float, _structure_finite_float)


# --- follow-ups: arguments as a JSON object ------------------------------------------


def _unstructure_follow_up(follow_up: models.FollowUp) -> Dict[str, Any]:
    out: Dict[str, Any] = {"action": follow_up.action,
                           "args": {name: _converter.unstructure(value)
                                    for name, value in follow_up.args}}
    if follow_up.note:
        out["note"] = follow_up.note
    return out


def _structure_follow_up(data: Any, _type: Any) -> models.FollowUp:
    _check_mapping(data, models.FollowUp)
    args = data.get("args") or {}
    if not isinstance(args, dict):
        raise TypeError("FollowUp args must be a JSON object")
    return models.FollowUp(str(data["action"]), tuple((str(k), v) for k, v in args.items()),
                           str(data.get("note") or ""))


def _follow_up_hooks(cls: type) -> None:
    _converter.register_unstructure_hook(cls, _unstructure_follow_up)
    _converter.register_structure_hook(cls, _structure_follow_up)


models.when_built("FollowUp", _follow_up_hooks)


# --- /api/me -> UserInfo ----------------------------------------------------------------


def _structure_user_info(data: Any, _type: Any) -> models.UserInfo:
    """``GET /api/me``: the username is top-level on 2.38+ and only in
    ``userCredentials`` before; the display name may be ``name``; authorities
    sorted (``authorities`` absent: an empty list, the caller asks
    ``/api/me/authorities``)."""
    _check_mapping(data, models.UserInfo)
    username = data.get("username")
    credentials = data.get("userCredentials")
    if not username and isinstance(credentials, dict):
        username = credentials.get("username")
    authorities = data.get("authorities")
    if not isinstance(authorities, list):
        authorities = []
    return models.UserInfo(id=data.get("id"), username=username,
                           display_name=data.get("displayName") or data.get("name"),
                           authorities=sorted(str(a) for a in authorities))


models.when_built("UserInfo", lambda cls: _converter.register_structure_hook(
    cls, _structure_user_info))
