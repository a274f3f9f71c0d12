"""``dhis2maint.Session``: a :class:`requests.Session` that knows where DHIS2 is.

The session owns its defaults -- base URL, user agent, a timeout on every
request, TLS verification, retries of idempotent requests through urllib3's
``Retry`` -- and the small request helpers the feature mixins (integrity.py,
jobs.py, jobconfigs.py, validation.py, health.py) use.  Those helpers, with the body readers
of transport.py, are the only place a response becomes JSON or an exception.
"""
import logging
import os
import random
import re
import time
from typing import (TYPE_CHECKING, Any, Callable, Container, Dict, FrozenSet, Generator, Mapping,
                    Optional, Set, Tuple, Type, TypeVar, Union, cast)
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase, HTTPBasicAuth
from urllib3.util.retry import Retry

from . import __version__
from .errors import (ENVIRONMENT, AuthenticationError, ConfigurationError,
                     InvalidResponseError, error_for_response, is_login_page, url_setting)
from .transport import (_IDEMPOTENT, DEFAULT_MAX_BODY_BYTES, DEFAULT_OUTAGE_GRACE,
                        DEFAULT_STREAM_DEADLINE, SMALL_BODY_BYTES, _absolute, _hide_userinfo,
                        _read_body, _redirect_error, _same_origin, _transport_error,
                        body_chunks, decode_json)
from . import connections
from .arguments import seconds
from .integrity import IntegrityMixin
from .jobs import JobsMixin
from . import versions
from .doctor import DoctorMixin
from .health import HealthMixin
from .jobconfigs import JobConfigsMixin
from .validation import ValidationMixin
from .datavalues import DataValuesMixin  # server health as DHIS2 data values (#25)
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
_UID = re.compile(r"^[A-Za-z][A-Za-z0-9]{10}$")
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
    # Hints name DHIS2_URL only when the settings came from the environment.
    check = "DHIS2_URL" if source == ENVIRONMENT else (source or "the URL given to the Session")
    if not base_url or not isinstance(base_url, str):
        raise ConfigurationError("a DHIS2 base URL is required, e.g. https://dhis2.example.org "
                                 "({})".format("set DHIS2_URL" if source == ENVIRONMENT else
                                                "check " + check))
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


_warned_insecure: Set[Optional[str]] = set()


class Session(IntegrityMixin, JobsMixin, JobConfigsMixin, ValidationMixin, HealthMixin,
              DoctorMixin, DataValuesMixin,
              requests.Session):
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
        :func:`dhis2maint.jobstart.start_job`.
    :param source: where the URL and credentials came from, as error hints
        should name it ("the Airflow Connection 'dhis2_default'");
        :data:`dhis2maint.errors.ENVIRONMENT` (what :meth:`from_env` sets): hints
        name the ``DHIS2_*`` environment variables; ``None`` (settings given in
        code): hints name no environment variable.  The ``from_*`` constructors
        set it.
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
        self.source: Optional[str] = source
        base, url_creds = _normalise_base_url(base_url, source)
        if token is not None and auth is not None:
            raise ConfigurationError("give either auth=(username, password) or token=, not both")
        if url_creds and (auth is not None or token is not None):
            raise ConfigurationError("the URL carries credentials and auth/token is given too")
        if url_creds:
            auth = url_creds
        if token is not None:
            if not isinstance(token, str) or not token.strip():
                raise ConfigurationError("token must be a non-empty string{}".format(
                    " (check DHIS2_PAT)" if source == ENVIRONMENT else
                    " (check {})".format(source) if source else ""))
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
        self._server_version: Optional[Tuple[int, ...]] = None
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
        kwargs.setdefault("source", ENVIRONMENT)
        try:
            return cls(url, **kwargs)
        except ConfigurationError as exc:
            if "timeout" in str(exc) and timeout:
                raise ConfigurationError("DHIS2_TIMEOUT: " + str(exc)) from None
            raise

    @classmethod
    def _accepted_settings(cls) -> FrozenSet[str]:
        """The keyword arguments this class's constructor takes (so a setting a
        newer Session adds, like ``outage_grace``, is passed only when it exists)."""
        import inspect

        return frozenset(inspect.signature(cls.__init__).parameters)

    @classmethod
    def _from_settings(cls: Type[_S], base_url: str, found: Dict[str, Any],
                       settings: Dict[str, Any], source: str, missing: str) -> _S:
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
    def from_uri(cls: Type[_S], uri: str, **settings: Any) -> _S:
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
    def from_airflow_connection(cls: Type[_S], conn_or_id: Any = "dhis2_default",
                                **settings: Any) -> _S:
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
    def from_auth_file(cls: Type[_S], path: str, **settings: Any) -> _S:
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
            raise _transport_error(exc, what, method, self.retries, self.source,
                                   self.base_url) from exc
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
                raise _redirect_error(response, what, location, api_path, self.source)
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
        response = self._send(method, path, params=params, json_body=json_body, timeout=timeout,
                              max_bytes=max_bytes)
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
                    "{} the DHIS2 server itself (not another application, a proxy's "
                    "status page or a health check)?".format(
                        "version {!r}".format(str(version)[:40]) if version is not None
                        else "keys: " + ", ".join(sorted(str(k) for k in info)[:8]) or "{}",
                        url_setting(self.source)),
                ) from None
        return self._server_version

    @server_version.setter
    def server_version(self, value: Union[str, Tuple[int, ...], None]) -> None:
        """Set (or with None, forget) the version, e.g. to skip the request in tests."""
        self._server_version = parse_version(value) if isinstance(value, str) else value

    @property
    def server_version_text(self) -> str:
        """The version exactly as the server states it, e.g. ``"2.41.4-SNAPSHOT"``."""
        return versions.version_text(self.server_version)

    @property
    def server_is_snapshot(self) -> bool:
        """True for a development build (``-SNAPSHOT``): it has only what the previous
        patch release has, so patch-level (backported) features are gated on that."""
        return bool(getattr(self.server_version, "snapshot", False))


def _check_timeout(value: Union[str, float], name: str, zero_ok: bool = False) -> float:
    return cast(float, seconds(value, name, zero_ok=zero_ok))  # the package's one check


def _check_size(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError("{} must be a whole number of bytes (at least 1), got {!r}"
                                 .format(name, value))
    return value
