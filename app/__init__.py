"""The Flask gateway: `create_app()` builds it; nothing is created at import time."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import db, errors
from app.services import Services
from core import logs, mongo
from core.jobs import ensure_indexes
from core.settings import Settings, SettingsError, load_settings


def create_app(
    test_config: Mapping[str, object] | None = None, *, settings: Settings | None = None
) -> Flask:
    """Build the gateway: settings, SQL schema, MongoDB, blueprints and error handlers."""
    if settings is None:
        try:
            settings = load_settings()
        except SettingsError as exc:
            # One line naming the variable, not a traceback: this is an operator's mistake.
            sys.exit(f"configuration error: {exc}")
    logs.configure()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.jwt_secret,
        # Uploads are streamed by the upload view itself; Flask must not buffer or cap them.
        MAX_CONTENT_LENGTH=None,
        MAX_FORM_MEMORY_SIZE=64 * 1024,
        JSON_SORT_KEYS=False,
    )
    if test_config:
        app.config.update(test_config)
    if settings.trusted_proxy_hops:
        # Behind the Ingress every request comes from the controller: without this, the login
        # throttle would count every client's failures against one address.
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    engine = db.make_engine(settings.database_url)
    db.migrate(engine)
    mongo_db = mongo.database(settings.mongodb_uri, settings.mongodb_database)
    try:
        ensure_indexes(mongo_db)
    except Exception as exc:
        # The gateway must start while MongoDB is down; /readyz reports it until it is back.
        app.logger.warning("could not create MongoDB indexes yet: %s", exc)
    app.extensions["mp3"] = Services(
        settings=settings, engine=engine, sessions=db.session_factory(engine), mongo=mongo_db
    )

    errors.register(app)
    from app import metrics, web
    from app.auth import commands, views
    from app.gateway import register as register_gateway

    app.register_blueprint(views.bp)
    app.register_blueprint(commands.bp)
    register_gateway(app)
    web.register(app)
    metrics.register(app)
    return app
