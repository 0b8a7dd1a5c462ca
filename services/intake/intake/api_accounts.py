"""Intake's routes for signing in, the caller's own account, and (admins) users and API keys."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from lhpn_shared.access import (
    ADMINS,
    EVERYONE,
    READ,
    USERS,
    WRITE,
    Guard,
    Permission,
    client_address,
    public,
)
from lhpn_shared.auth import Principal, Role, issue_token
from lhpn_shared.contracts.access import UserAccess
from lhpn_shared.settings import ServiceSettings

from .api_keys import ApiKeyCreated, ApiKeyOut, ApiKeys, NewApiKey
from .service import Intake
from .signin import SignInThrottle, Throttled
from .users import USERNAME, NewUser, PasswordChange, PasswordReset, RoleChange, UserOut, Users

SIGN_IN = public("auth.token")
ME_READ = Permission("me.read", READ, EVERYONE)
ME_PASSWORD = Permission("me.password", WRITE, USERS)
USERS_READ = Permission("users.read", READ, ADMINS)
USERS_WRITE = Permission("users.write", WRITE, ADMINS)
KEYS_READ = Permission("api_keys.read", READ, ADMINS)
KEYS_WRITE = Permission("api_keys.write", WRITE, ADMINS)

Username = Annotated[str, Path(min_length=1, max_length=64, pattern=USERNAME)]
KeyId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
    role: Role
    unit_id: str | None


class MeOut(BaseModel):
    """Who the caller is, for the portal to check a session on every page."""

    subject: str
    username: str | None = Field(description="for a user; null for a system's API key")
    kind: Literal["user", "api_key"]
    role: Role
    unit_id: str | None
    unit_name: str | None
    allowed_routes: list[str] | None = None
    allowed_events: list[str] | None = None


class UsersPage(BaseModel):
    items: list[UserOut]
    next_cursor: str | None = None


class EnabledChange(BaseModel):
    enabled: bool


def build_accounts_router(settings: ServiceSettings, guard: Guard) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["accounts"])

    async def intake(request: Request) -> Intake:
        svc: Intake = request.app.state.intake
        return svc

    async def users(request: Request) -> Users:
        u: Users = request.app.state.users
        return u

    async def api_keys(request: Request) -> ApiKeys:
        k: ApiKeys = request.app.state.api_keys
        return k

    async def throttle(request: Request) -> SignInThrottle:
        t: SignInThrottle = request.app.state.sign_in_throttle
        return t

    Svc = Annotated[Intake, Depends(intake)]
    Accounts = Annotated[Users, Depends(users)]
    Keys = Annotated[ApiKeys, Depends(api_keys)]

    def token_for(user: UserAccess, svc: Intake) -> TokenOut:
        principal = Principal(subject=user.username, role=user.role, unit_id=user.unit_id)
        tok, ttl = issue_token(settings, principal, svc.clock.now(), user.session_version)
        return TokenOut(access_token=tok, expires_in=ttl, role=user.role, unit_id=user.unit_id)

    # ---- signing in and the caller's own account ----------------------------------------------

    @router.post(
        "/auth/token",
        response_model=TokenOut,
        tags=["auth"],
        responses={401: {"description": "wrong credentials"}, 429: {"description": "throttled"}},
    )
    async def token(
        form: Annotated[OAuth2PasswordRequestForm, Depends()],
        request: Request,
        accounts: Accounts,
        svc: Svc,
        limits: Annotated[SignInThrottle, Depends(throttle)],
        _: Annotated[None, guard(SIGN_IN)],
    ) -> TokenOut | JSONResponse:
        now, address = svc.clock.now(), client_address(request)
        try:
            await limits.attempt(form.username, address, now)
        except Throttled as exc:
            return JSONResponse(
                {"detail": str(exc)},
                status_code=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(exc.retry_after)},
            )
        user = await accounts.authenticate(form.username, form.password)
        if user is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="Sai tên đăng nhập hoặc mật khẩu.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        await limits.succeeded(form.username, address)
        return token_for(user, svc)

    @router.get("/me", response_model=MeOut, tags=["auth"])
    async def me(caller: Annotated[Principal, guard(ME_READ)], svc: Svc) -> MeOut:
        unit = svc.tree.get(caller.unit_id) if caller.unit_id else None
        is_key = caller.role is Role.system
        return MeOut(
            subject=caller.subject,
            username=None if is_key else caller.subject,
            kind="api_key" if is_key else "user",
            role=caller.role,
            unit_id=caller.unit_id,
            unit_name=unit.name if unit else None,
            allowed_routes=sorted(caller.allowed_routes) if caller.allowed_routes else None,
            allowed_events=sorted(caller.allowed_events) if caller.allowed_events else None,
        )

    @router.put("/me/password", response_model=TokenOut, tags=["auth"])
    async def change_own_password(
        body: PasswordChange,
        caller: Annotated[Principal, guard(ME_PASSWORD)],
        accounts: Accounts,
        svc: Svc,
    ) -> TokenOut:
        """Change one's own password: every other session ends; the answer is a new token."""
        return token_for(await accounts.change_own_password(caller, body), svc)

    # ---- users (admins) -------------------------------------------------------------------------

    @router.get("/users", response_model=UsersPage)
    async def list_users(
        caller: Annotated[Principal, guard(USERS_READ)],
        accounts: Accounts,
        svc: Svc,
        unit_id: Annotated[str | None, Query(max_length=32, description="subtree")] = None,
        role: Role | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
    ) -> UsersPage:
        units = None if unit_id is None else (svc.tree.subtree(unit_id) or [unit_id])
        items, nxt = await accounts.list(unit_ids=units, role=role, limit=limit, cursor=cursor)
        return UsersPage(items=items, next_cursor=nxt)

    @router.post("/users", response_model=UserOut, status_code=201)
    async def create_user(
        body: NewUser,
        caller: Annotated[Principal, guard(USERS_WRITE)],
        accounts: Accounts,
        svc: Svc,
    ) -> UserOut:
        return await accounts.create(body, svc.tree, caller)

    @router.get("/users/{username}", response_model=UserOut)
    async def get_user(
        username: Username, caller: Annotated[Principal, guard(USERS_READ)], accounts: Accounts
    ) -> UserOut:
        return await accounts.get(username)

    @router.put("/users/{username}/enabled", response_model=UserOut)
    async def enable_or_disable(
        username: Username,
        body: EnabledChange,
        caller: Annotated[Principal, guard(USERS_WRITE)],
        accounts: Accounts,
    ) -> UserOut:
        """Disable (every session of the user ends at once) or enable an account."""
        return await accounts.set_enabled(username, body.enabled, caller)

    @router.put("/users/{username}/role", response_model=UserOut)
    async def change_role(
        username: Username,
        body: RoleChange,
        caller: Annotated[Principal, guard(USERS_WRITE)],
        accounts: Accounts,
        svc: Svc,
    ) -> UserOut:
        """Change the role and unit; the user's sessions end (they sign in again)."""
        return await accounts.change_role(username, body, svc.tree, caller)

    @router.put("/users/{username}/password", response_model=UserOut)
    async def reset_password(
        username: Username,
        body: PasswordReset,
        caller: Annotated[Principal, guard(USERS_WRITE)],
        accounts: Accounts,
    ) -> UserOut:
        """Set a new password for a user who lost theirs; their sessions end."""
        return await accounts.reset_password(username, body.password, caller)

    # ---- API keys (admins) ----------------------------------------------------------------------

    @router.get("/api-keys", response_model=list[ApiKeyOut])
    async def list_keys(
        caller: Annotated[Principal, guard(KEYS_READ)], keys: Keys
    ) -> list[ApiKeyOut]:
        return await keys.list()

    @router.post("/api-keys", response_model=ApiKeyCreated, status_code=201)
    async def create_key(
        body: NewApiKey,
        caller: Annotated[Principal, guard(KEYS_WRITE)],
        keys: Keys,
        svc: Svc,
    ) -> ApiKeyCreated:
        """A new key for another system. The answer holds the key itself, shown this once."""
        return await keys.create(body, svc.tree, caller)

    @router.get("/api-keys/{key_id}", response_model=ApiKeyOut)
    async def get_key(
        key_id: KeyId, caller: Annotated[Principal, guard(KEYS_READ)], keys: Keys
    ) -> ApiKeyOut:
        return await keys.get(key_id)

    @router.post("/api-keys/{key_id}/revoke", response_model=ApiKeyOut)
    async def revoke_key(
        key_id: KeyId, caller: Annotated[Principal, guard(KEYS_WRITE)], keys: Keys
    ) -> ApiKeyOut:
        """Revoke a key: refused here from the next request, elsewhere once the event arrives."""
        return await keys.revoke(key_id, caller)

    return router
