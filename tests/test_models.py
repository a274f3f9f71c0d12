"""Models built from realistic DHIS2 JSON by the one converter, and back."""
import datetime
import json
import re

import pytest

import dhis2maint
from dhis2maint import (DataIntegrityCheck, DataIntegritySeverity, InvalidResponseError,
                        JobConfiguration, JobStatus, JobType, Notification,
                        NotificationDataType, NotificationLevel, ValidationViolation)
from dhis2maint.convert import (format_datetime, from_json, parse_datetime, report_from_dict,
                                report_to_dict, structure, to_json, unstructure)
from dhis2maint.models import severity_rank

# Simulated time (tests/conftest.py fake_time): the stand-ins' jobs and the waits for them
# take no real seconds; requests still go over real HTTP.
pytestmark = pytest.mark.usefixtures("fake_time")

CHECK_JSON = {
    "name": "categories_no_options", "displayName": "Categories with no category options",
    "section": "Categories", "sectionOrder": 1, "severity": "WARNING",
    "description": "Categories with no category options",
    "introduction": "Categories should always have at least one category option.",
    "recommendation": "Any categories without category options should be removed.",
    "issuesIdType": "categories", "isSlow": False, "isProgrammatic": False,
    "averageExecutionTime": 12, "code": "CNO",
}
SUMMARY_JSON = {
    "categories_no_options": dict(CHECK_JSON, startTime="2025-01-31T10:15:02.120",
                                  finishedTime="2025-01-31T10:15:02.133", count=1,
                                  percentage=50.0),
    "data_elements_in_data_set_not_in_form": {
        "name": "data_elements_in_data_set_not_in_form", "displayName": "DEs not in form",
        "section": "Data sets", "sectionOrder": 0, "severity": "WARNING", "isSlow": True,
        "isProgrammatic": True, "code": "DEIDSNIF", "startTime": "2025-01-31T10:15:03.000",
        "finishedTime": "2025-01-31T10:15:04.000",
        "error": "Check failed because an exception was thrown: relation does not exist",
        "count": -1},
}
DETAILS_JSON = {
    "categories_no_options": dict(CHECK_JSON, startTime="2025-01-31T10:15:02.120",
                                  finishedTime="2025-01-31T10:15:02.133", issues=[
                                      {"id": "a1B2c3D4e5F", "name": "CatDog"},
                                      {"id": "Uvn6LCg7dVU", "name": "ANC 1-3 Dropout:Uvn6LCg7dVU",
                                       "comment": "Invalid expression", "refs": []},
                                      {"name": "grouped, no id", "refs": ["A:uidA", "B:uidB"]},
                                  ]),
}


def test_check_from_realistic_json():
    check = structure(CHECK_JSON, DataIntegrityCheck)
    assert check.name == "categories_no_options"
    assert check.display_name == "Categories with no category options"
    assert check.section_order == 1 and check.code == "CNO"
    assert check.severity is DataIntegritySeverity.WARNING
    assert check.issues_id_type == "categories"
    assert check.is_slow is False and check.average_execution_time == 12


def test_unknown_fields_and_enum_values_are_tolerated():
    data = dict(CHECK_JSON, severity="CATASTROPHIC", brandNewField={"x": 1}, anotherOne=[1, 2])
    check = structure(data, DataIntegrityCheck)
    assert check.severity == "CATASTROPHIC"
    assert not isinstance(check.severity, DataIntegritySeverity)
    note = structure({"id": "x", "level": "TRACE", "category": "FUTURE_JOB", "completed": False,
                      "dataType": "BLOB", "time": "2025-03-10T14:05:32.104"}, Notification)
    assert (note.level, note.category, note.data_type) == ("TRACE", "FUTURE_JOB", "BLOB")


def test_missing_optional_fields():
    check = structure({"name": "legacy_check"}, DataIntegrityCheck)
    assert check.display_name is None and check.severity is None and check.is_slow is False


@pytest.mark.parametrize("data, words", [
    ({"displayName": "no name"}, "missing field 'name'"),
    ([CHECK_JSON], "expected a JSON object"),
    ("text", "expected a JSON object"),
    (dict(CHECK_JSON, sectionOrder="first"), "DataIntegrityCheck"),
    (dict(CHECK_JSON, severity=7), "DataIntegritySeverity"),
])
def test_wrong_shapes_raise_invalid_response(data, words):
    with pytest.raises(InvalidResponseError, match=words) as info:
        structure(data, DataIntegrityCheck, "GET /api/dataIntegrity")
    assert "GET /api/dataIntegrity" in str(info.value)


def test_notifications_all_levels_and_payload():
    raw = [
        {"id": "bKqUoWhgqGa", "uid": "bKqUoWhgqGa", "level": "INFO", "category": "ANALYTICS_TABLE",
         "time": "2025-03-10T14:05:32.104", "message": "Analytics tables updated: 00:03:12",
         "completed": True},
        {"id": "aPzQ2mVtc1e", "uid": "aPzQ2mVtc1e", "level": "INFO", "category": "ANALYTICS_TABLE",
         "time": "2025-03-10T14:02:20.000", "message": "Analytics table update process",
         "completed": False, "dataType": "PARAMETERS",
         "data": {"lastYears": 2, "skipResourceTables": False}},
    ]
    for level in ("OFF", "DEBUG", "LOOP", "INFO", "WARN", "ERROR"):
        raw.append({"id": level, "level": level, "category": "DATA_INTEGRITY", "message": "",
                    "completed": False, "time": "2025-03-10T14:02:19"})
    notes = structure(raw, dhis2maint.models.List[Notification])
    assert notes[0].completed and notes[0].category is JobType.ANALYTICS_TABLE
    assert notes[0].time == datetime.datetime(2025, 3, 10, 14, 5, 32, 104000)
    assert notes[1].data_type is NotificationDataType.PARAMETERS
    assert notes[1].data == {"lastYears": 2, "skipResourceTables": False}
    assert [n.level for n in notes[2:]] == list(NotificationLevel)
    assert notes[-1].failed and not notes[0].failed


def test_job_configuration():
    config = structure({"id": "Vu1ZkG2Kb3D", "jobType": "ANALYTICS_TABLE", "enabled": False,
                        "jobStatus": "DISABLED", "lastExecutedStatus": "COMPLETED",
                        "lastExecuted": "2025-03-10T14:02:20.000",
                        "lastFinished": "2025-03-10T14:05:32.000",
                        "lastRuntimeExecution": "00:03:12.000"}, JobConfiguration)
    assert config.job_status is JobStatus.DISABLED
    assert config.last_executed_status is JobStatus.COMPLETED
    assert config.last_finished.minute == 5


def test_validation_violation():
    violation = structure({
        "validationRuleId": "kgh54Xb9LSE", "validationRuleDescription": "ANC 1 >= ANC 2",
        "organisationUnitId": "DiszpKrYNg8", "organisationUnitDisplayName": "Ngelehun CHC",
        "organisationUnitPath": "/ImspTQPwCqd/O6uvpzGd5pu/DiszpKrYNg8",
        "organisationUnitAncestorNames": "Sierra Leone / Bo / ", "periodId": "202501",
        "periodDisplayName": "January 2025", "attributeOptionComboId": "HllvX50cXC0",
        "attributeOptionComboDisplayName": "default", "importance": "MEDIUM",
        "leftSideValue": 10.0, "operator": "greater_than_or_equal_to", "rightSideValue": 12.0,
    }, ValidationViolation)
    assert violation.left_side_value == 10.0 and violation.period_id == "202501"


@pytest.mark.parametrize("text, expected", [
    ("2024-05-01T10:11:12.345", datetime.datetime(2024, 5, 1, 10, 11, 12, 345000)),
    ("2024-05-01T10:11:12", datetime.datetime(2024, 5, 1, 10, 11, 12)),
    ("2024-05-01T10:11", datetime.datetime(2024, 5, 1, 10, 11)),
    ("2024-05-01", datetime.datetime(2024, 5, 1)),
    ("2024-05-01T10:11:12.3456789", datetime.datetime(2024, 5, 1, 10, 11, 12, 345678)),
    ("2024-05-01T10:11:12.345Z",
     datetime.datetime(2024, 5, 1, 10, 11, 12, 345000, tzinfo=datetime.timezone.utc)),
    ("2024-05-01T10:11:12+02:00", datetime.datetime(
        2024, 5, 1, 10, 11, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))),
    ("2024-05-01T10:11:12.000-0530", datetime.datetime(
        2024, 5, 1, 10, 11, 12, tzinfo=datetime.timezone(-datetime.timedelta(hours=5, minutes=30)))),
    (None, None),
])
def test_parse_datetime(text, expected):
    assert parse_datetime(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01", "2024-05-01T25:00", True, ""])
def test_parse_datetime_rejects(text):
    with pytest.raises(ValueError):
        parse_datetime(text)


def test_datetime_round_trip():
    for text in ("2024-05-01T10:11:12.345", "2024-05-01T10:11:12.345Z",
                 "2024-05-01T10:11:12.345+02:00"):
        assert format_datetime(parse_datetime(text)) == text


def test_summary_report_with_failed_check():
    report = report_from_dict(SUMMARY_JSON)
    assert not report.details and len(report) == 2
    ok = report["categories_no_options"]
    assert ok.count == 1 and ok.percentage == 50.0 and ok.issues is None and not ok.failed
    assert ok.finished_time == datetime.datetime(2025, 1, 31, 10, 15, 2, 133000)
    bad = report["data_elements_in_data_set_not_in_form"]
    assert bad.failed and bad.count == -1 and bad.percentage is None
    assert "relation does not exist" in bad.error


def test_details_report_counts_issues_and_keeps_order():
    report = report_from_dict(DETAILS_JSON)
    result = report["categories_no_options"]
    assert report.details and result.count == 3
    assert [i.id for i in result.issues] == ["a1B2c3D4e5F", "Uvn6LCg7dVU", None]
    assert result.issues[1].comment == "Invalid expression"
    assert result.issues[2].refs == ["A:uidA", "B:uidB"]
    rows = list(report.issue_rows())
    assert [r.issue.name for r in rows] == ["CatDog", "ANC 1-3 Dropout:Uvn6LCg7dVU",
                                            "grouped, no id"]
    assert rows[0].check_name == "categories_no_options"
    assert rows[0].severity is DataIntegritySeverity.WARNING


def test_report_json_round_trip_with_unicode_and_control_characters():
    data = json.loads(json.dumps(DETAILS_JSON))
    data["categories_no_options"]["issues"].append(
        {"id": "zZ9zZ9zZ9zZ", "name": "Ébola <script>alert(1)</script> \u0007\t\"q\"",
         "comment": "\u4e2d\u6587", "refs": ["x"]})
    report = report_from_dict(data)
    text = to_json(report)
    again = from_json(text)
    assert again == report
    assert dhis2maint.from_json(dhis2maint.to_json(report)) == report
    assert again.details is True
    assert report_from_dict(report_to_dict(report)) == report


def test_summary_round_trip_and_dhis2_json_accepted_by_from_json():
    report = report_from_dict(SUMMARY_JSON)
    assert from_json(to_json(report)) == report
    assert from_json(json.dumps(SUMMARY_JSON)) == report


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"a": 5}', '{"a": {"issues": 3}}',
                                  '{"a": {"name": "a", "issues": [5]}}'])
def test_from_json_rejects_garbage_with_typed_error(text):
    with pytest.raises(InvalidResponseError):
        from_json(text)


def test_huge_numbers_and_unknowns_in_results():
    report = report_from_dict({"x": {"name": "x", "count": 10 ** 30, "percentage": 1e308,
                                     "severity": "NEW", "futureField": 1}})
    assert report["x"].count == 10 ** 30 and report["x"].severity == "NEW"


def test_severity_rank():
    assert [severity_rank(s) for s in DataIntegritySeverity] == [0, 1, 2, 3]
    assert severity_rank("severe") == 2 and severity_rank("Critical") == 3
    assert severity_rank("SOMETHING_NEW") == 1
    with pytest.raises(ValueError):
        severity_rank(None)


def test_unstructure_uses_camel_case_and_drops_none():
    check = structure(CHECK_JSON, DataIntegrityCheck)
    assert unstructure(check) == CHECK_JSON
    assert unstructure(structure({"name": "n"}, DataIntegrityCheck)) == {
        "name": "n", "isSlow": False, "isProgrammatic": False}


def test_public_names_exported():
    for name in dhis2maint.__all__:
        assert hasattr(dhis2maint, name), name
    assert isinstance(dhis2maint.__version__, str)


def test_every_public_name_and_session_method_has_a_docstring():
    import inspect

    import requests

    undocumented = [name for name in dhis2maint.__all__
                    if not isinstance(getattr(dhis2maint, name), str)
                    and not (getattr(dhis2maint, name).__doc__ or "").strip()]
    undocumented += ["Session." + name for name, member in inspect.getmembers(dhis2maint.Session)
                     if not name.startswith("_") and not hasattr(requests.Session, name)
                     and not (getattr(member, "__doc__", None) or "").strip()]
    assert undocumented == []


# --- #21.6: DataIntegrityReport's verdict as SchedulerHealth has it; Notification str ----


def test_report_total_issues_at_least_and_failed_checks_over_http(serve):
    srv, session = serve("2.42")
    srv.fail_check("categories_no_options")
    report = session.run_integrity_checks(["CNO", "users_with_all_authority",
                                           "orgunits_multiple_roots"])
    failed = report["categories_no_options"]
    assert failed.count == -1 and failed.error
    assert [r.name for r in report.failed_checks] == ["categories_no_options"]
    counts = {r.name: r.count for r in report if not r.failed}
    assert report.total_issues == sum(counts.values()) > 0  # the -1 is not summed
    severe = report.at_least("severe")
    assert {r.name for r in severe} == {name for name, n in counts.items()
                                        if n and report[name].severity in ("SEVERE",
                                                                           "CRITICAL")}
    assert {r.name for r in report.at_least("INFO")} == {n for n, c in counts.items() if c}
    assert failed not in report.at_least("info")
    with pytest.raises(ValueError):
        report.at_least("bad")
    details = session.run_integrity_checks(["orgunits_multiple_roots"], details=True)
    assert details.total_issues == len(details["orgunits_multiple_roots"].issues)


def test_notification_str_is_one_readable_line(serve):
    srv, session = serve("2.42", job_seconds=0.2)
    seen = []
    session.refresh_resource_tables().wait(on_notification=lambda n: seen.append(str(n)))
    assert seen
    for line in seen:
        assert "\n" not in line and "Notification(" not in line
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|LOOP|WARN|ERROR|DEBUG) \S", line), line
    assert seen[-1].endswith("(completed)")


_LAZY_PROBE = r"""
import json, pickle, sys
import attr
import dhis2maint
from dhis2maint import models
loaded = {"built_at_import": sorted(n for n in models.__all__ if n in vars(models)
                                    and attr.has(vars(models)[n])),
          # any module's own attrs classes (datavalues once built seven: ~9 ms)
          "attrs_classes_at_import": sorted(
              "{}.{}".format(m, n) for m, mod in list(sys.modules.items())
              if m.startswith("dhis2maint") for n, v in vars(mod).items()
              if isinstance(v, type) and attr.has(v) and v.__module__ == m),
          "difflib": "difflib" in sys.modules}
from dhis2maint import datavalues
summary = datavalues.DataValueImportSummary("SUCCESS")
loaded["datavalues"] = (datavalues.DataValue is models.DataValue
                        and type(summary.import_count) is models.ImportCount)
job = dhis2maint.Job("j1", "ANALYTICS_TABLE")
result = dhis2maint.convert.structure(
    {"name": "c", "issues": [{"id": "a", "refs": ["x"]}]}, dhis2maint.DataIntegrityResult)
loaded.update(
    same=dhis2maint.Job is models.Job and type(job) is models.Job,
    pickled=pickle.loads(pickle.dumps(result)) == result,
    issue_type=repr(attr.fields(models.DataIntegrityResult).issues.type),
    issue=type(result.issues[0]) is models.DataIntegrityIssue,
    star=len(__import__("importlib").import_module("dhis2maint").__all__),
    dir="UserInfo" in dir(models) and "Job" in dir(dhis2maint))
print(json.dumps(loaded))
"""


def test_import_builds_no_model_and_first_use_builds_the_one_class():
    """#20.10: ``import dhis2maint`` builds no attrs model (nor loads difflib); the
    first use builds each one, once: same object everywhere, pickles, cattrs
    structures it, field types resolved to the built classes."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", _LAZY_PROBE], check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    got = json.loads(out)
    assert got["built_at_import"] == []
    assert got["attrs_classes_at_import"] == []
    assert got["datavalues"]  # its records are models' (lazy), importable from it
    assert got["difflib"] is False
    assert got["same"] and got["pickled"] and got["issue"] and got["dir"]
    assert "DataIntegrityIssue" in got["issue_type"] and "'" not in got["issue_type"]


def test_unknown_model_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError):
        dhis2maint.models.NoSuchModel  # noqa: B018
    with pytest.raises(AttributeError):
        dhis2maint.NoSuchModel  # noqa: B018
