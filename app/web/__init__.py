"""The web page at GET /: log in, drop videos, watch them convert, play and download the MP3s."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from app.auth.guard import IDENTITY_SOURCES


def register(app: Flask) -> None:
    """Register the page's routes on the app and let the API accept the page's session."""
    from app.web import session, views

    ttl = app.extensions["mp3"].settings.jwt_ttl_seconds
    app.session_interface = session.WebSessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="mp3_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # A session lasts as long as an API token, counted from the login, not from each request.
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=ttl),
        SESSION_REFRESH_EACH_REQUEST=False,
    )
    app.register_blueprint(views.bp)
    if session.session_identity not in IDENTITY_SOURCES:
        IDENTITY_SOURCES.append(session.session_identity)
