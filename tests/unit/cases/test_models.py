"""What clients send: the requester's fields are checked without ever echoing a value."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cases.domain.flags import FLAG_LABELS, CaseFlag, normalise_flags
from cases.models import CaseFields, Requester


def make_fields(**over: object) -> CaseFields:
    values: dict[str, object] = {
        "unit_id": "22015",
        "kind": "mediation",
        "topic": "marriage_family",
        "channel": "walk_in",
        "received_on": "2021-03-01",
    }
    values.update(over)
    return CaseFields.model_validate(values)


@pytest.mark.parametrize(
    ("field", "value"),
    [("phone", "gọi cho tôi 0912"), ("id_number", "079 18 80"), ("birth_year", 1850)],
)
def test_a_wrong_requester_field_is_named_but_its_value_never_shown(
    field: str, value: object
) -> None:
    with pytest.raises(ValidationError) as refused:
        Requester.model_validate({"name": "Trần Thị Kín", field: value})
    assert refused.value.errors()[0]["loc"] == (field,)
    assert str(value) not in str(refused.value) and "Trần Thị Kín" not in str(refused.value)


def test_an_unknown_requester_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="email"):
        Requester.model_validate({"email": "a@b.vn"})


def test_a_case_has_personal_data_when_a_summary_or_a_requester_field_is_given() -> None:
    assert not make_fields().has_personal_data()
    assert not make_fields(requester={}, summary="   ").has_personal_data()
    assert make_fields(summary="Tranh chấp đất").has_personal_data()
    assert make_fields(requester={"phone": "0912345678"}).has_personal_data()


def test_flags_are_codes_from_the_vocabulary_only() -> None:
    with pytest.raises(ValidationError):
        make_fields(flags=["Nguyễn Văn A"])
    assert set(FLAG_LABELS) == set(CaseFlag)


def test_flags_are_kept_once_each_in_the_vocabulary_order() -> None:
    flags = [CaseFlag.disability, CaseFlag.poor_household, CaseFlag.disability]
    assert normalise_flags(flags) == [CaseFlag.poor_household, CaseFlag.disability]
