"""The stand-in's one route registry, and the ``api`` object every handler gets.

A route family is a module of handlers registered with :func:`route`::

    from ._standin_http import _Request, _Response
    from ._standin_routes import MAINT, _Api, route

    @route("POST PUT", r"maintenance/([A-Za-z]+)", authority=MAINT)
    def maintenance_op(api, req, op):
        # type: (_Api, _Request, str) -> _Response
        ...

plus one import line in testing.py (``from . import _standin_x  # noqa: F401``);
nothing else changes when a family is added.

A handler is called as ``handler(api, req, *groups) -> _Response``:

``api``     the :class:`_Api` of the stand-in that got the request: ``api.owner`` (the
            :class:`~dhis2maint.testing.Dhis2StandIn` and its knobs), ``api.state`` (its
            ``_standin_state._State``; hold ``api.state.lock`` while reading or changing it),
            ``api.f`` (its version's row of ``_standin_versions._VERSION_FEATURES``) and the
            helpers several families share (:meth:`_Api.require`, :meth:`_Api.job_reply`, ...);
``req``     the :class:`~dhis2maint._standin_http._Request` (method, path, query, body,
            the authenticated ``user``, ``now`` on the wall clock);
``groups``  the pattern's groups, as strings.

It returns a :class:`~dhis2maint._standin_http._Response` or raises
:class:`~dhis2maint._standin_http._HttpError` (sent as a DHIS2 WebMessage).

How a request finds its handler (:meth:`_Api.handle`): the login page and non-/api
paths first, then authentication (401, or 302 with ``login_redirect``); the path after
``/api/`` loses an ``NN/`` version prefix and a ``.json`` suffix; routes are tried in
registration order (import order of the families, then order in the module).  A route
whose pattern matches the whole path, whose ``feature`` this version has and whose
methods include the request's wins: its ``authority`` is checked (403), the simulated
jobs are advanced to ``req.now``, and the handler answers.  A path that only matched
routes of other methods is a 405 with ``Allow``; nothing matched is a 404.

Standard library only; part of :mod:`dhis2maint.testing`.
"""
import base64
import binascii
import re
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Pattern, Tuple, TypeVar

from ._standin_http import (_LOGIN_PAGE, _UID_RE, _HttpError, _Request, _Response, _fmt_time, _od,
                            _web_message)
from ._standin_state import _Job, _State

__all__ = ["route", "ROUTES", "ANY", "MAINT", "PREDICT", "VALIDATE", "ALL_ONLY"]

# authorities a route may require (one of them)
MAINT = ("ALL", "F_PERFORM_MAINTENANCE")
PREDICT = ("ALL", "F_PREDICTOR_RUN")
VALIDATE = ("ALL", "F_RUN_VALIDATION")
ALL_ONLY = ("ALL",)

ANY = "GET POST PUT DELETE PATCH"  # every method the stand-in serves

Handler = Callable[..., _Response]
_Fn = TypeVar("_Fn", bound=Callable[..., Any])


class Route(NamedTuple):
    """One registered route."""

    methods: Tuple[str, ...]
    regex: Pattern[str]
    handler: Handler
    authority: Optional[Tuple[str, ...]]
    feature: Optional[str]


ROUTES = []  # type: List[Route]


def route(methods, pattern, authority=None, feature=None):
    # type: (str, str, Optional[Tuple[str, ...]], Optional[str]) -> Callable[[_Fn], _Fn]
    """Decorator: register ``handler(api, req, *groups) -> _Response`` for `methods`
    (space separated, or :data:`ANY`) and `pattern`, a regex over the whole path after
    /api/.  `authority`: the user needs one of these (else 403).  `feature`: a row of
    the version table this version must have (else the route does not exist here)."""
    def register(fn):
        # type: (_Fn) -> _Fn
        ROUTES.append(Route(tuple(methods.split()), re.compile("^" + pattern + "$"), fn, authority, feature))
        return fn
    return register


class _Api(object):
    """What every handler gets: the stand-in, its state and version row, the dispatcher and
    the helpers several route families share."""

    def __init__(self, owner):
        # type: (Any) -> None
        self.owner = owner
        self.state = owner._state  # type: _State
        self.f = owner._features  # type: Dict[str, Any]

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
        allowed = []  # type: List[str]
        for methods, regex, fn, authority, feature in ROUTES:
            match = regex.match(rest)
            if not match or (feature and not self.has(feature)):
                continue
            if req.method not in methods:
                allowed.extend(methods)
                continue
            if authority:
                self.require(req.user, authority)
            with self.state.lock:
                self.state.advance(req.now)
            return fn(self, req, *match.groups())
        if allowed:
            raise _HttpError(405, "Request method '%s' is not supported" % req.method,
                             headers=[("Allow", ", ".join(sorted(set(allowed))))])
        raise _HttpError(404, "No endpoint %s %s" % (req.method, path))

    def has(self, feature):
        # type: (str) -> bool
        """This version has `feature` (a row of the version table, or integrity_list/_sets)."""
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

    # -- helpers shared by route families ----------------------------------------
    def require(self, user, authorities):
        # type: (str, Tuple[str, ...]) -> None
        """403 unless `user` has one of `authorities`."""
        have = set(self.owner.authorities_of(user))
        if not have.intersection(authorities):
            raise _HttpError(403, "Access is denied, requires one Authority from [%s]" % ", ".join(authorities))

    def take_conflict(self, req, integrity):
        # type: (_Request, bool) -> None
        """Answer 409 if conflict_next() asked for it."""
        with self.state.lock:
            if self.state.conflicts > 0:
                self.state.conflicts -= 1
                msg = "Data integrity check is already running" if integrity else "Job is already running."
                raise _HttpError(409, msg, error_code="E1004")

    def job_reply(self, req, job, location=None):
        # type: (_Request, _Job, Optional[str]) -> _Response
        """The WebMessage a job start answers, with its JobConfiguration."""
        response = _od(("responseType", "JobConfiguration" if self.f["response_type"] else None),
                       ("name", job.name), ("id", job.id), ("created", _fmt_time(job.created)),
                       ("jobType", job.job_type), ("jobStatus", self.f["created_job_status"]),
                       ("jobParameters", job.params),
                       ("relativeNotifierEndpoint", "/api/system/tasks/%s/%s" % (job.job_type, job.id)))
        headers = [("Location", location)] if location else []
        return _Response.json(_web_message(200, "Initiated " + job.name, response=response), headers=headers)

    def job_id(self, raw):
        # type: (str) -> str
        """A job id from the path (a UID on versions that check it, else 400)."""
        if self.f["uid_job_ids"] and not _UID_RE.match(raw):
            raise _HttpError(400, "Value '%s' is not valid for parameter uid. UID must be an alphanumeric string "
                                  "of 11 characters starting with a letter." % raw)
        return raw

    @staticmethod
    def listing(req, key, items):
        # type: (_Request, str, List[Any]) -> _Response
        """A metadata list: ``{"pager": ..., key: [...]}``, or without pager when paging=false."""
        if (req.arg("paging") or "").lower() == "false":
            return _Response.json(_od((key, items)))
        pager = _od(("page", 1), ("total", len(items)), ("pageSize", 50), ("pageCount", 1))
        return _Response.json(_od(("pager", pager), (key, items[:50])))
