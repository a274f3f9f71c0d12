"""A local history of data-integrity runs in one SQLite file (standard library only).

DHIS2 keeps integrity results for about an hour.  :class:`History` keeps every
run you record -- of any number of servers -- so you can ask what is new
tonight, what has been open for a month, and whether things get better::

    from dhis2maint.history import History

    history = History("integrity.sqlite")
    report = session.run_integrity_checks(details=True)
    recorded = history.record(report, session)
    recorded.new_issues          # issues the previous run of this server did not have
    history.trend()              # total issues per run
    history.open_issues(min_age=30)  # open for 30 days or more, with first-seen dates

What is stored: per run the server's base URL (never credentials), DHIS2
version, job id, client UTC start/finish and server time, summary or details,
and the checks it covered (count, severity, percentage, error); per issue of a
details run its identity (check + issue id, or name when DHIS2 gives no id, or
comment and refs when it gives neither), name, comment, refs and the first and
last run it was seen in.  An issue that disappears and comes back later starts
a new span: its first-seen date is the run it came back in.

Safety: the file is in WAL mode; every run is written in ONE transaction (a
process killed mid-write leaves the previous state intact), writers wait up to
``busy_timeout`` seconds for each other (two overlapping cron runs both
succeed), and a ``schema_version`` table drives forward migrations.  A file
written by a newer dhis2maint raises :class:`~dhis2maint.errors.HistorySchemaError`.

Importing :mod:`dhis2maint` does not import this module (nor :mod:`sqlite3`).
"""
import datetime
import json
import os
import sqlite3
from typing import (TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Optional, Sequence,
                    Tuple, Union, cast)

import attr

from . import models
from .errors import HistoryError, HistorySchemaError
from .models import _Model, severity_rank

if TYPE_CHECKING:
    from .session import Session

__all__ = ["History", "RunInfo", "TrendPoint", "OpenIssue", "RecordedRun",
           "SCHEMA_VERSION", "issue_identity", "parse_age"]

#: The schema this dhis2maint writes.  Each entry of :data:`_MIGRATIONS` takes a
#: file from version ``n - 1`` to ``n``.
SCHEMA_VERSION = 1

_MIGRATIONS = {
    1: [
        "CREATE TABLE servers (id INTEGER PRIMARY KEY, base_url TEXT NOT NULL UNIQUE)",
        "CREATE TABLE runs (id INTEGER PRIMARY KEY, server_id INTEGER NOT NULL"
        " REFERENCES servers(id), dhis2_version TEXT, job_id TEXT, run_at TEXT NOT NULL,"
        " finished_at TEXT NOT NULL, server_time TEXT, details INTEGER NOT NULL,"
        " checks INTEGER NOT NULL, issues INTEGER NOT NULL, failed INTEGER NOT NULL,"
        " new_issues INTEGER, resolved_issues INTEGER)",
        "CREATE INDEX runs_by_server ON runs (server_id, id)",
        "CREATE TABLE run_checks (run_id INTEGER NOT NULL REFERENCES runs(id),"
        " check_name TEXT NOT NULL, display_name TEXT, severity TEXT, count INTEGER,"
        " percentage REAL, error TEXT, recommendation TEXT, issues_id_type TEXT,"
        " PRIMARY KEY (run_id, check_name))",
        "CREATE INDEX run_checks_by_name ON run_checks (check_name, run_id)",
        "CREATE TABLE issues (server_id INTEGER NOT NULL, check_name TEXT NOT NULL,"
        " ident TEXT NOT NULL, issue_id TEXT, name TEXT, comment TEXT, refs TEXT,"
        " first_run INTEGER NOT NULL, last_run INTEGER NOT NULL,"
        " PRIMARY KEY (server_id, check_name, ident)) WITHOUT ROWID",
    ],
}

#: Seconds a writer waits for another writer before giving up (sqlite busy timeout).
DEFAULT_BUSY_TIMEOUT = 600.0


# --- models -------------------------------------------------------------------------


@attr.s(auto_attribs=True, slots=True, repr=False)
class RunInfo(_Model):
    """One recorded run (:meth:`History.runs`).  Times: ``run_at``/``finished_at``
    client UTC, ``server_time`` the server's clock (no zone)."""

    id: int
    base_url: str
    dhis2_version: Optional[str]
    job_id: Optional[str]
    run_at: datetime.datetime
    finished_at: datetime.datetime
    server_time: Optional[datetime.datetime]
    details: bool
    checks: int
    issues: int
    failed: int
    new_issues: Optional[int] = None
    resolved_issues: Optional[int] = None


@attr.s(auto_attribs=True, slots=True, repr=False)
class TrendPoint(_Model):
    """Issues of one run (:meth:`History.trend`): of one check, or all checks (``check`` None)."""

    run_id: int
    base_url: str
    run_at: datetime.datetime
    check: Optional[str]
    count: Optional[int]
    severity: Optional[str] = None


@attr.s(auto_attribs=True, slots=True, repr=False)
class OpenIssue(_Model):
    """An issue still present in the newest run of its server that covered its check."""

    base_url: str
    check_name: str
    check_display_name: Optional[str]
    severity: Optional[str]
    id: Optional[str]
    name: Optional[str]
    comment: Optional[str]
    first_seen: datetime.datetime
    last_seen: datetime.datetime
    first_run: int
    last_run: int
    age_days: float


@attr.s(auto_attribs=True, slots=True, repr=False)
class RecordedRun(_Model):
    """What :meth:`History.record` stored: the run, and how it differs from the
    previous run of the same server.  ``new_by_check``: check -> issues the previous
    run that covered the check did not have (details runs), or how much its count
    rose (summary runs); a check never recorded before counts all its issues."""

    run: RunInfo
    previous_run_id: Optional[int]
    new_issues: int
    resolved_issues: int
    new_by_check: Dict[str, int] = attr.Factory(dict)
    severities: Dict[str, Optional[str]] = attr.Factory(dict)

    def new_at_least(self, severity: str) -> int:
        """New issues in checks of ``severity`` or worse."""
        floor = severity_rank(str(severity).upper())
        return sum(n for check, n in self.new_by_check.items()
                   if severity_rank(self.severities.get(check) or "WARNING") >= floor)


# --- helpers -------------------------------------------------------------------------


def issue_identity(issue: models.DataIntegrityIssue) -> str:
    """The key an issue is known by across runs (within its check): its id, else
    its name, else its comment and refs -- the same rule as :func:`compare_reports`."""
    if issue.id:
        return "id:" + issue.id
    if issue.name is not None:
        return "name:" + issue.name
    return "content:" + json.dumps([issue.comment, list(issue.refs or ())], ensure_ascii=False)


def _utc(value: Optional[datetime.datetime]) -> Optional[datetime.datetime]:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def _text(value: Optional[datetime.datetime]) -> Optional[str]:
    return None if value is None else value.isoformat(timespec="seconds")


def _when(text: Optional[str]) -> Optional[datetime.datetime]:
    if text is None:
        return None
    from .convert import parse_datetime

    return parse_datetime(text)


def _stamp(text: str) -> datetime.datetime:
    """A time of a NOT NULL column."""
    return cast(datetime.datetime, _when(text))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def parse_age(value: Union[str, int, float, datetime.timedelta, None]
              ) -> Optional[datetime.timedelta]:
    """``"30d"``, ``"12h"``, ``"2w"``, ``"90m"``, a number of days or a timedelta -> timedelta."""
    if value is None or isinstance(value, datetime.timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("not an age: {!r}".format(value))
    if isinstance(value, (int, float)):
        return datetime.timedelta(days=value)
    text = str(value).strip().lower()
    units = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
    number, unit = text[:-1], text[-1:]
    if unit not in units:
        number, unit = text, "d"
    try:
        amount = float(number)
    except ValueError:
        raise ValueError("not an age: {!r} (use e.g. 30d, 12h, 2w)".format(value)) from None
    if amount < 0:
        raise ValueError("an age cannot be negative: {!r}".format(value))
    return datetime.timedelta(seconds=amount * units[unit])


def _since(value: Union[str, datetime.date, datetime.datetime, None]) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return _text(_utc(value))
    if isinstance(value, datetime.date):
        return value.isoformat()
    from .convert import parse_datetime

    try:
        return _text(_utc(parse_datetime(str(value))))
    except ValueError:
        raise ValueError("not a date: {!r} (use YYYY-MM-DD)".format(value)) from None


# --- the history ---------------------------------------------------------------------


class History:
    """The integrity history in the SQLite file ``path`` (created when missing).

    ``busy_timeout``: seconds to wait for another process writing the same file.
    Use as a context manager or call :meth:`close`.  Not shared between threads.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"],
                 busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.path = os.fspath(path)
        self.busy_timeout = float(busy_timeout)
        try:
            self._db = sqlite3.connect(self.path, timeout=self.busy_timeout,
                                       isolation_level=None)
        except sqlite3.Error as exc:
            raise HistoryError("cannot open history file {}: {}".format(self.path, exc),
                               self.path) from None
        try:
            self._setup()
        except BaseException:
            self._db.close()
            raise

    def __repr__(self) -> str:
        return "<dhis2maint.history.History {}>".format(self.path)

    def __enter__(self) -> "History":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database file."""
        self._db.close()

    # --- schema -------------------------------------------------------------------

    def _fail(self, exc: Exception, doing: str) -> HistoryError:
        return HistoryError("history file {}: {} failed: {}".format(self.path, doing, exc),
                            self.path)

    def _setup(self) -> None:
        db = self._db
        try:
            db.execute("PRAGMA busy_timeout = {:d}".format(int(self.busy_timeout * 1000)))
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise HistoryError("{} is not a dhis2maint history file (SQLite said: {})".format(
                self.path, exc), self.path) from None
        try:
            version = self._schema_version()
            if version > SCHEMA_VERSION:
                raise HistorySchemaError(
                    "history file {} has schema version {}, newer than this dhis2maint "
                    "supports ({}): upgrade dhis2maint to read it".format(
                        self.path, version, SCHEMA_VERSION),
                    self.path, version, SCHEMA_VERSION)
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[step]:
                    db.execute(statement)
                db.execute("DELETE FROM schema_version")
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (step,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self.journal_mode = mode

    def _schema_version(self) -> int:
        db = self._db
        tables = {row[0] for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "schema_version" not in tables:
            if tables:
                raise HistoryError("{} is an SQLite file but not a dhis2maint history (it has "
                                   "tables {})".format(self.path, ", ".join(sorted(tables))),
                                   self.path)
            db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            return 0
        row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    @property
    def schema_version(self) -> int:
        """The schema version of the file."""
        return int(self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])

    # --- recording ---------------------------------------------------------------

    def record(self, report: models.DataIntegrityReport, session: Optional["Session"] = None,
               rows: Optional[Iterable[models.IntegrityIssueRow]] = None) -> RecordedRun:
        """Store one run in one transaction; return a :class:`RecordedRun`.

        ``report``: the run's :class:`DataIntegrityReport`; its provenance
        (``base_url``, ``dhis2_version``, ``job_id``, ``run_at``, ``server_time``)
        is used, and ``session`` fills what it lacks (base URL, version).

        ``rows``: optional iterable of :class:`IntegrityIssueRow` used as the
        run's issues INSTEAD of the report's (e.g. a stream from
        :meth:`Session.iter_integrity_issues`); it is consumed one row at a time
        and ``report.results`` is read only after it is exhausted, so a stream
        may fill the report's results (counts, severities) while it runs.  A
        million issues record in constant memory this way.
        """
        base_url, version = report.base_url, report.dhis2_version
        if session is not None:
            from .versions import version_text

            base_url = base_url or session.base_url
            if version is None:
                try:
                    version = version_text(session.server_version)
                except Exception:  # an unreachable server must not lose the record
                    version = None
        if not base_url:
            raise ValueError("History.record: the report has no base_url; pass the session")
        details = bool(report.details or rows is not None)
        run_at = _utc(report.run_at) or _now()
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._fail(exc, "waiting for another writer") from None
        try:
            server_id = self._server_id(base_url)
            cur = db.execute(
                "INSERT INTO runs (server_id, dhis2_version, job_id, run_at, finished_at,"
                " server_time, details, checks, issues, failed) VALUES (?,?,?,?,?,?,?,0,0,0)",
                (server_id, version, report.job_id, _text(run_at), _text(run_at),
                 _text(report.server_time), int(details)))
            run_id = cast(int, cur.lastrowid)  # an INSERT sets it
            if details:
                db.execute("DROP TABLE IF EXISTS temp.seen")
                db.execute("CREATE TEMP TABLE seen (check_name TEXT NOT NULL, ident TEXT NOT NULL,"
                           " issue_id TEXT, name TEXT, comment TEXT, refs TEXT,"
                           " PRIMARY KEY (check_name, ident)) WITHOUT ROWID")
                source = rows if rows is not None else report.issue_rows()
                db.executemany("INSERT OR REPLACE INTO temp.seen VALUES (?,?,?,?,?,?)",
                               _issue_params(source))
            checks = list(report)
            db.executemany(
                "INSERT OR REPLACE INTO run_checks (run_id, check_name, display_name, severity,"
                " count, percentage, error, recommendation, issues_id_type)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                [(run_id, r.name, r.display_name, None if r.severity is None else str(r.severity),
                  _result_count(r), r.percentage, r.error, r.recommendation, r.issues_id_type)
                 for r in checks])
            recorded = self._compare_and_store(run_id, server_id, details, checks)
            totals = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN error IS NULL THEN count END), 0),"
                " COALESCE(SUM(error IS NOT NULL), 0) FROM run_checks WHERE run_id = ?",
                (run_id,)).fetchone()
            db.execute("UPDATE runs SET finished_at = ?, checks = ?, issues = ?, failed = ?,"
                       " new_issues = ?, resolved_issues = ? WHERE id = ?",
                       (_text(_now()), totals[0], totals[1], totals[2], recorded[1],
                        recorded[2], run_id))
            if details:
                db.execute("DROP TABLE temp.seen")
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._fail(exc, "recording a run") from None
            raise
        return RecordedRun(run=self._run(run_id), previous_run_id=recorded[0],
                           new_issues=recorded[1], resolved_issues=recorded[2],
                           new_by_check=recorded[3],
                           severities={r.name: None if r.severity is None else str(r.severity)
                                       for r in checks})

    def _server_id(self, base_url: str) -> int:
        db = self._db
        row = db.execute("SELECT id FROM servers WHERE base_url = ?", (base_url,)).fetchone()
        if row:
            return int(row[0])
        return int(cast(int, db.execute("INSERT INTO servers (base_url) VALUES (?)",
                                        (base_url,)).lastrowid))  # an INSERT sets it

    def _compare_and_store(self, run_id: int, server_id: int, details: bool,
                           checks: List[models.DataIntegrityResult]
                           ) -> Tuple[Optional[int], int, int, Dict[str, int]]:
        """(previous run id, new issues, resolved issues, new by check); updates issues."""
        db = self._db
        prev_row = db.execute("SELECT MAX(id) FROM runs WHERE server_id = ? AND id < ?",
                              (server_id, run_id)).fetchone()
        previous = prev_row[0]
        # per check: the newest earlier run of this server where it ran without error
        db.execute("DROP TABLE IF EXISTS temp.prev")
        db.execute("CREATE TEMP TABLE prev (check_name TEXT PRIMARY KEY, run_id INTEGER,"
                   " details INTEGER, count INTEGER)")
        db.execute(
            "INSERT INTO temp.prev SELECT rc.check_name, MAX(rc.run_id), 0, NULL"
            " FROM run_checks rc JOIN runs r ON r.id = rc.run_id"
            " WHERE r.server_id = ? AND rc.run_id < ? AND rc.error IS NULL"
            " AND rc.check_name IN (SELECT check_name FROM run_checks WHERE run_id = ?)"
            " GROUP BY rc.check_name", (server_id, run_id, run_id))
        db.execute("UPDATE temp.prev SET details = (SELECT details FROM runs WHERE id = run_id),"
                   " count = (SELECT count FROM run_checks c WHERE c.run_id = prev.run_id"
                   " AND c.check_name = prev.check_name)")
        new_by_check: Dict[str, int] = {}
        resolved = 0
        failed = {r.name for r in checks if r.error is not None}
        if details:
            # checks that failed now keep their issues' spans as they were
            for name in failed:
                db.execute("DELETE FROM temp.seen WHERE check_name = ?", (name,))
            # New: not in the issue's span ending at the previous details run of its check.
            for name, count in db.execute(
                    "SELECT s.check_name, COUNT(*) FROM temp.seen s LEFT JOIN temp.prev p"
                    " ON p.check_name = s.check_name WHERE NOT EXISTS (SELECT 1 FROM issues i"
                    " WHERE i.server_id = ? AND i.check_name = s.check_name AND i.ident = s.ident"
                    " AND p.details = 1 AND i.last_run = p.run_id)"
                    " GROUP BY s.check_name", (server_id,)):
                new_by_check[name] = count
            resolved = db.execute(
                "SELECT COUNT(*) FROM issues i JOIN temp.prev p ON p.check_name = i.check_name"
                " AND i.last_run = p.run_id AND p.details = 1 WHERE i.server_id = ?"
                " AND i.check_name NOT IN (SELECT check_name FROM run_checks"
                " WHERE run_id = ? AND error IS NOT NULL)"
                " AND NOT EXISTS (SELECT 1 FROM temp.seen s WHERE s.check_name = i.check_name"
                " AND s.ident = i.ident)", (server_id, run_id)).fetchone()[0]
            db.execute(
                "INSERT OR REPLACE INTO issues (server_id, check_name, ident, issue_id, name,"
                " comment, refs, first_run, last_run) SELECT ?, s.check_name, s.ident,"
                " s.issue_id, s.name, s.comment, s.refs, COALESCE((SELECT i.first_run FROM"
                " issues i JOIN temp.prev p ON p.check_name = i.check_name AND p.details = 1"
                " AND i.last_run = p.run_id WHERE i.server_id = ? AND i.check_name ="
                " s.check_name AND i.ident = s.ident), ?), ? FROM temp.seen s",
                (server_id, server_id, run_id, run_id))
        else:
            prev_counts = {name: count for name, count in db.execute(
                "SELECT check_name, count FROM temp.prev")}
            for result in checks:
                count = _result_count(result)
                if result.error is not None or not count:
                    continue
                before = prev_counts.get(result.name)
                if before is None or before < count:
                    new_by_check[result.name] = count - (before or 0)
                elif before > count:
                    resolved += before - count
        db.execute("DROP TABLE temp.prev")
        return previous, sum(new_by_check.values()), resolved, new_by_check

    # --- reading -------------------------------------------------------------------

    def _run(self, run_id: int) -> RunInfo:
        rows = self._runs_where("r.id = ?", (run_id,))
        if not rows:
            raise KeyError(run_id)
        return rows[0]

    def _runs_where(self, where: str, params: Sequence[Any]) -> List[RunInfo]:
        query = ("SELECT r.id, s.base_url, r.dhis2_version, r.job_id, r.run_at, r.finished_at,"
                 " r.server_time, r.details, r.checks, r.issues, r.failed, r.new_issues,"
                 " r.resolved_issues FROM runs r JOIN servers s ON s.id = r.server_id"
                 " WHERE " + where + " ORDER BY r.id")
        return [RunInfo(row[0], row[1], row[2], row[3], _stamp(row[4]), _stamp(row[5]),
                        _when(row[6]), bool(row[7]), row[8], row[9], row[10], row[11], row[12])
                for row in self._db.execute(query, params)]

    def runs(self, server: Optional[str] = None) -> List[RunInfo]:
        """Recorded runs, oldest first; ``server`` (a base URL) keeps that server's only."""
        if server is None:
            return self._runs_where("1", ())
        return self._runs_where("s.base_url = ?", (_server_key(server),))

    def servers(self) -> List[str]:
        """Base URLs of every server in the history."""
        return [row[0] for row in self._db.execute("SELECT base_url FROM servers ORDER BY id")]

    def trend(self, check: Optional[str] = None,
              since: Union[str, datetime.date, None] = None,
              server: Optional[str] = None) -> List[TrendPoint]:
        """Issue counts over time, one :class:`TrendPoint` per run, oldest first.

        ``check``: one check's count (runs that did not cover it are left out);
        ``None``: total issues of each run.  ``since``: a date/datetime or
        ``YYYY-MM-DD`` (client UTC).  ``server``: one base URL.
        """
        where: List[str] = ["1"]
        params: List[Any] = []
        if since is not None:
            where.append("r.run_at >= ?")
            params.append(_since(since))
        if server is not None:
            where.append("s.base_url = ?")
            params.append(_server_key(server))
        if check is None:
            query = ("SELECT r.id, s.base_url, r.run_at, r.issues, NULL FROM runs r"
                     " JOIN servers s ON s.id = r.server_id WHERE " + " AND ".join(where) +
                     " ORDER BY r.id")
        else:
            where.append("rc.check_name = ?")
            params.append(check)
            query = ("SELECT r.id, s.base_url, r.run_at,"
                     " CASE WHEN rc.error IS NULL THEN rc.count END, rc.severity FROM runs r"
                     " JOIN servers s ON s.id = r.server_id JOIN run_checks rc"
                     " ON rc.run_id = r.id WHERE " + " AND ".join(where) + " ORDER BY r.id")
        return [TrendPoint(row[0], row[1], _stamp(row[2]), check, row[3], row[4])
                for row in self._db.execute(query, params)]

    def check_trends(self, server: str, limit: int = 30) -> Dict[str, List[Optional[int]]]:
        """check -> its counts in the last ``limit`` runs of ``server`` (oldest first;
        ``None`` where a run did not cover the check or it failed): sparkline data."""
        ids = [row[0] for row in self._db.execute(
            "SELECT r.id FROM runs r JOIN servers s ON s.id = r.server_id WHERE s.base_url = ?"
            " ORDER BY r.id DESC LIMIT ?", (_server_key(server), int(limit)))][::-1]
        if not ids:
            return {}
        position = {run_id: i for i, run_id in enumerate(ids)}
        out: Dict[str, List[Optional[int]]] = {}
        marks = ",".join("?" * len(ids))
        for run_id, name, count, error in self._db.execute(
                "SELECT run_id, check_name, count, error FROM run_checks WHERE run_id IN ("
                + marks + ")", ids):
            series = out.setdefault(name, [None] * len(ids))
            series[position[run_id]] = None if error is not None else count
        return out

    def open_issues(self, min_age: Union[str, int, float, datetime.timedelta, None] = None,
                    severity: Optional[str] = None, server: Optional[str] = None,
                    check: Optional[str] = None,
                    now: Optional[datetime.datetime] = None) -> List[OpenIssue]:
        """Issues present in the newest details run (of their server) that covered
        their check, with the date they were first seen; oldest first.

        ``min_age``: only issues first seen at least this long ago (a timedelta,
        days as a number, or ``"30d"``/``"12h"``/``"2w"``); ``severity``: only
        checks of this severity or worse; ``server``: one base URL; ``check``: one
        check name.
        """
        age = parse_age(min_age)
        floor = None
        if severity is not None:
            floor = severity_rank(str(severity).upper())
        now = _utc(now) or _now()
        where: List[str] = ["1"]
        params: List[Any] = []
        if server is not None:
            where.append("s.base_url = ?")
            params.append(_server_key(server))
        if check is not None:
            where.append("i.check_name = ?")
            params.append(check)
        if age is not None:
            where.append("f.run_at <= ?")
            params.append(_text(now - age))
        query = (
            "SELECT s.base_url, i.check_name, rc.display_name, rc.severity, i.issue_id, i.name,"
            " i.comment, f.run_at, l.run_at, i.first_run, i.last_run FROM issues i"
            " JOIN (SELECT r.server_id AS server_id, c.check_name AS check_name,"
            " MAX(r.id) AS run_id FROM runs r JOIN run_checks c ON c.run_id = r.id"
            " WHERE r.details = 1 AND c.error IS NULL GROUP BY r.server_id, c.check_name) la"
            " ON la.server_id = i.server_id AND la.check_name = i.check_name"
            " AND la.run_id = i.last_run"
            " JOIN runs f ON f.id = i.first_run JOIN runs l ON l.id = i.last_run"
            " JOIN run_checks rc ON rc.run_id = i.last_run AND rc.check_name = i.check_name"
            " JOIN servers s ON s.id = i.server_id WHERE " + " AND ".join(where) +
            " ORDER BY f.run_at, i.check_name, i.ident")
        out = []
        for row in self._db.execute(query, params):
            if floor is not None and severity_rank(row[3] or "WARNING") < floor:
                continue
            first = _stamp(row[7])
            out.append(OpenIssue(row[0], row[1], row[2], row[3], row[4], row[5], row[6], first,
                                 _stamp(row[8]), row[9], row[10],
                                 round((now - first).total_seconds() / 86400.0, 2)))
        return out

    def first_seen(self, server: str,
                   check: Optional[str] = None) -> Dict[Tuple[str, str], datetime.datetime]:
        """(check name, issue identity) -> first-seen time of the open issues of ``server``."""
        return {(i.check_name, issue_identity(models.DataIntegrityIssue(
            i.id, i.name, i.comment, []))): i.first_seen
            for i in self.open_issues(server=server, check=check)}

    def load_report(self, run_id: int) -> models.DataIntegrityReport:
        """A recorded run as a :class:`DataIntegrityReport` (issues of a details run:
        those whose newest span includes it -- exact for the newest runs)."""
        run = self._run(run_id)
        results = {}
        for name, display, severity, count, pct, error, rec, id_type in self._db.execute(
                "SELECT check_name, display_name, severity, count, percentage, error,"
                " recommendation, issues_id_type FROM run_checks WHERE run_id = ?"
                " ORDER BY rowid", (run_id,)):
            results[name] = models.DataIntegrityResult(
                name=name, display_name=display, severity=_severity(severity), count=count,
                percentage=pct, error=error, recommendation=rec, issues_id_type=id_type,
                issues=[] if run.details else None)
        if run.details:
            for name, issue_id, iname, comment, refs in self._db.execute(
                    "SELECT i.check_name, i.issue_id, i.name, i.comment, i.refs FROM issues i"
                    " JOIN runs r ON r.id = ? WHERE i.server_id = r.server_id"
                    " AND i.first_run <= r.id AND i.last_run >= r.id", (run_id,)):
                result = results.get(name)
                if result is not None and result.error is None and result.issues is not None:
                    result.issues.append(models.DataIntegrityIssue(
                        issue_id, iname, comment, json.loads(refs) if refs else []))
        report = models.DataIntegrityReport(results=results, details=run.details)
        report.base_url, report.dhis2_version = run.base_url, run.dhis2_version
        report.job_id, report.run_at, report.server_time = run.job_id, run.run_at, \
            run.server_time
        return report

    def compare_with_previous(self, report: models.DataIntegrityReport
                              ) -> models.ReportComparison:
        """:func:`compare_reports` of the previous recorded run of the report's
        server and ``report``.  When ``report`` itself was recorded (same job id,
        or same run time), the run before it is used.  A check the previous run
        did not cover with issues (or no earlier run at all) counts every issue
        of it as new (compared with an empty result, count 0)."""
        from .integrity import compare_reports

        if not report.base_url:
            raise ValueError("compare_with_previous: the report has no base_url")
        candidates = self.runs(report.base_url)
        run_at = _text(_utc(report.run_at))
        while candidates and (
                (report.job_id is not None and candidates[-1].job_id == report.job_id)
                or (run_at is not None and _text(candidates[-1].run_at) == run_at)):
            candidates.pop()
        if not candidates:
            old = models.DataIntegrityReport(results={}, details=report.details)
        else:
            old = self.load_report(candidates[-1].id)
        if report.details:
            # a check the previous run did not list (or first run): all its issues are new
            for name, result in report.results.items():
                if result.issues is not None and result.error is None and (
                        name not in old.results or old.results[name].issues is None):
                    old.results[name] = models.DataIntegrityResult(
                        name=result.name, display_name=result.display_name,
                        severity=result.severity, count=0, issues=[])
        return compare_reports(old, report)


def _severity(text: Optional[str]) -> Union[models.DataIntegritySeverity, str, None]:
    if text is None:
        return None
    try:
        return models.DataIntegritySeverity(text)
    except ValueError:
        return text


def _server_key(server: Any) -> str:
    return getattr(server, "base_url", None) or str(server).rstrip("/")


def _result_count(result: models.DataIntegrityResult) -> Optional[int]:
    if result.error is not None:
        return -1
    if result.count is not None:
        return result.count
    return None if result.issues is None else len(result.issues)


def _issue_params(rows: Iterable[models.IntegrityIssueRow]
                  ) -> Iterator[Tuple[str, str, Optional[str], Optional[str], Optional[str],
                                      Optional[str]]]:
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for row in rows:
        issue = row.issue
        refs = issue.refs
        if issue.id:
            ident = "id:" + issue.id
        else:
            ident = issue_identity(issue)
        yield (row.check_name, ident, issue.id, issue.name, issue.comment,
               dumps(refs) if refs else None)
