"""The ``dhis2maint`` command (also ``python -m dhis2maint``) for cron, Airflow and admins.

Exit codes:
  0  success
  1  a verdict, always with one line on stderr saying why: --fail-on threshold reached
     (``jobs health``: findings at --fail-on, default severe), --fail-on-new issues not
     in the previous recorded run, new issues in ``integrity diff``, a failed ``doctor``
  2  usage or configuration error (bad arguments, missing DHIS2_URL, auth file too open,
     a history file or --output folder that cannot be written: checked before anything
     starts; a run that could not be recorded after it ended still has its report written)
  3  DHIS2 or connection error (auth, permission, not found, server error, invalid response)
  4  a job failed or timed out
  5  internal error (a bug, out of memory, ...): one line on stderr; --debug shows the traceback
Machine output goes to stdout only; progress and errors go to stderr.
"""
import argparse
import contextlib
import functools
import json
import os
import sys
import time
from typing import (IO, TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator,
                    List, Optional, Sequence, TextIO, Tuple, TypeVar, Union)

from . import __version__
from .jobs import ANALYTICS_FLAGS
# The exit codes are this command's interface (documented above): re-exported here.
from .options import (EXIT_DHIS2, EXIT_INTERNAL, EXIT_JOB, EXIT_OK, EXIT_THRESHOLD, EXIT_USAGE,
                      UsageError, connect, connection_options, follow_up_text, output_options,
                      run_command)

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
  1  a verdict, with one line on stderr saying why: --fail-on threshold reached
     (`jobs health`: a finding at --fail-on, default severe), --fail-on-new issues not
     in the previous recorded run, new issues found by `integrity diff`, `doctor` failed
  2  usage or configuration error (also: the history file or --output folder cannot
     be written; checked before anything starts)
  3  DHIS2 or connection error (authentication, permission, not found, server, invalid response)
  4  job failed or timed out
  5  internal error (a bug, out of memory, ...); rerun with --debug for the traceback
  130  interrupted (Ctrl-C): a job being followed goes on in DHIS2; stderr names it
       and the command that follows it again

connection: --url/--token/--username, or --auth-file, or the environment
(DHIS2_URL, DHIS2_PAT or DHIS2_USERNAME + DHIS2_PASSWORD, DHIS2_TIMEOUT).
The password is read from DHIS2_PASSWORD or prompted for; it is never a flag."""


SHORT_USAGE = """usage: dhis2maint COMMAND [ACTION] [options]

  dhis2maint demo        try it now: a built-in DHIS2 stand-in, no server needed
  dhis2maint doctor      check the URL, credentials and scheduler of your server
  dhis2maint --help      every command; `dhis2maint COMMAND --help` for one

Connect with DHIS2_URL and DHIS2_PAT (or DHIS2_USERNAME + DHIS2_PASSWORD).
"""


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
    # fleet (#23): --fleet/--servers/--parallel/--output-dir, handled in cli_fleet.py
    from .cli_fleet import FLEET_HELP, add_fleet_options
    add_fleet_options(common)
    parser = argparse.ArgumentParser(
        prog="dhis2maint", parents=[common],
        description="Keep a DHIS2 server healthy: data-integrity checks, analytics and "
                    "other background jobs, maintenance.",
        epilog=EXIT_CODES_HELP + "\n\n" + FLEET_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true",
                        help="print the library version (and the server's, if connected)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]", name: str,
                help_text: str, parents: Optional[List[argparse.ArgumentParser]] = None,
                **kwargs: Any) -> argparse.ArgumentParser:
        # a command without the connection options gets no word on them either
        epilog = EXIT_CODES_HELP if parents is None else EXIT_CODES_HELP.split(
            "\n\nconnection:")[0]
        return subparsers.add_parser(name, help=help_text, description=help_text,
                                     parents=parents or [common], epilog=epilog,
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
    _add_wait_flags(run)
    _add_timeout(run, INTEGRITY_TIMEOUT)
    _add_poll_options(run)
    _add_fail_on(run, "any check has issues")
    run.add_argument("--fail-on-new", choices=SEVERITIES, type=str.lower, metavar="LEVEL",
                     help="exit 1 when there are issues at LEVEL or worse that the previous "
                          "recorded run of this server did not have (needs --history)")
    _add_history(run)
    _add_format(run)
    _add_watch_options(run)
    _add_push_values(run)
    run.set_defaults(handler=cmd_integrity_run)

    report = command(integrity_cmds, "report", "print the last results without running")
    report.add_argument("checks", nargs="*", metavar="CHECK")
    report.add_argument("--details", action="store_true", help="include the issues")
    _add_fail_on(report, "any check has issues")
    _add_history(report)
    _add_format(report)
    _add_watch_options(report)
    _add_push_values(report)
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
        _add_watch_options(sub)
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
    _add_wait_options(vnot, JOB_TIMEOUT)
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
    _add_wait_flags(jrun)
    _add_timeout(jrun, JOB_TIMEOUT)
    _add_watch_options(jrun)
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
    jhealth.add_argument("--fail-on", choices=SEVERITIES + ("never",), type=str.lower,
                         default="severe", metavar="LEVEL",
                         help="exit 1 when there is a finding at LEVEL or worse ({}; default "
                              "%(default)s, as `doctor`; never = always exit 0)".format(
                                  "|".join(SEVERITIES)))
    jhealth.add_argument("--max-runtime-hours", type=float, default=6.0, metavar="H",
                         help="a RUNNING job past this is a finding (default %(default)s)")
    jhealth.add_argument("--analytics-max-age-hours", type=float, default=26.0, metavar="H",
                         help="analytics tables older than this are a finding "
                              "(default %(default)s)")
    _add_format(jhealth, choices=("table", "json", "jsonl", "csv"))
    _add_watch_options(jhealth)
    _add_push_values(jhealth)
    jhealth.set_defaults(handler=cmd_jobs_health)

    doctor = command(commands, "doctor",
                     "check URL, TLS, credentials, user, version, authorities, clock, scheduler")
    doctor.add_argument("--need", action="append", default=[], metavar="FEATURE",
                        help="a missing authority for FEATURE fails (else warns): " +
                             ", ".join(_feature_names()))
    doctor_dv = doctor.add_argument_group(
        "data values inside DHIS2 (checked anyway once `datavalues setup` made them)")
    _add_datavalues_target(doctor_dv, prefix_default=None)
    _add_format(doctor, choices=("table", "json"))
    _add_watch_options(doctor)
    doctor.set_defaults(handler=cmd_doctor)
    mets = command(commands, "metrics", "Prometheus gauges of every server in a history "
                                        "(no DHIS2 contacted)")
    _add_history(mets)
    mets.add_argument("--output", "-o", metavar="PATH",
                      help="write to PATH atomically (node_exporter's textfile collector) "
                           "instead of stdout")
    mets.set_defaults(handler=cmd_metrics)
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

    _add_datavalues_commands(commands, command)  # #25

    demo = command(commands, "demo", "start the built-in DHIS2 stand-in and run the nightly "
                                     "job against it (no DHIS2 needed)",
                   parents=[output_options()])  # no connection options: it makes its own
    demo.add_argument("--dhis2-version", default="2.42", metavar="V",
                      help="stand-in DHIS2 version (default %(default)s)")
    demo.add_argument("--job-seconds", type=float, default=2.0, metavar="S",
                      help="how long each simulated job runs (default %(default)s)")
    demo.set_defaults(handler=cmd_demo)

    mcp = command(commands, "mcp", "serve these maintenance tools to an AI assistant over MCP "
                                   "(stdio; needs pip install \"dhis2maint[mcp]\", Python 3.10+)")
    _add_history(mcp)  # what its read-only history tools read (#20.7)
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
    _add_wait_flags(parser)
    _add_timeout(parser, default)
    _add_poll_options(parser)


def _add_wait_flags(parser: argparse.ArgumentParser) -> None:
    """``--wait`` (the default) / ``--no-wait``: the same two flags on every command
    that starts a job (#21.5)."""
    flags = parser.add_mutually_exclusive_group()
    flags.add_argument("--wait", dest="wait", action="store_true", default=True,
                       help="follow the job until it ends (the default)")
    flags.add_argument("--no-wait", dest="wait", action="store_false",
                       help="print the job type and id and exit 0 at once (follow it later "
                            "with `dhis2maint task wait TYPE ID`)")


def _started(job: "Job") -> int:
    """--no-wait: the job's type and id on stdout, exit 0."""
    print("{} {}".format(job.job_type, job.id))
    return EXIT_OK


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
            from .progress import write_notification_line

            write_notification_line(notification, time.monotonic() - self.started, self.stream)
            self.stream.flush()

    def say(self, text: str) -> None:
        if self.enabled:
            self.stream.write(text + "\n")
            self.stream.flush()


def _check_output_folder(args: argparse.Namespace) -> None:
    """``--output FILE`` can be written (its folder exists and takes a new file), or
    a UsageError naming it and why -- before a run, not after it."""
    path = getattr(args, "output", None)
    if not path or path == "-":
        return
    from .files import probe_folder
    from .history import _os_cause

    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    if os.path.isdir(target):
        raise UsageError("--output {} is a folder; give a file name".format(path))
    if not os.path.isdir(folder):
        raise UsageError("--output {}: the folder {} does not exist".format(path, folder))
    try:
        probe_folder(folder)
    except OSError as exc:
        raise UsageError("--output {} cannot be written: {}".format(
            path, _os_cause(exc, folder))) from None


@contextlib.contextmanager
def _output(args: argparse.Namespace) -> Iterator[IO[Any]]:
    """stdout, or ``--output FILE`` written atomically -- then ``dhis2maint: wrote
    FILE`` on stderr (not with --quiet), so a cron log says where the report went."""
    from .files import atomic_output

    path = getattr(args, "output", None)
    with atomic_output(path) as out:
        yield out
    if path and path != "-" and not vars(args).get("quiet"):
        sys.stderr.write("dhis2maint: wrote {}\n".format(path))
        sys.stderr.flush()


def _severity_at_least(severity: object, level: str) -> bool:
    from .models import severity_rank

    return severity_rank(str(severity or "WARNING")) >= severity_rank(level)


def _threshold_reached(report: "DataIntegrityReport", level: Optional[str]) -> bool:
    if not level:
        return False
    return bool(report.at_least(level))


# --- verdicts (#21.1): every exit 1 says why in one line on stderr, even under cron ----

_VERDICT_SAID = []  # type: List[str]


def _verdict(text: str) -> int:
    """``dhis2maint: TEXT`` on stderr (even with --quiet: it is the outcome), exit 1."""
    _VERDICT_SAID.append(text)
    try:
        sys.stderr.write("dhis2maint: {}\n".format(" ".join(text.split())))
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - a closed stderr must not change the exit code
        pass
    return EXIT_THRESHOLD


def _by_name(counts: Sequence[Tuple[str, int]], limit: int = 5) -> str:
    """``a 2, b 1`` (the biggest first, at most ``limit``, then ``… N more``)."""
    ordered = sorted(counts, key=lambda item: (-item[1], item[0]))
    text = ", ".join("{} {:,}".format(name, count) for name, count in ordered[:limit])
    if len(ordered) > limit:
        text += " and {} more".format(len(ordered) - limit)
    return text


def _threshold_verdict(report: "DataIntegrityReport", level: Optional[str]) -> int:
    """EXIT_THRESHOLD with its line when ``--fail-on LEVEL`` is reached, else EXIT_OK."""
    if not level:
        return EXIT_OK
    hit = report.at_least(level)
    if not hit:
        return EXIT_OK
    counts = [(r.name, r.count if r.count is not None and r.count >= 0 else len(r.issues or ()))
              for r in hit]
    total = sum(count for _, count in counts)
    return _verdict("{:,} issue{} at {} or worse in {} check{} (--fail-on {}): {}".format(
        total, "" if total == 1 else "s", level.upper(), len(hit), "" if len(hit) == 1 else "s",
        level, _by_name(counts)))


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
    if not args.wait:
        return _integrity_started(args)
    history = _open_history(args)
    new_verdict = None
    try:
        with connect(args) as session:
            _watch_note(args, session=session, integrity_started=time.time())
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
                recorded, not_recorded = _write_streamed(args, report, rows, sink, history,
                                                         session)
            else:
                report = session.run_integrity_checks(
                    checks, details=args.details, timeout=args.timeout,
                    on_notification=progress, include_slow=include_slow, **poll)
                recorded, not_recorded = _record_and_write(args, report, history, session)
            # --fail-on-new needs --history (checked above), so there is a recorded run
            if args.fail_on_new and recorded is not None and history is not None:
                new_verdict = _new_issues_verdict(recorded, history, args.fail_on_new)
    finally:
        if history is not None:
            history.close()
    _watch_note(args, report=report, recorded=recorded)
    if not_recorded is not None:
        return _not_recorded(args, not_recorded)
    _say_recorded(progress, recorded)
    if new_verdict:
        return _verdict(new_verdict)
    return _threshold_verdict(report, args.fail_on)


def _integrity_started(args: argparse.Namespace) -> int:
    """``integrity run --no-wait``: start the job, print its type and id."""
    given = [flag for flag, value in (("--fail-on", args.fail_on),
                                      ("--fail-on-new", args.fail_on_new),
                                      ("--output", args.output),
                                      ("--push-values", args.push_values)) if value]
    if given:
        raise UsageError("--no-wait prints the job id and does not wait for the report: "
                         "{} needs --wait".format(", ".join(given)))
    with connect(args) as session:
        checks = _integrity_selection(args, session)
        if checks is None and args.include_slow:
            checks = session.list_integrity_checks()
        return _started(session.start_integrity_run(checks, details=args.details))


def _new_issues_verdict(recorded: "RecordedRun", history: "History", level: str
                        ) -> Optional[str]:
    """The verdict line of --fail-on-new LEVEL, or None when nothing new is that bad:
    ``3 new issues at SEVERE or worse since run 4 (2026-12-05): a 2, b 1``."""
    from .models import severity_rank

    new = recorded.new_at_least(level)
    if not new:
        return None
    floor = severity_rank(level)
    counts = [(name, n) for name, n in recorded.new_by_check.items()
              if n > 0 and severity_rank(recorded.severities.get(name) or "WARNING") >= floor]
    since = "(the first recorded run of this server)"
    if recorded.previous_run_id is not None:
        when = [r.run_at for r in history.runs(recorded.run.base_url)
                if r.id == recorded.previous_run_id]
        since = "since run {}{}".format(recorded.previous_run_id, " ({})".format(
            when[0].strftime("%Y-%m-%d")) if when else "")
    return "{:,} new issue{} at {} or worse {}: {}".format(
        new, "" if new == 1 else "s", level.upper(), since, _by_name(counts))


def cmd_integrity_report(args: argparse.Namespace) -> int:
    history = _open_history(args)
    try:
        with connect(args) as session:
            _watch_note(args, session=session, integrity_started=time.time())
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
                recorded, not_recorded = _write_streamed(args, report, rows, sink,
                                                         history, session)
            else:
                report = session.get_integrity_report(checks=selected, details=args.details)
                recorded, not_recorded = _record_and_write(args, report, history,
                                                          session)
            _watch_note(args, report=report, recorded=recorded)
            missing = session.missing_integrity_results(report, selected) if selected else []
    finally:
        if history is not None:
            history.close()
    if not_recorded is not None:
        return _not_recorded(args, not_recorded)
    if missing:
        _note(args, "no cached result for {} of the {} selected checks: {} (never run, or run "
                    "more than about an hour ago; run them with `dhis2maint integrity run`)"
              .format(len(missing), len(selected or []), ", ".join(missing)))
    elif not len(report):
        _note(args, "DHIS2 has no cached data-integrity results (they expire about an hour "
                    "after a run); run `dhis2maint integrity run` first")
    return _threshold_verdict(report, args.fail_on)


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
    from .history import History, check_writable

    check_writable(path)  # before anything is sent: a finished run must not be lost (#21.2)
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


class _NotRecorded(Exception):
    """A finished run could not be recorded in the history (its report was written)."""


def _record(history: "History", report: "DataIntegrityReport", session: "Session",
            rows: Optional[Iterable["IntegrityIssueRow"]] = None) -> "RecordedRun":
    """history.record, with any failure a _NotRecorded saying why (the caller still
    writes the report, then exits non-zero)."""
    import sqlite3

    from .errors import HistoryError

    try:
        return history.record(report, session, rows=rows)
    except (HistoryError, sqlite3.Error, OSError) as exc:
        raise _NotRecorded(" ".join(str(exc).split())) from None


def _not_recorded(args: argparse.Namespace, why: str) -> int:
    """The stderr line of a run the history did not get; exit 2."""
    where = args.output if getattr(args, "output", None) not in (None, "-") else "stdout"
    sys.stderr.write("dhis2maint: error: the run was NOT recorded in the history ({}); its "
                     "report was written to {}\n".format(why, where))
    sys.stderr.flush()
    return EXIT_USAGE


def _record_and_write(args: argparse.Namespace, report: "DataIntegrityReport",
                      history: Optional["History"], session: "Session"
                      ) -> Tuple[Optional["RecordedRun"], Optional[str]]:
    """Record ``report`` (when a history is given), then write it (html: with history)
    -> (the recorded run, None), or (None, why not) when recording failed: the
    report is written all the same."""
    from .report import write_report

    failure = None
    recorded = None
    if history is not None:
        try:
            recorded = _record(history, report, session)
        except _NotRecorded as exc:
            failure = exc
    with _output(args) as out:
        write_report(report, args.format, out, history=history if failure is None else None)
    return recorded, None if failure is None else str(failure)


def _write_streamed(args: argparse.Namespace, report: "DataIntegrityReport",
                    rows: Iterable["IntegrityIssueRow"], sink: List["ReportStream"],
                    history: Optional["History"], session: "Session"
                    ) -> Tuple[Optional["RecordedRun"], Optional[str]]:
    """Write (and record) a details run while it is read: constant memory.  Returns
    as _record_and_write; a failed record still writes every row."""
    from .report import ReportStream

    recorded = None
    with _output(args) as out:
        writer = ReportStream(args.format, out, report)
        sink.append(writer)

        def written(source: Iterable["IntegrityIssueRow"]) -> Iterator["IntegrityIssueRow"]:
            for row in source:
                writer.row(row)
                yield row

        stream = written(rows)
        failure = None
        if history is not None:
            try:
                recorded = _record(history, report, session, rows=stream)
            except _NotRecorded as exc:
                failure = exc
        for _ in stream:  # what recording left unread (all of it without a history)
            pass
        writer.close()
    return recorded, None if failure is None else str(failure)


def _say_recorded(progress: _Progress, recorded: Optional["RecordedRun"]) -> None:
    if recorded is None:
        return
    run = recorded.run
    progress.say("Recorded run {} in the history: {:,} issues, {:,} new, {:,} resolved since "
                 "{}".format(run.id, run.issues, recorded.new_issues, recorded.resolved_issues,
                             "run {}".format(recorded.previous_run_id)
                             if recorded.previous_run_id else "(first run of this server)"))


def cmd_integrity_history(args: argparse.Namespace) -> int:
    return _history_listing(args, "runs", lambda history: history.runs(args.server))


def cmd_integrity_trend(args: argparse.Namespace) -> int:
    def trend(history: "History") -> List[Any]:
        check = _recorded_check(history, args.check, args) if args.check else None
        return history.trend(check, since=args.since, server=args.server)

    return _history_listing(args, "trend", trend)


def cmd_integrity_open(args: argparse.Namespace) -> int:
    def open_issues(history: "History") -> List[Any]:
        check = _recorded_check(history, args.check, args) if args.check else None
        return history.open_issues(min_age=args.older_than, severity=args.severity,
                                   server=args.server, check=check)

    return _history_listing(args, "open", open_issues)


def _history_listing(args: argparse.Namespace, kind: str,
                     read: Callable[["History"], Sequence[Any]]) -> int:
    """``integrity history|trend|open``: what ``read`` takes from the history file,
    written as ``kind``."""
    from .report import write_history

    with _existing_history(args) as history:
        records = read(history)
    with _output(args) as out:
        write_history(records, kind, args.format, out)
    return EXIT_OK


def _recorded_check(history: "History", token: str, args: argparse.Namespace) -> str:
    """The check ``token`` names -- a name (any case, ``-`` for ``_``) or a code, as
    ``integrity run`` takes them -- among the checks the history recorded; a
    UsageError with suggestions when it names none (never an empty "0 runs")."""
    import difflib

    from .versions import check_code

    if history.trend(token, server=args.server):
        return token
    servers = [args.server] if args.server else history.servers()
    known = sorted({name for server in servers
                    for name in history.check_trends(server, limit=500)})
    wanted = token.lower().replace("-", "_")
    matches = [n for n in known if n == wanted] or [n for n in known if check_code(n) == token]
    if len(matches) == 1 and history.trend(matches[0], server=args.server):
        return matches[0]
    close = difflib.get_close_matches(wanted, known, n=3)
    raise UsageError("no check {!r} in the history {}{}{}; {} checks recorded (`integrity "
                     "trend` without CHECK shows the total per run)".format(
                         token, args.history, " for " + args.server if args.server else "",
                         " -- did you mean {}?".format(", ".join(close)) if close else "",
                         len(known)))


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
    if not new and not worse:
        return EXIT_OK
    counts: Dict[str, int] = {}
    for change in new:
        counts[change.check_name] = counts.get(change.check_name, 0) + 1
    for rose in worse:  # a check with more issues (or new in NEW) counts its rise
        if rose.check_name not in counts:
            counts[rose.check_name] = (rose.new or 0) - max(rose.old or 0, 0)
    total = sum(counts.values())
    return _verdict("{:,} new issue{} at {} or worse in {} check{} ({} -> {}): {}".format(
        total, "" if total == 1 else "s", level.upper(), len(counts),
        "" if len(counts) == 1 else "s", args.old, args.new, _by_name(list(counts.items()))))


def _follow(job: "Job", args: argparse.Namespace, progress: _Progress) -> int:
    if not args.wait:
        return _started(job)
    progress.say("Started {} job {}".format(job.job_type, job.id))
    _watch_note(args, job_type=str(job.job_type), job_id=job.id, job_started=time.time())
    final = job.wait(timeout=args.timeout, on_notification=progress, **_poll_kwargs(args))
    _watch_note(args, job_finished=time.time())
    print("{} {} completed: {}".format(job.job_type, job.id, final.message or "done"))
    return EXIT_OK


def cmd_refresh(args: argparse.Namespace) -> int:
    progress = _Progress(args)
    with connect(args) as session:
        _watch_note(args, session=session)
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
    if violations and args.fail_on_violations:
        return _verdict("{:,} validation rule violation{} (--fail-on-violations)".format(
            len(violations), "" if len(violations) == 1 else "s"))
    return EXIT_OK


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
    if any(k in opts for k in ("url", "auth_file", "fleet_server")) or \
            os.environ.get("DHIS2_URL"):
        with connect(args) as session:
            _watch_note(args, session=session)  # a fleet row shows the version
            print("DHIS2 {} at {}".format(session.server_version_text, session.base_url))
    return EXIT_OK


def cmd_mcp(args: argparse.Namespace) -> int:
    """Serve the MCP tools over stdio (dhis2maint/mcp.py); exit 2 without the SDK."""
    if sys.version_info < (3, 10):
        raise UsageError("`dhis2maint mcp` needs Python 3.10 or newer (the MCP SDK does); this "
                         "is Python {}.{}: run it with a newer interpreter".format(
                             *sys.version_info[:2]))
    from .mcp import serve

    return serve(lambda: connect(args, prompt=False), debug=bool(vars(args).get("debug")),
                 history=args.history)


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the stand-in, run the integrity checks and analytics against it, stop it."""
    from .report import write_report
    from .session import Session
    from .testing import Dhis2StandIn

    import tempfile

    from .history import History

    given = sorted(_CONNECTION_OPTIONS & set(vars(args)))
    if given:  # `dhis2maint --url X demo`: the demo would silently ignore X
        raise UsageError("demo starts its own DHIS2 stand-in and takes no connection options "
                         "(got {}); to use your server, run the other commands with them"
                         .format(", ".join("--" + name.replace("_", "-") for name in given)))
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
            from .report_health import write_health

            health = session.scheduler_health()
            write_health(health, "table", out, words=follow_up_text)
            _demo_metrics(session, history, health, folder, out)
            _demo_datavalues(session, history, out)
    out.write("\nNext: point it at your server (paste these lines, with your URL and token):\n"
              "  export DHIS2_URL=https://dhis2.example.org\n"
              "  export DHIS2_PAT=d2pat_…\n"
              "  dhis2maint doctor\n"
              "  dhis2maint integrity run --details --history integrity.sqlite "
              "--fail-on-new severe\n"
              "Or try the commands by hand on a stand-in that stays up: run\n"
              "  python -m dhis2maint.testing --port 8080\n"
              "and in another terminal:\n"
              "  export DHIS2_URL=http://127.0.0.1:8080\n"
              "  export DHIS2_USERNAME=admin\n"
              "  export DHIS2_PASSWORD=district\n")
    return EXIT_OK


def _demo_metrics(session: "Session", history: "History", health: Any, folder: str,
                  out: IO[str]) -> None:
    """The demo's last step (#22): the history's gauges in a textfile, two lines shown."""
    from . import metrics

    history.record_health(health, session.base_url)
    path = os.path.join(folder, "dhis2maint.prom")
    text = metrics.write_textfile(path, metrics.up_samples(session.base_url, True) +
                                  metrics.history_samples(history))
    out.write("\n$ dhis2maint metrics --history history.sqlite -o dhis2maint.prom  "
              "(Prometheus gauges for node_exporter's textfile collector; "
              "--metrics-file on the nightly commands writes the same)\n")
    shown = [line for line in text.splitlines() if line.startswith((
        "dhis2maint_integrity_new_issues{", "dhis2maint_integrity_last_success_timestamp"))]
    wanted = [line for line in shown if 'severity="SEVERE"' in line or "last_success" in line]
    for line in wanted[:2]:
        out.write("  " + line + "\n")
    out.write("  … {} lines in all\n".format(len(text.splitlines())))


def _demo_datavalues(session: "Session", history: "History", out: IO[str]) -> None:
    """The demo's end (#25): the metadata set up, the three nights pushed as data values."""
    out.write("\n$ dhis2maint datavalues setup && dhis2maint datavalues push --history "
              "history.sqlite  (server health inside DHIS2: a dashboard, no Prometheus)\n")
    report = session.setup_data_values()
    for line in _metadata_lines(report):
        out.write("  " + line + "\n")
    for summary in session.push_history_values(history):
        out.write("  pushed " + _summary_line(summary) + "\n")


#: The connection options (dests) that `demo` refuses.
_CONNECTION_OPTIONS = frozenset(("url", "token", "username", "auth_file", "http_timeout",
                                 "outage_grace", "insecure"))


# --- scheduled jobs, tasks, validation results, doctor (issue #15) --------------------------


_R = TypeVar("_R")


def _write_list(records: Sequence[_R], args: argparse.Namespace,
                writer: Callable[[Sequence[_R], str, IO[str]], None]) -> None:
    with _output(args) as out:
        writer(records, args.format, out)


def cmd_jobs_list(args: argparse.Namespace) -> int:
    from .report_health import write_job_configurations

    with connect(args) as session:
        configs = session.list_job_configurations(job_type=args.job_type, enabled=args.enabled,
                                                  status=args.status)
    if not args.include_run_once:
        configs = [c for c in configs if not c.is_run_once]
    _write_list(configs, args, write_job_configurations)
    return EXIT_OK


def _write_one(record: "AttrsInstance", args: argparse.Namespace) -> None:
    from .convert import unstructure
    from .report_health import write_fields

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
        _watch_note(args, session=session)
        if args.wait and getattr(args, "watch_run", None) is not None:
            _watch_note(args, job_type=str(session.get_job_configuration(args.job_id).job_type),
                        job_id=args.job_id, job_started=time.time())
        job = session.run_job_configuration(args.job_id, wait=args.wait, timeout=args.timeout,
                                            on_change=changed)
        if not args.wait:
            return _started(job)
        _watch_note(args, job_finished=time.time())
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
    if args.cron is not None:
        _check_cron_fields(args.cron)
    with connect(args) as session:
        config = session.create_job_configuration(
            args.name, args.job_type, cron_expression=args.cron, delay=args.delay,
            job_parameters=params, enabled=not args.disabled)
    _write_one(config, args)
    return EXIT_OK


def _unix_cron_to_dhis2(expression: str) -> Optional[str]:
    """A 5-field Unix cron (``0 4 * * *``) as the 6 fields DHIS2 wants, seconds first
    (``0 0 4 ? * *``: ``?`` for the day field left open), or None when it is not 5 fields."""
    fields = expression.split()
    if len(fields) != 5:
        return None
    minute, hour, day, month, weekday = fields
    if day == "*":
        day = "?"
    elif weekday == "*":
        weekday = "?"
    return " ".join(("0", minute, hour, day, month, weekday))


def _check_cron_fields(expression: str) -> None:
    """``--cron`` with 5 fields is a Unix cron: say what DHIS2 wants before sending it."""
    converted = _unix_cron_to_dhis2(expression)
    if converted is not None:
        raise UsageError("--cron {!r} has 5 fields (a Unix cron); DHIS2 wants 6 fields, seconds "
                         "first: --cron {!r}".format(expression, converted))


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
    from .report_health import write_health

    with connect(args) as session:
        _watch_note(args, session=session)
        health = session.scheduler_health(max_runtime_hours=args.max_runtime_hours,
                                          analytics_max_age_hours=args.analytics_max_age_hours)
        _watch_note(args, health=health)
    with _output(args) as out:
        write_health(health, args.format, out, words=follow_up_text)
    found = health.at_least(args.fail_on) if args.fail_on != "never" else []
    if found:
        return _verdict("{} scheduler finding{} at {} or worse: {}".format(
            len(found), "" if len(found) == 1 else "s", args.fail_on.upper(),
            "; ".join(_finding_text(f) for f in found[:5]) +
            ("; and {} more".format(len(found) - 5) if len(found) > 5 else "")))
    return EXIT_OK


def _finding_text(finding: Any) -> str:
    """``failed ANALYTICS_TABLE Nightly analytics (id)``: what a finding is about."""
    about = " ".join(str(part) for part in (finding.job_type, finding.job_name) if part)
    return "{} {}{}".format(finding.kind, about or finding.message,
                            " ({})".format(finding.job_id) if finding.job_id else "").strip()


def cmd_task_types(args: argparse.Namespace) -> int:
    with connect(args) as session:
        types = session.list_task_types()
    return _write_names(args, types, "DHIS2 holds no task notifications")


def cmd_task_list(args: argparse.Namespace) -> int:
    with connect(args) as session:
        ids = session.list_tasks(args.job_type)
    return _write_names(args, ids, "no tasks of type {}".format(args.job_type))


def _write_names(args: argparse.Namespace, names: Sequence[str], none: str) -> int:
    """A list of names: a JSON array, or one a line (``none`` when there are none)."""
    with _output(args) as out:
        if args.format == "json":
            json.dump(list(names), out, indent=2)
            out.write("\n")
        else:
            out.write("\n".join(names or [none]) + "\n")
    return EXIT_OK


def cmd_validation_results(args: argparse.Namespace) -> int:
    with connect(args) as session:
        results = session.list_validation_results(
            validation_rules=args.rule or None, org_units=args.org_unit or None,
            periods=args.period or None, created_date=args.created_since)
    from .report_health import write_validation_results

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
        if job is None:  # 2.36-2.40: started in memory, no job to follow
            print("validation result notifications started (this DHIS2 version gives no job "
                  "to follow)")
            return EXIT_OK
        return _follow(job, args, _Progress(args))


def cmd_doctor(args: argparse.Namespace) -> int:
    from .report_health import write_doctor

    with connect(args) as session:
        _watch_note(args, session=session)
        report = session.doctor(need=args.need, data_values_prefix=args.prefix,
                                data_values_org_unit=args.org_unit)
        _watch_note(args, reachable=not any(c.name == "reachable" and c.status == "fail"
                                            for c in report.checks))
    with _output(args) as out:
        write_doctor(report, args.format, out, words=follow_up_text)
    if report.ok:
        return EXIT_OK
    failed = report.failed
    return _verdict("doctor: {} check{} failed: {}".format(
        len(failed), "" if len(failed) == 1 else "s",
        "; ".join("{} ({})".format(c.name, _clip(c.detail, 200)) for c in failed)))


def _clip(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


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


# --- watch (#22): metrics and alerts after a command -------------------------------------
# One place adds the flags (_add_watch_options), one runs a command with them
# (_run_watched), the commands only note what they have (_watch_note).

NOTIFY_HELP = ("send an alert on changes only: new integrity issues at --notify-on level or "
               "worse since the previous recorded run, a failed or timed-out job, new scheduler "
               "findings, DHIS2 not answering, and once when an alerted condition is gone. "
               "TARGET: webhook:URL (JSON {text, event, server, items}; Slack, Mattermost, "
               "Rocket.Chat), dhis2-user:UID or dhis2-group:UID (DHIS2's own messaging). "
               "Repeatable. WITHOUT --history every run alerts on everything at the level. "
               "A failed notification is a warning and makes exit 0 into exit 3")


def _notify_target(text: str) -> Any:
    from .alerts import parse_target
    from .errors import ConfigurationError

    try:
        return parse_target(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_watch_options(parser: argparse.ArgumentParser) -> None:
    """--metrics-file, --pushgateway, --notify, --notify-on (and --history where the
    command has none) on one command."""
    group = parser.add_argument_group("watch (metrics and alerts)")
    group.add_argument("--metrics-file", metavar="PATH",
                       help="write Prometheus gauges to PATH for node_exporter's textfile "
                            "collector (atomic; a failed run keeps the last success time)")
    group.add_argument("--pushgateway", metavar="URL",
                       help="POST the gauges to this Prometheus Pushgateway, group "
                            "job=dhis2maint,server=<DHIS2 URL>")
    group.add_argument("--notify", action="append", default=[], type=_notify_target,
                       metavar="TARGET", help=NOTIFY_HELP)
    group.add_argument("--notify-on", choices=SEVERITIES, type=str.lower, default="severe",
                       metavar="LEVEL", help="alert at LEVEL or worse ({}; default "
                                             "severe)".format("|".join(SEVERITIES)))
    if "--history" not in parser._option_string_actions:
        _add_history(parser)
    parser.set_defaults(watched=True)


class _WatchRun:
    """What a watched command saw, for the metrics and alerts written after it."""

    def __init__(self) -> None:
        self.session: Optional["Session"] = None
        self.report: Optional["DataIntegrityReport"] = None
        self.recorded: Optional["RecordedRun"] = None
        self.integrity_started: Optional[float] = None
        self.health: Optional[Any] = None
        self.job_type: Optional[str] = None
        self.job_id: Optional[str] = None
        self.job_started: Optional[float] = None
        self.job_finished: Optional[float] = None
        self.reachable: Optional[bool] = None


def _watch_note(args: argparse.Namespace, **seen: Any) -> None:
    """Note what a command has (session=, report=, recorded=, health=, job_type=, ...)."""
    for run in (getattr(args, "watch_run", None), getattr(args, "push_run", None)):
        if run is not None:
            for key, value in seen.items():
                if hasattr(run, key):
                    setattr(run, key, value)


def _run_watched(handler: Callable[[argparse.Namespace], int],
                 args: argparse.Namespace) -> int:
    """Run ``handler``, then write/push the metrics and send the alerts; a failed
    output is a warning on stderr that turns exit 0 into 3.  Nothing here changes
    the work: it runs after it, and the command's own failure still propagates."""
    opts = vars(args)
    # --history alone: the health verdicts and followed jobs are still recorded
    if not (opts.get("metrics_file") or opts.get("pushgateway") or opts.get("notify")
            or opts.get("history")):
        return handler(args)
    run = getattr(args, "watch_run", None) or _WatchRun()  # a fleet run brings its own
    args.watch_run = run
    try:
        code = handler(args)
    except (KeyboardInterrupt, UsageError):
        raise
    except Exception as exc:
        from .errors import ConfigurationError

        if not isinstance(exc, ConfigurationError):
            _warn_all(_watch_outputs(args, run, exc))
        raise
    warnings = _watch_outputs(args, run, None)
    _warn_all(warnings)
    return EXIT_DHIS2 if warnings and code == EXIT_OK else code


def _run_for_fleet(handler: Callable[[argparse.Namespace], int],
                   args: argparse.Namespace) -> int:
    """One fleet server's command (#23), as this command line runs it for one server;
    what it saw stays on ``args.watch_run`` for the fleet's summary row."""
    args.watch_run = _WatchRun()
    return _run_one(handler, args)


def _run_one(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """A command on one server, as every path runs it: the handler, then its data values
    pushed (#25), inside the watch outputs (#22) when any is asked for."""
    run = handler
    if getattr(args, "push_values", False):  # data values after the run (#25)
        run = functools.partial(_run_pushing, handler)
    if getattr(args, "watched", False):  # watch (#22)
        return _run_watched(run, args)
    return run(args)


def _warn_all(warnings: Sequence[str]) -> None:
    for text in warnings:
        sys.stderr.write("dhis2maint: warning: {}\n".format(text))
    sys.stderr.flush()


def _down_reason(exc: Optional[BaseException]) -> Optional[str]:
    """Why DHIS2 did not answer (no connection, or a 5xx), or None when it did."""
    from .errors import ServerError, TransportError

    if isinstance(exc, TransportError):
        return "no answer ({})".format(type(exc.__cause__ or exc).__name__)
    if isinstance(exc, ServerError):
        return "HTTP {}".format(getattr(exc, "status_code", "5xx"))
    return None


def _watch_outputs(args: argparse.Namespace, run: _WatchRun,
                   exc: Optional[BaseException]) -> List[str]:
    """The metrics and alerts of one command run -> warnings (never raises)."""
    try:
        return _watch_outputs_unsafe(args, run, exc)
    except Exception as problem:  # noqa: BLE001 - outputs never change the outcome
        return ["metrics/alerts not written: {}".format(" ".join(str(problem).split())[:300])]
    finally:  # the requests made here (version, analytics time) leave no open connection
        if run.session is not None:
            run.session.close()


def _watch_outputs_unsafe(args: argparse.Namespace, run: _WatchRun,
                          exc: Optional[BaseException]) -> List[str]:
    from . import alerts, metrics
    from .errors import JobFailedError, TaskTimeoutError

    session = run.session
    if session is None:
        try:
            session = run.session = connect(args, prompt=False)
        except Exception:  # noqa: BLE001 - no server known: nothing to say about it
            outputs = (getattr(args, "metrics_file", None), getattr(args, "pushgateway", None),
                       getattr(args, "notify", None))
            return ["metrics/alerts not written: no DHIS2 URL known"] if any(outputs) else []
    server = metrics.server_label(session.base_url)
    down = _down_reason(exc)
    if run.reachable is False and down is None:
        down = "unreachable"
    up = down is None
    version = None
    if up:
        try:
            version = session.server_version_text
        except Exception:  # noqa: BLE001
            version = None
    samples = metrics.up_samples(server, up, version)
    history = _open_history(args) if getattr(args, "history", None) else None
    scope: List[str] = ["down"]
    conditions: List["alerts.Condition"] = []
    _, cond = alerts.down_condition(down)
    conditions.extend([cond] if cond else [])
    recorded_health = None
    try:
        if run.report is not None:
            duration = None if run.integrity_started is None else \
                time.time() - run.integrity_started
            samples += metrics.integrity_samples(run.report, server, duration=duration)
            samples += metrics.new_issue_samples(server, run.recorded)
            keys, found = alerts.integrity_conditions(run.report, run.recorded)
            scope += keys
            conditions += found
        elif run.integrity_started is not None:  # the run did not finish
            samples.append(metrics.Sample("dhis2maint_integrity_last_run_timestamp_seconds",
                                          (("server", server),), time.time()))
        if run.health is not None:
            if history is not None:
                recorded_health = history.record_health(run.health, server)
            samples += metrics.health_samples(run.health, server)
            scope.append("scheduler:")
            conditions += alerts.health_conditions(run.health, recorded_health)
        if run.job_type is not None and run.job_started is not None:
            failure = None
            if isinstance(exc, (JobFailedError, TaskTimeoutError)):
                failure = " ".join(str(exc).split())
            finished = run.job_finished or time.time()
            samples += metrics.job_samples(server, run.job_type, finished - run.job_started,
                                           failure is None and exc is None,
                                           _utc_at(float(int(finished))))  # as the history
            key, cond = alerts.job_condition(run.job_type, failure)
            if failure is not None or exc is None:
                scope.append(key)
                conditions.extend([cond] if cond else [])
            if history is not None and (failure is not None or exc is None):
                history.record_job(server, run.job_type, run.job_id,
                                   _utc_at(run.job_started), _utc_at(finished),
                                   failure is None, failure)
        if history is not None:
            samples = metrics.merge_last_success(samples, _history_success(history, server))
        wanted = getattr(args, "metrics_file", None) or getattr(args, "pushgateway", None)
        if up and wanted:
            samples += _analytics_samples(session, server)
        warnings: List[str] = []
        sink = getattr(args, "metrics_sink", None)  # a fleet run writes one file for all
        if sink is not None:
            sink.extend(samples)
        elif getattr(args, "metrics_file", None):
            try:
                metrics.write_textfile(args.metrics_file, samples)
            except OSError as problem:
                warnings.append("metrics file {} not written: {}".format(
                    args.metrics_file, problem.strerror or problem))
        if getattr(args, "pushgateway", None):
            try:
                metrics.push(args.pushgateway, samples)
            except metrics.PushError as problem:
                warnings.append("push to the Pushgateway failed: {}".format(problem))
        targets = getattr(args, "notify", None) or []
        if targets:
            state = history.alert_state(server) if history is not None else None
            alert, raised, cleared = alerts.decide(server, scope, conditions, args.notify_on,
                                                   state)
            if alert is not None:
                failed = alerts.notify(alert, targets, session if up else None)
                warnings += failed
                # remembered once any target has it: the others' failures are warnings
                deliveries = sum(t.kind == "webhook" for t in targets) + int(
                    any(t.kind != "webhook" for t in targets))
                if history is not None and len(failed) < deliveries:
                    history.update_alert_state(server, raised, cleared)
        return warnings
    finally:
        if history is not None:
            history.close()


def _utc_at(stamp: float) -> "datetime.datetime":
    import datetime

    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc)


def _history_success(history: "History", server: str) -> List[Any]:
    """The last-success gauges the history knows for ``server`` (integrity, jobs)."""
    from . import metrics

    out = []
    runs = history.runs(server)
    if runs:
        out.append(metrics.Sample("dhis2maint_integrity_last_success_timestamp_seconds",
                                  (("server", server),), runs[-1].finished_at.timestamp()))
    for job_type, (_, _, ok_at) in history.job_summary(server).items():
        if ok_at is not None:
            out += metrics.job_samples(server, job_type, None, True, finished_at=ok_at)
    return out


def _analytics_samples(session: "Session", server: str) -> List[Any]:
    """dhis2maint_analytics_last_generated_timestamp_seconds from GET /api/system/info
    (10 s, 256 KiB at most); none when it cannot be read."""
    from . import metrics

    started = time.monotonic()
    try:
        with session.get(session.api_url("system/info"), timeout=(5.0, 10.0), stream=True,
                         allow_redirects=False) as response:
            if response.status_code != 200:
                return []
            data = b""
            for chunk in response.iter_content(65536):
                data += chunk
                if len(data) > 262144 or time.monotonic() - started > 10.0:
                    return []
        info = json.loads(data.decode("utf-8"))
    except Exception:  # noqa: BLE001 - a gauge less, never a failure
        return []
    return metrics.analytics_samples(server, info) if isinstance(info, dict) else []


def cmd_metrics(args: argparse.Namespace) -> int:
    """The gauges of every server in a history, without contacting DHIS2."""
    from .metrics import history_samples, render, write_textfile

    with _existing_history(args) as history:
        samples = history_samples(history)
    if args.output and args.output != "-":
        write_textfile(args.output, samples, keep_last_success=False)
    else:
        sys.stdout.write(render(samples))
    return EXIT_OK


# --- server health inside DHIS2 (#25): `datavalues setup|push`, --push-values ---------------
# The library (dhis2maint.datavalues) builds the metadata and the values and reads DHIS2's
# import summaries; these lines only say what it did.  push_result_values(session, result,
# args) is the one push a finished run makes: the fleet calls it per server.

DATAVALUES_PREFIX = "DM_"
#: Most conflicts named one per line on stderr (the count says how many more).
CONFLICT_LINES = 50


def _uid_option(text: str) -> str:
    import re

    if not re.match(r"^[A-Za-z][A-Za-z0-9]{10}\Z", text):
        raise argparse.ArgumentTypeError(
            "{!r} is no DHIS2 UID (11 letters and digits, a letter first)".format(text))
    return text


def _prefix_option(text: str) -> str:
    """The library's rule for a code prefix, checked before anything is sent."""
    from .datavalues import object_codes

    try:
        object_codes(text)  # the codes of a prefix: the library checks the prefix first
        return text
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_datavalues_target(parser: Any, prefix_default: Optional[str] = DATAVALUES_PREFIX
                           ) -> None:
    """--org-unit and --prefix: where the values go and the codes they carry."""
    parser.add_argument("--org-unit", type=_uid_option, metavar="UID",
                        help="the organisation unit of the data set and the values (default: "
                             "the data set's, else the root of the hierarchy)")
    parser.add_argument("--prefix", type=_prefix_option, default=prefix_default,
                        metavar="PREFIX",
                        help="code prefix of the metadata (default {}; MI_ = "
                             "tool-dq-workbench's)".format(prefix_default or DATAVALUES_PREFIX))


def _add_push_values(parser: argparse.ArgumentParser) -> None:
    """--push-values (with --org-unit/--prefix) on a command whose result becomes data values."""
    group = parser.add_argument_group("data values inside DHIS2 (`datavalues setup` first)")
    group.add_argument("--push-values", action="store_true",
                       help="after the run (and its history record), send its counts to DHIS2 "
                            "as today's data values (POST /api/dataValueSets); a failed push "
                            "says so on stderr and makes exit 0 into 3")
    _add_datavalues_target(group)


def _add_datavalues_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
                             command: Callable[..., argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("datavalues", help="server health inside DHIS2: integrity and "
                                                    "scheduler counts as data values")
    parser.set_defaults(group_parser=parser)
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    setup = command(sub, "setup", "create or update the data elements, data set and dashboard "
                                  "the values need (one atomic metadata import)")
    _add_datavalues_target(setup)
    setup.add_argument("--dry-run", action="store_true",
                       help="send the import with importMode=VALIDATE: say what would "
                            "change, change nothing")
    setup.set_defaults(handler=cmd_datavalues_setup)
    push = command(sub, "push", "send the recorded runs of a history as data values (one "
                                "POST per run)")
    _add_history(push)
    push.add_argument("--since", metavar="YYYY-MM-DD", help="runs from this date on")
    _add_datavalues_target(push)
    push.add_argument("--dry-run", action="store_true",
                      help="send each import with dryRun=true: nothing is stored")
    push.set_defaults(handler=cmd_datavalues_push)


def _counts_text(count: Any) -> str:
    """``12 imported, 3 updated, 40 ignored`` (and deleted when any) of an ImportCount."""
    parts = ["{:,} imported".format(count.imported), "{:,} updated".format(count.updated),
             "{:,} ignored".format(count.ignored)]
    if count.deleted:
        parts.append("{:,} deleted".format(count.deleted))
    return ", ".join(parts)


def cmd_datavalues_setup(args: argparse.Namespace) -> int:
    with connect(args) as session:
        try:
            report = session.setup_data_values(org_unit=args.org_unit, prefix=args.prefix,
                                               dry_run=args.dry_run)
        except Exception as exc:
            _say_conflicts(exc)
            raise
        url = session.base_url
    out = sys.stdout
    out.write("Server-health metadata on {} (prefix {}, org unit {}){}:\n".format(
        url, report.prefix, report.org_unit or "-",
        " -- a dry run, nothing was changed" if args.dry_run else ""))
    for line in _metadata_lines(report):
        out.write("  " + line + "\n")
    out.write("{:,} object{} {} created, {:,} updated, {:,} unchanged or ignored\n".format(
        report.count.imported, "" if report.count.imported == 1 else "s",
        "would be" if args.dry_run else "were", report.count.updated, report.count.ignored))
    return EXIT_OK


def _metadata_lines(report: Any) -> List[str]:
    """One line per object type: ``DataElement  3 created, 40 updated, 0 ignored``."""
    types = list(report.types.values())
    width = max([len(t.object_type) for t in types] or [0])
    return ["{:<{}}  {:,} created, {:,} updated, {:,} ignored{}".format(
        t.object_type, width, t.count.imported, t.count.updated, t.count.ignored,
        ", {:,} deleted".format(t.count.deleted) if t.count.deleted else "") for t in types]


def _summary_line(summary: Any) -> str:
    """``20261205: 47 values: 40 imported, 7 updated, 0 ignored (dry run)``."""
    return "{}: {:,} values: {}{}".format(summary.period or "-", summary.sent,
                                          _counts_text(summary.import_count),
                                          " (dry run)" if summary.dry_run else "")


def cmd_datavalues_push(args: argparse.Namespace) -> int:
    """Backfill: one POST /api/dataValueSets per recorded run of this server."""
    if args.since:
        _since_date(args.since)  # before anything is sent
    with _existing_history(args) as history, connect(args) as session:
        try:
            summaries = session.push_history_values(history, since=args.since,
                                                    org_unit=args.org_unit,
                                                    prefix=args.prefix, dry_run=args.dry_run)
        except Exception as exc:
            for summary in getattr(exc, "pushed", None) or ():
                sys.stdout.write(_summary_line(summary) + "\n")
            _say_conflicts(exc)
            raise
        url = session.base_url
    for summary in summaries:
        sys.stdout.write(_summary_line(summary) + "\n")
    if not summaries:
        _note(args, "no recorded run of {}{} in {}: nothing was pushed".format(
            url, " since {}".format(args.since) if args.since else "", args.history))
    return EXIT_OK


def _since_date(text: str) -> "datetime.date":
    import datetime

    try:
        return datetime.datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise UsageError("--since {!r}: expected a date YYYY-MM-DD".format(text)) from None


def _say_conflicts(exc: BaseException) -> None:
    """Each conflict of an import DHIS2 refused, one line on stderr, when there are more
    than the error line that follows names (the library's message names five)."""
    conflicts = list(getattr(exc, "conflicts", None) or ())
    if len(conflicts) <= 5:
        return
    for conflict in conflicts[:CONFLICT_LINES]:
        sys.stderr.write("dhis2maint: conflict: {}\n".format(" ".join(str(conflict).split())))
    if len(conflicts) > CONFLICT_LINES:
        sys.stderr.write("dhis2maint: … and {:,} more conflicts\n".format(
            len(conflicts) - CONFLICT_LINES))


def push_result_values(session: "Session", result: Any, args: argparse.Namespace) -> int:
    """Send a finished run's ``result`` (a DataIntegrityReport or a SchedulerHealth) as
    the day's data values on ``session``'s server (--org-unit, --prefix of ``args``): a
    line with the import counts on stderr -> EXIT_OK; a failure says the values were
    NOT pushed and why -> its exit code (3: conflicts, DHIS2 or the network; 2: bad
    settings).  Never raises for an expected failure: the run it follows stands.  The
    fleet calls this once per server."""
    from .models import DataIntegrityReport
    from .options import error_text, exit_code, report_failure

    if isinstance(result, DataIntegrityReport) and not result.results:
        _note(args, "no integrity results: no data values were pushed")
        return EXIT_OK
    try:
        summary = session.push_data_values(
            result, org_unit=getattr(args, "org_unit", None),
            prefix=getattr(args, "prefix", None) or DATAVALUES_PREFIX)
    except Exception as exc:  # noqa: BLE001 - the run stands; the push's failure is a line
        code = exit_code(exc)
        if code is None:
            return report_failure(exc, bool(vars(args).get("debug")))
        _say_conflicts(exc)
        sys.stderr.write("dhis2maint: error: the values were NOT pushed to {}: {}\n".format(
            session.base_url, error_text(exc)))
        sys.stderr.flush()
        return code
    if not vars(args).get("quiet"):
        sys.stderr.write("dhis2maint: pushed data values to {}: {}\n".format(
            session.base_url, _summary_line(summary)))
        sys.stderr.flush()
    return EXIT_OK


class _PushRun:
    """What a --push-values command finished with (noted like the watch's run)."""

    def __init__(self) -> None:
        self.report: Optional["DataIntegrityReport"] = None
        self.health: Optional[Any] = None


def _run_pushing(handler: Callable[[argparse.Namespace], int],
                 args: argparse.Namespace) -> int:
    """Run ``handler``, then push its result: after it finished and recorded its run.  The
    run's own exit code stands; a failed push turns exit 0 into the push's code."""
    run = _PushRun()
    args.push_run = run
    code = handler(args)
    result = run.report if run.report is not None else run.health
    if result is None:
        return code
    with connect(args, prompt=False) as session:
        pushed = push_result_values(session, result, args)
    return pushed if code == EXIT_OK else code


# --- entry point --------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version and not getattr(args, "handler", None):
        return run_command(lambda: cmd_version(args), args)
    handler: Optional[Callable[[argparse.Namespace], int]] = getattr(args, "handler", None)
    if handler is None and getattr(args, "command", None) is None:  # `dhis2maint` alone
        sys.stderr.write(SHORT_USAGE)
        return EXIT_USAGE
    if handler is None:  # `dhis2maint integrity` alone
        getattr(args, "group_parser", parser).print_help(sys.stderr)
        return EXIT_USAGE
    del _VERDICT_SAID[:]
    if "fleet" in vars(args):  # fleet (#23): the command on every server of a fleet file
        from .cli_fleet import CliParts, run_fleet

        parts = CliParts(_run_for_fleet, _open_history, _check_output_folder, _output)
        fleet_handler = handler
        code = run_command(lambda: run_fleet(args, fleet_handler, parts), args)
        if code == EXIT_THRESHOLD and not _VERDICT_SAID:
            _verdict("exit 1: a --fail-on threshold was reached (see the output)")
        return code

    def checked_then_run() -> int:
        _check_output_folder(args)  # before anything is sent (#21.2)
        return _run_one(handler, args)

    code = run_command(checked_then_run, args)
    if code == EXIT_THRESHOLD and not _VERDICT_SAID:  # a verdict is never silent (#21.1)
        _verdict("exit 1: a --fail-on threshold was reached (see the output)")
    return code


