"""SchedulerMixin end to end against the stand-in, per DHIS2 generation.

Body shapes follow DHIS2's source (scheduler-and-health.md): job configuration
fields per version api/scheduling/JobConfiguration.java@2.36/@2.38/@2.41;
execute ObjectReport sch/JobConfigurationController.java@2.38:89-111; enable/disable
@2.38:113-137; cancel @2.42:144-150 + 243-254; /api/scheduling/running
sch/SchedulingController.java@2.38:76-85; validation results
ctl/validation/ValidationResultController.java@2.42; authorities of DELETE
/api/validationResults @2.41:118 (F_PERFORM_MAINTENANCE only) and @2.42:121.
"""
import pytest

from dhis2maint import (ConflictError, JobFailedError, NotFound, PermissionDenied,
                        UnsupportedServerError)
from dhis2maint.models import JobConfiguration, RunningJob, ValidationResult

# Simulated time (tests/conftest.py fake_time): the stand-ins' jobs and the waits for them
# take no real seconds; requests still go over real HTTP.
pytestmark = pytest.mark.usefixtures("fake_time")

VERSIONS = ["2.36", "2.40", "2.42", "2.43"]
ALL_VERSIONS = ["2.36", "2.37", "2.38", "2.40", "2.41", "2.42", "2.43"]


@pytest.mark.parametrize("version", VERSIONS)
def test_list_job_configurations_typed_per_version(serve, version):
    srv, session = serve(version)
    configs = session.list_job_configurations()
    assert all(isinstance(c, JobConfiguration) for c in configs)
    by_id = {c.id: c for c in configs}
    stats = by_id["BFa3jDsbtdO"]
    assert stats.name == "Data statistics" and str(stats.job_type) == "DATA_STATISTICS"
    assert stats.configurable is False and stats.cron_expression == "0 0 2 ? * *"
    failed = by_id["UsrMetaSyn1"]
    assert str(failed.last_executed_status) == "FAILED"
    minor = int(version.split(".")[1])
    if minor >= 41:  # errorCodes/lastFinished exist only from 2.41 (JobConfiguration.java@2.41)
        assert failed.error_code_list == ["E5002", "E7600"]
        assert "DHIS2rocks1" in by_id  # Housekeeping
        assert "errorCodes" in srv.requests[-1].query["fields"][0]
    else:
        assert failed.error_codes is None and "DHIS2rocks1" not in by_id
        assert "errorCodes" not in srv.requests[-1].query["fields"][0]
    assert srv.requests[-1].query["paging"] == ["false"]


def test_list_filters(serve):
    _, session = serve("2.42")
    assert [c.id for c in session.list_job_configurations(job_type="META_DATA_SYNC")] == \
        ["UsrMetaSyn1"]
    disabled = {c.id for c in session.list_job_configurations(enabled=False)}
    assert disabled == {"YvAwAmrqAtN", "UsrPredict1"}
    assert [c.id for c in session.list_job_configurations(status="failed")] == ["UsrMetaSyn1"]
    with pytest.raises(ValueError):
        session.list_job_configurations(enabled="yes")


@pytest.mark.parametrize("version", VERSIONS)
def test_get_job_configuration_all_fields(serve, version):
    srv, session = serve(version)
    config = session.get_job_configuration("UsrMonitor1")
    assert config.job_parameters["relativeStart"] == -7
    assert config.runtime_seconds == pytest.approx(42.0)
    fields = srv.requests[-1].query["fields"][0]
    assert "jobParameters" in fields and ("lastAlive" in fields) == (version >= "2.41")
    with pytest.raises(NotFound):
        session.get_job_configuration("Abcdefghijk")


@pytest.mark.parametrize("version", VERSIONS)
def test_run_job_configuration_and_wait(serve, version):
    srv, session = serve(version, job_seconds=0.3)
    before = session.get_job_configuration("UsrMonitor1").last_executed
    changes = []
    job = session.run_job_configuration("UsrMonitor1", wait=True, timeout=20,
                                        poll_interval=0.1, on_change=changes.append)
    assert job.id == "UsrMonitor1" and str(job.job_type) == "MONITORING"
    after = session.get_job_configuration("UsrMonitor1")
    assert after.last_executed != before and str(after.last_executed_status) == "COMPLETED"
    assert any(r.method == "POST" and r.path == "/api/jobConfigurations/UsrMonitor1/execute"
               for r in srv.requests)
    assert changes


def test_run_failure_raises_job_failed(serve):
    srv, session = serve("2.42", job_seconds=0.2)
    srv.scheduler.fail_next_run = True
    with pytest.raises(JobFailedError, match="FAILED"):
        session.run_job_configuration("UsrMonitor1", wait=True, timeout=20, poll_interval=0.1)


@pytest.mark.parametrize("version", ["2.38", "2.42"])
def test_run_disabled_job_refused_client_side(serve, version):
    srv, session = serve(version)
    with pytest.raises(ConflictError, match="disabled"):
        session.run_job_configuration("UsrPredict1")
    assert not any(r.path.endswith("/execute") for r in srv.requests)


@pytest.mark.parametrize("version,message", [("2.40", "Failed to execute job"),
                                             ("2.42", "already running")])
def test_run_running_job_conflict(serve, version, message):
    # 2.37-2.40: HTTP 200 + errorReports E7006 (DefaultSchedulingManager.java@2.40:193-201);
    # 2.41+: 409 "Job is already running." (DefaultJobSchedulerService.java@2.42:88-96)
    srv, session = serve(version, job_seconds=5)
    session.run_job_configuration("UsrMonitor1")
    import time
    time.sleep(0.4)
    with pytest.raises(ConflictError, match=message):
        session.run_job_configuration("UsrMonitor1")


@pytest.mark.parametrize("version", ["2.36", "2.37", "2.38", "2.42"])
def test_enable_disable(serve, version):
    srv, session = serve(version)
    assert session.disable_job_configuration("UsrMonitor1").enabled is False
    assert session.enable_job_configuration("UsrMonitor1").enabled is True
    methods = {(r.method, r.path) for r in srv.requests}
    if version in ("2.36", "2.37"):  # no /enable before 2.38: JSON merge PATCH
        assert ("PATCH", "/api/jobConfigurations/UsrMonitor1") in methods
    else:
        assert ("POST", "/api/jobConfigurations/UsrMonitor1/disable") in methods


@pytest.mark.parametrize("version,status,method,action", [
    # 2.36/2.37: JSON merge PATCH, prePatchEntity -> WebMessageException 422
    # (sch/JobConfigurationController.java@2.36:120-126, @2.37:124-130)
    ("2.36", 422, "PATCH", "enable"), ("2.37", 422, "PATCH", "disable"),
    # 2.38+: POST /enable|/disable, checkConfigurable CONFLICT (@2.38:113-137, @2.42:182-206)
    ("2.38", 409, "POST", "disable"), ("2.42", 409, "POST", "enable")])
def test_enable_disable_system_job_conflict_every_version(serve, version, status, method, action):
    srv, session = serve(version)
    toggle = getattr(session, action + "_job_configuration")
    with pytest.raises(ConflictError) as info:
        toggle("YvAwAmrqAtN")
    error = info.value
    text = str(error)
    assert "system job" in text and "YvAwAmrqAtN" in text and "Dataset notification" in text
    assert "refuses to " + action in text and "HTTP {}".format(status) in text
    assert error.status_code == status  # what DHIS2 really answered
    assert error.dhis2_message == "Job YvAwAmrqAtN is a system job that cannot be modified."
    assert any(r.method == method and r.path.startswith("/api/jobConfigurations/YvAwAmrqAtN")
               for r in srv.requests)
    # nothing changed on the server
    assert session.get_job_configuration("YvAwAmrqAtN").enabled is False


@pytest.mark.parametrize("version", ["2.36", "2.40", "2.42", "2.43"])
def test_cancel_per_version(serve, version):
    srv, session = serve(version, job_seconds=5)
    minor = int(version.split(".")[1])
    if minor < 41:
        with pytest.raises(UnsupportedServerError):
            session.cancel_job("UsrMonitor1")
    if minor < 37:
        with pytest.raises(UnsupportedServerError):
            session.cancel_job(job_type="MONITORING")
        return
    session.run_job_configuration("UsrMonitor1")
    import time
    time.sleep(0.3)
    if minor >= 41:
        session.cancel_job("UsrMonitor1")
        assert ("POST", "/api/jobConfigurations/UsrMonitor1/cancel") in \
            {(r.method, r.path) for r in srv.requests}
    else:
        session.cancel_job(job_type="MONITORING")
        assert ("POST", "/api/scheduling/cancel/MONITORING") in \
            {(r.method, r.path) for r in srv.requests}
    assert str(session.get_job_configuration("UsrMonitor1").last_executed_status) == "STOPPED"


def test_cancel_needs_authority(serve):
    srv, session = serve("2.42")
    srv.authorities["admin"] = ["F_VIEW_DATA"]
    with pytest.raises(PermissionDenied, match="no access"):
        session.cancel_job("UsrMonitor1")


@pytest.mark.parametrize("version", VERSIONS)
def test_create_update_delete(serve, version):
    srv, session = serve(version)
    config = session.create_job_configuration("Early analytics", "ANALYTICS_TABLE",
                                              cron_expression="0 0 4 ? * *",
                                              job_parameters={"lastYears": 1})
    assert config.name == "Early analytics" and config.cron_expression == "0 0 4 ? * *"
    post = [r for r in srv.requests if r.method == "POST" and r.path == "/api/jobConfigurations"]
    assert post and b'"cronExpression": "0 0 4 ? * *"' in post[0].body
    updated = session.update_job_configuration(config.id, cron_expression="0 15 4 ? * *")
    assert updated.cron_expression == "0 15 4 ? * *"
    session.delete_job_configuration(config.id)
    with pytest.raises(NotFound):
        session.get_job_configuration(config.id)


@pytest.mark.parametrize("version", ["2.36", "2.42"])
def test_create_invalid_cron_carries_dhis2_message(serve, version):
    _, session = serve(version)
    with pytest.raises(ConflictError, match="E7005") as info:
        session.create_job_configuration("Bad", "ANALYTICS_TABLE", cron_expression="every night")
    assert "Cron expression is invalid" in str(info.value)
    # two jobs of one type cannot share a cron string (hook@2.42:115-133)
    with pytest.raises(ConflictError, match="E7000"):
        session.create_job_configuration("Twin", "ANALYTICS_TABLE", cron_expression="0 0 3 ? * *")


@pytest.mark.parametrize("version,status", [("2.38", 422), ("2.42", 409)])
def test_delete_system_job_refused(serve, version, status):
    _, session = serve(version)
    from dhis2maint import ApiError
    with pytest.raises(ApiError, match="system job") as info:
        session.delete_job_configuration("BFa3jDsbtdO")
    assert info.value.status_code == status


def test_crud_needs_scheduling_admin(serve):
    srv, session = serve("2.42")
    srv.authorities["admin"] = ["F_PERFORM_MAINTENANCE"]
    with pytest.raises(PermissionDenied):
        session.create_job_configuration("X", "MONITORING", cron_expression="0 0 9 ? * *")
    srv.authorities["admin"] = ["F_SCHEDULING_ADMIN"]
    assert session.create_job_configuration("X", "MONITORING",
                                            cron_expression="0 0 9 ? * *").name == "X"


def test_create_argument_checks(serve):
    _, session = serve("2.42")
    with pytest.raises(ValueError):
        session.create_job_configuration("X", "MONITORING")
    with pytest.raises(ValueError):
        session.create_job_configuration("X", "MONITORING", cron_expression="0 0 1 ? * *",
                                         delay=5)


@pytest.mark.parametrize("version", VERSIONS)
def test_job_types(serve, version):
    _, session = serve(version)
    types = {str(t.job_type) for t in session.list_job_types()}
    assert "ANALYTICS_TABLE" in types and "DATA_STATISTICS" not in types
    assert ("PUSH_ANALYSIS" in types) == (version != "2.43")


@pytest.mark.parametrize("version", VERSIONS)
def test_task_types_and_tasks(serve, version):
    _, session = serve(version)
    first = session.refresh_resource_tables()
    first.wait(timeout=20, poll_interval=0.1)
    second = session.refresh_resource_tables()
    second.wait(timeout=20, poll_interval=0.1)
    assert "RESOURCE_TABLE" in session.list_task_types()
    ids = session.list_tasks("RESOURCE_TABLE")
    assert ids[:2] == [second.id, first.id]


@pytest.mark.parametrize("version", VERSIONS)
def test_running_jobs(serve, version):
    _, session = serve(version, job_seconds=5)
    job = session.refresh_analytics()
    import time
    time.sleep(0.2)
    running = session.running_jobs()
    assert all(isinstance(r, RunningJob) for r in running)
    if version == "2.36":  # no /api/scheduling: RUNNING job configurations
        assert [r.job_id for r in running] == ["UsrAnalyt1c"]
        return
    ids = {r.job_id for r in running}
    assert job.id in ids
    # 2.41+ read RUNNING from the database, so the stale row shows; 2.37-2.40 do not
    assert ("UsrAnalyt1c" in ids) == (version in ("2.42", "2.43"))


@pytest.mark.parametrize("version", VERSIONS)
def test_validation_results_paged(serve, version):
    srv, session = serve(version)
    results = list(session.iter_validation_results(page_size=50))
    assert len(results) == 120 and isinstance(results[0], ValidationResult)
    pages = [r.query["page"][0] for r in srv.requests if r.path == "/api/validationResults"]
    assert pages == ["1", "2", "3"]
    bo = session.list_validation_results(org_units=["O6uvpzGd5pu"], periods=["202401"])
    assert bo and all(r.organisation_unit_id == "O6uvpzGd5pu" and r.period_id == "202401"
                      for r in bo)
    assert isinstance(bo[0].id, int) and bo[0].validation_rule_name


@pytest.mark.parametrize("version", VERSIONS)
def test_validation_delete_needs_filter_or_all(serve, version):
    srv, session = serve(version)
    with pytest.raises(ValueError, match="every validation result"):
        session.delete_validation_results()
    assert not any(r.method == "DELETE" for r in srv.requests)
    minor = int(version.split(".")[1])
    if minor < 42:  # hasRole('F_PERFORM_MAINTENANCE') alone: ALL is refused
        with pytest.raises(PermissionDenied):
            session.delete_validation_results(period="202401")
        srv.authorities["admin"] = ["ALL", "F_PERFORM_MAINTENANCE"]
    session.delete_validation_results(org_units="O6uvpzGd5pu", period="202401")
    left = session.list_validation_results()
    assert len(left) < 120 and not any(
        r.organisation_unit_id == "O6uvpzGd5pu" and r.period_id == "202401" for r in left)
    session.delete_validation_results(all_results=True)
    assert session.list_validation_results() == []
    delete = [r for r in srv.requests if r.method == "DELETE"][-1]
    assert delete.query == {}


@pytest.mark.parametrize("version", VERSIONS)
def test_send_validation_notifications(serve, version):
    _, session = serve(version)
    job = session.send_validation_notifications()
    if int(version.split(".")[1]) >= 41:
        assert job is not None and str(job.job_type) == "VALIDATION_RESULTS_NOTIFICATION"
    else:
        assert job is None
    assert all(r.notification_sent for r in session.list_validation_results())


def test_send_validation_notifications_authority_per_version(serve):
    srv, session = serve("2.40")
    srv.authorities["admin"] = ["F_RUN_VALIDATION"]
    with pytest.raises(PermissionDenied):  # <= 2.41: ALL or M_dhis-web-app-management
        session.send_validation_notifications()
    srv2, session2 = serve("2.42")
    srv2.authorities["admin"] = ["F_RUN_VALIDATION"]
    assert session2.send_validation_notifications() is not None


# --- every simulated version, 2.36-2.43 -------------------------------------------------

EVERY_VERSION = ["2.36", "2.37", "2.38", "2.39", "2.40", "2.41", "2.42", "2.43"]
_241_FIELDS = ("lastFinished", "lastAlive", "errorCodes", "queueName", "queuePosition",
               "executedBy", "maxDelayedExecutionTime")


@pytest.mark.parametrize("version", EVERY_VERSION)
def test_list_job_configurations_fields_every_version(serve, version):
    srv, session = serve(version)
    minor = int(version.split(".")[1])
    by_id = {c.id: c for c in session.list_job_configurations()}
    asked = srv.requests[-1].query["fields"][0].split(",")
    # the fields asked for: the 2.41+ JSON properties only from 2.41 (JobConfiguration.java@2.41)
    assert all((f in asked) == (minor >= 41) for f in _241_FIELDS)
    assert {"jobType", "cronExpression", "lastExecutedStatus", "nextExecutionTime"} <= set(asked)

    failed, stuck = by_id["UsrMetaSyn1"], by_id["UsrAnalyt1c"]
    system, monitor = by_id["YvAwAmrqAtN"], by_id["UsrMonitor1"]
    assert str(failed.last_executed_status) == "FAILED"
    assert monitor.cron_expression == "0 0 6 ? * *" and str(monitor.scheduling_type) == "CRON"
    assert monitor.job_parameters["relativeStart"] == -7
    if minor >= 41:
        assert failed.error_code_list == ["E5002", "E7600"]
        assert monitor.last_finished is not None and monitor.max_delayed_execution_time is not None
        # a RUNNING job: heartbeat present, no runtime until it ends
        assert stuck.last_alive is not None and stuck.last_runtime_execution is None
    else:
        assert failed.error_codes is None and failed.error_code_list == []
        assert monitor.last_finished is None and monitor.max_delayed_execution_time is None
        assert stuck.last_alive is None
        assert stuck.runtime_seconds == pytest.approx(3 * 3600 + 12.5)  # the previous run's
    assert str(stuck.job_status) == "RUNNING"
    # 2.36 resets only enabled jobs at startup, so its stuck row is a disabled one
    assert stuck.enabled is (minor >= 37)
    # a disabled job's jobStatus: DISABLED on 2.36/2.37 and 2.41+; 2.38-2.40 /disable leave
    # the stored SCHEDULED (sch/JobConfigurationController.java@2.38:126-137)
    assert system.enabled is False
    assert str(system.job_status) == ("SCHEDULED" if 38 <= minor <= 40 else "DISABLED")


def _expected_system_jobs(minor):
    # core/startup/SchedulerStart.java@2.36/@2.37/@2.38, api/scheduling/JobType.java@2.41
    ids = {"pd6O228pqr0", "BFa3jDsbtdO", "Js3vHn2AVuG", "sHMedQF7VYa", "YvAwAmrqAtN",
           "uwWCT2BMmlq"}
    if minor >= 37:
        ids.add("fUWM1At1TUx")  # ACCOUNT_EXPIRY_ALERT
    if minor >= 38:
        ids.add("vt21671bgno")  # SYSTEM_VERSION_UPDATE_CHECK
    if minor >= 41:
        ids |= {"DHIS2rocks1", "D2datatrim8"}  # HOUSEKEEPING, DATA_VALUE_TRIM
    return ids


@pytest.mark.parametrize("version", EVERY_VERSION)
def test_system_jobs_every_version(serve, version):
    from dhis2maint.health import SYSTEM_JOBS
    _, session = serve(version)
    minor = int(version.split(".")[1])
    system = {c.id: c for c in session.list_job_configurations() if c.configurable is False}
    assert set(system) == _expected_system_jobs(minor)
    # the health module's table agrees with the stand-in on every version
    assert {uid for uid, _, _, first, gone in SYSTEM_JOBS
            if (2, minor) >= first and (gone is None or (2, minor) < gone)} == set(system)
    assert ("ACCOUNT_EXPIRY_ALERT" in {str(c.job_type) for c in system.values()}) == \
        (minor >= 37)
    assert ("SYSTEM_VERSION_UPDATE_CHECK" in {str(c.job_type) for c in system.values()}) == \
        (minor >= 38)
