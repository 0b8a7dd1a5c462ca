"""The operator command `lhpn` against the running stack (issue 14): the four services as
processes on the real broker and DevMongo, the command as a process, as an operator runs it.

- units, plans, a reminder sweep, an aggregation rebuild and another system's broker account,
  each checked in the services it reaches;
- backup, wipe every database, restore: every figure of aggregation and every case, read by the
  staff of the union that holds it (personal data decrypted), is the same afterwards.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import bson
import httpx
import pytest
from aiormq.exceptions import ChannelAccessRefused
from pymongo import MongoClient

from lhpn_shared.broker import TOPOLOGY
from lhpn_shared.inbound import InboundBinding
from tests.support.amqp import purge_queues
from tests.support.http import eventually
from tests.support.infra import DevMongo, InboundSystem, RabbitVhost, free_port
from tests.support.process import ServiceProcess

pytestmark = pytest.mark.e2e

SERVICES = ("cases", "reminders", "aggregation", "intake")
REPO = Path(__file__).resolve().parents[2]
DEFAULT_PLAN = REPO / "services" / "intake" / "intake" / "data" / "plan-PY-2021-460.json"
AS_OF = "2021-12-31T12:00:00+07:00"


@dataclass
class Stack:
    procs: dict[str, ServiceProcess]
    databases: dict[str, str]
    mongo_url: str

    def url(self, name: str) -> str:
        return self.procs[name].url

    def start(self, timeout: float = 120.0) -> None:
        """Every service at once, then wait until each answers /readyz."""
        for p in self.procs.values():
            log = p.log_path.open("ab")
            p.proc = subprocess.Popen(
                [sys.executable, "-m", p.name], cwd=REPO, env=p.env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        waiting = set(self.procs)
        while waiting and time.monotonic() < deadline:
            for name in sorted(waiting):
                p = self.procs[name]
                assert p.proc is not None
                if p.proc.poll() is not None:
                    raise RuntimeError(f"{name} exited: {p.log_path.read_text()[-3000:]}")
                try:
                    if httpx.get(f"{p.url}/readyz", timeout=1).status_code == 200:
                        waiting.discard(name)
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        if waiting:
            raise RuntimeError(f"not ready within {timeout}s: {sorted(waiting)}")

    def stop(self) -> None:
        for p in self.procs.values():
            p.stop()

    def cli_env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "LHPN_INTAKE_URL": self.url("intake"),
            "LHPN_REMINDERS_URL": self.url("reminders"),
            "ADMIN_USERNAME": "admin",
            "ADMIN_PASSWORD": "admin",
            "MONGO_URL": self.mongo_url,
            "COLUMNS": "120",
            **extra,
        }


def lhpn(
    stack: Stack, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the operator command as a process; its output (progress, messages) is kept."""
    return subprocess.run(
        [sys.executable, "-m", "lhpn_cli", *args],
        cwd=REPO,
        env=stack.cli_env(**env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def stack(
    devmongo: DevMongo, rabbit: RabbitVhost, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    asyncio.run(purge_queues(rabbit.url, *TOPOLOGY, *(f"{q}.dlq" for q in TOPOLOGY)))
    run = uuid.uuid4().hex[:6]
    logs = tmp_path_factory.mktemp("operator-stack")
    databases = {name: f"ops_{run}_{name}" for name in SERVICES}
    procs = {
        name: ServiceProcess(
            name,
            {
                "MONGO_URL": devmongo.url,
                "MONGO_DB": databases[name],
                "RABBIT_URL": rabbit.url_for(name),
                "INBOUND_SYSTEMS": rabbit.inbound_systems,
                "SMTP_PORT": str(free_port()),  # no mail server: deliveries fail and retry
                "SWEEP_INTERVAL_SECONDS": "0",  # sweeps only when the operator runs one
                "RELAY_IDLE_SECONDS": "0.2",
            },
            logs,
        )
        for name in SERVICES
    }
    stack = Stack(procs, databases, devmongo.url)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


# ---- reading the services --------------------------------------------------------------------


async def token(
    http: httpx.AsyncClient, stack: Stack, username: str, password: str
) -> dict[str, str]:
    r = await http.post(
        f"{stack.url('intake')}/api/v1/auth/token",
        data={"username": username, "password": password},
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def figures(http: httpx.AsyncClient, stack: Stack, auth: dict[str, str]) -> dict[str, Any]:
    """Every answer of aggregation this test looks at, for the province and one district."""
    agg = stack.url("aggregation")
    queries = {
        "compliance-54": (
            "/api/v1/compliance",
            {"plan_id": "PY-2021-460", "unit_id": "54", "as_of": AS_OF},
        ),
        "compliance-555": (
            "/api/v1/compliance",
            {"plan_id": "PY-2021-460", "unit_id": "555", "as_of": AS_OF},
        ),
        "rates-thematic": (
            "/api/v1/reporting-rates",
            {"report_type": "thematic_annual", "period": "2021", "unit_id": "54"},
        ),
        "rates-monthly": (
            "/api/v1/reporting-rates",
            {"report_type": "monthly", "period": "2021-03", "unit_id": "54"},
        ),
        "indicators": ("/api/v1/indicators", {"unit_id": "54", "period": "2021"}),
        "case-stats": ("/api/v1/case-stats", {"unit_id": "54", "period": "2021"}),
    }
    out: dict[str, Any] = {}
    for name, (path, params) in queries.items():
        r = await http.get(f"{agg}{path}", params=params, headers=auth)
        assert r.status_code == 200, (name, r.text)
        answer = r.json()
        answer.pop("counted_at", None)  # case statistics say when they were counted (query time)
        out[name] = answer
    return out


# ---- the commands ----------------------------------------------------------------------------


async def test_the_command_loads_units_imports_a_plan_sweeps_and_rebuilds_on_the_running_stack(
    stack: Stack, rabbit: RabbitVhost, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        admin = await token(http, stack, "admin", "admin")

        async def t2_in_scope() -> int | None:
            r = await http.get(
                f"{stack.url('aggregation')}/api/v1/compliance",
                params={"plan_id": "PY-2021-460", "unit_id": "555", "as_of": AS_OF},
                headers=admin,
            )
            if r.status_code != 200:
                return None
            return next(t["in_scope"] for t in r.json()["targets"] if t["code"] == "T2")

        assert await eventually(t2_in_scope, timeout=60) == 17  # the district and its communes

        # units: a commune of our own under 555 reaches intake and aggregation
        units = tmp_path / "units.csv"
        units.write_text(
            "unit_id,name,kind,level,parent_id,valid_from,valid_to\n"
            "22999,Xã Thử Nghiệm,xã,commune,555,2021-01-01,\n",
            encoding="utf-8",
        )
        assert "Đơn vị mới: 1" in ok(lhpn(stack, "units", "load", "--csv", str(units)))
        r = await http.get(f"{stack.url('intake')}/api/v1/units/22999", headers=admin)
        assert r.status_code == 200 and r.json()["name"] == "Xã Thử Nghiệm"
        await eventually(lambda: _equals(t2_in_scope, 18), timeout=20)

        # plans: a new plan is published to every service; the same file again changes nothing
        plan = json.loads(DEFAULT_PLAN.read_text(encoding="utf-8"))
        plan.update(plan_id="PY-2021-CLI", number="999/KH-BTV")
        plan["report_schedules"] = [
            s for s in plan["report_schedules"] if s["report_type"] == "thematic_annual"
        ]
        plan_file = tmp_path / "plan.json"
        plan_file.write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
        assert "Đã ban hành: 1" in ok(lhpn(stack, "plans", "import", str(plan_file)))
        assert "không thay đổi: 1" in ok(lhpn(stack, "plans", "import", str(plan_file)))
        r = await http.get(f"{stack.url('intake')}/api/v1/plans/PY-2021-CLI", headers=admin)
        assert r.status_code == 200 and r.json()["revision"] == 1

        async def obligations_of_new_plan() -> bool:
            r = await http.get(
                f"{stack.url('reminders')}/api/v1/obligations",
                params={"unit_id": "555", "report_type": "thematic_annual", "period": "2021"},
                headers=admin,
            )
            return r.status_code == 200 and any(
                o["plan_id"] == "PY-2021-CLI" for o in r.json()["items"]
            )

        await eventually(obligations_of_new_plan, timeout=30)
        bad = tmp_path / "bad-plan.json"
        bad.write_text(json.dumps({**plan, "year": "hai nghìn"}), encoding="utf-8")
        refused = lhpn(stack, "plans", "import", str(bad))
        assert refused.returncode == 1 and "year" in refused.stderr

        # a sweep as of 13/01/2021 reminds the communes of January's monthly report (due before
        # the 16th); the same sweep again sends nothing
        first = ok(lhpn(stack, "reminders", "sweep", "--as-of", "2021-01-13T08:00:00+07:00"))
        again = ok(lhpn(stack, "reminders", "sweep", "--as-of", "2021-01-13T08:00:00+07:00"))
        r = await http.get(
            f"{stack.url('reminders')}/api/v1/notifications",
            params={"unit_id": "22015", "limit": "1000"},
            headers=admin,
        )
        assert r.status_code == 200 and r.json()["items"], "the sweep sent nothing"
        assert "0 thông báo được gửi lần này" not in first
        assert "0 thông báo được gửi lần này" in again

        # a rebuild gives the same answers as before it
        before = await figures(http, stack, admin)
        done = ok(lhpn(stack, "aggregation", "rebuild", MONGO_DB=stack.databases["aggregation"]))
        assert "Đã dựng lại số liệu tổng hợp" in done

        async def same_again() -> bool:
            return await figures(http, stack, admin) == before

        await eventually(same_again, timeout=30)

    # another system's broker account: it may publish its routing key on lhpn.inbound, nothing else
    user = f"{rabbit.prefix}sys-cli"
    rabbit.systems[user] = InboundSystem(
        InboundBinding(user, "555", frozenset({"activity.recorded.v1"})), "", ""
    )  # deleted with the session's vhost
    created = ok(
        lhpn(
            stack,
            "broker",
            "add-system",
            user,
            "--unit",
            "555",
            "--event",
            "activity.recorded.v1",
            "--rabbitmqctl",
            "--vhost",
            rabbit.vhost,
            "--prefix",
            rabbit.prefix,
        )
    )
    url = next(line for line in created.splitlines() if line.startswith("amqp://"))
    assert await _publish(url, "activity.recorded.v1") is True
    assert await _publish(url, "report.submitted.v1") is False  # not its key: the broker refuses


async def _equals(probe: Any, expected: object) -> bool:
    return bool(await probe() == expected)


async def _publish(url: str, routing_key: str) -> bool:
    """Publish on lhpn.inbound as the URL's user; False when the broker refuses it."""
    conn = await aio_pika.connect(url)
    try:
        channel = await conn.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("lhpn.inbound", ensure=False)
        user = url.split("://", 1)[1].split(":", 1)[0]
        try:
            await exchange.publish(
                aio_pika.Message(b"{}", user_id=user, content_type="application/json"),
                routing_key=routing_key,
            )
        except ChannelAccessRefused:
            return False
        return True
    finally:
        await conn.close()


# ---- must hold: backup, wipe, restore ----------------------------------------------------------


ACTIVITIES = [
    (
        "22015",
        "supervision",
        {"recommendations": 3, "recommendations_accepted": 2},
        {"role": "lead"},
    ),
    ("555", "draft_comment", {"comments": 4, "comments_accepted": 1}, {"document_kind": "law"}),
    ("557", "decree56_meeting", {"issues_raised": 5, "issues_answered": 5}, {}),
    (
        "22018",
        "legal_outreach",
        {"sessions": 2, "participants": 80, "female_participants": 70},
        {"topic": "gender_equality", "format": "meeting"},
    ),
    ("54", "representation", {"representatives": 2}, {}),
]
REPORTS = [("555", "2021-10-20T09:00:00+07:00"), ("557", "2021-11-02T09:00:00+07:00")]
REQUESTERS = ["Nguyễn Thị Bí Mật", "Trần Thị Hoa", "Lê Thị Lan"]


@pytest.mark.slow
async def test_the_command_manages_users_and_api_keys_and_the_services_refuse_what_it_locks(
    stack: Stack,
) -> None:
    intake, aggregation = stack.url("intake"), stack.url("aggregation")
    async with httpx.AsyncClient(timeout=30) as http:

        async def sign_in(password: str) -> int:
            r = await http.post(
                f"{intake}/api/v1/auth/token", data={"username": "cli.ha", "password": password}
            )
            return r.status_code

        async def me(headers: dict[str, str]) -> httpx.Response:
            return await http.get(f"{intake}/api/v1/me", headers=headers)

        async def aggregation_answers(headers: dict[str, str]) -> int:
            r = await http.get(
                f"{aggregation}/api/v1/case-stats",
                params={"unit_id": "555", "period": "2021"},
                headers=headers,
            )
            return r.status_code

        # users create: the generated password is the one line on standard output
        created = lhpn(
            stack, "users", "create", "cli.ha", "--role", "district_staff", "--unit", "555"
        )
        assert "cli.ha: đã tạo" in ok(created)
        first_password = created.stdout.strip()
        assert len(first_password) >= 24 and "\n" not in first_password
        staff = await token(http, stack, "cli.ha", first_password)
        assert (await me(staff)).json()["role"] == "district_staff"
        assert await eventually(lambda: _equals(lambda: aggregation_answers(staff), 200), 20)

        taken = lhpn(stack, "users", "create", "cli.ha", "--role", "viewer")
        assert taken.returncode == 1 and "409" in taken.stderr and "cli.ha" in taken.stderr

        # users list: the new account, never a password
        listed = lhpn(stack, "users", "list", "--unit", "555", "--json")
        ok(listed)
        rows = {u["username"]: u for u in json.loads(listed.stdout)}
        assert rows["cli.ha"]["enabled"] is True and rows["cli.ha"]["unit_id"] == "555"
        assert first_password not in listed.stdout + listed.stderr
        assert "password" not in json.dumps(rows["cli.ha"])

        # disable: the token is refused at intake on the next request, elsewhere once heard of
        assert "đã khóa" in ok(lhpn(stack, "users", "disable", "cli.ha"))
        assert (await me(staff)).status_code == 401
        assert await sign_in(first_password) == 401
        assert await eventually(lambda: _equals(lambda: aggregation_answers(staff), 401), 20)

        # enable: the same password signs in again
        assert "đã mở khóa" in ok(lhpn(stack, "users", "enable", "cli.ha"))
        assert await sign_in(first_password) == 200
        staff = await token(http, stack, "cli.ha", first_password)

        # set-role: a commune's staff now; the old session ends
        ok(lhpn(stack, "users", "set-role", "cli.ha", "--role", "commune_staff", "--unit", "22015"))
        assert (await me(staff)).status_code == 401
        moved = await token(http, stack, "cli.ha", first_password)
        assert {k: (await me(moved)).json()[k] for k in ("role", "unit_id")} == {
            "role": "commune_staff",
            "unit_id": "22015",
        }

        # reset-password from standard input: the old password no longer signs in
        reset = lhpn(
            stack,
            "users",
            "reset-password",
            "cli.ha",
            "--password-stdin",
            stdin="mật-khẩu-mới-2025\n",
        )
        assert "đặt lại mật khẩu" in ok(reset) and reset.stdout == ""
        assert await sign_in(first_password) == 401
        assert await sign_in("mật-khẩu-mới-2025") == 200

        # keys create: the key is printed once and works, bound to its unit and event types
        made = lhpn(
            stack, "keys", "create", "cli-hotline", "--unit", "555", "--event", "case.opened.v1"
        )
        ok(made)
        key = made.stdout.strip()
        assert key.startswith("lhpn_")
        system = {"X-API-Key": key}
        who = (await me(system)).json()
        assert (who["role"], who["unit_id"], who["allowed_events"]) == (
            "system",
            "555",
            ["case.opened.v1"],
        )

        async def aggregation_knows_the_key() -> bool:
            return await aggregation_answers(system) != 401

        assert await eventually(aggregation_knows_the_key, 20)

        listed = lhpn(stack, "keys", "list", "--json")
        ok(listed)
        keys = {k["name"]: k for k in json.loads(listed.stdout)}
        assert keys["cli-hotline"]["revoked"] is False
        assert key.startswith(keys["cli-hotline"]["prefix"]) and key not in listed.stdout

        # keys revoke: refused at intake on the next request, elsewhere once heard of
        key_id = keys["cli-hotline"]["key_id"]
        assert "đã thu hồi" in ok(lhpn(stack, "keys", "revoke", key_id))
        assert (await me(system)).status_code == 401
        assert await eventually(lambda: _equals(lambda: aggregation_answers(system), 401), 20)
        listed = lhpn(stack, "keys", "list")
        assert "cli-hotline" in ok(listed) and "1 đã thu hồi" in listed.stderr


async def test_backup_wipe_restore_gives_back_every_figure_and_every_case_read_by_its_owner(
    stack: Stack, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        admin = await token(http, stack, "admin", "admin")
        intake, cases = stack.url("intake"), stack.url("cases")
        for unit_id, kind, metrics, extra in ACTIVITIES:
            body = {
                "unit_id": unit_id,
                "kind": kind,
                "occurred_on": "2021-03-05",
                "title": f"Hoạt động {kind} của đơn vị {unit_id}",
                "metrics": metrics,
                **extra,
            }
            r = await http.post(f"{intake}/api/v1/activities", json=body, headers=admin)
            assert r.status_code == 201, r.text
        for unit_id, received_at in REPORTS:
            body = {
                "unit_id": unit_id,
                "report_type": "thematic_annual",
                "period": "2021",
                "received_at": received_at,
                "indicators": {"supervision.count": 1},
            }
            r = await http.post(f"{intake}/api/v1/reports", json=body, headers=admin)
            assert r.status_code == 201, r.text
        username = f"ops-{uuid.uuid4().hex[:6]}"
        r = await http.post(
            f"{intake}/api/v1/users",
            json={
                "username": username,
                "password": "matkhau-ops-1",
                "role": "district_staff",
                "unit_id": "555",
            },
            headers=admin,
        )
        assert r.status_code == 201, r.text
        staff = await token(http, stack, username, "matkhau-ops-1")
        case_ids = []
        for i, name in enumerate(REQUESTERS):
            body = {
                "unit_id": "555",
                "kind": ("consultation", "complaint", "mediation")[i],
                "topic": ("domestic_violence", "land", "marriage_family")[i],
                "channel": "hotline",
                "received_on": "2021-04-02",
                "summary": f"Nội dung vụ việc số {i + 1}",
                "requester": {"name": name, "phone": f"090512345{i}", "birth_year": 1980 + i},
            }
            r = await http.post(f"{cases}/api/v1/cases", json=body, headers=staff)
            assert r.status_code == 201, r.text
            case_ids.append(r.json()["case_id"])
        r = await http.post(
            f"{cases}/api/v1/cases/{case_ids[1]}/transitions",
            json={"to": "accepted", "note": "Thụ lý đơn", "at": "2021-04-05T09:00:00+07:00"},
            headers=staff,
        )
        assert r.status_code == 200, r.text

        previous: list[dict[str, Any]] = []

        async def settled() -> dict[str, Any] | None:
            """Aggregation has every case, and the same answers as at the previous look."""
            now = await figures(http, stack, admin)
            if now["case-stats"]["received"] != len(REQUESTERS):
                return None
            same = previous[-1:] == [now]
            previous.append(now)
            return now if same else None

        before = await eventually(settled, timeout=60, interval=0.5)

        async def read_cases() -> list[dict[str, Any]]:
            out = []
            for case_id in case_ids:
                r = await http.get(f"{cases}/api/v1/cases/{case_id}", headers=staff)
                assert r.status_code == 200, r.text
                out.append(r.json())
            return out

        cases_before = await read_cases()
        assert [c["requester"]["name"] for c in cases_before] == REQUESTERS
        assert all(c["personal_data"] for c in cases_before)

    stack.stop()
    backup = tmp_path / "backup"
    databases = [a for name in SERVICES for a in ("--database", stack.databases[name])]
    made = ok(lhpn(stack, "backup", "create", str(backup), "--consistency", "verified", *databases))
    assert "nhất quán: verified" in made
    manifest = json.loads((backup / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["databases"]) == set(stack.databases.values())
    stored = gzip.decompress((backup / stack.databases["cases"] / "cases.bson.gz").read_bytes())
    assert len(bson.decode_all(stored)) == len(REQUESTERS)
    for name in REQUESTERS:  # the personal data stays sealed in the backup
        assert name.encode() not in stored and b"0905123450" not in stored

    with MongoClient(stack.mongo_url) as mongo:
        for db in stack.databases.values():
            mongo.drop_database(db)
        assert not set(stack.databases.values()) & set(mongo.list_database_names())

    restored = ok(lhpn(stack, "backup", "restore", str(backup), *databases))
    assert f"Đã khôi phục {sum_documents(manifest)} tài liệu" in restored
    stack.start()

    async with httpx.AsyncClient(timeout=30) as http:
        admin = await token(http, stack, "admin", "admin")
        staff = await token(http, stack, username, "matkhau-ops-1")  # the user came back too
        after = await figures(http, stack, admin)
        assert after == before
        assert await read_cases() == cases_before


def sum_documents(manifest: dict[str, Any]) -> int:
    return sum(c["documents"] for colls in manifest["databases"].values() for c in colls.values())
