"""Stand-in routes: data integrity (/api/dataIntegrity: the check catalogue, runs,
summary/details results, running/completed sets, Prometheus metrics).

Part of :mod:`dhis2maint.testing`; handlers as described in ``_standin_routes``.
"""
import collections
import time
from typing import Any, Dict, Iterator, List, Optional
from urllib.parse import quote

from ._standin_http import _HttpError, _Request, _Response, _dumps, _fmt_time, _od, _parse_bool
from ._standin_routes import MAINT, _Api, route
from ._standin_state import _Result


# -- data integrity: catalogue -------------------------------------------
def _check_json(api, check):
    # type: (_Api, Dict[str, Any]) -> collections.OrderedDict[str, Any]
    if not api.f["list_filters"]:  # 2.37/2.38 descriptor
        keys = ("name", "displayName", "section", "severity", "description", "introduction", "recommendation")
        return collections.OrderedDict((k, check[k]) for k in keys if k in check)
    out = collections.OrderedDict((k, v) for k, v in check.items() if k != "code")
    if check["name"] in api.state.avg_ms:
        out["averageExecutionTime"] = api.state.avg_ms[check["name"]]
    out["code"] = check["code"]
    return out


def _checks_param(api, req, use_body=False):
    # type: (_Api, _Request, bool) -> List[str]
    """Raw `checks` names: JSON array body (if allowed and non-empty) wins over the query."""
    if use_body and api.f["json_body_checks"] and req.body.strip():
        body = req.json()
        if isinstance(body, list) and body:
            return [str(x) for x in body]
    values = req.query.get("checks", [])
    if len(values) == 1:
        return [v.strip() for v in values[0].split(",") if v.strip()]
    return [v for v in values if v.strip()]


def _expand(api, tokens):
    # type: (_Api, List[str]) -> List[str]
    return api.state.checks.expand(tokens, modern=api.f["integrity_api"] == "modern")


@route("GET", r"dataIntegrity", feature="integrity_list")
def integrity_list(api, req):
    # type: (_Api, _Request) -> _Response
    checks = api.state.checks
    tokens = _checks_param(api, req)
    selected = [checks.by_name[n] for n in _expand(api, tokens)] if tokens else list(checks.all)
    if api.f["list_filters"]:
        section = (req.arg("section") or "").strip()
        if section:
            selected = [c for c in selected if c["section"] == section]
        for param, key in (("slow", "isSlow"), ("programmatic", "isProgrammatic")):
            raw = req.arg(param)
            if raw is not None and raw != "":
                want = _parse_bool(param, raw)
                selected = [c for c in selected if c[key] == want]
    with api.state.lock:
        return _Response.json([_check_json(api, c) for c in selected])


# -- data integrity: runs --------------------------------------------------
@route("POST", r"dataIntegrity", authority=MAINT)
def integrity_run_plain(api, req):
    # type: (_Api, _Request) -> _Response
    if api.f["integrity_api"] == "legacy":  # 2.36: no parameters at all
        api.take_conflict(req, True)
        with api.state.lock:
            job = api.state.new_job("DATA_INTEGRITY", "report", None, [e["name"] for e in
                                                                      api.state.checks.legacy], req.now)
        return api.job_reply(req, job)
    kind = "report" if api.f["plain_post_type"] == "REPORT" else "summary"
    return _integrity_run(api, req, kind, "details")


@route("POST", r"dataIntegrity/(summary|details)", authority=MAINT, feature="integrity_list")
def integrity_run(api, req, kind):
    # type: (_Api, _Request, str) -> _Response
    return _integrity_run(api, req, kind, kind)


def _integrity_run(api, req, kind, location_kind):
    # type: (_Api, _Request, str, str) -> _Response
    api.take_conflict(req, True)
    raw = _checks_param(api, req, use_body=True)
    job_type = api.f["details_job_type"] if kind == "details" else "DATA_INTEGRITY"
    state = api.state
    with state.lock:
        if api.f["integrity_conflict"] and any(j.job_type == job_type and j.busy(req.now)
                                                for j in state.jobs.values()):
            raise _HttpError(409, "Data integrity check is already running",
                             error_code=api.f["integrity_conflict_code"])
        if raw:
            names = _expand(api, raw)
        elif kind == "report":  # the report needs the legacy checks (their 2.39+ equivalents)
            key = "modernName" if api.f["integrity_api"] == "modern" else "name"
            names = [e[key] for e in state.checks.legacy if e.get(key) in state.checks.by_name]
        elif api.f["integrity_api"] == "modern":
            names = state.checks.default_names()
        else:
            names = list(state.checks.by_name)
        names = state.checks.run_order(names)
        if kind == "details" and api.f["integrity_api"] == "modern":
            params = _od(("checks", raw))  # type: Optional[Dict[str, Any]]
        elif api.f["integrity_api"] == "modern":
            params = _od(("type", kind.upper()), ("checks", raw))
        else:
            params = _od(("checks", raw), ("type", kind.upper()))
        job = state.new_job(job_type, kind, params, names, req.now)
    location = "%s/api/dataIntegrity/%s?checks=%s" % (req.base, location_kind,
                                                      quote(",".join(raw), safe=",*"))
    return api.job_reply(req, job, location)


# -- data integrity: results -----------------------------------------------
def _wait_for(api, kind, names, timeout_ms):
    # type: (_Api, str, List[str], int) -> None
    """Wait (up to timeout) until every name has a cache entry; timeout < 0 waits without limit."""
    if timeout_ms == 0 or not names:
        return
    deadline = None if timeout_ms < 0 else time.time() + timeout_ms / 1000.0
    while True:
        with api.state.lock:
            now = api.owner._now()
            api.state.advance(now)
            cache = api.state.cached(kind, now)
            if all(n in cache for n in names):
                return
        if deadline is not None and time.time() >= deadline:
            return
        if api.owner._stop_event.wait(0.02):
            return


def _timeout(api, req):
    # type: (_Api, _Request) -> int
    raw = req.arg("timeout", "0") or "0"
    try:
        return int(raw)
    except ValueError:
        raise _HttpError(400, "Value '%s' is not valid for parameter timeout. It should be of type long" % raw)


def _result_head(api, result, kind):
    # type: (_Api, _Result, str) -> collections.OrderedDict[str, Any]
    check = api.state.checks.by_name[result.name]
    out = _check_json(api, check)
    if api.f["list_filters"]:
        out["startTime"] = _fmt_time(result.start)
    out["finishedTime"] = _fmt_time(result.finish)
    if result.error:
        out["error"] = result.error
    if kind == "summary":
        out["count"] = result.count
        yaml = not check.get("isProgrammatic") and check.get("section") != "Legacy"
        if result.error is None and yaml:
            out["percentage"] = api.state.percentage(result.name, result.count)
    return out


def _details_pieces(api, result):
    # type: (_Api, _Result) -> Iterator[str]
    head = _dumps(_result_head(api, result, "details"))
    yield head[:-1] + ',"issues":['
    if result.error is None and result.count > 0:
        for piece in api.state.issue_maker(result.name).json_pieces(result.count, result.offset):
            yield piece
    yield "]}"


def _results_map(api, kind, results):
    # type: (_Api, str, List[_Result]) -> Iterator[str]
    yield "{"
    for i, result in enumerate(results):
        yield ("," if i else "") + _dumps(result.name) + ":"
        if kind == "summary":
            yield _dumps(_result_head(api, result, kind))
        else:
            for piece in _details_pieces(api, result):
                yield piece
    yield "}"


@route("GET", r"dataIntegrity/(summary|details)/(running|completed)", feature="integrity_sets")
def integrity_sets(api, req, kind, which):
    # type: (_Api, _Request, str, str) -> _Response
    with api.state.lock:
        if which == "running":
            names = [n for n, c in api.state.running[kind].items() if c > 0]
        else:
            names = list(api.state.cached(kind, req.now))
    return _Response.json(names)


@route("GET", r"dataIntegrity/metrics", authority=MAINT, feature="metrics")
def integrity_metrics(api, req):
    # type: (_Api, _Request) -> _Response
    families = [("dhis_data_integrity_issues_count_total", "Number of issues found by data integrity checks"),
                ("dhis_data_integrity_issues_percentage", "Percentage of objects with issues"),
                ("dhis_data_integrity_check_duration_milliseconds", "Duration of data integrity checks")]
    lines = []
    with api.state.lock:
        cached = list(api.state.cached("summary", req.now).values())
        for metric, helptext in families:
            lines += ["# HELP %s %s" % (metric, helptext), "# TYPE %s gauge" % metric]
            for r in cached:
                check = api.state.checks.by_name[r.name]
                labels = '{check="%s",severity="%s",object_type="%s"}' % (
                    r.name, check["severity"], check.get("issuesIdType", "null"))
                if metric.endswith("count_total"):
                    lines.append("%s%s %d" % (metric, labels, r.count))
                elif metric.endswith("percentage"):
                    if r.error is None and not check.get("isProgrammatic"):
                        lines.append("%s%s %s" % (metric, labels, api.state.percentage(r.name, r.count)))
                else:
                    lines.append("%s%s %d" % (metric, labels, int((r.finish - r.start) * 1000)))
    return _Response(200, ("\n".join(lines) + "\n").encode("utf-8"), "text/plain;version=0.0.4;charset=utf-8")


@route("GET", r"dataIntegrity/(summary|details)", authority=MAINT, feature="integrity_list")
def integrity_results(api, req, kind):
    # type: (_Api, _Request, str) -> _Response
    tokens = _checks_param(api, req)
    names = _expand(api, tokens) if tokens else []
    _wait_for(api, kind, names, _timeout(api, req))
    with api.state.lock:
        cache = api.state.cached(kind, api.owner._now())
        results = [cache[n] for n in names if n in cache] if tokens else list(cache.values())
    return _Response.json_stream(_results_map(api, kind, results))


@route("GET", r"dataIntegrity/([^/]+)/(summary|details)", authority=MAINT, feature="integrity_list")
def integrity_result_one(api, req, check, kind):
    # type: (_Api, _Request, str, str) -> _Response
    if api.f["integrity_api"] == "modern":
        names = _expand(api, [check])
    else:
        names = [check] if check in api.state.checks.by_name else []
    _wait_for(api, kind, names[:1], _timeout(api, req))
    with api.state.lock:
        cache = api.state.cached(kind, api.owner._now())
        found = [cache[n] for n in names if n in cache]
    if not found:
        return _Response.empty(200)
    if kind == "summary":
        return _Response.json_stream([_dumps(_result_head(api, found[0], kind))])
    return _Response.json_stream(_details_pieces(api, found[0]))
