"""The MCP server: dhis2maint's maintenance tools for AI assistants.

``dhis2maint mcp`` (or ``python -m dhis2maint.mcp``) serves the tools over stdio
with the official MCP SDK, which ``pip install "dhis2maint[mcp]"`` adds on
Python 3.10+.  Like the command line it is a face on :class:`Session`: the
connection comes from the same places as the CLI's (``--url``/``--auth-file``
and the ``DHIS2_*`` environment), never from tool arguments, and every tool
call opens its own session, so a waiting job does not block other calls.
The tools are the MCP face of :data:`dhis2maint.options.ACTIONS`, the one table
of what dhis2maint does (Session method, tool, command, parameters,
destructive or read-only); an error's follow-ups
(:class:`~dhis2maint.models.FollowUp`) are worded as the tools that do them.
The history tools read the history the server was started with (``--history``
FILE or ``postgresql://`` URL, or ``$DHIS2MAINT_HISTORY``), never one a tool
call names.

The SDK is imported by :func:`build_server`, not at import time, so
``import dhis2maint`` (and Python 3.7) never needs it.  Tool results are bounded (``limit``/``offset`` paging, a
per-check issue limit, clipped texts); failures come back as MCP tool errors
carrying the library's message, which never holds a credential.
"""
# The tools' parameter types are built at run time for the SDK's schemas, and the
# SDK is an optional extra: see [mypy-dhis2maint.mcp] in setup.cfg.
# pyright: reportInvalidTypeForm=false, reportMissingImports=false
import argparse
import functools
import json
import logging
import os
import sys
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple,
                    TypeVar)

from . import __version__
from .errors import ConfigurationError, Dhis2Error
from .options import ACTIONS, Action, connect, connection_options, find_action, run_command

if TYPE_CHECKING:
    from .history import History
    from .models import DataIntegrityReport, FollowUp, Job
    from .session import Session

_F = TypeVar("_F", bound=Callable[..., Any])

log = logging.getLogger("dhis2maint.mcp")

#: What to do when the SDK is missing (the CLI prints it and exits 2).
INSTALL_HINT = ('the MCP server needs the MCP SDK 2.x on Python 3.10 or newer: '
                'pip install "dhis2maint[mcp]"')

MAX_CHECKS = 500  #: most checks in one list / report page
MAX_ISSUES_PER_CHECK = 50  #: most issues shown per check in a report page
MAX_ISSUE_ROWS = 500  #: most rows in one page of list_integrity_issues
MAX_VIOLATIONS = 500  #: most validation violations in one page
MAX_NOTIFICATIONS = 50  #: most task notifications in a result
MAX_ROWS = 500  #: most rows in one page of a listing (jobs, validation results, history)
MAX_FINDINGS = 200  #: most scheduler-health findings in a result
TEXT_LIMIT = 1000  #: characters kept of any one text (comments, descriptions)
DEFAULT_WAIT = 1800.0  #: seconds a waiting tool follows a job unless told otherwise

RECENT_NOTIFICATIONS = 10  #: the newest notifications a job result shows


def _clip(text: Any, limit: int = TEXT_LIMIT) -> Any:
    if isinstance(text, str) and len(text) > limit:
        return text[:limit - 1] + "…"
    return text


# --- follow-ups: what to do next, worded as the tools that do it ------------------------


def follow_up_call(follow_up: "FollowUp") -> Optional[Dict[str, Any]]:
    """A :class:`~dhis2maint.models.FollowUp` as a tool call: ``{"tool", "arguments"}``
    (plus ``note``, and ``destructive`` when the tool needs ``confirm``), or None when
    no tool does its action."""
    action = find_action(follow_up.action)
    if action is None:
        return None
    out: Dict[str, Any] = {"tool": action.tool,
                           "arguments": action.tool_arguments(follow_up.args)}
    if action.destructive:
        out["destructive"] = True
    if follow_up.note:
        out["note"] = _clip(follow_up.note)
    return out


def follow_up_text(follow_up: "FollowUp") -> Optional[str]:
    """One follow-up in words for an assistant, read as the library means a note
    (``<note> with <call>``): ``follow it with the wait_for_task tool {"job_type": …,
    "job_id": …}``, or without a note ``call the … tool with {…}``; the note alone
    when no tool does it."""
    call = follow_up_call(follow_up)
    if call is None:
        return _clip(follow_up.note) or None
    text = "the {} tool".format(call["tool"])
    if call["arguments"]:
        text += " " + json.dumps(call["arguments"], default=str, ensure_ascii=False)
    if call.get("destructive"):
        text += " (destructive: ask the user first, then add confirm: true)"
    if call.get("note"):
        return "{} with {}".format(call["note"], text)
    return "call " + text.replace(" tool {", " tool with {", 1)


def _follow_up_calls(follow_ups: Any) -> List[Dict[str, Any]]:
    calls = (follow_up_call(f) for f in follow_ups or ())
    return [c for c in calls if c is not None]


def _one_line(exc: BaseException) -> str:
    """An error as one line for an assistant: its type, the library's message and
    its follow-ups worded as tools (``Next: call the … tool with {…}``)."""
    message = getattr(exc, "message", None) if isinstance(exc, Dhis2Error) else None
    text = message if isinstance(message, str) else str(exc)
    text = " ".join((text.strip() or type(exc).__name__).split())
    line = "{}: {}".format(type(exc).__name__, _clip(text))
    steps = [t for t in (follow_up_text(f) for f in getattr(exc, "follow_ups", ()) or ()) if t]
    if steps:
        line += " Next: {}.".format("; or ".join(steps))
    return line


def describe(action: Action) -> str:
    """The tool description of ``action``: its summary; a destructive one says so first."""
    if action.destructive:
        return "DESTRUCTIVE: {}.  Pass confirm: true only after the user agreed.".format(
            action.summary.rstrip("."))
    text = action.summary[:1].upper() + action.summary[1:]
    return text if text.endswith(".") else text + "."


def refusal(action: Action) -> str:
    """Why a destructive tool called without ``confirm: true`` did nothing."""
    return ("{} is destructive: it would {}. Nothing was done; call it again with confirm: "
            "true once the user agreed.".format(action.tool, action.summary.rstrip(".")))


#: The tools that read the history file (not DHIS2).
HISTORY_TOOLS = ("integrity_history", "integrity_trend", "integrity_open_issues")


def _sdk() -> Dict[str, Any]:
    """The SDK names the server needs, or :class:`ConfigurationError` saying how to get them."""
    try:
        from mcp.server.mcpserver import Context, MCPServer
        from mcp.server.mcpserver.exceptions import ToolError
        from mcp.types import ToolAnnotations
        import anyio.from_thread  # the SDK's own dependencies
        from pydantic import Field
    except ImportError as exc:
        name = getattr(exc, "name", None) or ""
        if name.split(".")[0] not in ("mcp", "mcp_types", "pydantic", "anyio"):
            raise
        raise ConfigurationError("{} (cannot import {})".format(INSTALL_HINT, name)) from None
    return {"Context": Context, "MCPServer": MCPServer, "ToolError": ToolError,
            "ToolAnnotations": ToolAnnotations, "Field": Field,
            "from_thread": anyio.from_thread}


# --- result shapes (plain JSON) -------------------------------------------------------


def _json_model(model: Any) -> Any:
    from .convert import unstructure

    value = unstructure(model)
    if isinstance(value, dict):
        return {k: _clip(v) for k, v in value.items()}
    return value


def _page(items: List[Any], offset: int, limit: int) -> Tuple[List[Any], Optional[int]]:
    """``items[offset:offset+limit]`` and the next offset (None at the end)."""
    chunk = items[offset:offset + limit]
    return chunk, (offset + limit if offset + limit < len(items) else None)


def _page_stream(rows: Iterable[Any], offset: int, limit: int) -> Tuple[List[Any], Optional[int]]:
    """Rows ``offset`` to ``offset+limit`` of a stream read no further than one row past
    them (then closed: a streamed answer stops downloading), and the next offset
    (None at the end)."""
    import itertools

    try:
        chunk = list(itertools.islice(rows, offset, offset + limit + 1))
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()
    return chunk[:limit], (offset + limit if len(chunk) > limit else None)


def _severity_text(severity: Any) -> Optional[str]:
    return str(severity).upper() if severity is not None else None


def _result_dict(result: Any, issue_offset: int, issue_limit: int) -> Dict[str, Any]:
    out = {
        "check": result.name, "displayName": result.display_name, "section": result.section,
        "severity": _severity_text(result.severity), "code": result.code,
        "count": result.count, "percentage": result.percentage, "error": _clip(result.error),
    }
    if result.finished_time is not None:
        from .convert import format_datetime

        out["finishedTime"] = format_datetime(result.finished_time)
    if result.issues is not None:
        shown, next_offset = _page(list(result.issues), issue_offset, issue_limit)
        out["issues"] = [{"id": i.id, "name": _clip(i.name), "comment": _clip(i.comment),
                          "refs": list(i.refs or ())[:20]} for i in shown]
        out["issuesTotal"] = len(result.issues)
        out["nextIssueOffset"] = next_offset
    return {k: v for k, v in out.items() if v is not None or k == "nextIssueOffset"}


def report_dict(report: "DataIntegrityReport", offset: int = 0, limit: int = 100,
                issue_offset: int = 0, issue_limit: int = 5) -> Dict[str, Any]:
    """A :class:`DataIntegrityReport` as a bounded JSON page: totals over the whole
    report, then ``limit`` checks from ``offset`` (worst severity, then most issues,
    first), each with up to ``issue_limit`` issues from ``issue_offset``."""
    from .models import severity_rank

    results = sorted(report, key=lambda r: (-severity_rank(str(r.severity or "WARNING")),
                                            -(r.count or 0), r.name))
    page, next_offset = _page(results, offset, limit)
    return {
        "details": bool(report.details),
        "checks": len(results),
        "checksWithIssues": sum(1 for r in results if (r.count or 0) > 0),
        "checksFailed": [r.name for r in results if r.error or (r.count is not None
                                                               and r.count < 0)][:MAX_CHECKS],
        "issuesTotal": sum(r.count or 0 for r in results if (r.count or 0) > 0),
        "offset": offset,
        "nextOffset": next_offset,
        "results": [_result_dict(r, issue_offset, issue_limit) for r in page],
    }


def _notification_dict(note: Any) -> Any:
    value = _json_model(note)
    value.pop("data", None)  # job parameters and summaries: unbounded, and not needed here
    return value


class _Feed:
    """Collects a job's notifications and forwards each as MCP progress."""

    def __init__(self, report: Optional[Callable[[float, Optional[str]], None]]) -> None:
        self.report = report
        self.seen = 0
        self.last: List[Any] = []

    def __call__(self, note: Any) -> None:
        self.seen += 1
        self.last = (self.last + [note])[-RECENT_NOTIFICATIONS:]
        if self.report is not None:
            self.report(float(self.seen), note.message or str(note.level or ""))


def _job_dict(job: Any, final: Any = None, feed: Optional[_Feed] = None) -> Dict[str, Any]:
    from .models import FollowUp

    out: Dict[str, Any] = {"jobType": str(job.job_type), "jobId": job.id,
                           "status": "started" if final is None else "completed"}
    if final is None:
        out["message"] = _clip(job.message)
        args = (("job_type", str(job.job_type)), ("job_id", job.id))
        out["next"] = [follow_up_call(FollowUp("wait_for_task", args)),
                       follow_up_call(FollowUp("get_task_notifications", args))]
    else:
        out["message"] = _clip(final.message) or "done"
    if feed is not None:
        out["notificationsSeen"] = feed.seen
        out["notifications"] = [_notification_dict(n) for n in feed.last]
    return out


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(getattr(value, "value", value))


def _listing(key: str, rows: List[Any], offset: int, limit: int) -> Dict[str, Any]:
    page, next_offset = _page(rows, offset, limit)
    return {"total": len(rows), "offset": offset, "nextOffset": next_offset, key: page}


def _config_dict(config: Any, full: bool = False) -> Dict[str, Any]:
    """A job configuration as JSON; in a listing without its (unbounded) jobParameters."""
    value: Dict[str, Any] = _json_model(config)
    if not full:
        value.pop("jobParameters", None)
    return value


def _with_next(record: Any, hint_key: str) -> Dict[str, Any]:
    """A health finding or doctor check as JSON.  When the library gives what to do as
    data (``follow_ups``, ``advice``), its follow-ups become tool calls under ``next``
    and ``hint_key`` (the same advice in another face's words) is left out."""
    value: Dict[str, Any] = _json_model(record)
    value.pop("followUps", None)
    if hasattr(record, "follow_ups"):
        value.pop(hint_key, None)
        calls = _follow_up_calls(record.follow_ups)
        if calls:
            value["next"] = calls
    return value


# --- the server ---------------------------------------------------------------------------


def build_server(connect: Callable[[], "Session"], debug: bool = False,
                 history: Optional[str] = None) -> Any:
    """An ``mcp.server.mcpserver.MCPServer`` with dhis2maint's tools, one per
    :data:`~dhis2maint.options.ACTIONS` entry.

    ``connect()`` returns a new :class:`Session` (the CLI passes its own
    ``connect``); each tool call uses one and closes it.  ``history``: the
    history file the history tools read (they fail without one).  Raises
    :class:`ConfigurationError` when the SDK is not installed.
    """
    sdk = _sdk()
    Context, ToolError, Field = sdk["Context"], sdk["ToolError"], sdk["Field"]
    ToolAnnotations, from_thread = sdk["ToolAnnotations"], sdk["from_thread"]
    from typing import Annotated, Literal

    # Python 3.10+ only from here on (the SDK's floor).  `dict[str, Any]`, not
    # typing.Dict: the SDK then publishes the result as a plain JSON object.
    Result = dict[str, Any]

    from .jobs import ANALYTICS_FLAGS, MAINTENANCE_OPERATIONS
    from .models import DataIntegritySeverity

    server = sdk["MCPServer"](
        name="dhis2maint", version=__version__, log_level="DEBUG" if debug else "WARNING",
        instructions=(
            "Maintenance of one DHIS2 server: data-integrity checks, analytics and "
            "resource-table refreshes, background-job status, predictors, validation "
            "analysis, validation results, the scheduler (job configurations and its "
            "health), the doctor, /api/maintenance operations and the integrity history.  "
            "Results are paged: pass the returned nextOffset as offset for more.  Tools "
            "marked DESTRUCTIVE delete or stop something and need confirm: true; ask the "
            "user first.  An error's 'Next:' names the tool to call and its arguments."))

    actions = {action.tool: action for action in ACTIONS}
    registered: List[str] = []

    def tool(name: str) -> Callable[[_F], _F]:
        """Register ``fn`` as the tool of ``ACTIONS`` entry ``name``: its description and
        annotations from there, ``confirm: true`` enforced when it is destructive, and
        library errors (with their follow-ups) as MCP tool errors."""
        action = actions[name]
        annotations = ToolAnnotations(readOnlyHint=action.read_only,
                                      destructiveHint=action.destructive,
                                      openWorldHint=name not in HISTORY_TOOLS)

        def register(fn: _F) -> _F:
            @functools.wraps(fn)
            def guarded(*args: Any, **kwargs: Any) -> Any:
                if action.destructive and kwargs.get("confirm") is not True:
                    raise ToolError(refusal(action))
                try:
                    return fn(*args, **kwargs)
                except ToolError:
                    raise
                except (Dhis2Error, ValueError) as exc:
                    raise ToolError(_one_line(exc)) from None
            server.add_tool(guarded, name=name, description=describe(action),
                            annotations=annotations)
            registered.append(name)
            return fn
        return register

    def progress_reporter(ctx: Any) -> Callable[[float, Optional[str]], None]:
        """A ``report(progress, message)`` for the tool's worker thread: sends an MCP
        progress notification, and stops the wait once the client cancelled the call."""
        def report(progress: float, message: Optional[str]) -> None:
            from_thread.check_cancelled()  # raises into job.wait(): stop polling DHIS2
            if ctx is None:
                return
            try:
                from_thread.run(functools.partial(ctx.report_progress, progress, None, message))
            except Exception:  # the client went away: keep following the job
                log.debug("progress notification not sent", exc_info=True)
        return report

    Offset = Annotated[int, Field(ge=0, description="skip this many (from nextOffset)")]
    Checks = Annotated[Optional[List[str]], Field(
        description="check names, codes (e.g. CNO) or wildcards (program*); omit for all")]
    Wait = Annotated[bool, Field(description="follow the job to its end, with progress "
                                             "notifications from DHIS2's task feed")]
    Timeout = Annotated[float, Field(gt=0, le=86400, description="seconds to wait at most; the "
                                                                "job may go on after that")]
    Date = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")]
    Uid = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]{10}$", description="a DHIS2 UID")]
    Severity = Literal[tuple(s.value.lower() for s in DataIntegritySeverity)]
    Confirm = Annotated[bool, Field(description="must be true, and only once the user agreed: "
                                                "this deletes or stops something")]
    SkipName = Literal[tuple(flag[len("skip_"):] for flag, _ in ANALYTICS_FLAGS)]

    def follow(session: "Session", job: "Job", wait: bool, timeout_seconds: float,
               ctx: Any) -> Dict[str, Any]:
        if not wait:
            return _job_dict(job)
        feed = _Feed(progress_reporter(ctx))
        final = job.wait(timeout=timeout_seconds, on_notification=feed)
        return _job_dict(job, final, feed)

    # --- integrity ----------------------------------------------------------------------

    @tool("server_info")
    def server_info() -> Result:
        with connect() as session:
            return {"dhis2maint": __version__, "url": session.base_url,
                    "dhis2Version": ".".join(str(p) for p in session.server_version)}

    @tool("list_integrity_checks")
    def list_integrity_checks(
            section: Annotated[Optional[str], Field(description="exact section name")] = None,
            severity: Optional[Severity] = None,
            slow: Annotated[Optional[bool], Field(
                description="true: only slow checks; false: only default-run ones")] = None,
            checks: Checks = None,
            offset: Offset = 0,
            limit: Annotated[int, Field(ge=1, le=MAX_CHECKS)] = 200) -> Result:
        with connect() as session:
            found = session.list_integrity_checks(section=section, severity=severity, slow=slow,
                                                  checks=checks)
        page, next_offset = _page(found, offset, limit)
        keep = ("name", "code", "displayName", "section", "severity", "isSlow", "description")
        return {"total": len(found), "offset": offset, "nextOffset": next_offset,
                "checks": [{k: v for k, v in _json_model(c).items() if k in keep} for c in page]}

    @tool("run_integrity_checks")
    def run_integrity_checks(
            checks: Checks = None,
            details: Annotated[bool, Field(description="collect issues, not only counts")] = False,
            include_slow: Annotated[bool, Field(
                description="with no checks named, run the slow checks too")] = False,
            timeout_seconds: Timeout = DEFAULT_WAIT,
            offset: Offset = 0,
            limit: Annotated[int, Field(ge=1, le=MAX_CHECKS)] = 100,
            issue_offset: Offset = 0,
            issue_limit: Annotated[int, Field(ge=0, le=MAX_ISSUES_PER_CHECK)] = 5,
            ctx: Optional[Context] = None) -> Result:
        feed = _Feed(progress_reporter(ctx))
        with connect() as session:
            report = session.run_integrity_checks(checks=checks, details=details,
                                                  timeout=timeout_seconds, on_notification=feed,
                                                  include_slow=include_slow)
        return report_dict(report, offset, limit, issue_offset, issue_limit)

    @tool("get_integrity_report")
    def get_integrity_report(
            checks: Checks = None,
            details: bool = True,
            offset: Offset = 0,
            limit: Annotated[int, Field(ge=1, le=MAX_CHECKS)] = 100,
            issue_offset: Offset = 0,
            issue_limit: Annotated[int, Field(ge=0, le=MAX_ISSUES_PER_CHECK)] = 5
    ) -> Result:
        with connect() as session:
            report = session.get_integrity_report(checks=checks, details=details)
        return report_dict(report, offset, limit, issue_offset, issue_limit)

    @tool("list_integrity_issues")
    def list_integrity_issues(
            checks: Checks = None,
            offset: Offset = 0,
            limit: Annotated[int, Field(ge=1, le=MAX_ISSUE_ROWS)] = 100) -> Result:
        with connect() as session:
            rows, next_offset = _page_stream(session.iter_integrity_issues(checks=checks),
                                             offset, limit)
        return {"offset": offset, "nextOffset": next_offset,
                "issues": [{"check": r.check_name, "severity": _severity_text(r.severity),
                            "id": r.issue.id, "name": _clip(r.issue.name),
                            "comment": _clip(r.issue.comment),
                            "refs": list(r.issue.refs or ())[:20]} for r in rows]}

    # --- jobs ---------------------------------------------------------------------------

    @tool("refresh_analytics")
    def refresh_analytics(
            last_years: Annotated[Optional[int], Field(
                ge=1, description="only the last N years of data")] = None,
            skip: Annotated[Optional[List[SkipName]], Field(
                description="parts to skip (each needs a DHIS2 version that knows it)")] = None,
            wait: Wait = False,
            timeout_seconds: Timeout = DEFAULT_WAIT,
            ctx: Optional[Context] = None) -> Result:
        flags = {"skip_" + name: True for name in skip or ()}
        with connect() as session:
            job = session.refresh_analytics(last_years=last_years, **flags)
            return follow(session, job, wait, timeout_seconds, ctx)

    @tool("refresh_resource_tables")
    def refresh_resource_tables(wait: Wait = False, timeout_seconds: Timeout = DEFAULT_WAIT,
                                ctx: Optional[Context] = None) -> Result:
        with connect() as session:
            return follow(session, session.refresh_resource_tables(), wait, timeout_seconds, ctx)

    @tool("refresh_monitoring")
    def refresh_monitoring(wait: Wait = False, timeout_seconds: Timeout = DEFAULT_WAIT,
                           ctx: Optional[Context] = None) -> Result:
        with connect() as session:
            return follow(session, session.refresh_monitoring(), wait, timeout_seconds, ctx)

    JobType = Annotated[str, Field(pattern=r"^[A-Za-z_]+$",
                                   description="e.g. ANALYTICS_TABLE, RESOURCE_TABLE, MONITORING, "
                                               "DATA_INTEGRITY")]

    @tool("task_status")
    def task_status(
            job_type: JobType,
            job_id: Annotated[Optional[str], Field(pattern=r"^[A-Za-z][A-Za-z0-9]{10}$")] = None,
            limit: Annotated[int, Field(ge=1, le=MAX_NOTIFICATIONS)] = 20) -> Result:
        job_type = job_type.upper()
        with connect() as session:
            if job_id is None:
                job_id, notes = session.get_latest_task(job_type)
            else:
                notes = session.get_task_notifications(job_type, job_id)
        return {"jobType": job_type, "jobId": job_id,
                "completed": bool(notes and notes[0].completed),
                "notificationsTotal": len(notes),
                "notifications": [_notification_dict(n) for n in notes[:limit]]}

    @tool("wait_for_task")
    def wait_for_task(job_type: JobType, job_id: Uid, timeout_seconds: Timeout = DEFAULT_WAIT,
                      ctx: Optional[Context] = None) -> Result:
        job_type = job_type.upper()
        feed = _Feed(progress_reporter(ctx))
        with connect() as session:
            final = session.wait_for_task(job_type, job_id, timeout=timeout_seconds,
                                          on_notification=feed)
        return {"jobType": job_type, "jobId": job_id, "status": "completed",
                "message": _clip(final.message) or "done", "notificationsSeen": feed.seen,
                "notifications": [_notification_dict(n) for n in feed.last]}

    @tool("run_predictors")
    def run_predictors(start_date: Date, end_date: Date,
                       predictors: Optional[List[Uid]] = None,
                       predictor_groups: Optional[List[Uid]] = None) -> Result:
        with connect() as session:
            runs = session.run_predictors(start_date, end_date, predictors=predictors,
                                          predictor_groups=predictor_groups)
        runs = runs if isinstance(runs, list) else [runs]
        return {"runs": [_json_model(r) for r in runs[:MAX_CHECKS]]}

    @tool("run_validation_analysis")
    def run_validation_analysis(
            org_unit: Uid, start_date: Date, end_date: Date,
            validation_rule_group: Optional[Uid] = None,
            persist: Annotated[bool, Field(description="store the violations in DHIS2")] = False,
            notification: Annotated[bool, Field(
                description="send the rules' notifications")] = False,
            offset: Offset = 0,
            limit: Annotated[int, Field(ge=1, le=MAX_VIOLATIONS)] = 100) -> Result:
        with connect() as session:
            violations = session.run_validation_analysis(
                org_unit, start_date, end_date, validation_rule_group=validation_rule_group,
                notification=notification, persist=persist)
        page, next_offset = _page(violations, offset, limit)
        return {"total": len(violations), "offset": offset, "nextOffset": next_offset,
                "violations": [_json_model(v) for v in page]}

    @tool("update_category_option_combos")
    def update_category_option_combos(
            category_combo: Optional[Uid] = None,
            wait: bool = False,
            timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0) -> Result:
        if wait and not category_combo:
            raise ToolError("wait needs category_combo (a category combo UID)")
        with connect() as session:
            if wait:
                assert category_combo is not None  # checked above
                state = session.wait_for_coc_generation(category_combo, timeout=timeout_seconds)
                return {"categoryCombo": state.id, "name": state.name, "count": state.count,
                        "expectedCount": state.expected_count, "complete": state.complete}
            summary = session.update_category_option_combos(category_combo)
        out: Dict[str, Any] = {"categoryCombo": category_combo, "status": "done"}
        if summary is not None:
            value = _json_model(summary)
            for key in ("descriptions", "conflicts"):
                if isinstance(value.get(key), list):
                    value[key] = value[key][:MAX_NOTIFICATIONS]
            out["summary"] = value
        return out

    # --- doctor, whoami, task lists (#20.7) -------------------------------------------------

    @tool("doctor")
    def doctor(need: Annotated[Optional[List[str]], Field(
            description="features whose missing authority is a failure, not a warning: "
                        "e.g. integrity, analytics, maintenance, scheduler admin")] = None
               ) -> Result:
        with connect() as session:
            report = session.doctor(need=need or ())
        from .doctor import refused_actions

        checks = []
        for check in report.checks:
            value = _with_next(check, "fix")
            refused = [find_action(a) for a in refused_actions(check)]
            if refused:  # what DHIS2 will refuse (HTTP 403), as this server's tools
                value["refusedTools"] = [a.tool for a in refused if a is not None]
            checks.append(value)
        return {"url": report.url, "ok": report.ok, "checks": checks}

    @tool("whoami")
    def whoami() -> Result:
        with connect() as session:
            user = session.whoami()
        out: Dict[str, Any] = _json_model(user)
        return out

    @tool("list_task_types")
    def list_task_types() -> Result:
        with connect() as session:
            return {"jobTypes": session.list_task_types()[:MAX_ROWS]}

    @tool("list_tasks")
    def list_tasks(job_type: JobType,
                   limit: Annotated[int, Field(ge=1, le=MAX_ROWS)] = 100) -> Result:
        job_type = job_type.upper()
        with connect() as session:
            ids = session.list_tasks(job_type)
        return {"jobType": job_type, "total": len(ids), "jobIds": ids[:limit]}

    # --- the scheduler (#20.7) ---------------------------------------------------------------

    JobId = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{11}$",
                                 description="a job configuration's id (11 characters)")]
    RowLimit = Annotated[int, Field(ge=1, le=MAX_ROWS)]

    @tool("list_job_configurations")
    def list_job_configurations(
            job_type: Optional[JobType] = None,
            enabled: Optional[bool] = None,
            status: Annotated[Optional[str], Field(
                pattern=r"^[A-Za-z_]+$", description="jobStatus or last run status, e.g. "
                                                     "FAILED, RUNNING, SCHEDULED")] = None,
            include_run_once: Annotated[bool, Field(
                description="also the ad-hoc run-once rows of 2.41+")] = False,
            offset: Offset = 0, limit: RowLimit = 100) -> Result:
        with connect() as session:
            configs = session.list_job_configurations(
                job_type=job_type.upper() if job_type else None, enabled=enabled,
                status=status.upper() if status else None)
        if not include_run_once:
            configs = [c for c in configs if not c.is_run_once]
        return _listing("jobConfigurations", [_config_dict(c) for c in configs], offset, limit)

    @tool("get_job_configuration")
    def get_job_configuration(job_id: JobId) -> Result:
        with connect() as session:
            return _config_dict(session.get_job_configuration(job_id), full=True)

    @tool("run_job_configuration")
    def run_job_configuration(job_id: JobId, wait: Wait = False,
                              timeout_seconds: Timeout = DEFAULT_WAIT,
                              ctx: Optional[Context] = None) -> Result:
        report = progress_reporter(ctx)
        changes = [0]

        def changed(config: Any) -> None:
            changes[0] += 1
            report(float(changes[0]), "jobStatus {}, last run {}".format(
                config.job_status, config.last_executed_status))

        with connect() as session:
            job = session.run_job_configuration(job_id, wait=wait, timeout=timeout_seconds,
                                                on_change=changed)
            if not wait:
                return _job_dict(job)
            config = session.get_job_configuration(job_id)
        return {"jobType": str(job.job_type), "jobId": job.id, "status": "completed",
                "lastExecutedStatus": _text(config.last_executed_status),
                "lastRuntimeExecution": config.last_runtime_execution}

    @tool("enable_job_configuration")
    def enable_job_configuration(job_id: JobId) -> Result:
        with connect() as session:
            config = session.enable_job_configuration(job_id)
        return {"jobId": config.id, "name": _clip(config.name), "enabled": config.enabled}

    @tool("disable_job_configuration")
    def disable_job_configuration(job_id: JobId, confirm: Confirm = False) -> Result:
        with connect() as session:
            config = session.disable_job_configuration(job_id)
        return {"jobId": config.id, "name": _clip(config.name), "enabled": config.enabled}

    @tool("cancel_job")
    def cancel_job(job_id: Optional[JobId] = None,
                   job_type: Optional[JobType] = None,
                   confirm: Confirm = False) -> Result:
        if (job_id is None) == (job_type is None):
            raise ToolError("give job_id (DHIS2 2.41+) or job_type (2.37+), not both")
        with connect() as session:
            session.cancel_job(job_id=job_id, job_type=job_type.upper() if job_type else None)
        return {"jobId": job_id, "jobType": job_type.upper() if job_type else None,
                "status": "cancellation requested"}

    @tool("create_job_configuration")
    def create_job_configuration(
            name: Annotated[str, Field(min_length=1, max_length=230)],
            job_type: JobType,
            cron_expression: Annotated[Optional[str], Field(
                description='6 fields, seconds first: "0 0 3 ? * *"')] = None,
            delay: Annotated[Optional[int], Field(
                ge=1, description="FIXED_DELAY seconds (instead of cron_expression)")] = None,
            job_parameters: Annotated[Optional[Dict[str, Any]], Field(
                description="the job type's jobParameters")] = None,
            enabled: bool = True) -> Result:
        with connect() as session:
            config = session.create_job_configuration(
                name, job_type.upper(), cron_expression=cron_expression, delay=delay,
                job_parameters=job_parameters, enabled=enabled)
        return _config_dict(config, full=True)

    @tool("delete_job_configuration")
    def delete_job_configuration(job_id: JobId, confirm: Confirm = False) -> Result:
        with connect() as session:
            session.delete_job_configuration(job_id)
        return {"jobId": job_id, "status": "deleted"}

    @tool("scheduler_health")
    def scheduler_health(
            max_runtime_hours: Annotated[float, Field(
                gt=0, le=720, description="a RUNNING job past this is a finding")] = 6.0,
            analytics_max_age_hours: Annotated[float, Field(
                gt=0, le=8760, description="analytics tables older than this are a finding")
            ] = 26.0) -> Result:
        with connect() as session:
            health = session.scheduler_health(max_runtime_hours=max_runtime_hours,
                                              analytics_max_age_hours=analytics_max_age_hours)
        from .convert import format_datetime

        return {"ok": health.ok, "worst": health.worst, "serverVersion": health.server_version,
                "serverTime": format_datetime(health.server_time)
                if health.server_time is not None else None,
                "jobsChecked": health.jobs_checked, "findingsTotal": len(health.findings),
                "findings": [_with_next(f, "whatToDo")
                             for f in health.findings[:MAX_FINDINGS]]}

    # --- validation results (#20.7) --------------------------------------------------------

    Uids = Annotated[Optional[List[Uid]], Field(max_length=100)]
    Period = Annotated[str, Field(pattern=r"^[0-9A-Za-z]{4,16}$",
                                  description="an ISO period, e.g. 202401, 2024Q1, 2024")]

    @tool("list_validation_results")
    def list_validation_results(
            validation_rules: Uids = None,
            org_units: Annotated[Optional[List[Uid]], Field(
                max_length=100, description="exact org units (no descendants)")] = None,
            periods: Annotated[Optional[List[Period]], Field(
                max_length=100, description="results whose period overlaps one")] = None,
            created_date: Optional[Date] = None,
            offset: Offset = 0, limit: RowLimit = 100) -> Result:
        with connect() as session:
            rows, next_offset = _page_stream(session.iter_validation_results(
                validation_rules=validation_rules, org_units=org_units, periods=periods,
                created_date=created_date), offset, limit)
        return {"offset": offset, "nextOffset": next_offset,
                "validationResults": [_json_model(r) for r in rows]}

    @tool("delete_validation_results")
    def delete_validation_results(
            validation_rules: Uids = None,
            org_units: Uids = None,
            period: Annotated[Optional[Period], Field(
                description="results whose period overlaps this one")] = None,
            created: Annotated[Optional[Period], Field(
                description="results created in this ISO period")] = None,
            notification_sent: Optional[bool] = None,
            all_results: Annotated[bool, Field(
                description="no filter: delete EVERY validation result")] = False,
            confirm: Confirm = False) -> Result:
        with connect() as session:
            session.delete_validation_results(
                validation_rules=validation_rules, org_units=org_units, period=period,
                created=created, notification_sent=notification_sent, all_results=all_results)
        return {"status": "deleted", "allResults": all_results}

    @tool("send_validation_notifications")
    def send_validation_notifications() -> Result:
        with connect() as session:
            job = session.send_validation_notifications()
        if job is None:  # 2.36-2.40: started in memory, nothing to follow
            return {"status": "started"}
        return _job_dict(job)

    # --- server health inside DHIS2 (#25): metadata setup, data values ----------------------

    Prefix = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,9}$",
                                  description="code prefix of the metadata (DM_; MI_ = "
                                              "tool-dq-workbench's)")]
    OrgUnit = Annotated[Optional[Uid], Field(
        description="organisation unit of the data set and values (default: the root)")]

    @tool("setup_data_values")
    def setup_data_values(org_unit: OrgUnit = None, prefix: Prefix = "DM_",
                          dry_run: Annotated[bool, Field(
                              description="only say what would be created or updated (the "
                                          "default); false changes DHIS2's metadata")] = True
                          ) -> Result:
        with connect() as session:
            report = session.setup_data_values(org_unit=org_unit, prefix=prefix,
                                               dry_run=dry_run)
        return {"dryRun": dry_run, "prefix": report.prefix, "orgUnit": report.org_unit,
                "total": _json_model(report.count),
                "types": {name: _json_model(t.count) for name, t in report.types.items()}}

    @tool("push_data_values")
    def push_data_values(source: Literal["integrity_report", "scheduler_health"] =
                         "integrity_report", org_unit: OrgUnit = None,
                         prefix: Prefix = "DM_", dry_run: bool = False) -> Result:
        with connect() as session:
            result = session.scheduler_health() if source == "scheduler_health" else \
                session.get_integrity_report()
            summary = session.push_data_values(result, dry_run=dry_run, org_unit=org_unit,
                                               prefix=prefix)
        out: Dict[str, Any] = {"source": source, "dryRun": dry_run, "period": summary.period,
                               "values": summary.sent}
        out.update(_json_model(summary.import_count))
        return out

    # --- the integrity history: read-only, from the server's history file (#20.7) -------------

    def open_history() -> "History":
        if not history:
            raise ToolError("no history file: the MCP server was started without --history "
                            "FILE or $DHIS2MAINT_HISTORY")
        from .history import History as _History, is_postgresql_url

        if not is_postgresql_url(history) and not os.path.exists(history):
            raise ToolError("no history file {}: no integrity run has been recorded there "
                            "yet".format(history))
        return _History(history)

    Server = Annotated[Optional[str], Field(description="only this server (its base URL)")]

    @tool("integrity_history")
    def integrity_history(server: Server = None, offset: Offset = 0,
                          limit: RowLimit = 100) -> Result:
        with open_history() as store:
            runs = store.runs(server)
        return _listing("runs", [_json_model(r) for r in runs], offset, limit)

    @tool("integrity_trend")
    def integrity_trend(
            check: Annotated[Optional[str], Field(
                description="one check's count (default: total issues per run)")] = None,
            since: Optional[Date] = None, server: Server = None,
            offset: Offset = 0, limit: RowLimit = 100) -> Result:
        with open_history() as store:
            points = store.trend(check, since=since, server=server)
        return _listing("points", [_json_model(p) for p in points], offset, limit)

    @tool("integrity_open_issues")
    def integrity_open_issues(
            older_than: Annotated[Optional[str], Field(
                pattern=r"^[0-9]+(\.[0-9]+)?[smhdw]?$",
                description="only issues first seen at least this long ago: 30d, 12h, 2w")
            ] = None,
            severity: Optional[Severity] = None,
            check: Annotated[Optional[str], Field(description="only this check")] = None,
            server: Server = None, offset: Offset = 0, limit: RowLimit = 100) -> Result:
        with open_history() as store:
            issues = store.open_issues(min_age=older_than, severity=severity, server=server,
                                       check=check)
        return _listing("issues", [_json_model(i) for i in issues], offset, limit)

    # --- /api/maintenance: one tool per operation; destructive ones need confirm ------------

    for op in MAINTENANCE_OPERATIONS:
        if op.name == "update_category_option_combos":
            continue  # its own tool above (per combo, with waiting)
        _add_maintenance_tool(tool, connect, op, Uid, Confirm, Result)

    missing = set(actions) - set(registered)
    if missing or len(registered) != len(set(registered)):
        raise RuntimeError("tools and ACTIONS disagree: {}".format(sorted(missing)))
    return server


def _add_maintenance_tool(tool: Any, connect: Callable[[], "Session"], op: Any, Uid: Any,
                          Confirm: Any, Result: Any) -> None:
    """One tool for one ``jobs.MAINTENANCE_OPERATIONS`` entry (its ``ACTIONS`` row says
    whether it needs ``confirm``, as the CLI's ``--yes``)."""

    def run(uid: Optional[str] = None, confirm: bool = False) -> Dict[str, Any]:
        with connect() as session:
            method = getattr(session, op.name)
            message = method(uid) if op.takes_uid else method()
        out: Dict[str, Any] = {"operation": op.name, "status": "done"}
        if op.takes_uid:
            out["uid"] = uid
        if isinstance(message, str) and message:
            out["message"] = _clip(message)
        return out

    # typed signatures for the schema: (uid?) (confirm?)
    if op.takes_uid and op.destructive:
        def fn(uid: Uid, confirm: Confirm = False) -> Result:  # pyright: ignore[reportRedeclaration]
            return run(uid, confirm)
    elif op.takes_uid:
        def fn(uid: Uid) -> Result:  # type: ignore[misc]
            return run(uid)
    elif op.destructive:
        def fn(confirm: Confirm = False) -> Result:  # type: ignore[misc]
            return run(confirm=confirm)
    else:
        def fn() -> Result:  # type: ignore[misc]
            return run()
    fn.__name__ = op.name
    tool(op.name)(fn)


def serve(connect: Callable[[], "Session"], debug: bool = False,
          history: Optional[str] = None) -> int:
    """Serve the tools over stdio until the client closes the connection; returns 0.

    ``connect()`` is called once first, so a configuration error (no URL, an auth
    file that is too open, ...) stops the server before it starts (no request is
    sent).  ``history``: the history file the history tools read.  Raises
    :class:`ConfigurationError` without the SDK.
    """
    server = build_server(connect, debug=debug, history=history)
    connect().close()
    server.run("stdio")
    return 0


def history_option(parser: argparse.ArgumentParser) -> None:
    """``--history FILE`` of the MCP server (``dhis2maint mcp`` and ``python -m
    dhis2maint.mcp``): the history file its read-only history tools use."""
    parser.add_argument("--history", metavar="FILE",
                        default=os.environ.get("DHIS2MAINT_HISTORY") or None,
                        help="the integrity history file the history tools read "
                             "(default: $DHIS2MAINT_HISTORY)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m dhis2maint.mcp [connection options]``: the same server as
    ``dhis2maint mcp``, with the same options, exit codes and error lines."""
    parser = argparse.ArgumentParser(
        prog="python -m dhis2maint.mcp", parents=[connection_options()],
        description="Serve dhis2maint's maintenance tools to an AI assistant over MCP "
                    "(stdio; needs pip install \"dhis2maint[mcp]\", Python 3.10+).")
    history_option(parser)
    args = parser.parse_args(argv)
    debug = bool(vars(args).get("debug"))
    return run_command(lambda: serve(lambda: connect(args, prompt=False), debug=debug,
                                     history=args.history), args)


if __name__ == "__main__":
    sys.exit(main())
