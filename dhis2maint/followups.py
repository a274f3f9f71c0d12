"""What to do next: the action vocabulary, and how the Python face words it.

The library decides what a user should do next and records it as data, a
:class:`~dhis2maint.models.FollowUp` (on errors: ``Dhis2Error.follow_ups``; on
findings: ``HealthFinding.follow_ups``, ``DoctorCheck.follow_ups``).  Each face
words it for its reader: this module for Python (``session.wait_for_task(…)``),
the command line for its commands (the ``task wait`` command), the MCP server
for its tools.  No library message names a command or a call itself.

A follow-up reads ``<note> with <call>`` ("follow it with
session.wait_for_task('ANALYTICS_TABLE', 'fyGB…')"); several are joined with
``; ``, and face-neutral ``advice`` (text without calls) comes after them.
"""
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Sequence, Tuple

if TYPE_CHECKING:
    from .models import FollowUp

__all__ = ["ACTIONS", "python_call", "python_text", "compose"]

#: action -> (the Session method's positional parameters, in order; others are keywords).
#: Every action is a :class:`~dhis2maint.Session` method of the same name.
ACTIONS: Dict[str, Tuple[str, ...]] = {
    "wait_for_task": ("job_type", "job_id"),
    "get_task_notifications": ("job_type", "job_id"),
    "get_job_configuration": ("job_id",),
    "run_job_configuration": ("job_id",),
    "enable_job_configuration": ("job_id",),
    "disable_job_configuration": ("job_id",),
    "cancel_job": ("job_id",),
    "list_job_configurations": (),
    "scheduler_health": (),
    "refresh_analytics": (),
    "list_integrity_checks": (),
    "run_integrity_checks": (),
    "get_integrity_report": (),
    "iter_integrity_issues": (),
    "whoami": (),
    "doctor": (),
    "setup_data_values": (),  # #25
}


def python_call(follow_up: "FollowUp") -> str:
    """``FollowUp("wait_for_task", (("job_type", "ANALYTICS_TABLE"), ("job_id", "fyGB")))``
    -> ``session.wait_for_task('ANALYTICS_TABLE', 'fyGB')``: positional where the
    method takes them so (:data:`ACTIONS`), keywords after."""
    if follow_up.action == "trust_ca_bundle":  # a setting, not a method
        return "Session(verify='/path/ca.pem') or {}=/path/ca.pem".format(
            follow_up.arg("env") or "REQUESTS_CA_BUNDLE")
    positional = ACTIONS.get(follow_up.action, ())
    values = dict(follow_up.args)
    parts = []
    for name in positional:
        if name not in values:
            break
        parts.append(_literal(values.pop(name)))
    parts.extend("{}={}".format(name, _literal(value)) for name, value in follow_up.args
                 if name in values)
    return "session.{}({})".format(follow_up.action, ", ".join(parts))


def _literal(value: Any) -> str:
    if hasattr(value, "value") and not isinstance(value, (str, bool, int, float)):
        value = value.value  # an enum member (JobType) reads as its DHIS2 name
    return repr(value)


def compose(follow_ups: Iterable["FollowUp"], call: Callable[["FollowUp"], str],
            advice: str = "") -> str:
    """One sentence: each follow-up as ``<note> with <call>`` (``call`` is the face's
    wording of it), joined with ``; ``, then ``advice`` (face-neutral text)."""
    parts = ["{} with {}".format(f.note, call(f)) if f.note else call(f) for f in follow_ups]
    if advice:
        parts.append(advice)
    return "; ".join(parts)


def python_text(follow_ups: Sequence["FollowUp"], advice: str = "") -> str:
    """:func:`compose` in Python's words (``session.…(…)``)."""
    return compose(follow_ups, python_call, advice)
