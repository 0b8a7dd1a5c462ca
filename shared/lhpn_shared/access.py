"""One authorisation model for every service (SPEC §9.3).

Every `/api/v1` route declares its `Permission` in its signature:

    caller: Annotated[Principal, guard(Permission("activities.record", WRITE, WRITERS, (BODY,)))]

— who may call it (roles), whether it reads or writes, and which unit scopes it: the unit named
in the body, in the `unit_id` query parameter, in the `unit_id` path parameter, the unit of the
stored entity the path names, or none. The guard authenticates the caller, checks the role (and
an API key's `allowed_routes`), then checks every scoping unit against the caller's subtree
before the route runs. `route_permissions(app)` lists the declarations (the access tests and the
OpenAPI document's `x-permission` read them).

Use cases serving several doors (HTTP, `POST /api/v1/events`, `lhpn.inbound`) check the same
rule themselves with `require_unit`, on the new unit AND on the stored entity's unit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn
from uuid import UUID

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials

from .auth import API_KEY, BEARER, Authenticator
from .contracts.units import UnitTree
from .principal import STAFF_ROLES, Principal, Role

if TYPE_CHECKING:
    from .audit import AuditLog


class Action(StrEnum):
    read = "read"
    write = "write"


class Scope(StrEnum):
    body = "body"
    """the unit(s) the JSON body names (`Permission.unit_fields`)"""
    query = "query"
    """the `unit_id` query parameter (absent: the route uses the caller's own unit)"""
    path = "path"
    """the `unit_id` path parameter"""
    entity = "entity"
    """the unit of the stored entity named by the path parameter `Permission.entity`"""
    holder = "holder"
    """stricter than `entity`: the caller's own unit must be one that holds the stored entity
    (a case: its union, or one it is referred up to), not merely one above it"""


READ, WRITE = Action.read, Action.write
BODY, QUERY, PATH, ENTITY, HOLDER = Scope.body, Scope.query, Scope.path, Scope.entity, Scope.holder

EVERYONE = frozenset(Role)
"""every signed-in principal, viewers included (reference data, aggregates, one's own account)"""
USERS = EVERYONE - {Role.system}
"""people, not systems (one's own password)"""
RECORDS = frozenset({Role.admin, Role.system, *STAFF_ROLES})
"""who reads and writes unit records (activities, reports, cases…): not viewers"""
STAFF = frozenset(STAFF_ROLES)
ADMINS = frozenset({Role.admin})


@dataclass(frozen=True)
class Permission:
    name: str
    """what an API key's `allowed_routes` names, e.g. `activities.record`"""
    action: Action
    roles: frozenset[Role]
    scopes: tuple[Scope, ...] = ()
    unit_fields: tuple[str, ...] = ("unit_id",)
    """for `Scope.body`: dotted paths of the units in the JSON body"""
    entity: str | None = None
    """for `Scope.entity`: the path parameter naming the stored entity"""
    public: bool = False
    """no credential needed (the sign-in route)"""
    refusal: str | None = None
    """what a caller whose role is not allowed is told (default: by role)"""
    holder_refusal: str = "Chỉ cán bộ của đơn vị đang giữ {owner} được thực hiện thao tác này."
    """for `Scope.holder`: what a caller whose unit does not hold the entity is told
    (`{owner}`: the entity's own unit, `{unit}`: the caller's)"""

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "action": self.action.value,
            "roles": sorted(r.value for r in self.roles),
            "scopes": [s.value for s in self.scopes],
            **({"unit_fields": list(self.unit_fields)} if BODY in self.scopes else {}),
            **({"entity": self.entity} if self.entity else {}),
            **({"public": True} if self.public else {}),
        }


def public(name: str) -> Permission:
    return Permission(name, READ, EVERYONE, public=True)


class AccessDenied(Exception):
    """Refused by the access rules: 403 over HTTP, dead-lettered with the reason over AMQP."""


def may_act_in(principal: Principal, unit_id: str, tree: UnitTree) -> bool:
    """Admins everywhere; a viewer without a unit over the whole tree (viewers reach only
    aggregates); everyone else within their unit's subtree."""
    if principal.role is Role.admin:
        return True
    if principal.unit_id is None:
        return principal.role is Role.viewer
    return tree.is_within(unit_id, principal.unit_id)


def unit_refusal(unit_id: str, action: Action) -> str:
    if action is WRITE:
        return f"Bạn không có quyền ghi dữ liệu cho đơn vị {unit_id}."
    return f"Bạn không có quyền xem dữ liệu của đơn vị {unit_id}."


def require_unit(principal: Principal, unit_id: str, tree: UnitTree, action: Action) -> None:
    """For use cases: `principal` may read/write records of `unit_id`, or `AccessDenied`."""
    if principal.role is Role.viewer:
        raise AccessDenied(VIEWER_REFUSAL)
    if not may_act_in(principal, unit_id, tree):
        raise AccessDenied(unit_refusal(unit_id, action))


def require_event(principal: Principal, routing_key: str) -> None:
    """A system may send only the event types it is bound to (`allowed_events`)."""
    if principal.allowed_events is not None and routing_key not in principal.allowed_events:
        raise AccessDenied(f"Hệ thống này không được gửi sự kiện {routing_key}.")


VIEWER_REFUSAL = "Tài khoản xem (viewer) chỉ được xem số liệu tổng hợp."


def role_refusal(principal: Principal, permission: Permission) -> str:
    if permission.refusal is not None and principal.role is not Role.viewer:
        return permission.refusal
    if principal.role is Role.viewer:
        return VIEWER_REFUSAL
    if permission.roles == ADMINS:
        return "Chỉ quản trị viên (admin) được thực hiện thao tác này."
    if principal.role is Role.system:
        return "Khóa API của hệ thống khác không được dùng cho thao tác này."
    return "Vai trò của bạn không được thực hiện thao tác này."


TreeSource = Callable[[], Awaitable[UnitTree]]
TreeOf = Callable[[Sequence[str]], Awaitable[UnitTree]]
"""A tree holding at least these units and their ancestors (unknown ones left out): for a
service that keeps no whole tree in memory and reads only the units a request names."""
EntityUnit = Callable[[str], Awaitable[str | tuple[str, ...] | None]]
"""The unit of a stored entity by its id (None: no such entity; the route answers 404). A
tuple: the units answerable for it (e.g. a case of a merged commune: the commune and its
successors), of which the caller must reach one."""
EntityHolders = Callable[[str], Awaitable[tuple[str, ...] | None]]
"""The units holding a stored entity by its id (None: no such entity)."""


class Guard:
    """Builds each route's access dependency: `guard(permission)` → `Depends(...)`."""

    def __init__(
        self,
        authenticator: Authenticator,
        tree: TreeSource,
        entities: Mapping[str, EntityUnit] | None = None,
        audit: Callable[[], AuditLog | None] = lambda: None,
        holders: Mapping[str, EntityHolders] | None = None,
        answerable: Callable[[str], Awaitable[tuple[str, ...]]] | None = None,
        tree_of: TreeOf | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.tree = tree
        self.tree_of = tree_of
        """when given, the guard asks it for the units of each request instead of `tree`"""
        self.entities = dict(entities or {})
        self.holders = dict(holders or {})
        self.answerable = answerable
        """the units answerable for a unit's records (e.g. its successors once it is merged):
        reaching one of them is reaching the unit; None: the unit alone"""
        self.audit = audit
        """where refusals are recorded (the service's audit log, once it is open)"""

    def __call__(self, permission: Permission) -> Any:
        if permission.public:
            return Depends(PublicRoute(permission))
        if ENTITY in permission.scopes and permission.entity not in self.entities:
            raise ValueError(f"{permission.name}: no loader for entity {permission.entity}")
        if HOLDER in permission.scopes and permission.entity not in self.holders:
            raise ValueError(f"{permission.name}: no holders of entity {permission.entity}")
        return Depends(PermissionCheck(self, permission))


@dataclass(frozen=True)
class PublicRoute:
    permission: Permission

    async def __call__(self) -> None:
        return None


@dataclass(frozen=True)
class PermissionCheck:
    guard: Guard = field(repr=False)
    permission: Permission

    async def __call__(
        self,
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
        api_key: Annotated[str | None, Depends(API_KEY)],
    ) -> Principal:
        principal = self.guard.authenticator.authenticate(
            bearer.credentials if bearer else None, api_key
        )
        principal = principal.model_copy(update={"address": client_address(request)})
        p = self.permission
        if principal.role not in p.roles:
            await self._refuse(request, principal, None, role_refusal(principal, p))
        if principal.allowed_routes is not None and p.name not in principal.allowed_routes:
            await self._refuse(
                request, principal, None, f"Khóa API này không được phép gọi {p.name}."
            )
        groups = await self._units(request)
        if groups:
            if self.guard.tree_of is not None:
                tree = await self.guard.tree_of([u for group in groups for u in group])
            else:
                tree = await self.guard.tree()
            for group in groups:
                # an unknown unit is the request's problem (422/404 from the route), not access
                known = [u for u in group if u in tree]
                if known and not any(may_act_in(principal, u, tree) for u in known):
                    await self._refuse(
                        request, principal, known[0], unit_refusal(known[0], p.action)
                    )
        if HOLDER in p.scopes and not principal.is_admin:
            assert p.entity is not None
            entity_id = request.path_params.get(p.entity)
            held_by = await self.guard.holders[p.entity](entity_id) if entity_id else None
            if held_by is not None and principal.unit_id not in held_by:
                reason = p.holder_refusal.format(owner=held_by[0], unit=principal.unit_id)
                await self._refuse(request, principal, held_by[0], reason)
        return principal

    async def _refuse(
        self, request: Request, principal: Principal, unit_id: str | None, reason: str
    ) -> NoReturn:
        """Record the refused attempt in the audit log, then answer 403."""
        log = self.guard.audit()
        if log is not None:
            entity = self.permission.entity
            await log.record(
                principal,
                self.permission.name,
                entity_type=entity.removesuffix("_id") if entity else None,
                entity_id=request.path_params.get(entity) if entity else None,
                unit_id=unit_id,
                outcome="refused",
            )
        raise AccessDenied(reason)

    async def _units(self, request: Request) -> list[tuple[str, ...]]:
        """Every unit that scopes this request, as groups: the caller must reach each group
        (one unit of it)."""
        p = self.permission
        units: list[tuple[str, ...]] = []
        if BODY in p.scopes:
            body = await _json_body(request)
            units.extend((u,) for f in p.unit_fields if isinstance(u := _dig(body, f), str))
        if QUERY in p.scopes and (unit := request.query_params.get("unit_id")):
            units.append((unit,))
        if PATH in p.scopes and (unit := request.path_params.get("unit_id")):
            units.append((unit,))
        if self.guard.answerable is not None:
            units = [tuple(dict.fromkeys(await _expand(self.guard, g))) for g in units]
        if ENTITY in p.scopes:
            assert p.entity is not None
            entity_id = request.path_params.get(p.entity)
            if entity_id is not None:
                stored = await self.guard.entities[p.entity](entity_id)
                if stored is not None:
                    units.append((stored,) if isinstance(stored, str) else stored)
        return units


async def _expand(guard: Guard, group: tuple[str, ...]) -> list[str]:
    assert guard.answerable is not None
    out = list(group)
    for unit in group:
        out.extend(await guard.answerable(unit))
    return out


async def _json_body(request: Request) -> Any:
    """The body as FastAPI parsed it (Starlette caches it on the request); None if not JSON."""
    if "json" not in request.headers.get("content-type", ""):
        return None
    try:
        return await request.json()
    except ValueError:
        return None


def _dig(body: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(body, dict):
            return None
        body = body.get(part)
    return body


def uuid_key(value: str) -> str | None:
    """A UUID path parameter in the form entities are stored under (None: not a UUID). An
    entity loader must look up what the route will parse, or an id spelt differently (upper
    case) would find nothing here and everything in the route."""
    try:
        return str(UUID(value))
    except ValueError:
        return None


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


# ---- enumerating the declarations --------------------------------------------------------------


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    for dep in dependant.dependencies:
        yield dep
        yield from _walk(dep)


def declared_permissions(route: APIRoute) -> list[Permission]:
    return [
        d.call.permission
        for d in _walk(route.dependant)
        if isinstance(d.call, PermissionCheck | PublicRoute)
    ]


def route_permissions(app: FastAPI) -> dict[tuple[str, str], Permission | None]:
    """(method, path) → the route's permission (None: undeclared) for every `/api/` route."""
    out: dict[tuple[str, str], Permission | None] = {}
    for context in iter_route_contexts(app.routes):
        route, path = context.original_route, context.path
        if not isinstance(route, APIRoute) or not path or not path.startswith("/api/"):
            continue
        declared = declared_permissions(route)
        for method in context.methods or ():
            out[(method, path)] = declared[0] if len(declared) == 1 else None
    return out


ERROR_ANSWERS = {
    "400": "The body could not be read (not JSON, not UTF-8)",
    "401": "Not signed in, or the token or key is no longer valid",
    "403": "Refused by the access rules (role, unit subtree, the key's routes)",
    "404": "No such entity or unit",
    "409": "Conflicts with the stored state (an id of another record, a concurrent change)",
    "422": "Invalid input: the detail names the field",
    "429": "Too many attempts: see Retry-After",
    "503": "A dependency is down: see Retry-After",
}
ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "object"}},
            ]
        }
    },
}


def document_permissions(app: FastAPI) -> None:
    """Complete the OpenAPI document of every `/api/` operation: its permission
    (`x-permission`) and the error answers the guard and the error handlers can give
    (`{"detail": …}`: a sentence, or FastAPI's list naming the fields)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
            error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            for (method, path), permission in route_permissions(app).items():
                operation = schema.get("paths", {}).get(path, {}).get(method.lower())
                if operation is None or permission is None:
                    continue
                operation["x-permission"] = permission.describe()
                answers = operation.setdefault("responses", {})
                for status, text in ERROR_ANSWERS.items():
                    if status == "429" and not permission.public:
                        continue
                    answers[status] = {"description": text, "content": error}
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]
