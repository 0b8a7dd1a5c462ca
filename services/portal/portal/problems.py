"""A service's 422 answer, turned into one Vietnamese message per form field.

The services word their own rules in Vietnamese already ("'recommendations_accepted' (5) không
được lớn hơn 'recommendations' (3)."); what is left in English is pydantic's generic messages
("Field required", "Input should be a valid date"…), translated here by their `type`, and the
metric codes inside the messages, replaced by the words on the form.
"""

from __future__ import annotations

import re
from typing import Any

from .labels import METRIC_LABELS

FieldErrors = dict[str, str]
"""field path ('title', 'metrics.recommendations', 'requester.phone'; '' = the whole form) →
message"""

GENERAL = ""

_BY_TYPE = {
    "missing": "Chưa nhập thông tin này.",
    "string_type": "Phải là chữ.",
    "string_pattern_mismatch": "Không đúng định dạng.",
    "int_parsing": "Phải là số nguyên.",
    "int_type": "Phải là số nguyên.",
    "int_from_float": "Phải là số nguyên.",
    "float_parsing": "Phải là số.",
    "bool_parsing": "Phải là có hoặc không.",
    "date_parsing": "Ngày không hợp lệ (ngày/tháng/năm).",
    "date_from_datetime_parsing": "Ngày không hợp lệ (ngày/tháng/năm).",
    "date_type": "Ngày không hợp lệ (ngày/tháng/năm).",
    "datetime_parsing": "Thời điểm không hợp lệ.",
    "datetime_from_date_parsing": "Thời điểm không hợp lệ.",
    "timezone_aware": "Thời điểm phải có múi giờ.",
    "enum": "Giá trị không nằm trong danh sách cho phép.",
    "literal_error": "Giá trị không nằm trong danh sách cho phép.",
    "uuid_parsing": "Mã không hợp lệ.",
    "extra_forbidden": "Thông tin này không được phép gửi.",
    "too_long": "Quá nhiều mục.",
    "list_type": "Phải là một danh sách.",
    "url_parsing": "Địa chỉ không hợp lệ.",
}

_BOUNDS = {
    "greater_than_equal": "Phải từ {} trở lên.",
    "greater_than": "Phải lớn hơn {}.",
    "less_than_equal": "Không được lớn hơn {}.",
    "less_than": "Phải nhỏ hơn {}.",
}

_CODE = re.compile(r"'([a-z_]+)'")


def _with_labels(message: str) -> str:
    """Quoted metric codes become the words the form shows for them."""

    def swap(match: re.Match[str]) -> str:
        code = match.group(1)
        return f"“{METRIC_LABELS[code]}”" if code in METRIC_LABELS else match.group(0)

    return _CODE.sub(swap, message)


def _message(item: dict[str, Any]) -> str:
    kind = str(item.get("type", ""))
    msg = str(item.get("msg", ""))
    if kind in _BOUNDS:  # the services pass on loc, msg and type only: the bound is in msg
        numbers = re.findall(r"-?\d+(?:\.\d+)?", msg)
        return _BOUNDS[kind].format(numbers[-1] if numbers else "")
    if kind in ("string_too_short", "string_too_long"):
        numbers = re.findall(r"\d+", msg)
        bound = int(numbers[-1]) if numbers else 1
        if kind == "string_too_long":
            return f"Không được dài quá {bound} ký tự."
        return "Chưa nhập thông tin này." if bound <= 1 else f"Phải có ít nhất {bound} ký tự."
    if kind == "value_error":
        return _with_labels(msg.removeprefix("Value error, "))
    if kind in _BY_TYPE:
        return _BY_TYPE[kind]
    return _with_labels(msg) if msg else "Giá trị không hợp lệ."


def field_errors(detail: Any) -> FieldErrors:
    """`{"detail": …}` of a 422 (a list of pydantic-shaped problems, or a sentence) → messages
    per field. Several problems on one field are joined."""
    out: FieldErrors = {}
    if isinstance(detail, str):
        out[GENERAL] = _with_labels(detail)
        return out
    if not isinstance(detail, list):
        out[GENERAL] = "Thông tin chưa hợp lệ."
        return out
    for item in detail:
        if not isinstance(item, dict):
            continue
        loc = [str(p) for p in item.get("loc", []) if p not in ("body", "query", "path")]
        key = ".".join(loc)
        message = _message(item)
        out[key] = f"{out[key]} {message}" if key in out else message
    return out
