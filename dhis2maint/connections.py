"""Where a :class:`~dhis2maint.Session`'s settings come from, other than arguments.

Each reader here turns one outside description of a DHIS2 server -- a URI, an
Apache Airflow Connection, a CLI auth file -- into ``(base_url, settings)``:
a base URL without credentials and the keyword arguments for ``Session``
(``token`` or ``auth``, ``timeout``, ``verify``, ...), plus ``source``, the
phrase error hints use to name that description ("the Airflow Connection
'dhis2_default'").  The classmethods ``Session.from_uri``,
``Session.from_airflow_connection`` and ``Session.from_auth_file`` call them.

Nothing here logs a URI or a setting's value, and no error message carries a
credential: errors name the setting (key, field, connection id, file) instead.
Airflow is imported only when a connection id has to be looked up.
"""
import json
import os
import stat
from typing import Any, Callable, Collection, Dict, Mapping, Optional, Tuple, cast
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from .arguments import seconds
from .errors import ConfigurationError

__all__ = ["SETTING_TYPES", "convert_settings", "settings_from_uri",
           "settings_from_connection", "get_airflow_connection", "check_private",
           "read_auth_file", "settings_from_auth_file"]

_TRUE = frozenset(["true", "yes", "on", "1"])
_FALSE = frozenset(["false", "no", "off", "0"])
_SCHEMES = ("http", "https")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("must be true or false")


def _to_seconds(value: Any, zero_ok: bool = False) -> float:
    try:  # the package's one check, in this module's wording
        return cast(float, seconds(value, "value", zero_ok=zero_ok))
    except ConfigurationError:
        raise ValueError("must be a number of seconds {} 0".format(
            "of at least" if zero_ok else "more than")) from None


def _to_grace(value: Any) -> float:
    return _to_seconds(value, zero_ok=True)  # outage_grace=0: fail at once


def _to_count(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number, 0 or more")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise ValueError("must be a whole number, 0 or more")
    if number < 0:
        raise ValueError("must be a whole number, 0 or more")
    return number


def _to_verify(value: Any) -> Any:
    """``verify``: true/false, or the path of an existing CA bundle file."""
    try:
        return _to_bool(value)
    except ValueError:
        pass
    if isinstance(value, str) and value.strip():
        return _to_ca_bundle(value)
    raise ValueError("must be true, false or the path of a CA bundle file")


def _to_ca_bundle(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be the path of a CA bundle file")
    path = os.path.expanduser(value.strip())
    if not os.path.isfile(path):
        raise ValueError("must be the path of a CA bundle file; no file {!r}".format(path))
    return path


def _to_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


#: The settings a URI's query or a Connection's extra may hold: name -> converter.
#: Only those ``Session.__init__`` accepts are used (see ``accepted``), so a
#: setting a newer Session adds (``outage_grace``) works once it exists there.
SETTING_TYPES: Dict[str, Callable[[Any], Any]] = {
    "timeout": _to_seconds,
    "stream_deadline": _to_seconds,
    "outage_grace": _to_grace,
    "retries": _to_count,
    "verify": _to_verify,
    "bearer": _to_bool,
    "recover_job_starts": _to_bool,
    "user_agent": _to_text,
}
#: Other names for a setting in a Connection's extra.
_ALIASES = {"ca_bundle": "verify", "ca_cert": "verify", "ca_certs": "verify",
            "cert_path": "verify"}


def convert_settings(raw: Mapping[str, Any], accepted: Collection[str],
                     where: str) -> Dict[str, Any]:
    """``raw`` (strings from a query, or JSON values) as Session keyword arguments.

    Each value is converted strictly (``"30"`` -> 30.0, ``"false"`` -> False,
    ``"3.5"`` retries -> error).  A name not in :data:`SETTING_TYPES` and
    ``accepted`` -> :class:`ConfigurationError` naming it and ``where``.
    """
    settings: Dict[str, Any] = {}
    for name, value in raw.items():
        key = _ALIASES.get(name, name)
        convert = SETTING_TYPES.get(key)
        if convert is None or key not in accepted:
            known = sorted(k for k in SETTING_TYPES if k in accepted)
            raise ConfigurationError("unknown setting {!r} in {} (known: {})".format(
                name, where, ", ".join(known)))
        if key in settings:
            raise ConfigurationError("setting {!r} is given twice in {}".format(key, where))
        try:
            if key == "verify" and name != "verify":
                settings[key] = _to_ca_bundle(value)
            else:
                settings[key] = convert(value)
        except ValueError as exc:
            raise ConfigurationError("setting {!r} in {} {}".format(name, where, exc)) from None
    return settings


def _credentials(login: Optional[str], password: Optional[str], bearer: bool,
                 where: str) -> Dict[str, Any]:
    """``token`` (password alone) or ``auth`` (login and password) keyword arguments."""
    if login and password:
        if bearer:
            raise ConfigurationError(
                "{} has a login and bearer=true: a bearer token goes in the password with "
                "an empty login".format(where))
        return {"auth": (login, password)}
    if login:
        raise ConfigurationError("{} has a login but no password".format(where))
    if password:
        return {"token": password}
    return {}


def _netloc(hostname: str, port: Optional[int]) -> str:
    host = "[{}]".format(hostname) if ":" in hostname else hostname
    return host if port is None else "{}:{}".format(host, port)


# --- URIs ------------------------------------------------------------------------------


def settings_from_uri(uri: str, accepted: Collection[str]) -> Tuple[str, Dict[str, Any]]:
    """``https://user:password@host:port/context?timeout=60`` -> (base URL, settings).

    A password without a user (``https://:d2pat_…@host/dhis``) is a personal
    access token.  User and password are URL-decoded.  Query parameters are
    settings (see :func:`convert_settings`).  No credentials -> no ``token`` or
    ``auth`` in the settings (the caller decides whether that is an error).
    """
    where = "the DHIS2 URI"
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigurationError("{} is empty; use https://[user:password@]host[/context]".format(
            where))
    text = uri.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
        hostname = parts.hostname
    except ValueError:
        raise ConfigurationError("{} is not a valid URL (check the host and port)".format(
            where)) from None
    if "://" not in text or parts.scheme.lower() not in _SCHEMES or not hostname:
        raise ConfigurationError(
            "{} must start with http:// or https:// and name a host".format(where))
    login = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False)
    raw: Dict[str, Any] = {}
    for name, value in query:
        if name in raw:
            raise ConfigurationError("setting {!r} is given twice in {}".format(name, where))
        raw[name] = value
    settings = convert_settings(raw, accepted, where + "'s query")
    settings.update(_credentials(login, password, bool(settings.get("bearer")), where))
    base = urlunsplit((parts.scheme.lower(), _netloc(hostname, port), parts.path, "", ""))
    return base, settings


# --- Airflow Connections --------------------------------------------------------------------


def get_airflow_connection(conn_id: str) -> Any:
    """Airflow's Connection ``conn_id``, looked up through Airflow's own API
    (``airflow.sdk.BaseHook`` on 3.x, ``airflow.hooks.base.BaseHook`` on 2.x): the
    metadata database, ``AIRFLOW_CONN_*`` variables or a secrets backend."""
    try:
        from airflow.sdk import BaseHook  # type: ignore  # Airflow 3
    except ImportError:
        try:
            from airflow.hooks.base import BaseHook  # type: ignore  # Airflow 2
        except ImportError:
            raise ConfigurationError(
                "cannot look up the Airflow Connection {!r}: Airflow is not installed here "
                "(pass a Connection object, or use Session.from_uri)".format(conn_id)) from None
    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:
        if "NotFound" in type(exc).__name__ or "isn't defined" in str(exc):
            raise ConfigurationError(
                "the Airflow Connection {!r} is not defined (add it in Admin > Connections, "
                "or set AIRFLOW_CONN_{})".format(conn_id, conn_id.upper())) from None
        raise


def _extra(conn: Any, where: str) -> Dict[str, Any]:
    extra = getattr(conn, "extra_dejson", None)
    if extra is None:
        text = getattr(conn, "extra", None)
        if not text:
            return {}
        try:
            extra = json.loads(text)
        except ValueError:
            raise ConfigurationError("the extra of {} is not valid JSON".format(where)) from None
    if not isinstance(extra, dict):
        raise ConfigurationError("the extra of {} must be a JSON object".format(where))
    return extra


def settings_from_connection(conn: Any, accepted: Collection[str],
                             conn_id: Optional[str] = None) -> Tuple[str, Dict[str, Any]]:
    """An Airflow Connection (duck typed) -> (base URL, settings).

    * Host: ``dhis2.example.org``, ``https://dhis2.example.org`` or either with a
      context path (``…/dhis``); the scheme comes from Host, else from Schema when
      it is ``http``/``https``, else from the connection type when that is
      ``http``/``https``, else https.
    * Schema, when not a scheme, is the context path: Airflow puts a connection
      URI's path there (``AIRFLOW_CONN_X='https://:d2pat_…@host/dhis'``).
    * Port is used even when Host holds a scheme (a different port there is an error).
    * Login + Password: basic auth; Password alone: a personal access token
      (``bearer: true`` in extra: an OAuth2 bearer token).  Neither ->
      :class:`ConfigurationError` naming the connection.
    * Extra: ``timeout``, ``verify`` (true/false or a CA bundle path),
      ``ca_bundle``, ``bearer``, ``retries``, ``recover_job_starts``,
      ``stream_deadline``, ``outage_grace`` (when this Session has it); others
      are errors.
    """
    conn_id = conn_id or getattr(conn, "conn_id", None) or "?"
    where = "the Airflow Connection {!r}".format(conn_id)
    host = (getattr(conn, "host", None) or "").strip()
    schema = (getattr(conn, "schema", None) or "").strip()
    conn_type = (getattr(conn, "conn_type", None) or "").strip().lower()
    port = getattr(conn, "port", None)
    if not host:
        raise ConfigurationError("{} has no Host (e.g. https://dhis2.example.org)".format(where))
    if "@" in host:
        raise ConfigurationError("{}: put credentials in Login/Password, not in Host".format(
            where))
    if "://" in host:
        text = host
    else:
        if host.count(":") > 1 and not host.startswith("["):
            host = "[{}]".format(host)  # a bare IPv6 address
        if schema.lower() in _SCHEMES:
            scheme = schema.lower()
        elif conn_type in _SCHEMES:
            scheme = conn_type
        else:
            scheme = "https"
        text = "{}://{}".format(scheme, host)
    try:
        parts = urlsplit(text)
        host_port = parts.port
        hostname = parts.hostname
    except ValueError:
        raise ConfigurationError("{} has an invalid Host".format(where)) from None
    if parts.scheme.lower() not in _SCHEMES or not hostname:
        raise ConfigurationError("{}: Host must be a host name or an http(s):// URL".format(where))
    if parts.query or parts.fragment:
        raise ConfigurationError("{}: Host must not have a ?query or #fragment".format(where))
    if port not in (None, ""):
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise ConfigurationError("{} has an invalid Port".format(where)) from None
        if host_port is not None and host_port != port:
            raise ConfigurationError("{}: Host says port {} but Port is {}".format(
                where, host_port, port))
    else:
        port = host_port
    path = parts.path.rstrip("/")
    if schema and schema.lower() not in _SCHEMES:
        context = "/" + schema.strip("/")
        if path and path != context:
            raise ConfigurationError(
                "{}: Host has the path {!r} and Schema says {!r}; keep the context path in "
                "one of them".format(where, path, schema))
        path = context
    extra = _extra(conn, where)
    settings = convert_settings(extra, accepted, "the extra of " + where)
    login = getattr(conn, "login", None) or None
    password = getattr(conn, "password", None) or None
    settings.update(_credentials(login, password, bool(settings.get("bearer")), where))
    base = urlunsplit((parts.scheme.lower(), _netloc(hostname, port), path, "", ""))
    return base, settings


# --- auth files ----------------------------------------------------------------------------


def check_private(path: str, what: str = "auth file") -> None:
    """The auth-file rule: on POSIX a file holding a secret must not be readable by
    group or others (:class:`ConfigurationError` saying ``chmod 600`` otherwise,
    or naming why the file cannot be read).  ``what`` names the file in messages."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ConfigurationError("cannot read {} {}: {}".format(what, path, exc.strerror)) \
            from None
    if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            "permissions {:04o} for {} {} are too open: it holds a password; "
            "run `chmod 600 {}`".format(stat.S_IMODE(info.st_mode), what, path, path))


def read_auth_file(path: str) -> Dict[str, Optional[str]]:
    """The CLI's auth file as ``{"url", "token", "username", "password"}`` (None when absent).

    Two shapes: dhis2.py's ``dish.json`` (``{"dhis": {"baseurl", "username",
    "password"}}``) and ``{"url", "token"}`` (or ``username``/``password``).  On
    POSIX the file must not be readable by group or others (it holds a
    secret): :class:`ConfigurationError` saying ``chmod 600`` otherwise.
    """
    check_private(path, "auth file")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigurationError("auth file {} is not valid JSON: {}".format(
            path, getattr(exc, "msg", None) or type(exc).__name__)) from None
    if isinstance(data, dict) and isinstance(data.get("dhis"), dict):
        dhis = data["dhis"]
        settings = {"url": dhis.get("baseurl") or dhis.get("url"),
                    "username": dhis.get("username"), "password": dhis.get("password"),
                    "token": dhis.get("token")}
    elif isinstance(data, dict):
        settings = {k: data.get(k) for k in ("url", "token", "username", "password")}
    else:
        settings = {}
    if not settings.get("url"):
        raise ConfigurationError(
            'auth file {} needs {{"dhis": {{"baseurl": …}}}} or {{"url": …}}'.format(path))
    for key, value in settings.items():
        if value is not None and not isinstance(value, str):
            raise ConfigurationError("auth file {}: {!r} must be a string".format(path, key))
    return settings


def settings_from_auth_file(path: str) -> Tuple[str, Dict[str, Any]]:
    """An auth file (see :func:`read_auth_file`) -> (base URL, settings); it must
    hold a token, or a username and a password."""
    values = read_auth_file(path)
    where = "auth file {}".format(path)
    token, username, password = values.get("token"), values.get("username"), \
        values.get("password")
    if token and username:
        raise ConfigurationError("{} has both a token and a username; keep one".format(where))
    if token:
        return values["url"] or "", {"token": token}
    if username and password:
        return values["url"] or "", {"auth": (username, password)}
    if username:
        raise ConfigurationError("{} has a username but no password".format(where))
    raise ConfigurationError("{} has no credentials: add a token, or a username and "
                             "a password".format(where))
