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

__all__ = ["FORMATS", "write_report", "write_issue_rows", "write_checks",
           "write_comparison", "write_records", "write_notification_line",
           "atomic_output"]

FORMATS = ("table", "json", "jsonl", "csv", "html")
ISSUE_ROW_FORMATS = ("jsonl", "csv", "table")

#: Issues listed per check in the plain-text table of a details report.
TABLE_ISSUE_LIMIT = 20
#: Issues listed per check in the HTML report (the rest are counted, not listed).
HTML_ISSUE_LIMIT = 5000
#: Width of the plain-text tables when the caller gives none.
DEFAULT_WIDTH = 100
#: Rows written between flushes by the streaming writers.
FLUSH_EVERY = 1000

_SEVERITIES = ("CRITICAL", "SEVERE", "WARNING", "INFO")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _check_format(fmt, allowed, what):
    if fmt not in allowed:
        raise ValueError("unknown format {!r} for {}; choose one of: {}".format(
            fmt, what, ", ".join(allowed)))


# ---------------------------------------------------------------------------
# Small shared helpers


def _sev(severity):
    """The severity as plain text ('' for none): enum members and raw strings alike."""
    return "" if severity is None else str(severity)


def _rank(severity):
    """0 (INFO) … 3 (CRITICAL); a missing or unknown severity ranks as WARNING."""
    from .models import severity_rank

    return severity_rank(severity) if isinstance(severity, str) else 1


def _count(result):
    """Issues a result reports, or ``None`` when the check failed on the server."""
    if result.error is not None:
        return None
    if result.count is not None and result.count >= 0:
        return result.count
    return len(result.issues or ())


def _label(result):
    return result.display_name or result.name


def _sort_key(result):
    """Worst severity first, failed checks first within it, then most issues, then name."""
    count = _count(result)
    return (-_rank(result.severity), 0 if count is None else 1, -(count or 0),
            _label(result).lower(), result.name)


def _ordered(report):
    return sorted(report, key=_sort_key)


def _with_findings(report):
    """The checks worth showing: those with issues or that failed, worst first."""
    return [r for r in _ordered(report) if _count(r) != 0]


def _severity_order(severities):
    """CRITICAL, SEVERE, WARNING, INFO, then any severity a newer server invented."""
    extra = sorted(s for s in severities if s not in _SEVERITIES)
    return list(_SEVERITIES) + extra


def _totals(report):
    """(issues by severity, checks with issues by severity, failed checks, total issues)."""
    issues, checks = {}, {}
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


def _pct(percentage):
    if percentage is None:
        return ""
    if percentage == 0:
        return "0%"
    if 0 < percentage < 0.1:
        return "<0.1%"
    return "{:.1f}%".format(percentage)


def _num(value):
    return "" if value is None else "{:,}".format(value)


def _plural(count, word, words=None):
    return "{:,} {}".format(count, word if count == 1 else (words or word + "s"))


def _iso(value):
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def _time_range(report):
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


def _issue_row_dict(row):
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


def _issue_row_csv(row):
    issue = row.issue
    return [row.check_name, _sev(row.severity), issue.id or "", issue.name or "",
            issue.comment or "", ";".join(issue.refs or ())]


ISSUE_CSV_HEADER = ["check", "severity", "id", "name", "comment", "refs"]
SUMMARY_CSV_HEADER = ["check", "display_name", "section", "severity", "count",
                      "percentage", "error"]


def _summary_dict(result):
    return {
        "check": result.name,
        "displayName": result.display_name,
        "section": result.section,
        "severity": _sev(result.severity) or None,
        "count": result.count,
        "percentage": result.percentage,
        "error": result.error,
    }


def _summary_csv(result):
    return [result.name, result.display_name or "", result.section or "",
            _sev(result.severity), "" if result.count is None else str(result.count),
            "" if result.percentage is None else repr(float(result.percentage)),
            result.error or ""]


def _csv_writer(out):
    import csv

    # "\n" rather than csv's "\r\n": on Windows a text-mode file turns it into
    # "\r\n" itself, and csv.reader accepts either.
    return csv.writer(out, lineterminator="\n")


def _json_encoder():
    import json

    return json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "),
                            allow_nan=False).encode


# ---------------------------------------------------------------------------
# Plain-text tables


class _Replacing:
    """Wraps a text stream whose encoding lacks some characters (an ASCII or
    Latin-1 terminal): '…' and '—' become '...' and '-', anything else it cannot
    encode becomes '?', so a server name in Amharic never crashes the table."""

    def __init__(self, out, encoding):
        self.out = out
        self.encoding = encoding

    def write(self, text):
        text = text.replace("…", "...").replace("—", "-")
        return self.out.write(text.encode(self.encoding, "replace").decode(self.encoding))

    def flush(self):
        self.out.flush()


def _for_terminal(out):
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


def _clean(text):
    """Server text made safe for a terminal: one line, no control characters."""
    if text is None:
        return ""
    text = str(text)
    if _CONTROL.search(text):
        text = _CONTROL.sub(lambda m: " " if m.group() in "\t\n\r" else "?", text)
    return text


def _cut(text, width, ell):
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width <= len(ell):
        return text[:width]
    return text[:width - len(ell)] + ell


def _fit_width(width, out=None, default=None):
    """``width``, or the terminal's width when ``out`` is one, or ``default`` (100)."""
    if width is None:
        isatty = getattr(out, "isatty", None)
        try:
            tty = bool(isatty and isatty())
        except (OSError, ValueError):
            tty = False
        if tty:
            import shutil

            width = shutil.get_terminal_size((default or DEFAULT_WIDTH, 24)).columns - 1
        else:
            width = default or DEFAULT_WIDTH
    return max(40, int(width))


class _Table:
    """A fixed-width table.  Columns are sized to their content (at most ``caps[i]``);
    while a line would exceed ``width`` the columns in ``shrink`` -- ``(index,
    minimum)`` pairs, tried in order -- give up room.  Long cells end in '…'."""

    def __init__(self, headers, align, width, ell, shrink=None, caps=None):
        self.headers = headers
        self.align = align  # "<" or ">" per column
        self.width = width
        self.ell = ell
        self.shrink = shrink if shrink is not None else [(len(headers) - 1, 8)]
        self.caps = caps or {}
        self.rows = []

    def add(self, cells):
        self.rows.append([_clean(c) for c in cells])

    def widths(self):
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

    def line(self, cells, widths):
        parts = []
        for cell, width, align in zip(cells, widths, self.align):
            parts.append(("{:" + align + str(width) + "}").format(_cut(cell, width, self.ell)))
        return "  ".join(parts).rstrip()

    def lines(self):
        widths = self.widths()
        yield self.line(self.headers, widths)
        for row in self.rows:
            yield self.line(row, widths)


def _totals_text(report):
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


def _write_report_table(report, out, title, width, limit):
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


def _issue_text(issue, ell, width):
    text = _clean(issue.name) or "(no name)"
    if issue.comment:
        text += " — " + _clean(issue.comment)
    if issue.refs:
        text += " [refs: " + ", ".join(_clean(r) for r in issue.refs) + "]"
    return _cut(text, width, ell)


def _write_issue_block(result, out, width, ell, limit):
    count = _count(result)
    head = "{}  {}: {}".format(_sev(result.severity) or "-",
                               "check failed" if count is None else _plural(count, "issue"),
                               _clean(_label(result)))
    if result.display_name and result.display_name != result.name:
        head += " ({})".format(_clean(result.name))
    out.write("\n" + _cut(head, width, ell) + "\n")
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


def _write_row_table(rows, out, width):
    """A streaming table of issue rows: fixed column widths, since rows are not kept."""
    width = _fit_width(width, out)
    out, ell = _for_terminal(out)
    check_w, sev_w, id_w = 32, 8, 11
    name_w = max(10, width - check_w - sev_w - id_w - 6)
    layout = "{:<%d}  {:<%d}  {:<%d}  {}" % (check_w, sev_w, id_w)
    out.write(layout.format("CHECK", "SEVERITY", "ID", "ISSUE").rstrip() + "\n")
    written = 0
    for row in rows:
        out.write(layout.format(_cut(_clean(row.check_name), check_w, ell),
                                _cut(_sev(row.severity), sev_w, ell),
                                _cut(_clean(row.issue.id), id_w, ell) or "-",
                                _issue_text(row.issue, ell, name_w)).rstrip() + "\n")
        written += 1
        if written % FLUSH_EVERY == 0:
            out.flush()
    return written


# ---------------------------------------------------------------------------
# Reports


def write_report(report, fmt, out, title=None, server=None, generated=None, limit=None,
                 width=None):
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
      5000) caps the issues listed per check.

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
        if report.details:
            write_issue_rows(report.issue_rows(), "jsonl", out)
        else:
            encode = _json_encoder()
            for result in report:
                out.write(encode(_summary_dict(result)) + "\n")
    elif fmt == "csv":
        if report.details:
            write_issue_rows(report.issue_rows(), "csv", out)
        else:
            writer = _csv_writer(out)
            writer.writerow(SUMMARY_CSV_HEADER)
            for result in report:
                writer.writerow(_summary_csv(result))
    else:
        _write_report_html(report, out, title=title, server=server, generated=generated,
                           limit=HTML_ISSUE_LIMIT if limit is None else max(0, int(limit)))
    out.flush()


def write_issue_rows(rows, fmt, out, width=None):
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
    batch = []
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


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_checks(checks, fmt, out, width=None):
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
                       shrink=[(5, 16), (3, 10), (0, 20), (5, 8)])
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


def _write_json_records(records, fmt, out):
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


def write_records(records, fmt, out, width=None):
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
                       shrink=[(i, 8) for i in reversed(range(len(used)))])
        for record in records:
            table.add([_csv_value(getattr(record, f)) for f in used])
        if used:
            for line in table.lines():
                out.write(line + "\n")
        out.write("{}\n".format(_plural(len(records), "record")))
    out.flush()


# ---------------------------------------------------------------------------
# Comparisons


def _change_items(comparison):
    """(check name, change) pairs from ``count_changes`` (a dict, or a list of changes)."""
    changes = getattr(comparison, "count_changes", None) or {}
    if isinstance(changes, dict):
        return list(changes.items())
    return [(getattr(c, "check_name", None) or getattr(c, "check", None)
             or getattr(c, "name", None), c) for c in changes]


def _change_dict(name, change):
    """A :class:`CountChange` as a JSON-ready dict.  ``old``/``new`` are ``None``
    when the check is missing from that report and -1 when it failed there;
    ``delta`` is ``new - old`` when both are real counts."""
    old = getattr(change, "old", None)
    new = getattr(change, "new", None)
    valid = isinstance(old, int) and isinstance(new, int) and old >= 0 and new >= 0
    return {
        "check": getattr(change, "check_name", None) or name,
        "displayName": getattr(change, "display_name", None),
        "severity": _sev(getattr(change, "severity", None)) or None,
        "old": old,
        "new": new,
        "delta": new - old if valid else None,
    }


def _changed_dict(change):
    """An :class:`IssueChange` (same issue, other name/comment/refs): the new row's
    fields plus ``previous`` with the old name, comment and refs."""
    data = _issue_row_dict(change.new)
    old = change.old.issue
    data["previous"] = {"name": old.name, "comment": old.comment, "refs": list(old.refs or ())}
    return data


def write_comparison(comparison, fmt, out, width=None):
    """Write a :class:`~dhis2maint.models.ReportComparison` (``compare_reports(old, new)``).

    ``table``: checks whose count changed (worst severity first, biggest change
    first), then new, resolved and changed issues; ``json``:
    :meth:`ReportComparison.to_dict` (nested: ``{"issuesCompared", "newIssues",
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
    new_rows = list(getattr(comparison, "new_issues", None) or ())
    resolved_rows = list(getattr(comparison, "resolved_issues", None) or ())
    changed = list(getattr(comparison, "changed_issues", None) or ())
    compared = bool(getattr(comparison, "issues_compared", new_rows or resolved_rows))
    if fmt == "json":
        import json

        # The library's own shape (ReportComparison.to_dict) when there is one, so
        # `dhis2maint integrity diff --format json` and scripts agree.
        to_dict = getattr(comparison, "to_dict", None)
        out.write(json.dumps(to_dict() if callable(to_dict) else {
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
        for change in changed:
            out.write(encode(dict({"change": "changed"}, **_changed_dict(change))) + "\n")
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


def _count_cell(count):
    if count is None:
        return "-"
    return "ERROR" if count < 0 else _num(count)


def _write_comparison_table(changes, new_rows, resolved_rows, changed, compared, out, width):
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


def write_notification_line(notification, elapsed, out):
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


def _new_file_mode():
    """The permission bits a newly created file gets under the current umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_output(path, mode="w", encoding="utf-8", newline=None):
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
        handle = os.fdopen(fd, mode, **({} if binary else
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


def _sync_folder(folder):
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
})();
"""


def _css_token(text):
    """A severity made safe for a class name: 'SEVERE' stays, anything odd is stripped."""
    return re.sub(r"[^A-Za-z0-9_-]", "", text or "") or "none"


def _script_hash(script):
    import base64
    import hashlib

    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()


def _svg_chart(issues, checks, esc):
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


def _badge(severity, esc):
    sev = _sev(severity) or "-"
    return '<span class="badge sev-{}">{}</span>'.format(_css_token(sev), esc(sev))


def _write_report_html(report, out, title=None, server=None, generated=None,
                       limit=HTML_ISSUE_LIMIT):
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

    def esc(value):
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
    if server:
        meta.append('Server <span id="server">{}</span>'.format(esc(server)))
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
        w("</tr>\n")
    w("</tbody>\n</table>\n</section>\n")

    # One section per check with findings
    w('<section id="checks">\n<h2>{}</h2>\n'.format(
        "Issues by check" if report.details else "Checks with issues"))
    if not shown:
        w('<p id="no-issues">No issues found.</p>\n')
    for index, result in enumerate(shown):
        _write_check_section(result, anchors[result.name], out, esc, limit,
                             open_=index == 0, details=report.details)
    w("</section>\n")
    w('<footer>Written by dhis2maint. Click a column heading to sort.</footer>\n')
    w("<script>{}</script>\n</body>\n</html>\n".format(_SCRIPT))


def _write_check_section(result, anchor, out, esc, limit, open_, details):
    count = _count(result)
    issues = result.issues or []
    listed = min(len(issues), limit)
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
    if count is None:
        w('<p class="error-text">{}</p>\n'.format(esc(result.error)))
    elif not details:
        w('<p class="meta">Summary report: run a details report to list the issues.</p>\n')
    elif issues:
        w('<table class="sortable issues">\n<thead><tr><th class="num" data-key="n">#</th>'
          '<th data-key="id">ID</th><th data-key="name">Name</th>'
          '<th data-key="comment">Comment</th><th data-key="refs">Refs</th></tr></thead>\n'
          '<tbody>\n')
        chunk = []
        for number, issue in enumerate(issues[:limit], 1):
            refs = ""
            if issue.refs:
                refs = '<ul class="refs">{}</ul>'.format(
                    "".join("<li>{}</li>".format(esc(r)) for r in issue.refs))
            chunk.append('<tr><td class="num">{}</td><td><code>{}</code></td><td>{}</td>'
                         '<td>{}</td><td>{}</td></tr>\n'.format(
                             number, esc(issue.id), esc(issue.name), esc(issue.comment), refs))
            if len(chunk) >= FLUSH_EVERY:
                w("".join(chunk))
                del chunk[:]
        w("".join(chunk))
        w("</tbody>\n</table>\n")
        if len(issues) > listed:
            w('<p class="more">… and {:,} more (save the report as json or csv for the full '
              'list).</p>\n'.format(len(issues) - listed))
    w("</div>\n</details>\n")
