"""The stand-in's HTTP plumbing, shared by testing.py and every ``_standin_*`` module.

What a route gets (:class:`_Request`), raises (:class:`_HttpError`) or returns
(:class:`_Response`), and DHIS2's wire formats: WebMessages, deterministic UIDs,
dates as DHIS2's Jackson writes them, boolean parameters, ``fields`` filtering.
Standard library only; it imports nothing else from dhis2maint.
"""
import collections
import hashlib
import json
import re
import string
import time
from http import HTTPStatus
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

_ALNUM = string.ascii_letters + string.digits
_CHUNK = 64 * 1024
_JSON_TYPE = "application/json;charset=UTF-8"
_UID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{10}$")

_LOGIN_PAGE = (
    "<!DOCTYPE html>\n<html>\n<head>\n<title>DHIS 2</title>\n"
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n</head>\n<body>\n'
    '<div id="loginField">\n<form id="loginForm" action="../../dhis-web-commons-security/login.action" '
    'method="post">\n<input type="text" id="j_username" name="j_username">\n'
    '<input type="password" id="j_password" name="j_password" autocomplete="off">\n'
    '<input type="submit" id="submit" value="Sign in">\n</form>\n</div>\n</body>\n</html>\n')


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


class _Request(object):
    """A parsed request as the route handlers see it."""

    def __init__(self, method, path, query, headers, body, base, user, now):
        # type: (str, str, Dict[str, List[str]], Any, bytes, str, str, float) -> None
        self.method, self.path, self.query, self.headers = method, path, query, headers
        self.body, self.base, self.user, self.now = body, base, user, now

    def arg(self, name, default=None):
        # type: (str, Optional[str]) -> Optional[str]
        values = self.query.get(name)
        return values[0] if values else default

    def json(self):
        # type: () -> Any
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError as e:
            raise _HttpError(400, "JSON parse error: %s" % e)

    def fields(self):
        # type: () -> Optional[List[str]]
        """Top-level names of the `fields` parameter, or None for all."""
        raw = ",".join(self.query.get("fields", []))
        if not raw:
            return None
        depth, names, cur = 0, [], ""
        for ch in raw:
            if ch in "[(":
                depth += 1
            elif ch in "])":
                depth -= 1
            elif ch == "," and depth == 0:
                names.append(cur)
                cur = ""
                continue
            if depth == 0 and ch not in "])":
                cur += ch
        names.append(cur)
        names = [n.strip().split("~")[0].split("::")[0] for n in names if n.strip()]
        return None if any(n in ("*", ":all", ":owner") for n in names) else names


def _parse_bool(name, raw):
    # type: (str, str) -> bool
    if raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise _HttpError(400, "Value '%s' is not valid for parameter %s. It should be of type boolean" % (raw, name))



def _filter_fields(obj, fields):
    # type: (Dict[str, Any], Optional[List[str]]) -> Dict[str, Any]
    if not fields:
        return obj
    return collections.OrderedDict((k, v) for k, v in obj.items() if k in fields)
