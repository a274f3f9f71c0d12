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
* :func:`write_notification_line` -- one ``[  12.3s] INFO  message`` progress line.
* :func:`atomic_output` -- a file that appears only once it is completely written.

Server strings (names, comments, refs, errors) are never trusted: the HTML
escapes every one of them, and the plain-text table replaces control characters
so a name cannot move the terminal's cursor or change its colours.

Only the standard library is used, and the heavier modules (csv, json, html)
are imported inside the functions that need them.
"""
import contextlib
import datetime
import os
import re
import sys
from typing import (IO, TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List,
                    NamedTuple, Optional, Sequence, Tuple, Union, cast)

if TYPE_CHECKING:
    from attr import AttrsInstance

    from .history import History, OpenIssue, RunInfo, TrendPoint
    from .models import (DataIntegrityCheck, DataIntegrityIssue,
                         DataIntegrityReport, DataIntegrityResult, DoctorCheck, DoctorReport,
                         FollowUp, HealthFinding, IntegrityIssueRow, IssueChange,
                         JobConfiguration, Notification, ReportComparison, SchedulerHealth,
                         ValidationResult)

__all__ = ["FORMATS", "write_report", "write_issue_rows", "write_checks",
           "write_comparison", "write_records", "write_notification_line",
           "atomic_output"]

FORMATS = ("table", "json", "jsonl", "csv", "html")
ISSUE_ROW_FORMATS = ("jsonl", "csv", "table")

#: Issues listed per check in the plain-text table of a details report.
TABLE_ISSUE_LIMIT = 20
#: Issues listed per check in the HTML report (the rest are counted, not listed).
HTML_ISSUE_LIMIT = 5000
#: Issues listed in the whole HTML report, so a million-issue run stays a usable page.
HTML_TOTAL_LIMIT = 20000
#: Width of the plain-text tables when the caller gives none.
DEFAULT_WIDTH = 100
#: The width of a table written where no one reads it at a fixed width -- a file, a
#: pipe, cron mail -- when neither ``width`` nor ``COLUMNS`` says otherwise: no limit,
#: so no cell is cut (#21.4).
UNLIMITED_WIDTH = 1 << 30
#: Rows written between flushes by the streaming writers.
FLUSH_EVERY = 1000

_SEVERITIES = ("CRITICAL", "SEVERE", "WARNING", "INFO")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _check_format(fmt: str, allowed: Sequence[str], what: str) -> None:
    if fmt not in allowed:
        raise ValueError("unknown format {!r} for {}; choose one of: {}".format(
            fmt, what, ", ".join(allowed)))


# ---------------------------------------------------------------------------
# Small shared helpers


def _sev(severity: object) -> str:
    """The severity as plain text ('' for none): enum members and raw strings alike."""
    return "" if severity is None else str(severity)


def _rank(severity: object) -> int:
    """0 (INFO) … 3 (CRITICAL); a missing or unknown severity ranks as WARNING."""
    from .models import severity_rank

    return severity_rank(severity) if isinstance(severity, str) else 1


def _count(result: "DataIntegrityResult") -> Optional[int]:
    """Issues a result reports, or ``None`` when the check failed on the server."""
    if result.error is not None:
        return None
    if result.count is not None and result.count >= 0:
        return result.count
    return len(result.issues or ())


def _label(result: "DataIntegrityResult") -> str:
    return result.display_name or result.name


def _sort_key(result: "DataIntegrityResult") -> Tuple[int, int, int, str, str]:
    """Worst severity first, failed checks first within it, then most issues, then name."""
    count = _count(result)
    return (-_rank(result.severity), 0 if count is None else 1, -(count or 0),
            _label(result).lower(), result.name)


def _ordered(report: "DataIntegrityReport") -> List["DataIntegrityResult"]:
    return sorted(report, key=_sort_key)


def _with_findings(report: "DataIntegrityReport") -> List["DataIntegrityResult"]:
    """The checks worth showing: those with issues or that failed, worst first."""
    return [r for r in _ordered(report) if _count(r) != 0]


def _severity_order(severities: Iterable[str]) -> List[str]:
    """CRITICAL, SEVERE, WARNING, INFO, then any severity a newer server invented."""
    extra = sorted(s for s in severities if s not in _SEVERITIES)
    return list(_SEVERITIES) + extra


def _totals(report: "DataIntegrityReport") -> Tuple[Dict[str, int], Dict[str, int], int, int]:
    """(issues by severity, checks with issues by severity, failed checks, total issues)."""
    issues: Dict[str, int] = {}
    checks: Dict[str, int] = {}
    failed = 0
    for result in report:
        sev = _sev(result.severity) or "WARNING"
        count = _count(result)
        issues.setdefault(sev, 0)
        checks.setdefault(sev, 0)
        if count is None:
            failed += 1
        elif count > 0:
            issues[sev] += count
            checks[sev] += 1
    return issues, checks, failed, sum(issues.values())


def _pct(percentage: Optional[float]) -> str:
    if percentage is None:
        return ""
    if percentage == 0:
        return "0%"
    if 0 < percentage < 0.1:
        return "<0.1%"
    return "{:.1f}%".format(percentage)


def _num(value: Optional[float]) -> str:
    return "" if value is None else "{:,}".format(value)


def _plural(count: int, word: str, words: Optional[str] = None) -> str:
    return "{:,} {}".format(count, word if count == 1 else (words or word + "s"))


def _iso(value: object) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def _time_range(report: "DataIntegrityReport") -> Optional[str]:
    """'2025-01-31 10:15:02 – 10:15:04' from the checks' start/finish times, or None."""
    starts = [r.start_time for r in report if r.start_time is not None]
    ends = [r.finished_time for r in report if r.finished_time is not None]
    try:
        first = min(starts) if starts else None
        last = max(ends) if ends else None
    except TypeError:  # naive and aware times mixed: no sensible range
        return None
    if first is None and last is None:
        return None
    first_text, last_text = _iso(first), _iso(last)
    if first_text and last_text and first_text[:10] == last_text[:10]:
        last_text = last_text[11:]
    return " – ".join(t for t in (first_text, last_text) if t)


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


def _clean(text: object) -> str:
    """Server text made safe for a terminal: one line, no control characters."""
    if text is None:
        return ""
    text = str(text)
    if _CONTROL.search(text):
        text = _CONTROL.sub(lambda m: " " if m.group() in "\t\n\r" else "?", text)
    return text


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
    * ``html``: one self-contained page (see :func:`_write_report_html`); ``server``
      and ``generated`` (text or a datetime) go in its header, ``limit`` (default
      5000) caps the issues listed per check (and :data:`HTML_TOTAL_LIMIT` all of
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
        # so `dhis2maint integrity diff --format json` and scripts agree.
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


# ---------------------------------------------------------------------------
# Progress lines


def write_notification_line(notification: "Notification", elapsed: Optional[float],
                            out: IO[str]) -> None:
    """Write ``[  12.3s] INFO  message`` for a task :class:`Notification` and flush.

    ``elapsed`` is seconds since the job started (``None`` leaves the time blank).
    """
    stamp = "       " if elapsed is None else "{:6.1f}s".format(elapsed)
    level = _sev(getattr(notification, "level", None)) or "-"
    message = _clean(getattr(notification, "message", None))
    if not message:
        # Job types outside DHIS2's notifying set post start/end with an empty message.
        message = "(completed)" if getattr(notification, "completed", False) else "(working)"
    line = "[{}] {:<5} {}".format(stamp, level, message)
    out.write(line + "\n")
    out.flush()


# ---------------------------------------------------------------------------
# Atomic files


def _new_file_mode() -> int:
    """The permission bits a newly created file gets under the current umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_output(path: Union[str, "os.PathLike[str]", None], mode: str = "w",
                  encoding: str = "utf-8", newline: Optional[str] = None) -> Iterator[IO[Any]]:
    """Write a file all at once: ``with atomic_output("report.html") as out: …``.

    Yields a file object for a temporary file in the same directory; when the
    block ends normally the data is flushed and fsync'ed and the temporary file
    replaces ``path`` (``os.replace``, atomic on POSIX and Windows).  When the
    block raises anything -- KeyboardInterrupt included -- the temporary file is
    deleted and ``path`` is left as it was.  A new file gets the usual umask
    permissions; an existing one keeps its mode.

    ``path`` ``None`` or ``"-"`` yields ``sys.stdout`` (``sys.stdout.buffer`` for a
    binary ``mode``), which is flushed but not closed.  ``mode`` is ``"w"``,
    ``"wt"`` or ``"wb"``.
    """
    if mode not in ("w", "wt", "wb"):
        raise ValueError("atomic_output writes new files: mode must be 'w', 'wt' or 'wb'")
    binary = "b" in mode
    if path is None or path == "-":
        stream = sys.stdout.buffer if binary else sys.stdout
        yield stream
        stream.flush()
        return
    import tempfile

    # Through a symlink to its target, so a linked report location stays linked.
    path = os.path.realpath(os.fspath(path))
    folder = os.path.dirname(path)
    try:
        file_mode = os.stat(path).st_mode & 0o7777
    except OSError:
        file_mode = _new_file_mode()
    fd, temp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                                suffix=".part")
    try:
        handle = os.fdopen(fd, mode, **({} if binary else  # type: ignore[call-overload]  # str mode
                                        {"encoding": encoding, "newline": newline}))
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, file_mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _sync_folder(folder)


def _sync_folder(folder: str) -> None:
    """Make the rename durable (POSIX); a no-op where directories can't be opened."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------
# HTML


_CSS = """
:root { --fg:#1d2327; --muted:#5f6b76; --line:#dde3e8; --bg:#ffffff; --head:#f4f6f8;
  --CRITICAL:#8e1b1b; --SEVERE:#d9480f; --WARNING:#e0a100; --INFO:#1c6fb8; --OTHER:#6b7785;
  --ERROR:#343a40; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1200px; padding: 24px 32px 48px; color: var(--fg);
  background: var(--bg); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto,
  "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 12px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
.meta { color: var(--muted); margin: 0; }
.totals { font-size: 16px; margin: 12px 0; }
.totals strong { font-size: 22px; }
.failed-note { color: var(--ERROR); font-weight: 600; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12.5px; }
#severity-chart { display: block; max-width: 640px; }
#severity-chart text { font-size: 13px; fill: var(--fg); }
#severity-chart .n { fill: var(--muted); }
table { border-collapse: collapse; width: 100%; margin: 8px 0; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: var(--head); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: "\\2195"; color: #b3bcc4; margin-left: 4px; }
table.sortable th[aria-sort=ascending]::after { content: "\\25B2"; color: var(--fg); }
table.sortable th[aria-sort=descending]::after { content: "\\25BC"; color: var(--fg); }
tr.zero td { color: var(--muted); }
.badge { display: inline-block; min-width: 74px; padding: 1px 6px; border-radius: 3px;
  color: #fff; font-size: 11.5px; font-weight: 700; text-align: center;
  letter-spacing: .03em; background: var(--OTHER); }
.badge.sev-CRITICAL { background: var(--CRITICAL); }
.badge.sev-SEVERE { background: var(--SEVERE); }
.badge.sev-WARNING { background: var(--WARNING); color: #1d2327; }
.badge.sev-INFO { background: var(--INFO); }
.badge.error { background: var(--ERROR); }
details.check { border: 1px solid var(--line); border-left: 5px solid var(--OTHER);
  border-radius: 4px; margin: 8px 0; background: var(--bg); }
details.check.sev-CRITICAL { border-left-color: var(--CRITICAL); }
details.check.sev-SEVERE { border-left-color: var(--SEVERE); }
details.check.sev-WARNING { border-left-color: var(--WARNING); }
details.check.sev-INFO { border-left-color: var(--INFO); }
details.check > summary { cursor: pointer; padding: 8px 12px; font-weight: 600; }
details.check > summary .count { float: right; color: var(--muted); font-weight: 400; }
details.check > .body { padding: 0 12px 10px; }
.error-text { color: #a61e1e; white-space: pre-wrap; }
.more { color: var(--muted); font-style: italic; }
.refs { margin: 0; padding-left: 16px; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
.intro { margin: 6px 0; }
.fix { margin: 6px 0 10px; padding: 6px 10px; background: var(--head);
  border-left: 3px solid var(--INFO); }
.filter input { font: inherit; padding: 3px 6px; width: 320px; max-width: 100%; }
svg.spark { vertical-align: middle; }
td.trend { white-space: nowrap; }
svg.spark polyline, #trend-chart polyline { fill: none; stroke: var(--INFO); stroke-width: 1.5; }
#trend-chart { display: block; max-width: 640px; }
#trend-chart text { font-size: 12px; fill: var(--muted); }
#trend-chart circle { fill: var(--INFO); }
.hidden-by-filter { display: none; }
@media (prefers-color-scheme: dark) {
  :root { --fg:#e4e8eb; --muted:#9aa5af; --line:#3a4148; --bg:#1b1f23; --head:#262b30; }
}
"""

# Plain ES5 so that old browsers on ministry desktops run it too.  No server
# data ever goes in here: the Content-Security-Policy allows this script only
# (by its hash), so even an escaping bug could not run injected code.
_SCRIPT = """
(function () {
  "use strict";
  function key(cell) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { raw = cell.textContent.replace(/^\\s+|\\s+$/g, ""); }
    var n = Number(raw);
    return (raw !== "" && isFinite(n)) ? {num: true, v: n} : {num: false, v: raw.toLowerCase()};
  }
  function compare(a, b) {
    if (a.num && b.num) { return a.v - b.v; }
    if (a.num !== b.num) { return a.num ? -1 : 1; }
    return a.v < b.v ? -1 : (a.v > b.v ? 1 : 0);
  }
  function sortTable(table, th) {
    var column = th.cellIndex, body = table.tBodies[0];
    var current = th.getAttribute("aria-sort");
    var dir = current ? (current === "ascending" ? "descending" : "ascending")
                      : (th.getAttribute("data-first-sort") || "ascending");
    var heads = table.tHead.rows[0].cells, i;
    for (i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", dir);
    var rows = [], sign = dir === "descending" ? -1 : 1;
    for (i = 0; i < body.rows.length; i++) {
      rows.push({row: body.rows[i], k: key(body.rows[i].cells[column]), i: i});
    }
    rows.sort(function (a, b) { return sign * compare(a.k, b.k) || a.i - b.i; });
    for (i = 0; i < rows.length; i++) { body.appendChild(rows[i].row); }
  }
  function bind(table, th) {
    th.tabIndex = 0;
    th.setAttribute("title", "Sort by " + th.textContent);
    th.addEventListener("click", function () { sortTable(table, th); });
    th.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        sortTable(table, th);
      }
    });
  }
  var tables = document.querySelectorAll("table.sortable"), t, c;
  for (t = 0; t < tables.length; t++) {
    if (!tables[t].tHead || !tables[t].tBodies.length) { continue; }
    var heads = tables[t].tHead.rows[0].cells;
    for (c = 0; c < heads.length; c++) { bind(tables[t], heads[c]); }
  }
  document.documentElement.setAttribute("data-sort-ready", String(tables.length));
  var box = document.getElementById("filter");
  function matches(el, q) { return el.textContent.toLowerCase().indexOf(q) >= 0; }
  function applyFilter() {
    var q = box.value.replace(/^\\s+|\\s+$/g, "").toLowerCase(), shown = 0, i, j;
    var rows = document.querySelectorAll("#summary-table tbody tr");
    for (i = 0; i < rows.length; i++) {
      rows[i].className = rows[i].className.replace(/ ?hidden-by-filter/g, "") +
        (q && !matches(rows[i], q) ? " hidden-by-filter" : "");
    }
    var sections = document.querySelectorAll("details.check");
    for (i = 0; i < sections.length; i++) {
      var head = sections[i].querySelector("summary");
      var own = !q || matches(head, q), any = false;
      var issues = sections[i].querySelectorAll("table.issues tbody tr");
      for (j = 0; j < issues.length; j++) {
        var hit = own || matches(issues[j], q);
        issues[j].className = hit ? "" : "hidden-by-filter";
        if (hit) { any = true; shown++; }
      }
      var visible = own || any;
      sections[i].className = sections[i].className.replace(/ ?hidden-by-filter/g, "") +
        (visible ? "" : " hidden-by-filter");
      if (q && any && !own) { sections[i].open = true; }
    }
    var note = document.getElementById("filter-count");
    if (note) { note.textContent = q ? shown + " matching issues listed" : ""; }
    document.documentElement.setAttribute("data-filter", q);
  }
  if (box) { box.addEventListener("input", applyFilter); }
})();
"""


def _css_token(text: Optional[str]) -> str:
    """A severity made safe for a class name: 'SEVERE' stays, anything odd is stripped."""
    return re.sub(r"[^A-Za-z0-9_-]", "", text or "") or "none"


def _script_hash(script: str) -> str:
    import base64
    import hashlib

    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()


def _svg_chart(issues: Dict[str, int], checks: Dict[str, int],
               esc: Callable[[object], str]) -> str:
    """Horizontal bars, one per severity: width proportional to its issue count."""
    order = [s for s in _severity_order(issues) if s in _SEVERITIES or issues.get(s)]
    top = max([issues.get(s, 0) for s in order] + [1])
    bar_x, bar_max, row_h = 96, 380, 28
    height = row_h * len(order) + 4
    parts = ['<svg id="severity-chart" xmlns="http://www.w3.org/2000/svg" role="img" '
             'aria-labelledby="chart-title" viewBox="0 0 640 {h}" width="640" height="{h}">'
             '<title id="chart-title">Issues by severity</title>'.format(h=height)]
    for index, sev in enumerate(order):
        count = issues.get(sev, 0)
        width = 0 if not count else max(2, round(bar_max * count / top))
        y = index * row_h + 4
        colour = "var(--{})".format(sev if sev in _SEVERITIES else "OTHER")
        parts.append(
            '<g class="bar" data-severity="{s}" data-count="{n}" data-checks="{k}">'
            '<text x="0" y="{ty}">{s}</text>'
            '<rect x="{x}" y="{y}" width="{w}" height="18" rx="2" style="fill:{c}"></rect>'
            '<text class="n" x="{nx}" y="{ty}">{label}</text></g>'.format(
                s=esc(sev), n=count, k=checks.get(sev, 0), ty=y + 14, x=bar_x, y=y, w=width,
                c=colour, nx=bar_x + width + 8,
                label=esc("{} in {}".format(_plural(count, "issue"),
                                            _plural(checks.get(sev, 0), "check")))))
    parts.append("</svg>")
    return "".join(parts)


def _badge(severity: object, esc: Callable[[object], str]) -> str:
    sev = _sev(severity) or "-"
    return '<span class="badge sev-{}">{}</span>'.format(_css_token(sev), esc(sev))


_UID = re.compile(r"^[A-Za-z][A-Za-z0-9]{10}$")

#: DHIS2 schema plural (a check's ``issuesIdType``) -> (section, object type) of the
#: maintenance app's edit route ``#/edit/{section}/{type}/{uid}`` (dhis2/maintenance-app,
#: src/router.jsx and src/config/maintenance-models.js).  Types the maintenance app
#: does not edit (users, periods, dashboards, events, …) get no link.
MAINTENANCE_TYPES = {
    "categoryOptions": ("categorySection", "categoryOption"),
    "categories": ("categorySection", "category"),
    "categoryCombos": ("categorySection", "categoryCombo"),
    "categoryOptionCombos": ("categorySection", "categoryOptionCombo"),
    "categoryOptionGroups": ("categorySection", "categoryOptionGroup"),
    "categoryOptionGroupSets": ("categorySection", "categoryOptionGroupSet"),
    "dataElements": ("dataElementSection", "dataElement"),
    "dataElementGroups": ("dataElementSection", "dataElementGroup"),
    "dataElementGroupSets": ("dataElementSection", "dataElementGroupSet"),
    "dataSets": ("dataSetSection", "dataSet"),
    "indicators": ("indicatorSection", "indicator"),
    "indicatorTypes": ("indicatorSection", "indicatorType"),
    "indicatorGroups": ("indicatorSection", "indicatorGroup"),
    "indicatorGroupSets": ("indicatorSection", "indicatorGroupSet"),
    "programIndicators": ("indicatorSection", "programIndicator"),
    "programIndicatorGroups": ("indicatorSection", "programIndicatorGroup"),
    "organisationUnits": ("organisationUnitSection", "organisationUnit"),
    "organisationUnitGroups": ("organisationUnitSection", "organisationUnitGroup"),
    "organisationUnitGroupSets": ("organisationUnitSection", "organisationUnitGroupSet"),
    "programs": ("programSection", "program"),
    "programRules": ("programSection", "programRule"),
    "programRuleVariables": ("programSection", "programRuleVariable"),
    "trackedEntityAttributes": ("programSection", "trackedEntityAttribute"),
    "trackedEntityTypes": ("programSection", "trackedEntityType"),
    "relationshipTypes": ("programSection", "relationshipType"),
    "validationRules": ("validationSection", "validationRule"),
    "validationRuleGroups": ("validationSection", "validationRuleGroup"),
    "optionSets": ("otherSection", "optionSet"),
    "constants": ("otherSection", "constant"),
    "attributes": ("otherSection", "attribute"),
    "legendSets": ("otherSection", "legendSet"),
    "predictors": ("otherSection", "predictor"),
    "pushAnalysis": ("otherSection", "pushAnalysis"),
}


def object_url(base_url: Optional[str], issues_id_type: Optional[str],
               uid: Optional[str]) -> Optional[str]:
    """The maintenance-app page of object ``uid`` of type ``issues_id_type``
    (``{base}/dhis-web-maintenance/index.html#/edit/{section}/{type}/{uid}``), or
    ``None`` when the type has no maintenance page or ``uid`` is not a DHIS2 UID."""
    prefix = _object_link(base_url, issues_id_type)
    if prefix is None or not uid or not _UID.match(uid):
        return None
    return prefix + uid


def _object_link(base_url: Optional[str], issues_id_type: Optional[str]) -> Optional[str]:
    if not base_url or not issues_id_type or issues_id_type not in MAINTENANCE_TYPES:
        return None
    if not re.match(r"^https?://", base_url):
        return None
    section, kind = MAINTENANCE_TYPES[issues_id_type]
    return "{}/dhis-web-maintenance/index.html#/edit/{}/{}/".format(
        base_url.rstrip("/"), section, kind)


class _HistoryView(NamedTuple):
    """What the HTML needs from a History for one report's server."""
    total: List[Tuple[datetime.datetime, Optional[int]]]  # (run time, total issues) per run
    checks: Dict[str, List[Optional[int]]]  # History.check_trends
    first_seen: Dict[Tuple[str, str], datetime.datetime]  # History.first_seen (details)


def _history_view(report: "DataIntegrityReport",
                  history: Optional["History"]) -> Optional[_HistoryView]:
    """What the HTML needs from a History for this report's server, or None."""
    if history is None or not report.base_url:
        return None
    total = [(p.run_at, p.count) for p in history.trend(server=report.base_url)][-60:]
    first_seen = history.first_seen(report.base_url) if report.details else {}
    return _HistoryView(total=total, checks=history.check_trends(report.base_url),
                        first_seen=first_seen)


def _sparkline(series: Sequence[Optional[int]], esc: Callable[[object], str]) -> str:
    """A small inline SVG line of a check's counts over the recorded runs."""
    values = [v for v in series if v is not None]
    if len(values) < 2:
        return '<span class="meta">–</span>'
    width, height = 64, 18
    top = max(values) or 1
    step = width / float(len(series) - 1)
    points = " ".join("{:.1f},{:.1f}".format(i * step, height - 2 - (height - 4) * v / top)
                      for i, v in enumerate(series) if v is not None)
    label = "counts over the last {} runs: {}".format(
        len(series), ", ".join("-" if v is None else str(v) for v in series))
    return ('<svg class="spark" role="img" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            'data-values="{vals}"><title>{t}</title><polyline points="{p}"></polyline>'
            '</svg> <span class="spark-last">{last}</span>').format(
        w=width, h=height, p=points, t=esc(label), last=_num(values[-1]),
        vals=esc(",".join("" if v is None else str(v) for v in series)))


def _svg_trend(points: Sequence[Tuple[datetime.datetime, Optional[int]]],
               esc: Callable[[object], str]) -> str:
    """Total issues per recorded run of this server: a line with a dot per run."""
    width, height, left, bottom = 640, 160, 56, 22
    counts = [c or 0 for _t, c in points]
    top = max(counts) or 1
    step = (width - left - 10) / float(max(1, len(points) - 1))
    parts = ['<svg id="trend-chart" xmlns="http://www.w3.org/2000/svg" role="img" '
             'aria-labelledby="trend-title" viewBox="0 0 {w} {h}" width="{w}" height="{h}">'
             '<title id="trend-title">Total issues per recorded run</title>'
             '<text x="0" y="12">{top}</text><text x="0" y="{zy}">0</text>'.format(
                 w=width, h=height, top=esc(_num(top)), zy=height - bottom)]
    xy = []
    for i, (when, count) in enumerate(points):
        x = left + i * step
        y = height - bottom - (height - bottom - 8) * (count or 0) / top
        xy.append("{:.1f},{:.1f}".format(x, y))
    parts.append('<polyline class="line" points="{}"></polyline>'.format(" ".join(xy)))
    for i, (when, count) in enumerate(points):
        cx, cy = xy[i].split(",")
        parts.append('<circle class="run" cx="{}" cy="{}" r="3" data-count="{}">'
                     '<title>{}: {}</title></circle>'.format(
                         cx, cy, count or 0, esc(_iso(when.replace(tzinfo=None)) if when else ""),
                         esc(_plural(count or 0, "issue"))))
    if points and points[0][0] is not None:
        parts.append('<text x="{}" y="{}">{}</text><text x="{}" y="{}" text-anchor="end">{}'
                     '</text>'.format(left, height - 4, esc(points[0][0].strftime("%Y-%m-%d")),
                                      width - 4, height - 4,
                                      esc(points[-1][0].strftime("%Y-%m-%d"))))
    parts.append("</svg>")
    return "".join(parts)


def _write_report_html(report: "DataIntegrityReport", out: Any, title: Optional[str] = None,
                       server: Optional[str] = None,
                       generated: Union[str, datetime.datetime, None] = None,
                       limit: int = HTML_ISSUE_LIMIT,
                       history: Optional[_HistoryView] = None) -> None:
    """One self-contained HTML5 page: no external asset, every server string escaped.

    Layout: header (title, server, time), totals with an inline SVG bar chart by
    severity, a sortable table of every check, then one ``<details>`` section
    per check with issues (or that failed), worst first, each with a sortable
    table of its issues.  Test hooks: ``#total-issues``, ``#checks-total``,
    ``#checks-with-issues``, ``#checks-failed`` (``data-count``), chart bars
    ``g.bar[data-severity][data-count]``, summary rows
    ``#summary-table tr[data-check][data-severity][data-count]`` and sections
    ``details.check[data-check][data-count][data-listed]``.
    """
    import html

    def esc(value: object) -> str:
        return html.escape("" if value is None else str(value), quote=True)

    title = title or ("Data integrity details" if report.details else "Data integrity summary")
    issues, checks, failed, total = _totals(report)
    ordered = _ordered(report)
    shown = [r for r in ordered if _count(r) != 0]
    # A constant (no server data; a base64 hash has no '"'), so written unescaped.
    csp = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
           "script-src '{}'; base-uri 'none'; form-action 'none'".format(_script_hash(_SCRIPT)))
    w = out.write
    w('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
      '<meta http-equiv="Content-Security-Policy" content="{}">\n'
      '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
      '<meta name="generator" content="dhis2maint">\n'
      '<title>{}</title>\n<style>{}</style>\n</head>\n<body>\n'.format(csp, esc(title), _CSS))

    # Header
    meta = []
    server = server or report.base_url
    if server:
        meta.append('Server <span id="server">{}</span>'.format(esc(server)))
    if report.dhis2_version:
        meta.append('DHIS2 <span id="dhis2-version">{}</span>'.format(esc(report.dhis2_version)))
    if report.job_id:
        meta.append('job <code id="job-id">{}</code>'.format(esc(report.job_id)))
    if report.run_at:
        meta.append('run at <time id="run-at">{}</time> UTC'.format(
            esc(_iso(report.run_at.replace(tzinfo=None)))))
    if report.server_time:
        meta.append('server time <time id="server-time">{}</time>'.format(
            esc(_iso(report.server_time))))
    if generated:
        meta.append('generated <time id="generated">{}</time>'.format(esc(_iso(generated))))
    ran = _time_range(report)
    if ran:
        meta.append('checks ran <span id="ran">{}</span>'.format(esc(ran)))
    w('<header>\n<h1 id="report-title">{}</h1>\n'.format(esc(title)))
    if meta:
        w('<p class="meta">{}</p>\n'.format(" · ".join(meta)))
    w("</header>\n")

    # Overview
    with_issues = sum(checks.values())
    w('<section id="overview">\n<h2>Summary</h2>\n<p class="totals">'
      '<strong><span id="total-issues" data-count="{t}">{tf}</span></strong> {iw} in '
      '<span id="checks-with-issues" data-count="{k}">{k}</span> of '
      '<span id="checks-total" data-count="{n}">{n}</span> checks'.format(
          t=total, tf=_num(total), iw="issue" if total == 1 else "issues",
          k=with_issues, n=len(report)))
    w('<span class="failed-note"{}>; <span id="checks-failed" data-count="{f}">{f}</span> '
      'failed</span>'.format("" if failed else " hidden", f=failed))
    w(".</p>\n")
    w(_svg_chart(issues, checks, esc))
    if history and len(history.total) > 1:
        w('\n<h3>Total issues over the recorded runs</h3>\n')
        w(_svg_trend(history.total, esc))
    w('\n<p class="filter"><label for="filter">Filter checks and issues: </label>'
      '<input id="filter" type="search" placeholder="name, id, comment…" autocomplete="off">'
      ' <span id="filter-count" class="meta"></span></p>')
    w("\n</section>\n")

    # Summary table of every check
    has_pct = any(r.percentage is not None for r in report)
    w('<section id="all-checks">\n<h2>All checks</h2>\n'
      '<table id="summary-table" class="sortable">\n<thead><tr>'
      '<th data-key="severity" data-first-sort="descending">Severity</th>'
      '<th data-key="check">Check</th><th data-key="name">Name</th>'
      '<th data-key="section">Section</th>'
      '<th data-key="count" class="num" data-first-sort="descending">Issues</th>')
    if has_pct:
        w('<th data-key="percentage" class="num" data-first-sort="descending">%</th>')
    if history:
        w('<th data-key="trend">Trend</th>')
    w("</tr></thead>\n<tbody>\n")
    anchors = {}
    for index, result in enumerate(shown):
        anchors[result.name] = "check-{}".format(index + 1)
    for result in ordered:
        count = _count(result)
        sev = _sev(result.severity)
        label = esc(_label(result))
        if result.name in anchors:
            label = '<a href="#{}">{}</a>'.format(anchors[result.name], label)
        cls = "failed" if count is None else ("zero" if count == 0 else "has-issues")
        w('<tr class="{cls}" data-check="{name}" data-severity="{sev}" data-count="{cnt}">'
          '<td data-sort="{rank}">{badge}</td><td>{label}</td><td><code>{name}</code></td>'
          '<td>{section}</td><td class="num" data-sort="{cnt}">{shown}</td>'.format(
              cls=cls, name=esc(result.name), sev=esc(sev), rank=_rank(result.severity),
              cnt=-1 if count is None else count, badge=_badge(result.severity, esc),
              label=label, section=esc(result.section),
              shown='<span class="badge error" title="{}">ERROR</span>'.format(
                  esc(result.error)) if count is None else _num(count)))
        if has_pct:
            pct = result.percentage
            w('<td class="num" data-sort="{}">{}</td>'.format(
                "" if pct is None else repr(float(pct)), esc(_pct(pct))))
        if history:
            w('<td class="trend">{}</td>'.format(
                _sparkline(history.checks.get(result.name, ()), esc)))
        w("</tr>\n")
    w("</tbody>\n</table>\n</section>\n")

    # One section per check with findings
    w('<section id="checks">\n<h2>{}</h2>\n'.format(
        "Issues by check" if report.details else "Checks with issues"))
    if not shown:
        w('<p id="no-issues">No issues found.</p>\n')
    budget = [HTML_TOTAL_LIMIT]
    for index, result in enumerate(shown):
        _write_check_section(result, anchors[result.name], out, esc, limit,
                             open_=index == 0, details=report.details, base_url=server,
                             history=history, budget=budget)
    w("</section>\n")
    w('<footer>Written by dhis2maint. Click a column heading to sort; type in the filter box '
      'to narrow the checks and issues.</footer>\n')
    w("<script>{}</script>\n</body>\n</html>\n".format(_SCRIPT))


def _write_check_section(result: "DataIntegrityResult", anchor: str, out: Any,
                         esc: Callable[[object], str], limit: int, open_: bool,
                         details: bool, base_url: Optional[str] = None,
                         history: Optional[_HistoryView] = None,
                         budget: Optional[List[int]] = None) -> None:
    count = _count(result)
    issues = result.issues or []
    if budget is not None:
        limit = min(limit, budget[0])
    listed = min(len(issues), limit)
    if budget is not None:
        budget[0] -= listed
    sev = _sev(result.severity)
    w = out.write
    w('<details class="check sev-{tok}" id="{a}" data-check="{name}" data-severity="{sev}" '
      'data-count="{cnt}" data-listed="{listed}"{open}>\n<summary>{badge} {label} '
      '<code>{name}</code><span class="count">{what}</span></summary>\n'
      '<div class="body">\n'.format(
          tok=_css_token(sev), a=anchor, name=esc(result.name), sev=esc(sev),
          cnt=-1 if count is None else count, listed=listed, open=" open" if open_ else "",
          badge=_badge(result.severity, esc), label=esc(_label(result)),
          what="check failed" if count is None else esc(_plural(count, "issue"))))
    facts = []
    if result.section:
        facts.append("Section: {}".format(esc(result.section)))
    if result.percentage is not None:
        facts.append("{} of the objects checked".format(esc(_pct(result.percentage))))
    if result.issues_id_type:
        facts.append("Objects: <code>{}</code>".format(esc(result.issues_id_type)))
    if facts:
        w('<p class="meta">{}</p>\n'.format(" · ".join(facts)))
    if history and history.checks.get(result.name):
        w('<p class="meta">Over the recorded runs: {}</p>\n'.format(
            _sparkline(history.checks[result.name], esc)))
    if result.introduction:
        w('<p class="intro">{}</p>\n'.format(esc(result.introduction)))
    if result.recommendation:
        w('<p class="fix"><strong>How to fix:</strong> {}</p>\n'.format(
            esc(result.recommendation)))
    link = _object_link(base_url, result.issues_id_type)
    seen = history.first_seen if history else None
    if count is None:
        w('<p class="error-text">{}</p>\n'.format(esc(result.error)))
    elif not details:
        w('<p class="meta">Summary report: run a details report to list the issues.</p>\n')
    elif issues:
        w('<table class="sortable issues">\n<thead><tr><th class="num" data-key="n">#</th>'
          '<th data-key="id">ID</th><th data-key="name">Name</th>'
          '<th data-key="comment">Comment</th><th data-key="refs">Refs</th>' +
          ('<th data-key="since">Open since</th>' if seen is not None else '') +
          '</tr></thead>\n<tbody>\n')
        chunk = []
        for number, issue in enumerate(issues[:limit], 1):
            refs = ""
            if issue.refs:
                refs = '<ul class="refs">{}</ul>'.format(
                    "".join("<li>{}</li>".format(esc(r)) for r in issue.refs))
            ident = '<code>{}</code>'.format(esc(issue.id))
            if link and issue.id and _UID.match(issue.id):
                ident = ('<a class="open-in-dhis2" href="{}" target="_blank" rel="noopener '
                         'noreferrer" title="Open in the DHIS2 maintenance app">{}</a>').format(
                    esc(link + issue.id), ident)
            since = ""
            if seen is not None:
                from .history import issue_identity

                first = seen.get((result.name, issue_identity(issue)))
                since = '<td data-sort="{0}">{0}</td>'.format(
                    esc(first.strftime("%Y-%m-%d")) if first else "")
            chunk.append('<tr><td class="num">{}</td><td>{}</td><td>{}</td>'
                         '<td>{}</td><td>{}</td>{}</tr>\n'.format(
                             number, ident, esc(issue.name), esc(issue.comment), refs, since))
            if len(chunk) >= FLUSH_EVERY:
                w("".join(chunk))
                del chunk[:]
        w("".join(chunk))
        w("</tbody>\n</table>\n")
        if len(issues) > listed:
            w('<p class="more">… and {:,} more (listed: {:,} of {:,}; the page shows at most '
              '{:,} per check and {:,} in all; save the report as json or csv for the full '
              'list).</p>\n'.format(len(issues) - listed, listed, len(issues), HTML_ISSUE_LIMIT,
                                     HTML_TOTAL_LIMIT))
    w("</div>\n</details>\n")


# ---------------------------------------------------------------------------
# Scheduled jobs, scheduler health, doctor (issue #15)

_HEALTH_CSV_HEADER = ("severity", "kind", "job_id", "job_name", "job_type", "message",
                      "what_to_do", "error_codes", "since")


def write_job_configurations(configs: Sequence["JobConfiguration"], fmt: str, out: IO[str],
                             width: Optional[int] = None) -> None:
    """Job configurations: ``table`` shows id, name, type, schedule, enabled, status,
    last run and next run; the other formats are :func:`write_records`'."""
    if fmt == "csv":
        _write_records_csv(configs, out)
        return
    if fmt != "table":
        write_records(configs, fmt, out, width)
        return
    width = _fit_width(width, out, default=140)
    out, ell = _for_terminal(out)
    table = _Table(["ID", "NAME", "TYPE", "SCHEDULE", "ON", "STATUS", "LAST RUN", "RESULT",
                    "NEXT RUN"], ["<"] * 9, width, ell, caps={1: 28},
                   shrink=[(3, 11), (1, 16), (1, 8)], keep=(0, 2))
    for c in configs:
        table.add([c.id or "", c.name or "", str(c.job_type or ""),
                   c.cron_expression or ("every {} s".format(c.delay) if c.delay else ""),
                   "yes" if c.enabled else "no", str(c.job_status or ""),
                   _iso(c.last_executed) or "", str(c.last_executed_status or ""),
                   _iso(c.next_execution_time) or ""])
    for line in table.lines():
        out.write(line + "\n")
    out.write("{}\n".format(_plural(len(configs), "job configuration")))
    out.flush()


def write_fields(record: "AttrsInstance", out: IO[str]) -> None:
    """One attrs record as ``name: value`` lines (fields without a value left out)."""
    import attr

    out, _ = _for_terminal(out)
    for field in attr.fields(type(record)):
        value = getattr(record, field.name)
        if value in (None, "", [], {}):
            continue
        if hasattr(value, "isoformat"):
            value = _iso(value)
        elif isinstance(value, (dict, list)):
            import json

            value = json.dumps(value, ensure_ascii=False)
        out.write("{}: {}\n".format(field.name, _clean(_csv_value(value))))
    out.flush()


#: A face's wording of follow-ups: (follow_ups, advice) -> one sentence.
FollowUpWords = Callable[[Sequence["FollowUp"], str], str]


def _what_to_do(follow_ups: Sequence["FollowUp"], advice: Optional[str], library_text: str,
                words: Optional[FollowUpWords]) -> str:
    """``library_text`` (Python's wording), or the face's ``words`` for the follow-ups."""
    if words is None or not (follow_ups or advice):
        return library_text
    return words(follow_ups, advice or "")


def write_health(health: "SchedulerHealth", fmt: str, out: IO[str],
                 width: Optional[int] = None, words: Optional[FollowUpWords] = None) -> None:
    """A :class:`SchedulerHealth`: ``table`` lists each finding with its severity and
    what to do; ``json`` the whole verdict; ``jsonl``/``csv`` one finding a line.
    ``words``: the face's wording of each finding's follow-ups (the command
    line's commands); ``None``: ``what_to_do`` as the library worded it."""
    _check_format(fmt, ("table", "json", "jsonl", "csv"), "scheduler health")
    from .convert import unstructure

    def what(f: "HealthFinding") -> str:
        return _what_to_do(f.follow_ups, f.advice, f.what_to_do, words)

    def record(f: "HealthFinding") -> Dict[str, Any]:
        data = cast(Dict[str, Any], unstructure(f))
        data["whatToDo"] = what(f)
        return data

    if fmt == "json":
        import json

        data = cast(Dict[str, Any], unstructure(health))
        data["findings"] = [record(f) for f in health.findings]
        out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    elif fmt == "jsonl":
        encode = _json_encoder()
        for finding in health.findings:
            out.write(encode(record(finding)) + "\n")
    elif fmt == "csv":
        writer = _csv_writer(out)
        writer.writerow(_HEALTH_CSV_HEADER)
        for f in health.findings:
            writer.writerow([f.severity, f.kind, f.job_id or "", f.job_name or "",
                             _csv_value(f.job_type), f.message, what(f),
                             " ".join(f.error_codes), _iso(f.since) or ""])
    else:
        out, _ = _for_terminal(out)
        out.write("Scheduler health of DHIS2 {} at {} (server time): {} jobs, {}\n".format(
            health.server_version or "?", _iso(health.server_time) or "?", health.jobs_checked,
            _plural(len(health.findings), "finding")))
        for f in health.findings:
            out.write("{:<8} {:<19} {}\n".format(f.severity, f.kind, _clean(f.message)))
            out.write("{:<8} {:<19} -> {}\n".format("", "", _clean(what(f))))
        if not health.findings:
            out.write("OK: nothing failed, stuck, overdue or disabled\n")
    out.flush()


def write_doctor(report: "DoctorReport", fmt: str, out: IO[str],
                 words: Optional[FollowUpWords] = None) -> None:
    """A :class:`DoctorReport`: ``table`` one line per check (PASS/WARN/FAIL/SKIP) with
    the fix below it; ``json`` the report.  ``words``: as for :func:`write_health`."""
    _check_format(fmt, ("table", "json"), "doctor report")

    def fix(check: "DoctorCheck") -> str:
        return _what_to_do(check.follow_ups, check.advice, check.fix or "", words)

    if fmt == "json":
        import json

        from .convert import unstructure

        data = cast(Dict[str, Any], unstructure(report))
        for check, item in zip(report.checks, data.get("checks", [])):
            if fix(check):
                item["fix"] = fix(check)
        out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        out.flush()
        return
    out, _ = _for_terminal(out)
    out.write("dhis2maint doctor: {}\n".format(_clean(report.url)))
    for check in report.checks:
        out.write("{:<5} {:<38} {}\n".format(check.status.upper(), check.name,
                                            _clean(check.detail)))
        if fix(check) and check.status in ("warn", "fail"):
            out.write("{:<5} {:<38} fix: {}\n".format("", "", _clean(fix(check))))
    failed = len(report.failed)
    out.write("{}\n".format("all checks passed" if not failed and not any(
        c.status == "warn" for c in report.checks) else "{} failed, {} warning{}".format(
        failed, sum(1 for c in report.checks if c.status == "warn"),
        "" if sum(1 for c in report.checks if c.status == "warn") == 1 else "s")))
    out.flush()


def _cell(value: object) -> str:
    """A CSV cell: JSON for dicts and lists, ISO times to the millisecond."""
    import json

    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ", timespec="milliseconds")
    return _csv_value(value)


def _write_records_csv(records: Sequence["AttrsInstance"], out: IO[str]) -> None:
    import attr

    writer = _csv_writer(out)
    fields = [f.name for f in attr.fields(type(records[0]))] if records else []
    writer.writerow(fields)
    for record in records:
        writer.writerow([_cell(getattr(record, f)) for f in fields])
    out.flush()


def write_validation_results(results: Sequence["ValidationResult"], fmt: str, out: IO[str],
                             width: Optional[int] = None) -> None:
    """Stored validation results (:class:`ValidationResult`): ``table`` shows id, rule,
    importance, org unit, period, both sides, notification sent and created; the
    other formats are :func:`write_records`' (``csv``: every field)."""
    if fmt == "csv":
        _write_records_csv(results, out)
        return
    if fmt != "table":
        write_records(results, fmt, out, width)
        return
    width = _fit_width(width, out, default=120)
    out, ell = _for_terminal(out)
    table = _Table(["ID", "RULE", "IMPORTANCE", "ORG UNIT", "PERIOD", "LEFT", "RIGHT", "SENT",
                    "CREATED"], ["<", "<", "<", "<", "<", ">", ">", "<", "<"], width, ell,
                   caps={1: 30, 3: 24}, shrink=[(1, 12), (3, 10)], keep=(0,))
    for r in results:
        table.add([_csv_value(r.id), r.validation_rule_name or r.validation_rule_id or "",
                   r.importance or "", r.organisation_unit_name or r.organisation_unit_id or "",
                   r.period_id or "", _num(r.leftside_value) if r.leftside_value is not None
                   else "", _num(r.rightside_value) if r.rightside_value is not None else "",
                   "yes" if r.notification_sent else "no", _iso(r.created) or ""])
    for line in table.lines():
        out.write(line + "\n")
    out.write("{}\n".format(_plural(len(results), "validation result")))
    out.flush()
