"""dhis2maint.metrics and the CLI's --metrics-file / `metrics --history` (#22): the
exposition text, the atomic textfile that never loses the last success time, and the
gauges of real runs against the stand-in (in-process `dhis2maint` commands)."""
import datetime
import os
import socket

import pytest
from conftest import cli_main, read, values

from dhis2maint import cli, metrics
from dhis2maint.history import History
from dhis2maint.models import (DataIntegrityReport, DataIntegrityResult, HealthFinding,
                               SchedulerHealth)

# Simulated time (tests/conftest.py fake_time): the stand-ins' jobs and the waits for them
# take no real seconds; requests still go over real HTTP.
pytestmark = pytest.mark.usefixtures("fake_time")

PASSWORD = "Canary-Watch-Pw-31"


@pytest.fixture
def srv(start_standin):
    return start_standin("2.42", job_seconds=0.2, users={"admin": PASSWORD})


def run(args, capsys, monkeypatch, url=None):
    """`dhis2maint ARGS` in this process -> (exit code, stdout, stderr)."""
    return cli_main(args, capsys, monkeypatch, url, PASSWORD)


def report(counts, base_url="http://dhis2.example.org"):
    results = {}
    for name, (severity, count, error) in counts.items():
        results[name] = DataIntegrityResult(name=name, severity=severity, count=count,
                                            error=error)
    rep = DataIntegrityReport(results=results)
    rep.base_url = base_url
    return rep


# --- the text format ---------------------------------------------------------------------


def test_render_has_help_type_escaped_labels_and_no_timestamps():
    text = metrics.render([
        metrics.Sample("dhis2maint_integrity_issues",
                       (("server", "http://x"), ("check", 'a"b\\c\nd'), ("severity", "SEVERE")),
                       3.0),
        metrics.Sample("dhis2maint_up", (("server", "http://x"),), 1.0)])
    lines = text.splitlines()
    assert lines[0] == "# HELP dhis2maint_up " + metrics.METRICS["dhis2maint_up"]
    assert lines[1] == "# TYPE dhis2maint_up gauge"
    assert 'check="a\\"b\\\\c\\nd"' in text
    series = [line for line in lines if not line.startswith("#")]
    assert all(len(line.rsplit(" ", 1)) == 2 and "} " in line for line in series)
    assert all(len(line.split("} ")[1].split()) == 1 for line in series)  # no timestamp
    back = metrics.parse(text)
    assert back[1].label("check") == 'a"b\\c\nd' and back[1].value == 3


def test_server_label_never_carries_credentials():
    assert metrics.server_label("https://admin:district@dhis2.example.org:8443/dhis/?x=1#y") \
        == "https://dhis2.example.org:8443/dhis"
    assert metrics.server_label("http://[::1]:8080/") == "http://[::1]:8080"


def test_integrity_samples_count_failed_checks_and_severities():
    rep = report({"a": ("SEVERE", 4, None), "b": ("WARNING", -1, "boom"), "c": (None, 0, None)})
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    text = metrics.render(metrics.integrity_samples(rep, duration=12.5, finished_at=when))
    assert values(text, "dhis2maint_integrity_issues", check="a", severity="SEVERE") == [4]
    assert values(text, "dhis2maint_integrity_issues", check="b") == []  # errored: no count
    assert values(text, "dhis2maint_integrity_issues", check="c", severity="WARNING") == [0]
    assert values(text, "dhis2maint_integrity_check_failed", check="b") == [1]
    assert values(text, "dhis2maint_integrity_check_failed", check="a") == [0]
    assert values(text, "dhis2maint_integrity_last_success_timestamp_seconds") == [
        when.timestamp()]
    assert values(text, "dhis2maint_integrity_run_duration_seconds") == [12.5]
    assert set(values(text, "dhis2maint_integrity_issues")) <= {0, 4}
    assert "issue_id" not in text and "id=" not in text  # no per-issue labels


def test_health_samples_give_every_kind_a_series():
    health = SchedulerHealth(findings=[
        HealthFinding("failed", "SEVERE", "m", "w", job_id="j1"),
        HealthFinding("failed", "SEVERE", "m", "w", job_id="j2"),
        HealthFinding("stuck", "WARNING", "m", "w")])
    text = metrics.render(metrics.health_samples(health, "http://x"))
    assert values(text, "dhis2maint_scheduler_findings", kind="failed", severity="SEVERE") == [2]
    assert values(text, "dhis2maint_scheduler_findings", kind="stuck", severity="WARNING") == [1]
    for kind in metrics.FINDING_KINDS:
        assert len(values(text, "dhis2maint_scheduler_findings", kind=kind)) == 4
    assert values(text, "dhis2maint_scheduler_findings", kind="scheduler_dead",
                  severity="CRITICAL") == [0]


def test_analytics_time_comes_from_the_servers_clock_not_the_clients():
    info = {"serverDate": "2026-12-06T14:00:00.000", "lastAnalyticsTableSuccess":
            "2026-12-06T02:00:00.000"}  # 12 h before the server's now, whatever its zone
    [sample] = metrics.analytics_samples("http://x", info, now=1_000_000.0)
    assert sample.value == 1_000_000.0 - 12 * 3600
    assert metrics.analytics_samples("http://x", {"serverDate": "2026-12-06T14:00:00"}) == []
    never = dict(info, lastAnalyticsTableSuccess="1970-01-01T00:00:00.000")
    assert metrics.analytics_samples("http://x", never) == []


def test_push_url_is_base64_of_the_server():
    url = metrics.push_url("http://gw:9091/", "https://u:p@dhis2.example.org/dhis/")
    assert url == ("http://gw:9091/metrics/job/dhis2maint/server@base64/"
                   "aHR0cHM6Ly9kaGlzMi5leGFtcGxlLm9yZy9kaGlz")


def test_a_refused_push_names_the_host_only():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there
    with pytest.raises(metrics.PushError) as info:
        metrics.push("http://user:s3cret@127.0.0.1:{}/hook/TOKEN123".format(port),
                     metrics.up_samples("http://x", True), timeout=3)
    assert "127.0.0.1" in str(info.value)
    assert "s3cret" not in str(info.value) and "TOKEN123" not in str(info.value)


# --- the textfile --------------------------------------------------------------------------


def test_textfile_keeps_the_last_success_of_a_failed_run(tmp_path):
    path = str(tmp_path / "dhis2maint.prom")
    ok = metrics.up_samples("http://x", True) + metrics.integrity_samples(
        report({"a": ("SEVERE", 1, None)}, "http://x"),
        finished_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)) + \
        metrics.job_samples("http://x", "ANALYTICS_TABLE", 5.0, True)
    metrics.write_textfile(path, ok)
    first = read(path)
    metrics.write_textfile(path, metrics.up_samples("http://x", False))
    after = read(path)
    assert values(after, "dhis2maint_up") == [0]
    for name in ("dhis2maint_integrity_last_success_timestamp_seconds",
                 "dhis2maint_job_last_success_timestamp_seconds"):
        assert values(after, name) == values(first, name) and values(first, name)
    assert values(after, "dhis2maint_integrity_issues") == []  # only the success times kept
    other = metrics.up_samples("http://other", True)
    metrics.write_textfile(path, other)  # another server's run keeps nothing of x
    assert values(read(path), "dhis2maint_integrity_last_success_timestamp_seconds") == []


def test_textfile_is_never_partial(tmp_path, monkeypatch):
    path = tmp_path / "dhis2maint.prom"
    metrics.write_textfile(str(path), metrics.up_samples("http://x", True))
    before = path.read_text()
    seen = []
    real_replace = os.replace

    def killed(src, dst):
        seen.append(os.path.dirname(src))
        raise KeyboardInterrupt  # killed between the write and the rename

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        metrics.write_textfile(str(path), metrics.up_samples("http://x", False))
    monkeypatch.setattr(os, "replace", real_replace)
    assert path.read_text() == before
    assert seen == [str(tmp_path)]  # the temporary file was in the same directory
    assert sorted(os.listdir(str(tmp_path))) == ["dhis2maint.prom"]  # and is gone


# --- the commands ---------------------------------------------------------------------------


def test_integrity_run_writes_the_gauges(srv, tmp_path, capsys, monkeypatch):
    prom = str(tmp_path / "m.prom")
    db = str(tmp_path / "h.sqlite")
    srv.set_issue_count("orgunits_multiple_roots", 3)
    code, _, err = run(["integrity", "run", "--history", db, "-o", str(tmp_path / "r.txt"),
                        "--metrics-file", prom], capsys, monkeypatch, url=srv.url)
    assert code == 0, err
    text = read(prom)
    assert values(text, "dhis2maint_up", server=srv.url) == [1]
    [info] = [s for s in metrics.parse(text) if s.name == "dhis2maint_info"]
    assert info.label("dhis2_version") == "2.42.0" and info.label("version")
    assert values(text, "dhis2maint_integrity_issues", check="orgunits_multiple_roots",
                  severity="CRITICAL") == [3]
    first_new = values(text, "dhis2maint_integrity_new_issues", severity="CRITICAL")
    assert first_new and first_new[0] >= 3  # the first recorded run: everything is new
    assert values(text, "dhis2maint_integrity_run_duration_seconds")[0] > 0
    assert values(text, "dhis2maint_analytics_last_generated_timestamp_seconds")
    srv.set_issue_count("orgunits_multiple_roots", 5)
    code, _, err = run(["integrity", "run", "--history", db, "-o", str(tmp_path / "r.txt"),
                        "--metrics-file", prom], capsys, monkeypatch, url=srv.url)
    text = read(prom)
    assert values(text, "dhis2maint_integrity_new_issues", severity="CRITICAL") == [2]
    assert values(text, "dhis2maint_integrity_new_issues", severity="INFO") == [0]
    with History(db) as history:  # the same answer the history recorded
        last = history.runs()[-1]
        assert history.recorded_run(last.id).new_by_check == {"orgunits_multiple_roots": 2}


def test_a_run_without_dhis2_writes_up_0_and_keeps_the_last_success(srv, tmp_path, capsys,
                                                                   monkeypatch):
    prom = str(tmp_path / "m.prom")
    code, _, err = run(["integrity", "run", "-o", str(tmp_path / "r.txt"), "--metrics-file",
                        prom], capsys, monkeypatch, url=srv.url)
    assert code == 0, err
    before = values(read(prom), "dhis2maint_integrity_last_success_timestamp_seconds")
    url = srv.url
    srv.stop()
    code, _, err = run(["integrity", "run", "--http-timeout", "2", "-o",
                        str(tmp_path / "r.txt"), "--metrics-file", prom], capsys, monkeypatch,
                       url=url)
    assert code == 3, err
    text = read(prom)
    assert values(text, "dhis2maint_up", server=url) == [0]
    assert values(text, "dhis2maint_integrity_last_success_timestamp_seconds") == before
    assert values(text, "dhis2maint_integrity_last_run_timestamp_seconds")[0] > before[0]


def test_jobs_health_and_refresh_write_their_gauges_and_record_them(srv, tmp_path, capsys,
                                                                    monkeypatch):
    prom, db = str(tmp_path / "m.prom"), str(tmp_path / "h.sqlite")
    code, _, err = run(["jobs", "health", "--fail-on", "never", "--history", db, "--metrics-file", prom],
                       capsys, monkeypatch, url=srv.url)
    assert code == 0, err
    text = read(prom)
    assert sum(values(text, "dhis2maint_scheduler_findings")) > 0
    assert len(values(text, "dhis2maint_scheduler_findings")) >= 4 * len(metrics.FINDING_KINDS)
    with History(db) as history:
        health = history.last_health(srv.url)
        assert health is not None and health.health.findings
    code, _, err = run(["refresh", "resource-tables", "--history", db, "--metrics-file", prom],
                       capsys, monkeypatch, url=srv.url)
    assert code == 0, err
    text = read(prom)
    assert values(text, "dhis2maint_job_duration_seconds", job_type="RESOURCE_TABLE")[0] > 0
    ok = values(text, "dhis2maint_job_last_success_timestamp_seconds",
                job_type="RESOURCE_TABLE")
    srv.fail_next_job()
    code, _, err = run(["refresh", "analytics", "--history", db, "--metrics-file", prom],
                       capsys, monkeypatch, url=srv.url)
    assert code == 4, err
    text = read(prom)
    assert values(text, "dhis2maint_job_last_success_timestamp_seconds",
                  job_type="ANALYTICS_TABLE") == []
    assert values(text, "dhis2maint_job_last_success_timestamp_seconds",
                  job_type="RESOURCE_TABLE") == ok  # from the history
    code, out, err = run(["metrics", "--history", db], capsys, monkeypatch)  # no DHIS2_URL
    assert code == 0, err
    assert values(out, "dhis2maint_job_last_success_timestamp_seconds",
                  job_type="RESOURCE_TABLE") == ok
    assert values(out, "dhis2maint_job_duration_seconds", job_type="ANALYTICS_TABLE")
    assert sum(values(out, "dhis2maint_scheduler_findings")) > 0


def test_metrics_command_prints_every_server_of_a_history(tmp_path, capsys, monkeypatch):
    db = str(tmp_path / "h.sqlite")
    with History(db) as history:
        for url, n in (("http://a.example.org", 2), ("http://b.example.org", 7)):
            history.record(report({"c1": ("SEVERE", n, None)}, url))
    out_file = str(tmp_path / "h.prom")
    code, out, err = run(["metrics", "--history", db, "-o", out_file], capsys, monkeypatch)
    assert code == 0 and out == "", err
    text = read(out_file)
    assert values(text, "dhis2maint_integrity_issues", server="http://a.example.org") == [2]
    assert values(text, "dhis2maint_integrity_issues", server="http://b.example.org") == [7]
    assert values(text, "dhis2maint_integrity_new_issues", server="http://b.example.org",
                  severity="SEVERE") == [7]
    assert values(text, "dhis2maint_up") == []  # nothing was asked of DHIS2
    code, _, err = run(["metrics", "--history", str(tmp_path / "none.sqlite")], capsys,
                       monkeypatch)
    assert code == 2 and "no history file" in err


def test_demo_ends_by_writing_a_metrics_file_and_showing_two_lines(capsys):
    assert cli.main(["demo", "--job-seconds", "0.2", "--quiet"]) == 0
    out = capsys.readouterr().out
    tail = out[out.index("$ dhis2maint metrics --history"):]
    shown = [line.strip() for line in tail.splitlines()[1:3]]
    [new, success] = [metrics.parse(line)[0] for line in shown]
    assert new.name == "dhis2maint_integrity_new_issues" and new.label("severity") == "SEVERE"
    assert new.value > 0
    assert success.name == "dhis2maint_integrity_last_success_timestamp_seconds"
    assert out.index("$ dhis2maint metrics") > out.index("$ dhis2maint jobs health")


def test_comparison_samples_count_new_issues_of_two_saved_reports():
    from dhis2maint import compare_reports

    old = report({"a": ("SEVERE", 2, None), "b": ("WARNING", 5, None)})
    new = report({"a": ("SEVERE", 6, None), "b": ("WARNING", 1, None)})
    text = metrics.render(metrics.comparison_samples(compare_reports(old, new), "http://x"))
    assert values(text, "dhis2maint_integrity_new_issues", severity="SEVERE") == [4]
    assert values(text, "dhis2maint_integrity_new_issues", severity="WARNING") == [0]
    assert len(values(text, "dhis2maint_integrity_new_issues")) == 4
