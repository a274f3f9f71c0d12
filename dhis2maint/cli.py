"""The ``dhis2maint`` command (also ``python -m dhis2maint``) for cron, Airflow and admins.

Exit codes:
  0  success
  1  --fail-on threshold reached, or new issues in ``integrity diff``
  2  usage or configuration error (bad arguments, missing DHIS2_URL, auth file too open)
  3  DHIS2 or connection error (auth, permission, not found, server error, invalid response)
  4  a job failed or timed out
Machine output goes to stdout only; progress and errors go to stderr.
"""
import argparse
import getpass
import json
import os
import stat
import sys
import time

from . import __version__
from .errors import (ConfigurationError, Dhis2Error, JobFailedError, TaskTimeoutError)
from .jobs import ANALYTICS_FLAGS

EXIT_OK, EXIT_THRESHOLD, EXIT_USAGE, EXIT_DHIS2, EXIT_JOB = 0, 1, 2, 3, 4
SEVERITIES = ("info", "warning", "severe", "critical")
FORMATS = ("table", "json", "jsonl", "csv", "html")

EXIT_CODES_HELP = """exit codes:
  0  success
  1  --fail-on threshold reached, or new issues found by `integrity diff`
  2  usage or configuration error
  3  DHIS2 or connection error (authentication, permission, not found, server, invalid response)
  4  job failed or timed out

connection: --url/--token/--username, or --auth-file, or the environment
(DHIS2_URL, DHIS2_PAT or DHIS2_USERNAME + DHIS2_PASSWORD, DHIS2_TIMEOUT).
The password is read from DHIS2_PASSWORD or prompted for; it is never a flag."""


class UsageError(Exception):
    """A problem with the command line itself (exit 2)."""


# --- argument parsing --------------------------------------------------------------


def _connection_options():
    """Options every command accepts, before or after the command words."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    sup = argparse.SUPPRESS
    group.add_argument("--url", default=sup, help="DHIS2 base URL (default: $DHIS2_URL)")
    group.add_argument("--token", default=sup,
                       help="personal access token (prefer $DHIS2_PAT: flags show in `ps`)")
    group.add_argument("--username", default=sup,
                       help="user for basic auth; password from $DHIS2_PASSWORD or a prompt")
    group.add_argument("--auth-file", default=sup, metavar="FILE",
                       help='JSON {"dhis": {"baseurl", "username", "password"}} or '
                            '{"url", "token"}; must not be readable by group or others')
    group.add_argument("--http-timeout", type=float, default=sup, metavar="S",
                       help="seconds per HTTP request (default 30 or $DHIS2_TIMEOUT)")
    group.add_argument("--outage-grace", type=float, default=sup, metavar="S",
                       help="while following a job, keep polling through refused connections, "
                            "timeouts and 502/503/504 for up to S seconds (default 900; 0 = "
                            "fail at once)")
    group.add_argument("--insecure", action="store_true", default=sup,
                       help="do not verify TLS certificates (not recommended)")
    out = parent.add_argument_group("output")
    out.add_argument("--progress", action="store_true", default=sup,
                     help="show job progress on stderr even when it is not a terminal")
    out.add_argument("--quiet", action="store_true", default=sup, help="no progress output")
    out.add_argument("--debug", action="store_true", default=sup,
                     help="tracebacks on errors and debug logging (secrets stay hidden)")
    return parent


def _add_format(parser, default="table", choices=FORMATS):
    parser.add_argument("--format", choices=choices, default=default,
                        help="output format (default: %(default)s)")
    parser.add_argument("--output", "-o", metavar="FILE",
                        help="write to FILE atomically instead of stdout")


def _add_fail_on(parser, what):
    parser.add_argument("--fail-on", choices=SEVERITIES, type=str.lower, metavar="LEVEL",
                        help="exit 1 when {} at LEVEL or worse ({})".format(
                            what, "|".join(SEVERITIES)))


def build_parser():
    common = _connection_options()
    parser = argparse.ArgumentParser(
        prog="dhis2maint", parents=[common],
        description="Keep a DHIS2 server healthy: data-integrity checks, analytics and "
                    "other background jobs, maintenance.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true",
                        help="print the library version (and the server's, if connected)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(subparsers, name, help_text, **kwargs):
        return subparsers.add_parser(name, help=help_text, description=help_text,
                                     parents=[common], epilog=EXIT_CODES_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     **kwargs)

    def group(name, help_text, metavar="ACTION"):
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
    _add_format(checks, choices=("table", "json", "jsonl", "csv"))
    checks.set_defaults(handler=cmd_integrity_checks)

    run = command(integrity_cmds, "run", "run checks, follow them, print the report")
    run.add_argument("checks", nargs="*", metavar="CHECK",
                     help="check names, codes or wildcards (default: every non-slow check)")
    run.add_argument("--details", action="store_true", help="collect the issues, not just counts")
    run.add_argument("--include-slow", action="store_true",
                     help="with no CHECK, run the slow checks too")
    run.add_argument("--timeout", type=float, metavar="S",
                     help="give up waiting after S seconds (exit 4; the job may go on)")
    _add_poll_options(run)
    _add_fail_on(run, "any check has issues")
    _add_format(run)
    run.set_defaults(handler=cmd_integrity_run)

    report = command(integrity_cmds, "report", "print the last results without running")
    report.add_argument("checks", nargs="*", metavar="CHECK")
    report.add_argument("--details", action="store_true", help="include the issues")
    _add_fail_on(report, "any check has issues")
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
    _add_format(diff, choices=("table", "json", "jsonl", "csv"))
    diff.set_defaults(handler=cmd_integrity_diff)

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
    for sub in (analytics, tables, monitoring):
        _add_wait_options(sub)
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
    coc.add_argument("--timeout", type=float, default=60.0, metavar="S")
    _add_poll_options(coc, max_interval=False)
    coc.set_defaults(handler=cmd_coc_update)

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
    wait.add_argument("--timeout", type=float, metavar="S")
    _add_poll_options(wait)
    wait.set_defaults(handler=cmd_task_wait)

    demo = command(commands, "demo", "start the built-in DHIS2 stand-in and run the nightly "
                                     "job against it (no DHIS2 needed)")
    demo.add_argument("--dhis2-version", default="2.42", metavar="V",
                      help="stand-in DHIS2 version (default %(default)s)")
    demo.add_argument("--job-seconds", type=float, default=2.0, metavar="S",
                      help="how long each simulated job runs (default %(default)s)")
    demo.set_defaults(handler=cmd_demo)

    version = command(commands, "version", "library version and, with a server, DHIS2's")
    version.set_defaults(handler=cmd_version)
    return parser


def _add_wait_options(parser):
    parser.add_argument("--no-wait", action="store_true",
                        help="print the job id and return at once")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="give up waiting after S seconds (exit 4; the job may go on)")
    _add_poll_options(parser)


def _add_poll_options(parser, max_interval=True):
    parser.add_argument("--poll-interval", type=float, metavar="S",
                        help="seconds between polls at first and after news (default 1)")
    if max_interval:
        parser.add_argument("--max-interval", type=float, metavar="S",
                            help="longest pause between polls (default 10; the end of a job "
                                 "is noticed within max(2 s, 10%% of the time waited))")


def _poll_kwargs(args):
    """--poll-interval / --max-interval as keyword arguments of the waits."""
    opts = vars(args)
    return {key: opts[key] for key in ("poll_interval", "max_interval")
            if opts.get(key) is not None}


class _Operation:
    """One `dhis2maint maintenance <operation>` subcommand, from jobs.MAINTENANCE_OPERATIONS."""

    def __init__(self, op):
        self.cli_name = op.name.replace("_", "-")
        self.method_name = op.name
        self.summary = op.summary
        self.destructive = op.destructive
        self.needs_uid = op.takes_uid
        # the names the issue tracker and DHIS2 admins use for the common two
        self.aliases = {"clear_cache": ["cache-clear"]}.get(op.name, [])


def _maintenance_operations():
    """The maintenance subcommands; category option combos have their own `coc-update`."""
    from .jobs import MAINTENANCE_OPERATIONS

    return [_Operation(op) for op in MAINTENANCE_OPERATIONS
            if op.name != "update_category_option_combos"]


# --- connection ------------------------------------------------------------------


def _read_auth_file(path):
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ConfigurationError("cannot read auth file {}: {}".format(path, exc.strerror))
    if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            "permissions {:04o} for auth file {} are too open: it holds a password; "
            "run `chmod 600 {}`".format(stat.S_IMODE(info.st_mode), path, path))
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigurationError("auth file {} is not valid JSON: {}".format(
            path, getattr(exc, "msg", None) or type(exc).__name__)) from None
    if isinstance(data, dict) and isinstance(data.get("dhis"), dict):
        dhis = data["dhis"]
        settings = {"url": dhis.get("baseurl") or dhis.get("url"),
                    "username": dhis.get("username"), "password": dhis.get("password"),
                    "token": dhis.get("token")}
    elif isinstance(data, dict):
        settings = {k: data.get(k) for k in ("url", "token", "username", "password")}
    else:
        settings = {}
    if not settings.get("url"):
        raise ConfigurationError(
            'auth file {} needs {{"dhis": {{"baseurl": …}}}} or {{"url": …}}'.format(path))
    return settings


def connect(args, environ=None):
    """A :class:`Session` from the command line, the auth file and the environment."""
    from .session import Session

    env = os.environ if environ is None else environ
    opts = vars(args)
    kwargs = {}
    if "http_timeout" in opts:
        kwargs["timeout"] = opts["http_timeout"]
    if "outage_grace" in opts:
        kwargs["outage_grace"] = opts["outage_grace"]
    if opts.get("insecure"):
        kwargs["verify"] = False
    file_settings = _read_auth_file(opts["auth_file"]) if "auth_file" in opts else {}
    url = opts.get("url") or file_settings.get("url") or env.get("DHIS2_URL", "").strip()
    if not url:
        raise ConfigurationError("no DHIS2 URL: give --url, --auth-file or set DHIS2_URL")
    token = opts.get("token") or file_settings.get("token")
    username = opts.get("username") or file_settings.get("username")
    password = file_settings.get("password") if not opts.get("username") else None
    if token and username:
        raise ConfigurationError("give a token or a username, not both")
    if username:
        password = password or env.get("DHIS2_PASSWORD")
        if not password:
            if not sys.stdin.isatty():
                raise ConfigurationError("no password for {}: set DHIS2_PASSWORD".format(username))
            password = getpass.getpass("DHIS2 password for {}: ".format(username))
        return Session(url, auth=(username, password), **kwargs)
    if token:
        return Session(url, token=token, **kwargs)
    environ_copy = dict(env)
    environ_copy["DHIS2_URL"] = url
    return Session.from_env(environ_copy, **kwargs)


# --- output helpers -------------------------------------------------------------------


class _Progress:
    """Notification lines on stderr: when it is a terminal, or with --progress."""

    def __init__(self, args, stream=None):
        self.stream = stream or sys.stderr
        opts = vars(args)
        self.enabled = not opts.get("quiet") and (
            bool(opts.get("progress")) or self.stream.isatty())
        self.started = time.monotonic()

    def __call__(self, notification):
        if self.enabled:
            from .report import write_notification_line

            write_notification_line(notification, time.monotonic() - self.started, self.stream)
            self.stream.flush()

    def say(self, text):
        if self.enabled:
            self.stream.write(text + "\n")
            self.stream.flush()


def _output(args):
    from .report import atomic_output

    return atomic_output(getattr(args, "output", None))


def _severity_at_least(severity, level):
    from .models import severity_rank

    return severity_rank(str(severity or "WARNING")) >= severity_rank(level)


def _threshold_reached(report, level):
    if not level:
        return False
    return any((r.count or 0) > 0 and _severity_at_least(r.severity, level) for r in report)


# --- commands ------------------------------------------------------------------------


def cmd_integrity_checks(args):
    from .report import write_checks

    with connect(args) as session:
        checks = session.list_integrity_checks(section=args.section, severity=args.severity,
                                               slow=True if args.slow else None)
    with _output(args) as out:
        write_checks(checks, args.format, out)
    return EXIT_OK


def cmd_integrity_run(args):
    from .report import write_report

    progress = _Progress(args)
    with connect(args) as session:
        progress.say("Running data-integrity checks on {}".format(session.base_url))
        report = session.run_integrity_checks(
            checks=args.checks or None, details=args.details, timeout=args.timeout,
            on_notification=progress, include_slow=args.include_slow, **_poll_kwargs(args))
    with _output(args) as out:
        write_report(report, args.format, out)
    return EXIT_THRESHOLD if _threshold_reached(report, args.fail_on) else EXIT_OK


def cmd_integrity_report(args):
    from .report import write_report

    with connect(args) as session:
        report = session.get_integrity_report(checks=args.checks or None, details=args.details)
    with _output(args) as out:
        write_report(report, args.format, out)
    return EXIT_THRESHOLD if _threshold_reached(report, args.fail_on) else EXIT_OK


def cmd_integrity_issues(args):
    from .report import write_issue_rows

    with connect(args) as session:
        with _output(args) as out:
            write_issue_rows(session.iter_integrity_issues(checks=args.checks or None),
                             args.format, out)
    return EXIT_OK


def cmd_integrity_diff(args):
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


def _follow(job, args, progress):
    if args.no_wait:
        print("{} {}".format(job.job_type, job.id))
        return EXIT_OK
    progress.say("Started {} job {}".format(job.job_type, job.id))
    final = job.wait(timeout=args.timeout, on_notification=progress, **_poll_kwargs(args))
    print("{} {} completed: {}".format(job.job_type, job.id, final.message or "done"))
    return EXIT_OK


def cmd_refresh(args):
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


def cmd_predictors_run(args):
    with connect(args) as session:
        result = session.run_predictors(args.start_date, args.end_date,
                                        predictors=args.predictor or None,
                                        predictor_groups=args.group or None)
    runs = result if isinstance(result, list) else [result]
    for run in runs:
        print(run.message or "done")
    return EXIT_OK


def cmd_validation_run(args):
    from .report import write_records

    with connect(args) as session:
        violations = session.run_validation_analysis(
            args.org_unit, args.start_date, args.end_date, validation_rule_group=args.group,
            notification=args.notification, persist=args.persist)
    with _output(args) as out:
        write_records(violations, args.format, out)
    return EXIT_THRESHOLD if violations and args.fail_on_violations else EXIT_OK


def _confirm(args, op):
    if not op.destructive or getattr(args, "yes", False):
        return
    if not sys.stdin.isatty():
        raise UsageError("`maintenance {}` deletes data; add --yes to confirm".format(op.cli_name))
    answer = input("{}: {}. Type yes to go on: ".format(op.cli_name, op.summary))
    if answer.strip().lower() != "yes":
        raise UsageError("not confirmed; nothing done")


def cmd_maintenance(args):
    op = args.operation
    _confirm(args, op)
    with connect(args) as session:
        method = getattr(session, op.method_name)
        method(args.uid) if op.needs_uid else method()
    print("{}: done".format(op.cli_name))
    return EXIT_OK


def cmd_coc_update(args):
    if args.wait and not args.category_combo:
        raise UsageError("--wait needs --category-combo UID")
    with connect(args) as session:
        if args.wait:
            state = session.wait_for_coc_generation(args.category_combo, timeout=args.timeout,
                                                    **_poll_kwargs(args))
            print("{}: {} of {} category option combos".format(
                state.id, state.count, state.expected_count))
        else:
            session.update_category_option_combos(args.category_combo)
            print("category option combos updated")
    return EXIT_OK


def cmd_task_status(args):
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


def cmd_task_wait(args):
    progress = _Progress(args)
    with connect(args) as session:
        final = session.wait_for_task(args.job_type, args.job_id, timeout=args.timeout,
                                      on_notification=progress, **_poll_kwargs(args))
    print("{} {} completed: {}".format(args.job_type, args.job_id, final.message or "done"))
    return EXIT_OK


def cmd_version(args):
    print("dhis2maint {}".format(__version__))
    opts = vars(args)
    if any(k in opts for k in ("url", "auth_file")) or os.environ.get("DHIS2_URL"):
        with connect(args) as session:
            print("DHIS2 {} at {}".format(".".join(map(str, session.server_version)),
                                          session.base_url))
    return EXIT_OK


def cmd_demo(args):
    """Start the stand-in, run the integrity checks and analytics against it, stop it."""
    from .report import write_report
    from .session import Session
    from .testing import Dhis2StandIn

    progress = _Progress(args)
    progress.enabled = not vars(args).get("quiet")
    out = sys.stdout
    with Dhis2StandIn(version=args.dhis2_version, job_seconds=args.job_seconds) as server:
        username, password = next(iter(server.users.items()))
        out.write("Built-in DHIS2 {} stand-in at {} (user {})\n\n".format(
            args.dhis2_version, server.url, username))
        with Session(server.url, auth=(username, password)) as session:
            progress.say("1/2 Running the data-integrity checks (details)…")
            report = session.run_integrity_checks(details=True, on_notification=progress)
            write_report(report, "table", out, title="Data integrity on the stand-in", limit=3)
            out.write("\n")
            progress.say("2/2 Refreshing analytics tables…")
            job = session.refresh_analytics(last_years=2)
            final = job.wait(on_notification=progress)
            out.write("Analytics: {}\n".format(final.message or "done"))
    out.write("\nNext: point it at your server, e.g.\n"
              "  DHIS2_URL=https://dhis2.example.org DHIS2_PAT=d2pat_… "
              "dhis2maint integrity run --fail-on severe\n")
    return EXIT_OK


# --- entry point --------------------------------------------------------------------------


def _one_line(exc):
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def main(argv=None):
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(vars(args).get("debug"))
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.version and not getattr(args, "handler", None):
        return cmd_version(args)
    handler = getattr(args, "handler", None)
    if handler is None:  # `dhis2maint` or `dhis2maint integrity` alone
        getattr(args, "group_parser", parser).print_help(sys.stderr)
        return EXIT_USAGE
    try:
        _check_seconds(args)
        return handler(args)
    except KeyboardInterrupt:
        sys.stderr.write("dhis2maint: interrupted\n")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        code = _exit_code(exc)
        if debug or code is None:
            raise
        sys.stderr.write("dhis2maint: error: {}\n".format(_one_line(exc)))
        return code


_SECONDS_OPTIONS = ("timeout", "http_timeout", "outage_grace", "poll_interval", "max_interval",
                    "job_seconds")


def _check_seconds(args):
    """Every seconds option finite and not negative (positive where 0 makes no sense),
    before anything is sent: `--timeout inf` must not start a job it then cannot wait for."""
    import math

    opts = vars(args)
    for name in _SECONDS_OPTIONS:
        value = opts.get(name)
        if not isinstance(value, float):
            continue
        flag = "--" + name.replace("_", "-")
        zero_ok = name in ("timeout", "outage_grace")
        if not math.isfinite(value) or not (value >= 0 if zero_ok else value > 0):
            raise ConfigurationError("{} must be a finite number of seconds {} 0, got {}".format(
                flag, "of at least" if zero_ok else "more than", value))


def _exit_code(exc):
    if isinstance(exc, (UsageError, ConfigurationError)):
        return EXIT_USAGE
    if isinstance(exc, (JobFailedError, TaskTimeoutError)):
        return EXIT_JOB
    if isinstance(exc, Dhis2Error):
        return EXIT_DHIS2
    if isinstance(exc, ValueError):  # bad input the library rejected (a UID, a date)
        return EXIT_USAGE
    return None
