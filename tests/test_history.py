"""dhis2maint.history: recording runs, spans of issues, trends, open issues, crash safety
(a killed writer) and concurrent writers (#16.1, #16.2) -- every test taking ``history`` or
``history_target`` runs twice: on SQLite and on a real PostgreSQL server (#24.3)."""
import datetime
import os
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from dhis2maint import Session, compare_reports
from dhis2maint.errors import ConfigurationError, HistoryError, HistorySchemaError
from dhis2maint.history import SCHEMA_VERSION, History, issue_identity, parse_age
from dhis2maint.models import (DataIntegrityIssue, DataIntegrityReport, DataIntegrityResult,
                               DataIntegritySeverity, IntegrityIssueRow)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
URL = "https://dhis2.example.org"
UTC = datetime.timezone.utc


def uid(n, prefix="Ou"):
    return "{}{:09d}".format(prefix, n)


def report(issues_by_check, when, url=URL, job=None, failed=(), details=True, counts=None):
    """A details (or summary) report: check -> list of issue numbers."""
    results = {}
    severities = {"ou_no_coords": DataIntegritySeverity.WARNING,
                  "de_no_groups": DataIntegritySeverity.SEVERE,
                  "cyclic": DataIntegritySeverity.CRITICAL}
    for name, numbers in issues_by_check.items():
        issues = [DataIntegrityIssue(uid(n), "Object {}".format(n)) for n in numbers]
        error = "boom" if name in failed else None
        results[name] = DataIntegrityResult(
            name=name, display_name=name.replace("_", " "), severity=severities.get(name),
            count=-1 if error else (counts or {}).get(name, len(issues)),
            issues=([] if error else issues) if details else None, error=error,
            recommendation="Fix " + name, issues_id_type="organisationUnits")
    rep = DataIntegrityReport(results=results, details=details)
    rep.base_url, rep.dhis2_version, rep.job_id = url, "2.42.1", job
    rep.run_at = when
    rep.server_time = when.replace(tzinfo=None)
    return rep


def day(n):
    return datetime.datetime(2025, 1, 1, 3, 0, tzinfo=UTC) + datetime.timedelta(days=n)


@pytest.fixture
def history(history_target):
    with History(history_target()) as h:
        yield h


def test_record_stores_the_run_with_its_provenance(history):
    recorded = history.record(report({"ou_no_coords": [1, 2, 3], "de_no_groups": []}, day(0),
                                     job="JobUid00001"))
    run = recorded.run
    assert (run.base_url, run.dhis2_version, run.job_id) == (URL, "2.42.1", "JobUid00001")
    assert run.run_at == day(0) and run.server_time == day(0).replace(tzinfo=None)
    assert (run.details, run.checks, run.issues, run.failed) == (True, 2, 3, 0)
    assert recorded.previous_run_id is None and recorded.new_issues == 3
    assert history.runs() == [run] and history.runs(URL + "/") == [run]
    assert history.runs("https://other.example.org") == []
    assert history.servers() == [URL]


def test_new_resolved_first_seen_and_reopened_spans(history):
    history.record(report({"ou_no_coords": [1, 2, 3]}, day(0)))
    second = history.record(report({"ou_no_coords": [2, 3, 4]}, day(1)))
    assert (second.new_issues, second.resolved_issues) == (1, 1)
    assert second.new_by_check == {"ou_no_coords": 1}
    third = history.record(report({"ou_no_coords": [1, 3, 4]}, day(2)))  # 1 comes back
    assert (third.new_issues, third.resolved_issues) == (1, 1)
    opened = {i.id: i for i in history.open_issues(now=day(10))}
    assert sorted(opened) == [uid(1), uid(3), uid(4)]
    assert opened[uid(3)].first_seen == day(0)  # open since the first run
    assert opened[uid(4)].first_seen == day(1)
    assert opened[uid(1)].first_seen == day(2)  # reopened: a new span
    assert opened[uid(3)].age_days == 10.0 and opened[uid(3)].last_seen == day(2)


def test_record_agrees_with_compare_with_previous(history):
    history.record(report({"ou_no_coords": [1, 2, 3], "de_no_groups": [7]}, day(0)))
    new = report({"ou_no_coords": [2, 3, 4, 5], "de_no_groups": []}, day(1))
    comparison = history.compare_with_previous(new)
    recorded = history.record(new)
    assert len(comparison.new_issues) == recorded.new_issues == 2
    assert len(comparison.resolved_issues) == recorded.resolved_issues == 2
    # the same report, once recorded, is compared with the run BEFORE it
    again = history.compare_with_previous(new)
    assert {r.issue.id for r in again.new_issues} == {uid(4), uid(5)}
    old = history.load_report(1)
    assert not compare_reports(old, report({"ou_no_coords": [1, 2, 3], "de_no_groups": [7]},
                                           day(0))).has_changes


def test_compare_with_previous_without_history_makes_everything_new(history):
    comparison = history.compare_with_previous(report({"ou_no_coords": [1, 2]}, day(0)))
    assert len(comparison.new_issues) == 2 and not comparison.resolved_issues


def test_servers_are_kept_apart(history):
    history.record(report({"ou_no_coords": [1, 2]}, day(0)))
    other = history.record(report({"ou_no_coords": [1, 2]}, day(0), url="https://b.example"))
    assert other.previous_run_id is None and other.new_issues == 2
    assert len(history.open_issues(server="https://b.example")) == 2
    assert [p.count for p in history.trend(server=URL)] == [2]


def test_failed_check_keeps_its_issues_open(history):
    history.record(report({"ou_no_coords": [1, 2]}, day(0)))
    failed = history.record(report({"ou_no_coords": []}, day(1), failed=["ou_no_coords"]))
    assert (failed.new_issues, failed.resolved_issues, failed.run.failed) == (0, 0, 1)
    assert [i.first_seen for i in history.open_issues()] == [day(0), day(0)]
    back = history.record(report({"ou_no_coords": [2]}, day(2)))
    assert (back.new_issues, back.resolved_issues) == (0, 1)
    assert [(i.id, i.first_seen) for i in history.open_issues()] == [(uid(2), day(0))]


def test_summary_runs_count_rises_as_new(history):
    first = history.record(report({"ou_no_coords": []}, day(0), details=False,
                                  counts={"ou_no_coords": 5}))
    assert first.new_issues == 5 and not first.run.details
    second = history.record(report({"ou_no_coords": []}, day(1), details=False,
                                   counts={"ou_no_coords": 8}))
    assert second.new_by_check == {"ou_no_coords": 3}
    third = history.record(report({"ou_no_coords": []}, day(2), details=False,
                                  counts={"ou_no_coords": 2}))
    assert (third.new_issues, third.resolved_issues) == (0, 6)
    assert history.open_issues() == []  # summaries know no issues


def test_trend_per_check_and_since(history):
    for n, numbers in enumerate([[1, 2, 3], [1, 2], [1]]):
        history.record(report({"ou_no_coords": numbers, "cyclic": [9] * 0 + [n + 10]}, day(n)))
    assert [p.count for p in history.trend()] == [4, 3, 2]
    assert [p.count for p in history.trend("ou_no_coords")] == [3, 2, 1]
    assert [p.count for p in history.trend("ou_no_coords", since="2025-01-02")] == [2, 1]
    assert [p.count for p in history.trend(since=day(2))] == [2]
    assert history.trend("no_such_check") == []
    assert history.check_trends(URL) == {"ou_no_coords": [3, 2, 1], "cyclic": [1, 1, 1]}
    with pytest.raises(ValueError, match="not a date"):
        history.trend(since="yesterday")


def test_open_issues_filters_by_age_severity_and_check(history):
    history.record(report({"ou_no_coords": [1], "cyclic": [2]}, day(0)))
    history.record(report({"ou_no_coords": [1, 3], "cyclic": [2, 4]}, day(40)))
    now = day(45)
    old = history.open_issues(min_age="30d", now=now)
    assert sorted(i.id for i in old) == [uid(1), uid(2)]
    assert [i.id for i in history.open_issues(min_age="30d", severity="critical", now=now)] \
        == [uid(2)]
    assert len(history.open_issues(severity="SEVERE", now=now)) == 2
    assert [i.id for i in history.open_issues(check="ou_no_coords", now=now)] == \
        [uid(1), uid(3)]
    assert history.open_issues(min_age=datetime.timedelta(days=50), now=now) == []


def test_parse_age():
    assert parse_age("30d") == datetime.timedelta(days=30)
    assert parse_age("12h") == datetime.timedelta(hours=12)
    assert parse_age("2w") == datetime.timedelta(days=14)
    assert parse_age(7) == datetime.timedelta(days=7)
    assert parse_age("3") == datetime.timedelta(days=3)
    for bad in ("soon", "-3d", True):
        with pytest.raises(ValueError):
            parse_age(bad)


def test_issue_identity_follows_compare_reports():
    assert issue_identity(DataIntegrityIssue("Abc12345678", "X")) == "id:Abc12345678"
    assert issue_identity(DataIntegrityIssue(None, "X")) == "name:X"
    assert issue_identity(DataIntegrityIssue(None, None, "c", ["r"])) == 'content:["c", ["r"]]'


def test_record_consumes_a_stream_and_reads_results_after_it(history):
    rep = DataIntegrityReport(details=True)
    rep.base_url = URL

    def rows():
        for n in range(2500):
            yield IntegrityIssueRow("ou_no_coords", None, None,
                                    DataIntegrityIssue(uid(n), "Object {}".format(n)))
        # like iter_integrity_run: the check's result arrives after its rows
        rep.results["ou_no_coords"] = DataIntegrityResult(
            name="ou_no_coords", severity=DataIntegritySeverity.WARNING, count=2500)

    recorded = history.record(rep, rows=rows())
    assert recorded.run.issues == 2500 == recorded.new_issues and recorded.run.details
    assert len(history.open_issues()) == 2500


def test_record_needs_a_server(history):
    with pytest.raises(ValueError, match="base_url"):
        history.record(DataIntegrityReport())


def test_wal_mode_and_schema_version(tmp_path):
    path = str(tmp_path / "h.sqlite")
    with History(path) as h:
        assert h.journal_mode == "wal" and h.schema_version == SCHEMA_VERSION
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT version FROM schema_version").fetchall() == [
            (SCHEMA_VERSION,)]
    finally:
        db.close()  # 3.13 warns about an unclosed connection, and warnings are errors


def test_a_newer_schema_is_refused(history_target):
    target = history_target()
    with History(target) as h:
        h._x("UPDATE schema_version SET version = 7")
    with pytest.raises(HistorySchemaError, match="schema version 7, newer than this "
                                                 "dhis2maint supports") as info:
        History(target)
    assert (info.value.found, info.value.supported) == (7, SCHEMA_VERSION)
    assert isinstance(info.value, ConfigurationError)  # CLI exit 2


def test_forward_migration_keeps_the_data(history_target, monkeypatch):
    from dhis2maint import history as module

    target = history_target()
    with History(target) as h:
        h.record(report({"ou_no_coords": [1]}, day(0)))
    later = module.SCHEMA_VERSION + 1
    monkeypatch.setattr(module, "SCHEMA_VERSION", later)
    monkeypatch.setitem(module._MIGRATIONS, later, [
        "ALTER TABLE runs ADD COLUMN note TEXT",
        "CREATE TABLE verdicts (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL"
        " REFERENCES runs(id), score REAL)"])
    with History(target) as h:
        assert h.schema_version == later and len(h.runs()) == 1
        assert "note" in h._backend.columns("runs")
        # the portable step made an autoincrement id on both backends
        h._x("INSERT INTO verdicts (run_id, score) VALUES (?, ?)", (1, 0.5))
        h._x("INSERT INTO verdicts (run_id, score) VALUES (?, ?)", (1, 0.25))
        assert h._x("SELECT id, score FROM verdicts ORDER BY id").fetchall() == \
            [(1, 0.5), (2, 0.25)]


def test_not_a_history_file(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(HistoryError, match="not a dhis2maint history file"):
        History(str(junk))
    other = str(tmp_path / "other.sqlite")
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE customers (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(HistoryError, match="not a dhis2maint history"):
        History(other)


def test_not_a_history_schema(pg_url):
    import psycopg

    from dhis2maint.history import _quote_ident

    schema = pg_url.rsplit("schema=", 1)[1]
    with psycopg.connect(pg_url.split("?")[0], autocommit=True) as conn:
        conn.execute("CREATE SCHEMA " + _quote_ident(schema))
        conn.execute("CREATE TABLE {}.customers (id INTEGER)".format(_quote_ident(schema)))
    with pytest.raises(HistoryError, match="PostgreSQL schema but not a dhis2maint history"):
        History(pg_url)


WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from dhis2maint.history import History
    from dhis2maint.models import (DataIntegrityIssue, DataIntegrityReport,
                                   DataIntegrityResult, IntegrityIssueRow)
    path, label, count, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    rep = DataIntegrityReport(results={{"ou_no_coords": DataIntegrityResult(
        name="ou_no_coords", count=count)}}, details=True)
    rep.base_url = "https://dhis2.example.org"
    rep.job_id = label

    def rows():
        for n in range(count):
            if n == count // 2:
                print("halfway", flush=True)
                time.sleep(pause)
            yield IntegrityIssueRow("ou_no_coords", None, None,
                                    DataIntegrityIssue("{{}}{{:08d}}".format(label[:3], n), "x"))

    with History(path) as history:
        history.record(rep, rows=rows())
    print("done", flush=True)
""").format(root=ROOT)


def _writer(tmp_path, *args):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return subprocess.Popen([sys.executable, str(script)] + [str(a) for a in args],
                            stdout=subprocess.PIPE, universal_newlines=True)


def test_a_killed_writer_leaves_the_previous_state_intact(tmp_path, history_target):
    path = history_target()
    first = _writer(tmp_path, path, "One", 1000, 0)
    assert first.communicate(timeout=60)[0].split() == ["halfway", "done"]
    writer = _writer(tmp_path, path, "Two", 200000, 60)
    assert writer.stdout.readline().strip() == "halfway"  # 100,000 rows inside its transaction
    writer.kill()
    writer.wait(timeout=30)
    writer.stdout.close()
    with History(path, busy_timeout=10) as history:
        runs = history.runs()
        assert [r.job_id for r in runs] == ["One"] and runs[0].issues == 1000
        assert len(history.open_issues()) == 1000
        assert history._db.execute("SELECT COUNT(*) FROM issues").fetchone()[0] == 1000
        # and the file takes the next run
        history.record(report({"ou_no_coords": [1]}, day(0),
                              url="https://dhis2.example.org"))
        assert len(history.runs()) == 2


def test_two_overlapping_writers_both_succeed(tmp_path, history_target):
    path = history_target()
    History(path).close()
    slow = _writer(tmp_path, path, "Slow", 20000, 2)
    assert slow.stdout.readline().strip() == "halfway"  # holds the write lock for 2 s
    fast = _writer(tmp_path, path, "Fast", 100, 0)
    started = time.monotonic()
    out_fast = fast.communicate(timeout=120)[0]
    out_slow = slow.communicate(timeout=120)[0]
    assert fast.returncode == 0 and slow.returncode == 0
    assert out_fast.split() == ["halfway", "done"] and out_slow.split() == ["done"]
    assert time.monotonic() - started < 120
    with History(path) as history:
        assert sorted(r.job_id for r in history.runs()) == ["Fast", "Slow"]
        assert sum(r.issues for r in history.runs()) == 20100


def test_importing_dhis2maint_does_not_import_sqlite3_nor_psycopg(tmp_path):
    code = "import sys, dhis2maint, dhis2maint.cli; print('sqlite3' in sys.modules, " \
           "'dhis2maint.history' in sys.modules, 'psycopg' in sys.modules)"
    out = subprocess.check_output([sys.executable, "-c", code], cwd=ROOT,
                                  universal_newlines=True)
    assert out.split() == ["False", "False", "False"]
    # and an SQLite history does not import it either
    code = ("import sys; from dhis2maint.history import History; History(sys.argv[1]).close();"
            " print('psycopg' in sys.modules)")
    out = subprocess.check_output([sys.executable, "-c", code, str(tmp_path / "h.sqlite")],
                                  cwd=ROOT, universal_newlines=True)
    assert out.split() == ["False"]


def test_end_to_end_with_stand_in_drift(serve, history_target):
    srv, session = serve("2.42")
    srv.drift = 1
    with History(history_target()) as history:
        runs = []
        for _ in range(3):
            rep = session.run_integrity_checks(details=True, timeout=60)
            comparison = history.compare_with_previous(rep)
            recorded = history.record(rep, session)
            assert recorded.new_issues == len(comparison.new_issues)
            assert recorded.resolved_issues == len(comparison.resolved_issues)
            runs.append(recorded)
        assert runs[0].run.base_url == session.base_url == srv.url
        assert runs[0].run.job_id and runs[0].run.dhis2_version == "2.42.0"
        assert runs[1].new_issues > 0 and runs[1].resolved_issues > 0
        totals = [p.count for p in history.trend()]
        assert totals == [r.run.issues for r in runs] and totals[0] < totals[-1]
        assert len(history.open_issues()) == runs[-1].run.issues


def test_record_a_streamed_run_from_the_stand_in(serve, history_target):
    srv, session = serve("2.42")
    srv.set_issue_count("orgunits_no_coordinates", 30000)
    with History(history_target()) as history:
        rep, rows = session.iter_integrity_run(checks=["orgunits_no_coordinates"], timeout=60)
        recorded = history.record(rep, Session(srv.url, token="unused"), rows=rows)
        assert recorded.run.issues == 30000 == recorded.new_issues
        assert recorded.run.job_id == rep.job_id and rep.job_id
        assert rep["orgunits_no_coordinates"].count == 30000


FLEET_WRITER = textwrap.dedent("""
    import datetime, os, sys, time
    sys.path.insert(0, {root!r})
    from dhis2maint.history import History
    from dhis2maint.models import (DataIntegrityIssue, DataIntegrityReport,
                                   DataIntegrityResult, IntegrityIssueRow)
    target, url, k, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    numbers = list(range(300)) + [1000 * (k + 1) + n for n in range(10)]
    rep = DataIntegrityReport(results={{"ou_no_coords": DataIntegrityResult(
        name="ou_no_coords", count=len(numbers))}}, details=True)
    rep.base_url, rep.job_id = url, "Job{{}}".format(k)
    rep.run_at = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc) + \\
        datetime.timedelta(hours=k)

    def rows():
        for i, n in enumerate(numbers):
            if i == 150:
                time.sleep(0.2)  # overlap with the others inside the transaction
            yield IntegrityIssueRow("ou_no_coords", None, None,
                                    DataIntegrityIssue("Ou{{:09d}}".format(n), "x"))

    while not os.path.exists(go):
        time.sleep(0.01)
    with History(target) as history:
        recorded = history.record(rep, rows=rows())
    print(recorded.run.id, recorded.new_issues, recorded.resolved_issues, flush=True)
""").format(root=ROOT)


def test_eight_writers_of_four_servers_at_once(tmp_path, history_target):
    """Eight processes record at once: four runs of one server, one each of four
    others.  All succeed, and the shared server's runs chain one after another (each
    compared with the one committed before it), so first/last seen are right (#24.4)."""
    target = history_target()
    History(target).close()
    script = tmp_path / "fleet_writer.py"
    script.write_text(FLEET_WRITER)
    go = str(tmp_path / "go")
    servers = [URL] * 4 + ["https://s{}.example.org".format(n) for n in range(4)]
    procs = [subprocess.Popen([sys.executable, str(script), target, url, str(k), go],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True)
             for k, url in enumerate(servers)]
    open(go, "w").close()
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err for _, err in outs]
    with History(target) as history:
        assert len(history.runs()) == 8 and len(history.servers()) == 5
        for url in servers[4:]:
            run, = history.runs(url)
            assert (run.issues, run.new_issues, run.resolved_issues) == (310, 310, 0)
        chain = history.runs(URL)
        assert [(r.new_issues, r.resolved_issues) for r in chain] == \
            [(310, 0), (10, 10), (10, 10), (10, 10)]
        opened = {i.id: i for i in history.open_issues(server=URL)}
        assert len(opened) == 310
        assert opened[uid(0)].first_seen == chain[0].run_at  # open since the first commit
        assert opened[uid(0)].first_run == chain[0].id
        assert {i.last_run for i in opened.values()} == {chain[-1].id}
        last_k = int(chain[-1].job_id[3:])
        assert opened[uid(1000 * (last_k + 1))].first_run == chain[-1].id


def test_an_issue_listed_twice_in_a_run_keeps_the_last(history):
    rep = report({"ou_no_coords": [1, 2]}, day(0))
    rep["ou_no_coords"].issues.append(DataIntegrityIssue(uid(1), "Renamed"))
    recorded = history.record(rep)
    assert recorded.new_issues == 2
    assert {i.id: i.name for i in history.open_issues()} == \
        {uid(1): "Renamed", uid(2): "Object 2"}
