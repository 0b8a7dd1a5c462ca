"""The reminder policy administrators change through the API: what the next sweeps send,
who may read and change it, a stale revision, and a change applied in several sweeps."""

from __future__ import annotations

from typing import Any

import pytest

from lhpn_shared.auth import Role
from reminders import policy_store
from tests.support.http import eventually

from .conftest import DISTRICTS, PROVINCE, THEMATIC, Service, SmtpSink, email_of, pairs, started, vn

# The thematic annual report 2021 is due before 30/10/2021 00:00; the clock is at 20/10 08:00.
THEMATIC_STEPS = [
    {"step": "before_7d", "offset": "-P7D"},
    {"step": "after_2d", "offset": "P2D"},
]


async def read_policy(service: Service, role: Role = Role.admin, unit: str | None = None) -> Any:
    r = await service.client.get("/api/v1/reminder-policy", headers=service.token(role, unit))
    return r


async def put_policy(service: Service, body: dict[str, Any], role: Role = Role.admin) -> Any:
    return await service.client.put(
        "/api/v1/reminder-policy", json=body, headers=service.token(role)
    )


def with_thematic_steps(policy: dict[str, Any]) -> dict[str, Any]:
    reports = {**policy["reports"], "by_report_type": {THEMATIC: THEMATIC_STEPS}}
    return {"revision": policy["revision"], "reports": reports, "cases": policy["cases"]}


async def test_a_changed_policy_changes_what_the_next_sweeps_send(
    province: Service, smtp: SmtpSink
) -> None:
    before = (await read_policy(province)).json()
    assert before["revision"] == 0
    assert before["reports"]["steps"][0]["step"] == "before_3d"
    assert before["reports"]["steps"][0]["offset"] == "-P3D"

    r = await put_policy(province, with_thematic_steps(before))
    assert r.status_code == 200, r.text
    assert r.json()["revision"] == 1
    assert r.json()["reports"]["by_report_type"][THEMATIC][0] == {
        "step": "before_7d",
        "offset": "-P7D",
        "audience": "unit",
    }

    first = await province.sweep(vn(2021, 10, 23, 8))  # nothing under the settings' policy
    assert pairs(smtp.take()) == {(email_of(d), "before_7d") for d in DISTRICTS}
    assert first["notifications"] != []
    await province.sweep(vn(2021, 10, 27, 8))  # before_3d is no longer a thematic step
    assert smtp.take() == []
    await province.sweep(vn(2021, 11, 1, 8))
    assert pairs(smtp.take()) == {(email_of(d), "after_2d") for d in DISTRICTS}
    await province.sweep(vn(2021, 11, 5, 8))  # no digest in the new policy
    assert smtp.take() == []

    (obligation,) = await province.obligations(report_type=THEMATIC, unit_id="555")
    assert obligation["next_step_at"] is None

    async def policy_audited() -> bool:  # the relay moves the record from the policy's write
        audit = await province.client.get(
            "/api/v1/audit", params={"limit": "50"}, headers=province.headers
        )
        return any(e["action"] == "reminder_policy.write" for e in audit.json()["items"])

    assert await eventually(policy_audited)


async def test_a_stale_revision_is_refused_in_vietnamese_and_changes_nothing(
    province: Service,
) -> None:
    policy = (await read_policy(province)).json()
    assert (await put_policy(province, with_thematic_steps(policy))).status_code == 200

    second = with_thematic_steps(policy)  # still revision 0
    second["reports"]["by_report_type"] = {}
    r = await put_policy(province, second)

    assert r.status_code == 409
    assert "phiên bản 1" in r.json()["detail"]
    assert THEMATIC in (await read_policy(province)).json()["reports"]["by_report_type"]


async def test_only_admins_change_it_and_province_staff_may_read_it(province: Service) -> None:
    policy = (await read_policy(province)).json()

    assert (await put_policy(province, policy, Role.province_staff)).status_code == 403
    assert (await read_policy(province, Role.province_staff, PROVINCE)).status_code == 200
    refused = await read_policy(province, Role.district_staff, "555")
    assert refused.status_code == 403
    assert "chính sách nhắc hạn" in refused.json()["detail"]
    assert (await read_policy(province)).json()["revision"] == 0


@pytest.mark.parametrize(
    ("steps", "loc", "words"),
    [
        (
            [{"step": "before_3d", "offset": "-P3D"}, {"step": "before_3d", "offset": "-P1D"}],
            ["body", "reports", "steps", 1, "step"],
            "đã có ở trên",
        ),
        (
            [{"step": "before_3d", "offset": "-P400D"}],
            ["body", "reports", "steps", 0, "offset"],
            "366 ngày",
        ),
        (
            [{"step": "Nhắc sớm", "offset": "-P3D"}],
            ["body", "reports", "steps", 0, "step"],
            "chữ thường",
        ),
        (
            [{"step": "before_3d", "offset": "PT"}],
            ["body", "reports", "steps", 0, "offset"],
            "Khoảng thời gian không hợp lệ",
        ),
        (
            [{"step": "before_3d", "offset": "3 ngày"}],
            ["body", "reports", "steps", 0, "offset"],
            "",
        ),
    ],
)
async def test_a_bad_step_is_a_422_naming_its_field(
    service: Service, steps: list[dict[str, Any]], loc: list[Any], words: str
) -> None:
    policy = (await read_policy(service)).json()
    policy["reports"]["steps"] = steps

    r = await put_policy(service, policy)

    assert r.status_code == 422, r.text
    problems = r.json()["detail"]
    assert [p["loc"] for p in problems] == [loc]
    assert words in problems[0]["msg"]
    assert (await read_policy(service)).json()["revision"] == 0


async def test_a_change_is_finished_by_later_sweeps_and_another_replica_uses_it(
    province: Service, smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one batch of four obligations per sweep: the change takes three sweeps, as if the
    # process had stopped after each batch
    monkeypatch.setattr(policy_store, "APPLY_BATCH", 4)
    monkeypatch.setattr(policy_store, "APPLY_BATCHES_PER_SWEEP", 1)
    policy = (await read_policy(province)).json()
    assert (await put_policy(province, with_thematic_steps(policy))).status_code == 200

    async with started(province.settings, province.clock, province.rabbit) as other:
        sent: set[tuple[str, str]] = set()
        replanned = []
        for _ in range(3):
            result = await other.sweep(vn(2021, 10, 23, 8))
            replanned.append(result["notifications"])
            sent |= pairs(smtp.take())
        assert [len(n) for n in replanned] == [4, 4, 1]
        assert sent == {(email_of(d), "before_7d") for d in DISTRICTS}
        assert (await other.sweep(vn(2021, 10, 23, 8)))["notifications"] == []
