"""Stand-in routes: task notifications and summaries (/api/system/tasks,
/api/system/taskSummaries) and the jobs started by /api/resourceTables (resource
tables, analytics tables, monitoring).

Part of :mod:`dhis2maint.testing`; handlers as described in ``_standin_routes``.
"""
import collections
from typing import Any, Dict, List, Optional

from ._standin_http import _JSON_TYPE, _HttpError, _Request, _Response, _od, _parse_bool
from ._standin_routes import MAINT, _Api, route
from ._standin_state import _Job
from ._standin_versions import _ANALYTICS_FLAGS, _JOB_TYPE_SETS, _LEGACY_ANALYTICS_FLAGS


# -- task notifications ------------------------------------------------------
def _job_type(api, raw):
    # type: (_Api, str) -> str
    job_type = raw.upper()
    valid = _JOB_TYPE_SETS[api.f["job_types"]]
    if job_type not in valid:
        raise _HttpError(400, "Value '%s' is not valid for parameter jobType. Valid values are: [%s]"
                         % (raw, ", ".join(sorted(valid))))
    return job_type


def _feed(api, job, now):
    # type: (_Api, _Job, float) -> List[Dict[str, Any]]
    if api.owner.drop_feed_after_completion and job.finished(now):
        return []
    return list(reversed(job.notifications))


def _gist(api, req):
    # type: (_Api, _Request) -> bool
    raw = req.arg("gist")
    return api.f["task_gist"] and (raw is None or raw == "" or _parse_bool("gist", raw))


def _feeds_of_type(api, job_type, now, gist):
    # type: (_Api, str, float, bool) -> collections.OrderedDict[str, Any]
    jobs = [j for j in api.state.jobs.values() if j.job_type == job_type]
    jobs = [j for j in jobs if _feed(api, j, now)]
    jobs.sort(key=lambda j: j.notifications[-1]["time"], reverse=True)
    out = collections.OrderedDict()
    for j in jobs:
        feed = _feed(api, j, now)
        out[j.id] = [feed[0], feed[-1]] if gist and len(feed) > 2 else feed
    return out


@route("GET", r"system/tasks")
def tasks_all(api, req):
    # type: (_Api, _Request) -> _Response
    gist = _gist(api, req)
    out = collections.OrderedDict()
    with api.state.lock:
        for job_type in sorted(_JOB_TYPE_SETS[api.f["job_types"]]):
            feeds = _feeds_of_type(api, job_type, req.now, gist)
            if feeds or not api.f["task_gist"]:
                out[job_type] = feeds
    return _Response.json(out)


@route("GET DELETE", r"system/tasks/([^/]+)")
def tasks_type(api, req, job_type):
    # type: (_Api, _Request, str) -> _Response
    job_type = _job_type(api, job_type)
    if req.method == "DELETE":
        return _tasks_delete(api, req, job_type, None)
    with api.state.lock:
        return _Response.json(_feeds_of_type(api, job_type, req.now, _gist(api, req)))


@route("GET DELETE", r"system/tasks/([^/]+)/([^/]+)")
def tasks_job(api, req, job_type, job_id):
    # type: (_Api, _Request, str, str) -> _Response
    job_type, job_id = _job_type(api, job_type), api.job_id(job_id)
    if req.method == "DELETE":
        return _tasks_delete(api, req, job_type, job_id)
    with api.state.lock:
        job = api.state.jobs.get(job_id)
        if job is None or job.job_type != job_type:
            return _Response.json([])
        return _Response.json(_feed(api, job, req.now))


def _tasks_delete(api, req, job_type, job_id):
    # type: (_Api, _Request, str, Optional[str]) -> _Response
    if not api.f["tasks_delete"]:
        raise _HttpError(405, "Request method 'DELETE' is not supported")
    with api.state.lock:
        for job in api.state.jobs.values():
            if job.job_type == job_type and job_id in (None, job.id) and job.finished(req.now):
                job.notifications[:] = []
    return _Response.empty(204)


@route("GET", r"system/taskSummaries/([^/]+)")
def task_summaries_type(api, req, job_type):
    # type: (_Api, _Request, str) -> _Response
    job_type = _job_type(api, job_type)
    with api.state.lock:
        out = collections.OrderedDict((j.id, j.report) for j in api.state.jobs.values()
                                      if j.job_type == job_type and j.report is not None)
    return _Response.json(out)


@route("GET", r"system/taskSummaries/([^/]+)/([^/]+)")
def task_summary(api, req, job_type, job_id):
    # type: (_Api, _Request, str, str) -> _Response
    job_type, job_id = _job_type(api, job_type), api.job_id(job_id)
    with api.state.lock:
        job = api.state.jobs.get(job_id)
        report = job.report if job is not None and job.job_type == job_type else None
    if report is not None:
        return _Response.json(report)
    if api.f["report_format"] == "2.36":
        return _Response(200, b"null", _JSON_TYPE)
    return _Response.empty(200)


# -- job configurations (2.41+) ------------------------------------------------


# -- resource tables, analytics, monitoring ------------------------------------
def _other_job(api, req, job_type, kind, params):
    # type: (_Api, _Request, str, str, Optional[Dict[str, Any]]) -> _Response
    api.take_conflict(req, False)
    with api.state.lock:
        job = api.state.new_job(job_type, kind, params, [], req.now)
    location = "%s/api/system/tasks/%s" % (req.base, job_type) if api.f["job_location"] else None
    return api.job_reply(req, job, location)


@route("POST PUT", r"resourceTables/analytics", authority=MAINT)
def run_analytics(api, req):
    # type: (_Api, _Request) -> _Response
    full = api.f["analytics_params"] == "full"
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
    return _other_job(api, req, "ANALYTICS_TABLE", "analytics", params)


@route("POST PUT", r"resourceTables", authority=MAINT)
def run_resource_tables(api, req):
    # type: (_Api, _Request) -> _Response
    return _other_job(api, req, "RESOURCE_TABLE", "resource", None)


@route("POST PUT", r"resourceTables/monitoring", authority=MAINT)
def run_monitoring(api, req):
    # type: (_Api, _Request) -> _Response
    return _other_job(api, req, "MONITORING", "monitoring", None)
