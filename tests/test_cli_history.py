"""The history commands end to end: `dhis2maint` commands (in this process, simulated time:
tests/conftest.py ``cli_in_process``, ``fake_time``;
the console script's own path: test_fail_on_new_exits_1_only_for_issues_the_previous_run_lacked)
against the stand-in over HTTP
(#16.3, #16.5, #16.6, #12.7): --history, $DHIS2MAINT_HISTORY, --fail-on-new, history,
trend, open, streamed details output, provenance, diff of two servers."""
import csv
import functools
import io
import json
import os
import sqlite3

import pytest

from dhis2maint.convert import from_json
from dhis2maint.testing import Dhis2StandIn


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "Canary-Hist-Pw-77"

# CI wall time: run_cli in this process, stand-in jobs in simulated time (tests/conftest.py).
pytestmark = [pytest.mark.cli_in_process, pytest.mark.usefixtures("fake_time")]


@pytest.fixture
def srv(start_standin):
    return start_standin("2.42", job_seconds=0.2, users={"admin": PASSWORD})


@pytest.fixture
def run_cli(run_cli):
    return functools.partial(run_cli, password=PASSWORD, secrets=(PASSWORD,), timeout=120,
                             unset=("DHIS2MAINT_HISTORY",))


@pytest.fixture
def run_subprocess(run_cli_subprocess):
    """The real console-script path: `python -m dhis2maint` in a subprocess."""
    return functools.partial(run_cli_subprocess, password=PASSWORD, secrets=(PASSWORD,),
                             timeout=120, unset=("DHIS2MAINT_HISTORY",))


def test_fail_on_new_exits_1_only_for_issues_the_previous_run_lacked(srv, tmp_path,
                                                                      run_subprocess):
    run_cli = run_subprocess
    db = str(tmp_path / "h.sqlite")
    args = ["integrity", "run", "--details", "--history", db, "--fail-on-new", "severe",
            "--progress"]
    first = run_cli(args, url=srv.url)
    assert first.returncode == 1, first.stderr  # first run: everything is new
    assert "(first run of this server)" in first.stderr
    second = run_cli(args, url=srv.url)  # the same issues again
    assert second.returncode == 0, second.stderr
    assert "0 new, 0 resolved since run 1" in second.stderr
    srv.drift = 1  # now some issues are resolved and some are new
    third = run_cli(args, url=srv.url)
    assert third.returncode == 1, third.stderr
    runs = json.loads(run_cli(["integrity", "history", "--history", db, "--format",
                               "json"]).stdout)
    assert [r["id"] for r in runs] == [1, 2, 3]
    assert runs[1]["new_issues"] == 0 and runs[2]["new_issues"] > 0
    assert runs[2]["resolved_issues"] > 0 and runs[0]["base_url"] == srv.url


def test_fail_on_new_needs_a_history(srv, run_cli):
    proc = run_cli(["integrity", "run", "--fail-on-new", "info"], url=srv.url)
    assert proc.returncode == 2 and "--fail-on-new needs --history" in proc.stderr


def test_history_from_the_environment_and_trend_and_open(srv, tmp_path, run_cli):
    db = str(tmp_path / "env.sqlite")
    env = {"DHIS2MAINT_HISTORY": db}
    srv.drift = 1
    for _ in range(3):
        proc = run_cli(["integrity", "run", "--details", "--format", "json", "-o",
                        str(tmp_path / "r.json")], url=srv.url, env=env)
        assert proc.returncode == 0, proc.stderr
    assert os.path.exists(db)
    trend = list(csv.DictReader(io.StringIO(run_cli(
        ["integrity", "trend", "--format", "csv"], env=env).stdout)))
    totals = [int(row["count"]) for row in trend]
    assert len(totals) == 3 and totals[0] < totals[1] < totals[2]
    check = run_cli(["integrity", "trend", "orgunits_multiple_roots", "--format", "jsonl"],
                    env=env)
    points = [json.loads(line) for line in check.stdout.splitlines()]
    assert [p["check"] for p in points] == ["orgunits_multiple_roots"] * 3
    assert all(p["severity"] == "CRITICAL" for p in points)
    future = run_cli(["integrity", "trend", "--since", "2999-01-01"], env=env)
    assert future.returncode == 0 and "0 runs" in future.stdout
    opened = json.loads(run_cli(["integrity", "open", "--severity", "critical",
                                 "--format", "json"], env=env).stdout)
    assert opened and {o["severity"] for o in opened} == {"CRITICAL"}
    assert min(o["first_run"] for o in opened) == 1 and max(o["first_run"] for o in opened) == 3
    old = run_cli(["integrity", "open", "--older-than", "30d", "--format", "json"], env=env)
    assert json.loads(old.stdout) == []
    table = run_cli(["integrity", "open", "--check", "orgunits_multiple_roots"], env=env)
    assert table.returncode == 0 and "orgunits_multiple_roots" in table.stdout


def test_history_commands_without_a_file_exit_2(tmp_path, run_cli):
    missing = run_cli(["integrity", "history", "--history", str(tmp_path / "nope.sqlite")])
    assert missing.returncode == 2 and "no history file" in missing.stderr
    assert not os.path.exists(str(tmp_path / "nope.sqlite"))
    none = run_cli(["integrity", "open"])
    assert none.returncode == 2 and "$DHIS2MAINT_HISTORY" in none.stderr
    bad = run_cli(["integrity", "open", "--older-than", "soon", "--history",
                   str(tmp_path / "nope.sqlite")])
    assert bad.returncode == 2


def test_a_history_from_a_newer_dhis2maint_exits_2(srv, tmp_path, run_cli):
    db = str(tmp_path / "h.sqlite")
    assert run_cli(["integrity", "run", "--history", db], url=srv.url).returncode == 0
    conn = sqlite3.connect(db)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    proc = run_cli(["integrity", "history", "--history", db])
    assert proc.returncode == 2
    assert "schema version 99, newer than this dhis2maint supports" in proc.stderr
    run = run_cli(["integrity", "run", "--history", db], url=srv.url)
    assert run.returncode == 2 and "upgrade dhis2maint" in run.stderr


def test_streamed_details_json_equals_the_whole_report(srv, tmp_path, run_cli):
    srv.fail_check("categories_no_options")
    whole = run_cli(["integrity", "run", "--details", "--format", "table"], url=srv.url)
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "streamed.json"
    proc = run_cli(["integrity", "report", "--details", "--format", "json", "-o", str(out)],
                   url=srv.url)
    assert proc.returncode == 0, proc.stderr
    streamed = from_json(out.read_text(encoding="utf-8"))
    from dhis2maint import Session

    with Session(srv.url, auth=("admin", PASSWORD)) as session:
        cached = session.get_integrity_report(details=True)
    assert streamed.results == cached.results and streamed.details
    assert streamed["categories_no_options"].error and streamed.base_url == srv.url
    assert streamed.dhis2_version == "2.42.0" and streamed.run_at is not None


def test_streamed_run_jsonl_and_csv_start_with_the_source(srv, tmp_path, run_cli):
    proc = run_cli(["integrity", "run", "--details", "--format", "jsonl"], url=srv.url)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    source = lines[0]["source"]
    assert lines[0]["dhis2maint"] == 1 and source["baseUrl"] == srv.url
    assert source["dhis2Version"] == "2.42.0" and source["jobId"] and source["runAt"]
    assert source["serverTime"] and all("check" in line for line in lines[1:])
    csv_out = run_cli(["integrity", "run", "--details", "--format", "csv"], url=srv.url)
    first, _, body = csv_out.stdout.partition("\n")
    assert first.startswith("# source: baseUrl=" + srv.url) and "jobId=" in first
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == len(lines) - 1


def test_streamed_run_records_into_the_history(srv, tmp_path, run_cli):
    db = str(tmp_path / "h.sqlite")
    out = tmp_path / "run.json"
    proc = run_cli(["integrity", "run", "--details", "--format", "json", "-o", str(out),
                    "--history", db], url=srv.url)
    assert proc.returncode == 0, proc.stderr
    saved = from_json(out.read_text(encoding="utf-8"))
    runs = json.loads(run_cli(["integrity", "history", "--history", db, "--format",
                               "json"]).stdout)
    assert runs[0]["issues"] == sum(r.count for r in saved) and runs[0]["job_id"] == saved.job_id
    assert runs[0]["checks"] == len(saved)


def test_html_report_with_history(srv, tmp_path, run_cli):
    db = str(tmp_path / "h.sqlite")
    srv.drift = 1
    for _ in range(2):
        assert run_cli(["integrity", "run", "--details", "--history", db], url=srv.url) \
            .returncode == 0
    page = tmp_path / "r.html"
    proc = run_cli(["integrity", "run", "--details", "--history", db, "--format", "html",
                    "-o", str(page)], url=srv.url)
    assert proc.returncode == 0, proc.stderr
    text = page.read_text(encoding="utf-8")
    assert 'id="trend-chart"' in text and text.count('class="run"') == 3
    assert 'class="spark"' in text and "Open since" in text
    assert "How to fix:" in text
    assert srv.url + "/dhis-web-maintenance/index.html#/edit/organisationUnitSection/" \
                     "organisationUnit/" in text
    assert 'id="job-id"' in text and 'id="dhis2-version">2.42.0<' in text


def test_diff_refuses_reports_of_two_servers(srv, tmp_path, run_cli):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert run_cli(["integrity", "run", "--details", "--format", "json", "-o", str(a)],
                   url=srv.url).returncode == 0
    with Dhis2StandIn(version="2.42", job_seconds=0.2, users={"admin": PASSWORD}) as other:
        assert run_cli(["integrity", "run", "--details", "--format", "json", "-o", str(b)],
                       url=other.url).returncode == 0
    proc = run_cli(["integrity", "diff", str(a), str(b)])
    assert proc.returncode == 2 and "--allow-different-servers" in proc.stderr
    assert srv.url in proc.stderr and other.url in proc.stderr
    allowed = run_cli(["integrity", "diff", str(a), str(b), "--allow-different-servers"])
    assert allowed.returncode == 0, allowed.stderr  # same seed: nothing new
    same = run_cli(["integrity", "diff", str(a), str(a)])
    assert same.returncode == 0


def test_diff_reads_a_report_saved_before_provenance(tmp_path, run_cli):
    old = os.path.join(ROOT, "tests", "data", "report-format1-2.42-details.json")
    proc = run_cli(["integrity", "diff", old, old, "--format", "json"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["newIssues"] == []


def test_report_records_the_cached_results_into_the_history(srv, tmp_path, run_cli):
    """`integrity report --history` records what DHIS2 has cached (streamed for json)."""
    db = str(tmp_path / "h.sqlite")
    assert run_cli(["integrity", "run", "--details", "--format", "json"],
                   url=srv.url).returncode == 0
    out = tmp_path / "report.json"
    proc = run_cli(["integrity", "report", "--details", "--history", db, "--format", "json",
                    "--output", str(out)], url=srv.url)
    assert proc.returncode == 0, proc.stderr
    report = from_json(out.read_text(encoding="utf-8"))
    issues = sum(len(r.issues or ()) for r in report.results.values())
    assert issues > 0
    runs = json.loads(run_cli(["integrity", "history", "--history", db, "--format",
                               "json"]).stdout)
    assert len(runs) == 1 and runs[0]["base_url"] == srv.url
    assert runs[0]["issues"] == issues and runs[0]["details"]
    opened = json.loads(run_cli(["integrity", "open", "--history", db, "--format",
                                 "json"]).stdout)
    assert len(opened) == issues
