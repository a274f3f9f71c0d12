"""Stand-in routes: maintenance (/api/maintenance with flags, its named operations,
the per-combo category option combo update, data pruning, app reload).

Part of :mod:`dhis2maint.testing`; handlers as described in ``_standin_routes``.
"""
from ._standin_http import _HttpError, _Request, _Response, _od, _parse_bool, _web_message
from ._standin_routes import ALL_ONLY, MAINT, _Api, route
from ._standin_versions import _MAINT_FLAGS, _MAINT_PATHS


# -- maintenance -------------------------------------------------------------------
def _maintenance_done(api, op, empty_body=False):
    # type: (_Api, str, bool) -> _Response
    with api.state.lock:
        api.state.maintenance_log.append(op)
    if not api.f["maintenance_ok_body"]:
        return _Response.empty(204)
    return _Response.empty(200) if empty_body else _Response.json(_web_message(200))


@route("POST PUT", r"maintenance", authority=MAINT)
def maintenance_flags(api, req):
    # type: (_Api, _Request) -> _Response
    ops = []
    for flag, op in _MAINT_FLAGS:
        raw = req.arg(flag)
        if raw is not None and raw != "" and _parse_bool(flag, raw):
            ops.append(op)
    with api.state.lock:
        for op in ops:
            if op == "categoryOptionComboUpdate":
                api.state.update_all_cocs(req.now)
            api.state.maintenance_log.append(op)
    return _Response.empty(200 if api.f["maintenance_ok_body"] else 204)


@route("GET", r"maintenance/appReload", authority=MAINT)
def maintenance_app_reload(api, req):
    # type: (_Api, _Request) -> _Response
    with api.state.lock:
        api.state.maintenance_log.append("appReload")
    return _Response.message(200, "Apps reloaded")


@route("POST PUT", r"maintenance/categoryOptionComboUpdate/categoryCombo/([^/]+)", authority=MAINT)
def maintenance_coc_update_one(api, req, uid):
    # type: (_Api, _Request, str) -> _Response
    state = api.state
    with state.lock:
        if uid not in state.combos:
            raise _HttpError(409, "CategoryCombo does not exist: " + uid)
        state.maintenance_log.append("categoryOptionComboUpdate/categoryCombo/" + uid)
        combo_name = state.combos[uid]["name"]
        in_use = bool(api.owner.coc_in_use)
        added, deleted = state.update_cocs(uid, req.now + float(api.owner.coc_generation_delay or 0),
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


@route("POST PUT", r"maintenance/dataPruning/(organisationUnits|dataElements)/([^/]+)", authority=ALL_ONLY)
def maintenance_data_pruning(api, req, what, uid):
    # type: (_Api, _Request, str, str) -> _Response
    known = api.state.org_units if what == "organisationUnits" else api.state.data_elements
    if uid not in known:
        label = "Organisation unit" if what == "organisationUnits" else "Data element"
        raise _HttpError(409, "%s does not exist: %s" % (label, uid))
    with api.state.lock:
        api.state.maintenance_log.append("dataPruning/%s/%s" % (what, uid))
    return _Response.message(200, "Data was pruned successfully")


@route("POST PUT", r"maintenance/([A-Za-z]+)", authority=MAINT)
def maintenance_op(api, req, op):
    # type: (_Api, _Request, str) -> _Response
    if op not in _MAINT_PATHS[api.f["maintenance_paths"]]:
        raise _HttpError(404, "No endpoint %s /api/maintenance/%s" % (req.method, op))
    if op == "categoryOptionComboUpdate":
        with api.state.lock:
            api.state.update_all_cocs(req.now)
    return _maintenance_done(api, "cacheClear" if op == "cache" else op,
                                  empty_body=op == "analyticsTablesClear")
