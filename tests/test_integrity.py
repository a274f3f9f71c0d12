"""Data-integrity methods on 2.42, 2.40, 2.37/2.38 and 2.36 (mocked HTTP), compare_reports,
and report round trips."""
import datetime
import json
import os
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

import dhis2maint
from dhis2maint import (ConflictError, DataIntegrityCheck, DataIntegrityIssue,
                        DataIntegrityReport, DataIntegrityResult, DataIntegritySeverity,
                        IntegrityIssueRow, InvalidResponseError, JobType, ReportComparison,
                        Session, TaskTimeoutError, UnsupportedServerError, compare_reports,
                        from_json, integrity, to_json, versions)
from dhis2maint.convert import comparison_to_dict, report_from_dict, report_to_dict
from dhis2maint.models import CountChange

URL = "https://dhis2.example.org"
API = URL + "/api/"
JOB_ID = "Xk3vQ9aBcDe"
CREATED = "2025-01-31T10:15:02.100"


def make_session(version=(2, 42, 0)):
    session = Session(URL, auth=("admin", "district"))
    session.server_version = version
    return session


def query(call):
    return {k: v[0] if len(v) == 1 else v
            for k, v in parse_qs(urlsplit(call.request.url).query).items()}


def path_of(call):
    return urlsplit(call.request.url).path


def job_reply(job_type="DATA_INTEGRITY", checks=None, created=CREATED):
    return {"httpStatus": "OK", "httpStatusCode": 200, "status": "OK",
            "message": "Initiated {} (1738318502123)".format(job_type),
            "response": {"responseType": "JobConfiguration", "name": job_type + " (1738318502123)",
                         "id": JOB_ID, "created": created, "jobType": job_type,
                         "jobStatus": "NOT_STARTED",
                         "jobParameters": {"checks": checks or []},
                         "relativeNotifierEndpoint": "/api/system/tasks/{}/{}".format(
                             job_type, JOB_ID)}}


def completed_feed(job_type="DATA_INTEGRITY"):
    return [{"id": "n1", "uid": "n1", "level": "INFO", "category": job_type,
             "time": "2025-01-31T10:15:09.000", "message": "Data integrity checks completed",
             "completed": True},
            {"id": "n0", "uid": "n0", "level": "INFO", "category": job_type,
             "time": "2025-01-31T10:15:02.300", "message": "Starting", "completed": False}]


def check(name, severity="WARNING", section="Categories", slow=False, code=None, **extra):
    body = {"name": name, "displayName": name.replace("_", " ").capitalize(),
            "section": section, "sectionOrder": 1, "severity": severity,
            "description": "about " + name, "issuesIdType": "categories", "isSlow": slow,
            "isProgrammatic": False, "code": code or "".join(p[0] for p in name.split("_")).upper()}
    body.update(extra)
    return body


CHECKS_242 = [
    check("categories_no_options", "WARNING", code="CNO"),
    check("categories_one_default_category", "SEVERE"),
    check("program_rules_no_action", "INFO", section="Programs"),
    check("data_elements_aggregate_no_data", "WARNING", section="Data elements", slow=True),
    check("indicators_with_identical_formulas", "CRITICAL", section="Other", slow=True,
          isProgrammatic=True),
]


def summary(name, count, finished="2025-01-31T10:15:05.000", **extra):
    body = dict(check(name), startTime="2025-01-31T10:15:04.000", finishedTime=finished)
    body.update(extra)
    body.setdefault("count", count)
    return body


def details(name, issues, finished="2025-01-31T10:15:05.000", **extra):
    body = dict(check(name), startTime="2025-01-31T10:15:04.000", finishedTime=finished)
    body.update(extra)
    body["issues"] = issues
    return body


# --- argument checks -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [[""], ["  "], ["a,b"], [5], [None], 7])
@responses.activate
def test_bad_check_names_are_refused_before_any_request(bad):
    session = make_session()
    for call in (lambda: session.start_integrity_run(checks=bad),
                 lambda: session.run_integrity_checks(checks=bad),
                 lambda: session.get_integrity_report(checks=bad),
                 lambda: session.list_integrity_checks(checks=bad),
                 lambda: session.iter_integrity_issues(checks=bad)):
        with pytest.raises(ValueError):
            call()
    assert len(responses.calls) == 0


def test_check_names_are_normalised():
    assert integrity._check_names(None) is None
    assert integrity._check_names([]) is None
    assert integrity._check_names("CNO") == ["CNO"]
    assert integrity._check_names([" a ", "b", "a"]) == ["a", "b"]
    assert integrity._check_names((x for x in "ab")) == ["a", "b"]


# --- list_integrity_checks ---------------------------------------------------------------------


@responses.activate
def test_list_on_242_sends_server_side_filters():
    responses.add(responses.GET, API + "dataIntegrity", json=CHECKS_242)
    session = make_session()
    checks = session.list_integrity_checks()
    assert [c.name for c in checks] == [c["name"] for c in CHECKS_242]
    assert isinstance(checks[0], DataIntegrityCheck)
    assert checks[0].severity is DataIntegritySeverity.WARNING and checks[0].code == "CNO"
    assert checks[3].is_slow and checks[4].is_programmatic
    assert query(responses.calls[0]) == {}

    picked = session.list_integrity_checks(section="Categories", slow=False,
                                           checks=["CNO", "program*"])
    # with names the whole list is read and matched here, so unknown names are caught
    assert query(responses.calls[1]) == {}
    assert [c.name for c in picked] == ["categories_no_options"]
    session.list_integrity_checks(slow=True)
    assert query(responses.calls[2]) == {"slow": "true"}


@responses.activate
def test_list_severity_filter_is_client_side_and_case_insensitive():
    responses.add(responses.GET, API + "dataIntegrity", json=CHECKS_242)
    session = make_session()
    for severity in ("severe", "SEVERE", "Severe", DataIntegritySeverity.SEVERE):
        assert [c.name for c in session.list_integrity_checks(severity=severity)] == \
            ["categories_one_default_category"]
    assert all("severity" not in query(call) for call in responses.calls)
    with pytest.raises(ValueError) as info:
        session.list_integrity_checks(severity="bad")
    assert "INFO, WARNING, SEVERE, CRITICAL" in str(info.value)
    with pytest.raises(ValueError):
        session.list_integrity_checks(slow="yes")


@responses.activate
def test_list_applies_section_and_slow_here_too():
    # a server that ignores the filters (or a proxy that drops them) still gives the right list
    responses.add(responses.GET, API + "dataIntegrity", json=CHECKS_242)
    session = make_session()
    assert [c.name for c in session.list_integrity_checks(section="Programs")] == \
        ["program_rules_no_action"]
    assert [c.name for c in session.list_integrity_checks(slow=True)] == \
        ["data_elements_aggregate_no_data", "indicators_with_identical_formulas"]
    assert len(session.list_integrity_checks(slow=False)) == 3


@responses.activate
def test_list_on_240_with_names_filters_section_here_and_drops_nulls():
    responses.add(responses.GET, API + "dataIntegrity", json=[CHECKS_242[0], None, CHECKS_242[2]])
    session = make_session((2, 40, 1))
    checks = session.list_integrity_checks(checks=["CNO", "program_rules_no_action"],
                                           section="Programs", slow=False)
    assert [c.name for c in checks] == ["program_rules_no_action"]
    # unknown names + section/slow make 2.39/2.40 answer 500: nothing is sent, all matched here
    assert query(responses.calls[0]) == {}
    with pytest.raises(dhis2maint.ConfigurationError) as info:
        session.list_integrity_checks(checks=["CNO", "nope", "program_rules_no_action"])
    assert "'nope'" in str(info.value)


LEGACY_237 = [{"name": name, "displayName": name, "section": "Legacy", "severity": "WARNING",
               "description": name.replace("_", " ")}
              for _k, _t, name, _m in versions.LEGACY_INTEGRITY_CHECKS] + [
    {"name": "categories_no_options", "displayName": "Categories with no category options",
     "section": "Categories", "severity": "WARNING", "description": "Categories with no options"}]


@pytest.mark.parametrize("version", [(2, 37, 3), (2, 38, 1)])
@responses.activate
def test_list_on_237_filters_everything_here(version):
    responses.add(responses.GET, API + "dataIntegrity", json=LEGACY_237)
    session = make_session(version)
    assert len(session.list_integrity_checks()) == 34
    picked = session.list_integrity_checks(checks=["Org-Units-Without-Groups", "program_rule_*"])
    assert [c.name for c in picked] == [
        "org_units_without_groups", "program_rule_variables_without_data_element",
        "program_rule_variables_without_attribute", "program_rule_actions_without_data_object",
        "program_rule_actions_without_notification", "program_rule_actions_without_section",
        "program_rule_actions_without_stage"]
    assert [c.name for c in session.list_integrity_checks(section="Categories")] == \
        ["categories_no_options"]
    assert session.list_integrity_checks(slow=True) == []
    assert len(session.list_integrity_checks(slow=False, severity="warning")) == 34
    assert all(query(call) == {} for call in responses.calls)


@responses.activate
def test_list_on_236_is_the_legacy_table_without_a_request():
    session = make_session((2, 36, 12))
    checks = session.list_integrity_checks()
    assert len(checks) == 33 and len(responses.calls) == 0
    assert {c.section for c in checks} == {"Legacy"}
    assert {c.severity for c in checks} == {DataIntegritySeverity.WARNING}
    assert checks[0] == DataIntegrityCheck(
        name="data_elements_without_data_sets", display_name="data_elements_without_data_sets",
        section="Legacy", severity=DataIntegritySeverity.WARNING,
        description="data elements without data sets")
    # legacy names, 2.42 names of their successors, and wildcards all select
    picked = session.list_integrity_checks(checks=["periods_duplicates", "orgunits_orphaned",
                                                   "indicators_with_invalid_*"])
    # in the tokens' order, as DHIS2 expands them
    assert [c.name for c in picked] == ["periods_duplicates", "org_units_being_orphaned",
                                        "indicators_with_invalid_numerator",
                                        "indicators_with_invalid_denominator"]
    assert session.list_integrity_checks(severity="SEVERE") == []
    assert session.list_integrity_checks(section="Other") == []


def test_legacy_table_matches_the_shared_catalogue():
    path = os.path.join(os.path.dirname(dhis2maint.__file__), "checks-2.42.json")
    with open(path, encoding="utf-8") as handle:
        legacy = json.load(handle)["legacy"]
    assert [(x["reportKey"], x["type"], x["name"], x.get("modernName")) for x in legacy] == \
        list(versions.LEGACY_INTEGRITY_CHECKS)


# --- start_integrity_run ---------------------------------------------------------------------


@pytest.mark.parametrize("version, details, path, job_type", [
    ((2, 42, 0), False, "summary", "DATA_INTEGRITY"),
    ((2, 42, 0), True, "details", "DATA_INTEGRITY_DETAILS"),
    ((2, 43, 0), True, "details", "DATA_INTEGRITY_DETAILS"),
    ((2, 39, 0), True, "details", "DATA_INTEGRITY_DETAILS"),
    ((2, 38, 0), True, "details", "DATA_INTEGRITY"),
    ((2, 37, 0), False, "summary", "DATA_INTEGRITY"),
    ((2, 37, 0), True, "details", "DATA_INTEGRITY"),
])
@responses.activate
def test_start_paths_params_and_job_types(version, details, path, job_type):
    responses.add(responses.POST, API + "dataIntegrity/" + path, json=job_reply(job_type))
    responses.add(responses.GET, API + "dataIntegrity", json=CHECKS_242)
    session = make_session(version)
    job = session.start_integrity_run(checks=["CNO", "program*"], details=details)
    assert job.id == JOB_ID and job.job_type == JobType(job_type)
    assert job.created == datetime.datetime(2025, 1, 31, 10, 15, 2, 100000)
    # the tokens are matched first (GET /api/dataIntegrity), then the names are posted
    assert path_of(responses.calls[0]) == "/api/dataIntegrity"
    assert query(responses.calls[1]) == {"checks": "categories_no_options,program_rules_no_action"}
    job = session.start_integrity_run(details=details)
    assert query(responses.calls[2]) == {}


@responses.activate
def test_start_on_236_runs_everything():
    responses.add(responses.POST, API + "dataIntegrity", json={
        "httpStatus": "OK", "httpStatusCode": 200, "status": "OK",
        "message": "Initiated runAsyncDataIntegrity",
        "response": {"name": "runAsyncDataIntegrity", "id": JOB_ID, "created": CREATED,
                     "jobType": "DATA_INTEGRITY",
                     "relativeNotifierEndpoint": "/api/system/tasks/DATA_INTEGRITY/" + JOB_ID}})
    session = make_session((2, 36, 0))
    job = session.start_integrity_run(checks=["periods_duplicates"], details=True)
    assert job.job_type == JobType.DATA_INTEGRITY
    assert path_of(responses.calls[0]) == "/api/dataIntegrity"
    assert query(responses.calls[0]) == {}


@responses.activate
def test_start_conflict_on_237():
    responses.add(responses.POST, API + "dataIntegrity/summary", status=409, json={
        "httpStatus": "Conflict", "httpStatusCode": 409, "status": "ERROR",
        "message": "Data integrity check is already running"})
    with pytest.raises(ConflictError) as info:
        make_session((2, 37, 0)).start_integrity_run()
    assert "already running" in str(info.value)


# --- run_integrity_checks ---------------------------------------------------------------------


def add_run(job_type="DATA_INTEGRITY", kind="summary", results=None, listed=None):
    if listed is not None:  # GET /api/dataIntegrity: what named checks are matched against
        responses.add(responses.GET, API + "dataIntegrity", json=listed)
    responses.add(responses.POST, API + "dataIntegrity/" + kind, json=job_reply(job_type))
    responses.add(responses.GET, API + "system/tasks/{}/{}".format(job_type, JOB_ID),
                  json=completed_feed(job_type))
    responses.add(responses.GET, API + "dataIntegrity/" + kind, json=results or {})


def calls_to(method, path):
    return [c for c in responses.calls
            if c.request.method == method and path_of(c) == "/api/" + path]


@responses.activate
def test_run_default_set_reads_only_this_runs_non_slow_results():
    responses.add(responses.GET, API + "dataIntegrity", json=CHECKS_242)
    add_run(results={
        "categories_no_options": summary("categories_no_options", 1, percentage=50.0),
        "categories_one_default_category": summary("categories_one_default_category", 0),
        # finished before this job was created: an older run's entry
        "program_rules_no_action": summary("program_rules_no_action", 7,
                                           finished="2025-01-31T09:59:00.000"),
    })
    seen = []
    report = make_session().run_integrity_checks(on_notification=seen.append, timeout=60)
    assert list(report.results) == ["categories_no_options", "categories_one_default_category"]
    assert report["categories_no_options"].count == 1
    assert report["categories_no_options"].percentage == 50.0
    assert report.details is False and report["categories_no_options"].issues is None
    (post,) = calls_to("POST", "dataIntegrity/summary")
    assert query(post) == {}  # the server's default set = every non-slow check
    (read,) = calls_to("GET", "dataIntegrity/summary")
    assert query(read) == {"checks": "categories_no_options,categories_one_default_category,"
                                     "program_rules_no_action"}
    assert [n.message for n in seen] == ["Starting", "Data integrity checks completed"]


@responses.activate
def test_run_include_slow_names_every_check():
    responses.add(responses.GET, API + "dataIntegrity", json=CHECKS_242)
    add_run()
    make_session().run_integrity_checks(include_slow=True)
    names = ",".join(c["name"] for c in CHECKS_242)
    assert query(calls_to("POST", "dataIntegrity/summary")[0]) == {"checks": names}
    assert query(calls_to("GET", "dataIntegrity/summary")[0]) == {"checks": names}


@responses.activate
def test_run_explicit_checks_sends_them_and_reads_them_back():
    add_run(kind="details", job_type="DATA_INTEGRITY_DETAILS", listed=CHECKS_242, results={
        "categories_no_options": details("categories_no_options", [
            {"id": "a1B2c3D4e5F", "name": "CatDog"},
            {"id": "Uvn6LCg7dVU", "name": "ANC:Uvn6LCg7dVU", "comment": "bad", "refs": ["x"]}]),
        "program_rules_no_action": details(
            "program_rules_no_action", [],
            error="Check failed because an exception was thrown: boom"),
    })
    report = make_session().run_integrity_checks(checks=["CNO", "program*"], details=True)
    assert len(calls_to("GET", "dataIntegrity")) == 1  # the tokens are matched first
    expanded = {"checks": "categories_no_options,program_rules_no_action"}
    assert query(calls_to("POST", "dataIntegrity/details")[0]) == expanded
    assert query(calls_to("GET", "dataIntegrity/details")[0]) == expanded
    ok = report["categories_no_options"]
    assert ok.count == 2 and ok.issues[1] == DataIntegrityIssue(
        "Uvn6LCg7dVU", "ANC:Uvn6LCg7dVU", "bad", ["x"])
    assert ok.start_time == datetime.datetime(2025, 1, 31, 10, 15, 4)
    failed = report["program_rules_no_action"]
    assert failed.failed and failed.count == -1 and failed.issues == []
    assert "boom" in failed.error
    assert report.details


@responses.activate
def test_run_summary_with_a_failed_check():
    add_run(listed=CHECKS_242, results={"categories_no_options": summary(
        "categories_no_options", -1, error="Check failed because an exception was thrown: x")})
    report = make_session().run_integrity_checks(checks=["categories_no_options"])
    result = report["categories_no_options"]
    assert result.count == -1 and result.failed and result.percentage is None


@responses.activate
def test_run_keeps_results_when_times_are_not_comparable():
    add_run(listed=[check("a"), check("b")],
            results={"a": summary("a", 3, finished=None), "b": summary("b", 4)})
    job = job_reply()
    job["response"].pop("created")
    responses.replace(responses.POST, API + "dataIntegrity/summary", json=job)
    report = make_session().run_integrity_checks(checks=["a", "b"])
    assert sorted(report.results) == ["a", "b"]


@responses.activate
def test_run_with_a_long_default_set_reads_everything_and_filters_here():
    many = [check("check_number_%04d_with_a_long_name" % i) for i in range(200)]
    responses.add(responses.GET, API + "dataIntegrity", json=many + [check("slow_one", slow=True)])
    add_run(results={"check_number_0001_with_a_long_name": summary(
        "check_number_0001_with_a_long_name", 2), "slow_one": summary("slow_one", 9)})
    report = make_session().run_integrity_checks()
    assert list(report.results) == ["check_number_0001_with_a_long_name"]
    assert query(calls_to("GET", "dataIntegrity/summary")[0]) == {}


def legacy_details(name, issues, finished="2025-01-31T10:16:00.000"):
    return {"name": name, "displayName": name, "section": "Legacy", "severity": "WARNING",
            "description": name.replace("_", " "), "finishedTime": finished, "issues": issues}


@pytest.mark.parametrize("version", [(2, 37, 0), (2, 38, 2)])
@responses.activate
def test_run_on_237_follows_the_results_not_the_empty_feed(version, no_sleep):
    responses.add(responses.GET, API + "dataIntegrity", json=LEGACY_237)
    responses.add(responses.POST, API + "dataIntegrity/details", json=job_reply("DATA_INTEGRITY"))
    fresh = legacy_details("org_units_without_groups",
                           [{"id": "uidB1234567", "name": "B:uidB1234567", "refs": []}])
    old = legacy_details("periods_duplicates", [], finished="2025-01-31T09:00:00.000")
    responses.add(responses.GET, API + "dataIntegrity/details",
                  json={"periods_duplicates": old, "org_units_without_groups": fresh})
    responses.add(responses.GET, API + "dataIntegrity/details", json={
        "periods_duplicates": legacy_details("periods_duplicates", [{"name": "Monthly 2020-01"}]),
        "org_units_without_groups": fresh})
    seen = []
    report = make_session(version).run_integrity_checks(
        checks=["org_units_without_groups", "periods_*"], details=True,
        on_notification=seen.append)
    assert list(report.results) == ["periods_duplicates", "org_units_without_groups"]
    assert report["org_units_without_groups"].issues == [
        DataIntegrityIssue("uidB1234567", "B:uidB1234567", None, [])]
    assert report["periods_duplicates"].count == 1
    assert calls_to("GET", "system/tasks/DATA_INTEGRITY/" + JOB_ID) == []
    # 2.37/2.38 know no codes: the matched names are posted, in the tokens' order
    assert query(calls_to("POST", "dataIntegrity/details")[0]) == {
        "checks": "org_units_without_groups,periods_duplicates"}
    reads = calls_to("GET", "dataIntegrity/details")
    assert len(reads) == 2 and len(no_sleep) == 1
    assert query(reads[0]) == {"checks": "org_units_without_groups,periods_duplicates"}
    assert [(n.message.split(" (")[0], n.completed) for n in seen] == [
        ("1 of 2 checks finished", False), ("2 of 2 checks finished", True)]
    assert seen[0].category == JobType.DATA_INTEGRITY


@responses.activate
def test_run_on_237_default_set_is_every_listed_check(no_sleep):
    responses.add(responses.GET, API + "dataIntegrity", json=LEGACY_237)
    responses.add(responses.POST, API + "dataIntegrity/summary", json=job_reply())
    responses.add(responses.GET, API + "dataIntegrity/summary", json={
        c["name"]: dict(c, finishedTime="2025-01-31T10:16:00.000", count=0) for c in LEGACY_237})
    report = make_session((2, 37, 0)).run_integrity_checks()
    assert len(report) == 34
    assert query(calls_to("POST", "dataIntegrity/summary")[0]) == {}
    read = query(calls_to("GET", "dataIntegrity/summary")[0])
    assert read["checks"].split(",") == [c["name"] for c in LEGACY_237]


@responses.activate
def test_run_on_237_times_out_when_results_stay_old(no_sleep):
    responses.add(responses.GET, API + "dataIntegrity", json=LEGACY_237)
    responses.add(responses.POST, API + "dataIntegrity/summary", json=job_reply())
    responses.add(responses.GET, API + "dataIntegrity/summary", json={"periods_duplicates": dict(
        LEGACY_237[12], finishedTime="2025-01-31T09:00:00.000", count=3)})
    with pytest.raises(TaskTimeoutError) as info:
        make_session((2, 38, 0)).run_integrity_checks(checks=["periods_duplicates"], timeout=10)
    assert info.value.job_id == JOB_ID and "0 of 1" in str(info.value)
    assert 9.99 <= sum(no_sleep) <= 10.01


@responses.activate
def test_run_on_240_asks_running_between_reads(no_sleep):
    responses.add(responses.GET, API + "dataIntegrity", json=[CHECKS_242[0], CHECKS_242[2]])
    responses.add(responses.POST, API + "dataIntegrity/details",
                  json=job_reply("DATA_INTEGRITY_DETAILS"))
    responses.add(responses.GET, API + "dataIntegrity/details/running",
                  json=["program_rules_no_action"])
    responses.add(responses.GET, API + "dataIntegrity/details/running", json=[])
    responses.add(responses.GET, API + "dataIntegrity/details", json={
        "categories_no_options": details("categories_no_options", [{"id": "a"}]),
        "program_rules_no_action": details("program_rules_no_action", [])})
    report = make_session((2, 40, 2)).run_integrity_checks(checks=["CNO", "program*"],
                                                           details=True)
    assert sorted(report.results) == ["categories_no_options", "program_rules_no_action"]
    assert query(calls_to("GET", "dataIntegrity")[0]) == {}
    assert len(calls_to("GET", "dataIntegrity/details/running")) == 2
    assert len(calls_to("GET", "dataIntegrity/details")) == 1  # the big body is read once
    assert calls_to("GET", "system/tasks/DATA_INTEGRITY_DETAILS/" + JOB_ID) == []


# --- 2.36: the flattened report ---------------------------------------------------------------

FLAT_236 = {
    "dataElementsWithoutDataSet": ["ANC 5th visit", "fbfJHSPpUQD"],
    "dataElementsWithoutGroups": [],
    "dataElementsAssignedToDataSetsWithDifferentPeriodTypes": {},
    "dataElementsViolatingExclusiveGroupSets": {"DE A:uidA1234567": ["G2", "G1"]},
    "dataElementsInDataSetNotInForm": {},
    "invalidCategoryCombos": [],
    "dataSetsNotAssignedToOrganisationUnits": [],
    "indicatorsWithIdenticalFormulas": [["Ind B", "Ind A"], ["Ind C", "Ind D"]],
    "indicatorsWithoutGroups": [],
    "invalidIndicatorNumerators": {"Ind C:uidIC123456": "Expression is not well-formed"},
    "invalidIndicatorDenominators": {},
    "indicatorsViolatingExclusiveGroupSets": {},
    "duplicatePeriods": ["Monthly 2020-01"],
    "organisationUnitsWithCyclicReferences": [],
    "orphanedOrganisationUnits": [],
    "organisationUnitsWithoutGroups": ["Ngelehun CHC", "Bo: Kakua:Ngelehun"],
    "organisationUnitsViolatingExclusiveGroupSets": {},
    "organisationUnitGroupsWithoutGroupSets": [],
    "validationRulesWithoutGroups": [],
    "invalidValidationRuleLeftSideExpressions": {},
    "invalidValidationRuleRightSideExpressions": {},
    "invalidProgramIndicatorExpressions": {},
    "programIndicatorsWithNoExpression": [],
    "invalidProgramIndicatorFilters": {},
    "programRulesWithNoCondition": {"Program P:uidP1234567": ["Rule 1:uidR1234567"]},
    "programRulesWithNoPriority": {},
    "programRulesWithNoAction": {},
    "programRuleVariablesWithNoDataElement": {},
    "programRuleVariablesWithNoAttribute": {},
    "programRuleActionsWithNoDataObject": {},
    "programRuleActionsWithNoNotification": {},
    "programRuleActionsWithNoSectionId": {},
    "programRuleActionsWithNoStageId": {},
}


def add_236_run(summaries):
    responses.add(responses.POST, API + "dataIntegrity", json={
        "httpStatus": "OK", "httpStatusCode": 200, "status": "OK",
        "message": "Initiated runAsyncDataIntegrity",
        "response": {"name": "runAsyncDataIntegrity", "id": JOB_ID, "created": CREATED,
                     "jobType": "DATA_INTEGRITY", "jobStatus": "RUNNING",
                     "relativeNotifierEndpoint": "/api/system/tasks/DATA_INTEGRITY/" + JOB_ID}})
    responses.add(responses.GET, API + "system/tasks/DATA_INTEGRITY/" + JOB_ID,
                  json=completed_feed())
    for body in summaries:
        responses.add(responses.GET, API + "system/taskSummaries/DATA_INTEGRITY/" + JOB_ID,
                      body=body, content_type="application/json")


@pytest.fixture
def no_sleep(fake_clock):
    """The pauses of the shared fake clock (tests/conftest.py)."""
    return fake_clock.sleeps


@responses.activate
def test_run_on_236_polls_task_summaries_and_maps_the_report(no_sleep):
    add_236_run(["null", "", json.dumps(FLAT_236)])
    report = make_session((2, 36, 5)).run_integrity_checks(details=True)
    assert len(no_sleep) == 2
    assert len(report) == 33 and list(report.results)[0] == "data_elements_without_data_sets"
    # a bare UID (an object without a display name) is the issue's id, not its name
    assert report["data_elements_without_data_sets"].issues == [
        DataIntegrityIssue(None, "ANC 5th visit"), DataIntegrityIssue("fbfJHSPpUQD", None)]
    assert report["data_elements_violating_exclusive_group_sets"].issues == [
        DataIntegrityIssue("uidA1234567", "DE A", None, ["G1", "G2"])]
    assert report["indicators_with_identical_formulas"].issues == [
        DataIntegrityIssue(None, None, None, ["Ind A", "Ind B"]),
        DataIntegrityIssue(None, None, None, ["Ind C", "Ind D"])]
    assert report["indicators_with_invalid_numerator"].issues == [
        DataIntegrityIssue("uidIC123456", "Ind C", "Expression is not well-formed")]
    assert report["org_units_without_groups"].issues == [
        DataIntegrityIssue(None, "Ngelehun CHC"), DataIntegrityIssue(None, "Bo: Kakua:Ngelehun")]
    assert report["program_rules_without_condition"].issues == [
        DataIntegrityIssue("uidP1234567", "Program P", None, ["Rule 1:uidR1234567"])]
    result = report["periods_duplicates"]
    assert (result.section, result.severity, result.display_name, result.count) == (
        "Legacy", DataIntegritySeverity.WARNING, "periods_duplicates", 1)
    assert report["category_combos_being_invalid"].count == 0
    assert report["category_combos_being_invalid"].issues == []


@responses.activate
def test_run_on_236_summary_and_check_selection(no_sleep):
    add_236_run([json.dumps(FLAT_236)])
    report = make_session((2, 36, 0)).run_integrity_checks(
        checks=["periods_duplicates", "organisation_units_without_groups"])
    assert list(report.results) == ["periods_duplicates", "org_units_without_groups"]
    assert report["org_units_without_groups"].count == 2
    assert report["org_units_without_groups"].issues is None and not report.details
    assert query(calls_to("POST", "dataIntegrity")[0]) == {}


@responses.activate
def test_run_on_236_gives_up_when_the_report_never_appears(no_sleep):
    add_236_run(["null"])
    with pytest.raises(TaskTimeoutError) as info:
        make_session((2, 36, 0)).run_integrity_checks(timeout=5)
    assert info.value.job_id == JOB_ID
    assert 4 <= sum(no_sleep) <= 5.01


@responses.activate
def test_get_report_on_236_takes_the_newest_flattened_report():
    older = dict(FLAT_236, duplicatePeriods=["A", "B", "C"])
    newest = dict(FLAT_236, duplicatePeriods=[])
    responses.add(responses.GET, API + "system/taskSummaries/DATA_INTEGRITY",
                  json={"aaaaaaaaaa1": older, "bbbbbbbbbb2": newest})
    report = make_session((2, 36, 0)).get_integrity_report()
    assert report["periods_duplicates"].count == 0 and report.details
    rows = list(make_session((2, 36, 0)).iter_integrity_issues(checks=["periods_*"]))
    assert rows == []
    rows = list(make_session((2, 36, 0)).iter_integrity_issues(
        checks=["data_elements_without_data_sets"]))
    assert rows == [IntegrityIssueRow("data_elements_without_data_sets",
                                      "data_elements_without_data_sets",
                                      DataIntegritySeverity.WARNING,
                                      DataIntegrityIssue(None, "ANC 5th visit")),
                    IntegrityIssueRow("data_elements_without_data_sets",
                                      "data_elements_without_data_sets",
                                      DataIntegritySeverity.WARNING,
                                      DataIntegrityIssue("fbfJHSPpUQD", None))]


@responses.activate
def test_get_report_on_236_without_any_run_is_empty():
    responses.add(responses.GET, API + "system/taskSummaries/DATA_INTEGRITY", json={})
    assert len(make_session((2, 36, 0)).get_integrity_report()) == 0


def test_legacy_report_rejects_wrong_shapes():
    with pytest.raises(InvalidResponseError):
        integrity.legacy_report({"duplicatePeriods": {"a": 1}})
    with pytest.raises(InvalidResponseError):
        integrity.legacy_report({"indicatorsWithIdenticalFormulas": ["a"]})
    with pytest.raises(InvalidResponseError):
        integrity.legacy_report([])
    assert len(integrity.legacy_report({"somethingNew": [1]})) == 0


def test_legacy_name_uid_parsing():
    parse = integrity._legacy_issue_from_text
    assert parse("ANC 1st visit:fbfJHSPpUQD") == DataIntegrityIssue("fbfJHSPpUQD", "ANC 1st visit")
    assert parse("Ratio 1:2") == DataIntegrityIssue(None, "Ratio 1:2")
    assert parse(":fbfJHSPpUQD") == DataIntegrityIssue(None, ":fbfJHSPpUQD")
    # FlattenedDataIntegrityReport.java@2.36: defaultIfBlank(o.getDisplayName(), o.getUid())
    # and @2.37: the uid alone when getDisplayName() is null -> a bare UID is the id
    assert parse("fbfJHSPpUQD") == DataIntegrityIssue("fbfJHSPpUQD", None)
    assert parse("a1B2c3D4e5F", comment="bad") == DataIntegrityIssue("a1B2c3D4e5F", None, "bad")
    # an 11-letter word is a name, not a UID
    assert parse("Vaccination") == DataIntegrityIssue(None, "Vaccination")
    assert parse("Ngelehun CH") == DataIntegrityIssue(None, "Ngelehun CH")


# --- reading results ---------------------------------------------------------------------------


@responses.activate
def test_get_report_summary_and_details_on_242():
    responses.add(responses.GET, API + "dataIntegrity", json=CHECKS_242)
    responses.add(responses.GET, API + "dataIntegrity/summary",
                  json={"categories_no_options": summary("categories_no_options", 3)})
    responses.add(responses.GET, API + "dataIntegrity/details",
                  json={"categories_no_options": details("categories_no_options",
                                                         [{"id": "a1B2c3D4e5F", "name": "A"}])})
    session = make_session()
    report = session.get_integrity_report(details=False)
    assert report["categories_no_options"].count == 3 and not report.details
    report = session.get_integrity_report(checks=["CNO"])
    assert report.details and report["categories_no_options"].issues == [
        DataIntegrityIssue("a1B2c3D4e5F", "A")]
    assert query(responses.calls[0]) == {}
    assert path_of(responses.calls[1]) == "/api/dataIntegrity"
    assert query(responses.calls[2]) == {"checks": "categories_no_options"}


@responses.activate
def test_get_report_empty_map_and_empty_body():
    responses.add(responses.GET, API + "dataIntegrity/details", json={})
    responses.add(responses.GET, API + "dataIntegrity/summary", body="")
    session = make_session()
    assert len(session.get_integrity_report()) == 0  # {}: nothing cached, a real answer
    # DataIntegrityController.java@2.42 always writes a map: an empty 200 body is a
    # broken answer (proxy, restart), never "no results"
    with pytest.raises(InvalidResponseError) as info:
        session.get_integrity_report(details=False)
    assert "empty body" in str(info.value) and "/api/dataIntegrity/summary" in str(info.value)


@responses.activate
def test_get_report_rejects_a_list():
    responses.add(responses.GET, API + "dataIntegrity/summary", json=[1, 2])
    with pytest.raises(InvalidResponseError):
        make_session().get_integrity_report(details=False)


@responses.activate
def test_single_check_result():
    responses.add(responses.GET, API + "dataIntegrity/categories_no_options/summary",
                  json=summary("categories_no_options", 4))
    responses.add(responses.GET, API + "dataIntegrity/categories_no_options/details",
                  json=details("categories_no_options", [{"id": "a1B2c3D4e5F", "name": "A"}]))
    responses.add(responses.GET, API + "dataIntegrity/never_run/summary", body="")
    responses.add(responses.GET, API + "dataIntegrity/..%2Fusers/summary", body="")
    session = make_session()
    result = session.get_integrity_check_result("categories_no_options")
    assert isinstance(result, DataIntegrityResult) and result.count == 4
    result = session.get_integrity_check_result("categories_no_options", details=True)
    assert result.issues == [DataIntegrityIssue("a1B2c3D4e5F", "A")] and result.count == 1
    assert session.get_integrity_check_result("never_run") is None
    assert session.get_integrity_check_result("../users") is None
    assert responses.calls[-1].request.url.endswith("/api/dataIntegrity/..%2Fusers/summary")
    with pytest.raises(ValueError):
        session.get_integrity_check_result("")


def test_single_check_result_needs_237():
    with pytest.raises(UnsupportedServerError) as info:
        make_session((2, 36, 0)).get_integrity_check_result("periods_duplicates")
    assert "2.37" in str(info.value)


@pytest.mark.parametrize("details, kind", [(False, "summary"), (True, "details")])
@responses.activate
def test_running_and_completed(details, kind):
    responses.add(responses.GET, API + "dataIntegrity/{}/running".format(kind), json=["a", "b"])
    responses.add(responses.GET, API + "dataIntegrity/{}/completed".format(kind), json=["c"])
    session = make_session((2, 43, 0))
    assert session.running_integrity_checks(details=details) == ["a", "b"]
    assert session.completed_integrity_checks(details=details) == ["c"]


@responses.activate
def test_running_and_completed_reject_odd_answers_and_old_servers():
    responses.add(responses.GET, API + "dataIntegrity/summary/running", json=[1])
    with pytest.raises(InvalidResponseError):
        make_session().running_integrity_checks()
    for version in ((2, 38, 0), (2, 36, 0)):
        with pytest.raises(UnsupportedServerError):
            make_session(version).completed_integrity_checks()


@responses.activate
def test_version_is_read_from_the_server_when_unknown():
    responses.add(responses.GET, API + "system/info", json={"version": "2.37.9"})
    responses.add(responses.GET, API + "dataIntegrity", json=LEGACY_237)
    session = Session(URL, auth=("admin", "district"))
    assert len(session.list_integrity_checks(section="Legacy")) == 33
    assert session.server_version == (2, 37, 9)


# --- compare_reports --------------------------------------------------------------------------


def result(name, issues=None, count=None, severity="WARNING", error=None):
    if issues is not None and count is None:
        count = -1 if error else len(issues)
    return DataIntegrityResult(name=name, display_name=name.title(), severity=severity,
                               count=count, issues=issues, error=error)


def report(*results, details=True):
    return DataIntegrityReport(results={r.name: r for r in results}, details=details)


I = DataIntegrityIssue


def test_compare_details_reports():
    old = report(
        result("a", [I("u1", "One"), I("u2", "Two"), I("u3", "Three", "why")], severity="SEVERE"),
        result("b", [I(None, "nameless"), I(None, None, "c", ["x"])]),
        result("gone", [I("g1", "G")]),
    )
    new = report(
        result("a", [I("u1", "One"), I("u3", "Three", "other reason"), I("u4", "Four")],
               severity="SEVERE"),
        result("b", [I(None, "nameless"), I(None, None, "c", ["y"])]),
        result("fresh", [I("f1", "F")]),
    )
    cmp = compare_reports(old, new)
    assert isinstance(cmp, ReportComparison) and cmp.issues_compared and cmp.has_changes
    assert [(r.check_name, r.issue.id, r.issue.name) for r in cmp.new_issues] == [
        ("a", "u4", "Four"), ("b", None, None)]
    assert [(r.check_name, r.issue.id, r.issue.name) for r in cmp.resolved_issues] == [
        ("a", "u2", "Two"), ("b", None, None)]
    assert cmp.new_issues[0].severity == "SEVERE"
    assert cmp.new_issues[1].issue.refs == ["y"]
    (change,) = cmp.changed_issues
    assert change.old.issue.comment == "why" and change.new.issue.comment == "other reason"
    assert cmp.count_changes == {
        "fresh": CountChange("fresh", "Fresh", "WARNING", None, 1),
        "gone": CountChange("gone", "Gone", "WARNING", 1, None)}
    assert cmp.count_changes["fresh"].appeared and cmp.count_changes["gone"].disappeared
    assert cmp.worsened() == [] and cmp.improved() == []


def test_compare_duplicates_are_matched_one_to_one():
    old = report(result("a", [I("u1", "X"), I("u1", "X"), I(None, "n"), I(None, "n")]))
    new = report(result("a", [I("u1", "X"), I(None, "n"), I(None, "n"), I(None, "n")]))
    cmp = compare_reports(old, new)
    assert [r.issue for r in cmp.resolved_issues] == [I("u1", "X")]
    assert [r.issue for r in cmp.new_issues] == [I(None, "n")]
    assert cmp.count_changes == {}  # 4 and 4


def test_compare_summary_reports_counts_only():
    old = report(result("a", count=3, severity="CRITICAL"), result("b", count=5),
                 result("c", count=2), result("d", count=1), details=False)
    new = report(result("a", count=7, severity="CRITICAL"), result("b", count=1),
                 result("c", count=-1, error="boom"), result("d", count=1), details=False)
    cmp = compare_reports(old, new)
    assert not cmp.issues_compared and cmp.new_issues == [] and cmp.resolved_issues == []
    assert set(cmp.count_changes) == {"a", "b", "c"}
    assert [c.check_name for c in cmp.worsened()] == ["a"]
    assert [c.check_name for c in cmp.worsened("critical")] == ["a"]
    assert cmp.worsened(DataIntegritySeverity.CRITICAL)[0].delta == 4
    assert [c.check_name for c in cmp.improved()] == ["b"]
    assert cmp.improved("SEVERE") == []
    assert cmp.count_changes["c"].failed and cmp.count_changes["c"].delta is None
    with pytest.raises(ValueError):
        cmp.worsened("urgent")


def test_compare_skips_issue_diff_for_failed_checks_and_mixed_reports():
    old = report(result("a", [I("u1", "X")]), result("b", [I("u2", "Y")]))
    new = report(result("a", [], error="boom"), result("b", count=1, severity="INFO"))
    cmp = compare_reports(old, new)
    assert cmp.resolved_issues == [] and cmp.new_issues == [] and not cmp.issues_compared
    assert cmp.count_changes == {"a": CountChange("a", "A", "WARNING", 1, -1)}


def test_compare_new_issues_at_least_and_to_dict():
    old = report(result("a", [], severity="INFO"), result("b", [], severity="SEVERE"))
    new = report(result("a", [I("u1", "X")], severity="INFO"),
                 result("b", [I("u2", "Y", refs=["r"])], severity="SEVERE"))
    cmp = compare_reports(old, new)
    assert [r.check_name for r in cmp.new_issues_at_least("warning")] == ["b"]
    data = comparison_to_dict(cmp)
    assert json.loads(json.dumps(data)) == data
    assert data["newIssues"][1] == {"checkName": "b", "checkDisplayName": "B",
                                    "severity": "SEVERE",
                                    "issue": {"id": "u2", "name": "Y", "refs": ["r"]}}
    assert data["countChanges"]["a"] == {"checkName": "a", "displayName": "A",
                                         "severity": "INFO", "old": 0, "new": 1}


def test_compare_requires_reports():
    with pytest.raises(TypeError):
        compare_reports({}, report())


def test_compare_after_a_json_round_trip():
    old = report(result("a", [I("u1", "X", "c", ["r1", "r2"])]))
    new = from_json(to_json(old))
    assert not compare_reports(old, new).has_changes


# --- reports round-trip through JSON ---------------------------------------------------------


@responses.activate
def test_reports_round_trip_json():
    responses.add(responses.GET, API + "dataIntegrity/details", json={
        "categories_no_options": details("categories_no_options", [
            {"id": "a1B2c3D4e5F", "name": "Caf\u00e9 \"quoted\"", "comment": "c",
             "refs": ["x:y"]}, {"name": "no id"}], code="CNO"),
        "odd": dict(details("odd", [], error="Check failed because an exception was thrown: x"),
                    severity="BLOCKER"),
    })
    responses.add(responses.GET, API + "dataIntegrity/summary", json={
        "categories_no_options": summary("categories_no_options", 2, percentage=12.5),
        "failed": summary("failed", -1, error="boom"),
    })
    session = make_session()
    for report_ in (session.get_integrity_report(), session.get_integrity_report(details=False)):
        text = to_json(report_)
        again = from_json(text)
        assert again == report_
        assert report_from_dict(report_to_dict(report_)) == report_
        assert again.details == report_.details
    details_report = session.get_integrity_report()
    odd = from_json(to_json(details_report))["odd"]
    assert odd.severity == "BLOCKER" and odd.count == -1 and odd.issues == []
    first = from_json(to_json(details_report))["categories_no_options"]
    assert first.finished_time == datetime.datetime(2025, 1, 31, 10, 15, 5)
    assert first.severity is DataIntegritySeverity.WARNING


def test_round_trip_of_aware_times_and_legacy_reports():
    when = datetime.datetime(2025, 1, 31, 10, 15, 5, 123000, tzinfo=datetime.timezone.utc)
    original = report(DataIntegrityResult(name="x", count=0, issues=[], finished_time=when))
    assert from_json(to_json(original))["x"].finished_time == when
    legacy = integrity.legacy_report(FLAT_236)
    assert from_json(to_json(legacy)) == legacy


def test_from_json_reads_bytes_like_json_loads():
    # from_json is annotated Union[str, bytes]: a report read in binary mode
    # (UTF-8, with or without a BOM, or UTF-16) reads back the same.
    original = report(DataIntegrityResult(name="x", count=1, issues=[
        DataIntegrityIssue(id="a", name="Zürich", comment=None, refs=[])]))
    text = to_json(original)
    for raw in (text.encode("utf-8"), text.encode("utf-8-sig"), text.encode("utf-16")):
        assert from_json(raw) == original
    with pytest.raises(InvalidResponseError):
        from_json(b"\xff{not json")


def test_exports():
    assert dhis2maint.compare_reports is compare_reports
    assert dhis2maint.ReportComparison is ReportComparison


@responses.activate
def test_run_on_237_with_names_matching_nothing_is_a_configuration_error(no_sleep):
    responses.add(responses.GET, API + "dataIntegrity", json=LEGACY_237)
    responses.add(responses.POST, API + "dataIntegrity/summary", json=job_reply())
    with pytest.raises(dhis2maint.ConfigurationError) as info:
        make_session((2, 37, 0)).run_integrity_checks(checks=["no_such_check"])
    assert "'no_such_check'" in str(info.value) and "2.37.0" in str(info.value)
    assert calls_to("POST", "dataIntegrity/summary") == []
