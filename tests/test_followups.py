"""Structured follow-ups (#20.6): what to do next is data; each face words it.

The library records a follow-up as ``FollowUp(action, args, note)`` (``action`` a
Session method name); Python's wording is ``session.method(…)``
(:mod:`dhis2maint.followups`), the command line's ``dhis2maint …``
(:mod:`dhis2maint.options`).  No library message names a command; no CLI error
names a Python call; no Python error names an environment variable the settings
did not come from.
"""
import ast
import os
import re
import sys

import pytest

from dhis2maint import Session, cli, followups, options
from dhis2maint.errors import (ENVIRONMENT, AuthenticationError, Dhis2Error, InvalidResponseError,
                               NotFound, TransportError,
                               TaskTimeoutError)
from dhis2maint.models import DoctorCheck, FollowUp, HealthFinding

# Simulated time (tests/conftest.py fake_time): the stand-ins' jobs and the waits for them
# take no real seconds; requests still go over real HTTP.
pytestmark = pytest.mark.usefixtures("fake_time")

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dhis2maint")
# The faces word commands; the stand-in plays DHIS2.  Everything else is the library.
FACES = ("cli.py", "options.py", "mcp.py", "report.py", "report_html.py", "report_health.py",
         "_report_common.py", "progress.py", "__main__.py", "testing.py")
COMMAND = re.compile(r"dhis2maint (integrity|jobs|task|refresh|doctor|whoami|maintenance|"
                     r"validation|predictors|demo|mcp|version)\b")
# A Python call or keyword argument as a CLI message would show it.
PYTHON = re.compile(r"session\.|(?<![-\w])[a-z][a-z_]+=(?!=)")
PASSWORD = "Canary-Pw-20faces"

WAIT = FollowUp("wait_for_task", (("job_type", "ANALYTICS_TABLE"), ("job_id", "fyGB1234567")),
                "follow it")


def _message_strings(source):
    """The string constants of ``source`` that are not docstrings."""
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body and \
                isinstance(node.body[0], ast.Expr):
            docstrings.add(id(node.body[0].value))
    return [(node.lineno, _text(node)) for node in ast.walk(tree)
            if isinstance(_text(node), str) and id(node) not in docstrings]


def _text(node):
    """The str a literal node holds, else None (Python 3.7 parses strings as ast.Str;
    ast.Str is deprecated from 3.8 on, so only 3.7 asks for it)."""
    if sys.version_info < (3, 8):
        return node.s if isinstance(node, ast.Str) else None
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def test_no_library_module_names_a_command():
    offenders = []
    for name in sorted(os.listdir(PACKAGE)):
        if not name.endswith(".py") or name in FACES or name.startswith("_standin_"):
            continue
        with open(os.path.join(PACKAGE, name), encoding="utf-8") as f:
            for line, text in _message_strings(f.read()):
                if COMMAND.search(text):
                    offenders.append("{}:{}: {!r}".format(name, line, text[:90]))
    assert offenders == [], "word it as a FollowUp instead:\n" + "\n".join(offenders)


def test_the_scans_see_what_they_look_for():
    assert _message_strings('"""doc"""\nx = "run `dhis2maint jobs run X`"\n') == [
        (2, "run `dhis2maint jobs run X`")]
    assert COMMAND.search("run `dhis2maint task wait A B`")
    assert PYTHON.search("follow it with session.wait_for_task('A', 'B')")
    assert PYTHON.search("pass include_slow=True") and not PYTHON.search("--timeout=5 a == b")


# --- the words of each face ---------------------------------------------------------------


def test_python_and_cli_word_the_same_follow_up():
    assert followups.python_call(WAIT) == "session.wait_for_task('ANALYTICS_TABLE', 'fyGB1234567')"
    assert options.follow_up_command(WAIT) == "`dhis2maint task wait ANALYTICS_TABLE fyGB1234567`"
    run = FollowUp("run_job_configuration", (("job_id", "UsrJob00001"), ("wait", True)), "run it")
    assert followups.python_text([run], "check the log") == (
        "run it with session.run_job_configuration('UsrJob00001', wait=True); check the log")
    assert options.follow_up_text([run]) == "run it with `dhis2maint jobs run UsrJob00001 --wait`"
    cancel = FollowUp("cancel_job", (("job_type", "ANALYTICS_TABLE"),))
    assert followups.python_call(cancel) == "session.cancel_job(job_type='ANALYTICS_TABLE')"
    assert options.follow_up_command(cancel) == "`dhis2maint jobs cancel --type ANALYTICS_TABLE`"


def test_every_action_is_a_session_method_with_a_cli_command():
    for action in followups.ACTIONS:
        assert callable(getattr(Session, action)), action
        sample = FollowUp(action, (("job_type", "T"), ("job_id", "J")))
        assert options.follow_up_command(sample).startswith("`dhis2maint "), action


def test_the_actions_table_is_how_the_cli_words_every_follow_up():
    # one source (#20): a FollowUp of any ACTIONS row is worded as that row's command,
    # the actions the old hand-written table left out included
    for action in options.ACTIONS:
        assert options.follow_up_command(FollowUp(action.name)) == \
            "`dhis2maint {}`".format(action.command), action.name
        method = getattr(Session, action.name, None)
        if action.words:
            import inspect

            params = inspect.signature(method).parameters
            assert all(name in params for name, _ in action.words), action.name
    assert options.follow_up_command(FollowUp("clear_cache")) == \
        "`dhis2maint maintenance clear-cache`"
    assert options.follow_up_command(FollowUp("refresh_resource_tables")) == \
        "`dhis2maint refresh resource-tables`"


def test_the_actions_table_words_each_kind_of_argument():
    listing = FollowUp("list_job_configurations", (("job_type", "ANALYTICS_TABLE"),
                                                   ("enabled", False), ("status", "FAILED")))
    assert options.follow_up_command(listing) == \
        "`dhis2maint jobs list --type ANALYTICS_TABLE --status FAILED --disabled`"
    both = FollowUp("cancel_job", (("job_id", "UsrJob00001"), ("job_type", "ANALYTICS_TABLE")))
    assert options.follow_up_command(both) == "`dhis2maint jobs cancel UsrJob00001`"
    latest = FollowUp("wait_for_task", (("job_type", "ANALYTICS_TABLE"),))
    assert options.follow_up_command(latest) == "`dhis2maint task wait ANALYTICS_TABLE`"
    report = FollowUp("get_integrity_report", (("details", False),))
    assert options.follow_up_command(report) == "`dhis2maint integrity report`"
    unknown = FollowUp("wait_for_job_configuration", (("job_id", "J"),))
    assert options.follow_up_command(unknown).startswith("the wait for job configuration step")


def test_an_error_words_its_follow_ups_per_face():
    err = TaskTimeoutError("ANALYTICS_TABLE job fyGB1234567 did not finish within 5 s",
                           job_id="fyGB1234567", job_type="ANALYTICS_TABLE")
    err.follow_ups = (WAIT,)
    assert str(err).endswith("; follow it with session.wait_for_task('ANALYTICS_TABLE', "
                             "'fyGB1234567')")
    assert err.message == "ANALYTICS_TABLE job fyGB1234567 did not finish within 5 s"
    cli_text = options.error_text(err)
    assert cli_text.endswith("follow it with `dhis2maint task wait ANALYTICS_TABLE fyGB1234567`")
    assert not PYTHON.search(cli_text)
    import pickle

    assert pickle.loads(pickle.dumps(err)).follow_ups == (WAIT,)


def test_findings_carry_follow_ups_and_keep_what_to_do():
    finding = HealthFinding("failed", "SEVERE", "m", "w")
    assert finding.follow_ups == () and finding.what_to_do == "w"
    assert DoctorCheck("x", "pass", "d").follow_ups == ()


# --- a Python error names an environment variable only when the settings came from it -----


@pytest.fixture
def standin(start_standin):
    return start_standin("2.42", users={"admin": PASSWORD})


def test_auth_error_hint_follows_where_the_settings_came_from(standin):
    given = Session(standin.url, auth=("admin", "wrong-Pw-1"), retries=0)
    with given, pytest.raises(AuthenticationError) as info:
        given.whoami()
    assert "DHIS2_" not in str(info.value) and "given to the Session" in str(info.value)
    env = Session.from_env({"DHIS2_URL": standin.url, "DHIS2_USERNAME": "admin",
                            "DHIS2_PASSWORD": "wrong-Pw-1"}, retries=0)
    assert env.source == ENVIRONMENT
    with env, pytest.raises(AuthenticationError) as info:
        env.whoami()
    assert "DHIS2_USERNAME/DHIS2_PASSWORD" in str(info.value)
    uri = Session.from_uri(standin.url.replace("://", "://admin:wrong-Pw-1@"), retries=0)
    with uri, pytest.raises(AuthenticationError) as info:
        uri.whoami()
    assert "DHIS2_" not in str(info.value) and "the DHIS2 URI" in str(info.value)


def test_not_found_and_connection_hints_name_no_variable_for_code_settings(standin):
    session = Session(standin.url, auth=("admin", PASSWORD), retries=0)
    with session, pytest.raises(NotFound) as info:
        session.get_job_configuration("NoSuchJob01")
    assert "DHIS2_URL" not in str(info.value)
    env = Session.from_env({"DHIS2_URL": standin.url, "DHIS2_USERNAME": "admin",
                            "DHIS2_PASSWORD": PASSWORD}, retries=0)
    with env, pytest.raises(NotFound) as info:
        env.get_job_configuration("NoSuchJob01")
    assert "DHIS2_URL" in str(info.value)
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(Dhis2Error) as info, \
            Session("http://127.0.0.1:%d" % port, auth=("a", "b"), retries=0, timeout=2) as down:
        down.whoami()
    assert "DHIS2_URL" not in str(info.value) and "check the base URL" in str(info.value)
    with pytest.raises(Dhis2Error) as info:
        Session("127.0.0.1:%d" % port, auth=("a", "b"))
    assert "DHIS2_URL" not in str(info.value)
    with Session("http://127.0.0.1:%d" % port, auth=("a", "b"), retries=0,
                 timeout=2) as down:
        doctor = down.doctor()
    assert "DHIS2_URL" not in (doctor.checks[0].fix or "")



def _url_session(standin, source):
    """A session on ``standin`` whose URL was given in code or came from DHIS2_URL."""
    if source == "code":
        return Session(standin.url, auth=("admin", PASSWORD), retries=0)
    return Session.from_env({"DHIS2_URL": standin.url, "DHIS2_USERNAME": "admin",
                             "DHIS2_PASSWORD": PASSWORD}, retries=0)


def _url_hints(standin, source):
    """The URL hints of a redirect loop, a redirect elsewhere, a /api/system/info
    without a version and a 404 for it, from a session of ``source``."""
    hints = []
    for hostile, error in (
            (lambda: standin.redirect_next("/api/system/info", count=100), TransportError),
            (lambda: standin.redirect_next("http://localhost:1/dhis/api/system/info",
                                           path="/api/system/info"), InvalidResponseError),
            (lambda: standin.answer_next('{"status": "UP"}', path="/api/system/info"),
             InvalidResponseError),
            (lambda: standin.answer_next('{"httpStatusCode": 404, "message": "no"}', status=404,
                                         path="/api/system/info"), NotFound)):
        hostile()
        with _url_session(standin, source) as session, pytest.raises(error) as info:
            session.server_version
        hints.append(str(info.value))
        standin.reset_faults()  # the redirect loop's unused redirects
    return hints


def test_url_hints_name_dhis2_url_only_when_the_url_came_from_it(standin):
    # redirect loop, redirect elsewhere, not DHIS2, 404: each says where to fix the URL (#20)
    for text in _url_hints(standin, "code"):
        assert "DHIS2_URL" not in text and "the base URL" in text, text
        assert "--url" not in text, text
    for text in _url_hints(standin, "env"):
        assert "DHIS2_URL" in text and "the base URL" not in text, text


# --- the command line's stderr never names a Python call ------------------------------------


@pytest.fixture
def cli_server(monkeypatch, start_standin):
    srv = start_standin("2.42", job_seconds=0.3, users={"admin": PASSWORD})
    monkeypatch.setenv("DHIS2_URL", srv.url)
    monkeypatch.setenv("DHIS2_USERNAME", "admin")
    monkeypatch.setenv("DHIS2_PASSWORD", PASSWORD)
    monkeypatch.delenv("DHIS2_PAT", raising=False)
    return srv


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    said = "\n".join(line for line in err.splitlines() if line.startswith("dhis2maint"))
    assert not PYTHON.search(said), err
    return code, out, err


def test_cli_timeout_names_the_command_to_resume(cli_server, capsys):
    cli_server.job_seconds = 30.0
    code, _, err = run(capsys, "refresh", "analytics", "--timeout", "1", "--poll-interval", "0.2")
    assert code == cli.EXIT_JOB
    assert re.search(r"`dhis2maint task wait ANALYTICS_TABLE \w+`", err), err


def test_cli_job_failed(cli_server, capsys):
    cli_server.fail_next_job()
    code, _, err = run(capsys, "refresh", "analytics", "--poll-interval", "0.2")
    assert code == cli.EXIT_JOB and "dhis2maint: error:" in err


def test_cli_auth_error_names_the_variables_it_read(cli_server, capsys, monkeypatch):
    monkeypatch.setenv("DHIS2_PASSWORD", "wrong-Pw-1")
    code, _, err = run(capsys, "whoami")
    assert code == cli.EXIT_DHIS2 and "DHIS2_USERNAME/DHIS2_PASSWORD" in err


def test_cli_not_found_and_conflict(cli_server, capsys):
    code, _, err = run(capsys, "jobs", "show", "NoSuchJob01")
    assert code == cli.EXIT_DHIS2 and "404" in err
    code, _, err = run(capsys, "jobs", "delete", "BFa3jDsbtdO", "--yes")
    assert code == cli.EXIT_DHIS2 and "409" in err


def test_cli_health_findings_are_worded_as_commands(cli_server, capsys):
    code, out, err = run(capsys, "jobs", "health", "--fail-on", "warning")
    assert code == cli.EXIT_THRESHOLD
    assert "`dhis2maint jobs run UsrMetaSyn1 --wait`" in out
    assert "session." not in out
    code, out, _ = run(capsys, "jobs", "health", "--format", "json")
    import json

    failed = [f for f in json.loads(out)["findings"] if f["kind"] == "failed"][0]
    assert "session." not in failed["whatToDo"] and "`dhis2maint jobs show" in failed["whatToDo"]
    assert {"action": "run_job_configuration", "args": {"job_id": "UsrMetaSyn1", "wait": True},
            "note": "run it again"} in failed["followUps"]
    code, out, _ = run(capsys, "doctor")
    assert "session." not in out


def test_python_health_findings_are_worded_as_calls(cli_server):
    with Session.from_env() as session:
        failed = [f for f in session.scheduler_health().findings if f.kind == "failed"][0]
    assert "session.run_job_configuration('UsrMetaSyn1', wait=True)" in failed.what_to_do
    assert not COMMAND.search(failed.what_to_do)
