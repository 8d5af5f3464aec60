"""gunicorn settings for `make run` and the Procfile; each worker opens its own store after fork."""

import logging
import os
import sys

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
timeout = 30
graceful_timeout = 10
accesslog = "-"
logger_class = "app.access_log.MaskingLogger"  # phone numbers masked in the access log
# No preload: nothing is shared across fork, each worker builds its own connections.
preload_app = False


def on_starting(server: object) -> None:
    """Refuse to start on a database this release cannot use (a deploy error, not an outage)."""
    from app import create_app
    from storage.errors import SchemaMissing, SchemaTooNew, StoreUnavailable

    store = create_app().extensions["smspay"].store
    try:
        store.ping()
    except (SchemaMissing, SchemaTooNew) as exc:
        logging.getLogger("gunicorn.error").error("%s", exc)
        sys.exit(1)
    except StoreUnavailable as exc:  # an outage: start anyway, webhooks answer 503 until it ends
        logging.getLogger("gunicorn.error").warning("store unavailable at start: %s", exc)
    finally:
        store.close()
