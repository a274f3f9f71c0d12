"""No secret is ever shown; TLS, redirects and path parameters are safe.

A canary password and a canary token are used for real requests (basic auth,
ApiToken, Bearer) against Dhis2StandIn along many paths -- success, 401, 403,
5xx, connection refused, timeouts, job failures, redirects -- while ALL logging
is captured at DEBUG (root logger, urllib3's connection lines, "dhis2maint").
Every log line, every repr/str of sessions, auth objects, jobs and exceptions
(with their args, their whole __cause__/__context__ chain and formatted
traceback), the repr of unpickled sessions and errors, and the CLI's
stdout/stderr with --debug are then searched for the canaries.
"""
import http.server
import logging
import os
import pickle
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback

import pytest

from dhis2maint import (AuthenticationError, Dhis2Error, InvalidResponseError, JobFailedError,
                        PermissionDenied,
                        ServerError, Session, TaskTimeoutError, TransportError)
from dhis2maint import session as session_module

# Simulated time (tests/conftest.py fake_time): the stand-ins' jobs and the waits for them
# take no real seconds; requests still go over real HTTP.
pytestmark = pytest.mark.usefixtures("fake_time")

testing = pytest.importorskip("dhis2maint.testing")

PASSWORD = "Pw-Canary-7f3a9c!x"
TOKEN = "d2pat_TokCanary9b8c7d6e5f4a3b2c1d0e9f8a7b6c"
CANARIES = (PASSWORD, TOKEN)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))
        self.lines.append(repr(record.args))


@pytest.fixture
def captured():
    """Every log record at DEBUG, from every logger, formatted; restored afterwards."""
    handler = _Capture()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    loggers = [root, logging.getLogger("urllib3"), logging.getLogger("dhis2maint")]
    old_levels = [lg.level for lg in loggers]
    root.addHandler(handler)
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        for lg, level in zip(loggers, old_levels):
            lg.setLevel(level)


def _exception_texts(exc):
    """str/repr/args of an exception and of every exception chained to it, and
    its formatted traceback."""
    texts = ["".join(traceback.format_exception(type(exc), exc, exc.__traceback__))]
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        texts += [str(exc), repr(exc), repr(exc.args)]
        if isinstance(exc, Dhis2Error):
            clone = pickle.loads(pickle.dumps(exc))
            texts += [str(clone), repr(clone), repr(vars(clone))]
        exc = exc.__cause__ or exc.__context__
    return texts


def _assert_clean(texts):
    for text in texts:
        for canary in CANARIES:
            assert canary not in text, "secret shown in: {!r}".format(text[:300])


def _session_texts(session):
    data = pickle.dumps(session)
    assert PASSWORD.encode() in data or TOKEN.encode() in data  # a pickle must hold it
    clone = pickle.loads(data)
    return [repr(session), str(session), repr(session.auth), str(session.auth),
            repr(clone), str(clone), repr(clone.auth), str(clone.auth)]


@pytest.fixture
def standin(start_standin):
    return start_standin("2.42", job_seconds=0.1, users={"admin": PASSWORD}, tokens={TOKEN: "admin"})


def _sessions(url, **kwargs):
    kwargs.setdefault("timeout", 0.5)
    kwargs.setdefault("retries", 1)
    return [Session(url, auth=("admin", PASSWORD), **kwargs),
            Session(url, token=TOKEN, **kwargs),
            Session(url, token=TOKEN, bearer=True, **kwargs)]


def _closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture(autouse=True)
def small_backoff(monkeypatch):
    monkeypatch.setattr(session_module._Retry, "MAX_BACKOFF", 0.05)


# ---------------------------------------------------------------------------
# the canary


def test_canaries_never_shown_on_any_path(standin, captured):
    srv = standin
    texts = []
    errors = []

    def expect(error_class, call):
        with pytest.raises(error_class) as info:
            call()
        errors.append(info.value)

    for session in _sessions(srv.url):
        # success
        assert session.server_version == (2, 42, 0)
        job = session.refresh_analytics()
        texts += [repr(job), str(job)]
        job.wait(timeout=10, poll_interval=0.05)
        report = session.run_integrity_checks(["categories_no_options"], timeout=10)
        texts.append(repr(report))
        texts += [repr(list(session.iter_integrity_issues(["categories_no_options"])))]
        # 403
        srv.authorities["admin"] = ["F_SOMETHING_ELSE"]
        expect(PermissionDenied, session.clear_cache)
        srv.authorities.clear()
        # 5xx, GET retried then given up
        srv.fail_next(2, 503)
        expect(ServerError, session.list_integrity_checks)
        # a truncated answer
        srv.truncate_next(1)
        expect(Dhis2Error, session.list_integrity_checks)
        # timeouts: a POST that hangs, a GET that is too slow
        srv.hang_next(1, method="POST")
        expect(TransportError, session.refresh_resource_tables)
        srv.set_delay(0.7)
        expect(TransportError, session.list_integrity_checks)
        srv.set_delay(0)
        time.sleep(0.8)  # the slow answers end before the next fault is armed
        # a job that fails, a job that does not finish in time
        srv.fail_next_job("Process failed: database said no")
        expect(JobFailedError, lambda: session.refresh_analytics().wait(
            timeout=10, poll_interval=0.05))
        srv.job_seconds = 5
        expect(TaskTimeoutError, lambda: session.refresh_analytics().wait(
            timeout=0.2, poll_interval=0.05))
        srv.job_seconds = 0.1
        texts += _session_texts(session)
    # 401 and the 302 to the login page: the canary is sent, and refused
    srv.users["admin"] = "another-password"
    srv.tokens.clear()
    for session in _sessions(srv.url):
        expect(AuthenticationError, lambda: session.server_version)
        srv.login_redirect = True
        session.server_version = None
        expect(AuthenticationError, lambda: session.server_version)
        srv.login_redirect = False
        texts += _session_texts(session)
    # connection refused
    for session in _sessions("http://127.0.0.1:{}".format(_closed_port())):
        expect(TransportError, lambda: session.server_version)
        expect(TransportError, session.refresh_analytics)
    for err in errors:
        texts += _exception_texts(err)
    kinds = [type(e).__name__ for e in errors]
    assert len(errors) == 3 * 7 + 3 * 2 + 3 * 2, kinds
    assert any("Starting new HTTP connection" in line for line in captured)  # urllib3's
    assert any(line.startswith("dhis2maint DEBUG GET /api/") for line in captured)
    _assert_clean(texts + captured)


def test_credentials_in_the_url_never_shown(captured):
    url = "https://admin:{}@dhis2.example.org/".format(PASSWORD)
    session = Session(url)
    _assert_clean(_session_texts(session) + [session.base_url])
    # a URL without a scheme is an error that must not echo the password
    for bad in ("admin:{}@dhis2.example.org".format(PASSWORD),
                "admin:{}@dhis2.example.org/api".format(PASSWORD)):
        with pytest.raises(Dhis2Error) as info:
            Session(bad)
        assert "***@dhis2.example.org" in str(info.value)
        _assert_clean(_exception_texts(info.value))
    _assert_clean(captured)


def test_debug_logging_names_method_path_status_and_duration(standin, captured):
    Session(standin.url, auth=("admin", PASSWORD)).list_integrity_checks()
    ours = [line for line in captured if line.startswith("dhis2maint DEBUG GET /api/dataIntegrity")]
    assert ours and "GET /api/dataIntegrity -> 200 in " in ours[0] and ours[0].endswith(" ms")


def test_library_logger_is_silent_by_default():
    logger = logging.getLogger("dhis2maint")
    assert any(isinstance(h, logging.NullHandler) for h in logger.handlers)


# ---------------------------------------------------------------------------
# the command line with --debug


def _cli(args, env):
    full_env = dict(os.environ, PYTHONPATH=ROOT, **env)
    for name in ("DHIS2_URL", "DHIS2_PAT", "DHIS2_USERNAME", "DHIS2_PASSWORD"):
        if name not in env:
            full_env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "dhis2maint", "--debug"] + args,
                          cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)


def test_cli_debug_output_never_shows_the_canary(standin):
    srv = standin
    basic = {"DHIS2_URL": srv.url, "DHIS2_USERNAME": "admin", "DHIS2_PASSWORD": PASSWORD}
    token = {"DHIS2_URL": srv.url, "DHIS2_PAT": TOKEN}
    runs = [
        (["integrity", "checks", "--format", "json"], basic, 0),
        (["refresh", "analytics", "--quiet"], token, 0),
        (["task", "status", "ANALYTICS_TABLE"], basic, 0),
    ]
    outputs = []
    for args, env, code in runs:
        done = _cli(args, env)
        assert done.returncode == code, done.stderr.decode()[-2000:]
        outputs += [done.stdout.decode(), done.stderr.decode()]
    # a refused password: --debug shows the traceback, still without the canary
    srv.users["admin"] = "another-password"
    done = _cli(["integrity", "checks"], basic)
    assert done.returncode != 0 and b"AuthenticationError" in done.stderr
    outputs += [done.stdout.decode(), done.stderr.decode()]
    assert any("DEBUG" in text and "/api/dataIntegrity" in text for text in outputs)
    _assert_clean(outputs)


# ---------------------------------------------------------------------------
# redirects never carry the Authorization header to another host


def _answer_system_info(handler):
    """Answer a stdlib handler's request with a 2.42 ``/api/system/info`` body."""
    body = b'{"version": "2.42.0"}'
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class _Redirector(http.server.BaseHTTPRequestHandler):
    """GET /api/system/info -> 302 to ``server.location``; GET /final -> 200 JSON."""

    def do_GET(self):  # noqa: N802 - stdlib naming
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/final"):
            _answer_system_info(self)
            return
        self.send_response(302)
        self.send_header("Location", self.server.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def redirector():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Redirector)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("target", ["localhost", "127.0.0.1"])
@pytest.mark.parametrize("kind", ["basic", "token", "bearer"])
def test_redirect_to_another_host_is_not_followed(standin, redirector, captured, target, kind):
    # localhost is another host name; 127.0.0.1 on another port is another origin too.
    # The other server is never asked (#13: its unauthenticated answer used to be
    # taken as DHIS2's); the error names the target and what to set.
    port = standin.url.rsplit(":", 1)[1]
    redirector.location = "http://{}:{}/api/system/info".format(target, port)
    session = dict(zip(["basic", "token", "bearer"],
                       _sessions("http://127.0.0.1:{}".format(redirector.server_port))))[kind]
    with pytest.raises(InvalidResponseError) as info:
        session.server_version
    assert redirector.seen[0][1] is not None  # the first host got the credentials
    assert not [r for r in standin.requests if r.path == "/api/system/info"]
    assert "{}:{}".format(target, port) in str(info.value)
    assert "set the base URL to http://{}:{}".format(target, port) in str(info.value)
    _assert_clean(_exception_texts(info.value) + captured)


def test_redirect_on_the_same_host_keeps_the_authorization_header(redirector):
    redirector.location = "/final"
    session = Session("http://127.0.0.1:{}".format(redirector.server_port),
                      auth=("admin", PASSWORD))
    assert session.server_version == (2, 42, 0)
    assert [auth is not None for _, auth in redirector.seen] == [True, True]


# ---------------------------------------------------------------------------
# warnings about insecure settings


def test_http_base_url_with_credentials_warns(captured):
    Session("http://dhis2.example.org", auth=("admin", PASSWORD))
    Session("http://127.0.0.1:8080", auth=("admin", PASSWORD))  # local: no warning
    Session("http://dhis2.example.org")  # no credentials: no warning
    warnings = [line for line in captured if "without TLS" in line]
    assert len(warnings) == 1 and "dhis2.example.org" in warnings[0]
    _assert_clean(captured)


def test_verify_false_warns_once_per_host(captured):
    for _ in range(3):
        Session("https://insecure-redaction.example.org", token=TOKEN, verify=False)
    assert sum("TLS verification is off" in line for line in captured) == 1
    _assert_clean(captured)


# ---------------------------------------------------------------------------
# TLS: verification on by default, a CA bundle by path or REQUESTS_CA_BUNDLE


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, timeout=60)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """An HTTPS server on 127.0.0.1 with a certificate from a throw-away CA."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate "
                    "(apt-get install openssl)")
    where = tmp_path_factory.mktemp("tls")
    cwd = str(where)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=dhis2maint test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=cwd)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=cwd)
    (where / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf",
             cwd=cwd)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "other.key", "-out", "other-ca.pem", "-days", "2",
             "-subj", "/CN=some other CA", cwd=cwd)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            _answer_system_info(self)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(where / "server.pem"), str(where / "server.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield "https://127.0.0.1:{}".format(server.server_port), where
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_ca_env(monkeypatch):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _tls_session(url, **kwargs):
    return Session(url, auth=("admin", PASSWORD), timeout=5, retries=0, **kwargs)


def test_tls_verified_by_default(tls_server, no_ca_env, captured):
    url, where = tls_server
    with pytest.raises(TransportError, match="TLS failed") as info:
        _tls_session(url).server_version
    _assert_clean(_exception_texts(info.value) + captured)


def test_tls_ca_bundle_by_path(tls_server, no_ca_env):
    url, where = tls_server
    assert _tls_session(url, verify=str(where / "ca.pem")).server_version == (2, 42, 0)


def test_tls_ca_bundle_from_requests_ca_bundle(tls_server, no_ca_env):
    url, where = tls_server
    no_ca_env.setenv("REQUESTS_CA_BUNDLE", str(where / "ca.pem"))
    assert _tls_session(url).server_version == (2, 42, 0)


def test_tls_explicit_path_wins_over_requests_ca_bundle(tls_server, no_ca_env):
    # requests alone would let the environment's bundle replace verify="/path"
    url, where = tls_server
    no_ca_env.setenv("REQUESTS_CA_BUNDLE", str(where / "other-ca.pem"))
    assert _tls_session(url, verify=str(where / "ca.pem")).server_version == (2, 42, 0)
    with pytest.raises(TransportError, match="TLS failed"):
        _tls_session(url).server_version  # verify=True: the environment's (wrong) bundle


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verify_false_is_not_overridden_by_requests_ca_bundle(tls_server, no_ca_env):
    url, where = tls_server
    no_ca_env.setenv("REQUESTS_CA_BUNDLE", str(where / "other-ca.pem"))
    assert _tls_session(url, verify=False).server_version == (2, 42, 0)


# ---------------------------------------------------------------------------
# path parameters


@pytest.mark.parametrize("name", ["../users", "../../api/me", "..%2Fusers", "a/../../users",
                                  "x?fields=*", "x#frag", "%2e%2e/users"])
def test_check_names_cannot_leave_their_endpoint(standin, name):
    session = Session(standin.url, auth=("admin", PASSWORD))
    session.server_version = (2, 42, 0)
    assert session.get_integrity_check_result(name) is None  # no such check: nothing cached
    paths = [r.path for r in standin.requests]
    assert len(paths) == 1 and paths[0].startswith("/api/dataIntegrity/")
    assert paths[0].endswith("/summary") and paths[0].count("/") == 4  # one segment
    assert not standin.requests[0].query  # "?" was quoted too


@pytest.mark.parametrize("call", [
    lambda s: s.get_job_configuration("../users"),
    lambda s: s.get_task_notifications("ANALYTICS_TABLE", "../../users"),
    lambda s: s.get_task_notifications("../users", "Vu1ZkG2Kb3D"),
    lambda s: s.wait_for_task("ANALYTICS_TABLE", "Vu1ZkG2Kb3/"),
    lambda s: s.prune_organisation_unit_data("../../me"),
    lambda s: s.prune_data_element_data("fbfJHSPpUQD/x"),
    lambda s: s.get_category_combo_state("t3aNCvHsoSn?x"),
    lambda s: s.update_category_option_combos("../x"),
    lambda s: s.run_predictors("2024-01-01", "2024-02-01", predictors=["../users"]),
    lambda s: s.run_validation_analysis("ImspTQPwCq/", "2024-01-01", "2024-02-01"),
    lambda s: s.wait_for_coc_generation("..", timeout=1),
], ids=["job_configuration", "task_id", "task_type", "wait", "prune_ou", "prune_de",
        "combo", "coc_update", "predictor", "validation_ou", "coc_wait"])
def test_uids_are_validated_before_any_request(standin, call):
    session = Session(standin.url, auth=("admin", PASSWORD))
    session.server_version = (2, 42, 0)
    with pytest.raises(ValueError):
        call(session)
    assert standin.requests == []
