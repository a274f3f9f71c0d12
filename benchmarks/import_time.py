"""How long `import dhis2maint` takes, against `import requests, attr, cattr`.

Airflow's scheduler re-imports DAG files all the time, so what dhis2maint adds
on top of its own dependencies matters.  Each figure is the median wall time of
fresh interpreter processes (the same interpreter, alternating the two
imports so drift hits both), minus the bare interpreter start-up; plus the
top of `python -X importtime` for dhis2maint's own modules.

    python benchmarks/import_time.py [--runs 30]

Target: ratio <= 1.15.  2026-12-06 (#20.10; instructions under callgrind, which a
loaded machine does not skew): 1.113 on 3.7, 1.097 on 3.13 (were 1.286 and 1.230);
no attrs model is built by the import (each on first use).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BASELINE = "import requests, attr, cattr"
SUBJECT = "import dhis2maint"


def wall(code, env):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - start


def importtime(env):
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", SUBJECT], env=env,
                          stderr=subprocess.PIPE, universal_newlines=True, check=True)
    rows = []
    for line in proc.stderr.splitlines():
        parts = line[len("import time:"):].split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        rows.append((int(parts[1]), int(parts[0]), parts[2].rstrip()))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONDONTWRITEBYTECODE="")
    for code in ("pass", BASELINE, SUBJECT):  # warm the bytecode caches
        wall(code, env)
    empty, base, subject = [], [], []
    for _ in range(args.runs):
        empty.append(wall("pass", env))
        base.append(wall(BASELINE, env))
        subject.append(wall(SUBJECT, env))
    e, b, s = (statistics.median(x) for x in (empty, base, subject))
    print("Python {} on {} ({} runs each, median wall time)".format(
        sys.version.split()[0], sys.platform, args.runs))
    print("  interpreter start-up        {:7.1f} ms".format(e * 1000))
    print("  {:<27} {:7.1f} ms  (import only: {:6.1f} ms)".format(BASELINE, b * 1000, (b - e) * 1000))
    print("  {:<27} {:7.1f} ms  (import only: {:6.1f} ms)".format(SUBJECT, s * 1000, (s - e) * 1000))
    print("  ratio (import only)         {:7.2f}   target <= 1.15".format((s - e) / (b - e)))
    print("  ratio (whole process)       {:7.2f}".format(s / b))
    rows = importtime(env)
    own = sorted((r for r in rows if r[2].strip().startswith("dhis2maint")), reverse=True)
    print("\n-X importtime, dhis2maint modules (cumulative / self, microseconds):")
    for cumulative, self_us, name in own[:12]:
        print("  {:>8} {:>8}  {}".format(cumulative, self_us, name.strip()))
    heavy = {"argparse", "http.server", "csv", "html", "socketserver", "dhis2maint.cli",
             "dhis2maint.testing", "dhis2maint.report", "difflib", "sqlite3",
             "dhis2maint.stream", "dhis2maint.history", "dhis2maint.metrics"}
    baseline_proc = subprocess.run([sys.executable, "-X", "importtime", "-c", BASELINE], env=env,
                                   stderr=subprocess.PIPE, universal_newlines=True, check=True)
    by_dependencies = {line.rsplit("|", 1)[-1].strip() for line in baseline_proc.stderr.splitlines()}
    loaded = sorted(({r[2].strip() for r in rows} & heavy) - by_dependencies)
    print("\nmodules that should be deferred but `import dhis2maint` loads: {}".format(
        ", ".join(loaded) or "none"))
    probe = ("import attr, dhis2maint.models as m; print(sum(1 for n in m.__all__ "
             "if n in vars(m) and attr.has(vars(m)[n])))")
    built = subprocess.run([sys.executable, "-c", probe], env=env, stdout=subprocess.PIPE,
                           universal_newlines=True, check=True).stdout.strip()
    print("attrs models built by the import (each is built on first use): {}".format(built))


if __name__ == "__main__":
    main()
