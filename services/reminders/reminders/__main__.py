"""`python -m reminders` runs the service; `python -m reminders asyncapi` prints its AsyncAPI."""

from __future__ import annotations

import sys

import uvicorn

from lhpn_shared.logs import configure_logging

from .app import create_app
from .settings import RemindersSettings


def main() -> None:
    settings = RemindersSettings()
    configure_logging(settings.log_level)
    if sys.argv[1:2] == ["asyncapi"]:
        from faststream.specification import AsyncAPI

        from .app import build_broker

        broker, _ = build_broker(settings, {})
        spec = AsyncAPI(broker, title="LHPN reminders", version="1.0.0")
        print(spec.to_specification().to_json())
        return
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.reminders_port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
