"""The README's Python snippets run, in order, against the stand-in, so the guide cannot rot.

Each ``.. code-block:: python`` block runs in one shared namespace (later
blocks use the ``dhis2`` session the first one makes).  The only change made
to the text is the server URL: ``https://dhis2.example.org`` becomes the
stand-in's.  The README's token and password are the stand-in's users.
"""
import os
import re


from dhis2maint.testing import Dhis2StandIn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.rst")
EXAMPLE_URL = "https://dhis2.example.org"


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def python_blocks(text):
    """The bodies of the ``.. code-block:: python`` directives, dedented."""
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == ".. code-block:: python":
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
                body.append(lines[i][4:])
                i += 1
            blocks.append("\n".join(body).strip("\n") + "\n")
        else:
            i += 1
    return blocks


def readme_token(text):
    match = re.search(r'token="(d2pat_[A-Za-z0-9]+)"', text)
    assert match, "the README shows a token"
    return match.group(1)


def test_readme_has_the_two_commands_and_ci_runs_the_test_one():
    text = read(README)
    assert "dhis2maint demo" in text
    ci = read(os.path.join(ROOT, ".ci", "run"))
    test_command = [line for line in ci.splitlines() if "tox" in line and "-e" in line][-1]
    assert test_command.strip() in text, "README and .ci/run must give the same test command"


def test_readme_snippets_run_against_the_stand_in(tmp_path, monkeypatch, capsys):
    text = read(README)
    blocks = python_blocks(text)
    assert len(blocks) >= 8
    with Dhis2StandIn(version="2.42", job_seconds=0.3,
                      tokens={readme_token(text): "admin"}) as server:
        server.coc_generation_delay = 0.3
        monkeypatch.chdir(str(tmp_path))
        monkeypatch.setenv("DHIS2_URL", server.url)
        monkeypatch.setenv("DHIS2_USERNAME", "admin")
        monkeypatch.setenv("DHIS2_PASSWORD", "district")
        monkeypatch.delenv("DHIS2_PAT", raising=False)
        namespace = {"__name__": "readme"}
        for number, block in enumerate(blocks, 1):
            code = compile(block.replace(EXAMPLE_URL, server.url),
                           "README.rst block {}".format(number), "exec")
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
