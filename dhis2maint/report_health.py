"""Scheduled jobs, scheduler health, the doctor and stored validation results, as the
command line writes them: ``table`` for people, ``json``/``jsonl``/``csv`` for scripts
(:func:`write_job_configurations`, :func:`write_fields`, :func:`write_health`,
:func:`write_doctor`, :func:`write_validation_results`).
"""
import datetime
from typing import IO, TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, cast

from ._report_common import _clean, _iso, _num, _plural
from .report import (_check_format, _csv_value, _csv_writer, _fit_width, _for_terminal, _json_encoder,
                     _Table, write_records)

if TYPE_CHECKING:
    from attr import AttrsInstance

    from .models import (DoctorCheck, DoctorReport, FollowUp, HealthFinding, JobConfiguration,
                         SchedulerHealth, ValidationResult)

__all__ = ["write_job_configurations", "write_fields", "write_health", "write_doctor",
           "write_validation_results"]

_HEALTH_CSV_HEADER = ("severity", "kind", "job_id", "job_name", "job_type", "message",
                      "what_to_do", "error_codes", "since")


def write_job_configurations(configs: Sequence["JobConfiguration"], fmt: str, out: IO[str],
                             width: Optional[int] = None) -> None:
    """Job configurations: ``table`` shows id, name, type, schedule, enabled, status,
    last run and next run; the other formats are :func:`write_records`'."""

    def columns(width: int, ell: str) -> _Table:
        return _Table(["ID", "NAME", "TYPE", "SCHEDULE", "ON", "STATUS", "LAST RUN", "RESULT",
                       "NEXT RUN"], ["<"] * 9, width, ell, caps={1: 28},
                      shrink=[(3, 11), (1, 16), (1, 8)], keep=(0, 2))

    def row(c: "JobConfiguration") -> List[str]:
        return [c.id or "", c.name or "", str(c.job_type or ""),
                c.cron_expression or ("every {} s".format(c.delay) if c.delay else ""),
                "yes" if c.enabled else "no", str(c.job_status or ""),
                _iso(c.last_executed) or "", str(c.last_executed_status or ""),
                _iso(c.next_execution_time) or ""]

    _write_listing(configs, fmt, out, width, 140, "job configuration", columns, row)


def _write_listing(records: Sequence[Any], fmt: str, out: IO[str], width: Optional[int],
                   default_width: int, noun: str, columns: Callable[[int, str], _Table],
                   row: Callable[[Any], List[str]]) -> None:
    """Records as ``csv`` (every field), the other formats of :func:`write_records`, or
    a ``table`` of ``columns(width, ellipsis)`` with one ``row(record)`` each and a
    count of ``noun`` under it."""
    if fmt == "csv":
        _write_records_csv(records, out)
        return
    if fmt != "table":
        write_records(records, fmt, out, width)
        return
    width = _fit_width(width, out, default=default_width)
    out, ell = _for_terminal(out)
    table = columns(width, ell)
    for record in records:
        table.add(row(record))
    for line in table.lines():
        out.write(line + "\n")
    out.write("{}\n".format(_plural(len(records), noun)))
    out.flush()


def write_fields(record: "AttrsInstance", out: IO[str]) -> None:
    """One attrs record as ``name: value`` lines (fields without a value left out)."""
    import attr

    out, _ = _for_terminal(out)
    for field in attr.fields(type(record)):
        value = getattr(record, field.name)
        if value in (None, "", [], {}):
            continue
        if hasattr(value, "isoformat"):
            value = _iso(value)
        elif isinstance(value, (dict, list)):
            import json

            value = json.dumps(value, ensure_ascii=False)
        out.write("{}: {}\n".format(field.name, _clean(_csv_value(value))))
    out.flush()


#: A face's wording of follow-ups: (follow_ups, advice) -> one sentence.
FollowUpWords = Callable[[Sequence["FollowUp"], str], str]


def _what_to_do(follow_ups: Sequence["FollowUp"], advice: Optional[str], library_text: str,
                words: Optional[FollowUpWords]) -> str:
    """``library_text`` (Python's wording), or the face's ``words`` for the follow-ups."""
    if words is None or not (follow_ups or advice):
        return library_text
    return words(follow_ups, advice or "")


def write_health(health: "SchedulerHealth", fmt: str, out: IO[str],
                 width: Optional[int] = None, words: Optional[FollowUpWords] = None) -> None:
    """A :class:`SchedulerHealth`: ``table`` lists each finding with its severity and
    what to do; ``json`` the whole verdict; ``jsonl``/``csv`` one finding a line.
    ``words``: the face's wording of each finding's follow-ups (the command
    line's commands); ``None``: ``what_to_do`` as the library worded it."""
    _check_format(fmt, ("table", "json", "jsonl", "csv"), "scheduler health")
    from .convert import unstructure

    def what(f: "HealthFinding") -> str:
        return _what_to_do(f.follow_ups, f.advice, f.what_to_do, words)

    def record(f: "HealthFinding") -> Dict[str, Any]:
        data = cast(Dict[str, Any], unstructure(f))
        data["whatToDo"] = what(f)
        return data

    if fmt == "json":
        import json

        data = cast(Dict[str, Any], unstructure(health))
        data["findings"] = [record(f) for f in health.findings]
        out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    elif fmt == "jsonl":
        encode = _json_encoder()
        for finding in health.findings:
            out.write(encode(record(finding)) + "\n")
    elif fmt == "csv":
        writer = _csv_writer(out)
        writer.writerow(_HEALTH_CSV_HEADER)
        for f in health.findings:
            writer.writerow([f.severity, f.kind, f.job_id or "", f.job_name or "",
                             _csv_value(f.job_type), f.message, what(f),
                             " ".join(f.error_codes), _iso(f.since) or ""])
    else:
        out, _ = _for_terminal(out)
        out.write("Scheduler health of DHIS2 {} at {} (server time): {} jobs, {}\n".format(
            health.server_version or "?", _iso(health.server_time) or "?", health.jobs_checked,
            _plural(len(health.findings), "finding")))
        for f in health.findings:
            out.write("{:<8} {:<19} {}\n".format(f.severity, f.kind, _clean(f.message)))
            out.write("{:<8} {:<19} -> {}\n".format("", "", _clean(what(f))))
        if not health.findings:
            out.write("OK: nothing failed, stuck, overdue or disabled\n")
    out.flush()


def write_doctor(report: "DoctorReport", fmt: str, out: IO[str],
                 words: Optional[FollowUpWords] = None) -> None:
    """A :class:`DoctorReport`: ``table`` one line per check (PASS/WARN/FAIL/SKIP) with
    the fix below it; ``json`` the report.  ``words``: as for :func:`write_health`."""
    _check_format(fmt, ("table", "json"), "doctor report")

    def fix(check: "DoctorCheck") -> str:
        return _what_to_do(check.follow_ups, check.advice, check.fix or "", words)

    def refused(check: "DoctorCheck") -> List[str]:
        """What DHIS2 will refuse (an authority check), in this face's words."""
        from .doctor import refused_actions
        from .followups import python_call
        from .models import FollowUp

        return [words([FollowUp(a)], "") if words else python_call(FollowUp(a))
                for a in refused_actions(check)]

    if fmt == "json":
        import json

        from .convert import unstructure

        data = cast(Dict[str, Any], unstructure(report))
        for check, item in zip(report.checks, data.get("checks", [])):
            if fix(check):
                item["fix"] = fix(check)
            if refused(check):
                item["refused"] = refused(check)
        out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        out.flush()
        return
    out, _ = _for_terminal(out)
    out.write("dhis2maint doctor: {}\n".format(_clean(report.url)))
    for check in report.checks:
        out.write("{:<5} {:<38} {}\n".format(check.status.upper(), check.name,
                                            _clean(check.detail)))
        calls = refused(check)
        if calls:
            out.write("{:<5} {:<38} refused: {}{}\n".format("", "", _clean(", ".join(calls[:3])), (
                ", … ({} in all)".format(len(calls)) if len(calls) > 3 else "")))
        if fix(check) and check.status in ("warn", "fail"):
            out.write("{:<5} {:<38} fix: {}\n".format("", "", _clean(fix(check))))
    failed = len(report.failed)
    out.write("{}\n".format("all checks passed" if not failed and not any(
        c.status == "warn" for c in report.checks) else "{} failed, {} warning{}".format(
        failed, sum(1 for c in report.checks if c.status == "warn"),
        "" if sum(1 for c in report.checks if c.status == "warn") == 1 else "s")))
    out.flush()


def _cell(value: object) -> str:
    """A CSV cell: JSON for dicts and lists, ISO times to the millisecond."""
    import json

    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ", timespec="milliseconds")
    return _csv_value(value)


def _write_records_csv(records: Sequence["AttrsInstance"], out: IO[str]) -> None:
    import attr

    writer = _csv_writer(out)
    fields = [f.name for f in attr.fields(type(records[0]))] if records else []
    writer.writerow(fields)
    for record in records:
        writer.writerow([_cell(getattr(record, f)) for f in fields])
    out.flush()


def write_validation_results(results: Sequence["ValidationResult"], fmt: str, out: IO[str],
                             width: Optional[int] = None) -> None:
    """Stored validation results (:class:`ValidationResult`): ``table`` shows id, rule,
    importance, org unit, period, both sides, notification sent and created; the
    other formats are :func:`write_records`' (``csv``: every field)."""

    def columns(width: int, ell: str) -> _Table:
        return _Table(["ID", "RULE", "IMPORTANCE", "ORG UNIT", "PERIOD", "LEFT", "RIGHT", "SENT",
                       "CREATED"], ["<", "<", "<", "<", "<", ">", ">", "<", "<"], width, ell,
                      caps={1: 30, 3: 24}, shrink=[(1, 12), (3, 10)], keep=(0,))

    def row(r: "ValidationResult") -> List[str]:
        return [_csv_value(r.id), r.validation_rule_name or r.validation_rule_id or "",
                r.importance or "", r.organisation_unit_name or r.organisation_unit_id or "",
                r.period_id or "", _num(r.leftside_value) if r.leftside_value is not None
                else "", _num(r.rightside_value) if r.rightside_value is not None else "",
                "yes" if r.notification_sent else "no", _iso(r.created) or ""]

    _write_listing(results, fmt, out, width, 120, "validation result", columns, row)
