"""Reference data several pages need, read from intake with the user's token (and kept a short
while: `backend.ReferenceAnswers`)."""

from __future__ import annotations

from typing import Any

from .backend import Backend
from .session import SignedIn


async def unit_index(api: Backend, user: SignedIn) -> dict[str, dict[str, Any]]:
    """The units the user may look at (the subtree of their unit; all for an admin), by id."""
    params: dict[str, Any] = {"limit": 5000}
    if user.unit_id:
        params["unit_id"] = user.unit_id
    page = await api.get_reference(
        "/api/v1/units", token=user.token, audience=(user.role, user.unit_id), params=params
    )
    return {u["unit_id"]: u for u in page["items"]}


async def plans(api: Backend, user: SignedIn) -> list[dict[str, Any]]:
    page = await api.get_reference(
        "/api/v1/plans", token=user.token, audience=(user.role, user.unit_id)
    )
    items: list[dict[str, Any]] = page["items"]
    return items
