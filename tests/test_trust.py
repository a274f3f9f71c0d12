"""Issue #12, "never a false green": every path that used to end green while nothing (or
the wrong thing) was checked is now correct or a clear, documented failure.

Each test names the item it covers.  Body shapes follow dhis2-core (``path@branch``).
"""
import json
import os
import pickle

import pytest
import responses

from dhis2maint import (ConfigurationError, ConflictError, InvalidResponseError,
                        JobFailedError, JobType, ServerError,
                        UnsupportedServerError, cli, errors, versions)
from dhis2maint import Session as _Session
from dhis2maint.integrity import match_checks
from dhis2maint.models import DataIntegrityCheck, ImportSummary
from dhis2maint.testing import Dhis2StandIn

# Simulated time (tests/conftest.py fake_time): the stand-ins' jobs and the waits for them
# take no real seconds; requests still go over real HTTP.  run_cli runs `dhis2maint` in
# this process (cli_in_process): what it says and exits with; the console-script path
# itself is test_cli's.
pytestmark = [pytest.mark.usefixtures("fake_time"), pytest.mark.cli_in_process]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
URL = "https://dhis2.example.org"
API = URL + "/api/"


_OPEN = []


def Session(*args, **kwargs):  # noqa: N802 - a closing stand-in for dhis2maint.Session
    session = _Session(*args, **kwargs)
    _OPEN.append(session)
    return session


@pytest.fixture(autouse=True)
def _close_sessions():
    yield
    while _OPEN:
        _OPEN.pop().close()  # no unclosed sockets left for the GC to complain about


def posts(srv, prefix=""):
    return [r for r in srv.requests if r.method == "POST" and r.path.startswith("/api/" + prefix)]


@pytest.fixture(scope="module")
def srv242(start_module_standin):
    return start_module_standin("2.42", job_seconds=0.2)


@pytest.fixture
def s242(srv242):
    srv242.reset_faults()
    srv242.clear_requests()
    return srv242


# --- 1. unknown check names, codes and wildcards ------------------------------------------


@pytest.mark.parametrize("command", [
    ["integrity", "run", "categories_no_option", "--fail-on", "info"],
    ["integrity", "report", "categories_no_option", "--fail-on", "info"],
    ["integrity", "issues", "categories_no_option"],
    ["integrity", "checks", "categories_no_option"],
])
def test_1_cli_unknown_check_name_exits_2_naming_it_and_close_matches(s242, command, run_cli):
    proc = run_cli(command, s242)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "'categories_no_option'" in proc.stderr
    assert "did you mean categories_no_options" in proc.stderr
    assert "DHIS2 2.42" in proc.stderr
    assert posts(s242, "dataIntegrity") == []  # nothing was started


def test_1_every_unmatched_token_is_named_and_matched_ones_are_not(s242):
    session = Session(s242.url, auth=("admin", "district"))
    with pytest.raises(ConfigurationError) as info:
        session.run_integrity_checks(["CNO", "nosuch_check", "XQZ", "program_rules_no_actoin",
                                      "zzz*"])
    text = str(info.value)
    for token in ("'nosuch_check'", "'XQZ'", "'program_rules_no_actoin'", "'zzz*'"):
        assert token in text
    assert "'CNO'" not in text
    assert "program_rules_no_action" in text  # a close match
    assert "check code" in text  # XQZ is read as a code, as DHIS2 does
    assert isinstance(info.value, ValueError)  # ConfigurationError is a ValueError too
    for call in (lambda: session.get_integrity_report(["nosuch_check"]),
                 lambda: list(session.iter_integrity_issues(["nosuch_check"])),
                 lambda: session.list_integrity_checks(checks=["nosuch_check"]),
                 lambda: session.start_integrity_run(["nosuch_check"])):
        with pytest.raises(ConfigurationError, match="nosuch_check"):
            call()
    assert posts(s242, "dataIntegrity") == []


def test_1_all_capitals_wildcard_is_a_code_on_239_plus(s242, run_cli):
    # DefaultDataIntegrityService.expandChecks@2.42: upper case and no '_' -> a code, so
    # "DATA*" matches nothing on the server; it must not silently run nothing
    proc = run_cli(["integrity", "run", "DATA*"], s242)
    assert proc.returncode == 2
    assert "check code" in proc.stderr and "data*" in proc.stderr


def test_1_matching_follows_dhis2_rules():
    checks = [DataIntegrityCheck(name="categories_no_options", code="CNO"),
              DataIntegrityCheck(name="category_no_options_x", code="CNOX"),
              DataIntegrityCheck(name="program_rules_no_action", code="PRNA")]
    pick = lambda tokens, codes=True: [c.name for c in match_checks(tokens, checks, codes)[0]]
    assert pick(["Categories-No-Options"]) == ["categories_no_options"]  # case, dashes
    assert pick(["program*", "CNO"]) == ["program_rules_no_action", "categories_no_options"]
    assert pick(["*no_opt*"]) == ["categories_no_options", "category_no_options_x"]
    # characters other than [*_a-z0-9] are dropped, so "." is no regex wildcard
    assert pick(["categ.ories*"]) == ["categories_no_options"]
    assert pick(["cat.gories*"]) == []
    assert match_checks(["CATEGORIES-NO-OPTIONS"], checks)[1] == ["CATEGORIES-NO-OPTIONS"]
    # 2.37/2.38 lower-case every token: an all-caps name still works there
    assert pick(["CATEGORIES-NO-OPTIONS"], codes=False) == ["categories_no_options"]


def test_1_report_of_an_existing_check_without_a_cached_result_says_so(s242, run_cli):
    proc = run_cli(["integrity", "report", "CNO", "--fail-on", "info"], s242)
    assert proc.returncode == 0, proc.stderr
    assert "no cached result for 1 of the 1 selected checks: categories_no_options" in proc.stderr


# --- 2. codes on 2.37/2.38 -----------------------------------------------------------------


def test_2_check_codes_are_computed_like_dhis2():
    # DataIntegrityCheck.getCodeFromName@2.39: first letter of each "_" word, upper-cased
    assert versions.check_code("categories_no_options") == "CNO"
    assert versions.check_code("program_rule_actions_without_stage_id") == "PRAWSI"
    assert versions.check_code("data_elements_without_data_sets") == "DEWDS"


@pytest.mark.parametrize("version", ["2.37", "2.38"])
def test_2_codes_on_237_238_select_the_check_and_post_its_name(version, run_cli):
    # DataIntegrityCheck.java@2.38 has no code and expandChecks@2.38 only lower-cases, so
    # "CNO" sent as-is would run nothing and give an empty report
    with Dhis2StandIn(version=version, job_seconds=0.2) as srv:
        session = Session(srv.url, auth=("admin", "district"))
        report = session.run_integrity_checks(["CNO"])
        assert list(report.results) == ["categories_no_options"]
        assert posts(srv, "dataIntegrity/summary")[0].query == {
            "checks": ["categories_no_options"]}
        # a legacy check by its code, and the two legacy checks sharing "PRAWS"
        picked = session.list_integrity_checks(checks=["OUWG", "PRAWS"])
        assert [c.name for c in picked] == [
            "org_units_without_groups", "program_rule_actions_without_section",
            "program_rule_actions_without_stage"]
        srv.set_issue_count("categories_no_options", 2)
        proc = run_cli(["integrity", "run", "CNO", "--format", "json", "--fail-on", "info"], srv)
    assert proc.returncode == 1, proc.stderr  # the 2 issues were found: not an empty green run
    assert json.loads(proc.stdout)["results"]["categories_no_options"]["count"] == 2


# --- 3. empty 200 bodies ---------------------------------------------------------------


def test_3_empty_summary_body_exits_3_not_0(s242, run_cli):
    s242.empty_next(method="GET", path="dataIntegrity/summary")
    proc = run_cli(["integrity", "run", "CNO", "--fail-on", "info"], s242)
    assert proc.returncode == 3, proc.stderr
    assert "GET /api/dataIntegrity/summary" in proc.stderr and "empty body" in proc.stderr


def test_3_empty_details_body_in_report_and_issues(s242, run_cli):
    for command in (["integrity", "report", "--details"], ["integrity", "issues"]):
        s242.empty_next(method="GET", path="dataIntegrity/details")
        proc = run_cli(command, s242)
        assert proc.returncode == 3, (command, proc.stderr)
        assert "empty body" in proc.stderr


# job starts: POST with an empty 200 body; the stand-in carries the request out
_EMPTY_STARTS = [
    ("2.42", "resourceTables", "RESOURCE_TABLE", lambda s: s.refresh_resource_tables()),
    ("2.42", "resourceTables/analytics", "ANALYTICS_TABLE", lambda s: s.refresh_analytics()),
    ("2.42", "resourceTables/monitoring", "MONITORING", lambda s: s.refresh_monitoring()),
    ("2.42", "dataIntegrity/details", "DATA_INTEGRITY_DETAILS",
     lambda s: s.start_integrity_run(["CNO"], details=True)),
    ("2.38", "dataIntegrity/summary", "DATA_INTEGRITY", lambda s: s.start_integrity_run()),
    ("2.36", "dataIntegrity", "DATA_INTEGRITY", lambda s: s.start_integrity_run()),
]


@pytest.mark.parametrize("version, path, job_type, start", _EMPTY_STARTS,
                         ids=["{}-{}".format(v, p) for v, p, _t, _s in _EMPTY_STARTS])
def test_3_empty_body_to_a_job_start_is_invalid_and_says_the_job_may_have_started(
        version, path, job_type, start):
    with Dhis2StandIn(version=version, job_seconds=0.2) as srv:
        session = Session(srv.url, auth=("admin", "district"))
        session.server_version
        srv.empty_next(method="POST", path=path)
        with pytest.raises(InvalidResponseError) as info:
            start(session)
        err = info.value
        text = str(err)
        assert "POST /api/" + path in text and "empty body" in text
        assert err.outcome_unknown and err.empty_body
        assert "the {} job MAY have started".format(job_type) in text
        # what to do is a follow-up, worded as a Session call in Python (#20.6)
        assert "session.get_task_notifications('{}')".format(job_type) in text
        # the request did reach DHIS2 (and was not sent again)
        assert len(posts(srv, path)) == 1 and len(srv.job_ids()) == 1


def test_3_empty_job_start_answer_is_recovered_like_a_lost_one():
    with Dhis2StandIn(version="2.42", job_seconds=0.2) as srv:
        session = Session(srv.url, auth=("admin", "district"), recover_job_starts=True)
        srv.empty_next(method="POST", path="resourceTables")
        job = session.refresh_resource_tables()
        assert job.id == srv.job_ids("RESOURCE_TABLE")[0]
        assert "recovered" in job.message
        assert job.wait(timeout=20).completed


def test_3_cli_empty_job_start_exits_3_saying_it_may_have_started(s242, run_cli):
    s242.empty_next(method="POST", path="resourceTables")
    proc = run_cli(["refresh", "resource-tables"], s242)
    assert proc.returncode == 3, proc.stderr
    assert "POST /api/resourceTables" in proc.stderr and "empty body" in proc.stderr
    assert "MAY have started" in proc.stderr
    # the follow-up in the command line's words, not Python's (#20.6)
    assert "`dhis2maint task status RESOURCE_TABLE`" in proc.stderr
    assert "session." not in proc.stderr
    assert len(posts(s242, "resourceTables")) == 1


_EMPTY_LISTS = [
    ("2.42", "dataIntegrity", lambda s: s.list_integrity_checks()),
    ("2.38", "dataIntegrity", lambda s: s.list_integrity_checks()),
    ("2.42", "dataIntegrity", lambda s: s.get_integrity_report(["CNO"])),
    ("2.42", "jobConfigurations", lambda s: s.list_job_configurations()),
    ("2.42", "system/tasks/RESOURCE_TABLE", lambda s: s.list_tasks("RESOURCE_TABLE")),
]


@pytest.mark.parametrize("version, path, call", _EMPTY_LISTS,
                         ids=["{}-{}-{}".format(v, p, i) for i, (v, p, _c)
                              in enumerate(_EMPTY_LISTS)])
def test_3_empty_body_from_a_list_endpoint_is_invalid(version, path, call):
    with Dhis2StandIn(version=version, job_seconds=0.2) as srv:
        session = Session(srv.url, auth=("admin", "district"))
        session.server_version
        srv.empty_next(method="GET", path=path)
        with pytest.raises(InvalidResponseError) as info:
            call(session)
        err = info.value
        assert "GET /api/" + path in str(err) and "empty body" in str(err)
        assert err.empty_body and not err.outcome_unknown  # a GET changes nothing
        assert "MAY have started" not in str(err)


def test_3_an_empty_map_is_still_no_cached_results(run_cli):
    with Dhis2StandIn(version="2.42") as srv:  # nothing run yet: GET …/summary answers {}
        proc = run_cli(["integrity", "report", "--fail-on", "info"], srv)
    assert proc.returncode == 0, proc.stderr
    assert "no cached data-integrity results" in proc.stderr


# --- 4. slow checks ---------------------------------------------------------------------


def test_4_default_run_says_how_many_slow_checks_were_skipped(s242, run_cli):
    session = Session(s242.url, auth=("admin", "district"))
    slow = len(session.list_integrity_checks(slow=True))
    assert slow == 20  # integrity-2.39+.md §7: 2.42 lists 20 slow checks
    proc = run_cli(["integrity", "run", "--format", "json"], s242)
    assert proc.returncode == 0, proc.stderr
    assert "20 slow checks are not part of DHIS2's default run" in proc.stderr
    assert "--include-slow" in proc.stderr and "--slow" in proc.stderr
    quiet = run_cli(["integrity", "run", "--quiet", "--format", "json"], s242)
    assert "slow" not in quiet.stderr


def test_4_slow_runs_only_the_slow_checks(s242, run_cli):
    session = Session(s242.url, auth=("admin", "district"))
    slow = [c.name for c in session.list_integrity_checks(slow=True)]
    s242.clear_requests()
    proc = run_cli(["integrity", "run", "--slow", "--format", "json"], s242, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(json.loads(proc.stdout)["results"]) == sorted(slow)
    assert posts(s242, "dataIntegrity/summary")[0].query["checks"] == [",".join(slow)]
    both = run_cli(["integrity", "run", "--slow", "CNO"], s242)
    assert both.returncode == 2 and "--slow" in both.stderr


def test_4_include_slow_with_names_is_called_redundant(s242, run_cli):
    proc = run_cli(["integrity", "run", "CNO", "--include-slow"], s242)
    assert proc.returncode == 0, proc.stderr
    assert "--include-slow has no effect with CHECK names" in proc.stderr


def test_4_slow_on_a_server_without_slow_checks_is_refused(run_cli):
    with Dhis2StandIn(version="2.38") as srv:
        proc = run_cli(["integrity", "run", "--slow"], srv)
    assert proc.returncode == 2 and "no slow data-integrity checks" in proc.stderr


# --- 5. internal errors exit 5 (see also tests/test_cli_args.py) ---------------------------


def test_5_exit_code_table_in_help_and_docstring():
    assert cli.EXIT_INTERNAL == 5
    assert "5  internal error" in cli.EXIT_CODES_HELP and "5  internal error" in cli.__doc__
    for text in (cli.EXIT_CODES_HELP, cli.__doc__):  # every way to exit 1 is named
        assert all(cause in text for cause in ("--fail-on ", "--fail-on-new", "jobs health",
                                               "integrity diff", "doctor"))
    # The exit-code table lives in docs/failure-modes.rst (it was in the README).
    with open(os.path.join(ROOT, "docs", "failure-modes.rst"), encoding="utf-8") as handle:
        guide = handle.read()
    assert "internal error" in guide and "--debug" in guide


# --- 6. default wait limits ---------------------------------------------------------------


@pytest.mark.parametrize("argv, expected", [
    (["integrity", "run"], 7200.0),
    (["refresh", "analytics"], 43200.0),
    (["refresh", "resource-tables"], 21600.0),
    (["refresh", "monitoring"], 21600.0),
    (["task", "wait", "ANALYTICS_TABLE", "Vu1ZkG2Kb3D"], 21600.0),
    (["maintenance", "coc-update"], 600.0),
    (["jobs", "run", "Vu1ZkG2Kb3D", "--wait"], 21600.0),
])
def test_6_waits_have_documented_defaults_and_none_means_no_limit(argv, expected):
    parser = cli.build_parser()
    assert parser.parse_args(argv).timeout == expected
    assert parser.parse_args(argv + ["--timeout", "none"]).timeout is None
    assert parser.parse_args(argv + ["--timeout", "90"]).timeout == 90.0
    assert parser.parse_args(argv + ["--timeout", "30m"]).timeout == 1800.0


@pytest.mark.parametrize("bad", ["0", "-5", "soon", "nan", "inf"])
def test_6_bad_timeouts_are_usage_errors(bad, capsys):
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["integrity", "run", "--timeout", bad])
    assert info.value.code == 2
    assert "none" in capsys.readouterr().err


def test_6_the_default_limit_reaches_the_wait(s242, monkeypatch):
    seen = {}

    def fake_wait(self, job_type, job_id, timeout=None, **kwargs):
        seen["timeout"] = timeout
        raise errors.TaskTimeoutError("gave up", job_id=job_id)

    monkeypatch.setattr(_Session, "wait_for_task", fake_wait)
    monkeypatch.setenv("DHIS2_URL", s242.url)
    monkeypatch.setenv("DHIS2_USERNAME", "admin")
    monkeypatch.setenv("DHIS2_PASSWORD", "district")
    assert cli.main(["refresh", "resource-tables", "--quiet"]) == cli.EXIT_JOB
    assert seen["timeout"] == 21600.0


# --- 9. COC update answered with a WARNING summary ---------------------------------------

# WebMessageUtils.importSummaries@2.42: WARNING -> HTTP 409, status WARNING;
# DefaultCategoryOptionComboGenerateService.deleteObsoleteCoc@2.42: WARNING + ignored 1
WARNING_409 = {
    "httpStatus": "Conflict", "httpStatusCode": 409, "status": "WARNING",
    "message": "One or more conflicts encountered, please check import summary.",
    "response": {
        "responseType": "ImportSummaries", "status": "WARNING", "imported": 2, "updated": 0,
        "deleted": 0, "ignored": 1, "total": 3, "importSummaries": [
            {"responseType": "ImportSummary", "status": "SUCCESS",
             "importCount": {"imported": 1, "updated": 0, "ignored": 0, "deleted": 0},
             "description": "Added missing category option combo: `Male` for category combo: "
                            "`Sex`", "conflicts": [], "rejectedIndexes": []},
            {"responseType": "ImportSummary", "status": "SUCCESS",
             "importCount": {"imported": 1, "updated": 0, "ignored": 0, "deleted": 0},
             "description": "Added missing category option combo: `Female` for category combo:"
                            " `Sex`", "conflicts": [], "rejectedIndexes": []},
            {"responseType": "ImportSummary", "status": "WARNING",
             "importCount": {"imported": 0, "updated": 0, "ignored": 1, "deleted": 0},
             "description": "Could not delete category option combo: `Male, <5` due to `Object "
                            "could not be deleted because it is associated with another "
                            "object: DataValue`", "conflicts": [], "rejectedIndexes": []}]}}


@responses.activate
def test_9_warning_409_is_a_success_with_its_summary():
    uid = "t3aNCvHsoSn"
    url = API + "maintenance/categoryOptionComboUpdate/categoryCombo/" + uid
    responses.add(responses.POST, url, status=409, json=WARNING_409)
    session = Session(URL, auth=("admin", "district"))
    summary = session.update_category_option_combos(uid)
    assert isinstance(summary, ImportSummary)
    assert (summary.status, summary.imported, summary.ignored) == ("WARNING", 2, 1)
    assert summary.descriptions[2].startswith("Could not delete category option combo")
    # an ERROR summary (MaintenanceController@2.42: invalid combo) still raises
    error = dict(WARNING_409, status="ERROR",
                 message="An error occurred, please check import summary.",
                 response=dict(WARNING_409["response"], status="ERROR"))
    responses.replace(responses.POST, url, status=409, json=error)
    with pytest.raises(ConflictError, match="An error occurred"):
        session.update_category_option_combos(uid)
    responses.replace(responses.POST, url, status=409, json={
        "httpStatus": "Conflict", "httpStatusCode": 409, "status": "ERROR",
        "message": "CategoryCombo does not exist: " + uid})
    with pytest.raises(ConflictError, match="does not exist"):
        session.update_category_option_combos(uid)
    # a 409 whose body is no WebMessage (a proxy's page): the HTTP error, not a crash
    responses.replace(responses.POST, url, status=409, body="<html>Conflict</html>",
                      content_type="text/html")
    with pytest.raises(ConflictError):
        session.update_category_option_combos(uid)


def test_9_coc_wait_polls_after_a_warning_and_the_cli_exits_0(run_cli):
    with Dhis2StandIn(version="2.43") as srv:
        srv.coc_in_use = True
        srv.coc_generation_delay = 0.3
        session = Session(srv.url, auth=("admin", "district"))
        age_and_sex = "t3aNCvHsoSn"
        session.update_category_option_combos(age_and_sex)  # the 4 Age x Sex combos
        # drop the Age category: its 4 combos become obsolete but are in use (data)
        session.put(session.api_url("categoryCombos/" + age_and_sex),
                    json={"name": "Age and sex", "categories": [{"id": "cX5k9anHEHd"}]})
        state = session.wait_for_coc_generation(age_and_sex, timeout=10, poll_interval=0.05)
        assert state.expected_count == 2 and state.count == 6  # 2 new + 4 kept in use
        gets = [r for r in srv.requests if r.path.endswith("categoryCombos/" + age_and_sex)]
        assert len(gets) >= 2  # it polled instead of aborting on the 409
        proc = run_cli(["maintenance", "coc-update", "--category-combo", age_and_sex], srv)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING: 4 kept" in proc.stdout and "Could not delete" in proc.stdout


# --- 10. devMessage ----------------------------------------------------------------------


@responses.activate
def test_10_dev_message_is_kept_and_shown():
    # PredictionController / WebMessageUtils.conflict@2.42 put the cause in devMessage
    responses.add(responses.POST, API + "predictors/a4Tz9PZk2Wq/run", status=409, json={
        "httpStatus": "Conflict", "httpStatusCode": 409, "status": "ERROR",
        "message": "Unable to predict ANC 1-3 Dropout prediction",
        "devMessage": "Expression is not well-formed: #{fbfJHSPpUQD"})
    session = Session(URL, auth=("admin", "district"))
    with pytest.raises(ConflictError) as info:
        session.run_predictors("2025-01-01", "2025-01-31", predictors=["a4Tz9PZk2Wq"])
    err = info.value
    assert err.dev_message == "Expression is not well-formed: #{fbfJHSPpUQD"
    text = str(err)
    assert text.index("Unable to predict") < text.index("Expression is not well-formed")
    assert pickle.loads(pickle.dumps(err)).dev_message == err.dev_message


# a 500 WebMessage: WebMessageUtils.error(message, devMessage) / the controller advice's
# default handler (httpStatus, httpStatusCode, status ERROR, message, devMessage)
_ERROR_500 = {"httpStatus": "Internal Server Error", "httpStatusCode": 500, "status": "ERROR",
              "message": "Failed to run analytics tables update",
              "devMessage": "PSQLException: ERROR: could not extend file: No space left on device"}


@pytest.mark.parametrize("method, path, call", [
    ("POST", "/api/resourceTables/analytics", lambda s: s.refresh_analytics()),
    ("GET", "/api/dataIntegrity", lambda s: s.list_integrity_checks()),
], ids=["POST", "GET"])
def test_10_server_error_dev_message_is_kept_and_shown(s242, method, path, call):
    session = Session(s242.url, auth=("admin", "district"))
    session.server_version
    s242.answer_next(json.dumps(_ERROR_500), status=500, method=method, path=path,
                     content_type="application/json;charset=UTF-8")
    with pytest.raises(ServerError) as info:
        call(session)
    err = info.value
    assert err.status_code == 500 and err.dhis2_message == _ERROR_500["message"]
    assert err.dev_message == _ERROR_500["devMessage"]
    text = str(err)
    assert "{} {} -> HTTP 500".format(method, path) in text
    assert text.index("Failed to run analytics") < text.index("No space left on device")
    assert pickle.loads(pickle.dumps(err)).dev_message == err.dev_message


def test_10_cli_shows_the_dev_message_of_a_500(s242, run_cli):
    s242.answer_next(json.dumps(_ERROR_500), status=500, method="POST",
                     path="/api/resourceTables/analytics",
                     content_type="application/json;charset=UTF-8")
    proc = run_cli(["refresh", "analytics"], s242)
    assert proc.returncode == 3, proc.stderr
    assert "HTTP 500" in proc.stderr and "No space left on device" in proc.stderr


def test_10_cli_shows_the_dev_message(s242, run_cli):
    s242.fail_predictor("b7RnXc2LpQe")
    proc = run_cli(["predictors", "run", "--start-date", "2025-01-01", "--end-date",
                    "2025-01-31", "--predictor", "b7RnXc2LpQe"], s242)
    assert proc.returncode == 3
    assert "Unable to predict" in proc.stderr and "Simulated predictor failure" in proc.stderr


# --- 12. JobType ---------------------------------------------------------------------------

# the enum constants of dhis-2/dhis-api/src/main/java/org/hisp/dhis/scheduling/JobType.java,
# union over the branches 2.36 ... master
ALL_JOB_TYPES = """DATA_STATISTICS DATA_INTEGRITY RESOURCE_TABLE ANALYTICS_TABLE
CONTINUOUS_ANALYTICS_TABLE DATA_SYNC TRACKER_PROGRAMS_DATA_SYNC EVENT_PROGRAMS_DATA_SYNC
FILE_RESOURCE_CLEANUP IMAGE_PROCESSING META_DATA_SYNC SMS_SEND SEND_SCHEDULED_MESSAGE
PROGRAM_NOTIFICATIONS VALIDATION_RESULTS_NOTIFICATION CREDENTIALS_EXPIRY_ALERT MONITORING
PUSH_ANALYSIS PREDICTOR DATA_SET_NOTIFICATION REMOVE_USED_OR_EXPIRED_RESERVED_VALUES
TRACKER_IMPORT_JOB TRACKER_IMPORT_NOTIFICATION_JOB TRACKER_IMPORT_RULE_ENGINE_JOB LEADER_ELECTION
LEADER_RENEWAL COMPLETE_DATA_SET_REGISTRATION_IMPORT DATAVALUE_IMPORT_INTERNAL METADATA_IMPORT
DATAVALUE_IMPORT EVENT_IMPORT ENROLLMENT_IMPORT TEI_IMPORT DISABLE_INACTIVE_USERS MOCK GML_IMPORT
ANALYTICSTABLE_UPDATE PROGRAM_DATA_SYNC ACCOUNT_EXPIRY_ALERT TEST TRACKER_SEARCH_OPTIMIZATION
SYSTEM_VERSION_UPDATE_CHECK DATA_INTEGRITY_DETAILS AGGREGATE_DATA_EXCHANGE GEOJSON_IMPORT
MATERIALIZED_SQL_VIEW_UPDATE HTML_PUSH_ANALYTICS LOCK_EXCEPTION_CLEANUP HOUSEKEEPING
DATA_VALUE_TRIM SINGLE_EVENT_DATA_SYNC TRACKED_ENTITY_DATA_SYNC SMS_INBOUND_PROCESSING
TRACKER_TRIGRAM_INDEX_MAINTENANCE""".split()


def test_12_every_job_type_from_236_to_master_is_known():
    assert len(ALL_JOB_TYPES) == 54
    assert sorted(m.value for m in JobType) == sorted(ALL_JOB_TYPES)
    assert JobType("TEI_IMPORT") is JobType.TEI_IMPORT


# --- 13. predictor groups ------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.36", "2.37"])
def test_13_predictor_groups_need_238_and_nothing_is_posted(version, run_cli):
    with Dhis2StandIn(version=version) as srv:
        session = Session(srv.url, auth=("admin", "district"))
        with pytest.raises(UnsupportedServerError, match="2.38"):
            session.run_predictors("2025-01-01", "2025-01-31", predictors=["a4Tz9PZk2Wq"],
                                   predictor_groups=["gP9sHqL4kRt"])
        assert posts(srv) == []  # not even the single predictor before the group
        proc = run_cli(["predictors", "run", "--start-date", "2025-01-01", "--end-date",
                        "2025-01-31", "--group", "gP9sHqL4kRt"], srv)
        assert proc.returncode == 3 and "needs DHIS2 2.38" in proc.stderr
        assert posts(srv) == []


# --- 14. SNAPSHOT builds -------------------------------------------------------------------


def test_14_snapshot_keeps_its_marker_and_counts_as_the_previous_patch():
    v = versions.parse_version("2.41.4-SNAPSHOT")
    assert v == (2, 41, 4) and v.snapshot and v.text == "2.41.4-SNAPSHOT"
    assert not versions.parse_version("2.41.4").snapshot
    assert versions.version_text(v) == "2.41.4-SNAPSHOT"
    assert pickle.loads(pickle.dumps(v)).snapshot
    # BACKPORTED_FEATURES["validation_max_results"]: 2.41.4+ and 2.42.1+
    assert not versions.supports(v, "validation_max_results")
    assert versions.supports(versions.parse_version("2.41.4"), "validation_max_results")
    assert versions.supports(versions.parse_version("2.41.5-SNAPSHOT"), "validation_max_results")
    assert not versions.supports(versions.parse_version("2.42.1-SNAPSHOT"),
                                 "validation_max_results")
    assert versions.supports(versions.parse_version("2.42.2-SNAPSHOT"), "validation_max_results")
    # minor-level features are unaffected: master (2.44-SNAPSHOT) is still 2.44
    assert versions.supports(versions.parse_version("2.44-SNAPSHOT"), "maintenance_ok_message")
    with pytest.raises(UnsupportedServerError, match="2.41.4-SNAPSHOT"):
        versions.require(v, "validation_max_results", "max_results")


@responses.activate
def test_14_session_reports_the_snapshot_and_gates_patch_level_parameters():
    responses.add(responses.GET, API + "system/info", json={"version": "2.41.1-SNAPSHOT"})
    session = Session(URL, auth=("admin", "district"))
    assert session.server_version == (2, 41, 1)
    assert session.server_version_text == "2.41.1-SNAPSHOT" and session.server_is_snapshot
    # ANALYTICS_PARAMETERS: skipValidationResult from 2.41.1; the SNAPSHOT lacks it
    with pytest.raises(UnsupportedServerError, match="2.41.1-SNAPSHOT"):
        session.refresh_analytics(skip_validation_results=True)
    assert [c.request.method for c in responses.calls] == ["GET"]


def test_14_cli_version_shows_the_snapshot(run_cli):
    with Dhis2StandIn(version="2.43-SNAPSHOT") as srv:
        proc = run_cli(["version"], srv)
    assert proc.returncode == 0 and "DHIS2 2.43-SNAPSHOT at" in proc.stdout


# --- 15. why a job failed ---------------------------------------------------------------


def test_15_job_configuration_fallback_reads_error_codes(monkeypatch):
    from dhis2maint import jobs

    monkeypatch.setattr(jobs, "START_GRACE", 0.0)
    monkeypatch.setattr(jobs, "FALLBACK_RECHECK", 0.0)
    with Dhis2StandIn(version="2.42", job_seconds=0.2) as srv:
        srv.drop_feed_after_completion = True
        srv.start_delay = 0.5
        srv.job_error_codes = "E7010 E7131"
        srv.fail_next_job("Process failed: Table creation failed")
        session = Session(srv.url, auth=("admin", "district"))
        job = session.refresh_resource_tables()
        with pytest.raises(JobFailedError) as info:
            job.wait(timeout=20, poll_interval=0.05)
        assert "E7010 E7131" in str(info.value)
        asked = [r for r in srv.requests if r.path.startswith("/api/jobConfigurations/")]
        fields = asked[0].query["fields"][0].split(",")
        assert {"errorCodes", "executedBy", "schedulingType"} <= set(fields)
        config = session.get_job_configuration(job.id)
        assert config.error_codes == "E7010 E7131" and config.scheduling_type == "ONCE_ASAP"
        assert config.executed_by


@responses.activate
def test_15_fields_asked_per_version():
    uid = "Vu1ZkG2Kb3D"
    responses.add(responses.GET, API + "jobConfigurations/" + uid,
                  json={"id": uid, "jobType": "ANALYTICS_TABLE", "schedulingType": "CRON"})
    session = Session(URL, auth=("admin", "district"))
    session.server_version = "2.40.3"  # JobConfiguration.java@2.40: no errorCodes/executedBy
    session.get_job_configuration(uid)
    fields = responses.calls[0].request.url.split("fields=")[1]
    assert "schedulingType" in fields and "errorCodes" not in fields
    session.server_version = "2.41.0"
    session.get_job_configuration(uid)
    assert "errorCodes" in responses.calls[1].request.url


@pytest.mark.parametrize("version, job_type, known", [
    ("2.39", "TEI_IMPORT", True), ("2.41", "EVENT_PROGRAMS_DATA_SYNC", True),
    ("2.42", "TEI_IMPORT", False), ("2.40", "LEADER_ELECTION", True),
    ("2.41", "LEADER_ELECTION", False), ("2.38", "DATA_INTEGRITY_DETAILS", False)])
def test_12_the_stand_in_knows_the_job_types_of_its_version(version, job_type, known):
    from dhis2maint import BadRequest

    with Dhis2StandIn(version=version) as srv:
        session = Session(srv.url, auth=("admin", "district"))
        if known:
            assert session.get_latest_task(job_type) == (None, [])
        else:
            with pytest.raises(BadRequest):
                session.get_latest_task(job_type)


# --- 11. bare UIDs in the flattened report ------------------------------------------------


def test_11_objects_without_a_name_come_back_as_ids():
    # FlattenedDataIntegrityReport.java@2.36: defaultIfBlank(o.getDisplayName(), o.getUid())
    with Dhis2StandIn(version="2.36", job_seconds=0.2) as srv:
        srv.nameless_every = 2
        srv.set_issue_count("data_elements_without_data_sets", 4)
        session = Session(srv.url, auth=("admin", "district"))
        report = session.run_integrity_checks(details=True, timeout=20)
    issues = report["data_elements_without_data_sets"].issues
    nameless = [i for i in issues if i.name is None]
    assert len(issues) == 4 and len(nameless) == 2
    assert all(i.id and len(i.id) == 11 for i in nameless)
    assert all(i.id is None and i.name.startswith("Object ") for i in issues if i.name)


# --- 8. check information on 2.37/2.38 results -----------------------------------------


@pytest.mark.parametrize("version", ["2.37", "2.38"])
def test_8_results_on_237_238_carry_the_check_list_information(version):
    # DataIntegritySummary/Details@2.38 unwrap DataIntegrityCheck, which has name, section,
    # severity, description, introduction, recommendation only: isSlow, isProgrammatic,
    # sectionOrder, issuesIdType come with 2.39.  What the check list says is filled in.
    with Dhis2StandIn(version=version, job_seconds=0.2) as srv:
        srv.set_issue_count("categories_no_options", 2)
        session = Session(srv.url, auth=("admin", "district"))
        check = session.list_integrity_checks(checks=["categories_no_options"])[0]
        assert check.description and check.introduction and check.recommendation
        run = session.run_integrity_checks(["categories_no_options"], details=True, timeout=20)
        cached = session.get_integrity_report(details=True)
        assert len(run["categories_no_options"].issues) == 2
        for result in (run["categories_no_options"], cached["categories_no_options"]):
            assert result.description == check.description
            assert result.introduction == check.introduction
            assert result.recommendation == check.recommendation
            assert result.section == check.section and result.display_name == check.display_name
            # not in a 2.37/2.38 result: from the check list
            assert result.is_slow is False and result.is_programmatic is False


def test_4_the_library_logs_the_skipped_slow_checks(s242, caplog):
    import logging

    session = Session(s242.url, auth=("admin", "district"))
    with caplog.at_level(logging.INFO, logger="dhis2maint"):
        session.run_integrity_checks(timeout=20)
    assert any("20 slow data-integrity checks" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dhis2maint"):
        session.run_integrity_checks(["CNO"], include_slow=True, timeout=20)
    assert any("include_slow has no effect" in r.getMessage() for r in caplog.records)
