"""What every report face shares (the tables, progress lines and the HTML page):
severity order and rank, a result's count and label, totals, numbers, percentages,
times, and server text made safe for a terminal.

Standard library only, and light: ``dhis2maint.report`` imports it eagerly.
"""
import datetime
import re
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Tuple

if TYPE_CHECKING:
    from .models import DataIntegrityReport, DataIntegrityResult

#: Width of the plain-text tables when the caller gives none.
DEFAULT_WIDTH = 100
#: Rows written between flushes by the streaming writers.
FLUSH_EVERY = 1000

_SEVERITIES = ("CRITICAL", "SEVERE", "WARNING", "INFO")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


# ---------------------------------------------------------------------------
# Small shared helpers


def _sev(severity: object) -> str:
    """The severity as plain text ('' for none): enum members and raw strings alike."""
    return "" if severity is None else str(severity)


def _rank(severity: object) -> int:
    """0 (INFO) … 3 (CRITICAL); a missing or unknown severity ranks as WARNING."""
    from .models import severity_rank

    return severity_rank(severity) if isinstance(severity, str) else 1


def _count(result: "DataIntegrityResult") -> Optional[int]:
    """Issues a result reports, or ``None`` when the check failed on the server."""
    if result.error is not None:
        return None
    if result.count is not None and result.count >= 0:
        return result.count
    return len(result.issues or ())


def _label(result: "DataIntegrityResult") -> str:
    return result.display_name or result.name


def _sort_key(result: "DataIntegrityResult") -> Tuple[int, int, int, str, str]:
    """Worst severity first, failed checks first within it, then most issues, then name."""
    count = _count(result)
    return (-_rank(result.severity), 0 if count is None else 1, -(count or 0),
            _label(result).lower(), result.name)


def _ordered(report: "DataIntegrityReport") -> List["DataIntegrityResult"]:
    return sorted(report, key=_sort_key)


def _with_findings(report: "DataIntegrityReport") -> List["DataIntegrityResult"]:
    """The checks worth showing: those with issues or that failed, worst first."""
    return [r for r in _ordered(report) if _count(r) != 0]


def _severity_order(severities: Iterable[str]) -> List[str]:
    """CRITICAL, SEVERE, WARNING, INFO, then any severity a newer server invented."""
    extra = sorted(s for s in severities if s not in _SEVERITIES)
    return list(_SEVERITIES) + extra


def _totals(report: "DataIntegrityReport") -> Tuple[Dict[str, int], Dict[str, int], int, int]:
    """(issues by severity, checks with issues by severity, failed checks, total issues)."""
    issues: Dict[str, int] = {}
    checks: Dict[str, int] = {}
    failed = 0
    for result in report:
        sev = _sev(result.severity) or "WARNING"
        count = _count(result)
        issues.setdefault(sev, 0)
        checks.setdefault(sev, 0)
        if count is None:
            failed += 1
        elif count > 0:
            issues[sev] += count
            checks[sev] += 1
    return issues, checks, failed, sum(issues.values())


def _pct(percentage: Optional[float]) -> str:
    if percentage is None:
        return ""
    if percentage == 0:
        return "0%"
    if 0 < percentage < 0.1:
        return "<0.1%"
    return "{:.1f}%".format(percentage)


def _num(value: Optional[float]) -> str:
    return "" if value is None else "{:,}".format(value)


def _plural(count: int, word: str, words: Optional[str] = None) -> str:
    return "{:,} {}".format(count, word if count == 1 else (words or word + "s"))


def _iso(value: object) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def _time_range(report: "DataIntegrityReport") -> Optional[str]:
    """'2025-01-31 10:15:02 – 10:15:04' from the checks' start/finish times, or None."""
    starts = [r.start_time for r in report if r.start_time is not None]
    ends = [r.finished_time for r in report if r.finished_time is not None]
    try:
        first = min(starts) if starts else None
        last = max(ends) if ends else None
    except TypeError:  # naive and aware times mixed: no sensible range
        return None
    if first is None and last is None:
        return None
    first_text, last_text = _iso(first), _iso(last)
    if first_text and last_text and first_text[:10] == last_text[:10]:
        last_text = last_text[11:]
    return " – ".join(t for t in (first_text, last_text) if t)


def _clean(text: object) -> str:
    """Server text made safe for a terminal: one line, no control characters."""
    if text is None:
        return ""
    text = str(text)
    if _CONTROL.search(text):
        text = _CONTROL.sub(lambda m: " " if m.group() in "\t\n\r" else "?", text)
    return text
