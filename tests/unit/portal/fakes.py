"""The services as the portal sees them, in memory: an httpx transport that answers the few
routes a test needs with the shapes the real APIs return. No network, no processes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

import httpx

from portal.app import create_app
from portal.settings import PortalSettings

PLAN = {
    "plan_id": "PY-2021-460",
    "year": 2021,
    "number": "460/KH-BTV",
    "issuing_unit_id": "54",
    "title": "Kế hoạch năm 2021",
    "targets": [],
    "report_schedules": [
        {
            "report_type": "monthly",
            "title": "Báo cáo kết quả thực hiện hàng tháng",
            "levels": ["commune", "district"],
            "indicators": ["supervision.count"],
            "periods": [
                {
                    "period": f"2021-{m:02d}",
                    "window_start_on": "2021-01-01",
                    "window_end_on": None,
                    "due_at": {
                        "commune": f"2021-{m:02d}-16T00:00:00+07:00",
                        "district": f"2021-{m:02d}-18T00:00:00+07:00",
                    },
                }
                for m in range(1, 13)
            ],
        }
    ],
}

UNITS = [
    {
        "unit_id": "555",
        "name": "Thành phố Tuy Hoà",
        "kind": "thành phố",
        "level": "district",
        "parent_id": "54",
    },
    {
        "unit_id": "22015",
        "name": "Phường 1",
        "kind": "phường",
        "level": "commune",
        "parent_id": "555",
    },
]

COMPLIANCE = {
    "plan_id": "PY-2021-460",
    "unit": {"unit_id": "555", "name": "Thành phố Tuy Hoà", "level": "district"},
    "targets": [
        {
            "code": "T2",
            "title": "Giám sát ít nhất 01 chính sách",
            "in_scope": 17,
            "met": 1,
            "percent": 5.88,
            "goal_percent": 100.0,
            "goal_reached": False,
            "not_met": [{"unit_id": "22018", "name": "Phường 8", "level": "commune"}],
            "children": [],
        },
    ],
}

RATES = {
    "expected": 17,
    "received": 1,
    "on_time": 0,
    "reporting_rate": 5.88,
    "on_time_rate": 0.0,
    "missing": [],
}

CASE_STATS = {"received": 2, "overdue": 1, "by_status": {"received": 1, "accepted": 1}}


Handler = Callable[[httpx.Request], httpx.Response | None]


class FakeServices:
    """Answers by (service port, method, path); `down` lists services that refuse connections;
    `extra` handlers run first (return None to fall through)."""

    PORTS: ClassVar[dict[str, int]] = {
        "intake": 9101,
        "cases": 9102,
        "reminders": 9103,
        "aggregation": 9104,
    }

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.extra: list[Handler] = []
        self.requests: list[httpx.Request] = []
        self.token_expires_in = 3600
        self.role, self.unit_id = "district_staff", "555"
        """what intake says of whoever signs in"""
        self.ended: set[str] = set()
        """usernames whose sessions intake no longer accepts (disabled, password reset…)"""

    def settings(self, **kw: Any) -> PortalSettings:
        urls = {f"{name}_url": f"http://127.0.0.1:{port}" for name, port in self.PORTS.items()}
        return PortalSettings(**{**urls, **kw})

    def app(self, **kw: Any) -> Any:
        clock = kw.pop("clock", None)
        return create_app(self.settings(**kw), clock=clock, transport=httpx.MockTransport(self))

    def service_of(self, request: httpx.Request) -> str:
        return next(n for n, p in self.PORTS.items() if request.url.port == p)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        service = self.service_of(request)
        if service in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        for handler in self.extra:
            answer = handler(request)
            if answer is not None:
                return answer
        path, method = request.url.path, request.method
        if (service, method, path) == ("intake", "POST", "/api/v1/auth/token"):
            form = dict(x.split("=", 1) for x in request.content.decode().split("&"))
            if form.get("password") != "matkhau123":
                return _json({"detail": "Sai tên đăng nhập hoặc mật khẩu."}, 401)
            return _json(
                {
                    "access_token": "tok-" + form["username"],
                    "token_type": "bearer",
                    "expires_in": self.token_expires_in,
                    "role": self.role,
                    "unit_id": self.unit_id,
                }
            )
        if (service, method, path) == ("intake", "GET", "/api/v1/me"):
            username = request.headers.get("authorization", "").removeprefix("Bearer tok-")
            if not username or username in self.ended:
                return _json({"detail": "Phiên đăng nhập không còn hiệu lực."}, 401)
            return _json(
                {
                    "subject": username,
                    "username": username,
                    "kind": "user",
                    "role": self.role,
                    "unit_id": self.unit_id,
                    "unit_name": "Thành phố Tuy Hoà" if self.unit_id == "555" else None,
                }
            )
        if (service, method, path) == ("intake", "POST", "/api/v1/activities"):
            body = json.loads(request.content)
            return _json({**body, "revision": 1, "voided": False}, 201)
        if (service, method, path) == ("aggregation", "GET", "/api/v1/reporting-rates/batch"):
            asked = request.url.params["periods"].split(",")
            return _json({"rates": [{**RATES, "period": p.partition(":")[2]} for p in asked]})
        routes: dict[tuple[str, str], Any] = {
            ("intake", "/api/v1/plans"): {"items": [PLAN], "next_cursor": None},
            ("intake", "/api/v1/units"): {"items": UNITS, "next_cursor": None},
            ("intake", "/api/v1/units/555"): UNITS[0],
            ("intake", "/api/v1/activities"): {"items": [], "next_cursor": None},
            ("aggregation", "/api/v1/compliance"): COMPLIANCE,
            ("aggregation", "/api/v1/reporting-rates"): RATES,
            ("aggregation", "/api/v1/case-stats"): CASE_STATS,
            ("reminders", "/api/v1/obligations"): {"items": [], "next_cursor": None},
            ("cases", "/api/v1/cases"): {"items": [], "next_cursor": None},
        }
        if method == "GET" and (service, path) in routes:
            return _json(routes[(service, path)])
        return _json({"detail": "Not Found"}, 404)


def _json(body: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )


def csrf_of(html: str) -> str:
    """The form token of the first form on a page."""
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


async def sign_in(client: httpx.AsyncClient, next_url: str = "/") -> httpx.Response:
    page = await client.get("/dang-nhap")
    return await client.post(
        "/dang-nhap",
        data={
            "csrf_token": csrf_of(page.text),
            "username": "huyen",
            "password": "matkhau123",
            "next": next_url,
        },
    )
