"""examples/airflow_dag.py in real Apache Airflow, against the stand-in.

Runs only where Airflow is installed (the tox envs ``airflow`` and ``airflow3``);
elsewhere the module is skipped -- unless ``DHIS2MAINT_REQUIRE_AIRFLOW=1`` (set by
those tox envs), where a missing Airflow is an error, so the env cannot pass
without running these tests.

As a user would: ``airflow db migrate`` in a throw-away AIRFLOW_HOME (sqlite), the
Connection as ``AIRFLOW_CONN_DHIS2_DEFAULT`` in URI form, then ``airflow dags
test`` twice.  The first run is green; before the second the stand-in gets new
issues in a SEVERE check, and that run must end FAILED (check_integrity and
verdict failed, refresh_analytics still ran).  A ``DHIS2_URL`` pointing nowhere
is set on the "worker" to show the Connection is what counts.
"""
import contextlib
import importlib.util
import json
import os
import sqlite3
import subprocess
import sys

import pytest

import dhis2maint
from dhis2maint.testing import DEFAULT_TOKEN

from conftest import airflow_cli, airflow_home, require_airflow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAG_FILE = os.path.join(ROOT, "examples", "airflow_dag.py")
DAG_ID = "dhis2_nightly_maintenance"

require_airflow()


@pytest.fixture(scope="module")
def srv(start_module_standin):
    return start_module_standin("2.42", job_seconds=1.0)


@pytest.fixture(scope="module")
def home(tmp_path_factory, srv):
    """An AIRFLOW_HOME with the example DAG, a migrated sqlite database and the env."""
    home = tmp_path_factory.mktemp("airflow_home")
    host_port = srv.url.split("://", 1)[1]
    env = airflow_home(home, DAG_FILE, {
        # A personal access token as the password alone; settings from the query.
        "AIRFLOW_CONN_DHIS2_DEFAULT": "http://:{}@{}/?timeout=30&retries=2".format(
            DEFAULT_TOKEN, host_port),
        "DHIS2_REPORT_DIR": str(home / "reports"),
        # A worker's leftover environment must not override the Connection.
        "DHIS2_URL": "http://127.0.0.1:9", "DHIS2_PAT": "d2pat_not_this_one",
    })
    return home, env


def run_states(home):
    """{run_id: (state, {task_id: state})} from Airflow's database."""
    with contextlib.closing(sqlite3.connect(str(home / "airflow.db"))) as db:
        runs = dict(db.execute("SELECT run_id, state FROM dag_run WHERE dag_id = ?", (DAG_ID,)))
        result = {}
        for run_id, state in runs.items():
            tasks = dict(db.execute(
                "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                (DAG_ID, run_id)))
            result[run_id] = (state, tasks)
    return result


def test_dag_file_imports_without_warnings(home):
    """No warning (deprecation or other) is attributed to the DAG file."""
    _, env = home
    code = ("import importlib.util, json, sys, warnings\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    spec = importlib.util.spec_from_file_location('dag', sys.argv[1])\n"
            "    module = importlib.util.module_from_spec(spec)\n"
            "    spec.loader.exec_module(module)\n"
            "print('WARNINGS=' + json.dumps([(w.category.__name__, str(w.message)) for w in caught\n"
            "    if w.filename == sys.argv[1]]))\n"
            "print('TASKS=' + json.dumps(sorted(module.dag.task_dict)))\n")
    proc = subprocess.run([sys.executable, "-c", code, DAG_FILE], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    lines = dict(line.split("=", 1) for line in proc.stdout.splitlines()
                 if line.startswith(("WARNINGS=", "TASKS=")))
    assert json.loads(lines["WARNINGS"]) == []
    assert json.loads(lines["TASKS"]) == ["check_integrity", "refresh_analytics", "verdict"]


def test_green_run_then_failed_run_on_new_severe_issues(home, srv):
    home_dir, env = home
    reports = home_dir / "reports"

    # 1. A green run: every task succeeds, the report is the baseline.
    code, out = airflow_cli(env, "dags", "test", DAG_ID, "2026-11-24")
    print(out)  # shown by pytest when the test fails
    assert code == 0, out[-5000:]
    states = run_states(home_dir)
    assert len(states) == 1
    (first_run, (state, tasks)), = states.items()
    assert state == "success", out[-5000:]
    assert tasks == {"check_integrity": "success", "refresh_analytics": "success",
                     "verdict": "success"}
    # Job progress reached the task log through logging, with no callback.
    job_id = srv.job_ids("ANALYTICS_TABLE")[-1]
    assert "ANALYTICS_TABLE job {}: Analytics tables updated".format(job_id) in out
    assert "Variable not found" not in out
    assert "Traceback" not in out
    # The Connection was used, not DHIS2_URL/DHIS2_PAT, and recover_job_starts was on:
    # one job start, and a task-feed read before it (the recovery baseline).
    calls = [(r.method, r.path) for r in srv.requests]
    posts = [path for method, path in calls if method == "POST"]
    assert posts == ["/api/dataIntegrity/details", "/api/resourceTables/analytics"]
    start = calls.index(("POST", "/api/resourceTables/analytics"))
    assert ("GET", "/api/system/tasks/ANALYTICS_TABLE") in calls[:start]
    names = os.listdir(str(reports))
    assert len(names) == 1 and names[0].startswith("20261124T000000_")

    # 2. New issues in a SEVERE check: check_integrity fails, analytics still runs,
    # the verdict fails, and so does the run.
    report = dhis2maint.from_json((reports / names[0]).read_text())
    severe = next(r for r in report if str(r.severity) == "SEVERE" and not r.failed)
    srv.set_issue_count(severe.name, len(severe.issues or ()) + 4)
    code, out = airflow_cli(env, "dags", "test", DAG_ID, "2026-11-25")
    print(out)
    states = run_states(home_dir)
    assert len(states) == 2
    state, tasks = next(v for k, v in states.items() if k != first_run)
    assert state == "failed", out[-5000:]
    assert tasks == {"check_integrity": "failed", "refresh_analytics": "success",
                     "verdict": "failed"}
    assert "4 new data-integrity issues at SEVERE or worse since 20261124T000000_" in out
    assert severe.name in out
    assert "failed: check_integrity" in out
    assert "Variable not found" not in out
    # One report per run: the second run did not overwrite the first.
    assert len(os.listdir(str(reports))) == 2
