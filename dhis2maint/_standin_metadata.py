"""Stand-in routes: category metadata (/api/categoryCombos, /api/categoryOptionCombos,
/api/categories, /api/categoryOptions).

Part of :mod:`dhis2maint.testing`; handlers as described in ``_standin_routes``.
"""
import collections
import re
from typing import Any, Dict, List, Optional, Tuple, cast

from ._standin_http import _UID_RE, _HttpError, _Request, _Response, _od, _uid_from
from ._standin_routes import _Api, route


# -- category metadata -----------------------------------------------------------
def _combo_json(api, uid, now):
    # type: (_Api, str, float) -> collections.OrderedDict[str, Any]
    state = api.state
    combo = state.combos[uid]
    cats = [_od(("id", c), ("name", state.categories[c]["name"]),
                ("categoryOptions", [_od(("id", o), ("name", state.options[o]))
                                     for o in state.categories[c]["options"]]))
            for c in combo["categories"]]
    cocs = [_od(("id", c["id"]), ("name", c["name"])) for c in combo["cocs"] if c["visible_at"] <= now]
    return _od(("id", uid), ("name", combo["name"]),
               ("dataDimensionType", "DISAGGREGATION"), ("categories", cats), ("categoryOptionCombos", cocs))


def _not_found(api, klass, uid):
    # type: (_Api, str, str) -> _HttpError
    return _HttpError(404, "%s with id %s could not be found." % (klass, uid), error_code="E1005")


@route("GET", r"categoryCombos")
def category_combos(api, req):
    # type: (_Api, _Request) -> _Response
    with api.state.lock:
        items = [_combo_json(api, uid, req.now) for uid in api.state.combos]
    return api.listing(req, "categoryCombos", items)


@route("GET", r"categoryCombos/([^/]+)")
def category_combo(api, req, uid):
    # type: (_Api, _Request, str) -> _Response
    with api.state.lock:
        if uid not in api.state.combos:
            raise _not_found(api, "CategoryCombo", uid)
        return _Response.json(_combo_json(api, uid, req.now))


def _object_report(api, code, klass, uid, errors=None):
    # type: (_Api, int, str, str, Optional[List[Dict[str, Any]]]) -> _Response
    report = _od(("responseType", "ObjectReport"), ("klass", "org.hisp.dhis.category." + klass),
                 ("uid", uid), ("errorReports", errors or []))
    if errors:
        return _Response.message(409, "One or more errors occurred, please see full details in import "
                                      "report.", status="WARNING", response=report)
    return _Response.message(code, None, response=report)


def _refs(api, body, key, known, klass):
    # type: (_Api, Dict[str, Any], str, Dict[str, Any], str) -> Tuple[List[str], List[Dict[str, Any]]]
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


def _new_uid(api, body, prefix):
    # type: (_Api, Dict[str, Any], str) -> str
    if isinstance(body.get("id"), str) and _UID_RE.match(body["id"]):
        return cast(str, body["id"])
    return _uid_from(prefix, api.owner.seed, next(api.state._seq))


def _body_object(api, req):
    # type: (_Api, _Request) -> Dict[str, Any]
    body = req.json()
    if not isinstance(body, dict):
        raise _HttpError(400, "Request body must be a JSON object")
    if not body.get("name"):
        raise _HttpError(409, "Missing required property `name`", error_code="E4000")
    return body


@route("POST", r"categoryCombos")
def category_combo_create(api, req):
    # type: (_Api, _Request) -> _Response
    return _save_combo(api, req, None)


@route("PUT", r"categoryCombos/([^/]+)")
def category_combo_update(api, req, uid):
    # type: (_Api, _Request, str) -> _Response
    with api.state.lock:
        if uid not in api.state.combos:
            raise _not_found(api, "CategoryCombo", uid)
    return _save_combo(api, req, uid)


def _save_combo(api, req, uid):
    # type: (_Api, _Request, Optional[str]) -> _Response
    body = _body_object(api, req)
    state = api.state
    with state.lock:
        cats, errors = _refs(api, body, "categories", state.categories, "Category")
        uid = uid or _new_uid(api, body, "combo")
        if errors:
            return _object_report(api, 409, "CategoryCombo", uid, errors)
        combo = state.combos.setdefault(uid, {"cocs": []})
        combo["name"], combo["categories"] = body["name"], cats
        if api.f["coc_on_save"]:
            state.update_cocs(uid, req.now + float(api.owner.coc_generation_delay or 0))
    return _object_report(api, 201 if req.method == "POST" else 200, "CategoryCombo", uid)


@route("GET", r"categoryOptionCombos")
def category_option_combos(api, req):
    # type: (_Api, _Request) -> _Response
    wanted = None
    for f in req.query.get("filter", []):
        m = re.match(r"^categoryCombo\.id:eq:(.+)$", f)
        if m:
            wanted = m.group(1)
    items = []
    with api.state.lock:
        for uid, combo in api.state.combos.items():
            if wanted is not None and uid != wanted:
                continue
            for c in combo["cocs"]:
                if c["visible_at"] <= req.now:
                    items.append(_od(("id", c["id"]), ("name", c["name"]), ("categoryCombo", _od(("id", uid))),
                                     ("categoryOptions", [_od(("id", o)) for o in c["options"]])))
    return api.listing(req, "categoryOptionCombos", items)


@route("GET", r"categories")
def categories(api, req):
    # type: (_Api, _Request) -> _Response
    with api.state.lock:
        items = [_od(("id", u), ("name", c["name"]),
                     ("categoryOptions", [_od(("id", o), ("name", api.state.options[o])) for o in c["options"]]))
                 for u, c in api.state.categories.items()]
    return api.listing(req, "categories", items)


@route("POST", r"categories")
def category_create(api, req):
    # type: (_Api, _Request) -> _Response
    body = _body_object(api, req)
    with api.state.lock:
        options, errors = _refs(api, body, "categoryOptions", api.state.options, "Category")
        uid = _new_uid(api, body, "category")
        if errors:
            return _object_report(api, 409, "Category", uid, errors)
        api.state.categories[uid] = {"name": body["name"], "options": options}
    return _object_report(api, 201, "Category", uid)


@route("GET", r"categoryOptions")
def category_options(api, req):
    # type: (_Api, _Request) -> _Response
    with api.state.lock:
        items = [_od(("id", u), ("name", n)) for u, n in api.state.options.items()]
    return api.listing(req, "categoryOptions", items)


@route("POST", r"categoryOptions")
def category_option_create(api, req):
    # type: (_Api, _Request) -> _Response
    body = _body_object(api, req)
    with api.state.lock:
        uid = _new_uid(api, body, "option")
        api.state.options[uid] = body["name"]
    return _object_report(api, 201, "CategoryOption", uid)
