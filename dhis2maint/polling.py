"""The one wait of the package: deadline, pace, outage riding -- and one clock.

Every loop that waits for DHIS2 (a job's task notifications, a 2.37-2.40
integrity run's results, 2.36's task summary, a job configuration's run, a
category combo's option combos, the look-up after a lost job start) is a
:class:`Wait`:

* **settings** -- :func:`settings` checks ``timeout``, ``poll_interval``,
  ``max_interval`` and the session's ``outage_grace`` and ``stream_deadline``
  at the public entry, before anything is sent (:class:`ConfigurationError`
  naming the setting);
* **deadline** -- ``timeout`` seconds (``None``: no limit) on the monotonic
  clock; the last poll happens at the deadline, never later;
* **pace** -- the first poll is immediate; the pause starts at
  ``poll_interval``, grows x1.5 per poll that brings nothing new, up to
  ``max_interval``, and never past max(:data:`LAG_FLOOR` = 2 s,
  :data:`LAG_SHARE` = 10 % of the time waited so far); it drops back to
  ``poll_interval`` on progress.  So the end of a job is noticed at most
  max(poll_interval, min(max_interval, max(2 s, 10 % of the time waited))) after
  it happened, the pick-up included (plus one request);
* **outages** -- refused connections, timeouts, broken connections and
  502/503/504 (:data:`OUTAGE_STATUSES`) do not end a wait for up to the
  session's ``outage_grace`` seconds (0: fail at once); a WARNING is logged
  when DHIS2 stops answering, INFO when it is back, then
  :class:`TransportError` naming what was waited for.  Only reads are
  polled, so nothing that changes anything is re-sent.

Time comes from :data:`clock` only (``clock.monotonic()``, ``clock.sleep()``):
tests replace that one object (``tests/conftest.py``'s ``fake_clock``).
"""
from __future__ import annotations  # models are built on first use, not to annotate

import logging
import time
from typing import Any, Callable, NamedTuple, Optional, Tuple

from . import models
from .arguments import seconds
from .errors import ConfigurationError, ServerError, TransportError
from .transport import DEFAULT_OUTAGE_GRACE

__all__ = ["Clock", "clock", "Settings", "settings", "Wait", "Outage", "DOWN",
           "LAG_FLOOR", "LAG_SHARE", "GROWTH", "OUTAGE_STATUSES"]

log = logging.getLogger("dhis2maint")

#: The pause between polls never grows past max(LAG_FLOOR, LAG_SHARE x the time
#: waited so far) (nor past ``max_interval``; never below ``poll_interval``).
LAG_FLOOR = 2.0
LAG_SHARE = 0.1
#: How much the pause grows per poll that brings nothing new.
GROWTH = 1.5
#: HTTP statuses a wait rides out as an outage (a proxy in front of a restarting DHIS2).
OUTAGE_STATUSES = frozenset([502, 503, 504])


class Clock:
    """Monotonic seconds and a sleep: where every wait takes its time from."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


#: THE clock of every wait.  Tests replace it (``monkeypatch.setattr(polling,
#: "clock", fake)``); nothing else in the package sleeps.
clock = Clock()

#: What :meth:`Outage.poll` / :meth:`Wait.poll` return while DHIS2 is out.
DOWN = object()


class Settings(NamedTuple):
    """A wait's checked settings (seconds)."""

    timeout: Optional[float]
    poll_interval: float
    max_interval: float
    outage_grace: float


def settings(session: Any, timeout: Optional[float], poll_interval: Optional[float],
             max_interval: Optional[float], default_poll: float = 1.0,
             default_max: Optional[float] = 10.0) -> Settings:
    """The settings of one wait, checked before anything is sent.

    ``poll_interval``/``max_interval`` ``None`` take the wait's defaults
    (``default_max`` ``None``: the poll interval, a fixed pace).  A
    ``max_interval`` below ``poll_interval`` is a :class:`ConfigurationError`,
    except the default, which follows a longer ``poll_interval``.  The session's
    ``outage_grace`` and ``stream_deadline`` are checked too (they may have been
    set after the session was made).
    """
    timeout = seconds(timeout, "timeout", allow_none=True)
    poll = seconds(default_poll if poll_interval is None else poll_interval, "poll_interval",
                   zero_ok=False)
    assert poll is not None  # allow_none is False
    default = poll if default_max is None else default_max
    longest = seconds(default if max_interval is None else max_interval, "max_interval",
                      zero_ok=False)
    assert longest is not None
    if longest < poll:
        if max_interval is not None and max_interval != default:
            raise ConfigurationError(
                "max_interval ({:g} s) must not be shorter than poll_interval ({:g} s)".format(
                    longest, poll))
        longest = poll  # the default longest pause follows a longer poll_interval
    grace = seconds(getattr(session, "outage_grace", DEFAULT_OUTAGE_GRACE), "outage_grace")
    assert grace is not None
    deadline = getattr(session, "stream_deadline", None)
    if deadline is not None:
        seconds(deadline, "stream_deadline", zero_ok=False)
    return Settings(timeout, poll, longest, grace)


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


class Outage:
    """Keeps a wait going while DHIS2 is unreachable, for up to ``grace`` seconds."""

    def __init__(self, grace: float, describe: str,
                 follow_ups: Tuple[models.FollowUp, ...] = ()) -> None:
        self.grace = grace
        self.describe = describe
        self.follow_ups = follow_ups  # what to do when it gives up (resume the wait)
        self.since: Optional[float] = None
        self.polls = 0

    def poll(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, or :data:`DOWN` while an outage lasts (within the grace)."""
        try:
            result = fn(*args, **kwargs)
        except (TransportError, ServerError) as exc:
            if isinstance(exc, ServerError) and exc.status_code not in OUTAGE_STATUSES:
                raise
            now = clock.monotonic()
            if self.since is None:
                if self.grace <= 0:
                    raise
                self.since = now
                self.polls = 0
                log.warning("%s: DHIS2 is not answering (%s); still following it for up to %g s "
                            "(outage_grace)", self.describe, _first_line(exc), self.grace)
            elif now - self.since > self.grace:
                gone = TransportError(
                    "{}: DHIS2 has not answered for {:.0f} s ({} polls), longer than the "
                    "outage grace ({:g} s); last error: {}; the job may still be running on the "
                    "server".format(self.describe, now - self.since, self.polls + 1,
                                    self.grace, _first_line(exc)),
                    request=getattr(exc, "request", None))
                gone.follow_ups = self.follow_ups
                raise gone from exc
            self.polls += 1
            return DOWN
        if self.since is not None:
            log.info("%s: DHIS2 answers again after %.0f s", self.describe,
                     clock.monotonic() - self.since)
            self.since = None
        return result

    def down_for(self) -> Optional[float]:
        """Seconds since DHIS2 stopped answering, or None while it answers."""
        return None if self.since is None else clock.monotonic() - self.since

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn``'s result, polling every few seconds through an outage (for one-off
        reads after a wait; the grace bounds it)."""
        delay = 1.0
        while True:
            result = self.poll(fn, *args, **kwargs)
            if result is not DOWN:
                return result
            clock.sleep(delay)
            delay = min(delay * GROWTH, 10.0)


class Wait:
    """One wait: its deadline, its pace and its outage, on :data:`clock`.

    The loop of every wait::

        wait = Wait(checked_settings, "ANALYTICS_TABLE job fyGB…")
        while True:
            result = wait.poll(read)            # DOWN while DHIS2 is out
            if result is not DOWN and done(result):
                return result
            if not wait.pause(progress=…):       # False: the deadline has come
                raise TaskTimeoutError(…)
    """

    def __init__(self, settings: Settings, describe: str,
                 follow_ups: Tuple[models.FollowUp, ...] = (),
                 started: Optional[float] = None) -> None:
        self.settings = settings
        self.start = clock.monotonic() if started is None else started
        self.deadline = None if settings.timeout is None else self.start + settings.timeout
        self.delay = settings.poll_interval
        self.first = True
        self.outage = Outage(settings.outage_grace, describe, follow_ups)

    @staticmethod
    def now() -> float:
        return clock.monotonic()

    def elapsed(self) -> float:
        return clock.monotonic() - self.start

    def poll(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One read through the outage rider: its result, or :data:`DOWN`."""
        return self.outage.poll(fn, *args, **kwargs)

    def delay_cap(self, elapsed: float) -> float:
        """The longest pause after ``elapsed`` seconds of waiting."""
        s = self.settings
        return max(s.poll_interval, min(s.max_interval, max(LAG_FLOOR, LAG_SHARE * elapsed)))

    def pause(self, progress: bool = False) -> bool:
        """Sleep until the next poll and return True; False, without sleeping, once
        the deadline has come.  ``progress``: the last poll brought something new."""
        now = clock.monotonic()
        self.delay = self.settings.poll_interval if (progress or self.first) else min(
            self.delay * GROWTH, self.delay_cap(now - self.start))
        self.first = False
        now = clock.monotonic()
        if self.deadline is not None:
            if now >= self.deadline:
                return False
            clock.sleep(min(self.delay, self.deadline - now))
        else:
            clock.sleep(self.delay)
        return True
