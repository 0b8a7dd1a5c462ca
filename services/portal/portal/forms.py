"""Posted forms → the JSON bodies the services take (pure). Input names follow the API's field
paths (`metrics.recommendations`, `requester.phone`), so a service's 422 lands next to the input
it names. Only what a browser form cannot express is checked here (a number that is not one);
every rule is the service's, and its message is shown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .formatting import parse_vi_date, vi_date
from .labels import ACTIVITY_METRICS
from .problems import FieldErrors

NOT_A_NUMBER = "Phải là số nguyên (0, 1, 2…)."
NOT_A_DATE = "Ngày phải theo dạng ngày/tháng/năm, ví dụ 05/03/2021."


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _optional(form: Mapping[str, Any], name: str) -> str | None:
    return _text(form, name) or None


def _int(form: Mapping[str, Any], name: str, errors: FieldErrors) -> int | None:
    raw = _text(form, name).replace(".", "").replace(" ", "")
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        errors[name] = NOT_A_NUMBER
        return None


def _date(form: Mapping[str, Any], name: str, errors: FieldErrors) -> str:
    """A dd/mm/yyyy input as the ISO date the API takes ('' stays '': the service says it is
    missing)."""
    raw = _text(form, name)
    if not raw:
        return ""
    day = parse_vi_date(raw)
    if day is None:
        errors[name] = NOT_A_DATE
        return raw
    return day.isoformat()


def activity_body(form: Mapping[str, Any], kind: str) -> tuple[dict[str, Any], FieldErrors]:
    """The fields of `ActivityFields` (SPEC §4) from the activity form of `kind`."""
    errors: FieldErrors = {}
    metrics: dict[str, int] = {}
    for name in ACTIVITY_METRICS.get(kind, ()):
        value = _int(form, f"metrics.{name}", errors)
        if value is not None:
            metrics[name] = value
    body: dict[str, Any] = {
        "unit_id": _text(form, "unit_id"),
        "kind": kind,
        "occurred_on": _date(form, "occurred_on", errors),
        "title": _text(form, "title"),
        "notes": _text(form, "notes"),
        "metrics": metrics,
    }
    if plan_id := _optional(form, "plan_id"):
        body["plan_id"] = plan_id
    if kind == "supervision":
        body["role"] = _optional(form, "role")
        body["agreed_with_front"] = form.get("agreed_with_front") == "on"
    if kind == "draft_comment":
        body["document_kind"] = _optional(form, "document_kind")
    if kind == "legal_outreach":
        body["topic"] = _optional(form, "topic")
        body["format"] = _optional(form, "format")
    return body, errors


def activity_values(activity: Mapping[str, Any]) -> dict[str, Any]:
    """An activity as the form's input values (to correct it)."""
    values: dict[str, Any] = {
        k: activity.get(k)
        for k in ("unit_id", "title", "notes", "plan_id", "role", "document_kind")
    }
    values["occurred_on"] = vi_date(activity.get("occurred_on"))
    values.update(topic=activity.get("topic"), format=activity.get("format"))
    values["agreed_with_front"] = "on" if activity.get("agreed_with_front") else ""
    for name, value in (activity.get("metrics") or {}).items():
        values[f"metrics.{name}"] = value
    return {k: ("" if v is None else v) for k, v in values.items()}


def report_body(
    form: Mapping[str, Any], indicators: list[str], attachments: list[dict[str, Any]]
) -> tuple[dict[str, Any], FieldErrors]:
    """A `ReportSubmission` from the report form; `attachments` are already read and encoded."""
    errors: FieldErrors = {}
    values: dict[str, int] = {}
    for code in dict.fromkeys(indicators):
        value = _int(form, f"indicators.{code}", errors)
        if value is not None:
            values[code] = value
    body: dict[str, Any] = {
        "unit_id": _text(form, "unit_id"),
        "report_type": _text(form, "report_type"),
        "period": _text(form, "period"),
        "indicators": values,
        "narrative": _text(form, "narrative"),
        "attachments": attachments,
    }
    if report_id := _optional(form, "report_id"):
        body["report_id"] = report_id
    return body, errors


REQUESTER_FIELDS = ("name", "phone", "address", "birth_year", "id_number")


def case_body(form: Any) -> tuple[dict[str, Any], FieldErrors]:
    """A `NewCase` (SPEC §6) from the case form; `form` is multi-valued for the flags."""
    errors: FieldErrors = {}
    requester: dict[str, Any] = {}
    for name in REQUESTER_FIELDS:
        key = f"requester.{name}"
        if name == "birth_year":
            year = _int(form, key, errors)
            if year is not None:
                requester[name] = year
        elif value := _optional(form, key):
            requester[name] = value
    flags = form.getlist("flags") if hasattr(form, "getlist") else []
    body: dict[str, Any] = {
        "case_id": _optional(form, "case_id"),
        "unit_id": _text(form, "unit_id"),
        "kind": _text(form, "kind"),
        "topic": _text(form, "topic"),
        "channel": _text(form, "channel"),
        "received_on": _date(form, "received_on", errors),
        "summary": _text(form, "summary"),
        "requester": requester or None,
        "flags": [str(f) for f in flags],
        "complex": form.get("complex") == "on",
        "remote_area": form.get("remote_area") == "on",
        "assigned_to": _optional(form, "assigned_to"),
    }
    return body, errors
