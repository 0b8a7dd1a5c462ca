"""A case as a Mongo document: the state round-trips, the personal data is stored sealed."""

from __future__ import annotations

import base64
import os
from datetime import date, datetime
from uuid import uuid4

from cases.adapters.crypto import FieldCipher, TimelineNote
from cases.data import load_vn_holidays
from cases.domain.deadlines import DeadlineConfig, compute_deadlines
from cases.domain.flags import CaseFlag
from cases.domain.workflow import Referral, apply_transition, open_case
from cases.repository import Sealed, StoredCase, case_from_doc, case_to_doc, state_to_doc
from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.cases import CaseChannel, CaseKind, CaseStatus, CaseTopic

NAME = "Lê Thị Bảo Mật"
NOTE = "Chị Bảo Mật đề nghị chuyển đơn sang Tòa án"


def make_cipher() -> FieldCipher:
    return FieldCipher.from_setting(f"k1:{base64.b64encode(os.urandom(32)).decode()}")


def make_stored_case(cipher: FieldCipher) -> StoredCase:
    at = datetime(2021, 3, 1, 9, 0, 0, 123000, tzinfo=LOCAL_TZ)
    state = open_case(
        kind=CaseKind.complaint,
        channel=CaseChannel.letter,
        received_on=date(2021, 3, 1),
        actor="can-bo-xa",
        at=at,
    )
    state = apply_transition(
        state,
        CaseStatus.referred,
        actor="can-bo-xa",
        at=at.replace(day=5),
        note=NOTE,
        referral=Referral(
            body="Tòa án nhân dân thành phố", referred_on=date(2021, 3, 5), reference_number="7/CV"
        ),
    )
    case_id = uuid4()
    # as the service stores it: the note sealed beside the entry, none left in the state
    note = cipher.encrypt(NOTE, case_id=case_id, field=TimelineNote(1))
    bare = (state.timeline[0], state.timeline[1].model_copy(update={"note": None}))
    state = state.model_copy(update={"timeline": bare})
    return StoredCase(
        case_id=case_id,
        unit_id="22015",
        topic=CaseTopic.marriage_family,
        flags=(CaseFlag.poor_household,),
        assigned_to="can-bo-xa",
        state=state,
        deadlines=tuple(compute_deadlines(state, DeadlineConfig(), load_vn_holidays())),
        sealed=Sealed(
            requester=cipher.encrypt_requester({"name": NAME, "birth_year": 1990}, case_id=case_id),
            summary=None,
            notes=(None, note),
        ),
        source_event_ids=("e-1",),
    )


def test_a_case_round_trips_through_its_document() -> None:
    case = make_stored_case(make_cipher())
    assert case_from_doc(case_to_doc(case)) == case


def test_the_document_keeps_instants_as_dates_and_days_as_iso_text() -> None:
    doc = case_to_doc(make_stored_case(make_cipher()))
    assert isinstance(doc["timeline"][0]["at"], datetime)
    assert isinstance(doc["status_at"]["received"], datetime)
    assert doc["received_on"] == "2021-03-01"
    assert doc["referral"]["referred_on"] == "2021-03-05"
    assert doc["_id"] == str(doc["_id"]) and doc["status"] == "referred"


def test_the_document_holds_the_requester_only_sealed() -> None:
    cipher = make_cipher()
    case = make_stored_case(cipher)
    doc = case_to_doc(case)
    assert NAME not in repr(doc)
    assert "requester" not in doc
    assert set(doc["sealed"]) == {"requester", "summary", "decline_reason"}
    opened = cipher.decrypt_requester(doc["sealed"]["requester"], case_id=case.case_id)
    assert opened["name"] == NAME and opened["birth_year"] == 1990


def test_the_document_holds_a_timeline_note_only_sealed_and_bound_to_its_entry() -> None:
    cipher = make_cipher()
    case = make_stored_case(cipher)
    doc = case_to_doc(case)
    assert NOTE not in repr(doc) and "Bảo Mật" not in repr(doc)
    sealed_note = doc["timeline"][1]["note"]
    assert cipher.decrypt(sealed_note, case_id=case.case_id, field=TimelineNote(1)) == NOTE


def test_a_note_left_in_the_state_is_never_written_in_clear() -> None:
    cipher = make_cipher()
    case = make_stored_case(cipher)
    careless = case.state.model_copy(
        update={
            "timeline": (case.state.timeline[0].model_copy(update={"note": NOTE}),),
            "decline_reason": NOTE,
        }
    )
    doc = state_to_doc(careless)
    assert NOTE not in repr(doc)
    assert doc["timeline"][0]["note"] is None and "decline_reason" not in doc


def test_a_document_written_before_notes_were_sealed_is_read_with_its_text_kept_apart() -> None:
    cipher = make_cipher()
    doc = case_to_doc(make_stored_case(cipher))
    doc["timeline"][1]["note"] = NOTE
    doc["decline_reason"] = "Không thuộc thẩm quyền"
    del doc["sealed"]["decline_reason"]

    case = case_from_doc(doc)

    assert case.sealed.notes == (None, NOTE)
    assert case.sealed.decline_reason == "Không thuộc thẩm quyền"
    assert all(e.note is None for e in case.state.timeline) and case.state.decline_reason is None
