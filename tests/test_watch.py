"""Watch your servers (#22), proven against real components: promtool checks every
exposition dhis2maint writes and the alerting rules, node_exporter's textfile collector
serves the written file, a Pushgateway gives back what was pushed, a webhook receiver
on loopback gets exactly the expected alerts across a scripted sequence of nights, and
the stand-in records the DHIS2 messages.

Each binary (Debian's prometheus, prometheus-node-exporter, prometheus-pushgateway) is
started on a free loopback port by the test and stopped; a missing one skips the test
with the reason, except when $CI is set (then it fails)."""
import contextlib
import sys
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import dhis2_env, read, values
import requests

from dhis2maint import cli, metrics
from dhis2maint._standin_http import _uid_from
from dhis2maint.testing import Dhis2StandIn

# Simulated time (tests/conftest.py fake_time): the stand-ins' jobs and the waits for them
# take no real seconds; requests still go over real HTTP.
pytestmark = pytest.mark.usefixtures("fake_time")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "Canary-Watch-Pw-47"
SECRET = "T0KEN-b7c9-SECRET"


def binary(name):
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("{} is not installed, and CI is set (apt-get install {})".format(
                name, {"promtool": "prometheus"}.get(name, name)))
        pytest.skip("{} is not installed (Debian: apt-get install {})".format(
            name, {"promtool": "prometheus"}.get(name, name)))
    return path


def free_port():
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def started(command, port, path="/metrics"):
    """Run ``command`` until it answers GET http://127.0.0.1:port/path; stop it after."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = "http://127.0.0.1:{}{}".format(port, path)
    try:
        for _ in range(300):
            if proc.poll() is not None:
                pytest.fail("{} exited: {}".format(command[0], proc.stderr.read()[-2000:]))
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    break
            except requests.exceptions.RequestException:
                time.sleep(0.1)
        else:
            pytest.fail("{} did not answer on port {}".format(command[0], port))
        yield "http://127.0.0.1:{}".format(port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def promtool_check(text):
    """`promtool check metrics` (stdin) passes on ``text``."""
    proc = subprocess.run([binary("promtool"), "check", "metrics"], input=text,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), \
        proc.stdout + proc.stderr


@pytest.fixture
def srv(start_standin):
    return start_standin("2.42", job_seconds=0.2, users={"admin": PASSWORD})


@pytest.fixture
def dhis2(monkeypatch):
    """``dhis2(args, url)`` -> (exit code, stdout, stderr) of `dhis2maint ARGS` in this
    process (the password never shows)."""

    def call(args, url=None, capsys=None):
        dhis2_env(monkeypatch, url, PASSWORD)
        return cli.main(list(args))

    return call


class Receiver:
    """A webhook receiver on loopback: every POST's JSON body, in order."""

    def __init__(self, status=200):
        received = self.received = []
        self.status = status
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                size = int(self.headers.get("Content-Length") or 0)
                received.append((self.path, json.loads(self.rfile.read(size).decode("utf-8"))))
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:{}/services/T000/B000/{}".format(
            self.server.server_address[1], SECRET)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


# --- promtool, node_exporter, Pushgateway -----------------------------------------------------


def test_every_exposition_passes_promtool(srv, tmp_path, dhis2, capsys):
    db = str(tmp_path / "h.sqlite")
    commands = {
        "integrity": ["integrity", "run", "--details", "-o", str(tmp_path / "r")],
        "report": ["integrity", "report", "--details", "-o", str(tmp_path / "r")],
        "health": ["jobs", "health", "-o", str(tmp_path / "r")],
        "refresh": ["refresh", "monitoring"],
        "doctor": ["doctor", "-o", str(tmp_path / "r")],
    }
    for name, args in commands.items():
        path = str(tmp_path / (name + ".prom"))
        code = dhis2(args + ["--history", db, "--metrics-file", path], url=srv.url)
        assert code in (0, 1), capsys.readouterr().err  # doctor/health may find things
        text = read(path)
        assert values(text, "dhis2maint_up", server=srv.url) == [1], name
        promtool_check(text)
    capsys.readouterr()
    assert dhis2(["metrics", "--history", db]) == 0
    from_history = capsys.readouterr().out
    assert values(from_history, "dhis2maint_integrity_issues")
    promtool_check(from_history)
    srv.stop()
    down = str(tmp_path / "down.prom")
    assert dhis2(["jobs", "health", "--http-timeout", "2", "--history", db, "--metrics-file",
                  down], url=srv.url) == 3
    promtool_check(read(down))


def test_node_exporter_textfile_collector_serves_the_file(srv, tmp_path, dhis2, capsys):
    exporter = binary("prometheus-node-exporter")
    folder = tmp_path / "textfile"
    folder.mkdir()
    path = str(folder / "dhis2maint.prom")
    srv.set_issue_count("orgunits_multiple_roots", 2)
    assert dhis2(["integrity", "run", "-o", str(tmp_path / "r"), "--metrics-file", path],
                 url=srv.url) == 0, capsys.readouterr().err
    written = metrics.parse(read(path))
    port = free_port()
    with started([exporter, "--web.listen-address=127.0.0.1:{}".format(port),
                  "--collector.disable-defaults", "--collector.textfile",
                  "--collector.textfile.directory=" + str(folder)], port) as url:
        served = requests.get(url + "/metrics", timeout=10).text
    assert values(served, "node_textfile_scrape_error") == [0]
    assert values(served, "node_textfile_mtime_seconds", file=path) or \
        values(served, "node_textfile_mtime_seconds", file="dhis2maint.prom")
    ours = {(s.name, tuple(sorted(s.labels))): s.value for s in metrics.parse(served)
            if s.name.startswith("dhis2maint_")}
    assert ours == {(s.name, tuple(sorted(s.labels))): s.value for s in written}
    assert ours[("dhis2maint_integrity_issues", (
        ("check", "orgunits_multiple_roots"), ("server", srv.url),
        ("severity", "CRITICAL")))] == 2


def test_pushgateway_gets_the_group_and_keeps_the_last_success(srv, tmp_path, dhis2, capsys):
    gateway = binary("prometheus-pushgateway")
    port = free_port()
    with started([gateway, "--web.listen-address=127.0.0.1:{}".format(port)], port) as gw:
        assert dhis2(["integrity", "run", "-o", str(tmp_path / "r"), "--pushgateway", gw],
                     url=srv.url) == 0, capsys.readouterr().err
        served = requests.get(gw + "/metrics", timeout=10).text
        group = dict(job="dhis2maint", server=srv.url)
        assert values(served, "dhis2maint_up", **group) == [1]
        success = values(served, "dhis2maint_integrity_last_success_timestamp_seconds", **group)
        assert len(success) == 1
        assert values(served, "push_failure_time_seconds", **group) == [0]
        assert values(served, "dhis2maint_integrity_issues", **group)
        ours = "\n".join(line for line in served.splitlines() if "dhis2maint_" in line)
        promtool_check(ours + "\n")
        url = srv.url
        srv.stop()  # DHIS2 goes away: the next push must not erase the last success
        assert dhis2(["integrity", "run", "--http-timeout", "2", "-o", str(tmp_path / "r"),
                      "--pushgateway", gw], url=url) == 3
        served = requests.get(gw + "/metrics", timeout=10).text
        assert values(served, "dhis2maint_up", **group) == [0]
        assert values(served, "dhis2maint_integrity_last_success_timestamp_seconds",
                      **group) == success


def test_a_pushgateway_that_is_down_is_a_warning_and_exit_3(srv, tmp_path, dhis2, capsys):
    code = dhis2(["integrity", "run", "-o", str(tmp_path / "r"), "--pushgateway",
                  "http://127.0.0.1:{}/".format(free_port())], url=srv.url)
    err = capsys.readouterr().err
    assert code == 3 and "warning: push to the Pushgateway failed: 127.0.0.1" in err


def test_the_alert_rules_pass_promtool_and_name_only_our_metrics():
    path = os.path.join(ROOT, "examples", "prometheus-rules.yml")
    proc = subprocess.run([binary("promtool"), "check", "rules", path], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
    assert proc.returncode == 0 and "SUCCESS: 6 rules found" in proc.stdout, proc.stdout
    expressions = re.findall(r"^\s+expr:\s*(.+)$", read(path), re.M)
    assert len(expressions) == 6
    labels = {"server", "check", "severity", "kind", "job_type", "dhis2_version", "version"}
    functions = {"time", "max", "sum", "by"}
    for expr in expressions:
        names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", re.sub(r'"[^"]*"', "", expr)))
        unknown = names - labels - functions - set(metrics.METRICS)
        assert not unknown, (expr, unknown)
        assert names & set(metrics.METRICS), expr


def test_the_dashboard_uses_only_documented_metrics(tmp_path):
    with open(os.path.join(ROOT, "examples", "grafana-dashboard.json"), encoding="utf-8") as f:
        board = json.load(f)
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 5
    used = set()
    for expr in exprs:
        used |= set(re.findall(r"dhis2maint_[a-z_]+", expr))
    assert used <= set(metrics.METRICS)
    for needed in ("dhis2maint_integrity_issues", "dhis2maint_integrity_new_issues",
                   "dhis2maint_integrity_last_success_timestamp_seconds",
                   "dhis2maint_scheduler_findings",
                   "dhis2maint_analytics_last_generated_timestamp_seconds"):
        assert needed in used
    # every panel's query parses: promtool checks them as recording rules
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": "dashboard:panel_{}".format(i), "expr": e.replace("$server", ".*")}
        for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    proc = subprocess.run([binary("promtool"), "check", "rules", str(path)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


# --- alerts -------------------------------------------------------------------------------


def test_a_sequence_of_nights_alerts_once_per_change(srv, tmp_path, dhis2, capsys):
    db = str(tmp_path / "h.sqlite")
    check = "orgunits_multiple_roots"  # CRITICAL
    srv.set_issue_count(check, 0)
    with Receiver() as hook:
        def night():
            code = dhis2(["integrity", "run", "--details", "-o", str(tmp_path / "r"),
                          "--history", db, "--notify", "webhook:" + hook.url,
                          "--notify-on", "critical", "--debug"], url=srv.url)
            err = capsys.readouterr().err
            assert code == 0, err
            assert SECRET not in err and "/services/" not in err
            messages, hook.received[:] = list(hook.received), []
            return messages

        baseline = night()
        assert len(baseline) == 1
        first = baseline[0][1]
        assert set(first) == {"text", "event", "server", "items"}
        assert first["event"] == "alert" and first["server"] == srv.url
        assert all(i["severity"] == "CRITICAL" and i["state"] == "new" for i in first["items"])
        assert "integrity:" + check not in [i["key"] for i in first["items"]]
        assert night() == []  # the same night again: nothing
        srv.set_issue_count(check, 3)
        [(path, new)] = night()
        assert path.endswith(SECRET)
        assert new["event"] == "alert"
        assert [(i["key"], i["state"]) for i in new["items"]] == [("integrity:" + check, "new")]
        assert "3 issues, 3 new" in new["text"]
        assert night() == []  # the same again: nothing
        srv.set_issue_count(check, 0)
        [(_, resolved)] = night()
        assert resolved["event"] == "resolved"
        assert [(i["key"], i["state"]) for i in resolved["items"]] == [
            ("integrity:" + check, "resolved")]
        assert night() == []


def test_without_a_history_every_run_alerts_on_everything(srv, tmp_path, dhis2, capsys):
    with Receiver() as hook:
        for _ in range(2):
            assert dhis2(["integrity", "run", "-o", str(tmp_path / "r"), "--notify",
                          "webhook:" + hook.url], url=srv.url) == 0
        assert len(hook.received) == 2
        assert hook.received[0][1]["items"] == hook.received[1][1]["items"]
        assert {i["severity"] for i in hook.received[0][1]["items"]} <= {"SEVERE", "CRITICAL"}
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli.main(["integrity", "run", "--help"])
    helptext = " ".join(capsys.readouterr().out.split())
    assert "WITHOUT --history every run alerts on everything at the level" in helptext


def test_scheduler_findings_jobs_and_dhis2_down_alert_once_and_resolve(srv, tmp_path, dhis2,
                                                                       capsys):
    db = str(tmp_path / "h.sqlite")
    with Receiver() as hook:
        notify = ["--history", db, "--notify", "webhook:" + hook.url]
        assert dhis2(["jobs", "health", "--fail-on", "never", "-o", str(tmp_path / "r")] + notify, url=srv.url) == 0
        [(_, first)] = hook.received
        assert first["items"] and all(i["key"].startswith("scheduler:") for i in first["items"])
        assert all(i["severity"] in ("SEVERE", "CRITICAL") for i in first["items"])
        hook.received[:] = []
        assert dhis2(["jobs", "health", "--fail-on", "never", "-o", str(tmp_path / "r")] + notify, url=srv.url) == 0
        assert hook.received == []  # the same findings: no message
        srv.scheduler.reset(healthy=True)
        assert dhis2(["jobs", "health", "--fail-on", "never", "-o", str(tmp_path / "r")] + notify, url=srv.url) == 0
        [(_, gone)] = hook.received
        assert gone["event"] == "resolved"
        assert sorted(i["key"] for i in gone["items"]) == sorted(i["key"] for i in
                                                                  first["items"])
        hook.received[:] = []
        srv.fail_next_job("Process failed: disk full")
        assert dhis2(["refresh", "analytics"] + notify, url=srv.url) == 4
        [(_, failed)] = hook.received
        assert [i["key"] for i in failed["items"]] == ["job:ANALYTICS_TABLE"]
        assert "disk full" in failed["text"]
        hook.received[:] = []
        assert dhis2(["refresh", "analytics"] + notify, url=srv.url) == 0
        [(_, fixed)] = hook.received
        assert fixed["event"] == "resolved"
        assert [(i["key"], i["state"]) for i in fixed["items"]] == [
            ("job:ANALYTICS_TABLE", "resolved")]
        hook.received[:] = []
        url = srv.url
        srv.stop()
        for _ in range(2):
            assert dhis2(["jobs", "health", "--http-timeout", "2", "-o",
                          str(tmp_path / "r")] + notify, url=url) == 3
        [(_, down)] = hook.received  # down twice: one message
        assert [(i["key"], i["severity"]) for i in down["items"]] == [("down", "CRITICAL")]
    capsys.readouterr()


def test_a_failed_notification_is_a_warning_and_exit_3(srv, tmp_path, dhis2, capsys):
    hook = "http://127.0.0.1:{}/services/T000/B000/{}".format(free_port(), SECRET)
    code = dhis2(["integrity", "run", "-o", str(tmp_path / "r"), "--notify", "webhook:" + hook,
                  "--debug"], url=srv.url)
    err = capsys.readouterr().err
    assert code == 3
    assert "warning: notification to webhook:127.0.0.1:" in err
    assert SECRET not in err and "/services/" not in err
    with Receiver(status=500) as refused:
        code = dhis2(["integrity", "run", "-o", str(tmp_path / "r"), "--notify",
                      "webhook:" + refused.url, "--fail-on", "info"], url=srv.url)
        assert len(refused.received) == 1  # sent once, not retried
    err = capsys.readouterr().err
    assert code == 1  # the command's own verdict stands
    assert "HTTP 500" in err and SECRET not in err


def test_bad_notify_targets_exit_2_before_anything_is_sent(srv, dhis2, capsys):
    for target in ("webhook:ftp://x/" + SECRET, "dhis2-user:not-a-uid", "email:a@b.org"):
        with pytest.raises(SystemExit) as info:
            cli.main(["integrity", "run", "--notify", target])
        assert info.value.code == 2
        assert SECRET not in capsys.readouterr().err


def test_dhis2_messages_reach_the_stand_in(srv, tmp_path, dhis2, capsys):
    user = _uid_from("user", "admin")
    code = dhis2(["integrity", "run", "-o", str(tmp_path / "r"), "--notify",
                  "dhis2-user:" + user, "--notify", "dhis2-group:wl5cDMuUhmF"], url=srv.url)
    assert code == 0, capsys.readouterr().err
    [message] = srv.message_conversations  # users and groups in one message
    assert message["users"] == [user] and message["userGroups"] == ["wl5cDMuUhmF"]
    assert message["subject"] == "dhis2maint: alert on " + srv.url
    assert message["text"].startswith("dhis2maint on " + srv.url)
    assert message["sender"] == "admin"
    code = dhis2(["integrity", "run", "-o", str(tmp_path / "r"), "--notify",
                  "dhis2-user:" + "Zzzzzzzzzz1"], url=srv.url)
    err = capsys.readouterr().err
    assert code == 3 and "HTTP 409: User does not exist: Zzzzzzzzzz1" in err


def test_the_guide_documents_every_gauge_and_the_examples():
    guide = read(os.path.join(ROOT, "docs", "watch.rst"))
    for name in metrics.METRICS:
        assert "``{}".format(name) in guide, name
    for part in ("prometheus-rules.yml", "grafana-dashboard.json", "textfile collector",
                 "Pushgateway", "Airflow", "cron"):
        assert part in guide


def test_debug_output_of_a_real_process_never_shows_the_webhook_path(srv, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DHIS2")}
    env.update(DHIS2_URL=srv.url, DHIS2_USERNAME="admin", DHIS2_PASSWORD=PASSWORD,
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with Receiver() as hook:
        for url in (hook.url, "http://127.0.0.1:{}/services/{}".format(free_port(), SECRET)):
            proc = subprocess.run(
                [sys.executable, "-m", "dhis2maint", "--debug", "integrity", "run", "-o",
                 str(tmp_path / "r"), "--notify", "webhook:" + url], env=env,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                timeout=120)
            assert "DEBUG" in proc.stderr  # debug logging was on
            assert SECRET not in proc.stderr + proc.stdout and "/services/" not in proc.stderr
        assert len(hook.received) == 1
    assert proc.returncode == 3 and "notification to webhook:127.0.0.1:" in proc.stderr


@pytest.mark.parametrize("version,missing_group", [
    ("2.36", "User Group does not exist: Zzzzzzzzzz2"),
    ("2.43", "UserGroup with id Zzzzzzzzzz2 could not be found.")])
def test_the_stand_in_answers_message_conversations_as_dhis2(version, missing_group):
    with Dhis2StandIn(version=version) as server:
        auth = ("admin", "district")
        url = server.url + "/api/messageConversations"
        user = _uid_from("user", "admin")
        ok = requests.post(url, json={"subject": "S", "text": "T", "users": [{"id": user}]},
                           auth=auth, timeout=10)
        assert ok.status_code == 201 and ok.json()["message"] == "Message conversation created"
        assert ok.headers["Location"].endswith("/" + server.message_conversations[0]["id"])
        none = requests.post(url, json={"subject": "S", "text": "T"}, auth=auth, timeout=10)
        assert none.status_code == 409 and none.json()["message"] == "No recipients selected."
        group = requests.post(url, json={"subject": "S", "text": "T",
                                         "userGroups": [{"id": "Zzzzzzzzzz2"}]},
                              auth=auth, timeout=10)
        assert group.status_code == 404 and group.json()["message"] == missing_group
        assert len(server.message_conversations) == 1
