"""`python -m cases` runs the service; `python -m cases asyncapi` prints its AsyncAPI document;
`python -m cases reencrypt [--batch N] [--after CASE_ID]` re-seals every stored personal value
under the first key of `CASE_KEYS` and prints what it did (JSON; exit status 1 if a value opened
with no key)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from lhpn_shared.http import serve
from lhpn_shared.logs import configure_logging
from lhpn_shared.settings import load_settings

from .app import create_app
from .settings import CasesSettings


def main() -> None:
    settings = load_settings(CasesSettings)
    # a command prints its result on standard output: its logs go to standard error
    command = sys.argv[1] if len(sys.argv) > 1 else None
    configure_logging(settings.log_level, sys.stderr if command else None)
    if sys.argv[1:2] == ["asyncapi"]:
        from faststream.specification import AsyncAPI

        from lhpn_shared.broker import EventPublisher

        from .app import PUBLISHES, build_broker

        broker = build_broker(settings, {})
        EventPublisher(broker, PUBLISHES)
        print(AsyncAPI(broker, title="LHPN cases").to_specification().to_json())
        return
    if sys.argv[1:2] == ["reencrypt"]:
        sys.exit(reencrypt_command(settings, sys.argv[2:]))
    serve(create_app(settings), settings, settings.cases_port)


def reencrypt_command(settings: CasesSettings, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cases reencrypt",
        description="Re-seal every stored personal value under the first key of CASE_KEYS.",
    )
    parser.add_argument("--batch", type=int, default=200, help="cases per page (default 200)")
    parser.add_argument("--after", default=None, help="continue after this case id")
    args = parser.parse_args(argv)

    from lhpn_shared.mongo import database, make_client

    from .reencrypt import reencrypt
    from .repository import CasesStore

    async def run() -> int:
        client = make_client(settings)
        try:
            store = CasesStore(database(client, settings.database))
            report = await reencrypt(
                store, settings.cipher(), batch=max(1, args.batch), after=args.after
            )
        finally:
            await client.close()
        print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        return 0 if report.ok else 1

    return asyncio.run(run())


if __name__ == "__main__":
    main()
