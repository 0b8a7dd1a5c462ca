"""`python -m intake` runs the service; `python -m intake load-data` loads the default data."""

from __future__ import annotations

import sys

import uvicorn

from lhpn_shared.logs import configure_logging

from .app import create_app
from .settings import IntakeSettings


def main() -> None:
    settings = IntakeSettings()
    configure_logging(settings.log_level)
    if sys.argv[1:2] == ["asyncapi"]:
        from faststream.specification import AsyncAPI

        from .app import build_broker

        print(
            AsyncAPI(build_broker(settings, {}), title="LHPN intake").to_specification().to_json()
        )
        return
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.intake_port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
