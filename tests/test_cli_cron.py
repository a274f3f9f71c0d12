"""The command line as cron runs it (#21): real `dhis2maint` subprocesses with stdin,
stdout and stderr not terminals and no --progress, against the stand-in over HTTP.

Never hide a verdict, never lose a run, Ctrl-C says how to resume, tables are never
cut off, and messages say what to do."""
import functools
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from dhis2maint.testing import Dhis2StandIn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "Canary-Cron-Pw-21"


@pytest.fixture(scope="module")
def module_srv(start_module_standin):
    return start_module_standin("2.42", job_seconds=0.2, users={"admin": PASSWORD})


@pytest.fixture
def srv(module_srv):
    module_srv.reset_faults()
    module_srv.clear_requests()
    module_srv.drift = 0
    module_srv.scheduler.reset()
    return module_srv


def cron_env(url=None, env=None):
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("DHIS2") and k not in ("COLUMNS", "LINES")}
    environ["PYTHONPATH"] = ROOT + os.pathsep + environ.get("PYTHONPATH", "")
    if url:
        environ.update({"DHIS2_URL": url, "DHIS2_USERNAME": "admin", "DHIS2_PASSWORD": PASSWORD})
    environ.update(env or {})
    return environ


@pytest.fixture
def run_cli(run_cli):
    """``dhis2maint ARGS`` as cron runs it: no terminal anywhere."""
    return functools.partial(run_cli, password=PASSWORD, secrets=(PASSWORD,), timeout=120,
                             unset=("DHIS2", "COLUMNS", "LINES"), stdin=subprocess.DEVNULL)


def one_line(stderr):
    """The one line on stderr that is neither a note nor a warning: the verdict."""
    lines = [line for line in stderr.splitlines()
             if not line.startswith(("dhis2maint: note:", "dhis2maint: warning:"))]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("dhis2maint: "), stderr
    return lines[0]


# --- 1. never hide a verdict ------------------------------------------------------


def test_fail_on_new_says_why_on_stderr(srv, tmp_path, run_cli):
    db = str(tmp_path / "h.sqlite")
    args = ["integrity", "run", "--details", "--history", db, "--fail-on-new", "severe"]
    first = run_cli(args, url=srv.url)
    assert first.returncode == 1
    line = one_line(first.stderr)
    assert re.match(r"dhis2maint: [\d,]+ new issues at SEVERE or worse \(the first recorded "
                    r"run of this server\): \w+ \d+", line), line
    srv.drift = 1
    second = run_cli(args, url=srv.url)
    assert second.returncode == 1
    line = one_line(second.stderr)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert re.match(r"dhis2maint: [\d,]+ new issues? at SEVERE or worse since run 1 "
                    r"\(\d{4}-\d\d-\d\d\): \w+ [\d,]+", line), line
    assert "since run 1 ({})".format(day) in line or "since run 1 (" in line
    # what the line names adds up
    total = int(line.split(" new issue")[0].split()[-1].replace(",", ""))
    named = [int(n.replace(",", "")) for n in re.findall(r"\w+ ([\d,]+)(?:,|$)",
                                                         line.split(": ", 2)[2])]
    assert sum(named) <= total and named


def test_fail_on_says_why_and_quiet_does_not_hide_it(srv, run_cli):
    proc = run_cli(["integrity", "run", "--fail-on", "severe", "--quiet"], url=srv.url)
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert re.search(r"[\d,]+ issues at SEVERE or worse in \d+ checks \(--fail-on severe\): ",
                     line), line
    report = run_cli(["integrity", "report", "--fail-on", "severe"], url=srv.url)
    assert report.returncode == 1 and "at SEVERE or worse" in one_line(report.stderr)


def test_jobs_health_exits_1_on_severe_findings_by_default(srv, run_cli):
    proc = run_cli(["jobs", "health"], url=srv.url)
    assert proc.returncode == 1, proc.stderr
    line = one_line(proc.stderr)
    assert re.match(r"dhis2maint: \d+ scheduler findings? at SEVERE or worse: ", line), line
    assert "failed" in line or "stuck" in line or "overdue" in line
    critical = run_cli(["jobs", "health", "--fail-on", "critical"], url=srv.url)
    assert critical.returncode == 0 and critical.stderr == ""
    never = run_cli(["jobs", "health", "--fail-on", "never"], url=srv.url)
    assert never.returncode == 0
    doctor = run_cli(["doctor"], url=srv.url)  # the same findings fail the doctor
    assert doctor.returncode == 1
    assert one_line(doctor.stderr).startswith("dhis2maint: doctor: 1 check failed: scheduler")
    srv.scheduler.reset(healthy=True)
    healthy = run_cli(["jobs", "health"], url=srv.url)
    assert healthy.returncode == 0 and healthy.stderr == ""


def test_integrity_diff_says_how_many_new_issues(srv, tmp_path, run_cli):
    old, new = str(tmp_path / "old.json"), str(tmp_path / "new.json")
    assert run_cli(["integrity", "run", "CNO", "--details", "--format", "json", "-o", old,
                    "--quiet"], url=srv.url).returncode == 0
    assert run_cli(["integrity", "run", "CNO", "users_with_all_authority", "--details",
                    "--format", "json", "-o", new, "--quiet"], url=srv.url).returncode == 0
    proc = run_cli(["integrity", "diff", old, new])
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    with open(new) as handle:
        count = len(json.load(handle)["results"]["users_with_all_authority"]["issues"])
    assert "{} new issue".format(count) in line and "users_with_all_authority" in line
    assert run_cli(["integrity", "diff", old, new, "--fail-on", "critical"]).stderr == ""


def _exit_code_tables():
    """The exit-code tables people read: cli's docstring, `--help`'s epilog and the
    README's (or, once it moved, the docs' failure-modes page)."""
    from dhis2maint import cli

    tables = [cli.__doc__, cli.EXIT_CODES_HELP]
    for path in (os.path.join("docs", "failure-modes.rst"), "README.rst"):
        full = os.path.join(ROOT, path)
        if os.path.exists(full):
            with open(full, encoding="utf-8") as handle:
                text = handle.read()
            if "\n1     a verdict" in text:  # the table
                tables.append(text[text.index("\n1     a verdict"):])
                break
    return [" ".join(t.replace("``", "").split()) for t in tables]


def test_help_and_exit_code_table_agree(run_cli):
    tables = _exit_code_tables()
    assert len(tables) == 3
    for text in tables:
        assert "a verdict" in text and "saying why" in text
        assert "default severe" in text and "jobs health" in text
    health_help = " ".join(run_cli(["jobs", "health", "--help"]).stdout.split())
    assert "default severe" in health_help and "never" in health_help


# --- 3. Ctrl-C while following a job -------------------------------------------------


def _interrupt_while_following(srv, args, job_path):
    proc = subprocess.Popen([sys.executable, "-m", "dhis2maint"] + args,
                            env=cron_env(srv.url), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)
    try:
        deadline = time.monotonic() + 60
        while not any(r.method == "GET" and r.path.startswith(job_path)
                      for r in srv.requests):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the CLI never started following the job"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


@pytest.mark.parametrize("args, job_type", [
    (["refresh", "analytics"], "ANALYTICS_TABLE"),
    (["integrity", "run", "CNO"], "DATA_INTEGRITY"),
    (["task", "wait", "RESOURCE_TABLE"], "RESOURCE_TABLE"),
])
def test_ctrl_c_says_the_job_goes_on_and_how_to_follow_it(args, job_type, run_cli):
    with Dhis2StandIn(version="2.42", job_seconds=60, users={"admin": PASSWORD}) as slow:
        if args[0] == "task":
            started = run_cli(["refresh", "resource-tables", "--no-wait"], url=slow.url)
            assert started.returncode == 0, started.stderr
            args = args + [started.stdout.split()[1]]
        code, out, err = _interrupt_while_following(
            slow, args, "/api/system/tasks/{}/".format(job_type))
        job_ids = slow.job_ids(job_type)
    assert code == 130, err
    assert len(job_ids) == 1
    line = one_line(err)
    assert "goes on in DHIS2" in line and "Traceback" not in err
    assert "`dhis2maint task wait {} {}`".format(job_type, job_ids[0]) in line, line


# --- 2. never lose a run ---------------------------------------------------------------


def _unwritable_folder(tmp_path):
    """A folder nobody here can create files in: /sys as root (permissions do not
    stop root, sysfs does), else a folder without write permission."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return "/sys"
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    return str(folder)


@pytest.mark.parametrize("flag", ["--history", "--output"])
def test_unwritable_history_or_output_exits_2_before_anything_is_sent(srv, tmp_path, flag, run_cli):
    missing = str(tmp_path / "no-such-folder" / "deeper" / "file")
    locked = os.path.join(_unwritable_folder(tmp_path), "dhis2maint-test-file")
    for path, cause in ((missing, "does not exist"), (locked, "permission denied")):
        srv.clear_requests()
        proc = run_cli(["integrity", "run", "--details", "--format", "json", flag, path],
                       url=srv.url)
        assert proc.returncode == 2, proc.stderr
        line = one_line(proc.stderr)
        assert path in line and cause in line, line
        assert [r for r in srv.requests if r.method == "POST"] == []  # nothing started
        assert not os.path.exists(path)


def test_sqlite_unable_to_open_names_the_path_and_the_cause(tmp_path):
    from dhis2maint.errors import HistoryError
    from dhis2maint.history import History

    path = str(tmp_path / "gone" / "h.sqlite")
    with pytest.raises(HistoryError) as info:
        History(path)
    assert path in str(info.value) and "the folder {} does not exist".format(
        os.path.dirname(path)) in str(info.value)


def _file_size_limit(limit):
    def limit_writes():  # "disk full" for this process only: writes past LIMIT fail
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_writes


@pytest.mark.parametrize("fmt", ["table", "jsonl"])
def test_a_run_that_cannot_be_recorded_is_still_reported(srv, tmp_path, fmt):
    from dhis2maint.history import History

    db = str(tmp_path / "h.sqlite")
    History(db).close()  # an existing history; the run's record will not fit on "disk"
    env = cron_env(srv.url, {"PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": str(tmp_path)})
    proc = subprocess.run(
        [sys.executable, "-m", "dhis2maint", "integrity", "run", "--details", "--history", db,
         "--format", fmt], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, universal_newlines=True, timeout=120,
        preexec_fn=_file_size_limit(48 * 1024))
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert "NOT recorded" in line and db in line and "disk full" in line, line
    assert "report was written to stdout" in line
    if fmt == "table":
        assert "Total:" in proc.stdout
    else:
        rows = [json.loads(r) for r in proc.stdout.splitlines()]
        assert len(rows) > 100  # every issue, not only what fitted in the history
    with History(db) as history:
        assert history.runs() == []  # nothing half-recorded


# --- 4. tables are never cut off -------------------------------------------------------


def test_tables_written_to_a_file_or_pipe_cut_nothing(srv, run_cli):
    jobs = json.loads(run_cli(["jobs", "list", "--format", "json"], url=srv.url).stdout)
    table = run_cli(["jobs", "list"], url=srv.url)
    assert table.returncode == 0, table.stderr
    assert "…" not in table.stdout and "..." not in table.stdout
    for job in jobs:
        assert job["id"] in table.stdout and job["jobType"] in table.stdout
        assert job["name"] in table.stdout  # names too: nothing is cut off a terminal
    details = run_cli(["integrity", "run", "--details", "--quiet"], url=srv.url)
    cut = [line for line in details.stdout.splitlines()
           if "…" in line and not line.strip().startswith("… and ")]
    assert cut == []
    heads = re.findall(r"^(?:INFO|WARNING|SEVERE|CRITICAL)  [\d,]+ issues?: .*\((\w+)\)$",
                       details.stdout, flags=re.M)
    assert heads and all(name in srv.check_names() for name in heads)


def test_columns_is_honoured_and_names_stay_whole(srv, run_cli):
    proc = run_cli(["integrity", "checks"], url=srv.url, env={"COLUMNS": "90"})
    lines = proc.stdout.splitlines()
    assert "…" in proc.stdout  # display names and sections gave up room
    names = [line.split()[0] for line in lines[1:] if line.strip() and "checks," not in line]
    assert sorted(names) == sorted(srv.check_names())  # every name whole
    assert all(len(line) <= 90 for line, name in zip(lines[1:], names) if len(name) <= 30)


def test_on_a_terminal_ids_and_types_are_never_cut(run_cli):
    import fcntl
    import pty
    import struct
    import termios

    with Dhis2StandIn(version="2.42", job_seconds=0.2, users={"admin": PASSWORD}) as server:
        jobs = json.loads(run_cli(["jobs", "list", "--format", "json"],
                                  url=server.url).stdout)
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 70, 0, 0))
        proc = subprocess.Popen([sys.executable, "-m", "dhis2maint", "jobs", "list"],
                                env=cron_env(server.url), stdin=subprocess.DEVNULL,
                                stdout=slave, stderr=subprocess.PIPE)
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=60)
        proc.stderr.close()
        os.close(master)
    text = b"".join(chunks).decode("utf-8").replace("\r\n", "\n")
    assert proc.returncode == 0
    assert "…" in text  # names and schedules shrank to fit 70 columns
    for job in jobs:
        assert re.search(r"^{}\s.*\s{}\s".format(job["id"], job["jobType"]), text, re.M), job


# --- 5. messages that say what to do ---------------------------------------------------


def _free_port():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_connection_errors_name_the_url_never_credentials(run_cli):
    url = "http://127.0.0.1:%d" % _free_port()
    proc = run_cli(["integrity", "checks"], url=url)
    assert proc.returncode == 3
    line = one_line(proc.stderr)
    assert url in line and "could not connect" in line and "admin" not in line


def test_a_404_on_system_info_says_the_url_is_wrong(srv, run_cli):
    proc = run_cli(["integrity", "checks"], url=srv.url + "/dhis")
    assert proc.returncode == 3
    line = one_line(proc.stderr)
    assert "the URL is probably wrong" in line and "context path" in line
    assert "UID" not in line
    doctor = run_cli(["doctor", "--format", "json"], url=srv.url + "/dhis")
    assert doctor.returncode == 1
    failed = [c for c in json.loads(doctor.stdout)["checks"] if c["status"] == "fail"]
    assert [c["name"] for c in failed] == ["url"] and "context path" in failed[0]["fix"]
    assert "url" in one_line(doctor.stderr)


def test_doctor_calls_a_server_that_is_not_dhis2_a_url_failure(srv, run_cli):
    srv.answer_next('{"status":"UP","groups":["liveness","readiness"]}', count=1 << 30,
                    path="/api/system/info")
    doctor = run_cli(["doctor", "--format", "json"], url=srv.url)
    srv.reset_faults()
    checks = {c["name"]: c["status"] for c in json.loads(doctor.stdout)["checks"]}
    assert checks.get("url") == "fail" and "credentials" not in checks


def test_https_to_an_http_server_suggests_http(srv, run_cli):
    https = srv.url.replace("http://", "https://")
    proc = run_cli(["integrity", "checks"], url=https)
    assert proc.returncode == 3
    line = one_line(proc.stderr)
    assert "use {}".format(srv.url) in line and "plain http" in line


def test_an_untrusted_certificate_names_insecure_and_the_ca_bundle(tls_server, run_cli):
    url, _cert = tls_server(404)
    proc = run_cli(["integrity", "checks"], url=url)
    assert proc.returncode == 3
    line = one_line(proc.stderr)
    assert "--insecure" in line and "REQUESTS_CA_BUNDLE" in line and "verify=" not in line


def test_a_unix_cron_gets_the_six_field_expression_before_anything_is_sent(srv, run_cli):
    proc = run_cli(["jobs", "create", "Nightly", "MONITORING", "--cron", "0 4 * * *"],
                   url=srv.url)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert "DHIS2 wants 6 fields, seconds first" in line and "'0 0 4 ? * *'" in line
    assert [r for r in srv.requests if r.method == "POST"] == []
    fixed = run_cli(["jobs", "create", "Nightly", "MONITORING", "--cron", "0 0 4 ? * *",
                     "--format", "json"], url=srv.url)
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads(fixed.stdout)["cronExpression"] == "0 0 4 ? * *"


def test_trend_and_open_check_names_are_validated(srv, tmp_path, run_cli):
    db = str(tmp_path / "h.sqlite")
    assert run_cli(["integrity", "run", "--details", "--history", db, "--quiet"],
                   url=srv.url).returncode == 0
    for args in (["integrity", "trend", "orgunits_multiple_rots"],
                 ["integrity", "open", "--check", "orgunits_multiple_rots"]):
        proc = run_cli(args + ["--history", db])
        assert proc.returncode == 2, proc.stdout
        line = one_line(proc.stderr)
        assert "did you mean orgunits_multiple_roots" in line and "0 runs" not in proc.stdout
    by_code = run_cli(["integrity", "trend", "OMR", "--history", db, "--format", "json"])
    assert by_code.returncode == 0, by_code.stderr
    assert [p["check"] for p in json.loads(by_code.stdout)] == ["orgunits_multiple_roots"]
    dashed = run_cli(["integrity", "open", "--check", "Orgunits-Multiple-Roots", "--history",
                      db, "--format", "json"])
    assert dashed.returncode == 0 and json.loads(dashed.stdout)


def test_every_command_that_starts_a_job_takes_wait_and_no_wait(srv, run_cli):
    for args in (["refresh", "analytics"], ["refresh", "resource-tables"],
                 ["refresh", "monitoring"], ["jobs", "run", "UsrMonitor1"],
                 ["integrity", "run", "CNO"], ["validation", "notify"]):
        # --wait first: a run started with --no-wait is still going when the next
        # command starts, and DHIS2 refuses a second run of a RUNNING configuration
        waited = run_cli(args + ["--wait"], url=srv.url)
        assert waited.returncode == 0, (args, waited.stderr)
        assert "completed" in waited.stdout or "Total:" in waited.stdout
        started = run_cli(args + ["--no-wait"], url=srv.url)
        assert started.returncode == 0, (args, started.stderr)
        job_type, job_id = started.stdout.split()
        assert len(job_id) == 11 and job_type.isupper()
    refused = run_cli(["integrity", "run", "--no-wait", "--fail-on", "severe"], url=srv.url)
    assert refused.returncode == 2 and "--fail-on needs --wait" in refused.stderr


def test_demo_takes_no_connection_options(run_cli):
    proc = run_cli(["demo", "--url", "http://example.org"])
    assert proc.returncode == 2 and "--url" in proc.stderr
    top = run_cli(["--url", "http://example.org", "demo"])
    assert top.returncode == 2 and "takes no connection options" in one_line(top.stderr)
    assert "--url" not in run_cli(["demo", "--help"]).stdout


def test_no_arguments_print_a_short_usage(run_cli):
    proc = run_cli([])
    assert proc.returncode == 2
    assert "dhis2maint demo" in proc.stderr and "--help" in proc.stderr
    assert len(proc.stderr.splitlines()) < 12


def test_output_file_says_wrote_it_unless_quiet(srv, tmp_path, run_cli):
    out = str(tmp_path / "checks.json")
    proc = run_cli(["integrity", "checks", "--format", "json", "-o", out], url=srv.url)
    assert proc.returncode == 0 and proc.stderr == "dhis2maint: wrote {}\n".format(out)
    quiet = run_cli(["integrity", "checks", "--format", "json", "-o", out, "--quiet"],
                    url=srv.url)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_mcp_names_the_python_it_needs(monkeypatch, capsys):
    from dhis2maint import cli

    monkeypatch.setattr(sys, "version_info", (3, 7, 17, "final", 0))
    code = cli.main(["mcp", "--url", "http://127.0.0.1:9", "--token", "d2pat_x"])
    assert code == 2 and "needs Python 3.10 or newer" in capsys.readouterr().err


def test_stand_in_banner_prints_export_lines():
    proc = subprocess.Popen([sys.executable, "-m", "dhis2maint.testing", "--port", "0"],
                            env=cron_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)
    try:
        lines = [proc.stdout.readline() for _ in range(6)]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    url = re.search(r"stand-in at (\S+)", lines[0]).group(1)
    assert "export DHIS2_URL={}\n".format(url) in lines
    assert "export DHIS2_USERNAME=admin\n" in lines and "export DHIS2_PASSWORD=district\n" in lines


def test_demo_closes_with_export_lines(run_cli):
    proc = run_cli(["demo", "--job-seconds", "0.2", "--quiet"], timeout=180)
    assert proc.returncode == 0, proc.stderr
    tail = proc.stdout.splitlines()[-12:]
    assert "  export DHIS2_URL=https://dhis2.example.org" in tail
    assert "  export DHIS2_URL=http://127.0.0.1:8080" in tail
