"""Alerts that fire once per change: what to say, and to whom.

A command run yields *conditions* (something wrong at a severity): new integrity
issues in a check (:func:`integrity_conditions`, from what
:meth:`History.record` decided), scheduler findings (:func:`health_conditions`,
from :meth:`History.record_health`), a followed job that failed or timed out
(:func:`job_condition`), DHIS2 not answering (:func:`down_condition`).
:func:`decide` compares them with the conditions already alerted (the history's
alert state) and returns at most one :class:`Alert` per run: the new ones, and
the alerted ones now gone ("resolved").  The same state never alerts twice.
Without a history (``state`` None) every run alerts on everything at the level.

:func:`notify` sends an alert to its targets (``webhook:URL``,
``dhis2-user:UID``, ``dhis2-group:UID``), each bounded in time and bytes and sent
once; it returns warnings, it never raises for a failed delivery.  A webhook URL
is a secret: only its host appears in any text this module makes.

Importing :mod:`dhis2maint` does not import this module.
"""
import json
import re
import time
from typing import (TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence,
                    Tuple)

import attr

from . import models
from .errors import ConfigurationError
from .models import _Model, severity_rank

if TYPE_CHECKING:
    from .history import RecordedHealth, RecordedRun
    from .session import Session

__all__ = ["LEVELS", "Condition", "AlertItem", "Alert", "Target", "parse_target",
           "integrity_conditions", "health_conditions", "job_condition", "down_condition",
           "decide", "notify", "webhook_body", "NOTIFY_TIMEOUT", "MAX_ITEMS"]

LEVELS = ("info", "warning", "severe", "critical")
#: Seconds one notification may take in all.
NOTIFY_TIMEOUT = 10.0
#: Items listed in one message (the rest are counted).
MAX_ITEMS = 50
_MAX_TEXT = 4000
_UID = re.compile(r"^[A-Za-z][A-Za-z0-9]{10}$")


@attr.s(auto_attribs=True, slots=True, repr=False)
class Condition(_Model):
    """Something wrong now: ``key`` (``integrity:<check>``, ``scheduler:<finding>``,
    ``job:<JOB_TYPE>``, ``down``), its ``severity``, a ``text``; ``fresh`` when it
    changed since the previous recorded run (new issues, a new finding) and so
    alerts even when already alerted; a state (a failing job, DHIS2 down) is not
    fresh: it alerts once, until it is resolved."""

    key: str
    severity: str
    text: str
    fresh: bool = True


@attr.s(auto_attribs=True, slots=True, repr=False)
class AlertItem(_Model):
    """One line of an alert: ``state`` is ``new`` or ``resolved``."""

    key: str
    state: str
    severity: Optional[str]
    text: str


@attr.s(auto_attribs=True, slots=True, repr=False)
class Alert(_Model):
    """One message: ``event`` is ``alert`` (something new, maybe with resolved
    items) or ``resolved`` (only resolved items)."""

    server: str
    event: str
    items: List[AlertItem] = attr.Factory(list)

    @property
    def text(self) -> str:
        """The message as one plain text (Slack/Mattermost show it as is)."""
        new = [i for i in self.items if i.state == "new"]
        gone = [i for i in self.items if i.state == "resolved"]
        head = "dhis2maint on {}: {}".format(self.server, ", ".join(
            part for part in ("{} new".format(len(new)) if new else "",
                              "{} resolved".format(len(gone)) if gone else "") if part))
        lines = [head]
        for item in (new + gone)[:MAX_ITEMS]:
            lines.append("- {}{}: {}".format("RESOLVED " if item.state == "resolved" else "",
                                             item.severity or "", item.text))
        if len(self.items) > MAX_ITEMS:
            lines.append("- … and {} more".format(len(self.items) - MAX_ITEMS))
        text = "\n".join(lines)
        return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT - 1] + "…"


@attr.s(auto_attribs=True, slots=True, frozen=True)
class Target:
    """Where an alert goes: ``kind`` ``webhook``, ``dhis2-user`` or ``dhis2-group``."""

    kind: str
    value: str = attr.ib(repr=False)

    def __repr__(self) -> str:
        return "Target({})".format(self.describe())

    def describe(self) -> str:
        """The target as messages may show it (a webhook by its host only)."""
        if self.kind == "webhook":
            from .metrics import host_of

            return "webhook:{}".format(host_of(self.value))
        return "{}:{}".format(self.kind, self.value)


def parse_target(text: str) -> Target:
    """``webhook:https://…``, ``dhis2-user:UID`` or ``dhis2-group:UID`` -> :class:`Target`;
    anything else is a :class:`ConfigurationError` (which never repeats a URL)."""
    kind, _, value = str(text).partition(":")
    kind = kind.strip().lower()
    value = value.strip()
    if kind == "webhook":
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(value)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            ok = False
        if not ok:
            raise ConfigurationError("a webhook target needs an http(s) URL: "
                                     "webhook:https://host/…")
        return Target("webhook", value)
    if kind in ("dhis2-user", "dhis2-group"):
        if not _UID.match(value):
            raise ConfigurationError("{} needs a DHIS2 UID (11 letters and digits), got "
                                     "{!r}".format(kind, value[:40]))
        return Target(kind, value)
    raise ConfigurationError("unknown notify target {!r}: use webhook:URL, dhis2-user:UID or "
                             "dhis2-group:UID".format(kind[:40]))


def _at_least(severity: object, level: str) -> bool:
    return severity_rank(str(severity or "WARNING")) >= severity_rank(level)


# --- conditions -------------------------------------------------------------------------


def integrity_conditions(report: models.DataIntegrityReport,
                         recorded: Optional["RecordedRun"] = None
                         ) -> Tuple[List[str], List[Condition]]:
    """(keys the run covered, conditions): one per check with issues; ``fresh``
    when the history counted new issues in it (without one: every check)."""
    scope, out = [], []
    for result in report:
        if result.error is not None:
            continue
        key = "integrity:" + result.name
        scope.append(key)
        count = result.count
        if count is None and result.issues is not None:
            count = len(result.issues)
        if not count or count < 0:
            continue
        new = count if recorded is None else recorded.new_by_check.get(result.name, 0)
        name = result.display_name or result.name
        text = "{}: {:,} issues{}".format(name, count, ", {:,} new".format(new) if new else "")
        out.append(Condition(key, str(result.severity or "WARNING").upper(), text,
                             fresh=bool(new)))
    return scope, out


def health_conditions(health: models.SchedulerHealth,
                      recorded: Optional["RecordedHealth"] = None) -> List[Condition]:
    """One condition per scheduler finding; ``fresh`` when the previous recorded
    health check did not have it."""
    from .history import finding_identity

    new = None if recorded is None else {finding_identity(f) for f in recorded.new_findings}
    return [Condition("scheduler:" + finding_identity(f), str(f.severity).upper(), f.message,
                      fresh=new is None or finding_identity(f) in new)
            for f in health.findings]


def job_condition(job_type: str, failure: Optional[str]) -> Tuple[str, Optional[Condition]]:
    """(key, condition): a followed job that failed or timed out (``failure`` its
    message) is SEVERE; None when it succeeded."""
    key = "job:" + str(job_type)
    if failure is None:
        return key, None
    return key, Condition(key, "SEVERE", "{} job: {}".format(job_type, failure[:300]),
                          fresh=False)


def down_condition(reason: Optional[str]) -> Tuple[str, Optional[Condition]]:
    """(key, condition): DHIS2 did not answer (CRITICAL); None when it did."""
    if reason is None:
        return "down", None
    return "down", Condition("down", "CRITICAL", "DHIS2 did not answer: {}".format(reason[:300]),
                             fresh=False)


# --- the decision ------------------------------------------------------------------------


def decide(server: str, scope: Iterable[str], conditions: Sequence[Condition], level: str,
           state: Optional[Mapping[str, Tuple[Optional[str], Optional[str]]]]
           ) -> Tuple[Optional[Alert], Dict[str, Tuple[Optional[str], Optional[str]]],
                      List[str]]:
    """(the alert or None, conditions to add to the state, keys to drop from it).

    ``scope``: keys (or prefixes ending in ``:``) this run looked at; an alerted
    key in scope that is no longer a condition at ``level`` is resolved.
    ``state``: the conditions alerted before (None: no history, so everything at
    ``level`` alerts and nothing is remembered)."""
    if level.lower() not in LEVELS:
        raise ConfigurationError("notify level must be one of {}, got {!r}".format(
            "|".join(LEVELS), level))
    active = {c.key: c for c in conditions if _at_least(c.severity, level)}
    if state is None:
        items = [AlertItem(c.key, "new", c.severity, c.text) for c in active.values()]
        return (Alert(server, "alert", items) if items else None), {}, []
    keys = list(scope)

    def covered(key: str) -> bool:
        return any(key == k or (k.endswith(":") and key.startswith(k)) for k in keys)

    raised: Dict[str, Tuple[Optional[str], Optional[str]]] = {
        c.key: (c.severity, c.text) for c in active.values() if c.fresh or c.key not in state}
    cleared = sorted(k for k in state if covered(k) and k not in active)
    items = [AlertItem(k, "new", sev, text or k) for k, (sev, text) in raised.items()]
    items += [AlertItem(k, "resolved", state[k][0], state[k][1] or k) for k in cleared]
    if not items:
        return None, {}, []
    return Alert(server, "alert" if raised else "resolved", items), raised, cleared


# --- delivery -------------------------------------------------------------------------------


def webhook_body(alert: Alert) -> Dict[str, Any]:
    """``{"text", "event", "server", "items"}``: ``text`` is what chat webhooks show."""
    return {"text": alert.text, "event": alert.event, "server": alert.server,
            "items": [{"key": i.key, "state": i.state, "severity": i.severity, "text": i.text}
                      for i in alert.items[:MAX_ITEMS]]}


def notify(alert: Alert, targets: Sequence[Target], session: Optional["Session"] = None,
           timeout: float = NOTIFY_TIMEOUT) -> List[str]:
    """Send ``alert`` to every target: each webhook once (POST JSON), the DHIS2
    users and groups together in one message (``POST /api/messageConversations``
    through ``session``).  Returns one warning per failed delivery (empty: all
    delivered); never raises for a delivery."""
    from .metrics import PushError, post_bounded

    warnings = []
    body = json.dumps(webhook_body(alert), ensure_ascii=False).encode("utf-8")
    for target in targets:
        if target.kind != "webhook":
            continue
        try:
            status = post_bounded(target.value, body, "application/json", timeout)
        except PushError as exc:
            warnings.append("notification to {} failed: {}".format(target.describe(), exc))
            continue
        if not 200 <= status < 300:
            warnings.append("notification to {} failed: HTTP {}".format(target.describe(),
                                                                         status))
    users = [t.value for t in targets if t.kind == "dhis2-user"]
    groups = [t.value for t in targets if t.kind == "dhis2-group"]
    if users or groups:
        what = "DHIS2 message to {}".format(", ".join(
            t.describe() for t in targets if t.kind != "webhook"))
        if session is None:
            warnings.append("{} not sent: no DHIS2 session".format(what))
        else:
            problem = _dhis2_message(session, alert, users, groups, timeout)
            if problem:
                warnings.append("{} failed: {}".format(what, problem))
    return warnings


def _dhis2_message(session: "Session", alert: Alert, users: List[str], groups: List[str],
                   timeout: float) -> Optional[str]:
    """POST /api/messageConversations (201 "Message conversation created" on
    2.36-2.43; any logged-in user may send); the problem, or None."""
    import requests

    subject = "dhis2maint: {} on {}".format(
        "resolved" if alert.event == "resolved" else "alert", alert.server)[:255]
    payload = {"subject": subject, "text": alert.text, "users": [{"id": u} for u in users],
               "userGroups": [{"id": g} for g in groups]}
    started = time.monotonic()
    try:
        with session.post(session.api_url("messageConversations"), json=payload,
                          timeout=(min(timeout, 5.0), timeout), stream=True,
                          allow_redirects=False) as response:
            data = b""
            for chunk in response.iter_content(8192):
                data += chunk
                if len(data) > 65536 or time.monotonic() - started > timeout:
                    break
            status = int(response.status_code)
    except requests.exceptions.RequestException as exc:
        return "connection failed ({})".format(type(exc).__name__)
    if 200 <= status < 300:
        return None
    try:
        message = json.loads(data.decode("utf-8", "replace")).get("message")
    except (ValueError, AttributeError):
        message = None
    return "HTTP {}{}".format(status, ": " + str(message)[:200] if message else "")
