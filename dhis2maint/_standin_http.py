"""The stand-in's HTTP plumbing, shared by testing.py and _standin_scheduler.py.

What a route raises (:class:`_HttpError`) or returns (:class:`_Response`), and
DHIS2's wire formats: WebMessages, deterministic UIDs, dates as DHIS2's Jackson
writes them.  Standard library only; it imports nothing else from dhis2maint.
"""
import collections
import hashlib
import json
import string
import time
from http import HTTPStatus
from typing import Any, Iterable, Iterator, List, Optional, Tuple

_ALNUM = string.ascii_letters + string.digits
_CHUNK = 64 * 1024
_JSON_TYPE = "application/json;charset=UTF-8"


def _hash_int(*parts):
    # type: (*Any) -> int
    return int(hashlib.md5(":".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:15], 16)


def _uid_from(*parts):
    # type: (*Any) -> str
    """A deterministic 11-character DHIS2 UID (letter, then 10 alphanumerics)."""
    digest = hashlib.md5(":".join(str(p) for p in parts).encode("utf-8")).digest()
    return string.ascii_letters[digest[0] % 52] + "".join(_ALNUM[b % 62] for b in digest[1:11])


def _fmt_time(ts):
    # type: (float) -> str
    """DHIS2 date format: yyyy-MM-ddTHH:mm:ss.SSS, server local time, no zone."""
    millis = int(round(ts * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(millis // 1000)) + ".%03d" % (millis % 1000)


def _fmt_hms(seconds, hours_width=1):
    # type: (float, int) -> str
    millis = int(round(seconds * 1000))
    h, rest = divmod(millis, 3600000)
    m, rest = divmod(rest, 60000)
    s, ms = divmod(rest, 1000)
    return "%0*d:%02d:%02d.%03d" % (hours_width, h, m, s, ms)


def _dumps(obj):
    # type: (Any) -> str
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _od(*pairs):
    # type: (*Tuple[str, Any]) -> collections.OrderedDict[str, Any]
    """Ordered dict from (key, value) pairs, leaving out None values (Jackson NON_NULL)."""
    return collections.OrderedDict((k, v) for k, v in pairs if v is not None)


def _web_message(code, message=None, status=None, error_code=None, dev_message=None, response=None):
    # type: (int, Optional[str], Optional[str], Optional[str], Optional[str], Any) -> collections.OrderedDict[str, Any]
    if status is None:
        status = "OK" if code < 400 else "ERROR"
    return _od(("httpStatus", HTTPStatus(code).phrase), ("httpStatusCode", code), ("status", status),
               ("message", message), ("devMessage", dev_message), ("response", response),
               ("errorCode", error_code))


class _HttpError(Exception):
    """Raised by route handlers; becomes a WebMessage reply."""

    def __init__(self, code, message, error_code=None, dev_message=None, headers=None):
        # type: (int, str, Optional[str], Optional[str], Optional[List[Tuple[str, str]]]) -> None
        Exception.__init__(self, message)
        self.code, self.message = code, message
        self.error_code, self.dev_message = error_code, dev_message
        self.headers = headers or []


class _Response(object):
    """What a route returns: a body (sent with Content-Length) or a stream (sent chunked)."""

    def __init__(self, status=200, body=None, content_type=None, headers=None, stream=None):
        # type: (int, Optional[bytes], Optional[str], Optional[List[Tuple[str, str]]], Optional[Iterator[bytes]]) -> None
        self.status, self.body, self.stream = status, body, stream
        self.headers = list(headers or [])
        if content_type:
            self.headers.insert(0, ("Content-Type", content_type))

    @classmethod
    def json(cls, obj, status=200, headers=None):
        # type: (Any, int, Optional[List[Tuple[str, str]]]) -> _Response
        return cls(status, _dumps(obj).encode("utf-8"), _JSON_TYPE, headers)

    @classmethod
    def json_stream(cls, pieces, status=200):
        # type: (Iterable[str], int) -> _Response
        return cls(status, content_type=_JSON_TYPE, stream=_batched(pieces))

    @classmethod
    def message(cls, code, message=None, **kw):
        # type: (int, Optional[str], **Any) -> _Response
        return cls.json(_web_message(code, message, **kw), status=code)

    @classmethod
    def empty(cls, status=200):
        # type: (int) -> _Response
        return cls(status, b"")


def _batched(pieces, size=_CHUNK):
    # type: (Iterable[str], int) -> Iterator[bytes]
    """Join small string pieces into ~64 KiB byte chunks."""
    buf = []  # type: List[str]
    held = 0
    for piece in pieces:
        buf.append(piece)
        held += len(piece)
        if held >= size:
            yield "".join(buf).encode("utf-8")
            buf, held = [], 0
    if buf:
        yield "".join(buf).encode("utf-8")
