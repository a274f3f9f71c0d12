"""Output formats for dhis2maint's results: table, json, jsonl, csv and html.

Every writer takes a text stream (``out``) and writes to it; nothing is printed
unless ``out`` is ``sys.stdout``.  The command line and users' scripts call:

* :func:`write_report` -- a :class:`~dhis2maint.models.DataIntegrityReport`
  (summary or details) in any of :data:`FORMATS`.
* :func:`write_issue_rows` -- an *iterator* of
  :class:`~dhis2maint.models.IntegrityIssueRow` as jsonl, csv or a plain table,
  consumed lazily so a million rows use no more memory than a thousand.
* :func:`write_checks` -- the list of checks ``GET /api/dataIntegrity`` returns.
* :func:`write_comparison` -- the difference between two saved reports.
* :func:`write_records` -- any list of models (e.g. validation violations).
* :func:`write_notification_line` -- one ``[  12.3s] INFO  message`` progress line
  (lives in :mod:`dhis2maint.progress`).
* :func:`atomic_output` -- a file that appears only once it is completely written
  (lives in :mod:`dhis2maint.files`).

Elsewhere: the HTML page in :mod:`dhis2maint.report_html`; scheduled jobs, scheduler
health, the doctor and validation results in :mod:`dhis2maint.report_health`; what
they all share in ``_report_common``.

Server strings (names, comments, refs, errors) are never trusted: the HTML
escapes every one of them, and the plain-text table replaces control characters
so a name cannot move the terminal's cursor or change its colours.

Only the standard library is used, and the heavier modules (csv, json, html)
are imported inside the functions that need them.
"""
import datetime
import os
from typing import (IO, TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List,
                    Optional, Sequence, Tuple, Union)

from ._report_common import (FLUSH_EVERY, _SEVERITIES, _clean, _count, _label, _num, _pct,
                             _plural, _rank, _sev, _severity_order, _totals, _with_findings)
from .files import atomic_output
from .progress import write_notification_line

if TYPE_CHECKING:
    from attr import AttrsInstance

    from .history import History, OpenIssue, RunInfo, TrendPoint
    from .models import (DataIntegrityCheck, DataIntegrityIssue, DataIntegrityReport,
                         DataIntegrityResult, IntegrityIssueRow, IssueChange, ReportComparison)

__all__ = ["FORMATS", "write_report", "write_issue_rows", "write_checks",
           "write_comparison", "write_records", "write_notification_line",
           "atomic_output"]

FORMATS = ("table", "json", "jsonl", "csv", "html")
ISSUE_ROW_FORMATS = ("jsonl", "csv", "table")

#: Issues listed per check in the plain-text table of a details report.
TABLE_ISSUE_LIMIT = 20
#: Width of the plain-text tables when the caller gives none.
DEFAULT_WIDTH = 100
#: The width of a table written where no one reads it at a fixed width -- a file, a
#: pipe, cron mail -- when neither ``width`` nor ``COLUMNS`` says otherwise: no limit,
#: so no cell is cut (#21.4).
UNLIMITED_WIDTH = 1 << 30


def _check_format(fmt: str, allowed: Sequence[str], what: str) -> None:
    if fmt not in allowed:
        raise ValueError("unknown format {!r} for {}; choose one of: {}".format(
            fmt, what, ", ".join(allowed)))


def _issue_row_dict(row: "IntegrityIssueRow") -> Dict[str, Any]:
    issue = row.issue
    return {
        "check": row.check_name,
        "displayName": row.check_display_name,
        "severity": _sev(row.severity) or None,
        "id": issue.id,
        "name": issue.name,
        "comment": issue.comment,
        "refs": list(issue.refs or ()),
    }


def _issue_row_csv(row: "IntegrityIssueRow") -> List[str]:
    issue = row.issue
    return [row.check_name, _sev(row.severity), issue.id or "", issue.name or "",
            issue.comment or "", ";".join(issue.refs or ())]


ISSUE_CSV_HEADER = ["check", "severity", "id", "name", "comment", "refs"]
SUMMARY_CSV_HEADER = ["check", "display_name", "section", "severity", "count",
                      "percentage", "error"]


def _summary_dict(result: "DataIntegrityResult") -> Dict[str, Any]:
    return {
        "check": result.name,
        "displayName": result.display_name,
        "section": result.section,
        "severity": _sev(result.severity) or None,
        "count": result.count,
        "percentage": result.percentage,
        "error": result.error,
    }


def _summary_csv(result: "DataIntegrityResult") -> List[str]:
    return [result.name, result.display_name or "", result.section or "",
            _sev(result.severity), "" if result.count is None else str(result.count),
            "" if result.percentage is None else repr(float(result.percentage)),
            result.error or ""]


def _csv_writer(out: Any) -> Any:
    import csv

    # "\n" rather than csv's "\r\n": on Windows a text-mode file turns it into
    # "\r\n" itself, and csv.reader accepts either.
    return csv.writer(out, lineterminator="\n")


def _json_encoder() -> Callable[[Any], str]:
    import json

    return json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "),
                            allow_nan=False).encode


# ---------------------------------------------------------------------------
# Plain-text tables


class _Replacing:
    """Wraps a text stream whose encoding lacks some characters (an ASCII or
    Latin-1 terminal): '…' and '—' become '...' and '-', anything else it cannot
    encode becomes '?', so a server name in Amharic never crashes the table."""

    def __init__(self, out: Any, encoding: str) -> None:
        self.out = out
        self.encoding = encoding

    def write(self, text: str) -> Any:
        text = text.replace("…", "...").replace("—", "-")
        return self.out.write(text.encode(self.encoding, "replace").decode(self.encoding))

    def flush(self) -> None:
        self.out.flush()


def _for_terminal(out: Any) -> Tuple[Any, str]:
    """(stream, ellipsis) for the plain-text writers: ``out`` itself and '…' when its
    encoding has it, else a :class:`_Replacing` wrapper and '...'."""
    encoding = getattr(out, "encoding", None)
    if not encoding:
        return out, "…"
    try:
        "…—".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return _Replacing(out, encoding), "..."
    return out, "…"


def _cut(text: str, width: int, ell: str) -> str:
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width <= len(ell):
        return text[:width]
    return text[:width - len(ell)] + ell


def _fit_width(width: Optional[int], out: Any = None, default: Optional[int] = None) -> int:
    """``width``; else the terminal's width when ``out`` is one (``COLUMNS`` first;
    ``default``, 100, when unknown); else ``COLUMNS`` when set; else
    :data:`UNLIMITED_WIDTH`: a file, a pipe or cron mail gets every cell whole."""
    if width is None:
        isatty = getattr(out, "isatty", None)
        try:
            tty = bool(isatty and isatty())
        except (OSError, ValueError):
            tty = False
        columns = os.environ.get("COLUMNS", "").strip()
        if tty:
            import shutil

            width = shutil.get_terminal_size((default or DEFAULT_WIDTH, 24)).columns - 1
        elif columns.isdigit() and int(columns) > 0:
            width = int(columns)
        else:
            width = UNLIMITED_WIDTH
    return max(40, int(width))


class _Table:
    """A fixed-width table.  Columns are sized to their content (at most ``caps[i]``
    when the width is bounded); while a line would exceed ``width`` the columns in
    ``shrink`` -- ``(index, minimum)`` pairs, tried in order -- give up room.  Long
    cells end in '…'.  The columns in ``keep`` -- the values people copy: check
    names, ids, job types -- are never cut: a line too long for them overflows."""

    def __init__(self, headers: List[str], align: List[str], width: int, ell: str,
                 shrink: Optional[List[Tuple[int, int]]] = None,
                 caps: Optional[Dict[int, int]] = None,
                 keep: Sequence[int] = ()) -> None:
        self.headers = headers
        self.align = align  # "<" or ">" per column
        self.width = width
        self.ell = ell
        self.keep = frozenset(keep)
        bounded = width < UNLIMITED_WIDTH
        # kept columns give up room last, and only their padding: a longer value
        # pushes the rest of its own line right, whose last column makes up for it
        self.shrink = [(i, m) for i, m in (shrink if shrink is not None
                                           else [(len(headers) - 1, 8)]) if i not in self.keep]
        self.shrink += [(i, 16) for i in sorted(self.keep)]
        self.caps = {i: c for i, c in (caps or {}).items() if i not in self.keep} \
            if bounded else {}
        self.rows: List[List[str]] = []

    def add(self, cells: Iterable[object]) -> None:
        self.rows.append([_clean(c) for c in cells])

    def widths(self) -> List[int]:
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
        for i, cap in self.caps.items():
            widths[i] = min(widths[i], max(cap, len(self.headers[i])))
        for index, minimum in self.shrink:
            excess = sum(widths) + 2 * (len(widths) - 1) - self.width
            if excess <= 0:
                break
            floor = max(minimum, len(self.headers[index]))
            widths[index] = max(floor, min(widths[index], widths[index] - excess))
        return widths

    def line(self, cells: List[str], widths: List[int]) -> str:
        parts = []
        over = 0  # how far kept values pushed this line right
        last = len(widths) - 1
        for index, (cell, width, align) in enumerate(zip(cells, widths, self.align)):
            if index in self.keep:
                text = cell
                over += max(0, len(cell) - width)
            elif index == last and over:
                text = _cut(cell, max(8, width - over), self.ell)
            else:
                text = _cut(cell, width, self.ell)
            parts.append(("{:" + align + str(width) + "}").format(text))
        return "  ".join(parts).rstrip()

    def lines(self) -> Iterator[str]:
        widths = self.widths()
        yield self.line(self.headers, widths)
        for row in self.rows:
            yield self.line(row, widths)


def _totals_text(report: "DataIntegrityReport") -> str:
    issues, checks, failed, total = _totals(report)
    with_issues = sum(checks.values())
    parts = ["{} {}".format(sev, _num(issues.get(sev, 0)))
             for sev in _severity_order(issues) if sev in _SEVERITIES or issues.get(sev)]
    text = "Total: {} in {:,} of {}".format(
        _plural(total, "issue"), with_issues, _plural(len(report), "check"))
    text += " — " + ", ".join(parts)
    if failed:
        text += "; {} failed".format(_plural(failed, "check"))
    return text


def _write_report_table(report: "DataIntegrityReport", out: Any, title: Optional[str],
                        width: Optional[int], limit: Optional[int]) -> None:
    import textwrap

    width = _fit_width(width, out)
    out, ell = _for_terminal(out)
    limit = TABLE_ISSUE_LIMIT if limit is None else max(0, int(limit))
    shown = _with_findings(report)
    if title:
        out.write(_cut(_clean(title), width, ell) + "\n\n")
    if not len(report):
        out.write("No data-integrity results.\n")
    elif not shown:
        out.write("No issues found in {}.\n".format(_plural(len(report), "check")))
    else:
        has_pct = any(r.percentage is not None for r in shown)
        headers = ["SEVERITY", "COUNT"] + (["%"] if has_pct else []) + ["CHECK"]
        align = ["<", ">"] + ([">"] if has_pct else []) + ["<"]
        table = _Table(headers, align, width, ell)
        errors = {}
        for result in shown:
            count = _count(result)
            cells = [_sev(result.severity) or "-", "ERROR" if count is None else _num(count)]
            if has_pct:
                cells.append(_pct(result.percentage))
            table.add(cells + [_label(result)])
            if count is None:
                errors[len(table.rows) - 1] = result.error
        widths = table.widths()
        indent = sum(widths[:-1]) + 2 * (len(widths) - 1) + 2
        out.write(table.line(table.headers, widths) + "\n")
        for index, row in enumerate(table.rows):
            out.write(table.line(row, widths) + "\n")
            if index in errors:
                out.write(" " * indent + _cut(_clean(errors[index]), width - indent, ell) + "\n")
        if report.details:
            for result in shown:
                _write_issue_block(result, out, width, ell, limit)
    out.write("\n")
    out.write(textwrap.fill(_totals_text(report), width=width, subsequent_indent="  ") + "\n")


def _issue_text(issue: "DataIntegrityIssue", ell: str, width: int) -> str:
    text = _clean(issue.name) or "(no name)"
    if issue.comment:
        text += " — " + _clean(issue.comment)
    if issue.refs:
        text += " [refs: " + ", ".join(_clean(r) for r in issue.refs) + "]"
    return _cut(text, width, ell)


def _write_issue_block(result: "DataIntegrityResult", out: Any, width: int, ell: str,
                       limit: int) -> None:
    count = _count(result)
    head = "{}  {}: ".format(_sev(result.severity) or "-",
                             "check failed" if count is None else _plural(count, "issue"))
    if result.display_name and result.display_name != result.name:
        # the check's name is what people copy (`integrity run NAME`): the display
        # name gives up room, never the name (#21.4)
        name = " ({})".format(_clean(result.name))
        head += _cut(_clean(result.display_name), max(8, width - len(head) - len(name)),
                     ell) + name
    else:
        head += _clean(result.name)
    out.write("\n" + head + "\n")
    if count is None:
        out.write("  " + _cut(_clean(result.error), width - 2, ell) + "\n")
        return
    issues = result.issues or []
    id_width = max([len(_clean(i.id)) for i in issues[:limit]] + [0])
    for issue in issues[:limit]:
        ident = _clean(issue.id)
        if id_width:
            prefix = "  {:<{}}  ".format(ident or "-", min(id_width, 24))
        else:
            prefix = "  "
        out.write(prefix + _issue_text(issue, ell, width - len(prefix)) + "\n")
    if len(issues) > limit:
        out.write("  {} and {:,} more\n".format(ell, len(issues) - limit))


def _write_row_table(rows: Iterable["IntegrityIssueRow"], out: Any, width: Optional[int]) -> int:
    """A streaming table of issue rows: fixed column widths, since rows are not kept."""
    width = _fit_width(width, out)
    out, ell = _for_terminal(out)
    check_w, sev_w, id_w = 32, 8, 11
    name_w = max(10, width - check_w - sev_w - id_w - 6)
    layout = "{:<%d}  {:<%d}  {:<%d}  {}" % (check_w, sev_w, id_w)
    out.write(layout.format("CHECK", "SEVERITY", "ID", "ISSUE").rstrip() + "\n")
    written = 0
    for row in rows:
        # check names and ids are copied: never cut, a longer one shifts its line
        check, ident = _clean(row.check_name), _clean(row.issue.id) or "-"
        room = name_w - max(0, len(check) - check_w) - max(0, len(ident) - id_w)
        out.write(layout.format(check, _cut(_sev(row.severity), sev_w, ell), ident,
                                _issue_text(row.issue, ell, max(10, room))).rstrip() + "\n")
        written += 1
        if written % FLUSH_EVERY == 0:
            out.flush()
    return written


# ---------------------------------------------------------------------------
# Reports


def write_report(report: "DataIntegrityReport", fmt: str, out: IO[str], title: Optional[str] = None,
                 server: Optional[str] = None,
                 generated: Union[str, datetime.datetime, None] = None,
                 limit: Optional[int] = None, width: Optional[int] = None,
                 history: Optional["History"] = None) -> None:
    """Write a :class:`~dhis2maint.models.DataIntegrityReport` to ``out`` as ``fmt``.

    * ``table``: checks with issues (or that failed), worst severity first, then the
      most issues; for a details report each check's issues follow (at most
      ``limit``, default 20, per check), then a line of totals by severity.
      ``width`` (default 100) bounds the line length; long names end in '…'.
    * ``json``: :func:`dhis2maint.to_json` -- the saved-report format that
      :func:`dhis2maint.from_json` reads back.
    * ``jsonl``: a details report gives one object per issue
      (``check, displayName, severity, id, name, comment, refs``); a summary report
      one object per check (``check, displayName, section, severity, count,
      percentage, error``).  A failed check has no issues, so in a details report
      it appears in table/json/html output only.
    * ``csv``: details: ``check,severity,id,name,comment,refs`` (refs joined with
      ';'); summary: ``check,display_name,section,severity,count,percentage,error``.
    * ``html``: one self-contained page (see :mod:`dhis2maint.report_html`); ``server``
      and ``generated`` (text or a datetime) go in its header, ``limit`` (default
      5000) caps the issues listed per check (and ``report_html.HTML_TOTAL_LIMIT`` all of
      them).  ``history`` (a :class:`dhis2maint.history.History` the run was
      recorded in) adds "open since" per issue, a sparkline per check and a
      chart of total issues over the server's runs.

    A report that knows where it came from (``base_url``, ``dhis2_version``,
    ``job_id``, ``run_at``, ``server_time``) says so: ``json`` in its ``source``
    object, ``jsonl`` in a first ``{"dhis2maint": 1, "source": {…}}`` record, ``csv``
    in a first ``# source: …`` line, ``html`` in its header.

    Raises ``ValueError`` for an unknown format.
    """
    _check_format(fmt, FORMATS, "a report")
    if fmt == "table":
        _write_report_table(report, out, title, width, limit)
    elif fmt == "json":
        from .convert import to_json

        out.write(to_json(report, indent=2))
        out.write("\n")
    elif fmt == "jsonl":
        _write_source_line(report, "jsonl", out)
        if report.details:
            write_issue_rows(report.issue_rows(), "jsonl", out)
        else:
            encode = _json_encoder()
            for result in report:
                out.write(encode(_summary_dict(result)) + "\n")
    elif fmt == "csv":
        _write_source_line(report, "csv", out)
        if report.details:
            write_issue_rows(report.issue_rows(), "csv", out)
        else:
            writer = _csv_writer(out)
            writer.writerow(SUMMARY_CSV_HEADER)
            for result in report:
                writer.writerow(_summary_csv(result))
    else:
        from .report_html import HTML_ISSUE_LIMIT, _history_view, _write_report_html

        _write_report_html(report, out, title=title, server=server, generated=generated,
                           limit=HTML_ISSUE_LIMIT if limit is None else max(0, int(limit)),
                           history=_history_view(report, history))
    out.flush()


def _source_items(report: "DataIntegrityReport") -> Dict[str, str]:
    from .convert import source_dict

    return source_dict(report)


def _write_source_line(report: "DataIntegrityReport", fmt: str, out: IO[str]) -> None:
    """Where the report came from, first: jsonl ``{"dhis2maint": 1, "source": {…}}``,
    csv a ``# source: baseUrl=…; …`` comment line.  Nothing when unknown."""
    source = _source_items(report)
    if not source:
        return
    if fmt == "jsonl":
        out.write(_json_encoder()({"dhis2maint": 1, "source": source}) + "\n")
    else:
        out.write("# source: " + "; ".join(
            "{}={}".format(k, _clean(v).replace(";", ",")) for k, v in source.items()) + "\n")


class ReportStream:
    """Write a details report WHILE it is read (``json``, ``jsonl`` or ``csv``).

    Feed it :meth:`row` for each :class:`IntegrityIssueRow` and :meth:`check` for
    each check's result (without issues) right after that check's last row --
    what :meth:`Session.iter_integrity_issues` ``on_check`` and
    :meth:`Session.iter_integrity_run` provide -- then :meth:`close`.  Memory
    stays flat.  ``json`` is the saved-report format :func:`dhis2maint.from_json`
    reads (each check's ``issues`` come before its other fields); ``jsonl``/``csv``
    are :func:`write_issue_rows`' formats after the provenance line of ``report``.
    """

    def __init__(self, fmt: str, out: IO[str], report: "DataIntegrityReport") -> None:
        _check_format(fmt, ("json", "jsonl", "csv"), "a streamed report")
        self.fmt, self.out, self.rows = fmt, out, 0
        self._open: Optional[str] = None  # check whose issues array is open (json)
        self._checks = 0
        self._batch: List[str] = []  # text not yet written (json, jsonl)
        self._csv_rows: List[List[str]] = []  # rows not yet written (csv)
        self._encode: Callable[[Any], str]
        if fmt == "json":
            import json

            self._encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
            head: Dict[str, Any] = {"dhis2maint": 1, "details": True}
            source = _source_items(report)
            if source:
                head["source"] = source
            out.write(self._encode(head)[:-1] + ',"results":{\n')
        else:
            _write_source_line(report, fmt, out)
            if fmt == "jsonl":
                self._encode = _json_encoder()
            else:
                self._writer = _csv_writer(out)
                self._writer.writerow(ISSUE_CSV_HEADER)

    def row(self, row: "IntegrityIssueRow") -> None:
        """Write one issue row."""
        self.rows += 1
        if self.fmt == "json":
            if self._open != row.check_name:
                self._close_check(None)
                self._batch.append('{}{}:{{"issues":[\n'.format(
                    ",\n" if self._checks else "", self._encode(row.check_name)))
                self._checks += 1
                self._open = row.check_name
                first = True
            else:
                first = False
            issue = row.issue
            fields = {"id": issue.id, "name": issue.name, "comment": issue.comment}
            data: Dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
            data["refs"] = list(issue.refs or ())
            self._batch.append(("" if first else ",\n") + self._encode(data))
        elif self.fmt == "jsonl":
            self._batch.append(self._encode(_issue_row_dict(row)) + "\n")
        else:
            self._csv_rows.append(_issue_row_csv(row))
        if len(self._batch) + len(self._csv_rows) >= FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        if self.fmt == "csv":
            self._writer.writerows(self._csv_rows)
            del self._csv_rows[:]
        else:
            self.out.write("".join(self._batch))
            del self._batch[:]

    def _close_check(self, result: Optional["DataIntegrityResult"]) -> None:
        if self.fmt != "json":
            return
        from .convert import unstructure

        if result is not None and self._open != result.name:
            self._close_check(None)
            self._batch.append('{}{}:{{"issues":['.format(
                ",\n" if self._checks else "", self._encode(result.name)))
            self._checks += 1
            self._open = result.name
        if self._open is None:
            return
        rest = ""
        if result is not None:
            fields = unstructure(result)
            fields.pop("issues", None)
            rest = self._encode(fields)[1:-1]
        self._batch.append("]" + ("," + rest if rest else "") + "}")
        self._open = None

    def check(self, result: "DataIntegrityResult") -> None:
        """A check ended: its :class:`DataIntegrityResult` (issues not needed)."""
        self._close_check(result)

    def close(self) -> None:
        """Finish the document and flush."""
        if self.fmt == "json":
            self._close_check(None)
            self._batch.append("\n}}\n")
        self._flush()
        self.out.flush()


def write_issue_rows(rows: Iterable["IntegrityIssueRow"], fmt: str, out: IO[str],
                     width: Optional[int] = None) -> int:
    """Stream :class:`~dhis2maint.models.IntegrityIssueRow` objects to ``out``.

    ``rows`` is any iterable, typically the generator
    :meth:`Session.iter_integrity_issues` returns; it is consumed one row at a
    time and ``out`` is flushed every :data:`FLUSH_EVERY` rows, so memory stays
    flat however many rows there are.  ``fmt`` is ``jsonl`` (one object per row:
    ``check, displayName, severity, id, name, comment, refs``), ``csv`` (header
    ``check,severity,id,name,comment,refs``, refs joined with ';') or ``table``
    (fixed columns).  Returns the number of rows written.
    """
    _check_format(fmt, ISSUE_ROW_FORMATS, "issue rows")
    if fmt == "table":
        written = _write_row_table(rows, out, width)
        out.flush()
        return written
    written = 0
    batch: List[Any] = []  # encoded lines (jsonl) or csv rows
    if fmt == "jsonl":
        encode = _json_encoder()
        for row in rows:
            batch.append(encode(_issue_row_dict(row)))
            written += 1
            if len(batch) >= FLUSH_EVERY:
                out.write("\n".join(batch) + "\n")
                out.flush()
                del batch[:]
        if batch:
            out.write("\n".join(batch) + "\n")
    else:
        writer = _csv_writer(out)
        writer.writerow(ISSUE_CSV_HEADER)
        for row in rows:
            batch.append(_issue_row_csv(row))
            written += 1
            if len(batch) >= FLUSH_EVERY:
                writer.writerows(batch)
                out.flush()
                del batch[:]
        writer.writerows(batch)
    out.flush()
    return written


# ---------------------------------------------------------------------------
# Checks and other record lists


CHECK_CSV_HEADER = ["name", "code", "display_name", "section", "section_order", "severity",
                    "is_slow", "is_programmatic", "issues_id_type", "average_execution_time",
                    "description", "introduction", "recommendation"]


def _csv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_checks(checks: Sequence["DataIntegrityCheck"], fmt: str, out: IO[str],
                 width: Optional[int] = None) -> None:
    """Write the checks ``GET /api/dataIntegrity`` lists (:class:`DataIntegrityCheck`).

    ``table``: name, code, severity, section, slow flag and display name, in the
    given order; ``json``: a list of camelCase objects as DHIS2 sends them
    (:func:`dhis2maint.convert.unstructure`); ``jsonl``: one such object a line;
    ``csv``: the columns of :data:`CHECK_CSV_HEADER` (booleans ``true``/``false``).
    Raises ``ValueError`` for an unknown format (``html`` is not offered).
    """
    _check_format(fmt, ("table", "json", "jsonl", "csv"), "checks")
    if fmt == "table":
        # Names are what --checks takes, so they are the last to be cut short.
        width = _fit_width(width, out, default=120)
        out, ell = _for_terminal(out)
        table = _Table(["NAME", "CODE", "SEVERITY", "SECTION", "SLOW", "DISPLAY NAME"],
                       ["<"] * 6, width, ell, caps={1: 10, 3: 24},
                       shrink=[(5, 16), (3, 10), (5, 8)], keep=(0,))
        for check in checks:
            table.add([check.name, check.code or "", _sev(check.severity), check.section or "",
                       "slow" if check.is_slow else "", check.display_name or ""])
        for line in table.lines():
            out.write(line + "\n")
        out.write("\n{}, {} slow\n".format(_plural(len(table.rows), "check"),
                                         sum(1 for c in checks if c.is_slow)))
    elif fmt == "csv":
        writer = _csv_writer(out)
        writer.writerow(CHECK_CSV_HEADER)
        for check in checks:
            writer.writerow([_csv_value(getattr(check, f, None)) for f in CHECK_CSV_HEADER])
    else:
        _write_json_records(checks, fmt, out)
    out.flush()


def _write_json_records(records: Iterable[Any], fmt: str, out: Any) -> None:
    import json

    from .convert import unstructure

    if fmt == "json":
        out.write(json.dumps([unstructure(r) for r in records], indent=2, ensure_ascii=False,
                             allow_nan=False))
        out.write("\n")
    else:
        encode = _json_encoder()
        for record in records:
            out.write(encode(unstructure(record)) + "\n")


def write_records(records: Iterable[Any], fmt: str, out: IO[str],
                  width: Optional[int] = None) -> None:
    """Write a list of attrs models (e.g. :class:`ValidationViolation`) generically.

    ``json``/``jsonl``: camelCase objects (:func:`dhis2maint.convert.unstructure`);
    ``csv``: one column per attribute (snake_case header); ``table``: the columns
    that have a value in at least one record.  Raises ``ValueError`` for another format.
    """
    import attr

    _check_format(fmt, ("table", "json", "jsonl", "csv"), "records")
    records = list(records)
    if fmt in ("json", "jsonl"):
        _write_json_records(records, fmt, out)
        out.flush()
        return
    fields = [f.name for f in attr.fields(type(records[0]))] if records else []
    if fmt == "csv":
        writer = _csv_writer(out)
        writer.writerow(fields)
        for record in records:
            writer.writerow([_csv_value(getattr(record, f)) for f in fields])
    else:
        used = [f for f in fields if any(getattr(r, f) not in (None, "", []) for r in records)]
        width = _fit_width(width, out)
        out, ell = _for_terminal(out)
        table = _Table([f.upper() for f in used], ["<"] * len(used), width, ell,
                       caps={i: 30 for i in range(len(used))},
                       shrink=[(i, 8) for i in reversed(range(len(used)))],
                       keep=[i for i, f in enumerate(used) if f in _COPIED_FIELDS
                             or f.endswith("_id")])
        for record in records:
            table.add([_csv_value(getattr(record, f)) for f in used])
        if used:
            for line in table.lines():
                out.write(line + "\n")
        out.write("{}\n".format(_plural(len(records), "record")))
    out.flush()


#: Fields whose values people copy into the next command: never cut in a table.
_COPIED_FIELDS = frozenset(("id", "uid", "job_type", "check_name", "check", "code"))


def write_history(records: Sequence[Any], kind: str, fmt: str, out: IO[str],
                  width: Optional[int] = None) -> None:
    """Write what a :class:`dhis2maint.history.History` returned: ``kind`` is ``runs``
    (:meth:`History.runs`), ``trend`` (:meth:`History.trend`) or ``open``
    (:meth:`History.open_issues`).  ``json``/``jsonl``/``csv`` as :func:`write_records`;
    ``table`` a layout made for people (a bar per run for a trend, ages in days)."""
    # ``records`` is a list of RunInfo, TrendPoint or OpenIssue as ``kind`` says;
    # the table writers below are typed for each.
    if fmt != "table":
        write_records(records, fmt, out, width)
        return
    width = _fit_width(width, out)
    out, ell = _for_terminal(out)
    show_server = len({r.base_url for r in records}) > 1
    if kind == "runs":
        table = _history_runs_table(records, width, ell)
    elif kind == "trend":
        table = _history_trend_table(records, width, ell, show_server)
    else:
        table = _history_open_table(records, width, ell, show_server)
    for line in table.lines():
        out.write(line + "\n")
    noun = {"runs": "run", "trend": "run", "open": "open issue"}[kind]
    out.write("{}\n".format(_plural(len(records), noun)))
    out.flush()


def _day(value: datetime.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _history_runs_table(records: Sequence["RunInfo"], width: int, ell: str) -> _Table:
    headers = ["RUN", "RUN AT (UTC)", "KIND", "CHECKS", "ISSUES", "NEW", "RESOLVED",
               "FAILED", "DHIS2", "SERVER"]
    table = _Table(headers, [">", "<", "<", ">", ">", ">", ">", ">", "<", "<"], width, ell)
    for r in records:
        table.add([str(r.id), _day(r.run_at), "details" if r.details else "summary",
                   _num(r.checks), _num(r.issues), _num(r.new_issues),
                   _num(r.resolved_issues), _num(r.failed), r.dhis2_version or "",
                   r.base_url])
    return table


def _history_trend_table(records: Sequence["TrendPoint"], width: int, ell: str,
                         show_server: bool) -> _Table:
    top = max([r.count or 0 for r in records] + [1])
    headers = ["RUN", "RUN AT (UTC)", "ISSUES", ""] + (["SERVER"] if show_server else [])
    table = _Table(headers, [">", "<", ">", "<", "<"][:len(headers)], width, ell,
                   shrink=[(3, 0)])
    bar = "#" if ell == "..." else "\u2588"
    for r in records:
        size = 0 if not r.count else max(1, int(round(30.0 * r.count / top)))
        table.add([str(r.run_id), _day(r.run_at), "failed" if r.count is None
                   else _num(r.count), bar * size] + ([r.base_url] if show_server else []))
    return table


def _history_open_table(records: Sequence["OpenIssue"], width: int, ell: str,
                        show_server: bool) -> _Table:
    headers = ["FIRST SEEN", "DAYS", "SEVERITY", "CHECK", "ID", "NAME"] + (
        ["SERVER"] if show_server else [])
    table = _Table(headers, ["<", ">", "<", "<", "<", "<", "<"][:len(headers)], width, ell,
                   shrink=[(5, 10)], keep=(3, 4))
    for r in records:
        table.add([_day(r.first_seen)[:10], "{:.0f}".format(r.age_days), r.severity or "",
                   r.check_name, r.id or "", r.name or ""] +
                  ([r.base_url] if show_server else []))
    return table


# ---------------------------------------------------------------------------
# Comparisons


def _change_items(comparison: Any) -> List[Tuple[Any, Any]]:
    """(check name, change) pairs from ``count_changes`` (a dict, or a list of changes)."""
    changes = getattr(comparison, "count_changes", None) or {}
    if isinstance(changes, dict):
        return list(changes.items())
    return [(getattr(c, "check_name", None) or getattr(c, "check", None)
             or getattr(c, "name", None), c) for c in changes]


def _change_dict(name: Optional[str], change: Any) -> Dict[str, Any]:
    """A :class:`CountChange` as a JSON-ready dict.  ``old``/``new`` are ``None``
    when the check is missing from that report and -1 when it failed there;
    ``delta`` is ``new - old`` when both are real counts."""
    old: Any = getattr(change, "old", None)
    new: Any = getattr(change, "new", None)
    valid = isinstance(old, int) and isinstance(new, int) and old >= 0 and new >= 0
    return {
        "check": getattr(change, "check_name", None) or name,
        "displayName": getattr(change, "display_name", None),
        "severity": _sev(getattr(change, "severity", None)) or None,
        "old": old,
        "new": new,
        "delta": new - old if valid else None,
    }


def _changed_dict(change: "IssueChange") -> Dict[str, Any]:
    """An :class:`IssueChange` (same issue, other name/comment/refs): the new row's
    fields plus ``previous`` with the old name, comment and refs."""
    data = _issue_row_dict(change.new)
    old = change.old.issue
    data["previous"] = {"name": old.name, "comment": old.comment, "refs": list(old.refs or ())}
    return data


def write_comparison(comparison: "ReportComparison", fmt: str, out: IO[str],
                     width: Optional[int] = None) -> None:
    """Write a :class:`~dhis2maint.models.ReportComparison` (``compare_reports(old, new)``).

    ``table``: checks whose count changed (worst severity first, biggest change
    first), then new, resolved and changed issues; ``json``:
    :func:`dhis2maint.convert.comparison_to_dict` (nested: ``{"issuesCompared", "newIssues",
    "resolvedIssues", "changedIssues", "countChanges": {name: …}}``); ``jsonl``:
    flat records like :func:`write_issue_rows`', one a line, whose ``"change"`` is
    ``count`` (with ``check, displayName, severity, old, new, delta``), ``new``,
    ``resolved`` or ``changed`` (with ``previous``: the old name, comment, refs);
    ``csv``: ``change,check,severity,id,name,comment,refs,old,new`` (``old``/``new``
    are the counts of a ``count`` row).  Counts are ``None``/empty when a report
    lacks the check, -1 when the check failed.
    Raises ``ValueError`` for an unknown format.
    """
    _check_format(fmt, ("table", "json", "jsonl", "csv"), "a comparison")
    changes = [_change_dict(name, c) for name, c in _change_items(comparison)]
    changes.sort(key=lambda c: (-_rank(c["severity"]), -abs(c["delta"] or 0), c["check"]))
    # Duck-typed on purpose: any object with these attributes (count_changes a dict or
    # a list) is written, as the tests' stand-ins show.
    new_rows: List[Any] = list(getattr(comparison, "new_issues", None) or ())
    resolved_rows: List[Any] = list(getattr(comparison, "resolved_issues", None) or ())
    changed: List[Any] = list(getattr(comparison, "changed_issues", None) or ())
    compared = bool(getattr(comparison, "issues_compared", new_rows or resolved_rows))
    if fmt == "json":
        import json

        # The library's own shape (convert.comparison_to_dict) for its own comparisons,
        # so the command line's JSON and scripts agree.
        from .convert import comparison_to_dict
        from .models import ReportComparison

        out.write(json.dumps(comparison_to_dict(comparison)
                             if isinstance(comparison, ReportComparison) else {
            "issuesCompared": compared,
            "countChanges": changes,
            "newIssues": [_issue_row_dict(r) for r in new_rows],
            "resolvedIssues": [_issue_row_dict(r) for r in resolved_rows],
            "changedIssues": [_changed_dict(c) for c in changed],
        }, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    elif fmt == "jsonl":
        encode = _json_encoder()
        for change in changes:
            out.write(encode(dict({"change": "count"}, **change)) + "\n")
        for kind, rows in (("new", new_rows), ("resolved", resolved_rows)):
            for row in rows:
                out.write(encode(dict({"change": kind}, **_issue_row_dict(row))) + "\n")
        for issue_change in changed:
            out.write(encode(dict({"change": "changed"}, **_changed_dict(issue_change))) + "\n")
    elif fmt == "csv":
        writer = _csv_writer(out)
        writer.writerow(["change"] + ISSUE_CSV_HEADER + ["old", "new"])
        for change in changes:
            writer.writerow(["count", change["check"], change["severity"] or "", "", "", "", "",
                             _csv_value(change["old"]), _csv_value(change["new"])])
        for kind, rows in (("new", new_rows), ("resolved", resolved_rows),
                           ("changed", [c.new for c in changed])):
            for row in rows:
                writer.writerow([kind] + _issue_row_csv(row) + ["", ""])
    else:
        _write_comparison_table(changes, new_rows, resolved_rows, changed, compared, out, width)
    out.flush()


def _count_cell(count: Optional[int]) -> str:
    if count is None:
        return "-"
    return "ERROR" if count < 0 else _num(count)


def _write_comparison_table(changes: List[Dict[str, Any]], new_rows: List["IntegrityIssueRow"],
                            resolved_rows: List["IntegrityIssueRow"],
                            changed: List["IssueChange"], compared: bool, out: Any,
                            width: Optional[int]) -> None:
    width = _fit_width(width, out)
    out, ell = _for_terminal(out)
    if changes:
        out.write("Count changes ({:,} checks):\n".format(len(changes)))
        table = _Table(["SEVERITY", "OLD", "NEW", "CHANGE", "CHECK"],
                       ["<", ">", ">", ">", "<"], width, ell)
        for c in changes:
            if c["delta"] is not None:
                delta = "{:+,}".format(c["delta"])
            elif c["old"] is None:
                delta = "new check"
            elif c["new"] is None:
                delta = "gone"
            else:
                delta = "failed" if c["new"] < 0 else "recovered"
            table.add([c["severity"] or "-", _count_cell(c["old"]), _count_cell(c["new"]),
                       delta, c["displayName"] or c["check"]])
        for line in table.lines():
            out.write(line + "\n")
    else:
        out.write("No count changes.\n")
    if not compared:
        out.write("\nIssues not compared: both reports must be details reports.\n")
        return
    for heading, rows in (("New issues", new_rows), ("Resolved issues", resolved_rows),
                          ("Changed issues", [c.new for c in changed])):
        out.write("\n{} ({:,}):\n".format(heading, len(rows)))
        if rows:
            _write_row_table(rows, out, width)


def __getattr__(name: str) -> Any:
    """What moved to :mod:`dhis2maint.report_html` (``object_url``, ``MAINTENANCE_TYPES``,
    the HTML limits) still answers here, loaded only when asked for."""
    if name in ("object_url", "MAINTENANCE_TYPES", "HTML_ISSUE_LIMIT", "HTML_TOTAL_LIMIT"):
        from . import report_html

        return getattr(report_html, name)
    raise AttributeError("module {!r} has no attribute {!r}".format(__name__, name))
