"""A standard-library stand-in for a DHIS2 server, for tests and demos.

``Dhis2StandIn`` speaks the DHIS2 Web API wire formats that dhis2maint uses
(data integrity, task notifications, job configurations, resource/analytics
tables, maintenance, predictors, validation analysis, category combos) for
DHIS2 2.36 to 2.43, over real HTTP on a free local port::

    from dhis2maint.testing import Dhis2StandIn

    with Dhis2StandIn(version="2.42", job_seconds=0.3) as srv:
        requests.get(srv.url + "/api/system/info", auth=("admin", "district"))

Jobs are simulated: a job runs for ``job_seconds`` of wall-clock time from its
start, and everything it does (notifications, cached results) is computed
lazily from the clock whenever a request comes in, so no background thread is
involved and results are deterministic for a given ``seed``.

Task notifications follow DHIS2's source: DATA_INTEGRITY(_DETAILS) is not a
"notifying" job type, so on 2.41+ an integrity job's feed holds only an empty
start message (carrying the job parameters), ERROR messages of failed checks
and an empty ``completed`` message; on 2.37-2.40 summary/details jobs post no
notifications at all (poll ``/summary/running`` or GET with ``timeout``).
Set ``verbose_notifications = True`` for stage and ``[i/n]`` LOOP messages.
Analytics, resource-table and monitoring jobs always post progress messages.

Fault knobs (``fail_next``, ``hang_next``, ``truncate_next``, ``drop_response_next``, ``html_next``,
``delay``, ``trickle``, ``fail_next_job``, ``conflict_next``, ``data_value_conflict_next``,
``drop_feed_after_completion``, ``login_redirect``, ``set_issue_count``,
``fail_check``) let tests provoke the failures a real server or its proxy
produces; hostile ones (``gzip_bomb_next``, ``endless_body_next``, ``nan_next``,
``deep_nesting_next``, ``redirect_next``, ``huge_header_next``, ``answer_next``)
what a broken or compromised proxy could send; ``outage`` closes the listening
socket for a while (connection refused) while jobs go on.  Run ``python -m
dhis2maint.testing --port 8080`` for a server in the foreground; every knob
has a flag (``--help``).

This module holds the public face (``Dhis2StandIn``, ``main``) and the HTTP server;
the rest lives in its stdlib-only siblings, which import nothing else from dhis2maint:

``_standin_http``      what a route gets, raises and returns; DHIS2 wire formats
``_standin_routes``    the one route registry and the ``api`` object handlers get
``_standin_versions``  the server-side version table
``_standin_state``     check catalogue, issues, simulated jobs, seeded metadata
``_standin_faults``    fault knobs' queue and hostile answers
``_standin_system``, ``_standin_integrity``, ``_standin_jobs``, ``_standin_analysis``,
``_standin_maintenance``, ``_standin_metadata``, ``_standin_scheduler``: the routes,
one module per endpoint family (``srv.scheduler`` is the scheduler's state).

A new endpoint family is a new ``_standin_*.py`` module registering its handlers with
``_standin_routes.route`` plus one import line below.  It is not imported by
``import dhis2maint``.
"""

import argparse
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Set, Tuple, cast
from urllib.parse import parse_qs, urlsplit

# the route families: importing one puts its routes on the registry (order = precedence)
from . import _standin_analysis, _standin_integrity, _standin_jobs  # noqa: F401
from . import _standin_maintenance, _standin_metadata, _standin_system  # noqa: F401
from . import _standin_messages  # watch (#22): POST /api/messageConversations
from . import _standin_datavalues  # server health as data values (#25): /api/metadata, /api/dataValueSets
from ._standin_faults import (_NGINX_REASONS, _corrupt, _Faults, _gzip_bomb, _hostile_response,  # noqa: F401
                              _nginx_page)
from ._standin_http import _LOGIN_PAGE, _HttpError, _Request, _Response, _web_message
from ._standin_routes import _Api, route
from ._standin_scheduler import SchedulerState
from ._standin_state import _Checks, _load_catalogue_file, _State
from ._standin_versions import _features, _parse_version

__all__ = ["Dhis2StandIn", "RecordedRequest", "DEFAULT_USERS", "DEFAULT_TOKEN", "main"]

_standin_messages.register(route)

DEFAULT_USERS = {"admin": "district"}
DEFAULT_TOKEN = "d2pat_standin0000000000000000000000000000"


class RecordedRequest(NamedTuple):
    """One request as received: method, path (without query), query (dict str -> list of str),
    headers (plain dict), body (bytes)."""

    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]
    body: bytes


# ---------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address, owner):
        # type: (Tuple[str, int], Dhis2StandIn) -> None
        self.owner = owner
        self.connections = set()  # type: Set[socket.socket]
        self.connections_lock = threading.Lock()
        ThreadingHTTPServer.__init__(self, address, _Handler)

    def process_request(self, request, client_address):
        # type: (Any, Any) -> None
        with self.connections_lock:
            self.connections.add(request)
        ThreadingHTTPServer.process_request(self, request, client_address)

    def shutdown_request(self, request):
        # type: (Any) -> None
        with self.connections_lock:
            self.connections.discard(request)
        ThreadingHTTPServer.shutdown_request(self, request)

    def close_connections(self):
        # type: () -> None
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        # type: (Any, Any) -> None
        if self.owner.verbose:
            ThreadingHTTPServer.handle_error(self, request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; without TCP_NODELAY, Nagle's
    # algorithm and the client's delayed ACK add ~40 ms to every response.
    disable_nagle_algorithm = True

    @property
    def owner(self):
        # type: () -> Dhis2StandIn
        return cast(_Server, self.server).owner

    def version_string(self):
        # type: () -> str
        return "dhis2maint-standin"

    def date_time_string(self, timestamp=None):
        # type: (Optional[float]) -> str
        """The Date header, off by the stand-in's scheduler.clock_skew."""
        now = time.time() if timestamp is None else timestamp
        return BaseHTTPRequestHandler.date_time_string(self, self.owner.scheduler.date_header_time(now))

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        # type: (str, *Any) -> None
        if self.owner.verbose:
            BaseHTTPRequestHandler.log_message(self, format, *args)

    def _handle_command(self):
        # type: () -> None
        self._dispatch(self.command)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle_command

    def _read_body(self):
        # type: () -> bytes
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []  # type: List[bytes]
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self, method):
        # type: (str) -> None
        owner = self.owner
        try:
            self._serve(owner, method)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
            self.close_connection = True
        except OSError:
            self.close_connection = True

    def _serve(self, owner, method):
        # type: (Dhis2StandIn, str) -> None
        url = urlsplit(self.path)
        body = self._read_body()
        query = parse_qs(url.query, keep_blank_values=True)
        owner._record(RecordedRequest(method, url.path, query, dict(self.headers.items()), body))
        stop = owner._stop_event
        if owner.delay and stop.wait(float(owner.delay)):
            self.close_connection = True
            return
        faults = owner._faults
        if faults.take("hang", method) is not None:
            stop.wait(60.0)
            self.close_connection = True
            return
        fail = faults.take("fail", method)
        if fail is not None:
            code = fail["status"]
            headers = [("Retry-After", str(fail["retry_after"]))] if fail.get("retry_after") is not None else []
            if fail["html"]:
                resp = _Response(code, _nginx_page(code), "text/html", headers)
            else:
                resp = _Response.json(_web_message(code, _NGINX_REASONS.get(code) or HTTPStatus(code).phrase),
                                      code, headers)
            self._send(resp, False)
            return
        if faults.take("html", method) is not None:
            self._send(_Response(200, _LOGIN_PAGE.encode("utf-8"), "text/html;charset=UTF-8"), False)
            return
        hostile = faults.take("hostile", method, url.path)
        if hostile is not None and hostile["kind"] not in ("nan", "deep"):
            self._send(_hostile_response(hostile), False)
            return
        truncate = faults.take("truncate", method) is not None
        drop = faults.take("drop", method) is not None
        base = "http://" + self.headers["Host"] if self.headers.get("Host") else owner.url
        req = _Request(method, url.path, query, self.headers, body, base, "", owner._now())
        try:
            resp = owner._api.handle(req)
        except _HttpError as e:
            resp = _Response.json(_web_message(e.code, e.message, error_code=e.error_code,
                                               dev_message=e.dev_message), e.code, e.headers)
        except Exception as e:  # a bug in the stand-in: answer like a server error
            if owner.verbose:
                import traceback
                traceback.print_exc()
            resp = _Response.json(_web_message(500, "%s: %s" % (type(e).__name__, e)), 500)
        if drop:  # the work is done, the answer is lost
            self._abort()
            return
        if resp.status < 300 and faults.take("empty", method, url.path) is not None:
            resp = _Response.empty(200)  # the work is done, the body is lost (proxy, restart)
        if hostile is not None:  # nan / deep: DHIS2's own answer, corrupted
            resp = _corrupt(resp, hostile)
        self._send(resp, truncate)

    def _send(self, resp, truncate):
        # type: (_Response, bool) -> None
        self.send_response(resp.status)
        for key, value in resp.headers:
            self.send_header(key, value)
        if resp.stream is not None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._send_chunks(resp.stream, truncate)
            return
        body = resp.body or b""
        if resp.status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if truncate:
            self.wfile.write(body[:len(body) // 2])
            self._abort()
        elif body:
            self.wfile.write(body)

    def _send_chunks(self, stream, truncate):
        # type: (Iterator[bytes], bool) -> None
        owner = self.owner
        stop = owner._stop_event
        for chunk in stream:
            if not chunk:
                continue
            if stop.is_set():
                return self._abort()
            if truncate:  # half of the first chunk, then hang up without the last-chunk marker
                half = chunk[:max(1, len(chunk) // 2)]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(half), half))
                return self._abort()
            rate = owner.trickle
            if rate:
                piece = max(1, int(rate) // 20)
                for i in range(0, len(chunk), piece):
                    part = chunk[i:i + piece]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    if stop.wait(len(part) / float(rate)):
                        return self._abort()
            else:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def _abort(self):
        # type: () -> None
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# ---------------------------------------------------------------------------
# public facade
# ---------------------------------------------------------------------------
class Dhis2StandIn(object):
    """A simulated DHIS2 server on a local port.

    Parameters: `version` ("2.36" to "2.43", or a full version like "2.42.3.1" or "2.43-SNAPSHOT"),
    `users` (username -> password, default admin/district), `tokens` (personal access token ->
    username), `job_seconds` (how long each simulated job runs), `issues` (check name -> issue
    count; other checks get 0-5 issues derived from `seed`), `host`, `port` (0 = any free port),
    `verbose` (log requests and errors to stderr).

    Attributes that tests may set at any time::

      authorities                dict username -> list of authority strings (default ["ALL"]).
      delay                      seconds every response waits before it is sent (0 = off).
      trickle                    bytes/second at which chunked bodies are sent (0/None = off).
      start_delay                seconds a new job shows an empty feed before it starts (default 0).
      job_seconds                duration of each simulated job.
      drop_feed_after_completion /api/system/tasks/{type}/{id} answers [] once the job finished.
      login_redirect             unauthenticated /api calls get 302 to the login page instead of 401.
      coc_generation_delay       generated category option combos only appear after this many seconds.
      nameless_every             in flattened integrity reports every n-th object has no display name
                                 (DHIS2 then writes its bare UID); 0 = off.
      job_error_codes            errorCodes a failed job's /api/jobConfigurations record shows (2.41+),
                                 e.g. "E7010 E7131" (default "").
      coc_in_use                 obsolete category option combos are in use: the per-combo update keeps
                                 them and answers 409 with a WARNING ImportSummaries, as DHIS2 does.
      drift                      integrity runs differ (0 = off): in the r-th run (from 0) each check with
                                 issues has r more and its first r*drift issues are gone (resolved), so
                                 history, trends and new-issue detection have something to show.
      verbose_notifications      integrity jobs post stage and "[i/n]" LOOP messages (real DHIS2 doesn't:
                                 DATA_INTEGRITY is not a notifying job type).
      maintenance_log            names of the maintenance operations run, in order.
      requests                   every RecordedRequest, in arrival order.
      scheduler                  job configurations and scheduler state (_standin_scheduler.SchedulerState).

    Hostile knobs (a broken or compromised proxy): gzip_bomb_next, endless_body_next,
    nan_next, deep_nesting_next, redirect_next, huge_header_next, answer_next (each
    optionally for one `path` prefix), and outage(seconds, after) which closes the
    listening socket -- connection refused -- while simulated jobs go on.
    """

    def __init__(self, version: str = "2.42", users: Optional[Dict[str, str]] = None,
                 tokens: Optional[Dict[str, str]] = None, job_seconds: float = 2.0,
                 issues: Optional[Dict[str, int]] = None, seed: int = 0, host: str = "127.0.0.1",
                 port: int = 0, verbose: bool = False) -> None:
        self._minor, self.full_version = _parse_version(version)
        self.version = str(version)
        self._features = _features(self._minor)
        self.users = dict(users if users is not None else DEFAULT_USERS)
        first_user = next(iter(self.users), "admin")
        self.tokens = dict(tokens if tokens is not None else {DEFAULT_TOKEN: first_user})
        self.authorities = {}  # type: Dict[str, List[str]]
        self.job_seconds = float(job_seconds)
        self.seed = seed
        self.host, self.port = host, int(port)
        self.verbose = verbose
        self.delay = 0.0  # type: float
        self.trickle = None  # type: Optional[float]
        self.start_delay = 0.0  # type: float
        self.drop_feed_after_completion = False
        self.login_redirect = False
        self.coc_generation_delay = 0.0  # type: float
        self.coc_in_use = False
        self.nameless_every = 0
        self.job_error_codes = ""
        self.verbose_notifications = False
        self.drift = 0  # type: int
        self.requests = []  # type: List[RecordedRequest]
        self._requests_lock = threading.Lock()
        self._faults = _Faults()
        self._stop_event = threading.Event()
        checks = _Checks(self._features["catalogue"], _load_catalogue_file())
        self._state = _State(self, self._features, checks, seed, issues)
        self._api = _Api(self)
        self.scheduler = SchedulerState(self)
        self._httpd = None  # type: Optional[_Server]
        self._thread = None  # type: Optional[threading.Thread]
        self._serving = False
        self._url = None  # type: Optional[str]
        self._down = threading.Event()  # set while an outage has the socket closed

    def __repr__(self) -> str:
        where = self.url if self._httpd is not None else "not started"
        return "<Dhis2StandIn %s %s>" % (self.full_version, where)

    # -- lifecycle ---------------------------------------------------------------
    def _bind(self) -> _Server:
        if self._httpd is None:
            self._stop_event.clear()
            # after an outage: the same port again
            port = int(self._url.rsplit(":", 1)[1]) if self._url else self.port
            self._httpd = _Server((self.host, port), self)
            host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
            self._url = "http://%s:%d" % (host, self._httpd.server_port)
        return self._httpd

    @property
    def url(self) -> str:
        """Base URL without trailing slash, e.g. "http://127.0.0.1:PORT" (binds the socket if not yet bound)."""
        if self._url is None:
            self._bind()
        return self._url or ""

    def start(self) -> "Dhis2StandIn":
        """Serve in a daemon thread; returns self."""
        if self._down.is_set():
            return self  # an outage: come_back() starts it again
        httpd = self._bind()
        if self._thread is None and not self._serving:
            self._serving = True
            self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="Dhis2StandIn", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until stop() is called (or KeyboardInterrupt)."""
        httpd = self._bind()
        self._serving = True
        try:
            httpd.serve_forever(poll_interval=0.05)
        finally:
            self._serving = False
            self._close()

    def stop(self) -> None:
        """Stop serving, wake hung/trickling handlers, drop open connections, close the socket."""
        self._stop_event.set()
        httpd = self._httpd
        if httpd is None:
            return
        if self._serving and self._thread is not threading.current_thread():
            httpd.shutdown()  # returns once serve_forever's loop has ended
        if self._thread is not None:
            self._thread.join(1.0)
            self._thread = None
        self._serving = False
        self._close()

    def _close(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.close_connections()
            httpd.server_close()

    def __enter__(self) -> "Dhis2StandIn":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- recording -----------------------------------------------------------------
    def _record(self, request: RecordedRequest) -> None:
        with self._requests_lock:
            self.requests.append(request)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._requests_lock:
            del self.requests[:]

    def _now(self) -> float:
        return time.time()

    def authorities_of(self, username: str) -> List[str]:
        """The authorities of a user: srv.authorities[username] if set, else ["ALL"]."""
        return list(self.authorities.get(username, ["ALL"]))

    @property
    def maintenance_log(self) -> List[str]:
        """Maintenance operations run so far, e.g. ["cacheClear", "analyticsTablesClear"]."""
        with self._state.lock:
            return list(self._state.maintenance_log)

    # -- fault knobs -----------------------------------------------------------------
    def fail_next(self, count: int = 1, status: int = 503, method: Optional[str] = None,
                  retry_after: Optional[Any] = None, html: bool = True) -> None:
        """The next `count` requests (of `method`, if given) get `status` with an nginx-like HTML page
        (or a DHIS2 WebMessage when html=False), plus Retry-After if `retry_after` is given."""
        self._faults.add("fail", count, method, status=int(status), retry_after=retry_after, html=html)

    def hang_next(self, count: int = 1, method: Optional[str] = None) -> None:
        """The next `count` requests are read and never answered (until stop() or 60 s, then the
        connection is closed without a reply)."""
        self._faults.add("hang", count, method)

    def truncate_next(self, count: int = 1, method: Optional[str] = None) -> None:
        """The next `count` responses announce the full Content-Length but carry half the body (chunked
        ones stop mid-way without the last chunk); the connection is then closed."""
        self._faults.add("truncate", count, method)

    def drop_response_next(self, count: int = 1, method: Optional[str] = None) -> None:
        """The next `count` requests (of `method`, if given) are carried out (a POST starts its
        job) but the connection is closed without an answer, as when a proxy or the network
        drops it: the client cannot know whether anything happened."""
        self._faults.add("drop", count, method)

    def empty_next(self, count: int = 1, method: Optional[str] = None,
                   path: Optional[str] = None) -> None:
        """The next `count` successful answers (of `method`, and to /api/`path` exactly if given,
        e.g. "dataIntegrity/summary") are HTTP 200 with an empty body (the request is carried out)."""
        self._faults.add("empty", count, method, path=path)

    def html_next(self, count: int = 1, method: Optional[str] = None) -> None:
        """The next `count` requests get 200 text/html: the DHIS2 login page."""
        self._faults.add("html", count, method)

    def set_delay(self, seconds: float) -> None:
        """Every response waits `seconds` before it is sent."""
        self.delay = float(seconds or 0)

    def set_trickle(self, bytes_per_second: Optional[float]) -> None:
        """Send chunked (streamed) bodies in small pieces at this rate; 0/None = full speed."""
        self.trickle = bytes_per_second or None

    def fail_next_job(self, message: str = "Process failed: Simulated failure") -> None:
        """The next job started fails half-way: an ERROR completed notification with `message`
        (a leading "Process failed: " is added if missing) and lastExecutedStatus FAILED (2.41+)."""
        prefix = "Process failed: "
        with self._state.lock:
            self._state.job_failures.append(message[len(prefix):] if message.startswith(prefix) else message)

    def conflict_next(self, count: int = 1) -> None:
        """The next `count` job-starting POSTs answer 409 E1004 ("Job is already running.", or
        "Data integrity check is already running" for integrity runs)."""
        with self._state.lock:
            self._state.conflicts += int(count)

    # --- data values (#25) ---------------------------------------------------------------
    def data_value_conflict_next(self, count: int = 1) -> None:
        """The next `count` ``POST /api/dataValueSets`` answer a conflict (E7643, the period is
        not open) for their first value, in the version's summary shape."""
        _standin_datavalues.conflict_next(self._state, count)

    def set_issue_count(self, check_name: str, n: int) -> None:
        """Runs started from now on find `n` issues for that check (details are streamed, so millions work)."""
        with self._state.lock:
            self._state.issue_counts[check_name] = int(n)

    def fail_check(self, name: str, message: str = "Simulated check failure") -> None:
        """Runs started from now on fail this check: summary count -1 with `error`, details issues []."""
        with self._state.lock:
            self._state.failing_checks[name] = message

    def fail_predictor(self, uid: str) -> None:
        """Runs of this predictor answer 409 "Unable to predict <name>"."""
        with self._state.lock:
            self._state.failing_predictors.add(uid)

    # -- hostile knobs ---------------------------------------------------------------------
    def _hostile(self, kind, count, method, path, **params):
        # type: (str, int, Optional[str], Optional[str], **Any) -> None
        params.update(kind=kind, path=path)
        self._faults.add("hostile", count, method, **params)

    def gzip_bomb_next(self, count: int = 1, size: int = 1 << 30, layers: int = 1,
                       method: Optional[str] = None, path: Optional[str] = None) -> None:
        """The next `count` requests get `size` bytes of JSON whitespace (valid JSON) gzipped
        `layers` times (``Content-Encoding: gzip, gzip`` for 2): 1 GiB is ~1 MB once, 2 KB twice."""
        self._hostile("gzip_bomb", count, method, path, size=int(size), layers=int(layers))

    def endless_body_next(self, count: int = 1, status: int = 200,
                          content_type: Optional[str] = None, method: Optional[str] = None,
                          path: Optional[str] = None) -> None:
        """The next `count` requests get a chunked body that never ends (JSON ``{"endless":[0,0,…``,
        or an HTML page with content_type "text/html"), at full speed, until the client hangs up."""
        self._hostile("endless", count, method, path, status=int(status), content_type=content_type)

    def nan_next(self, count: int = 1, method: Optional[str] = None,
                 path: Optional[str] = None) -> None:
        """The next `count` answers carry ``NaN`` (not JSON) as their ``percentage`` and
        ``averageExecutionTime`` numbers."""
        self._hostile("nan", count, method, path)

    def deep_nesting_next(self, count: int = 1, depth: int = 990, method: Optional[str] = None,
                          path: Optional[str] = None) -> None:
        """The next `count` answers with an "issues" array get a first issue whose refs are
        a list nested `depth` deep."""
        self._hostile("deep", count, method, path, depth=int(depth))

    def redirect_next(self, location: str, count: int = 1, status: int = 302,
                      method: Optional[str] = None, path: Optional[str] = None) -> None:
        """The next `count` requests get `status` with ``Location: location`` (e.g. another host)."""
        self._hostile("redirect", count, method, path, location=location, status=int(status))

    def huge_header_next(self, count: int = 1, size: int = 70000, method: Optional[str] = None,
                         path: Optional[str] = None) -> None:
        """The next `count` answers carry a header line of `size` bytes (clients refuse > 64 KiB)."""
        self._hostile("huge_header", count, method, path, size=int(size))

    def answer_next(self, body: Any, count: int = 1, status: int = 200,
                    content_type: Optional[str] = None,
                    headers: Optional[List[Tuple[str, str]]] = None, method: Optional[str] = None,
                    path: Optional[str] = None) -> None:
        """The next `count` requests get this answer instead of DHIS2's (e.g. another
        application's ``{"status":"UP"}`` at /api/system/info)."""
        self._hostile("answer", count, method, path, body=body, status=int(status),
                      content_type=content_type, headers=list(headers or []))

    def go_down(self) -> None:
        """Close the listening socket and every open connection: clients get connection
        refused until come_back().  Jobs go on (their state lives on)."""
        self._down.set()
        httpd = self._httpd
        if httpd is None:
            return
        if self._thread is not None:
            httpd.shutdown()
            self._thread.join(1.0)
            self._thread = None
        self._serving = False
        self._close()

    def come_back(self) -> None:
        """Listen again on the same port after go_down()."""
        self._down.clear()
        if self._stop_event.is_set():
            return
        self.start()

    @property
    def is_down(self) -> bool:
        """True during an outage (go_down / outage)."""
        return self._down.is_set()

    def outage(self, seconds: float, after: float = 0.0) -> threading.Thread:
        """In `after` seconds, go down for `seconds` (connection refused), then come back on
        the same port; runs in a daemon thread (returned), jobs survive.  stop() ends it."""
        def run():
            # type: () -> None
            if self._stop_event.wait(float(after)):
                return
            self.go_down()
            self._stop_event.wait(float(seconds))
            self.come_back()
        thread = threading.Thread(target=run, name="Dhis2StandIn-outage", daemon=True)
        thread.start()
        return thread

    def set_default_issue_count(self, n: Optional[int]) -> None:
        """Runs started from now on find `n` issues for every check without its own count."""
        with self._state.lock:
            self._state.default_issue_count = None if n is None else int(n)

    def reset_faults(self) -> None:
        """Clear every fault knob (pending request faults, delay, trickle, job failures, conflicts,
        failing checks/predictors, feed dropping, login redirect, COC delay)."""
        self._faults.clear()
        self.delay, self.trickle = 0.0, None
        self.drop_feed_after_completion = False
        self.login_redirect = False
        self.coc_generation_delay = 0.0
        self.coc_in_use = False
        with self._state.lock:
            self._state.job_failures.clear()
            self._state.conflicts = 0
            self._state.failing_checks.clear()
            self._state.failing_predictors.clear()

    # -- introspection helpers for tests --------------------------------------------------
    def job_ids(self, job_type: Optional[str] = None) -> List[str]:
        """Ids of the jobs started so far (optionally of one job type), oldest first."""
        with self._state.lock:
            return [j.id for j in self._state.jobs.values() if job_type in (None, j.job_type)]

    def check_names(self) -> List[str]:
        """Names of the data-integrity checks this version lists."""
        return list(self._state.checks.by_name)


def _count_and(text, what, convert=str):
    # type: (str, str, Callable[[str], Any]) -> Tuple[int, Any]
    """'N' or 'N:VALUE' (VALUE converted) -> (N, VALUE or None)."""
    count, _, value = text.partition(":")
    try:
        return int(count), (convert(value) if value else None)
    except ValueError:
        raise argparse.ArgumentTypeError("{}: expected N or N:VALUE, got {!r}".format(what, text))


def _pair(text):
    # type: (str) -> Tuple[float, float]
    after, sep, seconds = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(after), float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError("expected AFTER:SECONDS, e.g. 30:60, got {!r}".format(text))


def _issue_count(text):
    # type: (str) -> Tuple[Optional[str], int]
    name, sep, n = text.rpartition("=")
    try:
        return (name if sep else None), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError("expected N or CHECK=N, got {!r}".format(text))


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m dhis2maint.testing`: one flag per fault knob."""
    parser = argparse.ArgumentParser(
        prog="python -m dhis2maint.testing",
        description="Run a simulated DHIS2 server for tests and demos; the fault flags make it "
                    "misbehave on purpose so you can rehearse failures of your own jobs and DAGs.")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--version", default="2.42", help="DHIS2 version to simulate (2.36 to 2.43)")
    parser.add_argument("--job-seconds", type=float, default=2.0, help="how long each simulated job runs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated integrity issues")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    data = parser.add_argument_group("data")
    data.add_argument("--issues", type=_issue_count, action="append", default=[], metavar="[CHECK=]N",
                      help="integrity issues found: N for every check, or CHECK=N for one (repeatable)")
    data.add_argument("--fail-check", action="append", default=[], metavar="CHECK",
                      help="runs fail this check (repeatable)")
    data.add_argument("--fail-predictor", action="append", default=[], metavar="UID")
    data.add_argument("--verbose-notifications", action="store_true",
                      help="integrity jobs post stage and [i/n] messages (real DHIS2 does not)")
    data.add_argument("--nameless-every", type=int, metavar="N",
                      help="in 2.36's flattened integrity reports every N-th object has no "
                           "display name (DHIS2 then writes its bare UID)")
    data.add_argument("--drift", type=int, metavar="N",
                      help="integrity runs differ: in the r-th run (from 0) each check with issues "
                           "has r more and its first r*N issues are resolved (for history/trends)")
    faults = parser.add_argument_group("faults (N = how many requests; once when N is left out)")
    faults.add_argument("--fail-next", metavar="N[:STATUS]", type=lambda t: _count_and(t, "--fail-next", int),
                        help="the next N requests get STATUS (default 503) with an nginx page")
    faults.add_argument("--hang-next", type=int, metavar="N", help="the next N requests are never answered")
    faults.add_argument("--truncate-next", type=int, metavar="N", help="the next N bodies stop half-way")
    faults.add_argument("--drop-response-next", type=int, metavar="N",
                        help="the next N requests are carried out but their answer is lost")
    faults.add_argument("--html-next", type=int, metavar="N", help="the next N requests get the login page")
    faults.add_argument("--delay", type=float, metavar="S", help="every answer waits S seconds")
    faults.add_argument("--trickle", type=float, metavar="BYTES_PER_S", help="send streamed bodies slowly")
    faults.add_argument("--start-delay", type=float, metavar="S",
                        help="new jobs show an empty feed for S seconds before they start")
    faults.add_argument("--fail-next-job", nargs="?", const="Process failed: Simulated failure",
                        metavar="MESSAGE", help="the next job started fails half-way")
    faults.add_argument("--job-error-codes", metavar="CODES",
                        help="errorCodes a failed job's /api/jobConfigurations record shows "
                             "(2.41+), e.g. \"E7010 E7131\"")
    faults.add_argument("--conflict-next", type=int, metavar="N", help="the next N job starts answer 409")
    faults.add_argument("--data-value-conflict-next", type=int, metavar="N",
                        help="the next N data value imports answer a conflict (#25)")
    faults.add_argument("--drop-feed-after-completion", action="store_true",
                        help="a finished job's task feed answers [] (as after a restart)")
    faults.add_argument("--login-redirect", action="store_true",
                        help="unauthenticated calls get 302 to the login page instead of 401")
    faults.add_argument("--coc-generation-delay", type=float, metavar="S",
                        help="generated category option combos appear S seconds late")
    faults.add_argument("--coc-in-use", action="store_true",
                        help="obsolete category option combos are in use: the per-combo COC update "
                             "keeps them and answers 409 with a WARNING ImportSummaries")
    faults.add_argument("--outage", type=_pair, action="append", default=[], metavar="AFTER:SECONDS",
                        help="AFTER seconds from now, close the listening socket (connection refused) "
                             "for SECONDS; jobs go on (repeatable)")
    hostile = parser.add_argument_group("hostile answers (a broken or compromised proxy)")
    hostile.add_argument("--gzip-bomb", type=int, nargs="?", const=1, metavar="N",
                         help="the next N answers are 1 GiB of JSON whitespace gzipped (~1 MB)")
    hostile.add_argument("--stacked-gzip", type=int, nargs="?", const=1, metavar="N",
                         help="the next N answers are 2 GiB gzipped twice (Content-Encoding: gzip, gzip)")
    hostile.add_argument("--endless-body", type=int, nargs="?", const=1, metavar="N",
                         help="the next N answers are JSON that never ends")
    hostile.add_argument("--endless-html", metavar="N[:STATUS]", type=lambda t: _count_and(t, "--endless-html", int),
                         help="the next N answers are an endless HTML page with STATUS (default 500)")
    hostile.add_argument("--nan", type=int, nargs="?", const=1, metavar="N",
                         help="the next N answers carry \"percentage\":NaN")
    hostile.add_argument("--deep-nesting", metavar="N[:DEPTH]", type=lambda t: _count_and(t, "--deep-nesting", int),
                         help="the next N answers with issues get refs nested DEPTH (default 990) deep")
    hostile.add_argument("--redirect-to", metavar="URL", help="the next answer is 302 to URL")
    hostile.add_argument("--huge-header", type=int, nargs="?", const=1, metavar="N",
                         help="the next N answers carry a 70 KB header line")
    hostile.add_argument("--not-dhis2", action="store_true",
                         help="/api/system/info answers like another application ({\"status\":\"UP\"})")
    hostile.add_argument("--empty-next", type=int, nargs="?", const=1, metavar="N",
                         help="the next N successful answers are HTTP 200 with an empty body "
                              "(the request is carried out: a POST starts its job)")
    hostile.add_argument("--only-path", metavar="PREFIX",
                         help="hostile and empty answers only for paths starting with PREFIX, "
                              "e.g. /api/dataIntegrity/details")
    hostile.add_argument("--only-method", metavar="METHOD", type=str.upper,
                         help="hostile and empty answers only for this method, e.g. GET")
    return parser


def apply_faults(srv: Dhis2StandIn, args: argparse.Namespace) -> None:
    """Set the knobs the parsed flags ask for (see build_parser)."""
    for name, n in args.issues:
        if name is None:
            srv.set_default_issue_count(n)
        else:
            srv.set_issue_count(name, n)
    for name in args.fail_check:
        srv.fail_check(name)
    for uid in args.fail_predictor:
        srv.fail_predictor(uid)
    srv.verbose_notifications = bool(args.verbose_notifications)
    if args.fail_next:
        count, status = args.fail_next
        srv.fail_next(count, status or 503)
    for flag, knob in (("hang_next", srv.hang_next), ("truncate_next", srv.truncate_next),
                       ("drop_response_next", srv.drop_response_next), ("html_next", srv.html_next),
                       ("conflict_next", srv.conflict_next),
                       ("data_value_conflict_next", srv.data_value_conflict_next)):
        if getattr(args, flag):
            knob(getattr(args, flag))
    if args.delay:
        srv.set_delay(args.delay)
    if args.trickle:
        srv.set_trickle(args.trickle)
    if args.start_delay:
        srv.start_delay = args.start_delay
    if args.fail_next_job:
        srv.fail_next_job(args.fail_next_job)
    srv.drop_feed_after_completion = bool(args.drop_feed_after_completion)
    srv.login_redirect = bool(args.login_redirect)
    if args.coc_generation_delay:
        srv.coc_generation_delay = args.coc_generation_delay
    srv.coc_in_use = bool(args.coc_in_use)
    if args.nameless_every:
        srv.nameless_every = args.nameless_every
    if args.drift:
        srv.drift = args.drift
    if args.job_error_codes:
        srv.job_error_codes = args.job_error_codes
    path, method = args.only_path, args.only_method
    if args.gzip_bomb:
        srv.gzip_bomb_next(args.gzip_bomb, path=path, method=method)
    if args.stacked_gzip:
        srv.gzip_bomb_next(args.stacked_gzip, size=2 << 30, layers=2, path=path,
                           method=method)
    if args.endless_body:
        srv.endless_body_next(args.endless_body, path=path, method=method)
    if args.endless_html:
        count, status = args.endless_html
        srv.endless_body_next(count, status=status or 500, content_type="text/html", path=path,
                              method=method)
    if args.nan:
        srv.nan_next(args.nan, path=path, method=method)
    if args.deep_nesting:
        count, depth = args.deep_nesting
        srv.deep_nesting_next(count, depth=depth or 990, path=path, method=method)
    if args.redirect_to:
        srv.redirect_next(args.redirect_to, path=path, method=method)
    if args.huge_header:
        srv.huge_header_next(args.huge_header, path=path, method=method)
    if args.empty_next:
        srv.empty_next(args.empty_next, path=path, method=method)
    if args.not_dhis2:
        srv.answer_next('{"status":"UP","groups":["liveness","readiness"]}', count=1 << 30,
                        path="/api/system/info")
    for after, seconds in args.outage:
        srv.outage(seconds, after=after)


def main(argv: Optional[List[str]] = None) -> int:
    """`python -m dhis2maint.testing`: run a stand-in in the foreground until Ctrl-C."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        srv = Dhis2StandIn(version=args.version, job_seconds=args.job_seconds, seed=args.seed,
                           host=args.host, port=args.port, verbose=args.verbose)
    except ValueError as e:
        parser.error(str(e))
    user, password = next(iter(srv.users.items()))
    token = next(iter(srv.tokens))
    try:
        url = srv.url
    except OSError as e:
        print("cannot listen on %s:%d: %s" % (args.host, args.port, e), file=sys.stderr)
        return 1
    print("DHIS2 %s stand-in at %s  username/password %s/%s  token %s" % (
        srv.full_version, url, user, password, token), flush=True)
    # ready to paste into another terminal (#21.5)
    print("\n# in another terminal:\nexport DHIS2_URL=%s\nexport DHIS2_USERNAME=%s\n"
          "export DHIS2_PASSWORD=%s\n# or, for the token: export DHIS2_PAT=%s\n"
          "dhis2maint doctor" % (url, user, password, token), flush=True)
    try:
        srv.start()  # in a thread, so an outage can close and reopen the socket
        apply_faults(srv, args)
        while not srv._stop_event.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

