# One image for every process of the service (docs/deploy.md): by default the web processes
# (gunicorn, as the Procfile's `web:` line); the same image runs the worker with
# `flask --app wsgi worker` and the one-off `flask --app wsgi db init`.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    PORT=8000 \
    SMSPAY_DATA_DIR=/data

# The runtime lock only, every file checked against its sha256; no compiler, no test tools.
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --require-hashes -r /tmp/requirements.lock \
    && rm /tmp/requirements.lock

# The processes run as an unprivileged user that owns only the data directory (the sandbox
# gateway's book; the SQLite file when no MongoDB is configured) and its home, where gunicorn
# keeps its control socket (~/.gunicorn/gunicorn.ctl, for gunicornc). The code stays root's.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/smspay \
        --shell /usr/sbin/nologin smspay \
    && mkdir -p /data && chown smspay:smspay /data
VOLUME ["/data"]

# Only what runs: the packages the app imports and the two entry files.
WORKDIR /srv/smspay
COPY wsgi.py gunicorn.conf.py ./
COPY app ./app
COPY crypto ./crypto
COPY gateway_clients ./gateway_clients
COPY sms ./sms
COPY storage ./storage

USER 10001:10001
EXPOSE 8000
# Liveness only (the process answers); /readyz also asks the store.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]
# The Procfile's web line; exec, so that gunicorn gets the container's SIGTERM and stops gracefully.
CMD ["sh", "-c", "exec gunicorn --config gunicorn.conf.py --bind 0.0.0.0:${PORT:-8000} wsgi:app"]
