"""Prometheus metrics of dhis2maint's runs: build samples, render, write, push.

The gauges (Prometheus text exposition format 0.0.4, no timestamps, base units)::

    dhis2maint_up{server}                                   1 DHIS2 answered, 0 it did not
    dhis2maint_info{server,dhis2_version,version}           1
    dhis2maint_integrity_issues{server,check,severity}      issues per check, last run
    dhis2maint_integrity_check_failed{server,check}         1 for a check that errored
    dhis2maint_integrity_new_issues{server,severity}        not in the previous recorded run
    dhis2maint_integrity_last_run_timestamp_seconds{server}
    dhis2maint_integrity_last_success_timestamp_seconds{server}
    dhis2maint_integrity_run_duration_seconds{server}
    dhis2maint_scheduler_findings{server,kind,severity}     0 for the kinds without findings
    dhis2maint_job_last_success_timestamp_seconds{server,job_type}
    dhis2maint_job_duration_seconds{server,job_type}
    dhis2maint_analytics_last_generated_timestamp_seconds{server}

``server`` is the base URL without credentials.  Samples are built from the
library's results (:func:`integrity_samples`, :func:`new_issue_samples`,
:func:`health_samples`, :func:`job_samples`, :func:`analytics_samples`,
:func:`history_samples`), rendered by :func:`render`, written for node_exporter's
textfile collector by :func:`write_textfile` (atomic) or pushed to a Pushgateway
by :func:`push` (POST: a failed run never replaces the last success timestamp).

Importing :mod:`dhis2maint` does not import this module.
"""
import base64
import contextlib
import datetime
import logging
import math
import os
import re
import time
from typing import (TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence,
                    Tuple, Union)
from urllib.parse import urlsplit, urlunsplit

import attr

from . import models
from .models import _Model

if TYPE_CHECKING:
    from .history import History, RecordedHealth, RecordedRun

__all__ = ["METRICS", "FINDING_KINDS", "SEVERITIES", "Sample", "server_label", "up_samples",
           "integrity_samples", "new_issue_samples", "comparison_samples", "health_samples", "job_samples",
           "analytics_samples", "history_samples", "merge_last_success", "render", "parse",
           "write_textfile", "push", "push_url", "PushError", "DEFAULT_PUSH_TIMEOUT",
           "MAX_PUSH_BYTES"]

#: name -> HELP text; every metric is a gauge.
METRICS = {
    "dhis2maint_up": "1 when DHIS2 answered the last command, 0 when it did not.",
    "dhis2maint_info": "dhis2maint and DHIS2 versions (value 1).",
    "dhis2maint_integrity_issues": "Issues per data-integrity check in the last run.",
    "dhis2maint_integrity_check_failed": "1 for a data-integrity check that errored in the "
                                         "last run.",
    "dhis2maint_integrity_new_issues": "Issues not in the previous recorded run, by severity.",
    "dhis2maint_integrity_last_run_timestamp_seconds": "Unix time the last integrity run "
                                                       "finished.",
    "dhis2maint_integrity_last_success_timestamp_seconds": "Unix time of the last integrity "
                                                           "run DHIS2 answered.",
    "dhis2maint_integrity_run_duration_seconds": "Seconds the last integrity run took.",
    "dhis2maint_scheduler_findings": "Scheduler health findings by kind and severity.",
    "dhis2maint_job_last_success_timestamp_seconds": "Unix time a followed job last succeeded.",
    "dhis2maint_job_duration_seconds": "Seconds the last followed job of this type took.",
    "dhis2maint_analytics_last_generated_timestamp_seconds": "Unix time the analytics tables "
                                                             "were last generated.",
}

#: ``HealthFinding.kind`` values: each gets a series (0 when it has no finding).
FINDING_KINDS = ("failed", "stuck", "overdue", "disabled_system_job", "missing_system_job",
                 "analytics_stale", "analytics_never", "scheduler_dead")
SEVERITIES = ("INFO", "WARNING", "SEVERE", "CRITICAL")
#: Seconds a push may take (connect + answer).
DEFAULT_PUSH_TIMEOUT = 10.0
#: Largest exposition pushed or read back (bytes).
MAX_PUSH_BYTES = 8 * 1024 * 1024
_MAX_ANSWER_BYTES = 64 * 1024
_SUCCESS = ("dhis2maint_integrity_last_success_timestamp_seconds",
            "dhis2maint_job_last_success_timestamp_seconds")


@attr.s(auto_attribs=True, slots=True, frozen=True, repr=False)
class Sample(_Model):
    """One series' value: ``name``, ``labels`` as (name, value) pairs, ``value``."""

    name: str
    labels: Tuple[Tuple[str, str], ...]
    value: float

    def label(self, name: str) -> Optional[str]:
        """The value of label ``name`` (None when absent)."""
        for key, value in self.labels:
            if key == name:
                return value
        return None


class PushError(Exception):
    """The Pushgateway did not take the push (the message names its host only)."""


def server_label(url: str) -> str:
    """The ``server`` label: the base URL without credentials, query or trailing slash."""
    parts = urlsplit(str(url).strip())
    host = parts.hostname or ""
    if ":" in host:
        host = "[" + host + "]"
    if parts.port is not None:
        host += ":{}".format(parts.port)
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _sample(name: str, value: float, **labels: Optional[str]) -> Sample:
    return Sample(name, tuple((k, "" if v is None else str(v)) for k, v in labels.items()),
                  float(value))


def _unix(value: Optional[datetime.datetime]) -> float:
    """Unix time of ``value`` (naive = UTC); now when None."""
    if value is None:
        return time.time()
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.timestamp()


def up_samples(server: str, up: bool, dhis2_version: Optional[str] = None) -> List[Sample]:
    """``dhis2maint_up`` and (with a version) ``dhis2maint_info``."""
    from . import __version__

    server = server_label(server)
    out = [_sample("dhis2maint_up", 1 if up else 0, server=server)]
    if dhis2_version:
        out.append(_sample("dhis2maint_info", 1, server=server, dhis2_version=dhis2_version,
                           version=__version__))
    return out


def integrity_samples(report: models.DataIntegrityReport, server: Optional[str] = None,
                      duration: Optional[float] = None,
                      finished_at: Optional[datetime.datetime] = None) -> List[Sample]:
    """Issues and failed checks per check, last run/success time and duration of a
    report DHIS2 answered (``finished_at`` default: now; ``server`` default: the
    report's ``base_url``)."""
    base = server or report.base_url
    if not base:
        raise ValueError("integrity_samples: the report has no base_url; pass server=")
    label = server_label(base)
    out = []
    for result in report:
        severity = str(result.severity or "WARNING").upper()
        failed = result.error is not None
        count = result.count
        if count is None and result.issues is not None:
            count = len(result.issues)
        if not failed and count is not None and count >= 0:
            out.append(_sample("dhis2maint_integrity_issues", count, server=label,
                               check=result.name, severity=severity))
        out.append(_sample("dhis2maint_integrity_check_failed", 1 if failed else 0,
                           server=label, check=result.name))
    stamp = _unix(finished_at)
    out.append(_sample("dhis2maint_integrity_last_run_timestamp_seconds", stamp, server=label))
    out.append(_sample("dhis2maint_integrity_last_success_timestamp_seconds", stamp,
                       server=label))
    if duration is not None:
        out.append(_sample("dhis2maint_integrity_run_duration_seconds", duration,
                           server=label))
    return out


def new_issue_samples(server: str, recorded: Optional["RecordedRun"]) -> List[Sample]:
    """``dhis2maint_integrity_new_issues`` by severity (every severity, 0 when none)
    from what the history decided (:meth:`History.record`); none without one."""
    if recorded is None:
        return []
    label = server_label(server)
    counts: Dict[str, int] = {s: 0 for s in SEVERITIES}
    for check, n in recorded.new_by_check.items():
        severity = str(recorded.severities.get(check) or "WARNING").upper()
        counts[severity] = counts.get(severity, 0) + n
    return [_sample("dhis2maint_integrity_new_issues", n, server=label, severity=s)
            for s, n in counts.items()]


def comparison_samples(comparison: models.ReportComparison, server: str) -> List[Sample]:
    """``dhis2maint_integrity_new_issues`` by severity from a :class:`ReportComparison`
    (two saved reports, no history): its new issues, or for checks whose issues were
    not compared, how much the count rose."""
    label = server_label(server)
    counts: Dict[str, int] = {s: 0 for s in SEVERITIES}
    compared = set()
    for row in comparison.new_issues:
        severity = str(row.severity or "WARNING").upper()
        counts[severity] = counts.get(severity, 0) + 1
        compared.add(row.check_name)
    for name, change in comparison.count_changes.items():
        if name in compared or comparison.issues_compared:
            continue
        rise = (change.new or 0) - max(change.old or 0, 0)
        if rise > 0:
            severity = str(change.severity or "WARNING").upper()
            counts[severity] = counts.get(severity, 0) + rise
    return [_sample("dhis2maint_integrity_new_issues", n, server=label, severity=s)
            for s, n in counts.items()]


def health_samples(health: models.SchedulerHealth, server: str) -> List[Sample]:
    """``dhis2maint_scheduler_findings`` for every kind and severity (0 when none)."""
    label = server_label(server)
    counts: Dict[Tuple[str, str], int] = {(k, s): 0 for k in FINDING_KINDS for s in SEVERITIES}
    for finding in health.findings:
        key = (finding.kind, str(finding.severity).upper())
        counts[key] = counts.get(key, 0) + 1
    return [_sample("dhis2maint_scheduler_findings", n, server=label, kind=k, severity=s)
            for (k, s), n in counts.items()]


def job_samples(server: str, job_type: str, duration: Optional[float], succeeded: bool,
                finished_at: Optional[datetime.datetime] = None) -> List[Sample]:
    """Duration of a followed job and, when it succeeded, its last success time."""
    label = server_label(server)
    out = []
    if duration is not None:
        out.append(_sample("dhis2maint_job_duration_seconds", duration, server=label,
                           job_type=str(job_type)))
    if succeeded:
        stamp = _unix(finished_at)
        out.append(_sample("dhis2maint_job_last_success_timestamp_seconds", stamp,
                           server=label, job_type=str(job_type)))
    return out


def analytics_samples(server: str, system_info: Mapping[str, Any],
                      now: Optional[float] = None) -> List[Sample]:
    """``dhis2maint_analytics_last_generated_timestamp_seconds`` from ``GET
    /api/system/info``: its ``lastAnalyticsTableSuccess`` is on the server's clock
    (no zone), so its age against ``serverDate`` is taken from the client's now.
    None when either is missing or the tables were never generated."""
    from .convert import parse_datetime

    try:
        parsed = parse_datetime(str(system_info["lastAnalyticsTableSuccess"]))
        clock = parse_datetime(str(system_info["serverDate"]))
    except (KeyError, ValueError, TypeError):
        return []
    if parsed is None or clock is None or parsed.year <= 1970:
        return []
    last, server_now = parsed, clock
    if last.year <= 1970:
        return []
    last = last.replace(tzinfo=None)
    server_now = server_now.replace(tzinfo=None)
    age = (server_now - last).total_seconds()
    stamp = (time.time() if now is None else now) - max(age, 0.0)
    return [_sample("dhis2maint_analytics_last_generated_timestamp_seconds", stamp,
                    server=server_label(server))]


def history_samples(history: "History") -> List[Sample]:
    """The gauges of every server in a history (its newest recorded run and health
    check, the jobs it recorded), without contacting DHIS2."""
    out: List[Sample] = []
    for base_url in history.servers():
        runs = history.runs(base_url)
        if runs:
            run = runs[-1]
            report = history.load_report(run.id)
            finished = run.finished_at
            out.extend(integrity_samples(report, base_url, finished_at=finished,
                                         duration=max((finished - run.run_at).total_seconds(),
                                                      0.0)))
            out.extend(new_issue_samples(base_url, history.recorded_run(run.id)))
            if run.dhis2_version:
                out.extend(up_samples(base_url, True, run.dhis2_version)[1:])
        health = history.last_health(base_url)
        if health is not None:
            out.extend(health_samples(health.health, base_url))
        for job_type, (finished_at, duration, ok_at) in sorted(
                history.job_summary(base_url).items()):
            if duration is not None:
                out.extend(job_samples(base_url, job_type, duration, False))
            if ok_at is not None:
                out.extend(job_samples(base_url, job_type, None, True, finished_at=ok_at))
    return out


def merge_last_success(samples: Sequence[Sample], previous: Iterable[Sample]) -> List[Sample]:
    """``samples`` plus the last-success series of ``previous`` they lack, for the
    servers ``samples`` are about: a failed run never erases the last success."""
    out = list(samples)
    have = {(s.name, s.labels) for s in out}
    servers = {s.label("server") for s in out}
    for sample in previous:
        if sample.name in _SUCCESS and (sample.name, sample.labels) not in have \
                and sample.label("server") in servers:
            out.append(sample)
            have.add((sample.name, sample.labels))
    return out


# --- the text format ---------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def render(samples: Iterable[Sample]) -> str:
    """The text exposition format 0.0.4: each metric's ``# HELP``/``# TYPE gauge`` and
    its series (label values escaped, no timestamps); the last value of a repeated
    series wins."""
    by_name: Dict[str, Dict[Tuple[Tuple[str, str], ...], float]] = {}
    for sample in samples:
        by_name.setdefault(sample.name, {})[sample.labels] = sample.value
    lines = []
    order = [n for n in METRICS if n in by_name] + sorted(n for n in by_name
                                                           if n not in METRICS)
    for name in order:
        help_text = METRICS.get(name, name).replace("\\", "\\\\").replace("\n", "\\n")
        lines.append("# HELP {} {}".format(name, help_text))
        lines.append("# TYPE {} gauge".format(name))
        for labels, value in by_name[name].items():
            text = ",".join('{}="{}"'.format(k, _escape(v)) for k, v in labels)
            lines.append("{}{} {}".format(name, "{" + text + "}" if text else "", _value(value)))
    return "\n".join(lines) + "\n" if lines else ""


_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?\s*$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def parse(text: str) -> List[Sample]:
    """The samples of an exposition (comments skipped, unreadable lines ignored)."""
    out = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line.strip())
        if not match:
            continue
        labels = tuple((m.group(1), _unescape(m.group(2)))
                       for m in _LABEL.finditer(match.group(2) or ""))
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        out.append(Sample(match.group(1), labels, value))
    return out


# --- outputs ---------------------------------------------------------------------------


def write_textfile(path: Union[str, "os.PathLike[str]"], samples: Sequence[Sample],
                   keep_last_success: bool = True) -> str:
    """Write ``samples`` to ``path`` for node_exporter's textfile collector: a
    temporary file in the same directory, renamed onto ``path`` once complete (a
    reader never sees a partial file, even when the writer is killed).  With
    ``keep_last_success`` the last-success series of the file being replaced are
    kept where ``samples`` lack them.  Returns the text written."""
    from .report import atomic_output

    if keep_last_success:
        try:
            with open(os.fspath(path), encoding="utf-8") as handle:
                previous = parse(handle.read(MAX_PUSH_BYTES))
        except (OSError, ValueError):
            previous = []
        samples = merge_last_success(samples, previous)
    text = render(samples)
    with atomic_output(path) as out:
        out.write(text)
    return text


def push_url(gateway: str, server: str, job: str = "dhis2maint") -> str:
    """The group URL ``<gateway>/metrics/job/<job>/server@base64/<server>``."""
    encoded = base64.urlsafe_b64encode(server_label(server).encode("utf-8")).decode("ascii")
    return "{}/metrics/job/{}/server@base64/{}".format(gateway.rstrip("/"), job, encoded)


def host_of(url: str) -> str:
    """A URL's host (and port): all of it that messages and logs may show."""
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or "?"
        return host + (":{}".format(parts.port) if parts.port else "")
    except ValueError:
        return "?"


def post_bounded(url: str, body: bytes, content_type: str,
                 timeout: float = DEFAULT_PUSH_TIMEOUT) -> int:
    """POST ``body`` once (again only when no connection was made), within
    ``timeout`` seconds in all, reading at most 64 KiB of the answer; returns the
    status.  Errors are :class:`PushError` naming the host only."""
    import requests

    if len(body) > MAX_PUSH_BYTES:
        raise PushError("{} bytes is more than the {} allowed".format(len(body),
                                                                      MAX_PUSH_BYTES))
    host = host_of(url)
    started = time.monotonic()
    # urllib3 logs the request line (a webhook's path carries its token) at DEBUG
    with _quiet("urllib3"):
        return _post(url, body, content_type, timeout, host, started)


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(max(level, logging.INFO))
    try:
        yield
    finally:
        logger.setLevel(level)


def _post(url: str, body: bytes, content_type: str, timeout: float, host: str,
          started: float) -> int:
    import requests

    for attempt in (1, 2):
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            break
        try:
            with requests.post(url, data=body, headers={"Content-Type": content_type},
                               timeout=(min(left, 5.0), left), stream=True,
                               allow_redirects=False) as response:
                read = 0
                for chunk in response.iter_content(8192):
                    read += len(chunk)
                    if read > _MAX_ANSWER_BYTES or time.monotonic() - started > timeout:
                        break
                return int(response.status_code)
        except requests.exceptions.ConnectionError as exc:
            if attempt == 1 and _never_connected(exc):
                continue
            raise PushError("{}: {}".format(host, _reason(exc))) from None
        except requests.exceptions.RequestException as exc:
            raise PushError("{}: {}".format(host, _reason(exc))) from None
    raise PushError("{}: no connection within {:g} s".format(host, timeout))


def _never_connected(exc: BaseException) -> bool:
    import requests

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    seen = 0
    cause: Optional[BaseException] = exc
    while cause is not None and seen < 8:
        name = type(cause).__name__
        if name in ("NewConnectionError", "ConnectTimeoutError", "ConnectionRefusedError"):
            return True
        args = getattr(cause, "args", ())
        nested = args[0] if args and isinstance(args[0], BaseException) else None
        cause = getattr(cause, "reason", None) or nested or cause.__cause__
        seen += 1
    return False


def _reason(exc: BaseException) -> str:
    """What went wrong, without the URL (it may carry a token)."""
    import requests

    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS failed"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection failed" if not _never_connected(exc) else "connection refused"
    return type(exc).__name__


def push(gateway: str, samples: Sequence[Sample], timeout: float = DEFAULT_PUSH_TIMEOUT,
         job: str = "dhis2maint") -> List[str]:
    """POST ``samples`` to a Pushgateway, one group ``job``/``server`` per server
    (POST replaces only the metric names pushed, so a run without a success keeps
    the last success timestamp).  Returns the group URLs pushed; raises
    :class:`PushError` (naming the host only) when one is refused."""
    by_server: Dict[str, List[Sample]] = {}
    for sample in samples:
        by_server.setdefault(sample.label("server") or "", []).append(sample)
    pushed = []
    for server, group in by_server.items():
        url = push_url(gateway, server, job)
        status = post_bounded(url, render(group).encode("utf-8"),
                              "text/plain; version=0.0.4; charset=utf-8", timeout)
        if not 200 <= status < 300:
            raise PushError("{}: the Pushgateway answered HTTP {}".format(host_of(gateway),
                                                                         status))
        pushed.append(url)
    return pushed
