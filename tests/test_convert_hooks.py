"""cattrs hooks for the models DHIS2 sends in another shape (#20.8): stored validation
results (nested references) and running processes (stages as objects) are built by the
one converter, not by hand, and their own flat form still round-trips."""
import datetime
import os

import pytest

from dhis2maint import convert, models
from dhis2maint.errors import InvalidResponseError

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dhis2maint")

NESTED = {"id": 1001, "created": "2024-03-05T10:11:12.123", "leftsideValue": 11.0,
          "rightsideValue": 20, "dayInPeriod": 15, "notificationSent": False,
          "validationRule": {"id": "Vr1SdY8cL8r", "name": "ANC 1 >= ANC 2", "importance": "HIGH"},
          "organisationUnit": {"id": "O6uvpzGd5pu", "name": "Bo"}, "period": {"id": "202401"},
          "attributeOptionCombo": {"id": "HllvX50cXC0"}}


def test_a_nested_validation_result_is_flattened_by_the_converter():
    result = convert.structure(NESTED, models.ValidationResult)
    assert result == models.ValidationResult(
        id=1001, validation_rule_id="Vr1SdY8cL8r", validation_rule_name="ANC 1 >= ANC 2",
        importance="HIGH", organisation_unit_id="O6uvpzGd5pu", organisation_unit_name="Bo",
        period_id="202401", attribute_option_combo_id="HllvX50cXC0", leftside_value=11.0,
        rightside_value=20.0, day_in_period=15, notification_sent=False,
        created=datetime.datetime(2024, 3, 5, 10, 11, 12, 123000))
    # the model's own flat form (saved output) still round-trips
    assert convert.structure(convert.unstructure(result), models.ValidationResult) == result
    assert convert.structure(dict(NESTED, period="202402"), models.ValidationResult).period_id == "202402"


@pytest.mark.parametrize("bad", [[1], dict(NESTED, created="yesterday"), dict(NESTED, leftsideValue="NaN")])
def test_an_unreadable_validation_result_is_invalid_response(bad):
    with pytest.raises(InvalidResponseError, match="GET /api/validationResults"):
        convert.structure(bad, models.ValidationResult, "GET /api/validationResults")


def test_a_running_process_keeps_each_stage_description():
    job = convert.structure({"jobType": "ANALYTICS_TABLE", "jobId": "fyGBt3fxYpq", "status": "RUNNING",
                             "startedTime": "2024-03-05T10:11:12.000",
                             "stages": ["Generating", {"description": "Updating tables"}, {"x": 1}]},
                            models.RunningJob, "GET /api/scheduling/running")
    assert job.job_type == models.JobType.ANALYTICS_TABLE and job.job_id == "fyGBt3fxYpq"
    assert job.stages == ["Generating", "Updating tables", "{'x': 1}"]
    assert job.started_time == datetime.datetime(2024, 3, 5, 10, 11, 12)
    assert convert.structure({"jobType": "NEW_TYPE_2_44"}, models.RunningJob).job_type == "NEW_TYPE_2_44"


def test_the_feature_modules_build_neither_by_hand():
    for name, model in (("validation.py", "models.ValidationResult("), ("jobconfigs.py", "models.RunningJob(")):
        with open(os.path.join(PACKAGE, name), encoding="utf-8") as f:
            text = f.read()
        # jobconfigs keeps one RunningJob built from a JobConfiguration model (2.36), not from JSON
        assert text.count(model) == (1 if name == "jobconfigs.py" else 0), name


def test_running_jobs_and_validation_results_over_http(serve):
    srv, session = serve("2.42")
    results = session.list_validation_results(org_units="O6uvpzGd5pu")
    assert results and {r.organisation_unit_name for r in results} == {"Bo"}
    assert all(r.validation_rule_id and r.period_id and r.importance for r in results)
    running = session.running_jobs()
    assert [(j.job_type, j.job_id, j.stages) for j in running] == [
        (models.JobType.ANALYTICS_TABLE, "UsrAnalyt1c", ["Running Nightly analytics"])]
