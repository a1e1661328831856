"""Logging in and out of the page, and what its session cookie may and may not do."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser


def test_wrong_password_shows_an_error(page, live_gateway, user, artifacts):
    page.goto(f"{live_gateway}/")
    expect(page.get_by_label("Email")).to_be_focused()
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("not the password at all")
    with page.expect_response(f"{live_gateway}/web/login") as answer:
        page.get_by_role("button", name="Log in").click()
    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    # The email stays filled in and the focus waits in the password field for another try.
    expect(page.get_by_label("Email")).to_have_value(user.email)
    expect(page.get_by_label("Password")).to_be_focused()
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    assert page.request.get(f"{live_gateway}/jobs").status == 401
    page.screenshot(path=artifacts / "web-login-error.png")


def test_login_then_logout(page, context, live_gateway, user):
    log_in(page, live_gateway, user)
    expect(page.get_by_text(user.email)).to_be_visible()
    assert page.request.get(f"{live_gateway}/jobs").json()["total"] == 0

    cookie = next(c for c in context.cookies() if c["name"] == "mp3_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # plain HTTP here; see the forwarded-HTTPS test below
    assert page.evaluate("document.cookie") == ""

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("status")).to_have_text("You are logged out.")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert page.request.get(f"{live_gateway}/jobs").status == 401


def test_page_headers(live_gateway):
    response = httpx.get(f"{live_gateway}/", timeout=10)
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "HttpOnly" in response.headers["Set-Cookie"]
    assert "Secure" not in response.headers["Set-Cookie"]


def test_cookie_is_secure_behind_tls(live_gateway):
    # gunicorn trusts X-Forwarded-Proto from 127.0.0.1, as it trusts the Ingress in the cluster.
    response = httpx.get(f"{live_gateway}/", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    set_cookie = response.headers["Set-Cookie"]
    assert "Secure" in set_cookie and "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie


def test_login_form_needs_its_csrf_token(live_gateway, user):
    with httpx.Client(base_url=live_gateway, timeout=10) as browserless:
        browserless.get("/")
        response = browserless.post(
            "/web/login", data={"email": user.email, "password": user.password}
        )
        assert response.status_code == 400
        assert "had expired" in response.text
        assert browserless.get("/jobs").status_code == 401


def test_api_writes_with_the_cookie_need_the_csrf_token(page, live_gateway, user, tmp_path):
    log_in(page, live_gateway, user)
    video = {"name": "clip.mp4", "mimeType": "video/mp4", "buffer": b"\x00" * 64}
    refused = page.request.post(f"{live_gateway}/upload", multipart={"file": video})
    assert refused.status == 403
    assert refused.json()["error"]["code"] == "csrf_failed"
    refused = page.request.delete(f"{live_gateway}/jobs/0123456789abcdef01234567")
    assert refused.status == 403

    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    headers = {"X-CSRF-Token": token}
    missing = page.request.delete(f"{live_gateway}/jobs/0123456789abcdef01234567", headers=headers)
    assert missing.status == 404
    wrong = page.request.delete(
        f"{live_gateway}/jobs/0123456789abcdef01234567", headers={"X-CSRF-Token": token[:-2] + "xx"}
    )
    assert wrong.status == 403


def test_login_form_refuses_odd_bodies(live_gateway):
    with httpx.Client(base_url=live_gateway, timeout=10) as browserless:
        browserless.get("/")
        odd = browserless.post("/web/login", data={"csrf_token": "é∂", "email": "a@b.c"})
        assert odd.status_code == 400
        huge = browserless.post("/web/login", data={"email": "x" * 20_000, "password": "y"})
        assert huge.status_code == 413
        assert huge.json()["error"]["code"] == "request_entity_too_large"
