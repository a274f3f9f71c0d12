"""Jobs, waiting, synchronous runs and maintenance over real HTTP against Dhis2StandIn.

Jobs run for 0.3 s of wall-clock time; waits poll every 0.05-0.2 s, so the whole
file takes a few seconds.
"""
import datetime

import pytest

from dhis2maint import (BadRequest, ConflictError, JobFailedError, JobType, NotFound,
                        NotificationLevel, ServerError, TaskTimeoutError,
                        UnsupportedServerError, jobs)
from dhis2maint.models import ImportSummary, ValidationViolation

# Simulated time (tests/conftest.py fake_time): the stand-ins' jobs and the waits for them
# take no real seconds; requests still go over real HTTP.
pytestmark = pytest.mark.usefixtures("fake_time")

FAST = {"timeout": 20, "poll_interval": 0.05, "max_interval": 0.2}
AGE_AND_SEX = "t3aNCvHsoSn"  # two categories of two options: four option combos


def posts(srv, path=None):
    return [r for r in srv.requests if r.method == "POST" and (path is None or r.path == path)]


# ---------------------------------------------------------------------------
# Triggers + waiting

TRIGGERS = [
    ("refresh_analytics", "/api/resourceTables/analytics", JobType.ANALYTICS_TABLE),
    ("refresh_resource_tables", "/api/resourceTables", JobType.RESOURCE_TABLE),
    ("refresh_monitoring", "/api/resourceTables/monitoring", JobType.MONITORING),
]


@pytest.mark.parametrize("version", ["2.36", "2.37", "2.38", "2.40", "2.42", "2.43"])
@pytest.mark.parametrize("method, path, job_type", TRIGGERS, ids=[t[0] for t in TRIGGERS])
def test_every_trigger_then_wait(serve, version, method, path, job_type):
    srv, session = serve(version)
    job = getattr(session, method)()
    assert job.job_type == job_type and job.id in srv.job_ids(job_type.value)
    seen = []
    final = job.wait(on_notification=seen.append, **FAST)
    assert final.completed and final.level == NotificationLevel.INFO
    assert seen and seen[-1] is final
    assert len({(n.id, n.time, n.message) for n in seen}) == len(seen)  # no duplicates
    assert [n.time for n in seen] == sorted(n.time for n in seen)
    assert len(posts(srv, path)) == 1


@pytest.mark.parametrize("version, kwargs, query", [
    ("2.42", {"last_years": 2, "skip_outliers": True, "skip_validation_results": True,
              "skip_tracked_entities": True, "skip_org_unit_ownership": True},
     {"lastYears": ["2"], "skipOutliers": ["true"], "skipValidationResult": ["true"],
      "skipTrackedEntities": ["true"], "skipOrgUnitOwnership": ["true"]}),
    ("2.38", {"last_years": 1, "skip_events": True, "skip_enrollment": True,
              "skip_aggregate": True, "skip_resource_tables": True},
     {"lastYears": ["1"], "skipEvents": ["true"], "skipEnrollment": ["true"],
      "skipAggregate": ["true"], "skipResourceTables": ["true"]}),
])
def test_analytics_parameters_reach_the_server(serve, version, kwargs, query):
    srv, session = serve(version)
    job = session.refresh_analytics(**kwargs)
    assert posts(srv, "/api/resourceTables/analytics")[0].query == query
    job.wait(**FAST)


def test_analytics_parameters_the_server_lacks_are_refused_before_sending(serve):
    srv, session = serve("2.38")
    with pytest.raises(UnsupportedServerError, match="skipOutliers"):
        session.refresh_analytics(skip_outliers=True)
    assert posts(srv) == []


@pytest.mark.parametrize("version", ["2.38", "2.42", "2.43"])
def test_a_failing_job_raises_job_failed_with_dhis2s_message(serve, version):
    srv, session = serve(version)
    srv.fail_next_job("Process failed: relation analytics_temp does not exist")
    job = session.refresh_analytics()
    with pytest.raises(JobFailedError, match="relation analytics_temp does not exist") as caught:
        job.wait(**FAST)
    assert caught.value.job_id == job.id
    assert caught.value.job_type == JobType.ANALYTICS_TABLE
    assert caught.value.notification.level == NotificationLevel.ERROR


@pytest.mark.parametrize("version", ["2.41", "2.42", "2.43"])
def test_a_feed_dropped_after_completion_falls_back_to_the_job_configuration(
        serve, monkeypatch, version):
    monkeypatch.setattr(jobs, "START_GRACE", 0.5)  # also when no poll saw the job run
    srv, session = serve(version, drop_feed_after_completion=True)
    job = session.refresh_resource_tables()
    final = job.wait(**FAST)
    assert final.completed and "jobConfigurations" in final.message
    assert any(r.path == "/api/jobConfigurations/" + job.id for r in srv.requests)


def test_a_failed_job_whose_feed_was_dropped_fails_via_the_job_configuration(serve, monkeypatch):
    monkeypatch.setattr(jobs, "START_GRACE", 0.5)
    srv, session = serve("2.42", drop_feed_after_completion=True)
    srv.fail_next_job("boom")
    job = session.refresh_analytics()
    with pytest.raises(JobFailedError, match="FAILED"):
        job.wait(**FAST)


def test_without_the_fallback_a_dropped_feed_waits_until_the_deadline(serve, monkeypatch):
    monkeypatch.setattr(jobs, "START_GRACE", 0.2)
    srv, session = serve("2.40", drop_feed_after_completion=True)
    job = session.refresh_monitoring()
    with pytest.raises(TaskTimeoutError) as caught:
        job.wait(timeout=1.0, poll_interval=0.05, max_interval=0.2)
    assert caught.value.job_id == job.id
    assert not any(r.path.startswith("/api/jobConfigurations") for r in srv.requests)


def test_a_job_that_starts_late_is_waited_for(serve):
    srv, session = serve("2.42", start_delay=0.8)
    job = session.refresh_resource_tables()
    assert session.get_task_notifications(JobType.RESOURCE_TABLE, job.id) == []
    assert job.wait(**FAST).completed
    assert not any(r.path.startswith("/api/jobConfigurations") for r in srv.requests)


def test_wait_makes_one_request_per_poll(serve):
    srv, session = serve("2.42", job_seconds=0.5)
    job = session.refresh_analytics()
    srv.clear_requests()
    job.wait(timeout=20, poll_interval=0.1, max_interval=0.1)
    paths = [r.path for r in srv.requests]
    assert set(paths) == {"/api/system/tasks/ANALYTICS_TABLE/" + job.id}
    assert 2 <= len(paths) <= 12  # ~0.5 s job at 0.1 s polls


def test_timeout_carries_the_last_message(serve):
    srv, session = serve("2.42", job_seconds=30)
    job = session.refresh_analytics()
    with pytest.raises(TaskTimeoutError) as caught:
        job.wait(timeout=0.4, poll_interval=0.05)
    assert caught.value.last_message == "Analytics table update process"


def test_iter_task_notifications_and_the_latest_task(serve):
    srv, session = serve("2.42")
    job = session.refresh_analytics()
    got = list(session.iter_task_notifications(JobType.ANALYTICS_TABLE, job.id, **FAST))
    assert got[0].message == "Analytics table update process" and got[-1].completed
    latest_id, latest = session.get_latest_task("ANALYTICS_TABLE")
    assert latest_id == job.id
    assert [n.message for n in latest] == [n.message for n in reversed(got)]  # complete, not gist
    assert session.get_task_notifications("analytics_table") == latest


def test_job_starts_are_never_resent(serve):
    srv, session = serve("2.42")
    srv.fail_next(1, status=503, method="POST")
    with pytest.raises(ServerError):
        session.refresh_analytics()
    assert len(posts(srv)) == 1
    srv.conflict_next()
    with pytest.raises(ConflictError, match="already running"):
        session.refresh_analytics()
    assert len(posts(srv)) == 2


# ---------------------------------------------------------------------------
# Predictors and validation


@pytest.mark.parametrize("version", ["2.38", "2.42", "2.43"])
def test_predictors(serve, version):
    srv, session = serve(version)
    runs = session.run_predictors(datetime.date(2025, 1, 1), "2025-02-28")
    assert [(r.predictions, r.status) for r in runs] == [((12 + 24 + 6) * 2, "OK")]
    runs = session.run_predictors("2025-01-01", "2025-01-31", predictors=["a4Tz9PZk2Wq"],
                                  predictor_groups=["gP9sHqL4kRt"])
    assert [(r.predictor, r.predictor_group, r.predictions) for r in runs] == [
        ("a4Tz9PZk2Wq", None, 12), (None, "gP9sHqL4kRt", 36)]
    assert [r.path for r in posts(srv)] == [
        "/api/predictors/run", "/api/predictors/a4Tz9PZk2Wq/run",
        "/api/predictorGroups/gP9sHqL4kRt/run"]
    assert posts(srv)[0].query == {"startDate": ["2025-01-01"], "endDate": ["2025-02-28"]}
    srv.fail_predictor("b7RnXc2LpQe")
    with pytest.raises(ConflictError, match="Unable to predict Malaria cases forecast"):
        session.run_predictors("2025-01-01", "2025-01-31", predictors="b7RnXc2LpQe")


@pytest.mark.parametrize("version", ["2.38", "2.42", "2.43"])
def test_validation_analysis(serve, version):
    srv, session = serve(version)
    got = session.run_validation_analysis("ImspTQPwCqd", "2025-01-01", "2025-06-30")
    assert got and all(isinstance(v, ValidationViolation) for v in got)
    assert all(v.organisation_unit_path.startswith("/ImspTQPwCqd/") for v in got)
    assert isinstance(got[0].left_side_value, float)
    grouped = session.run_validation_analysis("ImspTQPwCqd", "2025-01-01", "2025-06-30",
                                              validation_rule_group="RmhRgOVrOnb")
    assert {v.validation_rule_id for v in grouped} <= {"sxamEpoUXb5", "ZoG4yXZi3c3"}
    with pytest.raises(BadRequest, match="No organisation unit defined"):
        session.run_validation_analysis("AAAAAAAAAAA", "2025-01-01", "2025-01-31")


def test_validation_max_results(serve):
    srv, session = serve("2.42.1")
    got = session.run_validation_analysis("ImspTQPwCqd", "2025-01-01", "2025-06-30", max_results=2)
    assert len(got) == 2
    srv2, old = serve("2.38")
    with pytest.raises(UnsupportedServerError):
        old.run_validation_analysis("ImspTQPwCqd", "2025-01-01", "2025-06-30", max_results=2)
    assert posts(srv2) == []


# ---------------------------------------------------------------------------
# Category option combos


def test_coc_generation_on_2_42(serve):
    srv, session = serve("2.42")
    state = session.wait_for_coc_generation(AGE_AND_SEX, timeout=5, poll_interval=0.05)
    assert (state.count, state.expected_count) == (4, 4)
    assert [r.path for r in srv.requests if r.path != "/api/system/info"] == [
        "/api/maintenance/categoryOptionComboUpdate/categoryCombo/" + AGE_AND_SEX,
        "/api/categoryCombos/" + AGE_AND_SEX]


def test_coc_generation_on_2_43_appears_after_the_update(serve):
    srv, session = serve("2.43", coc_generation_delay=0.3)
    before = session.get_category_combo_state(AGE_AND_SEX)
    assert (before.count, before.expected_count) == (0, 4)
    state = session.wait_for_coc_generation(AGE_AND_SEX, timeout=5, poll_interval=0.05)
    assert state.count == 4 and state.complete
    assert len([r for r in srv.requests if r.path.startswith("/api/categoryCombos/")]) >= 3
    assert "categoryOptionComboUpdate/categoryCombo/" + AGE_AND_SEX in srv.maintenance_log


def test_coc_generation_timeout_and_unknown_combo(serve):
    srv, session = serve("2.43", coc_generation_delay=10)
    with pytest.raises(TaskTimeoutError, match="0 of 4"):
        session.wait_for_coc_generation(AGE_AND_SEX, timeout=0.3, poll_interval=0.05)
    with pytest.raises(ConflictError, match="CategoryCombo does not exist"):
        session.update_category_option_combos("AAAAAAAAAAA")
    with pytest.raises(NotFound):
        session.get_category_combo_state("AAAAAAAAAAA")


@pytest.mark.parametrize("version", ["2.42", "2.43"])
def test_category_option_combo_updates(serve, version):
    srv, session = serve(version)
    summary = session.update_category_option_combos(AGE_AND_SEX)
    assert isinstance(summary, ImportSummary) and summary.status == "SUCCESS"
    assert summary.message == "Import was successful."
    assert session.update_category_option_combos() is None
    assert srv.maintenance_log[-1] == "categoryOptionComboUpdate"


# ---------------------------------------------------------------------------
# Maintenance

SIMPLE = [op for op in jobs.MAINTENANCE_OPERATIONS if not op.takes_uid]


@pytest.mark.parametrize("version", ["2.37", "2.38", "2.39", "2.41", "2.42", "2.43"])
def test_every_maintenance_operation_is_recorded(serve, version):
    srv, session = serve(version)
    relationships = session.server_version >= (2, 39)
    for op in SIMPLE:
        if op.name == "remove_soft_deleted_relationships" and not relationships:
            with pytest.raises(UnsupportedServerError):
                session.remove_soft_deleted_relationships()
            continue
        answer = getattr(session, op.name)()
        assert answer is None or isinstance(answer, str)
    old = session.server_version < (2, 41)
    expected = [
        "analyticsTablesClear", "analyticsTablesAnalyze", "expiredInvitationsClear",
        "ouPathsUpdate", "periodPruning", "zeroDataValueRemoval", "softDeletedDataValueRemoval",
        "softDeletedProgramStageInstanceRemoval" if old else "softDeletedEventRemoval",
        "softDeletedProgramInstanceRemoval" if old else "softDeletedEnrollmentRemoval",
        "softDeletedTrackedEntityInstanceRemoval" if old else "softDeletedTrackedEntityRemoval",
    ] + (["softDeletedRelationshipRemoval"] if relationships else []) + [
        "sqlViewsCreate", "sqlViewsDrop", "categoryOptionComboUpdate", "cacheClear", "appReload"]
    assert srv.maintenance_log == expected
    assert session.reload_apps() == "Apps reloaded"


@pytest.mark.parametrize("version", ["2.38", "2.42", "2.43"])
def test_data_pruning(serve, version):
    srv, session = serve(version)
    assert session.prune_organisation_unit_data("DiszpKrYNg8") == "Data was pruned successfully"
    assert session.prune_data_element_data("fbfJHSPpUQD") == "Data was pruned successfully"
    with pytest.raises(ConflictError, match="does not exist"):
        session.prune_data_element_data("AAAAAAAAAAA")
    assert srv.maintenance_log == ["dataPruning/organisationUnits/DiszpKrYNg8",
                                   "dataPruning/dataElements/fbfJHSPpUQD"]


@pytest.mark.parametrize("version, recorded", [
    ("2.38", "softDeletedTrackedEntityInstanceRemoval"),
    ("2.42", "softDeletedTrackedEntityRemoval"),
    ("2.43", "softDeletedTrackedEntityRemoval"),
])
def test_run_maintenance(serve, version, recorded):
    srv, session = serve(version)
    session.run_maintenance(cache_clear=True, analytics_table_clear=True,
                            soft_deleted_tracked_entity_removal=True, period_pruning=False)
    assert srv.maintenance_log == ["analyticsTablesClear", recorded, "cacheClear"]
