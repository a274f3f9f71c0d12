"""Every error class from a realistic DHIS2 (or proxy) response."""
import pickle

import pytest
import requests
import responses

from dhis2maint import (ApiError, AuthenticationError, BadRequest, ConflictError, Dhis2Error,
                        InvalidResponseError, NotFound, PermissionDenied, ServerError, Session,
                        TaskTimeoutError, TransportError)
from dhis2maint.errors import JobFailedError, error_class_for_status

URL = "https://dhis2.example.org"
TOKEN = "d2pat_Canary0123456789abcdefABCDEF0123456789"
LOGIN_HTML = ("<!DOCTYPE html><html><head><title>DHIS 2</title></head><body>"
              "<form action='login.action'><input name='j_username'>"
              "<input type='password' name='j_password'></form></body></html>")
NGINX_502 = ("<html><head><title>502 Bad Gateway</title></head><body><center>"
             "<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>")


def web_message(status, reason, message, error_code=None):
    body = {"httpStatus": reason, "httpStatusCode": status, "status": "ERROR", "message": message}
    if error_code:
        body["errorCode"] = error_code
    return body


@pytest.fixture
def session():
    s = Session(URL, token=TOKEN, retries=0)
    s.server_version = (2, 42, 0)
    return s


@pytest.mark.parametrize("status, reason, message, cls, words", [
    (400, "Bad Request", "Invalid UID `x` for property `jobId`", BadRequest, "Invalid UID"),
    # a session built in code: the hint names no environment variable (#20.6)
    (401, "Unauthorized", "Unauthorized", AuthenticationError, "personal access token, and the URL"),
    (403, "Forbidden", "Access is denied, requires one Authority from [ALL, F_PERFORM_MAINTENANCE]",
     PermissionDenied, "F_PERFORM_MAINTENANCE"),
    (404, "Not Found", "JobConfiguration with id Vu1ZkG2Kb3D could not be found.", NotFound,
     "could not be found"),
    (409, "Conflict", "Job is already running.", ConflictError, "already running"),
    (500, "Internal Server Error", "java.lang.NullPointerException", ServerError, "NullPointer"),
])
@responses.activate
def test_web_message_errors(session, status, reason, message, cls, words):
    responses.add(responses.POST, URL + "/api/jobConfigurations/Vu1ZkG2Kb3D/execute",
                  json=web_message(status, reason, message, "E1004" if status == 409 else None),
                  status=status)
    with pytest.raises(cls) as info:
        session._json("POST", "jobConfigurations/Vu1ZkG2Kb3D/execute", params={"secret": "q"})
    err = info.value
    assert isinstance(err, ApiError) and isinstance(err, Dhis2Error)
    assert err.status_code == status
    assert err.dhis2_message == message
    assert err.method == "POST" and err.path == "/api/jobConfigurations/Vu1ZkG2Kb3D/execute"
    assert words in str(err)
    assert "POST /api/jobConfigurations/Vu1ZkG2Kb3D/execute" in str(err)
    assert "secret" not in str(err)  # no query string
    if status == 409:
        assert err.error_code == "E1004" and "(E1004)" in str(err)


@responses.activate
def test_302_to_login_page_is_authentication_error(session):
    responses.add(responses.GET, URL + "/api/dataIntegrity", status=302,
                  headers={"Location": URL + "/dhis-web-commons/security/login.action"})
    responses.add(responses.GET, URL + "/dhis-web-commons/security/login.action",
                  body=LOGIN_HTML, content_type="text/html")
    with pytest.raises(AuthenticationError, match="login page"):
        session._json("GET", "dataIntegrity")


@responses.activate
def test_login_page_with_200_is_authentication_error(session):
    responses.add(responses.GET, URL + "/api/dataIntegrity", body=LOGIN_HTML,
                  content_type="text/html")
    responses.add(responses.GET, URL + "/dhis-web-commons/security/login.action",
                  body=LOGIN_HTML, content_type="text/html")
    with pytest.raises(AuthenticationError, match="login page"):
        session._json("GET", "dataIntegrity")
    responses.replace(responses.GET, URL + "/api/dataIntegrity", status=302,
                      headers={"Location": "/dhis-web-commons/security/login.action"})
    with pytest.raises(AuthenticationError):
        session._json("GET", "dataIntegrity")


@responses.activate
def test_unfollowed_redirect_to_login_is_authentication_error(session):
    responses.add(responses.POST, URL + "/api/resourceTables/analytics", status=302,
                  headers={"Location": URL + "/dhis-web-login/"})
    responses.add(responses.GET, URL + "/dhis-web-login/", body=LOGIN_HTML,
                  content_type="text/html")
    with pytest.raises(AuthenticationError):
        session._json("POST", "resourceTables/analytics")


@responses.activate
def test_html_502_from_proxy_is_server_error(session):
    responses.add(responses.GET, URL + "/api/system/info", body=NGINX_502, status=502,
                  content_type="text/html")
    with pytest.raises(ServerError) as info:
        session._json("GET", "system/info")
    assert info.value.status_code == 502
    assert "HTML page" in str(info.value) and "proxy" in str(info.value)


@responses.activate
def test_500_html_is_server_error(session):
    responses.add(responses.GET, URL + "/api/dataIntegrity", status=500,
                  body="<html><body>HTTP Status 500</body></html>", content_type="text/html")
    with pytest.raises(ServerError):
        session._json("GET", "dataIntegrity")


@pytest.mark.parametrize("body, ctype, words", [
    (b"", "application/json", "empty body"),
    (b"{\"a\": ", "application/json", "invalid or truncated JSON"),
    (b"not json at all", "text/plain", "invalid or truncated JSON"),
    (b"<html>oops</html>", "text/html", "HTML page"),
    (b"\xff\xfe\x00garbage", "application/json", "invalid or truncated JSON"),
])
@responses.activate
def test_invalid_bodies(session, body, ctype, words):
    responses.add(responses.GET, URL + "/api/system/info", body=body, content_type=ctype)
    with pytest.raises(InvalidResponseError, match=words) as info:
        session._json("GET", "system/info")
    assert "GET /api/system/info" in str(info.value)


@responses.activate
def test_wrong_shape(session):
    responses.add(responses.GET, URL + "/api/dataIntegrity", json={"not": "a list"})
    with pytest.raises(InvalidResponseError, match="expected a JSON array, got dict"):
        session._json("GET", "dataIntegrity", expect=list)


@responses.activate
def test_connection_refused_is_transport_error(session):
    responses.add(responses.GET, URL + "/api/system/info",
                  body=requests.exceptions.ConnectionError("Connection refused"))
    with pytest.raises(TransportError) as info:
        session._json("GET", "system/info")
    assert isinstance(info.value, requests.exceptions.RequestException)
    # the session was built in code, not from DHIS2_URL: the hint says "the base URL" (#20.6)
    assert "check the base URL" in str(info.value) and "DHIS2_URL" not in str(info.value)
    assert isinstance(info.value.__cause__, requests.exceptions.ConnectionError)


@responses.activate
def test_read_timeout_on_post_says_it_may_have_reached_dhis2(session):
    responses.add(responses.POST, URL + "/api/resourceTables",
                  body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(TransportError, match="may have reached DHIS2"):
        session._json("POST", "resourceTables")


def test_status_mapping_is_total():
    assert error_class_for_status(400) is BadRequest
    assert error_class_for_status(418) is ApiError
    assert error_class_for_status(503) is ServerError
    assert error_class_for_status(599) is ServerError


def test_errors_pickle_without_responses():
    for err in (TaskTimeoutError("late", job_id="Vu1ZkG2Kb3D", last_message="[3/9] x"),
                JobFailedError("failed", job_id="Vu1ZkG2Kb3D", job_type="ANALYTICS_TABLE"),
                ConflictError("busy", status_code=409, method="POST", path="/api/x")):
        clone = pickle.loads(pickle.dumps(err))
        assert type(clone) is type(err) and str(clone) == str(err)
        assert clone.response is None
    assert pickle.loads(pickle.dumps(
        TaskTimeoutError("late", job_id="Vu1ZkG2Kb3D"))).job_id == "Vu1ZkG2Kb3D"


def test_task_timeout_is_a_builtin_timeout():
    assert issubclass(TaskTimeoutError, TimeoutError)
    with pytest.raises(TimeoutError):
        raise TaskTimeoutError("late")
