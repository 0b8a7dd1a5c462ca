"""Quản trị › Hàng đợi lỗi: every service's dead-letter queues, one service down not hiding the
others, replay per reason with the result said, purge only after a confirmation page, one
message shown escaped."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from tests.support.http import running
from tests.unit.portal.fakes import FakeServices, csrf_of, sign_in
from tests.unit.portal.test_admin_pages import admin_fakes, forms_without_token, sent

BASE = "/quan-tri/hang-doi-loi"
REASON = "đơn vị 99999 chưa có trong cây đơn vị"


def summary(queue: str, reasons: dict[str, int]) -> dict[str, object]:
    return {
        "queues": [
            {
                "queue": queue,
                "dead_letter_queue": f"{queue}.dlq",
                "messages": sum(reasons.values()),
                "examined": sum(reasons.values()),
                "reasons": [{"reason": r, "messages": n} for r, n in reasons.items()],
            }
        ]
    }


QUEUES = {
    "intake": summary("intake.inbound", {REASON: 3, "(no reason)": 1}),
    "cases": summary("cases.inbound", {}),
    "reminders": summary("reminders.events", {"thiếu kế hoạch": 2}),
    "aggregation": summary("aggregation.events", {}),
}


def dead_letter_fakes() -> FakeServices:
    fakes = admin_fakes()

    def handler(q: httpx.Request) -> httpx.Response | None:
        if q.method == "GET" and q.url.path == "/api/v1/dead-letters":
            return httpx.Response(200, json=QUEUES[fakes.service_of(q)])
        return None

    fakes.extra.append(handler)
    return fakes


async def test_every_services_queues_are_listed_and_a_service_down_shows_only_its_part() -> None:
    fakes = dead_letter_fakes()
    fakes.down.add("cases")
    async with running(fakes.app()) as client:
        await sign_in(client)
        page = await client.get(BASE)

    assert page.status_code == 200
    assert "Dịch vụ vụ việc pháp lý tạm thời không trả lời" in page.text
    assert "intake.inbound" in page.text
    assert "4 thư trong hàng đợi lỗi" in page.text
    assert REASON in page.text
    assert "reminders.events" in page.text
    assert "thiếu kế hoạch" in page.text
    assert page.text.count("Không có thư lỗi.") == 1  # aggregation's; cases is down
    assert forms_without_token(page.text) == []


async def test_replaying_a_reason_sends_it_to_its_service_and_says_what_happened() -> None:
    fakes = dead_letter_fakes()
    fakes.extra.insert(
        0,
        lambda q: (
            httpx.Response(
                200,
                json={
                    "queue": "intake.inbound",
                    "replayed": 3,
                    "refused": [{"message_id": "m-7", "why": "không do dịch vụ này chuyển vào"}],
                },
            )
            if q.url.path == "/api/v1/dead-letters/replay"
            else None
        ),
    )
    async with running(fakes.app()) as client:
        await sign_in(client)
        page = await client.get(BASE)
        r = await client.post(
            BASE + "/phat-lai",
            data={
                "csrf_token": csrf_of(page.text),
                "service": "intake",
                "queue": "intake.inbound",
                "reason": REASON,
            },
        )
        assert r.status_code == 303
        shown = await client.get(r.headers["location"])

    asked = [q for q in fakes.requests if q.url.path == "/api/v1/dead-letters/replay"]
    assert [fakes.service_of(q) for q in asked] == ["intake"]
    assert sent(fakes, "POST", "/api/v1/dead-letters/replay") == {
        "queue": "intake.inbound",
        "reason": REASON,
    }
    assert (
        "Đã phát lại 3 thư về hàng đợi intake.inbound; 1 thư bị từ chối: "
        "m-7: không do dịch vụ này chuyển vào." in shown.text
    )


async def test_purging_asks_for_confirmation_before_anything_is_deleted() -> None:
    fakes = dead_letter_fakes()
    fakes.extra.insert(
        0,
        lambda q: (
            httpx.Response(200, json={"queue": "intake.inbound", "purged": 3})
            if q.url.path == "/api/v1/dead-letters/purge"
            else None
        ),
    )

    def purges() -> int:
        return len([q for q in fakes.requests if q.url.path == "/api/v1/dead-letters/purge"])

    async with running(fakes.app()) as client:
        await sign_in(client)
        page = await client.get(BASE)
        link = next(
            a.split('"')[0]
            for a in page.text.split('href="')[1:]
            if a.startswith(BASE + "/xoa?") and "intake.inbound" in a.split('"')[0]
        ).replace("&amp;", "&")
        assert parse_qs(urlsplit(link).query)["reason"] == [REASON]
        confirm = await client.get(link)  # the stray click: a page, nothing deleted
        assert confirm.status_code == 200
        assert "Xóa thư khỏi hàng đợi lỗi?" in confirm.text
        assert purges() == 0
        token = csrf_of(confirm.text)
        fields = {"service": "intake", "queue": "intake.inbound", "reason": REASON}
        unconfirmed = await client.post(BASE + "/xoa", data={"csrf_token": token, **fields})
        assert unconfirmed.status_code == 303
        assert unconfirmed.headers["location"].startswith(BASE + "/xoa?")
        assert purges() == 0
        done = await client.post(
            BASE + "/xoa", data={"csrf_token": token, **fields, "confirm": "yes"}
        )
        shown = await client.get(done.headers["location"])

    assert purges() == 1
    assert sent(fakes, "POST", "/api/v1/dead-letters/purge") == {
        "queue": "intake.inbound",
        "reason": REASON,
    }
    assert "đã xóa 3 thư" in shown.text


async def test_one_message_is_shown_as_the_service_returns_it_escaped() -> None:
    fakes = dead_letter_fakes()
    message = {
        "queue": "cases.inbound",
        "message_id": "m-1",
        "reason": "thiếu đơn vị",
        "replayable": True,
        "published_by": "ho-so-tinh",
        "headers": {"x-lhpn-rejection": "<b>thiếu</b>", "x-lhpn-attempts": 3},
        "content_type": "application/json",
        "body": '{"sealed": "v1:k1:QUJD", "note": "<script>alert(1)</script>"}',
        "size": 60,
    }
    fakes.extra.insert(
        0,
        lambda q: (
            httpx.Response(200, json=message)
            if q.url.path == "/api/v1/dead-letters/cases.inbound/m-1"
            else None
        ),
    )
    async with running(fakes.app()) as client:
        await sign_in(client)
        page = await client.get(
            BASE + "/thu",
            params={"service": "cases", "queue": "cases.inbound", "message_id": "m-1"},
        )
        missing = await client.get(
            BASE + "/thu",
            params={"service": "cases", "queue": "cases.inbound", "message_id": "m-2"},
        )

    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert" not in page.text
    assert "&lt;b&gt;thiếu&lt;/b&gt;" in page.text
    assert "v1:k1:QUJD" in page.text  # sealed stays sealed
    assert "Phát lại thư này" in page.text
    assert forms_without_token(page.text) == []
    assert missing.status_code == 404


async def test_the_new_admin_pages_are_refused_to_staff() -> None:
    fakes = FakeServices()  # a district staff
    async with running(fakes.app()) as client:
        await sign_in(client)
        for path in (BASE, BASE + "/xoa?service=intake&queue=intake.inbound"):
            page = await client.get(path)
            assert page.status_code == 403, path
            assert "Chỉ quản trị viên" in page.text
        page = await client.get("/quan-tri/chinh-sach-nhac-han")
        assert page.status_code == 403
    assert not [q for q in fakes.requests if "dead-letters" in q.url.path]
    assert not [q for q in fakes.requests if "reminder-policy" in q.url.path]
