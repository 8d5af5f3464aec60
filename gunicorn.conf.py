"""gunicorn settings for `make run` and the Procfile; each worker opens its own store after fork."""

import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
timeout = 30
graceful_timeout = 10
accesslog = "-"
# No preload: nothing is shared across fork, each worker builds its own connections.
preload_app = False
