"""Headless Debian Chromium driven by Playwright (no browser download), axe-core run in the
page, and the screenshots kept as test artefacts."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.infra import REPO

AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe.min.js"
ARTEFACTS = Path(os.environ.get("LHPN_ARTEFACTS", REPO / ".artefacts")) / "portal-e2e"

CHROMIUM_ARGS = [
    # as root, and without the background traffic this closed network refuses
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(page: Any, name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def serious_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now (WCAG 2.1 A/AA)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))  # not a <script>: the CSP stays strict
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {
                runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
            });
            return r.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')),
            }));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


def sign_in(page: Any, portal: str, username: str, password: str, path: str = "/") -> None:
    page.goto(portal + path)
    assert "/dang-nhap" in page.url  # every page asks for a session first
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("form.form button[type=submit]")
    page.wait_for_url(re.compile(re.escape(portal + path) + r"$"))


def accessible(page: Any, seen: list[str]) -> None:
    """No serious or critical axe violation on the page as it is now."""
    violations = serious_violations(page)
    assert violations == [], f"{page.url}: {violations}"
    seen.append(page.url)


def until(probe: Callable[[], bool], timeout: float = 20.0) -> None:
    """Reload-and-look until the events have flowed (aggregation, reminders)."""
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.5)


def dashboard_complete(page: Any) -> None:
    """Wait for the dashboard's second part (the latest periods' rates, fetched by htmx)."""
    page.wait_for_selector("#ty-le")
