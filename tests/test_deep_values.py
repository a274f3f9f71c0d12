"""Free-form values (a notification's ``data``, job parameters) nested absurdly deep
are refused as InvalidResponseError on every Python, in every output format (#20.9).

Before: a task notification whose ``data`` nested 700 levels was read, and writing it
as JSON overflowed the stack (``task status … --format json`` exited 5, RecursionError).
"""
import json
import os
import subprocess
import sys

import pytest

from dhis2maint import InvalidResponseError
from dhis2maint.convert import MAX_VALUE_DEPTH

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _nested(depth):
    value = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def _notification(data):
    return [{"uid": "n1", "level": "INFO", "category": "ANALYTICS_TABLE",
             "time": "2024-01-01T00:00:00.000", "message": "tables updated",
             "completed": True, "dataType": "PARAMETERS", "data": data}]


def _start_job(srv, session):
    job = session.refresh_analytics()
    return job.id


@pytest.mark.parametrize("depth", [700, 5000])
def test_deep_notification_data_is_an_invalid_response(serve, depth):
    srv, session = serve()
    job_id = _start_job(srv, session)
    srv.answer_next(json.dumps(_notification(_nested(depth))) if depth < 900 else
                    '[{"uid":"n1","level":"INFO","message":"x","data":' + "[" * depth
                    + "]" * depth + "}]",
                    path="/api/system/tasks/ANALYTICS_TABLE/" + job_id)
    with pytest.raises(InvalidResponseError, match="nested too deeply"):
        session.get_task_notifications("ANALYTICS_TABLE", job_id)


def test_data_at_the_bound_is_read_and_written(serve):
    srv, session = serve()
    job_id = _start_job(srv, session)
    srv.answer_next(json.dumps(_notification(_nested(MAX_VALUE_DEPTH))),
                    path="/api/system/tasks/ANALYTICS_TABLE/" + job_id)
    notes = session.get_task_notifications("ANALYTICS_TABLE", job_id)
    assert notes[0].message == "tables updated"
    from dhis2maint.convert import unstructure
    assert json.dumps(unstructure(notes))  # writable, no RecursionError


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_cli_task_status_refuses_deep_data_exit_3(serve, fmt):
    srv, session = serve()
    job_id = _start_job(srv, session)
    srv.answer_next(json.dumps(_notification(_nested(700))),
                    path="/api/system/tasks/ANALYTICS_TABLE/" + job_id)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DHIS2_")}
    env.update(PYTHONPATH=ROOT, DHIS2_URL=srv.url, DHIS2_USERNAME="admin",
               DHIS2_PASSWORD="district")
    proc = subprocess.run([sys.executable, "-m", "dhis2maint", "task", "status",
                           "ANALYTICS_TABLE", job_id, "--format", fmt],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "nested too deeply" in proc.stderr and "RecursionError" not in proc.stderr
