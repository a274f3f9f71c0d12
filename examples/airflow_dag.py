"""Airflow DAG: nightly DHIS2 data-integrity checks, then an analytics refresh.

Put this file in Airflow's ``dags/`` folder and ``pip install dhis2maint`` on
the scheduler and the workers.  Works on Airflow 2.10+ and 3.x (on 3.x it uses
``airflow.sdk`` and the standard provider's PythonOperator, so task logs carry no
deprecation warnings).

Tasks (module-level functions, so they can be tested without Airflow):

1. ``check_integrity`` -- runs DHIS2's data-integrity checks with details,
   saves the report as ``<report dir>/<logical date>_<run id>.json`` (one file
   per run: a second run on the same day never overwrites the first) and
   compares it with the newest earlier report there.  It FAILS (without
   retries) when there are new issues in checks of severity SEVERE or worse.
2. ``refresh_analytics`` -- starts an analytics table update for the last
   ``dhis2_analytics_last_years`` years and waits for it to finish.  It runs even
   when task 1 failed (``trigger_rule="all_done"``): integrity findings are
   metadata problems analytics should not wait for.  A retried attempt does not
   start a second job when the first start's answer was lost
   (``recover_job_starts=True``).
3. ``verdict`` -- runs last, whatever happened (``all_done``), and fails when
   either task failed, so the DAG run ends FAILED and DAG-level alerts
   (``on_failure_callback``, e-mail) fire; otherwise it logs the summary.

DHIS2's task notifications (job progress) appear in the task logs as INFO lines
of the ``dhis2maint`` logger; nothing needs to be passed for that.

Connection: an Airflow Connection ``dhis2_default`` (another id: the setting
``dhis2_conn_id`` below), read with ``dhis2maint.Session.from_airflow_connection``.
Host ``https://dhis2.example.org/dhis`` (or Host ``dhis2.example.org``, Schema
``https``, optional Port), Login empty and Password a personal access token --
or Login + Password for basic auth.  For example::

    airflow connections add dhis2_default --conn-type http \\
        --conn-host https://dhis2.example.org --conn-password d2pat_...
    # or, on the workers' environment:
    AIRFLOW_CONN_DHIS2_DEFAULT='https://:d2pat_...@dhis2.example.org/dhis?timeout=60'

Settings, each from the first of: the run's params (the Trigger form, or
``airflow dags trigger --conf '{"dhis2_fail_on": "CRITICAL"}'``), an Airflow
Variable given as the environment variable ``AIRFLOW_VAR_<NAME>``, the
environment variable ``<NAME>``, the default:

* ``dhis2_report_dir`` -- where reports are kept (default
  ``/opt/airflow/data/dhis2-integrity``; share it between workers).
* ``dhis2_fail_on`` -- the severity that fails task 1 (default ``SEVERE``).
* ``dhis2_analytics_last_years`` (default 2).
* ``dhis2_conn_id`` (default ``dhis2_default``).

Variables stored in Airflow's database are not asked for: Airflow 3 logs an
``[error] Variable not found`` line for each unset Variable a task asks for, and
cannot be asked silently whether one is set.  Environment Variables
(``AIRFLOW_VAR_…``) are read directly, so unset ones cost nothing.

The scheduler re-imports this file often, so nothing here talks to DHIS2 or to
Airflow's database at import time: settings are read when a task runs.
"""
import datetime
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
try:  # fails the task at once, without the retries a RuntimeError would get
    from airflow.exceptions import AirflowFailException
except ImportError:  # pragma: no cover - very old Airflow
    AirflowFailException = RuntimeError

import dhis2maint
from dhis2maint.report import atomic_output

DEFAULTS = {
    "dhis2_report_dir": "/opt/airflow/data/dhis2-integrity",
    "dhis2_fail_on": "SEVERE",
    "dhis2_analytics_last_years": "2",
    "dhis2_conn_id": "dhis2_default",
}
INTEGRITY_TIMEOUT = 2 * 3600  # seconds for the whole integrity run
ANALYTICS_TIMEOUT = 6 * 3600  # seconds to wait for the analytics tables
#: ``20261124T013000_scheduled__2026-11-24T01_30_00_00_00.json``, and the old
#: ``2026-11-24.json`` of earlier versions of this DAG.
REPORT_NAME = re.compile(r"^(?:(\d{8}T\d{6})_(.+)|(\d{4})-(\d{2})-(\d{2}))\.json$")


# --- helpers --------------------------------------------------------------------------


def setting(name, context=None):
    """Setting ``name``: the run's param, else env ``AIRFLOW_VAR_NAME`` (an Airflow
    Variable), else env ``NAME``, else the default.  Reads no database."""
    params = (context or {}).get("params") or {}
    value = params.get(name)
    if value in (None, ""):
        value = (os.environ.get("AIRFLOW_VAR_" + name.upper()) or os.environ.get(name.upper())
                 or DEFAULTS[name])
    return str(value)


def get_session(context=None):
    """A :class:`dhis2maint.Session` from the Airflow Connection (``DHIS2_*``
    variables on the worker are not read, so they cannot override it)."""
    return dhis2maint.Session.from_airflow_connection(setting("dhis2_conn_id", context),
                                                      recover_job_starts=True)


def report_stem(run_id, logical_date):
    """``<logical date as YYYYmmddTHHMMSS>_<run id, file-name safe>``: one name per run."""
    stamp = logical_date or datetime.datetime.now(datetime.timezone.utc)
    safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id or "manual")
    return "{:%Y%m%dT%H%M%S}_{}".format(stamp, safe_id)


def _sort_key(name):
    match = REPORT_NAME.match(name)
    if match is None:
        return None
    if match.group(1):
        return match.group(1), match.group(2)
    return "{}{}{}T000000".format(*match.group(3, 4, 5)), ""


def previous_report(folder, stem):
    """(path, report) of the newest readable report saved by a run before ``stem``'s
    (by logical date), or (None, None)."""
    key = _sort_key(stem + ".json")
    earlier = sorted((name for name in os.listdir(folder)
                      if _sort_key(name) is not None and _sort_key(name) < key),
                     key=_sort_key, reverse=True)
    for name in earlier:
        path = os.path.join(folder, name)
        try:
            with open(path, encoding="utf-8") as handle:
                return path, dhis2maint.from_json(handle.read())
        except (OSError, dhis2maint.InvalidResponseError):
            continue  # a damaged file: try the one before
    return None, None


def _logical_date(context):
    """The run's logical date; Airflow 3 runs triggered without one use ``run_after``."""
    date = context.get("logical_date")
    if date is None and context.get("dag_run") is not None:
        date = getattr(context["dag_run"], "run_after", None)
    return date


# --- the tasks' callables ------------------------------------------------------------------


def check_integrity(**context):
    """Task 1: run the checks, save this run's report, fail on new SEVERE+ issues."""
    folder = setting("dhis2_report_dir", context)
    fail_on = setting("dhis2_fail_on", context).upper()
    os.makedirs(folder, exist_ok=True)

    with get_session(context) as session:
        report = session.run_integrity_checks(details=True, timeout=INTEGRITY_TIMEOUT)

    stem = report_stem(context.get("run_id"), _logical_date(context))
    previous_path, previous = previous_report(folder, stem)
    path = os.path.join(folder, stem + ".json")
    with atomic_output(path) as out:  # readers never see half a report
        out.write(dhis2maint.to_json(report))

    summary = {"report": path, "checks": len(report),
               "issues": sum(len(r.issues or ()) for r in report), "previous": previous_path}
    if previous is None:
        return summary  # the first report is the baseline
    comparison = dhis2maint.compare_reports(previous, report)
    bad = comparison.new_issues_at_least(fail_on)
    summary.update(new=len(comparison.new_issues), resolved=len(comparison.resolved_issues),
                   new_at_threshold=len(bad))
    if bad:
        checks = sorted({row.check_name for row in bad})
        raise AirflowFailException(
            "{} new data-integrity issues at {} or worse since {} in: {} (report: {})".format(
                len(bad), fail_on, os.path.basename(previous_path), ", ".join(checks), path))
    return summary


def refresh_analytics(**context):
    """Task 2: start the analytics table update and wait until DHIS2 reports it done."""
    last_years = int(setting("dhis2_analytics_last_years", context))
    with get_session(context) as session:
        job = session.refresh_analytics(last_years=last_years)
        # Progress is logged by dhis2maint; raises JobFailedError or TaskTimeoutError.
        final = job.wait(timeout=ANALYTICS_TIMEOUT)
    return {"job": job.id, "message": final.message}


def verdict(ti=None, **_context):
    """Task 3: fail the run when a task failed (its XCom result is missing)."""
    results = {task_id: ti.xcom_pull(task_ids=task_id) for task_id in UPSTREAM}
    failed = [task_id for task_id, result in results.items() if result is None]
    if failed:
        raise AirflowFailException("failed: {} (see the task logs)".format(", ".join(failed)))
    return results


# --- the DAG ---------------------------------------------------------------------------------

UPSTREAM = ("check_integrity", "refresh_analytics")

with DAG(
    dag_id="dhis2_nightly_maintenance",
    schedule="30 1 * * *",  # 01:30 every night
    start_date=datetime.datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "dhis2-admin", "retries": 1,
                  "retry_delay": datetime.timedelta(minutes=5)},
    tags=["dhis2"],
    # None: use the Variable / environment / default (see setting()).
    params={name: None for name in DEFAULTS},
) as dag:
    integrity_task = PythonOperator(
        task_id="check_integrity",
        python_callable=check_integrity,
        execution_timeout=datetime.timedelta(seconds=INTEGRITY_TIMEOUT + 600),
    )
    analytics_task = PythonOperator(
        task_id="refresh_analytics",
        python_callable=refresh_analytics,
        trigger_rule="all_done",
        execution_timeout=datetime.timedelta(seconds=ANALYTICS_TIMEOUT + 600),
    )
    verdict_task = PythonOperator(
        task_id="verdict",
        python_callable=verdict,
        trigger_rule="all_done",
        retries=0,
        execution_timeout=datetime.timedelta(minutes=5),
    )
    integrity_task >> analytics_task >> verdict_task
    integrity_task >> verdict_task
