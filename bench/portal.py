"""Portal pages against the raw API call behind each, measured in the same run (a script, not
a test).

    uv run python bench/portal.py [--requests 100]

Every page first checks the session with intake's `GET /api/v1/me`; intake's plans and unit
tree are kept 60 s per role and unit (`REFERENCE_CACHE_SECONDS`), so the warm-up rounds fill
them, as a user's first page does. The dashboard is two requests: the page, then its second part
(the rates of the latest periods) that htmx asks for at once; both are measured.

Needs RabbitMQ running (deploy/rabbitmq.sh) and the DevMongo jars (deploy/devmongo.sh build);
starts its own DevMongo on a free port, a fresh RabbitMQ vhost, the four services and the portal
as processes with the default data (Phú Yên 2021), records one activity, one report and one
case, then asks each page `--requests` times in a row as a district user (Thành phố Tuy Hoà;
the admin page as the admin) and, interleaved, the one API call the page cannot do without,
with the same token. Prints p50/p95 of both and the ratio of the p95s. Target: every page
under 300 ms p95.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.table import Row, rss_mib
from lhpn_shared.broker import TOPOLOGY
from tests.support.amqp import purge_queues
from tests.support.infra import DevMongo, RabbitVhost, free_port
from tests.support.process import ServiceProcess

SERVICES = ("cases", "reminders", "aggregation", "intake")
PASSWORD = "matkhau-bench-123"
TARGET_MS = 300


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18] if len(samples) >= 20 else max(samples)


def signed_in(portal: str, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=portal, timeout=30)
    page = client.get("/dang-nhap")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, "no form token on the sign-in page"
    r = client.post(
        "/dang-nhap",
        data={"csrf_token": token.group(1), "username": username, "password": password},
    )
    assert r.status_code == 303, r.text[:500]
    return client


def seed(urls: dict[str, str]) -> tuple[str, dict[str, str], dict[str, str], str, str]:
    """Users, one activity, one report, one case; returns the tokens and ids the rows need."""
    with httpx.Client(timeout=30) as http:

        def token(user: str, password: str) -> dict[str, str]:
            r = http.post(
                f"{urls['intake']}/api/v1/auth/token",
                data={"username": user, "password": password},
            )
            return {"Authorization": f"Bearer {r.json()['access_token']}"}

        admin = token("admin", "admin")
        for name, role, unit in (
            ("bench-huyen", "district_staff", "555"),
            ("bench-xa", "commune_staff", "22015"),
        ):
            http.post(
                f"{urls['intake']}/api/v1/users",
                json={"username": name, "password": PASSWORD, "role": role, "unit_id": unit},
                headers=admin,
            )
        district, commune = token("bench-huyen", PASSWORD), token("bench-xa", PASSWORD)
        activity = http.post(
            f"{urls['intake']}/api/v1/activities",
            json={
                "unit_id": "22015",
                "kind": "supervision",
                "occurred_on": "2021-03-05",
                "title": "Giám sát chính sách hỗ trợ phụ nữ nghèo",
                "metrics": {"recommendations": 3, "recommendations_accepted": 2},
            },
            headers=commune,
        ).json()["activity_id"]
        http.post(
            f"{urls['intake']}/api/v1/reports",
            json={
                "unit_id": "22015",
                "report_type": "monthly",
                "period": "2021-12",
                "indicators": {"supervision.count": 1},
            },
            headers=commune,
        )
        case = http.post(
            f"{urls['cases']}/api/v1/cases",
            json={
                "unit_id": "555",
                "kind": "complaint",
                "topic": "land",
                "channel": "walk_in",
                "received_on": "2021-04-02",
                "requester": {"name": "Người Thử"},
            },
            headers=district,
        ).json()["case_id"]
    return activity, district, admin, case, str(uuid.uuid4())


def timings(
    n: int, page: httpx.Client, path: str, api: httpx.Client, call: str, headers: dict[str, str]
) -> tuple[list[float], list[float]]:
    """`path` may be several paths joined by ' + ': asked one after another, timed together
    (the dashboard as a browser gets it: the page, then its second part)."""
    pages: list[float] = []
    raw: list[float] = []
    for i in range(n + 5):  # 5 warm-up rounds
        t = time.perf_counter()
        for one in path.split(" + "):
            # the dashboard's second part is asked by htmx, as the browser does
            asked_as = {"HX-Request": "true"} if one.startswith("/tong-quan/") else {}
            r = page.get(one, headers=asked_as)
            assert r.status_code == 200, (one, r.status_code, r.text[:300])
        dt_page = time.perf_counter() - t
        t = time.perf_counter()
        a = api.get(call, headers=headers)
        dt_raw = time.perf_counter() - t
        assert a.status_code == 200, (call, a.status_code, a.text[:300])
        if i >= 5:
            pages.append(dt_page * 1000)
            raw.append(dt_raw * 1000)
    return pages, raw


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    measure(requests=args.requests, verbose=True)


def measure(quick: bool = False, requests: int | None = None, verbose: bool = False) -> list[Row]:
    """The pages' p95 against their API call's, and every process's memory (RSS): idle once
    started with the default data, and after the pages were asked. For bench/run.py."""
    n = requests or (15 if quick else 100)
    out: list[Row] = []
    data = Path(tempfile.mkdtemp(prefix="lhpn-bench-portal-"))
    mongo = DevMongo(port=free_port(), data_dir=data / "mongo")
    # development, asked for; the broker users of this run (global in RabbitMQ) get a prefix
    # of their own, which the service processes inherit
    os.environ["ENV"] = "development"
    os.environ["BROKER_USER_PREFIX"] = f"lhpn-b{uuid.uuid4().hex[:8]}-"
    vhost = RabbitVhost.create()
    mongo.start()
    procs: list[ServiceProcess] = []
    try:
        asyncio.run(purge_queues(vhost.url, *TOPOLOGY))
        env = {
            "MONGO_URL": mongo.url,
            "SMTP_PORT": "1",
            "SWEEP_INTERVAL_SECONDS": "0",
        }
        by_name = {
            n: ServiceProcess(n, {**env, "RABBIT_URL": vhost.url_for(n)}, data) for n in SERVICES
        }
        urls = {n: p.url for n, p in by_name.items()}
        by_name["portal"] = ServiceProcess(
            "portal", {f"{n.upper()}_URL": u for n, u in urls.items()}, data
        )
        for p in by_name.values():
            p.start(timeout=120)
            procs.append(p)
        activity, district, admin, case, _ = seed(urls)
        time.sleep(3)  # let aggregation and reminders take in the seeded events
        idle = {name: rss_mib(p.proc.pid if p.proc else None) for name, p in by_name.items()}
        portal = by_name["portal"].url
        staff = signed_in(portal, "bench-huyen", PASSWORD)
        operator = signed_in(portal, "admin", "admin")
        api = httpx.Client(timeout=30)
        i, c, r, a = urls["intake"], urls["cases"], urls["reminders"], urls["aggregation"]
        as_of = "2021-12-31T23%3A59%3A59%2B07%3A00"
        rows = [
            (
                "Tổng quan /",
                staff,
                "/",
                f"{a}/api/v1/compliance?plan_id=PY-2021-460&unit_id=555&as_of={as_of}",
                district,
            ),
            (
                "Tổng quan, phần 2: tỷ lệ các kỳ gần nhất (htmx)",
                staff,
                "/tong-quan/ky-bao-cao?unit_id=555",
                f"{a}/api/v1/reporting-rates?report_type=monthly&period=2021-12&unit_id=555"
                "&plan_id=PY-2021-460",
                district,
            ),
            (
                "Tổng quan, cả hai phần nối tiếp (như trình duyệt)",
                staff,
                "/ + /tong-quan/ky-bao-cao?unit_id=555",
                f"{a}/api/v1/compliance?plan_id=PY-2021-460&unit_id=555&as_of={as_of}",
                district,
            ),
            (
                "Hoạt động /hoat-dong",
                staff,
                "/hoat-dong",
                f"{i}/api/v1/activities?unit_id=555&limit=20",
                district,
            ),
            (
                "Hoạt động: một hoạt động",
                staff,
                f"/hoat-dong/{activity}",
                f"{i}/api/v1/activities/{activity}",
                district,
            ),
            (
                "Hoạt động: biểu mẫu giám sát",
                staff,
                "/hoat-dong/moi/supervision",
                f"{i}/api/v1/units?unit_id=555&limit=5000",
                district,
            ),
            (
                "Báo cáo /bao-cao",
                staff,
                "/bao-cao",
                f"{r}/api/v1/obligations?unit_id=555&limit=1000",
                district,
            ),
            (
                "Báo cáo: biểu mẫu nộp",
                staff,
                "/bao-cao/nop?report_type=monthly&period=2021-12",
                f"{i}/api/v1/reports?unit_id=555&report_type=monthly&period=2021-12",
                district,
            ),
            (
                "Vụ việc /vu-viec",
                staff,
                "/vu-viec",
                f"{c}/api/v1/cases?unit_id=555&overdue=false&limit=20",
                district,
            ),
            ("Vụ việc: một hồ sơ", staff, f"/vu-viec/{case}", f"{c}/api/v1/cases/{case}", district),
            (
                "Vụ việc: biểu mẫu mở",
                staff,
                "/vu-viec/moi",
                f"{i}/api/v1/units?unit_id=555&limit=5000",
                district,
            ),
            (
                "Quản trị /quan-tri (admin)",
                operator,
                "/quan-tri",
                f"{i}/api/v1/units?limit=5000",
                admin,
            ),
            (
                "Quản trị: người dùng (admin)",
                operator,
                "/quan-tri/nguoi-dung",
                f"{i}/api/v1/users?limit=50",
                admin,
            ),
            (
                "Quản trị: một tài khoản (admin)",
                operator,
                "/quan-tri/nguoi-dung/bench-xa",
                f"{i}/api/v1/users/bench-xa",
                admin,
            ),
            (
                "Quản trị: khóa API (admin)",
                operator,
                "/quan-tri/khoa-api",
                f"{i}/api/v1/api-keys",
                admin,
            ),
            (
                "Quản trị: chính sách nhắc hạn (admin)",
                operator,
                "/quan-tri/chinh-sach-nhac-han",
                f"{r}/api/v1/reminder-policy",
                admin,
            ),
            (
                "Quản trị: hàng đợi lỗi, 4 dịch vụ (admin)",
                operator,
                "/quan-tri/hang-doi-loi",
                f"{i}/api/v1/dead-letters",
                admin,
            ),
            ("Tài khoản của tôi", staff, "/tai-khoan", f"{i}/api/v1/me", district),
        ]
        if verbose:
            load = os.getloadavg()[0]
            print(f"\n{n} requests per page, one after another (after 5 warm-up)")
            print(f"load average at the start: {load:.1f} on {os.cpu_count()} cores\n")
            print(
                "| page | page p50 ms | page p95 ms | API call behind it | API p50 ms "
                "| API p95 ms | page p95 / API p95 | < 300 ms |"
            )
            print("|---|---|---|---|---|---|---|---|")
        for label, client, path, call, headers in rows:
            pages, raw = timings(n, client, path, api, call, headers)
            endpoint = call.split("/api/v1/", 1)[1].split("?", 1)[0]
            endpoint = re.sub(r"/[0-9a-f-]{36}$", "/{id}", endpoint)
            out.append(
                Row(
                    f"portal page {label}: p95 (baseline: GET /api/v1/{endpoint})",
                    p95(pages),
                    "ms",
                    p95(raw),
                    f"p95 < {TARGET_MS} ms",
                    p95(pages) < TARGET_MS,
                )
            )
            if verbose:
                print(
                    f"| {label} | {statistics.median(pages):.0f} | {p95(pages):.0f} "
                    f"| `GET /api/v1/{endpoint}` | {statistics.median(raw):.0f} "
                    f"| {p95(raw):.0f} | {p95(pages) / p95(raw):.1f}× "
                    f"| {'yes' if p95(pages) < TARGET_MS else 'NO'} |"
                )
        for name, p in by_name.items():
            out.append(Row(f"RSS {name}: idle, default data loaded", idle[name], "MiB"))
            out.append(
                Row(
                    f"RSS {name}: after the portal's pages were asked",
                    rss_mib(p.proc.pid if p.proc else None),
                    "MiB",
                )
            )
        if verbose:
            print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        for p in reversed(procs):
            p.stop()
        mongo.stop()
        vhost.delete()
        shutil.rmtree(data, ignore_errors=True)
    return out


if __name__ == "__main__":
    main()
