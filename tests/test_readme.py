"""The README and the guides in docs/ are run against the stand-in, so they cannot rot.

* The README's "Try it by hand" recipe is executed as written: the stand-in is
  started with the README's arguments (on a free port instead of 8080), the
  three ``export`` lines become the environment, and each of the six
  ``dhis2maint …`` commands runs as a subprocess, without a terminal.
* Every ``.. code-block:: python`` block of the README and of the guides runs,
  in reading order, in one shared namespace (later blocks use the ``dhis2``
  session the first one makes).  The only change made to the text is the
  server URL: ``https://dhis2.example.org`` becomes the stand-in's.  The token
  and password shown are the stand-in's users.
"""
import os
import re
import shlex
import socket
import subprocess
import sys
import time

import pytest
import requests

from dhis2maint.testing import Dhis2StandIn

# Simulated time (tests/conftest.py fake_time): the stand-ins' jobs and the waits for them
# take no real seconds; requests still go over real HTTP.
pytestmark = pytest.mark.usefixtures("fake_time")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.rst")
DOCS = os.path.join(ROOT, "docs")
EXAMPLE_URL = "https://dhis2.example.org"
# The guides with Python examples, in the order a reader meets them (the
# front page's example closes its session, so it runs last).
GUIDES = ["connecting", "integrity", "history", "jobs", "scheduler", "testing", "index",
          "datavalues"]


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def python_blocks(text):
    """The bodies of the ``.. code-block:: python`` directives, dedented."""
    return directive_blocks(text, ".. code-block:: python")


def directive_blocks(text, directive):
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == directive:
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
                body.append(lines[i][4:])
                i += 1
            blocks.append("\n".join(body).strip("\n") + "\n")
        else:
            i += 1
    return blocks


def section(text, title):
    """The body of the README section called *title* (up to the next section)."""
    match = re.search(r"^{}\n-+\n(.*?)(?=^\S[^\n]*\n-+\n|\Z)".format(re.escape(title)),
                      text, re.S | re.M)
    assert match, "the README has a section {!r}".format(title)
    return match.group(1)


def readme_token(text):
    match = re.search(r'token="(d2pat_[A-Za-z0-9]+)"', text)
    assert match, "the README shows a token"
    return match.group(1)


def test_readme_has_the_two_commands_and_ci_runs_the_test_one():
    text = read(README)
    assert "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/dhis2maint demo" in text
    ci = read(os.path.join(ROOT, ".ci", "run"))
    test_command = [line for line in ci.splitlines() if "tox" in line and "-e" in line][-1]
    assert test_command.strip() in text, "README and .ci/run must give the same test command"
    envs = test_command.split("tox -e ")[1].split()[0].split(",")
    assert {"docs", "package"} <= set(envs)
    start = section(text, "Two commands to start")
    for needed in ("python3.7", "python3.13", "30 minutes"):
        assert needed in start


def test_readme_fits_on_a_few_screens_and_links_into_the_docs():
    text = read(README)
    assert len(text.splitlines()) <= 400
    linked = set(re.findall(r"<docs/([a-z/-]+)\.rst>`_", text))
    guides = {name[:-4] for name in os.listdir(DOCS) if name.endswith(".rst")}
    assert linked - {"reference/api"} <= guides, "the README links to guides that exist"
    for guide in ("integrity", "jobs", "scheduler", "history", "airflow", "mcp",
                  "failure-modes", "performance"):
        assert guide in linked and guide in guides, guide


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _try_it_by_hand(text):
    """(stand-in arguments, exports, commands) as the README writes them."""
    body = section(text, "Try it by hand")
    start = [line.strip() for line in body.splitlines()
             if line.strip().startswith("python -m dhis2maint.testing")]
    assert len(start) == 1, "one command starts the stand-in"
    shell = directive_blocks(body, ".. code-block:: shell")
    assert len(shell) == 1
    lines = [line.strip() for line in shell[0].splitlines() if line.strip()]
    exports = [line for line in lines if line.startswith("export ")]
    commands = [line for line in lines if line.startswith("dhis2maint ")]
    assert len(exports) + len(commands) == len(lines), "nothing else in the block"
    return shlex.split(start[0])[3:], exports, commands


@pytest.mark.slow
def test_try_it_by_hand_runs_as_written(tmp_path):
    text = read(README)
    args, exports, commands = _try_it_by_hand(text)
    assert len(exports) == 3 and len(commands) == 6
    assert any("--history" in c for c in commands)
    assert any("--format html" in c for c in commands)
    assert args[args.index("--port") + 1] == "8080"
    port = _free_port()
    args[args.index("--port") + 1] = str(port)
    url = "http://127.0.0.1:{}".format(port)

    env = {k: v for k, v in os.environ.items() if not k.startswith("DHIS2_")}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    for line in exports:
        name, value = line[len("export "):].split("=", 1)
        env[name] = value.replace("http://127.0.0.1:8080", url)
    assert set(name for name in env if name.startswith("DHIS2_")) == {
        "DHIS2_URL", "DHIS2_USERNAME", "DHIS2_PASSWORD"}

    server = subprocess.Popen([sys.executable, "-m", "dhis2maint.testing"] + args, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True)
    try:
        for _ in range(200):  # until it answers (bounded: 20 s)
            try:
                requests.get(url + "/api/system/info", timeout=1).close()
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        runs = []
        for command in commands:
            argv = shlex.split(command)[1:]
            proc = subprocess.run([sys.executable, "-m", "dhis2maint"] + argv, env=env,
                                  cwd=str(tmp_path), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  universal_newlines=True, timeout=120)
            assert "district" not in proc.stdout + proc.stderr
            runs.append(proc)
    finally:
        server.terminate()
        server.communicate(timeout=30)

    version, first, second, trend, html, analytics = runs
    # What the README's "What you will see" promises, command by command.
    assert version.returncode == 0, version.stderr
    assert url in version.stdout and "DHIS2 2.42" in version.stdout
    assert first.returncode == 0, first.stderr
    assert "issues" in first.stdout and (tmp_path / "integrity.sqlite").exists()
    assert second.returncode == 1, "the drifted second run has new SEVERE issues"
    assert second.stdout and second.stderr
    assert trend.returncode == 0, trend.stderr
    assert re.search(r"^\s*1\s", trend.stdout, re.M) and re.search(r"^\s*2\s", trend.stdout, re.M)
    assert html.returncode == 0, html.stderr
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html") and url in page
    assert analytics.returncode == 0, analytics.stderr
    assert "ANALYTICS_TABLE" in analytics.stdout + analytics.stderr
    assert "completed" in analytics.stdout


def test_readme_and_guide_snippets_run_against_the_stand_in(tmp_path, monkeypatch, capsys):
    sources = [("README.rst", read(README))]
    for name in GUIDES:
        path = os.path.join(DOCS, name + ".rst")
        sources.append((os.path.relpath(path, ROOT), read(path)))
    blocks = []
    for where, text in sources:
        found = python_blocks(text)
        assert found, "{} has Python examples".format(where)
        blocks += [("{} block {}".format(where, n), block) for n, block in enumerate(found, 1)]
    assert len(blocks) >= 12
    token = readme_token(sources[0][1])
    with Dhis2StandIn(version="2.42", job_seconds=0.3, tokens={token: "admin"}) as server:
        server.coc_generation_delay = 0.3
        monkeypatch.chdir(str(tmp_path))
        monkeypatch.setenv("DHIS2_URL", server.url)
        monkeypatch.setenv("DHIS2_USERNAME", "admin")
        monkeypatch.setenv("DHIS2_PASSWORD", "district")
        monkeypatch.delenv("DHIS2_PAT", raising=False)
        namespace = {"__name__": "readme"}
        for where, block in blocks:
            code = compile(block.replace(EXAMPLE_URL, server.url), where, "exec")
            session = namespace.get("dhis2")
            exec(code, namespace)
            for name, value in list(namespace.items()):
                if name.startswith("test_") and callable(value):
                    value(session)  # the "testing your own scripts" example's test
                    del namespace[name]
        paths = {r.path for r in server.requests}
    out = capsys.readouterr().out
    assert "new," in out and "resolved" in out
    for path in ("/api/dataIntegrity/summary", "/api/dataIntegrity/details",
                 "/api/resourceTables/analytics", "/api/predictors/run",
                 "/api/dataAnalysis/validationRules",
                 "/api/maintenance/categoryOptionComboUpdate/categoryCombo/t3aNCvHsoSn",
                 "/api/jobConfigurations", "/api/scheduler", "/api/validationResults", "/api/me"):
        assert path in paths, path


def test_the_guides_named_in_the_toctree_exist():
    index = read(os.path.join(DOCS, "index.rst"))
    toctree = index[index.index(".. toctree::"):]
    entries = [line.strip() for line in toctree.splitlines()
               if line.startswith("   ") and line.strip() and not line.strip().startswith(":")]
    assert "*" in entries, "the toctree globs the guides other pages add"
    for entry in entries:
        if entry != "*":
            assert os.path.exists(os.path.join(DOCS, entry + ".rst")), entry
