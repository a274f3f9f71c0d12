"""The one path that starts a DHIS2 background job, and what it does when the answer is lost.

Every trigger (analytics, resource tables, monitoring, data integrity, job
configurations) sends its start request through :func:`start_job`: ONCE, never
re-sent.  A lost, empty or oversized answer is ``outcome_unknown``; with
``Session(recover_job_starts=True)`` the task feed is read for the one new job
of the type and that job is adopted.  Functions of a session (its transport
helpers only), not a mixin: integrity.py, jobs.py and jobconfigs.py all call them.
"""
from __future__ import annotations  # models are built on first use, not to annotate

import datetime
import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set, Tuple, Union, cast

from . import convert, models, polling
from .arguments import job_type_text, tolerant_job_type
from .errors import ApiError, InvalidResponseError, TransportError
from .transport import SMALL_BODY_BYTES

if TYPE_CHECKING:
    from ._typing import SessionTransport

__all__ = ["start_job", "send_start", "task_feed", "RECOVERY_WAIT", "RECOVERY_POLL"]

log = logging.getLogger("dhis2maint")

#: With ``Session(recover_job_starts=True)``: how long (seconds) the task feed is
#: watched for the job whose start answer was lost, and how often it is read.
RECOVERY_WAIT = 30.0
RECOVERY_POLL = 2.0


def start_job(session: "SessionTransport", path: str, job_type: Union[models.JobType, str],
               params: Optional[Dict[str, Any]] = None, json_body: Any = None,
               method: str = "POST") -> models.Job:
    """Send a job-starting request ONCE and return the :class:`Job` DHIS2 created.

    When the answer is lost after sending (a read timeout, a dropped
    connection, a body that broke off), the request is never re-sent: a
    :class:`TransportError` says the job MAY have started and how to check.
    An empty 200 answer (no job id) is an :class:`InvalidResponseError` saying
    the same, with ``outcome_unknown`` set.

    With ``Session(recover_job_starts=True)`` the job ids of this type in
    ``GET /api/system/tasks/{jobType}`` are noted before the POST; after such
    a failure the feed is read again (for up to :data:`RECOVERY_WAIT` s, every
    :data:`RECOVERY_POLL` s) and if exactly ONE new job id of the type
    appeared, that job is returned (``message`` says it was recovered).  No
    new id, or several (someone else started one too), raises as above.
    The feed lists only jobs that have begun: a job queued behind another
    of its type is invisible, and if another client started a job of the
    same type in those same seconds, that one may be adopted -- which is
    why this is opt-in.  DHIS2 2.37-2.40 post no notifications for
    integrity runs, so those cannot be recovered.
    """
    what = "{} /api/{}".format(method, path)
    type_text = job_type_text(job_type)
    known = known_job_ids(session, type_text) if getattr(session, "recover_job_starts", False) \
        else None

    def recover(exc: BaseException) -> Optional[models.Job]:
        return None if known is None else recover_job(session, type_text, known, what, exc)

    def may_have_started(exc: BaseException) -> str:
        return "{} -- the {} job MAY have started: look before starting it again".format(
            exc, type_text)

    look = models.FollowUp("get_task_notifications", (("job_type", type_text),),
                           "see its task notifications")
    body = send_start(session, method, path, recover, may_have_started, follow_ups=(look,),
                      params=params, json_body=json_body)
    if isinstance(body, models.Job):
        return body
    return job_from_message(session, body, job_type, what)


def send_start(session: "SessionTransport", method: str, path: str,
               recover: Callable[[BaseException], Optional[models.Job]],
               may_have_started: Callable[[BaseException], str],
               follow_ups: Tuple[models.FollowUp, ...] = (), params: Any = None,
               json_body: Any = None) -> Union[Dict[str, Any], models.Job]:
    """The one way a job-starting request is sent: ONCE, its answer a JSON object
    of at most ``SMALL_BODY_BYTES``.

    Returns the answer, or -- when it was lost, empty or oversized
    (``outcome_unknown``: DHIS2 got the request) -- the job ``recover(exc)``
    adopted.  When nothing was adopted: :class:`InvalidResponseError` for an
    empty answer (``empty_body``), :class:`TransportError` otherwise, both with
    ``outcome_unknown`` set, worded by ``may_have_started(exc)`` and carrying
    ``follow_ups``.
    """
    try:
        return cast(Dict[str, Any], session._json(method, path, params=params,
                                                  json_body=json_body, expect=dict,
                                                  max_bytes=SMALL_BODY_BYTES))
    except (TransportError, InvalidResponseError) as exc:
        if not exc.outcome_unknown:
            raise
        job = recover(exc)
        if job is not None:
            return job
        text = may_have_started(exc)
        if isinstance(exc, InvalidResponseError) and exc.empty_body:
            # DHIS2 answered 200 without the job's id: still an invalid answer (#12.3)
            empty = InvalidResponseError(text, request=exc.request, response=exc.response)
            empty.outcome_unknown = empty.empty_body = True
            empty.follow_ups = follow_ups
            raise empty from exc
        lost = TransportError(text, request=exc.request)
        lost.outcome_unknown = True  # the request was sent; its answer is lost
        lost.follow_ups = follow_ups
        raise lost from exc


def known_job_ids(session: "SessionTransport", type_text: str) -> Optional[Set[str]]:
    """The job ids of one type in the task feed, or None when the feed can't be read."""
    try:
        return set(task_feed(session, type_text))
    except (ApiError, InvalidResponseError, TransportError) as exc:
        log.warning("recover_job_starts: GET /api/system/tasks/%s failed (%s); a lost "
                    "answer to the job start cannot be recovered", type_text,
                    type(exc).__name__)
        return None


def task_feed(session: "SessionTransport", type_text: str) -> Dict[str, List[Any]]:
    """``GET /api/system/tasks/{jobType}`` -> {job id: [raw notification dicts]}."""
    path = "system/tasks/" + type_text
    data = session._json("GET", path, expect=dict)
    for job_id, items in data.items():
        if not isinstance(items, list):
            raise InvalidResponseError("GET /api/{}: messages of job {} are not a list".format(
                path, job_id))
    return {str(k): v for k, v in data.items()}


def recover_job(session: "SessionTransport", type_text: str, known: Set[str], what: str,
                cause: BaseException) -> Optional[models.Job]:
    """The ONE job of ``type_text`` that appeared in the task feed since ``known``
    was taken, as a :class:`Job`, or None."""
    wait = polling.Wait(polling.Settings(RECOVERY_WAIT, RECOVERY_POLL, RECOVERY_POLL, 0.0),
                        "recovering the {} job started by {}".format(type_text, what))
    while True:
        try:
            feed = task_feed(session, type_text)
        except (ApiError, InvalidResponseError, TransportError):
            feed = {}
        new = sorted(set(feed) - known)
        if len(new) > 1:
            log.warning("%s: the answer was lost and %d new %s jobs appeared (%s); not "
                        "guessing which is ours", what, len(new), type_text, ", ".join(new))
            return None
        if len(new) == 1:
            break
        if not wait.pause():
            return None
    job_id = new[0]
    items = [n for n in feed[job_id] if isinstance(n, dict)]
    created = None
    for item in items:  # the oldest message's time: when the job began
        try:
            stamp = convert.parse_datetime(item.get("time"))
        except ValueError:
            continue
        if stamp is not None and (created is None or later(created, stamp)):
            created = stamp
    log.warning("%s: the answer was lost (%s); adopted the one new %s job in the task "
                "feed: %s", what, type(cause).__name__, type_text, job_id)
    return models.Job(
        id=job_id, job_type=tolerant_job_type(type_text), created=created,
        message="recovered from /api/system/tasks/{} after the answer to {} was lost".format(
            type_text, what),
        session=session)


def job_from_message(session: "SessionTransport", body: Dict[str, Any],
                     job_type: Union[models.JobType, str], what: str) -> models.Job:
    response = body.get("response")
    if not isinstance(response, dict) or not response.get("id"):
        raise InvalidResponseError(
            "{}: the reply has no job id (response.id); DHIS2 said: {!r}".format(
                what, str(body.get("message"))[:200]))
    created = response.get("created")
    try:
        created = convert.parse_datetime(created)
    except ValueError:
        created = None
    params = response.get("jobParameters")
    return models.Job(
        id=str(response["id"]),
        job_type=tolerant_job_type(response.get("jobType") or str(job_type)),
        created=created,
        name=response.get("name"),
        job_status=_tolerant_status(response.get("jobStatus")),
        job_parameters=params if isinstance(params, dict) else None,
        relative_notifier_endpoint=response.get("relativeNotifierEndpoint"),
        message=body.get("message"),
        session=session,
    )


def later(a: datetime.datetime, b: datetime.datetime) -> bool:
    """Whether ``a`` is after ``b`` (False when they cannot be compared)."""
    try:
        return a > b
    except TypeError:  # one with a zone, one without: DHIS2 never mixes them
        return False


def _tolerant_status(value: Optional[str]) -> Union[models.JobStatus, str, None]:
    try:
        return models.JobStatus(value) if value is not None else None
    except ValueError:
        return value
