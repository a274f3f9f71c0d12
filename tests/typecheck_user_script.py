"""A user's script, for type checkers: every public method of ``Session`` and the
public functions, with the result types a user's code relies on.

The tox ``typecheck`` env runs ``mypy --strict`` and ``pyright --level`` strict
over this file; ``assert_type`` fails the check when a result type changes.
``tests/test_typecheck_script.py`` also runs it against the stand-in, so every
call here is one that works.  (Not collected by pytest: the name does not start
with ``test_``.)
"""
# pyright: strict, reportUnnecessaryTypeIgnoreComment=true
import datetime
import io
import json
import os
import sys
import tempfile
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple, Union
from urllib.parse import urlsplit

import dhis2maint
from dhis2maint import (CategoryComboState, CategoryOptionCombo, CountChange,
                        DataIntegrityCheck, DataIntegrityIssue, DataIntegrityReport,
                        DataIntegrityResult, DataIntegritySeverity, DoctorCheck, DoctorReport,
                        HealthFinding, IntegrityIssueRow, Job, JobConfiguration, JobStatus,
                        JobType, JobTypeInfo, Notification, PredictorRun, ReportComparison,
                        RunningJob, SchedulerHealth, Session, UserInfo, ValidationResult,
                        ValidationViolation)
from dhis2maint.history import (History, OpenIssue, RecordedRun, RunInfo, TrendPoint,
                                issue_identity, parse_age)
from dhis2maint.convert import comparison_to_dict, report_from_dict, report_to_dict
from dhis2maint.models import ImportSummary, severity_rank
from dhis2maint.report import (atomic_output, write_checks, write_comparison,
                               write_issue_rows, write_notification_line, write_records,
                               write_report)
from dhis2maint.testing import DEFAULT_TOKEN, Dhis2StandIn

if TYPE_CHECKING:
    from typing_extensions import assert_type
else:
    def assert_type(value, _type):
        return value


def models_are_visible() -> None:
    """attrs models: type checkers see their fields, constructors and defaults."""
    issue = DataIntegrityIssue(id="abcdefghijk", name="Orphan", refs=["x"])
    assert_type(issue.refs, List[str])
    assert_type(issue.id, Optional[str])
    if TYPE_CHECKING:  # checked, not run: an unknown field is an error the checkers see
        DataIntegrityIssue(nonexistent=1)  # type: ignore[call-arg]
    result = DataIntegrityResult(name="orgunits_orphaned", count=1, issues=[issue])
    assert_type(result.issues, Optional[List[DataIntegrityIssue]])
    assert_type(result.severity, Union[DataIntegritySeverity, str, None])
    assert_type(result.failed, bool)
    assert_type(result.start_time, Optional[datetime.datetime])
    report = DataIntegrityReport(results={"orgunits_orphaned": result}, details=True)
    assert_type(report.results, Dict[str, DataIntegrityResult])
    assert_type(len(report), int)
    assert_type(report["orgunits_orphaned"], DataIntegrityResult)
    assert_type("x" in report, bool)
    for item in report:
        assert_type(item, DataIntegrityResult)
    assert_type(report.issue_rows(), Iterator[IntegrityIssueRow])
    assert_type(report_to_dict(report), Dict[str, Any])
    assert_type(report_from_dict(report_to_dict(report)), DataIntegrityReport)
    row = IntegrityIssueRow("orgunits_orphaned", None, "SEVERE", issue)
    assert_type(row.issue, DataIntegrityIssue)
    change = CountChange("orgunits_orphaned", old=1, new=3)
    assert_type(change.delta, Optional[int])
    assert_type(change.worsened, bool)
    assert_type(severity_rank(DataIntegritySeverity.SEVERE), int)
    state = CategoryComboState(id="bjDvmb4bfuf", category_option_combos=[
        CategoryOptionCombo(id="HllvX50cXC0", name="default")])
    assert_type(state.count, int)
    assert_type(state.complete, bool)
    assert_type(str(JobType.ANALYTICS_TABLE), str)


def reports_and_files(report: DataIntegrityReport, checks: List[DataIntegrityCheck],
                      notification: Notification) -> None:
    """The saved-report functions and the output writers."""
    text = dhis2maint.to_json(report)
    assert_type(text, str)
    again = dhis2maint.from_json(text)
    assert_type(again, DataIntegrityReport)
    comparison = dhis2maint.compare_reports(report, again)
    assert_type(comparison, ReportComparison)
    assert_type(comparison.new_issues, List[IntegrityIssueRow])
    assert_type(comparison.count_changes, Dict[str, CountChange])
    assert_type(comparison.worsened("severe"), List[CountChange])
    assert_type(comparison.improved(), List[CountChange])
    assert_type(comparison.new_issues_at_least(DataIntegritySeverity.WARNING),
                List[IntegrityIssueRow])
    assert_type(comparison.has_changes, bool)
    assert_type(comparison_to_dict(comparison), Dict[str, Any])
    assert_type(dhis2maint.parse_version("2.42.1"), Tuple[int, ...])
    out = io.StringIO()
    assert_type(write_report(report, "table", out, title="Nightly"), None)
    assert_type(write_issue_rows(report.issue_rows(), "csv", out), int)
    assert_type(write_checks(checks, "json", out), None)
    assert_type(write_comparison(comparison, "jsonl", out), None)
    assert_type(write_records(checks, "csv", out), None)
    assert_type(write_notification_line(notification, 1.5, sys.stderr), None)
    with atomic_output(None) as stream:
        stream.write("done\n")


def errors(exc: dhis2maint.Dhis2Error) -> None:
    assert_type(exc.message, str)
    assert_type(exc.outcome_unknown, bool)
    if isinstance(exc, dhis2maint.ApiError):
        assert_type(exc.status_code, Optional[int])
        assert_type(exc.web_message, Optional[Dict[str, Any]])
    if isinstance(exc, dhis2maint.JobFailedError):
        assert_type(exc.notification, Optional[Notification])


def session_api(session: Session) -> None:
    """Every public method of Session, in the order of the README."""
    assert_type(session.base_url, str)
    assert_type(session.timeout, float)
    assert_type(session.auth_kind, str)
    assert_type(session.api_url("system/info"), str)
    assert_type(session.server_version, Tuple[int, ...])
    response = session.get(session.api_url("system/info"))
    assert_type(response.status_code, int)

    # data integrity
    checks = session.list_integrity_checks(severity="severe", slow=False)
    assert_type(checks, List[DataIntegrityCheck])
    names = [c.name for c in checks[:3]]
    job = session.start_integrity_run(names, details=False)
    assert_type(job, Job)
    final = job.wait(timeout=60.0, on_notification=print)
    assert_type(final, Notification)
    assert_type(final.message, Optional[str])
    report = session.run_integrity_checks(names, details=True, timeout=60.0,
                                          on_notification=lambda n: print(n.message))
    assert_type(report, DataIntegrityReport)
    assert_type(session.get_integrity_report(checks=names), DataIntegrityReport)
    for row in session.iter_integrity_issues(names):
        assert_type(row, IntegrityIssueRow)
        assert_type(row.issue.refs, List[str])
    assert_type(session.get_integrity_check_result(names[0], details=True),
                Optional[DataIntegrityResult])
    assert_type(session.running_integrity_checks(), List[str])
    assert_type(session.completed_integrity_checks(details=True), List[str])
    resolved = session.resolve_integrity_checks(names)
    assert_type(resolved, List[DataIntegrityCheck])
    assert_type(session.missing_integrity_results(report, resolved), List[str])
    streamed, rows = session.iter_integrity_run(resolved, timeout=60.0, on_check=print)
    assert_type(streamed, DataIntegrityReport)
    for streamed_row in rows:
        assert_type(streamed_row, IntegrityIssueRow)
    assert_type(session.server_version_text, str)
    assert_type(session.server_is_snapshot, bool)

    # background jobs and their notifications
    analytics = session.refresh_analytics(last_years=1, skip_events=True)
    assert_type(analytics, Job)
    assert_type(analytics.job_type, Union[JobType, str])
    assert_type(analytics.created, Optional[datetime.datetime])
    assert_type(session.wait_for_task(analytics.job_type, analytics.id, timeout=60.0),
                Notification)
    assert_type(session.refresh_resource_tables(), Job)
    monitoring = session.refresh_monitoring()
    for note in session.iter_task_notifications(JobType.MONITORING, monitoring.id,
                                                timeout=60.0, poll_interval=0.1):
        assert_type(note, Notification)
    assert_type(session.get_task_notifications("ANALYTICS_TABLE", analytics.id),
                List[Notification])
    assert_type(session.get_latest_task(JobType.ANALYTICS_TABLE),
                Tuple[Optional[str], List[Notification]])
    if session.server_version >= (2, 41):
        configuration = session.get_job_configuration(analytics.id)
        assert_type(configuration, JobConfiguration)
        assert_type(configuration.job_status, Union[JobStatus, str, None])

    # synchronous runs
    today = datetime.date.today()
    runs = session.run_predictors(today - datetime.timedelta(days=90), today,
                                  predictors=["a4Tz9PZk2Wq"])
    assert_type(runs, List[PredictorRun])
    assert_type(session.run_validation_analysis("ImspTQPwCqd", "2024-01-01", "2024-12-31"),
                List[ValidationViolation])
    assert_type(session.update_category_option_combos("bjDvmb4bfuf"), Optional[ImportSummary])
    assert_type(session.get_category_combo_state("bjDvmb4bfuf"), CategoryComboState)
    assert_type(session.wait_for_coc_generation("bjDvmb4bfuf", timeout=10.0),
                CategoryComboState)

    # maintenance: each returns DHIS2's message (2.43+) or None
    maintenance = [
        session.run_maintenance(cache_clear=True, app_reload=True),
        session.clear_analytics_tables(),
        session.analyze_analytics_tables(),
        session.clear_expired_invitations(),
        session.update_org_unit_paths(),
        session.prune_periods(),
        session.remove_zero_data_values(),
        session.remove_soft_deleted_data_values(),
        session.remove_soft_deleted_events(),
        session.remove_soft_deleted_enrollments(),
        session.remove_soft_deleted_tracked_entities(),
        session.remove_soft_deleted_relationships(),
        session.create_sql_views(),
        session.drop_sql_views(),
        session.clear_cache(),
        session.reload_apps(),
        session.prune_organisation_unit_data("Rp268JB6Ne4"),
        session.prune_data_element_data("cYeuwXTCPkU"),
    ]
    assert_type(maintenance, List[Optional[str]])
    scheduler_api(session)
    health_api(session)
    history_api(session, report)
    datavalues_api(session, report)
    reports_and_files(report, checks, final)


def scheduler_api(session: Session) -> None:
    """Job configurations, tasks, running jobs and validation results (#15).  Only
    the configuration this function creates is changed, enabled or deleted."""
    monitoring = session.list_job_configurations(job_type=JobType.MONITORING, enabled=True)
    assert_type(monitoring, List[JobConfiguration])
    assert_type(session.list_job_configurations(status="FAILED"), List[JobConfiguration])
    before = monitoring[0]
    assert_type(before.is_run_once, bool)
    assert_type(before.error_code_list, List[str])
    assert_type(before.runtime_seconds, Optional[float])
    assert_type(before.last_executed, Optional[datetime.datetime])
    assert before.id is not None
    started = session.run_job_configuration(before.id)
    assert_type(started, Job)
    done = session.wait_for_job_configuration(before.id, before, timeout=60.0,
                                              poll_interval=0.1,
                                              on_change=lambda c: print(c.job_status))
    assert_type(done, JobConfiguration)
    assert_type(session.run_job_configuration(before.id, wait=True, timeout=60.0,
                                              poll_interval=0.1), Job)

    created = session.create_job_configuration(
        "typecheck script", JobType.RESOURCE_TABLE, cron_expression="0 15 4 ? * *",
        enabled=False)
    assert_type(created, JobConfiguration)
    assert created.id is not None
    assert_type(session.update_job_configuration(created.id, name="typecheck script 2"),
                JobConfiguration)
    assert_type(session.enable_job_configuration(created.id), JobConfiguration)
    assert_type(session.disable_job_configuration(created.id), JobConfiguration)
    assert_type(session.cancel_job(job_id=created.id), None)  # not running: nothing to stop
    assert_type(session.delete_job_configuration(created.id), None)

    assert_type(session.list_job_types(), List[JobTypeInfo])
    assert_type(session.list_task_types(), List[str])
    assert_type(session.list_tasks(JobType.MONITORING), List[str])
    for running in session.running_jobs():
        assert_type(running, RunningJob)
        assert_type(running.started_time, Optional[datetime.datetime])

    results = session.list_validation_results()
    assert_type(results, List[ValidationResult])
    for result in session.iter_validation_results(validation_rules=["Vr1SdY8cL8r"],
                                                  created_date=datetime.date(2000, 1, 1),
                                                  page_size=20):
        assert_type(result, ValidationResult)
        assert_type(result.id, Optional[int])
    assert_type(session.delete_validation_results(validation_rules="Vr3Ko2wZ7eT",
                                                  notification_sent=True), None)
    assert_type(session.send_validation_notifications(), Optional[Job])


def health_api(session: Session) -> None:
    """Scheduler health, doctor and whoami (#15)."""
    health = session.scheduler_health(max_runtime_hours=6.0, analytics_max_age_hours=26.0)
    assert_type(health, SchedulerHealth)
    assert_type(health.ok, bool)
    assert_type(health.worst, Optional[str])
    assert_type(health.server_time, Optional[datetime.datetime])
    for finding in health.at_least("warning"):
        assert_type(finding, HealthFinding)
        assert_type(finding.error_codes, List[str])
    user = session.whoami()
    assert_type(user, UserInfo)
    assert_type(user.superuser, bool)
    assert_type(user.authorities, List[str])
    doctor = session.doctor(need=["integrity"], max_skew_seconds=60.0)
    assert_type(doctor, DoctorReport)
    assert_type(doctor.ok, bool)
    assert_type(doctor.failed, List[DoctorCheck])
    assert_type(doctor.checks[0].fix, Optional[str])


def history_api(session: Session, report: DataIntegrityReport) -> None:
    """The local integrity history (#16), in a throw-away file."""
    with tempfile.TemporaryDirectory() as folder:
        with History(os.path.join(folder, "integrity.sqlite"), busy_timeout=5.0) as history:
            assert_type(history, History)
            recorded = history.record(report, session)
            assert_type(recorded, RecordedRun)
            assert_type(recorded.run, RunInfo)
            assert_type(recorded.previous_run_id, Optional[int])
            assert_type(recorded.new_at_least("SEVERE"), int)
            runs = history.runs(session.base_url)
            assert_type(runs, List[RunInfo])
            assert_type(runs[-1].run_at, datetime.datetime)
            assert_type(history.servers(), List[str])
            assert_type(history.schema_version, int)
            assert_type(history.trend(since=datetime.date(2000, 1, 1)), List[TrendPoint])
            assert_type(history.check_trends(session.base_url, limit=10),
                        Dict[str, List[Optional[int]]])
            issues = history.open_issues(min_age="0d", severity="WARNING")
            assert_type(issues, List[OpenIssue])
            for issue in issues:
                assert_type(issue.first_seen, datetime.datetime)
                assert_type(issue.age_days, float)
            assert_type(history.first_seen(session.base_url),
                        Dict[Tuple[str, str], datetime.datetime])
            assert_type(history.load_report(runs[-1].id), DataIntegrityReport)
            assert_type(history.compare_with_previous(report), ReportComparison)
    assert_type(parse_age("30d"), Optional[datetime.timedelta])
    assert_type(issue_identity(DataIntegrityIssue(id="abcdefghijk")), str)


def datavalues_api(session: Session, report: DataIntegrityReport) -> None:
    """Server health as DHIS2 data values (#25)."""
    from dhis2maint.datavalues import (DataValue, DataValueImportSummary, DataValuesStatus,
                                       ImportConflict, MetadataImportReport, values_from_report)
    setup = session.setup_data_values(prefix="DM_", dry_run=False)
    assert_type(setup, MetadataImportReport)
    assert_type(setup.count.imported, int)
    assert_type(setup.errors, List[ImportConflict])
    assert_type(session.server_calendar(), str)
    summary = session.push_data_values(report, dry_run=True)
    assert_type(summary, DataValueImportSummary)
    assert_type(summary.import_count.ignored, int)
    values = values_from_report(report, "ImspTQPwCqd", prefix="DM_", calendar="iso8601")
    assert_type(values, List[DataValue])
    assert_type(session.push_data_values(values).conflicts, List[ImportConflict])
    status = session.data_values_status(prefix="DM_", org_unit=None)
    assert_type(status, DataValuesStatus)
    assert_type(status.missing_checks, List[str])
    with tempfile.TemporaryDirectory() as folder:
        with History(os.path.join(folder, "integrity.sqlite")) as history:
            history.record(report, session)
            pushed = session.push_history_values(history, since=datetime.date(2000, 1, 1))
            assert_type(pushed, List[DataValueImportSummary])


class AirflowConnection:
    """What ``Session.from_airflow_connection`` reads of an Airflow Connection."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.conn_id = "dhis2_default"
        self.conn_type = "http"
        self.host = parts.hostname
        self.schema = parts.scheme
        self.port = parts.port
        self.login: Optional[str] = None
        self.password = token
        self.extra_dejson: Dict[str, Any] = {"timeout": 30}


def constructors(url: str, token: str) -> None:
    """Session.from_uri, from_airflow_connection and from_auth_file (#14)."""
    parts = urlsplit(url)
    uri = "{}://:{}@{}?timeout=30&retries=1".format(parts.scheme, token, parts.netloc)
    with Session.from_uri(uri) as session:
        assert_type(session, Session)
        assert_type(session.server_version, Tuple[int, ...])
    with Session.from_airflow_connection(AirflowConnection(url, token), retries=1) as session:
        assert_type(session, Session)
        assert_type(session.whoami(), UserInfo)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "dish.json")
        with open(path, "w") as handle:
            json.dump({"url": url, "token": token}, handle)
        os.chmod(path, 0o600)
        with Session.from_auth_file(path, timeout=30.0) as session:
            assert_type(session, Session)
            assert_type(session.auth_kind, str)


def main() -> int:
    """Run everything above against the stand-in (``python tests/typecheck_user_script.py``)."""
    models_are_visible()
    with Dhis2StandIn(version="2.42", job_seconds=0.2) as server:
        assert_type(server.url, str)
        env = {"DHIS2_URL": server.url, "DHIS2_USERNAME": "admin", "DHIS2_PASSWORD": "district"}
        with Session.from_env(env, retries=1) as session:
            assert_type(session, Session)
            session_api(session)
        with Session(server.url, token=DEFAULT_TOKEN) as session:
            assert_type(session.auth_kind, str)
            session.server_version = None
        constructors(server.url, DEFAULT_TOKEN)
        assert_type(server.requests[0].method, str)
        assert_type(server.maintenance_log, List[str])
    return 0


if __name__ == "__main__":
    sys.exit(main())
