"""The operator command's parts that need no service: its help, the checks it makes before it
sends anything, the broker account it would create, the rebuild progress it reads, and the API
documents in docs/api/ being those of the code (issue 14)."""

from __future__ import annotations

import asyncio
import io
import json
import stat
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from lhpn_cli import accounts, broker_users
from lhpn_cli.aggregation_cmd import REROUTED, follow
from lhpn_cli.apidocs import generate
from lhpn_cli.app import app
from lhpn_cli.common import Failed
from lhpn_cli.plans_cmd import read_plans
from lhpn_shared.broker_accounts import hash_password
from lhpn_shared.inbound import parse_inbound_systems

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PLAN = REPO / "services" / "intake" / "intake" / "data" / "plan-PY-2021-460.json"
COMMANDS = [
    ["units", "load"],
    ["units", "reorganise"],
    ["plans", "import"],
    ["users", "list"],
    ["users", "create"],
    ["users", "disable"],
    ["users", "enable"],
    ["users", "reset-password"],
    ["users", "set-role"],
    ["keys", "list"],
    ["keys", "create"],
    ["keys", "revoke"],
    ["broker", "add-system"],
    ["reminders", "sweep"],
    ["aggregation", "rebuild"],
    ["aggregation", "reroute"],
    ["backup", "create"],
    ["backup", "restore"],
    ["backup", "check"],
    ["dead-letters", "list"],
    ["dead-letters", "show"],
    ["dead-letters", "replay"],
    ["dead-letters", "purge"],
    ["docs"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_explains_itself(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], prog_name="lhpn", env={"COLUMNS": "120"})

    assert result.exit_code == 0, result.output
    assert "Usage: lhpn " + " ".join(command) in result.output
    summary = result.output.split("Usage:", 1)[1].splitlines()[2].strip()
    assert len(summary.split()) >= 5, summary  # a sentence, not a bare name


def test_the_command_lists_every_group() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "120"})

    groups = ("units", "plans", "users", "keys", "broker", "reminders", "aggregation", "backup")
    for group in (*groups, "dead-letters", "docs"):
        assert f"│ {group} " in result.output


def test_a_plan_file_with_a_bad_field_is_refused_naming_the_file_and_the_field(
    tmp_path: Path,
) -> None:
    plan = json.loads(DEFAULT_PLAN.read_text(encoding="utf-8"))
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps([plan, {**plan, "plan_id": "PY-2021-2"}]), encoding="utf-8")
    bad.write_text(json.dumps({**plan, "targets": [{"code": "T1"}]}), encoding="utf-8")

    assert [p.plan_id for p in read_plans(good)] == ["PY-2021-460", "PY-2021-2"]
    with pytest.raises(Failed) as refused:
        read_plans(bad)
    assert str(bad) in str(refused.value) and "targets.0" in str(refused.value)


def test_a_broker_account_may_write_only_its_routing_keys_on_the_inbound_exchange() -> None:
    binding = broker_users.binding_for(
        "lhpn-sys-hotline",
        "555",
        ["case.opened.v1", "activity.recorded.v1"],
        reserved=broker_users.reserved_users("lhpn-", "lhpn-admin"),
    )
    document = broker_users.account_document(binding, "s3cret-pass", "/")

    (user,) = document["users"]
    assert user["name"] == "lhpn-sys-hotline" and "s3cret-pass" not in json.dumps(document)
    salt = __import__("base64").b64decode(user["password_hash"])[:4]
    assert user["password_hash"] == hash_password("s3cret-pass", salt)
    (permission,) = document["permissions"]
    assert (permission["configure"], permission["write"], permission["read"]) == (
        "^$",
        "^(lhpn\\.inbound)$",
        "^$",
    )
    topics = {t["exchange"]: t for t in document["topic_permissions"]}
    assert topics["lhpn.inbound"]["write"] == "^(activity\\.recorded\\.v1|case\\.opened\\.v1)$"
    assert topics["lhpn.events"]["write"] == "^$"
    assert "queues" not in document and "exchanges" not in document  # the topology is untouched


@pytest.mark.parametrize(
    ("user", "events", "why"),
    [
        ("lhpn-intake", ["activity.recorded.v1"], "tài khoản của một dịch vụ"),
        ("lhpn-admin", ["activity.recorded.v1"], "tài khoản của một dịch vụ"),
        ("lhpn-sys-x", ["unit.upserted.v1"], "routing keys must be among"),
        ("lhpn-sys-x", [], "routing keys must be among"),
        ("a b", ["activity.recorded.v1"], "bad broker user name"),
    ],
    ids=["a-service", "the-administrator", "not-an-inbound-key", "no-key", "bad-name"],
)
def test_a_broker_account_that_would_break_the_trust_is_refused(
    user: str, events: list[str], why: str
) -> None:
    with pytest.raises(Failed, match=why):
        broker_users.binding_for(
            user, "555", events, reserved=broker_users.reserved_users("lhpn-", "lhpn-admin")
        )


def test_the_env_file_gets_the_binding_and_the_password_and_keeps_everything_else(
    tmp_path: Path,
) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# compose settings\nENV=production\n"
        "INBOUND_SYSTEMS=lhpn-sys-eoffice:54:report.submitted.v1\n"
        "INBOUND_SYSTEM_PASSWORDS=lhpn-sys-eoffice:old\n",
        encoding="utf-8",
    )
    reserved = broker_users.reserved_users("lhpn-", "lhpn-admin")
    first = broker_users.binding_for(
        "lhpn-sys-hotline", "555", ["case.opened.v1"], reserved=reserved
    )
    again = broker_users.binding_for(
        "lhpn-sys-hotline", "557", ["activity.recorded.v1"], reserved=reserved
    )

    broker_users.update_env_file(env, first, "p1")
    broker_users.update_env_file(env, again, "p2")  # the same system bound anew

    lines = env.read_text(encoding="utf-8").splitlines()
    assert lines[:2] == ["# compose settings", "ENV=production"]
    systems = parse_inbound_systems(lines[2].split("=", 1)[1])
    assert {u: (b.unit_id, set(b.routing_keys)) for u, b in systems.items()} == {
        "lhpn-sys-eoffice": ("54", {"report.submitted.v1"}),
        "lhpn-sys-hotline": ("557", {"activity.recorded.v1"}),
    }
    assert lines[3] == "INBOUND_SYSTEM_PASSWORDS=lhpn-sys-eoffice:old,lhpn-sys-hotline:p2"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600


def test_the_management_api_gets_the_account_as_a_definitions_import() -> None:
    sent: list[httpx.Request] = []

    def rabbitmq(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    document = {"users": [{"name": "lhpn-sys-hotline"}]}
    asyncio.run(
        broker_users.apply_via_management(
            "http://rabbitmq:15672", "lhpn-admin", "pw", document, httpx.MockTransport(rabbitmq)
        )
    )

    (request,) = sent
    assert (request.method, str(request.url)) == ("POST", "http://rabbitmq:15672/api/definitions")
    assert request.headers["Authorization"].startswith("Basic ")
    assert json.loads(request.content) == document


def test_a_refused_administrator_is_said_plainly() -> None:
    def rabbitmq(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401)

    with pytest.raises(Failed, match="RABBIT_ADMIN_USERNAME"):
        asyncio.run(
            broker_users.apply_via_management(
                "http://rabbitmq:15672", "x", "y", {}, httpx.MockTransport(rabbitmq)
            )
        )


def test_a_generated_user_password_goes_to_a_new_private_file_and_a_rerun_reuses_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ha.nguyen.password"

    first, generated = accounts.choose_password(path, from_stdin=False)
    again, generated_again = accounts.choose_password(path, from_stdin=False)

    assert generated and not generated_again
    assert len(first) >= 24 and again == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_user_password_is_read_from_one_line_of_standard_input_never_an_empty_one() -> None:
    password, generated = accounts.choose_password(
        None, from_stdin=True, stdin=io.StringIO("mật-khẩu-mới-2025\nnext line\n")
    )

    assert (password, generated) == ("mật-khẩu-mới-2025", False)
    with pytest.raises(Failed, match="dòng trống"):
        accounts.choose_password(None, from_stdin=True, stdin=io.StringIO("\n"))


def test_listing_users_follows_intake_s_pages_to_the_end() -> None:
    seen: list[dict[str, str]] = []

    def intake(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append(params)
        if "cursor" not in params:
            return httpx.Response(200, json={"items": [{"username": "a"}], "next_cursor": "a"})
        return httpx.Response(200, json={"items": [{"username": "b"}], "next_cursor": None})

    async def listing() -> list[dict[str, object]]:
        transport = httpx.MockTransport(intake)
        async with httpx.AsyncClient(base_url="http://intake", transport=transport) as client:
            return await accounts.list_users(client, unit_id="555", role="district_staff")

    users = asyncio.run(listing())

    assert [u["username"] for u in users] == ["a", "b"]
    assert seen[1] == {"limit": "1000", "unit_id": "555", "role": "district_staff", "cursor": "a"}


def test_a_key_is_created_bound_to_what_the_operator_named_and_a_refusal_is_said() -> None:
    bodies: list[dict[str, object]] = []

    def intake(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if body["name"] == "taken":
            return httpx.Response(409, json={"detail": "Đã có khóa API tên 'taken'."})
        return httpx.Response(201, json={**body, "key_id": "ab12", "key": "lhpn_ab12_x"})

    async def create(
        name: str, events: list[str] | None = None, broker_user: str | None = None
    ) -> dict[str, object]:
        transport = httpx.MockTransport(intake)
        async with httpx.AsyncClient(base_url="http://intake", transport=transport) as client:
            return await accounts.create_key(
                client, name, "555", events=events or (), broker_user=broker_user
            )

    asyncio.run(create("hotline", events=["case.opened.v1"], broker_user="lhpn-sys-hotline"))
    asyncio.run(create("portal-sync"))
    with pytest.raises(Failed, match="409 Đã có khóa API tên 'taken'"):
        asyncio.run(create("taken"))

    assert bodies[0] == {
        "name": "hotline",
        "unit_id": "555",
        "allowed_routes": None,
        "allowed_events": ["case.opened.v1"],
        "broker_user": "lhpn-sys-hotline",
    }
    assert bodies[1]["allowed_routes"] is None and bodies[1]["allowed_events"] is None


def test_the_rebuild_bar_follows_the_entry_point_s_progress_lines() -> None:
    lines = [
        '{"msg": "rebuild progress", "archive_read": 1, "archive_total": 3, "events": 1000}\n',
        "not json\n",
        '{"msg": "rebuild progress", "archive_read": 3, "archive_total": 3, "events": 2500}\n',
        '{"msg": "read models rebuilt", "events": 2500, "seconds": 4.2}\n',
    ]
    seen: list[tuple[int, int]] = []

    done = follow(lines, lambda read, total: seen.append((read, total)))

    assert seen == [(1, 3), (3, 3)]
    assert done is not None and done["events"] == 2500


def test_the_reroute_command_reports_the_entry_points_counts_and_a_refusal_plainly(
    tmp_path: Path,
) -> None:
    done = tmp_path / "done.py"
    done.write_text(
        "import json\n"
        f"print(json.dumps({{'msg': {REROUTED!r}, 'events': [12, 30], 'seconds': 1.5}}))\n"
    )
    refused = tmp_path / "refused.py"
    refused.write_text(
        "import sys\n"
        "sys.exit('reroute: aggregation.events.p0 has 1 consumer(s): stop every aggregation "
        "process before the repair')\n"
    )
    runner = CliRunner()
    ok = runner.invoke(app, ["aggregation", "reroute", "--command", f"{sys.executable} {done}"])
    assert ok.exit_code == 0, ok.output
    assert "phân vùng 0: 12, phân vùng 1: 30" in ok.output
    no = runner.invoke(app, ["aggregation", "reroute", "--command", f"{sys.executable} {refused}"])
    assert no.exit_code == 1
    assert "has 1 consumer(s)" in no.output and "Chưa sửa xong" in no.output


def test_a_rebuild_that_never_finished_is_not_reported_done() -> None:
    assert (
        follow(['{"msg": "rebuild progress", "archive_read": 1, "archive_total": 9}'], print)
        is None
    )


def test_the_api_documents_in_docs_api_are_those_of_the_code() -> None:
    documents = asyncio.run(generate())

    committed = {
        p.name: p.read_text(encoding="utf-8") for p in (REPO / "docs" / "api").glob("*.json")
    }
    stale = sorted(n for n in documents if committed.get(n) != documents[n])
    assert not stale, f"run `make docs` (lhpn docs) and commit: {stale}"
    assert set(committed) == set(documents)
    for name in ("intake", "cases", "reminders", "aggregation"):
        asyncapi = json.loads(documents[f"{name}.asyncapi.json"])
        assert asyncapi["asyncapi"].startswith("3.")
        assert json.loads(documents[f"{name}.openapi.json"])["info"]["title"] == f"LHPN {name}"
    channels = json.loads(documents["intake.asyncapi.json"])["channels"]
    assert "lhpn.events:activity.recorded.v1" in channels


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["replay", "intake.inbound"], "--reason, --message-id, hoặc --all"),
        (["purge", "cases.inbound", "--yes"], "--reason, --message-id, hoặc --all"),
        (["replay", "intake.inbound", "--all", "--reason", "x"], "--all không đi cùng"),
        (["replay", "portal.inbound", "--all"], "không phải hàng đợi của dịch vụ nào"),
        (["show", "inbound", "some-id"], "không phải hàng đợi của dịch vụ nào"),
    ],
)
def test_a_dead_letter_command_without_a_clear_selection_is_refused_before_anything_is_sent(
    args: list[str], says: str
) -> None:
    result = CliRunner().invoke(app, ["dead-letters", *args], env={"COLUMNS": "200"})

    assert result.exit_code == 2
    assert says in " ".join(result.output.split())
