"""Who is signed in, and the form tokens that protect every form from cross-site requests.

The session lives in a signed cookie (Starlette's `SessionMiddleware`: `HttpOnly`,
`SameSite=Lax`, `Secure` outside development). It holds the token intake issued at sign-in and
what the pages show about the user; the portal keeps nothing on its side.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request

from .backend import Backend, BackendError, SessionRejected
from .labels import LEVEL_LABELS, ROLE_LABELS

log = logging.getLogger("portal.session")

USER_KEY = "user"
CSRF_KEY = "csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class SignedIn:
    username: str
    role: str
    unit_id: str | None
    unit_name: str | None
    unit_level: str | None
    token: str
    expires_at: int
    """When intake's token expires, seconds since the epoch."""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_viewer(self) -> bool:
        return self.role == "viewer"

    @property
    def is_staff(self) -> bool:
        return self.role.endswith("_staff")

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)

    @property
    def unit_label(self) -> str:
        if self.unit_id is None:
            return "Toàn hệ thống"
        return self.unit_name or f"Đơn vị {self.unit_id}"

    @property
    def level_label(self) -> str:
        return LEVEL_LABELS.get(self.unit_level or "", "")


def signed_in_from_token_answer(
    username: str, answer: dict[str, Any], unit: dict[str, Any] | None, now: datetime
) -> SignedIn:
    """What the session keeps from intake's token answer (`role`, `unit_id`, `expires_in`) and
    the user's unit (name, level)."""
    return SignedIn(
        username=username,
        role=str(answer["role"]),
        unit_id=answer.get("unit_id"),
        unit_name=(unit or {}).get("name"),
        unit_level=(unit or {}).get("level"),
        token=str(answer["access_token"]),
        expires_at=int(now.timestamp()) + int(answer["expires_in"]),
    )


class SignInRequired(Exception):
    """No session, or an expired one: back to the sign-in page, then to `next_url`."""

    def __init__(self, next_url: str, *, expired: bool) -> None:
        super().__init__(next_url)
        self.next_url = next_url
        self.expired = expired


class CsrfRejected(Exception):
    """A form posted without this session's form token."""


def remember(request: Request, user: SignedIn) -> None:
    """Start a session: a fresh form token too, so a token seen before sign-in is worthless."""
    request.session.clear()
    request.session[USER_KEY] = asdict(user)
    request.session[CSRF_KEY] = secrets.token_urlsafe(32)


def forget(request: Request) -> None:
    request.session.clear()


def safe_next(url: str | None) -> str:
    """Only a path on this site (no 'https://elsewhere', no '//elsewhere')."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/"
    return url


def asked_for(request: Request) -> str:
    """The page to return to after signing in: this page for a GET; for a form, the page the
    form was on (when the browser says so and it is ours)."""
    if request.method == "GET":
        query = f"?{request.url.query}" if request.url.query else ""
        return safe_next(request.url.path + query)
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        if parts.netloc == request.url.netloc:
            return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))
    return "/"


async def current_user(request: Request, backend: Backend, now: datetime) -> SignedIn:
    """THE one place a request's session is checked: the cookie, the token's expiry, then
    intake's `GET /api/v1/me` with the token, so an account disabled, changed (role, unit,
    password reset) or signed out elsewhere since is sent back to sign-in on its next page.

    When intake does not answer, the page goes on with what the cookie says: every service
    checks the token (and the account's current state) itself on each call, so nothing is
    shown that the user may no longer see; the pages say which service is missing.
    """
    data = request.session.get(USER_KEY)
    if not data:
        raise SignInRequired(asked_for(request), expired=False)
    try:
        user = SignedIn(**data)
    except TypeError:  # a cookie from an older portal version
        forget(request)
        raise SignInRequired(asked_for(request), expired=True) from None
    if user.expires_at <= now.timestamp():
        forget(request)
        raise SignInRequired(asked_for(request), expired=True)
    try:
        me = await backend.get("intake", "/api/v1/me", token=user.token)
    except SessionRejected:
        forget(request)
        raise SignInRequired(asked_for(request), expired=True) from None
    except BackendError as exc:
        log.warning(
            "session not checked: intake did not answer", extra={"error": type(exc).__name__}
        )
        return user
    if (me.get("username"), me.get("role"), me.get("unit_id")) != (
        user.username,
        user.role,
        user.unit_id,
    ):  # not the account this session was opened for (cannot happen without a new token)
        forget(request)
        raise SignInRequired(asked_for(request), expired=True)
    return user


def csrf_token(request: Request) -> str:
    """This session's form token (made on first use, also before sign-in)."""
    token = request.session.get(CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[CSRF_KEY] = token
    return token


def check_csrf(request: Request, sent: object) -> None:
    expected = request.session.get(CSRF_KEY)
    sent = sent if isinstance(sent, str) else request.headers.get(CSRF_HEADER)
    if not (
        isinstance(expected, str)
        and isinstance(sent, str)
        and hmac.compare_digest(expected.encode(), sent.encode())
    ):
        raise CsrfRejected
