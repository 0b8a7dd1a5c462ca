"""The Vietnamese words the pages show for the API's codes (SPEC: the UI is Vietnamese, API
field names and codes are English). A code without a label is shown as it is."""

from __future__ import annotations

from lhpn_shared.contracts.activities import KIND_LABELS_VI, METRICS, ActivityKind

SERVICE_LABELS = {
    "intake": "tiếp nhận dữ liệu",
    "cases": "vụ việc pháp lý",
    "reminders": "nhắc việc",
    "aggregation": "tổng hợp số liệu",
}

ROLE_LABELS = {
    "admin": "Quản trị hệ thống",
    "province_staff": "Cán bộ Hội LHPN tỉnh",
    "district_staff": "Cán bộ Hội LHPN huyện",
    "commune_staff": "Cán bộ Hội LHPN cơ sở",
    "viewer": "Người xem số liệu",
    "system": "Hệ thống khác",
}

LEVEL_LABELS = {
    "national": "Trung ương",
    "province": "Cấp tỉnh",
    "district": "Cấp huyện",
    "commune": "Cấp xã",
}

ACTIVITY_KIND_LABELS: dict[str, str] = {k.value: v for k, v in KIND_LABELS_VI.items()}
ACTIVITY_KINDS: list[str] = [k.value for k in ActivityKind]
ACTIVITY_METRICS: dict[str, tuple[str, ...]] = {k.value: m for k, m in METRICS.items()}

ACTIVITY_KIND_HINTS = {
    "supervision": "Giám sát việc thực hiện một chính sách, pháp luật.",
    "social_criticism": "Phản biện xã hội đối với một dự thảo.",
    "draft_comment": "Góp ý một dự thảo văn bản cụ thể.",
    "party_building_feedback": "Góp ý xây dựng Đảng, xây dựng chính quyền.",
    "dialogue": "Đối thoại với người đứng đầu cấp ủy, chính quyền.",
    "decree56_meeting": "Làm việc định kỳ với UBND cùng cấp theo Nghị định 56/2012.",
    "representation": "Cử đại diện tham gia đoàn giám sát, hội nghị phản biện.",
    "opinion_digest": "Tổng hợp tư tưởng, nguyện vọng hội viên gửi lên cấp trên.",
    "legal_outreach": "Tuyên truyền, phổ biến pháp luật, bình đẳng giới.",
    "training": "Tập huấn cho cán bộ Hội, tuyên truyền viên, hòa giải viên.",
    "exemplar": "Phát hiện, nhân rộng điển hình.",
}

METRIC_LABELS = {
    "recommendations": "Số kiến nghị",
    "recommendations_accepted": "Số kiến nghị được tiếp thu",
    "comments": "Số ý kiến góp ý",
    "comments_accepted": "Số ý kiến được tiếp thu",
    "participants": "Số người tham dự",
    "female_participants": "Số người tham dự là nữ",
    "issues_raised": "Số vấn đề nêu ra",
    "issues_answered": "Số vấn đề được trả lời",
    "representatives": "Số lượt cử đại diện",
    "issues": "Số vấn đề tổng hợp, phản ánh",
    "sessions": "Số buổi",
    "count": "Số điển hình",
}

SUPERVISION_ROLE_LABELS = {"lead": "Chủ trì", "joint": "Phối hợp", "participant": "Tham gia"}

DOCUMENT_KIND_LABELS = {
    "party": "Văn bản của Đảng",
    "government": "Văn bản của chính quyền",
    "law": "Dự thảo luật",
    "union_congress": "Văn kiện Đại hội Hội",
    "other": "Văn bản khác",
}

ACTIVITY_FIELD_LABELS = {
    "unit_id": "Đơn vị",
    "kind": "Loại hoạt động",
    "occurred_on": "Ngày diễn ra",
    "title": "Tên hoạt động",
    "notes": "Ghi chú",
    "role": "Vai trò",
    "agreed_with_front": "Thống nhất nội dung với UBMTTQ",
    "document_kind": "Loại văn bản",
    "topic": "Chủ đề",
    "format": "Hình thức",
}


def indicator_label(code: str) -> str:
    """`supervision.recommendations` → 'Giám sát – Số kiến nghị'; `<kind>.count` → 'Số hoạt
    động' unless the kind has a metric named count."""
    kind, _, measure = code.partition(".")
    kind_label = ACTIVITY_KIND_LABELS.get(kind, kind)
    if measure == "count" and "count" not in ACTIVITY_METRICS.get(kind, ()):
        return f"{kind_label} – Số hoạt động"
    return f"{kind_label} – {METRIC_LABELS.get(measure, measure)}"


OBLIGATION_STATUS_LABELS = {
    "open": "Chưa đến hạn",
    "fulfilled_on_time": "Đã nộp đúng hạn",
    "fulfilled_late": "Đã nộp muộn",
    "overdue": "Quá hạn, chưa nộp",
}

CASE_KIND_LABELS = {
    "consultation": "Tư vấn pháp luật",
    "legal_aid": "Đề nghị trợ giúp pháp lý",
    "complaint": "Đơn khiếu nại",
    "denunciation": "Đơn tố cáo",
    "petition": "Kiến nghị, phản ánh",
    "mediation": "Hòa giải ở cơ sở",
}

CASE_TOPIC_LABELS = {
    "domestic_violence": "Bạo lực gia đình",
    "marriage_family": "Hôn nhân và gia đình",
    "land": "Đất đai",
    "inheritance": "Thừa kế",
    "labour": "Lao động, việc làm",
    "social_insurance": "Bảo hiểm xã hội",
    "trafficking": "Mua bán người",
    "other": "Khác",
}

CASE_CHANNEL_LABELS = {
    "walk_in": "Trực tiếp",
    "hotline": "Đường dây nóng",
    "letter": "Thư, đơn",
    "online": "Trực tuyến",
    "referral": "Được chuyển đến",
}

CASE_STATUS_LABELS = {
    "received": "Đã tiếp nhận",
    "accepted": "Đã thụ lý",
    "declined": "Không thụ lý",
    "in_progress": "Đang giải quyết",
    "resolved": "Đã giải quyết",
    "referred": "Đã chuyển cơ quan có thẩm quyền",
    "mediation_succeeded": "Hòa giải thành",
    "mediation_failed": "Hòa giải không thành",
    "withdrawn": "Đã rút yêu cầu",
    "closed": "Đã đóng",
}

CASE_TRANSITION_VERBS = {
    "accepted": "Thụ lý",
    "declined": "Không thụ lý",
    "in_progress": "Bắt đầu giải quyết",
    "resolved": "Đã giải quyết xong",
    "referred": "Chuyển cơ quan có thẩm quyền",
    "mediation_succeeded": "Hòa giải thành",
    "mediation_failed": "Hòa giải không thành",
    "withdrawn": "Người yêu cầu rút",
    "closed": "Đóng hồ sơ",
}

CASE_FLAG_LABELS = {
    "poor_household": "Hộ nghèo",
    "near_poor_household": "Hộ cận nghèo",
    "financial_hardship": "Khó khăn về tài chính",
    "ethnic_minority": "Người dân tộc thiểu số",
    "disability": "Người khuyết tật",
    "elderly": "Người cao tuổi",
    "child": "Trẻ em",
    "meritorious_person": "Người có công với cách mạng",
    "domestic_violence_victim": "Nạn nhân bạo lực gia đình",
    "trafficking_victim": "Nạn nhân mua bán người",
    "hiv": "Người nhiễm HIV",
}

CASE_DEADLINE_LABELS = {
    "accept": "Hạn thụ lý",
    "resolve": "Hạn giải quyết",
    "handle_letter": "Hạn xử lý đơn",
}

CASE_TIMELINE_LABELS = {
    "opened": "Tiếp nhận",
    "transition": "Chuyển trạng thái",
    "reopened": "Mở lại",
    "extended": "Gia hạn",
}

CASE_FIELD_LABELS = {
    "unit_id": "Đơn vị",
    "kind": "Loại vụ việc",
    "topic": "Lĩnh vực",
    "channel": "Hình thức tiếp nhận",
    "received_on": "Ngày tiếp nhận",
    "summary": "Nội dung",
    "requester.name": "Họ tên người yêu cầu",
    "requester.phone": "Số điện thoại",
    "requester.address": "Địa chỉ",
    "requester.birth_year": "Năm sinh",
    "requester.id_number": "Số CCCD/CMND",
    "assigned_to": "Cán bộ phụ trách",
}


def label(table: dict[str, str], code: object) -> str:
    return table.get(str(code), str(code))
