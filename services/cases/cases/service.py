"""The cases service's use cases. The same functions serve HTTP, the AMQP queues and the tests.

Every change of a case is one document write carrying its events in the document's outbox
(`lhpn_shared.outbox`); the relay publishes them. Access to personal data is decided here, not
in the routes, so that no entry point can read it without the check and the audit record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, NoReturn, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel
from pymongo.errors import DuplicateKeyError

from lhpn_shared.access import WRITE, AccessDenied, require_event, require_unit
from lhpn_shared.audit import AuditLog
from lhpn_shared.auth import Principal, Role
from lhpn_shared.broker import Reject
from lhpn_shared.clock import LOCAL_TZ, Clock, to_millis
from lhpn_shared.contracts.cases import (
    CaseFacts,
    CaseKind,
    CaseStatus,
    CaseStatusChange,
    CaseTopic,
)
from lhpn_shared.contracts.events import Envelope, make_event, parse_data
from lhpn_shared.contracts.units import Unit, UnitTree
from lhpn_shared.http import FieldProblem
from lhpn_shared.idempotency import upsert_if_newer
from lhpn_shared.outbox import outbox_fields, with_outbox

from .adapters.crypto import FieldCipher
from .domain.access import Access, case_access
from .domain.deadlines import Deadline, DeadlineConfig, compute_deadlines, is_overdue
from .domain.entry import opening_instant
from .domain.flags import normalise_flags
from .domain.holidays import HolidayCalendar
from .domain.succession import (
    case_access_on,
    case_scope,
    holding_unit,
    sees_personal_data_on,
    succession_notice,
)
from .domain.visibility import refer_up, return_down, withheld_notice
from .domain.workflow import (
    CaseState,
    InvalidDetails,
    allowed_targets,
    apply_transition,
    grant_extension,
    label,
    open_case,
)
from .models import (
    CaseFields,
    CaseListItem,
    CaseOut,
    ExtensionRequest,
    NewCase,
    ReferralUpRequest,
    TransitionRequest,
)
from .repository import (
    CasesStore,
    StoredCase,
    case_from_doc,
    case_to_doc,
    deadlines_to_doc,
    entry_to_doc,
    state_to_doc,
    unit_from_doc,
    unit_to_doc,
)
from .sealing import CaseSealer

log = logging.getLogger("cases")

SOURCE = "cases"
T = TypeVar("T")
_STATUS_ORDER = list(CaseStatus)
_INBOUND_FIELDS = {
    "unit_id",
    "kind",
    "topic",
    "channel",
    "received_on",
    "flags",
    "complex",
    "remote_area",
}


class NotFound(Exception):
    pass


class Forbidden(Exception):
    pass


class Conflict(Exception):
    pass


@dataclass(frozen=True)
class CaseFilter:
    unit_id: str | None = None
    kind: CaseKind | None = None
    topic: CaseTopic | None = None
    status: CaseStatus | None = None
    overdue: bool | None = None
    received_from: date | None = None
    received_to: date | None = None
    limit: int = 100
    cursor: str | None = None


class Cases:
    def __init__(
        self,
        store: CasesStore,
        cipher: FieldCipher,
        clock: Clock,
        *,
        holidays: HolidayCalendar,
        deadline_config: DeadlineConfig,
        wake_relay: Callable[[], None],
        units_refresh_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self._sealer = CaseSealer(cipher)
        self._holidays = holidays
        self._config = deadline_config
        self._wake = wake_relay
        self._units_ttl = units_refresh_seconds
        self._tree: UnitTree | None = None
        self._tree_loaded = 0.0
        self.audit = AuditLog(store.audit, clock)

    def now(self) -> datetime:
        return to_millis(self.clock.now().astimezone(UTC))

    # ---- the unit tree, from `unit.upserted` ----------------------------------------------------

    async def tree(self) -> UnitTree:
        """The cached tree, reloaded when a unit changed here or after `units_refresh_seconds`
        (another instance may have applied the change)."""
        if self._tree is None or time.monotonic() - self._tree_loaded > self._units_ttl:
            units = [unit_from_doc(d) async for d in self.store.units.find({})]
            self._tree, self._tree_loaded = UnitTree(units), time.monotonic()
        return self._tree

    async def tree_with(self, unit_id: str) -> UnitTree:
        """The tree, reloaded once if `unit_id` is not in it (it may have just arrived)."""
        tree = await self.tree()
        if unit_id not in tree:
            self._tree = None
            tree = await self.tree()
        return tree

    async def apply_unit(self, unit: Unit) -> bool:
        """Keep our copy of a unit; an older or repeated revision changes nothing."""
        written = await upsert_if_newer(
            self.store.units, unit.unit_id, unit.revision, unit_to_doc(unit)
        )
        if written:
            self._tree = None
        return written

    async def handle_event(self, envelope: Envelope, publisher: Principal) -> str:
        """An event from `lhpn.events` (queue `cases.events`, admitted from its owning service):
        only `unit.upserted` is bound."""
        if envelope.type != "unit.upserted":
            raise Reject(f"cases does not consume {envelope.routing_key}")
        unit = parse_data(envelope)
        assert isinstance(unit, Unit)
        return "applied" if await self.apply_unit(unit) else "unchanged"

    # ---- opening a case ---------------------------------------------------------------------

    async def open_case(self, new: NewCase, caller: Principal) -> tuple[CaseOut, bool]:
        """Open a case; returns (case, created). The same `case_id` with the same content is a
        safe retry (the case as it is now); with other content it is a conflict."""
        tree = await self.tree_with(new.unit_id)
        if new.unit_id not in tree:
            raise FieldProblem([(("unit_id",), f"Không có đơn vị mã '{new.unit_id}'.")])
        self._check_unit_on(tree, new.unit_id, new.received_on)
        access = case_access_on(caller, new.unit_id, tree, self._today())
        system_without_personal_data = (
            caller.role is Role.system and access is Access.facts and not new.has_personal_data()
        )
        if access is not Access.personal and not system_without_personal_data:
            await self._audit(caller, "open", new.case_id, new.unit_id, outcome="refused")
            raise Forbidden(_refusal(caller, new.unit_id, access, listing=False))
        fields = CaseFields.model_validate(new.model_dump(exclude={"case_id"}))
        case, created = await self._create(fields, new.case_id or uuid4(), actor=caller.subject)
        personal = self._sees(caller, case)
        await self._audit(caller, "open", case.case_id, case.unit_id, personal_data=personal)
        return self._view(case, caller), created

    async def _create(
        self,
        fields: CaseFields,
        case_id: UUID,
        *,
        actor: str,
        event_id: UUID | None = None,
        source: str = SOURCE,
        correlation_id: str | None = None,
    ) -> tuple[StoredCase, bool]:
        now = self.now()
        state = _rules(
            lambda: open_case(
                kind=fields.kind,
                channel=fields.channel,
                received_on=fields.received_on,
                actor=actor,
                at=opening_instant(fields.received_on, now),
                complex=fields.complex,
                remote_area=fields.remote_area,
            )
        )
        case = StoredCase(
            case_id=case_id,
            unit_id=fields.unit_id,
            topic=fields.topic,
            flags=tuple(normalise_flags(fields.flags)),
            assigned_to=fields.assigned_to,
            state=state,
            deadlines=self._deadlines(state),
            sealed=self._sealer.seal_new(fields, case_id),
        )
        event = self._event(
            "case.opened",
            self._facts(case, now),
            case.unit_id,
            event_id=event_id,
            source=source,
            correlation_id=correlation_id,
        )
        case = replace(case, source_event_ids=(str(event.event_id),))
        try:
            await self.store.cases.insert_one({**case_to_doc(case), **outbox_fields([event])})
        except DuplicateKeyError:
            existing = await self._load(case_id)
            if self._same_content(existing, fields):
                return existing, False
            raise Conflict(f"Mã hồ sơ {case_id} đã được dùng cho một hồ sơ khác.") from None
        self._wake()
        log.info(
            "case opened",
            extra={"case_id": str(case_id), "unit_id": case.unit_id, "kind": fields.kind.value},
        )
        return case, True

    # ---- reading --------------------------------------------------------------------------------

    async def read_case(self, case_id: UUID, caller: Principal) -> CaseOut:
        """The case. Its personal data only for staff of the union that holds it (its own, and
        those it is referred up to: `domain.visibility`), and every such read leaves an audit
        record before anything is returned; anyone else allowed near the case gets the facts and
        a notice saying the personal data is hidden."""
        case = await self._load(case_id)
        access = case_access_on(caller, case.unit_id, await self.tree(), self._today())
        if access is Access.none:
            await self._refuse(caller, case, "read", access)
        view = self._view(case, caller)
        if view.personal_data:
            await self._audit(caller, "read", case.case_id, case.unit_id, personal_data=True)
        return view

    async def list_cases(
        self, caller: Principal, flt: CaseFilter
    ) -> tuple[list[CaseListItem], str | None]:
        """Cases of a unit's subtree, newest first, facts only (never personal data)."""
        tree = await self.tree()
        root = flt.unit_id or caller.unit_id
        query: dict[str, Any] = {}
        if root is not None:
            if root not in tree:
                raise NotFound(f"Không có đơn vị mã '{root}'.")
            access = case_access(caller, root, tree)
            if access is Access.none:
                raise Forbidden(_refusal(caller, root, access, listing=True))
            query["unit_id"] = {"$in": case_scope(root, tree, self._today())}
        elif not caller.is_admin:
            raise Forbidden(_refusal(caller, None, Access.none, listing=True))
        for name in ("kind", "topic", "status"):
            value = getattr(flt, name)
            if value is not None:
                query[name] = value.value
        if flt.received_from or flt.received_to:
            query["received_on"] = {
                **({"$gte": flt.received_from.isoformat()} if flt.received_from else {}),
                **({"$lte": flt.received_to.isoformat()} if flt.received_to else {}),
            }
        now = self.now()
        clauses: list[dict[str, Any]] = []
        if flt.overdue is True:
            query["next_due_at"] = {"$lte": now}  # overdue from the due instant on
        elif flt.overdue is False:
            clauses.append({"$or": [{"next_due_at": None}, {"next_due_at": {"$gt": now}}]})
        if flt.cursor:
            received_on, after_id = _parse_cursor(flt.cursor)
            clauses.append(
                {
                    "$or": [
                        {"received_on": {"$lt": received_on}},
                        {"received_on": received_on, "_id": {"$gt": after_id}},
                    ]
                }
            )
        if clauses:
            query["$and"] = clauses
        docs = (
            await self.store.cases.find(query)
            .sort([("received_on", -1), ("_id", 1)])
            .to_list(flt.limit + 1)
        )
        cases = [case_from_doc(d) for d in docs[: flt.limit]]
        more = len(docs) > flt.limit
        cursor = f"{cases[-1].state.received_on.isoformat()}|{cases[-1].case_id}" if more else None
        return [self._item(c, now) for c in cases], cursor

    # ---- changing -------------------------------------------------------------------------------

    async def transition(self, case_id: UUID, req: TransitionRequest, caller: Principal) -> CaseOut:
        """Move the case along its workflow (409 naming the allowed moves when it may not)."""
        case = await self._load(case_id)
        await self._require_holder(caller, case, "transition")
        at = self._at(req.at)
        state = _rules(
            lambda: apply_transition(
                case.state,
                req.to,
                actor=caller.subject,
                at=at,
                note=req.note,
                referral=req.referral,
            )
        )
        event_types = ["case.status_changed"] + (
            ["case.closed"] if state.status is CaseStatus.closed else []
        )
        changed = await self._save_change(case, state, event_types)
        await self._audit(caller, "transition", case.case_id, case.unit_id, personal_data=True)
        return self._view(changed, caller)

    async def extend(self, case_id: UUID, req: ExtensionRequest, caller: Principal) -> CaseOut:
        """Extend the resolve deadline once more (denunciations: twice by 30 days)."""
        case = await self._load(case_id)
        await self._require_holder(caller, case, "extend")
        at = self._at(req.at)
        rules = self._config.for_kind(case.state.kind)
        state = _rules(
            lambda: grant_extension(
                case.state,
                max_extensions=rules.max_extensions,
                actor=caller.subject,
                at=at,
                note=req.note,
            )
        )
        changed = await self._save_change(case, state, ["case.status_changed"])
        await self._audit(caller, "extend", case.case_id, case.unit_id, personal_data=True)
        return self._view(changed, caller)

    async def refer_up(self, case_id: UUID, req: ReferralUpRequest, caller: Principal) -> CaseOut:
        """Refer the case up to the parent of the union holding it: from then on the parent's
        staff see its personal data (SPEC §6). No event: no fact of the contract changes."""
        case = await self._load(case_id)
        await self._require_holder(caller, case, "refer_up")
        at = self._at(req.at)
        tree = await self.tree()
        state = _rules(
            lambda: refer_up(
                case.state,
                owner_unit_id=holding_unit(case.unit_id, tree, self._today(), caller.unit_id),
                by_unit_id=caller.unit_id,
                tree=tree,
                actor=caller.subject,
                at=at,
                note=req.note,
            )
        )
        changed = await self._save_change(case, state, [])
        await self._audit(caller, "refer_up", case.case_id, case.unit_id, personal_data=True)
        return self._view(changed, caller)

    async def return_down(
        self, case_id: UUID, req: ReferralUpRequest, caller: Principal
    ) -> CaseOut:
        """The union the case was referred up to hands it back; its staff no longer see the
        personal data (the answer already leaves it out)."""
        case = await self._load(case_id)
        await self._require_holder(caller, case, "return_down")
        at = self._at(req.at)
        tree = await self.tree()
        state = _rules(
            lambda: return_down(
                case.state,
                owner_unit_id=holding_unit(case.unit_id, tree, self._today(), caller.unit_id),
                by_unit_id=caller.unit_id,
                actor=caller.subject,
                at=at,
                note=req.note,
            )
        )
        changed = await self._save_change(case, state, [])
        await self._audit(caller, "return_down", case.case_id, case.unit_id, personal_data=True)
        return self._view(changed, caller)

    async def _save_change(
        self, case: StoredCase, state: CaseState, event_types: list[str]
    ) -> StoredCase:
        """One write: the new state, the timeline's new entry (`$push`: it only grows) with its
        note sealed, a new decline reason sealed, the deadlines and the events; refused if
        someone changed the case meanwhile."""
        index, entry = len(state.timeline) - 1, state.timeline[-1]
        note = self._sealer.seal_note(case.case_id, index, entry.note)
        sealed = replace(case.sealed, notes=(*case.sealed.notes, note))
        fields = state_to_doc(state)
        del fields["timeline"]
        if state.decline_reason is not None:  # read cases carry none: it was just given
            reason = self._sealer.seal_decline_reason(case.case_id, state.decline_reason)
            fields["sealed.decline_reason"] = reason
            sealed = replace(sealed, decline_reason=reason)
        bare = state.model_copy(
            update={
                "decline_reason": None,
                "timeline": (*state.timeline[:-1], entry.model_copy(update={"note": None})),
            }
        )
        changed = replace(case, state=bare, deadlines=self._deadlines(state), sealed=sealed)
        now = self.now()
        facts = self._facts(changed, now)
        change = CaseStatusChange(
            **dict(facts), from_status=case.state.status, changed_at=state.last_at
        )
        events = [self._event(t, change, changed.unit_id) for t in event_types]
        fields |= {
            "deadlines": deadlines_to_doc(changed.deadlines),
            "next_due_at": changed.next_due_at,
        }
        update = with_outbox({"$set": fields}, events) if events else {"$set": fields}
        update.setdefault("$push", {})["timeline"] = entry_to_doc(entry, note)
        result = await self.store.cases.update_one(
            {"_id": str(case.case_id), "revision": case.state.revision}, update
        )
        if result.matched_count == 0:
            raise Conflict("Hồ sơ vừa được người khác cập nhật, vui lòng tải lại rồi thử lại.")
        if events:
            self._wake()
        log.info(
            "case changed",
            extra={
                "case_id": str(case.case_id),
                "from_status": case.state.status.value,
                "status": state.status.value,
                "revision": state.revision,
            },
        )
        return changed

    # ---- inbound `case.opened` from other systems ---------------------------------------------

    async def handle_inbound(self, envelope: Envelope, principal: Principal) -> str:
        """Open the case another system (`principal`) announced, without personal data, and
        republish `case.opened`.

        Returns 'accepted' or 'duplicate'; raises `Reject` (→ dead-letter queue with the reason)
        for a message that can never be accepted: not `case.opened`, outside the sender's
        subtree or event types, or a `case_id` that is another case's. A requester field in
        `data` is refused by the contract itself (`CaseFacts` forbids unknown fields).
        """
        if (envelope.type, envelope.version) != ("case.opened", 1):
            raise Reject(f"cases does not accept {envelope.routing_key} on lhpn.inbound")
        try:
            require_event(principal, envelope.routing_key)
        except AccessDenied as exc:
            raise Reject(str(exc)) from exc
        facts = CaseFacts.model_validate(envelope.data)
        if facts.status is not CaseStatus.received:
            raise Reject(f"a new case must have status 'received', not '{facts.status.value}'")
        if envelope.unit_id is not None and envelope.unit_id != facts.unit_id:
            raise Reject("envelope unit_id and data.unit_id differ")
        if await self.store.cases.find_one(
            {"_id": str(facts.case_id), "source_event_ids": str(envelope.event_id)}, {"_id": 1}
        ):
            return "duplicate"
        tree = await self.tree_with(facts.unit_id)
        if facts.unit_id not in tree:
            raise Reject(f"unknown unit_id '{facts.unit_id}'")
        try:
            require_unit(principal, facts.unit_id, tree, WRITE)
            self._check_unit_on(tree, facts.unit_id, facts.received_on)
        except (AccessDenied, FieldProblem) as exc:
            raise Reject(str(exc)) from exc
        fields = CaseFields.model_validate(facts.model_dump(include=_INBOUND_FIELDS))
        try:
            case, created = await self._create(
                fields,
                facts.case_id,
                actor=principal.subject,
                event_id=envelope.event_id,
                source=envelope.source,
                correlation_id=envelope.correlation_id,
            )
        except (FieldProblem, Conflict) as exc:
            raise Reject(str(exc)) from exc
        if created:
            await self._audit(principal, "open", case.case_id, case.unit_id)
        return "accepted" if created else "duplicate"

    # ---- helpers ------------------------------------------------------------------------------

    async def _load(self, case_id: UUID) -> StoredCase:
        doc = await self.store.cases.find_one({"_id": str(case_id)})
        if doc is None:
            raise NotFound(f"Không tìm thấy hồ sơ {case_id}.")
        return case_from_doc(doc)

    async def _require_holder(self, caller: Principal, case: StoredCase, action: str) -> None:
        """Only staff of a union holding the case (its own, or one it is referred up to) handle
        it: they see its personal data."""
        access = case_access_on(caller, case.unit_id, await self.tree(), self._today())
        if access is not Access.personal or not self._sees(caller, case):
            await self._refuse(caller, case, action, access)

    async def _refuse(
        self, caller: Principal, case: StoredCase, action: str, access: Access
    ) -> NoReturn:
        await self._audit(caller, action, case.case_id, case.unit_id, outcome="refused")
        log.warning(
            "case access refused",
            extra={"case_id": str(case.case_id), "actor": caller.subject, "action": action},
        )
        raise Forbidden(_refusal(caller, case.unit_id, access, listing=False))

    async def _audit(
        self,
        caller: Principal,
        action: str,
        case_id: UUID | None,
        unit_id: str,
        *,
        personal_data: bool = False,
        outcome: str = "ok",
    ) -> None:
        """Who did what to which case, from where, and whether personal data was shown to them
        (the service's audit log, `lhpn_shared.audit`)."""
        await self.audit.record(
            caller,
            f"cases.{action}",
            entity_type="case",
            entity_id=case_id,
            unit_id=unit_id,
            outcome=outcome,
            personal_data=personal_data,
        )

    def _sees(self, caller: Principal, case: StoredCase) -> bool:
        """Whether `caller` sees the case's personal data today (the last tree loaded: every
        use case loads it before answering)."""
        tree = self._tree or UnitTree([])
        return sees_personal_data_on(caller, case.unit_id, case.state, tree, self._today())

    def _notice(self, caller: Principal, case: StoredCase) -> str:
        tree = self._tree or UnitTree([])
        moved = succession_notice(case.unit_id, tree, self._today())
        staff = caller.role not in (Role.admin, Role.system)
        return moved if moved and staff else withheld_notice(caller, case.unit_id, case.state)

    def _today(self) -> date:
        return self.now().astimezone(LOCAL_TZ).date()

    def _check_unit_on(self, tree: UnitTree, unit_id: str, received_on: date) -> None:
        """A case belongs to a unit that existed the day it was received."""
        unit = tree.units[unit_id]
        if not unit.valid_on(received_on):
            shown = f"{received_on:%d/%m/%Y}"
            raise FieldProblem(
                [
                    (
                        ("received_on",),
                        f"Đơn vị {unit.name} không tồn tại vào ngày tiếp nhận {shown}"
                        + (
                            f" (đã giải thể sau ngày {unit.valid_to:%d/%m/%Y}; hãy ghi hồ sơ "
                            "cho đơn vị kế thừa)."
                            if unit.valid_to is not None and unit.valid_to < received_on
                            else "."
                        ),
                    )
                ]
            )

    def _at(self, given: datetime | None) -> datetime:
        now = self.now()
        if given is None:
            return now
        at = to_millis(given.astimezone(UTC))
        if at > now:
            raise FieldProblem([(("at",), "Thời điểm không được ở tương lai.")])
        return at

    def _deadlines(self, state: CaseState) -> tuple[Deadline, ...]:
        return tuple(compute_deadlines(state, self._config, self._holidays))

    def _same_content(self, case: StoredCase, fields: CaseFields) -> bool:
        facts = (
            case.unit_id,
            case.state.kind,
            case.topic,
            case.state.channel,
            case.state.received_on,
            case.flags,
            case.state.complex,
            case.state.remote_area,
            case.assigned_to,
        )
        wanted = (
            fields.unit_id,
            fields.kind,
            fields.topic,
            fields.channel,
            fields.received_on,
            tuple(normalise_flags(fields.flags)),
            fields.complex,
            fields.remote_area,
            fields.assigned_to,
        )
        if facts != wanted:
            return False
        requester = (
            fields.requester if fields.requester and not fields.requester.is_empty() else None
        )
        return self._sealer.summary_and_requester(case) == (fields.summary, requester)

    def _facts(self, case: StoredCase, now: datetime) -> CaseFacts:
        s = case.state
        return CaseFacts(
            case_id=case.case_id,
            unit_id=case.unit_id,
            kind=s.kind,
            topic=case.topic,
            channel=s.channel,
            status=s.status,
            received_on=s.received_on,
            flags=[f.value for f in case.flags],
            complex=s.complex,
            remote_area=s.remote_area,
            deadlines=[d.to_contract() for d in case.deadlines],
            next_due_at=case.next_due_at,
            overdue=is_overdue(case.deadlines, now),
            revision=s.revision,
        )

    def _item(self, case: StoredCase, now: datetime) -> CaseListItem:
        return CaseListItem(
            **dict(self._facts(case, now)),
            assigned_to=case.assigned_to,
            status_label=label(case.state.status),
            status_at=case.state.status_at,
        )

    def _view(self, case: StoredCase, caller: Principal) -> CaseOut:
        """The case as `caller` may see it: with its personal data (summary, requester, notes,
        decline reason) for staff of a union holding it; otherwise without, and saying so."""
        s = case.state
        personal = self._sees(caller, case)
        opened = self._sealer.open(case) if personal else None
        timeline = [
            e.model_copy(update={"note": opened.notes[i] if opened else None})
            for i, e in enumerate(s.timeline)
        ]
        return CaseOut(
            **dict(self._item(case, self.now())),
            personal_data=personal,
            personal_data_notice=None if personal else self._notice(caller, case),
            summary=opened.summary if opened else None,
            requester=opened.requester if opened else None,
            timeline=timeline,
            decline_reason=opened.decline_reason if opened else None,
            referral=s.referral,
            referred_up_to=list(s.referred_up),
            extensions_granted=s.extensions_granted,
            allowed_transitions=sorted(allowed_targets(s), key=_STATUS_ORDER.index),
        )

    def _event(self, event_type: str, data: BaseModel, unit_id: str, **kw: Any) -> Envelope:
        kw.setdefault("source", SOURCE)
        return make_event(event_type, data, occurred_at=self.now(), unit_id=unit_id, **kw)


def _rules(change: Callable[[], T]) -> T:
    """Run a workflow rule; a wrong detail becomes a 422 naming the field."""
    try:
        return change()
    except InvalidDetails as exc:
        raise FieldProblem([((exc.field,), exc.message)]) from None


def _refusal(caller: Principal, unit_id: str | None, access: Access, *, listing: bool) -> str:
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


def _parse_cursor(cursor: str) -> tuple[str, str]:
    received_on, _, case_id = cursor.partition("|")
    try:
        return date.fromisoformat(received_on).isoformat(), str(UUID(case_id))
    except ValueError:
        raise FieldProblem([(("cursor",), "Con trỏ trang không hợp lệ.")]) from None
