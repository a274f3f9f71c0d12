"""The one polling engine, settings checked before anything is sent, and the one
job-start path (#20 items 1-3).

Waits run on the shared fake clock (tests/conftest.py's ``fake_clock``, which
replaces ``dhis2maint.polling.clock``) or against the stand-in over real HTTP.
"""
import glob
import inspect
import json
import os
import re

import pytest
import responses

from dhis2maint import (ConfigurationError, InvalidResponseError, Session, TaskTimeoutError,
                        TransportError, jobstart, polling)
from dhis2maint.models import FollowUp, Job, JobConfiguration

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dhis2maint")
URL = "https://dhis2.example.org"


# ---------------------------------------------------------------------------
# 1. One engine, one clock

def test_no_loop_outside_the_engine_sleeps():
    sleepers = []
    for path in sorted(glob.glob(os.path.join(PACKAGE, "*.py"))):
        name = os.path.basename(path)
        if name in ("polling.py", "testing.py") or name.startswith("_standin"):
            continue  # the engine, and the stand-in (a server, not a wait)
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if "sleep(" in line:
                    sleepers.append("{}:{}: {}".format(name, number, line.strip()))
    assert sleepers == []


def test_integrity_uses_the_engine_not_jobs_private_outage():
    with open(os.path.join(PACKAGE, "integrity.py"), encoding="utf-8") as f:
        source = f.read()
    assert "_Outage" not in source and "_DOWN" not in source
    assert re.search(r"^from \. import .*\bpolling\b", source, re.M)


WAITS = ["wait_for_task", "iter_task_notifications", "wait_for_job_configuration",
         "run_job_configuration", "wait_for_coc_generation", "run_integrity_checks",
         "iter_integrity_run"]


@pytest.mark.parametrize("name", WAITS)
def test_every_wait_accepts_the_same_settings(name):
    parameters = inspect.signature(getattr(Session, name)).parameters
    assert {"timeout", "poll_interval", "max_interval"} <= set(parameters)


def test_the_pace_keeps_the_lag_bound(fake_clock):
    wait = polling.Wait(polling.Settings(None, 1.0, 10.0, 0.0), "a job")
    for _ in range(200):
        before = fake_clock.now - wait.start
        assert wait.pause(progress=False)
        # the pause never passes max(poll, min(max, max(2 s, 10 % of the time waited)))
        assert fake_clock.sleeps[-1] <= max(1.0, min(10.0, max(2.0, 0.1 * before))) + 1e-9
    assert fake_clock.sleeps[:4] == [1.0, 1.5, 2.0, 2.0]
    assert max(fake_clock.sleeps) == 10.0
    assert wait.pause(progress=True) and fake_clock.sleeps[-1] == 1.0  # drops back


def test_the_deadline_is_exact_on_the_fake_clock(fake_clock):
    wait = polling.Wait(polling.Settings(7.0, 1.0, 10.0, 0.0), "a job")
    while wait.pause():
        pass
    assert sum(fake_clock.sleeps) == pytest.approx(7.0)


CONFIG = {"id": "UsrMonitor1", "name": "Monitoring", "jobType": "MONITORING",
          "jobStatus": "SCHEDULED", "lastExecutedStatus": "COMPLETED",
          "lastExecuted": "2026-01-01T00:00:00.000", "enabled": True}


@responses.activate
def test_wait_for_job_configuration_runs_on_the_one_clock(fake_clock):
    responses.add(responses.GET, URL + "/api/system/info", json={"version": "2.42.1"})
    responses.add(responses.GET, URL + "/api/jobConfigurations/UsrMonitor1", json=CONFIG)
    session = Session(URL, auth=("admin", "district"), retries=0)
    before = session.get_job_configuration("UsrMonitor1")
    with pytest.raises(TaskTimeoutError, match="within 30 s"):
        session.wait_for_job_configuration("UsrMonitor1", before, timeout=30)
    assert sum(fake_clock.sleeps) == pytest.approx(30.0)  # no real second went by


@responses.activate
def test_wait_for_job_configuration_rides_out_an_outage(fake_clock):
    responses.add(responses.GET, URL + "/api/system/info", json={"version": "2.42.1"})
    path = URL + "/api/jobConfigurations/UsrMonitor1"
    responses.add(responses.GET, path, json=CONFIG)
    for _ in range(3):
        responses.add(responses.GET, path, status=503, body="<html>Bad gateway</html>",
                      content_type="text/html")
    done = dict(CONFIG, lastExecuted="2026-01-01T01:00:00.000")
    responses.add(responses.GET, path, json=done)
    session = Session(URL, auth=("admin", "district"), retries=0)
    before = session.get_job_configuration("UsrMonitor1")
    final = session.wait_for_job_configuration("UsrMonitor1", before, timeout=600)
    assert final.last_executed != before.last_executed


@responses.activate
def test_wait_for_job_configuration_outage_longer_than_the_grace_is_a_transport_error(
        fake_clock):
    responses.add(responses.GET, URL + "/api/system/info", json={"version": "2.42.1"})
    path = URL + "/api/jobConfigurations/UsrMonitor1"
    responses.add(responses.GET, path, json=CONFIG)
    responses.add(responses.GET, path, status=502, body="bad gateway")
    session = Session(URL, auth=("admin", "district"), retries=0, outage_grace=60)
    before = session.get_job_configuration("UsrMonitor1")
    with pytest.raises(TransportError, match=r"outage grace \(60 s\)"):
        session.wait_for_job_configuration("UsrMonitor1", before)


# ---------------------------------------------------------------------------
# 2. Settings checked at the public entry, before any request

BAD_SETTINGS = [
    ({"timeout": -1}, "timeout"),
    ({"timeout": float("nan")}, "timeout"),
    ({"timeout": "soon"}, "timeout"),
    ({"poll_interval": 0}, "poll_interval"),
    ({"poll_interval": float("inf")}, "poll_interval"),
    ({"max_interval": float("nan")}, "max_interval"),
    ({"max_interval": True}, "max_interval"),
    ({"poll_interval": 5, "max_interval": 1}, "max_interval"),
]


def _entries(session):
    """Every public wait, as ``call(**settings)``."""
    before = JobConfiguration(id="UsrMonitor1")
    return {
        "run_integrity_checks": lambda **kw: session.run_integrity_checks(**kw),
        "iter_integrity_run": lambda **kw: session.iter_integrity_run(**kw),
        "run_job_configuration": lambda **kw: session.run_job_configuration(
            "UsrMonitor1", wait=True, **kw),
        "wait_for_job_configuration": lambda **kw: session.wait_for_job_configuration(
            "UsrMonitor1", before, **kw),
        "wait_for_coc_generation": lambda **kw: session.wait_for_coc_generation(
            "bjDvmb4bfuf", **kw),
        "wait_for_task": lambda **kw: session.wait_for_task(
            "ANALYTICS_TABLE", "AbCdEfGhIjK", **kw),
    }


@pytest.mark.parametrize("version", ["2.40", "2.42"])
@pytest.mark.parametrize("settings, named", BAD_SETTINGS)
def test_bad_wait_settings_send_nothing(serve, version, settings, named):
    srv, session = serve(version)
    for name, call in _entries(session).items():
        del srv.requests[:]
        with pytest.raises(ConfigurationError, match=named):
            call(**settings)
        assert [r.method + " " + r.path for r in srv.requests] == [], name


@pytest.mark.parametrize("attribute, value", [("outage_grace", -1.0),
                                              ("outage_grace", float("nan")),
                                              ("stream_deadline", float("inf")),
                                              ("stream_deadline", 0)])
def test_bad_session_settings_set_later_send_nothing(serve, attribute, value):
    srv, session = serve("2.42")
    setattr(session, attribute, value)
    for name, call in _entries(session).items():
        del srv.requests[:]
        with pytest.raises(ConfigurationError, match=attribute):
            call()
        assert [r for r in srv.requests if r.method == "POST"] == [], name
        assert srv.requests == [], name


def test_run_integrity_checks_with_a_negative_timeout_posts_nothing(serve):
    srv, session = serve("2.42")
    with pytest.raises(ConfigurationError, match="timeout"):
        session.run_integrity_checks(timeout=-1)
    assert [r for r in srv.requests if r.method == "POST"] == []


@pytest.mark.parametrize("value", [True, "x", -1, float("nan"), float("inf"), None])
def test_one_seconds_check_for_session_and_connections(value):
    with pytest.raises(ConfigurationError, match="timeout"):
        Session(URL, timeout=value)
    with pytest.raises(ConfigurationError, match="'timeout'"):
        Session.from_uri("https://:t@h.example.org/?timeout={}".format(value))


def test_a_connection_may_set_outage_grace_zero_like_the_session():
    assert Session.from_uri("https://:t@h.example.org/?outage_grace=0").outage_grace == 0.0
    assert Session(URL, outage_grace=0).outage_grace == 0.0


def test_the_default_max_interval_follows_a_longer_poll_interval():
    settings = polling.settings(None, None, 30.0, 10.0)
    assert settings.poll_interval == settings.max_interval == 30.0
    with pytest.raises(ConfigurationError, match="max_interval"):
        polling.settings(None, None, 30.0, 12.0)


# ---------------------------------------------------------------------------
# 3. One path starts every job: run_job_configuration too

@pytest.fixture
def fast_recovery(monkeypatch):
    monkeypatch.setattr(jobstart, "RECOVERY_WAIT", 5.0)
    monkeypatch.setattr(jobstart, "RECOVERY_POLL", 0.05)


@pytest.mark.parametrize("version", ["2.38", "2.42"])
def test_run_job_configuration_lost_answer_is_outcome_unknown(serve, version):
    srv, session = serve(version)
    srv.drop_response_next(1, method="POST")
    with pytest.raises(TransportError, match="MAY have started") as info:
        session.run_job_configuration("UsrMonitor1")
    assert info.value.outcome_unknown
    assert info.value.follow_ups == (FollowUp("get_job_configuration",
                                              (("job_id", "UsrMonitor1"),),
                                              "read its record (lastExecuted, jobStatus)"),)
    assert [r.method for r in srv.requests].count("POST") == 1  # never re-sent


@pytest.mark.parametrize("version", ["2.38", "2.42"])
def test_run_job_configuration_empty_answer_is_outcome_unknown(serve, version):
    srv, session = serve(version)
    srv.empty_next(1, method="POST")
    with pytest.raises(InvalidResponseError, match="MAY have started") as info:
        session.run_job_configuration("UsrMonitor1")
    assert info.value.outcome_unknown and info.value.empty_body


def test_run_job_configuration_oversized_answer_is_outcome_unknown(serve):
    srv, session = serve("2.42")
    srv.answer_next(json.dumps({"klass": "x" * (128 * 1024), "errorReports": []}),
                    method="POST", content_type="application/json")
    with pytest.raises(TransportError, match="larger than .*MAY have started") as info:
        session.run_job_configuration("UsrMonitor1")
    assert info.value.outcome_unknown


@pytest.mark.parametrize("knob", ["drop_response_next", "empty_next"])
@pytest.mark.parametrize("version", ["2.38", "2.42"])
def test_recover_job_starts_adopts_a_lost_configuration_run(serve, fast_recovery, knob,
                                                             version):
    srv, _ = serve(version, job_seconds=0.5)
    session = Session(srv.url, auth=("admin", "district"), retries=1, recover_job_starts=True)
    before = session.get_job_configuration("UsrMonitor1")
    getattr(srv, knob)(1, method="POST")
    job = session.run_job_configuration("UsrMonitor1")
    assert isinstance(job, Job) and job.id == "UsrMonitor1"
    assert "recovered" in job.message
    final = session.wait_for_job_configuration("UsrMonitor1", before, timeout=20,
                                               poll_interval=0.05, max_interval=0.2)
    assert str(final.last_executed_status) == "COMPLETED"


def test_recover_job_starts_adopts_nothing_when_no_run_began(serve, fast_recovery,
                                                             monkeypatch):
    monkeypatch.setattr(jobstart, "RECOVERY_WAIT", 0.3)
    srv, _ = serve("2.42")
    session = Session(srv.url, auth=("admin", "district"), retries=1, recover_job_starts=True)
    before = session.get_job_configuration("UsrMonitor1")
    # an oversized answer from a proxy: DHIS2 never saw the POST, so nothing ran
    srv.answer_next(json.dumps({"klass": "x" * (128 * 1024)}), method="POST",
                    content_type="application/json")
    with pytest.raises(TransportError, match="MAY have started") as info:
        session.run_job_configuration("UsrMonitor1")
    assert info.value.outcome_unknown
    after = session.get_job_configuration("UsrMonitor1")
    assert after.last_executed == before.last_executed
