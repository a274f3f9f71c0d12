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
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence

from .arguments import seconds
from .connections import read_auth_file
from .errors import ConfigurationError, Dhis2Error, JobFailedError, TaskTimeoutError
from .followups import compose
from .session import Session

if TYPE_CHECKING:
    from .models import FollowUp

__all__ = ["EXIT_OK", "EXIT_THRESHOLD", "EXIT_USAGE", "EXIT_DHIS2", "EXIT_JOB", "EXIT_INTERNAL",
           "UsageError", "connection_options", "output_options", "connect", "run_command",
           "exit_code", "follow_up_command", "follow_up_text", "error_text"]

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
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
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


class _WarningLines(logging.Handler):
    """The library's WARNING records as ``dhis2maint: warning: …`` lines on stderr (the
    stream of the moment, so a test's capture sees them)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write("dhis2maint: warning: {}\n".format(record.getMessage()))
        except Exception:  # noqa: BLE001 - a warning must never change the outcome
            pass


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
    """The command (after ``dhis2maint``) that does ``follow_up``, or None."""
    arg = follow_up.arg
    action = follow_up.action

    def text(name: str) -> str:
        value = arg(name)
        return str(getattr(value, "value", value))

    if action in ("wait_for_task", "get_task_notifications"):
        words = ["task", "wait" if action == "wait_for_task" else "status", text("job_type")]
        return words + ([text("job_id")] if arg("job_id") else [])
    simple = {"get_job_configuration": ["jobs", "show"], "run_job_configuration": ["jobs", "run"],
              "enable_job_configuration": ["jobs", "enable"],
              "disable_job_configuration": ["jobs", "disable"]}
    if action in simple:
        return simple[action] + [text("job_id")] + (
            ["--wait"] if action == "run_job_configuration" and arg("wait") else [])
    if action == "cancel_job":
        return ["jobs", "cancel", text("job_id")] if arg("job_id") else \
            ["jobs", "cancel", "--type", text("job_type")]
    if action == "list_job_configurations":
        words = ["jobs", "list"]
        for name, flag in (("job_type", "--type"), ("status", "--status")):
            if arg(name):
                words += [flag, text(name)]
        if arg("enabled") is not None:
            words.append("--enabled" if arg("enabled") else "--disabled")
        return words
    if action == "get_integrity_report":
        return ["integrity", "report"] + (["--details"] if arg("details") else [])
    fixed = {"scheduler_health": ["jobs", "health"], "refresh_analytics": ["refresh", "analytics"],
             "list_integrity_checks": ["integrity", "checks"],
             "run_integrity_checks": ["integrity", "run"],
             "iter_integrity_issues": ["integrity", "issues"],
             "whoami": ["whoami"], "doctor": ["doctor"]}
    return fixed.get(action)


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
