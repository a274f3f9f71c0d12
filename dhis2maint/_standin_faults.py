"""The stand-in's fault injection: per-request faults waiting to be used (fail, hang,
html, truncate, drop, empty, hostile), the nginx error pages, and the hostile answers a
broken or compromised proxy could send (gzip bombs, endless bodies, redirects, huge
headers, NaN numbers, deep nesting).  ``Dhis2StandIn``'s knobs fill :class:`_Faults`;
its request handler takes from it.

Standard library only; part of :mod:`dhis2maint.testing`.
"""
import gzip
import re
import threading
from http import HTTPStatus
from typing import Any, Dict, Iterator, List, Optional, Tuple, cast

from ._standin_http import _CHUNK, _JSON_TYPE, _Response

# ---------------------------------------------------------------------------
# fault injection
# ---------------------------------------------------------------------------
_NGINX_REASONS = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out",
                  500: "Internal Server Error", 429: "Too Many Requests"}


def _nginx_page(code):
    # type: (int) -> bytes
    try:
        reason = _NGINX_REASONS.get(code) or HTTPStatus(code).phrase
    except ValueError:
        reason = "Error"
    return ("<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n"
            "<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n" % (code, reason, code, reason)
            ).encode("ascii")


def _fault_path_matches(wanted, path):
    # type: (str, Optional[str]) -> bool
    if path is None:
        return False
    if wanted.startswith("/"):
        return path.startswith(wanted)
    return path.rstrip("/") == "/api/" + wanted.strip("/")


class _Faults(object):
    """Per-request faults waiting to be used, each with a remaining count and an optional method."""

    KINDS = ("hang", "fail", "html", "truncate", "drop", "empty", "hostile")

    def __init__(self):
        # type: () -> None
        self.lock = threading.Lock()
        self.pending = {k: [] for k in self.KINDS}  # type: Dict[str, List[List[Any]]]

    def add(self, fault, count, method, **params):
        # type: (str, int, Optional[str], **Any) -> None
        with self.lock:
            self.pending[fault].append([int(count), method.upper() if method else None, params])

    def take(self, kind, method, path=None):
        # type: (str, str, Optional[str]) -> Optional[Dict[str, Any]]
        """Use up one fault of `kind` that applies to `method` and `path`: a fault's path that
        starts with "/" is a prefix ("/api/system/info"), any other names /api/`path` exactly
        ("dataIntegrity/summary"). Returns the fault's parameters or None."""
        with self.lock:
            for entry in self.pending[kind]:
                wanted = entry[2].get("path")
                if wanted and not _fault_path_matches(wanted, path):
                    continue
                if entry[0] > 0 and entry[1] in (None, method):
                    entry[0] -= 1
                    if entry[0] == 0:
                        self.pending[kind].remove(entry)
                    return cast(Dict[str, Any], entry[2])
        return None

    def clear(self):
        # type: () -> None
        with self.lock:
            for k in self.KINDS:
                self.pending[k] = []


# ---------------------------------------------------------------------------
# Hostile answers
# ---------------------------------------------------------------------------
_BOMBS = {}  # type: Dict[Tuple[int, int], bytes]
_BOMB_LOCK = threading.Lock()


def _gzip_bomb(size, layers):
    # type: (int, int) -> bytes
    """`size` bytes of JSON whitespace ending in {} (valid JSON!), gzipped `layers` times;
    built once per process (1 GiB takes ~2 s)."""
    key = (size, layers)
    if layers > 1:
        inner = _gzip_bomb(size, layers - 1)
        with _BOMB_LOCK:
            if key not in _BOMBS:
                _BOMBS[key] = gzip.compress(inner, 9)
            return _BOMBS[key]
    with _BOMB_LOCK:
        if key not in _BOMBS:
            packer = _gzip_packer()
            block = b" " * (1 << 20)
            out = []
            left = size - 2
            while left > 0:
                piece = block if left >= len(block) else block[:left]
                out.append(packer.compress(piece))
                left -= len(piece)
            out.append(packer.compress(b"{}"))
            out.append(packer.flush())
            _BOMBS[key] = b"".join(out)
        return _BOMBS[key]


def _gzip_packer():
    # type: () -> Any
    import zlib

    return zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing


def _endless(head, unit):
    # type: (bytes, bytes) -> Iterator[bytes]
    yield head
    block = unit * max(1, _CHUNK // len(unit))
    while True:
        yield block


def _hostile_response(params):
    # type: (Dict[str, Any]) -> _Response
    kind = params["kind"]
    if kind == "gzip_bomb":
        layers = int(params.get("layers", 1))
        body = _gzip_bomb(int(params.get("size", 1 << 30)), layers)
        return _Response(200, body, _JSON_TYPE,
                         [("Content-Encoding", ", ".join(["gzip"] * layers))])
    if kind == "endless":
        ctype = params.get("content_type") or _JSON_TYPE
        if "html" in ctype:
            stream = _endless(b"<html><body>", b"<p>Service unavailable</p>\n")
        else:
            stream = _endless(b'{"endless":[', b"0,")
        return _Response(int(params.get("status", 200)), content_type=ctype, stream=stream,
                         headers=list(params.get("headers") or []))
    if kind == "redirect":
        return _Response(int(params.get("status", 302)), b"", None,
                         [("Location", params["location"])])
    if kind == "huge_header":
        return _Response(200, b"{}", _JSON_TYPE, [("X-Filler", "a" * int(params.get("size", 70000)))])
    # answer: anything
    body = params.get("body") or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    return _Response(int(params.get("status", 200)), body, params.get("content_type") or _JSON_TYPE,
                     list(params.get("headers") or []))


_NUMBERS = re.compile(rb'"(percentage|averageExecutionTime)":-?[0-9][0-9.eE+-]*')
_ISSUES_OPEN = re.compile(rb'"issues":\[(\]?)')


def _corrupt(resp, params):
    # type: (_Response, Dict[str, Any]) -> _Response
    """DHIS2's answer with NaN percentages (kind nan) or a first issue whose refs nest
    `depth` deep (kind deep)."""
    body = resp.body if resp.stream is None else b"".join(resp.stream)
    if params["kind"] == "nan":
        body = _NUMBERS.sub(b'"\\1":NaN', body or b"")
    else:
        depth = int(params.get("depth", 990))
        nested = b"[" * depth + b"]" * depth

        def first_issue(match):
            # type: (Any) -> bytes
            issue = b'{"id":"deepNested1","name":"deep","refs":[' + nested + b"]}"
            return b'"issues":[' + issue + (b"]" if match.group(1) else b",")
        body = _ISSUES_OPEN.sub(first_issue, body or b"", count=1)
    headers = [h for h in resp.headers if h[0].lower() != "content-type"]
    return _Response(resp.status, body, _JSON_TYPE, headers)


# ---------------------------------------------------------------------------
