"""The HTML pages: self-contained HTML5 (no external asset), every server string
escaped, one inline script allowed by hash in a strict Content-Security-Policy.

The base any page builds on: :func:`esc`, :func:`csp`, :func:`page_start` /
:func:`page_end` (the shell around a page's body) and :func:`sparkline`.  The pages:
:func:`_write_report_html` (a data-integrity report, what
``dhis2maint.report.write_report(..., "html")`` writes), :func:`object_url` (an
object's page in DHIS2's maintenance app) and :func:`write_fleet_html` (the fleet
dashboard: one row per server of a fleet run, #23).

Imported only when a page is written (``dhis2maint.report`` imports it lazily).
"""
import datetime
import html
import re
from typing import (TYPE_CHECKING, Any, Callable, Dict, List, NamedTuple, Optional, Sequence,
                    Tuple, Union)

from ._report_common import (FLUSH_EVERY, _SEVERITIES, _count, _iso, _label, _num, _ordered, _pct,
                             _plural, _rank, _sev, _severity_order, _time_range, _totals)

if TYPE_CHECKING:
    from .fleet import FleetRow
    from .history import History
    from .models import DataIntegrityReport, DataIntegrityResult

__all__ = ["esc", "csp", "page_start", "page_end", "sparkline", "object_url", "MAINTENANCE_TYPES",
           "HTML_ISSUE_LIMIT", "HTML_TOTAL_LIMIT", "write_fleet_html"]

#: Issues listed per check in the HTML report (the rest are counted, not listed).
HTML_ISSUE_LIMIT = 5000
#: Issues listed in the whole HTML report, so a million-issue run stays a usable page.
HTML_TOTAL_LIMIT = 20000


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


def esc(value: object) -> str:
    """Server text (or anything) escaped for HTML text and quoted attributes; None is ''."""
    return html.escape("" if value is None else str(value), quote=True)


def csp(script: str) -> str:
    """The Content-Security-Policy of a page: nothing external, inline styles, data:
    images, and exactly `script` (by its hash)."""
    # A constant (no server data; a base64 hash has no '"'), so written unescaped.
    return ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            "script-src '{}'; base-uri 'none'; form-action 'none'".format(_script_hash(script)))


def page_start(out: Any, title: str, css: str, script: str) -> None:
    """The page shell up to ``<body>``: doctype, charset, the CSP allowing `script`,
    viewport, generator, the escaped `title` and `css` (a constant, written as is)."""
    out.write('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
              '<meta http-equiv="Content-Security-Policy" content="{}">\n'
              '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
              '<meta name="generator" content="dhis2maint">\n'
              '<title>{}</title>\n<style>{}</style>\n</head>\n<body>\n'.format(
                  csp(script), esc(title), css))


def page_end(out: Any, script: str) -> None:
    """The page's one script (the one :func:`page_start`'s CSP allows) and the end."""
    out.write("<script>{}</script>\n</body>\n</html>\n".format(script))


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


def sparkline(series: Sequence[Optional[int]], esc: Callable[[object], str] = esc) -> str:
    """A small inline SVG line of counts over recorded runs (``None``: no value that
    run), then the last value; a dash for fewer than two values."""
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
    title = title or ("Data integrity details" if report.details else "Data integrity summary")
    issues, checks, failed, total = _totals(report)
    ordered = _ordered(report)
    shown = [r for r in ordered if _count(r) != 0]
    w = out.write
    page_start(out, title, _CSS, _SCRIPT)

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
                sparkline(history.checks.get(result.name, ()), esc)))
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
    page_end(out, _SCRIPT)


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
            sparkline(history.checks[result.name], esc)))
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


# --- the fleet dashboard (#23) ------------------------------------------------------------------
# One page for a fleet run: a row per server (a :class:`dhis2maint.fleet.FleetRow`),
# worst first.  Same base as the report page: every server string escaped, the one
# sort script allowed by hash, nothing external.

_FLEET_CSS = _CSS + """
body { max-width: 1680px; padding: 20px 24px 40px; }
#fleet-table th, #fleet-table td { padding: 5px 6px; }
#fleet-table .badge { white-space: nowrap; }
#fleet-table td.version { white-space: nowrap; }
#fleet-table td.error-text { max-width: 360px; font-size: 12.5px; }
.fleet-summary span { margin-right: 18px; }
#fleet-table td.server .url { display: block; color: var(--muted); font-size: 12px; }
#fleet-table tr.failed td { background: rgba(142, 27, 27, .06); }
.badge.outcome-ok { background: #2b8a3e; }
.badge.outcome-verdict { background: var(--SEVERE); }
.badge.outcome-failed { background: var(--ERROR); }
td.sev-CRITICAL.has, td.sev-SEVERE.has { font-weight: 700; }
td.sev-CRITICAL.has { color: var(--CRITICAL); }
td.sev-SEVERE.has { color: var(--SEVERE); }
td.new.has { font-weight: 700; color: var(--SEVERE); }
.findings { margin: 0; padding: 0; list-style: none; }
"""

#: What the fleet dashboard calls each outcome of :class:`~dhis2maint.fleet.FleetRow`.
_OUTCOME_LABELS = {"ok": "OK", "verdict": "VERDICT", "failed": "NO ANSWER"}


def _fleet_rank(row: "FleetRow") -> Tuple[Any, ...]:
    """Worst first: servers that did not answer, then verdicts, then by issues
    (CRITICAL, SEVERE, new, WARNING, INFO), then by name."""
    outcome = {"failed": 0, "verdict": 1}.get(row.outcome, 2)
    counts = [-(row.issues.get(sev) or 0) for sev in ("CRITICAL", "SEVERE")]
    return (outcome, counts[0], counts[1], -(row.new_issues or 0),
            -(row.issues.get("WARNING") or 0), -(row.issues.get("INFO") or 0),
            -sum(row.findings.values()), row.server)


def _naive_utc(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value


def _safe_href(target: Optional[str]) -> Optional[str]:
    """A report link as an attribute value, or None for anything but a relative path
    or an http(s) URL (no ``javascript:``, ``data:``, …)."""
    if not target:
        return None
    scheme = re.match(r"^\s*([A-Za-z][A-Za-z0-9+.-]*):", target)
    if scheme and scheme.group(1).lower() not in ("http", "https"):
        return None
    from urllib.parse import quote

    return esc(quote(target, safe="/:#?&=%~.,;+@!$'()*-_"))


def _fleet_findings(findings: Dict[str, int]) -> str:
    if not findings:
        return '<span class="meta">none</span>'
    return '<ul class="findings">{}</ul>'.format("".join(
        '<li data-kind="{k}">{n} {k}</li>'.format(k=esc(kind.replace("_", " ")), n=count)
        for kind, count in sorted(findings.items(), key=lambda kv: (-kv[1], kv[0]))))


def write_fleet_html(out: Any, rows: Sequence["FleetRow"], title: Optional[str] = None,
                     generated: Optional[datetime.datetime] = None) -> None:
    """The fleet dashboard: one self-contained HTML5 page with a row per server of
    a fleet run, worst first (servers that did not answer, then verdicts, then by
    issues), sortable by any column.

    Each row: server (name, URL), DHIS2 version, outcome (``NO ANSWER`` with the
    error for a server that did not answer: such servers are shown, never left
    out), issues by severity, new since the last recorded run, a sparkline of the
    recorded runs (``row.trend``), the age of the last success (against
    `generated`, default now), scheduler findings by kind, duration and a link to
    the server's own report (``row.report``: relative paths and http(s) URLs only).
    Every server string is escaped; the page's one script (the sort script) is
    allowed by its hash in the Content-Security-Policy.

    Test hooks: ``#fleet-servers``, ``#fleet-answered``, ``#fleet-failed``,
    ``#fleet-verdicts`` (``data-count``) and rows ``#fleet-table
    tr[data-server][data-outcome]``.
    """
    from .doctor import ago

    now = _naive_utc(generated) if generated is not None else \
        datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    ordered = sorted(rows, key=_fleet_rank)
    title = title or "DHIS2 fleet"
    failed = sum(1 for r in ordered if r.outcome == "failed")
    verdicts = sum(1 for r in ordered if r.outcome == "verdict")
    commands = sorted({r.command for r in ordered if r.command})
    w = out.write
    page_start(out, title, _FLEET_CSS, _SCRIPT)
    meta = []
    if commands:
        meta.append('command <code id="fleet-command">{}</code>'.format(esc(", ".join(commands))))
    meta.append('generated <time id="generated">{}</time> UTC'.format(esc(_iso(now))))
    w('<header>\n<h1 id="report-title">{}</h1>\n<p class="meta">{}</p>\n</header>\n'.format(
        esc(title), " · ".join(meta)))
    w('<section id="overview">\n<p class="totals fleet-summary">'
      '<span><strong id="fleet-servers" data-count="{n}">{n}</strong> {servers}</span>'
      '<span><strong id="fleet-answered" data-count="{a}">{a}</strong> answered</span>'
      '<span><strong id="fleet-failed" data-count="{f}">{f}</strong> did not answer</span>'
      '<span><strong id="fleet-verdicts" data-count="{v}">{v}</strong> with a verdict</span>'
      '</p>\n</section>\n'.format(n=len(ordered), servers="server" if len(ordered) == 1
                                  else "servers", a=len(ordered) - failed, f=failed,
                                  v=verdicts))
    w('<section id="servers">\n<table id="fleet-table" class="sortable">\n<thead><tr>'
      '<th data-key="server">Server</th><th data-key="version">DHIS2</th>'
      '<th data-key="outcome">Outcome</th>')
    for sev in _SEVERITIES:
        w('<th data-key="{k}" class="num" data-first-sort="descending">{s}</th>'.format(
            k=sev.lower(), s=sev.capitalize()))
    w('<th data-key="new" class="num" data-first-sort="descending">New</th>'
      '<th data-key="trend">Trend</th>'
      '<th data-key="last-success" class="num">Last success</th>'
      '<th data-key="scheduler" data-first-sort="descending">Scheduler</th>'
      '<th data-key="seconds" class="num" data-first-sort="descending">Took</th>'
      '<th data-key="report">Report</th><th data-key="error">Error</th>'
      '</tr></thead>\n<tbody>\n')
    for rank, row in enumerate(ordered):
        answered = row.outcome != "failed"
        cells = ['<td class="server" data-sort="{n}"><strong>{n}</strong>'
                 '<span class="url">{u}</span></td>'.format(n=esc(row.server), u=esc(row.url)),
                 '<td class="version">{}</td>'.format(esc(row.dhis2_version or "")),
                 '<td data-sort="{r}"><span class="badge outcome-{o}" title="exit code {c}">'
                 '{label}</span></td>'.format(
                     r=rank, o=_css_token(row.outcome), c=row.exit_code,
                     label=esc(_OUTCOME_LABELS.get(row.outcome, row.outcome)))]
        for sev in _SEVERITIES:
            count = row.issues.get(sev)
            cells.append('<td class="num sev-{s}{has}" data-sort="{k}">{v}</td>'.format(
                s=sev, has=" has" if count else "", k=-1 if count is None else count,
                v="" if count is None or not answered and not count else _num(count)))
        cells.append('<td class="num new{has}" data-sort="{k}">{v}</td>'.format(
            has=" has" if row.new_issues else "",
            k=-1 if row.new_issues is None else row.new_issues,
            v="" if row.new_issues is None else _num(row.new_issues)))
        cells.append('<td class="trend">{}</td>'.format(sparkline(row.trend, esc)))
        if row.last_success is not None:
            age = max(0.0, (now - _naive_utc(row.last_success)).total_seconds())
            cells.append('<td class="num last-success" data-sort="{s:.0f}" title="{t} UTC">'
                         '{a} ago</td>'.format(s=age, t=esc(_iso(_naive_utc(row.last_success))),
                                               a=esc(ago(age))))
        else:
            cells.append('<td class="num last-success" data-sort="-1">'
                         '<span class="meta">never</span></td>')
        cells.append('<td class="scheduler" data-sort="{}">{}</td>'.format(
            sum(row.findings.values()), _fleet_findings(row.findings)))
        cells.append('<td class="num" data-sort="{0:.3f}">{0:.1f} s</td>'.format(row.seconds))
        href = _safe_href(row.report)
        if href:
            cells.append('<td class="report"><a class="server-report" href="{}">{}</a></td>'
                         .format(href, esc(row.report.rsplit("/", 1)[-1] if row.report else "")))
        elif row.report:
            cells.append('<td class="report">{}</td>'.format(esc(row.report)))
        else:
            cells.append('<td class="report"></td>')
        cells.append('<td class="error-text">{}</td>'.format(esc(row.error or "")))
        w('<tr class="{cls}" data-server="{name}" data-outcome="{o}" data-exit-code="{c}">{cells}'
          '</tr>\n'.format(cls="failed" if not answered else _css_token(row.outcome),
                           name=esc(row.server), o=esc(row.outcome), c=row.exit_code,
                           cells="".join(cells)))
    w("</tbody>\n</table>\n</section>\n")
    w('<footer>Written by dhis2maint. Servers that did not answer come first, then those '
      'with a verdict; click a column heading to sort.</footer>\n')
    page_end(out, _SCRIPT)
