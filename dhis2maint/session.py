"""``dhis2maint.Session``: a :class:`requests.Session` that knows where DHIS2 is.

The session owns its defaults -- base URL, user agent, a timeout on every
request, TLS verification, retries of idempotent requests through urllib3's
``Retry`` -- and the small request helpers the feature mixins (integrity.py,
jobs.py) use.  Those helpers are the only place a response becomes JSON or an
exception.
"""
import json
import logging
import math
import os
import random
import re
import socket
import threading
import time
import zlib
from http.client import HTTPException
from typing import (TYPE_CHECKING, Any, Callable, Container, Dict, Generator, Iterable,
                    Iterator, Mapping, Optional, Set, Tuple, Type, TypeVar, Union)
from urllib.parse import quote, urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase, HTTPBasicAuth
from urllib3.util.retry import Retry

from . import __version__
from .errors import (AuthenticationError, ConfigurationError, InvalidResponseError,
                     TransportError, error_for_response, is_login_page)
from .convert import NonFiniteNumber, gc_paused, strict_loads
from . import connections
from .integrity import IntegrityMixin
from .jobs import JobsMixin
from . import versions
from .health import HealthMixin
from .scheduler import SchedulerMixin
from .versions import parse_version

if TYPE_CHECKING:
    from urllib3.response import BaseHTTPResponse

_S = TypeVar("_S", bound="Session")
#: what ``Session._send``/``_json`` take as ``timeout``: seconds, or (connect, read)
_Timeout = Union[float, Tuple[float, float], None]

__all__ = ["Session", "TokenAuth", "BasicAuth"]

log = logging.getLogger("dhis2maint")
# Silent unless the application configures logging (the library convention).
log.addHandler(logging.NullHandler())

DEFAULT_TIMEOUT = 30.0
#: Total time a response body may take (streamed by ``iter_integrity_issues``
#: or read whole), on top of the per-read timeout, so a server trickling bytes
#: cannot hang a scheduler.
DEFAULT_STREAM_DEADLINE = 1800.0
#: Largest DECODED body (bytes) read whole into memory: 256 MiB, room for a
#: 1,000,000-issue details report (~150 MB of JSON).  Bigger bodies raise
#: InvalidResponseError; ``iter_integrity_issues`` streams any size.
DEFAULT_MAX_BODY_BYTES = 256 * 1024 * 1024
#: Cap on the small answers (system info, job starts, WebMessages, error and
#: HTML pages): DHIS2 never sends more; error and HTML pages are cut here.
SMALL_BODY_BYTES = 64 * 1024
#: Seconds a wait keeps polling through an outage (refused connections,
#: timeouts, 502/503/504) before it gives up.
DEFAULT_OUTAGE_GRACE = 900.0
_UID = re.compile(r"^[A-Za-z][A-Za-z0-9]{10}$")
_IDEMPOTENT = frozenset(["GET", "HEAD", "OPTIONS"])
_RETRY_STATUSES = frozenset([429, 502, 503, 504])


class TokenAuth(AuthBase):
    """``Authorization: ApiToken <token>`` (DHIS2 personal access token), or
    ``Bearer <token>`` with ``scheme="Bearer"`` (OAuth2/OIDC).  The repr never
    shows the token."""

    def __init__(self, token: str, scheme: str = "ApiToken") -> None:
        self.token = token
        self.scheme = scheme

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = "{} {}".format(self.scheme, self.token)
        return request

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, TokenAuth)
                and (self.scheme, self.token) == (other.scheme, other.token))

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __repr__(self) -> str:
        return "<TokenAuth scheme={} token=***>".format(self.scheme)


class BasicAuth(HTTPBasicAuth):
    """HTTP basic auth whose repr shows the username only."""

    def __repr__(self) -> str:
        return "<BasicAuth username={!r} password=***>".format(self.username)


class _Retry(Retry):
    """urllib3's Retry, with jitter on the backoff and a cap on Retry-After.

    urllib3 1.26 has no ``backoff_jitter``; overriding these two hooks works
    on 1.25 through 2.x alike.  The cap keeps a proxy's ``Retry-After: 3600``
    from stalling a nightly job for an hour.
    """

    MAX_BACKOFF = 30.0
    MAX_RETRY_AFTER = 60.0

    def get_backoff_time(self) -> float:
        base = super().get_backoff_time()
        if base <= 0:
            return 0
        return min(self.MAX_BACKOFF, base * random.uniform(0.5, 1.5))

    def get_retry_after(self, response: "BaseHTTPResponse") -> Optional[float]:
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.MAX_RETRY_AFTER)


def make_retry(retries: int, backoff_factor: float = 0.5) -> Retry:
    """The Retry policy: idempotent methods only, on connect and read errors and
    429/502/503/504, exponential backoff with jitter, honouring Retry-After.

    Connect errors are retried for every method (nothing was sent); read errors
    and statuses only for GET/HEAD/OPTIONS, so a job-starting POST is sent once.
    """
    kwargs: Dict[str, Any] = dict(total=retries, connect=retries, read=retries, status=retries,
                  redirect=5, status_forcelist=_RETRY_STATUSES, backoff_factor=backoff_factor,
                  respect_retry_after_header=True, raise_on_status=False,
                  raise_on_redirect=False)
    try:
        return _Retry(allowed_methods=_IDEMPOTENT, **kwargs)
    except TypeError:  # urllib3 < 1.26 names it method_whitelist
        return _Retry(method_whitelist=_IDEMPOTENT, **kwargs)  # type: ignore[call-arg]


def _normalise_base_url(base_url: str, source: Optional[str] = None,
                        ) -> Tuple[str, Optional[Tuple[str, str]]]:
    """``https://host/dhis/`` or ``…/dhis/api`` or ``…/api/42`` -> (``https://host/dhis``,
    userinfo credentials or None).  Errors say to check ``source`` (default DHIS2_URL)."""
    check = source or "DHIS2_URL"
    if not base_url or not isinstance(base_url, str):
        raise ConfigurationError("a DHIS2 base URL is required, e.g. https://dhis2.example.org "
                                 "({})".format("set DHIS2_URL" if source is None else
                                                "check " + source))
    text = base_url.strip()
    if "://" not in text:
        raise ConfigurationError(
            "DHIS2 URL {!r} has no scheme; use https://… (check {})".format(
                _hide_userinfo(text), check))
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            "DHIS2 URL must be http:// or https:// with a host (check {})".format(check))
    path = parts.path.rstrip("/")
    segments = path.split("/")
    if len(segments) >= 2 and segments[-1].isdigit() and segments[-2] == "api":
        segments = segments[:-1]
    if segments and segments[-1] == "api":
        segments = segments[:-1]
    path = "/".join(segments)
    creds = None
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        from urllib.parse import unquote

        creds = (unquote(user), unquote(password))
    return urlunsplit((parts.scheme, netloc, path, "", "")), creds


def _hide_userinfo(text: str) -> str:
    """``user:secret@host/x`` -> ``***@host/x``: a URL fit for an error message."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)?[^/@]*@", lambda m: (m.group(1) or "") + "***@",
                  text)


_warned_insecure = set()  # type: Set[Optional[str]]


class Session(IntegrityMixin, JobsMixin, SchedulerMixin, HealthMixin, requests.Session):
    """A connection to one DHIS2 server.

    ``Session("https://dhis2.example.org", token="d2pat_…")`` or
    ``Session(url, auth=("admin", "district"))``.  ``base_url`` may end in
    ``/``, ``/api`` or ``/api/42``.  Every method takes paths relative to
    ``/api``.

    :param auth: ``(username, password)`` for HTTP basic auth, or any requests auth.
    :param token: a personal access token, sent as ``Authorization: ApiToken …``;
        with ``bearer=True`` sent as ``Bearer …`` (an OAuth2/OIDC access token).
    :param timeout: seconds for connect and for each read, on every request
        unless a call passes its own ``timeout``.
    :param verify: TLS verification (``True``), a CA bundle path, or ``False``
        (logs a warning).  ``REQUESTS_CA_BUNDLE`` is honoured as in requests.
    :param retries: how often idempotent requests (GET/HEAD/OPTIONS) are retried
        on connection errors and 429/502/503/504.  POSTs that start jobs are
        never re-sent.
    :param stream_deadline: total seconds any response body may take to arrive,
        on top of the per-read ``timeout`` (streamed issues and whole reports
        alike), so a server trickling bytes cannot hang a scheduler.
    :param max_body_bytes: the largest decoded body read whole (default
        :data:`DEFAULT_MAX_BODY_BYTES`, 256 MiB); more raises
        :class:`InvalidResponseError`.  Streamed issues are not capped.
    :param outage_grace: seconds the waits (``wait_for_task``, ``Job.wait``,
        ``run_integrity_checks``, ``wait_for_coc_generation``) keep polling
        while DHIS2 is unreachable or its proxy answers 502/503/504 (default
        900; 0 = fail at once).  Nothing is re-sent; the wait's own timeout
        still wins.
    :param recover_job_starts: opt-in.  When the answer to a job-starting POST
        is lost (timeout or broken connection after sending), look in DHIS2's
        task feed for a job of that type that was not there before the POST and,
        if exactly one appeared, return it instead of raising.  Costs one extra
        ``GET /api/system/tasks/{jobType}`` per job start.  See
        :meth:`JobsMixin._start_job`.
    :param source: where the URL and credentials came from, as error hints
        should name it ("the Airflow Connection 'dhis2_default'"); ``None``:
        hints name the ``DHIS2_*`` environment variables.  The ``from_*``
        constructors set it.
    """

    __attrs__ = requests.Session.__attrs__ + [
        "base_url", "timeout", "retries", "stream_deadline", "recover_job_starts",
        "_server_version", "source", "max_body_bytes", "outage_grace",
    ]

    base_url: str
    timeout: float
    stream_deadline: float
    retries: int
    recover_job_starts: bool
    source: Optional[str]
    max_body_bytes: int
    outage_grace: float

    def __init__(self, base_url: str,
                 auth: Union[Tuple[str, str], AuthBase,
                             Callable[[requests.PreparedRequest], requests.PreparedRequest],
                             None] = None,
                 token: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT,
                 verify: Union[bool, str] = True, retries: int = 3,
                 user_agent: Optional[str] = None, bearer: bool = False,
                 stream_deadline: float = DEFAULT_STREAM_DEADLINE,
                 recover_job_starts: bool = False, source: Optional[str] = None,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 outage_grace: float = DEFAULT_OUTAGE_GRACE) -> None:
        super().__init__()
        self.source = source  # type: Optional[str]
        base, url_creds = _normalise_base_url(base_url, source)
        if token is not None and auth is not None:
            raise ConfigurationError("give either auth=(username, password) or token=, not both")
        if url_creds and (auth is not None or token is not None):
            raise ConfigurationError("the URL carries credentials and auth/token is given too")
        if url_creds:
            auth = url_creds
        if token is not None:
            if not isinstance(token, str) or not token.strip():
                raise ConfigurationError("token must be a non-empty string (check {})".format(
                    source or "DHIS2_PAT"))
            auth = TokenAuth(token.strip(), "Bearer" if bearer else "ApiToken")
        elif isinstance(auth, tuple):
            if len(auth) != 2 or not all(isinstance(p, str) for p in auth):
                raise ConfigurationError("auth must be a (username, password) pair of strings")
            auth = BasicAuth(*auth)
        self.auth = auth
        self.base_url = base
        self.timeout = _check_timeout(timeout, "timeout")
        self.stream_deadline = _check_timeout(stream_deadline, "stream_deadline")
        self.max_body_bytes = _check_size(max_body_bytes, "max_body_bytes")
        self.outage_grace = _check_timeout(outage_grace, "outage_grace", zero_ok=True)
        self.retries = int(retries)
        self.verify = verify
        self.recover_job_starts = bool(recover_job_starts)
        self.headers["User-Agent"] = user_agent or "dhis2maint/{} {}".format(
            __version__, requests.utils.default_user_agent())
        self.headers["Accept"] = "application/json"
        # Only what body_chunks can inflate in bounded steps (no br/zstd).
        self.headers["Accept-Encoding"] = "gzip, deflate"
        self._server_version = None  # type: Optional[Tuple[int, ...]]
        self._mount_adapters()
        self._warn_about_settings()

    def _mount_adapters(self) -> None:
        adapter_retry = make_retry(self.retries)
        for prefix in ("https://", "http://"):
            self.mount(prefix, HTTPAdapter(max_retries=adapter_retry))

    def _warn_about_settings(self) -> None:
        host = urlsplit(self.base_url).hostname
        if self.verify is False and host not in _warned_insecure:
            _warned_insecure.add(host)
            log.warning("TLS verification is off for %s: anyone on the network can read "
                        "and change what is sent", host)
        if self.base_url.startswith("http://") and self.auth is not None \
                and host not in ("localhost", "127.0.0.1", "::1"):
            log.warning("credentials are sent without TLS to %s (http://); use https://", host)

    # --- construction from the environment ---------------------------------

    @classmethod
    def from_env(cls: Type[_S], environ: Optional[Mapping[str, str]] = None,
                 **kwargs: Any) -> _S:
        """A session from ``DHIS2_URL`` and either ``DHIS2_PAT`` or
        ``DHIS2_USERNAME`` + ``DHIS2_PASSWORD`` (optional ``DHIS2_TIMEOUT``, seconds).

        Raises :class:`ConfigurationError` naming the missing or contradictory
        variable.  Keyword arguments override or add to what the environment gives.
        """
        env = os.environ if environ is None else environ
        url = env.get("DHIS2_URL", "").strip()
        if not url:
            raise ConfigurationError("DHIS2_URL is not set (e.g. https://dhis2.example.org)")
        token = env.get("DHIS2_PAT", "").strip() or None
        username = env.get("DHIS2_USERNAME", "").strip() or None
        password = env.get("DHIS2_PASSWORD")
        if token and username:
            raise ConfigurationError(
                "both DHIS2_PAT and DHIS2_USERNAME are set; unset one of them")
        if username and not password:
            raise ConfigurationError("DHIS2_USERNAME is set but DHIS2_PASSWORD is not")
        if password and not username and not token:
            raise ConfigurationError("DHIS2_PASSWORD is set but DHIS2_USERNAME is not")
        if "token" not in kwargs and "auth" not in kwargs:
            if token:
                kwargs["token"] = token
            elif username:
                kwargs["auth"] = (username, password)
            elif "@" not in url:
                raise ConfigurationError(
                    "no credentials: set DHIS2_PAT, or DHIS2_USERNAME and DHIS2_PASSWORD")
        timeout = env.get("DHIS2_TIMEOUT", "").strip()
        if timeout and "timeout" not in kwargs:
            try:
                kwargs["timeout"] = float(timeout)
            except ValueError:
                raise ConfigurationError(
                    "DHIS2_TIMEOUT must be a number of seconds, got {!r}".format(timeout)) from None
        try:
            return cls(url, **kwargs)
        except ConfigurationError as exc:
            if "timeout" in str(exc) and timeout:
                raise ConfigurationError("DHIS2_TIMEOUT: " + str(exc)) from None
            raise

    @classmethod
    def _accepted_settings(cls):
        # type: () -> frozenset
        """The keyword arguments this class's constructor takes (so a setting a
        newer Session adds, like ``outage_grace``, is passed only when it exists)."""
        import inspect

        return frozenset(inspect.signature(cls.__init__).parameters)

    @classmethod
    def _from_settings(cls, base_url, found, settings, source, missing):
        # type: (str, dict, dict, str, str) -> Session
        """``cls(base_url, **found)`` with ``settings`` (the caller's) taking precedence;
        ``missing`` is the message when neither gives credentials."""
        kwargs = dict(found)
        if "token" in settings or "auth" in settings:
            kwargs.pop("token", None)
            kwargs.pop("auth", None)
        kwargs.update(settings)
        kwargs.setdefault("source", source)
        if kwargs.get("token") is None and kwargs.get("auth") is None:
            raise ConfigurationError(missing)
        return cls(base_url, **kwargs)

    @classmethod
    def from_uri(cls, uri, **settings):
        # type: (str, **Any) -> Session
        """A session from one URI: ``https://user:password@host:port/context?setting=value``.

        * ``https://admin:district@dhis2.example.org/dhis`` -- basic auth;
        * ``https://:d2pat_…@dhis2.example.org`` -- a password without a user is a
          personal access token (with ``?bearer=true`` an OAuth2 bearer token);
        * user and password are URL-decoded (``%40`` for ``@``, ``%3A`` for ``:``);
        * query parameters are settings, converted strictly: ``timeout``,
          ``stream_deadline`` (seconds), ``retries`` (0 or more), ``verify``
          (true/false or a CA bundle path), ``bearer``, ``recover_job_starts``
          (true/false), ``user_agent``; an unknown one is a
          :class:`ConfigurationError` naming it.

        Keyword arguments are Session arguments and take precedence over the
        URI's.  The URI is never logged, and errors never repeat its credentials.
        No credentials (in the URI or as ``token=``/``auth=``) ->
        :class:`ConfigurationError`.
        """
        base, found = connections.settings_from_uri(uri, cls._accepted_settings())
        return cls._from_settings(
            base, found, settings, "the DHIS2 URI",
            "the DHIS2 URI has no credentials: use https://:TOKEN@host/… for a personal "
            "access token or https://USER:PASSWORD@host/…")

    @classmethod
    def from_airflow_connection(cls, conn_or_id="dhis2_default", **settings):
        # type: (Any, **Any) -> Session
        """A session from an Apache Airflow Connection, or its id.

        ``conn_or_id`` is a Connection object (anything with ``host``,
        ``schema``, ``port``, ``login``, ``password``, ``extra_dejson`` and
        ``conn_type``) or a connection id, looked up when called through
        Airflow's API (``airflow.sdk.BaseHook`` on Airflow 3,
        ``airflow.hooks.base.BaseHook`` on 2): the metadata database,
        ``AIRFLOW_CONN_<ID>`` or a secrets backend.  ``import dhis2maint``
        never imports Airflow.

        * Host: ``dhis2.example.org`` or ``https://dhis2.example.org/dhis`` (a
          context path is kept); Port is used even when Host has a scheme.
        * Scheme: from Host; else Schema when ``http``/``https``; else the
          connection type when ``http``/``https``; else https.  Any other Schema
          is the context path (a connection URI's path lands there).
        * Login + Password: basic auth.  Password alone: a personal access token.
        * Extra (JSON): ``timeout``, ``verify`` (true/false or a CA bundle path),
          ``ca_bundle``, ``bearer``, ``retries``, ``recover_job_starts``,
          ``stream_deadline`` and ``outage_grace`` where this Session has it;
          unknown keys are errors.

        No credentials -> :class:`ConfigurationError` naming the connection id.
        Keyword arguments are Session arguments and take precedence.  Only the
        Connection counts: ``DHIS2_URL`` and the other ``DHIS2_*`` variables are
        not read.  Error hints name the connection.
        """
        if isinstance(conn_or_id, str):
            conn_id = conn_or_id
            conn = connections.get_airflow_connection(conn_id)
        else:
            conn = conn_or_id
            conn_id = getattr(conn, "conn_id", None) or "?"
        base, found = connections.settings_from_connection(conn, cls._accepted_settings(),
                                                           conn_id)
        return cls._from_settings(
            base, found, settings, "the Airflow Connection {!r}".format(conn_id),
            "the Airflow Connection {!r} has no credentials: put a personal access token "
            "in Password (Login empty), or a Login and Password".format(conn_id))

    @classmethod
    def from_auth_file(cls, path, **settings):
        # type: (str, **Any) -> Session
        """A session from the CLI's auth file (``--auth-file``): dhis2.py's
        ``dish.json`` (``{"dhis": {"baseurl", "username", "password"}}``) or
        ``{"url": …, "token": …}``.

        On POSIX the file must not be readable by group or others (``chmod
        600``): :class:`ConfigurationError` otherwise, as for a missing file,
        invalid JSON, no URL or no credentials.  Keyword arguments are Session
        arguments (``timeout=``, ``verify=``, …).
        """
        base, found = connections.settings_from_auth_file(path)
        settings.setdefault("source", "the auth file {}".format(path))
        return cls._from_settings(base, found, settings, settings["source"], "")

    # --- requests.Session behaviour -----------------------------------------

    def request(self, method: Union[str, bytes], url: Union[str, bytes],
                *args: Any, **kwargs: Any) -> requests.Response:
        """requests' ``request()``, with the session's timeout when none is given.

        The session's ``verify`` is passed explicitly: requests would otherwise let
        ``REQUESTS_CA_BUNDLE`` override ``verify=False`` or ``verify="/path/ca.pem"``;
        here the environment's bundle applies only when ``verify`` is ``True``.
        """
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        if kwargs.get("verify") is None:
            kwargs["verify"] = self.verify
        return super().request(method, url, *args, **kwargs)

    def __repr__(self) -> str:
        return "<dhis2maint.Session {} auth={}>".format(self.base_url, self.auth_kind)

    @property
    def auth_kind(self) -> str:
        """``"basic"``, ``"token"``, ``"bearer"``, ``"none"`` or the auth class name."""
        auth = self.auth
        if auth is None:
            return "none"
        if isinstance(auth, TokenAuth):
            return "bearer" if auth.scheme == "Bearer" else "token"
        if isinstance(auth, (HTTPBasicAuth, tuple)):
            return "basic"
        return type(auth).__name__

    def __setstate__(self, state: Dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[misc]  # not in requests' stubs
        self._server_version = state.get("_server_version")
        self.recover_job_starts = bool(state.get("recover_job_starts", False))
        self.source = state.get("source")
        self.max_body_bytes = state.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)
        self.outage_grace = state.get("outage_grace", DEFAULT_OUTAGE_GRACE)

    def get_redirect_target(self, resp: requests.Response) -> Optional[str]:
        """requests' hook: follow a redirect only when it stays on the same scheme,
        host and port (its body read up to 64 KiB); :meth:`_send` turns any other
        into an error naming it."""
        target = super().get_redirect_target(resp)
        if target is None:
            return None
        if not _same_origin(resp.url, _absolute(resp.url, target)):
            return None
        # requests reads a followed redirect's body whole: read at most 64 KiB of it here.
        method = getattr(resp.request, "method", None) or "GET"
        _read_body(resp, "{} redirect".format(method), method, self.stream_deadline,
                   SMALL_BODY_BYTES, truncate=True)
        return target

    # --- the transport helpers the feature mixins use -------------------------

    def api_url(self, path: str) -> str:
        """The absolute URL of ``/api/<path>``."""
        return "{}/api/{}".format(self.base_url, path.lstrip("/"))

    @staticmethod
    def _segment(value: object, what: str = "path parameter") -> str:
        """One URL path segment, quoted so ``../users`` stays a single segment."""
        text = str(value)
        if not text or text in (".", ".."):
            raise ValueError("invalid {}: {!r}".format(what, value))
        return quote(text, safe="")

    @staticmethod
    def _uid(value: object, what: str = "UID") -> str:
        """``value`` if it is a DHIS2 UID (a letter, then 10 letters or digits),
        else :class:`ValueError` naming ``what``."""
        if not isinstance(value, str) or not _UID.match(value):
            raise ValueError("{} must be a DHIS2 UID (11 characters: a letter, then letters "
                             "or digits), got {!r}".format(what, value))
        return value

    def _send(self, method: str, path: str, params: Any = None, json_body: Any = None,
              timeout: _Timeout = None, stream: bool = False,
              headers: Optional[Dict[str, str]] = None,
              ok_statuses: Optional[Container[int]] = None,
              max_bytes: Optional[int] = None) -> requests.Response:
        """Send one request to ``/api/<path>``; return the response or raise.

        Requests exceptions become :class:`TransportError`; HTTP errors the
        :class:`ApiError` subclass for their status; an HTML login page where
        the API should answer becomes :class:`AuthenticationError`.  Unless
        ``stream``, the whole body is read here within ``stream_deadline``
        (:class:`TransportError` when overrun, :class:`InvalidResponseError`
        when it breaks off); with ``stream`` the caller reads it.

        Bodies read here are capped on their decoded size: ``max_bytes``
        (default ``max_body_bytes``) for a JSON answer -- more is an
        :class:`InvalidResponseError` --, and :data:`SMALL_BODY_BYTES` for
        redirects, error statuses and HTML pages, which are cut there (also
        with ``stream``).  A redirect to another scheme, host or port is not
        followed: :class:`InvalidResponseError` naming the target.
        """
        api_path = "/api/" + path.lstrip("/")
        what = "{} {}".format(method, api_path)
        started = time.monotonic()
        try:
            # Always streamed at the requests level, so a non-streamed body can be
            # read here under the stream_deadline (requests has no total deadline).
            response = self.request(method, self.api_url(path), params=params, json=json_body,
                                    timeout=timeout, stream=True, headers=headers)
        except requests.exceptions.RequestException as exc:
            raise _transport_error(exc, what, method, self.retries, self.source) from exc
        status = response.status_code
        small = status >= 300 or "html" in response.headers.get("Content-Type", "").lower()
        if small and not (stream and ok_statuses and status in ok_statuses):
            _read_body(response, what, method, self.stream_deadline, SMALL_BODY_BYTES,
                       truncate=True)
        elif not stream:
            _read_body(response, what, method, self.stream_deadline,
                       self.max_body_bytes if max_bytes is None else max_bytes)
        log.debug("%s -> %s in %.0f ms", what, response.status_code,
                  (time.monotonic() - started) * 1000)
        if response.status_code >= 400 and not (ok_statuses and response.status_code in ok_statuses):
            try:
                raise error_for_response(response, method, api_path, self.source)
            finally:
                response.close()
        if 300 <= response.status_code < 400:
            response.close()
            location = response.headers.get("Location", "")
            if "login" in location.lower():
                raise AuthenticationError(
                    "{} -> redirected to the DHIS2 login page: not authenticated; {}".format(
                        what, AuthenticationError.hint_for(self.source)),
                    status_code=response.status_code, method=method, path=api_path,
                    request=response.request, response=response)
            if location:
                raise _redirect_error(response, what, location, api_path)
            raise InvalidResponseError("{} -> unexpected redirect (HTTP {})".format(
                what, response.status_code), request=response.request, response=response)
        if is_login_page(response):
            response.close()
            raise AuthenticationError(
                "{} -> DHIS2's HTML login page instead of JSON: not authenticated; {}".format(
                    what, AuthenticationError.hint_for(self.source)),
                status_code=response.status_code, method=method, path=api_path,
                request=response.request, response=response)
        return response

    def _json(self, method: str, path: str, params: Any = None, json_body: Any = None,
              timeout: _Timeout = None,
              expect: Union[Type[Any], Tuple[Type[Any], ...], None] = None,
              allow_empty: bool = False, max_bytes: Optional[int] = None) -> Any:
        """Send, then decode the JSON body.

        ``expect`` is ``dict``, ``list`` or a tuple of them: a body of another
        shape raises :class:`InvalidResponseError`.  An empty body gives
        ``None`` when ``allow_empty``, and is an error otherwise.  ``max_bytes``:
        see :meth:`_send`.
        """
        extra = {} if max_bytes is None else {"max_bytes": max_bytes}  # type: Dict[str, Any]
        response = self._send(method, path, params=params, json_body=json_body, timeout=timeout,
                              **extra)
        return decode_json(response, "{} /api/{}".format(method, path.lstrip("/")),
                           expect=expect, allow_empty=allow_empty)

    def _body_chunks(self, response: requests.Response, what: str,
                     started: Optional[float] = None) -> Generator[bytes, None, None]:
        """A streamed response's body in chunks, within ``stream_deadline`` of
        ``started`` (see :func:`body_chunks`); for the feature mixins' streams."""
        request = getattr(response, "request", None)
        return body_chunks(response, what, getattr(request, "method", None) or "GET",
                           self.stream_deadline, started)

    @property
    def server_version(self) -> Tuple[int, ...]:
        """The server's DHIS2 version as a tuple, e.g. ``(2, 42, 1)``.

        ``GET /api/system/info`` once, on first use; cached for the session's life.
        """
        if self._server_version is None:
            info = self._json("GET", "system/info", params={"fields": "version"}, expect=dict,
                              max_bytes=SMALL_BODY_BYTES)
            version = info.get("version")
            try:
                self._server_version = parse_version(version)
            except InvalidResponseError:
                raise InvalidResponseError(
                    "GET /api/system/info answered JSON without a DHIS2 version ({}): is "
                    "DHIS2_URL the DHIS2 server itself (not another application, a proxy's "
                    "status page or a health check)?".format(
                        "version {!r}".format(str(version)[:40]) if version is not None
                        else "keys: " + ", ".join(sorted(str(k) for k in info)[:8]) or "{}"),
                ) from None
        return self._server_version

    @server_version.setter
    def server_version(self, value: Union[str, Tuple[int, ...], None]) -> None:
        """Set (or with None, forget) the version, e.g. to skip the request in tests."""
        self._server_version = parse_version(value) if isinstance(value, str) else value

    @property
    def server_version_text(self):
        # type: () -> str
        """The version exactly as the server states it, e.g. ``"2.41.4-SNAPSHOT"``."""
        return versions.version_text(self.server_version)

    @property
    def server_is_snapshot(self):
        # type: () -> bool
        """True for a development build (``-SNAPSHOT``): it has only what the previous
        patch release has, so patch-level (backported) features are gated on that."""
        return bool(getattr(self.server_version, "snapshot", False))


def _check_timeout(value: Union[str, float], name: str, zero_ok: bool = False) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigurationError("{} must be a number of seconds, got {!r}".format(
            name, value)) from None
    if not math.isfinite(value):
        raise ConfigurationError("{} must be a finite number of seconds, got {!r}".format(
            name, value))
    if not (value >= 0 if zero_ok else value > 0):
        raise ConfigurationError("{} must be {} 0 seconds, got {!r}".format(
            name, "at least" if zero_ok else "more than", value))
    return value


def _check_size(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError("{} must be a whole number of bytes (at least 1), got {!r}"
                                 .format(name, value))
    return value


def _origin(url: str) -> Tuple[str, str, Optional[int]]:
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


def _absolute(base: str, target: str) -> str:
    from urllib.parse import urljoin

    return urljoin(base, target)


def _same_origin(url: str, target: str) -> bool:
    return _origin(url) == _origin(target)


def _redirect_error(response: requests.Response, what: str, location: str,
                    api_path: str) -> InvalidResponseError:
    """A redirect that leaves the server: name the target and what to set."""
    target = _hide_userinfo(_absolute(response.url, location))
    parts = urlsplit(target)
    origin = "{}://{}".format(parts.scheme, parts.netloc)
    here = _origin(response.url)
    downgrade = here[0] == "https" and parts.scheme.lower() == "http"
    text = ("{} -> HTTP {} redirect to {} ({}); dhis2maint follows redirects only on the same "
            "scheme, host and port, so credentials and answers stay with the server you named"
            .format(what, response.status_code, target.split("?")[0],
                    "a downgrade from https to http: refusing" if downgrade else
                    "another server"))
    if not downgrade:
        base = origin
        if parts.path.endswith(api_path):
            base += parts.path[:-len(api_path)]
        text += "; if that is where DHIS2 lives, set the URL to {} (DHIS2_URL or --url)".format(
            base)
    err = InvalidResponseError(text, request=response.request, response=response)
    err.location = target  # type: ignore[attr-defined]
    return err


def _transport_error(exc: requests.exceptions.RequestException, what: str, method: str,
                     retries: Optional[int] = None, source: Optional[str] = None,
                     ) -> TransportError:
    """A :class:`TransportError` whose message says what happened and what to check
    (the URL in ``source``, default DHIS2_URL)."""
    exceptions = requests.exceptions
    reason = _retry_reason(exc)
    text = repr(exc) + repr(reason)
    if isinstance(exc, exceptions.TooManyRedirects):
        err = TransportError(
            "{} failed: redirect loop (more than {} redirects); check DHIS2_URL (http:// vs "
            "https://, the context path such as /dhis) and the proxy's rewrite rules".format(
                what, requests.models.DEFAULT_REDIRECT_LIMIT), request=exc.request)
        return err
    if any(marker in text for marker in _HEADER_TROUBLE):
        # http.client refuses a header line over 64 KiB or more than 100 headers.
        err = TransportError(
            "{} failed: the server sent an oversized response header (a line over 64 KiB or "
            "more than 100 headers); check the proxy or load balancer in front of DHIS2 "
            "(cookies, redirect loops adding headers){}".format(
                what, "; the request may have reached DHIS2" if method not in _IDEMPOTENT
                else ""), request=exc.request)
        err.outcome_unknown = method not in _IDEMPOTENT
        return err
    if reason is not None and not isinstance(exc, (exceptions.SSLError, exceptions.ProxyError,
                                                   exceptions.ConnectTimeout)):
        # requests reports "retries used up" as a ConnectionError whatever the
        # last failure was; name the real one.
        gave_up = " (gave up after {} retries)".format(retries) if retries else ""
        if isinstance(reason, urllib3.exceptions.ReadTimeoutError):
            cause = "timed out waiting for DHIS2 to answer" + gave_up
        elif isinstance(reason, urllib3.exceptions.ProtocolError):
            cause = "the connection broke before DHIS2 answered" + gave_up
        elif isinstance(reason, urllib3.exceptions.NewConnectionError):
            cause = ("could not connect (check DHIS2_URL and that DHIS2 is up)" + gave_up)
        else:
            cause = "could not connect or the connection broke (check DHIS2_URL and that " \
                    "DHIS2 is up)" + gave_up
    elif isinstance(exc, exceptions.SSLError) and any(m in text for m in _HANDSHAKE):
        cause = ("TLS failed in the handshake (certificate not trusted, wrong host name, or "
                 "not an https server? check DHIS2_URL, or set verify= to a CA bundle path); "
                 "nothing was sent to DHIS2")
    elif isinstance(exc, exceptions.SSLError):
        cause = "TLS failed (certificate not trusted? set verify= to a CA bundle path)"
    elif isinstance(exc, exceptions.ConnectTimeout):
        cause = "timed out connecting (check DHIS2_URL, the network and the firewall)"
    elif isinstance(exc, exceptions.ReadTimeout):
        cause = "timed out waiting for DHIS2 to answer"
    elif isinstance(exc, exceptions.ProxyError):
        cause = "the proxy refused the connection"
    elif isinstance(exc, exceptions.ConnectionError):
        cause = "could not connect or the connection broke (check DHIS2_URL and that DHIS2 is up)"
    elif isinstance(exc, exceptions.RetryError):
        cause = "gave up after retries"
    elif isinstance(exc, (exceptions.InvalidURL, exceptions.MissingSchema,
                          exceptions.InvalidSchema)):
        cause = "invalid URL (check DHIS2_URL)"
    else:
        cause = type(exc).__name__
    handshake = isinstance(exc, exceptions.SSLError) and any(m in text for m in _HANDSHAKE)
    unknown = method not in _IDEMPOTENT and not handshake and not isinstance(
        exc, exceptions.ConnectTimeout) and _maybe_sent(exc)
    if unknown:
        cause += "; the request may have reached DHIS2"
    if source:
        cause = cause.replace("check DHIS2_URL", "check the URL in " + source)
    err = TransportError("{} failed: {}".format(what, cause), request=exc.request)
    err.outcome_unknown = unknown
    return err


_HEADER_TROUBLE = ("LineTooLong", "got more than 100 headers", "when reading header line")
# What an SSLError says when the TLS handshake failed: nothing was sent yet.
_HANDSHAKE = ("handshake", "HANDSHAKE", "certificate", "CERTIFICATE", "WRONG_VERSION_NUMBER",
              "hostname", "UNKNOWN_PROTOCOL", "unsupported protocol", "PROTOCOL_VERSION",
              "violation of protocol")


def _retry_reason(exc: BaseException) -> Optional[Exception]:
    """The urllib3 error behind a requests exception that wraps a MaxRetryError."""
    inner = exc.args[0] if exc.args else None
    if isinstance(inner, urllib3.exceptions.MaxRetryError):
        return inner.reason
    return None


# --- reading a body under a total deadline --------------------------------------

_CHUNK = 65536


def _socket_of(response: requests.Response) -> Optional[socket.socket]:
    """The socket under a streamed response, when it can be found (else None)."""
    raw = getattr(response, "raw", None)
    for path in (("_connection", "sock"), ("_fp", "fp", "raw", "_sock")):
        obj = raw
        for name in path:
            obj = getattr(obj, name, None)
            if obj is None:
                break
        if isinstance(obj, socket.socket):
            return obj
    return None


class _Deadline:
    """Shuts a response's socket down when its body overruns the deadline, so a
    read blocked on a trickling server returns at once."""

    def __init__(self, response: requests.Response, seconds: float) -> None:
        self.fired = False
        self._response = response
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        sock = _socket_of(self._response)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self._timer.cancel()


def body_chunks(response: requests.Response, what: str, method: str = "GET",
                limit: float = DEFAULT_STREAM_DEADLINE,
                started: Optional[float] = None, max_bytes: Optional[int] = None,
                truncate: bool = False) -> Generator[bytes, None, None]:
    """``response``'s body in chunks, all of it within ``limit`` seconds of ``started``
    (default: now); closes the response when done or abandoned.

    Overrunning the deadline raises :class:`TransportError` naming it -- even
    while a read is blocked on a trickling server, since a timer shuts the
    socket down.  A read timeout is a :class:`TransportError`; a body that
    breaks off an :class:`InvalidResponseError`.  For a POST either error has
    ``outcome_unknown`` set: the request reached DHIS2.

    The body is read raw and inflated here (``Content-Encoding`` gzip or
    deflate, stacked too) at most 64 KiB at a time, so a compression bomb never
    inflates beyond what is consumed.  ``max_bytes`` caps the decoded size: past
    it :class:`InvalidResponseError`, or with ``truncate`` the body simply ends
    there (for error and HTML pages).
    """
    unknown = method not in _IDEMPOTENT
    status = getattr(response, "status_code", "?")
    request = getattr(response, "request", None)
    deadline_at = (time.monotonic() if started is None else started) + limit
    guard = _Deadline(response, max(0.0, deadline_at - time.monotonic()))
    received = 0

    def overrun() -> TransportError:
        err = TransportError("{} -> HTTP {}: the body took longer than stream_deadline={:g} s "
                             "({} bytes received); raise Session(stream_deadline=…) or ask for "
                             "less".format(what, status, limit, received), request=request)
        err.outcome_unknown = unknown
        return err

    try:
        iterator = _decoded_chunks(response, what)
        while True:
            try:
                chunk = next(iterator)
            except StopIteration:
                break
            except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError,
                    HTTPException, OSError) as exc:
                if guard.fired:
                    raise overrun() from exc
                if isinstance(exc, (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError)) \
                        or "timed out" in repr(exc):
                    err = TransportError(
                        "{} -> HTTP {}: timed out waiting for the rest of the body after {} "
                        "bytes{}".format(what, status, received,
                                         "; the request reached DHIS2" if unknown else ""),
                        request=request)
                    err.outcome_unknown = unknown
                    raise err from exc
                raise _broken_body(response, what, received, unknown) from exc
            except _BadEncoding as exc:
                bad = InvalidResponseError("{} -> HTTP {}: {}".format(what, status, exc),
                                           response=response)
                bad.outcome_unknown = unknown
                raise bad from None
            if guard.fired or time.monotonic() > deadline_at:
                raise overrun()
            if max_bytes is not None and received + len(chunk) > max_bytes:
                if truncate:
                    if received < max_bytes:
                        yield chunk[:max_bytes - received]
                    return
                raise _too_big(response, what, max_bytes, received + len(chunk), unknown)
            received += len(chunk)
            yield chunk
        if guard.fired:
            raise overrun()
    finally:
        guard.cancel()
        response.close()


class _BadEncoding(Exception):
    """A Content-Encoding that cannot be inflated (corrupt, or unsupported)."""


def _decoded_chunks(response: requests.Response, what: str) -> Iterator[bytes]:
    """The decoded body in pieces of at most 64 KiB, read raw from urllib3 and
    inflated here step by step (requests' own decoding inflates a whole raw
    chunk at once: a 64 KiB gzip bomb chunk becomes ~64 MB, stacked encodings
    gigabytes)."""
    content = getattr(response, "_content", False)  # type: Any
    if content is not False and content is not None:
        # already read (a prefix read by _send, or a test double)
        for i in range(0, len(content), _CHUNK):
            yield content[i:i + _CHUNK]
        return
    raw = getattr(response, "raw", None)
    if not isinstance(raw, urllib3.response.HTTPResponse):
        yield from response.iter_content(_CHUNK)
        return
    pieces = raw.stream(_CHUNK, decode_content=False)  # type: Iterator[bytes]
    header = response.headers.get("Content-Encoding", "") or ""
    codings = [c.strip().lower() for c in header.split(",") if c.strip()]
    for coding in reversed(codings):  # the last applied is listed last
        if coding in ("gzip", "x-gzip"):
            pieces = _inflate(pieces, 16 + zlib.MAX_WBITS, coding)
        elif coding == "deflate":
            pieces = _inflate(pieces, None, coding)
        elif coding != "identity":
            raise _BadEncoding("Content-Encoding {!r} is not one dhis2maint reads (it asks for "
                               "gzip or deflate only; a proxy changed the answer?)".format(
                                   coding[:40]))
    for piece in pieces:
        if piece:
            yield piece


def _inflate(pieces: Iterable[bytes], wbits: Optional[int], coding: str) -> Iterator[bytes]:
    """Inflate an iterable of compressed pieces, yielding at most 64 KiB at a time."""
    inflater = None if wbits is None else zlib.decompressobj(wbits)  # type: Any
    try:
        for data in pieces:
            if inflater is None:  # deflate: zlib-wrapped (RFC 1950) or, sometimes, raw
                wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and \
                    (data[0] << 8 | data[1]) % 31 == 0
                inflater = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            while data:
                if inflater.eof:
                    rest = inflater.unused_data + data
                    if wbits is not None and rest[:2] == b"\x1f\x8b":  # another gzip member
                        inflater = zlib.decompressobj(wbits)
                        data = rest
                        continue
                    break  # trailing bytes after the stream: ignored, as urllib3 does
                out = inflater.decompress(data, _CHUNK)
                data = inflater.unconsumed_tail
                if out:
                    yield out
            while inflater is not None and not inflater.eof:
                out = inflater.decompress(b"", _CHUNK)
                if not out:
                    break
                yield out
        if inflater is not None and not inflater.eof:
            raise _BadEncoding("the {} body ended before its compressed stream did "
                               "(truncated?)".format(coding))
    except zlib.error as exc:
        raise _BadEncoding("the body is not valid {} ({})".format(coding, exc)) from None


def _too_big(response: requests.Response, what: str, cap: int, seen: int,
             unknown: bool) -> InvalidResponseError:
    hint = "raise Session(max_body_bytes=…) if this answer is expected to be that big"
    if "dataIntegrity" in what:
        hint = ("read it with iter_integrity_issues() (`dhis2maint integrity issues`), which "
                "streams a report of any size, or raise Session(max_body_bytes=…)")
    elif cap <= SMALL_BODY_BYTES:
        hint = "DHIS2 never sends that much here: check DHIS2_URL and the proxy"
    err = InvalidResponseError(
        "{} -> HTTP {}: the body is larger than {} bytes ({} bytes read before giving up); {}"
        .format(what, getattr(response, "status_code", "?"), cap, seen, hint), response=response)
    err.outcome_unknown = unknown
    return err


def _read_body(response: requests.Response, what: str, method: str, limit: float,
               max_bytes: Optional[int] = None, truncate: bool = False) -> None:
    """Read ``response``'s whole body within ``limit`` seconds into ``response.content``
    (see :func:`body_chunks` for the errors and ``max_bytes``)."""
    if getattr(response, "_content", False) is not False:
        return  # already read (a test double, or requests read it)
    buf = bytearray()  # grows in place: no second copy of a big body while reading
    for chunk in body_chunks(response, what, method, limit, max_bytes=max_bytes,
                             truncate=truncate):
        buf += chunk
    cut = truncate and max_bytes is not None and len(buf) >= max_bytes
    content = bytes(buf)
    del buf
    response._content = content
    response._content_consumed = True  # type: ignore[attr-defined]  # requests' own flag
    expected = _content_length(response)
    if not cut and expected is not None and len(content) < expected:
        # urllib3 < 2 does not notice a body shorter than its Content-Length.
        raise _broken_body(response, what, len(content), method not in _IDEMPOTENT)


def _content_length(response: requests.Response) -> Optional[int]:
    """The announced body size when ``len(content)`` can be compared with it."""
    headers = response.headers
    if response.request is not None and response.request.method == "HEAD":
        return None
    if response.status_code in (204, 304) or headers.get("Content-Encoding", "identity") \
            not in ("", "identity"):
        return None
    try:
        return int(headers.get("Content-Length", ""))
    except ValueError:
        return None


def _broken_body(response: requests.Response, what: str, received: int,
                 unknown: bool) -> InvalidResponseError:
    err = InvalidResponseError(
        "{} -> HTTP {}: the body broke off after {} bytes (the connection closed before its "
        "end: DHIS2 restarting, or a proxy timeout?){}".format(
            what, getattr(response, "status_code", "?"), received,
            "; the request reached DHIS2, so it may have been carried out" if unknown else ""),
        response=response)
    err.outcome_unknown = unknown
    return err


def _maybe_sent(exc: BaseException) -> bool:
    """False only when the connection was never made, so nothing can have been sent."""
    text = repr(exc)
    never = ("NewConnectionError", "Connection refused", "Name or service not known",
             "nodename nor servname", "getaddrinfo", "ConnectTimeout", "NameResolutionError")
    return not any(marker in text for marker in never)


def decode_json(response: requests.Response, what: str,
                expect: Union[Type[Any], Tuple[Type[Any], ...], None] = None,
                allow_empty: bool = False) -> Any:
    """Decode a response body as JSON, or raise :class:`InvalidResponseError`
    naming ``what`` and the likely cause."""
    try:
        raw = response.content
    except requests.exceptions.RequestException as exc:
        raise InvalidResponseError("{}: the body broke off: {}".format(
            what, type(exc).__name__), response=response) from exc
    if not raw.strip() or raw.strip() == b"null":
        if allow_empty:
            return None
        raise InvalidResponseError("{}: empty body where JSON was expected (HTTP {})".format(
            what, response.status_code), response=response)
    ctype = response.headers.get("Content-Type", "")
    try:
        with gc_paused():
            data = strict_loads(raw.decode("utf-8-sig"))
    except RecursionError:
        raise InvalidResponseError("{}: JSON nested too deeply to read".format(what),
                                   response=response) from None
    except NonFiniteNumber as exc:
        raise InvalidResponseError("{}: the JSON holds {}, which is not a number JSON allows "
                                   "(a broken server or proxy)".format(what, str(exc)[:40]),
                                   response=response) from None
    except (MemoryError, OverflowError) as exc:
        raise InvalidResponseError("{}: the JSON ({} bytes) could not be read: {}".format(
            what, len(raw), type(exc).__name__), response=response) from None
    except ValueError as exc:  # includes UnicodeDecodeError and JSONDecodeError
        if "html" in ctype.lower() or raw.lstrip()[:1] == b"<":
            cause = "an HTML page, not JSON (a proxy error page, or not the DHIS2 API URL?)"
        else:
            cause = "invalid or truncated JSON ({})".format(str(exc)[:120])
        raise InvalidResponseError("{}: {}".format(what, cause), response=response) from None
    if expect is not None and not isinstance(data, expect):
        names = " or ".join(t.__name__ for t in (expect if isinstance(expect, tuple) else (expect,)))
        raise InvalidResponseError("{}: expected a JSON {}, got {}".format(
            what, {"dict": "object", "list": "array"}.get(names, names),
            type(data).__name__), response=response)
    return data
