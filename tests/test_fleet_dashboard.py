"""The fleet dashboard (#23.3): ``report_html.write_fleet_html`` -- a row per server of
a fleet run, worst first, servers that did not answer shown with their error, every
server string escaped, the one sort script allowed by its hash -- and the same page
in a real headless Chromium (the script runs under the CSP, nothing injected runs, a
screenshot).  Set ``DHIS2MAINT_FLEET_SCREENSHOT=docs/fleet-dashboard.png`` to keep
the screenshot (that is how the one in the docs is made).
"""
import base64
import datetime
import hashlib
import html.parser
import io
import os
import re
import shutil

import contextlib
import socket

import pytest

from dhis2maint import cli, report_html
from dhis2maint.fleet import FleetRow
from dhis2maint.testing import DEFAULT_TOKEN

from conftest import png_size_and_ink, run_chromium

NOW = datetime.datetime(2026, 12, 6, 3, 0, 0, tzinfo=datetime.timezone.utc)
XSS_NAME = "<script>document.title='pwned'</script>"
XSS_ERROR = "<img src=x onerror=\"document.title='pwned by img'\">"
XSS_VERSION = "2.42</title><script>document.title='pwned by version'</script>"


def _rows():
    return [
        FleetRow(server="hmis", url="https://hmis.example.org", command="integrity run",
                 outcome="ok", exit_code=0, seconds=41.2, dhis2_version="2.41.3",
                 issues={"CRITICAL": 0, "SEVERE": 0, "WARNING": 12, "INFO": 3}, new_issues=0,
                 trend=(20, 18, 15, 15), last_success=NOW - datetime.timedelta(minutes=1),
                 report="hmis.html"),
        FleetRow(server="tracker", url="https://tracker.example.org", command="integrity run",
                 outcome="verdict", exit_code=1, seconds=95.0, dhis2_version=XSS_VERSION,
                 issues={"CRITICAL": 1, "SEVERE": 7, "WARNING": 30, "INFO": 0}, new_issues=4,
                 findings={"failed": 2, "overdue": 1}, trend=(30, None, 34, 38),
                 last_success=NOW - datetime.timedelta(hours=2), report="tracker.html"),
        FleetRow(server="down", url="https://down.example.org", command="integrity run",
                 outcome="failed", exit_code=4, seconds=10.0,
                 error="could not connect to https://down.example.org: connection refused",
                 trend=(5, 6), last_success=NOW - datetime.timedelta(days=3)),
        FleetRow(server=XSS_NAME, url="https://x.example.org/<b>bold</b>",
                 command="integrity run", outcome="failed", exit_code=3, seconds=0.4,
                 error=XSS_ERROR, report="javascript:alert(1)"),
        FleetRow(server="training", url="https://training.example.org",
                 command="integrity run", outcome="ok", exit_code=0, seconds=12.0,
                 dhis2_version="2.36.13", issues={"WARNING": 2}, report="sub dir/training.html"),
    ]


def _page(rows=None, **kwargs):
    out = io.StringIO()
    report_html.write_fleet_html(out, _rows() if rows is None else rows, generated=NOW,
                                 **kwargs)
    return out.getvalue()


class _Rows(html.parser.HTMLParser):
    """Each ``tr[data-server]``'s attributes and its cells' text; every tag seen."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows, self.tags, self.cell, self.texts = [], [], None, {}
        self._id = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "tr" and "data-server" in attrs:
            self.rows.append((attrs, []))
        elif tag == "td" and self.rows:
            self.rows[-1][1].append("")
            self.cell = True
        self._id = attrs.get("id")
        if self._id:
            self.texts[self._id] = ""

    def handle_endtag(self, tag):
        self._id = None
        if tag == "td":
            self.cell = None
        if tag == "tr":
            self.cell = None

    def handle_data(self, data):
        if self.cell and self.rows:
            self.rows[-1][1][-1] += data
        if self._id:
            self.texts[self._id] += data


def _parse(text):
    parser = _Rows()
    parser.feed(text)
    parser.close()
    return parser


def test_a_row_per_server_worst_first_down_servers_shown_with_their_error():
    page = _parse(_page())
    order = [attrs["data-server"] for attrs, _cells in page.rows]
    # servers that did not answer first (then by name), then the verdict, then by issues
    assert order == [XSS_NAME, "down", "tracker", "hmis", "training"]
    rows = {attrs["data-server"]: (attrs, cells) for attrs, cells in page.rows}
    attrs, cells = rows["down"]
    assert attrs["data-outcome"] == "failed" and attrs["data-exit-code"] == "4"
    assert "NO ANSWER" in cells
    assert cells[-1] == "could not connect to https://down.example.org: connection refused"
    assert "3.0 days ago" in cells  # the last success, from the history
    assert page.texts["fleet-servers"] == "5" and page.texts["fleet-failed"] == "2"
    assert page.texts["fleet-answered"] == "3" and page.texts["fleet-verdicts"] == "1"
    _attrs, cells = rows["tracker"]
    assert cells[3:8] == ["1", "7", "30", "0", "4"]  # by severity, then new
    assert cells[10] == "2 failed1 overdue"  # scheduler findings by kind, most first
    assert "2.0 h ago" in cells
    _attrs, cells = rows["hmis"]
    assert cells[9] == "60 s ago"
    assert "none" in cells[10]


def test_sparkline_of_the_trend_and_links_to_each_report():
    text = _page()
    assert 'data-values="30,,34,38"' in text  # a run without counts stays a gap
    assert 'data-values="20,18,15,15"' in text
    links = re.findall(r'<a class="server-report" href="([^"]*)"', text)
    assert links == ["tracker.html", "hmis.html", "sub%20dir/training.html"]


def test_hostile_server_strings_are_escaped_and_javascript_links_dropped():
    text = _page(title="Fleet <b>&</b> friends")
    page = _parse(text)
    scripts = [t for t, _a in page.tags if t == "script"]
    assert scripts == ["script"]  # only the page's own
    assert not [t for t, _a in page.tags if t in ("img", "b")]
    assert "javascript:" not in re.sub(r"<td class=\"report\">javascript:alert\(1\)</td>", "",
                                       text)
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in text
    assert page.texts["report-title"] == "Fleet <b>&</b> friends"
    rows = {attrs["data-server"]: cells for attrs, cells in page.rows}
    assert rows[XSS_NAME][-1] == XSS_ERROR
    assert XSS_VERSION in rows["tracker"][1]


def test_csp_allows_exactly_the_one_script_by_its_hash():
    text = _page()
    script = re.search(r"<script>(.*?)</script>", text, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', text).group(1)
    assert "script-src 'sha256-{}'".format(digest) in policy
    assert "default-src 'none'" in policy
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing external


def test_an_empty_fleet_is_still_a_page():
    page = _parse(_page(rows=[]))
    assert page.rows == [] and page.texts["fleet-servers"] == "0"


def test_fleet_cli_writes_the_dashboard_over_real_http(start_standin, tmp_path, capsys,
                                                       monkeypatch):
    """``--fleet FILE integrity run --format html --output FILE`` against two stand-ins
    and a closed port: every server on the page, the down one first with its error."""
    up = [start_standin("2.42", job_seconds=0.2), start_standin("2.36", job_seconds=0.2)]
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        down = sock.getsockname()[1]
    fleet = tmp_path / "fleet.ini"
    fleet.write_text("[DEFAULT]\ntoken-env = DASH_FLEET_PAT\n\n[hmis]\nurl = {}\n\n"
                     "[training]\nurl = {}\n\n[down]\nurl = http://127.0.0.1:{}\n".format(
                         up[0].url, up[1].url, down))
    for name in ("DHIS2_URL", "DHIS2_PAT", "DHIS2_USERNAME", "DHIS2_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DASH_FLEET_PAT", DEFAULT_TOKEN)
    out = tmp_path / "fleet.html"
    code = cli.main(["--fleet", str(fleet), "--parallel", "3", "--quiet", "integrity", "run",
                     "--format", "html", "--output", str(out)])
    capsys.readouterr()
    assert code == 3  # the down server: DHIS2/connection failure above the others
    page = _parse(out.read_text(encoding="utf-8"))
    rows = [(a["data-server"], a["data-outcome"]) for a, _cells in page.rows]
    assert rows[0] == ("down", "failed")
    assert sorted(rows[1:]) == [("hmis", "ok"), ("training", "ok")]
    versions = {a["data-server"]: cells[1] for a, cells in page.rows}
    assert versions["training"].startswith("2.36") and versions["hmis"].startswith("2.42")
    assert page.rows[0][1][-1], "the down server's error is shown"


# --- in a real headless Chromium -----------------------------------------------------------


@pytest.mark.browser
def test_dashboard_in_chromium_script_runs_under_csp_nothing_injected_runs(chromium, tmp_path):
    page = tmp_path / "fleet.html"
    page.write_text(_page(title="DHIS2 fleet"), encoding="utf-8")
    dumped = run_chromium(chromium, tmp_path, page, "--dump-dom")
    # The sort script ran: the CSP allowed it by its hash (a blocked script never sets this).
    assert 'data-sort-ready="1"' in dumped
    assert "<title>DHIS2 fleet</title>" in dumped  # no injected script changed it
    assert "pwned" not in re.search(r"<title>(.*?)</title>", dumped).group(1)
    assert "<img" not in dumped and len(re.findall(r"<script>", dumped)) == 1
    servers = re.findall(r'<tr class="[^"]*" data-server="([^"]*)"', dumped)
    assert servers[1:] == ["down", "tracker", "hmis", "training"]
    assert "connection refused" in dumped

    # The screenshot (the one in the docs): the plausible servers only.
    plain = tmp_path / "plain.html"
    rows = [r for r in _rows() if r.server != XSS_NAME]
    rows[1].dhis2_version = "2.42.2"
    plain.write_text(_page(rows=rows, title="DHIS2 fleet"), encoding="utf-8")
    shot = tmp_path / "fleet.png"
    run_chromium(chromium, tmp_path, plain, "--screenshot={}".format(shot),
              "--window-size=1600,460")
    width, height, ink = png_size_and_ink(shot)
    assert (width, height) == (1600, 460) and ink > 0.01, "the screenshot looks blank"
    keep = os.environ.get("DHIS2MAINT_FLEET_SCREENSHOT")
    if keep:
        shutil.copyfile(str(shot), keep)
