"""Airflow DAG: nightly DHIS2 data-integrity checks, then an analytics refresh.

Put this file in Airflow's ``dags/`` folder and ``pip install dhis2maint`` on
the scheduler and the workers (Airflow 2.4 or newer; for 2.0-2.3 rename
``schedule=`` to ``schedule_interval=`` below).

Tasks (both are plain module-level functions, so they can be tested without
Airflow):

1. ``check_integrity`` -- runs DHIS2's data-integrity checks with details,
   saves the report as ``<report dir>/<ds>.json`` (``ds`` is the run's logical
   date) and compares it with the newest earlier report there.  The task FAILS
   (without retries) when there are new issues in checks of severity SEVERE or
   worse, so Airflow's alerting tells you.  It returns a small summary (XCom).
2. ``refresh_analytics`` -- starts an analytics table update for the last
   ``DHIS2_ANALYTICS_LAST_YEARS`` years and waits for it to finish.  It runs even
   when task 1 failed (``trigger_rule="all_done"``): integrity findings are
   metadata problems that analytics should not wait for.  Remove the
   ``trigger_rule`` to refresh analytics only after a clean integrity run.

Connection -- either:

* environment variables on the workers: ``DHIS2_URL`` plus ``DHIS2_PAT`` (or
  ``DHIS2_USERNAME``/``DHIS2_PASSWORD``); used whenever ``DHIS2_URL`` is set, or
* an Airflow Connection ``dhis2_default`` (another id: env ``DHIS2_CONN_ID``) of
  type HTTP: Host ``https://dhis2.example.org`` (or Host ``dhis2.example.org``,
  Schema ``https``, optional Port), Login empty and Password a personal access
  token -- or Login + Password for basic auth.  For example::

      airflow connections add dhis2_default --conn-type http \\
          --conn-host https://dhis2.example.org --conn-password d2pat_...

Settings (Airflow Variable first, then the environment variable of the same
name in capitals, then the default):

* ``dhis2_report_dir`` / ``DHIS2_REPORT_DIR`` -- where reports are kept
  (default ``/opt/airflow/data/dhis2-integrity``; share it between workers).
* ``dhis2_fail_on`` / ``DHIS2_FAIL_ON`` -- the severity that fails task 1
  (default ``SEVERE``).
* ``dhis2_analytics_last_years`` / ``DHIS2_ANALYTICS_LAST_YEARS`` (default 2).

The scheduler re-imports this file every few seconds, so nothing here talks to
DHIS2 or to Airflow's database at import time: settings are read when a task runs.
"""
import datetime
import os
import re

from airflow import DAG
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
}
INTEGRITY_TIMEOUT = 2 * 3600  # seconds for the whole integrity run
ANALYTICS_TIMEOUT = 6 * 3600  # seconds to wait for the analytics tables
REPORT_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})\.json$")


# --- helpers --------------------------------------------------------------------------


def setting(name):
    """Airflow Variable ``name``, else env ``NAME``, else the default."""
    from airflow.models import Variable  # here, not at import: it reads the database

    value = Variable.get(name, default_var=None)
    if value in (None, ""):
        value = os.environ.get(name.upper()) or DEFAULTS[name]
    return value


def get_session():
    """A :class:`dhis2maint.Session` from ``DHIS2_URL``/``DHIS2_PAT`` or the Airflow Connection."""
    if os.environ.get("DHIS2_URL"):
        return dhis2maint.Session.from_env()
    from airflow.hooks.base import BaseHook

    conn = BaseHook.get_connection(os.environ.get("DHIS2_CONN_ID", "dhis2_default"))
    url = conn.host or ""
    if "://" not in url:
        url = "{}://{}{}".format(conn.schema or "https", url,
                                 ":{}".format(conn.port) if conn.port else "")
    if conn.login:
        return dhis2maint.Session(url, auth=(conn.login, conn.password or ""))
    return dhis2maint.Session(url, token=conn.password)


def previous_report(folder, ds):
    """(path, report) of the newest readable report dated before ``ds``, or (None, None)."""
    earlier = sorted((name for name in os.listdir(folder)
                      if REPORT_NAME.match(name) and name[:10] < ds), reverse=True)
    for name in earlier:
        path = os.path.join(folder, name)
        try:
            with open(path, encoding="utf-8") as handle:
                return path, dhis2maint.from_json(handle.read())
        except (OSError, dhis2maint.InvalidResponseError):
            continue  # a damaged file: try the one before
    return None, None


# --- the tasks' callables ------------------------------------------------------------------


def check_integrity(ds=None, **_context):
    """Task 1: run the checks, save ``<dir>/<ds>.json``, fail on new SEVERE+ issues."""
    ds = ds or datetime.date.today().isoformat()
    folder = setting("dhis2_report_dir")
    fail_on = setting("dhis2_fail_on").upper()
    os.makedirs(folder, exist_ok=True)

    with get_session() as session:
        report = session.run_integrity_checks(details=True, timeout=INTEGRITY_TIMEOUT)

    previous_path, previous = previous_report(folder, ds)
    path = os.path.join(folder, ds + ".json")
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


def refresh_analytics(**_context):
    """Task 2: start the analytics table update and wait until DHIS2 reports it done."""
    last_years = int(setting("dhis2_analytics_last_years"))
    with get_session() as session:
        job = session.refresh_analytics(last_years=last_years)
        # Raises JobFailedError (DHIS2 reported an error) or TaskTimeoutError.
        final = job.wait(timeout=ANALYTICS_TIMEOUT)
    return {"job": job.id, "message": final.message}


# --- the DAG ---------------------------------------------------------------------------------

with DAG(
    dag_id="dhis2_nightly_maintenance",
    schedule="30 1 * * *",  # 01:30 every night (Airflow < 2.4: schedule_interval=)
    start_date=datetime.datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "dhis2-admin", "retries": 0},
    tags=["dhis2"],
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
    integrity_task >> analytics_task
