"""The portal against addresses where nothing listens: real refused connections, not mocks."""

from __future__ import annotations

import pytest

from portal.app import create_app
from portal.settings import PortalSettings
from tests.support.http import running
from tests.support.infra import free_port
from tests.unit.portal.fakes import csrf_of

pytestmark = pytest.mark.integration


async def test_sign_in_says_the_login_service_is_not_answering_when_nothing_listens() -> None:
    nowhere = {
        f"{s}_url": f"http://127.0.0.1:{free_port()}"
        for s in ("intake", "cases", "reminders", "aggregation")
    }
    app = create_app(PortalSettings(**nowhere, backend_timeout_seconds=2))
    async with running(app) as client:
        page = await client.get("/dang-nhap")
        r = await client.post(
            "/dang-nhap",
            data={"csrf_token": csrf_of(page.text), "username": "a", "password": "b"},
        )
        assert r.status_code == 401
        assert "Dịch vụ đăng nhập tạm thời không trả lời" in r.text
        assert "Traceback" not in r.text and "ConnectError" not in r.text
