"""End-to-end tests of dhis2maint.testing.Dhis2StandIn over real HTTP (requests / raw sockets only)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest
import requests

from dhis2maint.testing import DEFAULT_TOKEN, Dhis2StandIn

# Simulated time (tests/conftest.py fake_time): the stand-ins' jobs and the waits for them
# take no real seconds; requests still go over real HTTP.
pytestmark = pytest.mark.usefixtures("fake_time")

AUTH = ("admin", "district")
UID = re.compile(r"^[A-Za-z][A-Za-z0-9]{10}$")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$")


@pytest.fixture
def make(start_standin):
    return start_standin


def api(srv, method, path, **kw):
    kw.setdefault("auth", AUTH)
    kw.setdefault("timeout", 15)
    return requests.request(method, srv.url + "/api/" + path, **kw)


def start_job(srv, path, **kw):
    r = api(srv, "POST", path, **kw)
    assert r.status_code == 200, r.text
    return r.json()["response"]


def wait_feed(srv, job_type, job_id, timeout=10.0):
    """Poll the task feed until its newest message says completed; returns the feed."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        feed = api(srv, "GET", "system/tasks/%s/%s" % (job_type, job_id)).json()
        if feed and feed[0]["completed"]:
            return feed
        time.sleep(0.03)
    raise AssertionError("job %s did not complete" % job_id)


# --- system, auth -----------------------------------------------------------------------------

def test_system_info_versions_and_api_prefix(make):
    srv = make(version="2.42")
    assert srv.url.startswith("http://127.0.0.1:") and not srv.url.endswith("/")
    info = api(srv, "GET", "system/info").json()
    assert info["version"] == "2.42.0" and srv.version == "2.42"
    assert len(info["revision"]) == 7 and TIME.match(info["buildTime"])
    assert api(srv, "GET", "42/system/info").json()["version"] == "2.42.0"
    assert api(srv, "GET", "system/info?fields=version,revision").json().keys() == {"version", "revision"}
    assert api(srv, "GET", "44/system/info").status_code == 404
    assert api(make(version="2.43-SNAPSHOT"), "GET", "system/info").json()["version"] == "2.43-SNAPSHOT"
    assert api(make(version="2.42.3.1"), "GET", "system/info").json()["version"] == "2.42.3.1"
    with pytest.raises(ValueError):
        Dhis2StandIn(version="2.35")


def test_auth_basic_tokens_and_401(make):
    srv = make(users={"admin": "district", "bob": "pw"}, tokens={DEFAULT_TOKEN: "admin", "d2pat_bob": "bob"})
    assert api(srv, "GET", "me").json()["username"] == "admin"
    assert api(srv, "GET", "me", auth=("bob", "pw")).json()["username"] == "bob"
    for scheme in ("ApiToken", "Bearer"):
        r = api(srv, "GET", "me", auth=None, headers={"Authorization": scheme + " d2pat_bob"})
        assert r.json()["username"] == "bob"
    for kw in ({"auth": ("admin", "wrong")}, {"auth": None},
               {"auth": None, "headers": {"Authorization": "ApiToken nope"}}):
        r = api(srv, "GET", "system/info", **kw)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == 'Basic realm="DHIS2"'
        assert r.json() == {"httpStatus": "Unauthorized", "httpStatusCode": 401, "status": "ERROR",
                            "message": "Unauthorized"}


def test_login_redirect_and_login_page(make):
    srv = make()
    srv.login_redirect = True
    r = api(srv, "GET", "system/info", auth=None, allow_redirects=False)
    assert r.status_code == 302
    assert r.headers["Location"] == srv.url + "/dhis-web-commons/security/login.action"
    page = requests.get(r.headers["Location"], timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "j_username" in page.text
    assert api(srv, "GET", "system/info").status_code == 200


def test_authorities_403(make):
    srv = make()
    srv.authorities["admin"] = ["F_VIEW_ONLY"]
    r = api(srv, "POST", "dataIntegrity/summary")
    assert r.status_code == 403
    assert r.json() == {"httpStatus": "Forbidden", "httpStatusCode": 403, "status": "ERROR",
                        "message": "Access is denied, requires one Authority from [ALL, F_PERFORM_MAINTENANCE]"}
    assert api(srv, "GET", "dataIntegrity").status_code == 200  # any user
    assert api(srv, "POST", "predictors/run?startDate=2024-01-01&endDate=2024-02-01").status_code == 403
    srv.authorities["admin"] = ["F_PERFORM_MAINTENANCE", "F_PREDICTOR_RUN"]
    assert api(srv, "POST", "dataIntegrity/summary").status_code == 200
    assert api(srv, "POST", "predictors/run?startDate=2024-01-01&endDate=2024-02-01").status_code == 200
    assert api(srv, "POST", "dataAnalysis/validationRules", json={"ou": "ImspTQPwCqd"}).status_code == 403
    assert api(srv, "GET", "me").json()["authorities"] == ["F_PERFORM_MAINTENANCE", "F_PREDICTOR_RUN"]


def test_unknown_path_and_method(make):
    srv = make()
    r = api(srv, "GET", "nothingHere")
    assert r.status_code == 404 and r.json()["httpStatusCode"] == 404
    r = api(srv, "DELETE", "dataIntegrity")
    assert r.status_code == 405 and r.json()["status"] == "ERROR"


# --- check catalogue ----------------------------------------------------------------------------

def test_check_list_242(make):
    checks = api(make(), "GET", "dataIntegrity").json()
    assert len(checks) == 111
    assert sum(c["isSlow"] for c in checks) == 20 and sum(c["isProgrammatic"] for c in checks) == 15
    assert sum(c["severity"] == "WARNING" for c in checks) == 74
    first = checks[0]
    assert list(first) == ["name", "displayName", "section", "sectionOrder", "severity", "description",
                           "introduction", "recommendation", "issuesIdType", "isSlow", "isProgrammatic", "code"]
    assert first["name"] == "categories_no_options" and first["code"] == "CNO"
    by_name = {c["name"]: c for c in checks}
    identical = by_name["indicators_with_identical_formulas"]
    assert "issuesIdType" not in identical and identical["section"] == "Other"
    assert identical["isSlow"] and identical["sectionOrder"] == 0
    assert len({c["code"] for c in checks}) == 111


def test_check_filters_and_name_matching(make):
    srv = make()

    def names(query):
        return [c["name"] for c in api(srv, "GET", "dataIntegrity?" + query).json()]

    assert names("checks=CNO") == ["categories_no_options"]
    assert names("checks=Categories-No-Options") == ["categories_no_options"]
    assert names("checks=CATEGORIES-NO-OPTIONS") == []  # all caps: taken as a code
    assert names("checks=DATA*") == []
    assert names("checks=program_rules*") == [n for n in names("") if n.startswith("program_rules")]
    assert set(names("checks=*exclusive*")) == {
        "organisation_units_violating_exclusive_group_sets", "data_elements_violating_exclusive_group_sets",
        "indicators_violating_exclusive_group_sets"}
    assert names("checks=CNO,nope,orgunits_orphaned") == ["categories_no_options", "orgunits_orphaned"]
    assert names("checks=CNO,orgunits_orphaned&checks=datasets_empty") == ["datasets_empty"]  # no split
    assert len(names("section=Categories")) == 20 and names("section=categories") == []
    assert len(names("slow=true")) == 20 and len(names("slow=false")) == 91
    assert len(names("programmatic=true&slow=true")) == 15
    assert api(srv, "GET", "dataIntegrity?slow=maybe").status_code == 400


def test_check_list_243(make):
    checks = api(make(version="2.43"), "GET", "dataIntegrity").json()
    names = [c["name"] for c in checks]
    assert len(checks) == 111
    assert "tracked_entity_attributes_trigram_index_overview" in names
    assert "push_analysis_no_recipients" not in names and "tracker_geometry_invalid_srid" not in names
    assert sum(c["isSlow"] and not c["isProgrammatic"] for c in checks) == 3


# --- integrity runs (2.39+) ------------------------------------------------------------------------

def test_summary_run_feed_results_and_sets(make):
    srv = make(job_seconds=0.4)
    before = time.time()
    r = api(srv, "POST", "dataIntegrity/summary?checks=CNO,program_rules*")
    assert r.status_code == 200
    msg = r.json()
    assert msg["message"].startswith("Initiated DATA_INTEGRITY (")
    job = msg["response"]
    assert job["responseType"] == "JobConfiguration" and job["jobType"] == "DATA_INTEGRITY"
    assert job["jobParameters"] == {"type": "SUMMARY", "checks": ["CNO", "program_rules*"]}
    assert UID.match(job["id"]) and job["relativeNotifierEndpoint"] == "/api/system/tasks/DATA_INTEGRITY/" + job["id"]
    assert r.headers["Location"] == srv.url + "/api/dataIntegrity/summary?checks=CNO,program_rules*"
    expected = ["categories_no_options"] + [n for n in srv.check_names() if n.startswith("program_rules")]
    assert sorted(api(srv, "GET", "dataIntegrity/summary/running").json()) == sorted(expected)
    feed = wait_feed(srv, "DATA_INTEGRITY", job["id"])
    # DATA_INTEGRITY is not a notifying job type: start and end messages are empty strings
    assert [(n["level"], n["message"], n["completed"]) for n in feed] == [("INFO", "", True), ("INFO", "", False)]
    assert feed[1]["dataType"] == "PARAMETERS" and feed[1]["data"] == job["jobParameters"]
    assert all(TIME.match(n["time"]) and n["category"] == "DATA_INTEGRITY" for n in feed)
    assert time.time() - before >= 0.35
    assert api(srv, "GET", "dataIntegrity/summary/running").json() == []
    assert sorted(api(srv, "GET", "dataIntegrity/summary/completed").json()) == sorted(expected)
    summary = api(srv, "GET", "dataIntegrity/summary?checks=CNO").json()
    entry = summary["categories_no_options"]
    assert list(entry)[-5:] == ["code", "startTime", "finishedTime", "count", "percentage"]
    assert entry["averageExecutionTime"] >= 0 and isinstance(entry["percentage"], float)
    assert api(srv, "GET", "dataIntegrity/details?checks=CNO").json() == {}  # details cache is separate
    status = api(srv, "GET", "jobConfigurations/" + job["id"]).json()
    assert status["jobStatus"] == "DISABLED" and status["lastExecutedStatus"] == "COMPLETED"


def test_default_run_skips_slow_and_timeout_waits(make):
    srv = make(job_seconds=1.0)
    job = start_job(srv, "dataIntegrity")  # 2.42: plain POST = SUMMARY of the 91 non-slow checks
    assert job["jobParameters"] == {"type": "SUMMARY", "checks": []}
    running = api(srv, "GET", "dataIntegrity/summary/running").json()
    slow = {c["name"] for c in api(srv, "GET", "dataIntegrity?slow=true").json()}
    assert 80 <= len(running) <= 91 and not slow.intersection(running)
    assert api(srv, "GET", "dataIntegrity/summary?checks=orgunits_orphaned&timeout=0").json() == {}
    got = api(srv, "GET", "dataIntegrity/summary?timeout=5000&checks=orgunits_orphaned,datasets_empty").json()
    assert set(got) == {"orgunits_orphaned", "datasets_empty"}
    wait_feed(srv, "DATA_INTEGRITY", job["id"])
    assert len(api(srv, "GET", "dataIntegrity/summary").json()) == 91


def test_verbose_notifications_loop_messages(make):
    srv = make(job_seconds=1.0)
    srv.verbose_notifications = True
    job = start_job(srv, "dataIntegrity/details?checks=program_rules*")
    seen = set()
    deadline = time.time() + 5
    while time.time() < deadline:
        feed = api(srv, "GET", "system/tasks/DATA_INTEGRITY_DETAILS/" + job["id"]).json()
        assert sum(n["level"] == "LOOP" for n in feed) <= 1  # a LOOP message replaces the previous one
        seen.update(n["message"] for n in feed if n["level"] == "LOOP")
        if feed and feed[0]["completed"]:
            break
        time.sleep(0.02)
    assert any(re.match(r"^\[0/\d+\] ", m) for m in seen) and len(seen) >= 3
    assert [n.get("message") for n in feed] == [None, "Data Integrity details checks", "Data integrity check"]


def test_details_shapes_body_wins_and_single_check(make):
    srv = make(issues={"orgunits_orphaned": 3, "indicators_with_invalid_numerator": 2,
                       "indicators_with_identical_formulas": 2, "datasets_empty": 0})
    r = api(srv, "POST", "dataIntegrity/details?checks=nothing",
            json=["orgunits_orphaned", "IWIN", "indicators_with_identical_formulas", "datasets_empty"])
    job = r.json()["response"]
    assert job["jobType"] == "DATA_INTEGRITY_DETAILS"
    assert job["jobParameters"] == {"checks": ["orgunits_orphaned", "IWIN", "indicators_with_identical_formulas",
                                               "datasets_empty"]}
    assert "/api/dataIntegrity/details?checks=" in r.headers["Location"]
    wait_feed(srv, "DATA_INTEGRITY_DETAILS", job["id"])
    details = api(srv, "GET", "dataIntegrity/details").json()
    assert set(details) == {"orgunits_orphaned", "indicators_with_invalid_numerator",
                            "indicators_with_identical_formulas", "datasets_empty"}
    orphaned = details["orgunits_orphaned"]
    assert list(orphaned)[-3:] == ["startTime", "finishedTime", "issues"]
    assert len(orphaned["issues"]) == 3 and all(UID.match(i["id"]) and i["name"] for i in orphaned["issues"])
    assert len({i["id"] for i in orphaned["issues"]}) == 3
    for issue in details["indicators_with_invalid_numerator"]["issues"]:
        assert issue["name"].endswith(":" + issue["id"]) and issue["comment"] and issue["refs"] == []
    for issue in details["indicators_with_identical_formulas"]["issues"]:
        assert "id" not in issue and len(issue["refs"]) >= 2 and issue["refs"] == sorted(issue["refs"])
    assert details["datasets_empty"]["issues"] == []
    one = api(srv, "GET", "dataIntegrity/orgunits_orphaned/details")
    assert one.headers["Transfer-Encoding"] == "chunked" and one.json() == orphaned
    assert api(srv, "GET", "dataIntegrity/IWIN/details").json()["name"] == "indicators_with_invalid_numerator"
    empty = api(srv, "GET", "dataIntegrity/orgunits_orphaned/summary")
    assert empty.status_code == 200 and empty.content == b""
    summary = start_job(srv, "dataIntegrity/summary?checks=orgunits_orphaned,IWIN")
    wait_feed(srv, "DATA_INTEGRITY", summary["id"])
    s = api(srv, "GET", "dataIntegrity/summary").json()
    assert s["orgunits_orphaned"]["count"] == 3 and "percentage" in s["orgunits_orphaned"]
    assert s["indicators_with_invalid_numerator"]["count"] == 2
    assert "percentage" not in s["indicators_with_invalid_numerator"]  # programmatic


def test_fail_check_and_item_error(make):
    srv = make()
    srv.fail_check("datasets_empty", "relation does not exist")
    job = start_job(srv, "dataIntegrity/summary?checks=datasets_empty,orgunits_orphaned")
    feed = wait_feed(srv, "DATA_INTEGRITY", job["id"])
    assert ("ERROR", "relation does not exist", False) in [(n["level"], n["message"], n["completed"]) for n in feed]
    assert feed[0]["level"] == "INFO"  # a failed check does not fail the job
    entry = api(srv, "GET", "dataIntegrity/datasets_empty/summary").json()
    assert entry["count"] == -1 and "percentage" not in entry
    assert entry["error"] == "Check failed because an exception was thrown: relation does not exist"
    job = start_job(srv, "dataIntegrity/details?checks=datasets_empty")
    wait_feed(srv, "DATA_INTEGRITY_DETAILS", job["id"])
    details = api(srv, "GET", "dataIntegrity/datasets_empty/details").json()
    assert details["issues"] == [] and details["error"].startswith("Check failed")
    assert list(details)[-2:] == ["error", "issues"]


def test_metrics(make):
    srv = make(issues={"datasets_empty": 4})
    wait_feed(srv, "DATA_INTEGRITY", start_job(srv, "dataIntegrity/summary?checks=datasets_empty")["id"])
    text = api(srv, "GET", "dataIntegrity/metrics").text
    assert '# TYPE dhis_data_integrity_issues_count_total gauge' in text
    assert 'dhis_data_integrity_issues_count_total{check="datasets_empty",severity="WARNING",' \
           'object_type="dataSets"} 4' in text
    assert api(make(version="2.41"), "GET", "dataIntegrity/metrics").status_code == 404


# --- memory: millions of issues are streamed ----------------------------------------------------------

def _stream_details(srv, name):
    wait_feed(srv, "DATA_INTEGRITY_DETAILS", start_job(srv, "dataIntegrity/details?checks=" + name)["id"])
    total, tail = 0, b""
    with api(srv, "GET", "dataIntegrity/%s/details" % name, stream=True) as r:
        assert r.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in r.headers
        for chunk in r.iter_content(65536):
            total += len(chunk)
            tail = (tail + chunk)[-300:]
    return total, tail


def test_large_details_streamed_with_flat_memory_tracemalloc(make):
    srv = make(job_seconds=0.05, issues={"datasets_empty": 200000})
    tracemalloc.start()
    try:
        total, tail = _stream_details(srv, "datasets_empty")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > 200000 * 45 and tail.endswith(b' 200000"}]}')
    assert peak < 5 * 1024 * 1024, peak  # the body is ~10 MB


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc to read the RSS")
def test_million_issues_rss_stays_flat(make):
    def rss_kb():
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith("VmRSS")).split()[1])

    srv = make(job_seconds=0.05)
    srv.set_issue_count("datasets_empty", 1000000)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kb())
            done.wait(0.01)

    before = rss_kb()
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        total, tail = _stream_details(srv, "datasets_empty")
    finally:
        done.set()
        sampler.join()
    assert total > 50 * 1000 * 1000 and tail.endswith(b' 1000000"}]}')
    assert peak[0] - before < 20 * 1024, (before, peak[0])  # MB-sized growth at most, not ~53 MB


# --- legacy and mixed versions --------------------------------------------------------------------------

def test_legacy_236_report(make):
    srv = make(version="2.36", issues={"data_elements_without_data_sets": 2, "indicators_with_identical_formulas": 1,
                                       "org_units_violating_exclusive_group_sets": 1,
                                       "indicators_with_invalid_numerator": 1})
    assert api(srv, "GET", "dataIntegrity").status_code == 405
    assert api(srv, "POST", "dataIntegrity/summary").status_code == 404
    r = api(srv, "POST", "dataIntegrity?checks=ignored")
    assert r.json()["message"] == "Initiated runAsyncDataIntegrity" and "Location" not in r.headers
    job = r.json()["response"]
    assert "jobParameters" not in job and "responseType" not in job and job["jobStatus"] == "RUNNING"
    pending = api(srv, "GET", "system/taskSummaries/DATA_INTEGRITY/" + job["id"])
    assert pending.status_code == 200 and pending.content == b"null"
    feed = wait_feed(srv, "DATA_INTEGRITY", job["id"])
    assert [n["message"] for n in feed][1] == "Starting data integrity job"
    assert re.match(r"^Data integrity checks completed in \d+\.\d{6} sec\.$", feed[0]["message"])
    assert all(n["level"] == "INFO" and "dataType" not in n and n["id"] == job["id"] for n in feed)
    report = api(srv, "GET", "system/taskSummaries/DATA_INTEGRITY/" + job["id"]).json()
    assert len(report) == 33
    assert len(report["dataElementsWithoutDataSet"]) == 2
    assert all(":" not in s for s in report["dataElementsWithoutDataSet"])  # display names only
    assert len(report["indicatorsWithIdenticalFormulas"]) == 1
    assert isinstance(report["indicatorsWithIdenticalFormulas"][0], list)
    key, values = next(iter(report["organisationUnitsViolatingExclusiveGroupSets"].items()))
    assert re.match(r"^.+:[A-Za-z][A-Za-z0-9]{10}$", key) and values and ":" not in values[0]
    assert list(report["invalidIndicatorNumerators"].values())[0]
    assert api(srv, "GET", "system/taskSummaries/DATA_INTEGRITY").json() == {job["id"]: report}


def test_mixed_237(make):
    srv = make(version="2.37", issues={"org_units_without_groups": 2, "data_elements_without_data_sets": 1})
    checks = api(srv, "GET", "dataIntegrity").json()
    assert len(checks) == 39
    legacy = checks[0]
    assert legacy == {"name": "data_elements_without_data_sets", "displayName": "data_elements_without_data_sets",
                      "section": "Legacy", "severity": "WARNING", "description": "data elements without data sets"}
    assert "sectionOrder" not in checks[-1] and checks[-1]["name"].startswith("categories_")
    r = api(srv, "POST", "dataIntegrity/summary?checks=org_units_without*,categories_no_options")
    job = r.json()["response"]
    assert job["name"] == "runSummariesCheck" and job["jobType"] == "DATA_INTEGRITY"
    assert job["jobParameters"] == {"checks": ["org_units_without*", "categories_no_options"], "type": "SUMMARY"}
    conflict = api(srv, "POST", "dataIntegrity/details")
    assert conflict.status_code == 409
    assert conflict.json()["message"] == "Data integrity check is already running"
    assert api(srv, "GET", "dataIntegrity/summary/running").status_code == 404  # 2.39+
    got = api(srv, "GET", "dataIntegrity/summary?timeout=5000&checks=org_units_without_groups,categories_no_options")
    entry = got.json()["org_units_without_groups"]
    assert entry["count"] == 2 and "startTime" not in entry and "percentage" not in entry
    assert "percentage" in got.json()["categories_no_options"]
    assert api(srv, "GET", "system/tasks/DATA_INTEGRITY/" + job["id"]).json() == []  # NoopJobProgress
    time.sleep(0.35)
    r = api(srv, "POST", "dataIntegrity?checks=org_units_without_groups,data_elements_without_data_sets")
    assert r.json()["message"] == "Initiated runDataIntegrity"
    report_job = r.json()["response"]
    assert r.headers["Location"].endswith("/api/dataIntegrity/details?checks=org_units_without_groups,"
                                          "data_elements_without_data_sets")
    assert api(srv, "GET", "system/taskSummaries/DATA_INTEGRITY/" + report_job["id"]).content == b""
    wait_feed(srv, "DATA_INTEGRITY", report_job["id"])
    report = api(srv, "GET", "system/taskSummaries/DATA_INTEGRITY/" + report_job["id"]).json()
    assert set(report) == {"organisationUnitsWithoutGroups", "dataElementsWithoutDataSet"}
    assert all(re.match(r"^.+:[A-Za-z][A-Za-z0-9]{10}$", s) for s in report["organisationUnitsWithoutGroups"])
    details = api(srv, "GET", "dataIntegrity/org_units_without_groups/details").json()
    assert len(details["issues"]) == 2 and details["issues"][0]["refs"] == []


def test_240_conflict_and_241_queue(make):
    old = make(version="2.40")
    job = start_job(old, "dataIntegrity/summary?checks=CNO")
    assert re.match(r"^DATA_INTEGRITY_\d+$", job["name"]) and job["jobStatus"] == "SCHEDULED"
    r = api(old, "POST", "dataIntegrity/summary?checks=CNO")
    assert r.status_code == 409 and r.json()["errorCode"] == "E1004"
    assert api(old, "POST", "dataIntegrity/details?checks=CNO").status_code == 200  # other job type
    assert api(old, "GET", "jobConfigurations/" + job["id"]).status_code == 404

    new = make(version="2.41", job_seconds=0.4)
    first = start_job(new, "dataIntegrity/summary?checks=CNO")
    second = start_job(new, "dataIntegrity/summary?checks=CNO")
    assert "responseType" not in second and second["name"].startswith("DATA_INTEGRITY (")
    conf = api(new, "GET", "jobConfigurations/" + second["id"]).json()
    assert conf["jobStatus"] == "SCHEDULED" and conf["lastExecutedStatus"] == "NOT_STARTED"
    assert api(new, "GET", "system/tasks/DATA_INTEGRITY/" + second["id"]).json() == []
    assert api(new, "GET", "jobConfigurations/" + first["id"]).json()["jobStatus"] == "RUNNING"
    wait_feed(new, "DATA_INTEGRITY", first["id"])
    time.sleep(0.05)
    assert api(new, "GET", "jobConfigurations/" + second["id"]).json()["jobStatus"] == "RUNNING"
    wait_feed(new, "DATA_INTEGRITY", second["id"])
    done = api(new, "GET", "jobConfigurations/%s?fields=id,jobStatus,lastExecutedStatus,lastRuntimeExecution"
               % second["id"]).json()
    assert list(done) == ["id", "jobStatus", "lastExecutedStatus", "lastRuntimeExecution"]
    assert done["jobStatus"] == "DISABLED" and done["lastExecutedStatus"] == "COMPLETED"
    assert re.match(r"^\d\d:\d\d:\d\d\.\d{3}$", done["lastRuntimeExecution"])


def test_task_endpoints(make):
    srv = make(job_seconds=0.2)
    job = start_job(srv, "dataIntegrity/summary?checks=CNO")
    wait_feed(srv, "DATA_INTEGRITY", job["id"])
    assert api(srv, "GET", "system/tasks/data_integrity/" + job["id"]).json()[0]["completed"]
    assert api(srv, "GET", "system/tasks/DATA_INTEGRITY/Abcdefghijk").json() == []
    assert api(srv, "GET", "system/tasks/DATA_INTEGRITY/not-a-uid").status_code == 400
    assert api(srv, "GET", "jobConfigurations/not-a-uid").status_code == 400
    assert api(srv, "GET", "jobConfigurations/Abcdefghijk").status_code == 404
    bad = api(srv, "GET", "system/tasks/NO_SUCH_TYPE/" + job["id"])
    assert bad.status_code == 400 and bad.json()["status"] == "ERROR"
    srv.verbose_notifications = True
    verbose = start_job(srv, "dataIntegrity/summary?checks=CNO")
    full = wait_feed(srv, "DATA_INTEGRITY", verbose["id"])
    gist = api(srv, "GET", "system/tasks/DATA_INTEGRITY").json()
    assert list(gist) == [verbose["id"], job["id"]]
    assert gist[verbose["id"]] == [full[0], full[-1]] and len(full) == 3
    assert api(srv, "GET", "system/tasks/DATA_INTEGRITY?gist=false").json()[verbose["id"]] == full
    assert set(api(srv, "GET", "system/tasks").json()) == {"DATA_INTEGRITY"}
    assert api(srv, "GET", "system/taskSummaries/DATA_INTEGRITY/" + job["id"]).content == b""


def test_start_delay_and_drop_feed(make):
    srv = make(job_seconds=0.1)
    srv.start_delay = 0.3
    job = start_job(srv, "dataIntegrity/summary?checks=CNO")
    assert api(srv, "GET", "system/tasks/DATA_INTEGRITY/" + job["id"]).json() == []
    assert api(srv, "GET", "jobConfigurations/" + job["id"]).json()["jobStatus"] == "SCHEDULED"
    wait_feed(srv, "DATA_INTEGRITY", job["id"])
    srv.drop_feed_after_completion = True
    assert api(srv, "GET", "system/tasks/DATA_INTEGRITY/" + job["id"]).json() == []
    assert api(srv, "GET", "jobConfigurations/" + job["id"]).json()["lastExecutedStatus"] == "COMPLETED"


def test_fail_next_job_and_conflict_next(make):
    srv = make(job_seconds=0.2)
    srv.fail_next_job()
    job = start_job(srv, "resourceTables/analytics")
    feed = wait_feed(srv, "ANALYTICS_TABLE", job["id"])
    assert (feed[0]["level"], feed[0]["message"]) == ("ERROR", "Process failed: Simulated failure")
    assert api(srv, "GET", "jobConfigurations/" + job["id"]).json()["lastExecutedStatus"] == "FAILED"
    srv.fail_next_job("disk full")
    job = start_job(srv, "dataIntegrity/summary?checks=CNO")
    assert wait_feed(srv, "DATA_INTEGRITY", job["id"])[0]["message"] == "Process failed: disk full"
    srv.conflict_next(2)
    r = api(srv, "POST", "resourceTables")
    assert r.status_code == 409 and r.json() == {"httpStatus": "Conflict", "httpStatusCode": 409, "status": "ERROR",
                                                 "message": "Job is already running.", "errorCode": "E1004"}
    r = api(srv, "POST", "dataIntegrity/summary")
    assert r.status_code == 409 and r.json()["message"] == "Data integrity check is already running"
    assert api(srv, "POST", "resourceTables").status_code == 200


# --- resource tables, analytics -------------------------------------------------------------------------------

def test_analytics_jobs_242_and_238(make):
    srv = make(job_seconds=0.2)
    r = api(srv, "PUT", "resourceTables/analytics?skipEvents=true&skipAggregate=true&lastYears=2")
    job = r.json()["response"]
    assert r.headers["Location"] == srv.url + "/api/system/tasks/ANALYTICS_TABLE"
    assert job["jobParameters"] == {"lastYears": 2, "skipTableTypes": ["DATA_VALUE", "COMPLETENESS",
                                                                       "COMPLETENESS_TARGET", "EVENT"],
                                    "skipPrograms": [], "skipResourceTables": False, "skipOutliers": False}
    feed = wait_feed(srv, "ANALYTICS_TABLE", job["id"])
    assert re.match(r"^Analytics tables updated: \d+:\d\d:\d\d\.\d{3}$", feed[0]["message"])
    assert feed[-1]["message"] == "Analytics table update process" and feed[-1]["data"] == job["jobParameters"]
    assert api(srv, "POST", "resourceTables/analytics?skipEvents=yes").status_code == 400
    second = start_job(srv, "resourceTables")
    assert second["jobType"] == "RESOURCE_TABLE" and "jobParameters" not in second
    assert start_job(srv, "resourceTables/monitoring")["jobType"] == "MONITORING"

    old = make(version="2.38", job_seconds=0.2)
    r = api(old, "POST", "resourceTables/analytics?skipValidationResult=true&skipEvents=true&bogus=1")
    job = r.json()["response"]
    assert r.json()["message"] == "Initiated inMemoryAnalyticsJob" and "Location" not in r.headers
    assert job["jobParameters"]["skipTableTypes"] == ["EVENT"] and "skipOutliers" not in job["jobParameters"]
    ignored = start_job(old, "resourceTables/analytics")  # 2.38: refused by the scheduler, never runs
    feed = wait_feed(old, "ANALYTICS_TABLE", job["id"])
    assert "dataType" in feed[-1]
    assert api(old, "GET", "system/tasks/ANALYTICS_TABLE/" + ignored["id"]).json() == []


# --- maintenance, category option combos ------------------------------------------------------------------------

def test_maintenance_242_vs_243_and_238(make):
    srv = make(version="2.42")
    r = api(srv, "POST", "maintenance/cacheClear")
    assert r.status_code == 204 and r.content == b""
    assert api(srv, "PUT", "maintenance/softDeletedEventRemoval").status_code == 204
    assert api(srv, "POST", "maintenance/softDeletedProgramStageInstanceRemoval").status_code == 404
    assert api(srv, "POST", "maintenance?analyticsTableClear=true&cacheClear=true&periodPruning=false").status_code \
        == 204
    assert api(srv, "GET", "maintenance/appReload").json()["message"] == "Apps reloaded"
    assert srv.maintenance_log == ["cacheClear", "softDeletedEventRemoval", "analyticsTablesClear", "cacheClear",
                                   "appReload"]
    new = make(version="2.43")
    r = api(new, "POST", "maintenance/cache")
    assert r.status_code == 200 and r.json() == {"httpStatus": "OK", "httpStatusCode": 200, "status": "OK"}
    r = api(new, "POST", "maintenance/analyticsTablesClear")
    assert r.status_code == 200 and r.content == b""
    old = make(version="2.38")
    assert api(old, "POST", "maintenance/softDeletedProgramStageInstanceRemoval").status_code == 204
    assert api(old, "POST", "maintenance/softDeletedRelationshipRemoval").status_code == 404
    r = api(old, "POST", "maintenance/dataPruning/organisationUnits/nope")
    assert r.status_code == 409 and r.json()["message"] == "Organisation unit does not exist: nope"


def _cocs(srv, combo):
    r = api(srv, "GET", "categoryOptionCombos?filter=categoryCombo.id:eq:%s&paging=false" % combo)
    return sorted(c["name"] for c in r.json()["categoryOptionCombos"])


def test_category_option_combos_242_vs_243(make):
    body = {"name": "Location and sex", "categories": [{"id": "fMZEcRHuamy"}, {"id": "cX5k9anHEHd"}]}
    expected = ["Fixed, Female", "Fixed, Male", "Outreach, Female", "Outreach, Male"]
    old = make(version="2.42")
    r = api(old, "POST", "categoryCombos", json=body)
    assert r.status_code == 201
    uid = r.json()["response"]["uid"]
    assert _cocs(old, uid) == expected  # generated on save
    combo = api(old, "GET", "categoryCombos/%s?fields=id,name,categories[id,name]" % uid).json()
    assert [c["id"] for c in combo["categories"]] == ["fMZEcRHuamy", "cX5k9anHEHd"]
    assert len(combo["categories"][0]["categoryOptions"]) == 2 and len(combo["categoryOptionCombos"]) == 4
    assert len(_cocs(old, "t3aNCvHsoSn")) == 4

    new = make(version="2.43")
    uid = api(new, "POST", "categoryCombos", json=body).json()["response"]["uid"]
    assert _cocs(new, uid) == [] and _cocs(new, "t3aNCvHsoSn") == []
    r = api(new, "POST", "maintenance/categoryOptionComboUpdate/categoryCombo/" + uid)
    assert r.status_code == 200 and r.json()["message"] == "Import was successful."
    response = r.json()["response"]
    assert response["responseType"] == "ImportSummaries" and response["imported"] == 4
    assert response["importSummaries"][0]["description"].startswith("Added missing category option combo: `")
    assert _cocs(new, uid) == expected
    again = api(new, "POST", "maintenance/categoryOptionComboUpdate/categoryCombo/" + uid).json()["response"]
    assert again["imported"] == 0 and again["importSummaries"] == []
    r = api(new, "POST", "maintenance/categoryOptionComboUpdate/categoryCombo/nope")
    assert r.status_code == 409 and r.json()["message"] == "CategoryCombo does not exist: nope"
    new.coc_generation_delay = 0.3
    assert api(new, "PUT", "maintenance/categoryOptionComboUpdate").status_code == 200
    assert _cocs(new, "t3aNCvHsoSn") == []  # not visible yet
    time.sleep(0.35)
    assert len(_cocs(new, "t3aNCvHsoSn")) == 4
    assert api(new, "GET", "categoryCombos/nope").status_code == 404


# --- predictors, validation ------------------------------------------------------------------------------------

def test_predictors(make):
    srv = make()
    r = api(srv, "POST", "predictors/run?startDate=2024-01-01&endDate=2024-03-31")
    assert r.json() == {"httpStatus": "OK", "httpStatusCode": 200, "status": "OK",
                        "message": "Generated 126 predictions"}
    assert api(srv, "POST", "predictors/a4Tz9PZk2Wq/run?startDate=2024-01&endDate=2024-01").json()["message"] == \
        "Generated 12 predictions"
    assert api(srv, "PUT", "predictorGroups/gP9sHqL4kRt/run?startDate=2024&endDate=2024-01-31").json()["message"] \
        == "Generated 36 predictions"
    assert api(srv, "POST", "predictorGroups/Abcdefghijk/run?startDate=2024&endDate=2024").json()["message"] == \
        "Generated 0 predictions"
    for query in ("endDate=2024-01-01", "startDate=2024-01-01", "startDate=junk&endDate=2024-01-01"):
        r = api(srv, "POST", "predictors/run?" + query)
        assert r.status_code == 400 and r.json()["status"] == "ERROR"
    r = api(srv, "POST", "predictors/Abcdefghijk/run?startDate=2024-01-01&endDate=2024-02-01")
    assert r.status_code == 409 and r.json()["message"].startswith("Unable to predict")
    srv.fail_predictor("b7RnXc2LpQe")
    r = api(srv, "POST", "predictors/run?startDate=2024-01-01&endDate=2024-02-01")
    assert r.status_code == 409 and r.json()["message"] == "Unable to predict Malaria cases forecast"
    r = api(make(version="2.43"), "POST", "predictors/run?startDate=2024-05-01&endDate=2024-01-01")
    assert r.status_code == 409 and r.json()["errorCode"] == "E7206"


def test_validation_analysis(make):
    srv = make()
    body = {"ou": "ImspTQPwCqd", "startDate": "2024-01-01", "endDate": "2024-12-31", "persist": False}
    violations = api(srv, "POST", "dataAnalysis/validationRules", json=body).json()
    assert violations and len(violations) <= 500
    assert list(violations[0]) == [
        "validationRuleId", "validationRuleDescription", "organisationUnitId", "organisationUnitDisplayName",
        "organisationUnitPath", "organisationUnitAncestorNames", "periodId", "periodDisplayName",
        "attributeOptionComboId", "attributeOptionComboDisplayName", "importance", "leftSideValue", "operator",
        "rightSideValue"]
    assert all(v["organisationUnitPath"].startswith("/ImspTQPwCqd/") for v in violations)
    assert api(srv, "POST", "dataAnalysis/validationRules", json=body).json() == violations  # deterministic
    two = api(srv, "POST", "dataAnalysis/validationRules", json=dict(body, maxResults=2)).json()
    assert two == violations[:2]
    assert api(srv, "POST", "dataAnalysis/validationRules", json=dict(body, maxResults=0)).status_code == 400
    bo = api(srv, "POST", "dataAnalysis/validationRules", json=dict(body, ou="O6uvpzGd5pu")).json()
    assert bo and all("/O6uvpzGd5pu/" in v["organisationUnitPath"] for v in bo)
    r = api(srv, "POST", "dataAnalysis/validationRules", json=dict(body, ou="nope"))
    assert r.status_code == 400 and r.json()["message"] == "No organisation unit defined"


# --- request faults --------------------------------------------------------------------------------------------

def test_fail_next_html_json_retry_after_and_method_filter(make):
    srv = make()
    srv.fail_next(count=2, status=503, retry_after=7)
    for _ in range(2):
        r = api(srv, "GET", "system/info")
        assert r.status_code == 503 and r.headers["Retry-After"] == "7"
        assert r.headers["Content-Type"].startswith("text/html") and "<center>nginx" in r.text
    assert api(srv, "GET", "system/info").status_code == 200
    srv.fail_next(status=502, method="POST", html=False)
    assert api(srv, "GET", "system/info").status_code == 200
    r = api(srv, "POST", "resourceTables")
    assert r.status_code == 502 and r.json()["httpStatusCode"] == 502 and "Retry-After" not in r.headers
    assert len(srv.job_ids()) == 0  # the failed POST started nothing
    assert [q.path for q in srv.requests[-2:]] == ["/api/system/info", "/api/resourceTables"]


def test_html_next_and_delay(make):
    srv = make()
    srv.html_next()
    r = api(srv, "GET", "system/info")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html") and "loginForm" in r.text
    srv.set_delay(0.3)
    t = time.time()
    assert api(srv, "GET", "system/info").status_code == 200
    assert time.time() - t >= 0.3
    srv.reset_faults()
    assert srv.delay == 0


def test_hang_next_and_quick_stop(make):
    srv = make()
    srv.hang_next(method="GET")
    with pytest.raises(requests.exceptions.ReadTimeout):
        api(srv, "GET", "system/info", timeout=0.3)
    assert api(srv, "GET", "system/info").status_code == 200
    srv.hang_next(count=3)
    errors = []

    def call():
        try:
            api(srv, "GET", "system/info", timeout=30)
        except requests.RequestException as e:
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    t0 = time.time()
    srv.stop()
    assert time.time() - t0 < 1.5
    for t in threads:
        t.join(5)
    assert len(errors) == 3  # closed without a reply


def test_truncate_next_plain_and_chunked(make):
    srv = make(issues={"datasets_empty": 20000})
    srv.truncate_next()
    host, port = srv.url[len("http://"):].split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(b"GET /api/system/info HTTP/1.1\r\nHost: x\r\nAuthorization: ApiToken " +
                 DEFAULT_TOKEN.encode() + b"\r\n\r\n")
    raw = b""
    while True:
        data = sock.recv(65536)
        if not data:
            break
        raw += data
    sock.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    assert head.startswith(b"HTTP/1.1 200") and 0 < len(body) == length // 2

    wait_feed(srv, "DATA_INTEGRITY_DETAILS", start_job(srv, "dataIntegrity/details?checks=datasets_empty")["id"])
    srv.truncate_next(method="GET")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        api(srv, "GET", "dataIntegrity/datasets_empty/details").content
    assert len(api(srv, "GET", "dataIntegrity/datasets_empty/details").json()["issues"]) == 20000


def test_trickle_slows_streamed_bodies(make):
    srv = make(issues={"datasets_empty": 200})
    wait_feed(srv, "DATA_INTEGRITY_DETAILS", start_job(srv, "dataIntegrity/details?checks=datasets_empty")["id"])
    size = len(api(srv, "GET", "dataIntegrity/datasets_empty/details").content)
    srv.set_trickle(size * 2)  # the body takes ~0.5 s
    t = time.time()
    assert len(api(srv, "GET", "dataIntegrity/datasets_empty/details").content) == size
    assert time.time() - t >= 0.4
    assert api(srv, "GET", "system/info").status_code == 200  # bodies with Content-Length are not trickled
    srv.trickle = 100
    with api(srv, "GET", "dataIntegrity/datasets_empty/details", stream=True) as r:
        r.raw.read(10)
        t0 = time.time()
        srv.stop()  # a trickling handler does not delay shutdown
        assert time.time() - t0 < 1.5


def test_requests_are_recorded(make):
    srv = make()
    srv.fail_next()
    api(srv, "GET", "system/info?fields=version&fields=revision")
    api(srv, "POST", "dataIntegrity/summary?checks=CNO", json=["CNO"], headers={"X-Test": "1"})
    first, second = srv.requests[-2:]
    assert (first.method, first.path, first.query) == ("GET", "/api/system/info",
                                                       {"fields": ["version", "revision"]})
    assert second.method == "POST" and json.loads(second.body.decode()) == ["CNO"]
    assert second.headers["X-Test"] == "1" and second.headers["Authorization"].startswith("Basic ")
    srv.clear_requests()
    assert srv.requests == []


# --- command line -----------------------------------------------------------------------------------------------

@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_cli_runs_in_foreground_and_exits_on_ctrl_c():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "dhis2maint.testing", "--port", "0", "--version", "2.41",
                             "--job-seconds", "0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        line = proc.stdout.readline().decode()
        url = re.search(r"(http://127\.0\.0\.1:\d+)", line).group(1)
        assert "admin/district" in line and DEFAULT_TOKEN in line
        info = requests.get(url + "/api/system/info", auth=AUTH, timeout=5).json()
        assert info["version"] == "2.41.0"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


# --- the route registry and the split (#20.8) ---------------------------------------------------------------

def test_a_new_route_family_is_one_module_of_registered_handlers(make):
    from dhis2maint._standin_http import _Response
    from dhis2maint._standin_routes import ROUTES, route

    def probe(api, req, word):
        return _Response.json({"word": word, "user": req.user, "version": api.owner.version,
                               "jobs": len(api.state.jobs)})
    route("GET", r"standinProbe/([a-z]+)", feature="scheduler_api")(probe)
    try:
        srv = make(version="2.42")
        r = api(srv, "GET", "standinProbe/abc")
        assert r.status_code == 200 and r.json() == {"word": "abc", "user": "admin", "version": "2.42", "jobs": 0}
        r = api(srv, "POST", "42/standinProbe/abc.json")
        assert r.status_code == 405 and r.headers["Allow"] == "GET"
        assert api(srv, "GET", "standinProbe/abc", auth=("admin", "wrong")).status_code == 401
        assert api(make(version="2.39"), "GET", "standinProbe/abc").status_code == 404  # no such feature
    finally:
        ROUTES[:] = [r for r in ROUTES if r.handler is not probe]


@pytest.mark.parametrize("version", ["2.36", "2.38", "2.42"])
def test_scheduler_routes_are_on_the_registry_and_a_wrong_method_is_405(make, version):
    srv = make(version=version)
    r = api(srv, "PUT", "system/ping")
    assert r.status_code == 405 and r.headers["Allow"] == "GET"
    r = api(srv, "DELETE", "jobConfigurations")
    assert r.status_code == 405 and r.headers["Allow"] == "GET, POST"
    me = api(srv, "POST", "me/authorities")
    assert (me.status_code, me.json() if me.status_code == 200 else None) == (
        (200, ["ALL"]) if version < "2.38" else (405, None))
    assert api(srv, "GET", "me").json()["authorities"] == ["ALL"]


def test_no_standin_module_is_a_giant():
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dhis2maint")
    sizes = {}
    for name in os.listdir(folder):
        if name == "testing.py" or name.startswith("_standin_"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                sizes[name] = sum(1 for _ in f)
    assert len(sizes) >= 8 and max(sizes.values()) <= 1000, sizes


def test_tests_share_one_cli_runner_and_one_standin_factory():
    here = os.path.dirname(os.path.abspath(__file__))
    runners, factories = [], []
    for name in sorted(os.listdir(here)):
        if name.endswith(".py") and name != "conftest.py":
            with open(os.path.join(here, name), encoding="utf-8") as f:
                text = f.read()
            if re.search(r"^def run_cli\((?!run_cli\))", text, re.M):
                runners.append(name)
            lines = text.split("\n")
            for i, line in enumerate(lines[:-1]):  # a fixture that builds its own stand-in
                if line.startswith("@pytest.fixture") and lines[i + 1].startswith("def "):
                    body = []
                    for more in lines[i + 2:]:
                        if more and not more.startswith(" "):
                            break
                        body.append(more)
                    if "Dhis2StandIn(" in "\n".join(body):
                        factories.append(name)
    assert runners == [] and factories == []
