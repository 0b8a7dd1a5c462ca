"""The correlation id: one id that follows a piece of work from the HTTP request that started it,
through the events it caused (the envelope's `correlation_id`), into every service that handles
them — and onto every log line written meanwhile (`logs.CorrelationFilter`).

- HTTP: a request's `X-Correlation-ID` (or `X-Request-ID`) header when it is a plain token, a
  new id otherwise; the answer carries it back (`http.Metrics.install`).
- Events: `contracts.events.make_event` puts the current id into the envelope it builds.
- Consumers: `broker.process_delivery` makes the envelope's `correlation_id` (or, for an event
  that has none, its `event_id`) the current id while the event is handled.
- Calls to other services (the portal's) pass it on in `X-Correlation-ID`, and the address of
  the client the request came from in `X-Forwarded-For`: a service behind the portal counts
  sign-in failures and writes audit entries against the person's address, not the portal's
  (it believes the header only from a peer in its `FORWARDED_ALLOW_IPS`, uvicorn's setting).

It lives in a `ContextVar`, so each request and each delivery has its own. Only a plain token is
ever accepted from outside (letters, digits and `._:@/+=-`, at most 128 characters): the id is
written into every log line, so it must never carry free text, let alone personal data.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from uuid import uuid4

HEADER = "X-Correlation-ID"
REQUEST_ID_HEADER = "X-Request-ID"
FORWARDED_FOR = "X-Forwarded-For"

_TOKEN = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_current: ContextVar[str | None] = ContextVar("lhpn_correlation_id", default=None)
_client: ContextVar[str | None] = ContextVar("lhpn_client_address", default=None)


def current() -> str | None:
    """The correlation id of the work in progress, if any."""
    return _current.get()


def new_id() -> str:
    return uuid4().hex


def accepted(value: str | None) -> str | None:
    """`value` when it is a plain token that may go into logs; None otherwise."""
    if value is None:
        return None
    value = value.strip()
    return value if _TOKEN.match(value) else None


@contextmanager
def correlated(value: str) -> Iterator[str]:
    """Make `value` the current correlation id inside the block."""
    token = _current.set(value)
    try:
        yield value
    finally:
        _current.reset(token)


@contextmanager
def scope() -> Iterator[None]:
    """A block whose `set_current` calls end with it (a delivery handled from start to end)."""
    token = _current.set(_current.get())
    try:
        yield
    finally:
        _current.reset(token)


def set_current(value: str) -> None:
    """Make `value` the current id until the enclosing `scope` (or request) ends."""
    _current.set(value)


def for_event(correlation_id: str | None, event_id: object) -> str:
    """The id to handle an event under: its own correlation id, or the event's id when it has
    none (or one that is not a plain token), so what it causes can still be followed."""
    return accepted(correlation_id) or str(event_id)


@contextmanager
def on_behalf_of(address: str | None) -> Iterator[None]:
    """Inside the block, calls to other services say they are made for the client at `address`
    (an IP address, as the server — after its trusted-proxy handling — gave it; anything else
    is not passed on)."""
    try:
        valid = str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        valid = None
    token = _client.set(valid)
    try:
        yield
    finally:
        _client.reset(token)


def outgoing_headers() -> dict[str, str]:
    """Headers that pass the current id, and the address of the client it works for, on to
    another service."""
    headers: dict[str, str] = {}
    if value := current():
        headers[HEADER] = value
    if client := _client.get():
        headers[FORWARDED_FOR] = client
    return headers
