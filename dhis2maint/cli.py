"""The ``dhis2maint`` command (also ``python -m dhis2maint``) for cron, Airflow and admins.

Exit codes:
  0  success
  1  --fail-on threshold reached (also ``jobs health``), --fail-on-new issues not in the
     previous recorded run, new issues in ``integrity diff``, a failed ``doctor`` check
  2  usage or configuration error (bad arguments, missing DHIS2_URL, auth file too open)
  3  DHIS2 or connection error (auth, permission, not found, server error, invalid response)
  4  a job failed or timed out
  5  internal error (a bug, out of memory, ...): one line on stderr; --debug shows the traceback
Machine output goes to stdout only; progress and errors go to stderr.
"""
import argparse
import json
import os
import sys
import time
from typing import (IO, TYPE_CHECKING, Any, Callable, ContextManager, Dict, Iterable, Iterator,
                    List, Optional, Sequence, TextIO, Tuple, TypeVar, Union)

from . import __version__
from .jobs import ANALYTICS_FLAGS
# The exit codes are this command's interface (documented above): re-exported here.
from .options import (EXIT_DHIS2, EXIT_INTERNAL, EXIT_JOB, EXIT_OK, EXIT_THRESHOLD, EXIT_USAGE,
                      UsageError, connect, connection_options, follow_up_text, run_command)

if TYPE_CHECKING:
    import datetime

    from attr import AttrsInstance

    from .history import History, RecordedRun
    from .jobs import MaintenanceOperation
    from .models import (DataIntegrityCheck, DataIntegrityReport, DataIntegrityResult,
                         IntegrityIssueRow, Job, JobConfiguration, Notification)
    from .report import ReportStream
    from .session import Session

SEVERITIES = ("info", "warning", "severe", "critical")
FORMATS = ("table", "json", "jsonl", "csv", "html")

EXIT_CODES_HELP = """exit codes:
  0  success
  1  --fail-on threshold reached (also `jobs health`), --fail-on-new issues not in the
     previous recorded run, new issues found by `integrity diff`, or `doctor` failed
  2  usage or configuration error
  3  DHIS2 or connection error (authentication, permission, not found, server, invalid response)
  4  job failed or timed out
  5  internal error (a bug, out of memory, ...); rerun with --debug for the traceback

connection: --url/--token/--username, or --auth-file, or the environment
(DHIS2_URL, DHIS2_PAT or DHIS2_USERNAME + DHIS2_PASSWORD, DHIS2_TIMEOUT).
The password is read from DHIS2_PASSWORD or prompted for; it is never a flag."""


# Default wait limits (seconds) of the commands that follow a job; `--timeout none` waits
# without a limit.  Under cron a wait without end would hang silently.
INTEGRITY_TIMEOUT = 2 * 3600.0
ANALYTICS_TIMEOUT = 12 * 3600.0
JOB_TIMEOUT = 6 * 3600.0  # resource tables, monitoring, task wait
COC_TIMEOUT = 600.0
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def timeout_value(text: str) -> Optional[float]:
    """``--timeout`` value: seconds (``90``, ``1.5``), with a unit (``90s``, ``30m``,
    ``2h``), or ``none`` for no limit (-> None)."""
    raw = str(text).strip().lower()
    if raw in ("none", "never", "off"):
        return None
    unit = _UNITS.get(raw[-1:]) if raw else None
    try:
        value = float(raw[:-1] if unit else raw) * (unit or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected seconds (e.g. 600, 30m, 2h) or 'none', got {!r}".format(text)) from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(
            "must be a finite number of seconds more than 0 (or 'none' for no limit), "
            "got {!r}".format(text))
    return value


def _add_timeout(parser: argparse.ArgumentParser, default: Optional[float],
                 what: str = "waiting") -> None:
    parser.add_argument("--timeout", type=timeout_value, default=default, metavar="S",
                        help="give up {} after S seconds (also 30m, 2h; default {}; 'none' = "
                             "no limit); exit 4, the job may go on".format(
                                 what, _duration_text(default)))


def _duration_text(seconds: Optional[float]) -> str:
    if seconds is None:
        return "none"
    for unit, size in (("h", 3600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return "{:g}{}".format(seconds / size, unit)
    return "{:g}s".format(seconds)


# --- argument parsing --------------------------------------------------------------


def _add_format(parser: argparse.ArgumentParser, default: str = "table",
                choices: Sequence[str] = FORMATS) -> None:
    parser.add_argument("--format", choices=choices, default=default,
                        help="output format (default: %(default)s)")
    parser.add_argument("--output", "-o", metavar="FILE",
                        help="write to FILE atomically instead of stdout")


def _add_history(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--history", metavar="FILE", default=os.environ.get(
        "DHIS2MAINT_HISTORY") or None,
                        help="history to record runs in / read from: an SQLite file or a "
                             "postgresql:// URL (default: $DHIS2MAINT_HISTORY)")


def _add_fail_on(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--fail-on", choices=SEVERITIES, type=str.lower, metavar="LEVEL",
                        help="exit 1 when {} at LEVEL or worse ({})".format(
                            what, "|".join(SEVERITIES)))


def build_parser() -> argparse.ArgumentParser:
    common = connection_options()
    parser = argparse.ArgumentParser(
        prog="dhis2maint", parents=[common],
        description="Keep a DHIS2 server healthy: data-integrity checks, analytics and "
                    "other background jobs, maintenance.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true",
                        help="print the library version (and the server's, if connected)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]", name: str,
                help_text: str, **kwargs: Any) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, help=help_text, description=help_text,
                                     parents=[common], epilog=EXIT_CODES_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     **kwargs)

    def group(name: str, help_text: str, metavar: str = "ACTION"
              ) -> "argparse._SubParsersAction[argparse.ArgumentParser]":
        """`dhis2maint NAME ACTION …`; NAME alone prints the group's help."""
        parser = commands.add_parser(name, help=help_text)
        parser.set_defaults(group_parser=parser)
        return parser.add_subparsers(dest="action", metavar=metavar)

    # integrity
    integrity_cmds = group("integrity", "data-integrity checks")
    checks = command(integrity_cmds, "checks", "list the data-integrity checks")
    checks.add_argument("--section", help="only this section (exact name)")
    checks.add_argument("--severity", choices=SEVERITIES, type=str.lower,
                        help="only checks of this severity")
    checks.add_argument("--slow", action="store_true", help="only the slow checks")
    checks.add_argument("checks", nargs="*", metavar="CHECK",
                        help="only these check names, codes or wildcards")
    _add_format(checks, choices=("table", "json", "jsonl", "csv"))
    checks.set_defaults(handler=cmd_integrity_checks)

    run = command(integrity_cmds, "run", "run checks, follow them, print the report")
    run.add_argument("checks", nargs="*", metavar="CHECK",
                     help="check names, codes or wildcards (default: every non-slow check)")
    run.add_argument("--details", action="store_true", help="collect the issues, not just counts")
    run.add_argument("--include-slow", action="store_true",
                     help="with no CHECK, run the slow checks too")
    run.add_argument("--slow", action="store_true",
                     help="run only the slow checks (DHIS2 leaves them out of its default run)")
    _add_timeout(run, INTEGRITY_TIMEOUT)
    _add_poll_options(run)
    _add_fail_on(run, "any check has issues")
    run.add_argument("--fail-on-new", choices=SEVERITIES, type=str.lower, metavar="LEVEL",
                     help="exit 1 when there are issues at LEVEL or worse that the previous "
                          "recorded run of this server did not have (needs --history)")
    _add_history(run)
    _add_format(run)
    run.set_defaults(handler=cmd_integrity_run)

    report = command(integrity_cmds, "report", "print the last results without running")
    report.add_argument("checks", nargs="*", metavar="CHECK")
    report.add_argument("--details", action="store_true", help="include the issues")
    _add_fail_on(report, "any check has issues")
    _add_history(report)
    _add_format(report)
    report.set_defaults(handler=cmd_integrity_report)

    issues = command(integrity_cmds, "issues",
                     "stream the last detailed results, one issue per line (flat memory)")
    issues.add_argument("checks", nargs="*", metavar="CHECK")
    _add_format(issues, default="jsonl", choices=("jsonl", "csv", "table"))
    issues.set_defaults(handler=cmd_integrity_issues)

    diff = command(integrity_cmds, "diff", "new and resolved issues between two saved reports")
    diff.add_argument("old", metavar="OLD.json")
    diff.add_argument("new", metavar="NEW.json")
    _add_fail_on(diff, "there are new issues")
    diff.add_argument("--allow-different-servers", action="store_true",
                      help="compare reports of two different servers (else exit 2)")
    _add_format(diff, choices=("table", "json", "jsonl", "csv"))
    diff.set_defaults(handler=cmd_integrity_diff)

    hist = command(integrity_cmds, "history", "the runs recorded in the history file")
    trend = command(integrity_cmds, "trend", "issue counts over the recorded runs")
    trend.add_argument("check", nargs="?", metavar="CHECK",
                       help="one check's count (default: total issues per run)")
    trend.add_argument("--since", metavar="YYYY-MM-DD", help="runs from this date on (UTC)")
    opened = command(integrity_cmds, "open", "issues still open, oldest first, with first-seen "
                                             "dates")
    opened.add_argument("--older-than", metavar="AGE",
                        help="only issues first seen at least AGE ago (30d, 12h, 2w)")
    opened.add_argument("--severity", choices=SEVERITIES, type=str.lower,
                        help="only checks of this severity or worse")
    opened.add_argument("--check", metavar="CHECK", help="only this check")
    for sub, handler in ((hist, cmd_integrity_history), (trend, cmd_integrity_trend),
                         (opened, cmd_integrity_open)):
        _add_history(sub)
        sub.add_argument("--server", metavar="URL", help="only this server (its base URL)")
        _add_format(sub, choices=("table", "json", "jsonl", "csv"))
        sub.set_defaults(handler=handler)

    # refresh
    refresh_cmds = group("refresh", "analytics, resource tables, monitoring")
    analytics = command(refresh_cmds, "analytics", "rebuild the analytics tables")
    analytics.add_argument("--last-years", type=int, metavar="N",
                           help="only the last N years of data")
    for flag, parameter in ANALYTICS_FLAGS:
        analytics.add_argument("--" + flag.replace("_", "-"), action="store_true",
                               dest=flag, help="DHIS2 parameter {}".format(parameter))
    tables = command(refresh_cmds, "resource-tables", "rebuild the resource tables")
    monitoring = command(refresh_cmds, "monitoring", "run the monitoring job")
    for sub, limit in ((analytics, ANALYTICS_TIMEOUT), (tables, JOB_TIMEOUT),
                       (monitoring, JOB_TIMEOUT)):
        _add_wait_options(sub, limit)
        sub.set_defaults(handler=cmd_refresh)

    # predictors and validation
    predictors_cmds = group("predictors", "run predictors")
    prun = command(predictors_cmds, "run", "run predictors (all, or the ones named)")
    prun.add_argument("--start-date", required=True, metavar="YYYY-MM-DD")
    prun.add_argument("--end-date", required=True, metavar="YYYY-MM-DD")
    prun.add_argument("--predictor", action="append", metavar="UID", default=[])
    prun.add_argument("--group", action="append", metavar="UID", default=[])
    prun.set_defaults(handler=cmd_predictors_run)

    validation_cmds = group("validation", "validation rule analysis")
    vrun = command(validation_cmds, "run", "run validation rule analysis and list violations")
    vrun.add_argument("--org-unit", required=True, metavar="UID")
    vrun.add_argument("--start-date", required=True, metavar="YYYY-MM-DD")
    vrun.add_argument("--end-date", required=True, metavar="YYYY-MM-DD")
    vrun.add_argument("--group", metavar="UID", help="validation rule group")
    vrun.add_argument("--persist", action="store_true", help="store the violations in DHIS2")
    vrun.add_argument("--notification", action="store_true", help="send rule notifications")
    vrun.add_argument("--fail-on-violations", action="store_true",
                      help="exit 1 when there are violations")
    _add_format(vrun, choices=("table", "json", "jsonl", "csv"))
    vrun.set_defaults(handler=cmd_validation_run)
    vres = command(validation_cmds, "results", "list stored validation results")
    vres.add_argument("--rule", action="append", default=[], metavar="UID")
    vres.add_argument("--org-unit", action="append", default=[], metavar="UID",
                      help="exact org unit (no descendants)")
    vres.add_argument("--period", action="append", default=[], metavar="ISO",
                      help="results whose period overlaps this one, e.g. 202401")
    vres.add_argument("--created-since", metavar="YYYY-MM-DD")
    _add_format(vres, choices=("table", "json", "jsonl", "csv"))
    vres.set_defaults(handler=cmd_validation_results)
    vdel = command(validation_cmds, "delete-results",
                   "DESTRUCTIVE: delete stored validation results (filters, or --all)")
    vdel.add_argument("--rule", action="append", default=[], metavar="UID")
    vdel.add_argument("--org-unit", action="append", default=[], metavar="UID")
    vdel.add_argument("--period", metavar="ISO", help="one ISO period (overlap)")
    vdel.add_argument("--created", metavar="ISO", help="created in this ISO period, e.g. 2024Q1")
    vdel.add_argument("--notification-sent", choices=("true", "false"))
    vdel.add_argument("--all", action="store_true", dest="all_results",
                      help="no filter: delete EVERY validation result (needs --yes)")
    vdel.add_argument("--yes", action="store_true", help="confirm")
    vdel.set_defaults(handler=cmd_validation_delete)
    vnot = command(validation_cmds, "notify", "send the pending validation result notifications")
    vnot.set_defaults(handler=cmd_validation_notify)

    # scheduled jobs
    jobs_cmds = group("jobs", "scheduled jobs (job configurations) and scheduler health")
    jlist = command(jobs_cmds, "list", "list job configurations")
    jlist.add_argument("--type", dest="job_type", type=str.upper, metavar="JOB_TYPE")
    jlist.add_argument("--status", type=str.upper, metavar="STATUS",
                       help="jobStatus or last run status, e.g. FAILED, RUNNING")
    jlist.add_argument("--enabled", dest="enabled", action="store_const", const=True)
    jlist.add_argument("--disabled", dest="enabled", action="store_const", const=False)
    jlist.add_argument("--include-run-once", action="store_true",
                       help="also the ad-hoc run-once rows of 2.41+")
    _add_format(jlist, choices=("table", "json", "jsonl", "csv"))
    jlist.set_defaults(handler=cmd_jobs_list)
    jshow = command(jobs_cmds, "show", "one job configuration, every field")
    jshow.add_argument("job_id", metavar="ID")
    _add_format(jshow, choices=("table", "json"))
    jshow.set_defaults(handler=cmd_jobs_show)
    jrun = command(jobs_cmds, "run", "run a job configuration now")
    jrun.add_argument("job_id", metavar="ID")
    jrun.add_argument("--wait", action="store_true", help="follow it until it has finished")
    _add_timeout(jrun, JOB_TIMEOUT, "waiting (with --wait)")
    jrun.set_defaults(handler=cmd_jobs_run)
    for name, text in (("enable", "enable a job configuration"),
                       ("disable", "disable a job configuration")):
        sub = command(jobs_cmds, name, text)
        sub.add_argument("job_id", metavar="ID")
        sub.set_defaults(handler=cmd_jobs_toggle)
    jcancel = command(jobs_cmds, "cancel", "cancel a running job (by ID on 2.41+, or --type)")
    jcancel.add_argument("job_id", nargs="?", metavar="ID")
    jcancel.add_argument("--type", dest="job_type", type=str.upper, metavar="JOB_TYPE",
                         help="cancel the running job of this type (2.37+)")
    jcancel.set_defaults(handler=cmd_jobs_cancel)
    jcreate = command(jobs_cmds, "create", "create a job configuration (DHIS2 checks the cron)")
    jcreate.add_argument("name")
    jcreate.add_argument("job_type", metavar="JOB_TYPE", type=str.upper)
    when = jcreate.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", metavar="EXPR", help='6 fields, seconds first: "0 0 3 ? * *"')
    when.add_argument("--delay", type=int, metavar="S", help="FIXED_DELAY seconds")
    jcreate.add_argument("--parameters", metavar="JSON", help="jobParameters as a JSON object")
    jcreate.add_argument("--disabled", action="store_true", help="create it disabled")
    _add_format(jcreate, choices=("table", "json"))
    jcreate.set_defaults(handler=cmd_jobs_create)
    jdelete = command(jobs_cmds, "delete", "DESTRUCTIVE: delete a job configuration")
    jdelete.add_argument("job_id", metavar="ID")
    jdelete.add_argument("--yes", action="store_true", help="confirm")
    jdelete.set_defaults(handler=cmd_jobs_delete)
    jhealth = command(jobs_cmds, "health",
                      "failed, stuck, overdue and disabled jobs, stale analytics: what to do")
    _add_fail_on(jhealth, "a finding")
    jhealth.add_argument("--max-runtime-hours", type=float, default=6.0, metavar="H",
                         help="a RUNNING job past this is a finding (default %(default)s)")
    jhealth.add_argument("--analytics-max-age-hours", type=float, default=26.0, metavar="H",
                         help="analytics tables older than this are a finding "
                              "(default %(default)s)")
    _add_format(jhealth, choices=("table", "json", "jsonl", "csv"))
    jhealth.set_defaults(handler=cmd_jobs_health)

    doctor = command(commands, "doctor",
                     "check URL, TLS, credentials, user, version, authorities, clock, scheduler")
    doctor.add_argument("--need", action="append", default=[], metavar="FEATURE",
                        help="a missing authority for FEATURE fails (else warns): " +
                             ", ".join(_feature_names()))
    _add_format(doctor, choices=("table", "json"))
    doctor.set_defaults(handler=cmd_doctor)
    whoami = command(commands, "whoami", "the user and their authorities")
    _add_format(whoami, choices=("table", "json"))
    whoami.set_defaults(handler=cmd_whoami)

    # maintenance
    maintenance_cmds = group("maintenance", "/api/maintenance operations", metavar="OPERATION")
    for op in _maintenance_operations():
        sub = command(maintenance_cmds, op.cli_name,
                      ("DESTRUCTIVE: " if op.destructive else "") + op.summary,
                      aliases=op.aliases)
        if op.needs_uid:
            sub.add_argument("uid", metavar="UID")
        if op.destructive:
            sub.add_argument("--yes", action="store_true",
                             help="confirm; needed when stdin is not a terminal")
        sub.set_defaults(handler=cmd_maintenance, operation=op)
    coc = command(maintenance_cmds, "coc-update",
                  "add missing / remove obsolete category option combos")
    coc.add_argument("--category-combo", metavar="UID", help="only this category combo")
    coc.add_argument("--wait", action="store_true",
                     help="poll until the combo has all its option combos (needs --category-combo)")
    _add_timeout(coc, COC_TIMEOUT, "waiting for the option combos")
    _add_poll_options(coc, max_interval=False)
    coc.set_defaults(handler=cmd_coc_update)

    # history (#24): moving a whole history between SQLite and PostgreSQL
    history_cmds = group("history", "the integrity history itself (SQLite file or PostgreSQL)")
    hcopy = command(history_cmds, "copy", "copy a whole history into a new one: SQLite file "
                                          "to PostgreSQL or back (a postgresql:// URL)")
    hcopy.add_argument("source", metavar="SRC", help="the history to copy (file or URL)")
    hcopy.add_argument("destination", metavar="DST",
                       help="a new, empty history (file or URL; created when missing)")
    hcopy.set_defaults(handler=cmd_history_copy)

    # tasks
    task_cmds = group("task", "task notifications of background jobs")
    status = command(task_cmds, "status", "show a job's notifications (newest first)")
    status.add_argument("job_type", metavar="JOB_TYPE", type=str.upper)
    status.add_argument("job_id", nargs="?", metavar="JOB_ID")
    _add_format(status, choices=("table", "json"))
    status.set_defaults(handler=cmd_task_status)
    wait = command(task_cmds, "wait", "follow a job until it ends")
    wait.add_argument("job_type", metavar="JOB_TYPE", type=str.upper)
    wait.add_argument("job_id", metavar="JOB_ID")
    _add_timeout(wait, JOB_TIMEOUT)
    _add_poll_options(wait)
    wait.set_defaults(handler=cmd_task_wait)
    ttypes = command(task_cmds, "types", "the job types DHIS2 holds task notifications for")
    _add_format(ttypes, choices=("table", "json"))
    ttypes.set_defaults(handler=cmd_task_types)
    tlist = command(task_cmds, "list", "the job ids of one type DHIS2 holds, newest first")
    tlist.add_argument("job_type", metavar="JOB_TYPE", type=str.upper)
    _add_format(tlist, choices=("table", "json"))
    tlist.set_defaults(handler=cmd_task_list)

    demo = command(commands, "demo", "start the built-in DHIS2 stand-in and run the nightly "
                                     "job against it (no DHIS2 needed)")
    demo.add_argument("--dhis2-version", default="2.42", metavar="V",
                      help="stand-in DHIS2 version (default %(default)s)")
    demo.add_argument("--job-seconds", type=float, default=2.0, metavar="S",
                      help="how long each simulated job runs (default %(default)s)")
    demo.set_defaults(handler=cmd_demo)

    mcp = command(commands, "mcp", "serve these maintenance tools to an AI assistant over MCP "
                                   "(stdio; needs pip install \"dhis2maint[mcp]\", Python 3.10+)")
    mcp.set_defaults(handler=cmd_mcp)

    version = command(commands, "version", "library version and, with a server, DHIS2's")
    version.set_defaults(handler=cmd_version)
    return parser


def _feature_names() -> Tuple[str, ...]:
    """The names `doctor --need` takes: the task features of the version table
    (versions.FEATURES), as the doctor's authority table names them."""
    from .versions import task_features

    return tuple(feature.name.replace("_", " ") for feature in task_features())


def _add_wait_options(parser: argparse.ArgumentParser, default: Optional[float]) -> None:
    parser.add_argument("--no-wait", action="store_true",
                        help="print the job id and return at once")
    _add_timeout(parser, default)
    _add_poll_options(parser)


def _add_poll_options(parser: argparse.ArgumentParser, max_interval: bool = True) -> None:
    parser.add_argument("--poll-interval", type=float, metavar="S",
                        help="seconds between polls at first and after news (default 1)")
    if max_interval:
        parser.add_argument("--max-interval", type=float, metavar="S",
                            help="longest pause between polls (default 10; the end of a job "
                                 "is noticed within max(2 s, 10%% of the time waited))")


def _poll_kwargs(args: argparse.Namespace) -> Dict[str, float]:
    """--poll-interval / --max-interval as keyword arguments of the waits."""
    opts = vars(args)
    return {key: opts[key] for key in ("poll_interval", "max_interval")
            if opts.get(key) is not None}


class _Operation:
    """One `dhis2maint maintenance <operation>` subcommand, from jobs.MAINTENANCE_OPERATIONS."""

    def __init__(self, op: "MaintenanceOperation") -> None:
        self.cli_name = op.name.replace("_", "-")
        self.method_name = op.name
        self.summary = op.summary
        self.destructive = op.destructive
        self.needs_uid = op.takes_uid
        # the names the issue tracker and DHIS2 admins use for the common two
        self.aliases = {"clear_cache": ["cache-clear"]}.get(op.name, [])


def _maintenance_operations() -> List[_Operation]:
    """The maintenance subcommands; category option combos have their own `coc-update`."""
    from .jobs import MAINTENANCE_OPERATIONS

    return [_Operation(op) for op in MAINTENANCE_OPERATIONS
            if op.name != "update_category_option_combos"]


# --- output helpers -------------------------------------------------------------------


class _Progress:
    """Notification lines on stderr: when it is a terminal, or with --progress."""

    def __init__(self, args: argparse.Namespace, stream: Optional[TextIO] = None) -> None:
        self.stream = stream or sys.stderr
        opts = vars(args)
        self.enabled = not opts.get("quiet") and (
            bool(opts.get("progress")) or self.stream.isatty())
        self.started = time.monotonic()

    def __call__(self, notification: "Notification") -> None:
        if self.enabled:
            from .report import write_notification_line

            write_notification_line(notification, time.monotonic() - self.started, self.stream)
            self.stream.flush()

    def say(self, text: str) -> None:
        if self.enabled:
            self.stream.write(text + "\n")
            self.stream.flush()


def _output(args: argparse.Namespace) -> ContextManager[IO[Any]]:
    from .report import atomic_output

    return atomic_output(getattr(args, "output", None))


def _severity_at_least(severity: object, level: str) -> bool:
    from .models import severity_rank

    return severity_rank(str(severity or "WARNING")) >= severity_rank(level)


def _threshold_reached(report: "DataIntegrityReport", level: Optional[str]) -> bool:
    if not level:
        return False
    return any((r.count or 0) > 0 and _severity_at_least(r.severity, level) for r in report)


# --- commands ------------------------------------------------------------------------


def cmd_integrity_checks(args: argparse.Namespace) -> int:
    from .report import write_checks

    with connect(args) as session:
        checks = session.list_integrity_checks(section=args.section, severity=args.severity,
                                               slow=True if args.slow else None,
                                               checks=args.checks or None)
    with _output(args) as out:
        write_checks(checks, args.format, out)
    return EXIT_OK


def _note(args: argparse.Namespace, text: str) -> None:
    """A line on stderr about what was (not) done; --quiet silences it."""
    if not vars(args).get("quiet"):
        sys.stderr.write("dhis2maint: note: {}\n".format(text))
        sys.stderr.flush()


def _integrity_selection(args: argparse.Namespace, session: "Session"
                         ) -> Optional[Sequence[Union[str, "DataIntegrityCheck"]]]:
    """The ``checks`` to run: names as given, the slow checks (--slow), or None (DHIS2's
    default set, with a note on the slow checks it leaves out; the library logs it too)."""
    if args.slow:
        if args.checks:
            raise UsageError("--slow runs every slow check; give either --slow or CHECK names")
        slow = session.list_integrity_checks(slow=True)
        if not slow:
            raise UsageError("this server (DHIS2 {}) has no slow data-integrity checks; "
                             "nothing to run".format(session.server_version_text))
        return slow
    names: Optional[List[str]] = args.checks  # CHECK arguments (nargs="*")
    if names:
        if args.include_slow:
            _note(args, "--include-slow has no effect with CHECK names: named checks run "
                        "whether slow or not")
        return names
    if not args.include_slow:
        skipped = [c for c in session.list_integrity_checks() if c.is_slow]
        if skipped:
            text = ("{} slow checks are not part of DHIS2's default run and were not run; add "
                    "--include-slow to run them too, or --slow to run only them".format(
                        len(skipped)))
            _note(args, text)
    return None


def cmd_integrity_run(args: argparse.Namespace) -> int:
    progress = _Progress(args)
    if args.fail_on_new and not args.history:
        raise UsageError("--fail-on-new needs --history FILE (or $DHIS2MAINT_HISTORY)")
    history = _open_history(args)
    try:
        with connect(args) as session:
            checks = _integrity_selection(args, session)
            progress.say("Running data-integrity checks on {}".format(session.base_url))
            include_slow = bool(args.include_slow and not checks)
            poll = _poll_kwargs(args)
            if args.details and args.format in _STREAMED_FORMATS:
                sink: List["ReportStream"] = []
                report, rows = session.iter_integrity_run(
                    checks, timeout=args.timeout, on_notification=progress,
                    include_slow=include_slow, on_check=lambda result: sink[0].check(result),
                    **poll)
                recorded = _write_streamed(args, report, rows, sink, history, session)
            else:
                report = session.run_integrity_checks(
                    checks, details=args.details, timeout=args.timeout,
                    on_notification=progress, include_slow=include_slow, **poll)
                recorded = _record_and_write(args, report, history, session)
    finally:
        if history is not None:
            history.close()
    _say_recorded(progress, recorded)
    # --fail-on-new needs --history (checked above), so there is a recorded run
    if args.fail_on_new and recorded is not None and recorded.new_at_least(args.fail_on_new):
        return EXIT_THRESHOLD
    return EXIT_THRESHOLD if _threshold_reached(report, args.fail_on) else EXIT_OK


def cmd_integrity_report(args: argparse.Namespace) -> int:
    history = _open_history(args)
    try:
        with connect(args) as session:
            # matched once here: unknown names exit 2, and the note below can say which
            # of the named checks have no cached result
            selected = session.resolve_integrity_checks(args.checks) if args.checks else None
            if args.details and args.format in _STREAMED_FORMATS:
                from .integrity import stamp_report
                from .models import DataIntegrityReport

                report = stamp_report(DataIntegrityReport(details=True), session.base_url,
                                      session.server_version, run_at=_utc_now())
                sink: List["ReportStream"] = []

                def on_check(result: "DataIntegrityResult") -> None:
                    report.results[result.name] = result
                    sink[0].check(result)

                rows = session.iter_integrity_issues(checks=selected, on_check=on_check)
                _write_streamed(args, report, rows, sink, history, session)
            else:
                report = session.get_integrity_report(checks=selected, details=args.details)
                _record_and_write(args, report, history, session)
            missing = session.missing_integrity_results(report, selected) if selected else []
    finally:
        if history is not None:
            history.close()
    if missing:
        _note(args, "no cached result for {} of the {} selected checks: {} (never run, or run "
                    "more than about an hour ago; run them with `dhis2maint integrity run`)"
              .format(len(missing), len(selected or []), ", ".join(missing)))
    elif not len(report):
        _note(args, "DHIS2 has no cached data-integrity results (they expire about an hour "
                    "after a run); run `dhis2maint integrity run` first")
    return EXIT_THRESHOLD if _threshold_reached(report, args.fail_on) else EXIT_OK


_STREAMED_FORMATS = ("json", "jsonl", "csv")


def _utc_now() -> "datetime.datetime":
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _open_history(args: argparse.Namespace) -> Optional["History"]:
    """The History of --history/$DHIS2MAINT_HISTORY (created when new), or None when
    none is given."""
    path = getattr(args, "history", None)
    if not path:
        return None
    from .history import History

    return History(path)


def _existing_history(args: argparse.Namespace) -> "History":
    """The History of --history/$DHIS2MAINT_HISTORY, which must exist (UsageError)."""
    path = getattr(args, "history", None)
    if not path:
        raise UsageError("no history file: give --history FILE or set $DHIS2MAINT_HISTORY")
    from .history import History, is_postgresql_url

    if not is_postgresql_url(path) and not os.path.exists(path):
        raise UsageError("no history file {}: record runs with `integrity run --history "
                         "{}` first".format(path, path))

    return History(path)


def _record_and_write(args: argparse.Namespace, report: "DataIntegrityReport",
                      history: Optional["History"], session: "Session"
                      ) -> Optional["RecordedRun"]:
    """Record ``report`` (when a history is given), then write it (html: with history)."""
    from .report import write_report

    recorded = history.record(report, session) if history is not None else None
    with _output(args) as out:
        write_report(report, args.format, out, history=history)
    return recorded


def _write_streamed(args: argparse.Namespace, report: "DataIntegrityReport",
                    rows: Iterable["IntegrityIssueRow"], sink: List["ReportStream"],
                    history: Optional["History"], session: "Session"
                    ) -> Optional["RecordedRun"]:
    """Write (and record) a details run while it is read: constant memory."""
    from .report import ReportStream

    recorded = None
    with _output(args) as out:
        writer = ReportStream(args.format, out, report)
        sink.append(writer)

        def written(source: Iterable["IntegrityIssueRow"]) -> Iterator["IntegrityIssueRow"]:
            for row in source:
                writer.row(row)
                yield row

        if history is not None:
            recorded = history.record(report, session, rows=written(rows))
        else:
            for _ in written(rows):
                pass
        writer.close()
    return recorded


def _say_recorded(progress: _Progress, recorded: Optional["RecordedRun"]) -> None:
    if recorded is None:
        return
    run = recorded.run
    progress.say("Recorded run {} in the history: {:,} issues, {:,} new, {:,} resolved since "
                 "{}".format(run.id, run.issues, recorded.new_issues, recorded.resolved_issues,
                             "run {}".format(recorded.previous_run_id)
                             if recorded.previous_run_id else "(first run of this server)"))


def cmd_integrity_history(args: argparse.Namespace) -> int:
    from .report import write_history

    with _existing_history(args) as history:
        runs = history.runs(args.server)
    with _output(args) as out:
        write_history(runs, "runs", args.format, out)
    return EXIT_OK


def cmd_integrity_trend(args: argparse.Namespace) -> int:
    from .report import write_history

    with _existing_history(args) as history:
        points = history.trend(args.check, since=args.since, server=args.server)
    with _output(args) as out:
        write_history(points, "trend", args.format, out)
    return EXIT_OK


def cmd_integrity_open(args: argparse.Namespace) -> int:
    from .report import write_history

    with _existing_history(args) as history:
        issues = history.open_issues(min_age=args.older_than, severity=args.severity,
                                     server=args.server, check=args.check)
    with _output(args) as out:
        write_history(issues, "open", args.format, out)
    return EXIT_OK


def cmd_integrity_issues(args: argparse.Namespace) -> int:
    from .report import write_issue_rows

    with connect(args) as session:
        with _output(args) as out:
            write_issue_rows(session.iter_integrity_issues(checks=args.checks or None),
                             args.format, out)
    return EXIT_OK


def cmd_integrity_diff(args: argparse.Namespace) -> int:
    from .convert import from_json
    from .integrity import compare_reports
    from .report import write_comparison

    reports = []
    for path in (args.old, args.new):
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise UsageError("cannot read {}: {}".format(path, exc.strerror))
        reports.append(from_json(text))
    servers = [r.base_url for r in reports]
    if servers[0] and servers[1] and servers[0] != servers[1] \
            and not args.allow_different_servers:
        raise UsageError("{} is from {} but {} is from {}: add --allow-different-servers to "
                         "compare them anyway".format(args.old, servers[0], args.new,
                                                      servers[1]))
    comparison = compare_reports(*reports)
    with _output(args) as out:
        write_comparison(comparison, args.format, out)
    level = args.fail_on or "info"
    # Counts matter too: a summary-only diff has no issues to compare, and a check
    # that appeared (or failed last time) with issues now is worse as well.
    worse = [c for c in comparison.count_changes.values()
             if (c.new or 0) > max(c.old or 0, 0) and _severity_at_least(c.severity, level)]
    new = comparison.new_issues_at_least(level)
    return EXIT_THRESHOLD if new or worse else EXIT_OK


def _follow(job: "Job", args: argparse.Namespace, progress: _Progress) -> int:
    if args.no_wait:
        print("{} {}".format(job.job_type, job.id))
        return EXIT_OK
    progress.say("Started {} job {}".format(job.job_type, job.id))
    final = job.wait(timeout=args.timeout, on_notification=progress, **_poll_kwargs(args))
    print("{} {} completed: {}".format(job.job_type, job.id, final.message or "done"))
    return EXIT_OK


def cmd_refresh(args: argparse.Namespace) -> int:
    progress = _Progress(args)
    with connect(args) as session:
        if args.action == "analytics":
            flags = {flag: True for flag, _ in ANALYTICS_FLAGS if getattr(args, flag)}
            job = session.refresh_analytics(last_years=args.last_years, **flags)
        elif args.action == "resource-tables":
            job = session.refresh_resource_tables()
        else:
            job = session.refresh_monitoring()
        return _follow(job, args, progress)


def cmd_predictors_run(args: argparse.Namespace) -> int:
    with connect(args) as session:
        result = session.run_predictors(args.start_date, args.end_date,
                                        predictors=args.predictor or None,
                                        predictor_groups=args.group or None)
    runs = result if isinstance(result, list) else [result]
    for run in runs:
        print(run.message or "done")
    return EXIT_OK


def cmd_validation_run(args: argparse.Namespace) -> int:
    from .report import write_records

    with connect(args) as session:
        violations = session.run_validation_analysis(
            args.org_unit, args.start_date, args.end_date, validation_rule_group=args.group,
            notification=args.notification, persist=args.persist)
    with _output(args) as out:
        write_records(violations, args.format, out)
    return EXIT_THRESHOLD if violations and args.fail_on_violations else EXIT_OK


def _confirm(args: argparse.Namespace, op: _Operation) -> None:
    if not op.destructive or getattr(args, "yes", False):
        return
    if not sys.stdin.isatty():
        raise UsageError("`maintenance {}` deletes data; add --yes to confirm".format(op.cli_name))
    answer = input("{}: {}. Type yes to go on: ".format(op.cli_name, op.summary))
    if answer.strip().lower() != "yes":
        raise UsageError("not confirmed; nothing done")


def cmd_maintenance(args: argparse.Namespace) -> int:
    op = args.operation
    _confirm(args, op)
    with connect(args) as session:
        method = getattr(session, op.method_name)
        method(args.uid) if op.needs_uid else method()
    print("{}: done".format(op.cli_name))
    return EXIT_OK


def cmd_coc_update(args: argparse.Namespace) -> int:
    if args.wait and not args.category_combo:
        raise UsageError("--wait needs --category-combo UID")
    with connect(args) as session:
        if args.wait:
            if args.poll_interval is None:  # the library's default interval
                state = session.wait_for_coc_generation(args.category_combo,
                                                        timeout=args.timeout)
            else:
                state = session.wait_for_coc_generation(args.category_combo,
                                                        timeout=args.timeout,
                                                        poll_interval=args.poll_interval)
            print("{}: {} of {} category option combos".format(
                state.id, state.count, state.expected_count))
        else:
            summary = session.update_category_option_combos(args.category_combo)
            print("category option combos updated{}".format(_summary_text(summary)))
    return EXIT_OK


def _summary_text(summary: Any) -> str:
    if summary is None:
        return ""
    text = ": {} added, {} deleted".format(summary.imported, summary.deleted)
    if str(summary.status or "").upper() == "WARNING":
        text += "; WARNING: {} kept{}".format(
            summary.ignored, " ({})".format("; ".join(d for d in summary.descriptions
                                                    if d.startswith("Could not")))
            if any(d.startswith("Could not") for d in summary.descriptions) else "")
    return text


def cmd_task_status(args: argparse.Namespace) -> int:
    from .convert import unstructure

    with connect(args) as session:
        notes = session.get_task_notifications(args.job_type, args.job_id)
    with _output(args) as out:
        if args.format == "json":
            json.dump(unstructure(notes), out, indent=2, ensure_ascii=False)
            out.write("\n")
        elif not notes:
            out.write("no notifications for {}{}\n".format(
                args.job_type, " " + args.job_id if args.job_id else ""))
        else:
            for note in notes:
                when = note.time.isoformat(sep=" ", timespec="milliseconds") if note.time else "-"
                out.write("{}  {:<5} {}{}\n".format(when, str(note.level or ""), note.message or "",
                                                    "  (completed)" if note.completed else ""))
    return EXIT_OK


def cmd_task_wait(args: argparse.Namespace) -> int:
    progress = _Progress(args)
    with connect(args) as session:
        final = session.wait_for_task(args.job_type, args.job_id, timeout=args.timeout,
                                      on_notification=progress, **_poll_kwargs(args))
    print("{} {} completed: {}".format(args.job_type, args.job_id, final.message or "done"))
    return EXIT_OK


def cmd_version(args: argparse.Namespace) -> int:
    print("dhis2maint {}".format(__version__))
    opts = vars(args)
    if any(k in opts for k in ("url", "auth_file")) or os.environ.get("DHIS2_URL"):
        with connect(args) as session:
            print("DHIS2 {} at {}".format(session.server_version_text, session.base_url))
    return EXIT_OK


def cmd_mcp(args: argparse.Namespace) -> int:
    """Serve the MCP tools over stdio (dhis2maint/mcp.py); exit 2 without the SDK."""
    from .mcp import serve

    return serve(lambda: connect(args, prompt=False), debug=bool(vars(args).get("debug")))


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the stand-in, run the integrity checks and analytics against it, stop it."""
    from .report import write_report
    from .session import Session
    from .testing import Dhis2StandIn

    import tempfile

    from .history import History

    progress = _Progress(args)
    progress.enabled = not vars(args).get("quiet")
    out = sys.stdout
    with Dhis2StandIn(version=args.dhis2_version, job_seconds=args.job_seconds) as server, \
            tempfile.TemporaryDirectory(prefix="dhis2maint-demo-") as folder:
        server.drift = 2  # each night some issues are fixed and new ones appear
        username, password = next(iter(server.users.items()))
        out.write("Built-in DHIS2 {} stand-in at {} (user {})\n\n".format(
            args.dhis2_version, server.url, username))
        with Session(server.url, auth=(username, password)) as session, \
                History(os.path.join(folder, "history.sqlite")) as history:
            nights = 3

            def run_night(night: int) -> "DataIntegrityReport":
                progress.say("{}/{} Night {}: running the data-integrity checks (details)…"
                             .format(night, nights + 1, night))
                report = session.run_integrity_checks(details=True, on_notification=progress)
                recorded = history.record(report, session)
                out.write("Night {}: {:,} issues, {:,} new, {:,} resolved "
                          "(--fail-on-new severe would exit {})\n".format(
                              night, recorded.run.issues, recorded.new_issues,
                              recorded.resolved_issues,
                              1 if recorded.new_at_least("severe") else 0))
                return report

            for night in range(1, nights):
                run_night(night)
            report = run_night(nights)  # the last night's report is shown below
            out.write("\n")
            write_report(report, "table", out, title="Data integrity on the stand-in", limit=3)
            out.write("\nTrend (total issues per recorded run, `integrity trend`):\n")
            for point in history.trend():
                out.write("  run {}  {}  {:>6,}\n".format(
                    point.run_id, point.run_at.strftime("%Y-%m-%d %H:%M:%S"), point.count))
            oldest = history.open_issues()
            out.write("Open issues: {:,}; oldest first seen in run {} (`integrity open`)\n\n"
                      .format(len(oldest), oldest[0].first_run if oldest else "-"))
            progress.say("{}/{} Refreshing analytics tables…".format(nights + 1, nights + 1))
            job = session.refresh_analytics(last_years=2)
            final = job.wait(on_notification=progress)
            out.write("Analytics: {}\n".format(final.message or "done"))
            out.write("\n$ dhis2maint jobs health\n")
            from .report import write_health

            write_health(session.scheduler_health(), "table", out, words=follow_up_text)
    out.write("\nNext: point it at your server, e.g.\n"
              "  DHIS2_URL=https://dhis2.example.org DHIS2_PAT=d2pat_… "
              "dhis2maint integrity run --details --history integrity.sqlite "
              "--fail-on-new severe\n")
    return EXIT_OK


# --- scheduled jobs, tasks, validation results, doctor (issue #15) --------------------------


_R = TypeVar("_R")


def _write_list(records: Sequence[_R], args: argparse.Namespace,
                writer: Callable[[Sequence[_R], str, IO[str]], None]) -> None:
    with _output(args) as out:
        writer(records, args.format, out)


def cmd_jobs_list(args: argparse.Namespace) -> int:
    from .report import write_job_configurations

    with connect(args) as session:
        configs = session.list_job_configurations(job_type=args.job_type, enabled=args.enabled,
                                                  status=args.status)
    if not args.include_run_once:
        configs = [c for c in configs if not c.is_run_once]
    _write_list(configs, args, write_job_configurations)
    return EXIT_OK


def _write_one(record: "AttrsInstance", args: argparse.Namespace) -> None:
    from .convert import unstructure
    from .report import write_fields

    with _output(args) as out:
        if args.format == "json":
            json.dump(unstructure(record), out, indent=2, ensure_ascii=False)
            out.write("\n")
        else:
            write_fields(record, out)


def cmd_jobs_show(args: argparse.Namespace) -> int:
    with connect(args) as session:
        config = session.get_job_configuration(args.job_id)
    _write_one(config, args)
    return EXIT_OK


def cmd_jobs_run(args: argparse.Namespace) -> int:
    progress = _Progress(args)

    def changed(config: "JobConfiguration") -> None:
        progress.say("{} {}: jobStatus {}, last run {}{}".format(
            config.job_type, config.id, config.job_status, config.last_executed_status,
            " at " + config.last_executed.isoformat(sep=" ", timespec="seconds") if config.last_executed else ""))

    with connect(args) as session:
        job = session.run_job_configuration(args.job_id, wait=args.wait, timeout=args.timeout,
                                            on_change=changed)
        if not args.wait:
            print("{} {} started".format(job.job_type, job.id))
            return EXIT_OK
        config = session.get_job_configuration(args.job_id)
    print("{} {} completed{}".format(job.job_type, job.id, " in " + config.last_runtime_execution
                                     if config.last_runtime_execution else ""))
    return EXIT_OK


def cmd_jobs_toggle(args: argparse.Namespace) -> int:
    with connect(args) as session:
        if args.action == "enable":
            config = session.enable_job_configuration(args.job_id)
        else:
            config = session.disable_job_configuration(args.job_id)
    print("{} ({}): {}".format(config.id, config.name,
                               "enabled" if config.enabled else "disabled"))
    return EXIT_OK


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    if (args.job_id is None) == (args.job_type is None):
        raise UsageError("give a job ID or --type JOB_TYPE")
    with connect(args) as session:
        session.cancel_job(job_id=args.job_id, job_type=args.job_type)
    print("cancellation requested for {}".format(args.job_id or args.job_type))
    return EXIT_OK


def cmd_jobs_create(args: argparse.Namespace) -> int:
    params = None
    if args.parameters:
        try:
            params = json.loads(args.parameters)
        except ValueError as exc:
            raise UsageError("--parameters is not JSON: {}".format(exc))
        if not isinstance(params, dict):
            raise UsageError("--parameters must be a JSON object")
    with connect(args) as session:
        config = session.create_job_configuration(
            args.name, args.job_type, cron_expression=args.cron, delay=args.delay,
            job_parameters=params, enabled=not args.disabled)
    _write_one(config, args)
    return EXIT_OK


def _confirm_text(args: argparse.Namespace, what: str) -> None:
    if getattr(args, "yes", False):
        return
    if not sys.stdin.isatty():
        raise UsageError("{}; add --yes to confirm".format(what))
    answer = input("{}. Type yes to go on: ".format(what))
    if answer.strip().lower() != "yes":
        raise UsageError("not confirmed; nothing done")


def cmd_jobs_delete(args: argparse.Namespace) -> int:
    _confirm_text(args, "`jobs delete {}` deletes the job configuration".format(args.job_id))
    with connect(args) as session:
        session.delete_job_configuration(args.job_id)
    print("{}: deleted".format(args.job_id))
    return EXIT_OK


def cmd_jobs_health(args: argparse.Namespace) -> int:
    from .report import write_health

    with connect(args) as session:
        health = session.scheduler_health(max_runtime_hours=args.max_runtime_hours,
                                          analytics_max_age_hours=args.analytics_max_age_hours)
    with _output(args) as out:
        write_health(health, args.format, out, words=follow_up_text)
    if args.fail_on and health.at_least(args.fail_on):
        return EXIT_THRESHOLD
    return EXIT_OK


def cmd_task_types(args: argparse.Namespace) -> int:
    with connect(args) as session:
        types = session.list_task_types()
    with _output(args) as out:
        if args.format == "json":
            json.dump(types, out, indent=2)
            out.write("\n")
        elif not types:
            out.write("DHIS2 holds no task notifications\n")
        else:
            for name in types:
                out.write(name + "\n")
    return EXIT_OK


def cmd_task_list(args: argparse.Namespace) -> int:
    with connect(args) as session:
        ids = session.list_tasks(args.job_type)
    with _output(args) as out:
        if args.format == "json":
            json.dump(ids, out, indent=2)
            out.write("\n")
        elif not ids:
            out.write("no tasks of type {}\n".format(args.job_type))
        else:
            for job_id in ids:
                out.write(job_id + "\n")
    return EXIT_OK


def cmd_validation_results(args: argparse.Namespace) -> int:
    with connect(args) as session:
        results = session.list_validation_results(
            validation_rules=args.rule or None, org_units=args.org_unit or None,
            periods=args.period or None, created_date=args.created_since)
    from .report import write_validation_results

    _write_list(results, args, write_validation_results)
    return EXIT_OK


def cmd_validation_delete(args: argparse.Namespace) -> int:
    filters = bool(args.rule or args.org_unit or args.period or args.created
                   or args.notification_sent)
    if not filters and not args.all_results:
        raise UsageError("no filter: give --rule/--org-unit/--period/--created/"
                         "--notification-sent, or --all --yes to delete EVERY validation result")
    if args.all_results and filters:
        raise UsageError("--all cannot be combined with filters")
    if args.all_results and not args.yes:
        raise UsageError("--all deletes EVERY validation result; add --yes to confirm")
    _confirm_text(args, "`validation delete-results` deletes stored validation results")
    sent = None if args.notification_sent is None else args.notification_sent == "true"
    with connect(args) as session:
        session.delete_validation_results(
            validation_rules=args.rule or None, org_units=args.org_unit or None,
            period=args.period, created=args.created, notification_sent=sent,
            all_results=args.all_results)
    print("validation results deleted")
    return EXIT_OK


def cmd_validation_notify(args: argparse.Namespace) -> int:
    with connect(args) as session:
        job = session.send_validation_notifications()
    if job is None:
        print("validation result notifications started")
    else:
        print("{} {} started".format(job.job_type, job.id))
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from .report import write_doctor

    with connect(args) as session:
        report = session.doctor(need=args.need)
    with _output(args) as out:
        write_doctor(report, args.format, out, words=follow_up_text)
    return EXIT_OK if report.ok else EXIT_THRESHOLD


def cmd_whoami(args: argparse.Namespace) -> int:
    from .convert import unstructure

    with connect(args) as session:
        user = session.whoami()
    with _output(args) as out:
        if args.format == "json":
            json.dump(unstructure(user), out, indent=2, ensure_ascii=False)
            out.write("\n")
        else:
            out.write("{} ({}), id {}\n".format(user.username, user.display_name, user.id))
            out.write("authorities: {}\n".format(", ".join(user.authorities) or "(none)"))
    return EXIT_OK


# --- history copy (#24) -------------------------------------------------------------------


def cmd_history_copy(args: argparse.Namespace) -> int:
    """Copy every run of SRC into the new history DST (SQLite <-> PostgreSQL)."""
    from .history import History, copy_history, is_postgresql_url

    if not is_postgresql_url(args.source) and not os.path.exists(args.source):
        raise UsageError("no history file {}".format(args.source))
    with History(args.source) as source, History(args.destination) as destination:
        counts = copy_history(source, destination)
        sys.stdout.write("copied {} runs of {} servers ({} check results, {} issue spans) "
                         "from {} to {}\n".format(
                             counts.get("runs", 0), counts.get("servers", 0),
                             counts.get("run_checks", 0), counts.get("issues", 0),
                             source.path, destination.path))
    return EXIT_OK


# --- entry point --------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version and not getattr(args, "handler", None):
        return run_command(lambda: cmd_version(args), args)
    handler: Optional[Callable[[argparse.Namespace], int]] = getattr(args, "handler", None)
    if handler is None:  # `dhis2maint` or `dhis2maint integrity` alone
        getattr(args, "group_parser", parser).print_help(sys.stderr)
        return EXIT_USAGE
    return run_command(lambda: handler(args), args)


