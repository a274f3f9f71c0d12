"""Property-based fuzzing of every parser of server data (hypothesis).

Each parser gets at least 2,000 examples: realistic bodies (captured from the
stand-in once, plus hand-built ones) truncated, byte-corrupted, with one value
swapped for a random JSON value, or replaced by random JSON or random bytes.
The property: the only exceptions that escape are dhis2maint's own
(:class:`Dhis2Error` subclasses) -- never KeyError, TypeError, ValueError,
AttributeError, RecursionError or OverflowError from server data.

The parsers are driven without HTTP: ``FuzzSession._send`` hands the public
methods a :class:`requests.Response` built from the bytes, so the real
``decode_json`` -> convert/jobs/integrity code runs, and the stream parser is
fed the bytes in random chunks.  Deterministic (``derandomize=True``, no
example database).
"""
import io
import json
import os

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dhis2maint import Dhis2Error, InvalidResponseError, Session, convert, stream
from dhis2maint.errors import ApiError, error_for_response

testing = pytest.importorskip("dhis2maint.testing")

# CI: 2,000 deterministic examples per parser.  A longer random soak:
# DHIS2MAINT_FUZZ_EXAMPLES=50000 DHIS2MAINT_FUZZ_RANDOM=1 pytest tests/test_fuzz.py
EXAMPLES = int(os.environ.get("DHIS2MAINT_FUZZ_EXAMPLES", "2000"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize=not os.environ.get("DHIS2MAINT_FUZZ_RANDOM"),
                suppress_health_check=list(HealthCheck))
UID = "Vu1ZkG2Kb3D"
URL = "https://dhis2.example.org"


# ---------------------------------------------------------------------------
# driving the parsers without a network


def fake_response(body, status=200, ctype="application/json;charset=UTF-8", url=None):
    response = requests.Response()
    response.status_code = status
    response.reason = "OK" if status < 400 else "Error"
    response.headers["Content-Type"] = ctype
    response.raw = io.BytesIO(body)
    response.url = url or URL + "/api/x"
    response.encoding = "utf-8"
    return response


class FuzzSession(Session):
    """Every request answers 200 with the next body; no network."""

    body = b"{}"

    def _send(self, method, path, params=None, json_body=None, timeout=None, stream=False,
              headers=None, ok_statuses=None, max_bytes=None):
        response = fake_response(self.body)
        response.request = requests.Request(method, self.api_url(path)).prepare()
        if not stream:
            response._content = self.body
        return response


def session_for(version="2.42.0"):
    session = FuzzSession(URL, token="d2pat_fuzz", retries=0)
    session.server_version = version
    return session


COUNTS = {}  # test name -> examples run (each must reach EXAMPLES)


def fuzz(name, check, **strategies):
    """Run ``check(**drawn)`` for EXAMPLES hypothesis examples; assert they all ran."""
    count = [0]

    @FUZZ
    @given(**strategies)
    def run(**drawn):
        count[0] += 1
        check(**drawn)

    run()
    COUNTS[name] = count[0]
    assert count[0] >= EXAMPLES, count[0]


def only_our_errors(call, session, body):
    """Run ``call(session)`` with ``body`` as every answer; allow only Dhis2Error."""
    session.body = body
    try:
        result = call(session)
        if hasattr(result, "__next__"):
            for _ in result:
                pass
    except Dhis2Error:
        pass


# ---------------------------------------------------------------------------
# realistic bodies


def _capture():
    """Real bodies from the stand-in for each endpoint (a few, captured once)."""
    bodies = {}
    with testing.Dhis2StandIn(version="2.42", job_seconds=0.05,
                              issues={"categories_no_options": 4}) as srv:
        session = Session(srv.url, auth=("admin", "district"))
        get = lambda path, **params: session.get(session.api_url(path), params=params).content
        post = lambda path, **kw: session.post(session.api_url(path), **kw).content
        bodies["system_info"] = [get("system/info")]
        bodies["checks"] = [get("dataIntegrity")]
        start = json.loads(post("dataIntegrity/details", params={
            "checks": "categories_no_options,data_elements_aggregate_no_groups"}))
        session.wait_for_task("DATA_INTEGRITY_DETAILS", start["response"]["id"], timeout=10,
                              poll_interval=0.05)
        post("dataIntegrity/summary", params={"checks": "categories_no_options"})
        import time
        time.sleep(0.2)
        bodies["summary"] = [get("dataIntegrity/summary")]
        bodies["details"] = [get("dataIntegrity/details")]
        bodies["one_result"] = [get("dataIntegrity/categories_no_options/details"),
                                get("dataIntegrity/categories_no_options/summary")]
        bodies["job_start"] = [post("resourceTables/analytics"), json.dumps(start).encode()]
        job = json.loads(bodies["job_start"][0])["response"]["id"]
        time.sleep(0.2)
        bodies["notifications"] = [get("system/tasks/ANALYTICS_TABLE/" + job)]
        bodies["task_map"] = [get("system/tasks/ANALYTICS_TABLE", gist="false"),
                              get("system/tasks/ANALYTICS_TABLE")]
        bodies["job_configuration"] = [get("jobConfigurations/" + job)]
        bodies["validation"] = [session.post(session.api_url("dataAnalysis/validationRules"), json={
            "ou": "ImspTQPwCqd", "startDate": "2024-01-01", "endDate": "2024-12-31"}).content]
        bodies["predictors"] = [post("predictors/run", params={
            "startDate": "2024-01-01", "endDate": "2024-03-31"})]
        bodies["combo"] = [get("categoryCombos/t3aNCvHsoSn", fields=(
            "id,name,categories[id,name,categoryOptions[id]],categoryOptionCombos[id,name]"))]
        bodies["import_summary"] = [post(
            "maintenance/categoryOptionComboUpdate/categoryCombo/t3aNCvHsoSn")]
    with testing.Dhis2StandIn(version="2.36", job_seconds=0.05) as srv:
        session = Session(srv.url, auth=("admin", "district"))
        start = json.loads(session.post(session.api_url("dataIntegrity")).content)
        import time
        time.sleep(0.3)
        bodies["legacy_report"] = [session.get(session.api_url(
            "system/taskSummaries/DATA_INTEGRITY")).content]
    bodies["error"] = [
        json.dumps({"httpStatus": "Conflict", "httpStatusCode": 409, "status": "ERROR",
                    "message": "Job is already running.", "errorCode": "E1004"}).encode(),
        b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad "
        b"Gateway</h1></center><hr><center>nginx</center></body></html>",
    ]
    bodies["maintenance"] = [json.dumps({"httpStatus": "OK", "httpStatusCode": 200,
                                         "status": "OK", "message": "Cache cleared"}).encode()]
    return bodies


@pytest.fixture(scope="module")
def samples():
    return _capture()


# ---------------------------------------------------------------------------
# strategies
#
# Bodies are built by ``make_body`` from a hypothesis-drawn ``random.Random``
# (one cheap draw per example: 2,000 examples per parser fit the time budget);
# ``st.binary`` and a list of nasty bodies are mixed in as hypothesis strategies.

# Keys DHIS2 bodies use, so random objects hit the parsers' lookups.
KEYS = ["id", "name", "displayName", "message", "response", "status", "jobType", "created",
        "issues", "refs", "count", "error", "severity", "time", "level", "completed", "version",
        "categories", "categoryOptions", "categoryOptionCombos", "importSummaries", "x", ""]
STRINGS = ["", "2024-05-01T10:11:12.345", "2024-13-45T99:99", "INFO", "ERROR", "LOOP",
           "COMPLETED", "FAILED", "Process failed: x", "1" * 5000, "Generated " + "9" * 5000
           + " predictions", "2.42.1", "v2.42-SNAPSHOT", "99999999999999999999999.1", UID,
           "\x00\u202e\ud800", "\u00e9\U0001f600", "ANALYTICS_TABLE", "<html>"]
NUMBERS = [0, -1, 1, 2 ** 63, -2 ** 63 - 1, 10 ** 400, 0.5, -0.0, 1e308, float("inf"),
           float("-inf"), float("nan")]
JUNK = [b",", b"]", b"}", b"{", b"\"", b"\\", b"null", b"[[[[[[", b"\xff", b"\xe2\x82", b"\x00"]


def random_json(rnd, depth=0):
    roll = rnd.random()
    if depth >= 3 or roll < 0.5:
        pick = rnd.random()
        if pick < 0.15:
            return rnd.choice([None, True, False])
        if pick < 0.45:
            return rnd.choice(NUMBERS) if rnd.random() < 0.5 else rnd.randint(-10 ** 6, 10 ** 6)
        if pick < 0.8:
            return rnd.choice(STRINGS)
        return "".join(chr(rnd.randint(0, 0x2FFF)) for _ in range(rnd.randint(0, 8)))
    if roll < 0.75:
        return [random_json(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    return {rnd.choice(KEYS): random_json(rnd, depth + 1) for _ in range(rnd.randint(0, 3))}


def _dump(value):
    return json.dumps(value, allow_nan=True).encode("utf-8")


def _paths(value, prefix=()):
    """Every path into a JSON value (keys and indexes)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value[:20]):
            yield from _paths(item, prefix + (index,))


def _replace(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replace(value[head], rest, new)
    return copy


def _mutate(rnd, body):
    how = rnd.choice(["truncate", "corrupt", "swap", "swap", "swap", "drop", "insert", "wrap"])
    if how == "truncate" or not body:
        return body[:rnd.randint(0, max(0, len(body) - 1))]
    if how == "corrupt":
        data = bytearray(body)
        for _ in range(rnd.randint(1, 4)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        return bytes(data)
    if how == "insert":
        at = rnd.randint(0, len(body))
        return body[:at] + rnd.choice(JUNK) + body[at:]
    if how == "wrap":
        depth = rnd.randint(1, 3)
        return b"[" * depth + body + b"]" * depth
    try:
        value = json.loads(body.decode("utf-8"))
    except ValueError:  # an earlier mutation broke it: cut it instead
        return body[:rnd.randint(0, len(body) - 1)]
    paths = list(_paths(value))
    path = rnd.choice(paths)
    if how == "drop" and path:  # remove one key or item
        parent = value
        for step in path[:-1]:
            parent = parent[step]
        parent = dict(parent) if isinstance(parent, dict) else list(parent)
        del parent[path[-1]]
        return _dump(_replace(value, path[:-1], parent))
    return _dump(_replace(value, path, random_json(rnd)))


def make_body(rnd, pool):
    roll = rnd.random()
    if roll < 0.8:
        body = rnd.choice(pool)
        for _ in range(1 if rnd.random() < 0.7 else 3):
            body = _mutate(rnd, body)
        return body
    return _dump(random_json(rnd))


def bodies_from(samples, key):
    pool = samples[key]
    return st.one_of(
        st.randoms(use_true_random=True).map(lambda rnd: make_body(rnd, pool)),
        st.binary(max_size=64),
        st.sampled_from([b"", b"null", b" ", b"[" * 3000 + b"]" * 3000, b"{\"a\":" * 3000,
                         b"1e400", b"NaN", b"\xef\xbb\xbf{}", b"<html><form>password</form>"]),
    )


# ---------------------------------------------------------------------------
# one test per parser

PARSERS = {
    "system_info": ("system_info", "2.42.0", lambda s: _version_of(s)),
    "list_integrity_checks": ("checks", "2.42.0", lambda s: s.list_integrity_checks()),
    "list_integrity_checks_2.38": ("checks", "2.38.0",
                                   lambda s: s.list_integrity_checks(checks=["CNO", "cat*"])),
    "integrity_summary": ("summary", "2.42.0", lambda s: s.get_integrity_report(details=False)),
    "integrity_details_whole": ("details", "2.42.0",
                                lambda s: s.get_integrity_report(details=True)),
    "integrity_details_stream": ("details", "2.42.0", lambda s: s.iter_integrity_issues()),
    "integrity_one_result": ("one_result", "2.42.0",
                             lambda s: s.get_integrity_check_result("categories_no_options",
                                                                    details=True)),
    "integrity_legacy_2.36": ("legacy_report", "2.36.0",
                              lambda s: s.get_integrity_report(details=True)),
    "task_notifications": ("notifications", "2.42.0",
                           lambda s: s.get_task_notifications("ANALYTICS_TABLE", UID)),
    "task_map_latest": ("task_map", "2.42.0", lambda s: s.get_latest_task("ANALYTICS_TABLE")),
    "job_start": ("job_start", "2.42.0", lambda s: s.refresh_analytics()),
    "job_configuration": ("job_configuration", "2.42.0", lambda s: s.get_job_configuration(UID)),
    "validation_violations": ("validation", "2.42.0", lambda s: s.run_validation_analysis(
        "ImspTQPwCqd", "2024-01-01", "2024-12-31")),
    "predictor_reply": ("predictors", "2.42.0",
                        lambda s: s.run_predictors("2024-01-01", "2024-03-31")),
    "category_combo": ("combo", "2.42.0", lambda s: s.get_category_combo_state("t3aNCvHsoSn")),
    "coc_import_summary": ("import_summary", "2.42.0",
                           lambda s: s.update_category_option_combos("t3aNCvHsoSn")),
    "maintenance_reply": ("maintenance", "2.43.0", lambda s: s.clear_cache()),
    "saved_report_from_json": ("details", "2.42.0", lambda s: convert.from_json(
        s.body.decode("utf-8", "replace"))),
}


def _version_of(session):
    session.server_version = None
    return session.server_version


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_parser_raises_only_dhis2_errors(samples, name):
    key, version, call = PARSERS[name]
    session = session_for(version)

    def check(body):
        only_our_errors(call, session, body)

    fuzz("parser " + name, check, body=bodies_from(samples, key))


def test_error_web_message_always_becomes_an_api_error(samples):
    def check(body, status, ctype):
        response = fake_response(body, status, ctype)
        err = error_for_response(response, "POST", "/api/resourceTables")
        assert isinstance(err, ApiError) and err.status_code == status
        assert str(err).startswith("POST /api/resourceTables -> HTTP {}".format(status))

    fuzz("error WebMessage", check, body=bodies_from(samples, "error"),
         status=st.sampled_from([400, 401, 403, 404, 409, 429, 500, 502, 503]),
         ctype=st.sampled_from(["application/json", "text/html", "", "text/plain"]))


# ---------------------------------------------------------------------------
# the stream parser on bytes: random chunking, and "every complete issue first"


def _details_body():
    """A details body built piece by piece; returns (bytes, [(end offset, issue id)])."""
    pieces, ends = [], []
    size = 0

    def put(text):
        nonlocal size
        data = text.encode("utf-8")
        pieces.append(data)
        size += len(data)

    put("{")
    for c, (check, count) in enumerate([("categories_no_options", 3),
                                        ("orgunits_\u00e9t\u00e9_{}", 0),
                                        ("data_elements_aggregate_no_groups", 40)]):
        if c:
            put(",")
        put(json.dumps(check) + ':{"name":' + json.dumps(check)
            + ',"displayName":"D\\u00e9j\\u00e0 \\"vu\\" \u2603","severity":"WARNING",'
              '"section":"Sec, tion {x}","issues":[')
        for i in range(count):
            if i:
                put(", " if i % 2 else ",\n ")
            issue = {"id": "a{:010d}".format(i),
                     "name": "Issue },{ \"" + str(i) + "\" \u00fc\U0001f600",
                     "comment": None if i % 3 else "c\\o,m}]",
                     "refs": [] if i % 4 else ["r1", {"x": [1, {"y": "}"}]}]}
            put(json.dumps(issue, ensure_ascii=bool(i % 2)))
            ends.append((size, check, issue["id"]))
        put('],"count":{}}}'.format(count))
    put("}")
    return b"".join(pieces), ends


DETAILS, ISSUE_ENDS = _details_body()


def _chunked(data, cuts):
    points = sorted(set(min(len(data), c) for c in cuts))
    start = 0
    for point in points + [len(data)]:
        yield data[start:point]
        start = point


def test_stream_reads_the_whole_body_in_any_chunking():
    def check(cuts):
        rows = list(stream.iter_issue_rows(_chunked(DETAILS, cuts)))
        assert [(r.check_name, r.issue.id) for r in rows] == [(c, i) for _, c, i in ISSUE_ENDS]

    fuzz("stream, any chunking", check, cuts=st.lists(st.integers(0, len(DETAILS)), max_size=30))


def test_truncated_stream_yields_exactly_the_complete_issues_first():
    def check(cut, cuts):
        rows = []
        with pytest.raises(Dhis2Error):
            for row in stream.iter_issue_rows(_chunked(DETAILS[:cut], cuts)):
                rows.append(row)
        expected = [(c, i) for end, c, i in ISSUE_ENDS if end <= cut]
        assert [(r.check_name, r.issue.id) for r in rows] == expected

    fuzz("stream, truncated", check, cut=st.integers(0, len(DETAILS) - 1),
         cuts=st.lists(st.integers(0, len(DETAILS)), max_size=8))


def test_stream_parser_on_corrupt_bytes():
    def check(body, cuts):
        try:
            for _ in stream.iter_issue_rows(_chunked(body, cuts)):
                pass
        except Dhis2Error:
            pass

    fuzz("stream, corrupt bytes", check,
         body=st.randoms(use_true_random=True).map(lambda rnd: make_body(rnd, [DETAILS]))
         | st.binary(max_size=200),
         cuts=st.lists(st.integers(0, 4000), max_size=6))


def test_report_from_dict_on_random_json():
    def report_like(rnd):
        return {rnd.choice(["categories_no_options", "x", ""]): random_json(rnd)
                for _ in range(rnd.randint(0, 3))} if rnd.random() < 0.7 else random_json(rnd)

    def check(data, details):
        try:
            convert.report_from_dict(data, details)
        except Dhis2Error:
            pass

    fuzz("report_from_dict, random JSON", check,
         data=st.randoms(use_true_random=True).map(report_like),
         details=st.sampled_from([None, True, False]))


def test_decode_json_never_lets_a_decoder_error_out():
    from dhis2maint.session import decode_json

    def check(body, ctype):
        try:
            decode_json(fake_response(body, 200, ctype), "GET /api/x",
                        expect=(dict, list))
        except Dhis2Error:
            pass

    fuzz("decode_json", check,
         body=st.binary(max_size=80)
         | st.randoms(use_true_random=True).map(lambda rnd: _dump(random_json(rnd)))
         | st.sampled_from([b"[" * 3000, b"{\"a\":[" * 2000])
         | st.text(max_size=40).map(lambda t: t.encode("utf-16")),
         ctype=st.sampled_from(["application/json", "text/html", ""]))



# ---------------------------------------------------------------------------
# #13: deep nesting and non-finite numbers, whole body and stream alike

NON_FINITE = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-2E999"]


def _whole_and_stream(body, cuts):
    """(rows or the error class) of the whole-body and the streaming reader."""
    session = session_for("2.42.0")
    session.body = body
    outcomes = []
    for read in (lambda: list(session.get_integrity_report(details=True).issue_rows()),
                 lambda: list(stream.iter_issue_rows(_chunked(body, cuts)))):
        try:
            rows = read()
            outcomes.append([(r.check_name, r.issue.id, r.issue.refs) for r in rows])
        except Dhis2Error as exc:
            outcomes.append(type(exc))
    return outcomes


def _value_spots(body):
    """Offsets in DETAILS where a JSON value starts outside strings (after ':' or '[' or ',')."""
    spots, in_string, escape = [], False, False
    for i, ch in enumerate(body.decode("utf-8")):
        if in_string:
            escape = not escape and ch == "\\"
            if ch == '"' and not escape:
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in ":[," and i + 1 < len(body):
            spots.append(i + 1)
    text = body.decode("utf-8")
    return [len(text[:s].encode("utf-8")) for s in spots]


SPOTS = _value_spots(DETAILS)


def test_non_finite_numbers_are_rejected_by_both_readers():
    def check(spot, token, cuts):
        at = SPOTS[spot]
        body = DETAILS[:at] + token + b"," + DETAILS[at:] if DETAILS[at:at + 1] not in b"]}" \
            else DETAILS[:at] + token + DETAILS[at:]
        whole, streamed = _whole_and_stream(body, cuts)
        # either the insertion broke the syntax (both reject it) or NaN got in: never accepted
        assert whole is InvalidResponseError and streamed is InvalidResponseError, (body[
            max(0, at - 30):at + 30], whole, streamed)

    fuzz("non-finite numbers", check, spot=st.integers(0, len(SPOTS) - 1),
         token=st.sampled_from(NON_FINITE), cuts=st.lists(st.integers(0, len(DETAILS)),
                                                           max_size=6))


def test_deep_nesting_is_read_or_rejected_the_same_by_both_readers():
    def check(depth, kind, cuts):
        nested = (b"[" * depth + b"]" * depth) if kind == "list" else (
            b'{"a":' * depth + b"1" + b"}" * depth)
        # as the first ref of the first issue of categories_no_options
        marker = b'"refs": ['
        at = DETAILS.index(marker) + len(marker)
        body = DETAILS[:at] + nested + b"," + DETAILS[at:]
        whole, streamed = _whole_and_stream(body, cuts)
        # Rows, or -- too deep for this Python's recursion limit, which depends on
        # how deep the caller's stack already is -- InvalidResponseError, never a
        # RecursionError; when both read it, they read the same.
        for outcome in (whole, streamed):
            assert isinstance(outcome, list) or outcome is InvalidResponseError
        if isinstance(whole, list) and isinstance(streamed, list):
            assert whole == streamed

    fuzz("deep nesting", check, depth=st.integers(1, 3000) | st.just(20000),
         kind=st.sampled_from(["list", "object"]),
         cuts=st.lists(st.integers(0, len(DETAILS) + 6000), max_size=6))
