"""A fleet of DHIS2 servers (#23): servers read from a fleet file, a bounded-parallel
map over them, and :class:`FleetRow`, the one line per server that every face of a
fleet run renders (the CLI's summary table and JSON, the fleet dashboard, the Airflow
fan-in task).

Core, not a face: this module knows models and the history, never argparse, and
prints nothing.  One :class:`~dhis2maint.Session` per server, never shared across
threads.

A fleet file (INI, read with the standard library's ``configparser``)::

    # every server below inherits these
    [DEFAULT]
    http-timeout = 60

    [hmis]
    url = https://hmis.example.org
    token-env = HMIS_PAT

    [tracker]
    url = https://tracker.example.org/dhis
    username = monitor
    password-env = TRACKER_PASSWORD

    [training]
    auth-file = /etc/dhis2maint/training.json

Running a function of your own on every server, four at a time::

    from dhis2maint.fleet import Fleet

    fleet = Fleet.from_file("/etc/dhis2maint/fleet.ini")
    for result in fleet.map(lambda session: session.server_version_text, parallel=4):
        if result.error is None:
            print(result.server.name, result.value)
        else:
            print(result.server.name, "failed:", result.error)

Each result arrives as its server finishes; a server that fails (down, wrong
password, ...) gives its typed exception in ``error`` and never stops the others.
"""
import concurrent.futures
import configparser
import datetime
import difflib
import os
import re
import time
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Mapping,
                    Optional, Sequence, Tuple)

import attr

from .connections import _to_bool, _to_seconds, check_private, settings_from_auth_file
from .errors import ConfigurationError
from .models import _Model, severity_rank

if TYPE_CHECKING:
    from .history import History, RecordedRun
    from .models import DataIntegrityReport, SchedulerHealth
    from .session import Session

__all__ = ["FleetServer", "Fleet", "FleetResult", "FleetRow", "KEYS", "fleet_row",
           "issues_by_severity", "error_line", "row_to_dict", "worst_exit_code", "rows_exit_code",
           "check_parallel", "EXIT_PRECEDENCE", "DEFAULT_PARALLEL", "MAX_PARALLEL"]

#: Servers worked on at once unless told otherwise, and the most a map takes.
DEFAULT_PARALLEL = 4
MAX_PARALLEL = 64
#: The keys a server's section (or ``[DEFAULT]``) may hold.
KEYS = ("url", "auth-file", "token-env", "username", "password-env", "airflow-conn",
        "token", "password", "http-timeout", "insecure")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
#: How many recorded runs a row's trend shows.
TREND_RUNS = 30


def _suggest(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=3, cutoff=0.6)
    return " -- did you mean {}?".format(" or ".join(repr(c) for c in close)) if close else ""


@attr.s(frozen=True, slots=True, repr=False, auto_attribs=True)
class FleetServer(_Model):
    """One server of a fleet, credentials by reference.

    Exactly one way to log in: ``auth_file`` (the CLI's auth file), ``token_env``
    (an environment variable holding a personal access token), ``username`` with
    ``password_env`` (a variable holding the password), ``airflow_conn`` (an Airflow
    Connection id, looked up when :meth:`session` is called), or an inline
    ``token``/``password`` (only in a fleet file not readable by group or others).
    Nothing secret is read until :meth:`session`; the repr never shows the inline
    secrets.  ``source`` names where the server was described (``fleet file PATH,
    section [NAME]``), for messages.
    """

    name: str
    url: Optional[str] = None
    auth_file: Optional[str] = None
    token_env: Optional[str] = None
    username: Optional[str] = None
    password_env: Optional[str] = None
    airflow_conn: Optional[str] = None
    token: Optional[str] = attr.ib(default=None, repr=False)
    password: Optional[str] = attr.ib(default=None, repr=False)
    http_timeout: Optional[float] = None
    insecure: bool = False
    source: str = ""

    def _where(self) -> str:
        return self.source or "fleet server {!r}".format(self.name)

    def session(self, environ: Optional[Mapping[str, str]] = None,
                **settings: Any) -> "Session":
        """A new :class:`~dhis2maint.Session` on this server; the credentials are
        read now (variables from ``environ``, default ``os.environ``; the auth file;
        the Airflow Connection).  ``settings`` are Session arguments and win over
        the fleet file's.  A missing variable or file -> :class:`ConfigurationError`
        naming it and the fleet file's section."""
        from .session import Session

        env = os.environ if environ is None else environ
        where = self._where()
        kwargs: Dict[str, Any] = {}
        if self.http_timeout is not None:
            kwargs["timeout"] = self.http_timeout
        if self.insecure:
            kwargs["verify"] = False
        kwargs["source"] = where
        kwargs.update(settings)
        if self.airflow_conn:
            kwargs.pop("source", None)
            return Session.from_airflow_connection(self.airflow_conn, **kwargs)
        url = self.url
        if self.auth_file:
            base, found = settings_from_auth_file(self.auth_file)
            url = url or base
            for key, value in found.items():
                kwargs.setdefault(key, value)
        elif self.token_env:
            token = env.get(self.token_env, "").strip()
            if not token:
                raise ConfigurationError("the variable {} (token-env) is not set ({})".format(
                    self.token_env, where))
            kwargs.setdefault("token", token)
        elif self.username:
            password = self.password
            if password is None and self.password_env:
                password = env.get(self.password_env)
                if not password:
                    raise ConfigurationError(
                        "the variable {} (password-env) is not set ({})".format(
                            self.password_env, where))
            if not password:
                raise ConfigurationError("{}: no password for {}".format(where, self.username))
            kwargs.setdefault("auth", (self.username, password))
        elif self.token:
            kwargs.setdefault("token", self.token)
        if not url:
            raise ConfigurationError("{}: no url".format(where))
        return Session(url, **kwargs)


@attr.s(slots=True, repr=False, auto_attribs=True)
class FleetResult(_Model):
    """One server's outcome in :meth:`Fleet.map`: ``value`` what the function
    returned, or ``error`` the exception it (or making the session) raised, never
    both; ``seconds`` the wall time of that server's part."""

    server: FleetServer
    value: Any = None
    error: Optional[BaseException] = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the function returned (``error`` is None)."""
        return self.error is None


def check_parallel(parallel: Any) -> int:
    """``parallel`` as a whole number from 1 to :data:`MAX_PARALLEL`, or
    :class:`ConfigurationError`."""
    if isinstance(parallel, bool) or not isinstance(parallel, int) \
            or not 1 <= parallel <= MAX_PARALLEL:
        raise ConfigurationError("parallel must be a whole number from 1 to {}, got {!r}".format(
            MAX_PARALLEL, parallel))
    return parallel


class Fleet:
    """Servers by name, in the order they were given.  See the module docstring."""

    def __init__(self, servers: Sequence[FleetServer], source: str = "the fleet") -> None:
        if not servers:
            raise ConfigurationError("{} has no server".format(source))
        seen: Dict[str, FleetServer] = {}
        for server in servers:
            if server.name in seen:
                raise ConfigurationError("{} names the server {!r} twice".format(
                    source, server.name))
            seen[server.name] = server
        self._servers: Tuple[FleetServer, ...] = tuple(servers)
        self.source = source

    def __repr__(self) -> str:
        return "<Fleet {} servers from {}>".format(len(self._servers), self.source)

    def __len__(self) -> int:
        return len(self._servers)

    def __iter__(self) -> Iterator[FleetServer]:
        return iter(self._servers)

    @property
    def servers(self) -> Tuple[FleetServer, ...]:
        """The servers, in file order."""
        return self._servers

    @property
    def names(self) -> Tuple[str, ...]:
        """The server names, in file order."""
        return tuple(s.name for s in self._servers)

    def __getitem__(self, name: str) -> FleetServer:
        for server in self._servers:
            if server.name == name:
                return server
        raise ConfigurationError("{} has no server {!r}{}".format(
            self.source, name, _suggest(name, self.names)))

    def select(self, names: Iterable[str]) -> "Fleet":
        """A fleet of only the servers ``names`` (in file order); an unknown name ->
        :class:`ConfigurationError` with suggestions."""
        wanted = [n.strip() for n in names if n and n.strip()]
        if not wanted:
            raise ConfigurationError("no server selected from {}".format(self.source))
        for name in wanted:
            self[name]  # raises with suggestions
        return Fleet([s for s in self._servers if s.name in wanted], self.source)

    # -- reading --------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str) -> "Fleet":
        """The fleet a fleet file describes (see the module docstring for its keys:
        :data:`KEYS`).  Every error is a :class:`ConfigurationError` naming the file,
        the section and the key; an unknown key comes with suggestions."""
        path = os.fspath(path)
        parser = configparser.ConfigParser(interpolation=None, strict=True,
                                           default_section="DEFAULT")
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys as written
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise ConfigurationError("cannot read fleet file {}: {}".format(
                path, exc.strerror or exc)) from None
        except ValueError:
            raise ConfigurationError("fleet file {} is not UTF-8 text".format(path)) from None
        try:
            parser.read_string(text, source=path)
        except configparser.DuplicateSectionError as exc:
            raise ConfigurationError("fleet file {}, line {}: section [{}] is given twice".format(
                path, exc.lineno, exc.section)) from None
        except configparser.DuplicateOptionError as exc:
            raise ConfigurationError(
                "fleet file {}, line {}, section [{}]: key {!r} is given twice".format(
                    path, exc.lineno, exc.section, exc.option)) from None
        except configparser.MissingSectionHeaderError as exc:
            raise ConfigurationError(
                "fleet file {}, line {}: a key before any [section]; start with "
                "[SERVER-NAME] (or [DEFAULT])".format(path, exc.lineno)) from None
        except configparser.Error as exc:
            raise ConfigurationError("fleet file {} cannot be read as INI: {}".format(
                path, " ".join(str(exc).split()[:12]))) from None
        file_where = "fleet file {}".format(path)
        defaults = parser.defaults()
        for key in defaults:
            if key not in KEYS:
                raise ConfigurationError("{}, section [DEFAULT]: unknown key {!r}{}".format(
                    file_where, key, _suggest(key, KEYS)))
        servers = []
        inline = False
        for name in parser.sections():
            where = "{}, section [{}]".format(file_where, name)
            if not _NAME.match(name):
                raise ConfigurationError(
                    "{}: a server name is letters, digits, '.', '_' and '-' (it names report "
                    "files and metric labels)".format(where))
            section = parser[name]
            values = {key: section[key] for key in section}
            server = _server_from(name, values, where, set(section) - set(defaults) - {""},
                                  file_where)
            inline = inline or bool(server.token or server.password)
            servers.append(server)
        if not servers:
            raise ConfigurationError("{} has no server: add a [NAME] section with a url and "
                                     "credentials".format(file_where))
        if inline:
            check_private(path, "fleet file")
        return cls(servers, file_where)

    @classmethod
    def from_airflow_connections(cls, conn_ids: Iterable[str]) -> "Fleet":
        """A fleet of Airflow Connections: each server named by its connection id
        (looked up when a session is made, not now)."""
        servers = []
        for conn_id in conn_ids:
            if not isinstance(conn_id, str) or not _NAME.match(conn_id):
                raise ConfigurationError(
                    "Airflow Connection id {!r} cannot name a fleet server (letters, digits, "
                    "'.', '_', '-')".format(conn_id))
            servers.append(FleetServer(conn_id, airflow_conn=conn_id,
                                       source="the Airflow Connection {!r}".format(conn_id)))
        return cls(servers, "the Airflow Connections")

    # -- running --------------------------------------------------------------

    def map(self, fn: Callable[["Session"], Any], parallel: int = DEFAULT_PARALLEL,
            session_settings: Optional[Mapping[str, Any]] = None) -> Iterator[FleetResult]:
        """``fn(session)`` on every server, at most ``parallel`` at once, yielding a
        :class:`FleetResult` as each finishes.

        Each worker makes its server's Session (``server.session(**session_settings)``),
        calls ``fn`` and closes the Session; an exception there is the result's
        ``error`` (not raised), and the other servers go on.  ``parallel`` is checked
        before anything is sent.  Stopping the iteration early cancels the servers not
        yet started and waits for the running ones.
        """
        extra = dict(session_settings or {})

        def one(server: FleetServer) -> Any:
            session = server.session(**extra)
            try:
                return fn(session)
            finally:
                session.close()

        return self.each(one, parallel)

    def each(self, fn: Callable[[FleetServer], Any], parallel: int = DEFAULT_PARALLEL
             ) -> Iterator[FleetResult]:
        """``fn(server)`` on every server, at most ``parallel`` at once, yielding a
        :class:`FleetResult` as each finishes -- :meth:`map` without the Session, for
        a caller that makes its own (``server.session()``).  An exception ``fn``
        raises is the result's ``error``."""
        workers = check_parallel(parallel)

        def one(server: FleetServer) -> FleetResult:
            started = time.monotonic()
            try:
                value = fn(server)
            except Exception as exc:  # noqa: BLE001 - every server runs; the error is data
                return FleetResult(server, None, exc, time.monotonic() - started)
            return FleetResult(server, value, None, time.monotonic() - started)

        return _bounded(one, self._servers, workers)


def _bounded(one: Callable[[FleetServer], FleetResult], servers: Sequence[FleetServer],
             workers: int) -> Iterator[FleetResult]:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(servers)),
                                                 thread_name_prefix="dhis2maint-fleet")
    futures = [pool.submit(one, server) for server in servers]
    try:
        for future in concurrent.futures.as_completed(futures):
            yield future.result()
    finally:
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True)


def _server_from(name: str, values: Dict[str, str], where: str, own: Iterable[str],
                 file_where: str) -> FleetServer:
    for key in own:
        if key not in KEYS:
            raise ConfigurationError("{}: unknown key {!r}{} (known: {})".format(
                where, key, _suggest(key, KEYS), ", ".join(KEYS)))

    def text(key: str) -> Optional[str]:
        value = values.get(key)
        if value is None:
            return None
        value = value.strip()
        if not value:
            raise ConfigurationError("{}: key {!r} is empty".format(where, key))
        return value

    fields: Dict[str, Any] = {k.replace("-", "_"): text(k) for k in KEYS
                              if k not in ("http-timeout", "insecure")}
    for key, to_value in (("http-timeout", _to_seconds), ("insecure", _to_bool)):
        raw = text(key)
        if raw is not None:
            try:
                fields[key.replace("-", "_")] = to_value(raw)
            except ValueError as exc:
                raise ConfigurationError("{}: key {!r} {}".format(where, key, exc)) from None
    ways = [k for k in ("auth-file", "token-env", "username", "airflow-conn", "token")
            if fields[k.replace("-", "_")]]
    if not ways:
        raise ConfigurationError(
            "{}: no credentials: give one of auth-file, token-env, username + password-env, "
            "airflow-conn (or token/password in a file only you can read)".format(where))
    if len(ways) > 1:
        raise ConfigurationError("{}: keys {} each give credentials; keep one".format(
            where, " and ".join(repr(w) for w in ways)))
    if fields["password_env"] and fields["password"]:
        raise ConfigurationError("{}: keys 'password-env' and 'password' both give the "
                                 "password; keep one".format(where))
    if (fields["password_env"] or fields["password"]) and not fields["username"]:
        key = "password-env" if fields["password_env"] else "password"
        raise ConfigurationError("{}: key {!r} needs a 'username'".format(where, key))
    if fields["username"] and not (fields["password_env"] or fields["password"]):
        raise ConfigurationError("{}: key 'username' needs 'password-env' (a variable "
                                 "holding the password)".format(where))
    if fields["airflow_conn"] and fields["url"]:
        raise ConfigurationError("{}: key 'url' with 'airflow-conn': the Airflow Connection "
                                 "gives the URL; keep one".format(where))
    if not fields["url"] and not (fields["auth_file"] or fields["airflow_conn"]):
        raise ConfigurationError("{}: no key 'url' (e.g. url = https://dhis2.example.org)"
                                 .format(where))
    if fields["url"] and not re.match(r"^https?://[^/\s]", fields["url"], re.I):
        raise ConfigurationError("{}: key 'url' must start with http:// or https:// and name "
                                 "a host".format(where))
    if fields["url"] and "@" in fields["url"].split("//", 1)[1].split("/", 1)[0]:
        raise ConfigurationError("{}: key 'url' must not carry credentials; use token-env, "
                                 "username + password-env or auth-file".format(where))
    if fields["auth_file"]:
        fields["auth_file"] = os.path.expanduser(fields["auth_file"])
    return FleetServer(name=name, source=where, **fields)


@attr.s(auto_attribs=True, slots=True, repr=False)
class FleetRow(_Model):
    """What one server's part of a fleet run came to: one row of the summary table,
    one object of ``--format json``, one row of the fleet dashboard.

    ``outcome`` is ``"ok"`` (DHIS2 answered what was asked, no threshold reached),
    ``"verdict"`` (it answered and a threshold was reached: the server's exit 1) or
    ``"failed"`` (it did not answer what was asked: ``error`` says why, in one line
    without credentials).  ``exit_code`` is that server's own exit code, as the
    single-server command would have ended.

    ``issues`` holds the issues by severity (``"CRITICAL"``, ``"SEVERE"``,
    ``"WARNING"``, ``"INFO"``) of an integrity run or report, empty for other
    commands; ``new_issues`` the issues the previous recorded run of the server did
    not have (None without a history).  ``findings`` counts scheduler findings by
    kind.  ``trend`` is total issues over the server's recent recorded runs, oldest
    first (None: a run without counts), for a sparkline.  ``last_success`` is when the
    server last answered a fleet run (client UTC), from the history.  ``report`` is
    the path of the server's own report, relative to the dashboard, when one was
    written.
    """

    server: str
    url: str
    command: str
    outcome: str
    exit_code: int
    seconds: float
    dhis2_version: Optional[str] = None
    error: Optional[str] = None
    issues: Dict[str, int] = attr.Factory(dict)
    new_issues: Optional[int] = None
    findings: Dict[str, int] = attr.Factory(dict)
    trend: Tuple[Optional[int], ...] = ()
    last_success: Optional[datetime.datetime] = None
    report: Optional[str] = None

    @property
    def answered(self) -> bool:
        """True when the server answered what was asked (outcome ok or verdict)."""
        return self.outcome != "failed"


# --- rows: one server's part of a fleet run, as every face shows it --------------------


def error_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one line for a row (the library's messages carry no
    credentials): ``TypeName: message``, clipped to ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:limit]


def issues_by_severity(report: "DataIntegrityReport") -> Dict[str, int]:
    """Issues of a report by severity (``CRITICAL``, ``SEVERE``, ``WARNING``, ``INFO``),
    worst first; a check without a severity counts as WARNING, failed checks add none."""
    counts: Dict[str, int] = {}
    for result in report:
        count = result.count if result.count is not None else len(result.issues or ())
        if result.error is not None or count <= 0:
            continue
        severity = str(result.severity or "WARNING").upper()
        counts[severity] = counts.get(severity, 0) + count
    return dict(sorted(counts.items(), key=lambda item: -severity_rank(item[0])))


def _findings(health: "SchedulerHealth") -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for finding in health.findings:
        counts[finding.kind] = counts.get(finding.kind, 0) + 1
    return counts


def _outcome(exit_code: int) -> str:
    return "ok" if exit_code == 0 else "verdict" if exit_code == 1 else "failed"


def fleet_row(server: str, url: str, command: str, exit_code: int, seconds: float,
              error: Optional[str] = None, dhis2_version: Optional[str] = None,
              report: Optional["DataIntegrityReport"] = None,
              recorded: Optional["RecordedRun"] = None,
              health: Optional["SchedulerHealth"] = None,
              history: Optional["History"] = None, report_path: Optional[str] = None,
              now: Optional[datetime.datetime] = None) -> FleetRow:
    """One server's :class:`FleetRow` from what its run gave: ``exit_code`` (0 ok,
    1 a verdict, else failed), the integrity ``report`` (issues by severity), the
    ``recorded`` run (new issues), the scheduler ``health`` (findings by kind) and
    the ``history`` (``trend`` from :meth:`History.trend`, ``last_success`` the
    newest recorded run, or ``now`` when this run answered).  ``url`` is the
    server's base URL (the history's key)."""
    outcome = _outcome(exit_code)
    version = dhis2_version or (report.dhis2_version if report is not None else None) or (
        health.server_version if health is not None else None)
    trend: Tuple[Optional[int], ...] = ()
    last_success: Optional[datetime.datetime] = None
    if history is not None and url:
        points = history.trend(server=url)
        trend = tuple(p.count for p in points[-TREND_RUNS:])
        runs = history.runs(url)
        if runs:
            last_success = runs[-1].finished_at
    if outcome != "failed":
        last_success = now or datetime.datetime.now(datetime.timezone.utc).replace(
            microsecond=0)
    return FleetRow(
        server=server, url=url, command=command, outcome=outcome, exit_code=exit_code,
        seconds=round(float(seconds), 3), dhis2_version=version, error=error,
        issues=issues_by_severity(report) if report is not None else {},
        new_issues=recorded.new_issues if recorded is not None else None,
        findings=_findings(health) if health is not None else {},
        trend=trend, last_success=last_success, report=report_path)


def row_to_dict(row: FleetRow) -> Dict[str, Any]:
    """A row as a JSON object (the one converter: camelCase keys, no null fields)."""
    from .convert import unstructure

    return dict(unstructure(row))


def rows_exit_code(rows: Sequence[FleetRow]) -> int:
    """The worst exit code over ``rows``: any failure (2-5) above 1 above 0; among
    failures the order 5 (internal), 3 (DHIS2/connection), 4 (job), 2 (usage)."""
    return worst_exit_code(r.exit_code for r in rows)


#: Precedence of exit codes over servers, worst first.
EXIT_PRECEDENCE = (5, 3, 4, 2, 1, 0)


def worst_exit_code(codes: Iterable[int]) -> int:
    """The worst of ``codes`` by :data:`EXIT_PRECEDENCE` (0 when there are none)."""
    rank = {code: i for i, code in enumerate(EXIT_PRECEDENCE)}
    found = list(codes)
    if not found:
        return 0
    return min(found, key=lambda c: rank.get(c, 0))
