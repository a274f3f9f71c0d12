"""Server health as DHIS2 data values (#25): the pure builders without HTTP, and setup, push
and status over real HTTP against the stand-in on 2.36 and 2.42."""
import datetime
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dhis2maint import datavalues as dv
from dhis2maint.errors import ConfigurationError, Dhis2Error
from dhis2maint.models import (DataIntegrityCheck, DataIntegrityReport, DataIntegrityResult,
                               HealthFinding, SchedulerHealth)

UID = re.compile(r"^[A-Za-z][A-Za-z0-9]{10}$")
ROOT = "ImspTQPwCqd"  # the stand-in's root organisation unit
DAY = datetime.datetime(2026, 3, 14, 2, 30)


def _report(results, server_time=DAY):
    return DataIntegrityReport(results={r.name: r for r in results}, server_time=server_time)


# --- pure: UIDs, codes, the metadata -------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=60))
def test_uid_from_code_is_a_valid_uid_and_stable(code):
    uid = dv.uid_from_code(code)
    assert UID.match(uid)
    assert dv.uid_from_code(code) == uid


def test_the_records_default_prefix_is_the_modules():
    # MetadataImportReport lives in models (built on first use), which cannot import
    # datavalues for the constant: the two must agree.
    from dhis2maint import models
    assert models.MetadataImportReport("OK").prefix == dv.DEFAULT_PREFIX


def test_uids_of_different_codes_differ():
    codes = ["DM_{}".format(i) for i in range(5000)]
    assert len({dv.uid_from_code(c) for c in codes}) == len(codes)


def test_check_codes_carry_the_prefix_and_stay_distinct():
    assert dv.check_codes(["categories_no_options"]) == {"categories_no_options": "DM_CNO"}
    assert dv.check_codes(["categories_no_options"], "MI_") == {"categories_no_options": "MI_CNO"}
    # two 2.36 (legacy) checks whose 2.39-style codes are both PRAWS
    pair = dv.check_codes(["program_rule_actions_without_section",
                           "program_rule_actions_without_stage"])
    assert len(set(pair.values())) == 2
    assert all(c.startswith("DM_PRAWS_") for c in pair.values())
    # the same code whatever else is in the list: setup and push agree
    assert dv.check_codes(["program_rule_actions_without_section"]) == \
        {"program_rule_actions_without_section": pair["program_rule_actions_without_section"]}
    for bad in ("", "1DM", "DM-", "A" * 11, None):
        with pytest.raises(ConfigurationError, match="prefix"):
            dv.check_codes(["x"], bad)


def _checks(n_long=2):
    long_title = "Data elements that are so badly configured " * 8  # > 230 characters
    checks = [DataIntegrityCheck("categories_no_options", display_name="Categories with no "
                                 "category options", section="Categories", severity="WARNING"),
              DataIntegrityCheck("orgunits_orphaned", display_name="Orphaned org units",
                                 section="Organisation units", severity="CRITICAL")]
    checks += [DataIntegrityCheck("long_check_{}".format(i), display_name=long_title,
                                  section="Data elements", severity="SEVERE")
               for i in range(n_long)]
    return checks


def test_metadata_payload_shapes_lengths_and_uniqueness():
    payload = dv.metadata_payload(_checks(), ROOT)
    elements = payload["dataElements"]
    assert len(elements) == 4 + len(dv.SEVERITIES) + 1 + len(dv.FINDING_KINDS)
    for key, limit in (("name", 230), ("shortName", 50), ("code", 50)):
        values = [e[key] for e in elements]
        assert max(len(v) for v in values) <= limit
        assert len({v.lower() for v in values}) == len(values), key  # the truncated stay distinct
    for e in elements:
        assert UID.match(e["id"]) and e["id"] == dv.uid_from_code(e["code"])
        assert (e["domainType"], e["valueType"], e["aggregationType"]) == \
            ("AGGREGATE", "ZERO_POSITIVE_INT", "LAST")
        assert e["zeroIsSignificant"] is True  # else DHIS2 drops a count of 0
    cno = next(e for e in elements if e["code"] == "DM_CNO")
    assert "Categories" in cno["description"] and "WARNING" in cno["description"]
    (data_set,) = payload["dataSets"]
    assert data_set["periodType"] == "Daily"
    assert data_set["organisationUnits"] == [{"id": ROOT}]
    assert len(data_set["dataSetElements"]) == len(elements)
    (group,) = payload["dataElementGroups"]
    assert len(group["dataElements"]) == len(elements)
    chart, table = payload["visualizations"]
    assert chart["type"] == "LINE" and chart["relativePeriods"] == {"last90Days": True}
    assert {i["dataElement"]["id"] for i in chart["dataDimensionItems"]} == \
        {e["id"] for e in elements if "_ISSUES_" in e["code"]}
    assert table["type"] == "PIVOT_TABLE" and len(table["dataDimensionItems"]) == 4
    (dashboard,) = payload["dashboards"]
    assert dashboard["name"] == dv.DASHBOARD_NAME
    assert [i["type"] for i in dashboard["dashboardItems"]] == ["VISUALIZATION"] * 2
    assert [i["visualization"]["id"] for i in dashboard["dashboardItems"]] == \
        [chart["id"], table["id"]]
    # the same input gives the same payload: setup twice sends the same objects
    assert dv.metadata_payload(_checks(), ROOT) == payload


def test_metadata_payload_keeps_existing_uids_and_checks_its_org_unit():
    payload = dv.metadata_payload(_checks(0), ROOT, "MI_", existing={"MI_CNO": "abcdefghijk"})
    assert next(e for e in payload["dataElements"] if e["code"] == "MI_CNO")["id"] == "abcdefghijk"
    with pytest.raises(ConfigurationError, match="org_unit"):
        dv.metadata_payload(_checks(0), "not a uid")


# --- pure: the data values -----------------------------------------------------------------


def test_a_failed_check_sends_no_value():
    report = _report([
        DataIntegrityResult("categories_no_options", severity="WARNING", count=3),
        DataIntegrityResult("orgunits_orphaned", severity="CRITICAL", count=-1, error="boom"),
        DataIntegrityResult("periods_same_start_date_period_type", severity="WARNING", count=0),
    ])
    values = {v.code: v for v in dv.values_from_report(report, ROOT)}
    assert "DM_OO" not in values                     # the failed check: nothing, never 0
    assert "DM_ISSUES_CRITICAL" not in values        # no CRITICAL check ran
    assert values["DM_CNO"].value == "3"
    assert values["DM_PSSDPT"].value == "0"          # ran, found nothing: a real 0
    assert values["DM_ISSUES_WARNING"].value == "3"
    assert values["DM_CHECKS_FAILED"].value == "1"
    assert {v.period for v in values.values()} == {"20260314"}  # the server's day
    assert {v.org_unit for v in values.values()} == {ROOT}
    assert all(v.data_element == dv.uid_from_code(v.code) for v in values.values())


def test_values_from_health_count_findings_per_kind():
    finding = HealthFinding("failed", "SEVERE", "job failed", "run it again")
    health = SchedulerHealth(server_time=DAY, findings=[finding, finding,
                             HealthFinding("stuck", "WARNING", "stuck", "look")])
    values = {v.code: v.value for v in dv.values_from_health(health, ROOT, prefix="MI_")}
    assert values["MI_SCHED_FAILED"] == "2" and values["MI_SCHED_STUCK"] == "1"
    assert values["MI_SCHED_SCHEDULER_DEAD"] == "0"
    assert set(values) == {"MI_SCHED_" + k.upper() for k in dv.FINDING_KINDS}


def test_period_follows_the_server_calendar():
    assert dv.period_of(datetime.date(2026, 1, 2)) == "20260102"
    assert dv.period_of(DAY, "gregorian") == "20260314"
    with pytest.raises(ConfigurationError, match="ethiopian"):
        dv.period_of(DAY, "ethiopian")
    with pytest.raises(ConfigurationError, match="nepali"):
        dv.values_from_report(_report([DataIntegrityResult("a_b", count=1)]), ROOT,
                              calendar="nepali")


def test_values_from_a_history_run(tmp_path):
    from dhis2maint.history import History

    report = _report([DataIntegrityResult("categories_no_options", severity="WARNING", count=4),
                      DataIntegrityResult("orgunits_orphaned", severity="CRITICAL", count=-1,
                                          error="boom")])
    report.base_url = "https://dhis2.example.org"
    report.run_at = DAY
    with History(str(tmp_path / "h.sqlite")) as history:
        run = history.record(report).run
        values = {v.code: v for v in dv.values_from_history_run(history, run, ROOT)}
    assert values["DM_CNO"].value == "4" and values["DM_CNO"].period == "20260314"
    assert "DM_OO" not in values and values["DM_CHECKS_FAILED"].value == "1"


# --- pure: DHIS2's answers, both shapes ----------------------------------------------------

SUMMARY_236 = {"responseType": "ImportSummary", "status": "WARNING",
               "importOptions": {"dryRun": False},
               "importCount": {"imported": 2, "updated": 1, "ignored": 1, "deleted": 0},
               "conflicts": [{"object": "deUid000001", "value": "Data element not found or "
                              "not accessible"}]}
SUMMARY_242 = {"httpStatus": "Conflict", "httpStatusCode": 409, "status": "WARNING",
               "message": "One more conflicts encountered, please check import summary.",
               "response": {"responseType": "ImportSummary", "status": "WARNING",
                            "importOptions": {"dryRun": True},
                            "importCount": {"imported": 0, "updated": 0, "ignored": 3,
                                            "deleted": 0},
                            "conflicts": [{"object": "20260314", "objects": {"period": "x"},
                                           "value": "Period not valid", "errorCode": "E7611",
                                           "property": "period", "indexes": [0]}]}}


def test_both_import_summary_shapes_read():
    old = dv.read_import_summary(SUMMARY_236)
    assert (old.status, old.import_count.imported, old.import_count.updated,
            old.import_count.ignored) == ("WARNING", 2, 1, 1)
    assert old.conflicts == [dv.ImportConflict("deUid000001", "Data element not found or not "
                                                              "accessible")]
    new = dv.read_import_summary(SUMMARY_242)
    assert new.dry_run and new.import_count.ignored == 3
    assert new.conflicts[0].error_code == "E7611" and new.conflicts[0].property == "period"
    ok = dv.read_import_summary({"httpStatus": "OK", "httpStatusCode": 200, "status": "OK",
                                 "response": {"status": "SUCCESS", "importCount": {
                                     "imported": 0, "updated": 0, "ignored": 5, "deleted": 0}}})
    assert ok.ok and ok.import_count.ignored == 5  # ignored without a conflict: fine
    from dhis2maint.errors import InvalidResponseError
    with pytest.raises(InvalidResponseError):
        dv.read_import_summary({"httpStatus": "OK", "httpStatusCode": 200, "response": {}})
    with pytest.raises(InvalidResponseError, match="Import was successful"):
        dv.read_import_summary({"httpStatus": "OK", "httpStatusCode": 200,
                                "message": "Import was successful."})
    with pytest.raises(InvalidResponseError):
        dv.read_import_summary(["not", "a", "summary"])


def test_both_metadata_report_shapes_read():
    report = {"status": "ERROR", "stats": {"created": 0, "updated": 0, "ignored": 2, "total": 2},
              "typeReports": [{"klass": "org.hisp.dhis.dataelement.DataElement",
                               "stats": {"ignored": 2},
                               "objectReports": [{"uid": "abcdefghijk", "errorReports": [
                                   {"message": "Missing required property `name`.",
                                    "errorCode": "E4000", "errorProperty": "name"}]}]}]}
    for body in (report, {"httpStatus": "Conflict", "httpStatusCode": 409, "status": "WARNING",
                          "response": report}):
        read = dv.read_metadata_report(body)
        assert read.status == "ERROR" and read.count.ignored == 2
        assert read.types["DataElement"].errors == read.errors
        assert read.errors == [dv.ImportConflict("abcdefghijk", "Missing required property "
                                                 "`name`.", "E4000", "name")]


# --- over HTTP, against the stand-in -------------------------------------------------------


def _codes(session, collection, prefix="DM_"):
    body = session.get(session.api_url(collection), params={
        "filter": "code:like:" + prefix, "fields": "id,code,name", "paging": "false"}).json()
    return [o["code"] for o in body[collection]]


@pytest.mark.parametrize("version", ["2.36", "2.42"])
def test_setup_twice_creates_each_object_once(serve, version):
    srv, session = serve(version)
    first = session.setup_data_values()
    checks = session.list_integrity_checks()
    n_elements = len(checks) + len(dv.SEVERITIES) + 1 + len(dv.FINDING_KINDS)
    assert first.ok and first.org_unit == ROOT
    assert first.types["DataElement"].count.imported == n_elements
    assert first.count.imported == n_elements + 5 and first.count.updated == 0
    second = session.setup_data_values()
    assert second.count.imported == 0                  # nothing created twice
    assert second.count.updated == first.count.imported
    elements = _codes(session, "dataElements")
    assert len(elements) == len(set(elements)) == n_elements
    dashboards = session.get(session.api_url("dashboards"), params={"paging": "false"}).json()
    assert [d["name"] for d in dashboards["dashboards"]] == [dv.DASHBOARD_NAME]
    posts = [r for r in srv.requests if r.method == "POST"]
    assert [(r.path, r.query["importStrategy"], r.query["atomicMode"], r.query["importMode"])
            for r in posts] == [("/api/metadata", ["CREATE_AND_UPDATE"], ["ALL"], ["COMMIT"])] * 2
    assert all("dryRun" not in r.query for r in posts)  # DHIS2 would ignore it and commit


def test_setup_dry_run_changes_nothing(serve):
    srv, session = serve("2.42")
    report = session.setup_data_values(prefix="MI_", dry_run=True)
    assert report.dry_run and report.count.imported > 0
    assert srv.requests[-1].query["importMode"] == ["VALIDATE"]
    assert _codes(session, "dataElements", "MI_") == []
    assert _codes(session, "dataSets", "MI_") == []


def test_setup_checks_its_settings_before_sending(serve):
    srv, session = serve("2.42")
    with pytest.raises(ValueError, match="org_unit"):
        session.setup_data_values(org_unit="../users")
    with pytest.raises(ConfigurationError, match="prefix"):
        session.setup_data_values(prefix="bad prefix")
    assert srv.requests == []


def test_a_refused_setup_imports_nothing_and_names_the_error(serve):
    srv, session = serve("2.42")
    # another data element already has the name setup wants for one check
    session.post(session.api_url("metadata"), json={"dataElements": [{
        "id": "aaaaaaaaaa1", "code": "OTHER", "name": "DM Categories with no category options",
        "shortName": "Other", "valueType": "NUMBER", "domainType": "AGGREGATE",
        "aggregationType": "SUM"}]}).raise_for_status()
    with pytest.raises(dv.ImportConflictError, match="E5003") as caught:
        session.setup_data_values()
    assert [c.error_code for c in caught.value.conflicts] == ["E5003"]
    assert "already exists" in caught.value.conflicts[0].value
    assert _codes(session, "dataElements") == []       # atomic: nothing imported


def test_setup_needs_each_types_add_authority_not_the_import_apps(serve):
    # POST /api/metadata has no authority of its own; DHIS2 asks each type's public or
    # private add (E3000).  F_METADATA_IMPORT (the Import/Export app's) is neither needed
    # nor enough.
    assert dv.setup_refused(["ALL"]) == []
    assert dv.setup_refused(["F_METADATA_IMPORT", "F_DATAELEMENT_PUBLIC_ADD"]) == [
        "DataElementGroup", "DataSet"]
    srv, session = serve("2.42")
    srv.authorities["admin"] = ["F_METADATA_IMPORT", "F_DATAELEMENT_PUBLIC_ADD"]
    status = session.data_values_status()
    assert not status.can_import_metadata
    assert any("may not create DataElementGroup, DataSet" in p for p in status.problems)
    with pytest.raises(dv.ImportConflictError, match="E3000") as caught:
        session.setup_data_values()
    assert {c.error_code for c in caught.value.conflicts} == {"E3000"}
    assert _codes(session, "dataElements") == []       # atomic: nothing imported
    srv.authorities["admin"] = ["F_DATAELEMENT_PRIVATE_ADD", "F_DATAELEMENTGROUP_PUBLIC_ADD",
                                "F_DATASET_PUBLIC_ADD", "F_DATAVALUE_ADD"]
    assert session.data_values_status().can_import_metadata
    assert session.setup_data_values().ok


@pytest.mark.parametrize("version", ["2.36", "2.42"])
def test_push_a_run_and_read_it_back(serve, version):
    srv, session = serve(version)
    setup = session.setup_data_values()
    names = [c.name for c in session.list_integrity_checks()][:3]
    report = _report([DataIntegrityResult(names[0], severity="WARNING", count=7),
                      DataIntegrityResult(names[1], severity="SEVERE", count=-1, error="boom"),
                      DataIntegrityResult(names[2], severity="WARNING", count=0)])
    summary = session.push_data_values(report)
    assert summary.ok and summary.import_count.imported == summary.sent == 4  # 2 checks, WARNING, failed
    assert summary.period == "20260314"
    data_set = session.data_values_status().data_set
    back = session.get(session.api_url("dataValueSets"), params={
        "dataSet": data_set, "period": "20260314", "orgUnit": setup.org_unit}).json()
    codes = dv.check_codes(names)
    got = {v["dataElement"]: v["value"] for v in back["dataValues"]}
    assert got[dv.uid_from_code(codes[names[0]])] == "7"
    assert got[dv.uid_from_code(codes[names[2]])] == "0"
    assert dv.uid_from_code(codes[names[1]]) not in got  # the failed check sent nothing
    again = session.push_data_values(report)            # the same day again: overwrites
    count = again.import_count
    if version == "2.36":
        assert (count.updated, count.ignored) == (4, 0)
    else:  # unchanged values count ignored from 2.38: not an error
        assert (count.updated, count.ignored) == (0, 4)
    assert [r.query.get("importStrategy") for r in srv.requests
            if r.path == "/api/dataValueSets" and r.method == "POST"] == \
        [["CREATE_AND_UPDATE"]] * 2


@pytest.mark.parametrize("version", ["2.36", "2.42"])
def test_a_conflict_raises_naming_it(serve, version):
    from dhis2maint.options import EXIT_DHIS2, exit_code

    srv, session = serve(version)
    session.setup_data_values()
    srv.data_value_conflict_next()
    health = SchedulerHealth(server_time=DAY, findings=[])
    with pytest.raises(dv.ImportConflictError) as caught:
        session.push_data_values(health)
    err = caught.value
    assert len(err.conflicts) == 1 and "20260314" in str(err) and "not open" in str(err)
    assert err.conflicts[0].error_code == (None if version == "2.36" else "E7643")
    assert err.summary.import_count.imported == len(dv.FINDING_KINDS) - 1
    assert exit_code(err) == EXIT_DHIS2 == 3


def test_unknown_data_element_and_org_unit_are_conflicts(serve):
    srv, session = serve("2.42")
    session.setup_data_values()
    good = dv.values_from_health(SchedulerHealth(server_time=DAY), ROOT)[0]
    values = [dv.DataValue("zzzzzzzzzz1", "20260314", ROOT, "1", "DM_NOPE"),
              dv.DataValue(good.data_element, "20260314", "yyyyyyyyyy1", "1", good.code),
              good]
    with pytest.raises(dv.ImportConflictError) as caught:
        session.push_data_values(values)
    assert [c.error_code for c in caught.value.conflicts] == ["E7610", "E7612"]
    assert "DM_NOPE" in str(caught.value)  # the code, next to the UID DHIS2 names


def test_dry_run_push_changes_nothing(serve):
    srv, session = serve("2.42")
    session.setup_data_values()
    summary = session.push_data_values(SchedulerHealth(server_time=DAY), dry_run=True)
    assert summary.dry_run and summary.import_count.imported == len(dv.FINDING_KINDS)
    again = session.push_data_values(SchedulerHealth(server_time=DAY))
    assert again.import_count.imported == len(dv.FINDING_KINDS)  # the dry run kept nothing


def test_a_lost_answer_is_not_resent(serve):
    srv, session = serve("2.42")
    session.setup_data_values()
    srv.clear_requests()
    srv.drop_response_next(method="POST")
    with pytest.raises(Dhis2Error) as caught:
        session.push_data_values(dv.values_from_health(SchedulerHealth(server_time=DAY), ROOT))
    assert caught.value.outcome_unknown
    assert [r.path for r in srv.requests if r.method == "POST"] == ["/api/dataValueSets"]


def test_status_names_what_pushing_needs(serve):
    srv, session = serve("2.42")
    status = session.data_values_status()
    assert not status.ok and status.data_set is None and status.missing_checks
    assert status.follow_ups[0].action == "setup_data_values"
    checks = session.list_integrity_checks()
    session.setup_data_values(checks=checks[1:])        # as before a DHIS2 upgrade
    status = session.data_values_status()
    assert status.missing_checks == [checks[0].name]
    assert checks[0].name in " ".join(status.problems)
    assert status.can_import_metadata and status.can_write_data and status.org_unit == ROOT
    session.setup_data_values()
    assert session.data_values_status().ok
    from dhis2maint import _standin_datavalues
    _standin_datavalues._store(srv._state)["data_write"] = False
    srv.authorities["admin"] = ["F_PERFORM_MAINTENANCE"]
    status = session.data_values_status()
    assert not status.can_write_data and not status.can_import_metadata
    assert any("may not write data values" in p for p in status.problems)


def test_push_history_backfills_one_post_per_run(serve, tmp_path):
    from dhis2maint.history import History

    srv, session = serve("2.42")
    session.setup_data_values()
    name = session.list_integrity_checks()[0].name
    with History(str(tmp_path / "h.sqlite")) as history:
        for day, count in ((12, 1), (13, 2), (14, 3)):
            report = _report([DataIntegrityResult(name, severity="WARNING", count=count)],
                             server_time=datetime.datetime(2026, 3, day, 2))
            report.run_at = datetime.datetime(2026, 3, day, 1)
            history.record(report, session)
        done = session.push_history_values(history, since="2026-03-13")
    assert [s.period for s in done] == ["20260313", "20260314"]
    assert [s.import_count.imported for s in done] == [3, 3]
    with pytest.raises(ConfigurationError, match="since"):
        session.push_history_values(history, since="last week")


def test_setup_again_keeps_the_chosen_org_unit(serve):
    srv, session = serve("2.42")
    assert session.setup_data_values(org_unit="O6uvpzGd5pu").org_unit == "O6uvpzGd5pu"
    again = session.setup_data_values()               # no org unit: the data set keeps Bo
    assert again.org_unit == "O6uvpzGd5pu" and again.count.imported == 0
    status = session.data_values_status()
    assert status.org_unit == "O6uvpzGd5pu" and status.ok
    pushed = session.push_data_values(SchedulerHealth(server_time=DAY))
    assert pushed.ok and pushed.import_count.imported == len(dv.FINDING_KINDS)


def test_a_409_without_an_import_summary_is_dhis2s_own_error(serve):
    from dhis2maint.errors import ConflictError

    srv, session = serve("2.42")
    srv.answer_next('{"httpStatus": "Conflict", "httpStatusCode": 409, "status": "ERROR", '
                    '"message": "Data set is locked"}', status=409, method="POST")
    with pytest.raises(ConflictError, match="Data set is locked"):
        session.push_data_values(dv.values_from_health(SchedulerHealth(server_time=DAY), ROOT))
