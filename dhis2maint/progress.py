"""Progress lines: one task notification as ``[  12.3s] INFO  message``, the line the
command line prints on stderr while it waits for a job.
"""
from typing import IO, TYPE_CHECKING, Optional

from ._report_common import _clean, _sev

if TYPE_CHECKING:
    from .models import Notification

__all__ = ["write_notification_line"]


def write_notification_line(notification: "Notification", elapsed: Optional[float],
                            out: IO[str]) -> None:
    """Write ``[  12.3s] INFO  message`` for a task :class:`Notification` and flush.

    ``elapsed`` is seconds since the job started (``None`` leaves the time blank).
    """
    stamp = "       " if elapsed is None else "{:6.1f}s".format(elapsed)
    level = _sev(getattr(notification, "level", None)) or "-"
    message = _clean(getattr(notification, "message", None))
    if not message:
        # Job types outside DHIS2's notifying set post start/end with an empty message.
        message = "(completed)" if getattr(notification, "completed", False) else "(working)"
    line = "[{}] {:<5} {}".format(stamp, level, message)
    out.write(line + "\n")
    out.flush()
