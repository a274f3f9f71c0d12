"""The command line's own logic, in-process: arguments, auth files, exit codes."""
import json
import os

import pytest

from dhis2maint import (AuthenticationError, ConfigurationError, InvalidResponseError,
                        JobFailedError, ServerError, TaskTimeoutError, TransportError,
                        UnsupportedServerError)
from dhis2maint import cli

SECRET = "Canary-Pw-7f3a9"
TOKEN = "d2pat_CanaryTokenAbCdEf0123456789abcdef0123"


def parse(*argv):
    return cli.build_parser().parse_args(list(argv))


@pytest.mark.parametrize("argv", [
    ["integrity", "run", "--fail-on", "catastrophic"],
    ["integrity", "run", "--format", "xml"],
    ["integrity", "diff", "only-one.json"],
    ["refresh", "analytics", "--last-years", "two"],
    ["predictors", "run", "--start-date", "2024-01-01"],
    ["validation", "run", "--start-date", "2024-01-01", "--end-date", "2024-02-01"],
    ["task", "wait", "ANALYTICS_TABLE"],
    ["no-such-command"],
    ["integrity", "run", "--password", SECRET],
])
def test_argument_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert SECRET not in capsys.readouterr().err


def test_group_without_action_prints_help_and_exits_2(capsys):
    assert cli.main(["integrity"]) == 2
    assert "checks" in capsys.readouterr().err
    assert cli.main([]) == 2


def test_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for line in ("0  success", "1  a verdict", "2  usage", "3  DHIS2 or connection", "4  job failed"):
        assert line in text


def test_connection_options_work_before_and_after_the_command():
    before = parse("--url", "https://a.example.org", "integrity", "checks")
    after = parse("integrity", "checks", "--url", "https://a.example.org")
    assert before.url == after.url == "https://a.example.org"
    assert "token" not in vars(before)


def test_fail_on_is_case_insensitive():
    assert parse("integrity", "run", "--fail-on", "SEVERE").fail_on == "severe"


@pytest.mark.parametrize("exc, code", [
    (ConfigurationError("DHIS2_URL is not set"), 2),
    (cli.UsageError("bad"), 2),
    (ValueError("not a UID"), 2),
    (AuthenticationError("401"), 3),
    (ServerError("502"), 3),
    (TransportError("refused"), 3),
    (InvalidResponseError("html"), 3),
    (UnsupportedServerError("old"), 3),
    (JobFailedError("failed"), 4),
    (TaskTimeoutError("late"), 4),
])
def test_exit_code_per_failure_class(exc, code, monkeypatch, capsys):
    def boom(args):
        raise exc

    monkeypatch.setattr(cli, "cmd_version", boom)
    assert cli.main(["version"]) == code
    err = capsys.readouterr().err
    assert err.startswith("dhis2maint: error: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_debug_shows_the_traceback_and_keeps_the_exit_code(monkeypatch, capsys):
    def boom(args):
        raise JobFailedError("failed")

    monkeypatch.setattr(cli, "cmd_version", boom)
    assert cli.main(["version", "--debug"]) == cli.EXIT_JOB
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in boom" in err
    assert err.rstrip().splitlines()[-1] == "dhis2maint: error: failed"


@pytest.mark.parametrize("exc", [RuntimeError("a bug"), MemoryError(), RecursionError("deep"),
                                 OverflowError("int too large"), KeyError("x")])
def test_unexpected_exceptions_exit_5_not_the_threshold_code(monkeypatch, capsys, exc):
    # exit 1 means "issues at --fail-on level": a crash must never look like that
    def boom(args):
        raise exc

    monkeypatch.setattr(cli, "cmd_version", boom)
    assert cli.main(["version"]) == cli.EXIT_INTERNAL == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("dhis2maint: internal error: {}".format(type(exc).__name__))
    assert "rerun with --debug" in err
    assert cli.main(["version", "--debug"]) == 5
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "rerun with --debug" not in err


def write_auth(tmp_path, data, mode=0o600):
    path = tmp_path / "auth.json"
    path.write_text(json.dumps(data))
    os.chmod(str(path), mode)
    return str(path)


def test_auth_file_dhis_format(tmp_path):
    path = write_auth(tmp_path, {"dhis": {"baseurl": "https://a.example.org",
                                          "username": "admin", "password": SECRET}})
    session = cli.connect(parse("version", "--auth-file", path), environ={})
    assert session.base_url == "https://a.example.org" and session.auth.password == SECRET
    assert SECRET not in repr(session)


def test_auth_file_token_format(tmp_path):
    path = write_auth(tmp_path, {"url": "https://b.example.org", "token": TOKEN})
    session = cli.connect(parse("version", "--auth-file", path), environ={})
    assert session.auth_kind == "token"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_auth_file_readable_by_others_is_refused(tmp_path, mode):
    path = write_auth(tmp_path, {"url": "https://b.example.org", "token": TOKEN}, mode)
    with pytest.raises(ConfigurationError, match="too open.*chmod 600"):
        cli.connect(parse("version", "--auth-file", path), environ={})


@pytest.mark.parametrize("content", ["not json", "[]", '{"dhis": {"username": "a"}}'])
def test_bad_auth_files(tmp_path, content):
    path = tmp_path / "auth.json"
    path.write_text(content)
    os.chmod(str(path), 0o600)
    with pytest.raises(ConfigurationError, match="auth file"):
        cli.connect(parse("version", "--auth-file", str(path)), environ={})


def test_missing_auth_file(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read auth file"):
        cli.connect(parse("version", "--auth-file", str(tmp_path / "nope.json")), environ={})


def test_flags_override_environment():
    args = parse("version", "--url", "https://flag.example.org", "--username", "admin")
    session = cli.connect(args, environ={"DHIS2_URL": "https://env.example.org",
                                         "DHIS2_PASSWORD": SECRET})
    assert session.base_url == "https://flag.example.org"
    assert session.auth.username == "admin" and session.auth.password == SECRET


def test_environment_alone():
    session = cli.connect(parse("version"), environ={"DHIS2_URL": "https://env.example.org",
                                                     "DHIS2_PAT": TOKEN})
    assert session.auth_kind == "token" and session.base_url == "https://env.example.org"


def test_no_url_anywhere_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="DHIS2_URL"):
        cli.connect(parse("version"), environ={})


def test_username_without_password_and_no_terminal(monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
    with pytest.raises(ConfigurationError, match="DHIS2_PASSWORD"):
        cli.connect(parse("version", "--url", "https://a.example.org", "--username", "admin"),
                    environ={})
