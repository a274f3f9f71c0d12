"""`dhis2maint jobs|task|validation|doctor|whoami` against the stand-in: output and exit codes.

Most tests call cli.main() in-process (fast); the cron-facing exit codes are also
checked through a real subprocess.
"""
import csv
import io
import json
import os
import subprocess
import sys

import pytest

from dhis2maint import cli

# Simulated time (tests/conftest.py fake_time): the stand-ins' jobs and the waits for them
# take no real seconds; requests still go over real HTTP.
pytestmark = pytest.mark.usefixtures("fake_time")

PASSWORD = "Canary-Pw-15sched"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _logged_in(srv, monkeypatch):
    monkeypatch.setenv("DHIS2_URL", srv.url)
    monkeypatch.setenv("DHIS2_USERNAME", "admin")
    monkeypatch.setenv("DHIS2_PASSWORD", PASSWORD)
    monkeypatch.delenv("DHIS2_PAT", raising=False)
    return srv


@pytest.fixture(params=["2.36", "2.40", "2.42", "2.43"])
def server(request, monkeypatch, start_standin):
    return _logged_in(start_standin(request.param, users={"admin": PASSWORD}), monkeypatch)


@pytest.fixture
def server242(monkeypatch, start_standin):
    return _logged_in(start_standin("2.42", users={"admin": PASSWORD}), monkeypatch)


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert PASSWORD not in out and PASSWORD not in err
    return code, out, err


def test_jobs_list_formats(server, capsys):
    code, out, _ = run(capsys, "jobs", "list")
    assert code == 0 and "Data statistics" in out and "job configurations" in out
    code, out, _ = run(capsys, "jobs", "list", "--format", "json", "--status", "FAILED")
    assert code == 0 and [j["id"] for j in json.loads(out)] == ["UsrMetaSyn1"]
    code, out, _ = run(capsys, "jobs", "list", "--format", "csv", "--type", "data_statistics")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["id"] for r in rows] == ["BFa3jDsbtdO"] and rows[0]["configurable"] == "false"
    code, out, _ = run(capsys, "jobs", "list", "--format", "jsonl", "--disabled")
    assert {json.loads(line)["id"] for line in out.splitlines()} >= {"UsrPredict1"}


def test_jobs_show_run_wait(server, capsys):
    code, out, _ = run(capsys, "jobs", "show", "UsrMonitor1")
    assert code == 0 and "cron_expression: 0 0 6 ? * *" in out
    code, out, err = run(capsys, "jobs", "run", "UsrMonitor1", "--wait", "--timeout", "30",
                         "--progress")
    assert code == 0 and "MONITORING UsrMonitor1 completed" in out
    assert "jobStatus" in err
    server.scheduler.fail_next_run = True
    code, _, err = run(capsys, "jobs", "run", "UsrMonitor1", "--wait", "--timeout", "30")
    assert code == 4 and "FAILED" in err


def test_jobs_run_disabled_refused(server, capsys):
    code, _, err = run(capsys, "jobs", "run", "UsrPredict1")
    assert code == 3 and "disabled" in err


def test_jobs_enable_disable(server, capsys):
    code, out, _ = run(capsys, "jobs", "disable", "UsrMonitor1")
    assert code == 0 and "disabled" in out
    code, out, _ = run(capsys, "jobs", "enable", "UsrMonitor1")
    assert code == 0 and "enabled" in out


def test_jobs_cancel(server, capsys):
    minor = int(server.version.split(".")[1])
    code, _, err = run(capsys, "jobs", "cancel")
    assert code == 2
    code, out, err = run(capsys, "jobs", "cancel", "UsrMonitor1")
    assert code == (0 if minor >= 41 else 3)
    code, out, err = run(capsys, "jobs", "cancel", "--type", "MONITORING")
    assert code == (0 if minor >= 37 else 3)
    if code:
        assert "2.37" in err


def test_jobs_create_delete(server, capsys):
    code, out, _ = run(capsys, "jobs", "create", "Early analytics", "ANALYTICS_TABLE",
                       "--cron", "0 0 4 ? * *", "--parameters", '{"lastYears": 1}',
                       "--format", "json")
    assert code == 0
    created = json.loads(out)
    assert created["cronExpression"] == "0 0 4 ? * *"
    code, _, err = run(capsys, "jobs", "delete", created["id"])
    assert code == 2 and "--yes" in err
    code, out, _ = run(capsys, "jobs", "delete", created["id"], "--yes")
    assert code == 0 and "deleted" in out
    code, _, err = run(capsys, "jobs", "create", "Bad", "MONITORING", "--cron", "nightly")
    assert code == 3 and "Cron expression is invalid" in err
    code, _, err = run(capsys, "jobs", "create", "Bad", "MONITORING", "--cron", "0 0 1 ? * *",
                       "--parameters", "[1]")
    assert code == 2


def test_jobs_health_fail_on(server, capsys):
    code, out, err = run(capsys, "jobs", "health")  # default --fail-on severe (#21.1)
    assert code == 1 and "SEVERE" in out and "->" in out and "(server time)" in out
    assert "at SEVERE or worse" in err
    code, out, _ = run(capsys, "jobs", "health", "--fail-on", "severe")
    assert code == 1
    code, out, _ = run(capsys, "jobs", "health", "--fail-on", "critical")
    assert code == 0
    code, out, _ = run(capsys, "jobs", "health", "--format", "csv")
    kinds = {r["kind"] for r in csv.DictReader(io.StringIO(out))}
    assert {"failed", "stuck", "overdue", "disabled_system_job", "analytics_stale"} == kinds
    code, out, _ = run(capsys, "jobs", "health", "--format", "json")
    assert json.loads(out)["findings"][0]["whatToDo"]
    server.scheduler.reset(healthy=True)
    code, out, _ = run(capsys, "jobs", "health", "--fail-on", "info")
    assert code == 0 and "OK: nothing failed" in out


def test_task_types_and_list(server, capsys):
    code, out, _ = run(capsys, "refresh", "resource-tables", "--quiet")
    assert code == 0
    code, out, _ = run(capsys, "task", "types")
    assert code == 0 and "RESOURCE_TABLE" in out.split()
    code, out, _ = run(capsys, "task", "list", "resource_table", "--format", "json")
    assert code == 0 and len(json.loads(out)) == 1


def test_validation_commands(server, capsys):
    minor = int(server.version.split(".")[1])
    code, out, _ = run(capsys, "validation", "results", "--org-unit", "O6uvpzGd5pu",
                       "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and rows and {r["organisation_unit_id"] for r in rows} == {"O6uvpzGd5pu"}
    code, _, err = run(capsys, "validation", "delete-results", "--yes")
    assert code == 2 and "--all --yes" in err
    code, _, err = run(capsys, "validation", "delete-results", "--all")
    assert code == 2 and "--yes" in err
    assert not any(r.method == "DELETE" for r in server.requests)
    if minor < 42:
        server.authorities["admin"] = ["ALL", "F_PERFORM_MAINTENANCE"]
    code, out, _ = run(capsys, "validation", "delete-results", "--period", "202401", "--yes")
    assert code == 0
    code, out, _ = run(capsys, "validation", "delete-results", "--all", "--yes")
    assert code == 0
    code, out, _ = run(capsys, "validation", "results", "--format", "json")
    assert json.loads(out) == []
    code, out, _ = run(capsys, "validation", "notify")  # --wait is the default (#21.5)
    assert code == 0 and ("started" in out if minor < 41 else "completed" in out)


def test_whoami(server, capsys):
    server.authorities["admin"] = ["F_RUN_VALIDATION"]
    code, out, _ = run(capsys, "whoami")
    assert code == 0 and out.startswith("admin (Admin)") and "F_RUN_VALIDATION" in out
    code, out, _ = run(capsys, "whoami", "--format", "json")
    assert json.loads(out)["authorities"] == ["F_RUN_VALIDATION"]


def test_doctor_exit_codes(server, capsys):
    server.scheduler.reset(healthy=True)
    code, out, _ = run(capsys, "doctor")
    assert code == 0 and "PASS  credentials" in out
    server.authorities["admin"] = ["F_RUN_VALIDATION"]
    code, out, _ = run(capsys, "doctor", "--need", "integrity", "--format", "json")
    assert code == 1
    failed = [c for c in json.loads(out)["checks"] if c["status"] == "fail"]
    assert [c["name"] for c in failed] == ["authority: integrity"]
    # the library's detail names no command; the CLI words what will be refused (#20)
    assert "integrity run" not in failed[0]["detail"]
    assert failed[0]["refused"][0] == "`dhis2maint integrity run`"
    code, out, _ = run(capsys, "doctor", "--need", "integrity")
    assert code == 1 and "refused: `dhis2maint integrity run`, `dhis2maint integrity report`" in out
    assert "refused: `dhis2maint maintenance clear-analytics-tables`" in out and "in all)" in out


def test_cron_exit_codes_in_a_subprocess(server242):
    env = {k: v for k, v in os.environ.items()}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    for argv, expected in ((["jobs", "health", "--fail-on", "warning"], 1),
                           (["doctor"], 1)):
        proc = subprocess.run([sys.executable, "-m", "dhis2maint"] + argv, env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == expected, proc.stderr
        assert PASSWORD not in proc.stdout + proc.stderr


def test_demo_ends_with_jobs_health(capsys):
    code = cli.main(["demo", "--job-seconds", "0.2", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "$ dhis2maint jobs health" in out and "Scheduler health of DHIS2" in out
    assert out.index("$ dhis2maint jobs health") > out.index("Analytics:")
