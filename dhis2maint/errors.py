"""The exceptions dhis2maint raises, and the one place an HTTP status becomes one.

Every error the library raises is a :class:`Dhis2Error`.  Some also belong to a
familiar builtin family so callers can catch either: :class:`TaskTimeoutError`
is a :class:`TimeoutError`, :class:`TransportError` is a
:class:`requests.RequestException`, :class:`ConfigurationError` is a
:class:`ValueError`.

Messages name the request as ``METHOD /api/path`` -- never the query string,
headers or credentials -- and say what to do next.
"""
import json
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple, Type, TypeVar, Union

import requests

if TYPE_CHECKING:
    from .models import Notification

_E = TypeVar("_E", bound="Dhis2Error")

#: ``Session(source=…)`` of a session whose settings came from the ``DHIS2_*``
#: environment variables (:meth:`Session.from_env` sets it): only then do hints
#: name those variables.
ENVIRONMENT = "the DHIS2_* environment variables"


def url_setting(source: Optional[str]) -> str:
    """Where the base URL was set, as a hint names it: ``DHIS2_URL`` only when the
    settings came from the environment (:data:`ENVIRONMENT`), "the URL in <source>"
    for another ``source`` (an Airflow Connection, an auth file), else "the base
    URL" (given in code)."""
    if source == ENVIRONMENT:
        return "DHIS2_URL"
    return "the URL in " + source if source else "the base URL"

__all__ = [
    "Dhis2Error",
    "ConfigurationError",
    "TransportError",
    "ApiError",
    "BadRequest",
    "AuthenticationError",
    "PermissionDenied",
    "NotFound",
    "ConflictError",
    "ServerError",
    "InvalidResponseError",
    "UnsupportedServerError",
    "JobFailedError",
    "TaskTimeoutError",
    "HistoryError",
    "HistorySchemaError",
    "ENVIRONMENT",
]


class Dhis2Error(Exception):
    """Base class of every error dhis2maint raises.

    ``request`` and ``response`` are the :mod:`requests` objects involved, when
    there were any (``None`` otherwise).
    """

    #: True when a request that changes something (a POST) was sent but no
    #: complete answer came back, so DHIS2 may or may not have carried it out.
    #: Set on :class:`TransportError` and :class:`InvalidResponseError`.
    outcome_unknown = False

    #: What to do next, as data (:class:`~dhis2maint.models.FollowUp` records,
    #: most useful first); each face -- Python, the command line, MCP -- words
    #: them for its reader.  Empty when there is nothing to suggest.
    follow_ups = ()  # type: Tuple[Any, ...]

    def __init__(self, message: str,
                 request: Union[requests.Request, requests.PreparedRequest, None] = None,
                 response: Optional[requests.Response] = None) -> None:
        super().__init__(message)
        self.message = message
        # Set after super().__init__: requests.RequestException's own
        # __init__ (a sibling in some subclasses' MRO) would reset them.
        self.request = request
        self.response = response

    def __str__(self) -> str:
        """The message, then the follow-ups in Python's words
        (``session.wait_for_task('ANALYTICS_TABLE', 'fyGB…')``); other faces
        word ``follow_ups`` themselves after ``message``."""
        if not self.follow_ups:
            return self.message
        from .followups import python_text

        return "{}; {}".format(self.message, python_text(self.follow_ups))

    def __reduce__(self) -> Tuple[Any, ...]:
        # Pickle by message only: responses and requests don't pickle cleanly
        # and may carry an Authorization header.
        return (_rebuild, (type(self), self.message, _extra_state(self)))


def _rebuild(cls: Type[_E], message: str, state: Dict[str, Any]) -> _E:
    err = cls.__new__(cls)
    Dhis2Error.__init__(err, message)
    err.__dict__.update(state)
    return err


def _extra_state(err: "Dhis2Error") -> Dict[str, Any]:
    return {
        k: v
        for k, v in vars(err).items()
        if k not in ("request", "response", "message") and not k.startswith("_")
    }


class ConfigurationError(Dhis2Error, ValueError):
    """The session's settings are missing or contradict each other (e.g. ``DHIS2_URL`` unset)."""


class TransportError(Dhis2Error, requests.exceptions.RequestException):
    """The request did not get an HTTP answer: connection refused, DNS, TLS, timeout,
    or a body that did not arrive within ``Session.stream_deadline``.

    ``__cause__`` is the original :mod:`requests` exception.  ``outcome_unknown``
    is True for a POST that may have reached DHIS2.
    """


class ApiError(Dhis2Error):
    """DHIS2 (or a proxy in front of it) answered with an HTTP error status.

    Attributes: ``status_code``, ``method``, ``path`` (no query string),
    ``dhis2_message``, ``dev_message`` (the WebMessage's ``devMessage``: DHIS2
    puts the underlying cause there, e.g. why a predictor could not run) and
    ``error_code`` from DHIS2's WebMessage when the body was one, and
    ``web_message`` (the parsed WebMessage dict or ``None``).
    """

    #: What to check, for a session whose settings came from the ``DHIS2_*``
    #: variables (it may name them).
    hint = ""
    #: ``hint`` for a session whose settings came from ``{source}`` (an Airflow
    #: Connection, a URI, an auth file) rather than the ``DHIS2_*`` variables.
    source_hint = ""
    #: ``hint`` for a session whose settings were given in code (``Session(url,
    #: auth=…)``): names no environment variable; ``None``: :attr:`hint` names none.
    code_hint: Optional[str] = None

    @classmethod
    def hint_for(cls, source: Optional[str] = None) -> str:
        """The hint for a session whose settings came from ``source`` (see
        ``Session(source=…)``): :data:`ENVIRONMENT` -> :attr:`hint`, which names
        ``DHIS2_*``; ``None`` (given in code) -> :attr:`code_hint`."""
        if source == ENVIRONMENT:
            return cls.hint
        if source and cls.source_hint:
            return cls.source_hint.format(source=source)
        if source is None and cls.code_hint is not None:
            return cls.code_hint
        return cls.hint

    def __init__(self, message: str, status_code: Optional[int] = None,
                 method: Optional[str] = None, path: Optional[str] = None,
                 dhis2_message: Optional[str] = None, error_code: Optional[str] = None,
                 web_message: Optional[Dict[str, Any]] = None,
                 request: Union[requests.Request, requests.PreparedRequest, None] = None,
                 response: Optional[requests.Response] = None,
                 dev_message: Optional[str] = None) -> None:
        super().__init__(message, request=request, response=response)
        self.status_code = status_code
        self.method = method
        self.path = path
        self.dhis2_message = dhis2_message
        self.dev_message = dev_message
        self.error_code = error_code
        self.web_message = web_message


class BadRequest(ApiError):
    """400: DHIS2 rejected the parameters (bad date, unknown job type, malformed UID)."""


class AuthenticationError(ApiError):
    """401, or DHIS2's HTML login page where JSON was expected: not logged in."""

    hint = ("check the username and password or the personal access token "
            "(DHIS2_USERNAME/DHIS2_PASSWORD or DHIS2_PAT) and DHIS2_URL")
    source_hint = ("check the username and password or the personal access token "
                   "and the URL in {source}")
    code_hint = ("check the username and password or the personal access token, and the URL, "
                 "given to the Session")


class PermissionDenied(ApiError):
    """403: the user lacks an authority the endpoint needs."""

    hint = "the user lacks the authority this needs (e.g. ALL or F_PERFORM_MAINTENANCE)"


class NotFound(ApiError):
    """404: no such endpoint or object (check the UID, the URL, and the DHIS2 version)."""

    hint = "check the UID or name, DHIS2_URL, and that this DHIS2 version has the endpoint"
    source_hint = ("check the UID or name, the URL in {source}, and that this DHIS2 version "
                   "has the endpoint")
    code_hint = "check the UID or name, the URL, and that this DHIS2 version has the endpoint"


class ConflictError(ApiError):
    """409: DHIS2 refused because of the current state (e.g. a job already running)."""


class ServerError(ApiError):
    """5xx: DHIS2 failed, or a proxy in front of it could not reach it."""

    hint = "DHIS2 or its proxy failed; see the server log, and retry later"


class InvalidResponseError(Dhis2Error):
    """The answer was not the JSON expected: HTML, empty, truncated, or the wrong shape.

    A body that broke off mid-way (the connection closed early) is one too; for a
    POST ``outcome_unknown`` is then True: DHIS2 began to answer, so it got the request.
    So is an empty 2xx body to a POST: DHIS2 answered, so it may have carried it out.
    """

    #: True when the body was empty (or ``null``) where JSON was expected.
    empty_body = False


class UnsupportedServerError(Dhis2Error):
    """The feature needs a newer (or older) DHIS2 than the server runs."""


class JobFailedError(Dhis2Error):
    """DHIS2 reports that a background job failed.

    ``job_id``, ``job_type`` and ``notification`` (the last :class:`Notification`,
    or ``None`` when the outcome came from ``/api/jobConfigurations``).
    """

    def __init__(self, message: str, job_id: Optional[str] = None,
                 job_type: Optional[str] = None, notification: Optional["Notification"] = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.job_type = job_type
        self.notification = notification


class TaskTimeoutError(Dhis2Error, TimeoutError):
    """A job did not finish before the deadline; it may still be running on the server.

    ``job_id``, ``job_type`` and ``last_message`` (DHIS2's newest message, or ``None``).
    """

    def __init__(self, message: str, job_id: Optional[str] = None,
                 job_type: Optional[str] = None, last_message: Optional[str] = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.job_type = job_type
        self.last_message = last_message


# ---------------------------------------------------------------------------
# HTTP status -> exception: the one mapping.

_STATUS_ERRORS: Dict[int, Type[ApiError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: ConflictError,
}


def error_class_for_status(status_code: int) -> Type[ApiError]:
    """The :class:`ApiError` subclass for an HTTP status code."""
    if status_code in _STATUS_ERRORS:
        return _STATUS_ERRORS[status_code]
    if status_code >= 500:
        return ServerError
    return ApiError


def _web_message(response: requests.Response) -> Optional[Dict[str, Any]]:
    """DHIS2's WebMessage from an error response, or None when the body is not one."""
    try:
        body = json.loads(response.content.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


def _clip(text: object, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_login_page(response: requests.Response) -> bool:
    """True when a response is DHIS2's HTML login page: what an unauthenticated
    browser-like client gets, after a 302 or forwarded in place, instead of JSON."""
    ctype = response.headers.get("Content-Type", "")
    if "html" not in ctype.lower():
        return False
    if "login" in response.url.lower():
        return True
    head = response.content[:20000].lower()
    has_password_field = b"password" in head and b"<form" in head
    redirected = any(r.status_code in (301, 302, 303, 307, 308) for r in response.history)
    return has_password_field or (redirected and b"login" in head)


def error_for_response(response: requests.Response, method: str, path: str,
                       source: Optional[str] = None) -> ApiError:
    """Build the exception for an HTTP error response of ``METHOD /api/path``;
    its hint names ``source`` (see :meth:`ApiError.hint_for`)."""
    status = response.status_code
    cls = error_class_for_status(status)
    web = _web_message(response)
    dhis2_message = error_code = dev_message = None
    if web is not None:
        dhis2_message = web.get("message") or web.get("devMessage")
        error_code = web.get("errorCode")
        if dhis2_message is not None:
            dhis2_message = _clip(dhis2_message)
        if web.get("devMessage") is not None:
            dev_message = _clip(web["devMessage"])
        if error_code is not None:
            error_code = str(error_code)
    reason = response.reason or ""
    text = "{} {} -> HTTP {}{}".format(method, path, status, " " + reason if reason else "")
    if dhis2_message:
        text += ": " + dhis2_message
        if error_code:
            text += " ({})".format(error_code)
        if dev_message and dev_message != dhis2_message:
            text += " -- " + dev_message
    elif web is None and "html" in response.headers.get("Content-Type", "").lower():
        text += " (an HTML page, not DHIS2 JSON: probably a proxy or the web server)"
    hint = cls.hint_for(source)
    if status == 404 and path.rstrip("/") in _ALWAYS_THERE:
        # Every DHIS2 answers these: the URL is wrong, not a UID (#21.5).
        hint = ("the URL is probably wrong: every DHIS2 answers {}; check {} and its context "
                "path (e.g. https://host/dhis if DHIS2 lives under /dhis)".format(
                    path, url_setting(source)))
    if hint:
        text += "; " + hint
    return cls(text, status_code=status, method=method, path=path,
               dhis2_message=dhis2_message, error_code=error_code, web_message=web,
               request=response.request, response=response, dev_message=dev_message)


#: Paths every DHIS2 version answers: a 404 there means the URL is wrong.
_ALWAYS_THERE = ("/api/system/info", "/api/system/ping", "/api/me")


class HistoryError(ConfigurationError):
    """The integrity history file cannot be used: not an SQLite database, locked
    for too long, or unreadable (``path`` names it)."""

    def __init__(self, message: str, path: Optional[str] = None) -> None:
        super().__init__(message)
        self.path = path


class HistorySchemaError(HistoryError):
    """The history file was written by a newer dhis2maint (its schema version,
    ``found``, is above ``supported``): upgrade dhis2maint to use it."""

    def __init__(self, message: str, path: Optional[str] = None, found: Optional[int] = None,
                 supported: Optional[int] = None) -> None:
        super().__init__(message, path)
        self.found = found
        self.supported = supported
