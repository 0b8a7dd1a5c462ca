"""Reports: submitted or resubmitted for a schedule period (timeliness kept from the first
submission), read and listed."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC
from typing import Any
from uuid import UUID, uuid4

from pymongo.errors import DuplicateKeyError

from lhpn_shared.clock import to_millis
from lhpn_shared.contracts.events import Envelope
from lhpn_shared.contracts.reports import AttachmentInfo, Report
from lhpn_shared.http import FieldProblem
from lhpn_shared.outbox import outbox_fields, with_outbox
from lhpn_shared.principal import Principal

from . import domain
from .context import SOURCE, IntakeContext, page
from .errors import Conflict, NotFound
from .models import AttachmentIn, ReportSubmission
from .repository import report_from_doc


async def list_reports(
    ctx: IntakeContext,
    unit_ids: list[str],
    *,
    report_type: str | None,
    period: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Report], str | None]:
    query: dict[str, Any] = {"unit_id": {"$in": unit_ids}}
    if report_type:
        query["report_type"] = report_type
    if period:
        query["period"] = period
    docs, nxt = await page(ctx.store.reports, query, limit, cursor)
    return [report_from_doc(d) for d in docs], nxt


async def get_report(ctx: IntakeContext, report_id: UUID) -> Report:
    doc = await ctx.store.reports.find_one({"_id": str(report_id)})
    if doc is None:
        raise NotFound(f"Không tìm thấy báo cáo {report_id}.")
    return report_from_doc(doc)


async def submit_report(
    ctx: IntakeContext,
    sub: ReportSubmission,
    principal: Principal,
    *,
    event_id: UUID | None = None,
    source: str = SOURCE,
    correlation_id: str | None = None,
) -> tuple[Report, bool]:
    """Submit, or resubmit, a unit's report for a schedule period. Returns (report, changed).

    A resubmission replaces the content, keeps the first `received_at` (and so the
    timeliness) and increments the revision; an identical resubmission changes nothing.
    A `report_id` that is another report's answers 409.
    """
    ctx.require_write(principal, sub.unit_id)
    actor = principal.subject
    now = ctx.now()
    expectation = domain.report_expectation(
        ctx.plans, ctx.tree, sub.unit_id, sub.report_type, sub.period
    )
    if isinstance(expectation, list):
        raise FieldProblem(expectation)
    problems = domain.indicator_problems(expectation.schedule, sub.indicators)
    received_at = to_millis(sub.received_at.astimezone(UTC)) if sub.received_at else now
    if received_at > now:
        problems.append((("received_at",), "Ngày nhận báo cáo không được ở tương lai."))
    attachments, stored = _attachments(ctx, sub.attachments, problems)
    if problems:
        raise FieldProblem(problems)

    key = {"unit_id": sub.unit_id, "report_type": sub.report_type, "period": sub.period}
    existing = await ctx.store.reports.find_one(key)
    if sub.report_id is not None and (existing is None or existing["_id"] != str(sub.report_id)):
        await _refuse_report_id_of_another(ctx, sub.report_id, key)
    if existing is None:
        report = Report(
            report_id=sub.report_id or uuid4(),
            unit_id=sub.unit_id,
            report_type=sub.report_type,
            period=sub.period,
            indicators=sub.indicators,
            narrative=sub.narrative,
            received_at=received_at,
            attachments=attachments,
            revision=1,
            due_at=expectation.due_at.astimezone(UTC),
            on_time=domain.is_on_time(received_at, expectation.due_at),
        )
        event = _report_event(ctx, report, event_id, source, correlation_id)
        doc = {
            "_id": str(report.report_id),
            **_report_doc(report, stored),
            "plan_id": expectation.plan.plan_id,
            "submitted_by": actor,
            "last_received_at": now,
            "source_event_ids": [str(event.event_id)],
            **outbox_fields(
                [event],
                ctx.audit_entries(principal, "reports.submit", report.report_id, report.unit_id),
            ),
        }
        try:
            await ctx.store.reports.insert_one(doc)
        except DuplicateKeyError:
            if sub.report_id is not None:  # the id was taken meanwhile, or the key
                await _refuse_report_id_of_another(ctx, sub.report_id, key)
            # a concurrent first submission won: this one becomes a resubmission
            return await submit_report(
                ctx, sub, principal, event_id=event_id, source=source, correlation_id=correlation_id
            )
        ctx.wake(ctx.store.reports.name)
        return report, True

    current = report_from_doc(existing)
    if event_id is not None and str(event_id) in existing.get("source_event_ids", []):
        return current, False
    if (
        current.indicators == sub.indicators
        and current.narrative == sub.narrative
        and [a.model_dump() for a in current.attachments] == [a.model_dump() for a in attachments]
    ):
        return current, False
    report = current.model_copy(
        update={
            "indicators": sub.indicators,
            "narrative": sub.narrative,
            "attachments": attachments,
            "revision": current.revision + 1,
        }
    )
    event = _report_event(ctx, report, event_id, source, correlation_id)
    update = with_outbox(
        {"$set": {**_report_doc(report, stored), "last_received_at": now}},
        [event],
        ctx.audit_entries(principal, "reports.resubmit", report.report_id, report.unit_id),
    )
    update["$push"]["source_event_ids"] = str(event.event_id)
    result = await ctx.store.reports.update_one(
        {"_id": existing["_id"], "revision": current.revision}, update
    )
    if result.matched_count == 0:
        if event_id is not None:  # another system's: applied over what is stored now
            return await submit_report(
                ctx, sub, principal, event_id=event_id, source=source, correlation_id=correlation_id
            )
        raise Conflict("Báo cáo vừa được nộp lại bởi người khác, vui lòng thử lại.")
    ctx.wake(ctx.store.reports.name)
    return report, True


async def _refuse_report_id_of_another(
    ctx: IntakeContext, report_id: UUID, key: dict[str, str]
) -> None:
    """A client-chosen `report_id` already naming a report of another unit, type or period:
    409, without saying whose."""
    other = await ctx.store.reports.find_one(
        {"_id": str(report_id)}, {"unit_id": 1, "report_type": 1, "period": 1}
    )
    if other is not None and any(other.get(k) != v for k, v in key.items()):
        raise Conflict(f"Mã báo cáo {report_id} đã được dùng cho một báo cáo khác.")


def _report_event(
    ctx: IntakeContext,
    report: Report,
    event_id: UUID | None,
    source: str,
    correlation_id: str | None,
) -> Envelope:
    return ctx.event(
        "report.submitted",
        report,
        report.unit_id,
        event_id=event_id,
        source=source,
        correlation_id=correlation_id,
    )


def _attachments(
    ctx: IntakeContext, items: list[AttachmentIn], problems: list[domain.Problem]
) -> tuple[list[AttachmentInfo], list[bytes | None]]:
    infos: list[AttachmentInfo] = []
    contents: list[bytes | None] = []
    total = 0
    for i, a in enumerate(items):
        content: bytes | None = None
        if a.content_base64 is not None:
            try:
                content = base64.b64decode(a.content_base64, validate=True)
            except (binascii.Error, ValueError):
                problems.append((("attachments", i, "content_base64"), "Tệp đính kèm hỏng."))
                continue
            total += len(content)
        elif a.reference is None:
            problems.append(
                (("attachments", i), "Tệp đính kèm cần nội dung hoặc đường dẫn tham chiếu.")
            )
            continue
        infos.append(
            AttachmentInfo(
                file_name=a.file_name,
                media_type=a.media_type,
                size=len(content) if content is not None else 0,
                reference=a.reference,
            )
        )
        contents.append(content)
    if total > ctx.max_attachment_bytes:
        problems.append(
            (
                ("attachments",),
                f"Tệp đính kèm quá lớn (tối đa {ctx.max_attachment_bytes} byte).",
            )
        )
    return infos, contents


def _report_doc(report: Report, contents: list[bytes | None]) -> dict[str, Any]:
    d = report.model_dump(mode="json", exclude={"received_at", "due_at"})
    d["received_at"] = report.received_at
    d["due_at"] = report.due_at
    for a, content in zip(d["attachments"], contents, strict=True):
        if content is not None:
            a["content"] = content
    return d
