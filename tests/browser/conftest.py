"""A live server on the test's clock, and Debian's Chromium driven by Playwright.

The server runs the real app (uvicorn, in a thread with its own event loop) on the tests' database, so a
test can prepare data through the API client and watch the pages change. Chromium comes from Debian
(`apt-get install chromium`): browser downloads are not possible here. Without it the tests skip, except
in CI, where they fail. Each page a test visits is saved as a screenshot under `test-artifacts/`.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright

from service.app import create_app
from service.settings import Settings
from tests.conftest import IN_CI, FakeClock
from tests.sandbox_fixture import free_port

CHROMIUM = os.environ.get("ATELIER_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture
def live_server(settings: Settings, clock: FakeClock, clean_db: None) -> Iterator[str]:
    configured = settings.model_copy(update={"web_board_refresh_seconds": 1})
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(configured, clock=clock), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the live server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _chromium_missing() -> bool:
    return not Path(CHROMIUM).exists() and not shutil.which("chromium")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if _chromium_missing():
        message = f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


@asynccontextmanager
async def new_page(browser: Browser, base_url: str, **options: Any) -> AsyncIterator[Page]:
    """A page in a fresh browser context (its own cookies: another member of staff, another device)
    768 px wide, a bench tablet's width."""
    context = await browser.new_context(base_url=base_url, viewport={"width": 768, "height": 1024}, **options)
    try:
        yield await context.new_page()
    finally:
        await context.close()


@pytest.fixture
async def page(browser: Browser, live_server: str) -> AsyncIterator[Page]:
    async with new_page(browser, live_server) as opened:
        yield opened


@pytest.fixture
async def no_script(browser: Browser, live_server: str) -> AsyncIterator[Page]:
    """A page with JavaScript off (an old counter terminal, or HTMX failing to load): plain forms."""
    async with new_page(browser, live_server, java_script_enabled=False) as opened:
        yield opened


async def screenshot(page: Page, name: str) -> Path:
    """One screenshot per page visited, kept as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
