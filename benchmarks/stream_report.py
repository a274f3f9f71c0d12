"""Benchmark: streamed ``integrity report --details`` output against ``integrity issues``.

    python benchmarks/stream_report.py [--issues 1000000] [--repeat 2]

Serves the DHIS2-shaped details body of ``stream_issues.py`` (``--issues`` issues,
~80 MB for a million) over real HTTP and runs, each in a FRESH subprocess (so
memory peaks don't mix), the command line's ``main()`` writing to a file:

* baseline: ``dhis2maint integrity issues --format jsonl`` (streams rows only);
* ``dhis2maint integrity report --details --format json|jsonl|csv`` (the whole
  report with provenance, failed and empty checks, written while it is read);
* ``dhis2maint integrity report --details --format jsonl --history FILE`` (also
  recorded into a new history file in the same pass).

Measures seconds and peak RSS growth (VmHWM after - VmRSS before the command).
Best of ``--repeat`` for time, the largest for memory.  Targets (#16.5): each
report format <= 50 MB growth and <= 1.5x the baseline's time.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from stream_issues import _Handler, _Server, _reset_peak, _status_kb, write_body  # noqa: E402

KINDS = {
    "issues-jsonl": ["integrity", "issues", "--format", "jsonl"],
    "report-json": ["integrity", "report", "--details", "--format", "json"],
    "report-jsonl": ["integrity", "report", "--details", "--format", "jsonl"],
    "report-csv": ["integrity", "report", "--details", "--format", "csv"],
    "report-jsonl+history": ["integrity", "report", "--details", "--format", "jsonl",
                             "--history", "{history}"],
}


def child(kind, url, workdir):
    from dhis2maint.cli import main

    output = os.path.join(workdir, kind + ".out")
    history = os.path.join(workdir, kind + ".sqlite")
    argv = [a.format(history=history) for a in KINDS[kind]]
    argv += ["--url", url, "--username", "admin", "--output", output, "--quiet"]
    os.environ["DHIS2_PASSWORD"] = "district"
    _reset_peak()
    before = _status_kb("VmRSS")
    started = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - started
    peak = (_status_kb("VmHWM") - before) / 1024.0
    size = os.path.getsize(output)
    for path in (output, history, history + "-wal", history + "-shm"):
        if os.path.exists(path):
            os.remove(path)
    return {"code": code, "seconds": seconds, "peak_growth_mb": peak, "bytes": size}


def run_child(kind, url, workdir):
    out = subprocess.check_output([sys.executable, os.path.abspath(__file__), "--child", kind,
                                   "--url", url, "--workdir", workdir])
    return json.loads(out.decode().strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--issues", type=int, default=1000000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", choices=sorted(KINDS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.url, args.workdir)))
        return 0

    workdir = tempfile.mkdtemp(prefix="dhis2maint-bench-")
    path = os.path.join(workdir, "details.json")
    size = write_body(path, args.issues)
    print("body: {:,} issues, {:.1f} MB ({})".format(args.issues, size / 1e6,
                                                     sys.version.split()[0]))
    server = _Server(("127.0.0.1", 0), _Handler)
    server.body_path = path
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:{}".format(server.server_address[1])
    best = {}
    try:
        for _ in range(args.repeat):
            for kind in KINDS:
                result = run_child(kind, url, workdir)
                if result["code"] != 0:
                    raise SystemExit("{} exited {}".format(kind, result["code"]))
                old = best.get(kind)
                if old is not None:
                    result["peak_growth_mb"] = max(old["peak_growth_mb"],
                                                   result["peak_growth_mb"])
                    if old["seconds"] < result["seconds"]:
                        result["seconds"] = old["seconds"]
                best[kind] = result
    finally:
        server.shutdown()
        server.server_close()
        os.remove(path)
        os.rmdir(workdir)

    base = best["issues-jsonl"]["seconds"]
    print("{:<24} {:>9} {:>10} {:>15} {:>10}".format("command", "seconds", "x issues",
                                                     "peak growth MB", "output MB"))
    checks = []
    for kind, result in best.items():
        ratio = result["seconds"] / base
        print("{:<24} {:>9.2f} {:>10.2f} {:>15.1f} {:>10.1f}".format(
            kind, result["seconds"], ratio, result["peak_growth_mb"], result["bytes"] / 1e6))
        if kind.startswith("report-") and "history" not in kind:
            checks.append(("{} <= 50 MB".format(kind), result["peak_growth_mb"] <= 50))
            checks.append(("{} <= 1.5x issues".format(kind), ratio <= 1.5))
    for label, ok in checks:
        print("  {} {}".format("PASS" if ok else "MISS", label))
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
