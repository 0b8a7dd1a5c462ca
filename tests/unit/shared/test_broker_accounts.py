"""The broker accounts and the inbound bindings, without a broker: what each user may touch,
the definitions document built from the topology, the INBOUND_SYSTEMS setting, the gates."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import ValidationError

from lhpn_shared.auth import Role
from lhpn_shared.broker import TOPOLOGY, Reject
from lhpn_shared.broker_accounts import (
    definitions,
    hash_password,
    main,
    operator_account,
    service_accounts,
    system_account,
)
from lhpn_shared.contracts.events import Envelope
from lhpn_shared.contracts.owners import EVENT_OWNERS, SERVICES
from lhpn_shared.contracts.units import Unit, UnitTree
from lhpn_shared.inbound import (
    InboundBinding,
    InboundSystemsError,
    SettingsInboundBindings,
    format_inbound_systems,
    parse_inbound_systems,
)
from lhpn_shared.settings import ServiceSettings
from lhpn_shared.trust import EventOwners, InboundGate

PASSWORDS = {s: f"password-of-{s}" for s in SERVICES}
ALL_QUEUES = [n for q in TOPOLOGY for n in (q, f"{q}.dlq")]
EXCHANGES = ["lhpn.events", "lhpn.inbound", "lhpn.dead-letter", "lhpn.replay"]


def matches(pattern: str, names: list[str]) -> set[str]:
    return {n for n in names if re.fullmatch(pattern, n)}


def test_a_password_hash_is_rabbitmqs_salted_sha256_and_never_the_password() -> None:
    hashed = hash_password("mật-khẩu", salt=b"\x01\x02\x03\x04")
    raw = base64.b64decode(hashed)
    assert raw[:4] == b"\x01\x02\x03\x04"
    assert raw[4:] == hashlib.sha256(b"\x01\x02\x03\x04" + "mật-khẩu".encode()).digest()
    assert hash_password("mật-khẩu") != hash_password("mật-khẩu")  # a fresh salt each time


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_account_configures_and_reads_only_its_own_queues(service: str) -> None:
    (account,) = [a for a in service_accounts("lhpn-", PASSWORDS) if a.name == f"lhpn-{service}"]
    own = {n for n in ALL_QUEUES if n.startswith(f"{service}.")}
    assert own and matches(account.permissions.configure, ALL_QUEUES + EXCHANGES) == own
    assert matches(account.permissions.read, ALL_QUEUES) == own
    assert "lhpn.dead-letter" in matches(account.permissions.write, EXCHANGES)
    publishes = any(owner == service for owner in EVENT_OWNERS.values())
    assert ("lhpn.events" in matches(account.permissions.write, EXCHANGES)) is publishes
    assert "lhpn.inbound" not in matches(account.permissions.write, EXCHANGES)


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_may_publish_on_lhpn_events_exactly_the_event_types_it_owns(
    service: str,
) -> None:
    (account,) = [a for a in service_accounts("lhpn-", PASSWORDS) if a.name == f"lhpn-{service}"]
    (events,) = [t for t in account.topic_permissions if t.exchange == "lhpn.events"]
    keys = [f"{t}.v{v}" for t in EVENT_OWNERS for v in (1, 2)]
    allowed = {k.rsplit(".v", 1)[0] for k in matches(events.write, keys)}
    assert allowed == {t for t, owner in EVENT_OWNERS.items() if owner == service}
    assert not matches(events.write, ["unit.upserted", "unit.upserted.v1.x", "x.unit.upserted.v1"])


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_may_bind_only_the_routing_keys_its_queues_consume(service: str) -> None:
    (account,) = [a for a in service_accounts("lhpn-", PASSWORDS) if a.name == f"lhpn-{service}"]
    keys = [f"{t}.v1" for t in EVENT_OWNERS] + ["activity.recorded.v1", "case.opened.v1"]
    for topic in account.topic_permissions:
        if topic.exchange == "lhpn.replay":
            continue  # its own queues' names: the test below
        consumed = {
            k
            for b in TOPOLOGY.values()
            if b.owner == service and b.exchange.name == topic.exchange
            for k in b.routing_keys
        }
        assert matches(topic.read, keys) == consumed, topic.exchange


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_may_replay_dead_letters_only_to_its_own_queues(service: str) -> None:
    (account,) = [a for a in service_accounts("lhpn-", PASSWORDS) if a.name == f"lhpn-{service}"]
    (replay,) = [t for t in account.topic_permissions if t.exchange == "lhpn.replay"]
    own = {q for q in TOPOLOGY if q.startswith(f"{service}.")}
    names = [*TOPOLOGY, "#", "*.events", f"{service}.events.dlq", "activity.recorded.v1"]
    assert own and matches(replay.write, names) == own
    assert matches(replay.read, names) == own  # the binding of each of its queues
    assert "lhpn.replay" in matches(account.permissions.write, EXCHANGES)


def test_an_inbound_system_may_write_only_its_routing_keys_to_lhpn_inbound() -> None:
    binding = InboundBinding("lhpn-sys-hotline", "555", frozenset({"case.opened.v1"}))
    account = system_account(binding, "pw")
    assert matches(account.permissions.write, ALL_QUEUES + EXCHANGES) == {"lhpn.inbound"}
    assert not matches(account.permissions.configure, ALL_QUEUES + EXCHANGES)
    assert not matches(account.permissions.read, ALL_QUEUES + EXCHANGES)
    (inbound,) = [t for t in account.topic_permissions if t.exchange == "lhpn.inbound"]
    assert matches(inbound.write, ["case.opened.v1", "activity.recorded.v1"]) == {"case.opened.v1"}


def test_the_definitions_declare_every_queue_its_dlq_and_binding_with_the_services_arguments() -> (
    None
):
    accounts = [
        *service_accounts("lhpn-", PASSWORDS),
        operator_account("lhpn-admin", "password-of-admin", administrator=True),
    ]
    doc = definitions("/", accounts)
    queues = {q["name"]: q for q in doc["queues"]}
    assert set(queues) == set(ALL_QUEUES)
    for name, binding in TOPOLOGY.items():
        assert queues[name]["arguments"] == binding.arguments  # what the service declares
        keys = {
            b["routing_key"]
            for b in doc["bindings"]
            if b["destination"] == name and b["source"] == binding.exchange.name
        }
        assert keys == set(binding.routing_keys)
        others = [
            (b["source"], b["routing_key"])
            for b in doc["bindings"]
            if b["destination"] == name and b["source"] != binding.exchange.name
        ]
        assert others == [("lhpn.replay", name)]
        dlq = [b for b in doc["bindings"] if b["destination"] == f"{name}.dlq"]
        assert [(b["source"], b["routing_key"]) for b in dlq] == [("lhpn.dead-letter", name)]
    assert {e["name"] for e in doc["exchanges"]} == set(EXCHANGES)
    assert "password-of-" not in json.dumps(doc)  # hashes only
    assert [u["tags"] for u in doc["users"] if u["name"] == "lhpn-admin"] == [["administrator"]]


def test_inbound_systems_parse_and_format_back() -> None:
    value = "lhpn-sys-a:555:case.opened.v1|activity.recorded.v1, lhpn-sys-b:54:report.submitted.v1"
    parsed = parse_inbound_systems(value)
    assert parsed["lhpn-sys-a"] == InboundBinding(
        "lhpn-sys-a", "555", frozenset({"case.opened.v1", "activity.recorded.v1"})
    )
    assert parse_inbound_systems(format_inbound_systems(list(parsed.values()))) == parsed
    assert parse_inbound_systems("") == {}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("lhpn-sys-a:555", "must be 'broker_user:unit_id:key|key'"),
        ("lhpn-sys-a:555:unit.upserted.v1", "not unit.upserted.v1"),
        ("lhpn-sys-a:555:", "routing keys must be among"),
        ("bad user:555:case.opened.v1", "bad broker user name"),
        ("a:555:case.opened.v1,a:54:case.opened.v1", "names a twice"),
    ],
)
def test_a_bad_inbound_systems_setting_is_refused_naming_it(value: str, says: str) -> None:
    with pytest.raises(InboundSystemsError, match=re.escape(says)):
        parse_inbound_systems(value)
    with pytest.raises(ValidationError, match="INBOUND_SYSTEMS"):
        ServiceSettings(inbound_systems=value)


# ---- the gates, on a small tree -------------------------------------------------------------

TREE = UnitTree(
    [
        Unit(unit_id="54", name="Tỉnh", kind="tỉnh", level="province"),
        Unit(unit_id="555", name="Tuy Hoà", kind="thành phố", level="district", parent_id="54"),
        Unit(unit_id="557", name="Sông Cầu", kind="thị xã", level="district", parent_id="54"),
        Unit(unit_id="22015", name="Phường 1", kind="phường", level="commune", parent_id="555"),
        Unit(unit_id="22051", name="Xuân Phú", kind="phường", level="commune", parent_id="557"),
    ]
)


async def tree_for(unit_id: str) -> UnitTree:
    return TREE


def envelope(event_type: str, unit_id: str | None, data_unit: str | None) -> Envelope:
    return Envelope(
        event_id=uuid4(),
        type=event_type,
        version=1,
        occurred_at=datetime(2021, 3, 1, tzinfo=UTC),
        source="hotline",
        unit_id=unit_id,
        data={"unit_id": data_unit} if data_unit else {},
    )


GATE = InboundGate(
    SettingsInboundBindings(
        parse_inbound_systems("lhpn-sys-hotline:555:case.opened.v1|activity.recorded.v1")
    ),
    tree_for,
)


async def test_the_inbound_gate_admits_a_bound_system_within_its_subtree_as_its_principal() -> None:
    principal = await GATE.admit(envelope("case.opened", "22015", "22015"), "lhpn-sys-hotline")
    assert principal.subject == "broker:lhpn-sys-hotline" and principal.role is Role.system
    assert principal.unit_id == "555"
    assert principal.allowed_events == {"case.opened.v1", "activity.recorded.v1"}


@pytest.mark.parametrize(
    ("env", "user", "reason"),
    [
        (envelope("case.opened", "22051", "22051"), "lhpn-sys-hotline", "outside the subtree"),
        (envelope("case.opened", "22015", "22051"), "lhpn-sys-hotline", "unit 22051 is outside"),
        (envelope("case.opened", "555", "54"), "lhpn-sys-hotline", "unit 54 is outside"),
        (envelope("case.opened", "99999", None), "lhpn-sys-hotline", "unknown unit_id '99999'"),
        (envelope("report.submitted", "555", "555"), "lhpn-sys-hotline", "may not send"),
        (envelope("case.opened", None, None), "lhpn-sys-hotline", "names no unit_id"),
        (envelope("case.opened", "22015", "22015"), "lhpn-intake", "not a bound inbound system"),
        (envelope("case.opened", "22015", "22015"), None, "without a user_id"),
    ],
    ids=[
        "other-district",
        "data-elsewhere",
        "ancestor",
        "unknown-unit",
        "other-type",
        "no-unit",
        "unbound",
        "anonymous",
    ],
)
async def test_the_inbound_gate_refuses_outside_the_binding_saying_why(
    env: Envelope, user: str | None, reason: str
) -> None:
    with pytest.raises(Reject, match=re.escape(reason)):
        await GATE.admit(env, user)


async def test_an_event_is_admitted_only_from_its_owning_services_user() -> None:
    owners = EventOwners("lhpn-")
    unit = envelope("unit.upserted", "555", None)
    assert (await owners.admit(unit, "lhpn-intake")).subject == "broker:lhpn-intake"
    for user in ("lhpn-cases", "lhpn-intake-2", "guest", None):
        with pytest.raises(
            Reject, match=re.escape("unit.upserted is published only by lhpn-intake")
        ):
            await owners.admit(unit, user)
    with pytest.raises(Reject, match=re.escape("no service owns event type gossip.spread")):
        await owners.admit(envelope("gossip.spread", None, None), "lhpn-intake")


# ---- the command compose and run.sh use ---------------------------------------------------------


def test_the_command_renders_definitions_from_the_environment_without_any_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROKER_USER_PREFIX", "lhpn-")
    for service in SERVICES:
        monkeypatch.setenv(f"RABBIT_{service.upper()}_PASSWORD", f"secret-{service}-123")
    monkeypatch.setenv("RABBIT_ADMIN_PASSWORD", "secret-admin-123")
    monkeypatch.setenv("INBOUND_SYSTEMS", "lhpn-sys-hotline:555:case.opened.v1")
    monkeypatch.setenv("INBOUND_SYSTEM_PASSWORDS", "lhpn-sys-hotline:secret-hotline-123")
    out = tmp_path / "definitions.json"
    main(["definitions", "--output", str(out)])
    text = out.read_text()
    assert "secret-" not in text
    doc = json.loads(text)
    assert {u["name"] for u in doc["users"]} == {
        *(f"lhpn-{s}" for s in SERVICES),
        "lhpn-sys-hotline",
        "lhpn-admin",
    }
    assert oct(out.stat().st_mode & 0o777) == "0o644"  # the broker's own user reads it


def test_the_command_refuses_to_render_without_a_password_naming_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RABBIT_INTAKE_PASSWORD", "secret-intake-123")
    monkeypatch.setenv("INBOUND_SYSTEMS", "lhpn-sys-hotline:555:case.opened.v1")
    with pytest.raises(SystemExit) as refused:
        main(["definitions"])
    message = str(refused.value)
    for named in ("RABBIT_CASES_PASSWORD", "RABBIT_AGGREGATION_PASSWORD", "lhpn-sys-hotline"):
        assert named in message
    assert "RABBIT_INTAKE_PASSWORD" not in message


def test_the_run_commands_passwords_are_generated_once_and_kept_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROKER_USER_PREFIX", "lhpn-")
    out = str(tmp_path / "definitions.json")
    main(["definitions", "--passwords-dir", str(tmp_path / "broker"), "--output", out])
    files = sorted((tmp_path / "broker").iterdir())
    assert [f.name for f in files] == sorted(f"lhpn-{s}.password" for s in SERVICES)
    first = {f.name: f.read_text() for f in files}
    assert all(len(p) >= 32 for p in first.values())
    assert {oct(f.stat().st_mode & 0o777) for f in files} == {"0o600"}
    main(["definitions", "--passwords-dir", str(tmp_path / "broker"), "--output", out])
    assert {f.name: f.read_text() for f in files} == first


def test_the_command_never_replaces_what_is_not_a_regular_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROKER_USER_PREFIX", "lhpn-")
    target = tmp_path / "a-directory"
    target.mkdir()
    with pytest.raises(SystemExit, match="not a regular file"):
        main(["definitions", "--passwords-dir", str(tmp_path / "b"), "--output", str(target)])
    assert target.is_dir() and not list(tmp_path.glob("*.tmp"))


def test_aggregation_may_replay_dead_letters_to_its_partition_queues_and_no_other_queue() -> None:
    (account,) = [a for a in service_accounts("lhpn-", PASSWORDS) if a.name == "lhpn-aggregation"]
    (replay,) = [t for t in account.topic_permissions if t.exchange == "lhpn.replay"]
    partitions = ["aggregation.events.p0", "aggregation.events.p17"]
    others = ["aggregation.events.p0.dlq", "aggregation.events.px", "intake.inbound", "#"]
    allowed = {q for q in TOPOLOGY if q.startswith("aggregation.")} | set(partitions)
    assert matches(replay.write, [*TOPOLOGY, *partitions, *others]) == allowed
    assert matches(replay.read, [*TOPOLOGY, *partitions, *others]) == allowed
    (intake,) = [a for a in service_accounts("lhpn-", PASSWORDS) if a.name == "lhpn-intake"]
    (theirs,) = [t for t in intake.topic_permissions if t.exchange == "lhpn.replay"]
    assert not matches(theirs.write, partitions)
