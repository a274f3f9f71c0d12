"""Session: URLs, auth, timeouts, from_env, server_version, pickling, repr."""
import base64
import logging
import pickle

import pytest
import requests
import responses

import dhis2maint
from dhis2maint import ConfigurationError, Session
from dhis2maint.session import BasicAuth, TokenAuth, make_retry

SECRET = "s3cr3t-Canary-Pw"
TOKEN = "d2pat_Canary0123456789abcdefABCDEF0123456789"
URL = "https://dhis2.example.org"


@pytest.mark.parametrize("given, base", [
    ("https://dhis2.example.org", "https://dhis2.example.org"),
    ("https://dhis2.example.org/", "https://dhis2.example.org"),
    ("https://dhis2.example.org/api", "https://dhis2.example.org"),
    ("https://dhis2.example.org/api/", "https://dhis2.example.org"),
    ("https://dhis2.example.org/api/42", "https://dhis2.example.org"),
    ("https://example.org/dhis/", "https://example.org/dhis"),
    ("https://example.org/dhis/api", "https://example.org/dhis"),
    ("  http://localhost:8080  ", "http://localhost:8080"),
    ("https://play.dhis2.org/2.42", "https://play.dhis2.org/2.42"),
])
def test_base_url_normalised(given, base):
    session = Session(given, token=TOKEN)
    assert session.base_url == base
    assert session.api_url("system/info") == base + "/api/system/info"
    assert session.api_url("/system/info") == base + "/api/system/info"


@pytest.mark.parametrize("bad", ["", None, "dhis2.example.org", "ftp://x.org", "https://"])
def test_bad_base_url_is_a_configuration_error(bad):
    with pytest.raises(ConfigurationError):
        Session(bad, token=TOKEN)


@responses.activate
def test_basic_auth_header():
    responses.add(responses.GET, URL + "/api/system/info", json={"version": "2.42.1"})
    session = Session(URL, auth=("admin", SECRET))
    assert session.server_version == (2, 42, 1)
    sent = responses.calls[0].request.headers["Authorization"]
    assert sent == "Basic " + base64.b64encode(("admin:" + SECRET).encode()).decode()


@responses.activate
def test_token_auth_header_apitoken_and_bearer():
    responses.add(responses.GET, URL + "/api/system/info", json={"version": "2.42.1"})
    Session(URL, token=TOKEN).server_version
    Session(URL, token=TOKEN, bearer=True).server_version
    assert responses.calls[0].request.headers["Authorization"] == "ApiToken " + TOKEN
    assert responses.calls[1].request.headers["Authorization"] == "Bearer " + TOKEN


@responses.activate
def test_credentials_in_url_become_basic_auth_and_leave_the_url():
    responses.add(responses.GET, URL + "/api/system/info", json={"version": "2.42.1"})
    session = Session("https://admin:{}@dhis2.example.org/".format(SECRET))
    assert SECRET not in session.base_url and SECRET not in repr(session)
    assert session.auth_kind == "basic"
    session.server_version
    assert responses.calls[0].request.url.startswith(URL + "/api/")


def test_token_and_auth_together_is_an_error():
    with pytest.raises(ConfigurationError, match="not both"):
        Session(URL, auth=("a", "b"), token=TOKEN)


@pytest.mark.parametrize("auth", [("only-one",), ("a", 1), ("a", "b", "c")])
def test_bad_auth_tuple(auth):
    with pytest.raises(ConfigurationError):
        Session(URL, auth=auth)


@pytest.mark.parametrize("timeout", [0, -1, "soon", None])
def test_bad_timeout(timeout):
    with pytest.raises(ConfigurationError, match="timeout"):
        Session(URL, token=TOKEN, timeout=timeout)


def test_default_timeout_applied_to_every_request(monkeypatch):
    seen = []

    def fake_send(self, request, **kwargs):
        seen.append(kwargs.get("timeout"))
        response = requests.Response()
        response.status_code = 200
        response._content = b'{"version": "2.42.0"}'
        response.headers["Content-Type"] = "application/json"
        response.request = request
        response.url = request.url
        return response

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", fake_send)
    session = Session(URL, token=TOKEN, timeout=7)
    session.server_version  # a library call
    session.get(URL + "/api/me")  # plain requests API on the same session
    session.get(URL + "/api/me", timeout=2)  # a per-call override wins
    assert seen == [7.0, 7.0, 2]


def test_retry_policy_only_retries_idempotent_methods():
    retry = make_retry(3)
    methods = getattr(retry, "allowed_methods", None) or getattr(retry, "method_whitelist")
    assert set(methods) == {"GET", "HEAD", "OPTIONS"}
    assert set(retry.status_forcelist) == {429, 502, 503, 504}
    assert retry.total == 3 and retry.respect_retry_after_header
    session = Session(URL, token=TOKEN, retries=5)
    assert session.get_adapter(URL).max_retries.total == 5
    assert session.get_adapter("http://other").max_retries.total == 5


def test_retry_backoff_has_jitter_and_caps():
    from urllib3.util.retry import RequestHistory

    retry = make_retry(10, backoff_factor=1)
    retry = retry.new(history=tuple(RequestHistory("GET", "/x", None, 503, None)
                                    for _ in range(4)))
    times = {round(retry.get_backoff_time(), 3) for _ in range(20)}
    assert len(times) > 1  # jitter
    assert max(times) <= retry.MAX_BACKOFF


def test_from_env_token():
    session = Session.from_env({"DHIS2_URL": URL, "DHIS2_PAT": TOKEN, "DHIS2_TIMEOUT": "12.5"})
    assert session.auth == TokenAuth(TOKEN)
    assert session.timeout == 12.5


def test_from_env_basic():
    session = Session.from_env({"DHIS2_URL": URL + "/api", "DHIS2_USERNAME": "admin",
                                "DHIS2_PASSWORD": SECRET})
    assert isinstance(session.auth, BasicAuth) and session.auth.username == "admin"
    assert session.base_url == URL


@pytest.mark.parametrize("env, variable", [
    ({}, "DHIS2_URL"),
    ({"DHIS2_URL": "  "}, "DHIS2_URL"),
    ({"DHIS2_URL": URL}, "DHIS2_PAT"),
    ({"DHIS2_URL": URL, "DHIS2_USERNAME": "admin"}, "DHIS2_PASSWORD"),
    ({"DHIS2_URL": URL, "DHIS2_PASSWORD": "x"}, "DHIS2_USERNAME"),
    ({"DHIS2_URL": URL, "DHIS2_PAT": TOKEN, "DHIS2_USERNAME": "a", "DHIS2_PASSWORD": "b"},
     "DHIS2_PAT"),
    ({"DHIS2_URL": URL, "DHIS2_PAT": TOKEN, "DHIS2_TIMEOUT": "soon"}, "DHIS2_TIMEOUT"),
    ({"DHIS2_URL": URL, "DHIS2_PAT": TOKEN, "DHIS2_TIMEOUT": "0"}, "DHIS2_TIMEOUT"),
    ({"DHIS2_URL": "dhis2.example.org", "DHIS2_PAT": TOKEN}, "DHIS2_URL"),
])
def test_from_env_errors_name_the_variable(env, variable):
    with pytest.raises(ConfigurationError) as info:
        Session.from_env(env)
    assert variable in str(info.value)
    assert SECRET not in str(info.value) and TOKEN not in str(info.value)


def test_from_env_reads_os_environ(monkeypatch):
    monkeypatch.setenv("DHIS2_URL", URL)
    monkeypatch.setenv("DHIS2_PAT", TOKEN)
    monkeypatch.delenv("DHIS2_USERNAME", raising=False)
    monkeypatch.delenv("DHIS2_PASSWORD", raising=False)
    assert Session.from_env().auth_kind == "token"


@pytest.mark.parametrize("version, parsed", [
    ("2.42.1", (2, 42, 1)),
    ("2.42.0", (2, 42, 0)),
    ("2.42", (2, 42, 0)),
    ("2.42.3.1", (2, 42, 3, 1)),
    ("2.43-SNAPSHOT", (2, 43, 0)),
    ("2.44-SNAPSHOT", (2, 44, 0)),
    ("2.42.7-SNAPSHOT", (2, 42, 7)),
    ("2.36.13", (2, 36, 13)),
])
@responses.activate
def test_server_version_parsed_and_cached(version, parsed):
    responses.add(responses.GET, URL + "/api/system/info",
                  json={"version": version, "revision": "a1b2c3d"})
    session = Session(URL, token=TOKEN)
    assert session.server_version == parsed
    assert session.server_version >= (2, 36)
    session.server_version
    assert len(responses.calls) == 1
    assert responses.calls[0].request.params == {"fields": "version"}


@pytest.mark.parametrize("body", [{"version": "two point four"}, {}, {"version": None}])
@responses.activate
def test_server_version_garbage_is_invalid_response(body):
    responses.add(responses.GET, URL + "/api/system/info", json=body)
    with pytest.raises(dhis2maint.InvalidResponseError, match="version"):
        Session(URL, token=TOKEN).server_version


@responses.activate
def test_pickle_round_trip_keeps_settings_and_works():
    responses.add(responses.GET, URL + "/api/system/info", json={"version": "2.41.2"})
    session = Session(URL + "/api", auth=("admin", SECRET), timeout=9, retries=1)
    session.server_version
    clone = pickle.loads(pickle.dumps(session))
    assert clone.base_url == URL and clone.timeout == 9 and clone.retries == 1
    assert clone.server_version == (2, 41, 2)  # cached: no second request
    assert len(responses.calls) == 1
    assert clone.get_adapter(URL).max_retries.total == 1
    assert clone.auth.username == "admin"
    responses.add(responses.GET, URL + "/api/me", json={"username": "admin"})
    assert clone._json("GET", "me") == {"username": "admin"}
    assert "Basic " in responses.calls[-1].request.headers["Authorization"]


def test_reprs_never_show_secrets():
    for session in (Session(URL, auth=("admin", SECRET)), Session(URL, token=TOKEN),
                    Session(URL, token=TOKEN, bearer=True)):
        for text in (repr(session), str(session), repr(session.auth), str(session.auth),
                     repr(pickle.loads(pickle.dumps(session)))):
            assert SECRET not in text and TOKEN not in text
        assert URL in repr(session)
    assert "auth=basic" in repr(Session(URL, auth=("admin", SECRET)))
    assert "auth=token" in repr(Session(URL, token=TOKEN))
    assert "auth=bearer" in repr(Session(URL, token=TOKEN, bearer=True))


def test_context_manager_closes_adapters(monkeypatch):
    closed = []
    with Session(URL, token=TOKEN) as session:
        monkeypatch.setattr(session.get_adapter(URL), "close", lambda: closed.append(True))
    assert closed


def test_verify_false_warns_once(caplog):
    with caplog.at_level(logging.WARNING, logger="dhis2maint"):
        Session("https://insecure-once.example.org", token=TOKEN, verify=False)
        Session("https://insecure-once.example.org", token=TOKEN, verify=False)
    warnings = [r for r in caplog.records if "TLS verification is off" in r.getMessage()]
    assert len(warnings) == 1


def test_http_with_credentials_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="dhis2maint"):
        Session("http://dhis2.example.org", auth=("admin", SECRET))
        Session("http://localhost:8080", auth=("admin", SECRET))
    messages = [r.getMessage() for r in caplog.records]
    assert sum("without TLS" in m for m in messages) == 1
    assert not any(SECRET in m for m in messages)


def test_user_agent_default_and_override():
    assert Session(URL, token=TOKEN).headers["User-Agent"].startswith(
        "dhis2maint/" + dhis2maint.__version__)
    assert Session(URL, token=TOKEN, user_agent="nightly/1").headers["User-Agent"] == "nightly/1"


@pytest.mark.parametrize("value", ["Vu1ZkG2Kb3D", "a1B2c3D4e5F"])
def test_uid_accepts_dhis2_uids(value):
    assert Session._uid(value) == value


@pytest.mark.parametrize("value", ["", "1u1ZkG2Kb3D", "Vu1ZkG2Kb3", "Vu1ZkG2Kb3DX", "../users00",
                                   "Vu1ZkG2Kb/D", None, 12345678901])
def test_uid_rejects_non_uids(value):
    with pytest.raises(ValueError, match="UID"):
        Session._uid(value, "job id")


def test_segment_quotes_path_traversal():
    assert Session._segment("../users") == "..%2Fusers"
    assert Session._segment("a b?c#d") == "a%20b%3Fc%23d"
    with pytest.raises(ValueError):
        Session._segment("..")
