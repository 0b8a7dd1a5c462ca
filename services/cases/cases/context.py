"""What every cases use case shares: its dependencies, the clock, the unit tree, loading a case,
deciding who holds it, and the audit record of what was done to it.

Access to personal data is decided in the use cases, not in the routes, so that no entry point
(HTTP, `lhpn.inbound`, the tests) can read it without the check and the audit record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, NoReturn
from uuid import UUID

from pydantic import BaseModel

from lhpn_shared.audit import AuditLog
from lhpn_shared.auth import Principal
from lhpn_shared.clock import LOCAL_TZ, Clock, to_millis
from lhpn_shared.contracts.events import Envelope, make_event
from lhpn_shared.contracts.units import UnitTree
from lhpn_shared.http import FieldProblem
from lhpn_shared.mongo import Doc

from .adapters.crypto import FieldCipher
from .domain.access import Access
from .domain.deadlines import Deadline, DeadlineConfig, compute_deadlines
from .domain.holidays import HolidayCalendar
from .domain.succession import case_access_on, sees_personal_data_on
from .domain.workflow import CaseState
from .errors import Forbidden, NotFound, refusal
from .repository import CasesStore, StoredCase, case_from_doc
from .sealing import CaseSealer
from .units import UnitCopy

log = logging.getLogger("cases")

SOURCE = "cases"


class CaseContext:
    """The dependencies of the use cases (`opening`, `reading`, `changes`, `inbound`) and the
    steps they have in common."""

    def __init__(
        self,
        store: CasesStore,
        cipher: FieldCipher,
        clock: Clock,
        *,
        units: UnitCopy,
        holidays: HolidayCalendar,
        deadline_config: DeadlineConfig,
        wake_relay: Callable[[], None],
    ) -> None:
        self.store = store
        self.clock = clock
        self.units = units
        self.sealer = CaseSealer(cipher)
        self.holidays = holidays
        self.config = deadline_config
        self.wake = wake_relay
        self.audit_log = AuditLog(store.audit, clock)

    def now(self) -> datetime:
        return to_millis(self.clock.now().astimezone(UTC))

    def today(self) -> date:
        return self.now().astimezone(LOCAL_TZ).date()

    async def tree(self) -> UnitTree:
        return await self.units.tree()

    async def tree_with(self, unit_id: str) -> UnitTree:
        return await self.units.tree_with(unit_id)

    async def load(self, case_id: UUID) -> StoredCase:
        doc = await self.store.cases.find_one({"_id": str(case_id)})
        if doc is None:
            raise NotFound(f"Không tìm thấy hồ sơ {case_id}.")
        return case_from_doc(doc)

    # ---- who holds a case ---------------------------------------------------------------------

    async def require_holder(self, caller: Principal, case: StoredCase, action: str) -> None:
        """Only staff of a union holding the case (its own, or one it is referred up to) handle
        it: they see its personal data."""
        access = case_access_on(caller, case.unit_id, await self.tree(), self.today())
        if access is not Access.personal or not self.sees(caller, case):
            await self.refuse(caller, case, action, access)

    async def refuse(
        self, caller: Principal, case: StoredCase, action: str, access: Access
    ) -> NoReturn:
        await self.audit(caller, action, case.case_id, case.unit_id, outcome="refused")
        log.warning(
            "case access refused",
            extra={"case_id": str(case.case_id), "actor": caller.subject, "action": action},
        )
        raise Forbidden(refusal(caller, case.unit_id, access, listing=False))

    def sees(self, caller: Principal, case: StoredCase) -> bool:
        """Whether `caller` sees the case's personal data today (the last tree loaded: every
        use case loads it before answering)."""
        return sees_personal_data_on(
            caller, case.unit_id, case.state, self.units.last, self.today()
        )

    async def audit(
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
        (the service's audit log, `lhpn_shared.audit`): stored now, for a read or a refusal."""
        await self.audit_log.record(
            caller,
            f"cases.{action}",
            entity_type="case",
            entity_id=case_id,
            unit_id=unit_id,
            outcome=outcome,
            personal_data=personal_data,
        )

    def audit_entry(
        self,
        caller: Principal,
        action: str,
        case_id: UUID,
        unit_id: str,
        *,
        personal_data: bool = False,
    ) -> Doc:
        """The same record for a write, stored inside the write (`with_outbox`, `outbox_fields`)
        and moved to the audit log by the outbox relay."""
        return self.audit_log.entry(
            caller,
            f"cases.{action}",
            entity_type="case",
            entity_id=case_id,
            unit_id=unit_id,
            personal_data=personal_data,
        )

    # ---- the facts of a case ------------------------------------------------------------------

    def check_unit_on(self, tree: UnitTree, unit_id: str, received_on: date) -> None:
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

    def deadlines(self, state: CaseState) -> tuple[Deadline, ...]:
        return tuple(compute_deadlines(state, self.config, self.holidays))

    def event(self, event_type: str, data: BaseModel, unit_id: str, **kw: Any) -> Envelope:
        kw.setdefault("source", SOURCE)
        return make_event(event_type, data, occurred_at=self.now(), unit_id=unit_id, **kw)
