"""Output formats (dhis2maint.report): table, json, jsonl, csv, html, streaming, atomic files."""
import csv
import datetime
import gc
import html.parser
import io
import json
import os
import re
import stat
import sys
import tracemalloc

import pytest

from dhis2maint import report as rep
from dhis2maint import report_html
from dhis2maint.convert import comparison_to_dict, from_json, report_from_dict, structure
from dhis2maint.models import (CountChange, DataIntegrityCheck, DataIntegrityIssue,
                               IntegrityIssueRow, IssueChange, Notification, ReportComparison,
                               ValidationViolation)

HERE = os.path.dirname(os.path.abspath(__file__))
CATALOGUE = os.path.join(HERE, os.pardir, "dhis2maint", "checks-2.42.json")


# --- realistic DHIS2 JSON (shapes from integrity-2.39+.md §5) -------------------------


def _check(name, display, section, severity, code, slow=False, programmatic=False, **extra):
    data = {
        "name": name, "displayName": display, "section": section,
        "sectionOrder": 0 if programmatic else 3, "severity": severity,
        "description": display, "introduction": "This check lists " + display.lower() + ".",
        "recommendation": "Review and correct them.", "issuesIdType": "organisationUnits",
        "isSlow": slow, "isProgrammatic": programmatic, "averageExecutionTime": 12,
        "code": code, "startTime": "2025-01-31T10:15:02.120",
        "finishedTime": "2025-01-31T10:15:04.133",
    }
    data.update(extra)
    return data


LONG_NAME = ("Organisation units which are in more than one group of an exclusive group set, "
             "listed with every group set they belong to and more words")
XSS = "<script>document.title='pwned'</script>"
FAILED = "Check failed because an exception was thrown: relation \"analytics\" does not exist"

SUMMARY_JSON = {
    "categories_no_options": _check("categories_no_options",
                                    "Categories with no category options", "Categories",
                                    "WARNING", "CNO", count=1, percentage=50.0),
    "orgunits_invalid_geometry": _check("orgunits_invalid_geometry",
                                        "Organisation units with invalid geometry",
                                        "Organisation units", "CRITICAL", "OIG", count=3,
                                        percentage=0.01),
    "orgunits_multiple_exclusive_groups": _check("orgunits_multiple_exclusive_groups",
                                                 LONG_NAME, "Organisation units", "SEVERE",
                                                 "OMEG", count=1234, percentage=12.5),
    "users_with_all_authority": _check("users_with_all_authority", "Users with ALL authority",
                                       "Users", "INFO", "UWAA", count=7, percentage=0.7),
    "data_elements_in_data_set_not_in_form": _check(
        "data_elements_in_data_set_not_in_form", "Data elements in data set not in form",
        "Data sets", "WARNING", "DEIDSNIF", slow=True, programmatic=True, error=FAILED,
        count=-1),
    "indicators_with_identical_formulas": _check(
        "indicators_with_identical_formulas", "Indicators with identical formulas", "Other",
        "WARNING", "IWIF", slow=True, programmatic=True, count=4),
    "periods_same_start_end_date": _check("periods_same_start_end_date",
                                          "Periods with the same start and end dates",
                                          "Periods", "SEVERE", "PSSED", count=0, percentage=0.0),
}

DETAILS_JSON = {
    "categories_no_options": _check("categories_no_options",
                                    "Categories with no category options", "Categories",
                                    "WARNING", "CNO", issues=[
                                        {"id": "a1B2c3D4e5F", "name": "CatDog"},
                                        {"id": "Uvn6LCg7dVU", "name": "Cat, \"quoted\"\nline",
                                         "comment": "Invalid expression", "refs": []}]),
    "orgunits_invalid_geometry": _check(
        "orgunits_invalid_geometry", "Organisation units with invalid geometry",
        "Organisation units", "CRITICAL", "OIG",
        issues=[{"id": "OU%09d" % i, "name": "Clinic %d" % i,
                 "comment": "Self-intersection at %d" % i} for i in range(30)]),
    "program_rule_actions_without_data_object": _check(
        "program_rule_actions_without_data_object", "Program rule actions without data object",
        "Program rules", "SEVERE", "PRAWDO", slow=True, programmatic=True,
        issues=[{"id": "Xq7Rv1cZk2P", "name": XSS,
                 "comment": "<img src=x onerror=\"document.title='pwned2'\">",
                 "refs": ["Rule <b>1</b>:uidA1234567", "Rule;2:uidB1234567"]}]),
    "indicators_with_identical_formulas": _check(
        "indicators_with_identical_formulas", "Indicators with identical formulas", "Other",
        "WARNING", "IWIF", slow=True, programmatic=True,
        issues=[{"name": "#{a}/#{b}", "refs": ["ANC 1:uid1", "ANC 1 copy:uid2"]}]),
    "data_elements_in_data_set_not_in_form": _check(
        "data_elements_in_data_set_not_in_form", "Data elements in data set not in form",
        "Data sets", "WARNING", "DEIDSNIF", slow=True, programmatic=True, error=FAILED,
        issues=[]),
    "users_with_all_authority": _check("users_with_all_authority", "Users with ALL authority",
                                       "Users", "INFO", "UWAA", issues=[]),
}


@pytest.fixture
def summary():
    return report_from_dict(SUMMARY_JSON)


@pytest.fixture
def details():
    return report_from_dict(DETAILS_JSON)


def render(writer, *args, **kwargs):
    out = io.StringIO()
    writer(*args[:2] + (out,) + args[2:], **kwargs)
    return out.getvalue()


# --- table ---------------------------------------------------------------------------


def test_formats():
    assert rep.FORMATS == ("table", "json", "jsonl", "csv", "html")


@pytest.mark.parametrize("writer", [rep.write_report, rep.write_issue_rows, rep.write_checks,
                                    rep.write_comparison])
def test_unknown_format_is_a_value_error(writer):
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        writer([], "xml", io.StringIO())


def test_summary_table_worst_first_with_errors_and_totals(summary):
    text = render(rep.write_report, summary, "table", title="Nightly check", width=100)
    lines = text.splitlines()
    assert lines[0] == "Nightly check"
    assert lines[2].split() == ["SEVERITY", "COUNT", "%", "CHECK"]
    body = [line for line in lines[3:] if line and not line.startswith(" ")][:6]
    # worst severity first; within WARNING the failed check first, then by count
    assert [line.split()[0] for line in body] == [
        "CRITICAL", "SEVERE", "WARNING", "WARNING", "WARNING", "INFO"]
    assert body[0].split()[1:3] == ["3", "<0.1%"]
    assert body[1].split()[1:3] == ["1,234", "12.5%"]
    assert body[2].split()[1] == "ERROR" and "Data elements in data set not in form" in body[2]
    assert body[3].split()[1] == "4" and body[4].split()[1:3] == ["1", "50.0%"]
    error_line = lines[lines.index(body[2]) + 1]
    assert error_line.strip().startswith("Check failed because an exception was thrown")
    assert error_line.index("Check") == body[2].index("Data elements") + 2  # under CHECK
    assert "Periods with the same start" not in text  # no issues: not listed
    assert all(len(line) <= 100 for line in lines)
    long_line = body[1]
    assert long_line.endswith("…") and LONG_NAME[:40] in long_line
    assert lines[-1] == ("Total: 1,249 issues in 5 of 7 checks — CRITICAL 3, SEVERE 1,234, "
                         "WARNING 5, INFO 7; 1 check failed")


def test_table_width_is_respected(summary):
    text = render(rep.write_report, summary, "table", width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" in text


def test_details_table_lists_issues_with_limit(details):
    text = render(rep.write_report, details, "table")
    lines = text.splitlines()
    block = lines.index(next(line for line in lines if line.startswith("CRITICAL  30 issues")))
    assert lines[block] == ("CRITICAL  30 issues: Organisation units with invalid geometry "
                            "(orgunits_invalid_geometry)")
    assert lines[block + 1].split()[:3] == ["OU000000000", "Clinic", "0"]
    assert "— Self-intersection at 0" in lines[block + 1]
    assert lines[block + 20].split()[0] == "OU000000019"
    assert lines[block + 21] == "  … and 10 more"
    assert "OU000000020" not in text
    # a failed check shows its error; an issue without id and one with refs
    assert "WARNING  check failed: Data elements in data set not in form" in text
    assert "\n  #{a}/#{b} [refs: ANC 1:uid1, ANC 1 copy:uid2]\n" in text  # no id column
    assert "Users with ALL authority" not in text
    assert lines[-1] == ("Total: 34 issues in 4 of 6 checks — CRITICAL 30, SEVERE 1, WARNING 3, "
                         "INFO 0; 1 check failed")
    few = render(rep.write_report, details, "table", limit=2)
    assert "  … and 28 more" in few and "OU000000002" not in few


def test_table_of_empty_and_clean_reports():
    assert render(rep.write_report, report_from_dict({}), "table").splitlines() == [
        "No data-integrity results.", "",
        "Total: 0 issues in 0 of 0 checks — CRITICAL 0, SEVERE 0, WARNING 0, INFO 0"]
    clean = report_from_dict({"a": _check("a", "A", "S", "SEVERE", "A", count=0)})
    assert render(rep.write_report, clean, "table").startswith("No issues found in 1 check.\n")


def test_table_strips_terminal_control_characters():
    evil = report_from_dict({"x": _check("x", "Red \x1b[31mALERT\x1b[0m\nsecond line", "S",
                                         "SEVERE", "X", issues=[{"id": "abcdefghijk",
                                                                 "name": "bell\x07\rreturn"}])})
    text = render(rep.write_report, evil, "table")
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert "Red ?[31mALERT?[0m second line" in text
    assert "bell? return" in text


def test_table_on_an_ascii_stream_uses_three_dots_not_an_ellipsis(summary):
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii", errors="strict")
    summary.results["categories_no_options"].display_name = "Catégories ሰላም"
    rep.write_report(summary, "table", out, width=100)
    out.flush()
    text = raw.getvalue().decode("ascii")
    assert "..." in text and "Total: 1,249 issues in 5 of 7 checks - CRITICAL 3" in text
    assert "Cat?gories ???\n" in text


def test_unknown_and_missing_severities_sort_as_warning():
    report = report_from_dict({
        "a": _check("a", "Newer severity", "S", "CATASTROPHIC", "A", count=2),
        "b": _check("b", "No severity", "S", "INFO", "B", count=1),
        "c": _check("c", "Critical", "S", "CRITICAL", "C", count=1),
    })
    report.results["b"].severity = None
    lines = render(rep.write_report, report, "table").splitlines()
    assert [line.split()[0] for line in lines[1:4]] == ["CRITICAL", "CATASTROPHIC", "-"]
    assert lines[-1].endswith("INFO 0, CATASTROPHIC 2")


# --- json / jsonl / csv ----------------------------------------------------------------


@pytest.mark.parametrize("which", ["summary", "details"])
def test_json_round_trips_through_from_json(which, request):
    report = request.getfixturevalue(which)
    text = render(rep.write_report, report, "json")
    assert text.endswith("}\n")
    assert json.loads(text)["dhis2maint"] == 1
    assert from_json(text) == report
    assert from_json(text).details is (which == "details")


def test_jsonl_details_one_object_per_issue(details):
    lines = render(rep.write_report, details, "jsonl").splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 2 + 30 + 1 + 1
    assert rows[0] == {"check": "categories_no_options",
                       "displayName": "Categories with no category options",
                       "severity": "WARNING", "id": "a1B2c3D4e5F", "name": "CatDog",
                       "comment": None, "refs": []}
    xss = next(r for r in rows if r["check"] == "program_rule_actions_without_data_object")
    assert xss["name"] == XSS and xss["refs"] == ["Rule <b>1</b>:uidA1234567",
                                                  "Rule;2:uidB1234567"]
    grouped = next(r for r in rows if r["check"] == "indicators_with_identical_formulas")
    assert grouped["id"] is None
    assert all(set(r) == {"check", "displayName", "severity", "id", "name", "comment", "refs"}
               for r in rows)


def test_jsonl_summary_one_object_per_check(summary):
    rows = [json.loads(line) for line in render(rep.write_report, summary, "jsonl").splitlines()]
    assert [r["check"] for r in rows] == list(SUMMARY_JSON)
    assert rows[0] == {"check": "categories_no_options",
                       "displayName": "Categories with no category options",
                       "section": "Categories", "severity": "WARNING", "count": 1,
                       "percentage": 50.0, "error": None}
    failed = rows[4]
    assert failed["count"] == -1 and failed["error"] == FAILED and failed["percentage"] is None


def test_csv_details_round_trip(details):
    text = render(rep.write_report, details, "csv")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["check", "severity", "id", "name", "comment", "refs"]
    expected = [[r.check_name, str(r.severity), r.issue.id or "", r.issue.name or "",
                 r.issue.comment or "", ";".join(r.issue.refs)] for r in details.issue_rows()]
    assert rows[1:] == expected
    assert rows[2] == ["categories_no_options", "WARNING", "Uvn6LCg7dVU",
                       "Cat, \"quoted\"\nline", "Invalid expression", ""]
    assert ["program_rule_actions_without_data_object", "SEVERE", "Xq7Rv1cZk2P", XSS,
            "<img src=x onerror=\"document.title='pwned2'\">",
            "Rule <b>1</b>:uidA1234567;Rule;2:uidB1234567"] in rows


def test_csv_summary_round_trip(summary):
    rows = list(csv.DictReader(io.StringIO(render(rep.write_report, summary, "csv"))))
    assert list(rows[0]) == ["check", "display_name", "section", "severity", "count",
                             "percentage", "error"]
    assert len(rows) == len(SUMMARY_JSON)
    by_name = {r["check"]: r for r in rows}
    assert by_name["orgunits_multiple_exclusive_groups"] == {
        "check": "orgunits_multiple_exclusive_groups", "display_name": LONG_NAME,
        "section": "Organisation units", "severity": "SEVERE", "count": "1234",
        "percentage": "12.5", "error": ""}
    failed = by_name["data_elements_in_data_set_not_in_form"]
    assert (failed["count"], failed["percentage"], failed["error"]) == ("-1", "", FAILED)
    assert by_name["indicators_with_identical_formulas"]["percentage"] == ""
    assert float(by_name["orgunits_invalid_geometry"]["percentage"]) == 0.01


# --- streaming issue rows ---------------------------------------------------------------


def _rows(n, produced):
    for i in range(n):
        produced[0] += 1
        yield IntegrityIssueRow(
            "orgunits_no_coordinates", "Organisation units with no coordinates", "WARNING",
            DataIntegrityIssue("OU%09d" % i, "Health post number %d" % i, None, []))


class _Sink:
    """Counts what is written and checks the writer never runs ahead of its output."""

    def __init__(self, produced):
        self.produced = produced
        self.bytes = self.lines = self.flushes = self.max_ahead = 0
        self.last = ""

    def write(self, text):
        self.bytes += len(text)
        self.lines += text.count("\n")
        self.last = text[-300:]
        self.max_ahead = max(self.max_ahead, self.produced[0] - self.lines)
        return len(text)

    def flush(self):
        self.flushes += 1


@pytest.mark.slow
def test_jsonl_streams_200k_rows_lazily_in_flat_memory():
    produced = [0]
    sink = _Sink(produced)
    gc.collect()
    tracemalloc.start()
    try:
        written = rep.write_issue_rows(_rows(200000, produced), "jsonl", sink)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert written == 200000 == produced[0] == sink.lines
    assert sink.max_ahead <= rep.FLUSH_EVERY + 1  # never more than one batch buffered
    assert sink.flushes >= 200
    assert peak < 3 * 1024 * 1024, "peak {:,} bytes: rows were materialised".format(peak)
    assert json.loads(sink.last.splitlines()[-1])["id"] == "OU000199999"


def test_csv_streams_lazily_and_reads_back():
    produced = [0]
    out = io.StringIO()
    written = rep.write_issue_rows(_rows(2500, produced), "csv", out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert written == 2500 and len(rows) == 2501
    assert rows[2500] == ["orgunits_no_coordinates", "WARNING", "OU000002499",
                          "Health post number 2499", "", ""]
    produced = [0]
    sink = _Sink(produced)
    rep.write_issue_rows(_rows(5000, produced), "csv", sink)
    assert sink.max_ahead <= rep.FLUSH_EVERY + 1 and sink.lines == 5001


def test_issue_rows_table_and_empty_input():
    text = render(rep.write_issue_rows, _rows(3, [0]), "table")
    lines = text.splitlines()
    assert lines[0].split() == ["CHECK", "SEVERITY", "ID", "ISSUE"]
    assert lines[3].split()[:3] == ["orgunits_no_coordinates", "WARNING", "OU000000002"]
    assert len(lines) == 4 and all(len(line) <= 100 for line in lines)
    out = io.StringIO()
    assert rep.write_issue_rows(iter(()), "jsonl", out) == 0 and out.getvalue() == ""
    with pytest.raises(ValueError, match="choose one of: jsonl, csv, table"):
        rep.write_issue_rows(iter(()), "html", io.StringIO())


# --- html (structure; the browser test checks how it renders) ----------------------------


class _Dom(html.parser.HTMLParser):
    """Just enough of a DOM: elements by id, all start tags, and text by element id."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = []
        self.ids = {}
        self.text = {}
        self._open = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if "id" in attrs:
            self.ids[attrs["id"]] = attrs
        if tag not in ("meta", "br", "link", "img", "input", "rect"):
            self._open.append(attrs.get("id"))

    def handle_endtag(self, tag):
        if tag not in ("meta", "br", "link", "img", "input", "rect") and self._open:
            self._open.pop()

    def handle_data(self, data):
        for ident in self._open:
            if ident:
                self.text[ident] = self.text.get(ident, "") + data


def parse(text):
    dom = _Dom()
    dom.feed(text)
    dom.close()
    return dom


def test_html_counts_are_testable(details):
    text = render(rep.write_report, details, "html", server="https://dhis2.example.org",
                  generated=datetime.datetime(2025, 1, 31, 10, 20, 5))
    dom = parse(text)
    assert text.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    assert dom.text["total-issues"] == "34" and dom.ids["total-issues"]["data-count"] == "34"
    assert dom.ids["checks-total"]["data-count"] == "6"
    assert dom.ids["checks-with-issues"]["data-count"] == "4"
    assert dom.ids["checks-failed"]["data-count"] == "1"
    assert dom.text["server"] == "https://dhis2.example.org"
    assert dom.text["generated"] == "2025-01-31 10:20:05"
    assert dom.text["ran"] == "2025-01-31 10:15:02 – 10:15:04"
    bars = {a["data-severity"]: int(a["data-count"]) for t, a in dom.tags
            if t == "g" and "data-severity" in a}
    assert bars == {"CRITICAL": 30, "SEVERE": 1, "WARNING": 3, "INFO": 0}
    rows = [a for t, a in dom.tags if t == "tr" and "data-check" in a]
    assert [r["data-check"] for r in rows] == [
        "orgunits_invalid_geometry", "program_rule_actions_without_data_object",
        "data_elements_in_data_set_not_in_form", "categories_no_options",
        "indicators_with_identical_formulas", "users_with_all_authority"]
    assert [r["data-count"] for r in rows] == ["30", "1", "-1", "2", "1", "0"]
    sections = [a for t, a in dom.tags if t == "details"]
    assert [(s["data-check"], s["data-count"], s["data-listed"]) for s in sections] == [
        ("orgunits_invalid_geometry", "30", "30"),
        ("program_rule_actions_without_data_object", "1", "1"),
        ("data_elements_in_data_set_not_in_form", "-1", "0"),
        ("categories_no_options", "2", "2"),
        ("indicators_with_identical_formulas", "1", "1")]
    assert "open" in sections[0] and "open" not in sections[1]
    assert [t for t, a in dom.tags].count("script") == 1
    assert "<details" in text and "</summary>" in text


def test_html_limits_issues_per_check(details):
    dom = parse(render(rep.write_report, details, "html", limit=5))
    first = next(a for t, a in dom.tags if t == "details")
    assert (first["data-count"], first["data-listed"]) == ("30", "5")
    assert "… and 25 more" in render(rep.write_report, details, "html", limit=5)


def test_html_escapes_every_server_string(details):
    details.results["categories_no_options"].display_name = "</title><script>x()</script>"
    details.results["categories_no_options"].section = "<b onclick=x()>S</b>"
    text = render(rep.write_report, details, "html", title="<i>T</i>",
                  server="\"><script>y()</script>")
    dom = parse(text)
    assert [t for t, a in dom.tags].count("script") == 1
    assert not any(t in ("b", "i", "img") for t, a in dom.tags)
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=&quot;document.title=&#x27;pwned2&#x27;&quot;&gt;" in text
    assert "Rule &lt;b&gt;1&lt;/b&gt;:uidA1234567" in text
    assert "&lt;/title&gt;&lt;script&gt;x()&lt;/script&gt;" in text
    assert "<title>&lt;i&gt;T&lt;/i&gt;</title>" in text
    assert dom.text["server"] == "\"><script>y()</script>"
    assert all(not a.get(k, "").startswith("javascript")
               for t, a in dom.tags for k in ("href", "src"))


def test_html_is_self_contained_and_its_script_is_allowed_by_the_csp(summary):
    import base64
    import hashlib

    text = render(rep.write_report, summary, "html")
    dom = parse(text)
    assert not any(t in ("link", "img", "iframe", "object", "embed") for t, a in dom.tags)
    assert not any(a.get("src") or (a.get("href") or "#").startswith(("http", "//"))
                   for t, a in dom.tags)
    assert "@import" not in text and "url(" not in text and "@font-face" not in text
    csp = next(a["content"] for t, a in dom.tags
               if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    script = re.search(r"<script>(.*?)</script>", text, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    assert "script-src 'sha256-{}'".format(digest) in csp and "default-src 'none'" in csp
    assert "Summary report: run a details report" in text
    assert "Data integrity summary" in dom.text["report-title"]


def test_html_of_a_clean_report():
    clean = report_from_dict({"a": _check("a", "A", "S", "SEVERE", "A", count=0)})
    dom = parse(render(rep.write_report, clean, "html"))
    assert dom.text["total-issues"] == "0" and "no-issues" in dom.ids
    assert "hidden" in next(a for t, a in dom.tags if a.get("class") == "failed-note")


# --- checks, records, comparisons, progress lines ---------------------------------------


@pytest.fixture(scope="module")
def checks():
    with open(CATALOGUE, encoding="utf-8") as handle:
        data = json.load(handle)["checks"]
    return [structure(c, DataIntegrityCheck) for c in data]


def test_checks_table_fits_narrow_terminals(checks):
    lines = render(rep.write_checks, checks, "table", width=80).splitlines()
    assert "…" in lines[1]
    # names are never cut (#21.4): a longer one pushes its own line, nothing else
    for check, line in zip(checks, lines[1:]):
        assert line.startswith(check.name + " ")
        assert len(line) <= 80 or len(check.name) > 16


def test_checks_table(checks):
    lines = render(rep.write_checks, checks, "table", width=120).splitlines()
    assert lines[0].split() == ["NAME", "CODE", "SEVERITY", "SECTION", "SLOW", "DISPLAY", "NAME"]
    assert lines[1].split()[:3] == ["categories_no_options", "CNO", "WARNING"]
    slow = next(line for line in lines if line.startswith("data_elements_aggregate_no_data "))
    assert " slow " in slow
    assert max(len(line) for line in lines) == 120  # names whole, display names cut
    assert "validation_rules_with_invalid_right_side_expression  " in "\n".join(lines)
    assert lines[-1] == "{} checks, {} slow".format(len(checks),
                                                    sum(c.is_slow for c in checks))


def test_checks_json_jsonl_and_csv(checks):
    data = json.loads(render(rep.write_checks, checks, "json"))
    assert data[0]["name"] == "categories_no_options" and data[0]["isSlow"] is False
    assert [structure(d, DataIntegrityCheck) for d in data] == checks
    lines = render(rep.write_checks, checks[:3], "jsonl").splitlines()
    assert [json.loads(line)["code"] for line in lines] == [c.code for c in checks[:3]]
    rows = list(csv.DictReader(io.StringIO(render(rep.write_checks, checks, "csv"))))
    assert len(rows) == len(checks)
    assert rows[0]["name"] == "categories_no_options" and rows[0]["is_slow"] == "false"
    assert rows[1]["display_name"] == 'Only one "default" category should exist'
    with pytest.raises(ValueError):
        rep.write_checks(checks, "html", io.StringIO())


def test_records_in_every_format():
    violations = [ValidationViolation(validation_rule_id="vr1", validation_rule_description="ANC",
                                      organisation_unit_id="ou1", period_id="202401",
                                      left_side_value=3.0, operator="<=", right_side_value=2.0),
                  ValidationViolation(validation_rule_id="vr2", period_id="202402")]
    data = json.loads(render(rep.write_records, violations, "json"))
    assert data[0]["validationRuleId"] == "vr1" and data[1] == {"validationRuleId": "vr2",
                                                                "periodId": "202402"}
    rows = list(csv.DictReader(io.StringIO(render(rep.write_records, violations, "csv"))))
    assert rows[0]["left_side_value"] == "3.0" and rows[1]["operator"] == ""
    table = render(rep.write_records, violations, "table").splitlines()
    assert table[0].split()[0] == "VALIDATION_RULE_ID" and "ORGANISATION_UNIT_PATH" not in table[0]
    assert table[-1] == "2 records"
    assert render(rep.write_records, [], "table") == "0 records\n"
    assert len(render(rep.write_records, violations, "jsonl").splitlines()) == 2


@pytest.fixture
def comparison(details):
    rows = list(details.issue_rows())
    renamed = IntegrityIssueRow(rows[1].check_name, rows[1].check_display_name, rows[1].severity,
                                DataIntegrityIssue(rows[1].issue.id, "Renamed", None, []))
    return ReportComparison(
        new_issues=rows[2:4], resolved_issues=[rows[0]],
        changed_issues=[IssueChange(rows[1], renamed)],
        count_changes={
            "orgunits_invalid_geometry": CountChange("orgunits_invalid_geometry",
                                                     "Organisation units with invalid geometry",
                                                     "CRITICAL", 28, 30),
            "categories_no_options": CountChange("categories_no_options", "Categories",
                                                 "WARNING", 5, 2),
            "data_elements_in_data_set_not_in_form": CountChange(
                "data_elements_in_data_set_not_in_form", None, "WARNING", 4, -1),
            "users_new": CountChange("users_new", "Brand new check", "INFO", None, 3),
        },
        issues_compared=True)


def test_comparison_table(comparison):
    text = render(rep.write_comparison, comparison, "table")
    lines = text.splitlines()
    assert lines[0] == "Count changes (4 checks):"
    assert lines[2].split() == ["CRITICAL", "28", "30", "+2", "Organisation", "units", "with",
                                "invalid", "geometry"]
    assert lines[3].split()[:4] == ["WARNING", "5", "2", "-3"]
    assert lines[4].split()[:4] == ["WARNING", "4", "ERROR", "failed"]
    assert lines[5].split()[:5] == ["INFO", "-", "3", "new", "check"]
    assert "\nNew issues (2):\n" in text and "\nResolved issues (1):\n" in text
    assert "\nChanged issues (1):\n" in text and "Renamed" in text
    assert "OU000000000" in text


def test_comparison_json_jsonl_csv(comparison):
    data = json.loads(render(rep.write_comparison, comparison, "json"))
    assert data == json.loads(json.dumps(comparison_to_dict(comparison)))  # the library's one shape
    assert data["issuesCompared"] is True and len(data["countChanges"]) == 4
    lines = [json.loads(line)
             for line in render(rep.write_comparison, comparison, "jsonl").splitlines()]
    assert lines[0] == {
        "change": "count", "check": "orgunits_invalid_geometry",
        "displayName": "Organisation units with invalid geometry", "severity": "CRITICAL",
        "old": 28, "new": 30, "delta": 2}
    assert [c.get("delta") for c in lines[:4]] == [2, -3, None, None]
    assert [i["id"] for i in lines[4:6]] == ["OU000000000", "OU000000001"]
    assert lines[6]["name"] == "CatDog"
    assert lines[7]["name"] == "Renamed"
    assert lines[7]["previous"]["name"] == "Cat, \"quoted\"\nline"
    kinds = [line["change"] for line in lines]
    assert kinds == ["count"] * 4 + ["new", "new", "resolved", "changed"]
    rows = list(csv.reader(io.StringIO(render(rep.write_comparison, comparison, "csv"))))
    assert rows[0] == ["change", "check", "severity", "id", "name", "comment", "refs", "old",
                       "new"]
    assert rows[1] == ["count", "orgunits_invalid_geometry", "CRITICAL", "", "", "", "", "28",
                       "30"]
    assert rows[4][-2:] == ["", "3"]
    assert [r[0] for r in rows[5:]] == ["new", "new", "resolved", "changed"]


def test_comparison_json_without_to_dict_uses_flat_records(comparison):
    class Bare:
        new_issues = comparison.new_issues
        resolved_issues = []
        count_changes = [comparison.count_changes["categories_no_options"]]
        issues_compared = True

    data = json.loads(render(rep.write_comparison, Bare(), "json"))
    assert data["countChanges"] == [{"check": "categories_no_options", "displayName": "Categories",
                                     "severity": "WARNING", "old": 5, "new": 2, "delta": -3}]
    assert [i["id"] for i in data["newIssues"]] == ["OU000000000", "OU000000001"]
    assert data["resolvedIssues"] == [] and data["changedIssues"] == []


def test_summary_comparison_says_issues_were_not_compared():
    comparison = ReportComparison(count_changes={"a": CountChange("a", "A", "SEVERE", 1, 2)})
    text = render(rep.write_comparison, comparison, "table")
    assert "Issues not compared" in text and "New issues" not in text
    assert render(rep.write_comparison, ReportComparison(), "table").startswith(
        "No count changes.")


def test_notification_line():
    note = Notification(level="INFO", message="Running check 3 of 91: categories_no_options")
    assert render(rep.write_notification_line, note, 12.34) == (
        "[  12.3s] INFO  Running check 3 of 91: categories_no_options\n")
    error = Notification(level="ERROR", message="Job failed\nstack")
    assert render(rep.write_notification_line, error, 1234.5) == (
        "[1234.5s] ERROR Job failed stack\n")
    # Job types outside DHIS2's notifying set post start and end with no text.
    assert render(rep.write_notification_line, Notification(), None) == "[       ] -     (working)\n"
    done = Notification(level="INFO", message="", completed=True)
    assert render(rep.write_notification_line, done, 2.0) == "[   2.0s] INFO  (completed)\n"


# --- atomic_output -------------------------------------------------------------------------


def _leftovers(folder, keep):
    return sorted(set(os.listdir(str(folder))) - set(keep))


def test_atomic_output_writes_on_success(tmp_path):
    target = tmp_path / "report.csv"
    with rep.atomic_output(str(target)) as out:
        out.write("a,b\n")
        assert not target.exists()  # not there until the block ends
    assert target.read_text(encoding="utf-8") == "a,b\n"
    assert _leftovers(tmp_path, ["report.csv"]) == []
    mode = stat.S_IMODE(target.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    if os.name == "posix":
        assert mode == 0o666 & ~umask


def test_atomic_output_keyboard_interrupt_leaves_nothing(tmp_path):
    target = tmp_path / "report.html"
    with pytest.raises(KeyboardInterrupt):
        with rep.atomic_output(target) as out:
            out.write("<html>half")
            raise KeyboardInterrupt
    assert not target.exists()
    assert os.listdir(str(tmp_path)) == []


def test_atomic_output_replaces_an_existing_file_only_on_success(tmp_path):
    target = tmp_path / "nightly.json"
    target.write_text("old", encoding="utf-8")
    if os.name == "posix":
        os.chmod(str(target), 0o640)
    with pytest.raises(RuntimeError):
        with rep.atomic_output(str(target)) as out:
            out.write("new but broken")
            raise RuntimeError("server went away")
    assert target.read_text(encoding="utf-8") == "old"
    assert _leftovers(tmp_path, ["nightly.json"]) == []
    with rep.atomic_output(str(target)) as out:
        out.write("new ✓")
    assert target.read_text(encoding="utf-8") == "new ✓"
    assert _leftovers(tmp_path, ["nightly.json"]) == []
    if os.name == "posix":
        assert stat.S_IMODE(target.stat().st_mode) == 0o640


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name != "posix", reason="POSIX symlinks")
def test_atomic_output_writes_through_a_symlink(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "latest.html"
    target.write_text("old", encoding="utf-8")
    link = tmp_path / "latest.html"
    os.symlink(str(target), str(link))
    with rep.atomic_output(str(link)) as out:
        out.write("new")
    assert os.path.islink(str(link)) and target.read_text(encoding="utf-8") == "new"
    assert sorted(os.listdir(str(tmp_path / "real"))) == ["latest.html"]


def test_atomic_output_binary_and_bad_mode(tmp_path):
    target = tmp_path / "x.bin"
    with rep.atomic_output(str(target), mode="wb") as out:
        out.write(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    with pytest.raises(ValueError):
        with rep.atomic_output(str(target), mode="a"):
            pass


@pytest.mark.parametrize("path", [None, "-"])
def test_atomic_output_dash_is_stdout_and_not_closed(path, capsys):
    with rep.atomic_output(path) as out:
        assert out is sys.stdout
        out.write("hello\n")
    assert not sys.stdout.closed
    assert capsys.readouterr().out == "hello\n"


def test_write_report_through_atomic_output(tmp_path, details):
    target = tmp_path / "details.json"
    with rep.atomic_output(str(target)) as out:
        rep.write_report(details, "json", out)
    with open(str(target), encoding="utf-8") as handle:
        assert from_json(handle.read()) == details


def test_report_module_keeps_heavy_imports_lazy():
    import subprocess

    code = ("import sys, dhis2maint; before = set(sys.modules); import dhis2maint.report; "
            "print(' '.join(sorted(set(sys.modules) - before - {'dhis2maint.report'})))")
    result = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            universal_newlines=True, check=True)
    # only the light stdlib-only helpers report re-exports (#20.8): no csv, json, html, attr
    assert set(result.stdout.split()) <= {"dhis2maint._report_common", "dhis2maint.files",
                                          "dhis2maint.progress"}


def test_comparison_from_compare_reports_in_every_format(details):
    from dhis2maint.integrity import compare_reports

    newer = report_from_dict(DETAILS_JSON)
    cats = newer.results["categories_no_options"]
    cats.issues = cats.issues[1:] + [DataIntegrityIssue("nEwUid12345", "New cat", None, [])]
    comparison = compare_reports(details, newer)
    text = render(rep.write_comparison, comparison, "table")
    assert "New issues (1):" in text and "nEwUid12345" in text
    assert "Resolved issues (1):" in text and "a1B2c3D4e5F" in text
    rows = list(csv.reader(io.StringIO(render(rep.write_comparison, comparison, "csv"))))
    assert [r[0] for r in rows[1:]] == ["new", "resolved"]
    assert json.loads(render(rep.write_comparison, comparison, "json"))["issuesCompared"]
    kinds = [json.loads(line)["change"]
             for line in render(rep.write_comparison, comparison, "jsonl").splitlines()]
    assert kinds == ["new", "resolved"]


# --- provenance and check information (#12.7, #12.8) -----------------------------------------

FIXTURE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def _stamped(report):
    report.base_url, report.dhis2_version, report.job_id = \
        "https://dhis2.example.org", "2.42.3", "Job00000001"
    report.run_at = datetime.datetime(2025, 1, 31, 2, 0, 5, tzinfo=datetime.timezone.utc)
    report.server_time = datetime.datetime(2025, 1, 31, 4, 0, 5, 123000)
    return report


def test_a_report_saved_before_provenance_still_loads():
    # saved by dhis2maint 0.1 (format 1, no "source", no check texts) from the stand-in
    for name in ("report-format1-2.42-details.json", "report-format1-2.42-summary.json"):
        with open(os.path.join(FIXTURE_DIR, name), encoding="utf-8") as handle:
            old = from_json(handle.read())
        assert len(old) == 91 and old.base_url is None and old.run_at is None
        assert old["categories_no_options"].recommendation is None
        assert from_json(rep_json(old)) == old


def rep_json(report):
    from dhis2maint.convert import to_json

    return to_json(report)


def test_provenance_and_check_texts_round_trip(details):
    report = _stamped(details)
    text = rep_json(report)
    data = json.loads(text)
    assert data["source"] == {"baseUrl": "https://dhis2.example.org", "dhis2Version": "2.42.3",
                              "jobId": "Job00000001", "runAt": "2025-01-31T02:00:05.000Z",
                              "serverTime": "2025-01-31T04:00:05.123"}
    back = from_json(text)
    assert back == report and back.run_at.tzinfo is not None and back.server_time.tzinfo is None
    geo = back["orgunits_invalid_geometry"]
    assert geo.description and geo.is_slow is False and geo.is_programmatic is False
    assert geo.section_order == 3 and geo.issues_id_type == "organisationUnits"
    assert back["program_rule_actions_without_data_object"].is_slow is True


def test_result_carries_what_dhis2_sends_with_the_check():
    # DataIntegrityCheck fields, unwrapped into every summary/details object
    # (dhis-api/.../dataintegrity/DataIntegrityCheck.java@2.42, DataIntegritySummary.java@2.42)
    body = {"name": "categories_no_options", "displayName": "Categories with no options",
            "section": "Categories", "sectionOrder": 1, "severity": "WARNING",
            "description": "Categories with no category options",
            "introduction": "Categories should always have at least one option.",
            "recommendation": "Delete the categories or add options to them.",
            "issuesIdType": "categories", "isSlow": False, "isProgrammatic": False,
            "averageExecutionTime": 12, "code": "CNO", "startTime": "2025-01-31T10:15:02.120",
            "finishedTime": "2025-01-31T10:15:02.133", "count": 2, "percentage": 4.5}
    result = report_from_dict({"categories_no_options": body})["categories_no_options"]
    assert result.introduction == body["introduction"]
    assert result.recommendation == body["recommendation"]
    assert (result.description, result.is_slow, result.is_programmatic, result.section_order,
            result.issues_id_type) == (body["description"], False, False, 1, "categories")


def test_jsonl_and_csv_start_with_the_source(details):
    report = _stamped(details)
    lines = render(rep.write_report, report, "jsonl").splitlines()
    assert json.loads(lines[0]) == {"dhis2maint": 1, "source": json.loads(rep_json(report))[
        "source"]}
    assert all("check" in json.loads(line) for line in lines[1:])
    text = render(rep.write_report, report, "csv")
    first, _, body = text.partition("\n")
    assert first == ("# source: baseUrl=https://dhis2.example.org; dhis2Version=2.42.3; "
                     "jobId=Job00000001; runAt=2025-01-31T02:00:05.000Z; "
                     "serverTime=2025-01-31T04:00:05.123")
    assert next(csv.reader(io.StringIO(body))) == rep.ISSUE_CSV_HEADER
    # without provenance nothing changes
    assert not render(rep.write_report, report_from_dict(DETAILS_JSON), "csv").startswith("#")


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_report_stream_writes_what_write_report_writes(details, fmt):
    report = _stamped(details)
    out = io.StringIO()
    stream = rep.ReportStream(fmt, out, report)
    for result in report:
        for issue in result.issues or ():
            stream.row(IntegrityIssueRow(result.name, result.display_name, result.severity,
                                         issue))
        stream.check(result)
    stream.close()
    assert stream.rows == sum(len(r.issues) for r in report)
    if fmt == "json":
        assert from_json(out.getvalue()) == report  # failed and empty checks included
    else:
        assert out.getvalue() == render(rep.write_report, report, fmt)


def test_object_urls_follow_the_maintenance_app():
    base = "https://dhis2.example.org/hmis"
    assert report_html.object_url(base, "organisationUnits", "ImspTQPwCqd") == (
        base + "/dhis-web-maintenance/index.html#/edit/organisationUnitSection/"
               "organisationUnit/ImspTQPwCqd")
    assert report_html.object_url(base + "/", "dataElements", "fbfJHSPpUQD").endswith(
        "#/edit/dataElementSection/dataElement/fbfJHSPpUQD")
    assert report_html.object_url(base, "users", "xE7jOejl9FI") is None  # not a maintenance object
    assert report_html.object_url(base, None, "xE7jOejl9FI") is None
    assert report_html.object_url(base, "dataElements", "not a uid") is None
    assert report_html.object_url("javascript:alert(1)", "dataElements", "fbfJHSPpUQD") is None


def test_html_shows_fix_text_and_links_and_escapes_them(details):
    report = _stamped(details)
    geo = report["orgunits_invalid_geometry"]
    geo.recommendation = "Fix <script>alert(1)</script> & re-run"
    geo.introduction = "Broken <b>geometry</b>"
    text = render(rep.write_report, report, "html")
    assert "How to fix:</strong> Fix &lt;script&gt;alert(1)&lt;/script&gt; &amp; re-run" in text
    assert '<p class="intro">Broken &lt;b&gt;geometry&lt;/b&gt;</p>' in text
    assert ('href="https://dhis2.example.org/dhis-web-maintenance/index.html#/edit/'
            'organisationUnitSection/organisationUnit/OU000000001"') in text
    assert 'id="job-id">Job00000001<' in text and 'id="run-at">2025-01-31 02:00:05<' in text
    assert 'id="filter"' in text and 'id="trend-chart"' not in text  # no history given


def test_html_caps_the_issues_of_a_huge_run(monkeypatch):
    monkeypatch.setattr(report_html, "HTML_TOTAL_LIMIT", 250)
    data = {"c%d" % n: _check("c%d" % n, "Check %d" % n, "S", "WARNING", "C%d" % n,
                              issues=[{"id": "Ab%09d" % i, "name": "x"} for i in range(200)])
            for n in range(3)}
    dom = parse(render(rep.write_report, report_from_dict(data), "html"))
    listed = [int(a["data-listed"]) for tag, a in dom.tags if tag == "details"]
    assert listed == [200, 50, 0] and sum(listed) == 250
    text = render(rep.write_report, report_from_dict(data), "html")
    assert "… and 150 more (listed: 50 of 200" in text and "… and 200 more" in text


def test_the_html_base_a_new_page_builds_on():
    out = io.StringIO()
    report_html.page_start(out, "Fleet <&>", "body{}", "var x=1;")
    out.write(report_html.sparkline([3, None, 5]))
    report_html.page_end(out, "var x=1;")
    text = out.getvalue()
    assert "<title>Fleet &lt;&amp;&gt;</title>" in text and "<style>body{}</style>" in text
    assert report_html.csp("var x=1;") in text and "script-src 'sha256-" in report_html.csp("")
    assert text.endswith("<script>var x=1;</script>\n</body>\n</html>\n")
    assert 'data-values="3,,5"' in text and report_html.sparkline([1]) == '<span class="meta">–</span>'
    assert report_html.esc(None) == "" and report_html.esc('"<') == "&quot;&lt;"
    # the names that moved still answer in report
    assert rep.object_url is report_html.object_url and rep.HTML_TOTAL_LIMIT == 20000
