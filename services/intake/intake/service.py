"""Intake's use cases behind one facade. The same functions serve HTTP (`api.py`), the inbound
AMQP queue (`app.py`) and the tests.

Each concern is its own module; this class only binds their functions to one context:
- `plans`: units stored one at a time and plans published (a unit's changes over time:
  `units.reorganise`);
- `activities`: activities recorded, corrected, voided, read and listed;
- `reports`: reports submitted and resubmitted, read and listed;
- `inbound`: the events other systems send, stored through the same functions;
- `context` (dependencies, cached units and plans, events, write checks, audit records).
"""

from __future__ import annotations

from lhpn_shared.broker import Reject
from lhpn_shared.contracts.events import Envelope
from lhpn_shared.principal import Principal

from . import activities, plans, reports
from .context import IntakeContext
from .inbound import handle_inbound


class Intake(IntakeContext):
    """Units, plans, activities and reports. Each use case is its module's function, taking
    the context as its first argument, bound here as a method so that its signature is
    written once."""

    upsert_unit = plans.upsert_unit
    publish_plan = plans.publish_plan

    get_activity = activities.get_activity
    record_activity = activities.record_activity
    correct_activity = activities.correct_activity
    void_activity = activities.void_activity
    list_activities = activities.list_activities

    get_report = reports.get_report
    submit_report = reports.submit_report
    list_reports = reports.list_reports

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
