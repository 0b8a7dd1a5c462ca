"""`python -m reminders` runs the service; `python -m reminders asyncapi` prints its AsyncAPI;
`python -m reminders reencrypt` re-seals the stored webhook secrets under the first key of
`WEBHOOK_SECRET_KEYS` and prints what it did (JSON; exit status 1 if a secret opened with no
key)."""

from __future__ import annotations

import asyncio
import json
import sys

from lhpn_shared.http import serve
from lhpn_shared.logs import configure_logging
from lhpn_shared.settings import load_settings

from .app import create_app
from .settings import RemindersSettings


def main() -> None:
    settings = load_settings(RemindersSettings)
    # a command prints its result on standard output: its logs go to standard error
    configure_logging(settings.log_level, sys.stderr if sys.argv[1:] else None)
    if sys.argv[1:2] == ["asyncapi"]:
        from faststream.specification import AsyncAPI

        from .app import build_broker

        broker, _ = build_broker(settings, {})
        spec = AsyncAPI(broker, title="LHPN reminders", version="1.0.0")
        print(spec.to_specification().to_json())
        return
    if sys.argv[1:2] == ["reencrypt"]:
        sys.exit(reencrypt_command(settings))
    serve(create_app(settings), settings, settings.reminders_port)


def reencrypt_command(settings: RemindersSettings) -> int:
    from lhpn_shared.mongo import database, make_client

    from .contacts import reseal_secrets

    async def run() -> int:
        client = make_client(settings)
        try:
            contacts = database(client, settings.database)["contacts"]
            report = await reseal_secrets(contacts, settings.webhook_keyring())
        finally:
            await client.close()
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0 if not report["units_failed"] else 1

    return asyncio.run(run())


if __name__ == "__main__":
    main()
