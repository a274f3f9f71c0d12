"""Benchmark: the fleet CLI on 1, 5 and 20 servers at --parallel 1, 4 and 8 (#23.6).

    python benchmarks/fleet.py [--sizes 1,5,20] [--parallel 1,4,8] [--job-seconds 5]
                               [--delay 0.05] [--details] [--json FILE]

The stand-ins run in their OWN process (``--serve N``: N ``Dhis2StandIn`` on free
loopback ports), so the measured process is the CLI alone:
``python -m dhis2maint --fleet FILE --parallel P integrity run [--details]`` in a
fresh subprocess per measurement; its wall time, and its peak RSS from the kernel
(``os.wait4`` -> ``ru_maxrss`` of that child).

Like real DHIS2, the stand-ins make the client wait: every answer is held
``--delay`` seconds (network + server time) and the integrity job runs
``--job-seconds`` on the server while the CLI polls it.  So the measurement is
about waiting on DHIS2, as in real life, not about the CPU of this (2-core)
machine.

Targets: at 20 servers ``--parallel 8`` at least 4x faster than ``--parallel 1``,
and peak RSS growing by at most 15 MB per concurrent server ((RSS at P - RSS at
1) / (P - 1), same fleet).  Prints a table and whether each target is met; exit 1
when one is missed.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

TOKEN_ENV = "BENCH_FLEET_PAT"


def serve(count, job_seconds, delay):
    """The stand-ins' process: start ``count``, print their URLs (one JSON line),
    serve until stdin closes."""
    from dhis2maint.testing import Dhis2StandIn

    servers = []
    for index in range(count):
        srv = Dhis2StandIn("2.42" if index % 3 else "2.41", job_seconds=job_seconds,
                           seed=index)
        srv.start()
        srv.set_delay(delay)
        servers.append(srv)
    print(json.dumps([s.url for s in servers]), flush=True)
    sys.stdin.read()
    for srv in servers:
        srv.stop()


def _fleet_file(folder, urls):
    path = os.path.join(folder, "fleet-{}.ini".format(len(urls)))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("[DEFAULT]\ntoken-env = {}\nhttp-timeout = 30\n".format(TOKEN_ENV))
        for index, url in enumerate(urls):
            handle.write("\n[server{:02d}]\nurl = {}\n".format(index + 1, url))
    return path


def _run_child(command, env):
    """Popen + wait4 of one child: (exit code, stdout, stderr, rusage)."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # The fleet's JSON summary is small: read it after the child ends (no pipe deadlock
    # below 64 KiB), so that wait4 can reap the child and give its own rusage.
    _pid, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status) if hasattr(
        os, "waitstatus_to_exitcode") else (status >> 8)
    return proc.returncode, out, err, usage


def measure_one(fleet_file, parallel, details, token):
    command = [sys.executable, "-m", "dhis2maint", "--fleet", fleet_file,
               "--parallel", str(parallel), "--quiet", "integrity", "run", "--format", "json"]
    if details:
        command.append("--details")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DHIS2_")}
    env[TOKEN_ENV] = token
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    started = time.monotonic()
    code, out, err, usage = _run_child(command, env)
    seconds = time.monotonic() - started
    if code not in (0, 1):
        sys.stderr.write(err.decode("utf-8", "replace")[-3000:])
        raise SystemExit("the fleet CLI exited {} ({} at --parallel {})".format(
            code, fleet_file, parallel))
    rows = json.loads(out.decode("utf-8"))
    failed = [r["server"] for r in rows if r.get("outcome") == "failed"]
    if failed:
        raise SystemExit("servers failed: {}".format(failed))
    return seconds, usage.ru_maxrss / 1024.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,5,20")
    parser.add_argument("--parallel", default="1,4,8")
    parser.add_argument("--job-seconds", type=float, default=5.0,
                        help="seconds each integrity job runs on a stand-in (default 5)")
    parser.add_argument("--delay", type=float, default=0.05,
                        help="seconds every stand-in answer waits (default 0.05)")
    parser.add_argument("--details", action="store_true", help="integrity run --details")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--serve", type=int, metavar="N", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.job_seconds, args.delay)
        return 0

    from dhis2maint.testing import DEFAULT_TOKEN

    sizes = [int(s) for s in args.sizes.split(",")]
    levels = [int(p) for p in args.parallel.split(",")]
    standins = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve", str(max(sizes)),
         "--job-seconds", str(args.job_seconds), "--delay", str(args.delay)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=dict(
            os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")))
    figures = []
    try:
        urls = json.loads(standins.stdout.readline().decode("utf-8"))
        with tempfile.TemporaryDirectory(prefix="dhis2maint-bench-fleet-") as folder:
            print("{:>7} {:>9} {:>9} {:>12}  (job {:g} s on the server, {:g} s per answer{})"
                  .format("servers", "parallel", "seconds", "peak RSS MB", args.job_seconds,
                          args.delay, ", --details" if args.details else ""))
            for size in sizes:
                fleet_file = _fleet_file(folder, urls[:size])
                for level in levels:
                    seconds, rss = measure_one(fleet_file, level, args.details, DEFAULT_TOKEN)
                    figures.append({"servers": size, "parallel": level,
                                    "seconds": round(seconds, 2), "peak_rss_mb": round(rss, 1)})
                    print("{:>7} {:>9} {:>9.2f} {:>12.1f}".format(size, level, seconds, rss),
                          flush=True)
    finally:
        standins.stdin.close()
        standins.wait(timeout=60)

    by = {(f["servers"], f["parallel"]): f for f in figures}
    ok = True
    big = max(sizes)
    if (big, 1) in by and (big, max(levels)) in by:
        top = max(levels)
        speedup = by[(big, 1)]["seconds"] / by[(big, top)]["seconds"]
        met = speedup >= 4.0
        ok = ok and met
        print("{} servers: --parallel {} is {:.1f}x faster than --parallel 1 (target >= 4x: {})"
              .format(big, top, speedup, "met" if met else "MISSED"))
        for level in levels:
            if level == 1 or (big, level) not in by:
                continue
            concurrent = min(level, big)
            growth = (by[(big, level)]["peak_rss_mb"] - by[(big, 1)]["peak_rss_mb"]) / (
                concurrent - 1)
            met = growth <= 15.0
            ok = ok and met
            print("{} servers, --parallel {}: peak RSS grows {:.1f} MB per concurrent server "
                  "(target <= 15 MB: {})".format(big, level, growth, "met" if met else "MISSED"))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(figures, handle, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
