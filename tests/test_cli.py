"""Every command against the built-in stand-in over HTTP: exit codes and output.

In this process and in simulated time (tests/conftest.py: ``cli_in_process``, ``fake_time``);
the console script's own path -- exit code, streams, a clean environment -- is checked by
the tests that take ``run_subprocess`` (and the Ctrl-C one)."""
import csv
import functools
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from dhis2maint.convert import from_json
from dhis2maint.testing import Dhis2StandIn


PASSWORD = "Canary-Pw-5bd1e"
TOKEN = "d2pat_CanaryCliToken000000000000000000000000"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# CI wall time: run_cli in this process, stand-in jobs in simulated time (tests/conftest.py).
pytestmark = [pytest.mark.cli_in_process, pytest.mark.usefixtures("fake_time")]


@pytest.fixture(scope="module")
def server(start_module_standin):
    return start_module_standin("2.42", users={"admin": PASSWORD}, tokens={TOKEN: "admin"})


@pytest.fixture
def fresh(server):
    server.reset_faults()
    server.clear_requests()
    return server


@pytest.fixture
def run_cli(run_cli):
    return functools.partial(run_cli, password=PASSWORD, secrets=(PASSWORD, TOKEN))


@pytest.fixture
def run_subprocess(run_cli_subprocess):
    """`python -m dhis2maint` in a real subprocess: the console-script path."""
    return functools.partial(run_cli_subprocess, password=PASSWORD, secrets=(PASSWORD, TOKEN))


def test_integrity_checks_table_and_json(fresh, run_cli):
    proc = run_cli(["integrity", "checks"], url=fresh.url)
    assert proc.returncode == 0, proc.stderr
    assert "categories_no_options" in proc.stdout and proc.stderr == ""
    proc = run_cli(["integrity", "checks", "--severity", "critical", "--format", "json"],
                   url=fresh.url)
    checks = json.loads(proc.stdout)
    assert checks and {c["severity"] for c in checks} == {"CRITICAL"}


def test_integrity_run_fail_on_threshold(fresh, run_subprocess):
    run_cli = run_subprocess
    severe = run_cli(["integrity", "run", "--fail-on", "severe"], url=fresh.url)
    assert severe.returncode == 1, severe.stderr
    assert "Total:" in severe.stdout
    info_only = run_cli(["integrity", "run", "users_with_all_authority", "--fail-on", "severe"],
                        url=fresh.url)
    assert info_only.returncode == 0, info_only.stderr
    no_threshold = run_cli(["integrity", "run", "--format", "json"], url=fresh.url)
    assert no_threshold.returncode == 0


def test_progress_only_when_asked(fresh, run_cli):
    quiet = run_cli(["integrity", "run", "CNO"], url=fresh.url)
    assert quiet.stderr == ""
    loud = run_cli(["integrity", "run", "CNO", "--progress"], url=fresh.url)
    assert "[" in loud.stderr and "s]" in loud.stderr
    assert "Total:" not in loud.stderr  # the report stays on stdout


def test_integrity_run_json_output_file_round_trips(fresh, tmp_path, run_cli):
    out = tmp_path / "report.json"
    proc = run_cli(["integrity", "run", "--details", "--format", "json", "--output", str(out)],
                   url=fresh.url)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    report = from_json(out.read_text(encoding="utf-8"))
    assert report.details and len(report) == 91
    assert os.listdir(str(tmp_path)) == ["report.json"]


def test_report_csv_and_issues_jsonl_agree(fresh, run_cli):
    run = run_cli(["integrity", "run", "--details"], url=fresh.url)
    assert run.returncode == 0
    table = run_cli(["integrity", "report", "--details", "--format", "csv"], url=fresh.url)
    source, _, body = table.stdout.partition("\n")
    assert source.startswith("# source: baseUrl=" + fresh.url)  # provenance first (#12.7)
    rows = list(csv.DictReader(io.StringIO(body)))
    stream = run_cli(["integrity", "issues", "--format", "jsonl"], url=fresh.url)
    assert stream.returncode == 0, stream.stderr
    lines = [json.loads(line) for line in stream.stdout.splitlines()]
    assert rows and len(rows) == len(lines)
    assert [r["id"] for r in rows] == [line["id"] for line in lines]


def test_diff_exit_codes(fresh, tmp_path, run_cli):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    run_cli(["integrity", "run", "CNO", "--details", "--format", "json", "-o", str(old)],
            url=fresh.url)
    run_cli(["integrity", "run", "CNO", "users_with_all_authority", "--details", "--format", "json",
             "-o", str(new)], url=fresh.url)
    same = run_cli(["integrity", "diff", str(old), str(old)])
    assert same.returncode == 0, same.stderr
    worse = run_cli(["integrity", "diff", str(old), str(new)])
    assert worse.returncode == 1, worse.stderr
    critical_only = run_cli(["integrity", "diff", str(old), str(new), "--fail-on", "critical"])
    assert critical_only.returncode == 0
    better = run_cli(["integrity", "diff", str(new), str(old), "--format", "json"])
    assert better.returncode == 0 and json.loads(better.stdout)
    missing = run_cli(["integrity", "diff", str(old), str(tmp_path / "nope.json")])
    assert missing.returncode == 2 and "nope.json" in missing.stderr


def test_refresh_analytics_waits_and_no_wait_prints_the_id(fresh, run_cli):
    proc = run_cli(["refresh", "analytics", "--last-years", "2", "--skip-events"], url=fresh.url)
    assert proc.returncode == 0, proc.stderr
    assert "completed" in proc.stdout
    post = [r for r in fresh.requests if r.method == "POST"][0]
    assert post.path == "/api/resourceTables/analytics"
    assert post.query == {"lastYears": ["2"], "skipEvents": ["true"]}
    proc = run_cli(["refresh", "resource-tables", "--no-wait"], url=fresh.url)
    job_type, job_id = proc.stdout.split()
    assert job_type == "RESOURCE_TABLE" and len(job_id) == 11
    status = run_cli(["task", "status", "resource_table", job_id], url=fresh.url)
    assert status.returncode == 0
    waited = run_cli(["task", "wait", "RESOURCE_TABLE", job_id], url=fresh.url)
    assert waited.returncode == 0 and "completed" in waited.stdout


def test_failed_job_exits_4(fresh, run_cli):
    fresh.fail_next_job("Process failed: disk full")
    proc = run_cli(["refresh", "monitoring"], url=fresh.url)
    assert proc.returncode == 4
    assert "disk full" in proc.stderr and "Traceback" not in proc.stderr


def test_timeout_exits_4(fresh, run_cli):
    proc = run_cli(["integrity", "run", "--quiet", "--timeout", "0.05"], url=fresh.url)
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.startswith("dhis2maint: error:") and proc.stderr.count("\n") == 1


def test_predictors_and_validation(fresh, run_cli):
    proc = run_cli(["predictors", "run", "--start-date", "2024-01-01", "--end-date",
                    "2024-12-31"], url=fresh.url)
    assert proc.returncode == 0 and "Generated" in proc.stdout
    proc = run_cli(["validation", "run", "--org-unit", "ImspTQPwCqd", "--start-date",
                    "2024-01-01", "--end-date", "2024-03-31", "--format", "json"], url=fresh.url)
    assert proc.returncode == 0, proc.stderr
    assert isinstance(json.loads(proc.stdout), list)
    bad = run_cli(["validation", "run", "--org-unit", "not-a-uid", "--start-date", "2024-01-01",
                   "--end-date", "2024-03-31"], url=fresh.url)
    assert bad.returncode == 2 and "UID" in bad.stderr
    bad_date = run_cli(["predictors", "run", "--start-date", "yesterday", "--end-date",
                        "2024-12-31"], url=fresh.url)
    assert bad_date.returncode == 2


def test_maintenance_operations(fresh, run_cli):
    proc = run_cli(["maintenance", "cache-clear"], url=fresh.url)
    assert proc.returncode == 0, proc.stderr
    refused = run_cli(["maintenance", "prune-periods"], url=fresh.url, stdin=subprocess.DEVNULL)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert not any("periodPruning" in r.path for r in fresh.requests)
    done = run_cli(["maintenance", "prune-periods", "--yes"], url=fresh.url)
    assert done.returncode == 0
    assert [r.path for r in fresh.requests if r.method == "POST"] == [
        "/api/maintenance/cacheClear", "/api/maintenance/periodPruning"]


def test_coc_update_waits_on_243(run_cli):
    with Dhis2StandIn(version="2.43", job_seconds=0.3) as srv:
        srv.coc_generation_delay = 0.5
        env = {"DHIS2_URL": srv.url, "DHIS2_USERNAME": "admin", "DHIS2_PASSWORD": "district"}
        proc = run_cli(["maintenance", "coc-update", "--category-combo", "t3aNCvHsoSn", "--wait"],
                       env=env)
        assert proc.returncode == 0, proc.stderr
        count, expected = proc.stdout.split(":")[1].split("category")[0].split(" of ")
        assert int(count) == int(expected) > 0
        usage = run_cli(["maintenance", "coc-update", "--wait"], env=env)
        assert usage.returncode == 2


def test_authentication_failure_exits_3_without_secrets(fresh, run_subprocess):
    run_cli = run_subprocess
    env = {"DHIS2_URL": fresh.url, "DHIS2_USERNAME": "admin", "DHIS2_PASSWORD": PASSWORD + "x"}
    proc = run_cli(["integrity", "checks"], env=env)
    assert proc.returncode == 3
    assert "401" in proc.stderr and PASSWORD not in proc.stderr


def test_token_flag_and_login_redirect(fresh, run_cli):
    ok = run_cli(["version", "--url", fresh.url, "--token", TOKEN])
    assert ok.returncode == 0 and "DHIS2 2.42" in ok.stdout
    fresh.login_redirect = True
    try:
        proc = run_cli(["integrity", "checks", "--url", fresh.url, "--token", "d2pat_wrong"])
    finally:
        fresh.login_redirect = False
    assert proc.returncode == 3 and "login" in proc.stderr


def test_server_down_exits_3(run_cli):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = run_cli(["integrity", "checks"], env={"DHIS2_URL": "http://127.0.0.1:%d" % port,
                                                 "DHIS2_PAT": TOKEN})
    assert proc.returncode == 3 and "connect" in proc.stderr


def test_configuration_errors_exit_2(run_cli):
    proc = run_cli(["integrity", "checks"])
    assert proc.returncode == 2 and "DHIS2_URL" in proc.stderr


def test_version_without_server(run_subprocess):
    run_cli = run_subprocess
    proc = run_cli(["--version"])
    assert proc.returncode == 0 and proc.stdout.startswith("dhis2maint ")


def test_html_report_file(fresh, tmp_path, run_cli):
    out = tmp_path / "report.html"
    proc = run_cli(["integrity", "run", "--details", "--format", "html", "-o", str(out)],
                   url=fresh.url)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "http://" not in page.split("</head>")[0]


def test_interrupted_run_leaves_no_file(tmp_path):
    with Dhis2StandIn(version="2.42", job_seconds=30) as srv:
        out = tmp_path / "report.json"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("DHIS2_")}
        environ.update({"PYTHONPATH": ROOT, "DHIS2_URL": srv.url, "DHIS2_USERNAME": "admin",
                        "DHIS2_PASSWORD": "district"})
        proc = subprocess.Popen([sys.executable, "-m", "dhis2maint", "integrity", "run",
                                 "--format", "json", "-o", str(out)], env=environ,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while not any(r.method == "GET" and "/system/tasks/" in r.path for r in srv.requests):
            assert time.monotonic() < deadline, "the CLI never started polling"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
        assert proc.returncode == 130
        assert os.listdir(str(tmp_path)) == []


def test_demo_runs_against_the_built_in_stand_in(run_cli):
    proc = run_cli(["demo", "--job-seconds", "0.3"], timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Built-in DHIS2 2.42 stand-in" in proc.stdout
    assert "Total:" in proc.stdout and "Analytics:" in proc.stdout
    # #16.6: seeded drift between nights, recorded in a history, shown as a trend
    nights = re.findall(r"Night (\d): ([\d,]+) issues, ([\d,]+) new, ([\d,]+) resolved",
                        proc.stdout)
    assert [n[0] for n in nights] == ["1", "2", "3"]
    assert nights[0][2] == nights[0][1]  # the first night everything is new
    assert all(int(n[2]) > 0 and int(n[3]) > 0 for n in nights[1:])  # fixed and new ones
    trend = [int(c.replace(",", "")) for c in re.findall(r"  run \d+  \S+ \S+\s+([\d,]+)",
                                                         proc.stdout)]
    assert len(trend) == 3 and trend == sorted(trend) and trend[0] < trend[-1]
