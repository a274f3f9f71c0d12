"""What every dhis2maint command line shares: ``dhis2maint …`` (cli.py) and
``python -m dhis2maint.mcp`` (mcp.py).

The connection and output options, the :class:`~dhis2maint.Session` they
describe (:func:`connect`), the exit codes and how a failure becomes one
(:func:`run_command`: one line on stderr, the traceback only with ``--debug``).
"""
import argparse
import getpass
import logging
import os
import shlex
import sys
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, NamedTuple,
                    Optional, Sequence, Tuple)

from .arguments import seconds
from .connections import read_auth_file
from .errors import ConfigurationError, Dhis2Error, JobFailedError, TaskTimeoutError
from .followups import compose
from .session import Session

if TYPE_CHECKING:
    from .models import FollowUp

__all__ = ["EXIT_OK", "EXIT_THRESHOLD", "EXIT_USAGE", "EXIT_DHIS2", "EXIT_JOB", "EXIT_INTERNAL",
           "UsageError", "connection_options", "output_options", "connect", "run_command",
           "exit_code", "follow_up_command", "follow_up_text", "error_text",
           "Action", "ACTIONS", "find_action"]

EXIT_OK, EXIT_THRESHOLD, EXIT_USAGE, EXIT_DHIS2, EXIT_JOB, EXIT_INTERNAL = 0, 1, 2, 3, 4, 5


class UsageError(Exception):
    """A problem with the command line itself (exit 2)."""


def connection_options() -> argparse.ArgumentParser:
    """The connection and output options (a parent parser): every ``dhis2maint``
    command accepts them, before or after the command words, and so does
    ``python -m dhis2maint.mcp``."""
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
    _add_output_options(parent)
    return parent


def output_options() -> argparse.ArgumentParser:
    """Only the output options (a parent parser): for a command that connects to
    nothing the user names (``dhis2maint demo``)."""
    parent = argparse.ArgumentParser(add_help=False)
    _add_output_options(parent)
    return parent


def _add_output_options(parent: argparse.ArgumentParser) -> None:
    sup = argparse.SUPPRESS
    out = parent.add_argument_group("output")
    out.add_argument("--progress", action="store_true", default=sup,
                     help="show job progress on stderr even when it is not a terminal")
    out.add_argument("--quiet", action="store_true", default=sup,
                     help="no progress output and no warnings (errors still go to stderr)")
    out.add_argument("--debug", action="store_true", default=sup,
                     help="tracebacks on errors and debug logging (secrets stay hidden)")


def connect(args: argparse.Namespace, environ: Optional[Mapping[str, str]] = None,
            prompt: bool = True) -> "Session":
    """A :class:`Session` from the command line, the auth file and the environment.

    The auth file is read by the library (:func:`dhis2maint.connections.read_auth_file`,
    as :meth:`Session.from_auth_file` reads it); flags override what it says, and
    a username without a password there takes it from DHIS2_PASSWORD or a prompt.
    ``prompt=False``: never ask for a password on the terminal (the MCP server's
    stdin carries the protocol); a missing one is a :class:`ConfigurationError`.
    """
    env = os.environ if environ is None else environ
    opts = vars(args)
    kwargs: Dict[str, Any] = {}
    if "http_timeout" in opts:
        kwargs["timeout"] = opts["http_timeout"]
    if "outage_grace" in opts:
        kwargs["outage_grace"] = opts["outage_grace"]
    if opts.get("insecure"):
        kwargs["verify"] = False
    # fleet (#23): one server of a fleet file; its section gives URL and credentials
    if opts.get("fleet_server") is not None:
        made: Session = opts["fleet_server"].session(environ=env, **kwargs)
        return made
    file_settings: Dict[str, Optional[str]] = (
        read_auth_file(opts["auth_file"]) if "auth_file" in opts else {})

    def where(name: str, env_name: str) -> str:
        """Where setting ``name`` came from, as error hints name it."""
        if opts.get(name):
            return "--" + name
        if file_settings.get(name):
            return "the auth file {}".format(opts["auth_file"])
        return env_name

    url = opts.get("url") or file_settings.get("url") or env.get("DHIS2_URL", "").strip()
    if not url:
        raise ConfigurationError("no DHIS2 URL: give --url, --auth-file or set DHIS2_URL")
    token = opts.get("token") or file_settings.get("token")
    username = opts.get("username") or file_settings.get("username")
    password = file_settings.get("password") if not opts.get("username") else None
    if token and username:
        raise ConfigurationError("give a token or a username, not both")
    url_from = where("url", "DHIS2_URL")
    if token:
        creds_from = where("token", "DHIS2_PAT")
    elif username:
        creds_from = where("username", "DHIS2_USERNAME")
    else:  # Session.from_env reads them
        creds_from = "DHIS2_PAT" if env.get("DHIS2_PAT", "").strip() \
            else "DHIS2_USERNAME/DHIS2_PASSWORD"
    if url_from.startswith(("--", "the auth file")) or creds_from.startswith(("--", "the auth")):
        # Hints name what the user gave; all from the environment: the DHIS2_* wording.
        kwargs["source"] = url_from if url_from == creds_from else "{} and {}".format(
            url_from, creds_from)
    if username:
        password = password or env.get("DHIS2_PASSWORD")
        if not password:
            if not prompt or not sys.stdin.isatty():
                raise ConfigurationError("no password for {}: set DHIS2_PASSWORD".format(username))
            password = getpass.getpass("DHIS2 password for {}: ".format(username))
        return Session(url, auth=(username, password), **kwargs)
    if token:
        return Session(url, token=token, **kwargs)
    environ_copy = dict(env)
    environ_copy["DHIS2_URL"] = url
    return Session.from_env(environ_copy, **kwargs)


def run_command(command: Callable[[], int], args: argparse.Namespace) -> int:
    """Run one command line's ``command`` with its parsed ``args``: debug logging with
    ``--debug``, the library's warnings on stderr (an outage being ridden out, a lost
    answer adopted, TLS off) unless ``--quiet``, the seconds options checked first,
    and every failure an exit code."""
    opts = vars(args)
    debug = bool(opts.get("debug"))
    warnings = None
    if debug:
        lines = _StderrLines()
        lines.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logging.basicConfig(level=logging.DEBUG, handlers=[lines])
    elif not opts.get("quiet"):
        warnings = _WarningLines()
        logging.getLogger("dhis2maint").addHandler(warnings)
    try:
        check_seconds(args)
        return command()
    except KeyboardInterrupt as interrupt:
        follow_ups = getattr(interrupt, "follow_ups", ())
        sys.stderr.write("dhis2maint: interrupted{}\n".format(
            "; " + follow_up_text(follow_ups) if follow_ups else ""))
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - every failure gets an exit code
        return report_failure(exc, debug)
    finally:
        if warnings is not None:
            logging.getLogger("dhis2maint").removeHandler(warnings)


class _StderrLines(logging.Handler):
    """Log records as lines on the stderr of the moment, not the one at start-up: a
    test's capture sees them, and in a fleet run a server's thread writes them
    through its ``[NAME]`` prefix.  Writing a line never changes the outcome."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - logging must never change the outcome
            pass


class _WarningLines(_StderrLines):
    """The library's WARNING records as ``dhis2maint: warning: …`` lines."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter("dhis2maint: warning: %(message)s"))


def report_failure(exc: BaseException, debug: bool) -> int:
    """One line on stderr (the traceback first with --debug) and the exit code."""
    code = exit_code(exc)
    try:
        if debug:
            import traceback

            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        if code is None:
            sys.stderr.write("dhis2maint: internal error: {}: {}{}\n".format(
                type(exc).__name__, one_line(exc)[:500],
                "" if debug else "; rerun with --debug for the traceback"))
            return EXIT_INTERNAL
        sys.stderr.write("dhis2maint: error: {}\n".format(error_text(exc)))
    except Exception:  # noqa: BLE001 - even a failing stderr must not change the code
        pass
    return EXIT_INTERNAL if code is None else code


def one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def exit_code(exc: BaseException) -> Optional[int]:
    """The exit code of a failure, or None for one that is no expected failure (5)."""
    if isinstance(exc, (UsageError, ConfigurationError)):
        return EXIT_USAGE
    if isinstance(exc, (JobFailedError, TaskTimeoutError)):
        return EXIT_JOB
    if isinstance(exc, Dhis2Error):
        return EXIT_DHIS2
    if isinstance(exc, ValueError):  # bad input the library rejected (a UID, a date)
        return EXIT_USAGE
    return None


_SECONDS_OPTIONS = ("timeout", "http_timeout", "outage_grace", "poll_interval", "max_interval",
                    "job_seconds")


def check_seconds(args: argparse.Namespace) -> None:
    """Every seconds option finite and not negative (positive where 0 makes no sense),
    before anything is sent: `--timeout inf` must not start a job it then cannot wait for."""
    opts = vars(args)
    for name in _SECONDS_OPTIONS:
        value = opts.get(name)
        if not isinstance(value, float):
            continue
        # the library's one check, worded with the flag's name
        seconds(value, "--" + name.replace("_", "-"),
                zero_ok=name in ("timeout", "outage_grace"))


# --- what to do next, in the command line's words ------------------------------------
# The library records follow-ups as data (dhis2maint.models.FollowUp, its action a
# Session method name); Python's wording is dhis2maint.followups', this is the CLI's.


def _words(follow_up: "FollowUp") -> Optional[List[str]]:
    """The command (after ``dhis2maint``) that does ``follow_up``, or None: the
    :data:`ACTIONS` row whose Session method is its action, its command words
    and its arguments as the row's ``words`` say."""
    action = next((a for a in ACTIONS if a.name == follow_up.action), None)
    if action is None:
        return None
    words = action.command.split()
    worded = False  # the argument before was worded
    for name, spell in action.words:
        value = follow_up.arg(name)
        if spell.startswith("|") and worded:
            continue
        spell = spell.lstrip("|")
        worded = value is not None and value != ""
        if not worded:
            continue
        if not spell:
            words.append(str(getattr(value, "value", value)))
        elif spell.endswith("="):
            words += [spell[:-1], str(getattr(value, "value", value))]
        elif "/" in spell:
            words.append(spell.split("/")[0 if value else 1])
        elif value:
            words.append(spell)
    return words


def follow_up_command(follow_up: "FollowUp") -> str:
    """``FollowUp("wait_for_task", …)`` -> ```dhis2maint task wait ANALYTICS_TABLE fyGB```
    (shell-quoted arguments)."""
    if follow_up.action == "trust_ca_bundle":  # a setting, not a command (#21.5)
        return ("{}=/path/ca.pem (or --insecure to skip certificate checks, not "
                "recommended)".format(follow_up.arg("env") or "REQUESTS_CA_BUNDLE"))
    words = _words(follow_up)
    if words is None:  # an action this command line has no command for
        return "the {} step (see `dhis2maint --help`)".format(follow_up.action.replace("_", " "))
    return "`dhis2maint {}`".format(" ".join(shlex.quote(w) for w in words))


def follow_up_text(follow_ups: Sequence["FollowUp"], advice: str = "") -> str:
    """Follow-ups and advice as one sentence in the command line's words."""
    return compose(follow_ups, follow_up_command, advice)


def error_text(exc: BaseException) -> str:
    """An error on one line, what to do next worded as ``dhis2maint`` commands: a
    :class:`Dhis2Error`'s ``message`` and its ``follow_ups`` (``str(exc)`` words
    them for Python)."""
    follow_ups = getattr(exc, "follow_ups", ())
    if not isinstance(exc, Dhis2Error) or not follow_ups:
        return one_line(exc)
    return " ".join("{}; {}".format(exc.message.strip(), follow_up_text(follow_ups)).split())


# --- the actions every face offers (#20.7) -------------------------------------------------
#
# One table: each thing dhis2maint does for a user, the Session method that does it (the
# ``action`` of a :class:`~dhis2maint.models.FollowUp`), the MCP tool (mcp.py) and the
# command (cli.py) that offer it, whether it deletes or only reads, and the tool's
# parameters.  The MCP server registers its tools from it, takes each description,
# read-only/destructive annotation and confirm requirement from it, and words an error's
# follow-ups with it; tests check that each command and tool exists and takes these
# parameters.


class Action(NamedTuple):
    """One thing a face can do for its user (see :data:`ACTIONS`)."""

    #: The Session method (a FollowUp's ``action``), or a face-only name (history tools).
    name: str
    #: The MCP tool that does it.
    tool: str
    #: The command words after ``dhis2maint``.
    command: str
    #: What it does, and the DHIS2 endpoint (a destructive one's as "it would …" reads).
    summary: str
    #: The tool's parameters, in order (Session keyword names, but for ``renames``).
    params: Tuple[str, ...] = ()
    #: It deletes or stops something: the tool needs ``confirm: true`` (the CLI ``--yes``).
    destructive: bool = False
    #: It changes nothing (reads DHIS2 or the history file).
    read_only: bool = False
    #: (Session keyword, tool parameter) pairs where the names differ.
    renames: Tuple[Tuple[str, str], ...] = ()
    #: Other Session methods whose follow-ups this tool does too.
    also: Tuple[str, ...] = ()
    #: How the command line words a FollowUp's arguments, in order: (Session keyword,
    #: spelling): ``""`` the value as a positional word, ``"--type="`` the flag and the
    #: value, ``"--wait"`` the flag when true, ``"--enabled/--disabled"`` one of two
    #: when not None; a leading ``|`` (``"|--type="``) words it only when the argument
    #: before was not given (the alternatives of one command).  Others are left out.
    words: Tuple[Tuple[str, str], ...] = ()

    def tool_arguments(self, args: Iterable[Tuple[str, Any]]) -> Dict[str, Any]:
        """A follow-up's ``(Session keyword, value)`` pairs as this tool's arguments:
        renamed, and only those the tool takes."""
        rename = dict(self.renames)
        out: Dict[str, Any] = {}
        for key, value in args:
            key = rename.get(key, key)
            if key in self.params:
                out[key] = value
        return out


_WAIT = ("wait", "timeout_seconds")
_TIMEOUT = (("timeout", "timeout_seconds"),)
_PAGE = ("offset", "limit")
_RESULT_FILTERS = ("validation_rules", "org_units")


def _maintenance_actions() -> Tuple[Action, ...]:
    from .jobs import MAINTENANCE_OPERATIONS

    actions = []
    for op in MAINTENANCE_OPERATIONS:
        if op.name == "update_category_option_combos":
            continue  # its own action below (per combo, with waiting)
        params = (("uid",) if op.takes_uid else ()) + (("confirm",) if op.destructive else ())
        actions.append(Action(
            op.name, op.name, "maintenance " + op.name.replace("_", "-"),
            "{} ({} /api/maintenance/{})".format(op.summary, op.http_method, op.path),
            params, destructive=op.destructive))
    return tuple(actions)


#: Every action of the faces, the order the MCP server lists its tools in.
ACTIONS: Tuple[Action, ...] = (
    Action("server_info", "server_info", "version",
           "The dhis2maint version and the DHIS2 server's URL and version "
           "(GET /api/system/info).", read_only=True),
    Action("doctor", "doctor", "doctor",
           "Check what a nightly script depends on: URL, TLS, credentials, user, DHIS2 version, "
           "authorities per feature (need: features that must be allowed), clock, scheduler.",
           ("need",), read_only=True),
    Action("whoami", "whoami", "whoami",
           "Who the server logs in as, and their authorities (GET /api/me).", read_only=True),
    # integrity
    Action("list_integrity_checks", "list_integrity_checks", "integrity checks",
           "List the server's data-integrity checks (GET /api/dataIntegrity), optionally "
           "filtered.", ("section", "severity", "slow", "checks") + _PAGE, read_only=True,
           also=("resolve_integrity_checks",)),
    Action("run_integrity_checks", "run_integrity_checks", "integrity run",
           "Run data-integrity checks (POST /api/dataIntegrity/summary or /details), wait for "
           "them with progress notifications, and return this run's results: totals, then a "
           "page of checks (worst first) with up to issue_limit issues each when details is "
           "true.  Page further with get_integrity_report or list_integrity_issues (DHIS2 keeps "
           "results about an hour).",
           ("checks", "details", "include_slow", "timeout_seconds") + _PAGE
           + ("issue_offset", "issue_limit"), renames=_TIMEOUT,
           also=("start_integrity_run", "iter_integrity_run")),
    Action("get_integrity_report", "get_integrity_report", "integrity report",
           "The last data-integrity results DHIS2 holds, without running anything (GET "
           "/api/dataIntegrity/details or /summary): totals, then a page of checks with up to "
           "issue_limit issues each.",
           ("checks", "details") + _PAGE + ("issue_offset", "issue_limit"), read_only=True,
           also=("get_integrity_check_result",),
           words=(("details", "--details"),)),
    Action("iter_integrity_issues", "list_integrity_issues", "integrity issues",
           "Page through the last detailed data-integrity results one issue per row (GET "
           "/api/dataIntegrity/details, streamed).", ("checks",) + _PAGE, read_only=True),
    Action("integrity_history", "integrity_history", "integrity history",
           "The integrity runs recorded in the history file the server was started with "
           "(--history or $DHIS2MAINT_HISTORY), oldest first.", ("server",) + _PAGE,
           read_only=True),
    Action("integrity_trend", "integrity_trend", "integrity trend",
           "Issue counts over the recorded runs (history file), oldest first: one check's, or "
           "the total per run.", ("check", "since", "server") + _PAGE, read_only=True),
    Action("integrity_open_issues", "integrity_open_issues", "integrity open",
           "Issues still open in the newest recorded run (history file), oldest first, with "
           "the date each was first seen.",
           ("older_than", "severity", "check", "server") + _PAGE, read_only=True),
    # jobs and tasks
    Action("refresh_analytics", "refresh_analytics", "refresh analytics",
           "Start an analytics table update (POST /api/resourceTables/analytics); with wait, "
           "follow it to its end.", ("last_years", "skip") + _WAIT, renames=_TIMEOUT),
    Action("refresh_resource_tables", "refresh_resource_tables", "refresh resource-tables",
           "Start a resource table update (POST /api/resourceTables); with wait, follow it to "
           "its end.", _WAIT, renames=_TIMEOUT),
    Action("refresh_monitoring", "refresh_monitoring", "refresh monitoring",
           "Start the monitoring job (POST /api/resourceTables/monitoring); with wait, follow "
           "it to its end.", _WAIT, renames=_TIMEOUT),
    Action("get_task_notifications", "task_status", "task status",
           "A job's task notifications, newest first (GET /api/system/tasks/{jobType}/{jobId}); "
           "without job_id, those of the most recently active job of the type.",
           ("job_type", "job_id", "limit"), read_only=True,
           also=("get_latest_task", "iter_task_notifications"),
           words=(("job_type", ""), ("job_id", ""))),
    Action("wait_for_task", "wait_for_task", "task wait",
           "Follow a started job until it ends, with progress notifications (GET "
           "/api/system/tasks/{jobType}/{jobId}); fails with DHIS2's message when the job "
           "fails.", ("job_type", "job_id", "timeout_seconds"), read_only=True,
           renames=_TIMEOUT,
           words=(("job_type", ""), ("job_id", ""))),
    Action("list_task_types", "list_task_types", "task types",
           "The job types DHIS2 holds task notifications for (GET /api/system/tasks).",
           read_only=True),
    Action("list_tasks", "list_tasks", "task list",
           "The job ids of one type DHIS2 holds task notifications for, newest first (GET "
           "/api/system/tasks/{jobType}).", ("job_type", "limit"), read_only=True),
    # scheduler
    Action("list_job_configurations", "list_job_configurations", "jobs list",
           "List the scheduled jobs (GET /api/jobConfigurations), optionally filtered by type, "
           "enabled, or status (jobStatus or last run status, e.g. FAILED).",
           ("job_type", "enabled", "status", "include_run_once") + _PAGE, read_only=True,
           words=(("job_type", "--type="), ("status", "--status="),
                  ("enabled", "--enabled/--disabled"))),
    Action("get_job_configuration", "get_job_configuration", "jobs show",
           "One job configuration, every field (GET /api/jobConfigurations/{id}).",
           ("job_id",), read_only=True,
           words=(("job_id", ""),)),
    Action("run_job_configuration", "run_job_configuration", "jobs run",
           "Run a job configuration now (POST /api/jobConfigurations/{id}/execute); with "
           "wait, follow it until it has finished.", ("job_id",) + _WAIT, renames=_TIMEOUT,
           also=("wait_for_job_configuration",),
           words=(("job_id", ""), ("wait", "--wait"))),
    Action("enable_job_configuration", "enable_job_configuration", "jobs enable",
           "Enable a job configuration (PUT/PATCH /api/jobConfigurations/{id}).", ("job_id",),
           words=(("job_id", ""),)),
    Action("disable_job_configuration", "disable_job_configuration", "jobs disable",
           "stop a job configuration from running on its schedule (PUT/PATCH "
           "/api/jobConfigurations/{id})", ("job_id", "confirm"), destructive=True,
           words=(("job_id", ""),)),
    Action("cancel_job", "cancel_job", "jobs cancel",
           "cancel a running job, by job_id (2.41+) or job_type (2.37+) (POST "
           "/api/jobConfigurations/{id}/cancel or /api/scheduling/cancel/{type})",
           ("job_id", "job_type", "confirm"), destructive=True,
           words=(("job_id", ""), ("job_type", "|--type="))),
    Action("create_job_configuration", "create_job_configuration", "jobs create",
           "Create a job configuration (POST /api/jobConfigurations) with a cron_expression "
           "(6 fields, seconds first: \"0 0 3 ? * *\") or a delay in seconds; DHIS2 checks it.",
           ("name", "job_type", "cron_expression", "delay", "job_parameters", "enabled")),
    Action("delete_job_configuration", "delete_job_configuration", "jobs delete",
           "delete a job configuration for good (DELETE /api/jobConfigurations/{id})",
           ("job_id", "confirm"), destructive=True),
    Action("scheduler_health", "scheduler_health", "jobs health",
           "Is the scheduler healthy?  Failed, stuck, overdue and disabled system jobs and "
           "stale analytics, worst first, each with what to do next (GET "
           "/api/jobConfigurations, /api/scheduling, /api/system/info).",
           ("max_runtime_hours", "analytics_max_age_hours"), read_only=True),
    # predictors and validation
    Action("run_predictors", "run_predictors", "predictors run",
           "Run predictors for a date range (POST /api/predictors/run, or "
           "/api/predictors/{uid}/run and /api/predictorGroups/{uid}/run for the ones named).",
           ("start_date", "end_date", "predictors", "predictor_groups")),
    Action("run_validation_analysis", "run_validation_analysis", "validation run",
           "Run validation rule analysis for an org unit (and its descendants) and a date range "
           "(POST /api/dataAnalysis/validationRules); returns a page of the violations.",
           ("org_unit", "start_date", "end_date", "validation_rule_group", "persist",
            "notification") + _PAGE),
    Action("list_validation_results", "list_validation_results", "validation results",
           "Page through the stored validation results (GET /api/validationResults), filtered "
           "by rule, exact org unit, overlapping period or creation date.",
           _RESULT_FILTERS + ("periods", "created_date") + _PAGE, read_only=True,
           also=("iter_validation_results",)),
    Action("delete_validation_results", "delete_validation_results",
           "validation delete-results",
           "delete stored validation results matching the filters, or with all_results every "
           "one (DELETE /api/validationResults)",
           _RESULT_FILTERS + ("period", "created", "notification_sent", "all_results",
                              "confirm"), destructive=True),
    Action("send_validation_notifications", "send_validation_notifications",
           "validation notify",
           "Send the pending validation result notifications once (POST "
           "/api/validation/sendNotifications).", ()),
    # maintenance
    Action("update_category_option_combos", "update_category_option_combos",
           "maintenance coc-update",
           "Add missing and remove obsolete category option combos (POST "
           "/api/maintenance/categoryOptionComboUpdate, or …/categoryCombo/{uid} for one "
           "combo); with wait (needs category_combo), poll until the combo has all its option "
           "combos.", ("category_combo", "wait", "timeout_seconds"), renames=_TIMEOUT,
           also=("wait_for_coc_generation",)),
    # server health inside DHIS2 (#25): integrity and scheduler counts as data values
    Action("setup_data_values", "setup_data_values", "datavalues setup",
           "Create or update the metadata the health data values need: a data element per "
           "integrity check, per severity and per scheduler finding kind, a group, a daily data "
           "set for the org unit (default the root) and the dashboard \"Server health "
           "(dhis2maint)\" (POST /api/metadata, CREATE_AND_UPDATE, atomic); dry_run (default "
           "true) only says what would change.", ("org_unit", "prefix", "dry_run"),
           words=(("org_unit", "--org-unit="), ("prefix", "--prefix="))),
    Action("push_data_values", "push_data_values", "datavalues push",
           "Send the last integrity results DHIS2 holds, or the scheduler's health, as today's "
           "data values of the org unit (POST /api/dataValueSets, CREATE_AND_UPDATE); returns "
           "the import counts; a conflict is an error naming each.",
           ("source", "org_unit", "prefix", "dry_run"),
           words=(("org_unit", "--org-unit="), ("prefix", "--prefix="))),
) + _maintenance_actions()


def find_action(name: str) -> Optional[Action]:
    """The action whose Session method (or one of ``also``) is ``name``, else None."""
    for action in ACTIONS:
        if action.name == name or name in action.also:
            return action
    return None
