"""The HTML report in a real headless Chromium: counts, escaping, the sort script, a screenshot.

Needs Debian's ``chromium`` (``apt-get install chromium``), ``chromium-browser``, or
the path in ``$CHROMIUM``; skipped otherwise.  Set ``DHIS2MAINT_SCREENSHOT=/path.png``
to keep a copy of the screenshot.
"""
import base64
import hashlib
import html
import html.parser
import json
import os
import re
import shutil

import pytest

from dhis2maint import report as rep
from dhis2maint.convert import report_from_dict

from conftest import png_size_and_ink, run_chromium

pytestmark = pytest.mark.browser

TITLE = "Nightly data integrity"
XSS_NAME = "<script>document.title='pwned'</script>"
XSS_COMMENT = "<img src=x onerror=\"document.title='pwned by img'\">"
XSS_DISPLAY = "Rules </title><script>document.title='pwned by title'</script>"
FAILED = "Check failed because an exception was thrown: relation \"analytics\" does not exist"


def _check(name, display, severity, code, **extra):
    data = {"name": name, "displayName": display, "section": "Section of " + name,
            "sectionOrder": 1, "severity": severity, "description": display,
            "issuesIdType": "organisationUnits", "isSlow": False, "isProgrammatic": False,
            "code": code, "startTime": "2025-01-31T10:15:02.120",
            "finishedTime": "2025-01-31T10:15:09.456"}
    data.update(extra)
    return data


def _issues(prefix, count, **extra):
    return [dict({"id": "{}{:08d}".format(prefix, i), "name": "{} {}".format(prefix, i)}, **extra)
            for i in range(1, count + 1)]


DETAILS_JSON = {
    "orgunits_invalid_geometry": _check(
        "orgunits_invalid_geometry", "Organisation units with invalid geometry", "CRITICAL",
        "OIG", issues=_issues("Geo", 3, comment="Self-intersection")),
    "program_rule_actions_without_data_object": _check(
        "program_rule_actions_without_data_object", XSS_DISPLAY, "SEVERE", "PRAWDO",
        issues=[{"id": "Xq7Rv1cZk2P", "name": XSS_NAME, "comment": XSS_COMMENT,
                 "refs": ["<b>Rule</b>:uidA1234567"]}] + _issues("Act", 11)),
    "categories_no_options": _check("categories_no_options",
                                    "Categories with no category options", "WARNING", "CNO",
                                    issues=_issues("Cat", 40)),
    "data_elements_in_data_set_not_in_form": _check(
        "data_elements_in_data_set_not_in_form", "Data elements in data set not in form",
        "WARNING", "DEIDSNIF", error=FAILED, issues=[]),
    "users_with_all_authority": _check("users_with_all_authority", "Users with ALL authority",
                                       "INFO", "UWAA", issues=_issues("User", 7)),
    "periods_same_start_end_date": _check("periods_same_start_end_date",
                                          "Periods with the same start and end dates", "SEVERE",
                                          "PSSED", issues=[]),
    "aggregate_data_elements_no_groups": _check("aggregate_data_elements_no_groups",
                                                "Aggregate data elements not in any group",
                                                "WARNING", "ADENG", issues=[]),
}

# Runs after the report's own script (it is appended at the end of <body>), clicks
# headers like a user would, and leaves what it saw in <pre id="test-result">.
SORT_PROBE = """
(function () {
  "use strict";
  var out = {};
  function rows(selector, attr) {
    return Array.prototype.map.call(document.querySelectorAll(selector), function (row) {
      return attr ? row.getAttribute(attr) : row.cells[1].textContent;
    });
  }
  var summary = document.getElementById("summary-table");
  function head(key) { return summary.querySelector('th[data-key="' + key + '"]'); }
  out.ready = document.documentElement.getAttribute("data-sort-ready");
  out.initial = rows("#summary-table tbody tr", "data-count");
  head("count").click();
  out.countFirst = rows("#summary-table tbody tr", "data-count");
  out.countFirstAria = head("count").getAttribute("aria-sort");
  head("count").click();
  out.countSecond = rows("#summary-table tbody tr", "data-count");
  out.countSecondAria = head("count").getAttribute("aria-sort");
  head("check").click();
  out.byCheck = rows("#summary-table tbody tr", null);
  out.countAriaAfter = head("count").getAttribute("aria-sort");
  head("severity").dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", bubbles: true}));
  out.bySeverity = rows("#summary-table tbody tr", "data-severity");
  var issues = document.querySelector(
    'details[data-check="program_rule_actions_without_data_object"] table');
  var number = issues.tHead.rows[0].cells[0];
  number.click();
  number.click();
  out.issueNumbers = Array.prototype.map.call(issues.tBodies[0].rows, function (row) {
    return row.cells[0].textContent;
  });
  var pre = document.createElement("pre");
  pre.id = "test-result";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
"""


# --- running Chromium --------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("browser")


def _dump(chromium, workdir, page):
    return run_chromium(chromium, workdir, page, "--dump-dom")


@pytest.fixture(scope="module")
def report():
    return report_from_dict(DETAILS_JSON)


@pytest.fixture(scope="module")
def page(report, workdir):
    path = workdir / "report.html"
    with rep.atomic_output(str(path)) as out:
        rep.write_report(report, "html", out, title=TITLE, server="https://dhis2.example.org",
                         generated="2025-01-31 10:20")
    return path


def _variant(page, name, transform):
    text = page.read_text(encoding="utf-8")
    changed = transform(text)
    assert changed != text
    path = page.with_name(name)
    path.write_text(changed, encoding="utf-8")
    return path


def _without_csp(text):
    return re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>\n', "", text)


# --- a small DOM from the dumped HTML ------------------------------------------------------


class _Element:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.children = []
        self.parts = []

    @property
    def text(self):
        return "".join(p if isinstance(p, str) else p.text for p in self.parts)

    def iter(self):
        yield self
        for child in self.children:
            for element in child.iter():
                yield element

    def find_all(self, tag=None, **attrs):
        return [e for e in self.iter() if (tag is None or e.tag == tag)
                and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def by_id(self, ident):
        found = [e for e in self.iter() if e.attrs.get("id") == ident]
        assert len(found) == 1, "expected one #{}, found {}".format(ident, len(found))
        return found[0]


_VOID = {"meta", "link", "br", "img", "input", "hr", "col", "source", "wbr", "area", "base"}


class _TreeBuilder(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = _Element("#document", {}, None)

    def handle_starttag(self, tag, attrs):
        element = _Element(tag, attrs, self.current)
        self.current.children.append(element)
        self.current.parts.append(element)
        if tag not in _VOID:
            self.current = element

    def handle_startendtag(self, tag, attrs):
        element = _Element(tag, attrs, self.current)
        self.current.children.append(element)
        self.current.parts.append(element)

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.parts.append(data)


def parse(text):
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


# --- tests -----------------------------------------------------------------------------------


def test_counts_shown_match_the_report(chromium, workdir, page, report):
    dom = parse(_dump(chromium, workdir, page))
    assert dom.find_all("title")[0].text == TITLE
    assert dom.find_all("html")[0].attrs.get("data-sort-ready") == "5", \
        "the sort script did not run: blocked by the Content-Security-Policy?"
    total = sum(len(r.issues) for r in report)
    assert dom.by_id("total-issues").text == str(total) == "62"
    assert dom.by_id("checks-total").text == "7"
    assert dom.by_id("checks-with-issues").text == "4"
    assert dom.by_id("checks-failed").text == "1"
    assert dom.by_id("server").text == "https://dhis2.example.org"
    bars = {g.attrs["data-severity"]: g for g in dom.find_all("g")}
    expected = {"CRITICAL": (3, 1), "SEVERE": (12, 1), "WARNING": (40, 1), "INFO": (7, 1)}
    assert sorted(bars) == sorted(expected)
    for severity, (issues, checks) in expected.items():
        bar = bars[severity]
        assert int(bar.attrs["data-count"]) == issues
        assert bar.find_all("text")[1].text == "{} issues in {} check".format(issues, checks)
        width = float(bar.find_all("rect")[0].attrs["width"])
        assert width > 0
    assert float(bars["WARNING"].find_all("rect")[0].attrs["width"]) > \
        float(bars["SEVERE"].find_all("rect")[0].attrs["width"])
    rows = dom.by_id("summary-table").find_all("tr", **{})[1:]
    assert [r.attrs["data-check"] for r in rows] == [
        "orgunits_invalid_geometry", "program_rule_actions_without_data_object",
        "periods_same_start_end_date", "data_elements_in_data_set_not_in_form",
        "categories_no_options", "aggregate_data_elements_no_groups",
        "users_with_all_authority"]
    for row in rows:
        result = report[row.attrs["data-check"]]
        shown = row.find_all("td")[4].text
        assert shown == ("ERROR" if result.failed else str(len(result.issues)))
    sections = dom.find_all("details")
    assert len(sections) == 5
    for section in sections:
        result = report[section.attrs["data-check"]]
        table_rows = [tr for table in section.find_all("table") for tr in table.find_all("tr")]
        if result.failed:
            assert section.find_all("p", **{"class": "error-text"})[0].text == FAILED
            assert table_rows == []
        else:
            assert len(table_rows) - 1 == len(result.issues) == int(section.attrs["data-count"])
    assert "open" in sections[0].attrs


def test_injected_markup_is_shown_as_text_and_never_runs(chromium, workdir, page):
    # Without the Content-Security-Policy, so that escaping alone is what is tested.
    bare = _variant(page, "no-csp.html", _without_csp)
    for path in (page, bare):
        dumped = _dump(chromium, workdir, path)
        dom = parse(dumped)
        assert dom.find_all("title")[0].text == TITLE
        assert "pwned" not in dom.find_all("title")[0].text
        assert len(dom.find_all("script")) == 1
        assert dom.find_all("img") == [] and dom.find_all("b") == []
        section = dom.find_all("details", data_check="program_rule_actions_without_data_object")[0]
        first = section.find_all("tbody")[0].find_all("tr")[0].find_all("td")
        assert first[2].text == XSS_NAME
        assert first[3].text == XSS_COMMENT
        assert first[4].text == "<b>Rule</b>:uidA1234567"
        assert XSS_DISPLAY in section.find_all("summary")[0].text


def test_the_probe_would_catch_a_script_that_runs(chromium, workdir, page):
    """Positive control: the same payload, unescaped and without CSP, does change the title."""
    def inject(text):
        text = _without_csp(text)
        return text.replace("</body>", XSS_NAME + "</body>")
    dom = parse(_dump(chromium, workdir, _variant(page, "control.html", inject)))
    assert dom.find_all("title")[0].text == "pwned"


def test_sort_script_sorts_on_header_click(chromium, workdir, page):
    digest = base64.b64encode(hashlib.sha256(SORT_PROBE.encode("utf-8")).digest()).decode()

    def with_probe(text):
        # Keep the Content-Security-Policy, allowing the probe by its hash too.
        text = re.sub(r"(script-src '[^']+')", r"\1 'sha256-{}'".format(digest), text)
        return text.replace("</body>", "<script>{}</script>\n</body>".format(SORT_PROBE))

    dom = parse(_dump(chromium, workdir, _variant(page, "probe.html", with_probe)))
    result = json.loads(dom.by_id("test-result").text)
    assert result["ready"] == "5"
    assert result["initial"] == ["3", "12", "0", "-1", "40", "0", "7"]
    assert result["countFirst"] == ["40", "12", "7", "3", "0", "0", "-1"]
    assert result["countFirstAria"] == "descending"
    assert result["countSecond"] == ["-1", "0", "0", "3", "7", "12", "40"]
    assert result["countSecondAria"] == "ascending"
    assert result["countAriaAfter"] is None
    assert result["byCheck"] == sorted(result["byCheck"], key=str.lower)
    assert result["byCheck"][0] == "Aggregate data elements not in any group"
    ranks = {"CRITICAL": 3, "SEVERE": 2, "WARNING": 1, "INFO": 0}
    severities = [ranks[s] for s in result["bySeverity"]]
    assert severities == sorted(severities, reverse=True)
    # numeric, not string, order: 12, 11, 10, 9 … 1
    assert result["issueNumbers"] == [str(n) for n in range(12, 0, -1)]


def test_screenshot(chromium, workdir, page):
    shot = workdir / "report.png"
    run_chromium(chromium, workdir, page, "--screenshot={}".format(shot), "--window-size=1200,1600")
    width, height, ink = png_size_and_ink(shot)
    assert (width, height) == (1200, 1600)
    assert ink > 0.01, "the screenshot looks blank"
    keep = os.environ.get("DHIS2MAINT_SCREENSHOT")
    if keep:
        shutil.copyfile(str(shot), keep)


# --- the page an admin acts on: fix-it text, history, links, filter (#16.4, #12.8) -----------

XSS_FIX = "Delete <b onmouseover=\"document.title='pwned by fix'\">it</b> & re-run"
BASE = "https://dhis2.example.org"

FILTER_PROBE = """
(function () {
  "use strict";
  var out = {}, box = document.getElementById("filter");
  function visible(selector) {
    return Array.prototype.filter.call(document.querySelectorAll(selector), function (el) {
      return el.offsetParent !== null || el.tagName === "DETAILS" &&
        getComputedStyle(el).display !== "none";
    }).length;
  }
  out.before = visible("table.issues tbody tr");
  box.value = "Geo00000002";
  box.dispatchEvent(new Event("input"));
  out.rows = visible("table.issues tbody tr");
  out.sections = Array.prototype.filter.call(document.querySelectorAll("details.check"),
    function (d) { return getComputedStyle(d).display !== "none"; }).map(function (d) {
      return d.getAttribute("data-check"); });
  out.summaryRows = Array.prototype.filter.call(
    document.querySelectorAll("#summary-table tbody tr"),
    function (r) { return getComputedStyle(r).display !== "none"; }).length;
  out.note = document.getElementById("filter-count").textContent;
  box.value = "";
  box.dispatchEvent(new Event("input"));
  out.after = visible("table.issues tbody tr");
  var pre = document.createElement("pre");
  pre.id = "test-result";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
"""


@pytest.fixture(scope="module")
def history_page(workdir):
    import copy
    import datetime

    from dhis2maint.history import History

    data = copy.deepcopy(DETAILS_JSON)
    geo = data["orgunits_invalid_geometry"]
    geo["introduction"] = "Polygons that cross themselves break maps and <i>analytics</i>."
    geo["recommendation"] = XSS_FIX
    data["users_with_all_authority"]["issuesIdType"] = "users"  # no maintenance page
    data["users_with_all_authority"]["issues"] = _issues("Usr", 7)  # real-looking UIDs
    history = History(str(workdir / "history.sqlite"))
    start = datetime.datetime(2025, 1, 1, 2, 0, tzinfo=datetime.timezone.utc)
    for night in range(4):
        nightly = copy.deepcopy(data)
        nightly["categories_no_options"]["issues"] = _issues("Cat", 40 - 9 * (3 - night))
        report = report_from_dict(nightly)
        report.base_url, report.dhis2_version, report.job_id = BASE, "2.42.3", "Job0000000" + \
            str(night)
        report.run_at = start + datetime.timedelta(days=night * 10)
        report.server_time = report.run_at.replace(tzinfo=None)
        history.record(report)
    path = workdir / "history.html"
    with rep.atomic_output(str(path)) as out:
        rep.write_report(report, "html", out, title=TITLE, history=history)
    history.close()
    return path


def test_history_page_shows_fix_text_trend_links_and_open_since(chromium, workdir,
                                                                history_page):
    dom = parse(_dump(chromium, workdir, history_page))
    assert dom.find_all("title")[0].text == TITLE  # nothing injected ran
    assert dom.by_id("server").text == BASE and dom.by_id("dhis2-version").text == "2.42.3"
    assert dom.by_id("job-id").text == "Job00000003"
    assert dom.by_id("run-at").text == "2025-01-31 02:00:00"
    chart = dom.by_id("trend-chart")
    assert [int(c.attrs["data-count"]) for c in chart.find_all("circle")] == [35, 44, 53, 62]
    sparks = dom.find_all("svg", **{"class": "spark"})
    assert sparks and sparks[0].attrs["data-values"]
    geo = dom.find_all("details", data_check="orgunits_invalid_geometry")[0]
    assert geo.find_all("p", **{"class": "intro"})[0].text.startswith("Polygons that cross")
    assert geo.find_all("p", **{"class": "fix"})[0].text == "How to fix: " + XSS_FIX
    assert geo.find_all("b") == [] and geo.find_all("i") == []
    links = geo.find_all("a", **{"class": "open-in-dhis2"})
    assert [a.attrs["href"] for a in links] == [
        BASE + "/dhis-web-maintenance/index.html#/edit/organisationUnitSection/"
               "organisationUnit/Geo0000000" + str(n) for n in (1, 2, 3)]
    assert all(a.attrs["rel"] == "noopener noreferrer" for a in links)
    since = [tr.find_all("td")[-1].text for tr in geo.find_all("tbody")[0].find_all("tr")]
    assert since == ["2025-01-01"] * 3
    cats = dom.find_all("details", data_check="categories_no_options")[0]
    opened = [tr.find_all("td")[-1].text for tr in cats.find_all("tbody")[0].find_all("tr")]
    assert opened[:13] == ["2025-01-01"] * 13 and opened[-9:] == ["2025-01-31"] * 9
    users = dom.find_all("details", data_check="users_with_all_authority")[0]
    assert users.find_all("a", **{"class": "open-in-dhis2"}) == []  # users: no link


def test_filter_box_narrows_checks_and_issues(chromium, workdir, history_page):
    digest = base64.b64encode(hashlib.sha256(FILTER_PROBE.encode("utf-8")).digest()).decode()

    def with_probe(text):
        text = re.sub(r"(script-src '[^']+')", r"\1 'sha256-{}'".format(digest), text)
        return text.replace("</body>", "<script>{}</script>\n</body>".format(FILTER_PROBE))

    dom = parse(_dump(chromium, workdir, _variant(history_page, "filter.html", with_probe)))
    result = json.loads(dom.by_id("test-result").text)
    assert result["rows"] == 1 and result["sections"] == ["orgunits_invalid_geometry"]
    assert result["summaryRows"] == 0 and result["note"] == "1 matching issues listed"
    assert result["after"] == result["before"] > 1


def test_history_screenshot(chromium, workdir, history_page):
    shot = workdir / "history.png"
    run_chromium(chromium, workdir, history_page, "--screenshot={}".format(shot),
         "--window-size=1200,1400")
    width, height, ink = png_size_and_ink(shot)
    assert (width, height) == (1200, 1400) and ink > 0.01
    keep = os.environ.get("DHIS2MAINT_HISTORY_SCREENSHOT")
    if keep:
        shutil.copyfile(str(shot), keep)
