"""Session.from_uri, Session.from_airflow_connection, Session.from_auth_file, the
"source" their hints name, and job progress on the ``dhis2maint`` logger.

Connections are fakes with the attributes Airflow's Connection has (duck
typing: Airflow is not a dependency); id look-ups go through stub
``airflow.sdk`` / ``airflow.hooks.base`` modules.  End-to-end cases run over real
HTTP against the stand-in.
"""
import inspect
import json
import logging
import os
import subprocess
import sys
import types

import pytest

import dhis2maint
from dhis2maint import (AuthenticationError, ConfigurationError, NotFound, Session,
                        TransportError)
from dhis2maint.testing import DEFAULT_TOKEN, Dhis2StandIn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "s3cr3t-Pa55"
TOKEN = "d2pat_" + "x" * 36


@pytest.fixture
def srv(start_standin):
    return start_standin("2.42")


@pytest.fixture
def ca_file(tmp_path):
    path = tmp_path / "ca.pem"
    path.write_text(u"-----BEGIN CERTIFICATE-----\n")
    return str(path)


def conn(host, schema="", port=None, login="", password=TOKEN, conn_type="http",
         conn_id="dhis2_default", **extra):
    """A fake Airflow Connection."""
    return types.SimpleNamespace(conn_id=conn_id, conn_type=conn_type, host=host, schema=schema,
                                 port=port, login=login, password=password, extra_dejson=extra)


# --- from_uri -------------------------------------------------------------------------------


def test_uri_user_and_password_are_basic_auth_url_decoded():
    session = Session.from_uri("https://admin:dis%40tr%3Aict%2F@DHIS2.example.org:8443/dhis")
    assert session.base_url == "https://dhis2.example.org:8443/dhis"
    assert session.auth_kind == "basic"
    assert (session.auth.username, session.auth.password) == ("admin", "dis@tr:ict/")
    assert session.source == "the DHIS2 URI"


def test_uri_password_alone_is_a_personal_access_token():
    session = Session.from_uri("https://:{}@dhis2.example.org/dhis/api/".format(TOKEN))
    assert session.base_url == "https://dhis2.example.org/dhis"
    assert session.auth_kind == "token" and session.auth.token == TOKEN
    bearer = Session.from_uri("https://:tok%2Ben@dhis2.example.org?bearer=true")
    assert bearer.auth_kind == "bearer" and bearer.auth.token == "tok+en"


def test_uri_query_settings_are_converted(ca_file):
    session = Session.from_uri(
        "https://:{}@dhis2.example.org/?timeout=12.5&retries=0&stream_deadline=60"
        "&recover_job_starts=yes&user_agent=nightly&verify={}".format(TOKEN, ca_file))
    assert session.timeout == 12.5 and session.retries == 0 and session.stream_deadline == 60
    assert session.recover_job_starts is True and session.headers["User-Agent"] == "nightly"
    assert session.verify == ca_file
    assert Session.from_uri("https://:t@h.example.org?verify=false").verify is False
    assert Session.from_uri("https://:t@h.example.org?verify=1").verify is True


@pytest.mark.parametrize("query, words", [
    ("timeout=abc", "'timeout' in the DHIS2 URI's query must be a number of seconds"),
    ("timeout=0", "'timeout'.*more than 0"),
    ("timeout=nan", "'timeout'"),
    ("retries=1.5", "'retries'.*whole number"),
    ("retries=-1", "'retries'.*whole number"),
    ("bearer=2", "'bearer'.*true or false"),
    ("recover_job_starts=", "'recover_job_starts'.*true or false"),
    ("verify=/no/such/ca.pem", "'verify'.*no file '/no/such/ca.pem'"),
    ("timout=30", r"unknown setting 'timout' in the DHIS2 URI's query \(known: .*timeout"),
    ("token=abc", "unknown setting 'token'"),
    ("timeout=1&timeout=2", "'timeout' is given twice"),
])
def test_uri_bad_settings_are_configuration_errors_naming_them(query, words):
    uri = "https://admin:{}@dhis2.example.org/dhis?{}".format(SECRET, query)
    with pytest.raises(ConfigurationError, match=words) as info:
        Session.from_uri(uri)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("uri, words", [
    ("dhis2.example.org", "must start with http:// or https://"),
    ("ftp://admin:{s}@dhis2.example.org", "must start with http:// or https://"),
    ("https://admin:{s}@dhis2.example.org:99999/", "not a valid URL"),
    ("https://admin:{s}@[::1/", "not a valid URL"),
    ("https://admin@dhis2.example.org", "has a login but no password"),
    ("https://dhis2.example.org/dhis", "has no credentials"),
    ("", "is empty"),
])
def test_uri_errors_never_repeat_credentials(uri, words):
    with pytest.raises(ConfigurationError, match=words) as info:
        Session.from_uri(uri.format(s=SECRET))
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


def test_uri_keyword_arguments_take_precedence():
    session = Session.from_uri("https://admin:{}@h.example.org?timeout=5".format(SECRET),
                               timeout=7, token=TOKEN)
    assert session.timeout == 7 and session.auth_kind == "token"
    # Credentials as arguments when the URI has none.
    assert Session.from_uri("https://h.example.org", auth=("a", "b")).auth_kind == "basic"


def test_uri_is_never_logged(caplog, srv):
    caplog.set_level(logging.DEBUG)
    host_port = srv.url.split("://")[1]
    with Session.from_uri("http://admin:district@{}/?retries=0".format(host_port)) as session:
        assert session.server_version[:2] == (2, 42)
        assert "district" not in repr(session)
    # Not on loopback: the warning about http:// names the host only.
    Session.from_uri("http://admin:{}@dhis2.example.org".format(SECRET))
    assert caplog.records
    for record in caplog.records:
        assert "district" not in record.getMessage() and SECRET not in record.getMessage()


def test_uri_end_to_end_token_and_hint_naming_the_uri(srv):
    host_port = srv.url.split("://")[1]
    with Session.from_uri("http://:{}@{}".format(DEFAULT_TOKEN, host_port)) as session:
        assert session.server_version[:2] == (2, 42)
    with Session.from_uri("http://:d2pat_wrong@{}?retries=0".format(host_port)) as session:
        with pytest.raises(AuthenticationError) as info:
            session.list_integrity_checks()
    message = str(info.value)
    assert "the URL in the DHIS2 URI" in message and "DHIS2_PAT" not in message
    assert "d2pat_wrong" not in message


# --- from_airflow_connection -------------------------------------------------------------------


@pytest.mark.parametrize("fields, base_url", [
    # As the UI makes them: Host with or without scheme, Schema as the scheme, Port.
    (dict(host="dhis2.example.org"), "http://dhis2.example.org"),  # http conn type stays http
    (dict(host="dhis2.example.org", conn_type="generic"), "https://dhis2.example.org"),
    (dict(host="dhis2.example.org", conn_type=""), "https://dhis2.example.org"),
    (dict(host="dhis2.example.org", schema="https", port=8443), "https://dhis2.example.org:8443"),
    (dict(host="dhis2.example.org", schema="http"), "http://dhis2.example.org"),
    (dict(host="https://dhis2.example.org/dhis"), "https://dhis2.example.org/dhis"),
    (dict(host="https://dhis2.example.org/dhis/", port=8443),
     "https://dhis2.example.org:8443/dhis"),  # Port honoured with a scheme in Host
    (dict(host="https://dhis2.example.org:8443/dhis", port=8443),
     "https://dhis2.example.org:8443/dhis"),
    (dict(host="dhis2.example.org/dhis", schema="https"), "https://dhis2.example.org/dhis"),
    (dict(host="https://dhis2.example.org/dhis/api", schema="http"),
     "https://dhis2.example.org/dhis"),  # Host's scheme wins
    # From AIRFLOW_CONN_…='https://:tok@dhis2.example.org:8443/dhis': the path is in Schema.
    (dict(host="dhis2.example.org", conn_type="https", schema="dhis", port=8443),
     "https://dhis2.example.org:8443/dhis"),
    (dict(host="dhis2.example.org", conn_type="http", schema="dhis/api"),
     "http://dhis2.example.org/dhis"),
    (dict(host="::1", conn_type="http", port=8080), "http://[::1]:8080"),
])
def test_connection_host_schema_port(fields, base_url):
    session = Session.from_airflow_connection(conn(**fields))
    assert session.base_url == base_url
    assert session.auth_kind == "token" and session.auth.token == TOKEN
    assert session.source == "the Airflow Connection 'dhis2_default'"


@pytest.mark.parametrize("fields, words", [
    (dict(host=""), "'dhis2_default' has no Host"),
    (dict(host="https://dhis2.example.org:8443", port=9000), "Host says port 8443 but Port is 9000"),
    (dict(host="dhis2.example.org", port="eighty"), "invalid Port"),
    (dict(host="https://dhis2.example.org/dhis", schema="other"), "keep the context path in one"),
    (dict(host="ftp://dhis2.example.org"), "Host must be a host name or an http"),
    (dict(host="https://admin:{s}@dhis2.example.org"), "credentials in Login/Password, not in Host"),
    (dict(host="https://dhis2.example.org?x=1"), r"must not have a \?query"),
    (dict(host="dhis2.example.org", login="admin", password=""), "has a login but no password"),
    (dict(host="dhis2.example.org", password=""),
     "Airflow Connection 'dhis2_default' has no credentials"),
    (dict(host="dhis2.example.org", password=None, login=None, conn_id="dhis2_prod"),
     "'dhis2_prod' has no credentials"),
    (dict(host="dhis2.example.org", login="admin", password="{s}", bearer=True),
     "bearer token goes in the password"),
])
def test_connection_errors_name_the_connection_not_the_secret(fields, words):
    fields = {k: v.format(s=SECRET) if isinstance(v, str) else v for k, v in fields.items()}
    with pytest.raises(ConfigurationError, match=words) as info:
        Session.from_airflow_connection(conn(**fields))
    assert SECRET not in str(info.value)


def test_connection_login_and_password_are_basic_auth():
    session = Session.from_airflow_connection(
        conn("https://dhis2.example.org", login="admin", password=SECRET))
    assert session.auth_kind == "basic" and session.auth.password == SECRET
    assert SECRET not in repr(session)


def test_connection_extra_settings(ca_file):
    session = Session.from_airflow_connection(conn(
        "https://dhis2.example.org", timeout=60, retries="0", recover_job_starts="true",
        stream_deadline=120, bearer=True))
    assert (session.timeout, session.retries, session.stream_deadline) == (60.0, 0, 120.0)
    assert session.recover_job_starts is True and session.auth_kind == "bearer"
    assert Session.from_airflow_connection(conn("h.example.org", verify=False)).verify is False
    assert Session.from_airflow_connection(conn("h.example.org", verify="no")).verify is False
    assert Session.from_airflow_connection(conn("h.example.org", verify=ca_file)).verify == ca_file
    assert Session.from_airflow_connection(conn("h.example.org", ca_bundle=ca_file)).verify == \
        ca_file
    # Extra as the JSON text of a Connection without extra_dejson.
    plain = conn("h.example.org")
    del plain.extra_dejson
    plain.extra = json.dumps({"timeout": "9"})
    assert Session.from_airflow_connection(plain).timeout == 9.0


@pytest.mark.parametrize("extra, words", [
    ({"timeout": "soon"}, "'timeout' in the extra of the Airflow Connection 'dhis2_default'"),
    ({"timeout": True}, "'timeout'.*number of seconds"),
    ({"retries": 2.5}, "'retries'.*whole number"),
    ({"ca_bundle": "/no/such.pem"}, "'ca_bundle'.*CA bundle file"),
    ({"verify": False, "ca_bundle": "/tmp"}, "'verify' is given twice"),
    ({"headers": {}}, "unknown setting 'headers' in the extra of the Airflow Connection"),
])
def test_connection_bad_extra(extra, words):
    with pytest.raises(ConfigurationError, match=words):
        Session.from_airflow_connection(conn("h.example.org", **extra))


def test_connection_extra_not_json():
    plain = conn("h.example.org")
    del plain.extra_dejson
    plain.extra = "{oops"
    with pytest.raises(ConfigurationError, match="extra of the Airflow Connection.*not valid JSON"):
        Session.from_airflow_connection(plain)


def test_connection_settings_only_those_the_session_accepts():
    """``outage_grace`` (and any later setting) passes through when the Session has it."""
    accepts = "outage_grace" in inspect.signature(Session.__init__).parameters
    if accepts:
        assert Session.from_airflow_connection(conn("h.example.org", outage_grace=30))
    else:
        with pytest.raises(ConfigurationError, match="unknown setting 'outage_grace'"):
            Session.from_airflow_connection(conn("h.example.org", outage_grace=30))

    class GraceSession(Session):
        def __init__(self, base_url, outage_grace=0.0, **kwargs):
            super().__init__(base_url, **kwargs)
            self.grace = outage_grace

    session = GraceSession.from_airflow_connection(conn("h.example.org", outage_grace="45"))
    assert isinstance(session, GraceSession) and session.grace == 45.0
    uri = GraceSession.from_uri("https://:t@h.example.org?outage_grace=5")
    assert uri.grace == 5.0


def test_connection_keyword_arguments_take_precedence():
    session = Session.from_airflow_connection(conn("h.example.org", timeout=5), timeout=7,
                                              auth=("admin", SECRET))
    assert session.timeout == 7 and session.auth_kind == "basic"
    # Credentials as arguments for a Connection that has none.
    assert Session.from_airflow_connection(conn("h.example.org", password=""),
                                           token=TOKEN).auth_kind == "token"


def test_connection_ignores_dhis2_environment(monkeypatch):
    monkeypatch.setenv("DHIS2_URL", "https://other.example.org")
    monkeypatch.setenv("DHIS2_PAT", "d2pat_other")
    monkeypatch.setenv("DHIS2_TIMEOUT", "1")
    session = Session.from_airflow_connection(conn("dhis2.example.org", schema="https"))
    assert session.base_url == "https://dhis2.example.org" and session.auth.token == TOKEN
    assert session.timeout == 30


def stub_airflow(monkeypatch, layout, connections):
    """``airflow.sdk.BaseHook`` (layout 3) or ``airflow.hooks.base.BaseHook`` (layout 2)."""
    looked_up = []

    class AirflowNotFoundException(Exception):
        pass

    class BaseHook:
        @classmethod
        def get_connection(cls, conn_id):
            looked_up.append(conn_id)
            if conn_id not in connections:
                raise AirflowNotFoundException("The conn_id `{}` isn't defined".format(conn_id))
            return connections[conn_id]

    for name in list(sys.modules):
        if name == "airflow" or name.startswith("airflow."):
            monkeypatch.delitem(sys.modules, name)
    names = {3: ["airflow", "airflow.sdk"], 2: ["airflow", "airflow.hooks", "airflow.hooks.base"]}
    for name in names[layout]:
        module = types.ModuleType(name)
        module.BaseHook = BaseHook
        monkeypatch.setitem(sys.modules, name, module)
    if layout == 2:
        monkeypatch.setitem(sys.modules, "airflow.sdk", None)  # ImportError, as on 2.x
    return looked_up


@pytest.mark.parametrize("layout", [2, 3])
def test_connection_id_is_looked_up_through_airflow(monkeypatch, srv, layout):
    looked_up = stub_airflow(monkeypatch, layout, {
        "dhis2_default": conn(srv.url, password=DEFAULT_TOKEN, timeout="20")})
    with Session.from_airflow_connection("dhis2_default") as session:
        assert session.timeout == 20 and session.server_version[:2] == (2, 42)
    assert looked_up == ["dhis2_default"]
    with Session.from_airflow_connection() as session:  # the default id
        assert session.base_url == srv.url
    with pytest.raises(ConfigurationError, match="'dhis2_prod' is not defined.*AIRFLOW_CONN_DHIS2_PROD"):
        Session.from_airflow_connection("dhis2_prod")


def test_connection_id_without_airflow(monkeypatch):
    for name in list(sys.modules):
        if name == "airflow" or name.startswith("airflow."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "airflow", None)
    with pytest.raises(ConfigurationError, match="Airflow Connection 'dhis2_default'.*not installed"):
        Session.from_airflow_connection("dhis2_default")


def test_import_dhis2maint_does_not_import_airflow():
    code = ("import sys, dhis2maint\n"
            "from dhis2maint import Session\n"
            "Session.from_uri\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('airflow', 'argparse', 'sqlite3') or m == 'http.server'))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                          universal_newlines=True, timeout=60)
    assert proc.stdout.strip() == "[]"


def test_connection_end_to_end_hints_name_the_connection(srv):
    bad = conn(srv.url, password="d2pat_wrong", conn_id="dhis2_prod", retries=0)
    with Session.from_airflow_connection(bad) as session:
        with pytest.raises(AuthenticationError) as info:
            session.list_integrity_checks()
    message = str(info.value)
    assert "the URL in the Airflow Connection 'dhis2_prod'" in message
    assert "DHIS2_" not in message and "d2pat_wrong" not in message

    good = conn(srv.url, password=DEFAULT_TOKEN, conn_id="dhis2_prod", retries=0)
    with Session.from_airflow_connection(good) as session:
        with pytest.raises(NotFound) as info:
            session._json("GET", "noSuchEndpoint")
    assert "the URL in the Airflow Connection 'dhis2_prod'" in str(info.value)
    assert "DHIS2_URL" not in str(info.value)

    srv.stop()  # nothing listens any more: a connection error
    with Session.from_airflow_connection(good) as session:
        with pytest.raises(TransportError) as info:
            session.list_integrity_checks()
    message = str(info.value)
    assert "check the URL in the Airflow Connection 'dhis2_prod'" in message, message
    assert "DHIS2_URL" not in message


# --- from_auth_file --------------------------------------------------------------------------


def auth_file(tmp_path, data, mode=0o600):
    path = tmp_path / "dish.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    os.chmod(str(path), mode)
    return str(path)


def test_auth_file_dish_json_and_token_formats(tmp_path, srv):
    path = auth_file(tmp_path, {"dhis": {"baseurl": srv.url, "username": "admin",
                                         "password": "district"}})
    with Session.from_auth_file(path, retries=0) as session:
        assert session.auth_kind == "basic" and session.server_version[:2] == (2, 42)
        assert session.source == "the auth file " + path and session.retries == 0
    path = auth_file(tmp_path, {"url": srv.url + "/api", "token": DEFAULT_TOKEN})
    with Session.from_auth_file(path) as session:
        assert session.auth_kind == "token" and session.base_url == srv.url
        assert session.server_version[:2] == (2, 42)


@pytest.mark.parametrize("data, mode, words", [
    ({"url": "https://h.example.org", "token": SECRET}, 0o644, "too open.*chmod 600"),
    ({"url": "https://h.example.org", "token": SECRET}, 0o660, "too open"),
    ({"url": "https://h.example.org"}, 0o600, "has no credentials"),
    ({"dhis": {"baseurl": "https://h.example.org", "username": "admin"}}, 0o600,
     "has a username but no password"),
    ({"url": "https://h.example.org", "token": SECRET, "username": "a"}, 0o600,
     "both a token and a username"),
    ({"token": SECRET}, 0o600, "needs"),
    ({"url": "https://h.example.org", "token": 12345}, 0o600, "'token' must be a string"),
    ("{not json " + SECRET, 0o600, "not valid JSON"),
])
def test_auth_file_errors(tmp_path, data, mode, words):
    path = auth_file(tmp_path, data, mode)
    with pytest.raises(ConfigurationError, match=words) as info:
        Session.from_auth_file(path)
    assert SECRET not in str(info.value)


def test_auth_file_missing(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read auth file"):
        Session.from_auth_file(str(tmp_path / "nope.json"))


def test_auth_file_hint_names_the_file(tmp_path, srv):
    path = auth_file(tmp_path, {"url": srv.url, "token": "d2pat_wrong"})
    with Session.from_auth_file(path, retries=0) as session:
        with pytest.raises(AuthenticationError) as info:
            session.list_integrity_checks()
    assert "the URL in the auth file " + path in str(info.value)
    assert "DHIS2_PAT" not in str(info.value)


def test_cli_reads_auth_files_through_the_library(tmp_path):
    from dhis2maint import cli

    assert not hasattr(cli, "_read_auth_file")
    path = auth_file(tmp_path, {"url": "https://h.example.org", "token": TOKEN})
    args = cli.build_parser().parse_args(["version", "--auth-file", path])
    session = cli.connect(args, environ={})
    assert session.auth_kind == "token" and session.source == "the auth file " + path


# --- progress on the dhis2maint logger -------------------------------------------------------------


def test_logger_has_a_null_handler():
    handlers = logging.getLogger("dhis2maint").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_each_new_notification_is_logged_once_at_info(srv, caplog):
    caplog.set_level(logging.INFO, logger="dhis2maint")
    with Session(srv.url, token=DEFAULT_TOKEN) as session:
        job = session.refresh_analytics()
        final = job.wait(timeout=30, poll_interval=0.05)
        feed = session.get_task_notifications("ANALYTICS_TABLE", job.id)
    records = [r for r in caplog.records if r.name == "dhis2maint"]
    assert records and all(r.levelno == logging.INFO for r in records)
    # Oldest first, each once: the feed (newest first) reversed.
    expected = ["ANALYTICS_TABLE job {}: {}{}".format(job.id, n.message,
                                                       " (completed)" if n.completed else "")
                for n in reversed(feed)]
    assert [r.getMessage() for r in records] == expected
    assert records[-1].getMessage().endswith(final.message + " (completed)")


def test_synthesised_integrity_progress_is_logged_too(caplog):
    """2.37-2.40 post no notifications for integrity runs: dhis2maint's own
    "N of M checks finished" lines are logged instead."""
    caplog.set_level(logging.INFO, logger="dhis2maint")
    with Dhis2StandIn(version="2.38", job_seconds=0.3) as server:
        with Session(server.url, token=DEFAULT_TOKEN) as session:
            report = session.run_integrity_checks(timeout=60)
    messages = [r.getMessage() for r in caplog.records if r.name == "dhis2maint"]
    done = "{0} of {0} checks finished".format(len(report))
    assert len(report) > 10
    assert any(done in m and m.endswith("(completed)") for m in messages), messages


def test_nothing_is_printed_when_the_application_configures_no_logging(srv):
    code = ("import dhis2maint\n"
            "with dhis2maint.Session({!r}, token={!r}) as s:\n"
            "    s.refresh_analytics().wait(timeout=30, poll_interval=0.05)\n"
            "    s.run_integrity_checks(timeout=60)\n").format(srv.url, DEFAULT_TOKEN)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr) == ("", "")
    # The same with logging configured at INFO shows the progress.
    proc = subprocess.run([sys.executable, "-c", "import logging; logging.basicConfig("
                           "level=logging.INFO)\n" + code], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "INFO:dhis2maint:ANALYTICS_TABLE job " in proc.stderr
    assert "Analytics tables updated" in proc.stderr


def test_progress_lines_for_notifications_without_a_message(caplog):
    from dhis2maint.jobs import log_progress
    from dhis2maint.models import Notification, NotificationDataType, NotificationLevel

    caplog.set_level(logging.INFO, logger="dhis2maint")
    log_progress("DATA_INTEGRITY", "Abcdefghij1", Notification(
        message="", data_type=NotificationDataType.PARAMETERS, level=NotificationLevel.INFO))
    log_progress("DATA_INTEGRITY", "Abcdefghij1", Notification(message="Checking", level="LOOP"))
    log_progress("DATA_INTEGRITY", "Abcdefghij1", Notification(
        message="Process failed: boom", level=NotificationLevel.ERROR, completed=True))
    log_progress("DATA_INTEGRITY", "Abcdefghij1", Notification(message=None, completed=True))
    assert [r.getMessage() for r in caplog.records] == [
        "DATA_INTEGRITY job Abcdefghij1: started",
        "DATA_INTEGRITY job Abcdefghij1: [LOOP] Checking",
        "DATA_INTEGRITY job Abcdefghij1: [ERROR] Process failed: boom (completed)",
        "DATA_INTEGRITY job Abcdefghij1: completed",
    ]
    assert all(r.levelno == logging.INFO for r in caplog.records)


@pytest.mark.parametrize("flags, env, source", [
    (["--url", "https://h.example.org", "--token", TOKEN], {}, "--url and --token"),
    (["--url", "https://h.example.org"], {"DHIS2_PAT": TOKEN}, "--url and DHIS2_PAT"),
    (["--url", "https://h.example.org", "--username", "admin"], {"DHIS2_PASSWORD": SECRET},
     "--url and --username"),
    # all from the environment: hints name the DHIS2_* variables (#20.6)
    ([], {"DHIS2_URL": "https://h.example.org", "DHIS2_PAT": TOKEN},
     "the DHIS2_* environment variables"),
])
def test_cli_hints_name_the_flags_and_variables_used(flags, env, source):
    from dhis2maint import cli

    session = cli.connect(cli.build_parser().parse_args(["version"] + flags), environ=env)
    assert session.source == source


def test_cli_auth_file_with_a_flag(tmp_path):
    from dhis2maint import cli

    path = auth_file(tmp_path, {"url": "https://h.example.org", "token": TOKEN})
    args = cli.build_parser().parse_args(["version", "--auth-file", path,
                                          "--url", "https://other.example.org"])
    session = cli.connect(args, environ={})
    assert session.base_url == "https://other.example.org"
    assert session.source == "--url and the auth file " + path
