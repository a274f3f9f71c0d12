"""examples/airflow_fleet_dag.py in real Apache Airflow (#23.5): dynamic task mapping
over a fleet of three stand-ins, one of them down.

Runs only where Airflow is installed (the tox envs ``airflow`` and ``airflow3``), like
tests/test_airflow.py: ``airflow db migrate`` in a throw-away AIRFLOW_HOME, the fleet
file given as ``DHIS2_FLEET_FILE``, then ``airflow dags test`` twice.

1. Three servers, ``down`` on a closed port: its mapped ``check_server`` instance
   fails, the other two succeed; ``fleet_summary`` still runs (all_done), records the
   two into the history, renders the dashboard with ``down`` shown as not answering,
   writes the metrics (``dhis2maint_up{server="down"} 0``), and fails -- so the run
   is failed.
2. New issues in a SEVERE check of ``hmis``: the summary names them (the first run
   was the baseline).
"""
import contextlib
import json
import os
import re
import socket
import sqlite3

import pytest

import dhis2maint
from dhis2maint.testing import DEFAULT_TOKEN

from conftest import airflow_cli, airflow_home, require_airflow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAG_FILE = os.path.join(ROOT, "examples", "airflow_fleet_dag.py")
DAG_ID = "dhis2_fleet_nightly"

require_airflow()


def closed_port():
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def servers(start_module_standin):
    return {"hmis": start_module_standin("2.42", job_seconds=0.3),
            "tracker": start_module_standin("2.41", job_seconds=0.3)}


@pytest.fixture(scope="module")
def home(tmp_path_factory, servers):
    home = tmp_path_factory.mktemp("airflow_fleet_home")
    fleet = home / "fleet.ini"
    fleet.write_text(
        "# three servers; one of them is down\n[DEFAULT]\ntoken-env = FLEET_PAT\n"
        "http-timeout = 10\n\n[hmis]\nurl = {}\n\n[tracker]\nurl = {}\n\n"
        "[down]\nurl = http://127.0.0.1:{}\n".format(servers["hmis"].url,
                                                    servers["tracker"].url, closed_port()))
    env = airflow_home(home, DAG_FILE, {
        "DHIS2_FLEET_FILE": str(fleet),
        "DHIS2_FLEET_DIR": str(home / "fleet"),
        "FLEET_PAT": DEFAULT_TOKEN,
    })
    return home, env


def run_states(home):
    """{run_id: (state, {(task_id, map_index): state})} from Airflow's database."""
    with contextlib.closing(sqlite3.connect(str(home / "airflow.db"))) as db:
        runs = dict(db.execute("SELECT run_id, state FROM dag_run WHERE dag_id = ?", (DAG_ID,)))
        result = {}
        for run_id, state in runs.items():
            tasks = {(t, i): s for t, i, s in db.execute(
                "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ? AND "
                "run_id = ?", (DAG_ID, run_id))}
            result[run_id] = (state, tasks)
    return result


def test_fleet_dag_maps_a_task_per_server_and_fails_on_a_down_server(home, servers):
    home_dir, env = home
    code, out = airflow_cli(env, "dags", "test", DAG_ID, "2026-11-24")
    print(out)  # shown by pytest when the test fails
    states = run_states(home_dir)
    assert len(states) == 1
    (first_run, (state, tasks)), = states.items()
    assert state == "failed", out[-5000:]
    # One mapped instance per server, in the fleet file's order; only the down one failed.
    assert tasks == {("fleet_servers", -1): "success", ("check_server", 0): "success",
                     ("check_server", 1): "success", ("check_server", 2): "failed",
                     ("fleet_summary", -1): "failed"}, out[-5000:]
    assert "dhis2maint.fleet" not in out or "Traceback" not in out.split("fleet_summary")[-1]
    assert re.search(r"fleet: down: .*(connect|refused)", out), out[-5000:]

    runs = home_dir / "fleet" / "runs"
    (folder,) = os.listdir(str(runs))
    assert folder.startswith("20261124T000000_")
    files = set(os.listdir(str(runs / folder)))
    assert {"hmis.json", "hmis.html", "hmis.prom", "tracker.json", "tracker.html",
            "tracker.prom", "down.outcome.json", "fleet.html"} <= files
    assert "down.json" not in files
    # The dashboard: every server, the down one first and shown as not answering.
    page = (runs / folder / "fleet.html").read_text(encoding="utf-8")
    rows = re.findall(r'<tr class="[^"]*" data-server="([^"]*)" data-outcome="([^"]*)"', page)
    assert rows[0] == ("down", "failed") and sorted(rows[1:]) == [("hmis", "ok"),
                                                                    ("tracker", "ok")]
    assert 'href="hmis.html"' in page and 'href="tracker.html"' in page
    assert 'id="fleet-failed" data-count="1"' in page
    # The history has the two servers that answered; the metrics all three.
    with contextlib.closing(sqlite3.connect(str(home_dir / "fleet" / "history.sqlite"))) as db:
        recorded = sorted(r[0] for r in db.execute("SELECT base_url FROM servers"))
    assert recorded == sorted(s.url.rstrip("/") for s in servers.values())
    prom = (home_dir / "fleet" / "fleet.prom").read_text(encoding="utf-8")
    assert 'dhis2maint_up{server="down"} 0' in prom
    assert 'dhis2maint_up{server="hmis"} 1' in prom and 'server="tracker"' in prom
    assert "dhis2maint_scheduler_findings{" in prom

    # 2. New SEVERE issues on hmis since its baseline: the summary names them.
    report = dhis2maint.from_json((runs / folder / "hmis.json").read_text(encoding="utf-8"))
    severe = next(r for r in report if str(r.severity) == "SEVERE" and not r.failed)
    servers["hmis"].set_issue_count(severe.name, len(severe.issues or ()) + 4)
    code, out = airflow_cli(env, "dags", "test", DAG_ID, "2026-11-25")
    print(out)
    states = run_states(home_dir)
    state, tasks = next(v for k, v in states.items() if k != first_run)
    assert state == "failed" and tasks[("fleet_summary", -1)] == "failed"
    assert tasks[("check_server", 0)] == "success"
    assert "hmis: 4 new issues at SEVERE or worse" in out, out[-5000:]
    assert "tracker: " not in out.split("fleet: ", 1)[-1].split("(dashboard")[0]
    second = sorted(os.listdir(str(runs)))[-1]
    page = (runs / second / "fleet.html").read_text(encoding="utf-8")
    assert re.search(r'data-server="hmis" data-outcome="verdict"', page)
    assert 'data-values="' in page  # a sparkline of the two recorded runs
