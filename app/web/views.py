"""GET / (the page, or the login form), POST /web/login and POST /web/logout."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for
from pymongo.errors import ConnectionFailure
from sqlalchemy.exc import OperationalError

from app.auth.views import login_user
from app.errors import ApiError
from app.services import services
from app.web import session as web_session

bp = Blueprint("web", __name__)

#: Everything the page loads comes from the gateway itself: no CDN, no inline script or style.
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "media-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

MAX_EMAIL_LENGTH = 254
#: The login and logout forms are a few hundred bytes; a larger body is refused unread.
MAX_FORM_BYTES = 16 * 1024


@bp.before_request
def limit_body() -> None:
    """Refuse big bodies: unlike /upload, nothing here reads more than a small form."""
    request.max_content_length = MAX_FORM_BYTES


@bp.after_request
def security_headers(response: Response) -> Response:
    """Add the page's Content-Security-Policy and its other protective headers."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    # The page carries a CSRF token and the user's email: no shared cache may keep it.
    response.headers["Cache-Control"] = "no-store"
    return response


def _login_form(
    error: str | None = None,
    email: str = "",
    status: int = 200,
    notice: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[str, int, dict[str, str]]:
    html = render_template(
        "login.html", error=error, email=email, notice=notice, csrf=web_session.csrf_token()
    )
    return html, status, headers or {}


@bp.get("/")
def index() -> str | tuple[str, int, dict[str, str]]:
    """Show the page to a logged-in user and the login form to anyone else."""
    identity = web_session.logged_in()
    if identity is None:
        notice = "You are logged out." if request.args.get("bye") == "1" else None
        return _login_form(notice=notice)
    return render_template(
        "index.html",
        email=identity.email,
        csrf=web_session.csrf_token(),
        max_upload_bytes=services().settings.max_upload_bytes,
    )


@bp.post("/web/login")
def login() -> Response | tuple[str, int, dict[str, str]]:
    """Log in with the form's email and password, then show the page."""
    email = request.form.get("email", "").strip()
    password = request.form.get("password", "")
    if not web_session.csrf_valid(request.form.get(web_session.CSRF_FIELD)):
        return _login_form(
            "The login form had expired, so nothing was sent. Please try again.", email, 400
        )
    if not email or not password:
        return _login_form("Enter both your email and your password.", email, 400)
    if len(email) > MAX_EMAIL_LENGTH:
        return _login_form("Wrong email or password.", email[:MAX_EMAIL_LENGTH], 401)
    try:
        identity, _token = login_user(email, password)
    except ApiError as exc:
        # 401 without a WWW-Authenticate challenge: the page asks for the credentials; a Basic
        # challenge would open the browser's own login dialog on top of it.
        if exc.status == 429:
            wait = exc.headers.get("Retry-After", "60")
            message = f"Too many failed logins. Try again in {wait} seconds."
            return _login_form(message, email, 429, headers={"Retry-After": wait})
        return _login_form("Wrong email or password.", email, 401)
    except (ConnectionFailure, OperationalError):
        # The page answers an outage itself: a JSON error body is no page for a person.
        return _login_form(
            "Logging in is not possible right now: a service is down. Try again in a minute.",
            email,
            503,
        )
    web_session.log_in(identity)
    return redirect(url_for("web.index"), 303)


@bp.post("/web/logout")
def logout() -> Response:
    """End the session and go back to the login form."""
    if web_session.csrf_valid(request.form.get(web_session.CSRF_FIELD)):
        web_session.log_out()
        return redirect(url_for("web.index", bye=1), 303)
    # A forged or stale logout form: keep the session and show the page as it is.
    return redirect(url_for("web.index"), 303)
