"""A service's 422 lands next to the input it names, in Vietnamese."""

from __future__ import annotations

from portal.problems import field_errors


def test_pydantic_messages_become_vietnamese_by_their_type() -> None:
    errors = field_errors(
        [
            {
                "loc": ["body", "title"],
                "msg": "String should have at least 1 character",
                "type": "string_too_short",
            },
            {
                "loc": ["body", "occurred_on"],
                "msg": "Input should be a valid date",
                "type": "date_from_datetime_parsing",
            },
            {
                "loc": ["body", "metrics", "participants"],
                "msg": "Input should be greater than or equal to 0",
                "type": "greater_than_equal",
            },
        ]
    )
    assert errors == {
        "title": "Chưa nhập thông tin này.",
        "occurred_on": "Ngày không hợp lệ (ngày/tháng/năm).",
        "metrics.participants": "Phải từ 0 trở lên.",
    }


def test_the_services_own_rules_keep_their_words_with_metric_codes_named_as_on_the_form() -> None:
    errors = field_errors(
        [
            {
                "loc": ["body", "metrics", "recommendations_accepted"],
                "msg": "'recommendations_accepted' (5) không được lớn hơn 'recommendations' (3).",
                "type": "value_error",
            },
        ]
    )
    expected = "“Số kiến nghị được tiếp thu” (5) không được lớn hơn “Số kiến nghị” (3)."
    assert errors == {"metrics.recommendations_accepted": expected}


def test_a_sentence_detail_is_a_message_for_the_whole_form() -> None:
    assert field_errors("Không có đơn vị mã '999'.") == {"": "Không có đơn vị mã '999'."}


def test_two_problems_on_one_field_are_both_shown() -> None:
    errors = field_errors(
        [
            {"loc": ["body", "requester", "phone"], "msg": "x", "type": "string_pattern_mismatch"},
            {
                "loc": ["body", "requester", "phone"],
                "msg": "Value error, thiếu số",
                "type": "value_error",
            },
        ]
    )
    assert errors == {"requester.phone": "Không đúng định dạng. thiếu số"}


def test_a_length_rule_says_the_length_it_asks_for() -> None:
    errors = field_errors(
        [
            {
                "loc": ["body", "password"],
                "msg": "String should have at least 8 characters",
                "type": "string_too_short",
            },
            {
                "loc": ["body", "username"],
                "msg": "String should have at most 64 characters",
                "type": "string_too_long",
            },
        ]
    )
    assert errors == {
        "password": "Phải có ít nhất 8 ký tự.",
        "username": "Không được dài quá 64 ký tự.",
    }
