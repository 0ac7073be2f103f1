"""Browser tests of the web UI: Debian's Chromium, driven headless by Playwright, against a
real server process on loopback.

Every test's page is watched: a script error, a console error or any answer of 500 or more
fails the test. Chromium also logs a 4xx answer to a fetch as a console error ("Failed to load
resource"); those are the API's refusals the UI shows (a refused submit, a wrong password),
so they are allowed, and checked as answers by the tests that cause them.

Screenshots go to `build/screenshots/` (or `CLOUDTUNE_SCREENSHOTS`)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, sync_playwright

from tests.e2e.test_server import ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("CLOUDTUNE_SCREENSHOTS", ROOT / "build" / "screenshots"))
# Flags for a closed network: without them Chromium keeps calling home at start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
_REFUSAL = re.compile(r"^Failed to load resource: the server responded with a status of 4\d\d")

ADMIN = {"username": "admin", "email": "admin@example.com", "password": "correct horse 42"}


@pytest.fixture
def browser() -> Iterator[Browser]:
    # One per test, not per session: Playwright's synchronous API runs an event loop in this
    # thread for as long as it is started, and every asyncio test a worker ran after a browser
    # test would then fail to start its own ("cannot be called from a running event loop").
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Watch:
    """What went wrong in the browser while a test ran."""

    console_errors: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not _REFUSAL.match(message.text):
            self.console_errors.append(f"{message.text} ({message.location.get('url')})")

    def on_response(self, response: Response) -> None:
        if response.status >= 500:
            request = response.request
            self.server_errors.append(f"{response.status} {request.method} {response.url}")


@dataclass
class UiServer:
    server: ServerProcess
    browser: Browser
    watch: Watch

    @property
    def url(self) -> str:
        return self.server.url

    def new_page(self, *, width: int = 1280, height: int = 860, dark: bool = False) -> Page:
        context = self.browser.new_context(
            viewport={"width": width, "height": height},
            color_scheme="dark" if dark else "light",
            base_url=self.url,
        )
        page = context.new_page()
        page.on("console", self.watch.on_console)
        page.on("pageerror", lambda error: self.watch.console_errors.append(f"page: {error}"))
        page.on("response", self.watch.on_response)
        page.set_default_timeout(15_000)
        return page

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, timeout=30, **kwargs)

    def create_admin(self) -> None:
        made = self.api("POST", "/api/auth/setup/first-admin", json=ADMIN)
        assert made.status_code == 200, made.text

    def admin_headers(self) -> dict[str, str]:
        """The admin's session token as a bearer, for setting things up beside the browser."""
        credentials = {"username": ADMIN["username"], "password": ADMIN["password"]}
        login = self.api("POST", "/api/auth/login", json=credentials)
        assert login.status_code == 200, login.text
        token = login.json()["token"]
        return {"Authorization": f"Bearer {token}"}


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def ui(tmp_path: Path, browser: Browser) -> Iterator[UiServer]:
    server = ServerProcess(tmp_path / "home", f"sqlite:///{tmp_path / 'test.db'}")
    server.start()
    watch = Watch()
    try:
        yield UiServer(server, browser, watch)
    finally:
        server.stop()
    assert watch.console_errors == [], watch.console_errors
    assert watch.server_errors == [], watch.server_errors
