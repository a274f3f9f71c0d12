"""Argument checks the package shares: seconds, job types, dates, flags, whole numbers.

Plain functions (no session): each turns a caller's value into what DHIS2 is sent,
or raises ``ValueError`` (:class:`ConfigurationError` for settings) naming the
argument.  :func:`seconds` is THE check of every seconds setting -- the
Session's ``timeout``/``stream_deadline``/``outage_grace``, the waits'
``timeout``/``poll_interval``/``max_interval``, the CLI's flags and a
connection's query -- so they all accept and refuse the same values.  Any
module may import this one; it imports only models and errors.
"""
import datetime
import math
import re
from typing import Any, Optional, Tuple, Union

from . import models
from .errors import ConfigurationError

__all__ = ["seconds", "tolerant_job_type", "job_type_text", "date_text", "date_range", "flag",
           "positive_int"]

_JOB_TYPE = re.compile(r"^[A-Za-z_]+$")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def seconds(value: Any, what: str, allow_none: bool = False,
            zero_ok: bool = True) -> Optional[float]:
    """A finite number of seconds, at least 0 (more than 0 with ``zero_ok=False``),
    else :class:`ConfigurationError` (a ``ValueError``) naming ``what``.

    Numbers and numeric strings (from the environment, a URI, a flag) are read;
    ``None`` only with ``allow_none``; booleans, NaN, infinities and negative
    values never.
    """
    if value is None:
        if allow_none:
            return None
        raise ConfigurationError("{} must be a number of seconds, got None".format(what))
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigurationError("{} must be a number of seconds{}, got {!r}".format(
            what, " or None" if allow_none else "", value)) from None
    if isinstance(value, bool) or not math.isfinite(number) or not (
            number >= 0 if zero_ok else number > 0):
        raise ConfigurationError("{} must be a finite number of seconds {} 0{}, got {!r}".format(
            what, "of at least" if zero_ok else "more than",
            " (or None for no limit)" if allow_none else "", value))
    return number


def tolerant_job_type(value: str) -> Union[models.JobType, str]:
    try:
        return models.JobType(value)
    except ValueError:
        return value


def job_type_text(job_type: Union[models.JobType, str]) -> str:
    """``JobType.ANALYTICS_TABLE`` or ``"analytics_table"`` -> ``"ANALYTICS_TABLE"``."""
    text = job_type.value if isinstance(job_type, models.JobType) else job_type
    if not isinstance(text, str) or not _JOB_TYPE.match(text):
        raise ValueError("job type must be a JobType or a name of letters and underscores "
                         "such as 'ANALYTICS_TABLE', got {!r}".format(job_type))
    return text.upper()


def date_text(value: Union[datetime.date, str], what: str) -> str:
    """A date, datetime or 'YYYY-MM-DD' string -> 'YYYY-MM-DD' (ValueError otherwise)."""
    if isinstance(value, datetime.datetime):
        return value.date().isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, str):
        match = _DATE.match(value.strip())
        if match:
            try:
                return datetime.date(*(int(p) for p in match.groups())).isoformat()
            except ValueError:
                pass
    raise ValueError("{} must be a datetime.date or a 'YYYY-MM-DD' string, got {!r}".format(
        what, value))


def date_range(start_date: Union[datetime.date, str],
                end_date: Union[datetime.date, str]) -> Tuple[str, str]:
    start = date_text(start_date, "start_date")
    end = date_text(end_date, "end_date")
    if start > end:
        raise ValueError("start_date {} is after end_date {}".format(start, end))
    return start, end


def flag(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError("{} must be True or False, got {!r}".format(what, value))
    return value


def positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("{} must be a whole number of at least 1, got {!r}".format(what, value))
    return value
