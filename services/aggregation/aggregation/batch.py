"""One batch of events through the pure core: from the stored documents it touches to the
whole documents it writes. No I/O here: the service loads and writes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from lhpn_shared.broker import TOPOLOGY, Reject, describe_validation_error
from lhpn_shared.contracts.activities import Activity
from lhpn_shared.contracts.cases import CaseFacts
from lhpn_shared.contracts.events import ActivityVoided, Envelope, parse_data
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.reports import Report
from lhpn_shared.contracts.units import Unit
from lhpn_shared.mongo import Doc
from lhpn_shared.trust import EventOwners

from .domain.facts import (
    ActivityDelta,
    ActivityState,
    CaseDelta,
    CaseState,
    Departed,
    ReportState,
    latest,
    on_activity_departed,
    on_activity_recorded,
    on_activity_voided,
    on_case_departed,
    on_case_event,
    on_report_submitted,
)
from .repository import (
    report_doc_id,
    state_doc,
)

EVENTS_QUEUE = "aggregation.events"
CONSUMED_KEYS: tuple[str, ...] = TOPOLOGY[EVENTS_QUEUE].routing_keys
"""The routing keys bound to the service's queue (the system's topology, `lhpn_shared`)."""
DEPARTED = "aggregation.departed"
"""The type of the router's internal event (`Departed`, version 1): sent only to a partition's
queue by the service's own router, never accepted from `lhpn.events`."""
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Event:
    envelope: Envelope
    data: BaseModel
    body: str
    """the message as received, archived for `rebuild`"""


def parse_event(body: bytes, *, publisher: str | None, owners: EventOwners | None) -> Event:
    """An event the service consumes, or `Reject` with the reason (dead-lettered).

    `owners`: accept the event only when `publisher` (the delivery's AMQP `user_id`) is its
    owning service's broker user; None only for events admitted by that check already (the
    archive, the router's parked events and what the router sends to a partition), which alone
    may also be the router's own `aggregation.departed`."""
    try:
        envelope = Envelope.model_validate_json(body)
    except ValidationError as exc:
        raise Reject(f"invalid envelope: {describe_validation_error(exc)}") from exc
    if owners is None and (envelope.type, envelope.version) == (DEPARTED, 1):
        try:
            departed = Departed.model_validate(envelope.data)
        except ValidationError as exc:
            raise Reject(f"invalid data: {describe_validation_error(exc)}") from exc
        return Event(envelope, departed, body.decode("utf-8"))
    if owners is not None and (reason := owners.refusal(envelope.type, publisher)) is not None:
        raise Reject(reason)
    if envelope.routing_key not in CONSUMED_KEYS:
        raise Reject(f"aggregation does not consume {envelope.routing_key}")
    try:
        data = parse_data(envelope)
    except ValidationError as exc:
        raise Reject(f"invalid data: {describe_validation_error(exc)}") from exc
    return Event(envelope, data, body.decode("utf-8"))


def state_key(data: BaseModel) -> tuple[str, str]:
    """(collection, `_id`) of the state an event's data updates."""
    if isinstance(data, Unit):
        return "units", data.unit_id
    if isinstance(data, Plan):
        return "plans", data.plan_id
    if isinstance(data, Activity | ActivityVoided):
        return "activities", str(data.activity_id)
    if isinstance(data, Report):
        return "reports", report_doc_id(data.unit_id, data.report_type, data.period)
    if isinstance(data, CaseFacts):
        return "cases", str(data.case_id)
    if isinstance(data, Departed):
        return data.entity, str(data.entity_id)
    raise TypeError(f"no state for {type(data).__name__}")


STATE_MODELS: dict[str, type[BaseModel]] = {
    "units": Unit,
    "plans": Plan,
    "activities": ActivityState,
    "reports": ReportState,
    "cases": CaseState,
}


def state_of(model: type[M], doc: Doc) -> M:
    return model.model_validate_json(doc["json"])


class Batch:
    """One batch run through the pure core, against the states it loaded."""

    def __init__(self, token: str, loaded: Mapping[str, Mapping[str, Doc]]) -> None:
        self.stored = {f"{name}/{i}" for name, docs in loaded.items() for i in docs}
        self.states: dict[str, dict[str, Any]] = {
            name: {i: state_of(STATE_MODELS[name], d) for i, d in docs.items()}
            for name, docs in loaded.items()
        }
        self.original: dict[str, dict[str, Any]] = {name: {} for name in STATE_MODELS}
        """the stored state (or None) of every state the batch changed, as it was loaded"""
        self.changed: dict[str, set[str]] = {name: set() for name in STATE_MODELS}
        self.activity_deltas: list[ActivityDelta] = []
        self.case_deltas: list[CaseDelta] = []
        self.token = token

    def apply(self, data: BaseModel) -> bool:
        name, doc_id = state_key(data)
        stored = self.states[name].get(doc_id)
        new: Any
        if isinstance(data, Unit | Plan):
            new = latest(stored, data)
            changed = new is not stored
        elif isinstance(data, Activity | ActivityVoided):
            if isinstance(data, Activity):
                activity = on_activity_recorded(stored, data)
            else:
                activity = on_activity_voided(stored, data)
            new, changed = activity.state, activity.changed
            self.activity_deltas += activity.deltas
        elif isinstance(data, Report):
            report = on_report_submitted(stored, data)
            new, changed = report.state, report.changed
        elif isinstance(data, Departed):
            if data.entity == "activities":
                activity = on_activity_departed(stored, data)
                new, changed = activity.state, activity.changed
                self.activity_deltas += activity.deltas
            else:
                departed = on_case_departed(stored, data)
                new, changed = departed.state, departed.changed
                self.case_deltas += departed.deltas
        else:
            assert isinstance(data, CaseFacts)
            case = on_case_event(stored, data)
            new, changed = case.state, case.changed
            self.case_deltas += case.deltas
        if changed:
            if doc_id not in self.changed[name]:
                self.original[name][doc_id] = stored
            self.states[name][doc_id] = new
            self.changed[name].add(doc_id)
        return changed

    def state_writes(self) -> dict[str, dict[str, Doc]]:
        """The changed states as whole documents, by collection."""
        return {
            name: {i: state_doc(i, self.states[name][i].model_dump_json()) for i in sorted(ids)}
            for name, ids in self.changed.items()
        }

    def unit_changes(self) -> dict[str, tuple[Unit | None, Unit]]:
        """unit_id → (the unit before the batch, after it), for every unit the batch changed."""
        return {
            i: (self.original["units"][i], self.states["units"][i]) for i in self.changed["units"]
        }

    def plan_changes(self) -> dict[str, tuple[Plan | None, Plan]]:
        return {
            i: (self.original["plans"][i], self.states["plans"][i]) for i in self.changed["plans"]
        }

    def report_changes(self) -> dict[str, tuple[ReportState | None, ReportState]]:
        return {
            i: (self.original["reports"][i], self.states["reports"][i])
            for i in self.changed["reports"]
        }

    def changed_units(self) -> list[Unit]:
        return [self.states["units"][i] for i in self.changed["units"]]

    def changed_plans(self) -> list[Plan]:
        return [self.states["plans"][i] for i in self.changed["plans"]]
