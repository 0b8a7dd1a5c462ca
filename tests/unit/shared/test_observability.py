"""Observability without I/O: the correlation id of a request, the events it makes, the log
lines written meanwhile, and the request metrics (issue 14)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import generate_latest

from lhpn_shared import correlation
from lhpn_shared.contracts.events import make_event
from lhpn_shared.contracts.units import Unit
from lhpn_shared.http import Metrics, ops_router
from lhpn_shared.logs import CorrelationFilter, JsonFormatter
from portal.backend import Backend

UNIT = Unit(unit_id="22015", name="Phường 1", kind="phường", level="commune", parent_id="555")


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the services write: JSON lines through the filter that adds the correlation id."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(CorrelationFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def observed_app() -> tuple[FastAPI, Metrics, list[str | None]]:
    """An app with the shared request middleware; its route makes an event and logs a line."""
    app = FastAPI()
    metrics = Metrics("intake")
    metrics.install(app)
    app.include_router(ops_router(checks={}, metrics=metrics))
    seen: list[str | None] = []

    @app.post("/api/v1/things/{thing_id}")
    async def make_thing(thing_id: str) -> dict[str, str | None]:
        event = make_event(
            "unit.upserted", UNIT, source="intake", occurred_at=datetime.now(UTC), unit_id="1"
        )
        logging.getLogger("intake").info("thing made", extra={"thing_id": thing_id})
        seen.append(event.correlation_id)
        return {"correlation_id": event.correlation_id}

    return app, metrics, seen


async def call(app: FastAPI, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post("/api/v1/things/a1", headers=headers or {})


async def test_a_request_id_given_by_the_caller_is_answered_carried_by_the_event_and_logged(
    log_lines: io.StringIO,
) -> None:
    app, _, seen = observed_app()

    r = await call(app, {"X-Request-ID": "req-2021.03.05:abc"})

    assert r.headers["X-Correlation-ID"] == "req-2021.03.05:abc"
    assert seen == ["req-2021.03.05:abc"]
    made = next(x for x in lines(log_lines) if x["msg"] == "thing made")
    assert made["correlation_id"] == "req-2021.03.05:abc"
    access = next(x for x in lines(log_lines) if x["msg"] == "request")
    assert access["correlation_id"] == "req-2021.03.05:abc"
    assert access["route"] == "/api/v1/things/{thing_id}"  # the template, never the ids
    assert access["status"] == 200


async def test_x_correlation_id_wins_over_x_request_id() -> None:
    app, _, seen = observed_app()

    r = await call(app, {"X-Correlation-ID": "corr-1", "X-Request-ID": "req-1"})

    assert r.headers["X-Correlation-ID"] == "corr-1" and seen == ["corr-1"]


@pytest.mark.parametrize(
    "given",
    ["Nguyen Thi Hoa 0905123456", "a b", "x" * 129, "", "<script>"],
    ids=["a-name-and-phone", "spaces", "too-long", "empty", "markup"],
)
async def test_a_header_that_is_not_a_plain_token_is_replaced_by_a_new_id(
    given: str, log_lines: io.StringIO
) -> None:
    app, _, seen = observed_app()

    r = await call(app, {"X-Request-ID": given})

    new = r.headers["X-Correlation-ID"]
    assert new != given and len(new) == 32 and seen == [new]
    assert given not in log_lines.getvalue() or given == ""


async def test_every_request_gets_an_id_of_its_own_and_none_leaks_to_the_next() -> None:
    app, _, seen = observed_app()

    first, second = await call(app), await call(app)

    assert first.headers["X-Correlation-ID"] != second.headers["X-Correlation-ID"]
    assert seen == [first.headers["X-Correlation-ID"], second.headers["X-Correlation-ID"]]
    assert correlation.current() is None


async def test_requests_are_counted_and_timed_per_route_template() -> None:
    app, metrics, _ = observed_app()

    for _ in range(3):
        await call(app)
    text = generate_latest(metrics.registry).decode()

    route = 'route="/api/v1/things/{thing_id}"'
    count = next(
        line
        for line in text.splitlines()
        if line.startswith("lhpn_http_request_duration_seconds_count") and route in line
    )
    assert count.endswith(" 3.0")
    assert (
        f'lhpn_http_requests_total{{method="POST",{route},service="intake",status="200"}} 3.0'
        in (text)
    )


async def test_metrics_run_their_probes_and_a_failing_probe_does_not_fail_the_scrape() -> None:
    app, metrics, _ = observed_app()
    calls: list[str] = []

    async def works() -> None:
        calls.append("works")

    async def fails() -> None:
        calls.append("fails")
        raise ConnectionError("broker gone")

    metrics.probe("a", fails)
    metrics.probe("b", works)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get("/metrics")

    assert r.status_code == 200 and calls == ["fails", "works"]
    assert "lhpn_http_request_duration_seconds" in r.text


def test_an_event_made_outside_any_request_has_no_correlation_id_unless_given() -> None:
    def event(cid: str | None = None) -> str | None:
        return make_event(
            "unit.upserted",
            UNIT,
            source="intake",
            occurred_at=datetime.now(UTC),
            correlation_id=cid,
        ).correlation_id

    assert event() is None
    assert event("given") == "given"
    with correlation.correlated("outer"):
        assert event() == "outer"
        assert event("given") == "given"


def test_an_event_is_handled_under_its_correlation_id_or_else_its_own_id() -> None:
    assert correlation.for_event("abc-1", "5f0c") == "abc-1"
    assert correlation.for_event(None, "5f0c") == "5f0c"
    assert correlation.for_event("Nguyễn Thị Hoa", "5f0c") == "5f0c"


def test_a_scope_ends_what_was_set_inside_it() -> None:
    with correlation.correlated("request"):
        with correlation.scope():
            correlation.set_current("event")
            assert correlation.current() == "event"
        assert correlation.current() == "request"
    assert correlation.current() is None


def test_a_log_line_outside_any_request_has_no_correlation_id(log_lines: io.StringIO) -> None:
    logging.getLogger("lhpn").info("started")

    (line,) = lines(log_lines)
    assert "correlation_id" not in line


def test_list_and_mapping_fields_are_logged_as_json_and_other_values_as_text(
    log_lines: io.StringIO,
) -> None:
    """`lhpn aggregation reroute` reads the partitions' event counts from a log line."""
    logging.getLogger("lhpn").info(
        "partitions rerouted",
        extra={"events": [12, 30], "by": {"p0": (1, 2)}, "at": date(2025, 7, 1), "n": 3},
    )

    (line,) = lines(log_lines)
    assert (line["events"], line["by"], line["at"], line["n"]) == (
        [12, 30],
        {"p0": [1, 2]},
        "2025-07-01",
        3,
    )


def test_a_field_json_cannot_hold_is_logged_as_text(log_lines: io.StringIO) -> None:
    looped: list[object] = [1]
    looped.append(looped)
    logging.getLogger("lhpn").info("odd", extra={"keys": {(1, 2): "a"}, "looped": looped})

    (line,) = lines(log_lines)
    assert (line["keys"], line["looped"]) == ("{(1, 2): 'a'}", "[1, [...]]")


async def test_the_portal_passes_the_page_s_correlation_id_on_to_the_service() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"items": []})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        backend = Backend(client, {"intake": "http://intake"}, timeout=1.0, export_timeout=1.0)
        with correlation.correlated("page-42"):
            await backend.get("intake", "/api/v1/units", token="t")
        await backend.get("intake", "/api/v1/units", token="t")

    assert sent[0].headers["X-Correlation-ID"] == "page-42"
    assert sent[0].headers["Authorization"] == "Bearer t"
    assert "X-Correlation-ID" not in sent[1].headers


async def test_the_portal_tells_the_service_which_client_it_calls_for() -> None:
    """Behind the portal, intake counts sign-in failures (and audits) against the person's
    address: the portal passes it on in X-Forwarded-For, only when it is an IP address."""
    sent: list[httpx.Request] = []

    def service(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"items": []})

    portal = FastAPI()
    Metrics("portal").install(portal)
    async with httpx.AsyncClient(transport=httpx.MockTransport(service)) as to_services:
        backend = Backend(to_services, {"intake": "http://intake"}, timeout=1.0, export_timeout=1.0)

        @portal.get("/page")
        async def page() -> dict[str, str]:
            await backend.get("intake", "/api/v1/units", token="t")
            return {}

        for client in (("203.0.113.7", 51000), ("not-an-address", 51000)):
            transport = httpx.ASGITransport(app=portal, client=client)
            async with httpx.AsyncClient(transport=transport, base_url="http://portal") as user:
                assert (await user.get("/page")).status_code == 200
        await backend.get("intake", "/api/v1/units", token="t")  # outside any request

    assert sent[0].headers["X-Forwarded-For"] == "203.0.113.7"
    assert "X-Forwarded-For" not in sent[1].headers
    assert "X-Forwarded-For" not in sent[2].headers
