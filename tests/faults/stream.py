"""The stream the fault suite sends, and what the platform must hold once it has taken it all.

`make_stream(seed, total)` builds, from the default data (Phú Yên's units, plan 460/KH-BTV), a
known list of sends as another system and union staff make them:

- activities with corrections (a higher `revision`, the whole activity again) and voids, each
  activity sent either on `lhpn.inbound` (as the vhost's inbound system, bound to the province)
  or through `POST /api/v1/events`;
- reports, on time and late: on `lhpn.inbound` one submission each, over HTTP some also
  resubmitted (the HTTP sender waits for each answer, so a resubmission follows its first);
- cases, opened on `lhpn.inbound` (no personal data) or by the unit's staff at
  `POST /api/v1/cases` (with a requester), then moved along their workflow at
  `POST /api/v1/cases/{id}/transitions` with the instants they happened in 2021;
- duplicates (the same message again, some by the other route), and a few bad messages, each
  with the reason it must be dead-lettered with (or the 422 it must get over HTTP).

Each entity's sends keep their order; entities are interleaved at random. The expected state is
what these sends mean, worked out here in plain Python from the sends alone: the final content of
each activity, report and case.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.activities import METRICS, Activity, ActivityKind
from lhpn_shared.contracts.cases import CaseChannel, CaseFacts, CaseKind, CaseStatus, CaseTopic
from lhpn_shared.contracts.events import ActivityVoided, Envelope, make_event
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.reports import Report
from lhpn_shared.contracts.units import Unit, UnitLevel
from tests.unit.aggregation.generated import load_plan, load_units

PROVINCE = "54"
SOURCE = "he-thong-mot-cua"  # another system: an e-office ("một cửa") system
FLAGS = ["poor_household", "ethnic_minority", "disability", "domestic_violence_victim"]
TITLES = {
    ActivityKind.supervision: "Giám sát thực hiện chính sách hỗ trợ phụ nữ nghèo",
    ActivityKind.social_criticism: "Phản biện dự thảo đề án bình đẳng giới",
    ActivityKind.draft_comment: "Góp ý dự thảo nghị quyết của HĐND",
    ActivityKind.party_building_feedback: "Góp ý xây dựng Đảng, xây dựng chính quyền",
    ActivityKind.dialogue: "Đối thoại với Chủ tịch UBND",
    ActivityKind.decree56_meeting: "Làm việc định kỳ với UBND cùng cấp theo NĐ 56",
    ActivityKind.representation: "Cử đại diện tham gia đoàn giám sát của HĐND",
    ActivityKind.opinion_digest: "Tổng hợp tâm tư, nguyện vọng của hội viên",
    ActivityKind.legal_outreach: "Tuyên truyền phòng, chống bạo lực gia đình",
    ActivityKind.training: "Tập huấn kỹ năng cho tuyên truyền viên pháp luật",
    ActivityKind.exemplar: "Phát hiện, nhân rộng điển hình tiên tiến",
}
PATHS = [
    ("accepted", "in_progress", "resolved", "closed"),
    ("declined", "closed"),
    ("accepted", "in_progress", "mediation_succeeded", "closed"),
    ("accepted", "in_progress", "mediation_failed", "closed"),
    ("accepted", "withdrawn", "closed"),
    ("accepted", "in_progress", "resolved", "closed", "in_progress", "resolved", "closed"),
]
OUTCOMES = {"declined", "resolved", "referred", "mediation_succeeded", "mediation_failed"}


# ---- what is sent -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Amqp:
    """Published on `lhpn.inbound` with this routing key, persistent, as `publisher`."""

    entity: str
    routing_key: str
    body: bytes
    message_id: str | None
    publisher: str = "system"
    """`system` (the bound one) or `stranger` (a broker account nobody bound)"""


@dataclass(frozen=True)
class HttpEvent:
    """`POST /api/v1/events` at intake, as an admin; 202 expected, or `status` for a bad one."""

    entity: str
    envelope: dict[str, Any]
    status: int = 202


@dataclass(frozen=True)
class HttpCase:
    """`POST /api/v1/cases` at cases, as staff of the case's unit (with a requester)."""

    entity: str
    case_id: str
    unit_id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Transitions:
    """Once the case exists: each transition in turn, as staff of its unit."""

    entity: str
    case_id: str
    unit_id: str
    steps: tuple[tuple[str, str], ...]
    """(to, at: ISO instant)"""


Send = Amqp | HttpEvent | HttpCase | Transitions


@dataclass(frozen=True)
class DeadLetter:
    """A bad message and the reason it must reach its queue's DLQ with."""

    queue: str
    message_id: str
    reason: str
    """a part of `x-rejection-reason`"""


@dataclass
class Expected:
    activities: dict[str, Activity | ActivityVoided] = field(default_factory=dict)
    """by activity_id: the highest revision sent (a void is the last thing sent)"""
    reports: dict[tuple[str, str, str], Report] = field(default_factory=dict)
    """by (unit, report_type, period): the last content, the first received_at"""
    cases: dict[str, tuple[CaseFacts, tuple[str, ...]]] = field(default_factory=dict)
    """by case_id: the facts it was opened with, the statuses it went through"""
    dead_letters: list[DeadLetter] = field(default_factory=list)
    refused_over_http: list[str] = field(default_factory=list)
    """event ids sent over HTTP that must get 422 and never be stored"""


@dataclass
class Stream:
    sends: list[Send]
    expected: Expected
    units: list[Unit]
    plan: Plan

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {"amqp": 0, "http events": 0, "http cases": 0, "transitions": 0}
        for s in self.sends:
            if isinstance(s, Amqp):
                out["amqp"] += 1
            elif isinstance(s, HttpEvent):
                out["http events"] += 1
            elif isinstance(s, HttpCase):
                out["http cases"] += 1
            else:
                out["transitions"] += len(s.steps)
        return out

    @property
    def messages(self) -> int:
        """Events sent, a transition counting as one."""
        return sum(self.counts().values())


# ---- making it --------------------------------------------------------------------------------


class _Maker:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        everything = load_units()
        self.units = [u for u in everything if _within(u, PROVINCE, everything)]
        self.plan = load_plan()
        # some units busy, some nearly idle: compliance is neither 0% nor 100%
        self.weights = [self.rng.choice([0.05, 1, 1, 2, 3]) for _ in self.units]
        self.expected = Expected()
        self.entities: list[list[Send]] = []

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def envelope(self, kind: str, data: Any, unit_id: str, at: datetime) -> Envelope:
        return make_event(
            kind, data, source=SOURCE, occurred_at=at, unit_id=unit_id, event_id=self.uuid()
        )

    def day(self) -> date:
        roll = self.rng.random()
        if roll < 0.1:  # the edges of the year and of its halves
            return self.rng.choice([date(2021, 1, 1), date(2021, 6, 30), date(2021, 7, 1)])
        if roll < 0.15:
            return date(2021, 12, 31)
        if roll < 0.2:  # around the days the answers are asked "as of"
            return self.rng.choice([date(2021, 5, 19), date(2021, 5, 20), date(2021, 5, 21)])
        return date(2021, 1, 1) + timedelta(days=self.rng.randrange(365))

    def metrics(self, kind: ActivityKind) -> dict[str, int]:
        values = {name: self.rng.randint(0, 20) for name in METRICS[kind]}
        for part, whole in (
            ("recommendations_accepted", "recommendations"),
            ("comments_accepted", "comments"),
            ("issues_answered", "issues_raised"),
            ("female_participants", "participants"),
        ):
            if part in values:
                values[part] = self.rng.randint(0, values[whole])
        return values

    # -- activities

    def activity(self) -> None:
        rng = self.rng
        route = "amqp" if rng.random() < 0.6 else "http"
        unit = rng.choices(self.units, self.weights)[0]
        kind = rng.choice(list(ActivityKind))
        at = datetime(2021, 1, 1, 8, tzinfo=LOCAL_TZ) + timedelta(minutes=rng.randrange(525_000))
        activity = Activity(
            activity_id=self.uuid(),
            unit_id=unit.unit_id,
            kind=kind,
            occurred_on=self.day(),
            title=TITLES[kind],
            metrics=self.metrics(kind),
            revision=1,
        )
        events = [self.envelope("activity.recorded", activity, unit.unit_id, at)]
        final: Activity | ActivityVoided = activity
        for _ in range(rng.choice([0, 0, 0, 0, 1, 1, 2])):  # corrections
            at += timedelta(hours=rng.randint(1, 200))
            what = rng.choice(["kind", "day", "unit", "metrics"])
            changes: dict[str, Any] = {"revision": activity.revision + 1}
            if what == "kind":
                changes["kind"] = rng.choice(list(ActivityKind))
                changes["metrics"] = self.metrics(changes["kind"])
                changes["title"] = TITLES[changes["kind"]]
            elif what == "day":
                changes["occurred_on"] = self.day()
            elif what == "unit":
                changes["unit_id"] = rng.choices(self.units, self.weights)[0].unit_id
            else:
                changes["metrics"] = self.metrics(activity.kind)
            activity = activity.model_copy(update=changes)
            final = activity
            events.append(self.envelope("activity.recorded", activity, activity.unit_id, at))
        if rng.random() < 0.12:
            at += timedelta(hours=rng.randint(1, 200))
            final = ActivityVoided(
                activity_id=activity.activity_id,
                unit_id=activity.unit_id,
                revision=activity.revision + 1,
                voided_at=at,
                reason="Nhập trùng hoạt động",
            )
            events.append(self.envelope("activity.voided", final, activity.unit_id, at))
        self.expected.activities[str(activity.activity_id)] = final
        self.add(f"activity:{activity.activity_id}", route, events)

    # -- reports

    def reports(self, share: float) -> None:
        rng = self.rng
        for schedule in self.plan.report_schedules:
            codes = sorted(set(schedule.indicators))
            for period in schedule.periods:
                for unit in self.units:
                    if unit.level not in schedule.levels or rng.random() > share:
                        continue
                    due_at = period.due_at[unit.level]
                    received_at = due_at + timedelta(minutes=rng.randint(-12 * 1440, 6 * 1440))
                    report = Report(
                        report_id=self.uuid(),
                        unit_id=unit.unit_id,
                        report_type=schedule.report_type,
                        period=period.period,
                        indicators={c: rng.randint(0, 30) for c in codes if rng.random() < 0.6},
                        narrative="Báo cáo kết quả thực hiện kế hoạch",
                        received_at=received_at,
                        due_at=due_at,
                        on_time=received_at < due_at,
                    )
                    route = "amqp" if rng.random() < 0.5 else "http"
                    events = [self.envelope("report.submitted", report, unit.unit_id, received_at)]
                    final = report
                    if route == "http":
                        for revision in range(2, 2 + rng.choice([0, 0, 0, 1, 2])):
                            sent_at = final.received_at + timedelta(hours=rng.randint(1, 100))
                            again = final.model_copy(
                                update={
                                    "revision": revision,
                                    "indicators": {
                                        c: rng.randint(0, 30) for c in codes if rng.random() < 0.6
                                    },
                                }
                            )
                            events.append(
                                self.envelope("report.submitted", again, unit.unit_id, sent_at)
                            )
                            final = again  # keeps the first received_at (SPEC §5)
                    key = (unit.unit_id, schedule.report_type, period.period)
                    self.expected.reports[key] = final
                    self.add(f"report:{':'.join(key)}", route, events)

    # -- cases

    def case(self) -> None:
        rng = self.rng
        unit = rng.choice(self.units)
        received_on = date(2021, 1, 4) + timedelta(days=rng.randrange(340))
        facts = CaseFacts(
            case_id=self.uuid(),
            unit_id=unit.unit_id,
            kind=rng.choice(list(CaseKind)),
            topic=rng.choice(list(CaseTopic)),
            channel=rng.choice(list(CaseChannel)),
            status=CaseStatus.received,
            received_on=received_on,
            flags=sorted(rng.sample(FLAGS, rng.randint(0, 2))),
        )
        path = rng.choice(PATHS)
        path = path[: rng.randint(0, len(path))]
        case_id = str(facts.case_id)
        sends: list[Send] = []
        if rng.random() < 0.7:
            envelope = self.envelope(
                "case.opened",
                facts,
                unit.unit_id,
                datetime.combine(received_on, time(8), tzinfo=LOCAL_TZ),
            )
            sends.append(_amqp(f"case:{case_id}", envelope))
        else:
            body = {
                **facts.model_dump(
                    mode="json", include={"unit_id", "kind", "topic", "channel", "received_on"}
                ),
                "case_id": case_id,
                "flags": facts.flags,
                "summary": "Chị hỏi về thủ tục ly hôn và quyền nuôi con",
                "requester": {"name": "Nguyễn Thị Thử Nghiệm", "phone": "0905 123 456"},
            }
            sends.append(HttpCase(f"case:{case_id}", case_id, unit.unit_id, body))
        at = datetime.combine(received_on, time(9), tzinfo=LOCAL_TZ)
        steps = []
        for to in path:
            at += timedelta(days=rng.randint(1, 12), minutes=rng.randint(0, 600))
            steps.append((to, at.isoformat()))
        if steps:
            sends.append(Transitions(f"case:{case_id}", case_id, unit.unit_id, tuple(steps)))
        self.expected.cases[case_id] = (facts, path)
        self.entities.append(sends)

    # -- duplicates and bad messages

    def duplicates(self, share: float) -> None:
        """Some sends again, later: the same bytes on the same route, and some first records
        and first submissions again by the other route."""
        originals = [
            s
            for e in self.entities
            for s in e
            if isinstance(s, Amqp | HttpEvent) and s.entity != "bad"
        ]
        for send in self.rng.sample(originals, round(share * len(originals))):
            envelope = _envelope_of(send)
            first = envelope is not None and envelope["type"] in (
                "activity.recorded",
                "report.submitted",
            )
            revision = 0 if envelope is None else envelope["data"].get("revision", 1)
            if first and revision == 1 and self.rng.random() < 0.3:
                again: Send = (
                    HttpEvent(send.entity, envelope)
                    if isinstance(send, Amqp)
                    else _amqp(send.entity, Envelope.model_validate(envelope))
                )
            else:
                again = send
            self.entities.append([_AFTER, send, again])

    def bad(self) -> None:
        unit = self.units[-1].unit_id
        at = datetime(2021, 5, 5, 9, tzinfo=LOCAL_TZ)
        good = Activity(
            activity_id=self.uuid(),
            unit_id=unit,
            kind=ActivityKind.legal_outreach,
            occurred_on=date(2021, 5, 5),
            title=TITLES[ActivityKind.legal_outreach],
            metrics={"sessions": 1, "participants": 40, "female_participants": 30},
        )

        def activity_envelope(**changes: Any) -> Envelope:
            data = {**good.model_dump(mode="json"), "activity_id": str(self.uuid()), **changes}
            return Envelope.model_validate(
                {
                    **self.envelope("activity.recorded", good, unit, at).model_dump(mode="json"),
                    "data": data,
                    "unit_id": data["unit_id"],
                }
            )

        intake = "intake.inbound"
        bad: list[tuple[Send, str]] = []
        raw_id = str(self.uuid())
        bad.append((Amqp("bad", "activity.recorded.v1", b"{ not json", raw_id), "invalid envelope"))
        unknown = activity_envelope(unit_id="99999")
        bad.append((_amqp("bad", unknown), "unknown unit_id '99999'"))
        negative = activity_envelope(
            metrics={"sessions": 1, "participants": -3, "female_participants": 0}
        )
        bad.append((_amqp("bad", negative), "không được âm"))
        future = activity_envelope(occurred_on="2031-01-01")
        bad.append((_amqp("bad", future), "occurred_on"))
        stranger = activity_envelope()
        bad.append(
            (
                Amqp(
                    "bad",
                    stranger.routing_key,
                    stranger.model_dump_json().encode(),
                    str(stranger.event_id),
                    publisher="stranger",
                ),
                "is not a bound inbound system",
            )
        )
        for send, reason in bad:
            assert isinstance(send, Amqp) and send.message_id is not None
            self.expected.dead_letters.append(DeadLetter(intake, send.message_id, reason))
        cases = "cases.inbound"
        case = CaseFacts(
            case_id=self.uuid(),
            unit_id=unit,
            kind=CaseKind.consultation,
            topic=CaseTopic.labour,
            channel=CaseChannel.hotline,
            status=CaseStatus.received,
            received_on=date(2021, 6, 1),
        )
        opened = self.envelope("case.opened", case, unit, at).model_dump(mode="json")
        bad_cases = [
            (
                {
                    **opened,
                    "event_id": str(self.uuid()),
                    "data": {**opened["data"], "unit_id": "99999"},
                    "unit_id": "99999",
                },
                "unknown unit_id '99999'",
            ),
            (
                {
                    **opened,
                    "event_id": str(self.uuid()),
                    "data": {**opened["data"], "status": "closed"},
                },
                "must have status 'received'",
            ),
            (
                {
                    **opened,
                    "event_id": str(self.uuid()),
                    "data": {**opened["data"], "requester": {"name": "Trần Thị Bí Mật"}},
                },
                "invalid data",
            ),
        ]
        for doc, reason in bad_cases:
            send = _amqp("bad", Envelope.model_validate(doc))
            bad.append((send, reason))
            self.expected.dead_letters.append(DeadLetter(cases, str(doc["event_id"]), reason))
        not_json_case = Amqp("bad", "case.opened.v1", b"<xml/>", str(self.uuid()))
        bad.append((not_json_case, "invalid envelope"))
        self.expected.dead_letters.append(
            DeadLetter(cases, str(not_json_case.message_id), "invalid envelope")
        )
        for send, _ in bad:
            self.entities.append([send])
        # over HTTP: refused at once, never stored
        for changes in (
            {"unit_id": "99999"},
            {"metrics": {"sessions": 1, "participants": 2, "female_participants": 5}},
            {"occurred_on": "2031-01-01"},
        ):
            envelope = activity_envelope(**changes)
            self.expected.refused_over_http.append(str(envelope.event_id))
            self.entities.append([HttpEvent("bad", envelope.model_dump(mode="json"), status=422)])

    # -- assembling

    def add(self, entity: str, route: str, events: list[Envelope]) -> None:
        if route == "amqp":
            self.entities.append([_amqp(entity, e) for e in events])
        else:
            self.entities.append([HttpEvent(entity, e.model_dump(mode="json")) for e in events])


class _After:
    """Marks a duplicate's entity list: [_AFTER, original, again]."""


_AFTER: Any = _After()


def make_stream(seed: int, total: int = 20_000) -> Stream:
    """A stream of about `total` messages (events sent, a transition counting as one)."""
    m = _Maker(seed)
    scale = total / 20_000
    m.reports(share=min(0.85, 0.85 * scale))
    for _ in range(round(1_100 * scale)):
        m.case()
    m.bad()
    sends = sum(len(e) for e in m.entities) + sum(
        len(s.steps) - 1 for e in m.entities for s in e if isinstance(s, Transitions)
    )
    while sends < total / 1.06:
        before = len(m.entities)
        m.activity()
        sends += sum(len(e) for e in m.entities[before:])
    m.duplicates(share=0.08)
    return Stream(_ordered(m), m.expected, m.units, m.plan)


def _ordered(m: _Maker) -> list[Send]:
    """Interleave the entities; each duplicate at a random point after its original."""
    plain = [e for e in m.entities if not (e and e[0] is _AFTER)]
    duplicates = [e for e in m.entities if e and e[0] is _AFTER]
    slots = [i for i, sends in enumerate(plain) for _ in sends]
    m.rng.shuffle(slots)
    iters = [iter(sends) for sends in plain]
    out: list[Send] = [next(iters[i]) for i in slots]
    position = {id(s): n for n, s in enumerate(out)}
    placed: list[tuple[float, Send]] = [(float(n), s) for n, s in enumerate(out)]
    for _, original, again in duplicates:
        placed.append((m.rng.uniform(position[id(original)] + 0.5, len(out)), again))
    placed.sort(key=lambda p: p[0])
    return [s for _, s in placed]


def _amqp(entity: str, envelope: Envelope) -> Amqp:
    return Amqp(
        entity, envelope.routing_key, envelope.model_dump_json().encode(), str(envelope.event_id)
    )


def _envelope_of(send: Amqp | HttpEvent) -> dict[str, Any] | None:
    if isinstance(send, HttpEvent):
        return send.envelope
    try:
        return Envelope.model_validate_json(send.body).model_dump(mode="json")
    except ValueError:
        return None


def _within(unit: Unit, root: str, units: list[Unit]) -> bool:
    parent = {u.unit_id: u.parent_id for u in units}
    at: str | None = unit.unit_id
    while at is not None:
        if at == root:
            return True
        at = parent.get(at)
    return False


def staff_role(unit: Unit) -> str:
    return {
        UnitLevel.province: "province_staff",
        UnitLevel.district: "district_staff",
        UnitLevel.commune: "commune_staff",
    }[unit.level]


def entity_sends(stream: Stream, entity: str) -> Iterator[Send]:
    return (s for s in stream.sends if s.entity == entity)
