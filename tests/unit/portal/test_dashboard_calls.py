"""The dashboard's calls: the first answer asks little (the rates of the latest periods come in a
second request), and intake's reference data is asked once a minute per role and unit, not on
every page."""

from __future__ import annotations

from portal.backend import ReferenceAnswers
from tests.support.http import running
from tests.unit.portal.fakes import FakeServices, sign_in


def asked(fakes: FakeServices) -> list[str]:
    return sorted(q.url.path for q in fakes.requests)


async def test_the_dashboard_asks_three_calls_after_the_session_and_the_reference_data() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        await sign_in(client)
        fakes.requests.clear()
        assert (await client.get("/")).status_code == 200
        assert asked(fakes) == [
            "/api/v1/case-stats",
            "/api/v1/cases",
            "/api/v1/compliance",
            "/api/v1/me",
            "/api/v1/plans",
            "/api/v1/units",
        ]
        fakes.requests.clear()
        page = await client.get("/")  # the plans and units answered a moment ago serve again
        assert asked(fakes) == [
            "/api/v1/case-stats",
            "/api/v1/cases",
            "/api/v1/compliance",
            "/api/v1/me",
        ]
        assert 'hx-get="/tong-quan/ky-bao-cao?unit_id=555"' in page.text
        assert 'href="/tong-quan/ky-bao-cao?unit_id=555"' in page.text  # without JavaScript


async def test_the_latest_periods_are_a_part_for_htmx_and_a_page_without_javascript() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        await sign_in(client)
        fakes.requests.clear()
        part = await client.get("/tong-quan/ky-bao-cao", headers={"HX-Request": "true"})
        assert part.status_code == 200
        assert part.text.lstrip().startswith("<div") and "<html" not in part.text
        assert "Tỷ lệ báo cáo các kỳ gần nhất" in part.text
        (rates,) = [q for q in fakes.requests if q.url.path.startswith("/api/v1/reporting-")]
        assert rates.url.path == "/api/v1/reporting-rates/batch"  # one call for every period
        # the fake plan has one monthly schedule: its 3 latest periods, the latest first
        periods = rates.url.params["periods"].split(",")
        assert len(periods) == 3 and all(p.startswith("monthly:") for p in periods)
        assert periods == sorted(periods, reverse=True)
        page = await client.get("/tong-quan/ky-bao-cao?unit_id=555")
        assert page.status_code == 200 and "<html" in page.text
        assert "Nghĩa vụ báo cáo quá hạn" in page.text and "Thành phố Tuy Hoà" in page.text


async def test_reference_data_is_not_shared_between_roles_or_units_nor_kept_when_told() -> None:
    fakes = FakeServices()
    async with running(fakes.app()) as client:
        await sign_in(client)
        await client.get("/")
        fakes.role, fakes.unit_id = "admin", None
        await sign_in(client)
        fakes.requests.clear()
        await client.get("/")
        assert "/api/v1/units" in asked(fakes)  # the admin's tree is asked for, not reused
    fakes = FakeServices()
    async with running(fakes.app(reference_cache_seconds=0)) as client:
        await sign_in(client)
        await client.get("/")
        fakes.requests.clear()
        await client.get("/")
        assert "/api/v1/plans" in asked(fakes) and "/api/v1/units" in asked(fakes)


def test_a_reference_answer_is_forgotten_when_its_time_is_up() -> None:
    now = [100.0]
    kept = ReferenceAnswers(60, clock=lambda: now[0])
    kept.put("plans", {"items": []})
    now[0] = 159.9
    assert kept.get("plans") == {"items": []}
    now[0] = 160.0
    assert kept.get("plans") is None
    off = ReferenceAnswers(0, clock=lambda: now[0])
    off.put("plans", {"items": []})
    assert off.get("plans") is None
