"""A real server on a loopback port and Debian's Chromium driven by Playwright; screenshots to test-output/."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from tests.conftest import PROJECT_ROOT, settings_for
from vault.wiring import Vault, build_vault

CHROMIUM = os.environ.get("VAULT_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = PROJECT_ROOT / "test-output" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM} (`apt-get install chromium`; .ci/run does)")
        for item in items:
            if "browser" in str(item.fspath):
                item.add_marker(skip)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(demo_vault: Vault, tmp_path: Path) -> Iterator[tuple[str, Vault]]:
    """The demo vault served by uvicorn on its own port, with VAULT_PUBLIC_URL matching it."""
    from vault.web.app import create_app

    port = _free_port()
    vault = build_vault(
        settings_for(tmp_path, demo_vault.settings.database_url, VAULT_PORT=str(port), VAULT_LOG_LEVEL="WARNING")
    )
    server = uvicorn.Server(uvicorn.Config(create_app(vault=vault), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", vault
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        vault.close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    SCREENSHOTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page_factory(chromium: object) -> Iterator[object]:
    """New browser contexts (each its own cookies): phone-sized by default, Chinese unless told otherwise."""
    contexts = []

    def make(width: int = 360, height: int = 760, locale: str = "zh-CN") -> object:
        context = chromium.new_context(viewport={"width": width, "height": height}, locale=locale)  # type: ignore[attr-defined]
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def shot(page: object, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path


def no_serious_axe_issues(page: object) -> None:
    """axe-core (axe-playwright-python) finds no serious or critical issue on the page."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert not bad, "; ".join(f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes)" for v in bad)
