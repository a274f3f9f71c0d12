"""dhis2maint.alerts (#22): the one decision per run (new, resolved, nothing twice),
targets that keep a webhook's secret, and the history that remembers health verdicts,
followed jobs and what was alerted (schema 2, migrated forward from 1)."""
import sqlite3

import pytest

from dhis2maint import alerts, cli, metrics
from dhis2maint.errors import ConfigurationError
from dhis2maint.history import SCHEMA_VERSION, History
from dhis2maint.models import HealthFinding, SchedulerHealth
from dhis2maint.testing import Dhis2StandIn

C = alerts.Condition


def test_decide_alerts_new_conditions_once_and_resolves_them():
    state = {}

    def night(conditions, scope=("integrity:a", "integrity:b", "down")):
        alert, raised, cleared = alerts.decide("http://x", scope, conditions, "severe", state)
        for key in cleared:
            del state[key]
        state.update(raised)
        return alert

    first = night([C("integrity:a", "SEVERE", "a: 2 issues"),
                   C("integrity:b", "WARNING", "b: 9 issues")])
    assert first.event == "alert" and [i.key for i in first.items] == ["integrity:a"]
    assert night([C("integrity:a", "SEVERE", "a: 2 issues", fresh=False)]) is None
    again = night([C("integrity:a", "SEVERE", "a: 4 issues, 2 new", fresh=True)])
    assert [i.text for i in again.items] == ["a: 4 issues, 2 new"]  # new issues: a change
    assert night([], scope=("down",)) is None  # a run that did not cover the check
    gone = night([])
    assert gone.event == "resolved" and [(i.key, i.state) for i in gone.items] == [
        ("integrity:a", "resolved")]
    assert night([]) is None and state == {}
    down = night([C("down", "CRITICAL", "no answer", fresh=False)])
    assert down.event == "alert"
    assert night([C("down", "CRITICAL", "no answer", fresh=False)]) is None


def test_without_a_state_everything_at_the_level_alerts_every_time():
    conditions = [C("integrity:a", "SEVERE", "t", fresh=False), C("integrity:b", "INFO", "t")]
    for _ in range(2):
        alert, raised, cleared = alerts.decide("http://x", [], conditions, "warning", None)
        assert [i.key for i in alert.items] == ["integrity:a"] and raised == {} and not cleared
    with pytest.raises(ConfigurationError):
        alerts.decide("http://x", [], conditions, "loud", None)


def test_targets_keep_the_webhook_secret():
    target = alerts.parse_target("webhook:https://hooks.slack.com/services/T0/B0/SECRETX")
    assert target.describe() == "webhook:hooks.slack.com" and "SECRETX" not in repr(target)
    assert alerts.parse_target("dhis2-group:wl5cDMuUhmF").describe() == "dhis2-group:wl5cDMuUhmF"
    for bad in ("webhook:/relative", "dhis2-user:abc", "mail:x", "webhook:ftp://h/SECRETX"):
        with pytest.raises(ConfigurationError) as info:
            alerts.parse_target(bad)
        assert "SECRETX" not in str(info.value)


def test_a_message_is_bounded():
    items = [alerts.AlertItem("integrity:c{}".format(i), "new", "SEVERE", "x" * 200)
             for i in range(500)]
    alert = alerts.Alert("http://x", "alert", items)
    assert len(alert.text) <= 4000 and alert.text.startswith("dhis2maint on http://x: 500 new")
    assert len(alerts.webhook_body(alert)["items"]) == alerts.MAX_ITEMS


def test_health_verdicts_are_recorded_with_what_is_new(history_target):
    """On SQLite and on PostgreSQL (the same shared SQL through the backend)."""
    import datetime

    one = HealthFinding("failed", "SEVERE", "m", "w", job_id="j1", job_type="ANALYTICS_TABLE")
    two = HealthFinding("stuck", "WARNING", "m", "w", job_id="j2")
    with History(history_target()) as history:
        first = history.record_health(SchedulerHealth(findings=[one]), "http://x/")
        assert first.previous_id is None and first.new_findings == [one]
        second = history.record_health(SchedulerHealth(findings=[one, two]), "http://x")
        assert second.previous_id == first.id and second.new_findings == [two]
        third = history.record_health(SchedulerHealth(findings=[two]), "http://x")
        assert third.new_findings == [] and third.gone_findings == ["failed:j1"]
        assert history.last_health("http://x").health.findings[0].kind == "stuck"
        conditions = alerts.health_conditions(second.health, second)
        assert [(c.key, c.fresh) for c in conditions] == [("scheduler:failed:j1", False),
                                                          ("scheduler:stuck:j2", True)]
        history.update_alert_state("http://x", {"down": ("CRITICAL", "t")}, [])
        assert history.alert_state("http://x") == {"down": ("CRITICAL", "t")}
        history.update_alert_state("http://x", {}, ["down"])
        assert history.alert_state("http://x") == {}
        utc = datetime.timezone.utc
        start = datetime.datetime(2026, 1, 1, 2, 0, tzinfo=utc)
        history.record_job("http://x", "ANALYTICS_TABLE", "a1", start,
                           start + datetime.timedelta(seconds=90), True)
        history.record_job("http://x", "ANALYTICS_TABLE", "a2", start,
                           start + datetime.timedelta(seconds=30), False, "boom")
        [(job_type, (last, duration, ok_at))] = history.job_summary("http://x").items()
        assert job_type == "ANALYTICS_TABLE" and duration == 30.0
        assert ok_at == start + datetime.timedelta(seconds=90)


def test_a_schema_1_history_is_migrated_forward(tmp_path, monkeypatch):
    from dhis2maint import history as module
    from dhis2maint.models import DataIntegrityReport, DataIntegrityResult

    path = str(tmp_path / "old.sqlite")
    monkeypatch.setattr(module, "SCHEMA_VERSION", 1)
    monkeypatch.setattr(History, "_store_new_by_check", lambda self, run_id, new: None)
    rep = DataIntegrityReport(results={"c": DataIntegrityResult(name="c", severity="SEVERE",
                                                                 count=3)})
    rep.base_url = "http://x"
    with History(path) as old:
        old.record(rep)
        assert old.schema_version == 1
    monkeypatch.undo()
    with History(path) as history:
        assert history.schema_version == SCHEMA_VERSION == 2
        assert len(history.runs()) == 1
        assert history.recorded_run(1).new_by_check == {}  # not known for old runs
        history.record_health(SchedulerHealth(), "http://x")
    db = sqlite3.connect(path)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        db.close()
    assert {"run_new_issues", "health_checks", "health_findings", "job_runs",
            "alert_state"} <= tables


def test_jobs_run_wait_writes_job_gauges(tmp_path, capsys, monkeypatch):
    with Dhis2StandIn(version="2.42", job_seconds=0.2) as srv:
        monkeypatch.setenv("DHIS2_URL", srv.url)
        monkeypatch.setenv("DHIS2_USERNAME", "admin")
        monkeypatch.setenv("DHIS2_PASSWORD", "district")
        monkeypatch.delenv("DHIS2_PAT", raising=False)
        prom = str(tmp_path / "m.prom")
        assert cli.main(["jobs", "run", "UsrMonitor1", "--wait", "--timeout", "30",
                         "--metrics-file", prom]) == 0, capsys.readouterr().err
        with open(prom, encoding="utf-8") as handle:
            samples = metrics.parse(handle.read())
        found = {s.name: s.value for s in samples if s.label("job_type") == "MONITORING"}
        assert found["dhis2maint_job_duration_seconds"] > 0
        assert found["dhis2maint_job_last_success_timestamp_seconds"] > 0
    capsys.readouterr()


def test_jobs_health_with_a_history_alone_records_the_verdict(tmp_path, capsys, monkeypatch):
    with Dhis2StandIn(version="2.42", job_seconds=0.2) as srv:
        monkeypatch.setenv("DHIS2_URL", srv.url)
        monkeypatch.setenv("DHIS2_USERNAME", "admin")
        monkeypatch.setenv("DHIS2_PASSWORD", "district")
        monkeypatch.delenv("DHIS2_PAT", raising=False)
        db = str(tmp_path / "h.sqlite")
        assert cli.main(["jobs", "health", "--fail-on", "never", "--history", db]) == 0
        with History(db) as history:
            recorded = history.last_health(srv.url)
        assert recorded is not None and recorded.health.findings
    capsys.readouterr()
