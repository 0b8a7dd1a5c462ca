"""Headless Debian Chromium driven by Playwright (no browser download), axe-core run in the
page, and the screenshots kept as test artefacts."""

from __future__ import annotations

import os
import shutil
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
