"""The baseline: a Flask app with one route answering a small JSON, served by the same gunicorn
config as the service, so the ratio to it is the service's own cost per request."""

from flask import Flask

app = Flask(__name__)


@app.get("/healthz")
def healthz() -> tuple[dict[str, str], int]:
    """The same answer as the service's liveness route, without the service behind it."""
    return {"status": "ok"}, 200
