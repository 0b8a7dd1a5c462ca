"""What the cases use cases refuse with, and the words a refused person reads.

`app.py` answers `NotFound` with 404, `Forbidden` with 403 and `Conflict` with 409; a wrong
detail of a workflow rule becomes a 422 naming the field (`rules`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from lhpn_shared.auth import Principal, Role
from lhpn_shared.http import FieldProblem

from .domain.access import Access
from .domain.workflow import InvalidDetails

T = TypeVar("T")


class NotFound(Exception):
    pass


class Forbidden(Exception):
    pass


class Conflict(Exception):
    pass


def rules(change: Callable[[], T]) -> T:
    """Run a workflow rule; a wrong detail becomes a 422 naming the field."""
    try:
        return change()
    except InvalidDetails as exc:
        raise FieldProblem([((exc.field,), exc.message)]) from None


def refusal(caller: Principal, unit_id: str | None, access: Access, *, listing: bool) -> str:
    """Why `caller` is refused, in words for the person (no personal data in it)."""
    if caller.role is Role.viewer:
        return "Tài khoản xem (viewer) chỉ được xem số liệu tổng hợp."
    if access is Access.facts and caller.role is Role.system:
        return (
            "Hệ thống khác chỉ được gửi hồ sơ không có thông tin cá nhân và xem hồ sơ không kèm "
            "thông tin cá nhân; không được xử lý hồ sơ."
        )
    if access is Access.facts:
        return "Quản trị viên chỉ xem hồ sơ không kèm thông tin cá nhân, không xử lý hồ sơ."
    if unit_id is None:
        return "Tài khoản chưa gắn với đơn vị nào."
    if listing:
        return f"Bạn không có quyền xem danh sách hồ sơ của đơn vị {unit_id}."
    if access is Access.personal:  # staff of a union above that the case is not referred up to
        return (
            f"Hồ sơ thuộc đơn vị {unit_id} và chưa được chuyển lên đơn vị {caller.unit_id}; "
            "chỉ cán bộ Hội của đơn vị đang giữ hồ sơ được xử lý hồ sơ."
        )
    return f"Chỉ cán bộ Hội của đơn vị {unit_id} và cấp trên được xem hồ sơ này."
