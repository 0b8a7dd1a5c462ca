"""Every service's own copy of the users' and API keys' access state (SPEC §9.3).

A token is signed by intake and carries the user's role, unit and `sv` (session version); an API
key is a random secret. Either stays valid until something says otherwise: a disabled user, a
role or unit change, a password reset (each bumps the session version) or a revoked key. Intake
announces those as `user.upserted` / `api_key.upserted` (`contracts.access`); each service keeps
them in its own collection (`AccessCopy`, queue `<service>.access`) and in memory
(`AccessRegistry`), which the `Authenticator` asks on every request.

A user or key this service has not heard of is judged by its signature (a token) or the
`API_KEYS` bootstrap (a key): the copy only adds refusals, so a user created a moment ago is not
refused while the event is on its way.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from faststream.middlewares import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from pymongo.asynchronous.collection import AsyncCollection

from .broker import TOPOLOGY, Reject, process_delivery
from .contracts.access import ApiKeyAccess, UserAccess
from .contracts.events import Envelope, parse_data
from .idempotency import upsert_if_newer
from .inbound import INBOUND_ROUTING_KEYS, InboundBinding, InboundBindings
from .mongo import Doc
from .principal import Principal, Role

if TYPE_CHECKING:
    from .consumers import QueueProgress
    from .trust import Admission

log = logging.getLogger("lhpn.accounts")

ACCESS_EVENTS = ("user.upserted.v1", "api_key.upserted.v1")


def hash_api_key(key: str) -> str:
    """SHA-256 of the key, hex: how a key is stored, sent and looked up."""
    return hashlib.sha256(key.encode()).hexdigest()


class AccessRegistry:
    """In memory: what can turn a valid credential down, and the managed API keys."""

    def __init__(self) -> None:
        self.users: dict[str, UserAccess] = {}
        self._keys_by_id: dict[str, ApiKeyAccess] = {}
        self._keys_by_hash: dict[str, ApiKeyAccess] = {}
        self.loaded = False

    def load(self, users: Iterable[UserAccess], keys: Iterable[ApiKeyAccess]) -> None:
        for user in users:
            self.apply_user(user)
        for key in keys:
            self.apply_key(key)
        self.loaded = True

    def apply_user(self, user: UserAccess) -> bool:
        current = self.users.get(user.username)
        if current is not None and current.revision >= user.revision:
            return False
        self.users[user.username] = user
        return True

    def apply_key(self, key: ApiKeyAccess) -> bool:
        current = self._keys_by_id.get(key.key_id)
        if current is not None and current.revision >= key.revision:
            return False
        if current is not None:
            self._keys_by_hash.pop(current.key_hash, None)
        self._keys_by_id[key.key_id] = key
        self._keys_by_hash[key.key_hash] = key
        return True

    def token_refusal(self, principal: Principal, session_version: int) -> str | None:
        """Why a token that verified is nonetheless refused, or None when it stands."""
        user = self.users.get(principal.subject)
        if user is None:
            return None
        if not user.enabled:
            return "Tài khoản đã bị khóa."
        if user.session_version != session_version:
            return (
                "Phiên đăng nhập không còn hiệu lực (tài khoản vừa được thay đổi), "
                "vui lòng đăng nhập lại."
            )
        if (user.role, user.unit_id) != (principal.role, principal.unit_id):
            return "Phiên đăng nhập không còn hiệu lực (vai trò đã đổi), vui lòng đăng nhập lại."
        return None

    def managed_key(self, key: str) -> ApiKeyAccess | None:
        """The managed key with this value (revoked ones too), or None."""
        return self._keys_by_hash.get(hash_api_key(key))

    def keys(self) -> list[ApiKeyAccess]:
        return sorted(self._keys_by_id.values(), key=lambda k: k.key_id)

    def key_of_broker_user(self, broker_user: str) -> ApiKeyAccess | None:
        """The key naming `broker_user`: an active one if any, else a revoked one, else None."""
        named = [k for k in self._keys_by_id.values() if k.broker_user == broker_user]
        return next((k for k in named if not k.revoked), named[0] if named else None)

    def broker_binding(self, broker_user: str) -> Principal | None:
        """The principal of an inbound system publishing as `broker_user` (its key's unit and
        event types), or None when no active key names that broker user."""
        for key in self._keys_by_id.values():
            if key.broker_user == broker_user and not key.revoked:
                return Principal(
                    subject=f"broker:{broker_user}",
                    role=Role.system,
                    unit_id=key.unit_id,
                    allowed_events=_frozen(key.allowed_events),
                )
        return None


def key_principal(key: ApiKeyAccess) -> Principal:
    return Principal(
        subject=f"system:{key.name}",
        role=Role.system,
        unit_id=key.unit_id,
        allowed_routes=_frozen(key.allowed_routes),
        allowed_events=_frozen(key.allowed_events),
    )


def _frozen(items: list[str] | None) -> frozenset[str] | None:
    return None if items is None else frozenset(items)


def user_doc_id(username: str) -> str:
    return f"user:{username}"


def key_doc_id(key_id: str) -> str:
    return f"key:{key_id}"


class AccessCopy:
    """A service's copy of the access events, persisted in its own collection (`access`) when
    one is given. Intake, which owns the records, keeps none: it loads its registry from its own
    users and keys and applies the events of its other replicas in memory."""

    def __init__(self, registry: AccessRegistry, coll: AsyncCollection[Doc] | None) -> None:
        self.registry = registry
        self._coll = coll

    async def load(self) -> None:
        if self._coll is None:
            return
        users: list[UserAccess] = []
        keys: list[ApiKeyAccess] = []
        async for doc in self._coll.find({}):
            data = {k: v for k, v in doc.items() if k not in ("_id", "kind")}
            if doc.get("kind") == "user":
                users.append(UserAccess.model_validate(data))
            elif doc.get("kind") == "api_key":
                keys.append(ApiKeyAccess.model_validate(data))
        self.registry.load(users, keys)

    async def handle(self, envelope: Envelope) -> str:
        """Apply one `user.upserted` / `api_key.upserted` (idempotent, newest revision wins)."""
        data = parse_data(envelope)
        if isinstance(data, UserAccess):
            await self._store("user", user_doc_id(data.username), data)
            return "applied" if self.registry.apply_user(data) else "unchanged"
        if isinstance(data, ApiKeyAccess):
            await self._store("api_key", key_doc_id(data.key_id), data)
            return "applied" if self.registry.apply_key(data) else "unchanged"
        raise Reject(f"not an access event: {envelope.routing_key}")

    async def _store(self, kind: str, doc_id: str, data: UserAccess | ApiKeyAccess) -> None:
        if self._coll is None:
            return
        fields: dict[str, Any] = {"kind": kind, **data.model_dump(exclude={"revision"})}
        await upsert_if_newer(self._coll, doc_id, data.revision, fields)


def subscribe_access(
    broker: RabbitBroker,
    queue_name: str,
    copy: Callable[[], AccessCopy | None],
    owners: Admission,
    progress: QueueProgress | None = None,
) -> None:
    """Consume `user.upserted` / `api_key.upserted` from this service's `<service>.access`
    queue into its copy (built later, in the app's lifespan: hence the callable), admitted only
    from their owner, intake (`owners`: `lhpn_shared.trust.EventOwners`)."""
    binding = TOPOLOGY[queue_name]

    async def on_access_event(msg: RabbitMessage) -> None:
        async def handle(envelope: Envelope, publisher: Principal) -> None:
            target = copy()
            if target is None:
                raise ConnectionError("access copy not ready yet")  # requeued, not lost
            await target.handle(envelope)

        await process_delivery(broker, msg, queue_name, handle, admission=owners, progress=progress)

    broker.subscriber(
        binding.rabbit_queue(),
        binding.exchange,
        ack_policy=AckPolicy.MANUAL,
        title=f"{queue_name}:{binding.exchange.name}",
        description="Users and API keys as intake changes them ("
        + ", ".join(binding.routing_keys)
        + "): a disabled user or a revoked key is refused from then on.",
    )(on_access_event)


class KeyInboundBindings:
    """Inbound systems' bindings (`lhpn_shared.inbound.InboundBindings`) from the API keys that
    name a RabbitMQ user — their unit and event types — before the `INBOUND_SYSTEMS` bootstrap.
    A user whose key is revoked is refused even if the bootstrap lists it."""

    def __init__(self, registry: AccessRegistry, bootstrap: InboundBindings) -> None:
        self._registry = registry
        self._bootstrap = bootstrap

    async def lookup(self, broker_user: str) -> InboundBinding | None:
        key = self._registry.key_of_broker_user(broker_user)
        if key is None:
            return await self._bootstrap.lookup(broker_user)
        if key.revoked:
            return None
        events = INBOUND_ROUTING_KEYS if key.allowed_events is None else key.allowed_events
        return InboundBinding(broker_user, key.unit_id, frozenset(events))
