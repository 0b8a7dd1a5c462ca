"""Intake's use cases. The same functions serve HTTP, the inbound AMQP queue and the tests.

Every state change is one document write that carries its events in the document's outbox
(`lhpn_shared.outbox`); the relay publishes them.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel
from pymongo.errors import DuplicateKeyError

from lhpn_shared.access import WRITE, require_unit
from lhpn_shared.audit import AuditLog
from lhpn_shared.broker import Reject
from lhpn_shared.clock import LOCAL_TZ, Clock, to_millis
from lhpn_shared.contracts.activities import Activity, ActivityFields
from lhpn_shared.contracts.events import ActivityVoided, Envelope, make_event
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.reports import AttachmentInfo, Report
from lhpn_shared.contracts.units import Unit, UnitTree
from lhpn_shared.http import FieldProblem
from lhpn_shared.mongo import Doc
from lhpn_shared.outbox import outbox_fields, with_outbox
from lhpn_shared.principal import Principal

from . import domain
from .errors import Conflict, NotFound, NotReady, StaleRevision
from .inbound import handle_inbound
from .models import AttachmentIn, ReportSubmission
from .repository import (
    IntakeStore,
    activity_from_doc,
    activity_to_doc,
    plan_from_doc,
    plan_to_doc,
    report_from_doc,
)
from .units import UnitRegistry, UnitsNotReady

log = logging.getLogger("intake")

REFRESH_SECONDS = 1.0
"""Units and plans are read again for a refused inbound message at most this often."""

SOURCE = "intake"


class Intake:
    """Units, plans, activities and reports. Every write takes the authenticated principal: it is
    the recorded actor, it must reach the unit written to AND the stored entity's unit (an id
    that belongs to another unit's record answers 409 without changing or showing it), and the
    write is audited."""

    def __init__(
        self,
        store: IntakeStore,
        clock: Clock,
        wake_relay: Callable[..., None],
        audit: AuditLog | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self._wake = wake_relay
        self.units = UnitRegistry(store, clock, wake_relay)
        self.audit = audit or AuditLog(store.audit, clock)
        self._plans: list[Plan] | None = None
        self._loaded_at = float("-inf")
        self.max_attachment_bytes = 5 * 1024 * 1024

    def now(self) -> datetime:
        return to_millis(self.clock.now())

    # ---- caches of the small, rarely changing reference data ----------------------------

    async def load_reference_data(self) -> None:
        await self.units.load()
        await self._load_plans()
        self._loaded_at = time.monotonic()

    async def refresh_reference_data(self) -> bool:
        """Read units and plans again unless that was done in the last `REFRESH_SECONDS`;
        True if read. Another replica may have created the unit or plan an inbound message
        names (its HTTP side changed them), so a message refused for what this process does
        not know is tried once more against what is stored."""
        if time.monotonic() - self._loaded_at < REFRESH_SECONDS:
            return False
        await self.load_reference_data()
        return True

    async def _load_plans(self) -> None:
        self._plans = [plan_from_doc(d) async for d in self.store.plans.find({})]

    @property
    def tree(self) -> UnitTree:
        try:
            return self.units.tree
        except UnitsNotReady:
            raise NotReady from None

    @property
    def plans(self) -> list[Plan]:
        if self._plans is None:
            raise NotReady
        return self._plans

    def _event(self, event_type: str, data: BaseModel, unit_id: str | None, **kw: Any) -> Envelope:
        kw.setdefault("source", SOURCE)
        return make_event(event_type, data, occurred_at=self.now(), unit_id=unit_id, **kw)

    # ---- units and plans ------------------------------------------------------------------

    async def upsert_unit(self, unit: Unit, actor: str = "system:intake") -> bool:
        """Store the unit if new, or give it this state if it differs (revision + 1), and
        announce it; False if unchanged. Changes over time go through `units.reorganise`."""
        outcome = await self.units.load_units([unit], actor, replace=True)
        return outcome.change_id is not None

    async def publish_plan(
        self, plan: Plan, principal: Principal | None = None
    ) -> tuple[Plan, bool]:
        """Publish a plan, or a new revision of it when its content changed. `principal`: who
        publishes it over the API (None: the default data loaded at start)."""
        if principal is not None and plan.issuing_unit_id in self.tree:
            require_unit(principal, plan.issuing_unit_id, self.tree, WRITE)
        if plan.issuing_unit_id not in self.tree:
            raise FieldProblem([(("issuing_unit_id",), "Không có đơn vị ban hành này.")])
        existing = await self.store.plans.find_one({"_id": plan.plan_id})
        now = self.now()
        audit = (
            [
                self.audit.entry(
                    principal,
                    "plans.publish",
                    entity_type="plan",
                    entity_id=plan.plan_id,
                    unit_id=plan.issuing_unit_id,
                )
            ]
            if principal is not None
            else []
        )
        if existing is not None:
            current = plan_from_doc(existing)
            same = {"revision", "published_at"}
            if current.model_dump(exclude=same) == plan.model_dump(exclude=same):
                return current, False
            plan = plan.model_copy(update={"revision": current.revision + 1, "published_at": now})
            event = self._event("plan.published", plan, plan.issuing_unit_id)
            result = await self.store.plans.update_one(
                {"_id": plan.plan_id, "revision": current.revision},
                with_outbox({"$set": plan_to_doc(plan)}, [event], audit),
            )
            if result.matched_count == 0:
                raise Conflict("Kế hoạch vừa được người khác cập nhật, vui lòng thử lại.")
        else:
            plan = plan.model_copy(update={"revision": 1, "published_at": now})
            event = self._event("plan.published", plan, plan.issuing_unit_id)
            try:
                await self.store.plans.insert_one(
                    {"_id": plan.plan_id, **plan_to_doc(plan), **outbox_fields([event], audit)}
                )
            except DuplicateKeyError as exc:
                raise Conflict("Kế hoạch vừa được người khác tạo, vui lòng thử lại.") from exc
        self._wake(self.store.plans.name)
        await self._load_plans()
        return plan, True

    # ---- activities -------------------------------------------------------------------------

    def _check_activity(self, fields: ActivityFields) -> None:
        today = self.now().astimezone(LOCAL_TZ).date()
        problems = domain.activity_problems(fields, self.tree.get(fields.unit_id), today)
        if problems:
            raise FieldProblem(problems)

    async def get_activity(self, activity_id: UUID) -> Activity:
        doc = await self.store.activities.find_one({"_id": str(activity_id)})
        if doc is None:
            raise NotFound(f"Không tìm thấy hoạt động {activity_id}.")
        return activity_from_doc(doc)

    def _require_write(self, principal: Principal, unit_id: str) -> None:
        """`principal` may write for `unit_id` (an unknown unit is left to validation)."""
        if unit_id in self.tree:
            require_unit(principal, unit_id, self.tree, WRITE)

    async def record_activity(
        self,
        fields: ActivityFields,
        principal: Principal,
        *,
        activity_id: UUID | None = None,
        event_id: UUID | None = None,
        source: str = SOURCE,
        correlation_id: str | None = None,
        revision: int = 1,
    ) -> tuple[Activity, bool]:
        """Record a new activity. Returns (activity, created). The same `activity_id` with the
        same content is a safe retry (nothing new); with other content it is a conflict.
        `revision`: the sender's, for an activity another system numbers itself (inbound)."""
        self._require_write(principal, fields.unit_id)
        self._check_activity(fields)
        actor = principal.subject
        activity = Activity(
            **fields.model_dump(),
            activity_id=activity_id or uuid4(),
            revision=revision,
            recorded_at=self.now(),
            recorded_by=actor,
        )
        event = self._event(
            "activity.recorded",
            activity,
            activity.unit_id,
            event_id=event_id,
            source=source,
            correlation_id=correlation_id,
        )
        doc = {
            "_id": str(activity.activity_id),
            **activity_to_doc(activity),
            "source_event_ids": [str(event.event_id)],
            **outbox_fields(
                [event],
                self._audit(principal, "activities.record", activity.activity_id, fields.unit_id),
            ),
        }
        try:
            await self.store.new_activities.insert_one(doc)
        except DuplicateKeyError:
            existing = await self.get_activity(activity.activity_id)
            if existing.unit_id == fields.unit_id and _same_content(existing, fields):
                return existing, False
            raise Conflict(
                f"Mã hoạt động {activity.activity_id} đã được dùng cho một hoạt động khác."
            ) from None
        self._wake(self.store.activities.name)
        return activity, True

    async def correct_activity(
        self,
        activity_id: UUID,
        fields: ActivityFields,
        principal: Principal,
        *,
        event_id: UUID | None = None,
        source: str = SOURCE,
        correlation_id: str | None = None,
        revision: int | None = None,
    ) -> Activity:
        """A correction: a new revision of the whole activity, by someone who may write for
        both the unit it belongs to and the unit it names now.

        `revision`: the sender's number for it (inbound): applied only over an older one —
        written with a guard on the stored revision, so two corrections handled at once end
        with the newer, whichever writes first — else `StaleRevision`."""
        current = await self.get_activity(activity_id)
        self._require_write(principal, current.unit_id)
        self._require_write(principal, fields.unit_id)
        actor = principal.subject
        if revision is not None and current.revision >= revision:
            raise StaleRevision(f"revision {revision} <= {current.revision} stored")
        if current.voided:
            raise Conflict("Hoạt động đã bị hủy, không thể sửa.")
        self._check_activity(fields)
        if _same_content(current, fields) and revision is None:
            return current
        updated = Activity(
            **fields.model_dump(),
            activity_id=activity_id,
            revision=current.revision + 1 if revision is None else revision,
            recorded_at=self.now(),
            recorded_by=actor,
        )
        event = self._event(
            "activity.recorded",
            updated,
            updated.unit_id,
            event_id=event_id,
            source=source,
            correlation_id=correlation_id,
        )
        update = with_outbox(
            {"$set": activity_to_doc(updated)},
            [event],
            self._audit(principal, "activities.correct", activity_id, updated.unit_id),
        )
        update["$push"]["source_event_ids"] = str(event.event_id)
        guard: dict[str, Any] = (
            {"revision": current.revision}
            if revision is None
            else {"revision": {"$lt": revision}, "voided": {"$ne": True}}
        )
        result = await self.store.activities.update_one({"_id": str(activity_id), **guard}, update)
        if result.matched_count == 0:
            if revision is not None:  # a newer revision or a void was written meanwhile
                return await self.correct_activity(
                    activity_id,
                    fields,
                    principal,
                    event_id=event_id,
                    source=source,
                    correlation_id=correlation_id,
                    revision=revision,
                )
            raise Conflict("Hoạt động vừa được người khác sửa, vui lòng tải lại rồi thử lại.")
        self._wake(self.store.activities.name)
        return updated

    async def void_activity(
        self,
        activity_id: UUID,
        principal: Principal,
        *,
        reason: str = "",
        event_id: UUID | None = None,
        source: str = SOURCE,
        correlation_id: str | None = None,
        revision: int | None = None,
    ) -> Activity:
        """`revision`: the sender's number for the void (inbound), kept when it is above the
        stored one, so that a correction it follows, handled after it, is seen as older. An
        inbound void applies to whatever is stored when it is written (a correction handled at
        the same time is voided with it); a staff member's void over HTTP answers 409 instead."""
        current = await self.get_activity(activity_id)
        self._require_write(principal, current.unit_id)
        actor = principal.subject
        if current.voided:
            return current
        now = self.now()
        number = current.revision + 1 if revision is None else max(revision, current.revision + 1)
        voided = current.model_copy(update={"voided": True, "revision": number})
        data = ActivityVoided(
            activity_id=activity_id,
            unit_id=current.unit_id,
            revision=voided.revision,
            voided_at=now,
            reason=reason,
        )
        event = self._event(
            "activity.voided",
            data,
            current.unit_id,
            event_id=event_id,
            source=source,
            correlation_id=correlation_id,
        )
        update = with_outbox(
            {
                "$set": {
                    "voided": True,
                    "revision": voided.revision,
                    "voided_at": now,
                    "voided_by": actor,
                }
            },
            [event],
            self._audit(principal, "activities.void", activity_id, current.unit_id),
        )
        update["$push"]["source_event_ids"] = str(event.event_id)
        result = await self.store.activities.update_one(
            {"_id": str(activity_id), "revision": current.revision}, update
        )
        if result.matched_count == 0:
            if revision is not None:  # another system's void: of whatever is stored now
                return await self.void_activity(
                    activity_id,
                    principal,
                    reason=reason,
                    event_id=event_id,
                    source=source,
                    correlation_id=correlation_id,
                    revision=revision,
                )
            raise Conflict("Hoạt động vừa được người khác sửa, vui lòng tải lại rồi thử lại.")
        self._wake(self.store.activities.name)
        return voided

    async def list_activities(
        self,
        unit_ids: list[str],
        *,
        kind: str | None,
        from_on: str | None,
        to_on: str | None,
        include_voided: bool,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[Activity], str | None]:
        query: dict[str, Any] = {"unit_id": {"$in": unit_ids}}
        if kind:
            query["kind"] = kind
        if from_on or to_on:
            query["occurred_on"] = {
                **({"$gte": from_on} if from_on else {}),
                **({"$lte": to_on} if to_on else {}),
            }
        if not include_voided:
            query["voided"] = False
        docs, nxt = await _page(self.store.activities, query, limit, cursor)
        return [activity_from_doc(d) for d in docs], nxt

    # ---- reports ----------------------------------------------------------------------------

    async def list_reports(
        self,
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
        docs, nxt = await _page(self.store.reports, query, limit, cursor)
        return [report_from_doc(d) for d in docs], nxt

    async def get_report(self, report_id: UUID) -> Report:
        doc = await self.store.reports.find_one({"_id": str(report_id)})
        if doc is None:
            raise NotFound(f"Không tìm thấy báo cáo {report_id}.")
        return report_from_doc(doc)

    async def submit_report(
        self,
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
        self._require_write(principal, sub.unit_id)
        actor = principal.subject
        now = self.now()
        expectation = domain.report_expectation(
            self.plans, self.tree, sub.unit_id, sub.report_type, sub.period
        )
        if isinstance(expectation, list):
            raise FieldProblem(expectation)
        problems = domain.indicator_problems(expectation.schedule, sub.indicators)
        received_at = to_millis(sub.received_at.astimezone(UTC)) if sub.received_at else now
        if received_at > now:
            problems.append((("received_at",), "Ngày nhận báo cáo không được ở tương lai."))
        attachments, stored = self._attachments(sub.attachments, problems)
        if problems:
            raise FieldProblem(problems)

        key = {"unit_id": sub.unit_id, "report_type": sub.report_type, "period": sub.period}
        existing = await self.store.reports.find_one(key)
        if sub.report_id is not None and (
            existing is None or existing["_id"] != str(sub.report_id)
        ):
            await self._refuse_report_id_of_another(sub.report_id, key)
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
            event = self._report_event(report, event_id, source, correlation_id)
            doc = {
                "_id": str(report.report_id),
                **_report_doc(report, stored),
                "plan_id": expectation.plan.plan_id,
                "submitted_by": actor,
                "last_received_at": now,
                "source_event_ids": [str(event.event_id)],
                **outbox_fields(
                    [event],
                    self._audit(principal, "reports.submit", report.report_id, report.unit_id),
                ),
            }
            try:
                await self.store.reports.insert_one(doc)
            except DuplicateKeyError:
                if sub.report_id is not None:  # the id was taken meanwhile, or the key
                    await self._refuse_report_id_of_another(sub.report_id, key)
                # a concurrent first submission won: this one becomes a resubmission
                return await self.submit_report(
                    sub, principal, event_id=event_id, source=source, correlation_id=correlation_id
                )
            self._wake(self.store.reports.name)
            return report, True

        current = report_from_doc(existing)
        if event_id is not None and str(event_id) in existing.get("source_event_ids", []):
            return current, False
        if (
            current.indicators == sub.indicators
            and current.narrative == sub.narrative
            and [a.model_dump() for a in current.attachments]
            == [a.model_dump() for a in attachments]
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
        event = self._report_event(report, event_id, source, correlation_id)
        update = with_outbox(
            {"$set": {**_report_doc(report, stored), "last_received_at": now}},
            [event],
            self._audit(principal, "reports.resubmit", report.report_id, report.unit_id),
        )
        update["$push"]["source_event_ids"] = str(event.event_id)
        result = await self.store.reports.update_one(
            {"_id": existing["_id"], "revision": current.revision}, update
        )
        if result.matched_count == 0:
            if event_id is not None:  # another system's: applied over what is stored now
                return await self.submit_report(
                    sub, principal, event_id=event_id, source=source, correlation_id=correlation_id
                )
            raise Conflict("Báo cáo vừa được nộp lại bởi người khác, vui lòng thử lại.")
        self._wake(self.store.reports.name)
        return report, True

    async def _refuse_report_id_of_another(self, report_id: UUID, key: dict[str, str]) -> None:
        """A client-chosen `report_id` already naming a report of another unit, type or period:
        409, without saying whose."""
        other = await self.store.reports.find_one(
            {"_id": str(report_id)}, {"unit_id": 1, "report_type": 1, "period": 1}
        )
        if other is not None and any(other.get(k) != v for k, v in key.items()):
            raise Conflict(f"Mã báo cáo {report_id} đã được dùng cho một báo cáo khác.")

    def _audit(self, principal: Principal, action: str, entity_id: UUID, unit_id: str) -> list[Doc]:
        """The audit record of a write, to store inside it (the relay moves it to the log)."""
        entity_type = {"activities": "activity", "reports": "report"}[action.partition(".")[0]]
        return [
            self.audit.entry(
                principal, action, entity_type=entity_type, entity_id=entity_id, unit_id=unit_id
            )
        ]

    def _report_event(
        self, report: Report, event_id: UUID | None, source: str, correlation_id: str | None
    ) -> Envelope:
        return self._event(
            "report.submitted",
            report,
            report.unit_id,
            event_id=event_id,
            source=source,
            correlation_id=correlation_id,
        )

    def _attachments(
        self, items: list[AttachmentIn], problems: list[domain.Problem]
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
        if total > self.max_attachment_bytes:
            problems.append(
                (
                    ("attachments",),
                    f"Tệp đính kèm quá lớn (tối đa {self.max_attachment_bytes} byte).",
                )
            )
        return infos, contents

    # ---- inbound events from other systems --------------------------------------------------

    async def handle_inbound(self, envelope: Envelope, principal: Principal) -> str:
        """An envelope from `lhpn.inbound` or `POST /api/v1/events`, sent by `principal`: see
        `inbound.handle_inbound`. Tried once more after reading units and plans again when it
        is refused: another replica may have just created the unit or plan it names."""
        try:
            return await handle_inbound(self, envelope, principal)
        except Reject:
            if not await self.refresh_reference_data():
                raise
        return await handle_inbound(self, envelope, principal)


async def _page(
    coll: Any, query: dict[str, Any], limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page in `_id` order, and the cursor of the next one (None on the last page)."""
    if cursor:
        query = {**query, "_id": {"$gt": cursor}}
    docs = await coll.find(query).sort("_id", 1).to_list(limit + 1)
    more = len(docs) > limit
    docs = docs[:limit]
    return docs, (docs[-1]["_id"] if more else None)


def _same_content(activity: Activity, fields: ActivityFields) -> bool:
    return (
        ActivityFields.model_validate(activity.model_dump(include=set(ActivityFields.model_fields)))
        == fields
    )


def _report_doc(report: Report, contents: list[bytes | None]) -> dict[str, Any]:
    d = report.model_dump(mode="json", exclude={"received_at", "due_at"})
    d["received_at"] = report.received_at
    d["due_at"] = report.due_at
    for a, content in zip(d["attachments"], contents, strict=True):
        if content is not None:
            a["content"] = content
    return d
