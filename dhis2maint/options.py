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
import sys
from typing import Any, Callable, Dict, Mapping, Optional

from .arguments import seconds
from .connections import read_auth_file
from .errors import ConfigurationError, Dhis2Error, JobFailedError, TaskTimeoutError
from .session import Session

__all__ = ["EXIT_OK", "EXIT_THRESHOLD", "EXIT_USAGE", "EXIT_DHIS2", "EXIT_JOB", "EXIT_INTERNAL",
           "UsageError", "connection_options", "output_options", "connect", "run_command",
           "exit_code",
           "follow_up_text"]

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
        sys.stderr.write("dhis2maint: interrupted{}\n".format(
            "".join("; " + follow_up_text(f) for f in getattr(interrupt, "follow_ups", ()))))
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - every failure gets an exit code
        return report_failure(exc, debug)
    finally:
        if warnings is not None:
            logging.getLogger("dhis2maint").removeHandler(warnings)


# --- follow-ups worded for the command line (#21.3) ------------------------------------
# The library says what to do next as FollowUp(action, args) data; these are the
# `dhis2maint …` commands that do it.


def follow_up_text(follow_up: Any, known_only: bool = False) -> str:
    """A :class:`~dhis2maint.models.FollowUp` as a sentence naming the ``dhis2maint``
    command or option that does it; an action without one: its note, or the
    action's name ("" with ``known_only``)."""
    action = getattr(follow_up, "action", "")
    arg = getattr(follow_up, "arg")
    if action == "trust_ca_bundle":
        return ("trust the server's CA with {}=/path/ca.pem, or add --insecure to skip "
                "certificate checks (not recommended)".format(arg("env") or "REQUESTS_CA_BUNDLE"))
    if action == "wait_for_task":
        job_type, job_id = arg("job_type"), arg("job_id")
        return ("the {} job {} goes on in DHIS2; follow it again with `dhis2maint task wait "
                "{} {}`".format(job_type, job_id, job_type, job_id))
    if action == "run_job_configuration":
        return "run it now with `dhis2maint jobs run {}`".format(arg("job_id"))
    if known_only:
        return ""
    note = getattr(follow_up, "note", "")
    return note or action.replace("_", " ")


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
        sys.stderr.write("dhis2maint: error: {}{}\n".format(one_line(exc), "".join(
            "; " + text for text in (follow_up_text(f, known_only=True)
                                     for f in getattr(exc, "follow_ups", ())) if text)))
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
