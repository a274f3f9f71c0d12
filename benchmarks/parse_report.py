"""How long `Session.get_integrity_report(details=True)` takes on a big report.

A 95-check details report with 100,000 issues in total (issue shapes as DHIS2
2.42 writes them: plain id+name, with a comment, with refs, and the
``"Name:uid"`` names of programmatic checks; a few big checks and many small
ones) is served by a local stdlib HTTP server.  Best of N runs of:

* ``json.loads(body)``                          -- the floor: decoding alone, body in memory
* ``requests.get(url).json()``                  -- HTTP + decoding
* ``convert.report_from_dict(json.loads(body))`` -- decoding + building the models
* ``Session.get_integrity_report(details=True)`` -- everything the user calls
* the same, and ``json.loads``, with the cyclic GC paused (``gc.disable()``)

and how long one ``get_integrity_report`` call spends in the cyclic garbage
collector (``gc.callbacks``).

It also checks that cattrs structure functions are generated once per class,
not per call, by counting calls to ``cattrs.gen.make_dict_structure_fn`` (and
the names other modules import it under) during two consecutive
``get_integrity_report`` calls in this fresh process.

    python benchmarks/parse_report.py [--runs 5] [--issues 100000] [--profile]

``--profile`` adds a cProfile of one ``get_integrity_report`` call (GC paused).
"""
import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the work tree's dhis2maint, from a fresh clone

import cattrs.gen  # noqa: E402
import requests  # noqa: E402

import dhis2maint  # noqa: E402
from dhis2maint import convert  # noqa: E402

CHECKS = 95
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
WORDS = ["Bo", "Bombali", "Bonthe", "Kailahun", "Kambia", "Kenema", "Koinadugu", "Kono",
         "Moyamba", "Port Loko", "Pujehun", "Tonkolili", "Western Area", "Ngelehun Health Post"]
COMMENTS = ["Expression is not well-formed", "Invalid data element reference",
            "Division by zero in expression", "Opening date is after closing date"]


# --- the report body -------------------------------------------------------------------


def uid(rng):
    return rng.choice(ALNUM[:52]) + "".join(rng.choice(ALNUM) for _ in range(10))


def issue(rng, shape, label, i):
    name = "{} {} {}".format(label, rng.choice(WORDS), i + 1)
    ident = uid(rng)
    if shape == "plain":
        return {"id": ident, "name": name}
    if shape == "comment":
        return {"id": ident, "name": name, "comment": rng.choice(COMMENTS)}
    if shape == "refs":
        refs = ["{} {}:{}".format(label, rng.choice(WORDS), uid(rng))
                for _ in range(rng.randint(1, 3))]
        return {"id": ident, "name": name, "refs": refs}
    # programmatic checks: "Name:uid" names, refs always present (sorted)
    return {"id": ident, "name": "{}:{}".format(name, ident), "comment": rng.choice(COMMENTS),
            "refs": sorted("{}:{}".format(rng.choice(WORDS), uid(rng))
                           for _ in range(rng.randint(0, 2)))}


def issue_counts(total, checks, rng):
    """A skewed split: a few checks hold most issues, a third have none."""
    weights = [0.0 if k % 3 == 2 else rng.paretovariate(1.2) for k in range(checks)]
    scale = total / sum(weights)
    counts = [int(w * scale) for w in weights]
    counts[0] += total - sum(counts)
    return counts


def build_body(total, seed=1):
    """(body bytes, number of issues) of a DHIS2 2.42 ``GET /api/dataIntegrity/details``."""
    rng = random.Random(seed)
    path = os.path.join(os.path.dirname(HERE), "dhis2maint", "checks-2.42.json")
    with open(path, encoding="utf-8") as handle:
        catalogue = json.load(handle)["checks"][:CHECKS]
    report = {}
    for check, count in zip(catalogue, issue_counts(total, CHECKS, rng)):
        if check["isProgrammatic"]:
            shape = "programmatic"
        else:
            shape = ("plain", "plain", "comment", "refs")[len(check["name"]) % 4]
        label = (check.get("issuesIdType") or "object").rstrip("s")
        entry = dict(check, averageExecutionTime=rng.randint(5, 5000),
                     startTime="2026-11-25T01:30:02.120", finishedTime="2026-11-25T01:30:04.913")
        entry["issues"] = [issue(rng, shape, label, i) for i in range(count)]
        report[check["name"]] = entry
    body = json.dumps(report, separators=(",", ":")).encode("utf-8")
    return body, sum(len(e["issues"]) for e in report.values())


# --- a local server ----------------------------------------------------------------------------


def serve(body):
    info = json.dumps({"version": "2.42.1"}).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real server

        def do_GET(self):  # noqa: N802 - http.server's naming
            payload = body if self.path.startswith("/api/dataIntegrity/details") else info
            self.send_response(200)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:{}".format(server.server_port)


# --- measuring ---------------------------------------------------------------------------------


def best_of(runs, fn):
    times = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        del result
    return min(times)


def paused_gc(fn):
    """``fn`` with the cyclic garbage collector off: what the library would gain by
    pausing it while it builds 100,000 acyclic objects."""
    def run():
        gc.disable()
        try:
            return fn()
        finally:
            gc.enable()
    return run


def gc_share(fn):
    """(seconds spent in the cyclic GC during ``fn()``, collections by generation)."""
    spent, started, collections = [0.0], [0.0], [0, 0, 0]

    def callback(phase, info):
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - started[0]
            collections[info["generation"]] += 1

    gc.collect()
    gc.callbacks.append(callback)
    try:
        fn()
    finally:
        gc.callbacks.remove(callback)
    return spent[0], collections


def count_hook_generation(session):
    """Calls to make_dict_structure_fn during each of two get_integrity_report calls."""
    calls = []
    original = cattrs.gen.make_dict_structure_fn

    def counting(*args, **kwargs):
        calls.append(getattr(args[0], "__name__", args[0]) if args else kwargs.get("cl"))
        return original(*args, **kwargs)

    # convert.py imports the function by name, cattrs.converters too: patch each binding.
    modules = [cattrs.gen, convert]
    converters = sys.modules.get("cattrs.converters")
    if converters is not None and getattr(converters, "make_dict_structure_fn", None) is original:
        modules.append(converters)
    for module in modules:
        module.make_dict_structure_fn = counting
    try:
        per_call = []
        for _ in range(2):
            before = len(calls)
            session.get_integrity_report(details=True)
            per_call.append(calls[before:])
    finally:
        for module in modules:
            module.make_dict_structure_fn = original
    return per_call


def versions_line():
    try:
        from importlib.metadata import version
    except ImportError:  # Python 3.7
        def version(name):
            import pkg_resources
            return pkg_resources.get_distribution(name).version
    return "Python {} ({}), requests {}, attrs {}, cattrs {}".format(
        platform.python_version(), platform.machine(), version("requests"), version("attrs"),
        version("cattrs"))


def profile(session, top):
    # GC paused: otherwise its pauses are charged to whichever function allocates
    # (DataIntegrityIssue.__init__); the GC's share is measured separately above.
    profiler = cProfile.Profile()
    gc.collect()
    gc.disable()
    profiler.enable()
    session.get_integrity_report(details=True)
    profiler.disable()
    gc.enable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    print("\ncProfile of one get_integrity_report(details=True), GC paused, by own time:")
    lines = text.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    print("\n".join(line.rstrip() for line in lines[start:] if line.strip()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="best of this many runs (5)")
    parser.add_argument("--issues", type=int, default=100000, help="issues in total (100000)")
    parser.add_argument("--profile", action="store_true", help="cProfile one call as well")
    args = parser.parse_args()

    body, total = build_body(args.issues)
    server, url = serve(body)
    session = dhis2maint.Session(url, auth=("admin", "district"), stream_deadline=600)
    http = requests.Session()
    details_url = url + "/api/dataIntegrity/details"

    # First, in this fresh process: hooks are generated on the first call only.
    per_call = count_hook_generation(session)

    report = session.get_integrity_report(details=True)
    assert len(report) == CHECKS and sum(len(r.issues) for r in report) == total
    del report  # a live 100k-object report would slow every later collection

    def get_report():
        return session.get_integrity_report(details=True)

    rows = [
        ("json.loads(body)", best_of(args.runs, lambda: json.loads(body))),
        ("requests .json()", best_of(args.runs, lambda: http.get(details_url).json())),
        ("report_from_dict(json.loads)",
         best_of(args.runs, lambda: convert.report_from_dict(json.loads(body), True))),
        ("get_integrity_report(details)", best_of(args.runs, get_report)),
        ("  the same, GC paused", best_of(args.runs, paused_gc(get_report))),
        ("json.loads(body), GC paused", best_of(args.runs, paused_gc(lambda: json.loads(body)))),
    ]
    floor, via_requests = rows[0][1], rows[1][1]
    in_gc, collections = gc_share(get_report)

    print(versions_line())
    print("{} checks, {:,} issues, {:.1f} MB body; best of {} runs\n".format(
        CHECKS, total, len(body) / 1e6, args.runs))
    print("  {:<31} {:>9} {:>12} {:>13}".format("", "ms", "vs json.loads", "vs requests"))
    for label, seconds in rows:
        print("  {:<31} {:>9.1f} {:>12.2f}x {:>12.2f}x".format(
            label, seconds * 1000, seconds / floor, seconds / via_requests))
    print("\nOne get_integrity_report call spent {:.1f} ms in the cyclic GC "
          "(collections by generation: {})".format(in_gc * 1000, "/".join(map(str, collections))))
    print("make_dict_structure_fn calls: first get_integrity_report {} ({}), second {}".format(
        len(per_call[0]), ", ".join(sorted(set(map(str, per_call[0])))) or "-", len(per_call[1])))
    if per_call[1]:
        print("  PROBLEM: structure functions are regenerated on every call")
    if args.profile:
        profile(session, 15)
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
