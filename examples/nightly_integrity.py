#!/usr/bin/env python3
"""Nightly DHIS2 data-integrity report, for cron.

Runs DHIS2's data-integrity checks with details, saves tonight's report as
JSON and as a CSV of every issue, compares it with the most recent earlier
report in the same directory, and prints a short summary of what is new and
what was resolved.  Cron mails the output when there is any, so the summary is
the only thing printed.

Connection settings come from the environment (see ``Session.from_env``):

    DHIS2_URL        https://dhis2.example.org
    DHIS2_PAT        a personal access token (or DHIS2_USERNAME + DHIS2_PASSWORD)
    DHIS2_TIMEOUT    optional, seconds per HTTP request

Files, one pair per night (the date is the local date the script runs):

    <dir>/2026-11-25.json   the report; read it back with dhis2maint.from_json
    <dir>/2026-11-25.csv    "# source: …" line, then check,severity,id,name,comment,refs -- one line per issue

``<dir>`` is ``--dir``, else ``$DHIS2_REPORT_DIR``, else ``./integrity-reports``.
Running twice on the same day replaces that day's files and compares with the
day before, never with itself.

Exit status:

    0  no new issues at the --fail-on severity or worse (also: the first report)
    1  new issues at that severity or worse, or such a check newly failed on the server
    2  the checks could not be run (configuration, connection, server error)

Example crontab line (02:30 every night, mail the summary only when it fails):

    30 2 * * *  . /etc/dhis2maint.env && python3 /opt/dhis2maint/nightly_integrity.py \\
                --dir /var/lib/dhis2-integrity > /tmp/integrity.txt || mail -s "DHIS2 integrity" \\
                admin@example.org < /tmp/integrity.txt

Works with Python 3.7 and newer and needs only ``pip install dhis2maint``.
"""
import argparse
import datetime
import os
import re
import sys

import dhis2maint
from dhis2maint.models import severity_rank
from dhis2maint.report import atomic_output, write_report

#: Report files are named by date, so the newest earlier one sorts last.
REPORT_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})\.json$")
SEVERITIES = ("INFO", "WARNING", "SEVERE", "CRITICAL")
#: How many checks the summary lists under "new" and "resolved" before "... and N more".
SUMMARY_LINES = 15


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Run DHIS2's data-integrity checks, save the report, diff it with the last one.")
    parser.add_argument(
        "--dir", default=os.environ.get("DHIS2_REPORT_DIR") or "integrity-reports",
        help="directory for the YYYY-MM-DD.json/.csv reports "
             "(default: $DHIS2_REPORT_DIR, else ./integrity-reports)")
    parser.add_argument(
        "--fail-on", default="SEVERE", type=str.upper, choices=SEVERITIES + ("NEVER",),
        help="exit 1 when there are new issues of checks at this severity or worse "
             "(default: SEVERE; NEVER: always exit 0 after a successful run)")
    parser.add_argument(
        "--timeout", type=float, default=3600.0,
        help="seconds the whole run may take before giving up (default: 3600)")
    return parser.parse_args(argv)


def previous_reports(folder, today):
    """Paths of earlier reports in ``folder``, newest first (today's is never one)."""
    names = []
    for entry in os.listdir(folder):
        match = REPORT_NAME.match(entry)
        if match and match.group(1) < today:
            names.append(entry)
    return [os.path.join(folder, name) for name in sorted(names, reverse=True)]


def load_previous(folder, today):
    """(path, report) of the newest earlier report that can be read, or (None, None).

    A damaged file (a disk that filled up, a hand edit) is skipped rather than
    stopping tonight's run; the summary says which one was compared.
    """
    for path in previous_reports(folder, today):
        try:
            with open(path, encoding="utf-8") as handle:
                return path, dhis2maint.from_json(handle.read())
        except (OSError, dhis2maint.InvalidResponseError):
            continue
    return None, None


def save(report, json_path, csv_path):
    """Write the JSON report and the CSV of issues; each file appears complete or not at all."""
    with atomic_output(json_path) as out:
        out.write(dhis2maint.to_json(report, indent=2))
        out.write("\n")
    with atomic_output(csv_path) as out:
        write_report(report, "csv", out)  # details report: one row per issue


def rank(severity):
    """0 (INFO) ... 3 (CRITICAL); a missing or unknown severity counts as WARNING."""
    return severity_rank(str(severity or "WARNING"))


def per_check(rows):
    """{check name: (severity, number of rows)}, in first-seen order."""
    counts = {}
    for row in rows:
        severity, count = counts.get(row.check_name, (row.severity, 0))
        counts[row.check_name] = (severity, count + 1)
    return counts


def check_lines(counts, sign):
    """'  SEVERE        +7  check_name' lines, worst severity and biggest change first."""
    ordered = sorted(counts.items(), key=lambda item: (-rank(item[1][0]), -item[1][1], item[0]))
    lines = ["  {:<9} {:>7}  {}".format(str(severity or "-"), "{}{:,}".format(sign, count), name)
             for name, (severity, count) in ordered[:SUMMARY_LINES]]
    if len(ordered) > SUMMARY_LINES:
        lines.append("  ... and {} more checks".format(len(ordered) - SUMMARY_LINES))
    return lines


def summarise(report, comparison, previous_path, threshold):
    """The summary lines, and whether the run should exit 1."""
    total = sum(len(result.issues or ()) for result in report)
    failed = [result.name for result in report if result.failed]
    lines = ["{:,} checks, {:,} issues, {} failed on the server".format(
        len(report), total, len(failed))]
    if comparison is None:
        lines.append("No earlier report to compare with: tonight's is the baseline.")
        return lines, False
    lines.append("Compared with {}: {:,} new, {:,} resolved, {:,} changed issues".format(
        os.path.basename(previous_path), len(comparison.new_issues),
        len(comparison.resolved_issues), len(comparison.changed_issues)))
    if comparison.new_issues:
        lines.append("New issues:")
        lines.extend(check_lines(per_check(comparison.new_issues), "+"))
    if comparison.resolved_issues:
        lines.append("Resolved issues:")
        lines.extend(check_lines(per_check(comparison.resolved_issues), "-"))
    # A check that failed tonight but not last time hides whatever it would have found.
    newly_failed = [change for change in comparison.count_changes.values() if change.failed]
    for change in newly_failed:
        lines.append("Check failed on the server: {} ({})".format(
            change.check_name, change.severity or "-"))
    if threshold == "NEVER":
        return lines, False
    bad = comparison.new_issues_at_least(threshold)
    bad_failures = [c for c in newly_failed if rank(c.severity) >= rank(threshold)]
    if bad or bad_failures:
        lines.append("ATTENTION: {:,} new issues and {} newly failed checks at {} or worse".format(
            len(bad), len(bad_failures), threshold))
        return lines, True
    return lines, False


def main(argv=None):
    args = parse_args(argv)
    today = datetime.date.today().isoformat()
    json_path = os.path.join(args.dir, today + ".json")
    csv_path = os.path.join(args.dir, today + ".csv")

    try:
        os.makedirs(args.dir, exist_ok=True)  # before the run: fail fast on a bad --dir
        with dhis2maint.Session.from_env() as session:
            # details=True: every issue, not only counts, so the diff can name them.
            report = session.run_integrity_checks(details=True, timeout=args.timeout)
        previous_path, previous = load_previous(args.dir, today)
        save(report, json_path, csv_path)
    except (dhis2maint.Dhis2Error, OSError) as exc:
        # Configuration, connection, authentication, server errors, timeouts, an
        # unwritable directory: the message says which.  Exit 2, not 1, so cron
        # can tell "could not run" from "new issues".
        print("nightly integrity report failed: {}".format(exc), file=sys.stderr)
        return 2

    comparison = None if previous is None else dhis2maint.compare_reports(previous, report)

    lines, failing = summarise(report, comparison, previous_path, args.fail_on)
    print("DHIS2 data integrity {} ({})".format(today, session.base_url))
    print("Saved {} and {}".format(json_path, csv_path))
    print("\n".join(lines))
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
