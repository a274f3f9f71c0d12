"""A fleet of DHIS2 servers (#23): the fleet file, the bounded-parallel map, the
``--fleet`` command line against several stand-ins (one down, one with a wrong
password, one on 2.36)."""
import contextlib
import gc
import json
import os
import pickle
import socket
import sqlite3
import threading

import pytest

from dhis2maint import cli, metrics
from dhis2maint.errors import AuthenticationError, ConfigurationError
from dhis2maint.fleet import (EXIT_PRECEDENCE, Fleet, FleetServer, fleet_row,
                              worst_exit_code)
from dhis2maint.session import TokenAuth

PASSWORD = "Fleet-Pw-31337"
WRONG = "Wrong-Pw-27182"
INLINE = "d2pat_InlineCanary0000000000000000000000000000"


def write(tmp_path, text, name="fleet.ini", mode=0o600):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    os.chmod(str(path), mode)
    return str(path)


# --- the fleet file ----------------------------------------------------------------------


def test_fleet_file_comments_default_inheritance_and_order(tmp_path):
    path = write(tmp_path, """
# shared by every server
[DEFAULT]
http-timeout = 45
username = monitor
password-env = FLEET_PW

; the national HMIS
[hmis]
url = https://hmis.example.org
insecure = yes

[tracker]
url = https://tracker.example.org/dhis
http-timeout = 90

[training]
url = https://training.example.org
username =
token-env = TRAINING_PAT
""")
    with pytest.raises(ConfigurationError) as raised:  # an empty key is an error, named
        Fleet.from_file(path)
    assert "section [training]" in str(raised.value) and "'username'" in str(raised.value)
    path = write(tmp_path, (tmp_path / "fleet.ini").read_text().replace("username =\n", ""))
    with pytest.raises(ConfigurationError) as raised:  # DEFAULT's username + token-env
        Fleet.from_file(path)
    assert "[training]" in str(raised.value) and "keep one" in str(raised.value)
    path = write(tmp_path, """
[DEFAULT]
http-timeout = 45
password-env = FLEET_PW
[hmis]
url = https://hmis.example.org
username = monitor
insecure = yes
[tracker]
url = https://tracker.example.org/dhis
username = monitor
http-timeout = 90
""")
    fleet = Fleet.from_file(path)
    assert fleet.names == ("hmis", "tracker")
    hmis, tracker = fleet.servers
    assert (hmis.http_timeout, hmis.insecure, hmis.password_env) == (45.0, True, "FLEET_PW")
    assert (tracker.http_timeout, tracker.insecure) == (90.0, False)
    assert hmis.source == "fleet file {}, section [hmis]".format(path)
    assert fleet.select(["tracker"]).names == ("tracker",)


@pytest.mark.parametrize("text, words", [
    ("[a]\nurl = https://a.org\ntoken-env = A\nhtp-timeout = 3\n",
     ["section [a]", "'htp-timeout'", "did you mean 'http-timeout'"]),
    ("[DEFAULT]\ninsecur = true\n[a]\nurl = https://a.org\ntoken-env = A\n",
     ["section [DEFAULT]", "'insecur'", "did you mean 'insecure'"]),
    ("[a]\nurl = https://a.org\n", ["section [a]", "no credentials"]),
    ("[a]\nurl = https://a.org\ntoken-env = A\nauth-file = /x.json\n", ["[a]", "keep one"]),
    ("[a]\nurl = https://a.org\nusername = u\n", ["[a]", "'username' needs 'password-env'"]),
    ("[a]\nurl = https://a.org\ntoken-env = A\nhttp-timeout = soon\n",
     ["[a]", "'http-timeout'", "seconds"]),
    ("[a]\nurl = https://a.org\ntoken-env = A\ninsecure = perhaps\n", ["[a]", "'insecure'"]),
    ("[a]\nurl = dhis2.example.org\ntoken-env = A\n", ["[a]", "'url'", "https://"]),
    ("[a]\nurl = https://u:p@a.org\ntoken-env = A\n", ["[a]", "must not carry credentials"]),
    ("[a]\ntoken-env = A\n", ["[a]", "no key 'url'"]),
    ("[a b]\nurl = https://a.org\ntoken-env = A\n", ["section [a b]", "server name"]),
    ("[a]\nurl = https://a.org\ntoken-env = A\n[a]\nurl = https://b.org\n",
     ["line 4", "[a] is given twice"]),
    ("[a]\nurl = https://a.org\nurl = https://b.org\n", ["section [a]", "'url' is given twice"]),
    ("url = https://a.org\n", ["line 1", "before any [section]"]),
    ("# nothing yet\n[DEFAULT]\nhttp-timeout = 5\n", ["has no server"]),
])
def test_fleet_file_errors_name_file_section_and_key(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as raised:
        Fleet.from_file(path)
    message = str(raised.value)
    assert "fleet file {}".format(path) in message
    for word in words:
        assert word in message, message


def test_missing_fleet_file_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read fleet file .*missing.ini"):
        Fleet.from_file(str(tmp_path / "missing.ini"))


@pytest.mark.skipif(os.name != "posix", reason="the permission rule is POSIX's")
def test_inline_secrets_follow_the_auth_file_rule_and_never_show(tmp_path):
    text = "[a]\nurl = https://a.org\ntoken = {}\n[b]\nurl = https://b.org\n" \
           "username = admin\npassword = {}\n".format(INLINE, PASSWORD)
    path = write(tmp_path, text, mode=0o644)
    with pytest.raises(ConfigurationError) as raised:
        Fleet.from_file(path)
    message = str(raised.value)
    assert "fleet file {}".format(path) in message and "chmod 600" in message
    assert INLINE not in message and PASSWORD not in message
    os.chmod(path, 0o600)
    fleet = Fleet.from_file(path)
    shown = repr(fleet.servers) + repr(fleet) + str(fleet.servers[0])
    assert INLINE not in shown and PASSWORD not in shown
    session = fleet["a"].session()
    assert session.auth == TokenAuth(INLINE) and INLINE not in repr(session.auth)
    assert fleet["b"].session().auth.password == PASSWORD  # type: ignore[union-attr]
    # a fleet file with only references may be readable by others
    os.chmod(write(tmp_path, "[a]\nurl = https://a.org\ntoken-env = A_PAT\n", "ref.ini"),
             0o644)
    assert Fleet.from_file(str(tmp_path / "ref.ini")).names == ("a",)


def test_credentials_are_read_when_the_session_is_made(tmp_path, monkeypatch):
    monkeypatch.delenv("FLEET_TEST_PAT", raising=False)
    path = write(tmp_path, "[hmis]\nurl = https://hmis.example.org\n"
                           "token-env = FLEET_TEST_PAT\nhttp-timeout = 12\n")
    server = Fleet.from_file(path)["hmis"]  # no variable needed to read the file
    with pytest.raises(ConfigurationError) as raised:
        server.session()
    assert "FLEET_TEST_PAT" in str(raised.value) and "section [hmis]" in str(raised.value)
    monkeypatch.setenv("FLEET_TEST_PAT", INLINE)
    session = server.session()
    assert session.auth == TokenAuth(INLINE) and session.timeout == 12.0
    assert session.base_url == "https://hmis.example.org"
    copy = pickle.loads(pickle.dumps(server))  # e.g. to an Airflow worker
    assert copy == server and INLINE not in pickle.dumps(server).decode("latin-1")


def test_select_unknown_name_suggests(tmp_path):
    fleet = Fleet.from_file(write(tmp_path, "[hmis]\nurl = https://a.org\ntoken-env = A\n"
                                            "[tracker]\nurl = https://b.org\ntoken-env = B\n"))
    with pytest.raises(ConfigurationError, match="no server 'hmsi' -- did you mean 'hmis'"):
        fleet.select(["hmsi"])


def test_airflow_connections_name_the_servers():
    fleet = Fleet.from_airflow_connections(["dhis2_hmis", "dhis2_tracker"])
    assert fleet.names == ("dhis2_hmis", "dhis2_tracker")
    assert fleet["dhis2_hmis"].airflow_conn == "dhis2_hmis"
    with pytest.raises(ConfigurationError, match="has no server"):
        Fleet.from_airflow_connections([])


# --- map ---------------------------------------------------------------------------------


def _fleet(names, monkeypatch):
    monkeypatch.setenv("FLEET_MAP_PAT", INLINE)
    return Fleet([FleetServer(n, url="https://{}.example.org".format(n),
                              token_env="FLEET_MAP_PAT") for n in names], "a test fleet")


def test_map_never_runs_more_than_parallel_at_once(monkeypatch):
    fleet = _fleet(["s{}".format(i) for i in range(7)], monkeypatch)
    lock = threading.Lock()
    state = {"now": 0, "most": 0}
    both = threading.Barrier(2, timeout=30)  # proves two do run side by side

    def fn(session):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            if session.base_url in ("https://s0.example.org", "https://s1.example.org"):
                both.wait()
            return session.base_url
        finally:
            with lock:
                state["now"] -= 1

    results = list(fleet.map(fn, parallel=2))
    assert state["most"] == 2
    assert sorted(r.server.name for r in results) == list(fleet.names)
    assert all(r.ok and r.value == "https://{}.example.org".format(r.server.name)
               for r in results)


def test_one_failure_does_not_stop_the_others(monkeypatch):
    fleet = _fleet(["a", "b", "c"], monkeypatch)
    closed = []

    def fn(session):
        original = session.close
        session.close = lambda: (closed.append(session.base_url), original())
        if "b." in session.base_url:
            raise AuthenticationError("HTTP 401")
        return 1

    results = {r.server.name: r for r in fleet.map(fn, parallel=3)}
    assert results["a"].value == results["c"].value == 1
    assert isinstance(results["b"].error, AuthenticationError) and results["b"].value is None
    assert len(closed) == 3  # every session closed in its worker, the failed one too


def test_parallel_is_checked_before_anything_runs(monkeypatch):
    fleet = _fleet(["a"], monkeypatch)
    called = []
    for bad in (0, -1, 1.5, True, "4", 65):
        with pytest.raises(ConfigurationError, match="parallel"):
            fleet.map(called.append, parallel=bad)
    assert called == []


def test_exit_precedence_failures_above_verdicts():
    assert EXIT_PRECEDENCE == (5, 3, 4, 2, 1, 0)
    assert worst_exit_code([0, 1, 0]) == 1
    assert worst_exit_code([1, 2, 0]) == 2
    assert worst_exit_code([2, 4, 1]) == 4
    assert worst_exit_code([4, 3]) == 3
    assert worst_exit_code([3, 5, 1]) == 5
    assert worst_exit_code([]) == 0
    row = fleet_row("hmis", "https://h.org", "doctor", 3, 1.23456, error="down")
    assert (row.outcome, row.answered, row.seconds, row.last_success) == (
        "failed", False, 1.235, None)


# --- the command line against several stand-ins ------------------------------------------


@pytest.fixture(scope="module")
def fleet_file(start_module_standin, tmp_path_factory):
    """hmis (2.42), old (2.36), down (a closed port), wrongpw (401)."""
    users = {"admin": PASSWORD}
    current = start_module_standin("2.42", job_seconds=0.2, users=users)
    old = start_module_standin("2.36", job_seconds=0.2, users=users)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    folder = tmp_path_factory.mktemp("fleet")
    path = folder / "fleet.ini"
    path.write_text("""# the test fleet
[DEFAULT]
username = admin
password-env = FLEET_CLI_PW
http-timeout = 10

[hmis]
url = {}

[old]
url = {}

[down]
url = http://127.0.0.1:{}

[wrongpw]
url = {}
password-env = FLEET_CLI_WRONG
""".format(current.url, old.url, closed, current.url), encoding="utf-8")
    return str(path)


@pytest.fixture
def fleet_cli(monkeypatch, capsys, fleet_file):
    """``fleet_cli(ARGS)`` -> (exit code, stdout, stderr) of ``dhis2maint --fleet FILE ARGS``
    in this process; no password ever shows."""
    for name in ("DHIS2_URL", "DHIS2_USERNAME", "DHIS2_PASSWORD", "DHIS2_PAT",
                 "DHIS2MAINT_HISTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLEET_CLI_PW", PASSWORD)
    monkeypatch.setenv("FLEET_CLI_WRONG", WRONG)

    def call(args):
        # Garbage earlier tests left in reference cycles is collected now, not inside the
        # run: with urllib3 1.25 (min) a socket test_faults' job-recovery cases leave
        # behind prints "Exception ignored ... unclosed socket" when collected, and the
        # run's stderr is checked line by line.
        gc.collect()
        capsys.readouterr()
        try:
            code = cli.main(["--fleet", fleet_file] + list(args))
        except SystemExit as stop:  # argparse's own errors
            code = stop.code
        out, err = capsys.readouterr()
        assert PASSWORD not in out + err and WRONG not in out + err
        return code, out, err

    return call


def test_integrity_run_across_the_fleet(fleet_cli, tmp_path):
    history = str(tmp_path / "h.db")
    prom = str(tmp_path / "fleet.prom")
    reports = tmp_path / "reports"
    reports.mkdir()
    code, out, err = fleet_cli(["integrity", "run", "--history", history, "--metrics-file",
                                prom, "--output-dir", str(reports), "--format", "json",
                                "--parallel", "2"])
    assert code == 3, err  # a server down (3) is worse than any verdict
    rows = json.loads(out)
    assert [r["server"] for r in rows] == ["hmis", "old", "down", "wrongpw"]
    by = {r["server"]: r for r in rows}
    assert by["hmis"]["outcome"] == "ok" and by["hmis"]["dhis2_version"].startswith("2.42")
    assert by["old"]["outcome"] == "ok" and by["old"]["dhis2_version"].startswith("2.36")
    assert by["hmis"]["issues"]["SEVERE"] > 0 and by["hmis"]["new_issues"] > 0
    assert by["down"]["outcome"] == "failed" and by["down"]["exit_code"] == 3
    assert "could not connect" in by["down"]["error"] and "[down]" in by["down"]["error"]
    assert by["wrongpw"]["exit_code"] == 3 and "401" in by["wrongpw"]["error"]
    assert by["hmis"]["report"] == str(reports / "hmis.json")
    # each server's own report, the failed ones without one
    assert sorted(os.listdir(str(reports))) == ["hmis.json", "old.json"]
    saved = json.loads((reports / "old.json").read_text())
    assert saved["source"]["dhis2Version"].startswith("2.36") and saved["results"]
    # stderr: every server's line starts with its name
    lines = [line for line in err.splitlines() if line.strip()]
    assert any(line.startswith("[down] dhis2maint: error: ") for line in lines)
    assert any(line.startswith("[wrongpw] dhis2maint: error: ") for line in lines)
    assert all(line.startswith(("[hmis] ", "[old] ", "[down] ", "[wrongpw] "))
               for line in lines), lines
    # one metrics file, every server labelled by its name
    with open(prom, encoding="utf-8") as handle:
        samples = metrics.parse(handle.read())
    up = {s.label("server"): s.value for s in samples if s.name == "dhis2maint_up"}
    assert up["hmis"] == up["old"] == 1 and up["down"] == 0
    assert {s.label("server") for s in samples if s.name == "dhis2maint_integrity_issues"} \
        == {"hmis", "old"}
    # per-server history; the second run sees nothing new, and trends grow
    with contextlib.closing(sqlite3.connect(history)) as db:
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
    code, out, err = fleet_cli(["integrity", "run", "--history", history, "--servers",
                                "hmis,old", "--fail-on-new", "severe", "--format", "json"])
    assert code == 0, err
    rows = json.loads(out)
    assert [r["new_issues"] for r in rows] == [0, 0]
    assert all(len(r["trend"]) == 2 and r["last_success"] for r in rows)


def test_table_verdicts_and_exit_codes(fleet_cli):
    code, out, err = fleet_cli(["integrity", "report", "--servers", "old,hmis",
                                "--fail-on", "warning"])
    header, *rows = out.splitlines()
    assert header.split()[:9] == ["SERVER", "DHIS2", "VERDICT", "CRITICAL", "SEVERE",
                                  "WARNING", "INFO", "NEW", "SECONDS"]
    assert [r.split()[0] for r in rows] == ["hmis", "old"]  # file order
    code, out, err = fleet_cli(["jobs", "health", "--servers", "hmis,old"])
    assert code == 1  # verdicts only
    assert "[hmis] dhis2maint: " in err and "[old] dhis2maint: " in err
    assert "FINDINGS" in out.splitlines()[0] and "stuck:1" in out
    code, out, err = fleet_cli(["version", "--servers", "hmis,old,wrongpw"])
    assert code == 3
    table = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert table["old"][1].startswith("2.36") and table["old"][2] == "ok"
    assert table["wrongpw"][2] == "failed"


@pytest.mark.parametrize("args, words", [
    (["jobs", "list"], ["`jobs list` is not a fleet command", "integrity run"]),
    (["--url", "http://x.org", "version"], ["--url cannot be combined"]),
    (["--servers", "hmsi", "version"], ["no server 'hmsi'", "did you mean 'hmis'"]),
    (["--parallel", "0", "version"], ["--parallel", "from 1 to 64"]),
    (["integrity", "report", "--format", "csv"], ["--format csv is not a fleet format"]),
    (["integrity", "report", "--format", "html"], ["-o FILE"]),
    (["integrity", "report", "--output-dir", "/nonexistent/reports"],
     ["--output-dir /nonexistent/reports: no such folder"]),
])
def test_usage_errors_exit_2_before_any_server(fleet_cli, args, words):
    code, out, err = fleet_cli(args)
    assert code == 2 and out == ""
    for word in words:
        assert word in err, err


def test_a_server_without_its_variable_fails_alone(fleet_file, tmp_path, monkeypatch, capsys):
    hmis = Fleet.from_file(fleet_file)["hmis"]
    path = write(tmp_path, "[hmis]\nurl = {}\nusername = admin\npassword-env = FLEET_CLI_PW\n"
                           "[nopat]\nurl = {}\ntoken-env = FLEET_UNSET_PAT\n".format(
                               hmis.url, hmis.url))
    monkeypatch.setenv("FLEET_CLI_PW", PASSWORD)
    monkeypatch.delenv("FLEET_UNSET_PAT", raising=False)
    code = cli.main(["--fleet", path, "version"])
    out, err = capsys.readouterr()
    assert code == 2  # that server's configuration; the other one ran
    table = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert " ok " in table["hmis"] and "FLEET_UNSET_PAT" in table["nopat"]
    assert "[nopat] dhis2maint: error: " in err and "section [nopat]" in err
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "5 above 3 above 4 above 2" in capsys.readouterr().out  # the precedence, stated


def test_a_failure_after_the_command_still_gives_the_servers_row(fleet_cli, monkeypatch):
    from dhis2maint import cli_fleet

    real = cli_fleet._finished

    def finished(server, *args):
        if server.name == "old":
            raise OSError(28, "No space left on device")
        return real(server, *args)

    monkeypatch.setattr(cli_fleet, "_finished", finished)
    code, out, err = fleet_cli(["jobs", "health", "--servers", "hmis,old", "--format",
                                "json", "--fail-on", "never"])
    rows = {r["server"]: r for r in json.loads(out)}
    assert code == 5 and rows["hmis"]["outcome"] == "ok" and rows["hmis"]["findings"]
    assert rows["old"]["outcome"] == "failed" and "No space left" in rows["old"]["error"]
    assert "[old] dhis2maint: error: " in err


def test_fleet_dashboard(fleet_cli, tmp_path):
    from dhis2maint import report_html

    if not hasattr(report_html, "write_fleet_html"):
        pytest.skip("the fleet dashboard (report_html.write_fleet_html) is not merged yet")
    page = str(tmp_path / "fleet.html")
    code, out, err = fleet_cli(["integrity", "report", "--servers", "hmis,down",
                                "--format", "html", "-o", page, "--output-dir",
                                str(tmp_path)])
    assert code == 3
    with open(page, encoding="utf-8") as handle:
        html = handle.read()
    assert 'data-server="down"' in html and 'href="hmis.html"' in html


def test_console_script_runs_a_fleet(run_cli, fleet_file):
    proc = run_cli(["--fleet", fleet_file, "--servers", "old,hmis", "version"],
                   env={"FLEET_CLI_PW": PASSWORD}, secrets=[PASSWORD])
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == ["SERVER", "hmis", "old"]


def test_debug_lines_of_each_server_carry_its_name(run_cli, fleet_file):
    # --debug's log lines go to the stderr of the moment: a server thread's get its
    # [NAME] like the rest of its output (they bypassed the prefix before).
    proc = run_cli(["--fleet", fleet_file, "--servers", "old,hmis", "--debug", "version"],
                   env={"FLEET_CLI_PW": PASSWORD}, secrets=[PASSWORD])
    assert proc.returncode == 0, proc.stderr
    connecting = [line for line in proc.stderr.splitlines() if "GET /api/" in line]
    assert connecting and {line.split()[0] for line in connecting} == {"[old]", "[hmis]"}


def test_push_values_across_a_fleet_pushes_each_servers_own_counts(
        start_standin, tmp_path, monkeypatch, capsys):
    # #25 across a fleet (#23): each server's run is pushed to that server, a server
    # whose data-value metadata is missing fails alone, the others still push
    from dhis2maint import Session

    users = {"admin": PASSWORD}
    ready = start_standin("2.42", job_seconds=0.1, users=users)
    old = start_standin("2.36", job_seconds=0.1, users=users)
    bare = start_standin("2.42", job_seconds=0.1, users=users)  # never set up
    for srv in (ready, old):
        with Session(srv.url, auth=("admin", PASSWORD)) as session:
            assert session.setup_data_values().ok
    path = tmp_path / "fleet.ini"
    path.write_text("[DEFAULT]\nusername = admin\npassword-env = FLEET_PUSH_PW\n"
                    "[ready]\nurl = {}\n[old]\nurl = {}\n[bare]\nurl = {}\n".format(
                        ready.url, old.url, bare.url), encoding="utf-8")
    for name in ("DHIS2_URL", "DHIS2_USERNAME", "DHIS2_PASSWORD", "DHIS2_PAT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLEET_PUSH_PW", PASSWORD)
    code = cli.main(["--fleet", str(path), "integrity", "run", "--push-values",
                     "--format", "json"])
    out, err = capsys.readouterr()
    rows = {r["server"]: r for r in json.loads(out)}
    for name, srv in (("ready", ready), ("old", old)):
        pushed = [r for r in srv.requests
                  if r.method == "POST" and r.path == "/api/dataValueSets"]
        assert len(pushed) == 1, name
        assert rows[name]["exit_code"] == 0, err
    assert rows["bare"]["exit_code"] != 0 and code == rows["bare"]["exit_code"]
    assert any(line.startswith("[bare] ") and "NOT pushed" in line
               for line in err.splitlines()), err
    assert PASSWORD not in out + err
