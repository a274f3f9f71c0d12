"""Benchmark: History.record of a million-issue details run, streamed.

    python benchmarks/history_record.py [--issues 1000000] [--postgres URL]

In FRESH subprocesses (so memory peaks don't mix), against one new history file --
and, with ``--postgres URL``, against a new schema of that PostgreSQL database too
(dropped afterwards; #24):

1. first night: ``History.record(report, rows=<generator>)`` of ``--issues`` issues
   over four checks (every issue new);
2. second night: the same server, 10% of the issues resolved and as many new
   (the realistic nightly case: every issue is looked up in the previous span);
3. the baseline, measured in the same run: just iterating the same generator.

Prints seconds and peak RSS growth (VmHWM after - VmRSS before) of the recording
process (on PostgreSQL the server's own memory is not in it).  Targets (#16.2, #24.5):
each record <= 100 MB growth and <= 60 s on this machine, on each backend.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from stream_issues import _reset_peak, _status_kb  # noqa: E402

CHECKS = [("orgunits_no_coordinates", "INFO", 0.70), ("data_elements_aggregate_no_groups",
                                                      "WARNING", 0.15),
          ("organisation_units_violating_exclusive_group_sets", "SEVERE", 0.10),
          ("validation_rules_with_invalid_left_side_expression", "CRITICAL", 0.05)]


def make_run(issues, night):
    """(report, rows generator): night 1 drops the first 10% of each check, adds as many."""
    from dhis2maint.models import (DataIntegrityIssue, DataIntegrityReport,
                                   DataIntegrityResult, IntegrityIssueRow)

    report = DataIntegrityReport(details=True)
    report.base_url, report.dhis2_version = "https://dhis2.example.org", "2.42.3"
    report.job_id = "BenchJob000{}".format(night)
    counts = []
    remaining = issues
    for index, (name, severity, share) in enumerate(CHECKS):
        count = remaining if index == len(CHECKS) - 1 else int(issues * share)
        remaining -= count
        counts.append(count)
        report.results[name] = DataIntegrityResult(name=name, severity=severity, count=count)

    def rows():
        for index, (name, severity, _share) in enumerate(CHECKS):
            count = counts[index]
            shift = night * (count // 10)
            for i in range(shift, shift + count):
                yield IntegrityIssueRow(name, None, severity, DataIntegrityIssue(
                    "B{}{:09d}".format(index, i), "Org unit {} {}".format(name[:8], i),
                    "Expression is not well-formed" if i % 4 == 0 else None, []))
    return report, rows()


def child(kind, path, issues, night):
    _reset_peak()
    before = _status_kb("VmRSS")
    started = time.perf_counter()
    report, rows = make_run(issues, night)
    if kind == "iterate":
        n = sum(1 for _ in rows)
        result = {"rows": n}
    else:
        from dhis2maint.history import History

        with History(path) as history:
            recorded = history.record(report, rows=rows)
        result = {"rows": recorded.run.issues, "new": recorded.new_issues,
                  "resolved": recorded.resolved_issues}
    result["seconds"] = time.perf_counter() - started
    result["peak_growth_mb"] = (_status_kb("VmHWM") - before) / 1024.0
    return result


def run_child(kind, path, issues, night):
    out = subprocess.check_output([sys.executable, os.path.abspath(__file__), "--child", kind,
                                   "--path", path, "--issues", str(issues),
                                   "--night", str(night)])
    return json.loads(out.decode().strip().splitlines()[-1])


def bench(label, path, issues):
    """Three children against ``path``: rows only, first night, second night."""
    base = run_child("iterate", path, issues, 0)
    first = run_child("record", path, issues, 0)
    second = run_child("record", path, issues, 1)
    print("{:<34} {:>9} {:>15} {:>10} {:>10}".format(label, "seconds", "peak growth MB",
                                                     "new", "resolved"))
    for name, result in (("generating the rows only", base), ("record, first night", first),
                         ("record, second night (10% drift)", second)):
        print("{:<34} {:>9.2f} {:>15.1f} {:>10} {:>10}".format(
            name, result["seconds"], result["peak_growth_mb"],
            "{:,}".format(result.get("new", 0)), "{:,}".format(result.get("resolved", 0))))
    checks = [(label + ": first night <= 100 MB, <= 60 s", first),
              (label + ": second night <= 100 MB, <= 60 s", second)]
    bench.seconds[label] = (first["seconds"], second["seconds"])
    return [(name, r["peak_growth_mb"] <= 100 and r["seconds"] <= 60) for name, r in checks]


bench.seconds = {}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--issues", type=int, default=1000000)
    parser.add_argument("--postgres", metavar="URL",
                        help="also benchmark a PostgreSQL history (postgresql://...)")
    parser.add_argument("--child", choices=("iterate", "record"), help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--night", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.path, args.issues, args.night)))
        return 0
    workdir = tempfile.mkdtemp(prefix="dhis2maint-bench-")
    path = os.path.join(workdir, "history.sqlite")
    print("{:,} issues ({})".format(args.issues, sys.version.split()[0]))
    try:
        checks = bench("SQLite", path, args.issues)
        print("history file {:.0f} MB after two nights\n".format(os.path.getsize(path) / 1e6))
    finally:
        for name in os.listdir(workdir):
            os.remove(os.path.join(workdir, name))
        os.rmdir(workdir)
    if args.postgres:
        import psycopg

        schema = "bench_{}".format(os.getpid())
        sep = "&" if "?" in args.postgres else "?"
        try:
            checks += bench("PostgreSQL", args.postgres + sep + "schema=" + schema, args.issues)
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                size = conn.execute(
                    "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s"
                    " AND c.relkind = 'r'", (schema,)).fetchone()[0]
                conn.execute("DROP SCHEMA IF EXISTS {} CASCADE".format(schema))
            print("schema {:.0f} MB after two nights".format(int(size) / 1e6))
        if "PostgreSQL" in bench.seconds:  # the ratio holds on a busy machine too
            (p1, p2), (s1, s2) = bench.seconds["PostgreSQL"], bench.seconds["SQLite"]
            print("PostgreSQL / SQLite seconds: first night {:.2f}, second night {:.2f}"
                  .format(p1 / s1, p2 / s2))
    for label, ok in checks:
        print("  {} {}".format("PASS" if ok else "MISS", label))
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
