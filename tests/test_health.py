"""Scheduler health and doctor: the pure functions, then end to end on the stand-in.

Rules from scheduler-and-health.md §4 (DHIS2 source): stuck = RUNNING with lastAlive
older than jobsRescheduleAfterMinutes (store@2.42:595-623) on 2.41+, a RUNNING row
without a process (SchedulingController.java@2.38:68-74) on 2.37-2.40; overdue =
secondsToNextExecutionTime < -60 (SchedulerEntry.java@2.41:68) on 2.41+; Housekeeping
DHIS2rocks1 every 20 s (JobType.java@2.41:120-131); lastAnalyticsTableSuccess epoch
default on 2.42+ (SystemSettings.java@2.42:377).
"""
import datetime

import pytest

from dhis2maint import versions
from dhis2maint.doctor import refused_actions
from dhis2maint.health import (authority_checks, clock_skew, cron_period, evaluate_scheduler,
                               lacking_features)
from dhis2maint.models import FollowUp, JobConfiguration, SchedulerHealth

NOW = datetime.datetime(2025, 3, 10, 14, 0, 0)
H = datetime.timedelta(hours=1)


def job(id="UsrJob00001", **kw):
    kw.setdefault("name", "Job " + id)
    kw.setdefault("job_type", "MONITORING")
    kw.setdefault("enabled", True)
    kw.setdefault("configurable", True)
    kw.setdefault("job_status", "SCHEDULED")
    kw.setdefault("last_executed_status", "COMPLETED")
    kw.setdefault("cron_expression", "0 0 6 ? * *")
    kw.setdefault("last_executed", NOW - 2 * H)
    return JobConfiguration(id=id, **kw)


def kinds(health):
    return [(f.kind, f.severity, f.job_id) for f in health.findings]


# --- pure functions -------------------------------------------------------------------


def test_healthy_jobs_no_findings():
    health = evaluate_scheduler([job()], NOW, (2, 40), running_types=[],
                                system_info={"lastAnalyticsTableSuccess": "2025-03-10T03:00:00.000"})
    # 2.40 expects the 2.37+ system jobs: all missing here
    assert {f.kind for f in health.findings} == {"missing_system_job"}
    assert isinstance(health, SchedulerHealth) and health.jobs_checked == 1


def test_failed_finding_with_error_codes():
    health = evaluate_scheduler([job(last_executed_status="FAILED", error_codes="E5002 E7600")],
                                NOW, (2, 42), scheduler_entries=[])
    failed = [f for f in health.findings if f.kind == "failed"][0]
    assert failed.severity == "SEVERE" and failed.error_codes == ["E5002", "E7600"]
    assert "E5002 E7600" in failed.message
    # what to do is data; Python's wording names the Session calls
    assert FollowUp("run_job_configuration", (("job_id", "UsrJob00001"), ("wait", True)),
                    "run it again") in failed.follow_ups
    assert "session.run_job_configuration('UsrJob00001', wait=True)" in failed.what_to_do


def test_failed_disabled_job_is_only_a_warning():
    health = evaluate_scheduler([job(last_executed_status="FAILED", enabled=False)], NOW, (2, 40))
    assert ("failed", "WARNING", "UsrJob00001") in kinds(health)


@pytest.mark.parametrize("alive,stuck", [(NOW - datetime.timedelta(minutes=11), True),
                                         (NOW - datetime.timedelta(minutes=2), False),
                                         (None, True)])
def test_stuck_by_heartbeat_241(alive, stuck):
    config = job(job_status="RUNNING", last_alive=alive, last_executed=NOW - H)
    health = evaluate_scheduler([config], NOW, (2, 41), scheduler_entries=[])
    assert (("stuck", "SEVERE", "UsrJob00001") in kinds(health)) == stuck


def test_stuck_row_without_process_238():
    config = job(job_status="RUNNING", job_type="ANALYTICS_TABLE")
    assert ("stuck", "WARNING", "UsrJob00001") in kinds(
        evaluate_scheduler([config], NOW, (2, 38), running_types=[]))
    assert "stuck" not in [f.kind for f in evaluate_scheduler(
        [config], NOW, (2, 38), running_types=["ANALYTICS_TABLE"]).findings]


def test_running_longer_than_usual():
    config = job(job_status="RUNNING", job_type="ANALYTICS_TABLE", last_executed=NOW - 3 * H,
                 last_runtime_execution="0:40:00.000")
    health = evaluate_scheduler([config], NOW, (2, 40), running_types=["ANALYTICS_TABLE"])
    finding = [f for f in health.findings if f.kind == "stuck"][0]
    assert "RUNNING for 3.0 h" in finding.message
    assert finding.follow_ups[-1].action == "cancel_job"
    assert finding.follow_ups[-1].arg("job_type") == "ANALYTICS_TABLE"
    assert "session.cancel_job(job_type='ANALYTICS_TABLE')" in finding.what_to_do
    short = job(job_status="RUNNING", job_type="ANALYTICS_TABLE", last_executed=NOW - H,
                last_runtime_execution="0:40:00.000")
    assert not evaluate_scheduler([short], NOW, (2, 40),
                                  running_types=["ANALYTICS_TABLE"]).findings[:0] or \
        "stuck" not in [f.kind for f in evaluate_scheduler(
            [short], NOW, (2, 40), running_types=["ANALYTICS_TABLE"]).findings]


def test_overdue_uses_servers_seconds_on_241():
    config = job(next_execution_time=NOW + H)  # a lie the server's own count overrides
    entries = [{"name": "x", "secondsToNextExecutionTime": -600, "sequence": [{"id": config.id}]}]
    health = evaluate_scheduler([config], NOW, (2, 42), scheduler_entries=entries)
    assert ("overdue", "SEVERE", config.id) in kinds(health)
    entries[0]["secondsToNextExecutionTime"] = -30  # one tick late: fine
    assert "overdue" not in [f.kind for f in evaluate_scheduler(
        [config], NOW, (2, 42), scheduler_entries=entries).findings]


def test_overdue_by_period_before_241():
    late = job(last_executed=NOW - 3 * 24 * H)
    assert ("overdue", "WARNING", late.id) in kinds(evaluate_scheduler([late], NOW, (2, 40)))
    assert "overdue" not in [f.kind for f in evaluate_scheduler(
        [job(last_executed=NOW - 20 * H)], NOW, (2, 40)).findings]


def test_overdue_stored_next_time_236():
    config = job(next_execution_time=NOW - 5 * H, last_executed=NOW - 20 * H)
    assert ("overdue", "WARNING", config.id) in kinds(evaluate_scheduler([config], NOW, (2, 36)))


def test_server_time_not_client_clock():
    # A server 9 hours ahead of UTC writing local times: compared with its own serverDate,
    # a job that ran 2 hours ago (server time) is fine whatever the client clock says.
    server_now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + \
        datetime.timedelta(hours=9)
    config = job(last_executed=server_now - 2 * H, next_execution_time=server_now + 20 * H)
    health = evaluate_scheduler([config], server_now, (2, 36))
    assert "overdue" not in [f.kind for f in health.findings]


def test_disabled_and_missing_system_jobs():
    configs = [job("BFa3jDsbtdO", name="Data statistics", job_type="DATA_STATISTICS",
                   configurable=False, enabled=False)]
    health = evaluate_scheduler(configs, NOW, (2, 36))
    assert ("disabled_system_job", "WARNING", "BFa3jDsbtdO") in kinds(health)
    missing = [f.message for f in health.findings if f.kind == "missing_system_job"]
    assert len(missing) == 5 and any("pd6O228pqr0" in m for m in missing)
    # a disabled user job is not a finding
    assert not evaluate_scheduler([job(enabled=False)], NOW, (2, 36)).findings[:0] and \
        [f for f in evaluate_scheduler([job(enabled=False)], NOW, (2, 36)).findings
         if f.job_id == "UsrJob00001"] == []


def test_scheduler_dead_and_missing_housekeeping():
    hk = job("DHIS2rocks1", name="Housekeeping", job_type="HOUSEKEEPING", configurable=False,
             cron_expression=None, delay=20, last_executed=NOW - datetime.timedelta(minutes=30))
    health = evaluate_scheduler([hk], NOW, (2, 42), scheduler_entries=[])
    assert ("scheduler_dead", "CRITICAL", "DHIS2rocks1") in kinds(health)
    assert health.worst == "CRITICAL" and not health.ok
    no_hk = evaluate_scheduler([], NOW, (2, 42), scheduler_entries=[])
    assert any(f.kind == "missing_system_job" and f.severity == "CRITICAL"
               for f in no_hk.findings)


def test_run_once_rows_ignored_on_241():
    once = job("Once0000001", scheduling_type="ONCE_ASAP", cron_expression=None,
               last_executed_status="FAILED")
    assert not [f for f in evaluate_scheduler([once], NOW, (2, 42), scheduler_entries=[]).findings
                if f.job_id == "Once0000001"]


@pytest.mark.parametrize("value,kind", [("1970-01-01T00:00:00.000", "analytics_never"),
                                        (None, "analytics_never"),
                                        ("2025-03-08T02:00:00.000", "analytics_stale")])
def test_analytics_findings(value, kind):
    info = {} if value is None else {"lastAnalyticsTableSuccess": value}
    assert kind in [f.kind for f in evaluate_scheduler([], NOW, (2, 42), scheduler_entries=[],
                                                       system_info=info).findings]


def test_findings_sorted_worst_first_and_at_least():
    configs = [job(last_executed_status="FAILED"), job("UsrJob00002", enabled=False,
                                                       configurable=False)]
    health = evaluate_scheduler(configs, NOW, (2, 40))
    ranks = [f.severity for f in health.findings]
    assert ranks[0] == "SEVERE"
    assert [f.kind for f in health.at_least("severe")] == ["failed"]


@pytest.mark.parametrize("cron,period", [("0 0 3 ? * *", 86400), ("0 0/15 * * * *", 900),
                                         ("0 0 * * * *", 3600), ("0 0 5 ? * MON", 7 * 86400),
                                         ("0 0 1 1 * ?", 31 * 86400), ("bad", None)])
def test_cron_period(cron, period):
    assert cron_period(cron) == period


def test_cron_period_delay():
    assert cron_period(None, 20) == 20.0


def test_authority_checks_per_version():
    checks = {c.name: c for c in authority_checks(["ALL"], (2, 40))}
    # hasRole('F_PERFORM_MAINTENANCE') only on <= 2.41: ALL is not enough
    deletion = checks["authority: validation result deletion"]
    assert deletion.status == "warn" and "ALL is not enough" in deletion.detail
    assert checks["authority: job cancel"].status == "skip"  # 2.41+
    assert checks["authority: integrity"].status == "pass"
    new = {c.name: c for c in authority_checks(["ALL"], (2, 42))}
    assert all(c.status == "pass" for c in new.values())


def test_authority_checks_need_makes_failure():
    checks = {c.name: c for c in authority_checks(["F_RUN_VALIDATION"], (2, 42),
                                                  need=["integrity"])}
    assert checks["authority: integrity"].status == "fail"
    integrity = checks["authority: integrity"]
    # what is refused is data (Session methods) each face words, not CLI text (#20)
    assert "refused (HTTP 403)" in integrity.detail and "integrity run" not in integrity.detail
    assert refused_actions(integrity) == ("run_integrity_checks", "get_integrity_report",
                                          "iter_integrity_issues")
    assert refused_actions(checks["authority: validation notifications"]) == ()
    assert "clear_cache" in refused_actions(checks["authority: maintenance"])
    assert checks["authority: predictors"].status == "warn"
    assert checks["authority: validation notifications"].status == "pass"
    with pytest.raises(ValueError):
        authority_checks([], (2, 42), need=["nonsense"])


def test_clock_skew():
    assert clock_skew("Mon, 10 Mar 2025 14:00:30 GMT", 1741615200.0, 1741615200.0) == 30.5
    assert clock_skew(None, 0, 0) is None and clock_skew("garbage", 0, 0) is None


def test_lacking_features():
    assert lacking_features((2, 43)) == [] and lacking_features((2, 42)) == []
    lacks = lacking_features((2, 36))
    assert any("/api/scheduling" in t for t in lacks)
    # derived from the version table (#20.4): no drifted row ("integrity metrics"
    # was listed though nothing used it), every line one of the table's descriptions
    assert not any("metrics" in t for t in lacks)
    assert set(lacks) <= {f.description for f in versions.FEATURES.values()}
    assert lacking_features((2, 40)) == [
        "task notifications for summary/details integrity runs",
        "stored run-once jobs: GET /api/jobConfigurations/{id} knows ad-hoc runs",
        "a job configuration's executedBy and errorCodes", "a running job's heartbeat (lastAlive)",
        "cancel one running job by its id",
        "secondsToNextExecutionTime in /api/scheduler (exact overdue detection)"]


# --- end to end -------------------------------------------------------------------------

EXPECTED = {
    "2.36": {("failed", "UsrMetaSyn1"), ("stuck", "UsrAnalyt1c"), ("overdue", "UsrResTab1e"),
             ("disabled_system_job", "YvAwAmrqAtN"), ("analytics_stale", None)},
    "2.40": {("failed", "UsrMetaSyn1"), ("stuck", "UsrAnalyt1c"), ("overdue", "UsrResTab1e"),
             ("disabled_system_job", "YvAwAmrqAtN"), ("analytics_stale", None)},
}
EXPECTED["2.42"] = EXPECTED["2.43"] = EXPECTED["2.40"]


@pytest.mark.parametrize("version", ["2.36", "2.40", "2.42", "2.43"])
def test_scheduler_health_end_to_end(serve, version):
    srv, session = serve(version)
    health = session.scheduler_health()
    assert {(f.kind, f.job_id) for f in health.findings} == EXPECTED[version]
    paths = {r.path for r in srv.requests}
    minor = int(version.split(".")[1])
    assert ("/api/scheduler" in paths) == (minor >= 41)
    assert ("/api/scheduling/running/types" in paths) == (37 <= minor <= 40)
    srv.scheduler.reset(healthy=True)
    assert session.scheduler_health().findings == []


def test_scheduler_dead_end_to_end(serve):
    srv, session = serve("2.42")
    srv.scheduler.reset(healthy=True)
    srv.scheduler.scheduler_dead = True
    srv.scheduler.jobs["DHIS2rocks1"]["last"] -= 3600
    assert [f.kind for f in session.scheduler_health().findings] == ["scheduler_dead"]


@pytest.mark.parametrize("offset", [-11 * 3600, 9 * 3600])
def test_health_in_server_time_whatever_its_zone(serve, offset):
    srv, session = serve("2.40")
    srv.scheduler.zone_offset = offset
    srv.scheduler.reset(healthy=True)
    health = session.scheduler_health()
    assert health.findings == []
    assert abs((health.server_time - datetime.datetime.now()).total_seconds() - offset) < 120


def test_scheduler_health_now_override(serve):
    srv, session = serve("2.40")
    srv.scheduler.reset(healthy=True)
    later = datetime.datetime.now() + datetime.timedelta(days=4)
    kinds_ = {f.kind for f in session.scheduler_health(now=later).findings}
    assert {"overdue", "analytics_stale"} <= kinds_


@pytest.mark.parametrize("version", ["2.36", "2.40", "2.42", "2.43"])
def test_whoami(serve, version):
    srv, session = serve(version)
    srv.authorities["admin"] = ["F_PERFORM_MAINTENANCE", "F_RUN_VALIDATION"]
    user = session.whoami()
    assert user.username == "admin" and user.authorities == ["F_PERFORM_MAINTENANCE",
                                                              "F_RUN_VALIDATION"]
    assert not user.superuser
    me = [r for r in srv.requests if r.path == "/api/me"][-1]
    assert ("userCredentials[username]" in me.query["fields"][0]) == (version == "2.36")


@pytest.mark.parametrize("version", ["2.36", "2.40", "2.42", "2.43"])
def test_doctor_user_lacking_authority(serve, version):
    srv, session = serve(version)
    srv.scheduler.reset(healthy=True)
    srv.authorities["admin"] = ["F_RUN_VALIDATION", "M_dhis-web-app-management"]
    report = session.doctor(need=["integrity"])
    by = {c.name: c for c in report.checks}
    assert by["reachable"].status == "pass" and by["credentials"].status == "pass"
    assert by["tls"].status == "skip" and "n/a" in by["tls"].detail
    assert by["authority: integrity"].status == "fail"
    assert "`" not in by["authority: integrity"].detail
    assert refused_actions(by["authority: integrity"])[0] == "run_integrity_checks"
    assert "F_PERFORM_MAINTENANCE" in by["authority: integrity"].fix
    assert by["authority: scheduler admin"].status == "warn"
    assert by["authority: validation"].status == "pass"
    assert by["scheduler"].status == "pass"
    assert not report.ok and [c.name for c in report.failed] == ["authority: integrity"]
    assert "district" not in repr(report)
    lacks = by["version"].detail
    assert ("lacks" in lacks) == (version in ("2.36", "2.40"))


def test_doctor_bad_credentials(serve):
    srv, _ = serve("2.42")
    from dhis2maint import Session
    report = Session(srv.url, auth=("admin", "wrong-Pw-77"), retries=0).doctor()
    by = {c.name: c for c in report.checks}
    assert by["reachable"].status == "pass" and by["credentials"].status == "fail"
    assert "wrong-Pw-77" not in repr(report) and "scheduler" not in by


def test_doctor_unreachable():
    import socket

    from dhis2maint import Session
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    report = Session("http://127.0.0.1:%d" % port, auth=("a", "b"), retries=0,
                     timeout=2).doctor()
    assert [c.status for c in report.checks] == ["fail"]


def test_doctor_clock_skew_and_scheduler_findings(serve):
    srv, session = serve("2.42")
    srv.scheduler.clock_skew = 1200.0
    report = session.doctor()
    by = {c.name: c for c in report.checks}
    assert by["clock"].status == "fail" and "ahead" in by["clock"].detail
    assert by["scheduler"].status == "fail" and "stuck" in by["scheduler"].detail


def test_doctor_tls_check_against_https(tls_server):
    """The TLS check reads the certificate's expiry over a real TLS connection."""
    from dhis2maint import Session

    url, cert = tls_server(401, days=40)
    session = Session(url, auth=("a", "b"), verify=str(cert), retries=0, timeout=5)
    report = session.doctor()
    by = {c.name: c for c in report.checks}
    assert by["tls"].status == "pass" and "expires in 40 days" in by["tls"].detail
    assert by["credentials"].status == "fail"


def test_odd_scheduler_entries_are_ignored_not_fatal():
    entries = [1, {"secondsToNextExecutionTime": "soon", "sequence": [{"id": "UsrJob00001"}]},
               {"secondsToNextExecutionTime": -999, "sequence": "UsrJob00001"}]
    health = evaluate_scheduler([job()], NOW, (2, 42), scheduler_entries=entries)
    assert "overdue" not in [f.kind for f in health.findings]


@pytest.mark.parametrize("path,body", [
    ("system/info", {"version": "2.42.0"}),                      # no serverDate
    ("jobConfigurations", {"jobConfigurations": [1, 2]}),        # not objects
    ("jobConfigurations", {"pager": {}}),                        # no list
    ("scheduler", {"not": "a list"}),
])
def test_scheduler_health_hostile_shapes_are_typed_errors(path, body):
    import responses

    from dhis2maint import InvalidResponseError, Session
    good = {
        "system/info": {"version": "2.42.0", "serverDate": "2025-03-10T14:00:00.000"},
        "jobConfigurations": {"jobConfigurations": []},
        "scheduler": [],
    }
    good[path] = body
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for name, value in good.items():
            mock.add(responses.GET, "https://dhis2.example.org/api/" + name, json=value)
        session = Session("https://dhis2.example.org", token="d2pat_x", retries=0)
        session.server_version = "2.42.0"
        with pytest.raises(InvalidResponseError):
            session.scheduler_health()


# --- every simulated version, 2.36-2.43: the default "bad morning" ------------------------

EVERY_VERSION = ["2.36", "2.37", "2.38", "2.39", "2.40", "2.41", "2.42", "2.43"]


@pytest.mark.parametrize("version", EVERY_VERSION)
def test_bad_morning_findings_every_version(serve, version):
    srv, session = serve(version)
    minor = int(version.split(".")[1])
    health = session.scheduler_health()
    found = {(f.kind, f.job_id): f for f in health.findings}
    new = minor >= 41
    assert set(found) == {("failed", "UsrMetaSyn1"), ("stuck", "UsrAnalyt1c"),
                          ("overdue", "UsrResTab1e"), ("disabled_system_job", "YvAwAmrqAtN"),
                          ("analytics_stale", None)}
    paths = {r.path for r in srv.requests}
    # what each generation reads besides /api/jobConfigurations
    assert ("/api/scheduler" in paths) == new
    assert ("/api/scheduling/running/types" in paths) == (37 <= minor <= 40)

    failed = found[("failed", "UsrMetaSyn1")]
    assert failed.severity == "SEVERE"
    assert failed.error_codes == (["E5002", "E7600"] if new else [])  # errorCodes: 2.41+

    stuck = found[("stuck", "UsrAnalyt1c")]
    if minor == 36:  # a disabled job left RUNNING (SchedulerStart.java@2.36:135-142)
        assert stuck.severity == "WARNING" and "is disabled but marked RUNNING" in stuck.message
    elif minor <= 40:  # a RUNNING row no process backs (SchedulingController.java@2.38:68-74)
        assert stuck.severity == "WARNING"
        assert "no ANALYTICS_TABLE process runs" in stuck.message
        assert "DHIS2 {}".format(version) in stuck.message
    else:  # heartbeat 45 min old > jobsRescheduleAfterMinutes (store@2.42:595-623)
        assert stuck.severity == "SEVERE" and "heartbeat (lastAlive) is 45 min old" in \
            stuck.message
        assert "/revert" in stuck.what_to_do

    overdue = found[("overdue", "UsrResTab1e")]
    if minor == 36:  # the persisted nextExecutionTime is in the past
        assert overdue.severity == "WARNING" and "was due at" in overdue.message
    elif minor <= 40:  # next time is computed from now: the gap since lastExecuted tells
        assert overdue.severity == "WARNING" and "last ran" in overdue.message
    else:  # the server's own secondsToNextExecutionTime
        assert overdue.severity == "SEVERE" and "secondsToNextExecutionTime" in overdue.message

    disabled = found[("disabled_system_job", "YvAwAmrqAtN")]
    # what DHIS2 answers a change of a system job: 422 on 2.36/2.37, 409 from 2.38
    assert ("HTTP 422" in disabled.what_to_do) == (minor <= 37)
    assert ("(409)" in disabled.what_to_do) == (minor >= 38)
    assert "3.0 days old" in found[("analytics_stale", None)].message
    # Housekeeping exists (and runs) only on 2.41+: never missing or dead here
    assert not any(f.kind in ("missing_system_job", "scheduler_dead") for f in health.findings)


@pytest.mark.parametrize("version", EVERY_VERSION)
def test_missing_version_specific_system_jobs(serve, version):
    # ACCOUNT_EXPIRY_ALERT is a system job from 2.37, SYSTEM_VERSION_UPDATE_CHECK from 2.38
    # (SchedulerStart.java@2.37/@2.38): without them, only those versions report them missing
    srv, session = serve(version)
    minor = int(version.split(".")[1])
    for uid in ("fUWM1At1TUx", "vt21671bgno"):
        srv.scheduler.jobs.pop(uid, None)
    missing = {f.message.split("(")[1].split(",")[0]: f
               for f in session.scheduler_health().findings if f.kind == "missing_system_job"}
    expected = set()
    if minor >= 37:
        expected.add("ACCOUNT_EXPIRY_ALERT")
    if minor >= 38:
        expected.add("SYSTEM_VERSION_UPDATE_CHECK")
    assert set(missing) == expected
    for finding in missing.values():
        assert finding.severity == "WARNING"
        # 2.41+ Housekeeping re-creates them by UID within 20 s; before, startup by name
        assert ("within 20 s" in finding.what_to_do) == (minor >= 41)


def test_whoami_lives_beside_the_doctor():
    # #20.5/#20.6: doctor, whoami and the authority table in doctor.py, the scheduler's
    # health in health.py; the names stay importable from dhis2maint.health
    from dhis2maint import Session, doctor, health

    assert Session.whoami.__module__ == Session.doctor.__module__ == "dhis2maint.doctor"
    assert Session.scheduler_health.__module__ == "dhis2maint.health"
    assert health.authority_checks is doctor.authority_checks
    assert health.FEATURE_AUTHORITIES is doctor.FEATURE_AUTHORITIES


def test_whoami_model_comes_from_the_converter():
    # /api/me -> UserInfo through convert.py's structure hook (was built by hand)
    from dhis2maint import convert
    from dhis2maint.models import UserInfo

    old = convert.structure({"id": "u1", "userCredentials": {"username": "admin"},
                             "name": "Admin", "authorities": ["F_B", "F_A"]}, UserInfo)
    assert (old.username, old.display_name, old.authorities) == ("admin", "Admin", ["F_A", "F_B"])
    new = convert.structure({"username": "admin", "displayName": "Admin A"}, UserInfo)
    assert new.username == "admin" and new.authorities == []
