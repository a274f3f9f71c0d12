"""Validation rules: run the analysis, read, delete and notify stored results --
:class:`ValidationMixin` of :class:`Session`.

``run_validation_analysis`` (``POST /api/dataAnalysis/validationRules``, synchronous)
and the stored results under ``/api/validationResults`` with their notifications
(``POST /api/validation/sendNotifications``).  Uses only the session's transport
helpers; it never imports session.py.
"""
from __future__ import annotations  # models are built on first use, not to annotate

import datetime
import re
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Union

from . import convert, models, versions
from .arguments import date_range, flag, positive_int, tolerant_job_type
from .errors import InvalidResponseError
from .transport import decode_json

__all__ = ["ValidationMixin"]

#: one UID (or ISO period) or several; None for no filter
_Uids = Union[str, Iterable[str], None]
_VALIDATION_FIELDS = ("id,created,leftsideValue,rightsideValue,dayInPeriod,notificationSent,"
                      "validationRule[id,name,importance],organisationUnit[id,name],period[id],"
                      "attributeOptionCombo[id]")


def _validation_result(item: Any, what: str) -> models.ValidationResult:
    """One stored result as DHIS2 nests it (convert's hook flattens the references)."""
    return convert.structure(item, models.ValidationResult, what)


def _list_param(values: Union[str, Iterable[Any], None], what: str,
                check: Callable[[Any, str], str]) -> Optional[List[str]]:
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    checked = [check(v, what) for v in values]
    if not checked:
        raise ValueError("{} is empty; pass None for no filter".format(what))
    return checked


if TYPE_CHECKING:
    from ._typing import SessionTransport as _Transport
else:
    _Transport = object


class ValidationMixin(_Transport):
    """Validation methods of :class:`dhis2maint.Session` (mixed in; they use only its
    transport helpers)."""

    def run_validation_analysis(self, org_unit: str, start_date: Union[datetime.date, str],
                                end_date: Union[datetime.date, str],
                                validation_rule_group: Optional[str] = None,
                                notification: bool = False, persist: bool = False,
                                max_results: Optional[int] = None
                                ) -> List[models.ValidationViolation]:
        """Run validation rules synchronously: ``POST /api/dataAnalysis/validationRules``
        -> the violations (``[]`` if none).

        JSON body ``{"ou", "vrg", "startDate", "endDate", "persist", "notification",
        "maxResults"}``; the org unit's descendants are included.  ``persist`` stores
        the results, ``notification`` sends the rules' notifications.  ``max_results``
        (1..500 by default) needs 2.41.4+ or 2.42.1+ (:class:`UnsupportedServerError`
        otherwise; older servers return at most 500).  Raises ``ValueError`` for bad
        UIDs or dates, :class:`BadRequest` for an unknown org unit.
        """
        start, end = date_range(start_date, end_date)
        body = {
            "ou": self._uid(org_unit, "org_unit"),
            "startDate": start,
            "endDate": end,
            "persist": flag(persist, "persist"),
            "notification": flag(notification, "notification"),
        }
        if validation_rule_group is not None:
            body["vrg"] = self._uid(validation_rule_group, "validation_rule_group")
        if max_results is not None:
            body["maxResults"] = positive_int(max_results, "max_results")
            versions.require(self.server_version, "validation_max_results",
                             "run_validation_analysis(max_results=…)")
        path = "dataAnalysis/validationRules"
        data = self._json("POST", path, json_body=body, expect=list)
        return convert.structure(data, List[models.ValidationViolation], "POST /api/" + path)

    # --- validation results -----------------------------------------------------------

    def iter_validation_results(self, validation_rules: _Uids = None, org_units: _Uids = None,
                                periods: _Uids = None,
                                created_date: Union[datetime.date, str, None] = None,
                                page_size: int = 50) -> Iterator[models.ValidationResult]:
        """Stored validation results, page by page: ``GET /api/validationResults?vr=&ou=
        &pe=&createdDate=&page=N&pageSize=`` -> :class:`ValidationResult` items.

        Filters are AND-combined; ``org_units`` are exact units (no descendants);
        a result matches ``periods`` (ISO, e.g. ``"202401"``) when its period
        overlaps one.  DHIS2 does not order the results, so a result stored or
        deleted while paging may be skipped or seen twice.
        """
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError("page_size must be a whole number >= 1, got {!r}".format(page_size))
        params: Dict[str, Any] = {"fields": _VALIDATION_FIELDS, "pageSize": str(page_size)}
        rules = _list_param(validation_rules, "validation_rules", self._uid)
        units = _list_param(org_units, "org_units", self._uid)
        pes = _list_param(periods, "periods", _period)
        if rules:
            params["vr"] = rules
        if units:
            params["ou"] = units
        if pes:
            params["pe"] = pes
        if created_date is not None:
            params["createdDate"] = _date(created_date)
        page = 1
        while True:
            params["page"] = str(page)
            data = self._json("GET", "validationResults", params=params, expect=dict)
            items = data.get("validationResults")
            if not isinstance(items, list):
                raise InvalidResponseError("GET /api/validationResults: no 'validationResults' "
                                           "list")
            for item in items:
                yield _validation_result(item, "GET /api/validationResults")
            pager = data.get("pager") if isinstance(data.get("pager"), dict) else {}
            try:
                page_count = int(pager.get("pageCount") or 0)
            except (TypeError, ValueError):
                page_count = 0
            if not items or page >= page_count:
                return
            page += 1

    def list_validation_results(self, validation_rules: _Uids = None, org_units: _Uids = None,
                                periods: _Uids = None,
                                created_date: Union[datetime.date, str, None] = None
                                ) -> List[models.ValidationResult]:
        """All of :meth:`iter_validation_results` as a list."""
        return list(self.iter_validation_results(validation_rules, org_units, periods,
                                                 created_date))

    def delete_validation_results(self, validation_rules: _Uids = None, org_units: _Uids = None,
                                  period: Optional[str] = None, created: Optional[str] = None,
                                  notification_sent: Optional[bool] = None,
                                  all_results: bool = False) -> None:
        """DESTRUCTIVE: ``DELETE /api/validationResults?vr=&ou=&pe=&created=
        &notificationSent=`` (204).

        ``period``: one ISO period (results whose period overlaps it); ``created``:
        an ISO period the results were created in (e.g. ``"2024Q1"``).  With no
        filter DHIS2 deletes EVERY validation result, so that needs
        ``all_results=True`` (``ValueError`` otherwise).  Needs
        ``F_PERFORM_MAINTENANCE`` -- on 2.36-2.41 literally that authority; ``ALL``
        alone is refused (403).
        """
        params: Dict[str, Any] = {}
        rules = _list_param(validation_rules, "validation_rules", self._uid)
        units = _list_param(org_units, "org_units", self._uid)
        if rules:
            params["vr"] = rules
        if units:
            params["ou"] = units
        if period is not None:
            params["pe"] = _period(period, "period")
        if created is not None:
            params["created"] = _period(created, "created")
        if notification_sent is not None:
            if not isinstance(notification_sent, bool):
                raise ValueError("notification_sent must be None, True or False")
            params["notificationSent"] = "true" if notification_sent else "false"
        if not params and not all_results:
            raise ValueError("no filter given: DHIS2 would delete every validation result; "
                             "pass a filter, or all_results=True to mean it")
        if params and all_results:
            raise ValueError("all_results=True cannot be combined with filters")
        self._send("DELETE", "validationResults", params=params or None)

    def send_validation_notifications(self) -> Optional[models.Job]:
        """Send the pending validation-result notifications once:
        ``POST /api/validation/sendNotifications``.

        2.41+ answer with a job (returned as a :class:`Job` to wait on); 2.36-2.40
        start it in memory and answer only "Initiated validation result
        notification" (``None`` is returned).  Needs ``ALL`` or
        ``M_dhis-web-app-management`` up to 2.41, ``F_RUN_VALIDATION`` from 2.42.
        """
        path = "validation/sendNotifications"
        response = self._send("POST", path)
        text = response.content.strip() if response.content else b""
        if not text or not text.startswith(b"{"):
            return None

        body = decode_json(response, "POST /api/" + path, expect=dict)
        job = body.get("response")
        if not isinstance(job, dict) or not job.get("id"):
            return None
        return models.Job(id=str(job["id"]),
                          job_type=tolerant_job_type(job.get("jobType")
                                                  or "VALIDATION_RESULTS_NOTIFICATION"),
                          created=_parse_or_none(job.get("created")), name=job.get("name"),
                          message=body.get("message"), session=self)


def _parse_or_none(value: Any) -> Any:
    try:
        return convert.parse_datetime(value)
    except ValueError:
        return None


_PERIOD = re.compile(r"^\d{4}[A-Za-z0-9]{0,8}$")


def _period(value: Any, what: str) -> str:
    """An ISO period as DHIS2 writes it (2024, 2024Q1, 202401, 2024W05, 2024AprilS1…)."""
    text = str(value).strip() if value is not None else ""
    if not _PERIOD.match(text):
        raise ValueError("{} must be an ISO period such as 2024, 2024Q1, 202401 or 2024W05, "
                         "got {!r}".format(what, value))
    return text


def _date(value: Any) -> str:
    if isinstance(value, datetime.datetime):
        return value.date().isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    text = str(value).strip()
    try:
        datetime.date(*(int(p) for p in text.split("-")))
    except (TypeError, ValueError):
        raise ValueError("created_date must be a date or 'YYYY-MM-DD', got {!r}".format(
            value)) from None
    return text
