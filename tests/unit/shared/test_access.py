"""The access model without I/O: who may act in which unit, the declarations a test can list,
and what makes a valid credential refused."""

# no `from __future__ import annotations`: FastAPI must see the route's Annotated dependency
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI

from lhpn_shared.access import (
    BODY,
    EVERYONE,
    QUERY,
    READ,
    RECORDS,
    WRITE,
    AccessDenied,
    Guard,
    Permission,
    may_act_in,
    require_event,
    require_unit,
    route_permissions,
)
from lhpn_shared.accounts import AccessRegistry, hash_api_key
from lhpn_shared.auth import Authenticator, Principal, Role, issue_token
from lhpn_shared.clock import FixedClock
from lhpn_shared.contracts.access import ApiKeyAccess, UserAccess
from lhpn_shared.contracts.units import Unit, UnitTree
from lhpn_shared.http import install_error_handlers
from lhpn_shared.settings import ServiceSettings

NOW = datetime(2021, 3, 5, 2, 0, tzinfo=UTC)
TREE = UnitTree(
    [
        Unit(unit_id="54", name="Tỉnh", kind="tỉnh", level="province"),
        Unit(unit_id="555", name="TP", kind="thành phố", level="district", parent_id="54"),
        Unit(unit_id="557", name="TX", kind="thị xã", level="district", parent_id="54"),
        Unit(unit_id="22015", name="P1", kind="phường", level="commune", parent_id="555"),
        Unit(unit_id="22051", name="P2", kind="phường", level="commune", parent_id="557"),
    ]
)


def who(role: Role, unit: str | None) -> Principal:
    return Principal(subject="x", role=role, unit_id=unit)


@pytest.mark.parametrize(
    ("principal", "unit", "allowed"),
    [
        (who(Role.admin, None), "22051", True),
        (who(Role.province_staff, "54"), "22051", True),
        (who(Role.district_staff, "555"), "22015", True),
        (who(Role.district_staff, "555"), "557", False),
        (who(Role.district_staff, "555"), "54", False),
        (who(Role.commune_staff, "22015"), "555", False),
        (who(Role.system, "555"), "22015", True),
        (who(Role.system, None), "22015", False),
        (who(Role.viewer, None), "22051", True),
        (who(Role.viewer, "555"), "22051", False),
    ],
)
def test_a_principal_acts_within_its_units_subtree_only(
    principal: Principal, unit: str, allowed: bool
) -> None:
    assert may_act_in(principal, unit, TREE) is allowed


def test_use_cases_refuse_a_viewer_any_record_and_staff_another_branch() -> None:
    with pytest.raises(AccessDenied, match="viewer"):
        require_unit(who(Role.viewer, None), "22015", TREE, WRITE)
    with pytest.raises(AccessDenied, match="22051"):
        require_unit(who(Role.district_staff, "555"), "22051", TREE, WRITE)
    require_unit(who(Role.district_staff, "555"), "22015", TREE, WRITE)


def test_a_system_sends_only_the_event_types_it_is_bound_to() -> None:
    bound = Principal(
        subject="broker:x",
        role=Role.system,
        unit_id="555",
        allowed_events=frozenset({"activity.recorded.v1"}),
    )
    require_event(bound, "activity.recorded.v1")
    with pytest.raises(AccessDenied, match=r"report\.submitted\.v1"):
        require_event(bound, "report.submitted.v1")
    require_event(who(Role.system, "555"), "report.submitted.v1")  # not restricted


def test_a_route_without_a_declared_permission_is_listed_as_undeclared() -> None:
    settings = ServiceSettings()
    guard = Guard(Authenticator(settings, FixedClock(NOW)), lambda: _tree())
    app = FastAPI()
    declared = Permission("things.write", WRITE, RECORDS, (BODY,))

    @app.post("/api/v1/things")
    async def write(caller: Annotated[Principal, guard(declared)]) -> None:
        return None

    @app.get("/api/v1/forgotten")
    async def forgotten() -> None:
        return None

    @app.get("/healthz")
    async def health() -> None:
        return None

    assert route_permissions(app) == {
        ("POST", "/api/v1/things"): declared,
        ("GET", "/api/v1/forgotten"): None,
    }


async def _tree() -> UnitTree:
    return TREE


def test_a_guard_refuses_to_build_an_entity_check_it_cannot_load() -> None:
    guard = Guard(Authenticator(ServiceSettings(), FixedClock(NOW)), _tree)
    with pytest.raises(ValueError, match="activity_id"):
        guard(Permission("a.read", WRITE, EVERYONE, ("entity",), entity="activity_id"))  # type: ignore[arg-type]


def user(**over: object) -> UserAccess:
    fields: dict[str, object] = {
        "username": "lan",
        "role": Role.commune_staff,
        "unit_id": "22015",
        "enabled": True,
        "session_version": 2,
        "revision": 3,
        "updated_at": NOW,
    }
    return UserAccess.model_validate(fields | over)


def test_a_token_stands_unless_the_user_is_disabled_changed_or_its_session_is_older() -> None:
    registry = AccessRegistry()
    lan = who(Role.commune_staff, "22015").model_copy(update={"subject": "lan"})
    assert registry.token_refusal(lan, 0) is None  # not heard of yet: the signature decides
    registry.apply_user(user())
    assert registry.token_refusal(lan, 2) is None
    assert registry.token_refusal(lan, 1) is not None
    assert registry.token_refusal(lan.model_copy(update={"unit_id": "555"}), 2) is not None
    registry.apply_user(user(enabled=False, session_version=3, revision=4))
    assert registry.token_refusal(lan, 3) == "Tài khoản đã bị khóa."
    # an older revision arriving late changes nothing
    assert registry.apply_user(user(revision=2)) is False
    assert registry.token_refusal(lan, 3) == "Tài khoản đã bị khóa."


def test_a_revoked_key_is_known_by_its_hash_and_refused_before_the_bootstrap_list() -> None:
    from fastapi import HTTPException

    registry = AccessRegistry()
    registry.loaded = True
    key = ApiKeyAccess(
        key_id="env-hotline",
        name="hotline",
        key_hash=hash_api_key("bootstrap-key"),
        unit_id="555",
        revoked=True,
        revision=2,
        updated_at=NOW,
    )
    registry.apply_key(key)
    settings = ServiceSettings(api_keys="hotline:555:bootstrap-key,other:557:other-key")
    auth = Authenticator(settings, FixedClock(NOW), registry)
    with pytest.raises(HTTPException) as refused:
        auth.authenticate(None, "bootstrap-key")
    assert refused.value.status_code == 401
    other = auth.authenticate(None, "other-key")
    assert (other.subject, other.role, other.unit_id) == ("system:other", Role.system, "557")
    assert registry.broker_binding("nobody") is None


async def test_a_key_naming_a_broker_user_binds_it_first_and_its_revocation_refuses_it() -> None:
    from lhpn_shared.accounts import KeyInboundBindings
    from lhpn_shared.inbound import SettingsInboundBindings, parse_inbound_systems

    registry = AccessRegistry()
    bootstrap = SettingsInboundBindings(
        parse_inbound_systems("sys-a:557:report.submitted.v1,sys-b:557:report.submitted.v1")
    )
    bindings = KeyInboundBindings(registry, bootstrap)
    hotline = ApiKeyAccess(
        key_id="k1",
        name="hotline",
        key_hash=hash_api_key("k"),
        unit_id="555",
        allowed_events=["case.opened.v1"],
        broker_user="sys-a",
        updated_at=NOW,
    )
    registry.apply_key(hotline)
    bound = await bindings.lookup("sys-a")
    assert bound is not None
    assert (bound.unit_id, bound.routing_keys) == ("555", frozenset({"case.opened.v1"}))
    fallback = await bindings.lookup("sys-b")
    assert fallback is not None and fallback.unit_id == "557"
    registry.apply_key(hotline.model_copy(update={"revoked": True, "revision": 2}))
    assert await bindings.lookup("sys-a") is None
    assert await bindings.lookup("nobody") is None


async def test_a_guard_can_read_only_the_units_a_request_names_instead_of_a_whole_tree() -> None:
    """Aggregation keeps no tree in memory: its guard reads the named units and their
    ancestors (`tree_of`), and refuses outside the caller's subtree exactly as with a tree."""
    settings = ServiceSettings()
    asked: list[list[str]] = []

    async def whole_tree() -> UnitTree:
        raise AssertionError("the whole tree was read")

    async def tree_of(units: Sequence[str]) -> UnitTree:
        asked.append(list(units))
        wanted = {a for u in units if u in TREE for a in (u, *TREE.ancestors(u))}
        return UnitTree([TREE.units[u] for u in wanted])

    guard = Guard(Authenticator(settings, FixedClock(NOW)), whole_tree, tree_of=tree_of)
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/api/v1/figures")
    async def figures(
        caller: Annotated[Principal, guard(Permission("figures.read", READ, EVERYONE, (QUERY,)))],
    ) -> None:
        return None

    token, _ = issue_token(settings, who(Role.district_staff, "555"), NOW, 1)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
        headers = {"Authorization": f"Bearer {token}"}
        inside = await client.get("/api/v1/figures?unit_id=22015", headers=headers)
        outside = await client.get("/api/v1/figures?unit_id=22051", headers=headers)

    assert (inside.status_code, outside.status_code) == (200, 403)
    assert "22051" in outside.json()["detail"]
    assert asked == [["22015"], ["22051"]]
