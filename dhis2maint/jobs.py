"""Background jobs: starting them, their task notifications, and following them.

(Being filled in: task notifications, wait_for_task, triggers, maintenance.)
"""
from . import convert, models
from .errors import InvalidResponseError, TransportError

__all__ = ["JobsMixin"]


def _tolerant_job_type(value):
    try:
        return models.JobType(value)
    except ValueError:
        return value


class JobsMixin:
    """Job methods of :class:`dhis2maint.Session` (mixed in; uses its transport helpers)."""

    def _start_job(self, path, job_type, params=None, json_body=None, method="POST"):
        """Send a job-starting request ONCE and return the :class:`Job` DHIS2 created.

        A broken connection after sending raises :class:`TransportError` saying
        the job may have started and how to check; it is never re-sent.
        """
        what = "{} /api/{}".format(method, path)
        try:
            body = self._json(method, path, params=params, json_body=json_body, expect=dict)
        except TransportError as exc:
            if "may have reached" in str(exc):
                raise TransportError(
                    "{} -- the {} job MAY have started; check with "
                    "`dhis2maint task status {}` (or session.get_task_notifications({!r})) "
                    "before starting it again".format(exc, job_type, job_type, str(job_type)),
                    request=exc.request) from exc
            raise
        return self._job_from_message(body, job_type, what)

    def _job_from_message(self, body, job_type, what):
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
            job_type=_tolerant_job_type(response.get("jobType") or str(job_type)),
            created=created,
            name=response.get("name"),
            job_status=response.get("jobStatus"),
            job_parameters=params if isinstance(params, dict) else None,
            relative_notifier_endpoint=response.get("relativeNotifierEndpoint"),
            message=body.get("message"),
            session=self,
        )
