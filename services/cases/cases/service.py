"""The cases service's use cases behind one facade. The same functions serve HTTP (`api.py`),
the AMQP queues (`app.py`) and the tests.

Each concern is its own module; this class only wires them to one `CaseContext`:
- `units`: the copy of the unit tree (`unit.upserted`, queue `cases.events`);
- `opening`: opening a case; `inbound`: the cases other systems announce on `lhpn.inbound`;
- `reading`: reading one case and listing a unit's cases, as far as the caller may see them;
- `changes`: transitions, extensions, referring up and handing back down;
- `context` (loading, holder checks, audit), `views` (what a caller sees), `errors`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from lhpn_shared.audit import AuditLog
from lhpn_shared.auth import Principal
from lhpn_shared.clock import Clock
from lhpn_shared.contracts.events import Envelope
from lhpn_shared.contracts.units import Unit, UnitTree

from . import changes, inbound, opening, reading
from .adapters.crypto import FieldCipher
from .context import CaseContext
from .domain.deadlines import DeadlineConfig
from .domain.holidays import HolidayCalendar
from .models import (
    CaseListItem,
    CaseOut,
    ExtensionRequest,
    NewCase,
    ReferralUpRequest,
    TransitionRequest,
)
from .reading import CaseFilter
from .repository import CasesStore
from .units import UnitCopy


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
        self.units = UnitCopy(store.units, units_refresh_seconds)
        self._ctx = CaseContext(
            store,
            cipher,
            clock,
            units=self.units,
            holidays=holidays,
            deadline_config=deadline_config,
            wake_relay=wake_relay,
        )
        self.audit: AuditLog = self._ctx.audit_log

    def now(self) -> datetime:
        return self._ctx.now()

    # ---- the unit tree, from `unit.upserted` ------------------------------------------------

    async def tree(self) -> UnitTree:
        return await self.units.tree()

    async def tree_with(self, unit_id: str) -> UnitTree:
        return await self.units.tree_with(unit_id)

    async def apply_unit(self, unit: Unit) -> bool:
        return await self.units.apply_unit(unit)

    async def handle_event(self, envelope: Envelope, publisher: Principal) -> str:
        return await self.units.handle_event(envelope, publisher)

    # ---- cases ------------------------------------------------------------------------------

    async def open_case(self, new: NewCase, caller: Principal) -> tuple[CaseOut, bool]:
        return await opening.open_case(self._ctx, new, caller)

    async def handle_inbound(self, envelope: Envelope, principal: Principal) -> str:
        return await inbound.handle_inbound(self._ctx, envelope, principal)

    async def read_case(self, case_id: UUID, caller: Principal) -> CaseOut:
        return await reading.read_case(self._ctx, case_id, caller)

    async def list_cases(
        self, caller: Principal, flt: CaseFilter
    ) -> tuple[list[CaseListItem], str | None]:
        return await reading.list_cases(self._ctx, caller, flt)

    async def transition(self, case_id: UUID, req: TransitionRequest, caller: Principal) -> CaseOut:
        return await changes.transition(self._ctx, case_id, req, caller)

    async def extend(self, case_id: UUID, req: ExtensionRequest, caller: Principal) -> CaseOut:
        return await changes.extend(self._ctx, case_id, req, caller)

    async def refer_up(self, case_id: UUID, req: ReferralUpRequest, caller: Principal) -> CaseOut:
        return await changes.refer_up(self._ctx, case_id, req, caller)

    async def return_down(
        self, case_id: UUID, req: ReferralUpRequest, caller: Principal
    ) -> CaseOut:
        return await changes.return_down(self._ctx, case_id, req, caller)
