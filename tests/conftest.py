"""Fixtures shared by the end-to-end tests."""
import time
import weakref

import pytest
import requests

from dhis2maint import Session
from dhis2maint.testing import Dhis2StandIn

# ---------------------------------------------------------------------------
# Sessions a test leaves open.  urllib3 1.x (the `min` env) does not close a
# dropped pool's sockets, so an open Session that the garbage collector finds
# later (in a reference cycle, e.g. through a caught exception's traceback)
# prints "Exception ignored ... unclosed socket" -- warnings are errors here --
# into whatever test runs then, e.g. into the stderr a CLI test asserts on.
# Every Session made during a test is closed after it, so none is left to the
# garbage collector.

_OPEN_SESSIONS = weakref.WeakSet()
_session_init = requests.Session.__init__


def _tracked_init(self, *args, **kwargs):
    _session_init(self, *args, **kwargs)
    _OPEN_SESSIONS.add(self)


requests.Session.__init__ = _tracked_init


@pytest.fixture(autouse=True)
def _sessions_closed():
    before = set(_OPEN_SESSIONS)
    yield
    for session in [s for s in _OPEN_SESSIONS if s not in before]:
        session.close()
        _OPEN_SESSIONS.discard(session)


@pytest.fixture
def serve(start_standin):
    """``serve(version="2.42", job_seconds=0.3, **knobs)`` -> ``(stand-in, Session)``.

    Starts a :class:`Dhis2StandIn` with the knobs set (``start_delay=0.8``,
    ``drop_feed_after_completion=True``, ...) and a session on it (basic auth,
    one retry); every stand-in started is stopped after the test.
    """
    def start(version="2.42", job_seconds=0.3, **knobs):
        srv = start_standin(version, job_seconds, **knobs)
        return srv, Session(srv.url, auth=("admin", "district"), retries=1)

    return start


# ---------------------------------------------------------------------------
# The fake clock (#20.1): every wait in the package takes its time from
# dhis2maint.polling.clock, so replacing that one object makes waits instant.

class FakeClock:
    """Simulated monotonic seconds; ``sleep`` moves time on at once and is recorded.

    (CI wall time) ``at(seconds, action)`` runs ``action()`` once the simulated time has
    moved on by `seconds` (an outage that ends, a fault armed mid-wait); ``drive(srv)``
    makes a stand-in's clock follow this one, so its simulated jobs are over once the
    waits have slept ``job_seconds`` -- no real seconds go by.
    """

    def __init__(self, now=5000.0):
        self.now = now
        self.slept = 0.0  # simulated seconds slept (what a driven stand-in's clock adds)
        self.sleeps = []
        self._due = []  # (simulated time, order, action)

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds
        self.slept += seconds
        self._run_due()

    def at(self, seconds, action):
        """Run ``action()`` when ``sleep`` has moved the time `seconds` past now."""
        self._due.append((self.now + seconds, len(self._due), action))
        self._due.sort(key=lambda item: item[:2])
        self._run_due()

    def _run_due(self):
        while self._due and self._due[0][0] <= self.now:
            self._due.pop(0)[2]()

    def wall(self):
        """The real wall clock plus the simulated seconds slept: a driven stand-in's time."""
        return time.time() + self.slept

    def drive(self, *servers):
        """Make the stand-ins' clocks (``Dhis2StandIn._now``) follow this clock; returns
        the first."""
        for srv in servers:
            srv._now = self.wall
        return servers[0] if servers else None


@pytest.fixture
def fake_clock(monkeypatch):
    """A :class:`FakeClock` standing in for ``dhis2maint.polling.clock`` (``.now``,
    ``.sleeps``)."""
    from dhis2maint import polling

    fake = FakeClock()
    monkeypatch.setattr(polling, "clock", fake)
    return fake


@pytest.fixture
def fake_time(fake_clock, monkeypatch):
    """(CI wall time) :func:`fake_clock`, and every stand-in of the test follows it (the
    ones started before it too): a wait for a simulated job of ``job_seconds`` takes no
    real time.  Requests still go over real HTTP; a subprocess keeps the real clock (its
    stand-in jobs then take their real ``job_seconds``).  Each test starts at the real
    time: a module-scoped stand-in may hold a job of an earlier test planned up to that
    test's simulated seconds ahead."""
    monkeypatch.setattr(Dhis2StandIn, "_now", lambda self: fake_clock.wall())
    return fake_clock

# --- PostgreSQL 15 for the history tests (#24) --------------------------------------------
# A fresh cluster in a temporary directory owned by the `postgres` user (PostgreSQL refuses
# to run as root), on a free 127.0.0.1 port with password auth, started once per session
# and stopped at its end.  Missing binaries, user or psycopg: skip with the reason --
# except when $CI is set, where they are a failure (.ci/run installs `postgresql`).

PG_BIN = "/usr/lib/postgresql/15/bin"
PG_PASSWORD = "Canary-Pg-Pw-42"


def _pg_missing(reason):
    import os

    if os.environ.get("CI"):
        pytest.fail("PostgreSQL is needed in CI: " + reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server():
    """``{"url": "postgresql://dhis2maint:PW@127.0.0.1:PORT/history", "bin": ..., ...}``:
    a running PostgreSQL 15 server of this test session (superuser ``dhis2maint``)."""
    import os
    import pwd
    import shutil
    import socket
    import subprocess

    try:
        import psycopg  # noqa: F401
    except ImportError:
        _pg_missing("psycopg is not installed (pip install 'dhis2maint[postgres]')")
    if not os.path.exists(os.path.join(PG_BIN, "initdb")):
        _pg_missing("PostgreSQL 15 is not installed ({} has no initdb; apt-get install "
                    "postgresql)".format(PG_BIN))
    runas = []
    if os.getuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            _pg_missing("running as root and there is no `postgres` user to run the server")
        runas = ["runuser", "-u", "postgres", "--"]
    else:
        owner = pwd.getpwuid(os.getuid())
    import tempfile

    base = tempfile.mkdtemp(prefix="dhis2maint-pg-")  # pytest's tmp dirs are root-only (0700)
    os.chmod(base, 0o755)
    data, log, pwfile = (os.path.join(base, n) for n in ("data", "server.log", "pw"))
    with open(pwfile, "w") as f:
        f.write(PG_PASSWORD + "\n")
    for path in (base, pwfile):
        os.chown(path, owner.pw_uid, owner.pw_gid)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
    subprocess.run(runas + [os.path.join(PG_BIN, "initdb"), "-D", data, "-U", "dhis2maint",
                            "--pwfile", pwfile, "--auth", "scram-sha-256", "-E", "UTF8",
                            "--no-sync"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                   cwd=base)
    with open(os.path.join(data, "pg_hba.conf"), "w") as f:
        f.write("host all all 127.0.0.1/32 scram-sha-256\n"
                "local all all scram-sha-256\n")
    with open(os.path.join(data, "postgresql.conf"), "a") as f:
        f.write("\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 60\nshared_buffers = 64MB\n".format(port, base))
    subprocess.run(runas + [os.path.join(PG_BIN, "pg_ctl"), "-D", data, "-l", log, "-w",
                            "-t", "60", "start"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                   cwd=base)
    url = "postgresql://dhis2maint:{}@127.0.0.1:{}/".format(PG_PASSWORD, port)
    try:
        import psycopg

        with psycopg.connect(url + "postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE history")
        yield {"url": url + "history", "admin_url": url + "postgres", "port": port,
               "password": PG_PASSWORD, "data": data, "log": log}
    finally:
        subprocess.run(runas + [os.path.join(PG_BIN, "pg_ctl"), "-D", data, "-m", "fast",
                                "-w", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=base)
        shutil.rmtree(base, ignore_errors=True)


_pg_schemas = []


@pytest.fixture
def pg_url(postgres_server, request):
    """A PostgreSQL history URL with a schema of this test's own (``?schema=t<N>``)."""
    _pg_schemas.append(request.node.name)
    return "{}?schema=t{}".format(postgres_server["url"], len(_pg_schemas))


@pytest.fixture(params=["sqlite", "postgresql"])
def history_target(request, tmp_path):
    """``history_target()`` -> a new, empty history target: an SQLite file, or a
    PostgreSQL URL with a fresh schema; the test runs once with each backend."""
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
    made = []

    def make():
        made.append(None)
        if request.param == "sqlite":
            return str(tmp_path / "h{}.sqlite".format(len(made)))
        _pg_schemas.append(request.node.name)
        return "{}?schema=t{}".format(server["url"], len(_pg_schemas))
    make.backend = request.param
    return make

# --- shared fixtures: a stand-in per version, a session on it, the CLI runner (#20.8) ---------
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _standins():
    """A factory starting stand-ins, and the list of them to stop."""
    servers = []

    def start(version="2.42", job_seconds=0.3, users=None, **kwargs):
        made = {k: kwargs.pop(k) for k in ("tokens", "issues", "seed", "host", "port", "verbose")
                if k in kwargs}
        srv = Dhis2StandIn(version=version, job_seconds=job_seconds, users=users, **made)
        for name, value in kwargs.items():
            setattr(srv, name, value)
        servers.append(srv.start())
        return srv
    return start, servers


@pytest.fixture
def start_standin():
    """``start_standin(version="2.42", job_seconds=0.3, users=None, **kwargs)`` -> a started
    :class:`Dhis2StandIn`.  ``tokens``, ``issues``, ``seed``, ``host``, ``port`` and ``verbose``
    go to the constructor, any other keyword is a knob set before it starts; every one
    started is stopped after the test.  (``serve`` gives one with a Session on it.)"""
    start, servers = _standins()
    yield start
    for srv in servers:
        srv.stop()


@pytest.fixture(scope="module")
def start_module_standin():
    """:func:`start_standin` for module-scoped fixtures: stopped after the module."""
    start, servers = _standins()
    yield start
    for srv in servers:
        srv.stop()


def run_dhis2maint(args, url=None, env=None, timeout=60, password="district", secrets=(),
                   unset=(), **kwargs):
    """``python -m dhis2maint ARGS`` in a clean environment (no ``DHIS2_*`` nor any variable
    starting with one of `unset`), logged in as admin/`password` on `url` (a URL or a
    stand-in) when given, plus `env`; asserts none of `secrets` shows in stdout or stderr.
    Returns the CompletedProcess."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DHIS2_",) + tuple(unset))}
    environ["PYTHONPATH"] = ROOT + os.pathsep + environ.get("PYTHONPATH", "")
    if url:
        environ.update({"DHIS2_URL": getattr(url, "url", url), "DHIS2_USERNAME": "admin",
                        "DHIS2_PASSWORD": password})
    environ.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "dhis2maint"] + list(args), env=environ,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          universal_newlines=True, **kwargs)
    for secret in secrets:
        assert secret not in proc.stdout and secret not in proc.stderr
    return proc


@pytest.fixture
def run_cli(request):
    """:func:`run_dhis2maint`; a test module overrides this fixture to set its defaults
    (``def run_cli(run_cli): return functools.partial(run_cli, password=..., secrets=...)``).
    (CI wall time) Under ``pytest.mark.cli_in_process``: :func:`run_dhis2maint_in_process`."""
    if request.node.get_closest_marker("cli_in_process"):
        return run_dhis2maint_in_process
    return run_dhis2maint


# --- a TLS loopback server (#20: written once, not per test file) ----------------------


@pytest.fixture
def tls_server(tmp_path):
    """``tls_server(status, days=5)`` starts an https server on a free loopback port that
    answers every GET with an empty ``status``, with a fresh self-signed certificate for
    ``localhost`` valid ``days`` days; returns (``https://localhost:PORT``, the
    certificate's path).  Stopped after the test.  Without openssl: skip (fail with CI
    set)."""
    import shutil
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    if not shutil.which("openssl"):
        if os.environ.get("CI"):
            pytest.fail("openssl is missing")
        pytest.skip("openssl is not installed")
    servers = []

    def start(status, days=5):
        cert, key = tmp_path / "c{}.pem".format(len(servers)), tmp_path / "k.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        str(key), "-out", str(cert), "-days", str(days), "-subj",
                        "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        httpd = HTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return "https://localhost:%d" % httpd.server_port, cert

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


# --- helpers the metrics tests share (``from conftest import read, values``) ------------


def read(path):
    """The text of the file at ``path`` (UTF-8)."""
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def values(text, name, **labels):
    """The values of series ``name`` in Prometheus text ``text`` whose labels include
    ``labels``."""
    from dhis2maint import metrics

    return [s.value for s in metrics.parse(text) if s.name == name
            and all(s.label(k) == v for k, v in labels.items())]


def dhis2_env(monkeypatch, url=None, password="district"):
    """For an in-process ``cli.main``: no ``DHIS2_*`` settings nor history file from the
    environment; with ``url``, log in there as admin/``password``."""
    for name in ("DHIS2_URL", "DHIS2_USERNAME", "DHIS2_PASSWORD", "DHIS2_PAT",
                 "DHIS2MAINT_HISTORY"):
        monkeypatch.delenv(name, raising=False)
    if url:
        monkeypatch.setenv("DHIS2_URL", url)
        monkeypatch.setenv("DHIS2_USERNAME", "admin")
        monkeypatch.setenv("DHIS2_PASSWORD", password)


def cli_main(args, capsys, monkeypatch, url=None, password="district"):
    """``cli.main(ARGS)`` in this process under :func:`dhis2_env` -> (exit code, stdout,
    stderr), captured by pytest's ``capsys``; the password never shows in either."""
    from dhis2maint import cli

    dhis2_env(monkeypatch, url, password)
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    assert password not in out + err
    return code, out, err


# --- ci: `dhis2maint ARGS` in this process (CI wall time) ------------------------------------
# A subprocess costs a Python start and the package's import (~0.6 s of CPU) and keeps the
# real clock; in this process a command costs what it does, and waits for the stand-ins'
# jobs follow the fake clock when the test uses `fake_time`.  Keep at least one subprocess
# test per feature for the console-script path (`run_dhis2maint`).

def run_dhis2maint_in_process(args, url=None, env=None, timeout=None, password="district",
                              secrets=(), unset=(), stdin=None):
    """:func:`run_dhis2maint` without the subprocess: ``dhis2maint.cli.main(args)`` with the
    same clean environment (``os.environ`` swapped for the call), stdout/stderr captured and
    no terminal anywhere (stdin empty); SystemExit becomes the exit code.  `timeout` and
    `stdin` are accepted for the same call signature (stdin is never a terminal here).
    Returns a CompletedProcess with text stdout/stderr."""
    import io

    from dhis2maint import cli

    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DHIS2_",) + tuple(unset))}
    if url:
        environ.update({"DHIS2_URL": getattr(url, "url", url), "DHIS2_USERNAME": "admin",
                        "DHIS2_PASSWORD": password})
    environ.update(env or {})
    saved_env = dict(os.environ)
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(environ)
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(""), out, err
    try:
        try:
            code = cli.main(list(args))
        except SystemExit as exc:  # argparse: exit 2 on bad usage, 0 after --help
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        os.environ.clear()
        os.environ.update(saved_env)
    proc = subprocess.CompletedProcess(["dhis2maint"] + list(args), code, out.getvalue(),
                                       err.getvalue())
    for secret in secrets:
        assert secret not in proc.stdout and secret not in proc.stderr
    return proc


def pytest_configure(config):
    config.addinivalue_line("markers", "cli_in_process: the run_cli fixture runs `dhis2maint` "
                            "in this process (run_dhis2maint_in_process), not a subprocess")


@pytest.fixture
def run_cli_subprocess():
    """:func:`run_dhis2maint` even under ``cli_in_process``: the console script's own path."""
    return run_dhis2maint


# --- headless Chromium: the HTML pages' browser tests (report, fleet dashboard) --------------

@pytest.fixture(scope="session")
def chromium():
    """The path of Debian's headless Chromium (``$CHROMIUM`` first); skip without it,
    except in CI, where a missing browser fails."""
    import shutil

    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        path = name and shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium not installed: apt-get install chromium")
    pytest.skip("chromium not installed: apt-get install chromium")


def run_chromium(chromium, folder, page, *args):
    """Headless Chromium on the file ``page`` with ``args`` (e.g. ``--dump-dom``), its
    profile in ``folder``; returns stdout (the DOM for ``--dump-dom``)."""
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--hide-scrollbars",
               "--user-data-dir={}".format(folder / "profile"), "--virtual-time-budget=5000"]
    result = subprocess.run(command + list(args) + ["file://{}".format(page)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")[-2000:]
    return result.stdout.decode("utf-8")


def png_size_and_ink(path):
    """(width, height, share of non-blank sampled bytes) of a PNG screenshot: filtered
    scanlines of a blank page are almost all zero bytes."""
    import struct
    import zlib

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    chunks, offset = [], 8
    while offset < len(data):
        length = struct.unpack(">I", data[offset:offset + 4])[0]
        if data[offset + 4:offset + 8] == b"IDAT":
            chunks.append(data[offset + 8:offset + 8 + length])
        offset += 12 + length
    pixels = zlib.decompress(b"".join(chunks))
    return width, height, sum(1 for b in pixels[::97] if b) / float(len(pixels[::97]))


# --- Apache Airflow: the example DAGs' tests (tox -e airflow / airflow3) ----------------------

def require_airflow():
    """Skip the calling test module when Airflow cannot be imported; an error instead when
    DHIS2MAINT_REQUIRE_AIRFLOW=1 (the airflow tox envs must not pass without Airflow)."""
    import importlib.util

    if importlib.util.find_spec("airflow") is None:
        if os.environ.get("DHIS2MAINT_REQUIRE_AIRFLOW") == "1":
            raise RuntimeError("DHIS2MAINT_REQUIRE_AIRFLOW=1 but Airflow is not importable here")
        pytest.skip("Apache Airflow is not installed (tox -e airflow runs these tests)",
                    allow_module_level=True)


def airflow_cli(env, *args, timeout=600):
    """``airflow ARGS`` in a subprocess: (exit code, stdout+stderr)."""
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "airflow"] + list(args), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=timeout)
    return proc.returncode, proc.stdout


def airflow_home(folder, dag_file, settings):
    """An AIRFLOW_HOME in ``folder`` with ``dag_file`` in its dags folder and a migrated
    sqlite database -> its environment: this one without AIRFLOW*/DHIS2_* settings, plus
    ``settings`` and this checkout on PYTHONPATH."""
    import shutil

    dags = folder / "dags"
    dags.mkdir()
    shutil.copy(dag_file, str(dags / os.path.basename(dag_file)))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "DHIS2_", "PYTHONWARNINGS"))}
    env.update({
        "AIRFLOW_HOME": str(folder),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:///" + str(folder / "airflow.db"),
        "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        + os.pathsep + os.environ.get("PYTHONPATH", ""),
    })
    env.update(settings)
    code, out = airflow_cli(env, "db", "migrate")
    assert code == 0, out[-3000:]
    return env
