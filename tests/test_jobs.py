"""Jobs, task notifications, waiting, synchronous runs and maintenance (mocked HTTP).

The waiting tests run on the shared fake clock (``polling.clock``) and a
simulated job whose feed depends on that clock, so they take milliseconds.
"""
import datetime
import json

import pytest
import responses

from dhis2maint import (ApiError, ConflictError, InvalidResponseError, JobFailedError, JobType,
                        NotFound, Notification, NotificationDataType, NotificationLevel,
                        ServerError, Session, TaskTimeoutError, UnsupportedServerError, jobs)
from dhis2maint.models import ImportSummary, Job, PredictorRun, ValidationViolation

URL = "https://dhis2.example.org"
API = URL + "/api/"
JOB_ID = "Vu1ZkG2Kb3D"
TASK_URL = API + "system/tasks/ANALYTICS_TABLE/" + JOB_ID
CONFIG_URL = API + "jobConfigurations/" + JOB_ID
BASE_TIME = datetime.datetime(2025, 3, 10, 14, 2, 20)


def make_session(version="2.42.1", **kwargs):
    session = Session(URL, token="d2pat_test", **kwargs)
    if version is not None:
        session.server_version = version
    return session


def job_reply(job_type="ANALYTICS_TABLE", job_id=JOB_ID):
    return {
        "httpStatus": "OK", "httpStatusCode": 200, "status": "OK",
        "message": "Initiated {} (1741615340000)".format(job_type),
        "response": {"responseType": "JobConfiguration", "name": job_type + " (1741615340000)",
                     "id": job_id, "created": "2025-03-10T14:02:20.000", "jobType": job_type,
                     "jobStatus": "NOT_STARTED",
                     "relativeNotifierEndpoint":
                         "/api/system/tasks/{}/{}".format(job_type, job_id)},
    }


_ids = iter(range(1, 10 ** 6))


def note(message, level="INFO", completed=False, at=0.0, category="ANALYTICS_TABLE", **extra):
    """A notification as DHIS2 serialises it, ``at`` seconds after BASE_TIME."""
    uid = "n{:010d}".format(next(_ids))
    stamp = (BASE_TIME + datetime.timedelta(seconds=at)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    body = {"id": uid, "uid": uid, "level": level, "category": category, "time": stamp,
            "message": message, "completed": completed}
    body.update(extra)
    return body


@pytest.fixture
def clock(fake_clock):
    """The shared fake clock of every wait (tests/conftest.py)."""
    return fake_clock


class FakeJob:
    """A job's feed at fake-clock time: ``events`` are (seconds after start, notification);
    a LOOP message is replaced by the next one; from ``wipe_at`` on the feed is empty."""

    def __init__(self, clock, events, wipe_at=None, url=TASK_URL):
        self.clock = clock
        self.start = clock.now
        self.events = events
        self.wipe_at = wipe_at
        self.polls = []
        responses.add_callback(responses.GET, url, callback=self._answer)

    def feed(self):
        elapsed = self.clock.now - self.start
        if self.wipe_at is not None and elapsed >= self.wipe_at:
            return []
        shown = []
        for at, notification in self.events:
            if at <= elapsed:
                if shown and shown[-1]["level"] == "LOOP":
                    shown.pop()
                shown.append(notification)
        return list(reversed(shown))

    def _answer(self, request):
        self.polls.append(self.clock.now - self.start)
        return 200, {"Content-Type": "application/json"}, json.dumps(self.feed())


def analytics_events(total=40.0):
    return [
        (3.0, note("Analytics table update process", at=3, dataType="PARAMETERS",
                   data={"lastYears": 2, "skipResourceTables": False})),
        (10.0, note("Performing pre-create table work", at=10)),
        (20.0, note("[1/3] Populating analytics_2024", level="LOOP", at=20)),
        (22.0, note("[2/3] Populating analytics_2025", level="LOOP", at=22)),
        (total, note("Analytics tables updated: 00:00:37", completed=True, at=total)),
    ]


# ---------------------------------------------------------------------------
# Triggers


@responses.activate
def test_refresh_analytics_sends_no_parameters_by_default_and_returns_a_bound_job():
    responses.add(responses.POST, API + "resourceTables/analytics", json=job_reply())
    session = make_session(version=None)
    job = session.refresh_analytics()
    assert isinstance(job, Job)
    assert (job.id, job.job_type, job.session) == (JOB_ID, JobType.ANALYTICS_TABLE, session)
    assert job.created == BASE_TIME
    assert job.relative_notifier_endpoint == "/api/system/tasks/ANALYTICS_TABLE/" + JOB_ID
    assert len(responses.calls) == 1  # no /api/system/info look-up needed
    assert "?" not in responses.calls[0].request.url


@responses.activate
def test_refresh_analytics_sends_only_true_flags_in_camel_case():
    responses.add(responses.POST, API + "resourceTables/analytics", json=job_reply())
    make_session("2.42.1").refresh_analytics(
        last_years=2, skip_resource_tables=True, skip_aggregate=True, skip_events=True,
        skip_enrollment=True, skip_org_unit_ownership=True, skip_outliers=True,
        skip_tracked_entities=True, skip_validation_results=True)
    query = responses.calls[0].request.params
    assert query == {"lastYears": "2", "skipResourceTables": "true", "skipAggregate": "true",
                     "skipEvents": "true", "skipEnrollment": "true",
                     "skipOrgUnitOwnership": "true", "skipOutliers": "true",
                     "skipTrackedEntities": "true", "skipValidationResult": "true"}


@pytest.mark.parametrize("version, flag, ok", [
    ("2.38.4", "skip_events", True),
    ("2.38.4", "skip_org_unit_ownership", False),
    ("2.39.0", "skip_org_unit_ownership", True),
    ("2.40.12", "skip_outliers", False),
    ("2.40.12", "skip_tracked_entities", False),
    ("2.41.0", "skip_outliers", True),
    ("2.41.0", "skip_tracked_entities", True),
    ("2.41.0", "skip_validation_results", False),
    ("2.41.1", "skip_validation_results", True),
    ("2.43.0", "skip_validation_results", True),
])
@responses.activate
def test_refresh_analytics_gates_parameters_by_version(version, flag, ok):
    responses.add(responses.POST, API + "resourceTables/analytics", json=job_reply())
    session = make_session(version)
    if ok:
        session.refresh_analytics(**{flag: True})
        assert len(responses.calls) == 1
    else:
        with pytest.raises(UnsupportedServerError, match=version.rsplit(".", 1)[0]):
            session.refresh_analytics(**{flag: True})
        assert len(responses.calls) == 0  # nothing was started
    # a parameter at its default is never a problem
    session.refresh_analytics(**{flag: False})


@responses.activate
def test_refresh_analytics_asks_the_version_only_for_gated_parameters():
    responses.add(responses.GET, API + "system/info", json={"version": "2.38.1"})
    responses.add(responses.POST, API + "resourceTables/analytics", json=job_reply())
    session = make_session(version=None)
    session.refresh_analytics(last_years=1, skip_events=True)
    assert [c.request.method for c in responses.calls] == ["POST"]
    with pytest.raises(UnsupportedServerError):
        session.refresh_analytics(skip_outliers=True)
    assert [c.request.method for c in responses.calls] == ["POST", "GET"]


@pytest.mark.parametrize("kwargs", [
    {"last_years": 0}, {"last_years": "2"}, {"last_years": True}, {"last_years": 1.5},
    {"skip_events": 1}, {"skip_outliers": "yes"},
])
def test_refresh_analytics_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        make_session().refresh_analytics(**kwargs)


@pytest.mark.parametrize("method, path, job_type", [
    ("refresh_resource_tables", "resourceTables", JobType.RESOURCE_TABLE),
    ("refresh_monitoring", "resourceTables/monitoring", JobType.MONITORING),
])
@responses.activate
def test_resource_table_and_monitoring_triggers(method, path, job_type):
    responses.add(responses.POST, API + path, json=job_reply(job_type.value))
    job = getattr(make_session(version=None), method)()
    assert job.job_type == job_type and job.id == JOB_ID
    assert responses.calls[0].request.url == API + path


@responses.activate
def test_job_start_on_2_38_without_response_type():
    reply = {"httpStatus": "OK", "httpStatusCode": 200, "status": "OK",
             "message": "Initiated inMemoryAnalyticsJob",
             "response": {"name": "inMemoryAnalyticsJob", "id": JOB_ID,
                          "jobType": "ANALYTICS_TABLE",
                          "jobStatus": "SCHEDULED", "created": "2023-01-01T10:00:00.000"}}
    responses.add(responses.POST, API + "resourceTables/analytics", json=reply)
    job = make_session("2.38.0").refresh_analytics()
    assert job.name == "inMemoryAnalyticsJob" and job.job_status == "SCHEDULED"


@responses.activate
def test_job_start_reply_without_id_is_an_invalid_response():
    responses.add(responses.POST, API + "resourceTables", json={"status": "OK", "message": "hm"})
    with pytest.raises(InvalidResponseError, match="no job id"):
        make_session().refresh_resource_tables()


@responses.activate
def test_job_start_post_is_never_resent_on_503_while_gets_are_retried():
    responses.add(responses.POST, API + "resourceTables", status=503)
    responses.add(responses.POST, API + "resourceTables", json=job_reply("RESOURCE_TABLE"))
    responses.add(responses.GET, TASK_URL, status=503)
    responses.add(responses.GET, TASK_URL, json=[])
    session = make_session(retries=2)
    with pytest.raises(ServerError):
        session.refresh_resource_tables()
    assert len(responses.calls) == 1
    assert session.get_task_notifications("ANALYTICS_TABLE", JOB_ID) == []
    assert len(responses.calls) == 3  # the GET was retried once


@responses.activate
def test_409_is_a_conflict_error_with_dhis2s_message():
    responses.add(responses.POST, API + "resourceTables/analytics", status=409, json={
        "httpStatus": "Conflict", "httpStatusCode": 409, "status": "ERROR",
        "message": "Job is already running.", "errorCode": "E1004"})
    with pytest.raises(ConflictError) as caught:
        make_session().refresh_analytics()
    assert caught.value.dhis2_message == "Job is already running."
    assert caught.value.error_code == "E1004"


# ---------------------------------------------------------------------------
# Notifications


@responses.activate
def test_notifications_parse_every_level_payloads_and_unknown_values():
    feed = [
        note("done", completed=True, at=9),
        note("odd", level="TRACE", category="BRAND_NEW_JOB", at=8),
        note("bad item", level="ERROR", at=7),
        note("careful", level="WARN", at=6),
        note("[1/2] x", level="LOOP", at=5),
        note("dbg", level="DEBUG", at=4),
        note("off", level="OFF", at=3),
        note("", at=1, dataType="PARAMETERS", data={"lastYears": 2, "skipTableTypes": ["EVENT"]}),
    ]
    responses.add(responses.GET, TASK_URL, json=feed)
    got = make_session().get_task_notifications(JobType.ANALYTICS_TABLE, JOB_ID)
    assert [n.message for n in got] == [f["message"] for f in feed]  # newest first, as sent
    assert [n.level for n in got] == [
        NotificationLevel.INFO, "TRACE", NotificationLevel.ERROR, NotificationLevel.WARN,
        NotificationLevel.LOOP, NotificationLevel.DEBUG, NotificationLevel.OFF,
        NotificationLevel.INFO]
    assert got[1].category == "BRAND_NEW_JOB" and not isinstance(got[1].category, JobType)
    assert got[0].category == JobType.ANALYTICS_TABLE
    assert got[0].completed and not got[1].completed
    assert got[0].time == BASE_TIME + datetime.timedelta(seconds=9)
    assert got[-1].data_type == NotificationDataType.PARAMETERS
    assert got[-1].data == {"lastYears": 2, "skipTableTypes": ["EVENT"]}
    assert got[-1].message == ""
    assert got[0].id == feed[0]["id"]


@responses.activate
def test_notifications_accept_lower_case_type_names():
    responses.add(responses.GET, TASK_URL, json=[])
    assert make_session().get_task_notifications("analytics_table", JOB_ID) == []
    assert responses.calls[0].request.url == TASK_URL


@pytest.mark.parametrize("job_type", ["ANALYTICS-TABLE", "../users", "", 42, None, "A B"])
def test_bad_job_types_are_rejected_before_any_request(job_type):
    with pytest.raises(ValueError, match="job type"):
        make_session().get_task_notifications(job_type, JOB_ID)


@pytest.mark.parametrize("job_id", ["abc", "../x/y/zzzzz", "1bcdefghijk", 12345678901])
def test_bad_job_ids_are_rejected_before_any_request(job_id):
    with pytest.raises(ValueError, match="job id"):
        make_session().get_task_notifications("ANALYTICS_TABLE", job_id)


@responses.activate
def test_malformed_notifications_are_invalid_responses():
    responses.add(responses.GET, TASK_URL, json=[{"level": "INFO", "time": "yesterday"}])
    with pytest.raises(InvalidResponseError):
        make_session().get_task_notifications("ANALYTICS_TABLE", JOB_ID)
    responses.replace(responses.GET, TASK_URL, json={"not": "a list"})
    with pytest.raises(InvalidResponseError):
        make_session().get_task_notifications("ANALYTICS_TABLE", JOB_ID)


@responses.activate
def test_without_job_id_the_most_recently_active_job_wins_and_is_read_in_full():
    older, newer = "Aaaaaaaaaa1", "Bbbbbbbbbb2"
    full = [note("finished", completed=True, at=50), note("middle", at=40), note("start", at=30)]
    # hash order (2.36-2.39): the newer job is listed second
    responses.add(responses.GET, API + "system/tasks/ANALYTICS_TABLE", json={
        older: [note("old end", completed=True, at=20), note("old start", at=1)],
        newer: [full[0], full[2]],  # gist: [newest, oldest]
    })
    responses.add(responses.GET, API + "system/tasks/ANALYTICS_TABLE/" + newer, json=full)
    session = make_session()
    job_id, got = session.get_latest_task("ANALYTICS_TABLE")
    assert job_id == newer
    assert [n.message for n in got] == ["finished", "middle", "start"]
    assert [n.message for n in session.get_task_notifications("ANALYTICS_TABLE")] == [
        "finished", "middle", "start"]


@responses.activate
def test_without_job_id_single_messages_need_no_second_request_and_empty_is_empty():
    responses.add(responses.GET, API + "system/tasks/MONITORING", json={
        "Aaaaaaaaaa1": [note("only", at=5, category="MONITORING")], "Bbbbbbbbbb2": []})
    responses.add(responses.GET, API + "system/tasks/RESOURCE_TABLE", json={})
    session = make_session()
    assert [n.message for n in session.get_task_notifications("MONITORING")] == ["only"]
    assert session.get_latest_task("RESOURCE_TABLE") == (None, [])
    assert len(responses.calls) == 2


# ---------------------------------------------------------------------------
# Waiting


@responses.activate
def test_wait_makes_one_request_per_poll_and_returns_the_final_notification(clock):
    job = FakeJob(clock, analytics_events())
    seen = []
    final = make_session().wait_for_task("ANALYTICS_TABLE", JOB_ID, on_notification=seen.append)
    assert isinstance(final, Notification) and final.completed
    assert final.message == "Analytics tables updated: 00:00:37"
    assert len(responses.calls) == len(job.polls) == len(clock.sleeps) + 1
    assert all(c.request.url == TASK_URL for c in responses.calls)
    assert seen[-1] is final
    assert clock.now - job.start - 40.0 <= 10.0  # noticed within max_interval


@responses.activate
def test_backoff_grows_by_half_up_to_max_interval_and_the_deadline_is_exact(clock):
    FakeJob(clock, [])  # never picked up
    with pytest.raises(TaskTimeoutError) as caught:
        make_session("2.40.3").wait_for_task("ANALYTICS_TABLE", JOB_ID, timeout=60)
    # x1.5 per empty poll, capped by max(2 s, 10 % of the time waited) (#13 lag bound)
    assert clock.sleeps[:4] == [1, 1.5, 2, 2]
    waited = 0.0
    for before, sleep in zip([0.0] + clock.sleeps, clock.sleeps):
        waited += before
        assert sleep <= max(2.0, 0.1 * waited) + 1e-9 and sleep <= 10
    assert sum(clock.sleeps) == pytest.approx(60)  # never slept past the deadline
    assert len(responses.calls) == len(clock.sleeps) + 1  # the last poll is at the deadline
    error = caught.value
    assert (error.job_id, error.job_type, error.last_message) == (
        JOB_ID, JobType.ANALYTICS_TABLE, None)
    assert isinstance(error, TimeoutError)


@responses.activate
def test_backoff_respects_custom_intervals(clock):
    FakeJob(clock, [])
    with pytest.raises(TaskTimeoutError):
        make_session("2.40.3").wait_for_task("ANALYTICS_TABLE", JOB_ID, timeout=60,
                                             poll_interval=2, max_interval=3)
    # 2 s until 10 % of the time waited passes 2 s, then up to max_interval
    assert clock.sleeps[:5] == [2, 2, 2, 2, 2]
    assert max(clock.sleeps) == 3 and min(clock.sleeps[:-1]) == 2


@responses.activate
def test_the_interval_resets_on_progress(clock):
    events = [(0.0, note("start", at=0)), (20.0, note("stage", at=20)),
              (200.0, note("done", completed=True, at=200))]
    job = FakeJob(clock, events)
    make_session().wait_for_task("ANALYTICS_TABLE", JOB_ID)
    assert clock.sleeps[:4] == [1, 1.5, 2, 2]
    saw = next(i for i, t in enumerate(job.polls) if t >= 20)  # the poll that saw "stage" ...
    assert clock.sleeps[saw - 1] == 2
    assert clock.sleeps[saw] == 1  # ... is followed by the short interval again
    assert clock.sleeps[saw + 1] == 1.5


@responses.activate
def test_timeout_carries_the_last_message(clock):
    FakeJob(clock, analytics_events(total=500))
    with pytest.raises(TaskTimeoutError) as caught:
        make_session().wait_for_task(JobType.ANALYTICS_TABLE, JOB_ID, timeout=30)
    assert caught.value.last_message == "[2/3] Populating analytics_2025"
    assert "[2/3] Populating analytics_2025" in str(caught.value)
    assert JOB_ID in str(caught.value)


@responses.activate
def test_timeout_zero_polls_once(clock):
    FakeJob(clock, [])
    with pytest.raises(TaskTimeoutError):
        make_session().wait_for_task("ANALYTICS_TABLE", JOB_ID, timeout=0)
    assert len(responses.calls) == 1 and clock.sleeps == []


@responses.activate
def test_completed_error_is_a_job_failure_with_dhis2s_message(clock):
    failure = note("Process failed: relation \"analytics_temp\" does not exist", level="ERROR",
                   completed=True, at=12)
    FakeJob(clock, analytics_events()[:2] + [(12.0, failure)])
    seen = []
    with pytest.raises(JobFailedError) as caught:
        make_session().wait_for_task("ANALYTICS_TABLE", JOB_ID, on_notification=seen.append)
    error = caught.value
    assert 'Process failed: relation "analytics_temp" does not exist' in str(error)
    assert (error.job_id, error.job_type) == (JOB_ID, JobType.ANALYTICS_TABLE)
    assert error.notification.message == failure["message"]
    assert seen[-1].message == failure["message"]  # reported before raising


@responses.activate
def test_completed_info_that_says_process_failed_is_a_job_failure(clock):
    FakeJob(clock, [(1.0, note("Process failed: out of memory", completed=True, at=1))])
    with pytest.raises(JobFailedError, match="out of memory"):
        make_session().wait_for_task("ANALYTICS_TABLE", JOB_ID)


@responses.activate
def test_completed_info_with_zero_failed_is_success(clock):
    FakeJob(clock, [(1.0, note("Import done: 12 successful and 0 failed items", completed=True,
                               at=1))])
    final = make_session().wait_for_task("ANALYTICS_TABLE", JOB_ID)
    assert final.message.startswith("Import done")


@pytest.mark.parametrize("message, failed", [
    ("Process failed: boom", True),
    ("Job failed: 'ANALYTICS_TABLE (1741615340000)'", True),
    ("Fetch latest software updates failed: timeout", True),
    ("Resource tables generation: failed to lock", True),
    ("Failed to generate analytics tables", True),
    ("parallel processing aborted after 3 successful and 1 failed items", True),
    ("Error: could not connect", True),
    ("Analytics tables updated: 00:03:12", False),
    ("0 failed", False),
    ("12 successful and 0 failed items", False),
    ("Import done: 10 imported, 3 failed", False),
    ("failed items: 0", False),
    ("No failed checks", False),
    ("Errors: 0", False),
    ("", False),
    (None, False),
])
def test_says_failed(message, failed):
    assert jobs.says_failed(message) is failed


@responses.activate
def test_an_error_that_is_not_completed_is_reported_and_the_wait_goes_on(clock):
    stage_error = note("skipped stage, failing item caused abort. 0 successful and 1 failed items",
                       level="ERROR", at=5)
    events = [(1.0, note("start", at=1)), (5.0, stage_error),
              (9.0, note("Analytics tables updated", completed=True, at=9))]
    FakeJob(clock, events)
    seen = []
    final = make_session().wait_for_task("ANALYTICS_TABLE", JOB_ID, on_notification=seen.append)
    assert final.message == "Analytics tables updated"
    assert [n.level for n in seen] == [NotificationLevel.INFO, NotificationLevel.ERROR,
                                       NotificationLevel.INFO]


@responses.activate
def test_on_notification_is_called_once_per_notification_in_time_order(clock):
    events = [
        (0.5, note("a", at=0.5)), (0.6, note("b", at=0.6)), (0.7, note("c", at=0.7)),
        (4.0, note("[1/3] x", level="LOOP", at=4)), (4.1, note("[2/3] y", level="LOOP", at=4.1)),
        (9.0, note("[3/3] z", level="LOOP", at=9)), (9.5, note("d", at=9.5)),
        (30.0, note("end", completed=True, at=30)),
    ]
    job = FakeJob(clock, events)
    seen = []
    make_session().wait_for_task("ANALYTICS_TABLE", JOB_ID, on_notification=seen.append)
    messages = [n.message for n in seen]
    assert len(messages) == len(set(messages))  # no duplicates
    times = [n.time for n in seen]
    assert times == sorted(times)
    # any message replaces a LOOP one: no poll saw "[1/3] x" or "[3/3] z"
    assert messages == ["a", "b", "c", "[2/3] y", "d", "end"]
    assert len(job.polls) > len(messages)  # several polls saw the same feed


@responses.activate
def test_ids_shared_by_all_messages_of_a_job_still_tell_messages_apart(clock):
    # 2.36-2.38 stamp every message of an ad-hoc job with the job id
    events = [(at, dict(note(m, completed=(m == "end"), at=at), id=JOB_ID, uid=JOB_ID))
              for at, m in [(1.0, "start"), (2.0, "middle"), (3.0, "end")]]
    FakeJob(clock, events)
    seen = []
    make_session("2.38.0").wait_for_task("ANALYTICS_TABLE", JOB_ID, on_notification=seen.append)
    assert [n.message for n in seen] == ["start", "middle", "end"]


@responses.activate
def test_iter_task_notifications_yields_new_ones_oldest_first_until_done(clock):
    FakeJob(clock, analytics_events())
    got = list(make_session().iter_task_notifications("ANALYTICS_TABLE", JOB_ID))
    assert [n.message for n in got][0] == "Analytics table update process"
    assert got[-1].completed
    assert len({n.id for n in got}) == len(got)


@responses.activate
def test_iter_task_notifications_raises_after_yielding_the_failure(clock):
    FakeJob(clock, [(1.0, note("Process failed: x", level="ERROR", completed=True, at=1))])
    got = []
    with pytest.raises(JobFailedError):
        for notification in make_session().iter_task_notifications("ANALYTICS_TABLE", JOB_ID):
            got.append(notification)
    assert [n.message for n in got] == ["Process failed: x"]


@responses.activate
def test_job_wait_delegates_to_wait_for_task(clock):
    responses.add(responses.POST, API + "resourceTables/analytics", json=job_reply())
    session = make_session()
    job = session.refresh_analytics(last_years=1)
    FakeJob(clock, analytics_events())
    seen = []
    final = job.wait(timeout=300, poll_interval=0.5, max_interval=2, on_notification=seen.append)
    assert final.completed and seen[-1] is final
    assert max(clock.sleeps) <= 2 and min(clock.sleeps) == 0.5


@pytest.mark.parametrize("kwargs", [{"timeout": -1}, {"poll_interval": 0}])
def test_wait_rejects_bad_intervals(kwargs):
    with pytest.raises(ValueError):
        make_session().wait_for_task("ANALYTICS_TABLE", JOB_ID, **kwargs)


# --- the /api/jobConfigurations fallback ------------------------------------------


def config(status, last=None, **extra):
    body = {"id": JOB_ID, "jobType": "ANALYTICS_TABLE", "enabled": False, "jobStatus": status,
            "lastExecuted": "2025-03-10T14:02:20.000"}
    if last is not None:
        body["lastExecutedStatus"] = last
        body["lastFinished"] = "2025-03-10T14:05:32.000"
    body.update(extra)
    return body


@responses.activate
def test_wiped_feed_falls_back_to_the_job_configuration_success(clock):
    job = FakeJob(clock, analytics_events()[:3], wipe_at=25)
    responses.add(responses.GET, CONFIG_URL, json=config("DISABLED", "COMPLETED"))
    seen = []
    final = make_session("2.42.0").wait_for_task("ANALYTICS_TABLE", JOB_ID,
                                                 on_notification=seen.append)
    assert final.completed and final.level == NotificationLevel.INFO
    assert "jobConfigurations" in final.message
    assert final.category == JobType.ANALYTICS_TABLE
    assert final.time == datetime.datetime(2025, 3, 10, 14, 5, 32)
    assert seen[-1] is final
    urls = [c.request.url.split("?")[0] for c in responses.calls]
    assert urls.count(CONFIG_URL) == 1 and urls[-1] == CONFIG_URL
    assert len(urls) == len(job.polls) + 1 == len(clock.sleeps) + 1  # one request per poll
    assert "fields=" in responses.calls[-1].request.url


@pytest.mark.parametrize("status, last", [("DISABLED", "FAILED"), ("DISABLED", "STOPPED"),
                                          ("FAILED", None), ("STOPPED", None)])
@responses.activate
def test_wiped_feed_falls_back_to_the_job_configuration_failure(clock, status, last):
    FakeJob(clock, analytics_events()[:2], wipe_at=15)
    responses.add(responses.GET, CONFIG_URL, json=config(status, last))
    with pytest.raises(JobFailedError) as caught:
        make_session("2.41.2").wait_for_task("ANALYTICS_TABLE", JOB_ID)
    assert (last or status) in str(caught.value)
    assert caught.value.notification is None and caught.value.job_id == JOB_ID


@responses.activate
def test_wiped_feed_and_a_deleted_job_configuration_is_a_clear_not_found(clock):
    FakeJob(clock, analytics_events()[:2], wipe_at=15)
    responses.add(responses.GET, CONFIG_URL, status=404, json={
        "httpStatus": "Not Found", "httpStatusCode": 404, "status": "ERROR",
        "message": "JobConfiguration with id Vu1ZkG2Kb3D could not be found."})
    with pytest.raises(NotFound, match="outcome cannot be known"):
        make_session().wait_for_task("ANALYTICS_TABLE", JOB_ID)


@responses.activate
def test_wiped_feed_of_a_running_job_goes_back_to_the_feed(clock):
    events = analytics_events()[:2] + [(100.0, note("Analytics tables updated", completed=True,
                                                    at=100))]
    job = FakeJob(clock, events, wipe_at=15)
    checks = []

    def config_answer(request):
        checks.append(clock.now)
        job.wipe_at = None  # the job's messages are back
        return 200, {}, json.dumps(config("RUNNING"))
    responses.add_callback(responses.GET, CONFIG_URL, callback=config_answer)
    final = make_session().wait_for_task("ANALYTICS_TABLE", JOB_ID)
    assert final.message == "Analytics tables updated"
    assert len(checks) == 1


@responses.activate
def test_an_empty_feed_at_the_start_is_not_a_wiped_feed(clock):
    # picked up only after 45 s (another job of the type was running): no fallback
    events = [(45.0, note("start", at=45)), (50.0, note("done", completed=True, at=50))]
    FakeJob(clock, events)
    final = make_session().wait_for_task("ANALYTICS_TABLE", JOB_ID)  # no CONFIG_URL registered
    assert final.message == "done"
    assert all(c.request.url == TASK_URL for c in responses.calls)


@responses.activate
def test_a_feed_empty_long_past_the_start_asks_the_job_configuration(clock):
    FakeJob(clock, [])  # finished and wiped before the first poll could see anything
    answers = [config("SCHEDULED"), config("DISABLED", "COMPLETED")]
    checked = []

    def config_answer(request):
        checked.append(clock.now)
        return 200, {}, json.dumps(answers[len(checked) - 1])
    responses.add_callback(responses.GET, CONFIG_URL, callback=config_answer)
    start = clock.now
    final = make_session().wait_for_task("ANALYTICS_TABLE", JOB_ID)
    assert "jobConfigurations" in final.message
    assert checked[0] - start >= jobs.START_GRACE
    assert checked[1] - checked[0] >= jobs.FALLBACK_RECHECK  # queued: re-checked later


@responses.activate
def test_no_fallback_before_2_41_polls_until_the_deadline(clock):
    FakeJob(clock, analytics_events()[:2], wipe_at=15)
    with pytest.raises(TaskTimeoutError) as caught:
        make_session("2.40.1").wait_for_task("ANALYTICS_TABLE", JOB_ID, timeout=200)
    assert all(c.request.url == TASK_URL for c in responses.calls)
    assert caught.value.last_message == "Performing pre-create table work"


@responses.activate
def test_version_is_looked_up_once_when_the_fallback_is_first_considered(clock):
    responses.add(responses.GET, API + "system/info", json={"version": "2.42.0"})
    FakeJob(clock, analytics_events()[:2], wipe_at=15)
    responses.add(responses.GET, CONFIG_URL, json=config("DISABLED", "COMPLETED"))
    make_session(version=None).wait_for_task("ANALYTICS_TABLE", JOB_ID)
    urls = [c.request.url.split("?")[0] for c in responses.calls]
    assert urls.count(API + "system/info") == 1


@pytest.mark.parametrize("last, ok", [("COMPLETED", True), ("STOPPED", False)])
@responses.activate
def test_a_completion_made_up_by_the_stale_rule_is_confirmed(clock, last, ok):
    loop = note("[3/7] Populating analytics_2023", level="LOOP", at=5)
    stale = dict(loop, completed=True)
    answers = iter([[], [loop], [stale], []])
    responses.add_callback(responses.GET, TASK_URL,
                           callback=lambda r: (200, {}, json.dumps(next(answers))))
    responses.add(responses.GET, CONFIG_URL, json=config("DISABLED", last))
    session = make_session("2.42.0")
    if ok:
        final = session.wait_for_task("ANALYTICS_TABLE", JOB_ID)
        assert final.message == loop["message"] and final.completed
    else:
        with pytest.raises(JobFailedError, match="STOPPED") as caught:
            session.wait_for_task("ANALYTICS_TABLE", JOB_ID)
        assert caught.value.notification.message == loop["message"]
    assert responses.calls[-1].request.url.startswith(CONFIG_URL)
    assert len(responses.calls) == 4


@responses.activate
def test_a_stale_looking_completion_is_accepted_as_is_before_2_41(clock):
    loop = note("[3/7] Populating", level="LOOP", completed=True, at=5)
    responses.add(responses.GET, TASK_URL, json=[loop])
    final = make_session("2.40.0").wait_for_task("ANALYTICS_TABLE", JOB_ID)
    assert final.completed and len(responses.calls) == 1


# ---------------------------------------------------------------------------
# Predictors and validation


PREDICTED = {"httpStatus": "OK", "httpStatusCode": 200, "status": "OK",
             "message": "Generated 12 predictions"}


@responses.activate
def test_run_all_predictors():
    responses.add(responses.POST, API + "predictors/run", json=PREDICTED)
    runs = make_session().run_predictors("2025-01-01", datetime.date(2025, 3, 31))
    assert runs == [PredictorRun(message="Generated 12 predictions", predictions=12, status="OK")]
    assert responses.calls[0].request.params == {"startDate": "2025-01-01",
                                                 "endDate": "2025-03-31"}


@responses.activate
def test_run_some_predictors_and_groups_one_request_each_in_order():
    p1, p2, g1 = "AbcdEfghIj1", "AbcdEfghIj2", "GroupGroup1"
    for path in ("predictors/{}/run".format(p1), "predictors/{}/run".format(p2)):
        responses.add(responses.POST, API + path, json=PREDICTED)
    responses.add(responses.POST, API + "predictorGroups/{}/run".format(g1),
                  json=dict(PREDICTED, message="Generated 0 predictions"))
    runs = make_session().run_predictors(datetime.datetime(2025, 1, 1, 23, 59), "2025-01-31",
                                         predictors=[p1, p2], predictor_groups=g1)
    assert [(r.predictor, r.predictor_group, r.predictions) for r in runs] == [
        (p1, None, 12), (p2, None, 12), (None, g1, 0)]
    assert [c.request.url.split("?")[0] for c in responses.calls] == [
        API + "predictors/{}/run".format(p1), API + "predictors/{}/run".format(p2),
        API + "predictorGroups/{}/run".format(g1)]
    assert responses.calls[0].request.params["startDate"] == "2025-01-01"


@responses.activate
def test_predictor_message_without_a_count():
    responses.add(responses.POST, API + "predictors/run", json={"status": "OK", "message": "ok"})
    run = make_session().run_predictors("2025-01-01", "2025-01-02")[0]
    assert run.predictions is None and run.message == "ok"


@responses.activate
def test_predictor_failure_is_a_conflict():
    responses.add(responses.POST, API + "predictors/run", status=409, json={
        "httpStatus": "Conflict", "httpStatusCode": 409, "status": "ERROR",
        "message": "Unable to predict ANC visits", "devMessage": "division by zero"})
    with pytest.raises(ConflictError, match="Unable to predict ANC visits"):
        make_session().run_predictors("2025-01-01", "2025-01-02")


@pytest.mark.parametrize("start, end, kwargs", [
    ("2025-13-01", "2025-12-31", {}),
    ("2025/01/01", "2025-12-31", {}),
    (20250101, "2025-12-31", {}),
    ("2025-02-30", "2025-12-31", {}),
    ("2025-01", "2025-12-31", {}),
    (None, "2025-12-31", {}),
    ("2025-12-31", "2025-01-01", {}),  # start after end
    ("2025-01-01", "2025-01-31", {"predictors": []}),
    ("2025-01-01", "2025-01-31", {"predictors": ["not-a-uid"]}),
    ("2025-01-01", "2025-01-31", {"predictor_groups": ["../../users"]}),
])
def test_predictor_arguments_are_validated(start, end, kwargs):
    with pytest.raises(ValueError):
        make_session().run_predictors(start, end, **kwargs)


VIOLATION = {
    "validationRuleId": "kgh54Xb9LSE", "validationRuleDescription": "ANC 1 >= ANC 2",
    "organisationUnitId": "DiszpKrYNg8", "organisationUnitDisplayName": "Ngelehun CHC",
    "organisationUnitPath": "/ImspTQPwCqd/O6uvpzGd5pu/YuQRtpLP10I/DiszpKrYNg8",
    "organisationUnitAncestorNames": "Sierra Leone / Bo / Badjia / ",
    "periodId": "202501", "periodDisplayName": "January 2025",
    "attributeOptionComboId": "HllvX50cXC0", "attributeOptionComboDisplayName": "default",
    "importance": "MEDIUM", "leftSideValue": 10.0, "operator": ">=", "rightSideValue": 12.0,
}


@responses.activate
def test_run_validation_analysis_body_and_violations():
    responses.add(responses.POST, API + "dataAnalysis/validationRules", json=[VIOLATION])
    got = make_session().run_validation_analysis(
        "ImspTQPwCqd", "2025-01-01", "2025-03-31", validation_rule_group="RWu8NvFvAKz",
        notification=True, persist=True, max_results=50)
    assert json.loads(responses.calls[0].request.body) == {
        "ou": "ImspTQPwCqd", "vrg": "RWu8NvFvAKz", "startDate": "2025-01-01",
        "endDate": "2025-03-31", "persist": True, "notification": True, "maxResults": 50}
    assert got == [ValidationViolation(
        validation_rule_id="kgh54Xb9LSE", validation_rule_description="ANC 1 >= ANC 2",
        organisation_unit_id="DiszpKrYNg8", organisation_unit_display_name="Ngelehun CHC",
        organisation_unit_path="/ImspTQPwCqd/O6uvpzGd5pu/YuQRtpLP10I/DiszpKrYNg8",
        organisation_unit_ancestor_names="Sierra Leone / Bo / Badjia / ", period_id="202501",
        period_display_name="January 2025", attribute_option_combo_id="HllvX50cXC0",
        attribute_option_combo_display_name="default", importance="MEDIUM",
        left_side_value=10.0, operator=">=", right_side_value=12.0)]


@responses.activate
def test_run_validation_analysis_minimal_body_and_no_violations():
    responses.add(responses.POST, API + "dataAnalysis/validationRules", json=[])
    assert make_session(version=None).run_validation_analysis(
        "ImspTQPwCqd", datetime.date(2025, 1, 1), datetime.date(2025, 1, 31)) == []
    assert json.loads(responses.calls[0].request.body) == {
        "ou": "ImspTQPwCqd", "startDate": "2025-01-01", "endDate": "2025-01-31",
        "persist": False, "notification": False}
    assert len(responses.calls) == 1  # no version look-up


@pytest.mark.parametrize("version, ok", [("2.41.3", False), ("2.41.4", True), ("2.42.0", False),
                                         ("2.42.1", True), ("2.43.0", True), ("2.38.2", False)])
@responses.activate
def test_validation_max_results_needs_a_server_that_has_it(version, ok):
    responses.add(responses.POST, API + "dataAnalysis/validationRules", json=[])
    session = make_session(version)
    if ok:
        session.run_validation_analysis("ImspTQPwCqd", "2025-01-01", "2025-01-31", max_results=5)
    else:
        with pytest.raises(UnsupportedServerError):
            session.run_validation_analysis("ImspTQPwCqd", "2025-01-01", "2025-01-31",
                                            max_results=5)
        assert len(responses.calls) == 0


@pytest.mark.parametrize("args, kwargs", [
    (("bad", "2025-01-01", "2025-01-31"), {}),
    (("ImspTQPwCqd", "2025-01-31", "2025-01-01"), {}),
    (("ImspTQPwCqd", "2025-01-01", "2025-01-31"), {"validation_rule_group": "x"}),
    (("ImspTQPwCqd", "2025-01-01", "2025-01-31"), {"max_results": 0}),
    (("ImspTQPwCqd", "2025-01-01", "2025-01-31"), {"persist": "yes"}),
])
def test_validation_arguments_are_validated(args, kwargs):
    with pytest.raises(ValueError):
        make_session().run_validation_analysis(*args, **kwargs)


@responses.activate
def test_validation_unexpected_shape_is_an_invalid_response():
    responses.add(responses.POST, API + "dataAnalysis/validationRules", json={"oops": 1})
    with pytest.raises(InvalidResponseError):
        make_session().run_validation_analysis("ImspTQPwCqd", "2025-01-01", "2025-01-31")


# ---------------------------------------------------------------------------
# Category option combos

COMBO = "bjDvmb4bfuf"
COMBO_URL = API + "categoryCombos/" + COMBO
COMBO_UPDATE_URL = API + "maintenance/categoryOptionComboUpdate/categoryCombo/" + COMBO
IMPORT_SUMMARIES = {
    "httpStatus": "OK", "httpStatusCode": 200, "status": "OK", "message": "Import was successful.",
    "response": {"responseType": "ImportSummaries", "status": "SUCCESS", "imported": 2,
                 "updated": 1, "deleted": 1, "ignored": 0, "total": 4, "importSummaries": [
                     {"responseType": "ImportSummary", "status": "SUCCESS",
                      "description": "Added missing category option combo: Male, <5",
                      "importCount": {"imported": 1, "updated": 0, "ignored": 0, "deleted": 0},
                      "conflicts": [], "rejectedIndexes": []},
                     {"responseType": "ImportSummary", "status": "SUCCESS",
                      "description": "Deleted obsolete category option combo: Old",
                      "importCount": {"imported": 0, "updated": 0, "ignored": 0, "deleted": 1},
                      "conflicts": [{"object": "x", "value": "in use"}]}]},
}


def combo_json(cocs, options=((2,), (2,))):
    categories = [{"id": "Cat{:08d}".format(i), "name": "C{}".format(i),
                   "categoryOptions": [{"id": "Opt{:08d}".format(i * 10 + j)} for j in range(n)]}
                  for i, (n,) in enumerate(options)]
    return {"id": COMBO, "name": "Sex and age", "categories": categories,
            "categoryOptionCombos": [{"id": "Coc{:08d}".format(i), "name": "coc {}".format(i)}
                                     for i in range(cocs)]}


@pytest.mark.parametrize("status, body", [(204, None), (200, {"httpStatus": "OK",
                                                              "httpStatusCode": 200,
                                                              "status": "OK"})])
@responses.activate
def test_update_all_category_option_combos(status, body):
    responses.add(responses.POST, API + "maintenance/categoryOptionComboUpdate", status=status,
                  json=body)
    assert make_session().update_category_option_combos() is None


@responses.activate
def test_update_one_combo_returns_an_import_summary():
    responses.add(responses.POST, COMBO_UPDATE_URL, json=IMPORT_SUMMARIES)
    summary = make_session().update_category_option_combos(COMBO)
    assert summary == ImportSummary(
        status="SUCCESS", message="Import was successful.", imported=2, updated=1, deleted=1,
        ignored=0, total=4, descriptions=["Added missing category option combo: Male, <5",
                                          "Deleted obsolete category option combo: Old"],
        conflicts=["in use"])


@responses.activate
def test_update_unknown_combo_is_a_conflict():
    responses.add(responses.POST, COMBO_UPDATE_URL, status=409, json={
        "httpStatus": "Conflict", "httpStatusCode": 409, "status": "ERROR",
        "message": "CategoryCombo does not exist: " + COMBO})
    with pytest.raises(ConflictError, match="CategoryCombo does not exist"):
        make_session().update_category_option_combos(COMBO)


@responses.activate
def test_category_combo_state():
    responses.add(responses.GET, COMBO_URL, json=combo_json(3, options=((2,), (3,), (0,))))
    state = make_session().get_category_combo_state(COMBO)
    assert (state.id, state.name, state.expected_count, state.count) == (
        COMBO, "Sex and age", 6, 3)
    assert not state.complete
    assert "categoryOptionCombos[id,name]" in responses.calls[0].request.params["fields"]


@responses.activate
def test_wait_for_coc_generation_on_a_2_42_style_server(clock):
    responses.add(responses.POST, COMBO_UPDATE_URL, json=IMPORT_SUMMARIES)
    responses.add(responses.GET, COMBO_URL, json=combo_json(4))
    state = make_session().wait_for_coc_generation(COMBO)
    assert state.count == state.expected_count == 4 and state.complete
    assert [c.request.method for c in responses.calls] == ["POST", "GET"]
    assert clock.sleeps == []


@responses.activate
def test_wait_for_coc_generation_on_a_2_43_style_server(clock):
    # the combos appear only after the update call, a few polls later
    updated = []

    def update(request):
        updated.append(clock.now)
        return 200, {}, json.dumps(IMPORT_SUMMARIES)

    def state(request):
        ready = updated and clock.now - updated[0] >= 2.5
        return 200, {}, json.dumps(combo_json(4 if ready else 0))
    responses.add_callback(responses.POST, COMBO_UPDATE_URL, callback=update)
    responses.add_callback(responses.GET, COMBO_URL, callback=state)
    got = make_session("2.43.0").wait_for_coc_generation(COMBO, timeout=10)
    assert got.count == 4
    assert [c.request.method for c in responses.calls] == ["POST", "GET", "GET", "GET", "GET"]
    assert clock.sleeps == [1.0, 1.0, 1.0]


@responses.activate
def test_wait_for_coc_generation_with_an_expected_count_and_a_timeout(clock):
    responses.add(responses.POST, COMBO_UPDATE_URL, json=IMPORT_SUMMARIES)
    responses.add(responses.GET, COMBO_URL, json=combo_json(4))
    with pytest.raises(TaskTimeoutError) as caught:
        make_session().wait_for_coc_generation(COMBO, expected_count=5, timeout=3,
                                               poll_interval=2)
    assert caught.value.job_id == COMBO
    assert caught.value.last_message == "4 of 5 category option combos present"
    assert sum(clock.sleeps) == pytest.approx(3)


@pytest.mark.parametrize("kwargs", [{"category_combo": "nope"}, {"expected_count": -1},
                                    {"expected_count": "4"}, {"poll_interval": 0}])
def test_wait_for_coc_generation_arguments_are_validated(kwargs):
    args = dict({"category_combo": COMBO}, **kwargs)
    with pytest.raises(ValueError):
        make_session().wait_for_coc_generation(**args)


# ---------------------------------------------------------------------------
# Maintenance

SIMPLE_OPS = [op for op in jobs.MAINTENANCE_OPERATIONS
              if not op.takes_uid and op.name != "update_category_option_combos"]
OK_MESSAGE = {"httpStatus": "OK", "httpStatusCode": 200, "status": "OK"}


def test_the_operation_table_is_complete_and_each_method_is_documented():
    names = [op.name for op in jobs.MAINTENANCE_OPERATIONS]
    assert len(names) == len(set(names)) == 18
    for op in jobs.MAINTENANCE_OPERATIONS:
        method = getattr(Session, op.name)
        doc = method.__doc__.strip()
        assert ("/api/maintenance/" + op.path.split("{")[0]) in " ".join(doc.split()), op.name
        assert doc.startswith("DESTRUCTIVE") is op.destructive, op.name
    assert "softDeletedTrackedEntityRemoval" in jobs.MAINTENANCE_FLAGS


def test_each_maintenance_method_is_written_out_with_its_endpoint_and_older_name():
    # fifteen plain methods, each findable by name (no methods made at run time): no
    # parameters, a docstring naming its endpoint and the name older servers use
    import inspect
    import re

    from dhis2maint import versions

    for op in SIMPLE_OPS:
        method = getattr(Session, op.name)
        assert method.__name__ == op.name and method.__qualname__.endswith("." + op.name)
        assert list(inspect.signature(method).parameters) == ["self"], op.name
        doc = re.sub(r"\s+", " ", method.__doc__)
        assert "/api/maintenance/{}".format(op.path) in doc, op.name
        older = versions.MAINTENANCE_NAMES.get(("path", op.path), ())
        if len(older) > 1:  # the name servers before the tracker rename use
            assert "before 2.41: ``{}``".format(older[1][1]) in doc, op.name
    source = inspect.getsource(jobs)
    assert all("def {}(self)".format(op.name) in source for op in SIMPLE_OPS)


@pytest.mark.parametrize("op", SIMPLE_OPS, ids=lambda op: op.name)
@pytest.mark.parametrize("status, body, expected", [
    (204, None, None),  # 2.36-2.42
    (200, dict(OK_MESSAGE), None),  # 2.43
    (200, dict(OK_MESSAGE, message="Apps reloaded"), "Apps reloaded"),
    (200, "", None),  # 2.43 analyticsTablesClear: 200, empty body
])
@responses.activate
def test_every_maintenance_operation_path_method_and_answers(op, status, body, expected):
    kwargs = {"body": body} if isinstance(body, str) else {"json": body}
    responses.add(op.http_method, API + "maintenance/" + op.path, status=status, **kwargs)
    assert getattr(make_session("2.42.0"), op.name)() == expected
    assert len(responses.calls) == 1
    assert responses.calls[0].request.method == op.http_method


@pytest.mark.parametrize("name, path", [
    ("prune_organisation_unit_data", "dataPruning/organisationUnits/"),
    ("prune_data_element_data", "dataPruning/dataElements/"),
])
@responses.activate
def test_data_pruning(name, path):
    uid = "DiszpKrYNg8"
    responses.add(responses.POST, API + "maintenance/" + path + uid,
                  json=dict(OK_MESSAGE, message="Data was pruned successfully"))
    assert getattr(make_session(), name)(uid) == "Data was pruned successfully"
    with pytest.raises(ValueError):
        getattr(make_session(), name)("../../x")
    responses.add(responses.POST, API + "maintenance/" + path + "AAAAAAAAAAA", status=409, json={
        "httpStatus": "Conflict", "httpStatusCode": 409, "status": "ERROR",
        "message": "Data could not be pruned"})
    with pytest.raises(ConflictError, match="Data could not be pruned"):
        getattr(make_session(), name)("AAAAAAAAAAA")


@pytest.mark.parametrize("version, name, path", [
    ("2.38.1", "remove_soft_deleted_events", "softDeletedProgramStageInstanceRemoval"),
    ("2.40.2", "remove_soft_deleted_enrollments", "softDeletedProgramInstanceRemoval"),
    ("2.37.9", "remove_soft_deleted_tracked_entities", "softDeletedTrackedEntityInstanceRemoval"),
    ("2.41.0", "remove_soft_deleted_events", "softDeletedEventRemoval"),
    ("2.39.0", "remove_soft_deleted_relationships", "softDeletedRelationshipRemoval"),
])
@responses.activate
def test_maintenance_paths_of_older_versions(version, name, path):
    responses.add(responses.POST, API + "maintenance/" + path, status=204)
    assert getattr(make_session(version), name)() is None
    assert responses.calls[0].request.url == API + "maintenance/" + path


def test_relationship_removal_needs_2_39():
    with pytest.raises(UnsupportedServerError, match="2.39"):
        make_session("2.38.4").remove_soft_deleted_relationships()


@responses.activate
def test_maintenance_failures_are_typed_errors():
    responses.add(responses.POST, API + "maintenance/cacheClear", status=500)
    responses.add(responses.POST, API + "maintenance/sqlViewsCreate",
                  json={"status": "ERROR", "message": "view x failed"})
    responses.add(responses.POST, API + "maintenance/sqlViewsDrop", body="<html>oops</html>",
                  content_type="text/plain")
    session = make_session()
    with pytest.raises(ServerError):
        session.clear_cache()
    with pytest.raises(ApiError, match="view x failed"):
        session.create_sql_views()
    with pytest.raises(InvalidResponseError):
        session.drop_sql_views()


@responses.activate
def test_run_maintenance_sends_only_true_flags_in_dhis2s_names():
    responses.add(responses.POST, API + "maintenance", status=204)
    assert make_session().run_maintenance(analytics_table_clear=True, cacheClear=True,
                                          soft_deleted_event_removal=False,
                                          softDeletedTrackedEntityRemoval=True) is None
    assert responses.calls[0].request.params == {
        "analyticsTableClear": "true", "cacheClear": "true",
        "softDeletedTrackedEntityRemoval": "true"}


@responses.activate
def test_run_maintenance_translates_flags_for_older_servers():
    responses.add(responses.POST, API + "maintenance", status=204)
    make_session("2.38.0").run_maintenance(soft_deleted_tracked_entity_removal=True,
                                           soft_deleted_event_removal=True)
    assert responses.calls[0].request.params == {
        "softDeletedTrackedEntityInstanceRemoval": "true", "softDeletedEventRemoval": "true"}
    with pytest.raises(UnsupportedServerError):
        make_session("2.38.0").run_maintenance(soft_deleted_relationship_removal=True)


@pytest.mark.parametrize("flags", [{}, {"cache_clear": False}, {"drop_everything": True},
                                   {"cacheClear": "true"}])
def test_run_maintenance_rejects_bad_flags(flags):
    with pytest.raises(ValueError):
        make_session().run_maintenance(**flags)
