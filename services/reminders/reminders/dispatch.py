"""Deliveries (SPEC §7): send each claimed send on its channels, retry with backoff, log it.

A send in the send log holds one delivery per channel, each `pending` → `sent`, or
`retrying` (with `next_attempt_at`) → … → `failed`. Whoever sends holds a lease on the send
document: the sweep that claimed it, or the delivery worker for what is due again. Each final
outcome writes `notification.sent` / `notification.failed` in the same document update.

A lease is taken for a whole batch (a sweep may claim thousands of sends), but it must hold
while each send is attempted: right before attempting one, its holder renews its lease, and
only if it still holds it (`_hold`); the worker takes a send only once its lease has ended.
So a batch that outlives its lease — a big catch-up sweep, a slow mail server — never has one
of its sends delivered by two processes: the fault suite found 261 reminders sent twice that
way (the sweep went on sending what the worker had taken after the lease ended).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import httpx
from jinja2 import Environment
from pydantic import TypeAdapter

from lhpn_shared.clock import ensure_aware
from lhpn_shared.contracts.events import Envelope, NotificationFacts, make_event
from lhpn_shared.mongo import Doc
from lhpn_shared.outbox import with_outbox

from .contacts import Contacts
from .context import SOURCE, event_id
from .delivery.email import SmtpConfig, send_email
from .delivery.errors import DeliveryError
from .delivery.render import RenderContext, render_message
from .delivery.retry import RetryPolicy
from .delivery.webhook import post_webhook, reminder_payload
from .domain.messages import PlannedMessage
from .repository import NEVER, OPEN_DELIVERY, DeliveryStatus, optional_instant
from .service import Reminders

log = logging.getLogger("reminders.dispatch")

MESSAGE: TypeAdapter[PlannedMessage] = TypeAdapter(PlannedMessage)
FINAL = (DeliveryStatus.sent.value, DeliveryStatus.failed.value)


def notification_id(send_id: str, channel: str) -> str:
    return f"{send_id}:{channel}"


def notification_event(send: Doc, channel: str, entry: Doc, now: datetime) -> Envelope:
    """`notification.sent` or `notification.failed` for one channel of a send."""
    nid = notification_id(send["_id"], channel)
    facts = NotificationFacts(
        notification_id=nid,
        unit_id=send["recipient_unit_id"],
        channel=channel,
        step=send["step"],
        subject_ref=send["subject_ref"],
        status=entry["status"],
        attempts=entry["attempts"],
        last_error=entry["last_error"],
    )
    sent = entry["status"] == DeliveryStatus.sent
    return make_event(
        "notification.sent" if sent else "notification.failed",
        facts,
        source=SOURCE,
        occurred_at=now,
        unit_id=send["recipient_unit_id"],
        event_id=event_id(nid, entry["status"]),
    )


@dataclass(frozen=True)
class DeliveryOptions:
    smtp: SmtpConfig
    portal_url: str
    retry: RetryPolicy
    lease: timedelta
    concurrency: int = 10
    batch: int = 200


class Dispatcher:
    def __init__(
        self,
        reminders: Reminders,
        options: DeliveryOptions,
        http: httpx.AsyncClient,
        templates: Environment,
        on_outcome: Callable[[str, str], None] | None = None,
    ) -> None:
        """`on_outcome(channel, status)`: called once per delivery that ends `sent` or
        `failed` (the service counts them for `/metrics`)."""
        self.reminders = reminders
        self.options = options
        self.http = http
        self.templates = templates
        self.on_outcome = on_outcome or (lambda _channel, _status: None)
        self.stopping = False
        """shutting down: no delivery is started any more (`stop`)"""

    def stop(self) -> None:
        """The deliveries in progress finish and are recorded; a send not started yet is
        released at once (not left leased for `DELIVERY_LEASE_SECONDS`), so the next process —
        or another replica — delivers it."""
        self.stopping = True

    async def deliver_due(self) -> int:
        """One pass of the delivery worker: take the sends with a delivery due whose lease
        has expired (a retry, or a sweep that died), and deliver them. Returns how many."""
        now = self.reminders.now()
        send_log = self.reminders.store.send_log
        due: Doc = {"next_attempt_at": {"$lte": now}, "lease_until": {"$lte": now}}
        candidates = (
            await send_log.find(due, {"outbox": 0})
            .sort("next_attempt_at", 1)
            .to_list(self.options.batch)
        )
        lease_id = uuid.uuid4().hex
        taken: list[Doc] = []
        for send in candidates:
            # compare-and-swap on the version read (another worker's take or release changed
            # it), and only while the lease is still over (its holder renews it before sending)
            result = await send_log.update_one(
                {
                    "_id": send["_id"],
                    "lease_id": send.get("lease_id"),
                    "lease_until": {"$lte": now},
                },
                {"$set": {"lease_id": lease_id, "lease_until": now + self.options.lease}},
            )
            if result.modified_count:
                taken.append({**send, "lease_id": lease_id})
        if taken:
            await self.deliver(taken, lease_id)
        return len(taken)

    async def deliver(self, sends: list[Doc], lease_id: str) -> list[Doc]:
        """Attempt every due delivery of `sends` (held under `lease_id`); returns them updated.
        A send whose attempt crashed stays leased: the worker takes it when the lease ends."""
        if not sends:
            return []
        await self.reminders.current_reference_data()  # names and titles as stored now
        secrets = await self.reminders.contacts_of(
            s["recipient_unit_id"] for s in sends if "webhook" in s["deliveries"]
        )
        context = RenderContext(
            env=self.templates,
            portal_url=self.options.portal_url,
            units=self.reminders.tree,
            report_titles=self.reminders.report_titles(),
            as_of=self.reminders.now(),
        )
        gate = asyncio.Semaphore(self.options.concurrency)

        async def one(send: Doc) -> Doc:
            async with gate:
                if self.stopping:
                    return await self._release(send, lease_id)
                try:
                    if not await self._hold(send, lease_id):
                        return send  # its lease ended and another worker took it
                    return await self._deliver_one(send, lease_id, context, secrets)
                except Exception:
                    log.exception("delivery crashed", extra={"send_id": send["_id"]})
                    return send

        return list(await asyncio.gather(*(one(s) for s in sends)))

    async def _hold(self, send: Doc, lease_id: str) -> bool:
        """Renew our lease on `send` for one attempt; False when we no longer hold it."""
        result = await self.reminders.store.send_log.update_one(
            {"_id": send["_id"], "lease_id": lease_id},
            {"$set": {"lease_until": self.reminders.now() + self.options.lease}},
        )
        if result.matched_count == 0:
            log.warning("send taken by another worker", extra={"send_id": send["_id"]})
            return False
        return True

    async def _release(self, send: Doc, lease_id: str) -> Doc:
        """Give back a send taken but not attempted (shutdown): due again at once."""
        fields = {"lease_id": uuid.uuid4().hex, "lease_until": self.reminders.now()}
        try:
            await self.reminders.store.send_log.update_one(
                {"_id": send["_id"], "lease_id": lease_id}, {"$set": fields}
            )
        except Exception as exc:  # its lease ends by itself
            log.warning("send not released", extra={"send_id": send["_id"], "error": repr(exc)})
        return {**send, **fields}

    async def _deliver_one(
        self, send: Doc, lease_id: str, context: RenderContext, secrets: dict[str, Contacts]
    ) -> Doc:
        now = self.reminders.now()
        message = MESSAGE.validate_python(send["message"])
        as_of = optional_instant(send, "as_of") or now
        # the message reads as of its sweep ("đã trễ 5 ngày" stays true when retried later)
        subject, body = render_message(message, replace(context, as_of=as_of))
        deliveries: dict[str, Doc] = dict(send["deliveries"])
        changes: Doc = {}
        events: list[Envelope] = []
        outcomes: list[tuple[str, str]] = []
        for channel, entry in send["deliveries"].items():
            due_at = optional_instant(entry, "next_attempt_at")
            if entry["status"] not in OPEN_DELIVERY or due_at is None or due_at > now:
                continue
            updated = await self._attempt(
                channel, entry, send, message, subject, body, secrets, now
            )
            deliveries[channel] = changes[f"deliveries.{channel}"] = updated
            if updated["status"] in FINAL:
                events.append(notification_event(send, channel, updated, now))
                outcomes.append((channel, updated["status"]))
        pending = [
            ensure_aware(e["next_attempt_at"])
            for e in deliveries.values()
            if e["status"] in OPEN_DELIVERY
        ]
        fields = {
            **changes,
            "next_attempt_at": min(pending, default=None),
            "lease_id": uuid.uuid4().hex,  # released: a new version
            "lease_until": NEVER,
        }
        update: dict[str, Any] = {"$set": fields}
        if events:
            update = with_outbox(update, events)
        result = await self.reminders.store.send_log.update_one(
            {"_id": send["_id"], "lease_id": lease_id}, update
        )
        if result.matched_count == 0:
            log.warning("lease lost while delivering", extra={"send_id": send["_id"]})
        else:
            for channel, status in outcomes:
                self.on_outcome(channel, status)
        if events:
            self.reminders.wake_relay()
        return {**send, **fields, "deliveries": deliveries}

    async def _attempt(
        self,
        channel: str,
        entry: Doc,
        send: Doc,
        message: PlannedMessage,
        subject: str,
        body: str,
        secrets: dict[str, Contacts],
        now: datetime,
    ) -> Doc:
        attempts = int(entry["attempts"]) + 1
        nid = notification_id(send["_id"], channel)
        try:
            if channel == "email":
                await send_email(
                    self.options.smtp,
                    to=entry["to"],
                    subject=subject,
                    body=body,
                    sent_at=now,
                    headers={
                        "X-LHPN-Notification-Id": nid,
                        "X-LHPN-Step": send["step"],
                        "X-LHPN-Subject-Ref": send["subject_ref"],
                    },
                )
            elif channel == "webhook":
                contact = secrets.get(send["recipient_unit_id"])
                if contact is None or not contact.webhook_secret:
                    raise DeliveryError("webhook không còn được cấu hình", retryable=False)
                payload = {**reminder_payload(message, subject, body), "notification_id": nid}
                await post_webhook(
                    self.http,
                    entry["url"],
                    payload,
                    secret=contact.webhook_secret,
                    sent_at=now,
                    guard=self.reminders.guard,
                )
            else:
                raise DeliveryError(f"unknown channel {channel}", retryable=False)
        except DeliveryError as exc:
            retry_at = self.options.retry.next_attempt_at(attempts, now) if exc.retryable else None
            log.warning(
                "delivery failed",
                extra={"notification_id": nid, "attempts": attempts, "error": exc.reason[:300]},
            )
            return {
                **entry,
                "attempts": attempts,
                "last_error": exc.reason[:1000],
                "status": (DeliveryStatus.retrying if retry_at else DeliveryStatus.failed).value,
                "next_attempt_at": retry_at,
            }
        return {
            **entry,
            "attempts": attempts,
            "status": DeliveryStatus.sent.value,
            "next_attempt_at": None,
            "sent_at": now,
        }
