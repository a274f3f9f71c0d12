"""Server health inside DHIS2, the faces (#25): `datavalues setup|push`, `--push-values` on
`integrity run|report` and `jobs health`, the doctor's data-value lines and the demo's push,
in-process against the stand-in (one subprocess test for the console script path)."""
import datetime
import json

import pytest

from dhis2maint import Session, cli
from dhis2maint import datavalues as dv
from dhis2maint.doctor import data_values_checks

from conftest import cli_main

PASSWORD = "Canary-DV-Pw-25"
ROOT = "ImspTQPwCqd"  # the stand-in's root organisation unit


@pytest.fixture
def srv(start_standin):
    return start_standin("2.42", job_seconds=0.1, users={"admin": PASSWORD})


def run(args, capsys, monkeypatch, url=None):
    """`dhis2maint ARGS` in this process -> (exit code, stdout, stderr)."""
    return cli_main(args, capsys, monkeypatch, url, PASSWORD)


def session_on(srv):
    return Session(srv.url, auth=("admin", PASSWORD))


def stored(srv, period=None, prefix="DM_"):
    """data element UID -> value the stand-in holds for the root on ``period`` (today)."""
    with session_on(srv) as session:
        data_set = session.data_values_status(prefix).data_set
        body = session.get(session.api_url("dataValueSets"), params={
            "dataSet": data_set, "orgUnit": ROOT,
            "period": period or today()}).json()
    return {v["dataElement"]: v["value"] for v in body.get("dataValues") or ()}


def today():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")


def posts(srv, path):
    return [r for r in srv.requests if r.method == "POST" and r.path == "/api/" + path]


def test_setup_twice_creates_each_object_once_and_dry_run_changes_nothing(
        srv, capsys, monkeypatch):
    code, out, _ = run(["datavalues", "setup", "--dry-run"], capsys, monkeypatch, srv.url)
    assert code == 0 and "a dry run, nothing was changed" in out
    assert "objects would be created" in out and "DataElement " in out
    assert posts(srv, "metadata")[-1].query.get("importMode") == ["VALIDATE"]
    code, out, _ = run(["datavalues", "setup"], capsys, monkeypatch, srv.url)
    created = int(out.splitlines()[-1].split()[0].replace(",", ""))
    assert code == 0 and created > 100  # the dry run made nothing
    for line in ("Dashboard         1 created", "DataSet           1 created"):
        assert line in out
    code, out, _ = run(["datavalues", "setup"], capsys, monkeypatch, srv.url)
    assert code == 0 and out.splitlines()[-1].startswith("0 objects were created, {:,} "
                                                         "updated".format(created))
    with session_on(srv) as session:
        elements = session.get(session.api_url("dataElements"), params={
            "filter": "code:like:DM_", "fields": "id,code", "paging": "false"}).json()
    codes = [e["code"] for e in elements["dataElements"]]
    assert len(codes) == len(set(codes)) and len(codes) == created - 5  # + group, set, 2 vis, dash


def test_push_values_after_integrity_run_sends_nothing_for_a_failed_check(
        srv, capsys, monkeypatch, tmp_path):
    run(["datavalues", "setup"], capsys, monkeypatch, srv.url)
    srv.fail_check("categories_no_options")
    history = str(tmp_path / "h.sqlite")
    code, out, err = run(["integrity", "run", "categories_no_options", "orgunits_orphaned",
                          "--push-values", "--history", history], capsys, monkeypatch, srv.url)
    assert code == 0, err
    assert "pushed data values to {}".format(srv.url) in err and "imported" in err
    values = stored(srv)
    codes = dv.check_codes(["categories_no_options", "orgunits_orphaned"])
    assert dv.uid_from_code(codes["categories_no_options"]) not in values  # never 0
    assert dv.uid_from_code(codes["orgunits_orphaned"]) in values
    assert values[dv.uid_from_code(dv.object_codes()["checks_failed"])] == "1"
    # the run was recorded before the push
    code, out, _ = run(["integrity", "history", "--history", history, "--format", "json"],
                       capsys, monkeypatch)
    assert [r["id"] for r in json.loads(out)] == [1]


def test_a_conflict_exits_3_naming_it_and_the_run_stands(srv, capsys, monkeypatch, tmp_path):
    run(["datavalues", "setup"], capsys, monkeypatch, srv.url)
    run(["integrity", "run"], capsys, monkeypatch, srv.url)
    history = str(tmp_path / "h.sqlite")
    srv.data_value_conflict_next()
    code, out, err = run(["integrity", "report", "--push-values", "--history", history,
                          "--format", "json"], capsys, monkeypatch, srv.url)
    assert code == 3, err
    assert json.loads(out)["results"]  # the report was written all the same
    assert "the values were NOT pushed to {}: POST /api/dataValueSets -> 1 conflict: ".format(
        srv.url) in err and "is not open for this data set" in err
    code, out, _ = run(["integrity", "history", "--history", history, "--format", "json"],
                       capsys, monkeypatch)
    assert len(json.loads(out)) == 1  # recorded before the push
    # a verdict of the run itself stands: exit 1, not 3, and both lines say why
    srv.data_value_conflict_next()
    code, _, err = run(["integrity", "report", "--push-values", "--fail-on", "info"],
                       capsys, monkeypatch, srv.url)
    assert code == 1 and "--fail-on info" in err and "NOT pushed" in err, err


def test_push_values_on_jobs_health_and_a_bad_prefix_is_refused_before_anything_runs(
        srv, capsys, monkeypatch):
    run(["datavalues", "setup", "--prefix", "MI_"], capsys, monkeypatch, srv.url)
    code, _, err = run(["jobs", "health", "--fail-on", "never", "--push-values", "--prefix",
                        "MI_"], capsys, monkeypatch, srv.url)
    assert code == 0, err
    assert "{:,} values: {:,} imported".format(len(dv.FINDING_KINDS),
                                               len(dv.FINDING_KINDS)) in err
    stuck = dv.uid_from_code(dv.object_codes("MI_")["findings_stuck"])
    assert stuck in stored(srv, prefix="MI_")
    before = len(srv.requests)
    with pytest.raises(SystemExit):
        run(["jobs", "health", "--push-values", "--prefix", "1-bad"], capsys, monkeypatch,
            srv.url)
    assert "prefix" in capsys.readouterr().err and len(srv.requests) == before
    code, _, err = run(["integrity", "run", "--no-wait", "--push-values"], capsys, monkeypatch,
                       srv.url)
    assert code == 2 and "--push-values needs --wait" in err and len(srv.requests) == before


def test_history_backfill_with_since_and_dry_run(srv, capsys, monkeypatch, tmp_path):
    history = str(tmp_path / "h.sqlite")
    for _ in range(2):
        run(["integrity", "run", "CNO", "--history", history], capsys, monkeypatch, srv.url)
    run(["datavalues", "setup"], capsys, monkeypatch, srv.url)
    code, out, _ = run(["datavalues", "push", "--history", history, "--dry-run"], capsys,
                       monkeypatch, srv.url)
    assert code == 0 and out.count("(dry run)") == 2 and not stored(srv)
    code, out, _ = run(["datavalues", "push", "--history", history], capsys, monkeypatch,
                       srv.url)
    assert code == 0 and len(out.splitlines()) == 2 and out.startswith(today() + ": ")
    assert len(stored(srv)) > 0
    code, out, err = run(["datavalues", "push", "--history", history, "--since", "2999-01-01"],
                         capsys, monkeypatch, srv.url)
    assert code == 0 and out == "" and "nothing was pushed" in err
    code, _, err = run(["datavalues", "push", "--history", history, "--since", "yesterday"],
                       capsys, monkeypatch, srv.url)
    assert code == 2 and "--since" in err
    srv.data_value_conflict_next()
    code, _, err = run(["datavalues", "push", "--history", history], capsys, monkeypatch,
                       srv.url)
    assert code == 3 and "1 conflict: " in err and "[E7643]" in err


def test_doctor_names_a_check_an_upgrade_added(srv, capsys, monkeypatch):
    code, out, _ = run(["doctor", "--format", "json"], capsys, monkeypatch, srv.url)
    assert "data values" not in out  # never set up, not asked: no new line
    code, out, _ = run(["doctor", "--prefix", "DM_"], capsys, monkeypatch, srv.url)
    assert "not set up" in out and "`dhis2maint datavalues setup --prefix DM_`" in out
    with session_on(srv) as session:
        checks = session.list_integrity_checks()
        session.setup_data_values(checks=checks[:-1])  # then an upgrade adds a check
    code, out, err = run(["doctor"], capsys, monkeypatch, srv.url)
    assert code == 1
    assert "1 integrity check has no data element (added by a DHIS2 upgrade?): {}".format(
        checks[-1].name) in out
    assert "`dhis2maint datavalues setup --org-unit {} --prefix DM_`".format(ROOT) in out
    assert "data values: metadata" in err
    run(["datavalues", "setup"], capsys, monkeypatch, srv.url)
    _, out, _ = run(["doctor", "--format", "json"], capsys, monkeypatch, srv.url)
    lines = {c["name"]: c["status"] for c in json.loads(out)["checks"]}
    assert lines["data values: metadata"] == lines["data values: write"] == "pass"


def test_doctor_lines_from_a_status_without_http():
    status = dv.DataValuesStatus(prefix="DM_", expected=["DM_A", "DM_B"], present=["DM_A"],
                                 missing=["DM_B"], missing_checks=["b"], data_set="Pl0HFHCb3y0",
                                 org_unit=ROOT, can_write_data=False,
                                 problems=["1 check without a data element: b",
                                           "organisation unit {} is outside the user's "
                                           "organisation units".format(ROOT)])
    lines = {c.name: c for c in data_values_checks(status, ["F_DATAELEMENT_PRIVATE_ADD"])}
    assert lines["data values: metadata"].follow_ups[0].action == "setup_data_values"
    setup = lines["data values: setup authority"]
    assert setup.status == "fail" and "DataElementGroup, DataSet" in setup.detail
    write = lines["data values: write"]
    assert write.status == "fail" and "F_DATAVALUE_ADD" in write.detail
    assert "outside the user's" in write.detail and "without a data element" not in write.detail
    assert data_values_checks(dv.DataValuesStatus(prefix="DM_", missing=["DM_A"]), [],
                              asked=False) == []


def test_demo_ends_by_pushing_its_nights(capsys):
    assert cli.main(["demo", "--job-seconds", "0.1", "--quiet"]) == 0
    out = capsys.readouterr().out
    pushed = [line for line in out.splitlines() if line.startswith("  pushed ")]
    assert len(pushed) == 3 and "imported" in pushed[0] and "updated" in pushed[-1]
    assert "Dashboard         1 created" in out


def test_the_console_script_sets_up(srv, run_cli):
    proc = run_cli(["datavalues", "setup", "--prefix", "MI_"], url=srv.url, password=PASSWORD,
                   secrets=(PASSWORD,))
    assert proc.returncode == 0, proc.stderr
    assert "(prefix MI_, org unit {})".format(ROOT) in proc.stdout


def test_the_mcp_tools_set_up_as_a_dry_run_by_default_and_push(srv):
    pytest.importorskip("mcp", reason="needs the mcp extra (pip install \".[mcp]\")")
    anyio = pytest.importorskip("anyio")
    from dhis2maint.mcp import build_server

    server = build_server(lambda: session_on(srv))

    from mcp.server.mcpserver.exceptions import ToolError

    def call(name, arguments):
        try:
            result = anyio.run(server.call_tool, name, arguments)
        except ToolError as exc:  # in process, a tool error is raised
            return True, None, str(exc)
        return result.is_error, result.structured_content, " ".join(
            getattr(c, "text", "") for c in result.content)

    error, dry, _ = call("setup_data_values", {})
    assert not error and dry["dryRun"] is True and dry["types"]["Dashboard"]["imported"] == 1
    assert not posts(srv, "dataValueSets") and stored_codes(srv) == []
    error, done, _ = call("setup_data_values", {"dry_run": False})
    assert not error and done["total"]["imported"] == dry["total"]["imported"]
    error, pushed, _ = call("push_data_values", {"source": "scheduler_health"})
    assert not error and pushed["imported"] == pushed["values"] == len(dv.FINDING_KINDS)
    srv.data_value_conflict_next()
    error, _, text = call("push_data_values", {"source": "scheduler_health"})
    assert error and "ImportConflictError" in text and "not open" in text


def stored_codes(srv):
    with session_on(srv) as session:
        body = session.get(session.api_url("dataElements"), params={
            "filter": "code:like:DM_", "fields": "code", "paging": "false"}).json()
    return [e["code"] for e in body.get("dataElements") or ()]
