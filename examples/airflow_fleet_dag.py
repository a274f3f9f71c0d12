"""Airflow DAG: nightly data-integrity and scheduler checks on a whole DHIS2 fleet.

One mapped task per server (Airflow's dynamic task mapping, ``.expand()``), so the
servers run in parallel on as many workers as the executor has (Celery,
Kubernetes, ...), then one fan-in task for the fleet.  Put this file in Airflow's
``dags/`` folder and ``pip install dhis2maint`` on the scheduler and the workers.
Works on Airflow 2.10+ and 3.x.

Tasks (module-level functions, so they can be tested without Airflow):

1. ``fleet_servers`` -- reads the fleet (a fleet file, or a list of Airflow
   Connection ids) and returns one entry per server: the map of task 2.
2. ``check_server`` (mapped, one instance per server) -- runs DHIS2's
   data-integrity checks with details and the scheduler health check, and writes,
   in this run's folder ``<fleet dir>/runs/<logical date>_<run id>/``, the server's
   report (``NAME.json``, ``NAME.html``), its metrics (``NAME.prom``) and its
   outcome (``NAME.outcome.json``).  A server that does not answer (down, wrong
   password, ...) FAILS its own instance only, after writing why; the others go
   on.  No retries: a down server is this run's finding, the next run asks again
   (the Session already retries what is worth retrying).
3. ``fleet_summary`` -- runs when every instance is done, whatever happened
   (``trigger_rule="all_done"``): records every server that answered into the
   history (one writer, so SQLite is fine), builds one
   :class:`dhis2maint.fleet.FleetRow` per server (a server whose instance failed
   included, with its error), renders the fleet dashboard (``fleet.html`` in the
   run's folder, linking each server's report), writes the fleet's metrics (one
   textfile, every sample labelled ``server="NAME"``) and pushes them to a
   Pushgateway when one is set.  It FAILS -- and with it the DAG run, so DAG-level
   alerts fire -- when a server failed or has new issues at ``dhis2_fail_on`` or
   worse since its previous recorded run (a server's first recorded run is its
   baseline).

The fleet, from the first of these settings that is set:

* ``dhis2_fleet_file`` -- a fleet file (see the "Many servers" guide), e.g.::

      [DEFAULT]
      http-timeout = 60
      [hmis]
      url = https://hmis.example.org
      token-env = HMIS_PAT
      [tracker]
      airflow-conn = dhis2_tracker

* ``dhis2_fleet_conns`` -- comma-separated Airflow Connection ids (each one a
  server, named by its id; see ``examples/airflow_dag.py`` for the Connection).

Other settings: ``dhis2_fleet_dir`` (reports, dashboard, metrics; default
``/opt/airflow/data/dhis2-fleet``, share it between workers), ``dhis2_history``
(the history: a SQLite file or a ``postgresql://`` URL; default
``<fleet dir>/history.sqlite``), ``dhis2_fail_on`` (default ``SEVERE``),
``dhis2_metrics_file`` (default ``<fleet dir>/fleet.prom``; point node_exporter's
textfile collector at it) and ``dhis2_pushgateway`` (a Pushgateway URL; none by
default).  Each setting is read, when a task runs, from the first of: the run's
params (the Trigger form, ``airflow dags trigger --conf '{"dhis2_fail_on":
"CRITICAL"}'``), the environment variable ``AIRFLOW_VAR_<NAME>`` (an Airflow
Variable), the environment variable ``<NAME>``, the default.

The scheduler re-imports this file often, so nothing here talks to DHIS2 or to
Airflow's database at import time.
"""
import datetime
import json
import logging
import os
import re

try:  # Airflow 3: the task SDK
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
try:  # Airflow 3 (and 2.x with apache-airflow-providers-standard)
    from airflow.providers.standard.operators.python import PythonOperator
except ImportError:  # Airflow 2
    from airflow.operators.python import PythonOperator
try:  # fails the task at once, without retries
    from airflow.exceptions import AirflowFailException
except ImportError:  # pragma: no cover - very old Airflow
    AirflowFailException = RuntimeError

import dhis2maint
from dhis2maint import metrics
from dhis2maint.fleet import Fleet, error_line, fleet_row, rows_exit_code
from dhis2maint.report import atomic_output, write_report

log = logging.getLogger(__name__)

DEFAULTS = {
    "dhis2_fleet_file": "",
    "dhis2_fleet_conns": "",
    "dhis2_fleet_dir": "/opt/airflow/data/dhis2-fleet",
    "dhis2_history": "",
    "dhis2_fail_on": "SEVERE",
    "dhis2_metrics_file": "",
    "dhis2_pushgateway": "",
}
INTEGRITY_TIMEOUT = 2 * 3600  # seconds for one server's integrity run
COMMAND = "integrity run + jobs health"


# --- helpers ---------------------------------------------------------------------------


def setting(name, context=None):
    """Setting ``name``: the run's param, else env ``AIRFLOW_VAR_NAME`` (an Airflow
    Variable), else env ``NAME``, else the default.  Reads no database."""
    params = (context or {}).get("params") or {}
    value = params.get(name)
    if value in (None, ""):
        value = (os.environ.get("AIRFLOW_VAR_" + name.upper()) or os.environ.get(name.upper())
                 or DEFAULTS[name])
    return str(value)


def get_fleet(context=None):
    """The fleet: ``dhis2_fleet_file``, else the Connection ids in ``dhis2_fleet_conns``."""
    path = setting("dhis2_fleet_file", context)
    if path:
        return Fleet.from_file(path)
    conns = [c.strip() for c in setting("dhis2_fleet_conns", context).split(",") if c.strip()]
    if not conns:
        raise AirflowFailException("no fleet: set dhis2_fleet_file (a fleet file) or "
                                   "dhis2_fleet_conns (Airflow Connection ids)")
    return Fleet.from_airflow_connections(conns)


def _logical_date(context):
    date = context.get("logical_date")
    if date is None and context.get("dag_run") is not None:
        date = getattr(context["dag_run"], "run_after", None)
    return date or datetime.datetime.now(datetime.timezone.utc)


def run_folder(context):
    """``<fleet dir>/runs/<logical date as YYYYmmddTHHMMSS>_<run id, file-name safe>``."""
    safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", context.get("run_id") or "manual")
    name = "{:%Y%m%dT%H%M%S}_{}".format(_logical_date(context), safe_id)
    return os.path.join(setting("dhis2_fleet_dir", context), "runs", name)


def _write_json(path, data):
    with atomic_output(path) as out:  # readers never see half a file
        out.write(json.dumps(data, indent=1, sort_keys=True))


def _exit_code(exc):
    """The exit code the CLI would end with for ``exc``: 2 bad settings, 4 a failed
    job, 3 DHIS2 or the connection (5 is for a bug)."""
    if isinstance(exc, dhis2maint.ConfigurationError):
        return 2
    if isinstance(exc, dhis2maint.JobFailedError):
        return 4
    return 3 if isinstance(exc, (dhis2maint.Dhis2Error, OSError)) else 5


# --- the tasks' callables ------------------------------------------------------------------


def fleet_servers(**context):
    """Task 1: one ``{"server": NAME}`` per server of the fleet (task 2's map)."""
    return [{"server": name} for name in get_fleet(context).names]


def check_server(server, **context):
    """Task 2, one instance per server: integrity run + scheduler health, the server's
    report, metrics and outcome in the run's folder; fails when the server did not
    answer (after writing why)."""
    folder = run_folder(context)
    os.makedirs(folder, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    outcome = {"server": server, "url": None, "error": None, "exit_code": 0,
               "dhis2_version": None, "findings": {}, "report": None}
    try:
        fleet_server = get_fleet(context)[server]
        outcome["url"] = fleet_server.url
        with fleet_server.session() as session:
            outcome["url"] = session.base_url
            report = session.run_integrity_checks(details=True, timeout=INTEGRITY_TIMEOUT)
            health = session.scheduler_health()
        finished = datetime.datetime.now(datetime.timezone.utc)
        seconds = (finished - started).total_seconds()
        report.base_url = report.base_url or outcome["url"]
        path = os.path.join(folder, server + ".json")
        with atomic_output(path) as out:
            out.write(dhis2maint.to_json(report))
        with atomic_output(os.path.join(folder, server + ".html")) as out:
            write_report(report, "html", out, title="Data integrity: " + server,
                         server=report.base_url)
        samples = (metrics.up_samples(server, True, report.dhis2_version)
                   + metrics.integrity_samples(report, server=server, duration=seconds,
                                               finished_at=finished)
                   + metrics.health_samples(health, server))
        metrics.write_textfile(os.path.join(folder, server + ".prom"), samples,
                               keep_last_success=False)
        findings = {}
        for finding in health.findings:
            findings[finding.kind] = findings.get(finding.kind, 0) + 1
        outcome.update(dhis2_version=report.dhis2_version, findings=findings,
                       report=os.path.basename(path), seconds=seconds)
    except Exception as exc:  # the fan-in shows why; the task fails below
        outcome.update(error=error_line(exc), exit_code=_exit_code(exc),
                       seconds=(datetime.datetime.now(datetime.timezone.utc)
                                - started).total_seconds())
        _write_json(os.path.join(folder, server + ".outcome.json"), outcome)
        raise AirflowFailException("{}: {}".format(server, outcome["error"])) from exc
    _write_json(os.path.join(folder, server + ".outcome.json"), outcome)
    return {"server": server, "report": outcome["report"],
            "issues": sum(len(r.issues or ()) for r in report)}


def fleet_summary(**context):
    """Task 3: record, render, write/push metrics; fail on a failed server or on new
    issues at ``dhis2_fail_on`` or worse."""
    from dhis2maint.history import History
    from dhis2maint.report_html import write_fleet_html

    fleet = get_fleet(context)
    folder = run_folder(context)
    os.makedirs(folder, exist_ok=True)
    fail_on = setting("dhis2_fail_on", context).upper()
    history_target = setting("dhis2_history", context) or os.path.join(
        setting("dhis2_fleet_dir", context), "history.sqlite")
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    rows, samples, problems = [], [], []
    history = History(history_target)
    try:
        for server in fleet.servers:
            name = server.name
            try:
                with open(os.path.join(folder, name + ".outcome.json"), encoding="utf-8") as f:
                    outcome = json.load(f)
            except (OSError, ValueError):
                outcome = {"error": "its task did not finish (see the check_server log)",
                           "exit_code": 3, "url": server.url}
            url = outcome.get("url") or server.url or ""
            report = recorded = None
            code = outcome.get("exit_code", 3)
            if not outcome.get("error"):
                try:
                    with open(os.path.join(folder, outcome["report"]), encoding="utf-8") as f:
                        report = dhis2maint.from_json(f.read())
                    recorded = history.record(report)
                    with open(os.path.join(folder, name + ".prom"), encoding="utf-8") as f:
                        samples += metrics.parse(f.read())
                except Exception as exc:  # one server's files or record: its row, not all
                    outcome["error"] = "answered, but not recorded: {}".format(
                        error_line(exc))
                    code, report, recorded = 2, None, None
                    problems.append("{}: {}".format(name, outcome["error"]))
                else:
                    url = report.base_url or url
                    samples += metrics.new_issue_samples(name, recorded)
                    if recorded.previous_run_id is not None and recorded.new_at_least(fail_on):
                        code = 1
                        problems.append("{}: {} new issues at {} or worse".format(
                            name, recorded.new_at_least(fail_on), fail_on))
            else:
                problems.append("{}: {}".format(name, outcome["error"]))
                samples += metrics.up_samples(name, False)
            row = fleet_row(name, url, COMMAND, code, outcome.get("seconds") or 0.0,
                            error=outcome.get("error"),
                            dhis2_version=outcome.get("dhis2_version"), report=report,
                            recorded=recorded if recorded and recorded.previous_run_id
                            else None,
                            history=history if url else None,
                            report_path=(name + ".html") if report is not None else None,
                            now=now)
            row.findings = dict(outcome.get("findings") or {})
            rows.append(row)
    finally:
        history.close()

    dashboard = os.path.join(folder, "fleet.html")
    with atomic_output(dashboard) as out:
        write_fleet_html(out, rows, title="DHIS2 fleet", generated=now)
    metrics_file = setting("dhis2_metrics_file", context) or os.path.join(
        setting("dhis2_fleet_dir", context), "fleet.prom")
    metrics.write_textfile(metrics_file, samples)
    gateway = setting("dhis2_pushgateway", context)
    if gateway:
        try:
            metrics.push(gateway, samples)
        except metrics.PushError as exc:
            problems.append("metrics not pushed: {}".format(exc))
    summary = {"dashboard": dashboard, "metrics": metrics_file,
               "exit_code": rows_exit_code(rows),
               "servers": {r.server: r.outcome for r in rows}}
    log.info("fleet: %s", json.dumps(summary, sort_keys=True))
    if problems:
        raise AirflowFailException("fleet: {} (dashboard: {})".format(
            "; ".join(problems), dashboard))
    return summary


# --- the DAG ---------------------------------------------------------------------------------

with DAG(
    dag_id="dhis2_fleet_nightly",
    schedule="0 2 * * *",  # 02:00 every night
    start_date=datetime.datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "dhis2-admin", "retries": 0},
    tags=["dhis2", "fleet"],
    params={name: None for name in DEFAULTS},  # None: Variable / environment / default
) as dag:
    servers_task = PythonOperator(task_id="fleet_servers", python_callable=fleet_servers,
                                  execution_timeout=datetime.timedelta(minutes=5))
    check_task = PythonOperator.partial(
        task_id="check_server",
        python_callable=check_server,
        map_index_template="{{ task.op_kwargs['server'] }}",
        execution_timeout=datetime.timedelta(seconds=INTEGRITY_TIMEOUT + 600),
    ).expand(op_kwargs=servers_task.output)
    summary_task = PythonOperator(
        task_id="fleet_summary",
        python_callable=fleet_summary,
        trigger_rule="all_done",
        execution_timeout=datetime.timedelta(minutes=30),
    )
    check_task >> summary_task
