"""The MCP server (dhis2maint/mcp.py), driven by the SDK's own client over stdio.

Each test starts ``python -m dhis2maint.mcp`` (or ``python -m dhis2maint mcp``) as a
subprocess whose environment points at a :class:`Dhis2StandIn` on 127.0.0.1, and
talks to it with ``mcp.ClientSession`` as an assistant would.  Without the SDK
(the core environments, Python < 3.10) those tests are skipped -- unless
DHIS2MAINT_REQUIRE_MCP is set, as in the tox ``mcp`` envs, where a missing SDK
is a failure.  The first three tests need no SDK and run everywhere.
"""
import base64
import json
import os
import subprocess
import sys

import pytest

from dhis2maint import jobs
from dhis2maint.options import ACTIONS

try:
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
    HAVE_SDK = True
except ImportError:
    if os.environ.get("DHIS2MAINT_REQUIRE_MCP"):
        raise
    HAVE_SDK = False

needs_sdk = pytest.mark.skipif(not HAVE_SDK, reason='needs the mcp extra (pip install ".[mcp]")')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "Tr0ub4dor-and-3"
TOKEN = "d2pat_mcptest0123456789abcdef0123456789ab"
AGE_AND_SEX = "t3aNCvHsoSn"  # the stand-in's combo of two categories of two options
SECRETS = (PASSWORD, TOKEN, base64.b64encode(("admin:" + PASSWORD).encode()).decode())
MAINTENANCE_TOOLS = {op.name for op in jobs.MAINTENANCE_OPERATIONS}
TOOLS = MAINTENANCE_TOOLS | {
    "server_info", "list_integrity_checks", "run_integrity_checks", "get_integrity_report",
    "list_integrity_issues", "refresh_analytics", "refresh_resource_tables", "refresh_monitoring",
    "task_status", "wait_for_task", "run_predictors", "run_validation_analysis",
    # #20.7: every feature
    "list_job_configurations", "get_job_configuration", "run_job_configuration",
    "enable_job_configuration", "disable_job_configuration", "cancel_job",
    "create_job_configuration", "delete_job_configuration", "scheduler_health", "doctor",
    "whoami", "list_task_types", "list_tasks", "list_validation_results",
    "delete_validation_results", "send_validation_notifications", "integrity_history",
    "integrity_trend", "integrity_open_issues", "update_category_option_combos",
    # #25: server health inside DHIS2
    "setup_data_values", "push_data_values"}
DESTRUCTIVE = {op.name for op in jobs.MAINTENANCE_OPERATIONS if op.destructive} | {
    "disable_job_configuration", "cancel_job", "delete_job_configuration",
    "delete_validation_results"}


def _run(code, env=None):
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60)


# --- without the SDK ---------------------------------------------------------------------


def test_import_dhis2maint_never_imports_the_sdk():
    proc = _run("import sys, dhis2maint, dhis2maint.cli, dhis2maint.mcp\n"
                "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                "('mcp', 'mcp_types', 'pydantic', 'anyio')))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_without_the_sdk_the_command_says_how_to_get_it():
    env = dict(os.environ, DHIS2_URL="http://127.0.0.1:9", DHIS2_PAT=TOKEN)
    proc = _run("import sys; sys.modules['mcp'] = None\n"  # as if not installed
                "from dhis2maint.cli import main; sys.exit(main(['mcp']))", env)
    assert proc.returncode == 2
    assert "Python 3.10" in proc.stderr
    if sys.version_info >= (3, 10):  # the SDK could be installed here: say how
        assert 'pip install "dhis2maint[mcp]"' in proc.stderr
    else:  # no SDK exists for this Python: installing would not help (#21.5)
        assert "needs Python 3.10 or newer" in proc.stderr
    assert "Traceback" not in proc.stderr and TOKEN not in proc.stderr


def test_the_server_never_prompts_for_a_password(monkeypatch):
    from dhis2maint import ConfigurationError, cli

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("getpass.getpass", lambda prompt: pytest.fail("prompted"))
    args = cli.build_parser().parse_args(["mcp", "--url", "http://127.0.0.1:9",
                                          "--username", "admin"])
    with pytest.raises(ConfigurationError, match="DHIS2_PASSWORD"):
        cli.connect(args, environ={}, prompt=False)


def test_follow_ups_are_worded_as_tools_with_their_arguments():
    from dhis2maint.errors import ConfigurationError, ConflictError, TaskTimeoutError
    from dhis2maint.models import FollowUp, JobType
    from dhis2maint.mcp import _one_line, follow_up_call

    timeout = TaskTimeoutError("the ANALYTICS_TABLE job fyGBsb3z0aB did not finish within 30 s")
    timeout.follow_ups = (
        FollowUp("wait_for_task", (("job_type", JobType.ANALYTICS_TABLE),
                                   ("job_id", "fyGBsb3z0aB"), ("timeout", 600.0),
                                   ("poll_interval", 2.0)), note="follow it"),
        FollowUp("get_task_notifications", (("job_type", "ANALYTICS_TABLE"),)))
    assert _one_line(timeout) == (
        "TaskTimeoutError: the ANALYTICS_TABLE job fyGBsb3z0aB did not finish within 30 s "
        'Next: follow it with the wait_for_task tool {"job_type": "ANALYTICS_TABLE", '
        '"job_id": "fyGBsb3z0aB", "timeout_seconds": 600.0}; or call the task_status tool '
        'with {"job_type": "ANALYTICS_TABLE"}.')
    # a destructive tool says it needs the user's yes; an action no tool does keeps its note
    stuck = ConflictError("job UsrAnalyt1c is stuck")
    stuck.follow_ups = (FollowUp("cancel_job", (("job_id", "UsrAnalyt1c"),)),
                        FollowUp("restart_the_server", note="restart DHIS2 if it stays"))
    text = _one_line(stuck)
    assert text.endswith('Next: call the cancel_job tool with {"job_id": "UsrAnalyt1c"} '
                         "(destructive: ask the user first, then add confirm: true); or restart "
                         "DHIS2 if it stays.")
    assert follow_up_call(stuck.follow_ups[0]) == {
        "tool": "cancel_job", "arguments": {"job_id": "UsrAnalyt1c"}, "destructive": True}
    assert follow_up_call(stuck.follow_ups[1]) is None
    # a Session method another tool covers (``also``) names that tool
    assert follow_up_call(FollowUp("iter_integrity_issues", (("checks", ["CNO"]),))) == {
        "tool": "list_integrity_issues", "arguments": {"checks": ["CNO"]}}
    assert follow_up_call(FollowUp("get_latest_task", (("job_type", "MONITORING"),)))["tool"] \
        == "task_status"
    # no follow-ups: the message alone, and no "Next"
    assert _one_line(ConfigurationError("no DHIS2 URL")) == "ConfigurationError: no DHIS2 URL"


def test_every_action_is_worded_as_its_own_tool_with_every_parameter():
    from dhis2maint.models import FollowUp
    from dhis2maint.mcp import follow_up_call

    for action in ACTIONS:
        session_names = {tool: session for session, tool in action.renames}
        args = tuple((session_names.get(p, p), "v") for p in action.params)
        call = follow_up_call(FollowUp(action.name, args + (("not_a_parameter", 1),)))
        assert call["tool"] == action.tool, action.name
        assert call["arguments"] == {p: "v" for p in action.params}, action.name
        assert call.get("destructive", False) is action.destructive


def test_a_streamed_page_reads_one_row_past_it_and_closes_the_stream():
    from dhis2maint.mcp import _page_stream

    read, closed = [], []

    def rows():
        try:
            for i in range(10):
                read.append(i)
                yield i
        finally:
            closed.append(True)

    assert _page_stream(rows(), 2, 3) == ([2, 3, 4], 5)
    assert read == [0, 1, 2, 3, 4, 5] and closed == [True]  # one past the page, then closed
    assert _page_stream(rows(), 8, 5) == ([8, 9], None)
    assert _page_stream(iter([]), 0, 5) == ([], None)


def test_the_regex_rewriting_is_gone():
    with open(os.path.join(ROOT, "dhis2maint", "mcp.py"), encoding="utf-8") as handle:
        source = handle.read()
    assert "_TOOL_HINTS" not in source and "re.compile" not in source and "\nimport re\n" \
        not in source


def test_errors_the_library_raises_name_tools(start_standin):
    from dhis2maint import Session, TaskTimeoutError
    from dhis2maint.errors import ConfigurationError
    from dhis2maint.mcp import _one_line, follow_up_text

    srv = start_standin("2.42", job_seconds=2.0, users={"admin": PASSWORD})
    with Session(srv.url, auth=("admin", PASSWORD)) as session:
        with pytest.raises(TaskTimeoutError) as timeout:
            session.wait_for_task("ANALYTICS_TABLE", "AAAAAAAAAAA", timeout=0.3)
        with pytest.raises(ConfigurationError) as unknown:
            session.run_integrity_checks(checks=["nonexistent_check"])
    errors = (timeout.value, unknown.value)
    for exc in errors:
        text = _one_line(exc)
        assert text.startswith(type(exc).__name__ + ": ")
        for follow_up in exc.follow_ups:  # every follow-up the library gives, as a tool
            assert follow_up_text(follow_up) in text
    if not timeout.value.follow_ups:
        pytest.skip("the library gives no follow_ups for a task timeout yet (#20.6)")
    assert "the wait_for_task tool" in _one_line(timeout.value)
    assert '"job_id": "AAAAAAAAAAA"' in _one_line(timeout.value)
    for exc in errors:
        assert "session." not in _one_line(exc) and "dhis2maint " not in _one_line(exc)


def test_the_actions_table_matches_the_session_and_the_command_line():
    import argparse

    from dhis2maint import Session, cli
    from dhis2maint.mcp import HISTORY_TOOLS

    assert len({a.tool for a in ACTIONS}) == len({a.name for a in ACTIONS}) == len(ACTIONS)
    assert {a.tool for a in ACTIONS} == TOOLS
    assert {a.tool for a in ACTIONS if a.destructive} == DESTRUCTIVE
    for action in ACTIONS:
        for name in (action.name,) + action.also:
            if action.tool not in HISTORY_TOOLS + ("server_info",):
                assert callable(getattr(Session, name, None)), name
        assert ("confirm" in action.params) is action.destructive, action.name
        assert not (action.read_only and action.destructive), action.name

    def subcommands(parser):
        for act in parser._actions:
            if isinstance(act, argparse._SubParsersAction):
                return act.choices
        return {}

    parser = cli.build_parser()
    for action in ACTIONS:  # each action's command exists (the CLI's --help lists it)
        found = parser
        for word in action.command.split():
            assert word in subcommands(found), (action.name, action.command)
            found = subcommands(found)[word]


def test_every_follow_up_the_library_knows_has_a_tool():
    followups = pytest.importorskip("dhis2maint.followups")
    from dhis2maint.options import find_action

    missing = [name for name in followups.ACTIONS if find_action(name) is None]
    assert missing == []


# --- over stdio --------------------------------------------------------------------------


@pytest.fixture
def standin(start_standin):
    return start_standin("2.42", users={"admin": PASSWORD}, tokens={TOKEN: "admin"})


class Server:
    """One MCP server subprocess per :meth:`run`, its stderr kept in a file."""

    def __init__(self, srv, tmp_path, env=None, command=("-m", "dhis2maint.mcp")):
        self.env = {"DHIS2_URL": srv.url, "DHIS2_USERNAME": "admin", "DHIS2_PASSWORD": PASSWORD}
        self.env.update(env or {})
        self.command = list(command)
        self.stderr_path = tmp_path / "server-stderr.txt"
        self.texts = []  # every tool result, as text, for the credential check

    def run(self, script):
        """``await script(session)`` against a fresh server; returns its value."""
        return self.run_command(sys.executable, script)

    def run_command(self, executable, script):
        async def main():
            params = StdioServerParameters(command=executable, args=self.command,
                                           env=self.env, cwd=ROOT)
            with open(str(self.stderr_path), "a") as errlog:
                async with stdio_client(params, errlog=errlog) as (read, write):
                    async with ClientSession(read, write) as session:
                        await session.initialize()
                        return await script(session)
        return anyio.run(main)

    async def call(self, session, name, arguments=None, progress=None):
        result = await session.call_tool(name, arguments or {}, progress_callback=progress)
        text = " ".join(getattr(c, "text", "") for c in result.content)
        self.texts.append(text + json.dumps(result.structured_content))
        return result

    async def ok(self, session, name, arguments=None, progress=None):
        result = await self.call(session, name, arguments, progress)
        assert not result.is_error, (name, result.content)
        return result.structured_content

    async def error(self, session, name, arguments=None):
        result = await self.call(session, name, arguments)
        assert result.is_error, (name, result.structured_content)
        return " ".join(c.text for c in result.content)

    def stderr(self):
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""


@needs_sdk
@pytest.mark.parametrize("command", [("-m", "dhis2maint.mcp"), ("-m", "dhis2maint", "mcp")],
                         ids=["python -m dhis2maint.mcp", "dhis2maint mcp"])
def test_both_commands_serve_every_tool_with_typed_schemas(standin, tmp_path, command):
    server = Server(standin, tmp_path, command=command)

    async def script(session):
        listed = await session.list_tools()
        info = await server.ok(session, "server_info")
        return {t.name: t for t in listed.tools}, info

    tools, info = server.run(script)
    assert set(tools) == TOOLS
    assert info["url"] == standin.url and info["dhis2Version"].startswith("2.42")
    for action in ACTIONS:  # each tool as the ACTIONS table says
        listed = tools[action.tool]
        assert tuple(listed.input_schema["properties"]) == action.params, action.tool
        assert listed.annotations.destructive_hint is action.destructive, action.tool
        assert listed.annotations.read_only_hint is action.read_only, action.tool
        assert listed.description.startswith("DESTRUCTIVE") is action.destructive
        if action.destructive:
            assert "confirm" in listed.input_schema["properties"]
    for op in jobs.MAINTENANCE_OPERATIONS:
        if op.name == "update_category_option_combos":
            continue  # its own tool, with a category_combo and waiting
        schema = tools[op.name].input_schema["properties"]
        assert ("confirm" in schema) is op.destructive, op.name
        assert ("uid" in schema) is op.takes_uid, op.name
        assert tools[op.name].annotations.destructive_hint is op.destructive
        assert tools[op.name].description.startswith("DESTRUCTIVE") is op.destructive
    skip = tools["refresh_analytics"].input_schema["properties"]["skip"]["anyOf"][0]
    assert skip["items"]["enum"] == [flag[5:] for flag, _ in jobs.ANALYTICS_FLAGS]
    page = tools["list_integrity_issues"].input_schema["properties"]["limit"]
    assert page["maximum"] == 500 and page["minimum"] == 1
    checks = tools["run_integrity_checks"].input_schema["properties"]
    assert checks["issue_limit"]["maximum"] == 50
    assert tools["get_integrity_report"].annotations.read_only_hint is True
    assert tools["clear_cache"].annotations.read_only_hint is False


@needs_sdk
def test_integrity_tools_are_bounded_and_page(standin, tmp_path):
    server = Server(standin, tmp_path)

    async def script(session):
        critical = await server.ok(session, "list_integrity_checks", {"severity": "critical"})
        listed = await server.ok(session, "list_integrity_checks", {"limit": 500})
        assert standin.job_ids() == []  # listing starts nothing
        run = await server.ok(session, "run_integrity_checks",
                              {"details": True, "limit": 3, "issue_limit": 2})
        run_jobs.extend(standin.job_ids())
        later = await server.ok(session, "get_integrity_report",
                                {"offset": 3, "limit": 2, "issue_limit": 1, "issue_offset": 1})
        first = await server.ok(session, "list_integrity_issues", {"limit": 7})
        second = await server.ok(session, "list_integrity_issues", {"offset": 7, "limit": 7})
        everything = await server.ok(session, "list_integrity_issues", {"limit": 500})
        return critical, listed, run, later, first, second, everything

    run_jobs = []
    critical, listed, run, later, first, second, everything = server.run(script)
    names = standin.check_names()
    assert listed["total"] == len(names) and listed["nextOffset"] is None
    assert [c["name"] for c in listed["checks"]] == names
    # the run started one details job in DHIS2; the report and issue tools only read
    assert run_jobs == standin.job_ids() == standin.job_ids("DATA_INTEGRITY_DETAILS")
    assert len(run_jobs) == 1
    assert [r.path for r in standin.requests if r.method == "POST"] == \
        ["/api/dataIntegrity/details"]
    assert {r["check"] for r in run["results"]} <= set(names)
    assert critical["checks"] and all(c["severity"] == "CRITICAL" for c in critical["checks"])
    assert critical["total"] == len(critical["checks"])

    assert run["details"] is True and run["checks"] > 3 and run["nextOffset"] == 3
    assert len(run["results"]) == 3
    for result in run["results"]:
        assert len(result["issues"]) == min(2, result["issuesTotal"])
        assert result["nextIssueOffset"] == (2 if result["issuesTotal"] > 2 else None)
    worst = [r["severity"] for r in run["results"]]
    assert worst[0] == "CRITICAL"
    assert later["offset"] == 3 and len(later["results"]) == 2
    for result in later["results"]:
        assert len(result["issues"]) == max(0, min(1, result["issuesTotal"] - 1))

    rows = everything["issues"]
    assert len(rows) == run["issuesTotal"] and everything["nextOffset"] is None
    assert first["issues"] == rows[:7] and first["nextOffset"] == 7
    assert second["issues"] == rows[7:14] and second["nextOffset"] == 14


@needs_sdk
def test_refresh_with_wait_reports_progress_from_the_task_feed(standin, tmp_path):
    server = Server(standin, tmp_path)
    progress = []

    async def on_progress(value, total, message):
        progress.append((value, message))

    async def script(session):
        done = await server.ok(session, "refresh_analytics",
                               {"wait": True, "last_years": 2, "skip": ["outliers"]},
                               progress=on_progress)
        started = await server.ok(session, "refresh_resource_tables")
        followed = await server.ok(session, "wait_for_task",
                                   {"job_type": started["jobType"], "job_id": started["jobId"]})
        status = await server.ok(session, "task_status",
                                 {"job_type": "resource_table", "limit": 1})
        monitoring = await server.ok(session, "refresh_monitoring", {"wait": True})
        return done, started, followed, status, monitoring

    done, started, followed, status, monitoring = server.run(script)
    assert done["status"] == "completed" and done["jobType"] == "ANALYTICS_TABLE"
    assert standin.job_ids("ANALYTICS_TABLE") == [done["jobId"]]
    assert standin.job_ids("RESOURCE_TABLE") == [started["jobId"]]
    assert standin.job_ids("MONITORING") == [monitoring["jobId"]]
    assert len(standin.job_ids()) == 3  # wait_for_task and task_status start nothing
    assert "updated" in done["message"]
    assert done["notificationsSeen"] == len(progress) >= 3
    assert [v for v, _ in progress] == sorted(v for v, _ in progress)  # increasing
    assert progress[-1][1] == done["message"]
    analytics = [r for r in standin.requests if r.path == "/api/resourceTables/analytics"]
    assert analytics[0].query == {"lastYears": ["2"], "skipOutliers": ["true"]}

    assert started["status"] == "started" and started["jobType"] == "RESOURCE_TABLE"
    assert followed["status"] == "completed" and followed["jobId"] == started["jobId"]
    assert status["jobId"] == started["jobId"] and status["completed"] is True
    assert len(status["notifications"]) == 1 < status["notificationsTotal"]
    assert monitoring["status"] == "completed"


@needs_sdk
def test_a_failing_job_is_a_tool_error_with_dhis2s_message(standin, tmp_path):
    server = Server(standin, tmp_path)

    async def script(session):
        standin.fail_next_job("Process failed: disk full on analytics tablespace")
        failed = await server.error(session, "refresh_analytics", {"wait": True})
        standin.fail_next_job("Process failed: monitoring broke")
        started = await server.ok(session, "refresh_monitoring")
        followed = await server.error(session, "wait_for_task",
                                      {"job_type": "MONITORING", "job_id": started["jobId"]})
        return failed, followed

    failed, followed = server.run(script)
    assert "JobFailedError" in failed and "disk full on analytics tablespace" in failed
    assert "JobFailedError" in followed and "monitoring broke" in followed


@needs_sdk
def test_destructive_operations_need_confirm(standin, tmp_path):
    server = Server(standin, tmp_path)

    async def script(session):
        refused = await server.error(session, "prune_periods")
        refused_false = await server.error(session, "drop_sql_views", {"confirm": False})
        log_before = list(standin.maintenance_log)
        pruned = await server.ok(session, "prune_periods", {"confirm": True})
        cleared = await server.ok(session, "clear_cache")
        ou = await server.ok(session, "prune_organisation_unit_data",
                             {"uid": "DiszpKrYNg8", "confirm": True})
        no_uid = await server.error(session, "prune_data_element_data", {"confirm": True})
        return refused, refused_false, log_before, pruned, cleared, ou, no_uid

    refused, refused_false, log_before, pruned, cleared, ou, no_uid = server.run(script)
    assert log_before == []  # nothing ran without confirm
    assert "delete the periods nothing refers to" in refused and "confirm: true" in refused
    assert "drop the database views" in refused_false
    assert pruned == {"operation": "prune_periods", "status": "done"}
    assert cleared["status"] == "done"
    assert ou["uid"] == "DiszpKrYNg8"
    assert "uid" in no_uid  # the schema requires it
    assert standin.maintenance_log == ["periodPruning", "cacheClear",
                                       "dataPruning/organisationUnits/DiszpKrYNg8"]


# what each maintenance tool should leave in the stand-in's maintenance log (2.42 names)
MAINTENANCE_LOG = {
    "clear_analytics_tables": "analyticsTablesClear",
    "analyze_analytics_tables": "analyticsTablesAnalyze",
    "clear_expired_invitations": "expiredInvitationsClear",
    "update_org_unit_paths": "ouPathsUpdate",
    "prune_periods": "periodPruning",
    "remove_zero_data_values": "zeroDataValueRemoval",
    "remove_soft_deleted_data_values": "softDeletedDataValueRemoval",
    "remove_soft_deleted_events": "softDeletedEventRemoval",
    "remove_soft_deleted_enrollments": "softDeletedEnrollmentRemoval",
    "remove_soft_deleted_tracked_entities": "softDeletedTrackedEntityRemoval",
    "remove_soft_deleted_relationships": "softDeletedRelationshipRemoval",
    "create_sql_views": "sqlViewsCreate",
    "drop_sql_views": "sqlViewsDrop",
    "clear_cache": "cacheClear",
    "reload_apps": "appReload",
    "prune_organisation_unit_data": "dataPruning/organisationUnits/DiszpKrYNg8",
    "prune_data_element_data": "dataPruning/dataElements/fbfJHSPpUQD",
}
PRUNE_UIDS = {"prune_organisation_unit_data": "DiszpKrYNg8",
              "prune_data_element_data": "fbfJHSPpUQD"}


def _maintenance_arguments(op):
    arguments = {"confirm": True} if op.destructive else {}
    if op.takes_uid:
        arguments["uid"] = PRUNE_UIDS[op.name]
    return arguments


@needs_sdk
def test_every_maintenance_tool_reaches_dhis2(standin, tmp_path):
    server = Server(standin, tmp_path)
    ops = [op for op in jobs.MAINTENANCE_OPERATIONS if op.name != "update_category_option_combos"]
    assert set(MAINTENANCE_LOG) == {op.name for op in ops}

    async def script(session):
        results = {}
        for op in ops:
            before = len(standin.maintenance_log)
            results[op.name] = await server.ok(session, op.name, _maintenance_arguments(op))
            # each call ran exactly its own operation, before the next call
            assert standin.maintenance_log[before:] == [MAINTENANCE_LOG[op.name]], op.name
        return results

    results = server.run(script)
    assert standin.maintenance_log == [MAINTENANCE_LOG[op.name] for op in ops]
    for op in ops:
        expected = {"operation": op.name, "status": "done"}
        if op.takes_uid:
            expected["uid"] = PRUNE_UIDS[op.name]
            expected["message"] = "Data was pruned successfully"
        if op.name == "reload_apps":
            expected["message"] = "Apps reloaded"
        assert results[op.name] == expected, op.name  # DHIS2's message when it sends one
    sent = [(r.method, r.path) for r in standin.requests if r.path.startswith("/api/maintenance")]
    assert ("GET", "/api/maintenance/appReload") in sent
    assert ("POST", "/api/maintenance/sqlViewsDrop") in sent
    assert ("POST", "/api/maintenance/dataPruning/dataElements/fbfJHSPpUQD") in sent
    assert len(sent) == len(ops)


@needs_sdk
def test_maintenance_tools_use_an_older_servers_names(start_standin, tmp_path):
    srv = start_standin("2.38", job_seconds=2.0, users={"admin": PASSWORD})
    server = Server(srv, tmp_path)

    async def script(session):
        done = [await server.ok(session, name, {"confirm": True}) for name in (
            "remove_soft_deleted_events", "remove_soft_deleted_enrollments",
            "remove_soft_deleted_tracked_entities")]
        too_old = await server.error(session, "remove_soft_deleted_relationships",
                                     {"confirm": True})
        return done, too_old

    done, too_old = server.run(script)
    assert [d["status"] for d in done] == ["done"] * 3
    assert srv.maintenance_log == ["softDeletedProgramStageInstanceRemoval",
                                   "softDeletedProgramInstanceRemoval",
                                   "softDeletedTrackedEntityInstanceRemoval"]
    assert "UnsupportedServerError" in too_old and "2.39" in too_old
    assert not any("Relationship" in r.path for r in srv.requests)  # nothing was sent


@needs_sdk
def test_predictors_validation_and_category_option_combos(standin, tmp_path):
    server = Server(standin, tmp_path)

    async def script(session):
        predicted = await server.ok(session, "run_predictors", {
            "start_date": "2025-01-01", "end_date": "2025-01-31",
            "predictors": ["a4Tz9PZk2Wq"], "predictor_groups": ["gP9sHqL4kRt"]})
        predicted_all = await server.ok(session, "run_predictors", {
            "start_date": "2025-02-01", "end_date": "2025-02-28"})
        violations = await server.ok(session, "run_validation_analysis", {
            "org_unit": "ImspTQPwCqd", "start_date": "2025-01-01", "end_date": "2025-06-30",
            "limit": 2})
        rest = await server.ok(session, "run_validation_analysis", {
            "org_unit": "ImspTQPwCqd", "start_date": "2025-01-01", "end_date": "2025-06-30",
            "offset": 2, "limit": 500})
        coc = await server.ok(session, "update_category_option_combos",
                              {"category_combo": AGE_AND_SEX, "wait": True})
        every = await server.ok(session, "update_category_option_combos")
        no_combo = await server.error(session, "update_category_option_combos", {"wait": True})
        return predicted, predicted_all, violations, rest, coc, every, no_combo

    predicted, predicted_all, violations, rest, coc, every, no_combo = server.run(script)
    posts = [(r.path, r.query) for r in standin.requests if r.method == "POST"
             and "/predictor" in r.path]
    january = {"startDate": ["2025-01-01"], "endDate": ["2025-01-31"]}
    assert posts == [("/api/predictors/a4Tz9PZk2Wq/run", january),
                     ("/api/predictorGroups/gP9sHqL4kRt/run", january),
                     ("/api/predictors/run", {"startDate": ["2025-02-01"],
                                              "endDate": ["2025-02-28"]})]
    assert [(r.get("predictor"), r.get("predictorGroup"), r["predictions"] > 0)
            for r in predicted_all["runs"]] == [(None, None, True)]
    analyses = [json.loads(r.body.decode()) for r in standin.requests
                if r.path == "/api/dataAnalysis/validationRules"]
    assert len(analyses) == 2 and all(a["ou"] == "ImspTQPwCqd" and a["persist"] is False
                                      and a["endDate"] == "2025-06-30" for a in analyses)
    assert standin.maintenance_log == ["categoryOptionComboUpdate/categoryCombo/" + AGE_AND_SEX,
                                       "categoryOptionComboUpdate"]
    assert [r.get("predictor") or r.get("predictorGroup") for r in predicted["runs"]] == \
        ["a4Tz9PZk2Wq", "gP9sHqL4kRt"]
    assert all(r["predictions"] >= 0 for r in predicted["runs"])
    assert len(violations["violations"]) == 2 and violations["nextOffset"] == 2
    assert violations["total"] == 2 + len(rest["violations"]) > 2
    assert rest["nextOffset"] is None
    assert violations["violations"][0]["validationRuleId"]
    assert coc["complete"] is True and coc["count"] == coc["expectedCount"] == 4
    assert every == {"categoryCombo": None, "status": "done"}
    assert "category_combo" in no_combo


@needs_sdk
def test_bad_arguments_and_dhis2_errors_are_tool_errors(standin, tmp_path):
    server = Server(standin, tmp_path)

    async def script(session):
        too_many = await server.error(session, "list_integrity_issues", {"limit": 100000})
        bad_uid = await server.error(session, "task_status",
                                     {"job_type": "ANALYTICS_TABLE", "job_id": "nope"})
        reversed_dates = await server.error(session, "run_predictors",
                                            {"start_date": "2025-02-01", "end_date": "2025-01-01"})
        unknown_ou = await server.error(session, "run_validation_analysis", {
            "org_unit": "AAAAAAAAAAA", "start_date": "2025-01-01", "end_date": "2025-01-31"})
        standin.conflict_next()
        conflict = await server.error(session, "refresh_resource_tables")
        timed_out = await server.error(session, "wait_for_task", {
            "job_type": "ANALYTICS_TABLE", "job_id": "AAAAAAAAAAA", "timeout_seconds": 0.3})
        return too_many, bad_uid, reversed_dates, unknown_ou, conflict, timed_out

    too_many, bad_uid, reversed_dates, unknown_ou, conflict, timed_out = server.run(script)
    assert "TaskTimeoutError" in timed_out and "0.3" in timed_out
    assert "limit" in too_many and "500" in too_many
    assert "job_id" in bad_uid
    assert "ValueError" in reversed_dates and "2025-02-01" in reversed_dates
    assert "BadRequest" in unknown_ou or "NotFound" in unknown_ou or "Conflict" in unknown_ou
    assert "ConflictError" in conflict and "already running" in conflict
    assert "Traceback" not in server.stderr()  # expected failures are not crashes


@needs_sdk
def test_no_credential_in_any_result_or_log(standin, tmp_path):
    # --debug: DEBUG logging of dhis2maint, requests/urllib3 and the SDK, all on stderr
    basic = Server(standin, tmp_path, command=("-m", "dhis2maint.mcp", "--debug"))
    token = Server(standin, tmp_path, env={"DHIS2_USERNAME": "", "DHIS2_PASSWORD": "",
                                           "DHIS2_PAT": TOKEN})
    wrong = Server(standin, tmp_path, env={"DHIS2_PASSWORD": PASSWORD + "-wrong"})

    def script_for(server):
        async def script(session):
            await server.ok(session, "server_info")
            await server.ok(session, "run_integrity_checks", {"checks": ["CNO"], "details": True})
            standin.fail_next_job()
            await server.error(session, "refresh_monitoring", {"wait": True})
            await server.error(session, "prune_periods")
        return script

    async def rejected(session):
        return await wrong.error(session, "server_info")

    basic.run(script_for(basic))
    token.run(script_for(token))
    denied = wrong.run(rejected)
    assert "AuthenticationError" in denied
    texts = basic.texts + token.texts + wrong.texts
    logs = basic.stderr() + token.stderr() + wrong.stderr()
    assert len(texts) == 9
    assert "/api/system/info" in basic.stderr()  # the debug log was written
    for secret in SECRETS + (PASSWORD + "-wrong",):
        assert not any(secret in text for text in texts), secret
        assert secret not in logs, secret
    assert any(r.headers.get("Authorization", "").startswith("ApiToken ") for r in standin.requests)


@needs_sdk
def test_a_configuration_error_stops_the_server_before_it_serves(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DHIS2_")}
    proc = subprocess.run([sys.executable, "-m", "dhis2maint.mcp"], cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60)
    assert proc.returncode == 2
    assert "DHIS2_URL" in proc.stderr and proc.stdout == ""
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"url": "http://127.0.0.1:9", "token": TOKEN}))
    os.chmod(str(auth_file), 0o644)
    proc = subprocess.run([sys.executable, "-m", "dhis2maint.mcp", "--auth-file", str(auth_file)],
                          cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert proc.returncode == 2 and "too open" in proc.stderr and TOKEN not in proc.stderr


@needs_sdk
def test_the_auth_file_is_a_connection_source(standin, tmp_path):
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"dhis": {"baseurl": standin.url, "username": "admin",
                                              "password": PASSWORD}}))
    os.chmod(str(auth_file), 0o600)
    server = Server(standin, tmp_path, command=("-m", "dhis2maint.mcp", "--auth-file",
                                                str(auth_file)))
    server.env = {}  # nothing from the environment

    async def script(session):
        return await server.ok(session, "server_info")

    assert server.run(script)["url"] == standin.url


def _readme_client_config():
    # The MCP guide (docs/mcp.rst; it was the README's "MCP" section).
    with open(os.path.join(ROOT, "docs", "mcp.rst"), encoding="utf-8") as handle:
        section = handle.read()
    block = section[section.index(".. code-block:: json"):].split("\n\n", 2)[1]
    return json.loads(block)["mcpServers"]["dhis2"]


def test_the_readme_installs_the_extra_from_pypi_and_from_a_checkout():
    with open(os.path.join(ROOT, "docs", "mcp.rst"), encoding="utf-8") as handle:
        section = handle.read()
    install = section[section.index("::\n\n"):].split("\n\n")[1]
    commands = [line.split("#")[0].strip() for line in install.splitlines()]
    assert commands == ['pip install "dhis2maint[mcp]"', 'pip install ".[mcp]"']
    assert "checkout" in install.splitlines()[1]


@needs_sdk
def test_the_readme_client_configuration_starts_the_server(standin, tmp_path):
    config = _readme_client_config()
    assert config["command"] == "dhis2maint" and config["args"] == ["mcp"]
    assert set(config["env"]) == {"DHIS2_URL", "DHIS2_PAT"}
    script = os.path.join(os.path.dirname(sys.executable), config["command"])
    if not os.path.exists(script):
        pytest.skip("the dhis2maint console script is not installed next to this Python")
    server = Server(standin, tmp_path, command=config["args"])
    server.env = dict(config["env"], DHIS2_URL=standin.url, DHIS2_PAT=TOKEN)

    async def run(session):
        return await server.ok(session, "server_info")

    assert server.run_command(script, run)["url"] == standin.url


@needs_sdk
def test_cancelling_a_waiting_call_stops_following_the_job(start_standin, tmp_path):
    srv = start_standin("2.42", job_seconds=8.0, users={"admin": PASSWORD})
    server = Server(srv, tmp_path)
    polls = []

    def feed_polls():
        return sum(1 for r in srv.requests if r.path.startswith("/api/system/tasks/"))

    async def script(session):
        seen = []

        async def on_progress(value, total, message):
            seen.append(value)

        with anyio.move_on_after(2.5):  # the client gives up: MCP cancellation
            await session.call_tool("refresh_analytics", {"wait": True},
                                    progress_callback=on_progress)
        polls.append(feed_polls())
        await anyio.sleep(4.0)  # the job goes on for 5.5 s more; polls would continue
        polls.append(feed_polls())
        return seen

    seen = server.run(script)
    assert seen  # it was following, with progress, before the cancel
    assert polls[1] - polls[0] <= 1  # at most the poll in flight, then it stopped


# --- every feature as a tool (#20.7) -------------------------------------------------------


def _sent(srv, method, fragment):
    return [r.path for r in srv.requests if r.method == method and fragment in r.path]


@needs_sdk
def test_scheduler_tools_read_and_change_the_job_configurations(standin, tmp_path):
    server = Server(standin, tmp_path)
    jobs_of = standin.scheduler.jobs

    async def script(session):
        out = {}
        out["failed"] = await server.ok(session, "list_job_configurations", {"status": "failed"})
        out["page"] = await server.ok(session, "list_job_configurations", {"limit": 2})
        out["all"] = await server.ok(session, "list_job_configurations", {"limit": 500})
        out["show"] = await server.ok(session, "get_job_configuration", {"job_id": "UsrMonitor1"})
        out["missing"] = await server.error(session, "get_job_configuration",
                                            {"job_id": "AAAAAAAAAAA"})
        out["disable_refused"] = await server.error(session, "disable_job_configuration",
                                                    {"job_id": "UsrMonitor1"})
        out["enabled_after_refusal"] = jobs_of["UsrMonitor1"]["enabled"]
        out["disabled"] = await server.ok(session, "disable_job_configuration",
                                          {"job_id": "UsrMonitor1", "confirm": True})
        out["enabled_after_disable"] = jobs_of["UsrMonitor1"]["enabled"]
        out["enabled"] = await server.ok(session, "enable_job_configuration",
                                         {"job_id": "UsrMonitor1"})
        out["enabled_after_enable"] = jobs_of["UsrMonitor1"]["enabled"]
        progress = []

        async def on_progress(value, total, message):
            progress.append(message)

        out["ran"] = await server.ok(session, "run_job_configuration",
                                     {"job_id": "UsrMonitor1", "wait": True}, progress=on_progress)
        out["progress"] = progress
        out["started"] = await server.ok(session, "run_job_configuration",
                                         {"job_id": "UsrResTab1e"})
        return out

    out = server.run(script)
    assert [c["id"] for c in out["failed"]["jobConfigurations"]] == ["UsrMetaSyn1"]
    listed = [c["id"] for c in out["all"]["jobConfigurations"]]
    assert listed == list(jobs_of)  # every configured job, in the server's order
    assert out["all"]["total"] == len(listed) and out["all"]["nextOffset"] is None
    assert [c["id"] for c in out["page"]["jobConfigurations"]] == listed[:2]
    assert out["page"]["nextOffset"] == 2
    assert "jobParameters" not in out["all"]["jobConfigurations"][0]  # lists stay bounded
    assert out["show"]["cronExpression"] == "0 0 6 ? * *"
    assert out["show"]["jobParameters"]["relativeStart"] == -7
    assert "NotFound" in out["missing"]
    assert "destructive" in out["disable_refused"] and "confirm: true" in out["disable_refused"]
    assert out["enabled_after_refusal"] is True  # refused: nothing sent
    assert out["disabled"] == {"jobId": "UsrMonitor1", "name": "Morning monitoring",
                               "enabled": False}
    assert out["enabled_after_disable"] is False and out["enabled_after_enable"] is True
    assert out["enabled"]["enabled"] is True
    assert out["ran"]["status"] == "completed" and out["ran"]["jobId"] == "UsrMonitor1"
    assert out["ran"]["lastExecutedStatus"] == jobs_of["UsrMonitor1"]["status"] == "COMPLETED"
    assert out["progress"] and all("jobStatus" in m for m in out["progress"])
    assert out["started"]["status"] == "started" and out["started"]["jobId"] == "UsrResTab1e"
    assert out["started"]["next"][0] == {"tool": "wait_for_task", "arguments": {
        "job_type": "RESOURCE_TABLE", "job_id": "UsrResTab1e"}}
    assert _sent(standin, "POST", "/execute") == [
        "/api/jobConfigurations/UsrMonitor1/execute", "/api/jobConfigurations/UsrResTab1e/execute"]


@needs_sdk
def test_create_cancel_and_delete_job_configurations(standin, tmp_path):
    server = Server(standin, tmp_path)
    jobs_of = standin.scheduler.jobs

    async def script(session):
        out = {}
        out["created"] = await server.ok(session, "create_job_configuration", {
            "name": "Early analytics", "job_type": "analytics_table",
            "cron_expression": "0 0 4 ? * *", "job_parameters": {"lastYears": 1}})
        out["in_state"] = dict(jobs_of.get(out["created"]["id"], {}))
        out["bad_cron"] = await server.error(session, "create_job_configuration", {
            "name": "Bad", "job_type": "MONITORING", "cron_expression": "nightly"})
        out["neither"] = await server.error(session, "create_job_configuration", {
            "name": "Bad", "job_type": "MONITORING"})
        out["delete_refused"] = await server.error(session, "delete_job_configuration",
                                                   {"job_id": out["created"]["id"]})
        out["still_there"] = out["created"]["id"] in jobs_of
        out["deleted"] = await server.ok(session, "delete_job_configuration",
                                         {"job_id": out["created"]["id"], "confirm": True})
        out["gone"] = out["created"]["id"] not in jobs_of
        standin.job_seconds = 60.0  # still running when it is cancelled
        await server.ok(session, "run_job_configuration", {"job_id": "UsrMonitor1"})
        await anyio.sleep(0.5)  # 2.41+ start it 0.2 s after the POST
        out["cancel_refused"] = await server.error(session, "cancel_job",
                                                   {"job_id": "UsrMonitor1"})
        out["cancel_posts_before"] = len(_sent(standin, "POST", "/cancel"))
        out["cancelled"] = await server.ok(session, "cancel_job",
                                           {"job_id": "UsrMonitor1", "confirm": True})
        out["by_type"] = await server.ok(session, "cancel_job",
                                         {"job_type": "analytics_table", "confirm": True})
        out["both"] = await server.error(session, "cancel_job", {
            "job_id": "UsrMonitor1", "job_type": "MONITORING", "confirm": True})
        return out

    out = server.run(script)
    created = out["created"]
    assert created["cronExpression"] == "0 0 4 ? * *" and created["jobType"] == "ANALYTICS_TABLE"
    assert out["in_state"]["name"] == "Early analytics"
    assert out["in_state"]["params"] == {"lastYears": 1}
    assert "Cron expression is invalid" in out["bad_cron"]
    assert "ValueError" in out["neither"] and "cron_expression or delay" in out["neither"]
    assert "destructive" in out["delete_refused"] and out["still_there"]
    assert out["deleted"] == {"jobId": created["id"], "status": "deleted"} and out["gone"]
    assert _sent(standin, "DELETE", "/jobConfigurations/") == [
        "/api/jobConfigurations/" + created["id"]]
    assert out["cancel_posts_before"] == 0 and "confirm: true" in out["cancel_refused"]
    assert out["cancelled"]["status"] == "cancellation requested"
    assert _sent(standin, "POST", "/cancel") == [
        "/api/jobConfigurations/UsrMonitor1/cancel", "/api/scheduling/cancel/ANALYTICS_TABLE"]
    assert standin.scheduler.jobs["UsrMonitor1"]["status"] == "STOPPED"
    assert out["by_type"]["jobType"] == "ANALYTICS_TABLE"
    assert "not both" in out["both"]


@needs_sdk
def test_scheduler_health_doctor_and_whoami(standin, tmp_path):
    server = Server(standin, tmp_path)

    async def script(session):
        out = {"bad": await server.ok(session, "scheduler_health")}
        standin.scheduler.reset(healthy=True)
        out["good"] = await server.ok(session, "scheduler_health")
        out["doctor"] = await server.ok(session, "doctor")
        standin.authorities["admin"] = ["F_RUN_VALIDATION"]
        out["me"] = await server.ok(session, "whoami")
        out["doctor_need"] = await server.ok(session, "doctor", {"need": ["integrity"]})
        return out

    out = server.run(script)
    bad = out["bad"]
    assert bad["ok"] is False and bad["worst"] in ("SEVERE", "CRITICAL")
    assert {f["kind"] for f in bad["findings"]} == {
        "failed", "stuck", "overdue", "disabled_system_job", "analytics_stale"}
    assert bad["findingsTotal"] == len(bad["findings"]) and bad["jobsChecked"] > 5
    failed = next(f for f in bad["findings"] if f["kind"] == "failed")
    assert failed["jobId"] == "UsrMetaSyn1"
    for finding in bad["findings"]:  # what to do: tool calls when the library gives them
        assert {"whatToDo", "next", "advice"} & set(finding)
        if "next" in finding:  # as data: no other face's words
            assert "whatToDo" not in finding
            assert all(call["tool"] in TOOLS for call in finding["next"])
            assert "session." not in json.dumps(finding) and "dhis2maint " not in \
                json.dumps(finding)
    if any("next" in f for f in bad["findings"]):
        calls = next(f for f in bad["findings"] if f["kind"] == "failed")["next"]
        assert any(c["tool"] == "run_job_configuration"
                   and c["arguments"].get("job_id") == "UsrMetaSyn1" for c in calls)
    assert out["good"]["ok"] is True and out["good"]["findings"] == []
    assert out["doctor"]["ok"] is True and out["doctor"]["url"] == standin.url
    assert any(c["name"] == "credentials" and c["status"] == "pass"
               for c in out["doctor"]["checks"])
    assert out["me"]["username"] == "admin" and out["me"]["authorities"] == ["F_RUN_VALIDATION"]
    need = out["doctor_need"]
    assert need["ok"] is False
    assert [c["name"] for c in need["checks"] if c["status"] == "fail"] == ["authority: integrity"]
    # what DHIS2 will refuse, as this server's tools (the library's detail names none; #20)
    integrity = next(c for c in need["checks"] if c["name"] == "authority: integrity")
    assert integrity["refusedTools"] == ["run_integrity_checks", "get_integrity_report",
                                         "list_integrity_issues"]


@needs_sdk
def test_task_types_and_task_list(standin, tmp_path):
    server = Server(standin, tmp_path)

    async def script(session):
        before = await server.ok(session, "list_task_types")
        first = await server.ok(session, "refresh_resource_tables", {"wait": True})
        second = await server.ok(session, "refresh_resource_tables", {"wait": True})
        after = await server.ok(session, "list_task_types")
        listed = await server.ok(session, "list_tasks", {"job_type": "resource_table"})
        one = await server.ok(session, "list_tasks", {"job_type": "RESOURCE_TABLE", "limit": 1})
        return before, first, second, after, listed, one

    before, first, second, after, listed, one = server.run(script)
    assert "RESOURCE_TABLE" not in before["jobTypes"]
    assert "RESOURCE_TABLE" in after["jobTypes"]
    assert sorted(listed["jobIds"]) == sorted(standin.job_ids("RESOURCE_TABLE")) == sorted(
        [first["jobId"], second["jobId"]])
    assert listed["jobIds"][0] == second["jobId"]  # newest first
    assert one == {"jobType": "RESOURCE_TABLE", "total": 2, "jobIds": [second["jobId"]]}


@needs_sdk
def test_validation_result_tools(standin, tmp_path):
    server = Server(standin, tmp_path)
    stored = standin.scheduler.validation_results

    async def script(session):
        out = {}
        out["bo"] = await server.ok(session, "list_validation_results",
                                    {"org_units": ["O6uvpzGd5pu"], "limit": 500})
        out["first"] = await server.ok(session, "list_validation_results", {"limit": 7})
        out["second"] = await server.ok(session, "list_validation_results",
                                        {"offset": 7, "limit": 7})
        out["refused"] = await server.error(session, "delete_validation_results",
                                            {"period": "202401"})
        out["no_filter"] = await server.error(session, "delete_validation_results",
                                              {"confirm": True})
        out["deletes_before"] = len(_sent(standin, "DELETE", "validationResults"))
        out["period"] = await server.ok(session, "delete_validation_results",
                                        {"period": "202401", "confirm": True})
        out["left_after_period"] = len(standin.scheduler.validation_results)
        out["all"] = await server.ok(session, "delete_validation_results",
                                     {"all_results": True, "confirm": True})
        out["none"] = await server.ok(session, "list_validation_results")
        out["notify"] = await server.ok(session, "send_validation_notifications")
        return out

    expected_bo = [r["id"] for r in stored if r["unit"][0] == "O6uvpzGd5pu"]
    out = server.run(script)
    assert sorted(r["id"] for r in out["bo"]["validationResults"]) == sorted(expected_bo)
    assert {r["organisationUnitId"] for r in out["bo"]["validationResults"]} == {"O6uvpzGd5pu"}
    assert out["bo"]["nextOffset"] is None
    assert len(out["first"]["validationResults"]) == 7 and out["first"]["nextOffset"] == 7
    first_ids = {r["id"] for r in out["first"]["validationResults"]}
    assert not first_ids & {r["id"] for r in out["second"]["validationResults"]}
    assert "destructive" in out["refused"] and out["deletes_before"] == 0
    assert "ValueError" in out["no_filter"] and "all_results" in out["no_filter"]
    assert out["period"] == {"status": "deleted", "allResults": False}
    assert 0 < out["left_after_period"] < 120
    assert out["all"]["allResults"] is True and standin.scheduler.validation_results == []
    assert out["none"]["validationResults"] == [] and out["none"]["nextOffset"] is None
    deletes = [r.query for r in standin.requests if r.method == "DELETE"]
    assert deletes == [{"pe": ["202401"]}, {}]
    assert out["notify"]["jobType"] == "VALIDATION_RESULTS_NOTIFICATION"
    assert _sent(standin, "POST", "validation/sendNotifications")


def _record_two_runs(srv, path):
    from dhis2maint import Session
    from dhis2maint.history import History

    with Session(srv.url, auth=("admin", PASSWORD)) as session, History(path) as history:
        for _ in range(2):
            report = session.run_integrity_checks(checks=["CNO", "program*"], details=True)
            history.record(report, session)
        return history.runs(), history.open_issues()


@needs_sdk
def test_history_tools_read_the_servers_history_file(standin, tmp_path):
    path = str(tmp_path / "history.sqlite")
    runs, open_issues = _record_two_runs(standin, path)
    assert open_issues  # something to show
    server = Server(standin, tmp_path, command=("-m", "dhis2maint.mcp", "--history", path))
    from_env = Server(standin, tmp_path, command=("-m", "dhis2maint", "mcp"),
                      env={"DHIS2MAINT_HISTORY": path})
    missing_path = str(tmp_path / "nothing-yet.sqlite")
    missing = Server(standin, tmp_path, env={"DHIS2MAINT_HISTORY": missing_path})
    none = Server(standin, tmp_path, env={"DHIS2MAINT_HISTORY": ""})
    posts_before = len([r for r in standin.requests if r.method == "POST"])

    async def script(session):
        out = {"runs": await server.ok(session, "integrity_history")}
        out["one_run"] = await server.ok(session, "integrity_history", {"limit": 1})
        out["trend"] = await server.ok(session, "integrity_trend")
        out["other_server"] = await server.ok(session, "integrity_trend",
                                              {"server": "https://elsewhere.example.org"})
        out["open"] = await server.ok(session, "integrity_open_issues", {"limit": 500})
        out["critical"] = await server.ok(session, "integrity_open_issues",
                                          {"severity": "critical", "limit": 500})
        out["bad_age"] = await server.error(session, "integrity_open_issues",
                                            {"older_than": "yesterday"})
        return out

    async def env_script(session):
        return await from_env.ok(session, "integrity_history")

    async def missing_script(session):
        return await missing.error(session, "integrity_trend")

    async def none_script(session):
        return await none.error(session, "integrity_open_issues")

    out = server.run(script)
    assert [r["id"] for r in out["runs"]["runs"]] == [r.id for r in runs]
    assert out["runs"]["total"] == 2 and out["runs"]["runs"][0]["base_url"] == standin.url
    assert len(out["one_run"]["runs"]) == 1 and out["one_run"]["nextOffset"] == 1
    assert [p["count"] for p in out["trend"]["points"]] == [r.issues for r in runs]
    assert out["other_server"]["points"] == []
    assert len(out["open"]["issues"]) == len(open_issues)
    assert {i["id"] for i in out["open"]["issues"]} == {i.id for i in open_issues}
    assert all(i["severity"] == "CRITICAL" for i in out["critical"]["issues"])
    assert "older_than" in out["bad_age"]
    assert from_env.run(env_script)["total"] == 2
    assert "no history file" in missing.run(missing_script)
    assert not os.path.exists(missing_path)  # reading never creates one
    assert "--history" in none.run(none_script)
    # the history tools start nothing on the server
    assert len([r for r in standin.requests if r.method == "POST"]) == posts_before


def test_the_docs_list_every_tool():
    with open(os.path.join(ROOT, "docs", "mcp.rst"), encoding="utf-8") as handle:
        text = handle.read()
    assert [a.tool for a in ACTIONS if "``{}``".format(a.tool) not in text] == []
    for action in ACTIONS:
        if action.destructive and action.tool not in MAINTENANCE_TOOLS:
            assert "``{}`` DESTRUCTIVE".format(action.tool) in " ".join(text.split())


@needs_sdk
def test_scheduler_tools_on_an_older_server(start_standin, tmp_path):
    srv = start_standin("2.40", job_seconds=0.3, users={"admin": PASSWORD})
    server = Server(srv, tmp_path)

    async def script(session):
        by_id = await server.error(session, "cancel_job",
                                   {"job_id": "UsrMonitor1", "confirm": True})
        notify = await server.ok(session, "send_validation_notifications")
        listed = await server.ok(session, "list_job_configurations",
                                 {"include_run_once": True, "limit": 500})
        return by_id, notify, listed

    by_id, notify, listed = server.run(script)
    assert "UnsupportedServerError" in by_id and "2.41" in by_id
    assert not _sent(srv, "POST", "/cancel")  # refused before anything was sent
    assert notify == {"status": "started"}  # 2.36-2.40: no job to follow
    assert _sent(srv, "POST", "validation/sendNotifications")
    assert [c["id"] for c in listed["jobConfigurations"]] == list(srv.scheduler.jobs)


@needs_sdk
def test_a_lost_job_start_names_the_tool_to_check_it_with(standin, tmp_path):
    # a library error with follow-ups over stdio: POST …/execute sent, its answer lost
    server = Server(standin, tmp_path)

    async def script(session):
        standin.drop_response_next(1, method="POST")
        return await server.error(session, "run_job_configuration", {"job_id": "UsrMonitor1"})

    lost = server.run(script)
    assert "MAY have started" in lost
    assert " Next: " in lost  # the library's follow-up, worded as the tool and its arguments
    assert lost.endswith(' with the get_job_configuration tool {"job_id": "UsrMonitor1"}.')
    assert "session." not in lost and "dhis2maint " not in lost
    assert _sent(standin, "POST", "/execute") == ["/api/jobConfigurations/UsrMonitor1/execute"]
