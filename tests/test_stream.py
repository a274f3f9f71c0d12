"""The incremental details reader (dhis2maint.stream) and Session.iter_integrity_issues.

Chunk boundaries are controlled exactly: the parser is fed lists of byte
chunks, and the session-level tests give ``Session`` a fake streamed response.
The property test checks, for random reports split at random byte
boundaries, that streaming yields exactly ``get_integrity_report(details=True)``'s
rows in the same order.
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dhis2maint import (DataIntegrityIssue, DataIntegritySeverity, IntegrityIssueRow,
                        InvalidResponseError, Session, TransportError, convert, stream)

URL = "https://dhis2.example.org"
DETAILS_URL = URL + "/api/dataIntegrity/details"


# --- helpers -------------------------------------------------------------------------------


def check_obj(name, issues, severity="WARNING", display=None, **extra):
    """A details object in DHIS2's field order (check fields, times, issues last)."""
    obj = {"name": name, "displayName": display or name.replace("_", " ").title(),
           "section": "Test", "sectionOrder": 1, "severity": severity,
           "description": "about " + name, "issuesIdType": "organisationUnits",
           "isSlow": False, "isProgrammatic": False, "code": "X",
           "startTime": "2025-01-31T10:15:02.120", "finishedTime": "2025-01-31T10:15:02.133"}
    obj.update(extra)
    obj["issues"] = issues
    return obj


def serialise(report, indent=None, ensure_ascii=False):
    """(body bytes, byte offset just after each issue, in order) for a details map.

    Built by hand so the end offset of every issue is known exactly."""
    sep = "," if indent is None else ", "
    parts = ["{"]
    ends = []
    size = [1]

    def put(text):
        data = text.encode("utf-8")
        parts.append(text)
        size[0] += len(data)

    for i, (key, obj) in enumerate(report.items()):
        put((sep if i else "") + json.dumps(key, ensure_ascii=ensure_ascii) + ":{")
        for j, (field, value) in enumerate(obj.items()):
            put((sep if j else "") + json.dumps(field) + ":")
            if field == "issues":
                put("[")
                for k, issue in enumerate(value):
                    if k:
                        put(sep + ("\n  " if indent else ""))
                    put(json.dumps(issue, indent=indent, ensure_ascii=ensure_ascii))
                    ends.append(size[0])
                put("]")
            else:
                put(json.dumps(value, indent=indent, ensure_ascii=ensure_ascii))
        put("}")
    put("}")
    body = "".join(parts).encode("utf-8")
    assert json.loads(body.decode("utf-8")) == report
    return body, ends


def expected_rows(body):
    return list(convert.report_from_dict(json.loads(body.decode("utf-8")), True).issue_rows())


def split(body, cuts):
    cuts = sorted(set(c for c in cuts if 0 < c < len(body)))
    return [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)])]


def rows_of(chunks):
    return list(stream.iter_issue_rows(chunks))


def rows_until_error(chunks):
    rows = []
    with pytest.raises(InvalidResponseError) as info:
        for row in stream.iter_issue_rows(chunks):
            rows.append(row)
    return rows, info.value


TRICKY = {
    "orgunits_no_coordinates": check_obj("orgunits_no_coordinates", [
        {"id": "a1B2c3D4e5F", "name": 'Quote " and backslash \\ and },{ inside'},
        {"id": "b1B2c3D4e5F", "name": "caf\u00e9 \u6f22\u5b57 \U0001f600", "comment": "\u00e9"},
        {"id": "c1B2c3D4e5F", "name": "refs", "refs": ["A:x1", "]}", "{\"k\": [1]}"]},
        {"name": "no id", "comment": "tab\tnewline\n"},
        {"id": "d1B2c3D4e5F", "name": "\\\"", "refs": []},
    ], severity="INFO"),
    'we"ird\\name': check_obj('we"ird\\name', [], severity="SEVERE"),
    "categories_no_options": check_obj("categories_no_options", [
        {"id": "e1B2c3D4e5F", "name": "Cat %d" % i} for i in range(40)], severity="CRITICAL"),
}


# --- the parser ----------------------------------------------------------------------------


@pytest.mark.parametrize("indent, ensure_ascii", [(None, False), (None, True), (2, False),
                                                  (4, True)])
def test_every_single_split_point(indent, ensure_ascii):
    body, _ends = serialise(TRICKY, indent=indent, ensure_ascii=ensure_ascii)
    expected = expected_rows(body)
    assert len(expected) == 45
    for cut in range(1, len(body)):  # inside strings, escapes, \u00e9, multi-byte UTF-8 …
        assert rows_of([body[:cut], body[cut:]]) == expected, cut


def test_byte_by_byte():
    body, _ends = serialise(TRICKY)
    assert rows_of([body[i:i + 1] for i in range(len(body))]) == expected_rows(body)


def test_row_fields_and_types():
    body, _ = serialise(TRICKY)
    rows = rows_of([body])
    first = rows[0]
    assert first == IntegrityIssueRow("orgunits_no_coordinates", "Orgunits No Coordinates",
                                      DataIntegritySeverity.INFO, DataIntegrityIssue(
                                          "a1B2c3D4e5F", 'Quote " and backslash \\ and },{ inside',
                                          None, []))
    assert rows[2].issue.refs == ["A:x1", "]}", "{\"k\": [1]}"]
    assert rows[3].issue.id is None and rows[3].issue.comment == "tab\tnewline\n"
    assert {r.check_name for r in rows} == {"orgunits_no_coordinates", "categories_no_options"}


def test_split_escapes_and_multibyte_exactly():
    body = '{"c":{"name":"c","displayName":"C","severity":"INFO","issues":[' \
           '{"id":"a","name":"x\\"y\\u00e9z\u20ac\U0001f600"}]}}'.encode("utf-8")
    expected = expected_rows(body)
    assert expected[0].issue.name == 'x"y\u00e9z\u20ac\U0001f600'
    for marker in (b'\\"', b"\\u00e9", "\u20ac".encode(), "\U0001f600".encode()):
        at = body.index(marker)
        for inside in range(1, len(marker)):
            assert rows_of([body[:at + inside], body[at + inside:]]) == expected


def test_issues_before_metadata_are_held_until_the_check_ends():
    obj = {"issues": [{"id": "a1B2c3D4e5F", "name": "A"}, {"id": "b1B2c3D4e5F"}],
           "name": "late", "displayName": "Late metadata", "severity": "SEVERE"}
    body = json.dumps({"late": obj, "next": check_obj("next", [{"name": "n"}])}).encode()
    rows = rows_of(split(body, range(0, len(body), 7)))
    assert rows == expected_rows(body)
    assert rows[0].check_display_name == "Late metadata"
    assert rows[0].severity == DataIntegritySeverity.SEVERE


def test_missing_name_uses_the_map_key():
    body = json.dumps({"keyed": {"displayName": "K", "severity": "INFO",
                                 "issues": [{"id": "a"}]}}).encode()
    assert [r.check_name for r in rows_of([body])] == ["keyed"]
    assert rows_of([body]) == expected_rows(body)


def test_unknown_severity_stays_a_string():
    body = json.dumps({"c": check_obj("c", [{"id": "a"}], severity="BLOCKER")}).encode()
    (row,) = rows_of([body])
    assert row.severity == "BLOCKER" and not isinstance(row.severity, DataIntegritySeverity)


@pytest.mark.parametrize("body", [b"{}", b"  {  }  ", b"\xef\xbb\xbf{}", b"{\n}\n"])
def test_empty_report(body):
    assert rows_of([body]) == []


def test_failed_check_and_summary_objects_give_no_rows():
    report = {
        "bad": check_obj("bad", [], error="Check failed because an exception was thrown: x",
                         count=-1),
        "summary": {"name": "summary", "displayName": "S", "severity": "INFO", "count": 3},
        "ok": check_obj("ok", [{"id": "a"}]),
    }
    body = json.dumps(report).encode()
    assert [r.check_name for r in rows_of([body])] == ["ok"]


def test_unknown_nested_fields_are_skipped():
    obj = check_obj("c", [{"id": "a", "extra": {"deep": [1, {"x": "}]"}]}}])
    obj = dict(obj, future={"nested": [1, 2, {"a": "b"}]}, number=12.5e3, flag=None)
    obj["issues"] = obj.pop("issues")
    body = json.dumps({"c": obj}).encode()
    for cut in range(1, len(body)):
        assert rows_of([body[:cut], body[cut:]]) == expected_rows(body)


def test_numbers_split_across_chunks():
    body = b'{"c":{"name":"c","sectionOrder":123456789,"displayName":"C","severity":"INFO",' \
           b'"issues":[{"id":"a"}]}}'
    at = body.index(b"12345")
    assert rows_of([body[:at + 3], body[at + 3:]]) == expected_rows(body)


def test_truncated_at_every_point_yields_exactly_the_complete_rows():
    body, ends = serialise(TRICKY)
    expected = expected_rows(body)
    for cut in range(0, len(body)):
        rows, error = rows_until_error([body[:cut]] if cut else [])
        complete = sum(1 for end in ends if end <= cut)
        assert rows == expected[:complete], cut
        assert "truncated" in str(error) or "empty body" in str(error) \
            or "UTF-8" in str(error), (cut, str(error))


def test_truncated_in_chunks_yields_rows_before_raising():
    issues = [{"id": "x%010d" % i, "name": "n%d" % i} for i in range(2000)]
    body, ends = serialise({"c": check_obj("c", issues)})
    cut = ends[1500] + 5
    rows, error = rows_until_error(split(body[:cut], range(0, cut, 4096)))
    assert len(rows) == 1501
    assert "after 1501 complete issue rows" in str(error)


@pytest.mark.parametrize("body, message", [
    (b"", "empty body"),
    (b"   ", "empty body"),
    (b"[]", "expected '{'"),
    (b"null", "expected '{'"),
    (b"<html><body>Bad gateway</body></html>", "HTML"),
    (b'{"c": 5}', "not a JSON object"),
    (b'{"c": {"name": "c", "issues": {"a": 1}}}', "not a list"),
    (b'{"c": {"name": "c", "issues": ["text"]}}', "issue of check 'c'"),
    (b'{"c": {"name": "c", "issues": [{"id": "a"}]}} trailing', "after the end"),
    (b'{"c": {"name": "c", "issues": [{"id": "a"} {"id": "b"}]}}', "expected ',' or ']'"),
    (b'{"c": {"name": "c" "x": 1}}', "expected ',' or '}'"),
    (b'{"c": {"name": "c", "issues": [{"id": tru}]}}', "malformed JSON"),
    (b'{"c": {"name": "c", "severity": 5, "displayName": "x", "issues": []}}', "unexpected JSON"),
    (b'{"c": {"name": "c", "issues": [}', "malformed"),
    (b'{"c" {}}', "expected ':'"),
])
def test_malformed_bodies_raise_invalid_response(body, message):
    for chunks in ([body], [body[i:i + 1] for i in range(len(body))]):
        with pytest.raises(InvalidResponseError) as info:
            rows_of(chunks)
        assert message in str(info.value)


def test_malformed_issue_after_good_ones_yields_the_good_ones_first():
    good = ",".join('{"id":"a%d","name":"n"}' % i for i in range(300))
    body = ('{"c":{"name":"c","displayName":"C","severity":"INFO","issues":[' + good +
            ',{"id":"bad" "name":"x"},{"id":"z"}]}}').encode()
    for chunks in ([body], split(body, range(0, len(body), 1000))):
        rows, error = rows_until_error(chunks)
        assert len(rows) == 300
        assert "malformed JSON" in str(error)


def test_not_utf8_yields_rows_before_the_bad_byte():
    body = b'{"c":{"name":"c","displayName":"C","severity":"INFO","issues":[{"id":"a"},' \
           b'{"id":"b\xff"}]}}'
    rows, error = rows_until_error([body])
    assert [r.issue.id for r in rows] == ["a"]
    assert "UTF-8" in str(error)
    rows, error = rows_until_error([body[:-5] + b"\xe2\x82"])  # ends inside a character
    assert "UTF-8" in str(error) or "truncated" in str(error)


def test_deeply_nested_value_is_an_invalid_response():
    deep = "[" * 100000 + "]" * 100000
    body = ('{"c":{"name":"c","x":' + deep + ',"issues":[]}}').encode()
    with pytest.raises(InvalidResponseError):
        rows_of([body])


def test_oversized_single_value_is_refused(monkeypatch):
    monkeypatch.setattr(stream, "MAX_VALUE_CHARS", 1000)
    body = b'{"c":{"name":"c","description":"' + b"x" * 5000
    with pytest.raises(InvalidResponseError) as info:
        rows_of(split(body, range(0, len(body), 100)) + [b"x" * 100])
    assert "larger than 1000" in str(info.value)


def test_adversarial_separators_inside_strings_still_parse():
    issues = [{"id": "i%d" % i, "name": "},{" * (i % 5) + "}, {", "refs": ["},{", "}"]}
              for i in range(3000)]
    body = json.dumps({"c": check_obj("c", issues), "d": check_obj("d", issues[:10])}).encode()
    expected = expected_rows(body)
    for size in (97, 4096, 65536):
        assert rows_of(split(body, range(0, len(body), size))) == expected


def test_many_checks_with_few_issues_and_pretty_printing():
    report = {"check_%d" % i: check_obj("check_%d" % i, [{"id": "u%d" % j, "name": "n"}
                                                         for j in range(i % 4)])
              for i in range(200)}
    for indent in (None, 2):
        body = json.dumps(report, indent=indent).encode()
        expected = expected_rows(body)
        assert len(expected) == sum(i % 4 for i in range(200))
        for size in (13, 1000, 65536):
            assert rows_of(split(body, range(0, len(body), size))) == expected


def test_first_rows_arrive_before_the_body_ends():
    issues = [{"id": "x%010d" % i, "name": "n"} for i in range(20000)]
    body, _ = serialise({"c": check_obj("c", issues)})
    fed = []

    def chunks():
        for chunk in split(body, range(0, len(body), 65536)):
            fed.append(len(chunk))
            yield chunk

    rows = stream.iter_issue_rows(chunks())
    next(rows)
    assert sum(fed) <= 2 * 65536 < len(body)


# --- Session.iter_integrity_issues with a fake streamed response ---------------------------


class FakeStreamResponse:
    """What ``Session._send(stream=True)`` returns, with the chunks chosen by the test."""

    status_code = 200
    headers = {"Content-Type": "application/json"}

    def __init__(self, chunks, error=None, delay=0.0):
        self.chunks = list(chunks)
        self.error = error
        self.delay = delay
        self.closed = False
        self.chunk_sizes = []
        self.raw = None

    def iter_content(self, chunk_size=1):
        self.chunk_sizes.append(chunk_size)
        for chunk in self.chunks:
            if self.delay:
                time.sleep(self.delay)
            yield chunk
        if self.error is not None:
            raise self.error

    def close(self):
        self.closed = True


class StreamSession(Session):
    """A Session whose streamed GET returns ``self.fake``; other calls go out normally."""

    fake = None
    sent = None

    def _send(self, method, path, params=None, json_body=None, timeout=None, stream=False,
              headers=None, ok_statuses=None, max_bytes=None):
        if stream:
            self.sent = (method, path, params, timeout)
            return self.fake
        return Session._send(self, method, path, params=params, json_body=json_body,
                             timeout=timeout, stream=stream, headers=headers,
                             ok_statuses=ok_statuses)


def stream_session(fake, version=(2, 42, 0), **kwargs):
    session = StreamSession(URL, auth=("admin", "district"), **kwargs)
    session.server_version = version
    session.fake = fake
    return session


def test_session_streams_with_64k_reads_and_params():
    body, _ = serialise(TRICKY)
    fake = FakeStreamResponse([body])
    session = stream_session(fake)
    # checks already matched (DataIntegrityCheck objects) need no GET /api/dataIntegrity
    from dhis2maint.models import DataIntegrityCheck

    rows = list(session.iter_integrity_issues(checks=[
        DataIntegrityCheck(name="orgunits_no_coordinates", code="ONC"),
        DataIntegrityCheck(name="categories_no_options", code="CNO")]))
    assert rows == expected_rows(body)
    assert session.sent[:3] == ("GET", "dataIntegrity/details",
                                {"checks": "orgunits_no_coordinates,categories_no_options"})
    assert fake.chunk_sizes == [65536]
    assert fake.closed


def test_iter_is_a_lazy_generator_that_checks_arguments_at_once():
    session = stream_session(FakeStreamResponse([b"{}"]))
    with pytest.raises(ValueError):
        session.iter_integrity_issues(checks=["a,b"])
    gen = session.iter_integrity_issues()
    assert session.sent is None  # nothing sent before the first next()
    assert list(gen) == []
    assert session.sent is not None


def test_a_selection_too_long_for_the_url_reads_every_check_and_passes_on_its_own():
    # Over 4,000 characters of names: the whole body is asked for and the
    # selected checks' rows are picked out while streaming.
    from dhis2maint.models import DataIntegrityCheck

    names = ["check_{:03d}_{}".format(i, "x" * 40) for i in range(100)]
    issues = [{"id": "x%010d" % i, "name": "n%d" % i} for i in range(300)]
    report = {names[0]: check_obj(names[0], issues[:120], severity="SEVERE"),
              "not_asked_for": check_obj("not_asked_for", issues[120:250]),
              names[1]: check_obj(names[1], issues[250:])}
    late = check_obj(names[2], issues[:7])
    report[names[2]] = {"issues": late.pop("issues"), **late}  # metadata after the issues
    body, _ = serialise(report)
    fake = FakeStreamResponse(split(body, range(0, len(body), 1000)))
    session = stream_session(fake)
    ended = []
    rows = list(session.iter_integrity_issues(
        checks=[DataIntegrityCheck(name=n, code="C") for n in names],
        on_check=lambda result: ended.append((result.name, result.count))))
    assert session.sent[2] is None  # no checks parameter: the whole body
    assert rows == [r for r in expected_rows(body) if r.check_name != "not_asked_for"]
    assert [r.check_name for r in rows].count(names[0]) == 120
    assert (names[0], 120) in ended and (names[1], 50) in ended and (names[2], 7) in ended
    assert fake.closed


def test_breaking_out_early_closes_the_response():
    issues = [{"id": "x%010d" % i, "name": "n"} for i in range(5000)]
    body, _ = serialise({"c": check_obj("c", issues)})
    fake = FakeStreamResponse(split(body, range(0, len(body), 4096)))
    session = stream_session(fake)
    for index, _row in enumerate(session.iter_integrity_issues()):
        if index == 3:
            break
    assert fake.closed


def test_generator_close_closes_the_response():
    body, _ = serialise(TRICKY)
    fake = FakeStreamResponse([body])
    gen = stream_session(fake).iter_integrity_issues()
    next(gen)
    gen.close()
    assert fake.closed


@pytest.mark.parametrize("error, kind, text", [
    (requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"),
     InvalidResponseError, "broke off"),
    (requests.exceptions.ConnectionError("Read timed out."), TransportError, "timed out"),
    (requests.exceptions.ReadTimeout("read timeout"), TransportError, "timed out"),
])
@pytest.mark.parametrize("extra", [0, 1, 3])
def test_connection_errors_mid_stream_come_after_the_complete_rows(error, kind, text, extra):
    issues = [{"id": "x%010d" % i, "name": "n"} for i in range(1000)]
    body, ends = serialise({"c": check_obj("c", issues)})
    cut = ends[600] + extra  # the last complete issue ends the bytes received, or nearly
    fake = FakeStreamResponse(split(body[:cut], range(0, cut, 5000)), error=error)
    rows = []
    with pytest.raises(kind) as info:
        for row in stream_session(fake).iter_integrity_issues():
            rows.append(row)
    assert len(rows) == 601
    assert text in str(info.value)
    assert fake.closed


def test_stream_deadline_is_enforced():
    issues = [{"id": "x%010d" % i, "name": "n"} for i in range(2000)]
    body, _ = serialise({"c": check_obj("c", issues)})
    fake = FakeStreamResponse(split(body, range(0, len(body), 2000)), delay=0.05)
    session = stream_session(fake, stream_deadline=0.3)
    rows = []
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        for row in session.iter_integrity_issues():
            rows.append(row)
    assert time.monotonic() - started < 2
    assert "stream_deadline=0.3" in str(info.value)
    assert 0 < len(rows) < 2000
    assert fake.closed
    assert session.sent[3] == (30.0, 0.3)  # (connect, read) timeout: read capped by deadline


@responses.activate
def test_streaming_through_responses():
    issues = [{"id": "x%010d" % i, "name": "n\u00e9 %d" % i} for i in range(3000)]
    body, _ = serialise({"c": check_obj("c", issues), "d": check_obj("d", issues[:5])})
    assert len(body) > 65536  # several 64 KiB reads
    responses.add(responses.GET, DETAILS_URL, body=body, content_type="application/json")
    responses.add(responses.GET, URL + "/api/dataIntegrity",
                  json=[{"name": "c", "code": "C"}, {"name": "d", "code": "D"}])
    session = Session(URL, auth=("admin", "district"))
    session.server_version = (2, 42, 0)
    rows = list(session.iter_integrity_issues(checks=["c", "d"]))
    assert rows == expected_rows(body)
    assert responses.calls[0].request.url.endswith("/api/dataIntegrity")  # names matched first
    assert responses.calls[1].request.params == {"checks": "c,d"}


@responses.activate
def test_http_error_before_the_body_is_an_api_error():
    from dhis2maint import PermissionDenied

    responses.add(responses.GET, DETAILS_URL, status=403,
                  json={"httpStatus": "Forbidden", "httpStatusCode": 403, "status": "ERROR",
                        "message": "Access is denied"})
    session = Session(URL, auth=("admin", "district"))
    session.server_version = (2, 42, 0)
    with pytest.raises(PermissionDenied):
        list(session.iter_integrity_issues())


# --- property: streaming == the report, for random reports and random chunking -------------

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12) | \
    st.text(alphabet='"\\{}[],: \u00e9\u20ac\U0001f600\n\tab', max_size=10)
_ISSUE = st.fixed_dictionaries({}, optional={
    "id": _TEXT | st.none(), "name": _TEXT | st.none(), "comment": _TEXT,
    "refs": st.lists(_TEXT, max_size=3)})
_CHECK_META = st.fixed_dictionaries(
    {"displayName": _TEXT, "severity": st.sampled_from(["INFO", "WARNING", "SEVERE", "CRITICAL",
                                                        "NEW_LEVEL"])},
    optional={"section": _TEXT, "sectionOrder": st.integers(-5, 10 ** 12),
              "error": _TEXT, "percentage": st.floats(allow_nan=False, allow_infinity=False)})


@st.composite
def _reports(draw):
    names = draw(st.lists(st.text(min_size=1, max_size=10), unique=True, max_size=5))
    report = {}
    for name in names:
        meta = draw(_CHECK_META)
        issues = draw(st.lists(_ISSUE, max_size=12))
        with_name = draw(st.booleans())
        fields = ([("name", name)] if with_name else []) + list(meta.items())
        fields = draw(st.permutations(fields)) if draw(st.integers(0, 4)) == 0 else fields
        obj = dict(fields)
        obj["issues"] = issues
        if draw(st.integers(0, 5)) == 0:  # issues first: held until the metadata is read
            obj = dict([("issues", issues)] + fields)
        report[name] = obj
    return report


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(report=_reports(), indent=st.sampled_from([None, None, 1]),
       ensure_ascii=st.booleans(), data=st.data())
def test_property_streaming_equals_the_report(report, indent, ensure_ascii, data):
    body = json.dumps(report, indent=indent, ensure_ascii=ensure_ascii).encode("utf-8")
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=20))
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, DETAILS_URL, body=body, content_type="application/json")
        session = stream_session(FakeStreamResponse(split(body, cuts)))
        expected = list(session.get_integrity_report(details=True).issue_rows())
    assert list(session.iter_integrity_issues()) == expected


# --- the fast row builder ---------------------------------------------------------------------

ODD_ISSUES = [
    {"id": 5, "name": None, "refs": "not a list"},
    {"id": "a", "refs": [1, "b", None]},
    {"id": "b", "comment": 3.5, "refs": []},
    {"name": True},
    {"id": "c", "name": "n", "comment": "c", "refs": ["x", "y"]},
    {},
    {"id": None, "name": None, "comment": None, "refs": None},
]


@pytest.mark.parametrize("fast", [True, False])
def test_fast_and_ordinary_rows_equal_the_report(monkeypatch, fast):
    if not fast:  # as for models whose __init__ must run (see _fillable)
        monkeypatch.setattr(stream, "_ISSUE_TWIN", None)
        monkeypatch.setattr(stream, "_ROW_TWIN", None)
    body = json.dumps({"c": check_obj("c", ODD_ISSUES * 30)}).encode()
    rows = rows_of(split(body, range(0, len(body), 500)))
    assert rows == expected_rows(body)
    assert rows[0].issue == DataIntegrityIssue("5", None, None, ["not a list"])
    assert rows[1].issue.refs == ["1", "b", "null"]
    assert all(type(r) is IntegrityIssueRow and type(r.issue) is DataIntegrityIssue for r in rows)
    with pytest.raises(Exception) as info:
        rows[0].issue.id = "changed"  # still frozen
    assert "FrozenInstanceError" in type(info.value).__name__


def test_fillable_refuses_classes_whose_init_does_more():
    import attr

    @attr.s(slots=True, frozen=True)
    class Checked:
        a = attr.ib(validator=attr.validators.instance_of(str))

    @attr.s(slots=True)
    class Converted:
        a = attr.ib(converter=str)

    @attr.s(slots=True)
    class PostInit:
        a = attr.ib()

        def __attrs_post_init__(self):
            pass

    @attr.s
    class NoSlots:
        a = attr.ib()

    @attr.s(slots=True)
    class Plain:
        a = attr.ib()

    for cls in (Checked, Converted, PostInit, NoSlots):
        assert not stream._fillable(cls, ("a",))
    assert not stream._fillable(Plain, ("b",))
    assert not stream._fillable(int, ("a",))
    assert stream._fillable(Plain, ("a",))
    assert stream._ISSUE_TWIN is not None and stream._ROW_TWIN is not None  # the real models


# --- the deadline while a read is blocked (real HTTP) ------------------------------------------


class _SlowBodyHandler(BaseHTTPRequestHandler):
    """Announces a long Content-Length, then sends a few bytes every 0.1 s: one
    64 KiB read would block for minutes, each recv well within the read timeout."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        head = b'{"c":{"name":"c","displayName":"C","severity":"INFO","issues":[{"id":"a"},'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "10000000")
        self.end_headers()
        try:
            self.wfile.write(head)
            self.wfile.flush()
            for _ in range(100):
                time.sleep(0.1)
                self.wfile.write(b'{"id":"b"},')
                self.wfile.flush()
        except OSError:
            pass


def test_deadline_interrupts_a_blocked_read():
    server = HTTPServer(("127.0.0.1", 0), _SlowBodyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        session = Session("http://127.0.0.1:{}".format(server.server_address[1]),
                          auth=("admin", "district"), timeout=5, stream_deadline=0.5)
        session.server_version = (2, 42, 0)
        started = time.monotonic()
        with pytest.raises(TransportError) as info:
            list(session.iter_integrity_issues())
        assert time.monotonic() - started < 2.5
        assert "stream_deadline=0.5" in str(info.value)
    finally:
        server.shutdown()
        server.server_close()
