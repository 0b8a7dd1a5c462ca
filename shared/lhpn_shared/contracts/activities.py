"""Activities (SPEC §4): what the plan asks unions to do, with per-kind metrics."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, Field


class ActivityKind(StrEnum):
    supervision = "supervision"
    social_criticism = "social_criticism"
    draft_comment = "draft_comment"
    party_building_feedback = "party_building_feedback"
    dialogue = "dialogue"
    decree56_meeting = "decree56_meeting"
    representation = "representation"
    opinion_digest = "opinion_digest"
    legal_outreach = "legal_outreach"
    training = "training"
    exemplar = "exemplar"


METRICS: dict[ActivityKind, tuple[str, ...]] = {
    ActivityKind.supervision: ("recommendations", "recommendations_accepted"),
    ActivityKind.social_criticism: ("comments", "comments_accepted"),
    ActivityKind.draft_comment: ("comments", "comments_accepted"),
    ActivityKind.party_building_feedback: ("comments", "comments_accepted"),
    ActivityKind.dialogue: ("participants", "issues_raised", "issues_answered"),
    ActivityKind.decree56_meeting: ("issues_raised", "issues_answered"),
    ActivityKind.representation: ("representatives",),
    ActivityKind.opinion_digest: ("issues",),
    ActivityKind.legal_outreach: ("sessions", "participants", "female_participants"),
    ActivityKind.training: ("sessions", "participants"),
    ActivityKind.exemplar: ("count",),
}

# part ≤ whole, per kind: (part, whole)
METRIC_BOUNDS: dict[ActivityKind, tuple[tuple[str, str], ...]] = {
    ActivityKind.supervision: (("recommendations_accepted", "recommendations"),),
    ActivityKind.social_criticism: (("comments_accepted", "comments"),),
    ActivityKind.draft_comment: (("comments_accepted", "comments"),),
    ActivityKind.party_building_feedback: (("comments_accepted", "comments"),),
    ActivityKind.dialogue: (("issues_answered", "issues_raised"),),
    ActivityKind.decree56_meeting: (("issues_answered", "issues_raised"),),
    ActivityKind.legal_outreach: (("female_participants", "participants"),),
}

KIND_LABELS_VI: dict[ActivityKind, str] = {
    ActivityKind.supervision: "Giám sát",
    ActivityKind.social_criticism: "Phản biện xã hội",
    ActivityKind.draft_comment: "Góp ý dự thảo văn bản",
    ActivityKind.party_building_feedback: "Góp ý xây dựng Đảng, xây dựng chính quyền",
    ActivityKind.dialogue: "Đối thoại với người đứng đầu cấp ủy, chính quyền",
    ActivityKind.decree56_meeting: "Làm việc định kỳ với UBND cùng cấp (NĐ 56)",
    ActivityKind.representation: "Cử đại diện tham gia đoàn giám sát, hội nghị phản biện",
    ActivityKind.opinion_digest: "Nắm bắt tư tưởng, nguyện vọng hội viên",
    ActivityKind.legal_outreach: "Tuyên truyền, phổ biến pháp luật",
    ActivityKind.training: "Tập huấn",
    ActivityKind.exemplar: "Điển hình",
}


class SupervisionRole(StrEnum):
    lead = "lead"
    joint = "joint"
    participant = "participant"


class DocumentKind(StrEnum):
    party = "party"
    government = "government"
    law = "law"
    union_congress = "union_congress"
    other = "other"


class ActivityFields(BaseModel):
    """What a client sends to record or correct an activity."""

    unit_id: str = Field(min_length=1)
    kind: ActivityKind
    occurred_on: date
    title: str = Field(min_length=1, max_length=500)
    plan_id: str | None = None
    notes: str = Field(default="", max_length=20_000)
    metrics: dict[str, int] = Field(default_factory=dict)
    role: SupervisionRole | None = None
    agreed_with_front: bool | None = None
    document_kind: DocumentKind | None = None
    topic: str | None = Field(default=None, max_length=200)
    format: str | None = Field(default=None, max_length=200)


class Activity(ActivityFields):
    """An activity as stored and as carried by `activity.recorded` (SPEC §4)."""

    activity_id: UUID
    revision: int = Field(default=1, ge=1)
    recorded_at: datetime | None = None
    recorded_by: str | None = None
    voided: bool = False
