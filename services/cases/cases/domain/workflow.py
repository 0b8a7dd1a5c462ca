"""The case workflow (SPEC §6) as a pure state machine.

    received ──> accepted (thụ lý) ──> in_progress ──> outcome ──> closed ──> in_progress (once)
        └──> declined (needs a reason) ──> closed

Outcomes: resolved, referred (needs body, date and reference number), mediation_succeeded,
mediation_failed, withdrawn.

Choices beyond the SPEC's diagram, each in `ALLOWED`:
- `received → withdrawn`: a requester may withdraw before the union has accepted (Luật Khiếu nại
  2011 art. 10 lets a complainant withdraw at any time).
- `received → referred`: forwarding a letter outside the union's remit to the competent body
  (chuyển đơn) is one of the two ways of handling a letter (forward or answer, SPEC §6); it does
  not need an acceptance first.
- `accepted → <outcome>`: a consultation answered at the first meeting need not pass through
  `in_progress`; deadlines read the acceptance date, so skipping it changes no deadline.
- `mediation_failed → referred`: when mediation fails, the mediators guide the parties to the
  competent body (Luật Hòa giải ở cơ sở 2013 art. 27), which is a referral.
- `declined → closed`, so that every case ends `closed`.
- `closed → in_progress` is the reopening, allowed once per case (`reopened_at`).

Referring a case *up* to the parent union (for its help, SPEC §6 "referred up") is not the
`referred` status, which sends the case *out* to a competent body: it changes no status and is
modelled in `domain.visibility` (`refer_up`, `return_down`), as timeline entries of their own.

Time is always given by the caller. A change dated before the last timeline entry is refused, so
the timeline stays in order.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from lhpn_shared.clock import LOCAL_TZ, ensure_aware
from lhpn_shared.contracts.cases import CaseChannel, CaseKind, CaseStatus

S = CaseStatus

STATUS_LABELS: dict[CaseStatus, str] = {
    S.received: "Đã tiếp nhận",
    S.accepted: "Đã thụ lý",
    S.declined: "Không thụ lý",
    S.in_progress: "Đang giải quyết",
    S.resolved: "Đã giải quyết",
    S.referred: "Đã chuyển cơ quan có thẩm quyền",
    S.mediation_succeeded: "Hòa giải thành",
    S.mediation_failed: "Hòa giải không thành",
    S.withdrawn: "Đã rút yêu cầu",
    S.closed: "Đã đóng",
}

OUTCOMES: frozenset[CaseStatus] = frozenset(
    {S.resolved, S.referred, S.mediation_succeeded, S.mediation_failed, S.withdrawn}
)

ALLOWED: dict[CaseStatus, frozenset[CaseStatus]] = {
    S.received: frozenset({S.accepted, S.declined, S.referred, S.withdrawn}),
    S.accepted: frozenset({S.in_progress, *OUTCOMES}),
    S.declined: frozenset({S.closed}),
    S.in_progress: OUTCOMES,
    S.resolved: frozenset({S.closed}),
    S.referred: frozenset({S.closed}),
    S.mediation_succeeded: frozenset({S.closed}),
    S.mediation_failed: frozenset({S.referred, S.closed}),
    S.withdrawn: frozenset({S.closed}),
    S.closed: frozenset({S.in_progress}),  # reopening, once
}
"""Where each status may go next; `allowed_targets(state)` also applies the reopen-once rule."""

_ORDER = {status: i for i, status in enumerate(CaseStatus)}


def label(status: CaseStatus) -> str:
    return STATUS_LABELS[status]


def _labels(statuses: frozenset[CaseStatus] | tuple[CaseStatus, ...]) -> str:
    return ", ".join(f"'{label(s)}'" for s in sorted(statuses, key=_ORDER.__getitem__))


# --- refusals -------------------------------------------------------------------------------


class CaseRuleError(ValueError):
    """A refused change; `message` is Vietnamese, for the union staff member who asked."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CaseConflict(CaseRuleError):
    """The request is well formed but the case's state forbids it (HTTP 409)."""


class InvalidDetails(CaseRuleError):
    """A detail of the request is missing or wrong (HTTP 422); `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidTransition(CaseConflict):
    """`to` is not reachable from the current status; `allowed` lists what is, in table order."""

    def __init__(
        self,
        from_status: CaseStatus,
        to_status: CaseStatus,
        allowed: frozenset[CaseStatus],
        reason: str | None = None,
    ) -> None:
        self.from_status = from_status
        self.to_status = to_status
        self.allowed: tuple[CaseStatus, ...] = tuple(sorted(allowed, key=_ORDER.__getitem__))
        options = (
            f"Được phép: {_labels(self.allowed)}."
            if allowed
            else "Không còn bước chuyển nào được phép."
        )
        message = (
            f"Không thể chuyển hồ sơ từ '{label(from_status)}' sang '{label(to_status)}'. "
            + (f"{reason} " if reason else "")
            + options
        )
        super().__init__(message)


class ExtensionRefused(CaseConflict):
    """A deadline extension the case's kind or state does not allow."""


# --- state ----------------------------------------------------------------------------------

NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
UtcDatetime = Annotated[datetime, AfterValidator(ensure_aware)]
"""An instant in UTC; a naive value (as Mongo returns by default) is read as UTC."""


class TimelineAction(StrEnum):
    opened = "opened"
    transition = "transition"
    reopened = "reopened"
    extended = "extended"
    referred_up = "referred_up"
    """Sent up to the parent union for its help (`domain.visibility`); the status stays."""
    returned_down = "returned_down"
    """Handed back by the union it was referred up to; the status stays."""


class TimelineEntry(BaseModel):
    """One line of the append-only timeline. An extension or a referral up keeps the status
    (from == to); a referral up or back names the union that holds the case after it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: TimelineAction
    actor: NonBlank
    at: UtcDatetime
    from_status: CaseStatus | None
    to_status: CaseStatus
    note: str | None = None
    to_unit_id: str | None = None


class Referral(BaseModel):
    """Where a case was sent: the competent body (court, police, legal-aid centre, UBND…), the
    date and the number of the forwarding document."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    body: NonBlank
    referred_on: date
    reference_number: NonBlank


class CaseState(BaseModel):
    """The part of a case the rules read and change; no personal data.

    Immutable: every change returns a new state with one more timeline entry and `revision`+1.
    `status_at` keeps, per status, the last instant the case entered it (all instants UTC).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: CaseKind
    channel: CaseChannel
    received_on: date
    complex: bool = False
    remote_area: bool = False
    status: CaseStatus = S.received
    status_at: dict[CaseStatus, UtcDatetime]
    timeline: tuple[TimelineEntry, ...] = Field(min_length=1)
    revision: int = Field(default=1, ge=1)
    reopened_at: UtcDatetime | None = None
    decline_reason: str | None = None
    referral: Referral | None = None
    extensions_granted: int = Field(default=0, ge=0)
    referred_up: tuple[str, ...] = ()
    """The unions above the case's own that it is referred up to, nearest first
    (`domain.visibility`): while listed, their staff see its personal data."""

    @property
    def last_at(self) -> datetime:
        return self.timeline[-1].at

    @property
    def accepted_on(self) -> date | None:
        """Local date of acceptance (thụ lý), from which resolve deadlines count."""
        at = self.status_at.get(S.accepted)
        return at.astimezone(LOCAL_TZ).date() if at else None

    @property
    def reopened_on(self) -> date | None:
        return self.reopened_at.astimezone(LOCAL_TZ).date() if self.reopened_at else None


def allowed_targets(state: CaseState) -> frozenset[CaseStatus]:
    if state.status is S.closed and state.reopened_at is not None:
        return frozenset()
    return ALLOWED[state.status]


# --- changes --------------------------------------------------------------------------------


def open_case(
    *,
    kind: CaseKind,
    channel: CaseChannel,
    received_on: date,
    actor: str,
    at: datetime,
    complex: bool = False,
    remote_area: bool = False,
    note: str | None = None,
) -> CaseState:
    """A new case in `received`, with its first timeline entry (revision 1)."""
    at = _utc(at)
    if received_on > at.astimezone(LOCAL_TZ).date():
        raise InvalidDetails("received_on", "Ngày tiếp nhận không thể sau ngày ghi nhận hồ sơ.")
    entry = _entry(TimelineAction.opened, actor, at, None, S.received, note)
    return CaseState(
        kind=kind,
        channel=channel,
        received_on=received_on,
        complex=complex,
        remote_area=remote_area,
        status_at={S.received: at},
        timeline=(entry,),
    )


def apply_transition(
    state: CaseState,
    to: CaseStatus,
    *,
    actor: str,
    at: datetime,
    note: str | None = None,
    referral: Referral | None = None,
) -> CaseState:
    """Move the case to `to`, or raise.

    Raises `InvalidTransition` (409) when `to` is not allowed from the current status (naming
    the allowed ones), and `InvalidDetails` (422) when `at` is naive or earlier than the last
    timeline entry, when declining without a note (the note is the reason), or when moving to
    `referred` without a `Referral` (or giving one for any other move).
    """
    to = CaseStatus(to)
    allowed = allowed_targets(state)
    if to not in allowed:
        reason = None
        if state.status is S.closed and state.reopened_at is not None:
            reason = "Hồ sơ đã được mở lại một lần, không thể mở lại lần nữa."
        raise InvalidTransition(state.status, to, allowed, reason)
    at = _after_last(state, at)
    note = _clean(note)
    changes: dict[str, Any] = {"status": to, "status_at": {**state.status_at, to: at}}
    if to is S.declined:
        if note is None:
            raise InvalidDetails("note", "Không thụ lý hồ sơ phải ghi rõ lý do.")
        changes["decline_reason"] = note
    if to is S.referred:
        if referral is None:
            raise InvalidDetails(
                "referral",
                "Chuyển hồ sơ phải ghi rõ cơ quan tiếp nhận, ngày chuyển và số văn bản chuyển.",
            )
        changes["referral"] = referral
    elif referral is not None:
        raise InvalidDetails("referral", "Chỉ ghi thông tin chuyển khi chuyển hồ sơ.")
    action = TimelineAction.transition
    if state.status is S.closed:
        action = TimelineAction.reopened
        changes["reopened_at"] = at
    return _record(state, _entry(action, actor, at, state.status, to, note), changes)


def grant_extension(
    state: CaseState,
    *,
    max_extensions: int,
    actor: str,
    at: datetime,
    note: str | None = None,
) -> CaseState:
    """Record one more extension of the resolve deadline (e.g. a denunciation: Luật Tố cáo 2018
    art. 30 allows two of 30 days each). `max_extensions` comes from the deadline config."""
    if state.status not in (S.accepted, S.in_progress):
        raise ExtensionRefused(
            f"Chỉ gia hạn được hồ sơ '{label(S.accepted)}' hoặc '{label(S.in_progress)}'; "
            f"hồ sơ này đang ở trạng thái '{label(state.status)}'."
        )
    if max_extensions == 0:
        raise ExtensionRefused("Loại hồ sơ này không được gia hạn thời hạn giải quyết.")
    if state.extensions_granted >= max_extensions:
        raise ExtensionRefused(
            f"Hồ sơ đã được gia hạn {state.extensions_granted} lần, không thể gia hạn thêm."
        )
    at = _after_last(state, at)
    entry = _entry(TimelineAction.extended, actor, at, state.status, state.status, note)
    return _record(state, entry, {"extensions_granted": state.extensions_granted + 1})


def append_entry(
    state: CaseState,
    action: TimelineAction,
    *,
    actor: str,
    at: datetime,
    note: str | None,
    changes: dict[str, Any],
    to_unit_id: str | None = None,
) -> CaseState:
    """A change that keeps the status (see `domain.visibility`): one more timeline entry, dated
    no earlier than the last one, and `revision`+1."""
    at = _after_last(state, at)
    entry = _entry(action, actor, at, state.status, state.status, note, to_unit_id)
    return _record(state, entry, changes)


def _record(state: CaseState, entry: TimelineEntry, changes: dict[str, Any]) -> CaseState:
    return state.model_copy(
        update={
            **changes,
            "timeline": (*state.timeline, entry),
            "revision": state.revision + 1,
        }
    )


def _entry(
    action: TimelineAction,
    actor: str,
    at: datetime,
    from_status: CaseStatus | None,
    to_status: CaseStatus,
    note: str | None,
    to_unit_id: str | None = None,
) -> TimelineEntry:
    if not actor.strip():
        raise InvalidDetails("actor", "Thiếu người thực hiện.")
    return TimelineEntry(
        action=action,
        actor=actor,
        at=at,
        from_status=from_status,
        to_status=to_status,
        note=_clean(note),
        to_unit_id=to_unit_id,
    )


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidDetails("at", "Thời điểm phải có múi giờ (ví dụ 2021-03-05T09:00:00+07:00).")
    return at.astimezone(UTC)


def _after_last(state: CaseState, at: datetime) -> datetime:
    at = _utc(at)
    if at < state.last_at:
        shown = state.last_at.astimezone(LOCAL_TZ).strftime("%H:%M %d/%m/%Y")
        raise InvalidDetails("at", f"Thời điểm không được trước bước gần nhất của hồ sơ ({shown}).")
    return at


def _clean(note: str | None) -> str | None:
    return (note.strip() or None) if note is not None else None
