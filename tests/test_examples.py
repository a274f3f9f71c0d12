"""The examples in examples/ against the stand-in.

* nightly_integrity.py runs as a real subprocess (as cron would run it): the
  files it writes, its summary and its exit codes.
* airflow_dag.py is imported with a small stub of the ``airflow`` package (Airflow
  is not a dependency) and its python_callables are called directly.
"""
import csv
import datetime
import importlib.util
import os
import subprocess
import sys
import time
import types

import pytest

import dhis2maint
from dhis2maint.testing import DEFAULT_TOKEN

# Simulated time (tests/conftest.py fake_time): the stand-ins' jobs and the waits for them
# take no real seconds; requests still go over real HTTP.
pytestmark = pytest.mark.usefixtures("fake_time")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
OLD_DAY = "2000-01-01"


@pytest.fixture
def srv(start_standin):
    # A fresh server per test: issue counts and failing checks are per-server state.
    return start_standin("2.42", job_seconds=0.2)


def first_severe_check(report, with_issues=False):
    """A SEVERE check of ``report`` that has (or may lack) issues, and did not fail."""
    for result in report:
        if str(result.severity) == "SEVERE" and not result.failed \
                and (not with_issues or result.issues):
            return result
    raise AssertionError("the stand-in served no suitable SEVERE check")


# --- nightly_integrity.py --------------------------------------------------------------------


def run_script(srv, folder, *args, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DHIS2_")}
    environ["PYTHONPATH"] = ROOT + os.pathsep + environ.get("PYTHONPATH", "")
    if srv is not None:
        environ.update(DHIS2_URL=srv.url, DHIS2_PAT=DEFAULT_TOKEN)
    environ.update(env)
    command = [sys.executable, os.path.join(EXAMPLES, "nightly_integrity.py")]
    if folder is not None:
        command += ["--dir", str(folder)]
    return subprocess.run(command + list(args), env=environ, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120)


def read_report(path):
    with open(str(path), encoding="utf-8") as handle:
        return dhis2maint.from_json(handle.read())


def read_csv(path):
    with open(str(path), encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def age_reports(folder):
    """Pretend tonight's files were written on OLD_DAY, so the next run compares with them."""
    today = datetime.date.today().isoformat()
    for ext in (".json", ".csv"):
        os.rename(str(folder / (today + ext)), str(folder / (OLD_DAY + ext)))


def test_script_first_run_saves_json_and_csv_and_exits_0(srv, tmp_path):
    folder = tmp_path / "reports"  # created by the script
    proc = run_script(srv, folder)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    today = datetime.date.today().isoformat()
    assert sorted(os.listdir(str(folder))) == [today + ".csv", today + ".json"]

    report = read_report(folder / (today + ".json"))
    assert report.details and len(report) > 80
    issues = list(report.issue_rows())
    assert issues  # the stand-in gives most checks a few issues

    rows = read_csv(folder / (today + ".csv"))
    assert rows[0][0].startswith("# source: baseUrl=" + srv.url)  # provenance line first
    rows = rows[1:]
    assert rows[0] == ["check", "severity", "id", "name", "comment", "refs"]
    assert len(rows) - 1 == len(issues)
    assert rows[1][0] == issues[0].check_name and rows[1][2] == (issues[0].issue.id or "")

    assert "{:,} issues".format(len(issues)) in proc.stdout
    assert "No earlier report" in proc.stdout
    # The run really ran with details: one POST /api/dataIntegrity/details.
    posts = [r for r in srv.requests if r.method == "POST"]
    assert [r.path for r in posts] == ["/api/dataIntegrity/details"]


def test_script_second_run_reports_new_severe_issues_and_exits_1(srv, tmp_path):
    assert run_script(srv, tmp_path).returncode == 0
    age_reports(tmp_path)
    old = read_report(tmp_path / (OLD_DAY + ".json"))
    severe = first_severe_check(old)
    resolved = next(r for r in old if r.issues and r.name != severe.name and not r.failed)
    srv.set_issue_count(severe.name, len(severe.issues) + 7)  # issue i is the same every run
    srv.set_issue_count(resolved.name, 0)

    proc = run_script(srv, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    today = datetime.date.today().isoformat()
    assert sorted(os.listdir(str(tmp_path))) == sorted(
        [OLD_DAY + ".csv", OLD_DAY + ".json", today + ".csv", today + ".json"])
    new = read_report(tmp_path / (today + ".json"))
    assert len(new[severe.name].issues) == len(severe.issues) + 7
    comparison = dhis2maint.compare_reports(old, new)
    assert len(comparison.new_issues) == 7

    out = proc.stdout
    assert "Compared with {}.json: 7 new, {} resolved".format(
        OLD_DAY, len(resolved.issues)) in out
    assert "+7  {}".format(severe.name) in out
    assert "-{}  {}".format(len(resolved.issues), resolved.name) in out
    assert "ATTENTION: 7 new issues" in out

    # Same data with a higher threshold: the new issues are SEVERE, not CRITICAL -> 0.
    # (Today's files are replaced; the comparison is still with OLD_DAY, never itself.)
    proc = run_script(srv, tmp_path, "--fail-on", "critical")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "7 new" in proc.stdout and "ATTENTION" not in proc.stdout
    assert len(os.listdir(str(tmp_path))) == 4


def test_script_newly_failed_severe_check_exits_1(srv, tmp_path):
    assert run_script(srv, tmp_path).returncode == 0
    age_reports(tmp_path)
    severe = first_severe_check(read_report(tmp_path / (OLD_DAY + ".json")))
    srv.fail_check(severe.name, "relation does not exist")

    proc = run_script(srv, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Check failed on the server: {} (SEVERE)".format(severe.name) in proc.stdout
    assert "1 newly failed checks at SEVERE" in proc.stdout
    assert "1 failed on the server" in proc.stdout


def test_script_unchanged_server_exits_0_and_skips_damaged_reports(srv, tmp_path):
    assert run_script(srv, tmp_path).returncode == 0
    age_reports(tmp_path)
    (tmp_path / "2010-06-30.json").write_text(u"{not json")  # newer but damaged
    (tmp_path / "notes.json").write_text(u"{}")  # not a dated report: ignored
    proc = run_script(srv, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Compared with {}.json: 0 new, 0 resolved, 0 changed".format(OLD_DAY) in proc.stdout


def test_script_directory_from_environment(srv, tmp_path):
    proc = run_script(srv, None, DHIS2_REPORT_DIR=str(tmp_path / "from-env"))
    assert proc.returncode == 0, proc.stderr
    assert len(os.listdir(str(tmp_path / "from-env"))) == 2


def test_script_exits_2_when_it_cannot_run(srv, tmp_path):
    proc = run_script(None, tmp_path)  # no DHIS2_URL
    assert proc.returncode == 2
    assert proc.stdout == "" and "DHIS2_URL" in proc.stderr

    srv.fail_next(count=20, status=503)  # more than the retries
    proc = run_script(srv, tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == "" and "503" in proc.stderr
    assert os.listdir(str(tmp_path)) == []  # nothing half-written


# --- airflow_dag.py ----------------------------------------------------------------------------


class StubAirflow:
    """Just enough of Airflow for the DAG file: DAG (a context manager),
    PythonOperator (records its callable), ``>>``, AirflowFailException and
    BaseHook.get_connection -- laid out as Airflow 2 (``airflow.operators.python``,
    ``airflow.hooks.base``) or, with ``sdk=True``, as Airflow 3 (``airflow.sdk``,
    the standard provider's PythonOperator)."""

    def __init__(self, with_fail_exception=True, sdk=False):
        self.connections = {}
        self.dags = []
        self.looked_up = []
        stub = self
        current = []

        class AirflowFailException(Exception):
            pass

        class DAG:
            def __init__(self, dag_id, **kwargs):
                self.dag_id, self.kwargs, self.tasks = dag_id, kwargs, {}
                stub.dags.append(self)

            def __enter__(self):
                current.append(self)
                return self

            def __exit__(self, *exc):
                current.pop()

        class PythonOperator:
            def __init__(self, task_id, python_callable, **kwargs):
                assert callable(python_callable)
                self.task_id, self.python_callable, self.kwargs = task_id, python_callable, kwargs
                self.downstream = []
                current[-1].tasks[task_id] = self

            def __rshift__(self, other):
                self.downstream.append(other)
                return other

        class BaseHook:
            @staticmethod
            def get_connection(conn_id):
                stub.looked_up.append(conn_id)
                if conn_id not in stub.connections:
                    raise AirflowNotFoundException("The conn_id `{}` isn't defined".format(
                        conn_id))
                return stub.connections[conn_id]

        class AirflowNotFoundException(Exception):
            pass

        self.AirflowFailException = AirflowFailException
        self.DAG, self.PythonOperator, self.BaseHook = DAG, PythonOperator, BaseHook
        modules = {}

        def module(name, **attrs):
            mod = types.ModuleType(name)
            for key, value in attrs.items():
                setattr(mod, key, value)
            modules[name] = mod
            return mod

        exceptions = module("airflow.exceptions", AirflowNotFoundException=AirflowNotFoundException)
        if with_fail_exception:
            exceptions.AirflowFailException = AirflowFailException
        if sdk:
            module("airflow")
            module("airflow.sdk", DAG=DAG, BaseHook=BaseHook)
            module("airflow.providers")
            module("airflow.providers.standard")
            module("airflow.providers.standard.operators")
            module("airflow.providers.standard.operators.python", PythonOperator=PythonOperator)
        else:
            module("airflow", DAG=DAG)
            module("airflow.operators")
            module("airflow.operators.python", PythonOperator=PythonOperator)
            module("airflow.hooks")
            module("airflow.hooks.base", BaseHook=BaseHook)
        self.modules = modules


class FakeTaskInstance:
    def __init__(self, xcoms):
        self.xcoms = xcoms

    def xcom_pull(self, task_ids):
        return self.xcoms.get(task_ids)


def import_dag(monkeypatch, stub):
    for name in list(sys.modules):
        if name == "airflow" or name.startswith("airflow."):
            monkeypatch.delitem(sys.modules, name)
    for name, module in stub.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location(
        "example_airflow_dag", os.path.join(EXAMPLES, "airflow_dag.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def stub():
    return StubAirflow()


def connection(url, login="", password=DEFAULT_TOKEN, **extra):
    """An Airflow Connection as the UI makes it: Host with the scheme."""
    return types.SimpleNamespace(conn_id="dhis2_default", conn_type="http", host=url,
                                 schema="", port=None, login=login, password=password,
                                 extra_dejson=extra)


@pytest.fixture
def dag_env(monkeypatch, srv, stub, tmp_path):
    for name in list(os.environ):
        if name.startswith(("DHIS2_", "AIRFLOW_VAR_")):
            monkeypatch.delenv(name)
    # Left over on a worker: must not override the Connection.
    monkeypatch.setenv("DHIS2_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("DHIS2_PAT", "d2pat_not_this_one")
    monkeypatch.setenv("DHIS2_REPORT_DIR", str(tmp_path))
    stub.connections["dhis2_default"] = connection(srv.url)
    return tmp_path


def run_context(day, params=None, run_type="scheduled"):
    """The context keys the DAG's callables read, as Airflow passes them."""
    logical_date = datetime.datetime.strptime(day, "%Y-%m-%d").replace(
        hour=1, minute=30, tzinfo=datetime.timezone.utc)
    return {"run_id": "{}__{}".format(run_type, logical_date.isoformat()),
            "logical_date": logical_date, "params": dict(params or {})}


def test_dag_structure(monkeypatch, stub):
    module = import_dag(monkeypatch, stub)
    assert len(stub.dags) == 1 and module.dag is stub.dags[0]
    dag = stub.dags[0]
    assert dag.dag_id == "dhis2_nightly_maintenance" and dag.kwargs["catchup"] is False
    assert list(dag.tasks) == ["check_integrity", "refresh_analytics", "verdict"]
    integrity, analytics, verdict = (dag.tasks[t] for t in dag.tasks)
    assert integrity.downstream == [analytics, verdict] and analytics.downstream == [verdict]
    # Module-level functions, so Airflow can pickle/serialise them and tests can call them.
    assert integrity.python_callable is module.check_integrity
    assert analytics.python_callable is module.refresh_analytics
    assert verdict.python_callable is module.verdict
    # Analytics runs after a failed integrity check; the verdict always runs, last.
    assert analytics.kwargs["trigger_rule"] == "all_done"
    assert verdict.kwargs["trigger_rule"] == "all_done"
    assert tuple(module.UPSTREAM) == ("check_integrity", "refresh_analytics")
    for task in dag.tasks.values():
        assert task.kwargs["execution_timeout"] > datetime.timedelta(0)
    assert sorted(dag.kwargs["params"]) == sorted(module.DEFAULTS)
    assert module.AirflowFailException is stub.AirflowFailException


def test_dag_imports_airflow_3_names_where_present(monkeypatch):
    stub = StubAirflow(sdk=True)
    module = import_dag(monkeypatch, stub)
    assert module.DAG is stub.DAG and module.PythonOperator is stub.PythonOperator
    assert list(stub.dags[0].tasks) == ["check_integrity", "refresh_analytics", "verdict"]


def test_dag_falls_back_to_runtime_error_without_airflow_fail_exception(monkeypatch):
    module = import_dag(monkeypatch, StubAirflow(with_fail_exception=False))
    assert module.AirflowFailException is RuntimeError


def test_dag_integrity_task_fails_on_new_severe_issues(monkeypatch, stub, srv, dag_env):
    module = import_dag(monkeypatch, stub)
    first = module.check_integrity(**run_context("2026-11-24"))
    assert first["previous"] is None
    path = first["report"]
    assert os.path.basename(path) == \
        "20261124T013000_scheduled__2026-11-24T01_30_00_00_00.json"
    old = read_report(path)
    assert old.details and first["issues"] == len(list(old.issue_rows()))

    # Nothing changed: compared, passes.
    second = module.check_integrity(**run_context("2026-11-25"))
    assert second["previous"] == path and second["new"] == 0 and second["new_at_threshold"] == 0

    severe = first_severe_check(old)
    srv.set_issue_count(severe.name, len(severe.issues) + 3)
    with pytest.raises(stub.AirflowFailException) as info:
        module.check_integrity(**run_context("2026-11-26"))
    message = str(info.value)
    assert message.startswith("3 new data-integrity issues at SEVERE or worse since "
                              "20261125T013000_scheduled__")
    assert severe.name in message
    # The report is saved before the task fails, for the next run and for people.
    bad = os.path.join(str(dag_env), "20261126T013000_scheduled__2026-11-26T01_30_00_00_00.json")
    assert len(read_report(bad)[severe.name].issues) == len(severe.issues) + 3

    # A manual run on the same day gets its own file: the scheduled run's report stays.
    context = run_context("2026-11-26", run_type="manual")
    context["logical_date"] = context["logical_date"].replace(hour=10, minute=0)  # at 10:00
    manual = module.check_integrity(**context)
    assert os.path.basename(manual["report"]) == \
        "20261126T100000_manual__2026-11-26T01_30_00_00_00.json"
    assert os.path.exists(bad) and manual["previous"] == bad and manual["new"] == 0

    # A higher threshold from the run's params: the same change passes.
    result = module.check_integrity(**run_context("2026-11-27", {"dhis2_fail_on": "critical"}))
    assert os.path.basename(result["previous"]).startswith("20261126T100000_manual__")
    # A re-run of 2026-11-26's run compares with 2026-11-25, never with itself.
    result = module.check_integrity(**run_context("2026-11-26", {"dhis2_fail_on": "critical"}))
    assert os.path.basename(result["previous"]).startswith("20261125T013000_")
    assert result["new"] == 3 and result["new_at_threshold"] == 0


def test_dag_reads_reports_of_the_older_per_day_naming(monkeypatch, stub, srv, dag_env):
    module = import_dag(monkeypatch, stub)
    first = module.check_integrity(**run_context("2026-11-24"))
    os.rename(first["report"], os.path.join(str(dag_env), "2026-11-24.json"))
    result = module.check_integrity(**run_context("2026-11-25"))
    assert os.path.basename(result["previous"]) == "2026-11-24.json" and result["new"] == 0


def test_dag_settings_from_params_then_airflow_var_env_then_env(monkeypatch, stub, srv, dag_env):
    module = import_dag(monkeypatch, stub)
    monkeypatch.setenv("AIRFLOW_VAR_DHIS2_REPORT_DIR", str(dag_env / "from-variable"))
    result = module.check_integrity(**run_context("2026-11-24"))
    assert os.path.dirname(result["report"]) == str(dag_env / "from-variable")
    params = {"dhis2_report_dir": str(dag_env / "from-params")}
    result = module.check_integrity(**run_context("2026-11-24", params))
    assert os.path.dirname(result["report"]) == str(dag_env / "from-params")
    # A param left at None falls through.
    result = module.check_integrity(**run_context("2026-11-24", {"dhis2_report_dir": None}))
    assert os.path.dirname(result["report"]) == str(dag_env / "from-variable")


def test_dag_analytics_task_waits_for_the_job_and_logs_progress(monkeypatch, stub, srv, dag_env,
                                                                caplog, fake_time):
    module = import_dag(monkeypatch, stub)
    srv.job_seconds = 0.8
    srv.clear_requests()
    caplog.set_level("INFO", logger="dhis2maint")
    started = time.monotonic()
    result = module.refresh_analytics(**run_context("2026-11-24"))
    elapsed = time.monotonic() - started + fake_time.slept  # real + simulated seconds
    assert elapsed >= 0.8  # it did not return before the simulated job ended

    posts = [r for r in srv.requests if r.method == "POST"]
    assert [r.path for r in posts] == ["/api/resourceTables/analytics"]
    assert posts[0].query == {"lastYears": ["2"]}
    job_id = result["job"]
    assert srv.job_ids("ANALYTICS_TABLE") == [job_id]
    polls = [r for r in srv.requests
             if r.method == "GET" and r.path == "/api/system/tasks/ANALYTICS_TABLE/" + job_id]
    assert polls, [(r.method, r.path) for r in srv.requests]
    assert srv.requests[-1].path == polls[-1].path  # polling was the last thing it did
    # recover_job_starts=True: the task feed was read before the job start.
    assert srv.requests[0].path == "/api/system/tasks/ANALYTICS_TABLE"
    # DHIS2's feed now says the job completed, and the task returned its last message.
    with dhis2maint.Session(srv.url, token=DEFAULT_TOKEN) as session:
        feed = session.get_task_notifications("ANALYTICS_TABLE", job_id)
    assert any(n.completed for n in feed)
    assert result["message"] in [n.message for n in feed]
    # Each notification reached the log (what Airflow's task log shows).
    logged = [r.getMessage() for r in caplog.records if r.name == "dhis2maint"]
    assert "ANALYTICS_TABLE job {}: {} (completed)".format(job_id, result["message"]) in logged
    assert len([m for m in logged if m.startswith("ANALYTICS_TABLE job " + job_id)]) == \
        len(feed)


def test_dag_analytics_task_fails_when_the_job_fails(monkeypatch, stub, srv, dag_env):
    module = import_dag(monkeypatch, stub)
    srv.fail_next_job("Simulated analytics failure")
    with pytest.raises(dhis2maint.JobFailedError):
        module.refresh_analytics(**run_context("2026-11-24",
                                               {"dhis2_analytics_last_years": "5"}))
    post = [r for r in srv.requests if r.method == "POST"][-1]
    assert post.query == {"lastYears": ["5"]}


def test_dag_verdict_fails_the_run_when_a_task_failed(monkeypatch, stub):
    module = import_dag(monkeypatch, stub)
    green = {"check_integrity": {"new": 0}, "refresh_analytics": {"job": "x"}}
    assert module.verdict(ti=FakeTaskInstance(green)) == green
    with pytest.raises(stub.AirflowFailException, match="failed: check_integrity"):
        module.verdict(ti=FakeTaskInstance({"refresh_analytics": {"job": "x"}}))
    with pytest.raises(stub.AirflowFailException,
                       match="failed: check_integrity, refresh_analytics"):
        module.verdict(ti=FakeTaskInstance({}))


@pytest.mark.parametrize("login", ["", "admin"])
def test_dag_connection_from_airflow(monkeypatch, stub, srv, dag_env, login):
    module = import_dag(monkeypatch, stub)
    scheme, host_port = srv.url.split("://")
    host, port = host_port.split(":")
    password = "district" if login else DEFAULT_TOKEN
    # Host, Schema (the scheme) and Port in separate fields, as in the UI.
    stub.connections["dhis2_default"] = types.SimpleNamespace(
        conn_id="dhis2_default", conn_type="http", host=host, schema=scheme, port=int(port),
        login=login, password=password, extra_dejson={"timeout": 12})
    with module.get_session() as session:
        assert session.base_url == srv.url and session.timeout == 12
        assert session.auth_kind == ("basic" if login else "token")
        assert session.recover_job_starts is True
        assert session.server_version[:2] == (2, 42)
    # Another connection id from the run's params.
    stub.connections["dhis2_other"] = connection(srv.url, login, password)
    with module.get_session({"params": {"dhis2_conn_id": "dhis2_other"}}) as session:
        assert session.base_url == srv.url
    assert stub.looked_up == ["dhis2_default", "dhis2_other"]


def test_dag_connection_without_credentials_fails_naming_it(monkeypatch, stub, srv, dag_env):
    module = import_dag(monkeypatch, stub)
    stub.connections["dhis2_default"] = connection(srv.url, password="")
    with pytest.raises(dhis2maint.ConfigurationError, match="'dhis2_default' has no credentials"):
        module.get_session()
    del stub.connections["dhis2_default"]
    with pytest.raises(dhis2maint.ConfigurationError,
                       match="'dhis2_default' is not defined.*AIRFLOW_CONN_DHIS2_DEFAULT"):
        module.get_session()
