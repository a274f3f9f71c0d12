"""Stand-in routes: predictors (/api/predictors, /api/predictorGroups) and validation
rule analysis (/api/dataAnalysis/validationRules).

Part of :mod:`dhis2maint.testing`; handlers as described in ``_standin_routes``.
"""
import datetime
import re
from typing import Any, Optional

from ._standin_http import _HttpError, _Request, _Response, _hash_int, _od
from ._standin_routes import PREDICT, VALIDATE, _Api, route


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


# -- predictors ------------------------------------------------------------------
def _prediction_months(api, req):
    # type: (_Api, _Request) -> int
    start = _parse_date("startDate", req.arg("startDate"))
    end = _parse_date("endDate", req.arg("endDate"))
    if start > end and api.f["predictor_date_order"]:
        raise _HttpError(409, "Start date is after end date: `%s`, `%s`" % (start, end), error_code="E7206")
    return max(1, _month_index(end) - _month_index(start) + 1)


def _predict(api, uid, months):
    # type: (_Api, str, int) -> int
    name, per_month = api.state.predictors[uid]
    if uid in api.state.failing_predictors:
        raise _HttpError(409, "Unable to predict " + name, dev_message="Simulated predictor failure")
    return per_month * months


@route("POST PUT", r"predictors/run", authority=PREDICT)
def predictors_run_all(api, req):
    # type: (_Api, _Request) -> _Response
    months = _prediction_months(api, req)
    with api.state.lock:
        total = sum(_predict(api, uid, months) for uid in list(api.state.predictors))
    return _Response.message(200, "Generated %d predictions" % total)


@route("POST PUT", r"predictors/([^/]+)/run", authority=PREDICT)
def predictor_run(api, req, uid):
    # type: (_Api, _Request, str) -> _Response
    months = _prediction_months(api, req)
    with api.state.lock:
        if uid not in api.state.predictors:
            raise _HttpError(409, "Unable to predict " + uid, dev_message="Predictor not found: " + uid)
        return _Response.message(200, "Generated %d predictions" % _predict(api, uid, months))


@route("POST PUT", r"predictorGroups/([^/]+)/run", authority=PREDICT, feature="predictor_group_run")
def predictor_group_run(api, req, uid):
    # type: (_Api, _Request, str) -> _Response
    months = _prediction_months(api, req)
    with api.state.lock:
        members = api.state.predictor_groups.get(uid, ("", []))[1]
        try:
            total = sum(_predict(api, p, months) for p in members)
        except _HttpError as e:
            raise _HttpError(409, "Unable to predict from predictor group " + uid, dev_message=e.dev_message)
    return _Response.message(200, "Generated %d predictions" % total)


# -- validation rule analysis --------------------------------------------------
@route("POST", r"dataAnalysis/validationRules", authority=VALIDATE)
def validation_analysis(api, req):
    # type: (_Api, _Request) -> _Response
    body = req.json() or {}
    if not isinstance(body, dict):
        raise _HttpError(400, "Request body must be a JSON object")
    state = api.state
    ou = body.get("ou")
    if ou not in state.org_units:
        raise _HttpError(400, "No organisation unit defined")
    start = _parse_date("startDate", body.get("startDate"))
    end = _parse_date("endDate", body.get("endDate"))
    max_results = body.get("maxResults") if api.f["validation_max_results"] else None
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
