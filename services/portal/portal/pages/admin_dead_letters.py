"""Quản trị › Hàng đợi lỗi (admins): each service's dead-letter queues with their counts and
reasons (issue 12's `/api/v1/dead-letters` on every service with consumer queues), one message
shown as the service returns it, replay, and purge behind a confirmation page.

Each service is asked on its own: one that is down shows its message in its own section and the
others are listed. A message body is shown as text, escaped, as the service returns it (a cases
message may be sealed: it stays so; the portal never tries to open it)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from ..backend import Backend, parts
from ..labels import SERVICE_LABELS
from ..session import SignedIn
from ..web import Admin, Api, Form, flash, render, see_other

router = APIRouter()

BASE = "/quan-tri/hang-doi-loi"
SERVICES = ("intake", "cases", "reminders", "aggregation")
"""the services with consumer queues, hence dead-letter routes"""
QUEUE = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
MESSAGE_ID = re.compile(r"^[^\s/]{1,200}$")
MAX_REASON = 1000
REFUSALS_SHOWN = 5
BODY_SHOWN = 20_000
"""characters of a message body shown on the page (the rest is counted, not shown)"""


def _service(value: str) -> str:
    if value not in SERVICES:
        raise HTTPException(404)
    return value


def _queue(value: str) -> str:
    if not QUEUE.fullmatch(value):
        raise HTTPException(404)
    return value


def _selection(values: dict[str, str]) -> tuple[str, str, dict[str, Any]]:
    """(service, queue, the API's selection body) from a form or a query string."""
    service = _service(values.get("service", ""))
    queue = _queue(values.get("queue", ""))
    body: dict[str, Any] = {"queue": queue}
    reason = values.get("reason", "")
    if reason:
        body["reason"] = reason[:MAX_REASON]
    message_id = values.get("message_id", "")
    if message_id:
        if not MESSAGE_ID.fullmatch(message_id):
            raise HTTPException(404)
        body["message_ids"] = [message_id]
    return service, queue, body


def service_label(service: str) -> str:
    return f"Dịch vụ {SERVICE_LABELS.get(service, service)}"


def replay_message(queue: str, answer: dict[str, Any]) -> tuple[str, str]:
    """(flash kind, sentence) for a replay's answer: how many went back, which were refused
    and why."""
    replayed = int(answer.get("replayed", 0))
    refused = list(answer.get("refused") or [])
    if not replayed and not refused:
        return "error", (
            f"Không còn thư nào khớp trong {queue}.dlq để phát lại "
            "(có thể đã được phát lại hoặc xóa)."
        )
    text = f"Đã phát lại {replayed} thư về hàng đợi {queue}"
    if refused:
        shown = "; ".join(
            f"{r.get('message_id')}: {r.get('why')}" for r in refused[:REFUSALS_SHOWN]
        )
        more = len(refused) - REFUSALS_SHOWN
        text += f"; {len(refused)} thư bị từ chối: {shown}"
        if more > 0:
            text += f" (và {more} thư khác)"
    return ("ok" if not refused else "error"), text + "."


async def _summaries(api: Backend, user: SignedIn) -> dict[str, Any]:
    return await parts(
        **{s: api.get(s, "/api/v1/dead-letters", token=user.token) for s in SERVICES}
    )


@router.get(BASE)
async def dead_letters_page(request: Request, user: Admin, api: Api) -> Response:
    found = await _summaries(api, user)
    sections = [
        {
            "service": s,
            "label": service_label(s),
            "part": found[s],
            "queues": (found[s].data or {}).get("queues", []) if found[s].ok else [],
        }
        for s in SERVICES
    ]
    return render(
        request,
        "admin/dead_letters.html",
        {"sections": sections, "services": SERVICES, "labels": SERVICE_LABELS, "tab": "dlq"},
        user=user,
        section="admin",
    )


@router.get(BASE + "/thu")
async def dead_letter_page(
    request: Request,
    user: Admin,
    api: Api,
    service: str = "",
    queue: str = "",
    message_id: str = "",
) -> Response:
    service, queue = _service(service), _queue(queue.strip())
    message_id = message_id.strip()
    if not MESSAGE_ID.fullmatch(message_id):
        flash(request, "Mã thư không hợp lệ.", "error")
        return see_other(BASE)
    path = f"/api/v1/dead-letters/{quote(queue, safe='')}/{quote(message_id, safe='')}"
    message = await api.get(service, path, token=user.token)  # 404: the error page says so
    body = str(message.get("body", ""))
    return render(
        request,
        "admin/dead_letter.html",
        {
            "service": service,
            "label": service_label(service),
            "message": message,
            "body": body[:BODY_SHOWN],
            "body_cut": max(0, len(body) - BODY_SHOWN),
            "headers": sorted((message.get("headers") or {}).items()),
            "tab": "dlq",
        },
        user=user,
        section="admin",
    )


@router.post(BASE + "/phat-lai")
async def replay(request: Request, user: Admin, api: Api, form: Form) -> Response:
    values = {k: str(v) for k, v in form.items()}
    service, queue, body = _selection(values)
    answer = await api.send(
        service, "POST", "/api/v1/dead-letters/replay", token=user.token, json=body, slow=True
    )
    kind, text = replay_message(queue, answer)
    flash(request, f"{service_label(service)}: {text}", kind)
    return see_other(BASE)


def _purge_what(body: dict[str, Any]) -> str:
    if body.get("message_ids"):
        return f"thư {body['message_ids'][0]}"
    if body.get("reason"):
        return f"mọi thư có lý do “{body['reason']}”"
    return "mọi thư"


@router.get(BASE + "/xoa")
async def purge_confirmation(
    request: Request,
    user: Admin,
    service: str = "",
    queue: str = "",
    reason: str = "",
    message_id: str = "",
) -> Response:
    """Nothing is deleted here: the page asks to confirm, its form deletes."""
    values = {"service": service, "queue": queue, "reason": reason, "message_id": message_id}
    service, queue, body = _selection(values)
    return render(
        request,
        "admin/dead_letters_purge.html",
        {
            "service": service,
            "label": service_label(service),
            "queue": queue,
            "reason": body.get("reason", ""),
            "message_id": message_id if body.get("message_ids") else "",
            "what": _purge_what(body),
            "back": BASE
            + (
                "/thu?" + urlencode({"service": service, "queue": queue, "message_id": message_id})
                if body.get("message_ids")
                else ""
            ),
            "tab": "dlq",
        },
        user=user,
        section="admin",
    )


@router.post(BASE + "/xoa")
async def purge(request: Request, user: Admin, api: Api, form: Form) -> Response:
    values = {k: str(v) for k, v in form.items()}
    service, queue, body = _selection(values)
    if values.get("confirm") != "yes":  # only the confirmation page's form says yes
        query = {k: values.get(k, "") for k in ("service", "queue", "reason", "message_id")}
        return see_other(BASE + "/xoa?" + urlencode(query))
    answer = await api.send(
        service, "POST", "/api/v1/dead-letters/purge", token=user.token, json=body, slow=True
    )
    purged = int(answer.get("purged", 0))
    flash(
        request,
        f"{service_label(service)}: đã xóa {purged} thư ({_purge_what(body)}) "
        f"khỏi hàng đợi lỗi {queue}.dlq.",
        "ok" if purged else "error",
    )
    return see_other(BASE)
