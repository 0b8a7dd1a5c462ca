"""`python -m portal` runs the portal on `PORTAL_PORT` (default 8000)."""

from __future__ import annotations

import uvicorn

from lhpn_shared.logs import configure_logging

from .app import create_app
from .settings import PortalSettings


def main() -> None:
    settings = PortalSettings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.portal_port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
