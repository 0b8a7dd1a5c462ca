"""`python -m portal` runs the portal on `PORTAL_PORT` (default 8000)."""

from __future__ import annotations

from lhpn_shared.http import serve
from lhpn_shared.logs import configure_logging

from .app import create_app
from .settings import PortalSettings


def main() -> None:
    settings = PortalSettings()
    configure_logging(settings.log_level)
    serve(create_app(settings), settings, settings.portal_port)


if __name__ == "__main__":
    main()
