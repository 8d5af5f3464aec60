"""The console's session cookie, sign-in check, CSRF tokens and security headers.

The session is Flask's signed cookie, kept only on /console, HttpOnly, SameSite=Lax, and Secure
when the service is served over https. It holds the staff id and a marker of the password hash,
so a new password or a revocation ends every older session. Every POST carries a per-session
CSRF token in a hidden field (the synchronizer token pattern); the JSON API uses bearer tokens
and no cookies, so it needs none.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from datetime import timedelta
from pathlib import Path

from flask import Flask, Request, Response, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from werkzeug.wrappers import Response as BaseResponse

from app.bootstrap import Services, dev_secret
from app.services import staff as staff_service
from storage.models import StaffMember

log = logging.getLogger(__name__)
SECRET_FILE = "console.secret"
OPEN_ENDPOINTS = {"console.login", "console.static"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def _secret(svc: Services) -> str:
    if svc.settings.secret_key:
        return svc.settings.secret_key
    path: Path = svc.settings.data_path / SECRET_FILE
    for _ in range(50):  # another worker may be writing the file this instant
        secret = dev_secret(path)
        if secret:
            return secret
        time.sleep(0.02)
    raise RuntimeError(f"{path} is empty")


class ConsoleSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions for /console only, signed with a key read when needed."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """Webhooks and the API have no session (and never make the key file)."""
        if not request.path.startswith("/console"):
            return self.make_null_session(app)
        return super().open_session(app, request)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        """Sign with SMSPAY_SECRET_KEY, or the development key file under DATA_DIR."""
        if not app.secret_key:
            svc: Services = app.extensions["smspay"]
            if not svc.settings.secret_key:
                log.warning("console sessions use %s; production must set SMSPAY_SECRET_KEY",
                            svc.settings.data_path / SECRET_FILE)  # fmt: skip
            app.secret_key = _secret(svc)
        return super().get_signing_serializer(app)


def configure(app: Flask) -> None:
    """Session cookie settings for the console."""
    settings = app.config["SETTINGS"]
    app.session_interface = ConsoleSessions()
    app.config.update(
        SESSION_COOKIE_NAME="smspay_console",
        SESSION_COOKIE_PATH="/console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_base_url.lower().startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.console_session_hours),
    )


def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_ok() -> bool:
    """Whether a POST carries this session's CSRF token."""
    sent, expected = request.form.get("csrf_token", ""), session.get("csrf")
    return isinstance(expected, str) and hmac.compare_digest(sent.encode(), expected.encode())


def start_session(member: StaffMember) -> None:
    """Sign a staff member in: a fresh session (new CSRF token) for them."""
    session.clear()
    session.permanent = True
    session["staff_id"] = member.id
    session["marker"] = staff_service.session_marker(member)
    csrf_token()


def signed_in(svc: Services) -> StaffMember | None:
    """The staff member of this request's session, if it is still valid."""
    staff_id, marker = session.get("staff_id"), session.get("marker")
    if not isinstance(staff_id, str) or not isinstance(marker, str):
        return None
    return staff_service.by_session(svc, staff_id, marker)


def guard(svc: Services) -> BaseResponse | None:
    """Before every console request: CSRF on POST, then a valid session (else the sign-in)."""
    if request.method == "POST" and not csrf_ok():
        return Response("The form has expired or did not come from the console. Go back, "
                        "reload the page and try again.", 400, mimetype="text/plain")  # fmt: skip
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    member = signed_in(svc)
    if member is None:
        session.pop("staff_id", None)
        return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
    g.staff = member
    return None


def safe_next(target: str | None) -> str:
    """Where to go after signing in: only a console path, never another site."""
    if target and target.startswith("/console/") and not target.startswith("//"):
        return target
    return url_for("console.dashboard")


def headers(response: Response) -> Response:
    """Security headers on every console page; pages with personal data are never cached."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response
