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
from tests.support.servers import ServiceProcess, wait_until

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


class SmallGateway:
    """A gunicorn gateway of its own, with a small upload limit, that a test may stop and start."""

    def __init__(self, stack_env: dict[str, str], run_dir: Path) -> None:
        self.port = servers.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **stack_env,
            "MAX_UPLOAD_BYTES": str(SMALL_LIMIT),
            "GUNICORN_CMD_ARGS": "--config python:app.gunicorn_conf",
            "GUNICORN_WORKERS": "1",
            "GUNICORN_THREADS": "4",
            "METRICS_PORT": str(servers.free_port()),
        }
        argv = [
            str(servers.VENV_BIN / "gunicorn"),
            "--bind",
            f"127.0.0.1:{self.port}",
            "app:create_app()",
        ]
        self.process = ServiceProcess("gateway-small", argv, env, run_dir)

    def start(self) -> SmallGateway:
        self.process.start()
        wait_until(self._healthy, timeout=60, what="the small gateway to answer /healthz")
        return self

    def stop(self) -> None:
        self.process.stop()

    def _healthy(self) -> bool:
        if self.process.proc.poll() is not None:
            raise AssertionError(f"the small gateway exited:\n{self.process.log()[-3000:]}")
        try:
            return httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


@pytest.fixture(scope="module")
def small_gateway(stack_env: dict[str, str], run_dir: Path) -> Iterator[SmallGateway]:
    gateway = SmallGateway(stack_env, run_dir).start()
    yield gateway
    gateway.stop()
