"""``doctor`` and ``whoami``: :class:`DoctorMixin` of :class:`Session`, and the pure
functions behind them (testable without HTTP).

* :func:`authority_checks` says, for a user's authorities and a DHIS2 version,
  what DHIS2 will refuse and why (the table
  :data:`FEATURE_AUTHORITIES`, derived from the version table
  :data:`dhis2maint.versions.FEATURES` and :data:`~dhis2maint.versions.AUTHORITIES`,
  from the ``@PreAuthorize``/``@RequiresAuthority`` annotations of each endpoint
  in DHIS2's source).
* :func:`clock_skew` reads an HTTP ``Date`` header against the client clock.
* :func:`lacking_features` lists what a server's version lacks.

The scheduler's health (the doctor's last check) is :mod:`dhis2maint.health`.
"""
from __future__ import annotations  # models are built on first use, not to annotate

import datetime
import email.utils
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from . import convert, followups, models, versions
from .errors import (ApiError, AuthenticationError, Dhis2Error, InvalidResponseError,
                     NotFound, TransportError, UnsupportedServerError, url_setting)
from .datavalues import SETUP_AUTHORITIES, setup_refused
from .jobs import MAINTENANCE_OPERATIONS

__all__ = ["DoctorMixin", "authority_checks", "clock_skew", "lacking_features",
           "refused_actions", "FEATURE_AUTHORITIES", "SUPPORTED_VERSIONS",
           "data_values_checks", "SETUP_AUTHORITIES", "DATA_VALUE_AUTHORITIES"]

#: Oldest and newest DHIS2 minor versions dhis2maint is built and tested for.
SUPPORTED_VERSIONS = versions.SUPPORTED_VERSIONS

# The Session methods each task feature's endpoints serve: DHIS2 refuses them (HTTP 403)
# to a user without the feature's authority.  Data, not words: each face names them as
# its commands or tools (refused_actions).
_PRUNING = ("prune_organisation_unit_data", "prune_data_element_data")
_ACTIONS = {
    "integrity": ("run_integrity_checks", "get_integrity_report", "iter_integrity_issues"),
    "analytics": ("refresh_analytics", "refresh_resource_tables", "refresh_monitoring"),
    "maintenance": tuple(op.name for op in MAINTENANCE_OPERATIONS if op.name not in _PRUNING),
    "data_pruning": _PRUNING,
    "predictors": ("run_predictors",),
    "validation": ("run_validation_analysis",),
    "validation_notifications": ("send_validation_notifications",),
    "validation_result_deletion": ("delete_validation_results",),
    "scheduler_admin": ("create_job_configuration", "delete_job_configuration"),
    "job_cancel": ("cancel_job",),
}

#: feature -> (what it is, the Session methods that need it (FollowUp actions, each
#:             face words them), ((first version, gone version or None, any-of
#:             authorities), ...)),
#: derived from the version table (:data:`dhis2maint.versions.FEATURES`, the
#: ``task`` rows, and :data:`dhis2maint.versions.AUTHORITIES`); feature names are
#: the table's with spaces (``need=["job cancel"]``).  The README's
#: "Doctor" section says what each version's annotations ask for.
FEATURE_AUTHORITIES = tuple(
    (feature.name.replace("_", " "), feature.description, _ACTIONS[feature.name],
     versions.AUTHORITIES[feature.name])
    for feature in versions.task_features())

_AUTHORITY = "authority: "


def refused_actions(check: models.DoctorCheck) -> Tuple[str, ...]:
    """The Session methods (:class:`~dhis2maint.models.FollowUp` actions) DHIS2 will
    refuse with HTTP 403 by what ``check`` found: those of its feature for an
    authority check that warned or failed, else none.  Each face words them as its
    own commands or tools."""
    if check.status not in ("warn", "fail") or not check.name.startswith(_AUTHORITY):
        return ()
    feature = check.name[len(_AUTHORITY):]
    return next((row[2] for row in FEATURE_AUTHORITIES if row[0] == feature), ())


def lacking_features(version: Sequence[int]) -> List[str]:
    """What a server of ``version`` lacks that dhis2maint can use on newer ones
    (the descriptions of :func:`dhis2maint.versions.lacking`)."""
    return [feature.description for feature in versions.lacking(version)]


def _finding(name: str, status: str, detail: str, advice: Optional[str] = None,
             follow_ups: Tuple[models.FollowUp, ...] = ()) -> models.DoctorCheck:
    fix = followups.python_text(follow_ups, advice or "") if follow_ups else advice
    return models.DoctorCheck(name, status, detail, fix or None, follow_ups=follow_ups,
                              advice=advice)


def authority_checks(authorities: Iterable[str], version: Sequence[int],
                     need: Iterable[str] = ()) -> List[models.DoctorCheck]:
    """One :class:`DoctorCheck` per feature of :data:`FEATURE_AUTHORITIES`: ``pass``
    when ``authorities`` hold one of those the feature needs on ``version``,
    else ``fail`` for features in ``need`` and ``warn`` for the others; ``skip``
    where the version lacks the feature.  Each non-pass line says what will be
    refused (HTTP 403; which calls: :func:`refused_actions`) and the authority to grant."""
    have = set(authorities)
    need = set(need)
    unknown = need - {name for name, _, _, _ in FEATURE_AUTHORITIES}
    if unknown:
        raise ValueError("unknown feature(s) {}; known: {}".format(
            ", ".join(sorted(unknown)), ", ".join(n for n, _, _, _ in FEATURE_AUTHORITIES)))
    out = []
    for name, what, _actions, _rules in FEATURE_AUTHORITIES:
        any_of = versions.authorities(version, name.replace(" ", "_"))
        label = _AUTHORITY + name
        if any_of is None:
            out.append(models.DoctorCheck(label, "skip", "not in DHIS2 {}".format(
                ".".join(map(str, version[:2])))))
            continue
        if have.intersection(any_of):
            held = sorted(have.intersection(any_of))[0]
            out.append(models.DoctorCheck(label, "pass", "{} ({})".format(what, held)))
            continue
        note = ""
        if "ALL" in have and "ALL" not in any_of:
            note = " -- ALL is not enough here: DHIS2 checks this authority alone"
        out.append(_finding(
            label, "fail" if name in need else "warn",
            "{}: refused (HTTP 403) without one of {}{}".format(what, ", ".join(any_of), note),
            "give the user a role with {}".format(" or ".join(
                a for a in any_of if a != "ALL") or "ALL")))
    return out


def clock_skew(date_header: Optional[str], sent_at: float, received_at: float) -> Optional[float]:
    """Seconds the server's clock is ahead of the client's (negative: behind), from
    an HTTP ``Date`` header and the client's epoch times around the request
    (compared with their midpoint); ``None`` without a readable header.  The
    header is truncated to the second, so half a second is added and |skew|
    below 1 s means "in sync"."""
    if not date_header:
        return None
    try:
        stamp = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    midpoint = (sent_at + received_at) / 2.0
    # The header is truncated to the second: +0.5 s is the expected truncation.
    return stamp.timestamp() + 0.5 - midpoint


def ago(seconds: float) -> str:
    """``seconds`` as people say it: ``45 s``, ``12 min``, ``3.5 h``, ``2.0 days``."""
    seconds = abs(seconds)
    if seconds < 120:
        return "{:.0f} s".format(seconds)
    if seconds < 7200:
        return "{:.0f} min".format(seconds / 60)
    if seconds < 3 * 86400:
        return "{:.1f} h".format(seconds / 3600)
    return "{:.1f} days".format(seconds / 86400)


def _tls_days_left(url: str, verify: Any, timeout: float) -> Tuple[str, str, Optional[str]]:
    """(status, detail, fix) for the server's TLS certificate."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        local = parts.hostname in ("localhost", "127.0.0.1", "::1")
        return ("skip" if local else "warn",
                "n/a: {} is http://, not TLS".format(parts.hostname),
                None if local else "use https:// so credentials are not sent in clear")
    if verify is False:
        return ("warn", "certificate not checked: TLS verification is off",
                "trust the server's CA (REQUESTS_CA_BUNDLE=/path/ca.pem) instead of turning "
                "checks off")
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    host, port = parts.hostname or "", parts.port or 443
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                cert = tls.getpeercert() or {}
    except ssl.SSLError as exc:
        return ("fail", "TLS failed: {}".format(getattr(exc, "reason", None) or exc),
                "renew the certificate or trust its CA (REQUESTS_CA_BUNDLE=/path/ca.pem)")
    except OSError as exc:
        return ("warn", "could not open a direct TLS connection to check the certificate "
                        "({}; a proxy?)".format(type(exc).__name__), None)
    not_after = cert.get("notAfter")
    if not not_after:
        return ("warn", "the certificate has no expiry date", None)
    days = (ssl.cert_time_to_seconds(str(not_after)) - time.time()) / 86400.0  # always a str
    if days < 0:
        return ("fail", "certificate expired {:.0f} days ago".format(-days),
                "renew the certificate")
    if days < 14:
        return ("warn", "certificate valid, expires in {:.0f} days".format(days),
                "renew the certificate soon")
    return ("pass", "certificate valid, expires in {:.0f} days".format(days), None)


# --- server health inside DHIS2 (#25): what setup and pushing need ------------------------
# Who may create setup's metadata is datavalues' table (SETUP_AUTHORITIES, setup_refused).
# POST /api/dataValueSets needs ALL or F_DATAVALUE_ADD (@PreAuthorize to 2.41,
# @RequiresAuthority(anyOf = F_DATAVALUE_ADD) on 2.42+), then data write sharing on the
# data set and the org unit among the user's.

#: who may POST /api/dataValueSets
DATA_VALUE_AUTHORITIES = ("ALL", "F_DATAVALUE_ADD")


def data_values_checks(status: "DataValuesStatus", authorities: Iterable[str],
                       asked: bool = True) -> List[models.DoctorCheck]:
    """The doctor's lines on server health as data values (#25) from a
    :class:`dhis2maint.datavalues.DataValuesStatus` and the user's authorities:
    the metadata is in place and matches the check list (a check a DHIS2 upgrade
    added is named; the follow-up runs setup again), the user may create it, and
    may write the values.  Nothing when the metadata does not exist and nobody
    ``asked``: a server that never used this gets no new line."""
    if not status.present and not asked:
        return []
    have = set(authorities)
    out: List[models.DoctorCheck] = []
    prefix = status.prefix
    setup = tuple(status.follow_ups) or (models.FollowUp(
        "setup_data_values", (("prefix", prefix),), "create the metadata"),)
    if not status.missing:
        out.append(_finding("data values: metadata", "pass", "{} objects of prefix {} in "
                            "place{}".format(len(status.present), prefix, ", data set {}".format(
                                status.data_set) if status.data_set else "")))
    elif not status.present:
        out.append(_finding("data values: metadata", "fail",
                            "not set up: no object coded {}… exists".format(prefix),
                            follow_ups=setup))
    elif status.missing_checks:
        names = status.missing_checks
        out.append(_finding(
            "data values: metadata", "fail",
            "{} integrity check{} {} no data element (added by a DHIS2 upgrade?): {}{}; "
            "their values would be refused".format(
                len(names), "" if len(names) == 1 else "s", "has" if len(names) == 1 else
                "have", ", ".join(names[:10]), " …" if len(names) > 10 else ""),
            follow_ups=setup))
    else:
        out.append(_finding("data values: metadata", "fail", "missing: {}{}".format(
            ", ".join(status.missing[:10]), " …" if len(status.missing) > 10 else ""),
            follow_ups=setup))
    lacking = setup_refused(have)
    if not lacking:
        out.append(_finding("data values: setup authority", "pass",
                            "may create the metadata ({})".format(
                                "ALL" if "ALL" in have else "public or private add of each "
                                "type")))
    else:
        need = [a for kind, any_of in SETUP_AUTHORITIES if kind in lacking
                for a in (any_of or ())[:1]]
        out.append(_finding(
            "data values: setup authority", "fail" if status.missing else "warn",
            "setting up again will be refused: may not create {} (POST /api/metadata asks "
            "each type's add authority)".format(", ".join(lacking)),
            "give the user a role with {} (or the PRIVATE_ADD variants)".format(
                ", ".join(need))))
    problems = []
    if not have.intersection(DATA_VALUE_AUTHORITIES):
        problems.append("no F_DATAVALUE_ADD (nor ALL): POST /api/dataValueSets is refused "
                        "(HTTP 403)")
    if status.can_write_data is False:
        problems += [p for p in status.problems if not (
            "not set up" in p or "without a data element" in p or p.startswith("missing:")
            or "may not create" in p)]
        if len(problems) == 0:
            problems.append("the user may not write data values to the data set {} or org "
                            "unit {}".format(status.data_set, status.org_unit))
    if problems:
        out.append(_finding("data values: write", "fail", "; ".join(problems),
                            "give the user F_DATAVALUE_ADD, data write sharing on the data set "
                            "and the organisation unit among their data capture units"))
    elif status.can_write_data is None:
        out.append(_finding("data values: write", "skip",
                            "no data set yet: checked once setup has made it"))
    else:
        out.append(_finding("data values: write", "pass", "may write data values to data set "
                            "{} for org unit {}".format(status.data_set, status.org_unit)))
    return out


if TYPE_CHECKING:
    import requests

    from ._typing import SessionTransport
    from .datavalues import DataValuesStatus

    class _Transport(SessionTransport, requests.Session):
        """doctor() reads requests.Session's ``verify``, the session's ``source``
        and the health mixin's verdict too."""

        source: Optional[str]

        def scheduler_health(self, now: Optional[datetime.datetime] = None,
                             max_runtime_hours: float = 6.0,
                             analytics_max_age_hours: float = 26.0
                             ) -> models.SchedulerHealth: ...

        def data_values_status(self, prefix: str = "DM_", org_unit: Optional[str] = None
                               ) -> "DataValuesStatus": ...
else:
    _Transport = object


class DoctorMixin(_Transport):
    """``doctor`` and ``whoami`` of :class:`dhis2maint.Session` (mixed in; they use
    the session's transport helpers and ``scheduler_health``)."""

    def whoami(self) -> models.UserInfo:
        """Who the session is logged in as: ``GET /api/me?fields=…`` (2.36/2.37: the
        username is ``userCredentials.username``) and, when the reply has no
        authorities, ``GET /api/me/authorities`` -> :class:`UserInfo`.  No
        credential is returned."""
        fields = "id,username,displayName,authorities" if versions.supports(
            self.server_version, "me_username") else \
            "id,displayName,userCredentials[username],authorities"
        me = self._json("GET", "me", params={"fields": fields}, expect=dict)
        user = convert.structure(me, models.UserInfo, "GET /api/me")
        if not isinstance(me.get("authorities"), list):
            authorities = self._json("GET", "me/authorities", expect=list)
            user.authorities = sorted(str(a) for a in authorities)
        return user

    def doctor(self, need: Iterable[str] = (), max_skew_seconds: float = 60.0,
               data_values_prefix: Optional[str] = None,
               data_values_org_unit: Optional[str] = None) -> models.DoctorReport:
        """Check everything a nightly script depends on -> :class:`DoctorReport`: one
        :class:`DoctorCheck` (pass/warn/fail/skip + the fix) each for: the URL
        answers; TLS (days to certificate expiry; n/a for http://); the credentials
        are accepted; who the user is; the DHIS2 version is supported and what it
        lacks; the user's authorities per feature (``need``: feature names whose
        missing authority is a failure, not a warning -- see
        :data:`FEATURE_AUTHORITIES`); clock skew from the HTTP ``Date`` header; the
        scheduler health summary.  Never raises for a DHIS2 or network problem:
        that is a failed check.  Credentials never appear in the report.

        Server health as data values (#25, :func:`data_values_checks`): checked when
        ``data_values_prefix`` is given (with ``data_values_org_unit``: the org unit
        the values go to), or when the metadata of the default prefix ``DM_`` exists
        (``GET /api/dataSets?filter=code:eq:…``, then
        :meth:`~dhis2maint.Session.data_values_status`).
        """
        need = list(need)
        authority_checks((), versions.SUPPORTED_VERSIONS[1], need)  # validates the names first
        if data_values_prefix is not None:
            from .datavalues import object_codes

            object_codes(data_values_prefix)  # a bad prefix: ConfigurationError, nothing sent
        if data_values_org_unit is not None:
            self._uid(data_values_org_unit, "data_values_org_unit")
        checks: List[models.DoctorCheck] = []
        report = models.DoctorReport(url=self.base_url, checks=checks)

        def add(name: str, status: str, detail: str, advice: Optional[str] = None,
                follow_ups: Tuple[models.FollowUp, ...] = ()) -> None:
            checks.append(_finding(name, status, detail, advice, follow_ups))

        # reachable: any HTTP answer will do (GET /api/ping needs no login on 2.38+)
        sent = time.time()
        date_header = None
        try:
            response = self._send("GET", "system/ping")
            date_header = response.headers.get("Date")
            add("reachable", "pass", "{} answered in {:.0f} ms".format(
                self.base_url, (time.time() - sent) * 1000))
        except TransportError as exc:
            add("reachable", "fail", str(exc), "check {}, DNS, the firewall and that DHIS2 is "
                                               "up".format(url_setting(self.source)))
            return report
        except NotFound:  # every DHIS2 answers /api/system/ping: a wrong URL (#21.5)
            add("url", "fail", "{} answered HTTP 404 for /api/system/ping: no DHIS2 API at this "
                               "URL".format(self.base_url), _wrong_url_fix(self.source))
            return report
        except ApiError as exc:
            refused = exc.response
            date_header = refused.headers.get("Date") if refused is not None else None
            add("reachable", "pass", "{} answered (HTTP {})".format(self.base_url,
                                                                   exc.status_code))
        received = time.time()
        status, detail, fix = _tls_days_left(self.base_url, self.verify, self.timeout)
        add("tls", status, detail, fix)
        # credentials + who
        try:
            user = self.whoami()
        except AuthenticationError as exc:
            add("credentials", "fail", "DHIS2 refused the {} credentials: {}".format(
                self.auth_kind, exc.dhis2_message or "HTTP {}".format(exc.status_code)),
                AuthenticationError.hint_for(self.source))
            return report
        except (NotFound, InvalidResponseError, UnsupportedServerError) as exc:
            # not DHIS2 at this URL (a 404, another application): the URL is wrong,
            # not the credentials (#21.5)
            add("url", "fail", str(exc), _wrong_url_fix(self.source))
            return report
        except Dhis2Error as exc:
            add("credentials", "fail", str(exc), None)
            return report
        add("credentials", "pass", "{} credentials accepted".format(self.auth_kind))
        add("user", "pass", "{} ({}), {} authorit{}{}".format(
            user.username or "?", user.display_name or "?", len(user.authorities),
            "y" if len(user.authorities) == 1 else "ies",
            ", superuser (ALL)" if user.superuser else ""))
        # version
        version = self.server_version
        text = ".".join(map(str, version))
        lacks = lacking_features(version)
        if versions.tested(version):
            add("version", "pass" if not lacks else "warn",
                "DHIS2 {} is supported{}".format(text, "; it lacks: " + "; ".join(lacks)
                                                 if lacks else ""),
                "upgrade DHIS2 for the missing features" if lacks else None)
        else:
            add("version", "warn", "DHIS2 {} is outside the tested range {}-{}".format(
                text, *(versions.version_text(v) for v in versions.SUPPORTED_VERSIONS)),
                "expect differences; report what breaks")
        for check in authority_checks(user.authorities, version, need):
            checks.append(check)
        # clock skew
        skew = clock_skew(date_header, sent, received)
        if skew is None:
            add("clock", "skip", "no Date header in DHIS2's answer (a proxy removed it?)")
        elif abs(skew) <= max(2.0, max_skew_seconds):
            add("clock", "pass", "server clock {:+.0f} s from this machine's".format(skew))
        else:
            add("clock", "warn" if abs(skew) < 900 else "fail",
                "server clock is {} {} this machine's".format(ago(skew),
                                                              "ahead of" if skew > 0 else
                                                              "behind"),
                "sync both clocks with NTP (job times are compared in server time, but logs "
                "and tokens are not)")
        # server health as data values (#25): only when asked or already set up
        checks.extend(self._data_values_doctor(user.authorities, data_values_prefix,
                                               data_values_org_unit))
        # scheduler
        try:
            health = self.scheduler_health()
        except Dhis2Error as exc:
            add("scheduler", "fail", "could not read the scheduler: {}".format(exc), None)
            return report
        worst = health.worst
        kinds: Dict[str, int] = {}
        for finding in health.findings:
            kinds[finding.kind] = kinds.get(finding.kind, 0) + 1
        summary = "{} jobs, {} finding{}{}".format(
            health.jobs_checked, len(health.findings), "" if len(health.findings) == 1 else "s",
            " ({})".format(", ".join("{} {}".format(n, k) for k, n in sorted(kinds.items())))
            if kinds else "")
        see = (models.FollowUp("scheduler_health", (), "see the findings"),)
        if worst in ("SEVERE", "CRITICAL"):
            add("scheduler", "fail", summary + ", worst " + worst, follow_ups=see)
        elif worst == "WARNING":
            add("scheduler", "warn", summary, follow_ups=see)
        else:
            add("scheduler", "pass", summary)
        return report


    def _data_values_doctor(self, authorities: Sequence[str], prefix: Optional[str],
                            org_unit: Optional[str]) -> List[models.DoctorCheck]:
        asked = prefix is not None or org_unit is not None
        try:
            if not asked and not self._data_values_set_up("DM_"):
                return []  # never set up: no new line for a server that does not use it
            status = self.data_values_status(prefix=prefix or "DM_", org_unit=org_unit)
        except Dhis2Error as exc:
            if not asked:
                return []
            return [_finding("data values: metadata", "fail",
                             "could not read it: {}".format(exc))]
        return data_values_checks(status, authorities, asked)

    def _data_values_set_up(self, prefix: str) -> bool:
        """Whether setup made the data set of ``prefix``: one small
        ``GET /api/dataSets?filter=code:eq:<its code>&fields=id``."""
        from .datavalues import object_codes

        body = self._json("GET", "dataSets", expect=dict, params={
            "filter": "code:eq:" + object_codes(prefix)["data_set"], "fields": "id",
            "paging": "false"})
        return bool(body.get("dataSets"))


def _wrong_url_fix(source: Optional[str]) -> str:
    """The fix of a URL that is not DHIS2's API."""
    return ("check {}: it must be the DHIS2 server itself, with its context path (e.g. "
            "https://host/dhis when DHIS2 lives under /dhis)".format(url_setting(source)))


