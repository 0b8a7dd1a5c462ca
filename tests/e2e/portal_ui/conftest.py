"""The whole stack as processes (four services and the portal) and a headless browser, shared
by every file of this package (started once per test worker that runs one of them: each file
uses units and data of its own)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lhpn_shared.broker import TOPOLOGY
from tests.e2e.portal_ui.browser import ARTEFACTS, CHROMIUM_ARGS, chromium_path
from tests.support.amqp import purge_queues
from tests.support.infra import DevMongo, RabbitVhost
from tests.support.process import ServiceProcess

SERVICES = ("cases", "reminders", "aggregation", "intake")
PASSWORD = "matkhau-e2e-123"
USERS = {
    "xa-phuong1": ("commune_staff", "22015"),  # Phường 1, in Thành phố Tuy Hoà
    "huyen-tuyhoa": ("district_staff", "555"),
    "huyen-songcau": ("district_staff", "557"),  # another district
}


@pytest.fixture(scope="package")
def stack(
    devmongo: DevMongo, rabbit: RabbitVhost, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    asyncio.run(purge_queues(rabbit.url, *TOPOLOGY))
    logs = tmp_path_factory.mktemp("portal-stack")
    run = uuid.uuid4().hex[:6]
    procs = {
        name: ServiceProcess(
            name,
            {
                "MONGO_URL": devmongo.url,
                "MONGO_DB": f"{name}_{run}",
                "RABBIT_URL": rabbit.url_for(name),  # each service its own broker user
                "SMTP_PORT": "1",
                "SWEEP_INTERVAL_SECONDS": "0",
            },
            logs,
        )
        for name in SERVICES
    }
    urls = {f"{name.upper()}_URL": procs[name].url for name in SERVICES}
    procs["portal"] = ServiceProcess("portal", urls, logs)
    started: list[ServiceProcess] = []
    try:
        for p in procs.values():
            p.start(timeout=90)
            started.append(p)
        yield procs
        # the portal stops gracefully on SIGTERM like the services (issue 12): status 0, not a
        # death by signal nor the SIGKILL `stop` sends when its wait runs out
        began = time.monotonic()
        status = procs["portal"].stop()
        print(f"portal stopped on SIGTERM in {time.monotonic() - began:.1f} s, status {status}")
        assert status == 0, procs["portal"].log_path.read_text()[-2000:]
    finally:
        for p in reversed(started):
            p.stop()


@pytest.fixture(scope="package")
def accounts(stack: dict[str, ServiceProcess]) -> dict[str, str]:
    """The staff accounts the scenarios sign in with, created by the admin over intake's API."""
    intake = stack["intake"].url
    with httpx.Client(timeout=10) as http:
        tok = http.post(
            f"{intake}/api/v1/auth/token", data={"username": "admin", "password": "admin"}
        )
        auth = {"Authorization": f"Bearer {tok.json()['access_token']}"}
        for username, (role, unit_id) in USERS.items():
            r = http.post(
                f"{intake}/api/v1/users",
                json={"username": username, "password": PASSWORD, "role": role, "unit_id": unit_id},
                headers=auth,
            )
            assert r.status_code in (201, 409), r.text
    return {u: PASSWORD for u in USERS}


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        pytest.fail("chromium is not installed: deploy/test.sh installs it (apt chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """Pages in a fresh context (own cookies), Vietnamese locale and time zone; console errors
    (a CSP refusal among them) are collected on `page.console_errors`."""
    contexts: list[Any] = []

    def make(width: int = 1280, height: int = 900) -> Any:
        ctx = browser.new_context(
            viewport={"width": width, "height": height},
            locale="vi-VN",
            timezone_id="Asia/Ho_Chi_Minh",
        )
        contexts.append(ctx)
        page = ctx.new_page()
        page.console_errors = []
        page.on(
            "console",
            lambda m: page.console_errors.append(m.text) if m.type == "error" else None,
        )
        page.set_default_timeout(20_000)
        return page

    yield make
    for ctx in contexts:
        ctx.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Printed by a run on one process; with test workers, the controller never loads this
    file: the screenshots are in the same folder (tests/e2e/portal_ui/browser.py)."""
    if ARTEFACTS.exists():
        terminalreporter.write_line(f"portal e2e screenshots: {ARTEFACTS}")
