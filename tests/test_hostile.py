"""Hostile servers and outages (#13), over real HTTP on 127.0.0.1.

Each case of the issue's table: the typed error, and -- measured in a fresh
subprocess with ``resource.getrusage`` -- peak RSS growth, plus an elapsed-time
bound that is a behaviour bound ("ends before the deadline"), not a target.
"""
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import responses

from dhis2maint import ConfigurationError, InvalidResponseError, Session, TransportError, cli, jobs
from dhis2maint.convert import report_from_dict, to_json
from dhis2maint.testing import Dhis2StandIn, apply_faults, build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MB = 1024 * 1024
CAP = 256 * MB  # the default Session.max_body_bytes


_OPEN = []  # sessions to close after each test (Python 3.7 prints unclosed sockets)


@pytest.fixture(autouse=True)
def _close_sessions():
    yield
    while _OPEN:
        _OPEN.pop().close()


def _track(session):
    _OPEN.append(session)
    return session


@pytest.fixture
def srv(start_standin):
    return start_standin(job_seconds=0.2)


def _session(server, **kwargs):
    kwargs.setdefault("retries", 1)
    return _track(Session(server.url, auth=("admin", "district"), **kwargs))


# --- a child process that measures itself --------------------------------------------

_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from dhis2maint import Session
    url, call, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    session = Session(url, auth=("admin", "district"), retries=0, **kwargs)
    session.server_version = "2.42.0"
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    out = {"error": None}
    try:
        if call == "report":
            session.get_integrity_report()
        elif call == "issues":
            out["rows"] = sum(1 for _ in session.iter_integrity_issues())
        elif call == "version":
            session.server_version = None
            session.server_version
    except Exception as exc:
        out["error"] = type(exc).__name__
        out["message"] = str(exc)
    out["seconds"] = time.monotonic() - started
    out["growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024.0
    print(json.dumps(out))
""")


def _measure(server, call, **kwargs):
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", _CHILD, server.url, call, json.dumps(kwargs)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=240,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def _cli(server, *argv, env_extra=None):
    env = dict(os.environ, PYTHONPATH=ROOT, DHIS2_URL=server.url, DHIS2_USERNAME="admin",
               DHIS2_PASSWORD="district")
    env.update(env_extra or {})
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "dhis2maint"] + list(argv),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=240,
                          cwd=ROOT)
    return done.returncode, done.stderr.decode(), time.monotonic() - started


# --- 1. every body is bounded -------------------------------------------------------------


@pytest.mark.slow
def test_gzip_bomb_to_the_report_stops_at_the_cap(srv):
    # 1 GiB of JSON whitespace in ~1 MB of gzip (before: accepted, 2.5 GB RSS)
    srv.gzip_bomb_next(size=1 << 30, path="/api/dataIntegrity/details")
    out = _measure(srv, "report")
    assert out["error"] == "InvalidResponseError"
    assert "GET /api/dataIntegrity/details" in out["message"]
    assert str(CAP) in out["message"] and "iter_integrity_issues" in out["message"]
    assert out["growth_mb"] < CAP / MB + 200


def test_gzip_bomb_to_system_info_stops_at_64_kib(srv):
    srv.gzip_bomb_next(size=1 << 30, path="/api/system/info")
    out = _measure(srv, "version")
    assert out["error"] == "InvalidResponseError"
    assert "GET /api/system/info" in out["message"] and str(64 * 1024) in out["message"]
    assert out["growth_mb"] < 200


@pytest.mark.slow
def test_stacked_gzip_to_the_report_and_the_cli(srv):
    # Content-Encoding: gzip, gzip: 1 GiB in ~2 KB (before: 4.2 GB / 5.6 GB RSS, exit 0)
    srv.gzip_bomb_next(size=1 << 30, layers=2, path="/api/dataIntegrity/details", count=2)
    out = _measure(srv, "report", max_body_bytes=32 * MB)
    assert out["error"] == "InvalidResponseError"
    assert str(32 * MB) in out["message"]
    assert out["growth_mb"] < 32 + 200
    code, err, _ = _cli(srv, "integrity", "report", "--details")
    assert code == cli.EXIT_DHIS2
    assert "larger than" in err and "integrity issues" in err


def test_bounded_inflation_never_holds_more_than_a_chunk():
    # the decoder itself, without HTTP: a 64 KiB raw piece of a bomb is not 64 MB at once
    from dhis2maint.transport import _inflate
    from dhis2maint.testing import _gzip_bomb

    bomb = _gzip_bomb(64 * MB, 2)
    pieces = _inflate(_inflate(iter([bomb]), 31, "gzip"), 31, "gzip")
    sizes = [len(p) for p in pieces]
    assert sum(sizes) == 64 * MB and max(sizes) <= 64 * 1024


def test_endless_json_body_to_the_report_ends_at_the_cap(srv):
    # before: grew at the link's speed until stream_deadline, then a bare MemoryError
    srv.endless_body_next(path="/api/dataIntegrity/details")
    out = _measure(srv, "report", max_body_bytes=64 * MB, stream_deadline=60)
    assert out["error"] == "InvalidResponseError" and "larger than" in out["message"]
    assert out["growth_mb"] < 64 + 200
    assert out["seconds"] < 60  # ended by the cap, not the deadline


def test_endless_html_error_body_is_cut_at_64_kib(srv):
    # before: error bodies were read whole, stream_deadline=10 ignored, 1.96 GB, killed at 60 s
    srv.endless_body_next(status=500, content_type="text/html",
                          path="/api/dataIntegrity/details", count=2)
    out = _measure(srv, "issues", stream_deadline=10)
    assert out["error"] == "ServerError" and "HTTP 500" in out["message"]
    assert out["growth_mb"] < 200 and out["seconds"] < 10
    code, err, seconds = _cli(srv, "integrity", "issues")
    assert code == cli.EXIT_DHIS2 and "HTTP 500" in err and seconds < 60


def test_endless_json_stream_is_bounded_by_the_largest_value(srv):
    srv.endless_body_next(path="/api/dataIntegrity/details")
    out = _measure(srv, "issues", stream_deadline=30)
    assert out["error"] == "InvalidResponseError" and "larger than" in out["message"]
    assert out["growth_mb"] < 200 and out["seconds"] < 30


# --- 1b. the 64 KiB cap on job starts and maintenance WebMessages -----------------------------


def test_endless_job_start_answer_is_cut_at_64_kib(srv):
    # a job start's answer is a small WebMessage: read at most 64 KiB of it (SMALL_BODY_BYTES)
    session = _session(srv)
    srv.endless_body_next(method="POST", path="/api/dataIntegrity")
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        session.start_integrity_run(["categories_no_options"])
    text = str(info.value)
    assert time.monotonic() - started < 10
    assert "POST /api/dataIntegrity/summary -> HTTP 200" in text
    assert "larger than {} bytes".format(64 * 1024) in text
    assert "DHIS2 never sends that much here" in text
    assert "iter_integrity_issues" not in text and "integrity issues" not in text
    # DHIS2 answered 200, so the POST reached it: the job may well be running
    assert "DATA_INTEGRITY job MAY have started" in text
    assert "session.get_task_notifications('DATA_INTEGRITY')" in text  # a follow-up (#20.6)
    assert info.value.outcome_unknown
    assert isinstance(info.value.__cause__, InvalidResponseError)
    assert info.value.__cause__.outcome_unknown
    assert [r.method for r in srv.requests].count("POST") == 1  # never re-sent


def test_endless_maintenance_answer_is_cut_at_64_kib(srv):
    session = _session(srv)
    session.server_version = "2.42.0"
    srv.endless_body_next(method="POST", path="/api/maintenance")
    with pytest.raises(InvalidResponseError) as info:
        session.clear_cache()
    text = str(info.value)
    assert "POST /api/maintenance/cacheClear -> HTTP 200" in text
    assert "larger than {} bytes".format(64 * 1024) in text
    assert "DHIS2 never sends that much here" in text and "iter_integrity_issues" not in text
    assert info.value.outcome_unknown and "the request reached DHIS2" in text


@pytest.mark.parametrize("path, read, streams", [
    ("/api/dataIntegrity/details", lambda s: s.get_integrity_report(), True),
    ("/api/dataIntegrity/summary", lambda s: s.get_integrity_report(details=False), False),
])
def test_too_big_hint_names_the_stream_only_for_details(srv, path, read, streams):
    session = _session(srv, max_body_bytes=MB)
    session.server_version = "2.42.0"
    srv.endless_body_next(method="GET", path=path)
    with pytest.raises(InvalidResponseError) as info:
        read(session)
    text = str(info.value)
    assert "GET " + path in text and "larger than {} bytes".format(MB) in text
    assert ("iter_integrity_issues" in text) is streams
    assert "max_body_bytes" in text and not info.value.outcome_unknown


# --- 2. streaming is linear --------------------------------------------------------------


def test_one_15_mb_issue_streams_before_a_short_deadline(srv):
    # before: 50 s (the parser re-decoded the issue from its start on every chunk)
    issue = {"id": "hugeIssue01", "name": "n" * (15 * 1000 * 1000),
             "comment": 'quotes \\" and },{ inside', "refs": ["a"] * 50}
    body = json.dumps({"big_check": {"name": "big_check", "displayName": "Big", "severity":
                                     "WARNING", "issues": [{"id": "a"}, issue, {"id": "b"}]}})
    srv.answer_next(body, path="/api/dataIntegrity/details")
    session = _session(srv, stream_deadline=20)
    rows = list(session.iter_integrity_issues())  # TransportError if past the deadline
    assert [r.issue.id for r in rows] == ["a", "hugeIssue01", "b"]
    assert rows[1].issue.name == issue["name"]


# --- 3. no bare exceptions from parsing -----------------------------------------------------


def _run_details(srv, session):
    srv.set_issue_count("categories_no_options", 2)
    session.run_integrity_checks(["categories_no_options"], details=True)


@pytest.mark.parametrize("depth", [990, 5000])
def test_deeply_nested_refs_are_an_invalid_response(srv, depth):
    # Python 3.7: refs ~990 deep gave a bare RecursionError from json.dumps
    session = _session(srv)
    _run_details(srv, session)
    for read in (lambda: session.get_integrity_report(),
                 lambda: list(session.iter_integrity_issues())):
        srv.deep_nesting_next(depth=depth, path="/api/dataIntegrity/details")
        with pytest.raises(InvalidResponseError, match="nested too deeply"):
            read()


def test_nan_in_a_body_is_an_invalid_response_in_both_paths(srv):
    # before: accepted; the table showed nan%, the saved JSON held a bare NaN
    session = _session(srv)
    _run_details(srv, session)
    srv.nan_next(path="/api/dataIntegrity/details")
    with pytest.raises(InvalidResponseError, match="NaN"):
        session.get_integrity_report()
    srv.nan_next(path="/api/dataIntegrity/details")
    with pytest.raises(InvalidResponseError, match="NaN"):
        list(session.iter_integrity_issues())
    session.run_integrity_checks(["categories_no_options"])  # a summary with a percentage
    srv.nan_next(path="/api/dataIntegrity/summary")
    with pytest.raises(InvalidResponseError, match="NaN"):
        session.get_integrity_report(details=False)


def test_jackson_nan_strings_are_an_invalid_response():
    # Jackson writes a Java NaN as the string "NaN" (WRITE_NAN_AS_STRINGS is on by
    # default); DataIntegritySummary.percentage is a Double (dhis-api
    # dataintegrity/DataIntegritySummary.java@2.42), and float("NaN") would take it.
    for value in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(InvalidResponseError, match="not a finite number"):
            report_from_dict({"c": {"name": "c", "count": 1, "percentage": value}}, False)


def test_writers_never_write_nan():
    report = report_from_dict({"c": {"name": "c", "count": 1, "percentage": 1.0}}, False)
    report.results["c"].percentage = float("nan")
    with pytest.raises(ValueError):
        to_json(report)
    with pytest.raises(InvalidResponseError):
        from dhis2maint import from_json

        from_json('{"c": {"name": "c", "count": 1, "percentage": Infinity}}')


# --- 4. settings are finite -------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["timeout", "stream_deadline", "outage_grace"])
@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1])
def test_non_finite_settings_are_configuration_errors(setting, value):
    with pytest.raises(ConfigurationError, match=setting):
        Session("http://127.0.0.1:9", **{setting: value})


def test_non_finite_environment_and_wait_values(srv):
    env = {"DHIS2_URL": srv.url, "DHIS2_PAT": "d2pat_x", "DHIS2_TIMEOUT": "inf"}
    with pytest.raises(ConfigurationError, match="DHIS2_TIMEOUT"):
        Session.from_env(env)
    session = _session(srv)
    for kwargs in ({"timeout": float("inf")}, {"poll_interval": float("inf")},
                   {"max_interval": float("nan")}):
        with pytest.raises(ConfigurationError, match=list(kwargs)[0]):
            session.wait_for_task("ANALYTICS_TABLE", "AbCdEfGhIjK", **kwargs)


@pytest.mark.parametrize("argv", [
    ["--http-timeout", "inf", "version"],
    ["--outage-grace", "inf", "version"],
    ["refresh", "analytics", "--timeout", "inf"],
    ["task", "wait", "ANALYTICS_TABLE", "AbCdEfGhIjK", "--poll-interval", "nan"],
])
def test_cli_non_finite_seconds_exit_2_and_start_nothing(srv, argv, capsys, monkeypatch):
    monkeypatch.setenv("DHIS2_URL", srv.url)
    monkeypatch.setenv("DHIS2_PAT", "d2pat_standin0000000000000000000000000000")
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # --timeout is refused by argparse itself (cli.timeout_value)
        code = exc.code
    assert code == cli.EXIT_USAGE
    assert "finite" in capsys.readouterr().err
    assert srv.job_ids() == []


def test_cli_dhis2_timeout_inf_exits_2(srv):
    code, err, _ = _cli(srv, "version", env_extra={"DHIS2_TIMEOUT": "inf"})
    assert code == cli.EXIT_USAGE and "DHIS2_TIMEOUT" in err


# --- 5. redirects stay on the server ------------------------------------------------------------


def test_redirect_to_another_port_names_the_target(srv):
    other = Dhis2StandIn().start()
    try:
        srv.redirect_next(other.url + "/api/dataIntegrity/details")
        with pytest.raises(InvalidResponseError) as info:
            _session(srv).get_integrity_report()
        assert other.url in str(info.value) and "set the base URL to " + other.url in str(info.value)
        assert info.value.location.startswith(other.url)
        assert not other.requests  # never asked
    finally:
        other.stop()


def test_redirect_to_another_host_name_on_the_same_port_is_refused(srv):
    # 127.0.0.1 and localhost are the same socket but another origin: credentials and
    # answers must not follow a host name change
    port = srv.url.rsplit(":", 1)[1]
    target = "http://localhost:{}".format(port)
    srv.redirect_next(target + "/api/dataIntegrity/details", path="/api/dataIntegrity/details")
    session = _session(srv)
    session.server_version = "2.42.0"
    with pytest.raises(InvalidResponseError) as info:
        session.get_integrity_report()
    text = str(info.value)
    assert "redirect to {}/api/dataIntegrity/details".format(target) in text
    assert "another server" in text and "set the base URL to " + target in text
    assert info.value.location == target + "/api/dataIntegrity/details"
    # not followed: the stand-in behind both names saw the one request only
    assert [(r.method, r.path) for r in srv.requests] == [("GET", "/api/dataIntegrity/details")]


@pytest.mark.parametrize("same_port", [True, False])
def test_redirect_from_http_to_https_elsewhere_is_refused(srv, same_port):
    other = Dhis2StandIn().start()
    try:
        port = srv.url.rsplit(":", 1)[1] if same_port else other.url.rsplit(":", 1)[1]
        target = "https://127.0.0.1:{}".format(port)
        srv.redirect_next(target + "/dhis/api/system/info?fields=version", status=301)
        with pytest.raises(InvalidResponseError) as info:
            _session(srv).server_version
        text = str(info.value)
        assert "HTTP 301 redirect to {}/dhis/api/system/info".format(target) in text
        assert "downgrade" not in text and "another server" in text
        # built in code: "the base URL", never DHIS2_URL nor a CLI flag (#20)
        assert "set the base URL to {}/dhis".format(target) in text
        assert "DHIS2_URL" not in text and "--url" not in text
        assert len(srv.requests) == 1 and not other.requests  # never followed
    finally:
        other.stop()


@responses.activate
def test_https_to_http_downgrade_is_refused():
    responses.add(responses.GET, "https://dhis2.example.org/api/system/info", status=301,
                  headers={"Location": "http://dhis2.example.org/api/system/info"})
    session = Session("https://dhis2.example.org", token="d2pat_x", retries=0)
    with pytest.raises(InvalidResponseError, match="downgrade from https to http"):
        session.server_version
    assert len(responses.calls) == 1


def test_same_origin_redirect_is_followed_and_login_redirect_is_authentication(srv):
    srv.redirect_next("/api/system/info", path="/api/system/info")
    assert _session(srv).server_version == (2, 42, 0)
    srv.login_redirect = True
    from dhis2maint import AuthenticationError

    with pytest.raises(AuthenticationError):
        _track(Session(srv.url, retries=0)).server_version


# --- 6. waits ride out outages --------------------------------------------------------------------


def test_wait_rides_out_a_30_s_outage_mid_job(caplog, fake_time):
    # before: the wait died after ~3 s of outage while the job ran on.  Simulated time
    # (conftest's fake_time): the 40 s job and the 30 s of refused connections cost no
    # real seconds; the outage is a real closed socket.
    server = Dhis2StandIn(job_seconds=40).start()
    try:
        session = _session(server, timeout=5)
        job = session.refresh_analytics()
        fake_time.at(4, server.go_down)
        fake_time.at(34, server.come_back)
        with caplog.at_level(logging.INFO, logger="dhis2maint"):
            final = job.wait(timeout=120, poll_interval=0.5, max_interval=2)
        assert final.completed and final.message.startswith("Analytics tables updated")
        assert fake_time.slept > 34 and not server.is_down  # followed through the outage
        assert len(server.job_ids()) == 1  # the same job, nothing re-sent
        posts = [r for r in server.requests if r.method == "POST"]
        assert len(posts) == 1
        levels = [(r.levelname, r.getMessage()) for r in caplog.records]
        assert any(lvl == "WARNING" and "not answering" in msg for lvl, msg in levels)
        assert any(lvl == "INFO" and "answers again" in msg for lvl, msg in levels)
    finally:
        server.stop()


def test_outage_past_the_grace_is_a_transport_error_naming_the_job(fake_time):
    server = Dhis2StandIn(job_seconds=30).start()
    try:
        session = _session(server, outage_grace=2)
        job = session.refresh_analytics()
        server.go_down()
        started = time.monotonic()
        with pytest.raises(TransportError) as info:
            job.wait(timeout=60, poll_interval=0.2, max_interval=0.5)
        assert job.id in str(info.value) and "outage grace (2 s)" in str(info.value)
        assert info.value.follow_ups[0].action == "wait_for_task"  # resume it (#20.6)
        assert time.monotonic() - started < 30
    finally:
        server.stop()


def test_zero_grace_fails_at_once_and_the_timeout_wins(fake_time):
    from dhis2maint import TaskTimeoutError

    server = Dhis2StandIn(job_seconds=30).start()
    try:
        job = _session(server, outage_grace=0).refresh_analytics()
        server.go_down()
        with pytest.raises(TransportError):
            job.wait(timeout=60, poll_interval=0.2)
        waiter = _session(server, retries=0, outage_grace=600)
        with pytest.raises(TaskTimeoutError, match="not answered"):
            waiter.wait_for_task(job.job_type, job.id, timeout=1, poll_interval=0.2)
    finally:
        server.stop()


def test_outage_on_502_from_a_proxy_keeps_polling(srv):
    session = _session(srv, retries=0)
    job = session.refresh_resource_tables()
    srv.fail_next(3, status=502, method="GET")
    final = job.wait(timeout=30, poll_interval=0.1, max_interval=0.2)
    assert final.completed


def test_coc_wait_rides_out_an_outage(fake_time):
    server = Dhis2StandIn().start()
    try:
        session = _session(server)
        uid = next(iter(server._state.combos))
        server.coc_generation_delay = 1.5
        fake_time.at(0.2, server.go_down)  # simulated time: no real second goes by
        fake_time.at(1.2, server.come_back)
        state = session.wait_for_coc_generation(uid, timeout=30, poll_interval=0.2)
        assert state.count == state.expected_count
    finally:
        server.stop()


def _outage_at_first_poll(server, seconds, prefix="/api/system/tasks/"):
    """Close the stand-in's socket for `seconds` as soon as the client first polls a job
    feed (so the job start itself never meets the outage).  Returns a dict that gets
    "before": how many requests had arrived when the socket closed."""
    seen = {}

    def run():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(r.method == "GET" and r.path.startswith(prefix) for r in list(server.requests)):
                seen["before"] = len(server.requests)
                server.go_down()
                time.sleep(seconds)
                server.come_back()
                return
            time.sleep(0.01)
    threading.Thread(target=run, name="outage-at-first-poll", daemon=True).start()
    return seen


def _job_polls(server, job_type):
    prefix = "/api/system/tasks/{}/".format(job_type)
    return [r for r in server.requests if r.method == "GET" and r.path.startswith(prefix)]


def test_run_integrity_checks_rides_out_an_outage_mid_job(caplog):
    server = Dhis2StandIn(job_seconds=2.5).start()
    try:
        server.set_issue_count("categories_no_options", 4)
        session = _session(server, timeout=2)
        _outage_at_first_poll(server, 1.5)
        started = time.monotonic()
        with caplog.at_level(logging.INFO, logger="dhis2maint"):
            report = session.run_integrity_checks(["categories_no_options"], details=True,
                                                  timeout=30, poll_interval=0.2, max_interval=0.5)
        assert time.monotonic() - started < 15
        result = report.results["categories_no_options"]
        assert result.count == 4 and len(result.issues) == 4
        assert report.job_id == server.job_ids()[0]  # the same job, followed to its end
        assert [r.method for r in server.requests].count("POST") == 1  # nothing re-sent
        levels = [(r.levelname, r.getMessage()) for r in caplog.records]
        assert any(lvl == "WARNING" and "not answering" in msg and report.job_id in msg
                   for lvl, msg in levels)
        assert any(lvl == "INFO" and "answers again" in msg for lvl, msg in levels)
    finally:
        server.stop()


def test_run_integrity_checks_rides_out_503s_on_reading_the_results(srv, caplog):
    srv.set_issue_count("categories_no_options", 3)
    session = _session(srv, retries=0)
    srv.answer_next("<html><body>503 Service Temporarily Unavailable</body></html>", count=2,
                    status=503, content_type="text/html", method="GET",
                    path="/api/dataIntegrity/details")
    with caplog.at_level(logging.INFO, logger="dhis2maint"):
        report = session.run_integrity_checks(["categories_no_options"], details=True,
                                              timeout=30, poll_interval=0.1)
    assert report.results["categories_no_options"].count == 3
    reads = [r for r in srv.requests if r.path == "/api/dataIntegrity/details"]
    assert [r.method for r in reads] == ["POST", "GET", "GET", "GET"]
    assert any(r.levelname == "WARNING" and "not answering" in r.getMessage()
               for r in caplog.records)


def test_cli_wait_rides_out_an_outage_within_outage_grace():
    # 6 s: longer than the session's own retries of a GET (3, backing off ~0+1+2 s)
    server = Dhis2StandIn(job_seconds=6.5).start()
    try:
        outage = _outage_at_first_poll(server, 6)
        code, err, seconds = _cli(server, "--outage-grace", "60", "refresh", "analytics",
                                  "--poll-interval", "0.2", "--max-interval", "0.5")
        assert code == cli.EXIT_OK, err
        assert 6 < seconds < 15  # it waited through the outage
        # said on stderr while it happens (cron mails it), not only with --debug
        assert "dhis2maint: warning: " in err and "not answering" in err
        assert "answers again" not in err  # INFO: only with --debug
        job_id, = server.job_ids()
        after = server.requests[outage["before"]:]
        assert after and all(r.method == "GET" and job_id in r.path for r in after)
        assert [r.method for r in server.requests].count("POST") == 1
    finally:
        server.stop()


def test_cli_outage_grace_0_fails_at_once_naming_the_job():
    server = Dhis2StandIn(job_seconds=20).start()
    try:
        _outage_at_first_poll(server, 30)
        code, err, seconds = _cli(server, "refresh", "analytics", "--outage-grace", "0",
                                  "--poll-interval", "0.2")
        assert code == cli.EXIT_DHIS2, err
        assert seconds < 10
        job_id, = server.job_ids()
        assert job_id in err and "could not connect" in err
        assert "answers again" not in err
    finally:
        server.stop()


def test_cli_poll_interval_and_max_interval_set_the_pace(srv):
    srv.job_seconds = 2.0
    code, err, _ = _cli(srv, "refresh", "resource-tables", "--poll-interval", "0.1",
                        "--max-interval", "0.2")
    assert code == cli.EXIT_OK, err
    fast = len(_job_polls(srv, "RESOURCE_TABLE"))
    srv.clear_requests()
    code, err, _ = _cli(srv, "refresh", "resource-tables")
    assert code == cli.EXIT_OK, err
    slow = len(_job_polls(srv, "RESOURCE_TABLE"))
    # 2 s at most 0.2 s apart: >= 10 polls; the defaults (1 s, growing): a handful
    assert fast >= 10 and slow <= 5, (fast, slow)


# --- 7. the end of a job is noticed promptly --------------------------------------------------


@pytest.mark.parametrize("job_seconds", [5.0, 60.0, 3600.0])
def test_end_of_job_noticed_within_the_lag_bound(fake_clock, job_seconds):
    fake_clock.now = 0.0
    polls = []
    from dhis2maint.models import Notification

    class FakeSession:
        outage_grace = 900.0

        def _uid(self, value, what):
            return value

        def get_task_notifications(self, job_type, job_id):
            polls.append(fake_clock.now)
            done = fake_clock.now >= job_seconds
            return [Notification(message="done" if done else "running", completed=done)]

    final = jobs._Follower(FakeSession(), "ANALYTICS_TABLE", "AbCdEfGhIjK", None, 1.0,
                           10.0).run()
    steps = list(iter(lambda: next(final, None), None))
    assert steps  # notifications were yielded
    lag = polls[-1] - job_seconds
    assert lag <= max(2.0, 0.1 * job_seconds) + 1e-9
    assert len(polls) == len(set(polls))  # one request per poll


# --- 8. clear words -------------------------------------------------------------------------


def test_tls_handshake_failure_never_says_the_post_may_have_arrived(srv):
    url = srv.url.replace("http://", "https://")
    session = _track(Session(url, auth=("admin", "district"), retries=0))
    session.server_version = "2.42.0"
    with pytest.raises(TransportError) as info:
        session.refresh_analytics()
    assert "handshake" in str(info.value) and "may have reached" not in str(info.value)
    assert not info.value.outcome_unknown
    assert srv.job_ids() == []


def test_oversized_header_says_what_to_check(srv):
    srv.huge_header_next(count=5)
    with pytest.raises(TransportError, match="oversized response header"):
        _session(srv).server_version


def test_redirect_loop_says_what_to_check(srv):
    srv.redirect_next("/api/system/info", count=100)
    with pytest.raises(TransportError, match="redirect loop"):
        _session(srv).server_version


def test_non_dhis2_system_info_says_what_to_check(srv):
    srv.answer_next('{"status": "UP"}', path="/api/system/info")
    with pytest.raises(InvalidResponseError, match="is the base URL the DHIS2 server"):
        _session(srv).server_version


# --- 9. the stand-in can be hostile on demand ---------------------------------------------------


def test_every_knob_has_a_flag():
    args = build_parser().parse_args([
        "--issues", "3", "--issues", "categories_no_options=7", "--fail-check", "x",
        "--fail-predictor", "a4Tz9PZk2Wq", "--verbose-notifications", "--fail-next", "2:502",
        "--hang-next", "1", "--truncate-next", "1", "--drop-response-next", "1",
        "--html-next", "1", "--delay", "0.1", "--trickle", "1000", "--start-delay", "1",
        "--fail-next-job", "--conflict-next", "1", "--drop-feed-after-completion",
        "--login-redirect", "--coc-generation-delay", "1", "--outage", "60:5",
        "--gzip-bomb", "--stacked-gzip", "--endless-body", "--endless-html", "1:503",
        "--nan", "--deep-nesting", "1:2000", "--redirect-to", "http://elsewhere/",
        "--huge-header", "--not-dhis2", "--only-path", "/api/dataIntegrity", "--only-method", "get",
        "--empty-next", "2", "--nameless-every", "3", "--drift", "2",
        "--job-error-codes", "E7010 E7131", "--coc-in-use"])
    server = Dhis2StandIn()
    try:
        apply_faults(server, args)
        state = server._state
        assert state.default_issue_count == 3 and state.issue_counts["categories_no_options"] == 7
        assert state.failing_checks and state.failing_predictors and state.job_failures
        assert state.conflicts == 1 and server.delay == 0.1 and server.trickle == 1000
        assert server.start_delay == 1 and server.coc_generation_delay == 1
        assert server.drop_feed_after_completion and server.login_redirect
        pending = server._faults.pending
        assert all(pending[k] for k in ("fail", "hang", "truncate", "drop", "html"))
        kinds = sorted(p[2]["kind"] for p in pending["hostile"])
        assert kinds == sorted(["gzip_bomb", "gzip_bomb", "endless", "endless", "nan", "deep",
                                "redirect", "huge_header", "answer"])
        # empty answers take --only-path/--only-method like the hostile ones
        assert pending["empty"] == [[2, "GET", {"path": "/api/dataIntegrity"}]]
        assert server.nameless_every == 3 and server.drift == 2
        assert server.job_error_codes == "E7010 E7131" and server.coc_in_use
    finally:
        server.stop()


def test_knob_flags_are_off_by_default():
    server = Dhis2StandIn()
    try:
        apply_faults(server, build_parser().parse_args([]))
        assert not server._faults.pending["empty"]
        assert server.nameless_every == 0 and server.drift == 0
        assert server.job_error_codes == "" and not server.coc_in_use
    finally:
        server.stop()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


@contextlib.contextmanager
def _standin_process(*flags):
    """``python -m dhis2maint.testing --port P *flags`` while the block runs; a session on it."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dhis2maint.testing", "--port", str(port)] + list(flags),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        assert b"stand-in at" in proc.stdout.readline()
        yield port, _track(Session("http://127.0.0.1:{}".format(port),
                                   auth=("admin", "district"), retries=0))
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def test_command_line_outage_refuses_connections_and_the_job_survives():
    with _standin_process("--job-seconds", "3", "--outage", "1.5:2", "--issues", "2") as (
            port, session):
        job = session.refresh_analytics()
        deadline = time.monotonic() + 10
        while not _refused(port):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        final = job.wait(timeout=30, poll_interval=0.2, max_interval=0.5)
        assert final.completed


def test_command_line_empty_next_starts_the_job_and_answers_an_empty_body():
    with _standin_process("--job-seconds", "0.2", "--empty-next", "--only-path",
                          "/api/resourceTables", "--only-method", "post") as (_port, session):
        session.server_version  # a GET elsewhere: not emptied
        with pytest.raises(InvalidResponseError) as info:
            session.refresh_resource_tables()
        assert "empty body" in str(info.value) and "MAY have started" in str(info.value)
        assert info.value.outcome_unknown
        # the POST was carried out: its job is in the task feed
        assert len(session.list_tasks("RESOURCE_TABLE")) == 1
        # used up: the next start gets DHIS2's answer
        assert session.refresh_resource_tables().wait(timeout=20).completed


def test_same_origin_redirect_with_an_endless_body_is_cut(srv):
    # requests reads a followed redirect's body whole; here at most 64 KiB of it
    srv.answer_next(b"", status=302, headers=[("Location", "/api/system/info")],
                    path="/api/system/info")
    assert _session(srv).server_version == (2, 42, 0)
    # a same-origin 302 whose body never ends: followed after 64 KiB of it
    srv._faults.add("hostile", 1, None, kind="endless", status=302, content_type="text/html",
                    headers=[("Location", "/api/system/info")], path="/api/system/info")
    out = _measure(srv, "version", stream_deadline=20)
    assert out["error"] is None and out["growth_mb"] < 100 and out["seconds"] < 20


def test_ref_nesting_is_bounded_the_same_on_every_python():
    # 3.13's decoder reads nesting 3.7-3.12 refuse; refs deeper than MAX_REF_DEPTH are
    # refused on every Python instead of becoming a string of brackets on some.
    from dhis2maint.convert import MAX_REF_DEPTH, issue_from_dict

    def nested(levels):
        value = "x"
        for _ in range(levels):
            value = [value]
        return value

    kept = issue_from_dict({"id": "a", "name": "n", "refs": [nested(MAX_REF_DEPTH)]})
    assert json.loads(kept.refs[0]) == nested(MAX_REF_DEPTH)
    with pytest.raises((TypeError, InvalidResponseError), match="nested too deeply"):
        issue_from_dict({"id": "a", "name": "n", "refs": [nested(MAX_REF_DEPTH + 1)]})
