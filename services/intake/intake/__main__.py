"""`python -m intake` runs the service; `python -m intake asyncapi` prints its AsyncAPI document;
`python -m intake set-admin-password` gives the stored admin `ADMIN_USERNAME` the password in
`ADMIN_PASSWORD` (e.g. before a database first used in development goes to production)."""

from __future__ import annotations

import asyncio
import sys

from lhpn_shared.clock import SystemClock
from lhpn_shared.http import serve
from lhpn_shared.logs import configure_logging
from lhpn_shared.mongo import database, make_client
from lhpn_shared.settings import load_settings

from .app import create_app
from .repository import IntakeStore
from .settings import IntakeSettings
from .users import Users


async def set_admin_password(settings: IntakeSettings) -> bool:
    client = make_client(settings)
    try:
        users = Users(IntakeStore(database(client, settings.database)).users)
        return await users.set_password(
            settings.admin_username,
            settings.admin_password.get_secret_value(),
            SystemClock().now(),
        )
    finally:
        await client.close()


def main() -> None:
    settings = load_settings(IntakeSettings)
    configure_logging(settings.log_level)
    if sys.argv[1:2] == ["asyncapi"]:
        from faststream.specification import AsyncAPI

        from .app import build_broker

        print(
            AsyncAPI(build_broker(settings, {}), title="LHPN intake").to_specification().to_json()
        )
        return
    if sys.argv[1:2] == ["set-admin-password"]:
        if not asyncio.run(set_admin_password(settings)):
            sys.exit(f"no stored user '{settings.admin_username}' (ADMIN_USERNAME)")
        print(f"password of '{settings.admin_username}' replaced")
        return
    serve(create_app(settings), settings, settings.intake_port)


if __name__ == "__main__":
    main()
