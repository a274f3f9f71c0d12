"""Stand-in routes: metadata imports and aggregate data values (#25): POST /api/metadata (data
elements, data element groups, data sets, visualizations, dashboards), GET of those and of
/api/organisationUnits, POST/GET /api/dataValueSets.

What it keeps is per stand-in (``_store(state)``): the imported objects by type and UID, and
the data values by (data element, period, org unit).  Faithful where dhis2maint depends on it:

* ``POST /api/metadata``: create-and-update by UID, ``importMode=VALIDATE`` (nothing kept;
  a ``dryRun`` parameter is ignored, as DHIS2 ignores it),
  ``atomicMode=ALL`` (the default: one bad object and nothing is imported, status ERROR),
  error reports as DHIS2 words them (E4000 missing property, E4001 too long, E4014 bad UID,
  E5002 invalid reference, E5003 a code/name another object has); an existing object counts
  ``updated`` even when unchanged, as DHIS2 counts it.  The endpoint needs no authority
  of its own: creating an object asks its type's public or private add authority (E3000
  otherwise; visualizations and dashboards anyone may create).
* ``POST /api/dataValueSets``: conflicts for an unknown data element (E7610), period (E7611),
  org unit (E7612), a value that is not a zero-or-positive integer (E7619), a data element not
  assigned through a data set to the org unit (E7636); unchanged re-sent values count
  ``ignored`` from 2.38 (``updated`` before); ``dryRun``.
* The answer's shape per version (row ``import_web_message``): the bare summary/report on
  2.36 (and for ``/api/37/…`` paths), a WebMessage wrapping it from 2.37 (409 with conflicts).

``Dhis2StandIn.data_value_conflict_next()`` makes the next data value import answer a conflict
(E7643, the period not open) for its first value.

Part of :mod:`dhis2maint.testing`; handlers as described in ``_standin_routes``.
"""
import collections
import re
from typing import Any, Dict, List, Optional, Set, Tuple

from ._standin_http import _UID_RE, _HttpError, _Request, _Response, _od, _web_message
from ._standin_routes import _Api, route

#: collection -> who may create one (DHIS2's schema authorities: public or private add);
#: collections not listed anyone may create (as private objects).  The stand-in's own
#: table, kept apart from the library's (datavalues.SETUP_AUTHORITIES) that it tests.
_CREATE = {
    "dataElements": ("ALL", "F_DATAELEMENT_PUBLIC_ADD", "F_DATAELEMENT_PRIVATE_ADD"),
    "dataElementGroups": ("ALL", "F_DATAELEMENTGROUP_PUBLIC_ADD",
                          "F_DATAELEMENTGROUP_PRIVATE_ADD"),
    "dataSets": ("ALL", "F_DATASET_PUBLIC_ADD", "F_DATASET_PRIVATE_ADD"),
}
_DEFAULT_COC = "HllvX50cXC0"

#: collection -> (klass, required properties, unique properties)
_TYPES: Dict[str, Tuple[str, Tuple[str, ...], Tuple[str, ...]]] = collections.OrderedDict([
    ("dataElements", ("org.hisp.dhis.dataelement.DataElement",
                      ("name", "shortName", "valueType", "domainType", "aggregationType"),
                      ("code", "name", "shortName"))),
    ("dataElementGroups", ("org.hisp.dhis.dataelement.DataElementGroup", ("name", "shortName"),
                           ("code", "name", "shortName"))),
    ("dataSets", ("org.hisp.dhis.dataset.DataSet", ("name", "periodType"), ("code",))),
    ("visualizations", ("org.hisp.dhis.visualization.Visualization", ("name", "type"), ("code",))),
    ("dashboards", ("org.hisp.dhis.dashboard.Dashboard", ("name",), ("code",))),
])
_LENGTHS = (("name", 230), ("shortName", 50), ("code", 50), ("formName", 230))
_PERIOD_TYPES = ("Daily", "Weekly", "Monthly", "Quarterly", "Yearly", "BiMonthly", "SixMonthly",
                 "FinancialApril", "FinancialJuly", "FinancialOct", "FinancialNov")


def _store(state):
    # type: (Any) -> Dict[str, Any]
    """This stand-in's imported objects and data values (made on first use)."""
    store = getattr(state, "datavalues", None)
    if store is None:
        store = {"objects": collections.OrderedDict((t, collections.OrderedDict()) for t in _TYPES),
                 "values": collections.OrderedDict(), "conflict_next": 0, "data_write": True}
        state.datavalues = store
    return store


def conflict_next(state, count=1):
    # type: (Any, int) -> None
    """The next `count` data value imports answer a conflict for their first value."""
    with state.lock:
        _store(state)["conflict_next"] += int(count)


def _plain(api, req):
    # type: (_Api, _Request) -> bool
    """The bare summary (2.36; /api/37/... and older paths on 2.37+) rather than a WebMessage."""
    if not api.f["import_web_message"]:
        return True
    m = re.match(r"^/api/(\d+)/", req.path)
    return bool(m and int(m.group(1)) < 38)


def _flag(req, name, default):
    # type: (_Request, str, bool) -> bool
    raw = req.arg(name)
    return default if raw is None else raw.strip().lower() == "true"


# -- POST /api/metadata -------------------------------------------------------------------
def _error(klass, code, message, prop=None, value=None):
    # type: (str, str, str, Optional[str], Any) -> Dict[str, Any]
    return _od(("message", message), ("mainKlass", klass), ("errorCode", code),
               ("errorProperty", prop), ("errorProperties", [p for p in (prop,) if p]),
               ("value", value))


def _refs_of(collection, obj):
    # type: (str, Dict[str, Any]) -> List[Tuple[str, str, str]]
    """(referenced collection, uid, association) of every reference the stand-in checks."""
    out = []  # type: List[Tuple[str, str, str]]

    def ref(target, item, assoc):
        # type: (str, Any, str) -> None
        if isinstance(item, dict) and item.get("id"):
            out.append((target, str(item["id"]), assoc))

    if collection == "dataElementGroups":
        for item in obj.get("dataElements") or ():
            ref("dataElements", item, "dataElements")
    elif collection == "dataSets":
        for item in obj.get("dataSetElements") or ():
            ref("dataElements", (item or {}).get("dataElement"), "dataSetElements")
        for item in obj.get("organisationUnits") or ():
            ref("organisationUnits", item, "organisationUnits")
    elif collection == "visualizations":
        for item in obj.get("dataDimensionItems") or ():
            ref("dataElements", (item or {}).get("dataElement"), "dataDimensionItems")
        for item in obj.get("organisationUnits") or ():
            ref("organisationUnits", item, "organisationUnits")
    elif collection == "dashboards":
        for item in obj.get("dashboardItems") or ():
            ref("visualizations", (item or {}).get("visualization"), "dashboardItems")
    return out


def _known(api, collection, uid, payload_ids):
    # type: (_Api, str, str, Dict[str, Set[str]]) -> bool
    if uid in payload_ids.get(collection, ()):
        return True
    if collection == "organisationUnits":
        return uid in api.state.org_units
    if collection == "dataElements" and uid in api.state.data_elements:
        return True
    return uid in _store(api.state)["objects"].get(collection, {})


def _validate(api, collection, index, obj, payload_ids, taken):
    # type: (_Api, str, int, Any, Dict[str, Set[str]], Dict[Tuple[str, str, str], str]) -> List[Dict[str, Any]]
    klass, required, unique = _TYPES[collection]
    short = klass.rsplit(".", 1)[-1]
    if not isinstance(obj, dict):
        return [_error(klass, "E4000", "Missing required property `id`.", "id")]
    errors = []
    uid = obj.get("id")
    if uid is not None and not _UID_RE.match(str(uid)):
        errors.append(_error(klass, "E4014", "Invalid UID `%s` for property `%s`" % (uid, short), "id", uid))
    for prop in required:
        if obj.get(prop) in (None, ""):
            errors.append(_error(klass, "E4000", "Missing required property `%s`." % prop, prop))
    for prop, limit in _LENGTHS:
        value = obj.get(prop)
        if isinstance(value, str) and len(value) > limit:
            errors.append(_error(klass, "E4001", "Maximum length of property `%s`is %d, but given length was %d."
                                 % (prop, limit, len(value)), prop, value))
    if collection == "dataSets" and obj.get("periodType") and obj.get("periodType") not in _PERIOD_TYPES:
        errors.append(_error(klass, "E4000", "Missing required property `periodType`.", "periodType"))
    for prop in unique:
        value = obj.get(prop)
        if not isinstance(value, str) or not value:
            continue
        key = (collection, prop, value.lower() if prop != "code" else value)
        other = taken.get(key)
        if other is not None and other != uid:
            errors.append(_error(klass, "E5003", "Property `%s` with value `%s` on object %s [%s] (%s) already "
                                 "exists on object %s" % (prop, value, obj.get("name"), uid, short, other), prop, value))
        else:
            taken[key] = str(uid)
    for target, ref, assoc in _refs_of(collection, obj):
        if not _known(api, target, ref, payload_ids):
            errors.append(_error(klass, "E5002", "Invalid reference [%s] (%s) on object %s [%s] (%s) for "
                                 "association `%s`" % (ref, target[:-1][0].upper() + target[1:-1], obj.get("name"),
                                                       uid, short, assoc), assoc, ref))
    return errors


def _stats(created=0, updated=0, ignored=0):
    # type: (int, int, int) -> collections.OrderedDict[str, int]
    return _od(("created", created), ("updated", updated), ("deleted", 0), ("ignored", ignored),
               ("total", created + updated + ignored))


@route("POST", r"metadata")
def post_metadata(api, req):
    # type: (_Api, _Request) -> _Response
    body = req.json()
    if not isinstance(body, dict):
        raise _HttpError(400, "JSON parse error: a metadata object is required")
    strategy = (req.arg("importStrategy") or "CREATE_AND_UPDATE").upper()
    # importMode=VALIDATE is the metadata dry run; a dryRun parameter is ignored, as DHIS2 does
    dry_run = (req.arg("importMode") or "COMMIT").upper() == "VALIDATE"
    atomic = (req.arg("atomicMode") or "ALL").upper() != "NONE"
    with api.state.lock:
        store = _store(api.state)["objects"]
        payload_ids = {c: {str(o.get("id")) for o in body.get(c) or () if isinstance(o, dict) and o.get("id")}
                       for c in _TYPES}
        taken = {}  # type: Dict[Tuple[str, str, str], str]
        for collection, (_klass, _req, unique) in _TYPES.items():
            for uid, obj in store[collection].items():
                if uid in payload_ids[collection]:
                    continue  # replaced by the payload's version
                for prop in unique:
                    value = obj.get(prop)
                    if isinstance(value, str) and value:
                        taken[(collection, prop, value.lower() if prop != "code" else value)] = uid
        have = set(api.owner.authorities_of(req.user))
        type_reports = []
        plan = []  # type: List[Tuple[str, str, Dict[str, Any], bool]]
        any_errors = False
        totals = [0, 0, 0]
        for collection, (klass, _req, _unique) in _TYPES.items():
            objs = body.get(collection) or []
            created = updated = ignored = 0
            object_reports = []
            for index, obj in enumerate(objs):
                errors = _validate(api, collection, index, obj, payload_ids, taken)
                uid = str(obj.get("id")) if isinstance(obj, dict) and obj.get("id") else None
                exists = uid is not None and uid in store[collection]
                if not errors and strategy == "CREATE" and exists:
                    errors = [_error(klass, "E5000", "Found matching object for reference, but import mode is "
                                     "CREATE. Identifier was %s, and object was %s." % (uid, obj.get("name")))]
                if not errors and not exists and collection in _CREATE \
                        and not have.intersection(_CREATE[collection]):
                    errors = [_error(klass, "E3000", "User `%s` is not allowed to create objects "
                                     "of type %s" % (req.user, klass.rsplit(".", 1)[-1]))]
                if not errors and strategy == "UPDATE" and not exists:
                    errors = [_error(klass, "E5001", "No matching object for reference. Identifier was %s, and "
                                     "object was %s." % (uid, obj.get("name")))]
                if errors:
                    any_errors = True
                    ignored += 1
                    object_reports.append(_od(("klass", klass), ("index", index), ("uid", uid),
                                              ("errorReports", errors)))
                    continue
                if uid is None:
                    from ._standin_http import _uid_from

                    uid = _uid_from("metadata", collection, str(obj.get("name")), str(index))
                    obj = dict(obj, id=uid)
                plan.append((collection, uid, obj, exists))
                if exists:
                    updated += 1
                else:
                    created += 1
            if objs:
                type_reports.append(_od(("klass", klass), ("stats", _stats(created, updated, ignored)),
                                        ("objectReports", object_reports)))
            totals[0] += created
            totals[1] += updated
            totals[2] += ignored
        if any_errors and atomic:
            status = "ERROR"
            for tr in type_reports:
                s = tr["stats"]
                tr["stats"] = _stats(0, 0, s["created"] + s["updated"] + s["ignored"])
            totals = [0, 0, sum(totals)]
            plan = []
        else:
            status = "WARNING" if any_errors else "OK"
        if not dry_run:
            for collection, uid, obj, _exists in plan:
                store[collection][uid] = dict(obj)
    report = _od(("responseType", "ImportReport" if api.f["import_web_message"] else None),
                 ("status", status), ("stats", _stats(*totals)), ("typeReports", type_reports))
    if _plain(api, req):
        return _Response.json(report)
    if status == "OK":
        return _Response.json(_web_message(200, None, response=report))
    return _Response.json(_web_message(409, "One or more errors occurred, please see full details in import "
                                            "report.", status="WARNING", response=report), 409)


# -- GET of the metadata -----------------------------------------------------------------
def _matches(obj, filters):
    # type: (Dict[str, Any], List[str]) -> bool
    for f in filters:
        prop, _, rest = f.partition(":")
        op, _, value = rest.partition(":")
        have = obj.get(prop)
        have = "" if have is None else str(have)
        if op == "eq" and have != value:
            return False
        if op == "like" and value.lower() not in have.lower():
            return False
        if op == "in" and have not in value.strip("[]").split(","):
            return False
        if op not in ("eq", "like", "in"):
            raise _HttpError(400, "Unsupported operator in the stand-in: %s" % op)
    return True


def _nested_fields(obj, req):
    # type: (Dict[str, Any], _Request) -> Dict[str, Any]
    wanted = req.fields()
    if not wanted:
        return obj
    return collections.OrderedDict((k, v) for k, v in obj.items() if k in wanted)


def _org_unit_json(api, uid):
    # type: (_Api, str) -> collections.OrderedDict[str, Any]
    unit = api.state.org_units[uid]
    return _od(("id", uid), ("name", unit["name"]), ("path", unit["path"]),
               ("level", unit["path"].count("/")), ("parent", {"id": unit["parent"]} if unit["parent"] else None))


def _object_json(api, collection, obj):
    # type: (_Api, str, Dict[str, Any]) -> Dict[str, Any]
    out = collections.OrderedDict(obj)
    out.setdefault("displayName", obj.get("name"))
    if collection == "dataSets":
        write = bool(_store(api.state)["data_write"])
        out["access"] = _od(("read", True), ("write", True), ("data", _od(("read", True), ("write", write))))
        out["organisationUnits"] = [_org_unit_json(api, u["id"]) for u in obj.get("organisationUnits") or ()
                                    if isinstance(u, dict) and u.get("id") in api.state.org_units]
    return out


def _listing(api, req, collection):
    # type: (_Api, _Request, str) -> _Response
    filters = req.query.get("filter", [])
    with api.state.lock:
        objs = [_object_json(api, collection, o) for o in _store(api.state)["objects"][collection].values()]
        if collection == "dataElements":
            objs = [_od(("id", uid), ("name", name), ("displayName", name))
                    for uid, name in api.state.data_elements.items()] + objs
    items = [_nested_fields(o, req) for o in objs if _matches(o, filters)]
    return api.listing(req, collection, items)


def _one(api, req, collection, uid):
    # type: (_Api, _Request, str, str) -> _Response
    with api.state.lock:
        obj = _store(api.state)["objects"][collection].get(uid)
        if obj is None:
            raise _HttpError(404, "%s with id %s could not be found." % (_TYPES[collection][0].rsplit(".", 1)[-1], uid),
                             error_code="E1005")
        return _Response.json(_nested_fields(_object_json(api, collection, obj), req))


for _collection in _TYPES:
    def _make(collection):
        # type: (str) -> None
        route("GET", collection)(lambda api, req: _listing(api, req, collection))
        route("GET", collection + r"/([A-Za-z][A-Za-z0-9]{10})")(
            lambda api, req, uid: _one(api, req, collection, uid))
    _make(_collection)


@route("GET", r"organisationUnits")
def organisation_units(api, req):
    # type: (_Api, _Request) -> _Response
    level = req.arg("level")
    filters = req.query.get("filter", [])
    with api.state.lock:
        units = [_org_unit_json(api, uid) for uid in api.state.org_units]
    if level:
        units = [u for u in units if str(u["level"]) == level.strip()]
    items = [_nested_fields(u, req) for u in units if _matches(u, filters)]
    return api.listing(req, "organisationUnits", items)


@route("GET", r"organisationUnits/([A-Za-z][A-Za-z0-9]{10})")
def organisation_unit(api, req, uid):
    # type: (_Api, _Request, str) -> _Response
    with api.state.lock:
        if uid not in api.state.org_units:
            raise _HttpError(404, "OrganisationUnit with id %s could not be found." % uid, error_code="E1005")
        return _Response.json(_nested_fields(_org_unit_json(api, uid), req))


# -- /api/dataValueSets --------------------------------------------------------------------
def _conflict(api, obj, message, code, prop=None, index=None):
    # type: (_Api, Optional[str], str, str, Optional[str], Optional[int]) -> Dict[str, Any]
    if not api.f["conflict_error_codes"]:
        return _od(("object", obj), ("value", message))
    return _od(("object", obj), ("objects", {prop or "object": obj} if obj else {}), ("value", message),
               ("errorCode", code), ("property", prop), ("indexes", [index] if index is not None else []))


def _assigned(store, de, ou):
    # type: (Dict[str, Any], str, str) -> bool
    for data_set in store["objects"]["dataSets"].values():
        des = {(e.get("dataElement") or {}).get("id") for e in data_set.get("dataSetElements") or ()}
        ous = {u.get("id") for u in data_set.get("organisationUnits") or () if isinstance(u, dict)}
        if de in des and ou in ous:
            return True
    return False


@route("POST", r"dataValueSets")
def post_data_value_sets(api, req):
    # type: (_Api, _Request) -> _Response
    body = req.json()
    if not isinstance(body, dict):
        raise _HttpError(400, "JSON parse error: a data value set is required")
    dry_run = _flag(req, "dryRun", False)
    strategy = (req.arg("importStrategy") or "CREATE_AND_UPDATE").upper()
    counts = collections.OrderedDict(
        [("imported", 0), ("updated", 0), ("ignored", 0), ("deleted", 0)])  # type: collections.OrderedDict[str, int]
    conflicts = []  # type: List[Dict[str, Any]]
    with api.state.lock:
        store = _store(api.state)
        forced = store["conflict_next"] > 0
        if forced:
            store["conflict_next"] -= 1
        known_des = set(api.state.data_elements) | set(store["objects"]["dataElements"])
        writes = []  # type: List[Tuple[Tuple[str, str, str], str]]
        for index, raw in enumerate(body.get("dataValues") or ()):
            raw = raw if isinstance(raw, dict) else {}
            de = str(raw.get("dataElement") or body.get("dataElement") or "")
            pe = str(raw.get("period") or body.get("period") or "")
            ou = str(raw.get("orgUnit") or body.get("orgUnit") or "")
            value = raw.get("value")
            problem = None  # type: Optional[Tuple[Optional[str], str, str, str]]
            if forced and index == 0:
                sets = [uid for uid, d in store["objects"]["dataSets"].items()
                        if de in {(e.get("dataElement") or {}).get("id") for e in d.get("dataSetElements") or ()}]
                problem = (pe, "Period: `%s` is not open for this data set at this time: `%s`"
                           % (pe, sets[0] if sets else "?"), "E7643", "period")
            elif de not in known_des:
                problem = (de, "Data element not found or not accessible: `%s`" % de, "E7610", "dataElement")
            elif not re.match(r"^\d{8}$", pe):
                problem = (pe, "Period not valid: `%s`" % pe, "E7611", "period")
            elif ou not in api.state.org_units:
                problem = (ou, "Organisation unit not found or not accessible: `%s`" % ou, "E7612", "orgUnit")
            elif value is None or not re.match(r"^\d+$", str(value)):
                problem = (de, "Value must match value type of data element `%s`: `%s`" % (de, value), "E7619",
                           "value")
            elif not _assigned(store, de, ou):
                problem = (de, "Data element: `%s` must be assigned through data sets to organisation unit: `%s`"
                           % (de, ou), "E7636", "dataElement")
            if problem is not None:
                counts["ignored"] += 1
                conflicts.append(_conflict(api, problem[0], problem[1], problem[2], problem[3], index))
                continue
            key = (de, pe, ou)
            old = store["values"].get(key)
            if old is None:
                if strategy == "UPDATE":
                    counts["ignored"] += 1
                    continue
                counts["imported"] += 1
            elif strategy == "CREATE":
                counts["ignored"] += 1
                continue
            elif old["value"] == str(value) and api.f["unchanged_values_ignored"]:
                counts["ignored"] += 1
                continue
            else:
                counts["updated"] += 1
            writes.append((key, str(value)))
        if not dry_run:
            for key, value in writes:
                store["values"][key] = {"value": value, "storedBy": req.user, "at": req.now}
    status = "WARNING" if conflicts else "SUCCESS"
    options = _od(("idSchemes", {}), ("dryRun", dry_run), ("async", False), ("importStrategy", strategy),
                  ("mergeMode", "REPLACE"), ("skipExistingCheck", False), ("sharing", False))
    summary = _od(("responseType", "ImportSummary"), ("status", status), ("importOptions", options),
                  ("description", "Import process completed successfully"), ("importCount", counts),
                  ("conflicts", conflicts), ("dataSetComplete", "false"))
    if _plain(api, req):
        return _Response.json(summary)
    if conflicts:
        return _Response.json(_web_message(409, "One more conflicts encountered, please check import summary.",
                                           status="WARNING", response=summary), 409)
    return _Response.json(_web_message(200, "Import was successful.", response=summary))


@route("GET", r"dataValueSets")
def get_data_value_sets(api, req):
    # type: (_Api, _Request) -> _Response
    data_set = req.arg("dataSet")
    periods = req.query.get("period", [])
    units = req.query.get("orgUnit", [])
    if not data_set:
        raise _HttpError(409, "At least one data set must be specified", error_code="E2000")
    if not periods and not (req.arg("startDate") and req.arg("endDate")):
        raise _HttpError(409, "At least one period, start/end dates, last updated or last updated duration "
                              "must be specified", error_code="E2002")
    if not units:
        raise _HttpError(409, "At least one organisation unit or organisation unit group must be specified",
                         error_code="E2003")
    start, end = (req.arg("startDate") or "").replace("-", ""), (req.arg("endDate") or "").replace("-", "")
    with api.state.lock:
        store = _store(api.state)
        ds = store["objects"]["dataSets"].get(data_set)
        if ds is None:
            raise _HttpError(409, "Data set not found or not accessible: `%s`" % data_set, error_code="E7600")
        des = {(e.get("dataElement") or {}).get("id") for e in ds.get("dataSetElements") or ()}
        values = []
        for (de, pe, ou), held in store["values"].items():
            if de not in des or ou not in units:
                continue
            if periods and pe not in periods:
                continue
            if not periods and not (start <= pe <= end):
                continue
            values.append(_od(("dataElement", de), ("period", pe), ("orgUnit", ou),
                              ("categoryOptionCombo", _DEFAULT_COC), ("attributeOptionCombo", _DEFAULT_COC),
                              ("value", held["value"]), ("storedBy", held["storedBy"]), ("followup", False)))
    return _Response.json(_od(("dataSet", data_set), ("period", periods[0] if len(periods) == 1 else None),
                              ("orgUnit", units[0] if len(units) == 1 else None), ("dataValues", values)))
