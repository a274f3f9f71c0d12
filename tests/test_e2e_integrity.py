"""Data integrity over real HTTP against dhis2maint.testing.Dhis2StandIn (2.36 - 2.43).

Jobs run for 0.3 s; a run on 2.41+ follows the task feed (first poll after 1 s),
on 2.37-2.40 the cached results, so each run takes about a second.
"""
import time

import pytest

from dhis2maint import (ConflictError, DataIntegritySeverity, InvalidResponseError,
                        TransportError, UnsupportedServerError, compare_reports, from_json,
                        to_json)

# Simulated time (tests/conftest.py fake_time): the stand-ins' jobs and the waits for them
# take no real seconds; requests still go over real HTTP.
pytestmark = pytest.mark.usefixtures("fake_time")

BIG = 50000


def requests_to(srv, method, path):
    return [r for r in srv.requests if r.method == method and r.path == path]


# --- listing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version, total, slow", [("2.43", 111, None), ("2.42", 111, 20),
                                                  ("2.40", 111, None), ("2.37", 39, 0)])
def test_list_checks(serve, version, total, slow):
    srv, session = serve(version)
    checks = session.list_integrity_checks()
    assert len(checks) == total == len(srv.check_names())
    assert [c.name for c in checks] == srv.check_names()
    if slow is not None:
        assert len(session.list_integrity_checks(slow=True)) == slow
    severe = session.list_integrity_checks(severity="severe")
    assert severe and all(c.severity == DataIntegritySeverity.SEVERE for c in severe)
    first_section = checks[0].section
    in_section = session.list_integrity_checks(section=first_section)
    assert in_section and all(c.section == first_section for c in in_section)
    picked = session.list_integrity_checks(checks=[checks[0].name, checks[1].name])
    assert [c.name for c in picked] == [checks[0].name, checks[1].name]


def test_list_on_236_needs_no_request(serve):
    srv, session = serve("2.36")
    checks = session.list_integrity_checks()
    assert len(checks) == 33 and {c.section for c in checks} == {"Legacy"}
    assert requests_to(srv, "GET", "/api/dataIntegrity") == []


# --- running ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.43", "2.42", "2.40", "2.38", "2.37"])
def test_default_run_covers_the_non_slow_checks(serve, version):
    srv, session = serve(version)
    expected = [c.name for c in session.list_integrity_checks() if not c.is_slow]
    seen = []
    report = session.run_integrity_checks(timeout=60, on_notification=seen.append)
    assert sorted(report.results) == sorted(expected)
    assert not report.details and all(r.issues is None for r in report)
    assert all(r.count >= 0 for r in report)
    assert seen and seen[-1].completed
    (post,) = requests_to(srv, "POST", "/api/dataIntegrity/summary")
    assert "checks" not in post.query


@pytest.mark.parametrize("version", ["2.42", "2.37"])
def test_details_run_stream_and_report_agree(serve, version):
    srv, session = serve(version)
    name = session.list_integrity_checks()[5].name
    srv.set_issue_count(name, BIG)
    report = session.run_integrity_checks(checks=[name], details=True, timeout=60)
    assert list(report.results) == [name]
    assert report[name].count == BIG == len(report[name].issues)
    started = time.monotonic()
    first_row_after = None
    rows = []
    for row in session.iter_integrity_issues(checks=[name]):
        if first_row_after is None:
            first_row_after = time.monotonic() - started
        rows.append(row)
    assert rows == list(report.issue_rows())
    assert first_row_after < 1.0
    cached = session.get_integrity_report(checks=[name])
    assert (cached.results, cached.details) == (report.results, report.details)
    assert (cached.base_url, cached.dhis2_version) == (report.base_url, report.dhis2_version)
    # saved and compared later
    assert not compare_reports(from_json(to_json(report)), report).has_changes


def test_include_slow_runs_every_check(serve):
    srv, session = serve("2.42")
    report = session.run_integrity_checks(include_slow=True, timeout=60)
    assert len(report) == 111
    (post,) = requests_to(srv, "POST", "/api/dataIntegrity/summary")
    assert len(post.query["checks"][0].split(",")) == 111


@pytest.mark.parametrize("version", ["2.42", "2.40"])
def test_a_run_reports_only_its_own_results(serve, version):
    srv, session = serve(version)
    names = [c.name for c in session.list_integrity_checks()]
    slow = [c.name for c in session.list_integrity_checks(slow=True)]
    first = session.run_integrity_checks(checks=names[:3] + slow[:1], timeout=60)
    assert sorted(first.results) == sorted(names[:3] + slow[:1])
    second = session.run_integrity_checks(checks=names[:1], timeout=60)
    assert list(second.results) == [names[0]]
    assert second[names[0]].finished_time >= first[names[0]].finished_time
    # the cache still holds all four; a default run must not report the slow one
    assert len(session.get_integrity_report(details=False)) >= 4
    default = session.run_integrity_checks(timeout=60)
    assert slow[0] not in default.results and names[1] in default.results


@pytest.mark.parametrize("version", ["2.42", "2.37"])
def test_failed_check_has_an_error_and_count_minus_one(serve, version):
    srv, session = serve(version)
    name = session.list_integrity_checks()[0].name
    srv.fail_check(name, "relation does not exist")
    report = session.run_integrity_checks(checks=[name], timeout=60)
    assert report[name].failed and report[name].count == -1
    assert "relation does not exist" in report[name].error
    details = session.run_integrity_checks(checks=[name], details=True, timeout=60)
    assert details[name].issues == [] and details[name].count == -1


def test_run_on_236_maps_the_flattened_report(serve):
    srv, session = serve("2.36")
    report = session.run_integrity_checks(details=True, timeout=60)
    assert len(report) == 33
    assert all(r.section == "Legacy" and r.count == len(r.issues) for r in report)
    selected = session.run_integrity_checks(checks=["periods_duplicates", "orgunits_orphaned"],
                                            timeout=60)
    assert list(selected.results) == ["periods_duplicates", "org_units_being_orphaned"]
    assert requests_to(srv, "GET", "/api/system/taskSummaries/DATA_INTEGRITY/" +
                       srv.job_ids("DATA_INTEGRITY")[-1])
    # reading without running: the newest report, as rows
    newest = session.get_integrity_report()
    assert sorted(newest.results) == sorted(report.results)
    assert list(session.iter_integrity_issues()) == list(newest.issue_rows())
    with pytest.raises(UnsupportedServerError):
        session.get_integrity_check_result("periods_duplicates")
    with pytest.raises(UnsupportedServerError):
        session.running_integrity_checks()


# --- single results, running and completed ----------------------------------------------------


@pytest.mark.parametrize("version", ["2.43", "2.42", "2.37"])
def test_single_check_result(serve, version):
    srv, session = serve(version)
    names = [c.name for c in session.list_integrity_checks()]
    assert session.get_integrity_check_result(names[0]) is None  # never run
    session.run_integrity_checks(checks=names[:2], details=True, timeout=60)
    result = session.get_integrity_check_result(names[0], details=True)
    assert result.name == names[0] and result.count == len(result.issues)
    assert session.get_integrity_check_result(names[0]) is None  # no summary run yet
    assert session.get_integrity_check_result("../users") is None
    assert srv.requests[-1].path == "/api/dataIntegrity/..%2Fusers/summary"


@pytest.mark.parametrize("version", ["2.43", "2.42", "2.40"])
def test_running_and_completed(serve, version):
    srv, session = serve(version, job_seconds=1.5)
    names = [c.name for c in session.list_integrity_checks()][:4]
    session.start_integrity_run(checks=names)
    time.sleep(0.2)
    assert set(session.running_integrity_checks()) & set(names)
    if version == "2.40":  # a second run while one runs: 409 on 2.37-2.40
        with pytest.raises(ConflictError):
            session.start_integrity_run(checks=names[:1])
    else:  # queued behind the first on 2.41+
        assert list(session.run_integrity_checks(checks=names[:1], timeout=60).results) == \
            names[:1]
    time.sleep(1.6)
    assert session.running_integrity_checks() == []
    assert set(names) <= set(session.completed_integrity_checks())
    assert session.completed_integrity_checks(details=True) == []


def test_running_needs_239(serve):
    _srv, session = serve("2.38")
    with pytest.raises(UnsupportedServerError):
        session.completed_integrity_checks()


# --- streaming faults ---------------------------------------------------------------------------


def _big_details(srv, session, count=BIG):
    name = session.list_integrity_checks()[3].name
    srv.set_issue_count(name, count)
    session.run_integrity_checks(checks=[name], details=True, timeout=60)
    return name


def test_breaking_out_early_leaves_the_session_usable(serve):
    srv, session = serve("2.42")
    name = _big_details(srv, session)
    rows = session.iter_integrity_issues(checks=[name])
    for index, _row in enumerate(rows):
        if index == 9:
            break
    rows.close()
    assert session.get_integrity_check_result(name) is None  # the next request works


def test_truncated_stream_raises_after_the_complete_rows(serve):
    srv, session = serve("2.42")
    name = _big_details(srv, session)
    srv.truncate_next(method="GET")
    got = []
    with pytest.raises(InvalidResponseError):
        for row in session.iter_integrity_issues(checks=[name]):
            got.append(row)
    expected = list(session.get_integrity_report(checks=[name]).issue_rows())
    assert got == expected[:len(got)]


def test_stream_deadline_with_a_trickling_server(serve):
    srv, session = serve("2.42")
    name = _big_details(srv, session, 20000)
    session.stream_deadline = 0.6
    srv.set_trickle(20000)  # bytes per second: the body would take minutes
    got = 0
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        for _row in session.iter_integrity_issues(checks=[name]):
            got += 1
    assert time.monotonic() - started < 3
    assert "stream_deadline=0.6" in str(info.value)
    assert got < 20000
    srv.set_trickle(None)
    session.stream_deadline = 60
    assert session.running_integrity_checks() == []
