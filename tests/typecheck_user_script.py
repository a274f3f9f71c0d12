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
import sys
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple, Union

import dhis2maint
from dhis2maint import (CategoryComboState, CategoryOptionCombo, CountChange,
                        DataIntegrityCheck, DataIntegrityIssue, DataIntegrityReport,
                        DataIntegrityResult, DataIntegritySeverity, IntegrityIssueRow, Job,
                        JobConfiguration, JobStatus, JobType, Notification, PredictorRun,
                        ReportComparison, Session, ValidationViolation)
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
    reports_and_files(report, checks, final)


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
        assert_type(server.requests[0].method, str)
        assert_type(server.maintenance_log, List[str])
    return 0


if __name__ == "__main__":
    sys.exit(main())
