"""Fixtures shared by the end-to-end tests."""
import pytest

from dhis2maint import Session
from dhis2maint.testing import Dhis2StandIn


@pytest.fixture
def serve():
    """``serve(version="2.42", job_seconds=0.3, **knobs)`` -> ``(stand-in, Session)``.

    Starts a :class:`Dhis2StandIn` with the knobs set (``start_delay=0.8``,
    ``drop_feed_after_completion=True``, ...) and a session on it (basic auth,
    one retry); every stand-in started is stopped after the test.
    """
    servers = []

    def start(version="2.42", job_seconds=0.3, **knobs):
        srv = Dhis2StandIn(version=version, job_seconds=job_seconds)
        for name, value in knobs.items():
            setattr(srv, name, value)
        srv.start()
        servers.append(srv)
        return srv, Session(srv.url, auth=("admin", "district"), retries=1)

    yield start
    for srv in servers:
        srv.stop()


# ---------------------------------------------------------------------------
# The fake clock (#20.1): every wait in the package takes its time from
# dhis2maint.polling.clock, so replacing that one object makes waits instant.

class FakeClock:
    """Simulated monotonic seconds; ``sleep`` moves time on at once and is recorded."""

    def __init__(self, now=5000.0):
        self.now = now
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_clock(monkeypatch):
    """A :class:`FakeClock` standing in for ``dhis2maint.polling.clock`` (``.now``,
    ``.sleeps``)."""
    from dhis2maint import polling

    fake = FakeClock()
    monkeypatch.setattr(polling, "clock", fake)
    return fake
