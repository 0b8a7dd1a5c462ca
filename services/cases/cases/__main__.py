"""`python -m cases` runs the service; `python -m cases asyncapi` prints its AsyncAPI document."""

from __future__ import annotations

import sys

import uvicorn

from lhpn_shared.logs import configure_logging

from .app import create_app
from .settings import CasesSettings


def main() -> None:
    settings = CasesSettings()
    configure_logging(settings.log_level)
    if sys.argv[1:2] == ["asyncapi"]:
        from faststream.specification import AsyncAPI

        from lhpn_shared.broker import EventPublisher

        from .app import PUBLISHES, build_broker

        broker = build_broker(settings, {})
        EventPublisher(broker, PUBLISHES)
        print(AsyncAPI(broker, title="LHPN cases").to_specification().to_json())
        return
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.cases_port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
