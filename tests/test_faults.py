"""Fault injection over real HTTP: every fault knob of Dhis2StandIn x every public
method family of Session.

For each pair the test asserts the exact exception (or success), how many times
the faulted request reached the server (idempotent GETs are retried by urllib3;
POSTs are never re-sent), and that the call ended within its time budget.

One stand-in (DHIS2 2.42, 0.1 s jobs) serves the whole matrix; each test resets
its fault knobs and its request log.  Sessions use timeout=0.3 s, retries=2 and
a 0.05 s cap on the retry backoff so the file runs in well under a minute.

``python -m tests.test_faults`` (from the repository root) prints the matrix.
"""
import collections
import socket
import time

import pytest

from dhis2maint import (ApiError, AuthenticationError, ConflictError, InvalidResponseError,
                        JobFailedError, ServerError, Session, TaskTimeoutError, TransportError,
                        jobs, jobstart)
from dhis2maint import session as session_module

testing = pytest.importorskip("dhis2maint.testing")

TIMEOUT = 0.3  # seconds per connect/read
RETRIES = 2
ATTEMPTS = RETRIES + 1
CHECKS = ["categories_no_options", "data_elements_aggregate_no_groups"]
BIG_CHECK = "data_elements_aggregate_no_groups"  # many issues: a long details body
OU = "DiszpKrYNg8"  # Ngelehun CHC in the stand-in's tree
AGE_AND_SEX = "t3aNCvHsoSn"
TASKS = "/api/system/tasks/ANALYTICS_TABLE/"


class FastSession(Session):
    """A Session whose waits poll every 0.05 s (the library's default is 1 s) and fail
    at the first failed poll (``outage_grace=0``): the matrix shows what one faulted
    request does; riding out outages is tested in test_hostile.py."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("outage_grace", 0)
        super().__init__(*args, **kwargs)

    def wait_for_task(self, job_type, job_id, timeout=None, poll_interval=0.05, max_interval=0.2,
                      on_notification=None):
        return super().wait_for_task(job_type, job_id, timeout=timeout,
                                     poll_interval=poll_interval, max_interval=max_interval,
                                     on_notification=on_notification)


# ---------------------------------------------------------------------------
# Method families: the first request each makes is the one the fault hits.

Family = collections.namedtuple("Family", "name method path call kind")
# kind: "get" (plain GET), "stream" (chunked GET body), "job" (job-starting POST),
# "post" (other POST)


def _fresh_version(session, ctx):
    session.server_version = None
    return session.server_version


FAMILIES = [
    Family("server_version", "GET", "/api/system/info", _fresh_version, "get"),
    Family("list_integrity_checks", "GET", "/api/dataIntegrity",
           lambda s, ctx: s.list_integrity_checks(), "get"),
    Family("integrity_report_summary", "GET", "/api/dataIntegrity/summary",
           lambda s, ctx: s.get_integrity_report(details=False), "stream"),
    Family("integrity_report_details", "GET", "/api/dataIntegrity/details",
           lambda s, ctx: s.get_integrity_report(details=True), "stream"),
    Family("iter_integrity_issues", "GET", "/api/dataIntegrity/details",
           lambda s, ctx: list(s.iter_integrity_issues()), "stream"),
    Family("get_task_notifications", "GET", TASKS + "{job}",
           lambda s, ctx: s.get_task_notifications("ANALYTICS_TABLE", ctx["job"]), "get"),
    Family("wait_for_task", "GET", TASKS + "{job}",
           lambda s, ctx: s.wait_for_task("ANALYTICS_TABLE", ctx["job"], timeout=5), "get"),
    Family("maintenance_get", "GET", "/api/maintenance/appReload",
           lambda s, ctx: s.reload_apps(), "get"),
    Family("start_integrity_run", "POST", "/api/dataIntegrity/details",
           lambda s, ctx: s.start_integrity_run(ctx["checks"], details=True), "job"),
    Family("run_integrity_checks", "POST", "/api/dataIntegrity/summary",
           lambda s, ctx: s.run_integrity_checks(ctx["checks"], timeout=5), "job"),
    Family("refresh_analytics_wait", "POST", "/api/resourceTables/analytics",
           lambda s, ctx: s.refresh_analytics().wait(timeout=5), "job"),
    Family("run_predictors", "POST", "/api/predictors/run",
           lambda s, ctx: s.run_predictors("2024-01-01", "2024-03-31"), "post"),
    Family("run_validation_analysis", "POST", "/api/dataAnalysis/validationRules",
           lambda s, ctx: s.run_validation_analysis("ImspTQPwCqd", "2024-01-01", "2024-03-31"),
           "post"),
    Family("maintenance_post", "POST", "/api/maintenance/dataPruning/organisationUnits/" + OU,
           lambda s, ctx: s.prune_organisation_unit_data(OU), "post"),
    Family("wait_for_coc_generation", "POST",
           "/api/maintenance/categoryOptionComboUpdate/categoryCombo/" + AGE_AND_SEX,
           lambda s, ctx: s.wait_for_coc_generation(AGE_AND_SEX, timeout=5, poll_interval=0.05),
           "post"),
]
BY_NAME = {f.name: f for f in FAMILIES}


# ---------------------------------------------------------------------------
# Faults and what each does to each kind of family.
#
# Expect = (exception class or None, times the faulted request reached the
# server, (least seconds, most seconds) for the whole call).

Expect = collections.namedtuple("Expect", "error count low high note")
QUICK = 2.0  # budget of a call without slow faults (jobs run 0.1 s)


def _ok(count=1, low=0.0, high=QUICK, note="ok"):
    return Expect(None, count, low, high, note)


def _fails(error, count=1, low=0.0, high=QUICK, note=None):
    return Expect(error, count, low, high, note or error.__name__)


def _transient(status):
    def expect(fam):
        if fam.method == "GET":
            return _ok(2, note="ok after 1 retry")
        return _fails(ApiError if status == 429 else ServerError, note="{} {}, sent once".format(
            "ApiError" if status == 429 else "ServerError", status))
    return expect


def _retry_after(fam):
    if fam.method == "GET":
        return _ok(2, low=1.0, high=1.0 + QUICK, note="ok after waiting Retry-After 1 s")
    return _fails(ServerError, high=0.9, note="ServerError, sent once, no wait")


def _exhausted(fam):
    return _fails(ServerError, ATTEMPTS if fam.method == "GET" else 1,
                  note="ServerError after {} tries".format(ATTEMPTS) if fam.method == "GET"
                  else "ServerError, sent once")


def _hang(fam):
    if fam.method == "GET":
        return _ok(2, low=TIMEOUT, high=TIMEOUT + QUICK, note="ok after read timeout + retry")
    error = TransportError
    return _fails(error, low=TIMEOUT, high=TIMEOUT + 1.0,
                  note="TransportError (job MAY have started)" if fam.kind == "job"
                  else "TransportError (outcome unknown)")


def _truncate(fam):
    if fam.kind == "job":
        return _fails(TransportError, note="TransportError (job MAY have started)")
    if fam.kind == "post":
        return _fails(InvalidResponseError, note="InvalidResponseError (outcome unknown)")
    return _fails(InvalidResponseError, note="InvalidResponseError (broke off)")


def _drop(fam):
    if fam.method == "GET":
        return _ok(2, note="ok after 1 retry")
    return _fails(TransportError, note="TransportError (job MAY have started)"
                  if fam.kind == "job" else "TransportError (outcome unknown)")


def _html(fam):
    return _fails(AuthenticationError, note="AuthenticationError (login page)")


def _slow(fam):
    return _ok(1, low=0.05, high=QUICK + 1.0, note="ok (slower)")


def _delay(fam):
    if fam.method == "GET":
        return _fails(TransportError, ATTEMPTS, low=ATTEMPTS * TIMEOUT,
                      high=ATTEMPTS * TIMEOUT + 1.0,
                      note="TransportError after {} timeouts".format(ATTEMPTS))
    return _fails(TransportError, 1, low=TIMEOUT, high=TIMEOUT + 1.0,
                  note="TransportError (outcome unknown), sent once")


STREAM_DEADLINE = 0.5


def _trickle(fam):
    if fam.kind == "stream" or fam.name == "run_integrity_checks":  # it reads /summary
        return _fails(TransportError, low=STREAM_DEADLINE, high=STREAM_DEADLINE + TIMEOUT + 1.0,
                      note="TransportError at stream_deadline")
    return _ok(note="ok (body not chunked)")


def _login_redirect(fam):
    return _fails(AuthenticationError, note="AuthenticationError (302 to login)")


def _refused(fam):
    return _fails(TransportError, 0, note="TransportError (nothing sent)")


def _fail_next_job(fam):
    if fam.name in ("run_integrity_checks", "refresh_analytics_wait"):
        return _fails(JobFailedError, note="JobFailedError")
    if fam.name == "start_integrity_run":
        return _ok(note="ok (failure shows on wait)")
    return _ok(note="ok (no job started)")


def _conflict(fam):
    if fam.kind == "job":
        return _fails(ConflictError, note="ConflictError, sent once")
    return _ok(note="ok (not a job start)")


def _drop_feed(fam):
    if fam.name == "wait_for_task":  # the job finished before: its feed is already gone
        return _ok(None, low=0.3, note="ok via /api/jobConfigurations after START_GRACE")
    if fam.name in ("run_integrity_checks", "refresh_analytics_wait"):
        return _ok(note="ok (job completes)")
    return _ok(note="ok (no wait)")


def _fail_check(fam):
    if fam.name == "run_integrity_checks":
        return _ok(note="ok, result count -1 + error")
    return _ok(note="ok")


Fault = collections.namedtuple("Fault", "name arm expect own_server")
Fault.__new__.__defaults__ = (False,)


def _arm_trickle(srv, session):
    srv.set_trickle(200)
    session.stream_deadline = STREAM_DEADLINE


def _arm_login_redirect(srv, session):
    srv.login_redirect = True
    session.auth = ("admin", "not-the-password")


FAULTS = [
    Fault("fail_next 502", lambda srv, s: srv.fail_next(1, 502), _transient(502)),
    Fault("fail_next 503", lambda srv, s: srv.fail_next(1, 503), _transient(503)),
    Fault("fail_next 504", lambda srv, s: srv.fail_next(1, 504, html=False), _transient(504)),
    Fault("fail_next 429", lambda srv, s: srv.fail_next(1, 429, html=False), _transient(429)),
    Fault("fail_next 503 Retry-After:1", lambda srv, s: srv.fail_next(1, 503, retry_after=1),
          _retry_after),
    Fault("fail_next 503 x3", lambda srv, s: srv.fail_next(ATTEMPTS, 503), _exhausted),
    Fault("hang_next", lambda srv, s: srv.hang_next(1), _hang),
    Fault("truncate_next", lambda srv, s: srv.truncate_next(1), _truncate),
    Fault("drop_response_next", lambda srv, s: srv.drop_response_next(1), _drop),
    Fault("html_next", lambda srv, s: srv.html_next(1), _html),
    Fault("set_delay 0.05 (slow)", lambda srv, s: srv.set_delay(0.05), _slow),
    # own_server: the delayed answers go on after the client gave up; on a server
    # of their own they cannot take the next test's faults (it is stopped).
    Fault("set_delay 1.0 (> timeout)", lambda srv, s: srv.set_delay(1.0), _delay, True),
    Fault("trickle 200 B/s", _arm_trickle, _trickle),
    Fault("login_redirect", _arm_login_redirect, _login_redirect),
    Fault("connection refused", None, _refused),
    Fault("fail_next_job", lambda srv, s: srv.fail_next_job(), _fail_next_job),
    Fault("conflict_next", lambda srv, s: srv.conflict_next(1), _conflict),
    Fault("drop_feed_after_completion",
          lambda srv, s: setattr(srv, "drop_feed_after_completion", True), _drop_feed),
    Fault("fail_check", lambda srv, s: srv.fail_check(CHECKS[0], "Simulated check failure"),
          _fail_check),
]


# ---------------------------------------------------------------------------
# fixtures


@pytest.fixture(autouse=True)
def small_backoff(monkeypatch):
    # The retry backoff (0.5 s x 2^n with jitter) is tested on its own below.
    monkeypatch.setattr(session_module._Retry, "MAX_BACKOFF", 0.05)
    # An empty task feed counts as "not started yet" for START_GRACE (60 s) before
    # /api/jobConfigurations is asked; shortened so dropped feeds resolve quickly.
    monkeypatch.setattr(jobs, "START_GRACE", 0.3)


@pytest.fixture(scope="module")
def standin(start_module_standin):
    srv = start_module_standin("2.42", job_seconds=0.1, issues={BIG_CHECK: 3000})
    setup = FastSession(srv.url, auth=("admin", "district"), timeout=5)
    # Cached results for the report and stream families, and a finished job to follow.
    setup.start_integrity_run(CHECKS, details=True).wait(timeout=10)
    setup.start_integrity_run(CHECKS, details=False).wait(timeout=10)
    job = setup.refresh_analytics()
    job.wait(timeout=10)
    # matched once here (GET /api/dataIntegrity), so the fault hits the family's own request
    checks = setup.resolve_integrity_checks(CHECKS)
    setup.close()
    return srv, {"job": job.id, "checks": checks}


@pytest.fixture
def env(standin):
    srv, ctx = standin
    srv.reset_faults()
    srv.job_seconds = 0.1
    srv.clear_requests()
    session = FastSession(srv.url, auth=("admin", "district"), timeout=TIMEOUT, retries=RETRIES)
    session.server_version = (2, 42, 0)
    yield srv, session, ctx
    srv.reset_faults()


def _closed_port_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return "http://127.0.0.1:{}".format(port)


def _hits(srv, method, path):
    return sum(1 for r in srv.requests if r.method == method and r.path == path)


# ---------------------------------------------------------------------------
# the matrix


@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_matrix(env, fault, family):
    srv, session, ctx = env
    expect = fault.expect(family)
    if fault.own_server:
        srv = testing.Dhis2StandIn(version="2.42", job_seconds=0.1).start()
        session = FastSession(srv.url, auth=("admin", "district"), timeout=TIMEOUT,
                              retries=RETRIES)
        session.server_version = (2, 42, 0)
        try:
            _run_case(srv, session, ctx, fault, family, expect)
        finally:
            srv.stop()
        return
    if fault.arm is None:  # connection refused: a port nobody listens on
        session = FastSession(_closed_port_url(), auth=("admin", "district"), timeout=TIMEOUT,
                              retries=RETRIES)
        session.server_version = (2, 42, 0)
    _run_case(srv, session, ctx, fault, family, expect)


def _run_case(srv, session, ctx, fault, family, expect):
    if fault.arm is not None:
        fault.arm(srv, session)
    path = family.path.format(job=ctx["job"])
    started = time.monotonic()
    if expect.error is None:
        result = family.call(session, ctx)
        _check_result(fault, family, result)
    else:
        with pytest.raises(expect.error) as info:
            family.call(session, ctx)
        _check_error(fault, family, info.value)
    elapsed = time.monotonic() - started
    hits = _hits(srv, family.method, path)
    assert hits == expect.count if expect.count is not None else hits >= 1, [
        (r.method, r.path) for r in srv.requests]
    assert expect.low <= elapsed <= expect.high, elapsed
    # POSTs are never repeated, whatever the fault.
    assert all(n == 1 for n in collections.Counter(
        r.path for r in srv.requests if r.method == "POST").values())


def _check_error(fault, family, err):
    text = str(err)
    assert " /api/" in text or isinstance(err, JobFailedError), text
    if isinstance(err, TransportError):
        if fault.name != "trickle 200 B/s":  # a deadline has no requests error behind it
            assert isinstance(err.__cause__, Exception)
        if family.kind == "job" and fault.name not in ("connection refused",
                                                       "trickle 200 B/s"):
            # what to look at is a follow-up, worded as a Session call (#20.6)
            assert "MAY have started" in text and err.follow_ups and "session." in text
        if fault.name == "connection refused":
            assert not err.outcome_unknown and "may have reached" not in text
        elif family.method == "POST":
            assert err.outcome_unknown or family.kind == "job"
    if isinstance(err, InvalidResponseError) and family.kind == "post":
        assert err.outcome_unknown and "reached DHIS2" in text
    if fault.name == "set_delay 1.0 (> timeout)" and family.method == "GET":
        assert "timed out" in text and "gave up after 2 retries" in text
    if fault.name == "trickle 200 B/s":
        assert "stream_deadline" in text
    if isinstance(err, ApiError) and fault.name == "fail_next 429":
        assert err.status_code == 429
    if isinstance(err, ServerError) and "html" not in fault.name and fault.name != "fail_next 504":
        assert "HTML page" in text  # nginx's error page, named as such


def _check_result(fault, family, result):
    if family.name == "run_integrity_checks":
        assert set(result.results) == set(CHECKS)
        failed = result.results[CHECKS[0]]
        if fault.name == "fail_check":
            assert failed.count == -1 and "Simulated check failure" in failed.error
        else:
            assert failed.error is None and failed.count >= 0
    elif family.name in ("refresh_analytics_wait", "wait_for_task"):
        assert result.completed
        if fault.name == "drop_feed_after_completion" and family.name == "wait_for_task":
            assert "/api/jobConfigurations" in result.message
    elif family.name == "iter_integrity_issues":
        assert sum(1 for row in result if row.check_name == BIG_CHECK) == 3000
    elif family.name == "integrity_report_details":
        assert len(result.results[BIG_CHECK].issues) == 3000
    elif family.name == "server_version":
        assert result == (2, 42, 0)


# ---------------------------------------------------------------------------
# what the matrix cannot show


def test_default_backoff_waits_between_retries(env, monkeypatch):
    srv, session, ctx = env
    monkeypatch.setattr(session_module._Retry, "MAX_BACKOFF", 30.0)
    srv.fail_next(ATTEMPTS, 503)
    started = time.monotonic()
    with pytest.raises(ServerError):
        session.list_integrity_checks()
    # urllib3: no sleep before the 1st retry, 0.5 s x 2 x jitter(0.5..1.5) before the 2nd
    assert 0.45 <= time.monotonic() - started <= 2.5
    assert _hits(srv, "GET", "/api/dataIntegrity") == ATTEMPTS


@pytest.mark.parametrize("status", [502, 504, 429])
def test_retry_after_honoured_for_other_statuses(env, status):
    srv, session, ctx = env
    srv.fail_next(1, status, retry_after=1, html=False)
    started = time.monotonic()
    assert session.list_integrity_checks()
    assert 1.0 <= time.monotonic() - started <= 1.0 + QUICK
    assert _hits(srv, "GET", "/api/dataIntegrity") == 2


def test_retry_after_is_capped():
    import urllib3

    retry = session_module.make_retry(3)
    for value, wait in (("3600", 60.0), ("5", 5.0)):
        response = urllib3.HTTPResponse(body=b"", status=503, headers={"Retry-After": value})
        assert retry.get_retry_after(response) == wait


def test_get_during_a_wait_is_retried(env):
    srv, session, ctx = env
    job = session.refresh_analytics()
    srv.hang_next(1, method="GET")  # 1st try of the 1st poll: read timeout
    srv.fail_next(1, 503, method="GET")  # 2nd try: 503; the 3rd succeeds
    final = job.wait(timeout=5)
    assert final.completed
    assert len([r for r in srv.requests if r.method == "POST"]) == 1


def test_wait_for_task_deadline(env):
    srv, session, ctx = env
    srv.job_seconds = 30
    job = session.refresh_analytics()
    started = time.monotonic()
    with pytest.raises(TaskTimeoutError) as info:
        job.wait(timeout=0.6)
    assert 0.6 <= time.monotonic() - started <= 0.6 + 0.5
    assert info.value.job_id == job.id


def test_run_integrity_checks_deadline(env):
    srv, session, ctx = env
    srv.job_seconds = 30
    started = time.monotonic()
    with pytest.raises(TaskTimeoutError):
        session.run_integrity_checks(CHECKS, timeout=0.6)
    assert time.monotonic() - started <= 0.6 + 0.5


def test_coc_generation_deadline(env):
    srv, session, ctx = env
    srv.coc_generation_delay = 30
    started = time.monotonic()
    with pytest.raises(TaskTimeoutError, match="option combos not generated"):
        session.wait_for_coc_generation("WBW7RjsApsv", expected_count=99, timeout=0.5,
                                        poll_interval=0.05)
    assert 0.5 <= time.monotonic() - started <= 0.5 + 0.5


def test_dropped_feed_on_a_server_without_job_records_times_out():
    with testing.Dhis2StandIn(version="2.40", job_seconds=0.1) as srv:
        srv.drop_feed_after_completion = True
        session = FastSession(srv.url, auth=("admin", "district"), timeout=TIMEOUT)
        job = session.refresh_analytics()
        time.sleep(0.3)  # finished: its feed is gone
        started = time.monotonic()
        with pytest.raises(TaskTimeoutError):
            job.wait(timeout=0.5)
        assert time.monotonic() - started <= 1.0


def test_stream_deadline_bounds_a_trickling_stream_after_rows_arrived(env):
    srv, session, ctx = env
    srv.set_trickle(20000)
    session.stream_deadline = 0.5
    rows = []
    started = time.monotonic()
    with pytest.raises(TransportError, match="stream_deadline"):
        for row in session.iter_integrity_issues([BIG_CHECK]):
            rows.append(row)
    assert time.monotonic() - started <= 0.5 + TIMEOUT + 1.0
    assert 0 < len(rows) < 3000  # complete rows came through before the deadline


def test_truncated_stream_yields_every_complete_row_first(env):
    srv, session, ctx = env
    srv.truncate_next(1)
    rows = []
    with pytest.raises(InvalidResponseError, match="broke off"):
        for row in session.iter_integrity_issues([BIG_CHECK]):
            rows.append(row)
    assert all(row.check_name == BIG_CHECK and row.issue.id for row in rows)


def test_post_connection_refused_is_not_outcome_unknown():
    session = FastSession(_closed_port_url(), auth=("admin", "district"), timeout=TIMEOUT,
                          retries=RETRIES)
    session.server_version = (2, 42, 0)
    with pytest.raises(TransportError) as info:
        session.refresh_analytics()
    assert not info.value.outcome_unknown
    assert "MAY have started" not in str(info.value)


# ---------------------------------------------------------------------------
# recover_job_starts


@pytest.fixture
def fast_recovery(monkeypatch):
    monkeypatch.setattr(jobstart, "RECOVERY_WAIT", 1.0)
    monkeypatch.setattr(jobstart, "RECOVERY_POLL", 0.05)


@pytest.mark.parametrize("knob", ["drop_response_next", "truncate_next"])
@pytest.mark.parametrize("version", ["2.38", "2.42"])
def test_recover_job_starts_adopts_the_one_new_job(fast_recovery, knob, version):
    with testing.Dhis2StandIn(version=version, job_seconds=0.1) as srv:
        session = FastSession(srv.url, auth=("admin", "district"), timeout=TIMEOUT,
                              recover_job_starts=True)
        session.refresh_analytics().wait(timeout=5)  # an older job already in the feed
        srv.clear_requests()
        getattr(srv, knob)(1, method="POST")
        job = session.refresh_analytics()
        started = srv.job_ids("ANALYTICS_TABLE")
        assert len(started) == 2 and job.id == started[-1]
        assert "recovered" in job.message and job.created is not None
        assert [r.method for r in srv.requests][:2] == ["GET", "POST"]
        assert _hits(srv, "POST", "/api/resourceTables/analytics") == 1
        assert job.wait(timeout=5).completed


def test_recover_job_starts_gives_up_when_nothing_started(fast_recovery):
    with testing.Dhis2StandIn(version="2.42", job_seconds=0.1) as srv:
        session = FastSession(srv.url, auth=("admin", "district"), timeout=TIMEOUT,
                              recover_job_starts=True)
        srv.hang_next(1, method="POST")  # never handled: no job
        started = time.monotonic()
        with pytest.raises(TransportError, match="MAY have started"):
            session.refresh_analytics()
        assert time.monotonic() - started <= TIMEOUT + 1.0 + 0.5
        assert srv.job_ids() == []
        assert _hits(srv, "POST", "/api/resourceTables/analytics") == 1


def test_recover_job_starts_refuses_to_guess_between_two(fast_recovery, monkeypatch):
    with testing.Dhis2StandIn(version="2.42", job_seconds=0.1) as srv:
        session = FastSession(srv.url, auth=("admin", "district"), timeout=TIMEOUT,
                              recover_job_starts=True)
        other = FastSession(srv.url, auth=("admin", "district"))
        real_json = session._json

        def racing_json(method, path, **kwargs):
            if method == "POST":
                other.refresh_analytics()  # someone else starts one at the same moment
                time.sleep(0.3)  # (done: ours is not queued behind it)
                srv.drop_response_next(1, method="POST")  # and our answer gets lost
            return real_json(method, path, **kwargs)

        monkeypatch.setattr(session, "_json", racing_json)
        with pytest.raises(TransportError, match="MAY have started"):
            session.refresh_analytics()
        assert len(srv.job_ids("ANALYTICS_TABLE")) == 2


def test_recover_job_starts_is_off_by_default_and_pickles(env):
    import pickle

    srv, session, ctx = env
    assert session.recover_job_starts is False
    srv.drop_response_next(1, method="POST")
    with pytest.raises(TransportError, match="MAY have started"):
        session.refresh_analytics()
    assert [r.method for r in srv.requests] == ["POST"]  # no feed look-up when off
    clone = pickle.loads(pickle.dumps(FastSession(srv.url, auth=("admin", "district"),
                                                  recover_job_starts=True)))
    assert clone.recover_job_starts is True


# ---------------------------------------------------------------------------


def matrix_text():
    """The fault x family matrix as a text table (what each cell asserts)."""
    short = {f.name: f.name.replace("integrity_", "").replace("_", " ") for f in FAMILIES}
    lines = ["{:<28} | {}".format("fault \\ family", " | ".join(short[f.name] for f in FAMILIES))]
    for fault in FAULTS:
        cells = []
        for fam in FAMILIES:
            e = fault.expect(fam)
            cells.append("{} [{}x]".format(e.note, "n" if e.count is None else e.count))
        lines.append("{:<28} | {}".format(fault.name, " | ".join(cells)))
    return "\n".join(lines)


if __name__ == "__main__":
    print(matrix_text())
