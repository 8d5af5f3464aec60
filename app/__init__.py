"""The Flask application factory: the only web layer of SMS Pay Gateway."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import logs
from app.bootstrap import Clock, Services
from app.config import Settings
from gateway_clients.base import PaymentGateway
from storage.contract import Store


def create_app(
    config: Mapping[str, Any] | None = None,
    *,
    clock: Clock | None = None,
    store: Store | None = None,
    gateway: PaymentGateway | None = None,
) -> Flask:
    """Build the app: settings from SMSPAY_* variables, then `config` overrides (tests)."""
    settings = Settings.from_env(overrides=config)
    app = Flask(__name__)
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024  # webhooks carry one SMS, never more
    services = Services(settings, store_override=store, gateway_override=gateway)
    if clock is not None:
        services.clock = clock
    app.extensions["smspay"] = services
    logs.configure(settings.log_level, settings.log_format)
    logs.install_request_ids(app)
    for gap in settings.missing():
        logging.getLogger("app.config").warning("%s", gap)
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n
        )

    from app.cli import register_cli
    from app.web import api, console, errors, health, metrics, sms_outbound, webhooks

    app.register_blueprint(health.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(sms_outbound.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(console.bp)
    metrics.install(app)
    errors.register(app)
    register_cli(app)
    return app
