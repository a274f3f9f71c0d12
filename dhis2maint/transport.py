"""Reading DHIS2's answers off the wire: bounded in time and in bytes.

What the session and the feature mixins share below the :class:`~dhis2maint.Session`
class itself: the size and time defaults, :func:`body_chunks` (a body within a
total deadline, inflated here 64 KiB at a time, capped on its decoded size),
:func:`decode_json` (strict JSON or a typed error naming the endpoint), and the
messages for transport failures and redirects that leave the server.  It imports
no feature module, so integrity.py, jobs.py, jobconfigs.py and validation.py use it without
importing the session.
"""
import re
import socket
import threading
import time
import zlib
from http.client import HTTPException
from typing import Any, Generator, Iterable, Iterator, Optional, Tuple, Type, Union
from urllib.parse import urlsplit

import requests
import urllib3

from .convert import NonFiniteNumber, gc_paused, strict_loads
from . import models
from .errors import InvalidResponseError, TransportError, url_setting

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
_IDEMPOTENT = frozenset(["GET", "HEAD", "OPTIONS"])


def _hide_userinfo(text: str) -> str:
    """``user:secret@host/x`` -> ``***@host/x``: a URL fit for an error message."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)?[^/@]*@", lambda m: (m.group(1) or "") + "***@",
                  text)


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
                    api_path: str, source: Optional[str] = None) -> InvalidResponseError:
    """A redirect that leaves the server: name the target and what to set (the URL
    in ``source``; DHIS2_URL only for :data:`~dhis2maint.errors.ENVIRONMENT`)."""
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
        text += "; if that is where DHIS2 lives, set {} to {}".format(url_setting(source), base)
    err = InvalidResponseError(text, request=response.request, response=response)
    err.location = target  # type: ignore[attr-defined]
    return err


def _transport_error(exc: requests.exceptions.RequestException, what: str, method: str,
                     retries: Optional[int] = None, source: Optional[str] = None,
                     url: Optional[str] = None) -> TransportError:
    """A :class:`TransportError` whose message says what happened and what to check
    (the URL in ``source``; DHIS2_URL only for :data:`~dhis2maint.errors.ENVIRONMENT`);
    ``url``, the base URL (never with credentials), is named in it."""
    exceptions = requests.exceptions
    reason = _retry_reason(exc)
    text = repr(exc) + repr(reason)
    if url:
        what = "{} on {}".format(what, _hide_userinfo(url))
    if isinstance(exc, exceptions.TooManyRedirects):
        err = TransportError(
            "{} failed: redirect loop (more than {} redirects); check {} (http:// vs "
            "https://, the context path such as /dhis) and the proxy's rewrite rules".format(
                what, requests.models.DEFAULT_REDIRECT_LIMIT, url_setting(source)),
            request=exc.request)
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
    elif isinstance(exc, exceptions.SSLError) and any(m in text for m in _PLAIN_HTTP):
        cause = ("TLS failed in the handshake: the server answered in plain http, not "
                 "https; use {} (check DHIS2_URL); nothing was sent to DHIS2".format(
                     _as_http(url) if url else "an http:// URL"))
    elif isinstance(exc, exceptions.SSLError) and any(m in text for m in _HANDSHAKE):
        cause = ("TLS failed in the handshake (certificate not trusted, wrong host name, or "
                 "not an https server? check DHIS2_URL, or trust the server's CA with "
                 "REQUESTS_CA_BUNDLE=/path/ca.pem); nothing was sent to DHIS2")
    elif isinstance(exc, exceptions.SSLError):
        cause = ("TLS failed (certificate not trusted? trust the server's CA with "
                 "REQUESTS_CA_BUNDLE=/path/ca.pem)")
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
    # name DHIS2_URL only when the URL came from it
    cause = cause.replace("check DHIS2_URL", "check " + url_setting(source))
    err = TransportError("{} failed: {}".format(what, cause), request=exc.request)
    err.outcome_unknown = unknown
    if isinstance(exc, exceptions.SSLError) and not any(m in text for m in _PLAIN_HTTP):
        # what to do, as data each face words: trust the CA, or (not recommended)
        # turn certificate checks off (#21.5)
        err.follow_ups = (models.FollowUp("trust_ca_bundle", (("env", "REQUESTS_CA_BUNDLE"),),
                                   "trust the server's CA"),)
    return err


# What an SSLError says when the server answered plain http to a TLS hello.
_PLAIN_HTTP = ("WRONG_VERSION_NUMBER", "wrong version number", "record layer failure",
               "packet length too long", "HTTP_REQUEST")


def _as_http(url: str) -> str:
    """``https://host:port/path`` as ``http://host:port/path`` (no credentials)."""
    text = _hide_userinfo(url)
    return "http://" + text[len("https://"):] if text.startswith("https://") else text


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
    content: Any = getattr(response, "_content", False)
    if content is not False and content is not None:
        # already read (a prefix read by _send, or a test double)
        for i in range(0, len(content), _CHUNK):
            yield content[i:i + _CHUNK]
        return
    raw = getattr(response, "raw", None)
    if not isinstance(raw, urllib3.response.HTTPResponse):
        yield from response.iter_content(_CHUNK)
        return
    pieces: Iterator[bytes] = raw.stream(_CHUNK, decode_content=False)
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
    inflater: Any = None if wbits is None else zlib.decompressobj(wbits)
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
    method, _, path = what.partition(" ")
    follow_ups: Tuple[models.FollowUp, ...] = ()
    if cap <= SMALL_BODY_BYTES:
        # system info, job starts, WebMessages: small answers whatever the server holds
        hint = "DHIS2 never sends that much here: check DHIS2_URL and the proxy"
    elif method == "GET" and path.startswith("/api/dataIntegrity/") and \
            path.endswith("/details"):
        # the only reports iter_integrity_issues() streams
        hint = "raise the session's max_body_bytes, or stream the report"
        follow_ups = (models.FollowUp("iter_integrity_issues", (), "read a report of any size"),)
    else:
        hint = "raise the session's max_body_bytes if this answer is expected to be that big"
    if unknown:
        hint += "; the request reached DHIS2, so it may have been carried out"
    err = InvalidResponseError(
        "{} -> HTTP {}: the body is larger than {} bytes ({} bytes read before giving up); {}"
        .format(what, getattr(response, "status_code", "?"), cap, seen, hint), response=response)
    err.outcome_unknown = unknown
    err.follow_ups = follow_ups
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
        request = getattr(response, "request", None)
        unknown = str(getattr(request, "method", None) or "GET").upper() not in _IDEMPOTENT
        empty = InvalidResponseError("{}: empty body where JSON was expected (HTTP {}){}".format(
            what, response.status_code,
            "; the request reached DHIS2, so it may have been carried out" if unknown else ""),
            response=response)
        empty.outcome_unknown = unknown
        empty.empty_body = True
        raise empty
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
