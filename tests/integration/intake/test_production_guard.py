"""A database first used in development keeps `admin/admin`: intake refuses to start on it in
production, naming the setting, until the stored password is changed."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from intake.__main__ import set_admin_password
from intake.app import create_app
from intake.repository import IntakeStore
from intake.settings import IntakeSettings
from intake.users import Users
from lhpn_shared.mongo import database, make_client
from lhpn_shared.settings import Environment, ProductionRefused
from tests.support.http import running


async def store_admin(settings: IntakeSettings, username: str, password: str) -> None:
    """What a development start leaves in the database: the first admin."""
    client = make_client(settings)
    try:
        users = Users(IntakeStore(database(client, settings.database)).users)
        await users.ensure_admin(username, password)
    finally:
        await client.close()


def in_production(settings: IntakeSettings, **over: object) -> IntakeSettings:
    """These settings as production (the local test database has no credentials, which the
    settings check would refuse first: that check has its own tests)."""
    return settings.model_copy(update={"env": Environment.production, **over})


async def test_a_production_start_with_a_stored_admin_on_the_development_password_fails(
    settings: IntakeSettings,
) -> None:
    await store_admin(settings, "admin", "admin")
    production = in_production(settings, admin_password=SecretStr("a-new-production-password"))
    with pytest.raises(ProductionRefused) as refused:
        async with running(create_app(production)):
            pass
    message = str(refused.value)
    assert "refused in ENV=production" in message
    assert "'admin' still has the development password" in message
    assert "ADMIN_PASSWORD" in message and "set-admin-password" in message

    assert await set_admin_password(production)  # the remedy the message names
    async with running(create_app(production)) as client:
        assert (await client.get("/healthz")).status_code == 200


async def test_any_stored_admin_on_the_development_password_is_refused_not_only_the_first(
    settings: IntakeSettings,
) -> None:
    await store_admin(settings, "root", "a-good-password-for-root")
    await store_admin(settings, "quan-tri-2", "admin")
    with pytest.raises(ProductionRefused, match="'quan-tri-2' still has the development"):
        async with running(create_app(in_production(settings, admin_username="root"))):
            pass
