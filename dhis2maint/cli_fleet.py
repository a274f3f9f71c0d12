"""The fleet face of the command line (#23): ``dhis2maint --fleet FILE COMMAND …``.

The library (:mod:`dhis2maint.fleet`) reads the fleet file and runs one function per
server in a bounded thread pool; this module only renders.  Each server runs the
very handler the single-server command runs (``cli.cmd_integrity_run``, …) on its own
copy of the arguments, with its own Session (``options.connect`` makes it from the
server: ``args.fleet_server``), its own history connection and its own report file.
While the fleet runs, what a server's thread writes on stderr gets ``[NAME] `` before
each line, and what it writes on stdout goes to its report file (or nowhere): stdout
carries only the summary.
"""
import argparse
import io
import json
import os
import sys
import threading
import time
from typing import IO, Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from .options import (EXIT_OK, EXIT_USAGE, UsageError, error_text, exit_code,
                      report_failure)

#: The commands a fleet runs: (command, action) -> the formats its per-server
#: report can be written in (first: the default when the fleet's --format has none).
FLEET_COMMANDS: Dict[Tuple[str, Optional[str]], Tuple[str, ...]] = {
    ("integrity", "run"): ("json", "html", "table", "jsonl", "csv"),
    ("integrity", "report"): ("json", "html", "table", "jsonl", "csv"),
    ("jobs", "health"): ("json", "table", "jsonl", "csv"),
    ("doctor", None): ("json", "table"),
    ("refresh", "analytics"): (),
    ("refresh", "resource-tables"): (),
    ("refresh", "monitoring"): (),
    ("version", None): (),
}
FLEET_FORMATS = ("table", "json", "html")
_EXTENSIONS = {"table": "txt", "json": "json", "jsonl": "jsonl", "csv": "csv", "html": "html"}
_SINGLE_SERVER = ("url", "token", "username", "auth_file")

FLEET_HELP = """fleet (many servers, #23):
  --fleet FILE runs `integrity run`, `integrity report`, `jobs health`, `doctor`,
  `refresh analytics|resource-tables|monitoring` or `version` on every server of
  an INI fleet file (--servers picks some), --parallel N at a time (default 4).
  stdout: one summary table (--format json: a list of objects; --format html -o
  FILE: the fleet dashboard); --output-dir DIR also writes each server's report.
  stderr: each server's lines start with [NAME].  The exit code is the worst over
  the servers: 5 above 3 above 4 above 2 (any failure), then 1 (a verdict), then 0;
  a fleet file or option error exits 2 before any server is contacted."""


class CliParts(NamedTuple):
    """What this face takes from cli.py (passed in: cli.py imports this module, so this
    one cannot import it back).  ``run(handler, args)`` runs one server's command as
    the single-server command line does (watched: history, metrics, alerts), leaving
    what it saw on ``args.watch_run``."""

    run: Callable[[Callable[[argparse.Namespace], int], argparse.Namespace], int]
    open_history: Callable[[argparse.Namespace], Any]
    check_output: Callable[[argparse.Namespace], None]
    output: Callable[[argparse.Namespace], Any]


def add_fleet_options(parser: argparse.ArgumentParser) -> None:
    """--fleet, --servers, --parallel, --output-dir (on the shared connection parent)."""
    sup = argparse.SUPPRESS
    group = parser.add_argument_group("fleet (many servers; see docs/fleet.rst)")
    group.add_argument("--fleet", metavar="FILE", default=sup,
                       help="run the command on every server of this fleet file "
                            "(instead of --url)")
    group.add_argument("--servers", metavar="NAME[,NAME...]", default=sup,
                       help="with --fleet: only these servers")
    group.add_argument("--parallel", metavar="N", default=sup, type=_parallel,
                       help="with --fleet: servers worked on at once (default 4)")
    group.add_argument("--output-dir", metavar="DIR", default=sup,
                       help="with --fleet: also write each server's own report to "
                            "DIR/NAME.json (NAME.html, ...)")


def _parallel(text: str) -> int:
    from .errors import ConfigurationError
    from .fleet import check_parallel

    try:
        return check_parallel(int(text))
    except (ValueError, ConfigurationError):
        raise argparse.ArgumentTypeError(
            "must be a whole number from 1 to 64, got {!r}".format(text)) from None


# --- streams: [NAME] on stderr, per-server stdout ------------------------------------------

_local = threading.local()


class _NullText(io.StringIO):
    """A text sink that keeps nothing (a server's stdout without --output-dir)."""

    def write(self, text: str) -> int:
        return len(text)

    @property
    def buffer(self) -> Any:  # what atomic_output uses for binary stdout
        return _NullBytes()


class _NullBytes(io.BytesIO):
    def write(self, data: Any) -> int:
        return len(data)


class _Prefixed:
    """sys.stderr while a fleet runs: a server thread's lines get ``[NAME] `` first
    and are written whole under one lock (no interleaved halves); other threads'
    writes pass through."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        name = getattr(_local, "name", None)
        if name is None:
            with self._lock:
                return self._stream.write(text)
        pending = getattr(_local, "pending", "") + text
        lines = pending.split("\n")
        _local.pending = lines.pop()
        if lines:
            with self._lock:
                self._stream.write("".join("[{}] {}\n".format(name, line) for line in lines))
        return len(text)

    def finish_line(self) -> None:
        if getattr(_local, "pending", ""):
            self.write("\n")

    def flush(self) -> None:
        with self._lock:
            self._stream.flush()

    def isatty(self) -> bool:
        return False if getattr(_local, "name", None) else self._stream.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _PerThread:
    """sys.stdout while a fleet runs: a server thread writes to its own sink."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def _target(self) -> Any:
        sink = getattr(_local, "stdout", None)
        return self._stream if sink is None else sink

    def write(self, text: str) -> int:
        return int(self._target().write(text))

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return bool(self._target().isatty())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


# --- the run -------------------------------------------------------------------------------


def check_fleet_args(args: argparse.Namespace) -> Tuple[str, Optional[str]]:
    """The (command, action) of a fleet run, or UsageError (exit 2) before anything runs."""
    opts = vars(args)
    given = ["--" + name.replace("_", "-") for name in _SINGLE_SERVER if name in opts]
    if given:
        raise UsageError("--fleet names the servers; {} cannot be combined with it".format(
            " and ".join(given)))
    key = (str(opts.get("command")), opts.get("action"))
    if key not in FLEET_COMMANDS:
        words = " ".join(str(w) for w in key if w)
        raise UsageError("`{}` is not a fleet command; with --fleet: {}".format(
            words, ", ".join(" ".join(w for w in k if w) for k in FLEET_COMMANDS)))
    fmt = opts.get("format") or "table"
    if fmt not in FLEET_FORMATS:
        raise UsageError("--format {} is not a fleet format; with --fleet: {}".format(
            fmt, ", ".join(FLEET_FORMATS)))
    if fmt == "html" and not opts.get("output"):
        raise UsageError("--format html writes the fleet dashboard: give -o FILE")
    return key


def _check_folder(path: str) -> None:
    """--output-dir exists and takes a new file (checked before any server is asked)."""
    from .files import probe_folder

    if not os.path.isdir(path):
        raise UsageError("--output-dir {}: no such folder".format(path))
    try:
        probe_folder(path)
    except OSError as exc:
        raise UsageError("--output-dir {} cannot be written: {}".format(
            path, exc.strerror or exc)) from None


def run_fleet(args: argparse.Namespace, handler: Callable[[argparse.Namespace], int],
              cli: CliParts) -> int:
    """``dhis2maint --fleet FILE COMMAND``: the handler on every selected server; the
    summary on stdout; the worst exit code (see FLEET_HELP)."""
    from .fleet import DEFAULT_PARALLEL, Fleet

    key = check_fleet_args(args)
    opts = vars(args)
    fleet = Fleet.from_file(opts["fleet"])
    if opts.get("servers"):
        fleet = fleet.select(opts["servers"].split(","))
    parallel = opts.get("parallel") or DEFAULT_PARALLEL
    out_dir = opts.get("output_dir")
    if out_dir:
        _check_folder(out_dir)
    if opts.get("fail_on_new") and not opts.get("history"):
        raise UsageError("--fail-on-new needs --history FILE (or $DHIS2MAINT_HISTORY)")
    cli.check_output(args)
    history = cli.open_history(args)  # checked writable before anything is sent
    if history is not None:
        history.close()
    rows, samples = _run_servers(args, handler, fleet, key, parallel, out_dir, cli)
    if opts.get("metrics_file"):
        from . import metrics

        try:
            metrics.write_textfile(opts["metrics_file"], samples)
        except OSError as problem:
            sys.stderr.write("dhis2maint: warning: metrics file {} not written: {}\n".format(
                opts["metrics_file"], problem.strerror or problem))
            rows = [_worse(row) for row in rows]
    _write_summary(args, rows, cli)
    from .fleet import rows_exit_code

    return rows_exit_code(rows)


def _worse(row: Any) -> Any:
    """A row whose exit 0 becomes 3 (an output failed, as for one server)."""
    import attr

    return attr.evolve(row, exit_code=3) if row.exit_code == EXIT_OK else row


def _server_args(args: argparse.Namespace, server: Any, formats: Sequence[str],
                 out_dir: Optional[str]) -> Tuple[argparse.Namespace, Optional[str]]:
    opts = dict(vars(args))
    for name in ("fleet", "servers", "parallel", "output_dir", "output"):
        opts.pop(name, None)
    opts["fleet_server"] = server
    path = None
    if formats:
        # the fleet's json/html for each server too; a table summary: each server's json
        fmt = str(opts.get("format")) if opts.get("format") in formats and \
            opts.get("format") != "table" else formats[0]
        opts["format"] = fmt
        if out_dir:
            path = os.path.join(out_dir, "{}.{}".format(server.name, _EXTENSIONS[fmt]))
            opts["output"] = path
    elif out_dir:
        path = os.path.join(out_dir, server.name + ".txt")
    if opts.get("metrics_file"):
        opts["metrics_sink"] = []
    return argparse.Namespace(**opts), path


def _run_servers(args: argparse.Namespace, handler: Callable[[argparse.Namespace], int],
                 fleet: Any, key: Tuple[str, Optional[str]], parallel: int,
                 out_dir: Optional[str], cli: CliParts) -> Tuple[List[Any], List[Any]]:
    """Each server's handler in the pool -> (rows in fleet order, metric samples)."""
    formats = FLEET_COMMANDS[key]
    command = " ".join(w for w in key if w)
    stderr, stdout = sys.stderr, sys.stdout
    prefixed = _Prefixed(stderr)
    debug = bool(vars(args).get("debug"))
    done: Dict[str, Any] = {}
    samples: List[Any] = []

    def one(server: Any) -> Any:
        sargs, path = _server_args(args, server, formats, out_dir)
        _local.name = server.name
        _local.pending = ""
        text_out: Optional[io.StringIO] = None
        if path and not formats:
            text_out = io.StringIO()  # refresh/version: their few lines are the report
        _local.stdout = text_out if text_out is not None else _NullText()
        started = time.monotonic()
        error = None
        try:
            try:
                code = cli.run(handler, sargs)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - one server's failure is its row
                code = report_failure(exc, debug)
                error = error_text(exc) if exit_code(exc) is not None else \
                    "internal error: {}".format(type(exc).__name__)
            if text_out is not None and path:
                from .files import atomic_output

                with atomic_output(path) as handle:
                    handle.write(text_out.getvalue())
            seconds = time.monotonic() - started
            prefixed.finish_line()
        finally:
            _local.name = None
            _local.stdout = None
        return _finished(server, command, code, seconds, error,
                         getattr(sargs, "watch_run", None), path, vars(args).get("output"),
                         sargs, cli)

    sys.stderr, sys.stdout = prefixed, _PerThread(stdout)
    try:
        for result in fleet.each(one, parallel):
            if result.error is not None:  # after the command (a report file, the history):
                row, server_samples = _unfinished(result, command), []  # still its row
            else:
                row, server_samples = result.value
            done[row.server] = row
            samples.extend(server_samples)
    finally:
        sys.stderr, sys.stdout = stderr, stdout
    return [done[name] for name in fleet.names if name in done], samples


def _unfinished(result: Any, command: str) -> Any:
    """The row of a server whose part failed after its command (writing its report
    file, reading the history): failed, with the error on stderr as ever."""
    from .fleet import fleet_row

    exc = result.error
    code = exit_code(exc)
    sys.stderr.write("[{}] dhis2maint: error: {}\n".format(result.server.name, error_text(exc)))
    return fleet_row(result.server.name, result.server.url or "", command,
                     5 if code is None else code, result.seconds, error=error_text(exc))


def _relative(path: Optional[str], dashboard: Optional[str]) -> Optional[str]:
    """A server's report path as the summary names it: relative to the dashboard's
    folder when the summary is written to a file (a link that survives a move)."""
    if not path:
        return None
    if not dashboard or dashboard == "-":
        return path
    return os.path.relpath(os.path.abspath(path), os.path.dirname(os.path.abspath(dashboard)))


def _finished(server: Any, command: str, code: int, seconds: float, error: Optional[str],
              run: Any, path: Optional[str], dashboard: Optional[str],
              sargs: argparse.Namespace, cli: CliParts) -> Tuple[Any, List[Any]]:
    """The server's FleetRow (history read in this thread, its own connection) and its
    metric samples labelled server="NAME"."""
    from .fleet import fleet_row

    session = getattr(run, "session", None)
    url = session.base_url if session is not None else (server.url or "")
    version = None
    if session is not None and code in (0, 1):
        try:
            version = session.server_version_text
        except Exception:  # noqa: BLE001 - a version less in the row
            version = None
    history = None
    try:
        history = cli.open_history(sargs) if getattr(sargs, "history", None) else None
        row = fleet_row(server.name, url, command, code, seconds, error=error,
                        dhis2_version=version, report=getattr(run, "report", None),
                        recorded=getattr(run, "recorded", None),
                        health=getattr(run, "health", None), history=history,
                        report_path=_relative(path, dashboard))
    finally:
        if history is not None:
            history.close()
    samples = []
    for sample in getattr(sargs, "metrics_sink", None) or ():
        labels = tuple(("server", server.name) if k == "server" else (k, v)
                       for k, v in sample.labels)
        samples.append(type(sample)(sample.name, labels, sample.value))
    return row, samples


# --- the summary ---------------------------------------------------------------------------


_SEVERITY_COLUMNS = ("CRITICAL", "SEVERE", "WARNING", "INFO")


def _write_summary(args: argparse.Namespace, rows: Sequence[Any], cli: CliParts) -> None:
    fmt = vars(args).get("format") or "table"
    with cli.output(args) as out:
        if fmt == "json":
            from .fleet import row_to_dict

            json.dump([row_to_dict(r) for r in rows], out, indent=2)
            out.write("\n")
        elif fmt == "html":
            from . import report_html

            write = getattr(report_html, "write_fleet_html", None)
            if write is None:
                raise UsageError("this build has no fleet dashboard yet (--format html)")
            write(out, rows)
        else:
            _write_table(out, rows)


def _write_table(out: IO[str], rows: Sequence[Any]) -> None:
    findings = any(r.findings for r in rows)  # jobs health, doctor
    header = ("SERVER", "DHIS2", "VERDICT") + _SEVERITY_COLUMNS + ("NEW",) + (
        ("FINDINGS",) if findings else ()) + ("SECONDS", "ERROR")
    table = [header]
    for r in rows:
        counts = tuple(str(r.issues.get(s, 0)) if r.issues else "-" for s in _SEVERITY_COLUMNS)
        found = (" ".join("{}:{}".format(k, v) for k, v in sorted(r.findings.items()))
                 or "-",) if findings else ()
        table.append((r.server, r.dhis2_version or "-", r.outcome) + counts + (
            "-" if r.new_issues is None else str(r.new_issues),) + found + (
            "{:.1f}".format(r.seconds), _clip(r.error or "")))
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " +
                  row[-1] + "\n")


def _clip(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
