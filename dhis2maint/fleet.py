"""A fleet of DHIS2 servers (#23): servers read from a fleet file, a bounded-parallel
map over them, and :class:`FleetRow`, the one line per server that every face of a
fleet run renders (the CLI's summary table and JSON, the fleet dashboard, the Airflow
fan-in task).

Core, not a face: this module knows models and the history, never argparse, and
prints nothing.  One :class:`~dhis2maint.Session` per server, never shared across
threads.
"""
import datetime
from typing import Dict, Optional, Tuple

import attr

from .models import _Model

__all__ = ["FleetRow"]


@attr.s(auto_attribs=True, slots=True, repr=False)
class FleetRow(_Model):
    """What one server's part of a fleet run came to: one row of the summary table,
    one object of ``--format json``, one row of the fleet dashboard.

    ``outcome`` is ``"ok"`` (DHIS2 answered what was asked, no threshold reached),
    ``"verdict"`` (it answered and a threshold was reached: the server's exit 1) or
    ``"failed"`` (it did not answer what was asked: ``error`` says why, in one line
    without credentials).  ``exit_code`` is that server's own exit code, as the
    single-server command would have ended.

    ``issues`` holds the issues by severity (``"CRITICAL"``, ``"SEVERE"``,
    ``"WARNING"``, ``"INFO"``) of an integrity run or report, empty for other
    commands; ``new_issues`` the issues the previous recorded run of the server did
    not have (None without a history).  ``findings`` counts scheduler findings by
    kind.  ``trend`` is total issues over the server's recent recorded runs, oldest
    first (None: a run without counts), for a sparkline.  ``last_success`` is when the
    server last answered a fleet run (client UTC), from the history.  ``report`` is
    the path of the server's own report, relative to the dashboard, when one was
    written.
    """

    server: str
    url: str
    command: str
    outcome: str
    exit_code: int
    seconds: float
    dhis2_version: Optional[str] = None
    error: Optional[str] = None
    issues: Dict[str, int] = attr.Factory(dict)
    new_issues: Optional[int] = None
    findings: Dict[str, int] = attr.Factory(dict)
    trend: Tuple[Optional[int], ...] = ()
    last_success: Optional[datetime.datetime] = None
    report: Optional[str] = None

    @property
    def answered(self) -> bool:
        """True when the server answered what was asked (outcome ok or verdict)."""
        return self.outcome != "failed"
