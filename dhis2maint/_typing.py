"""For type checkers only: what the feature mixins use of :class:`dhis2maint.Session`.

integrity.py, jobs.py, jobconfigs.py, validation.py and health.py name :class:`SessionTransport` as
their base class under ``typing.TYPE_CHECKING`` (and ``object`` at run time), so mypy
and pyright check their methods against the session's transport helpers (and the
two PUBLIC methods one mixin calls of another; no mixin calls another's private
helpers: the one job-start path is :mod:`dhis2maint.jobstart`'s functions).  Nothing imports this
module at run time.
"""
from typing import (TYPE_CHECKING, Any, Container, Dict, Generator, List, Optional, Tuple, Type,
                    Union)

import requests

if TYPE_CHECKING:
    from typing import Protocol

    from . import models
else:  # pragma: no cover - never imported at run time
    Protocol = object

#: seconds, or (connect, read) seconds, or None for the session's timeout
Timeout = Union[float, Tuple[float, float], None]
#: what ``_json``/``decode_json`` take as ``expect``
Expect = Union[Type[Any], Tuple[Type[Any], ...], None]


class SessionTransport(Protocol):
    """The attributes and helpers of :class:`dhis2maint.Session` the mixins call."""

    base_url: str
    timeout: float
    stream_deadline: float
    retries: int
    recover_job_starts: bool
    max_body_bytes: int
    outage_grace: float

    @property
    def auth_kind(self) -> str: ...

    @property
    def server_version(self) -> Tuple[int, ...]: ...

    @staticmethod
    def _segment(value: object, what: str = "path parameter") -> str: ...

    @staticmethod
    def _uid(value: object, what: str = "UID") -> str: ...

    def _send(self, method: str, path: str, params: Any = None, json_body: Any = None,
              timeout: Timeout = None, stream: bool = False,
              headers: Optional[Dict[str, str]] = None,
              ok_statuses: Optional[Container[int]] = None,
              max_bytes: Optional[int] = None) -> requests.Response: ...

    def _json(self, method: str, path: str, params: Any = None, json_body: Any = None,
              timeout: Timeout = None, expect: Expect = None,
              allow_empty: bool = False, max_bytes: Optional[int] = None) -> Any: ...

    def _body_chunks(self, response: requests.Response, what: str,
                     started: Optional[float] = None) -> Generator[bytes, None, None]: ...

    def list_job_configurations(self, job_type: Union["models.JobType", str, None] = None,
                                enabled: Optional[bool] = None,
                                status: Union["models.JobStatus", str, None] = None
                                ) -> List["models.JobConfiguration"]: ...

    def get_job_configuration(self, job_id: str) -> "models.JobConfiguration": ...
