"""The API documents of every service, generated from the code: OpenAPI from each FastAPI app,
AsyncAPI from each FastStream broker (what `/openapi.json` and `/asyncapi.json` serve).

The apps are built with fixed documentation settings and an empty environment, so the documents
depend on the code alone (never on the machine's settings), and are read without starting
anything (no lifespan: no database, no broker).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from fastapi import FastAPI

SERVICES = ("intake", "cases", "reminders", "aggregation")
"""The services with an API. The portal serves pages to people (it calls these APIs itself) and
publishes no API document of its own."""


@contextlib.contextmanager
def documentation_environment() -> Iterator[None]:
    """Settings read nothing from the machine while the documents are made."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ["ENV"] = "development"
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _factories() -> dict[str, Callable[[], FastAPI]]:
    from aggregation.app import create_app as aggregation_app
    from aggregation.settings import AggregationSettings
    from cases.app import create_app as cases_app
    from cases.settings import CasesSettings
    from intake.app import create_app as intake_app
    from intake.settings import IntakeSettings
    from reminders.app import create_app as reminders_app
    from reminders.settings import RemindersSettings

    def broker(service: str) -> dict[str, Any]:
        # the server AsyncAPI names: compose's broker, each service as its own user
        return {"rabbit_url": f"amqp://lhpn-{service}@rabbitmq:5672/"}

    return {
        "intake": lambda: intake_app(IntakeSettings(**broker("intake"))),
        "cases": lambda: cases_app(CasesSettings(**broker("cases"))),
        "reminders": lambda: reminders_app(RemindersSettings(**broker("reminders"))),
        "aggregation": lambda: aggregation_app(AggregationSettings(**broker("aggregation"))),
    }


def _pretty(document: Any, *, sort_keys: bool = False) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2, sort_keys=sort_keys) + "\n"


async def generate() -> dict[str, str]:
    """File name → content: `<service>.openapi.json` and `<service>.asyncapi.json`."""
    out: dict[str, str] = {}
    with documentation_environment():
        for service, factory in _factories().items():
            app = factory()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://docs") as client:
                openapi = await client.get("/openapi.json")
                openapi.raise_for_status()
                out[f"{service}.openapi.json"] = _pretty(openapi.json())
                asyncapi = await client.get("/asyncapi.json")
                asyncapi.raise_for_status()
                # FastStream lists the publishers in no fixed order: sorted, the document is stable
                out[f"{service}.asyncapi.json"] = _pretty(asyncapi.json(), sort_keys=True)
    return out
