"""A history of data-integrity runs: one SQLite file, or a PostgreSQL schema.

DHIS2 keeps integrity results for about an hour.  :class:`History` keeps every
run you record -- of any number of servers -- so you can ask what is new
tonight, what has been open for a month, and whether things get better::

    from dhis2maint.history import History

    history = History("integrity.sqlite")      # or "postgresql://user@db/ops?sslmode=require"
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

Safety (SQLite): the file is in WAL mode; every run is written in ONE
transaction (a process killed mid-write leaves the previous state intact),
writers wait up to ``busy_timeout`` seconds for each other (two overlapping
cron runs both succeed), and a ``schema_version`` table drives forward
migrations.  A file written by a newer dhis2maint raises
:class:`~dhis2maint.errors.HistorySchemaError`.

PostgreSQL (a ``postgresql://`` or ``postgres://`` URL; the optional extra
``dhis2maint[postgres]``, psycopg 3): the same tables, in the schema
``dhis2maint`` (``schema=``, or ``?schema=`` in the URL), the same schema
version and migrations, the same answers.  Isolation: every statement runs at
READ COMMITTED, and a run is recorded in ONE transaction that first takes a
transaction-scoped advisory lock on its server (``pg_advisory_xact_lock``).
Writers of the same server therefore queue exactly as SQLite's writers do (the
second sees the first's committed run as its previous run, so first-seen and
last-seen stay right), writers of different servers proceed in parallel (they
never touch the same rows), and readers never wait.  SERIALIZABLE would give
the same guarantee only by aborting one of two concurrent writers and needing a
retry loop; the lock gives it without.  A lost connection aborts the
transaction on the server: nothing of the run is kept, and the caller gets a
:class:`~dhis2maint.errors.HistoryError`.  Lock waits are bounded by
``busy_timeout`` (``lock_timeout``), the connection by ``connect_timeout`` and
TCP keepalives.  The password (in the URL, ``PGPASSWORD`` or ``~/.pgpass``:
libpq's rules) never appears in a message or repr.

Importing :mod:`dhis2maint` does not import this module (nor :mod:`sqlite3`,
nor psycopg).
"""
import datetime
import hashlib
import importlib
import json
import os
import re
import sqlite3
from typing import (TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Set, Tuple, Type, Union, cast)
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import attr

from . import models
from .errors import HistoryError, HistorySchemaError
from .models import _Model, severity_rank

if TYPE_CHECKING:
    from .session import Session

__all__ = ["History", "RunInfo", "TrendPoint", "OpenIssue", "RecordedRun", "RecordedHealth",
           "finding_identity",
           "SCHEMA_VERSION", "issue_identity", "parse_age", "copy_history",
           "is_postgresql_url", "redact_url", "check_writable"]

#: The schema this dhis2maint writes.  Each entry of :data:`_MIGRATIONS` takes a
#: file from version ``n - 1`` to ``n``.  The steps are portable DDL written as
#: SQLite takes it; on PostgreSQL :meth:`_Postgres.ddl` turns ``INTEGER PRIMARY KEY``
#: into an identity column, ``INTEGER`` into ``BIGINT``, ``REAL`` into ``DOUBLE
#: PRECISION``, ``BLOB`` into ``BYTEA`` and drops ``WITHOUT ROWID`` -- so a new step
#: (``CREATE TABLE``, ``ALTER TABLE … ADD COLUMN``, ``CREATE INDEX``) fits both.
SCHEMA_VERSION = 2

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
    # --- watch (#22): new issues per check, health verdicts, followed jobs, alert state ---
    2: [
        "CREATE TABLE run_new_issues (run_id INTEGER NOT NULL REFERENCES runs(id),"
        " check_name TEXT NOT NULL, new_issues INTEGER NOT NULL,"
        " PRIMARY KEY (run_id, check_name))",
        "CREATE TABLE health_checks (id INTEGER PRIMARY KEY, server_id INTEGER NOT NULL"
        " REFERENCES servers(id), checked_at TEXT NOT NULL, server_time TEXT,"
        " dhis2_version TEXT, jobs_checked INTEGER NOT NULL, findings INTEGER NOT NULL)",
        "CREATE INDEX health_checks_by_server ON health_checks (server_id, id)",
        "CREATE TABLE health_findings (check_id INTEGER NOT NULL REFERENCES"
        " health_checks(id), ident TEXT NOT NULL, kind TEXT NOT NULL, severity TEXT NOT NULL,"
        " message TEXT, what_to_do TEXT, job_id TEXT, job_name TEXT, job_type TEXT,"
        " since TEXT)",
        "CREATE INDEX health_findings_by_check ON health_findings (check_id)",
        "CREATE TABLE job_runs (id INTEGER PRIMARY KEY, server_id INTEGER NOT NULL"
        " REFERENCES servers(id), job_type TEXT NOT NULL, job_id TEXT, started_at TEXT NOT NULL,"
        " finished_at TEXT NOT NULL, succeeded INTEGER NOT NULL, message TEXT)",
        "CREATE INDEX job_runs_by_server ON job_runs (server_id, job_type, id)",
        "CREATE TABLE alert_state (server_id INTEGER NOT NULL REFERENCES servers(id),"
        " alert_key TEXT NOT NULL, severity TEXT, text TEXT, since TEXT NOT NULL,"
        " PRIMARY KEY (server_id, alert_key))",
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


# --- watch (#22): health verdicts -----------------------------------------------------


@attr.s(auto_attribs=True, slots=True, repr=False)
class RecordedHealth(_Model):
    """A recorded scheduler health check (:meth:`History.record_health`): the
    verdict, and which findings the previous recorded check of the same server
    did not have (``new_findings``) or no longer has (``gone_findings``, keys).
    ``previous_id`` is None for the first check of a server (every finding new)."""

    id: int
    base_url: str
    checked_at: datetime.datetime
    health: models.SchedulerHealth
    previous_id: Optional[int] = None
    new_findings: List[models.HealthFinding] = attr.Factory(list)
    gone_findings: List[str] = attr.Factory(list)


def finding_identity(finding: models.HealthFinding) -> str:
    """The key a scheduler finding is known by across checks: its kind and job
    (id, else type), e.g. ``failed:pd6O228pqr0`` or ``analytics_stale``."""
    job = finding.job_id or (None if finding.job_type is None else str(finding.job_type))
    return finding.kind + (":" + job if job else "")


# --- helpers -------------------------------------------------------------------------


def _where(*conditions: Tuple[str, Any]) -> Tuple[str, List[Any]]:
    """The SQL ``WHERE`` text of the (condition, value) pairs whose value is not None,
    joined with AND ("1 = 1" without any), and their values in order."""
    kept = [(sql, value) for sql, value in conditions if value is not None]
    return " AND ".join(["1 = 1"] + [sql for sql, _ in kept]), [value for _, value in kept]


def _server_key_or_none(server: Optional[str]) -> Optional[str]:
    return None if server is None else _server_key(server)


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


# --- can the file be written? (#21.2: checked before a run, explained after one) -----


def check_writable(path: Union[str, "os.PathLike[str]"]) -> None:
    """Raise :class:`HistoryError` naming ``path`` and the cause (a missing folder,
    permission, a read-only or full file system) when a history file cannot be
    created or written there; nothing is left behind.  Call it before a run, so
    a finished run is not lost to a file that was never writable.  A database
    URL (``…://…``) is left to its backend."""
    text = os.fspath(path)
    if is_postgresql_url(text) or "://" in text:
        return
    problem = _write_problem(text)
    if problem:
        raise HistoryError("history file {} cannot be written: {}".format(text, problem), text)


def _write_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be written as an SQLite file (its folder takes the
    ``-wal``/``-shm`` files too), or None."""
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        missing = folder
        while not os.path.exists(os.path.dirname(missing)) and missing != os.path.dirname(missing):
            missing = os.path.dirname(missing)
        return "the folder {} does not exist{}".format(
            folder, "" if missing == folder else " ({} is missing)".format(missing))
    if os.path.isdir(path):
        return "it is a folder"
    try:
        if os.path.exists(path):
            with open(path, "r+b"):
                pass
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".dhis2maint-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return _os_cause(exc, folder)
    return None


def _os_cause(exc: OSError, folder: str) -> str:
    import errno

    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied (the user running this cannot write the file or {})".format(
            folder)
    if code == errno.EROFS:
        return "the file system is read-only"
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1), errno.EFBIG):
        return "no space left (disk full, quota or file size limit reached)"
    if code == errno.ENOENT:
        return "the folder {} does not exist".format(folder)
    return exc.strerror or type(exc).__name__


def _sqlite_cause(exc: BaseException, path: str) -> str:
    """SQLite's terse message with the cause behind it, when one can be found."""
    text = str(exc)
    lower = text.lower()
    if "unable to open database file" in lower or "readonly database" in lower:
        problem = _write_problem(path)
        if problem:
            return "{} ({})".format(problem, text)
    if "disk is full" in lower:
        return "no space left (disk full, quota or file size limit reached) ({})".format(text)
    if "disk i/o error" in lower:
        return "a write failed (disk full, a file size limit, or a failing disk?) ({})".format(
            text)
    return text


# --- backends: what differs between SQLite and PostgreSQL ------------------------------

_URL_SCHEMES = ("postgresql://", "postgres://")

#: The PostgreSQL schema a history lives in unless ``schema=`` (or ``?schema=``) says.
DEFAULT_SCHEMA = "dhis2maint"

#: Seconds to wait for a PostgreSQL server to accept the connection (libpq
#: ``connect_timeout``), unless the URL sets its own.
DEFAULT_CONNECT_TIMEOUT = 10.0

_IssueParams = Tuple[str, str, Optional[str], Optional[str], Optional[str], Optional[str]]


def is_postgresql_url(target: Union[str, "os.PathLike[str]"]) -> bool:
    """Whether ``target`` names a PostgreSQL history (``postgresql://`` or ``postgres://``)."""
    return isinstance(target, str) and target.lower().startswith(_URL_SCHEMES)


def _url_secrets(url: str) -> List[str]:
    """The password(s) in a PostgreSQL URL, raw and decoded."""
    secrets: List[str] = []
    netloc = urlsplit(url).netloc
    if "@" in netloc:
        userinfo = netloc.rsplit("@", 1)[0]
        if ":" in userinfo:
            secrets.append(userinfo.split(":", 1)[1])
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if key == "password":
            secrets.append(value)
    out: List[str] = []
    for secret in secrets:
        for form in (secret, unquote(secret), quote(unquote(secret), safe="")):
            if form and form not in out:
                out.append(form)
    return out


def redact_url(url: str) -> str:
    """``url`` without its password (user info keeps the user; ``password=`` is dropped)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hosts = netloc.rsplit("@", 1)
        netloc = userinfo.split(":", 1)[0] + "@" + hosts
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k != "password"]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, quote_via=quote),
                       parts.fragment))


class _Backend:
    """The SQL dialect and transaction handling of one kind of database; the
    shared logic in :class:`History` writes SQLite-flavoured SQL with ``?``
    placeholders and ``temp.`` tables, and each backend runs it."""

    name = ""
    #: what orders rows of a rowid table as they were inserted
    insertion_order = "rowid"
    errors: Tuple[Type[Exception], ...] = ()
    db: Any
    journal_mode: Optional[str] = None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.db.execute(sql, params)

    def ddl(self, statement: str) -> str:
        return statement

    def close(self) -> None:
        self.db.close()

    def scrub(self, text: str) -> str:
        return text


class _Sqlite(_Backend):
    name = "sqlite"
    errors = (sqlite3.Error,)

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        try:
            self.db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise HistoryError("cannot open history file {}: {}".format(
                path, _sqlite_cause(exc, path)), path) from None

    def begin_setup(self) -> None:
        db = self.db
        try:
            db.execute("PRAGMA busy_timeout = {:d}".format(int(self.busy_timeout * 1000)))
            self.journal_mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # cannot open or write: say why
                raise HistoryError("cannot open history file {}: {}".format(
                    self.path, _sqlite_cause(exc, self.path)), self.path) from None
            raise HistoryError("{} is not a dhis2maint history file (SQLite said: {})".format(
                self.path, exc), self.path) from None

    def begin_write(self, lock: str) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def begin_read(self) -> None:
        self.db.execute("BEGIN")

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def tables(self) -> Set[str]:
        return {row[0] for row in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}

    def columns(self, table: str) -> List[str]:
        return [row[1] for row in self.db.execute(
            "PRAGMA table_info({})".format(_quote_ident(table)))]

    def insert_id(self, sql: str, params: Sequence[Any]) -> int:
        return int(self.db.execute(sql, params).lastrowid)

    def upsert(self, table: str, columns: str, keys: str, select: str) -> str:
        return "INSERT OR REPLACE INTO {} ({}) {}".format(table, columns, select)

    def load_seen(self, params: Iterator[_IssueParams]) -> None:
        """Fill ``temp.seen`` (check_name, ident) -> the run's issue (the last one wins)."""
        db = self.db
        db.execute("DROP TABLE IF EXISTS temp.seen")
        db.execute("CREATE TEMP TABLE seen (check_name TEXT NOT NULL, ident TEXT NOT NULL,"
                   " issue_id TEXT, name TEXT, comment TEXT, refs TEXT,"
                   " PRIMARY KEY (check_name, ident)) WITHOUT ROWID")
        db.executemany("INSERT OR REPLACE INTO temp.seen VALUES (?,?,?,?,?,?)", params)

    def store_spans(self, server_id: int, run_id: int) -> None:
        """Write the issues of ``temp.seen`` as seen in ``run_id``: an issue whose span
        ends at the previous details run of its check (``temp.prev``) continues it,
        any other starts a new span."""
        self.db.execute(
            "INSERT OR REPLACE INTO issues (server_id, check_name, ident, issue_id, name,"
            " comment, refs, first_run, last_run) SELECT ?, s.check_name, s.ident,"
            " s.issue_id, s.name, s.comment, s.refs, COALESCE((SELECT i.first_run FROM"
            " issues i JOIN temp.prev p ON p.check_name = i.check_name AND p.details = 1"
            " AND i.last_run = p.run_id WHERE i.server_id = ? AND i.check_name ="
            " s.check_name AND i.ident = s.ident), ?), ? FROM temp.seen s",
            (server_id, server_id, run_id, run_id))

    def iter_rows(self, sql: str) -> Iterator[Tuple[Any, ...]]:
        return iter(self.db.execute(sql))

    def bulk_insert(self, table: str, columns: List[str], rows: Iterable[Sequence[Any]]
                    ) -> int:
        count = [0]

        def counted() -> Iterator[Sequence[Any]]:
            for row in rows:
                count[0] += 1
                yield row
        self.db.executemany("INSERT INTO {} ({}) VALUES ({})".format(
            _quote_ident(table), ", ".join(_quote_ident(c) for c in columns),
            ",".join("?" * len(columns))), counted())
        return count[0]


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_PG_DDL = [(re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\b", re.I),
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
           (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),
           (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
           (re.compile(r"\bBLOB\b", re.I), "BYTEA"),
           (re.compile(r"\s+WITHOUT\s+ROWID\b", re.I), "")]


#: Storage parameters of tables on PostgreSQL.  ``issues``: every details run rewrites
#: ``last_run`` of each open issue of its server; room on each page lets PostgreSQL
#: update in place (HOT, no index entry per row): about 3x faster nightly records.
_PG_STORAGE = {"issues": "fillfactor = 50"}


class _Postgres(_Backend):
    """A history in schema ``schema`` of the PostgreSQL database at ``url`` (psycopg 3)."""

    name = "postgresql"
    insertion_order = "ctid"

    def __init__(self, url: str, schema: str, busy_timeout: float,
                 connect_timeout: float) -> None:
        self.display = redact_url(url)
        self.secrets = _url_secrets(url)
        env_password = os.environ.get("PGPASSWORD")
        if env_password:
            self.secrets.append(env_password)
        self.schema = schema
        self.busy_timeout = busy_timeout
        self.path = self.display
        try:
            psycopg = importlib.import_module("psycopg")
        except ImportError:
            raise HistoryError(
                "the history {} is on PostgreSQL, which needs the optional 'postgres' extra "
                "(psycopg 3): pip install 'dhis2maint[postgres]'".format(self.display),
                self.display) from None
        self.psycopg = psycopg
        self.errors = (psycopg.Error,)
        self._sql_cache: Dict[str, str] = {}
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        for key, value in query:
            if key == "schema" and value:
                self.schema = value
        conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(
            [(k, v) for k, v in query if k != "schema"], quote_via=quote), parts.fragment))
        given = {k for k, _ in query}
        extra: Dict[str, Any] = {}
        if "connect_timeout" not in given:
            extra["connect_timeout"] = max(2, int(round(connect_timeout)))
        if "application_name" not in given:
            extra["application_name"] = "dhis2maint"
        # a server that vanishes mid-record is noticed within about a minute
        for key, seconds in (("keepalives", 1), ("keepalives_idle", 30),
                             ("keepalives_interval", 10), ("keepalives_count", 3)):
            if key not in given:
                extra[key] = seconds
        try:
            self.db = psycopg.connect(conninfo, autocommit=True, **extra)
        except psycopg.Error as exc:
            raise HistoryError("cannot connect to the PostgreSQL history {}: {}".format(
                self.display, self.scrub(str(exc).strip())), self.display) from None
        except Exception as exc:  # e.g. a malformed URL (psycopg.ProgrammingError is above)
            raise HistoryError("cannot use the PostgreSQL history {}: {}".format(
                self.display, self.scrub(str(exc).strip())), self.display) from None
        try:
            self.db.execute("SET client_min_messages = warning")
            # a million-issue run's temporary tables stay in memory (before any use)
            self.db.execute("SET temp_buffers = '64MB'")
            self.db.execute("SELECT set_config('search_path', %s, false)",
                            (_quote_ident(self.schema),))
            self.db.execute("SELECT set_config('lock_timeout', %s, false)",
                            ("{:d}".format(max(1, int(busy_timeout * 1000))),))
        except psycopg.Error as exc:
            self.db.close()
            raise HistoryError("the PostgreSQL history {}: setting up the session failed: {}"
                               .format(self.display, self.scrub(str(exc).strip())),
                               self.display) from None

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def _lock_key(self, what: str) -> int:
        digest = hashlib.sha256((self.schema + "\0" + what).encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def sql(self, sql: str) -> str:
        out = self._sql_cache.get(sql)
        if out is None:
            out = re.sub(r"\btemp\.", "pg_temp.", sql.replace("%", "%%").replace("?", "%s"))
            self._sql_cache[sql] = out
        return out

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.db.execute(self.sql(sql), params)

    def ddl(self, statement: str) -> str:
        for pattern, replacement in _PG_DDL:
            statement = pattern.sub(replacement, statement)
        match = re.match(r"\s*CREATE\s+TABLE\s+(\w+)", statement, re.I)
        if match and match.group(1).lower() in _PG_STORAGE:
            statement += " WITH ({})".format(_PG_STORAGE[match.group(1).lower()])
        return statement

    def begin_setup(self) -> None:
        db = self.db
        db.execute("BEGIN")
        # one History at a time creates or migrates the schema
        db.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key(""),))
        if db.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s",
                      (self.schema,)).fetchone() is None:
            db.execute("CREATE SCHEMA " + _quote_ident(self.schema))

    def begin_write(self, lock: str) -> None:
        self.db.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        self.db.execute("SET LOCAL work_mem = '64MB'")
        self.db.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key(lock),))

    def begin_read(self) -> None:
        self.db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def in_transaction(self) -> bool:
        return bool(self.db.info.transaction_status != self.psycopg.pq.TransactionStatus.IDLE)

    def rollback(self) -> None:
        if self.db.closed:
            return
        try:
            if self.in_transaction():
                self.db.execute("ROLLBACK")
        except self.psycopg.Error:  # the connection is gone: the server rolled back
            pass

    def tables(self) -> Set[str]:
        return {row[0] for row in self.db.execute(
            "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = %s",
            (self.schema,))}

    def columns(self, table: str) -> List[str]:
        return [row[0] for row in self.db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s"
            " AND table_name = %s ORDER BY ordinal_position", (self.schema, table))]

    def insert_id(self, sql: str, params: Sequence[Any]) -> int:
        return int(self.execute(sql + " RETURNING id", params).fetchone()[0])

    def upsert(self, table: str, columns: str, keys: str, select: str) -> str:
        keyset = {k.strip() for k in keys.split(",")}
        updates = ", ".join("{0} = EXCLUDED.{0}".format(c.strip()) for c in columns.split(",")
                            if c.strip() not in keyset)
        return "INSERT INTO {} ({}) {} ON CONFLICT ({}) DO UPDATE SET {}".format(
            table, columns, select, keys, updates)

    def load_seen(self, params: Iterator[_IssueParams]) -> None:
        """COPY the issues into ``seen``; the last of each (check, ident) is kept."""
        db = self.db
        db.execute("DROP TABLE IF EXISTS pg_temp.seen")
        db.execute("CREATE TEMP TABLE seen (check_name TEXT NOT NULL, ident TEXT NOT NULL,"
                   " issue_id TEXT, name TEXT, comment TEXT, refs TEXT)")
        with db.cursor() as cur:
            with cur.copy("COPY pg_temp.seen (check_name, ident, issue_id, name, comment,"
                          " refs) FROM STDIN") as copy:
                write = copy.write_row
                count = 0
                for row in params:
                    write(row)
                    count += 1
        db.execute("SAVEPOINT seen_key")
        try:
            db.execute("ALTER TABLE pg_temp.seen ADD PRIMARY KEY (check_name, ident)")
        except self.psycopg.errors.UniqueViolation:
            # an issue listed twice: keep the last (a fresh table's ctid order is the
            # order COPY wrote it in), as SQLite's INSERT OR REPLACE does
            db.execute("ROLLBACK TO SAVEPOINT seen_key")
            db.execute("DELETE FROM pg_temp.seen a USING pg_temp.seen b WHERE"
                       " a.check_name = b.check_name AND a.ident = b.ident AND a.ctid < b.ctid")
            db.execute("ALTER TABLE pg_temp.seen ADD PRIMARY KEY (check_name, ident)")
        db.execute("RELEASE SAVEPOINT seen_key")
        if count > 10000:
            # the rest of this run's statements join it with the server's issues, which
            # the planner has no statistics for yet (written minutes ago): hash, not loop
            db.execute("SET LOCAL enable_nestloop = off")
        db.execute("ANALYZE pg_temp.seen")  # temp tables are never auto-analyzed

    def store_spans(self, server_id: int, run_id: int) -> None:
        """As :meth:`_Sqlite.store_spans`, in two set-based statements: update the
        issues seen before (continuing their span, or starting a new one), then
        insert the others.  Only this server's lock holder writes its issues, so
        the plain INSERT cannot conflict."""
        db = self.db
        db.execute(
            "UPDATE issues i SET first_run = CASE WHEN p.details = 1 AND i.last_run = p.run_id"
            " THEN i.first_run ELSE %s END, last_run = %s, issue_id = s.issue_id,"
            " name = s.name, comment = s.comment, refs = s.refs FROM pg_temp.seen s"
            " LEFT JOIN pg_temp.prev p ON p.check_name = s.check_name"
            " WHERE i.server_id = %s AND i.check_name = s.check_name AND i.ident = s.ident",
            (run_id, run_id, server_id))
        db.execute(
            "INSERT INTO issues (server_id, check_name, ident, issue_id, name, comment, refs,"
            " first_run, last_run) SELECT %s, s.check_name, s.ident, s.issue_id, s.name,"
            " s.comment, s.refs, %s, %s FROM pg_temp.seen s WHERE NOT EXISTS (SELECT 1"
            " FROM issues i WHERE i.server_id = %s AND i.check_name = s.check_name"
            " AND i.ident = s.ident)", (server_id, run_id, run_id, server_id))

    def iter_rows(self, sql: str) -> Iterator[Tuple[Any, ...]]:
        """Rows of ``sql`` streamed through a server-side cursor (inside begin_read)."""
        with self.db.cursor(name="dhis2maint_copy") as cur:
            cur.itersize = 10000
            cur.execute(self.sql(sql))
            for row in cur:
                yield tuple(row)

    def bulk_insert(self, table: str, columns: List[str], rows: Iterable[Sequence[Any]]
                    ) -> int:
        count = 0
        with self.db.cursor() as cur:
            with cur.copy("COPY {} ({}) FROM STDIN".format(
                    _quote_ident(table), ", ".join(_quote_ident(c) for c in columns))) as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        if "id" in columns:  # an identity column continues after the copied ids
            self.db.execute(
                "SELECT setval(seq, GREATEST((SELECT MAX(id) FROM {0}), 1),"
                " (SELECT MAX(id) FROM {0}) IS NOT NULL) FROM (SELECT"
                " pg_get_serial_sequence(%s, 'id') AS seq) s WHERE seq IS NOT NULL".format(
                    _quote_ident(table)),
                (_quote_ident(self.schema) + "." + _quote_ident(table),))
        return count


# --- the history ---------------------------------------------------------------------


class History:
    """The integrity history in the SQLite file ``path`` (created when missing), or
    in a PostgreSQL database when ``path`` is a ``postgresql://`` / ``postgres://``
    URL (libpq's URL: ``?sslmode=`` and the other parameters pass through; the
    password from the URL, ``PGPASSWORD`` or ``~/.pgpass``; needs the ``postgres``
    extra).

    ``busy_timeout``: seconds to wait for another process writing the same
    history.  ``schema``: the PostgreSQL schema (default ``dhis2maint``, or the
    URL's ``?schema=``; created when missing).  ``connect_timeout``: seconds to
    wait for the PostgreSQL server (unless the URL sets ``connect_timeout``).
    Use as a context manager or call :meth:`close`.  Not shared between threads.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"],
                 busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
                 schema: Optional[str] = None,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
        self.busy_timeout = float(busy_timeout)
        self._backend: Union[_Sqlite, _Postgres]
        if is_postgresql_url(path):
            self._backend = _Postgres(cast(str, path), schema or DEFAULT_SCHEMA,
                                      self.busy_timeout, float(connect_timeout))
        else:
            self._backend = _Sqlite(os.fspath(path), self.busy_timeout)
        #: the file, or the URL without its password
        self.path: str = self._backend.path
        #: ``"sqlite"`` or ``"postgresql"``
        self.backend: str = self._backend.name
        self._db = self._backend.db
        try:
            self._setup()
        except BaseException:
            self._backend.close()
            raise

    def __repr__(self) -> str:
        return "<dhis2maint.history.History {}>".format(self.path)

    def __enter__(self) -> "History":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database file (or connection)."""
        self._backend.close()

    def _x(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement of the shared SQL (``?`` placeholders) on the backend."""
        return self._backend.execute(sql, params)

    # --- schema -------------------------------------------------------------------

    def _fail(self, exc: Exception, doing: str) -> HistoryError:
        what = "history file" if self.backend == "sqlite" else "PostgreSQL history"
        message = self._backend.scrub(str(exc).strip())
        if self.backend == "sqlite":  # "unable to open", "disk I/O error": say why (#21.2)
            message = _sqlite_cause(exc, self.path)
        if self.backend == "postgresql" and getattr(self._db, "closed", False):
            message += " (the connection was lost; nothing of it was kept)"
        return HistoryError("{} {}: {} failed: {}".format(what, self.path, doing, message),
                            self.path)

    def _setup(self) -> None:
        backend = self._backend
        try:
            backend.begin_setup()
        except backend.errors as exc:
            backend.rollback()
            raise self._fail(exc, "opening") from None
        try:
            version = self._schema_version()
            if version > SCHEMA_VERSION:
                raise HistorySchemaError(
                    "history {} has schema version {}, newer than this dhis2maint "
                    "supports ({}): upgrade dhis2maint to read it".format(
                        self.path, version, SCHEMA_VERSION),
                    self.path, version, SCHEMA_VERSION)
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[step]:
                    self._x(backend.ddl(statement))
                self._x("DELETE FROM schema_version")
                self._x("INSERT INTO schema_version (version) VALUES (?)", (step,))
            backend.commit()
        except backend.errors as exc:
            backend.rollback()
            raise self._fail(exc, "opening") from None
        except BaseException:
            backend.rollback()
            raise
        self.journal_mode = backend.journal_mode

    def _schema_version(self) -> int:
        tables = self._backend.tables()
        if "schema_version" not in tables:
            if tables:
                raise HistoryError("{} is {} but not a dhis2maint history (it has "
                                   "tables {})".format(
                                       self.path, "an SQLite file" if self.backend == "sqlite"
                                       else "a PostgreSQL schema", ", ".join(sorted(tables))),
                                   self.path)
            self._x(self._backend.ddl("CREATE TABLE schema_version (version INTEGER NOT NULL)"))
            return 0
        row = self._x("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    @property
    def schema_version(self) -> int:
        """The schema version of the history."""
        return int(self._x("SELECT MAX(version) FROM schema_version").fetchone()[0])

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

        A failure (a lost PostgreSQL connection, a lock not granted within
        ``busy_timeout``) raises :class:`HistoryError` and keeps nothing of the run.
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
        backend = self._backend

        def work() -> Tuple[int, Tuple[Optional[int], int, int, Dict[str, int]],
                            List[models.DataIntegrityResult]]:
            server_id = self._server_id(base_url)
            run_id = backend.insert_id(
                "INSERT INTO runs (server_id, dhis2_version, job_id, run_at, finished_at,"
                " server_time, details, checks, issues, failed) VALUES (?,?,?,?,?,?,?,0,0,0)",
                (server_id, version, report.job_id, _text(run_at), _text(run_at),
                 _text(report.server_time), int(details)))
            if details:
                source = rows if rows is not None else report.issue_rows()
                backend.load_seen(_issue_params(source))
            checks = list(report)
            for r in checks:
                self._x(backend.upsert(
                    "run_checks", "run_id, check_name, display_name, severity, count,"
                    " percentage, error, recommendation, issues_id_type", "run_id, check_name",
                    "VALUES (?,?,?,?,?,?,?,?,?)"),
                    (run_id, r.name, r.display_name,
                     None if r.severity is None else str(r.severity), _result_count(r),
                     r.percentage, r.error, r.recommendation, r.issues_id_type))
            recorded = self._compare_and_store(run_id, server_id, details, checks)
            self._store_new_by_check(run_id, recorded[3])  # watch (#22)
            totals = self._x(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN error IS NULL THEN count END), 0),"
                " COALESCE(SUM(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END), 0)"
                " FROM run_checks WHERE run_id = ?", (run_id,)).fetchone()
            self._x("UPDATE runs SET finished_at = ?, checks = ?, issues = ?, failed = ?,"
                    " new_issues = ?, resolved_issues = ? WHERE id = ?",
                    (_text(_now()), int(totals[0]), int(totals[1]), int(totals[2]),
                     recorded[1], recorded[2], run_id))
            if details:
                self._x("DROP TABLE temp.seen")
            return run_id, recorded, checks

        run_id, recorded, checks = self._write("recording a run", base_url, work)
        return RecordedRun(run=self._run(run_id), previous_run_id=recorded[0],
                           new_issues=recorded[1], resolved_issues=recorded[2],
                           new_by_check=recorded[3],
                           severities={r.name: None if r.severity is None else str(r.severity)
                                       for r in checks})

    def _server_id(self, base_url: str) -> int:
        row = self._x("SELECT id FROM servers WHERE base_url = ?", (base_url,)).fetchone()
        if row:
            return int(row[0])
        return self._backend.insert_id("INSERT INTO servers (base_url) VALUES (?)", (base_url,))

    def _compare_and_store(self, run_id: int, server_id: int, details: bool,
                           checks: List[models.DataIntegrityResult]
                           ) -> Tuple[Optional[int], int, int, Dict[str, int]]:
        """(previous run id, new issues, resolved issues, new by check); updates issues."""
        prev_row = self._x("SELECT MAX(id) FROM runs WHERE server_id = ? AND id < ?",
                              (server_id, run_id)).fetchone()
        previous = prev_row[0]
        # per check: the newest earlier run of this server where it ran without error
        self._x("DROP TABLE IF EXISTS temp.prev")
        self._x("CREATE TEMP TABLE prev (check_name TEXT PRIMARY KEY, run_id INTEGER,"
                   " details INTEGER, count INTEGER)")
        self._x(
            "INSERT INTO temp.prev SELECT rc.check_name, MAX(rc.run_id), 0, NULL"
            " FROM run_checks rc JOIN runs r ON r.id = rc.run_id"
            " WHERE r.server_id = ? AND rc.run_id < ? AND rc.error IS NULL"
            " AND rc.check_name IN (SELECT check_name FROM run_checks WHERE run_id = ?)"
            " GROUP BY rc.check_name", (server_id, run_id, run_id))
        self._x("UPDATE temp.prev SET details = (SELECT details FROM runs WHERE id = run_id),"
                   " count = (SELECT count FROM run_checks c WHERE c.run_id = prev.run_id"
                   " AND c.check_name = prev.check_name)")
        new_by_check: Dict[str, int] = {}
        resolved = 0
        failed = {r.name for r in checks if r.error is not None}
        if details:
            # checks that failed now keep their issues' spans as they were
            for name in failed:
                self._x("DELETE FROM temp.seen WHERE check_name = ?", (name,))
            # New: not in the issue's span ending at the previous details run of its check.
            for name, count in self._x(
                    "SELECT s.check_name, COUNT(*) FROM temp.seen s LEFT JOIN temp.prev p"
                    " ON p.check_name = s.check_name WHERE NOT EXISTS (SELECT 1 FROM issues i"
                    " WHERE i.server_id = ? AND i.check_name = s.check_name AND i.ident = s.ident"
                    " AND p.details = 1 AND i.last_run = p.run_id)"
                    " GROUP BY s.check_name", (server_id,)):
                new_by_check[name] = count
            resolved = self._x(
                "SELECT COUNT(*) FROM issues i JOIN temp.prev p ON p.check_name = i.check_name"
                " AND i.last_run = p.run_id AND p.details = 1 WHERE i.server_id = ?"
                " AND i.check_name NOT IN (SELECT check_name FROM run_checks"
                " WHERE run_id = ? AND error IS NOT NULL)"
                " AND NOT EXISTS (SELECT 1 FROM temp.seen s WHERE s.check_name = i.check_name"
                " AND s.ident = i.ident)", (server_id, run_id)).fetchone()[0]
            self._backend.store_spans(server_id, run_id)
        else:
            prev_counts = {name: count for name, count in self._x(
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
        self._x("DROP TABLE temp.prev")
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
                for row in self._x(query, params)]

    def runs(self, server: Optional[str] = None) -> List[RunInfo]:
        """Recorded runs, oldest first; ``server`` (a base URL) keeps that server's only."""
        if server is None:
            return self._runs_where("1 = 1", ())
        return self._runs_where("s.base_url = ?", (_server_key(server),))

    def servers(self) -> List[str]:
        """Base URLs of every server in the history."""
        return [row[0] for row in self._x("SELECT base_url FROM servers ORDER BY id")]

    def trend(self, check: Optional[str] = None,
              since: Union[str, datetime.date, None] = None,
              server: Optional[str] = None) -> List[TrendPoint]:
        """Issue counts over time, one :class:`TrendPoint` per run, oldest first.

        ``check``: one check's count (runs that did not cover it are left out);
        ``None``: total issues of each run.  ``since``: a date/datetime or
        ``YYYY-MM-DD`` (client UTC).  ``server``: one base URL.
        """
        where, params = _where(("r.run_at >= ?", None if since is None else _since(since)),
                               ("s.base_url = ?", _server_key_or_none(server)),
                               ("rc.check_name = ?", check))
        if check is None:
            query = ("SELECT r.id, s.base_url, r.run_at, r.issues, NULL FROM runs r"
                     " JOIN servers s ON s.id = r.server_id WHERE " + where + " ORDER BY r.id")
        else:
            query = ("SELECT r.id, s.base_url, r.run_at,"
                     " CASE WHEN rc.error IS NULL THEN rc.count END, rc.severity FROM runs r"
                     " JOIN servers s ON s.id = r.server_id JOIN run_checks rc"
                     " ON rc.run_id = r.id WHERE " + where + " ORDER BY r.id")
        return [TrendPoint(row[0], row[1], _stamp(row[2]), check, row[3], row[4])
                for row in self._x(query, params)]

    def check_trends(self, server: str, limit: int = 30) -> Dict[str, List[Optional[int]]]:
        """check -> its counts in the last ``limit`` runs of ``server`` (oldest first;
        ``None`` where a run did not cover the check or it failed): sparkline data."""
        ids = [row[0] for row in self._x(
            "SELECT r.id FROM runs r JOIN servers s ON s.id = r.server_id WHERE s.base_url = ?"
            " ORDER BY r.id DESC LIMIT ?", (_server_key(server), int(limit)))][::-1]
        if not ids:
            return {}
        position = {run_id: i for i, run_id in enumerate(ids)}
        out: Dict[str, List[Optional[int]]] = {}
        marks = ",".join("?" * len(ids))
        for run_id, name, count, error in self._x(
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
        where, params = _where(("s.base_url = ?", _server_key_or_none(server)),
                               ("i.check_name = ?", check),
                               ("f.run_at <= ?", None if age is None else _text(now - age)))
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
            " JOIN servers s ON s.id = i.server_id WHERE " + where +
            " ORDER BY f.run_at, i.check_name, i.ident")
        out = []
        for row in self._x(query, params):
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
        for name, display, severity, count, pct, error, rec, id_type in self._x(
                "SELECT check_name, display_name, severity, count, percentage, error,"
                " recommendation, issues_id_type FROM run_checks WHERE run_id = ?"
                " ORDER BY " + self._backend.insertion_order, (run_id,)):
            results[name] = models.DataIntegrityResult(
                name=name, display_name=display, severity=_severity(severity), count=count,
                percentage=pct, error=error, recommendation=rec, issues_id_type=id_type,
                issues=[] if run.details else None)
        if run.details:
            for name, issue_id, iname, comment, refs in self._x(
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

    # --- watch (#22): new issues per check, health verdicts, followed jobs, alerts ----------
    # The shared SQL (``?`` placeholders) through the backend, like the rest of the class.

    def _store_new_by_check(self, run_id: int, new_by_check: Dict[str, int]) -> None:
        for name, n in sorted(new_by_check.items()):
            if n:
                self._x("INSERT INTO run_new_issues (run_id, check_name, new_issues)"
                        " VALUES (?,?,?)", (run_id, name, int(n)))

    def recorded_run(self, run_id: int) -> RecordedRun:
        """A recorded run as :meth:`record` returned it (new issues per check as
        decided when it was recorded; none for runs of a schema-1 history)."""
        run = self._run(run_id)
        new_by_check = {name: int(n) for name, n in self._x(
            "SELECT check_name, new_issues FROM run_new_issues WHERE run_id = ?",
            (run_id,)).fetchall()}
        severities = {name: sev for name, sev in self._x(
            "SELECT check_name, severity FROM run_checks WHERE run_id = ?",
            (run_id,)).fetchall()}
        row = self._x("SELECT MAX(r.id) FROM runs r JOIN runs me ON me.id = ?"
                      " WHERE r.server_id = me.server_id AND r.id < me.id",
                      (run_id,)).fetchone()
        return RecordedRun(run=run, previous_run_id=row[0], new_issues=run.new_issues or 0,
                           resolved_issues=run.resolved_issues or 0,
                           new_by_check=new_by_check, severities=severities)

    def _write(self, doing: str, lock: str, work: Any) -> Any:
        """Run ``work()`` in one write transaction (the backend's writer lock ``lock``)."""
        backend = self._backend
        try:
            backend.begin_write(lock)
        except backend.errors as exc:
            backend.rollback()
            raise self._fail(exc, "waiting for another writer") from None
        try:
            result = work()
            backend.commit()
        except BaseException as exc:
            backend.rollback()
            if isinstance(exc, backend.errors):
                raise self._fail(exc, doing) from None
            raise
        return result

    def record_health(self, health: models.SchedulerHealth, base_url: str,
                      checked_at: Optional[datetime.datetime] = None) -> RecordedHealth:
        """Store a :class:`SchedulerHealth` verdict of ``base_url`` (one transaction)
        and return it with the findings the previous recorded check did not have."""
        base = _server_key(base_url)
        when = _utc(checked_at) or _now()
        previous = self.last_health(base)

        def work() -> int:
            server_id = self._server_id(base)
            check_id = self._backend.insert_id(
                "INSERT INTO health_checks (server_id, checked_at, server_time, dhis2_version,"
                " jobs_checked, findings) VALUES (?,?,?,?,?,?)",
                (server_id, _text(when), _text(health.server_time), health.server_version,
                 int(health.jobs_checked), len(health.findings)))
            for f in health.findings:
                self._x("INSERT INTO health_findings (check_id, ident, kind, severity, message,"
                        " what_to_do, job_id, job_name, job_type, since)"
                        " VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (check_id, finding_identity(f), f.kind, str(f.severity), f.message,
                         f.what_to_do, f.job_id, f.job_name,
                         None if f.job_type is None else str(f.job_type), _text(f.since)))
            return check_id

        check_id = self._write("recording a health check", base, work)
        before = {} if previous is None else {
            finding_identity(f): f for f in previous.health.findings}
        now_keys = {finding_identity(f) for f in health.findings}
        return RecordedHealth(
            id=check_id, base_url=base, checked_at=when, health=health,
            previous_id=None if previous is None else previous.id,
            new_findings=[f for f in health.findings if finding_identity(f) not in before],
            gone_findings=sorted(k for k in before if k not in now_keys))

    def last_health(self, server: str) -> Optional[RecordedHealth]:
        """The newest recorded health check of ``server`` (None when none)."""
        row = self._x(
            "SELECT h.id, h.checked_at, h.server_time, h.dhis2_version, h.jobs_checked"
            " FROM health_checks h JOIN servers s ON s.id = h.server_id WHERE s.base_url = ?"
            " ORDER BY h.id DESC LIMIT 1", (_server_key(server),)).fetchone()
        if row is None:
            return None
        findings = [models.HealthFinding(
            kind=r[0], severity=r[1], message=r[2] or "", what_to_do=r[3] or "", job_id=r[4],
            job_name=r[5], job_type=r[6], since=None if r[7] is None else _when(r[7]))
            for r in self._x(
                "SELECT kind, severity, message, what_to_do, job_id, job_name, job_type, since"
                " FROM health_findings WHERE check_id = ? ORDER BY "
                + self._backend.insertion_order, (row[0],)).fetchall()]
        health = models.SchedulerHealth(server_version=row[3], server_time=_when(row[2]),
                                        jobs_checked=int(row[4]), findings=findings)
        return RecordedHealth(id=int(row[0]), base_url=_server_key(server),
                              checked_at=_stamp(row[1]), health=health)

    def record_job(self, base_url: str, job_type: str, job_id: Optional[str],
                   started_at: datetime.datetime, finished_at: datetime.datetime,
                   succeeded: bool, message: Optional[str] = None) -> None:
        """Store one followed job's outcome (client UTC times)."""
        base = _server_key(base_url)

        def work() -> None:
            self._x("INSERT INTO job_runs (server_id, job_type, job_id, started_at, finished_at,"
                    " succeeded, message) VALUES (?,?,?,?,?,?,?)",
                    (self._server_id(base), str(job_type), job_id, _text(_utc(started_at)),
                     _text(_utc(finished_at)), 1 if succeeded else 0, message))

        self._write("recording a job", base, work)

    def job_summary(self, server: str) -> Dict[str, Tuple[datetime.datetime, Optional[float],
                                                          Optional[datetime.datetime]]]:
        """job type -> (last finish, its duration in seconds, last success finish or None)."""
        out: Dict[str, Tuple[datetime.datetime, Optional[float],
                             Optional[datetime.datetime]]] = {}
        for job_type, started, finished, ok in self._x(
                "SELECT j.job_type, j.started_at, j.finished_at, j.succeeded FROM job_runs j"
                " JOIN servers s ON s.id = j.server_id WHERE s.base_url = ? ORDER BY j.id",
                (_server_key(server),)).fetchall():
            end, start = _stamp(finished), _stamp(started)
            previous = out.get(job_type)
            last_ok = end if ok else (previous[2] if previous else None)
            out[job_type] = (end, max((end - start).total_seconds(), 0.0), last_ok)
        return out

    def alert_state(self, server: str) -> Dict[str, Tuple[Optional[str], Optional[str]]]:
        """The conditions alerted for ``server`` and not yet resolved: key -> (severity, text)."""
        return {key: (sev, text) for key, sev, text in self._x(
            "SELECT a.alert_key, a.severity, a.text FROM alert_state a JOIN servers s"
            " ON s.id = a.server_id WHERE s.base_url = ?", (_server_key(server),)).fetchall()}

    def update_alert_state(self, server: str,
                           raised: Mapping[str, Tuple[Optional[str], Optional[str]]],
                           cleared: Iterable[str]) -> None:
        """Add the ``raised`` conditions (key -> (severity, text)) and drop the
        ``cleared`` keys, in one transaction."""
        base = _server_key(server)
        gone = list(cleared)

        def work() -> None:
            server_id = self._server_id(base)
            for key in gone + list(raised):
                self._x("DELETE FROM alert_state WHERE server_id = ? AND alert_key = ?",
                        (server_id, key))
            for key, (severity, text) in raised.items():
                self._x("INSERT INTO alert_state (server_id, alert_key, severity, text, since)"
                        " VALUES (?,?,?,?,?)", (server_id, key, severity, text, _text(_now())))

        self._write("updating the alert state", base, work)


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


# --- copying a whole history between backends -------------------------------------------

#: Tables in the order they are copied (a table refers only to tables before it); tables
#: added by later migrations follow in name order.
_COPY_ORDER = ("servers", "runs", "run_checks", "issues")


def copy_history(source: History, destination: History) -> Dict[str, int]:
    """Copy every table of ``source`` into the empty history ``destination`` (SQLite to
    PostgreSQL or back, or any two histories): ids, times and every column as they
    are, rows of a run's checks in their order.  One transaction on each side: the
    source is read from one snapshot, and a failure leaves ``destination`` empty.
    Returns table -> rows copied.  A ``destination`` that holds runs already, or a
    source with tables this dhis2maint does not know, raises :class:`HistoryError`."""
    src, dst = source._backend, destination._backend
    if source.schema_version != destination.schema_version:  # both opened: both migrated
        raise HistoryError("history {} has schema version {} and {} has {}".format(
            source.path, source.schema_version, destination.path,
            destination.schema_version), destination.path)
    tables = src.tables() - {"schema_version"}
    unknown = tables - dst.tables()
    if unknown:
        raise HistoryError("history {} has tables {} that {} lacks".format(
            source.path, ", ".join(sorted(unknown)), destination.path), destination.path)
    order = [t for t in _COPY_ORDER if t in tables] + sorted(tables - set(_COPY_ORDER))
    counts: Dict[str, int] = {}
    try:
        dst.begin_write("")
    except dst.errors as exc:
        dst.rollback()
        raise destination._fail(exc, "waiting for another writer") from None
    try:
        for table in order:
            if destination._x("SELECT COUNT(*) FROM {}".format(_quote_ident(table))
                              ).fetchone()[0]:
                raise HistoryError("cannot copy into history {}: its table {} is not empty "
                                   "(copy into a new history)".format(destination.path,
                                                                      table),
                                   destination.path)
        src.begin_read()
        try:
            for table in order:
                columns = src.columns(table)
                ordering = {"servers": " ORDER BY id", "runs": " ORDER BY id",
                            "run_checks": " ORDER BY " + src.insertion_order}.get(table, "")
                rows = src.iter_rows("SELECT {} FROM {}{}".format(
                    ", ".join(_quote_ident(c) for c in columns), _quote_ident(table),
                    ordering))
                counts[table] = dst.bulk_insert(table, columns, rows)
        finally:
            src.rollback()
        dst.commit()
    except BaseException as exc:
        dst.rollback()
        if isinstance(exc, src.errors):
            raise source._fail(exc, "reading for a copy") from None
        if isinstance(exc, dst.errors):
            raise destination._fail(exc, "copying into it") from None
        raise
    return counts
