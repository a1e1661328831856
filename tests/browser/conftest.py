"""Headless Chromium (Debian's package, never `playwright install`) driven by Playwright's sync API.

The browser is started once per session; each test gets a fresh context, so cookies never leak
from one test into another. A second, small gateway (a 100 KB upload limit, one process) serves
the tests that need a tiny limit or a server they may stop and start again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.conftest import PASSWORD, basic
from tests.support import servers

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = servers.ROOT / "test-artifacts"
SMALL_LIMIT = 100 * 1024


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the whole run."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is needed by the browser tests and {CHROMIUM} is missing "
            "(apt-get install chromium; .ci/run does it)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile: no cookies, a laptop-sized window."""
    ctx = browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """A page that fails the test on any JavaScript error or CSP violation."""
    tab = context.new_page()
    # Playwright's Python client turns file-chooser interception on without waiting for it when
    # a test first listens for a chooser, so a key press sent just after can reach Chromium first:
    # Chromium then opens its own (headless, invisible) dialog and no event ever comes (1 run in
    # 11 here). A listener from the start keeps interception on before any test acts.
    tab.on("filechooser", lambda _chooser: None)
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    tab.on(
        "console",
        lambda msg: (
            problems.append(f"console: {msg.text}")
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    tab.problems = problems  # type: ignore[attr-defined]
    yield tab
    assert not problems, problems


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The repository's git-ignored folder for screenshots."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@dataclass
class WebUser:
    email: str
    password: str

    def token(self, base: str) -> str:
        """Return an API token for the user, from the gateway's POST /login."""
        response = httpx.post(f"{base}/login", headers=basic(self.email, self.password), timeout=10)
        assert response.status_code == 200, response.text
        return response.text


@pytest.fixture
def user(auth) -> WebUser:
    made = auth.create()
    return WebUser(made.email, PASSWORD)


def log_in(page: Page, base: str, user: WebUser) -> None:
    """Log in through the page's form and wait for the upload area."""
    page.goto(f"{base}/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Convert videos to MP3")).to_be_visible()
    expect(page.locator("#jobs-loading")).to_be_hidden()


@pytest.fixture(scope="module")
def small_gateway(stack_env: dict[str, str], run_dir: Path) -> Iterator[servers.Gateway]:
    """A gateway of its own with a small upload limit, which a test may stop and start."""
    gateway = servers.Gateway(
        "gateway-small", stack_env, run_dir,
        MAX_UPLOAD_BYTES=str(SMALL_LIMIT), GUNICORN_WORKERS="1", GUNICORN_THREADS="4",
    ).start()  # fmt: skip
    yield gateway
    gateway.stop()
