"""Stand-in routes: the system and the user (/api/system/info, /api/system/ping,
/api/me, /api/me/authorities).

Part of :mod:`dhis2maint.testing`; handlers as described in ``_standin_routes``.
"""
import collections
import time

from ._standin_http import _Request, _Response, _filter_fields, _fmt_time, _od, _uid_from
from ._standin_routes import ANY, _Api, route


@route("GET", r"system/info")
def system_info(api, req):
    # type: (_Api, _Request) -> _Response
    owner = api.owner
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


@route("GET", r"system/ping")
def system_ping(api, req):
    # type: (_Api, _Request) -> _Response
    return _Response(200, b"pong", "text/plain;charset=UTF-8")


@route("GET", r"me")
def me(api, req):
    # type: (_Api, _Request) -> _Response
    user = req.user
    auths = sorted(api.owner.authorities_of(user))
    full = _od(("id", _uid_from("user", user)), ("displayName", user.title()), ("name", user.title()),
               ("firstName", user.title()), ("surname", "Admin"))
    if api.f["me_username"]:  # MeDto: top-level username (ctl/user/MeDto.java@2.38)
        full["username"] = user
    if api.f["me_user_credentials"]:  # userCredentials: the only username on 2.36 (User.java@2.36:300)
        full["userCredentials"] = _od(("username", user))
    wanted = req.fields()
    if wanted is None or "authorities" in wanted:
        full["authorities"] = auths
    if wanted and "organisationUnits" in wanted:  # data capture org units (#25): the root by default
        units = getattr(api.state, "user_org_units", None) or list(api.state.org_units)[:1]
        full["organisationUnits"] = [_od(("id", u), ("path", api.state.org_units[u]["path"]))
                                     for u in units if u in api.state.org_units]
    if wanted:
        full = collections.OrderedDict((k, v) for k, v in full.items() if k in wanted)
    return _Response.json(full)


@route("GET", r"me/(?:authorities|authorization)")
@route(ANY, r"me/(?:authorities|authorization)", feature="me_any_method")
def me_authorities(api, req):
    # type: (_Api, _Request) -> _Response
    return _Response.json(sorted(api.owner.authorities_of(req.user)))
