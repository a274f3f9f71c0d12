"""The MCP server: dhis2maint's maintenance tools for AI assistants.

``dhis2maint mcp`` (or ``python -m dhis2maint.mcp``) serves the tools over stdio
with the official MCP SDK, which ``pip install "dhis2maint[mcp]"`` adds on
Python 3.10+.  Like the command line it is a face on :class:`Session`: the
connection comes from the same places as the CLI's (``--url``/``--auth-file``
and the ``DHIS2_*`` environment), never from tool arguments, and every tool
call opens its own session, so a waiting job does not block other calls.

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
import logging
import re
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from . import __version__
from .errors import ConfigurationError, Dhis2Error
from .options import connect, connection_options, run_command

if TYPE_CHECKING:
    from .models import DataIntegrityReport, Job
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
TEXT_LIMIT = 1000  #: characters kept of any one text (comments, descriptions)
DEFAULT_WAIT = 1800.0  #: seconds a waiting tool follows a job unless told otherwise

RECENT_NOTIFICATIONS = 10  #: the newest notifications a job result shows


def _clip(text: Any, limit: int = TEXT_LIMIT) -> Any:
    if isinstance(text, str) and len(text) > limit:
        return text[:limit - 1] + "…"
    return text


# The library's messages point Python users at Session methods and CLI commands; an
# assistant can only call tools, so _one_line names the tool instead.
_TOOL_HINTS = (
    (re.compile(r"session\.wait_for_task\('([A-Za-z_]+)', '([A-Za-z0-9]+)'\)"),
     r"the wait_for_task tool (job_type \1, job_id \2)"),
    (re.compile(r"`dhis2maint task status ([A-Za-z_]+)` \(or session\.get_task_notifications"
                r"\('[A-Za-z_]+'\)\)"),
     r"the task_status tool (job_type \1)"),
    (re.compile(r"session\.get_integrity_report\(\)"), "the get_integrity_report tool"),
    (re.compile(r"`dhis2maint integrity checks`"), "the list_integrity_checks tool"),
    (re.compile(r"session\.list_integrity_checks\(\)"), "the list_integrity_checks tool"),
)


def _for_assistant(text: str) -> str:
    """``text`` with its Session-method and CLI hints turned into the tools that do the same."""
    for pattern, replacement in _TOOL_HINTS:
        text = pattern.sub(replacement, text)
    return text


def _one_line(exc: BaseException) -> str:
    text = " ".join((str(exc).strip() or type(exc).__name__).split())
    return "{}: {}".format(type(exc).__name__, _clip(_for_assistant(text)))


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
    out: Dict[str, Any] = {"jobType": str(job.job_type), "jobId": job.id,
                           "status": "started" if final is None else "completed"}
    if final is None:
        out["message"] = _clip(job.message)
        out["next"] = "follow it with wait_for_task or task_status (jobType {}, jobId {})".format(
            job.job_type, job.id)
    else:
        out["message"] = _clip(final.message) or "done"
    if feed is not None:
        out["notificationsSeen"] = feed.seen
        out["notifications"] = [_notification_dict(n) for n in feed.last]
    return out


# --- the server ---------------------------------------------------------------------------


def build_server(connect: Callable[[], "Session"], debug: bool = False) -> Any:
    """An ``mcp.server.mcpserver.MCPServer`` with dhis2maint's tools.

    ``connect()`` returns a new :class:`Session` (the CLI passes its own
    ``connect``); each tool call uses one and closes it.  Raises
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
            "analysis and /api/maintenance operations.  Results are paged: pass the "
            "returned nextOffset as offset for more.  Tools marked DESTRUCTIVE delete "
            "data and need confirm: true; ask the user first."))

    def tool(name: str, description: str, read_only: bool = False,
             destructive: bool = False) -> Callable[[_F], _F]:
        """Register ``fn`` as a tool whose library errors become MCP tool errors."""
        annotations = ToolAnnotations(readOnlyHint=read_only, destructiveHint=destructive,
                                      openWorldHint=True)

        def register(fn: _F) -> _F:
            @functools.wraps(fn)
            def guarded(*args: Any, **kwargs: Any) -> Any:
                try:
                    return fn(*args, **kwargs)
                except ToolError:
                    raise
                except (Dhis2Error, ValueError) as exc:
                    raise ToolError(_one_line(exc)) from None
            server.add_tool(guarded, name=name, description=description, annotations=annotations)
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
    SkipName = Literal[tuple(flag[len("skip_"):] for flag, _ in ANALYTICS_FLAGS)]

    def follow(session: "Session", job: "Job", wait: bool, timeout_seconds: float,
               ctx: Any) -> Dict[str, Any]:
        if not wait:
            return _job_dict(job)
        feed = _Feed(progress_reporter(ctx))
        final = job.wait(timeout=timeout_seconds, on_notification=feed)
        return _job_dict(job, final, feed)

    # --- integrity ----------------------------------------------------------------------

    @tool("server_info", "The dhis2maint version and the DHIS2 server's URL and version "
                         "(GET /api/system/info).", read_only=True)
    def server_info() -> Result:
        with connect() as session:
            return {"dhis2maint": __version__, "url": session.base_url,
                    "dhis2Version": ".".join(str(p) for p in session.server_version)}

    @tool("list_integrity_checks", "List the server's data-integrity checks "
                                   "(GET /api/dataIntegrity), optionally filtered.", read_only=True)
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

    @tool("run_integrity_checks", "Run data-integrity checks (POST /api/dataIntegrity/summary or "
                                  "/details), wait for them with progress notifications, and "
                                  "return this run's results: totals, then a page of checks "
                                  "(worst first) with up to issue_limit issues each when "
                                  "details is true.  Page further with get_integrity_report or "
                                  "list_integrity_issues (DHIS2 keeps results about an hour).")
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

    @tool("get_integrity_report", "The last data-integrity results DHIS2 holds, without running "
                                  "anything (GET /api/dataIntegrity/details or /summary): totals, "
                                  "then a page of checks with up to issue_limit issues each.",
          read_only=True)
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

    @tool("list_integrity_issues", "Page through the last detailed data-integrity results one "
                                   "issue per row (GET /api/dataIntegrity/details, streamed).",
          read_only=True)
    def list_integrity_issues(
            checks: Checks = None,
            offset: Offset = 0,
            limit: Annotated[int, Field(ge=1, le=MAX_ISSUE_ROWS)] = 100) -> Result:
        rows: List[Any] = []
        more = False
        with connect() as session:
            stream = session.iter_integrity_issues(checks=checks)
            try:
                for index, row in enumerate(stream):
                    if index < offset:
                        continue
                    if len(rows) == limit:
                        more = True
                        break
                    rows.append(row)
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        return {"offset": offset, "nextOffset": offset + limit if more else None,
                "issues": [{"check": r.check_name, "severity": _severity_text(r.severity),
                            "id": r.issue.id, "name": _clip(r.issue.name),
                            "comment": _clip(r.issue.comment),
                            "refs": list(r.issue.refs or ())[:20]} for r in rows]}

    # --- jobs ---------------------------------------------------------------------------

    @tool("refresh_analytics", "Start an analytics table update (POST "
                               "/api/resourceTables/analytics); with wait, follow it to its end.")
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

    @tool("refresh_resource_tables", "Start a resource table update (POST /api/resourceTables); "
                                     "with wait, follow it to its end.")
    def refresh_resource_tables(wait: Wait = False, timeout_seconds: Timeout = DEFAULT_WAIT,
                                ctx: Optional[Context] = None) -> Result:
        with connect() as session:
            return follow(session, session.refresh_resource_tables(), wait, timeout_seconds, ctx)

    @tool("refresh_monitoring", "Start the monitoring job (POST /api/resourceTables/monitoring); "
                                "with wait, follow it to its end.")
    def refresh_monitoring(wait: Wait = False, timeout_seconds: Timeout = DEFAULT_WAIT,
                           ctx: Optional[Context] = None) -> Result:
        with connect() as session:
            return follow(session, session.refresh_monitoring(), wait, timeout_seconds, ctx)

    JobType = Annotated[str, Field(pattern=r"^[A-Za-z_]+$",
                                   description="e.g. ANALYTICS_TABLE, RESOURCE_TABLE, MONITORING, "
                                               "DATA_INTEGRITY")]

    @tool("task_status", "A job's task notifications, newest first (GET "
                         "/api/system/tasks/{jobType}/{jobId}); without job_id, those of the "
                         "most recently active job of the type.", read_only=True)
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

    @tool("wait_for_task", "Follow a started job until it ends, with progress notifications "
                           "(GET /api/system/tasks/{jobType}/{jobId}); fails with DHIS2's message "
                           "when the job fails.")
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

    @tool("run_predictors", "Run predictors for a date range (POST /api/predictors/run, or "
                            "/api/predictors/{uid}/run and /api/predictorGroups/{uid}/run for "
                            "the ones named).")
    def run_predictors(start_date: Date, end_date: Date,
                       predictors: Optional[List[Uid]] = None,
                       predictor_groups: Optional[List[Uid]] = None) -> Result:
        with connect() as session:
            runs = session.run_predictors(start_date, end_date, predictors=predictors,
                                          predictor_groups=predictor_groups)
        runs = runs if isinstance(runs, list) else [runs]
        return {"runs": [_json_model(r) for r in runs[:MAX_CHECKS]]}

    @tool("run_validation_analysis", "Run validation rule analysis for an org unit (and its "
                                     "descendants) and a date range (POST "
                                     "/api/dataAnalysis/validationRules); returns a page of the "
                                     "violations.")
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

    @tool("update_category_option_combos",
          "Add missing and remove obsolete category option combos (POST "
          "/api/maintenance/categoryOptionComboUpdate, or …/categoryCombo/{uid} for one combo); "
          "with wait (needs category_combo), poll until the combo has all its option combos.")
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

    # --- /api/maintenance: one tool per operation; destructive ones need confirm ------------

    for op in MAINTENANCE_OPERATIONS:
        if op.name == "update_category_option_combos":
            continue  # its own tool above (per combo, with waiting)
        _add_maintenance_tool(tool, connect, op, Uid, Annotated, Field, ToolError, Result)
    return server


def _add_maintenance_tool(tool: Any, connect: Callable[[], "Session"], op: Any, Uid: Any,
                          Annotated: Any, Field: Any, ToolError: Any, Result: Any) -> None:
    """One tool for one ``jobs.MAINTENANCE_OPERATIONS`` entry; its ``destructive``
    flag (the same the CLI's ``--yes`` comes from) makes ``confirm`` required."""
    endpoint = "{} /api/maintenance/{}".format(op.http_method, op.path)
    if op.destructive:
        description = "DESTRUCTIVE: {} ({}).  Pass confirm: true only after the user agreed.".format(
            op.summary, endpoint)
    else:
        description = "{} ({}).".format(op.summary[:1].upper() + op.summary[1:], endpoint)
    Confirm = Annotated[bool, Field(description="must be true: this deletes data for good")]

    def run(uid: Optional[str] = None, confirm: bool = False) -> Dict[str, Any]:
        if op.destructive and confirm is not True:
            raise ToolError("{} deletes data: it would {}. Nothing was done; call it again with "
                            "confirm: true once the user agreed.".format(op.name, op.summary))
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
    tool(op.name, description, destructive=op.destructive)(fn)


def serve(connect: Callable[[], "Session"], debug: bool = False) -> int:
    """Serve the tools over stdio until the client closes the connection; returns 0.

    ``connect()`` is called once first, so a configuration error (no URL, an auth
    file that is too open, ...) stops the server before it starts (no request is
    sent).  Raises :class:`ConfigurationError` without the SDK.
    """
    server = build_server(connect, debug=debug)
    connect().close()
    server.run("stdio")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m dhis2maint.mcp [connection options]``: the same server as
    ``dhis2maint mcp``, with the same options, exit codes and error lines."""
    parser = argparse.ArgumentParser(
        prog="python -m dhis2maint.mcp", parents=[connection_options()],
        description="Serve dhis2maint's maintenance tools to an AI assistant over MCP "
                    "(stdio; needs pip install \"dhis2maint[mcp]\", Python 3.10+).")
    args = parser.parse_args(argv)
    debug = bool(vars(args).get("debug"))
    return run_command(lambda: serve(lambda: connect(args, prompt=False), debug=debug), args)


if __name__ == "__main__":
    sys.exit(main())
