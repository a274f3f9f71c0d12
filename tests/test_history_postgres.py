"""The history on PostgreSQL (#24): targets and credentials, the optional extra, a lost
connection, `history copy` both ways, and the CLI on a PostgreSQL history -- against the
real PostgreSQL 15 server of tests/conftest.py (the shared behaviour is tested on both
backends by tests/test_history.py)."""
import functools
import os
import socket
import sqlite3
import subprocess
import sys
import threading

import pytest

from dhis2maint.errors import ConfigurationError, HistoryError
from dhis2maint.history import (SCHEMA_VERSION, History, copy_history, is_postgresql_url,
                                redact_url)
from dhis2maint.models import DataIntegrityIssue, DataIntegrityReport, IntegrityIssueRow

from test_cli_history import PASSWORD  # noqa: I100 - tests/ is on sys.path (rootdir)
from test_history import URL, day, report, uid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def run_cli(run_cli):
    """As in test_cli_history: its password, no DHIS2MAINT_HISTORY from outside."""
    return functools.partial(run_cli, password=PASSWORD, secrets=(PASSWORD,), timeout=120,
                             unset=("DHIS2MAINT_HISTORY",))


def test_targets_and_redaction():
    assert is_postgresql_url("postgresql://u@h/db") and is_postgresql_url("POSTGRES://h/db")
    assert not is_postgresql_url("history.sqlite") and not is_postgresql_url("/x/postgresql")
    assert redact_url("postgresql://ann:s%40cret@db.example:5432/ops?sslmode=require"
                      "&password=other&schema=h") == \
        "postgresql://ann@db.example:5432/ops?sslmode=require&schema=h"


def test_without_psycopg_a_postgresql_target_names_the_extra(tmp_path, run_cli):
    code = ("import sys; sys.modules['psycopg'] = None\n"
            "from dhis2maint.history import History\n"
            "try:\n    History('postgresql://ann:Secret-Pw-1@127.0.0.1:1/x')\n"
            "except Exception as exc:\n"
            "    from dhis2maint.errors import ConfigurationError\n"
            "    print(isinstance(exc, ConfigurationError), exc)\n")
    out = subprocess.check_output([sys.executable, "-c", code], cwd=ROOT,
                                  universal_newlines=True)
    assert out.startswith("True ") and "dhis2maint[postgres]" in out
    assert "Secret-Pw-1" not in out
    # the CLI: exit 2, the extra named, no password
    env = {"PYTHONPATH": str(tmp_path) + os.pathsep + ROOT}
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['psycopg'] = None\n")
    proc = run_cli(["integrity", "history", "--history",
                    "postgresql://ann:Secret-Pw-1@127.0.0.1:1/x"], env=env)
    assert proc.returncode == 2, proc.stderr
    assert "dhis2maint[postgres]" in proc.stderr and "Secret-Pw-1" not in proc.stderr


def test_password_never_shown(postgres_server, pg_url):
    password = postgres_server["password"]
    with History(pg_url) as history:
        assert password not in repr(history) and password not in history.path
        assert history.backend == "postgresql" and history.schema_version == SCHEMA_VERSION
    wrong = pg_url.replace(password, "Wrong-Pw-99")
    with pytest.raises(HistoryError) as info:
        History(wrong)
    assert "password authentication failed" in str(info.value)
    assert "Wrong-Pw-99" not in str(info.value) and "Wrong-Pw-99" not in repr(info.value)
    assert isinstance(info.value, ConfigurationError)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_password_from_pgpassword_and_pgpass(postgres_server, pg_url, monkeypatch, tmp_path):
    password = postgres_server["password"]
    bare = pg_url.replace(":" + password + "@", "@")
    monkeypatch.setenv("PGPASSWORD", password)
    with History(bare) as history:
        assert history.runs() == []
    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text("127.0.0.1:{}:history:dhis2maint:{}\n".format(
        postgres_server["port"], password))
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    with History(bare) as history:
        assert history.runs() == []
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    with pytest.raises(HistoryError, match="cannot connect"):
        History(bare)


def test_libpq_parameters_pass_through(pg_url):
    # the test server has no TLS: sslmode=require must reach libpq and be refused
    with pytest.raises(HistoryError, match="SSL"):
        History(pg_url + "&sslmode=require")
    with History(pg_url + "&sslmode=disable&application_name=nightly") as history:
        assert history._x("SELECT current_setting('application_name')").fetchone()[0] == \
            "nightly"
        assert history._x("SELECT current_schema()").fetchone()[0] == \
            pg_url.rsplit("schema=", 1)[1]


def test_connect_timeout():
    with socket.socket() as sock:  # listens, never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = "postgresql://ann:Pw-Timeout-3@127.0.0.1:{}/x".format(sock.getsockname()[1])
        with pytest.raises(HistoryError, match="cannot connect") as info:
            History(url, connect_timeout=2)
    assert "Pw-Timeout-3" not in str(info.value)


def test_schema_is_configurable(postgres_server):
    with History(postgres_server["url"], schema="ops_history") as history:
        history.record(report({"ou_no_coords": [1]}, day(0)))
        assert history._x("SELECT current_schema()").fetchone()[0] == "ops_history"
    with History(postgres_server["url"] + "?schema=ops_history") as history:
        assert len(history.runs()) == 1


def test_a_lost_connection_mid_record_is_a_clear_error_and_keeps_nothing(
        postgres_server, pg_url):
    import psycopg

    with History(pg_url) as history:
        history.record(report({"ou_no_coords": [1, 2, 3]}, day(0)))
        pid = history._db.info.backend_pid
        rep = DataIntegrityReport(details=True)
        rep.base_url = URL

        def rows():
            for n in range(20000):
                if n == 10000:  # inside the transaction, mid-COPY
                    with psycopg.connect(postgres_server["url"], autocommit=True) as admin:
                        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                yield IntegrityIssueRow("ou_no_coords", None, None,
                                        DataIntegrityIssue(uid(n), "x"))
        with pytest.raises(HistoryError, match="recording a run failed") as info:
            history.record(rep, rows=rows())
        assert "connection" in str(info.value)
        assert postgres_server["password"] not in str(info.value)
    with History(pg_url) as history:
        assert len(history.runs()) == 1
        assert history._x("SELECT COUNT(*) FROM issues").fetchone()[0] == 3
        assert history._x("SELECT COUNT(*) FROM run_checks").fetchone()[0] == 1
        assert history.record(report({"ou_no_coords": [1]}, day(1))).resolved_issues == 2


def test_a_writer_waits_for_the_lock_within_busy_timeout(pg_url):
    """A record of a server waits for another record of it; lock_timeout bounds it."""
    with History(pg_url) as first, History(pg_url, busy_timeout=1) as second:
        first._backend.begin_write(URL)  # holds the server's lock
        try:
            with pytest.raises(HistoryError, match="waiting for another writer"):
                second.record(report({"ou_no_coords": [1]}, day(0)))
            # another server is not blocked
            second.record(report({"ou_no_coords": [1]}, day(0), url="https://b.example"))
        finally:
            first._backend.rollback()
        assert second.record(report({"ou_no_coords": [1]}, day(1))).run.id


def _rich_history(target):
    """A history with every kind of row: two servers, details and summary runs, a
    failed check, reopened spans, issues without ids, refs, odd text and floats."""
    with History(target) as h:
        h.record(report({"ou_no_coords": [1, 2, 3], "de_no_groups": [7]}, day(0)))
        h.record(report({"ou_no_coords": [2, 3, 4], "cyclic": [], "de_no_groups": []}, day(1),
                        failed=["de_no_groups"], job="JobUid00002"))
        h.record(report({"ou_no_coords": [1, 3]}, day(2), url="https://b.example"))
        h.record(report({"ou_no_coords": []}, day(3), details=False,
                        counts={"ou_no_coords": 9}))
        odd = report({"ou_no_coords": [1, 3, 4]}, day(4))
        odd["ou_no_coords"].percentage = 1 / 3.0
        odd["ou_no_coords"].issues.append(DataIntegrityIssue(None, "na\u00efve 'x' \"q\"\t"))
        odd["ou_no_coords"].issues.append(DataIntegrityIssue(None, None, "c\\n\n", ["r1", "\u20ac"]))
        odd["ou_no_coords"].count = 5
        h.record(odd)


def _tables(target):
    with History(target) as h:
        out = {}
        for table in sorted(h._backend.tables()):
            columns = sorted(h._backend.columns(table))
            rows = h._x("SELECT {} FROM {}".format(", ".join(columns), table)).fetchall()
            out[table] = (columns, sorted((tuple(r) for r in rows), key=repr))
        order = [tuple(r) for r in h._x("SELECT run_id, check_name FROM run_checks ORDER BY "
                                        + h._backend.insertion_order).fetchall()]
        answers = (h.runs(), h.trend(), h.trend("ou_no_coords"),
                   h.open_issues(now=day(9)), [h.load_report(r.id) for r in h.runs()],
                   h.check_trends(URL))
        return out, order, answers


def test_copy_round_trip_sqlite_postgresql_sqlite_is_lossless(tmp_path, pg_url):
    first = str(tmp_path / "first.sqlite")
    _rich_history(first)
    with History(first) as src, History(pg_url) as dst:
        counts = copy_history(src, dst)
    # the watch tables (#22) are copied too: new issues per check of every run
    assert counts == {"servers": 2, "runs": 5, "run_checks": 8,
                      "issues": counts["issues"], "run_new_issues": counts["run_new_issues"],
                      "health_checks": 0, "health_findings": 0, "job_runs": 0,
                      "alert_state": 0} and counts["issues"] >= 6
    assert counts["run_new_issues"] > 0
    back = str(tmp_path / "back.sqlite")
    with History(pg_url) as src, History(back) as dst:
        copy_history(src, dst)
    assert _tables(first) == _tables(pg_url) == _tables(back)
    # ids continue after the copied ones on both
    for target in (pg_url, back):
        with History(target) as h:
            assert h.record(report({"ou_no_coords": [3]}, day(5))).run.id == 6
            assert h._x("SELECT MAX(id) FROM servers").fetchone()[0] == 2


def test_copy_refuses_a_history_that_is_not_empty(tmp_path, pg_url):
    path = str(tmp_path / "h.sqlite")
    _rich_history(path)
    _rich_history(pg_url)
    with History(path) as src, History(pg_url) as dst:
        with pytest.raises(HistoryError, match="not empty"):
            copy_history(src, dst)
        assert len(dst.runs()) == 5


def test_cli_history_copy_both_ways_and_runs_on_postgresql(srv_pg, tmp_path, pg_url,
                                                           postgres_server, run_cli):
    srv = srv_pg
    password = postgres_server["password"]
    db = str(tmp_path / "cron.sqlite")
    srv.drift = 1
    for _ in range(2):
        proc = run_cli(["integrity", "run", "--details", "--history", db, "--format", "json",
                        "-o", str(tmp_path / "r.json")], url=srv.url)
        assert proc.returncode == 0, proc.stderr
    proc = run_cli(["history", "copy", db, pg_url])
    assert proc.returncode == 0, proc.stderr
    assert "copied 2 runs of 1 servers" in proc.stdout and password not in proc.stdout
    # the shared history takes the next run, from the environment, with --debug
    proc = run_cli(["--debug", "integrity", "run", "--details", "--format", "json", "-o",
                    str(tmp_path / "r.json")], url=srv.url, env={"DHIS2MAINT_HISTORY": pg_url})
    assert proc.returncode == 0, proc.stderr
    assert password not in proc.stderr + proc.stdout
    runs = run_cli(["integrity", "history", "--history", pg_url, "--format", "json"])
    assert runs.returncode == 0 and '"id": 3' in runs.stdout
    back = str(tmp_path / "back.sqlite")
    proc = run_cli(["history", "copy", pg_url, back])
    assert proc.returncode == 0 and "copied 3 runs" in proc.stdout, proc.stderr
    with sqlite3.connect(back) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 3
    conn.close()
    again = run_cli(["history", "copy", db, pg_url])
    assert again.returncode == 2 and "not empty" in again.stderr
    missing = run_cli(["history", "copy", str(tmp_path / "none.sqlite"), back])
    assert missing.returncode == 2 and "no history file" in missing.stderr
    bad = run_cli(["--debug", "integrity", "history", "--history",
                   pg_url.replace(password, "Wrong-Pw-98")])
    assert bad.returncode == 2 and "Wrong-Pw-98" not in bad.stderr + bad.stdout
    assert "password authentication failed" in bad.stderr


@pytest.fixture
def srv_pg(start_standin):
    return start_standin("2.42", job_seconds=0.2, users={"admin": PASSWORD})
