"""The gateway's HTTP API: uploads, jobs, downloads, health and the OpenAPI description."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Register the gateway's blueprints on the app."""
    from app.gateway import admin, health, jobs, openapi, upload

    app.register_blueprint(upload.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(admin.bp)
