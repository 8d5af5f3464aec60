"""The staff console through Flask's test client: sign-in, CSRF, cookies, headers, masking and
the admin actions (the browser tests in tests/e2e drive the same pages in Chromium)."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from app.bootstrap import Services
from app.services import review, staff
from storage.models import StaffRole
from tests.conftest import World
from tests.functional.test_inbound import ASHA, RAVI, Routes
from tests.support import FakeClock, Phone

PASSWORD = "a long console password"
HTTPS = "https://pay.example.com"  # the test settings' public URL: cookies are Secure


def csrf(page: bytes) -> str:
    found = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1).decode()


def sign_in(client: FlaskClient, name: str, password: str = PASSWORD) -> FlaskClient:
    token = csrf(client.get("/console/login", base_url=HTTPS).data)
    r = client.post(
        "/console/login",
        data={"name": name, "password": password, "csrf_token": token},
        base_url=HTTPS,
    )
    assert r.status_code == 302, r.data
    return client


@pytest.fixture
def team(svc: Services) -> None:
    staff.add_staff(svc, "ada", StaffRole.ADMIN, "test")
    staff.add_staff(svc, "sam", StaffRole.SUPPORT, "test")
    staff.set_password(svc, "ada", PASSWORD, "test")
    staff.set_password(svc, "sam", PASSWORD, "test")


@pytest.fixture
def people(world: World) -> dict[str, Phone]:
    return {
        ASHA: world.user(ASHA, "1234", rupees=1000, name="Asha"),
        RAVI: world.user(RAVI, "4321", name="Ravi"),
    }


def test_pages_need_a_sign_in_and_wrong_passwords_are_refused(
    client: FlaskClient, team: None
) -> None:
    r = client.get("/console/transactions?phone=%2B91", base_url=HTTPS)
    assert r.status_code == 302 and "/console/login?next=" in r.headers["Location"]
    token = csrf(client.get("/console/login", base_url=HTTPS).data)
    for name, password in (("ada", "wrong password!"), ("nobody", PASSWORD)):
        r = client.post(
            "/console/login",
            data={"name": name, "password": password, "csrf_token": token},
            base_url=HTTPS,
        )
        assert r.status_code == 401 and b"Wrong name or password" in r.data
    assert client.get("/console/", base_url=HTTPS).status_code == 302


def test_five_wrong_passwords_pause_that_name_for_15_minutes(
    svc: Services, team: None, clock: FakeClock
) -> None:
    for _ in range(5):
        assert staff.sign_in(svc, "ada", "wrong password!") is None
    assert staff.sign_in(svc, "ADA", PASSWORD) is None  # even the right one, for now
    assert staff.sign_in(svc, "sam", PASSWORD) is not None  # other names are not affected
    clock.advance(900)
    member = staff.sign_in(svc, "ada", PASSWORD)
    assert member is not None and member.name == "ada"
    for _ in range(10):  # right passwords are not counted against the name
        assert staff.sign_in(svc, "ada", PASSWORD) is not None


def test_session_cookie_is_secure_httponly_lax_and_only_for_the_console(
    client: FlaskClient, team: None
) -> None:
    sign_in(client, "ada")
    cookie = client.get_cookie("smspay_console", domain="pay.example.com", path="/console")
    assert cookie is not None
    assert cookie.secure and cookie.http_only and cookie.same_site == "Lax"
    page = client.get("/console/", base_url=HTTPS)
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert client.get("/healthz").headers.get("Set-Cookie") is None


def test_every_form_needs_the_csrf_token(
    client: FlaskClient, svc: Services, world: World, people: dict[str, Phone], team: None
) -> None:
    held = review.hold_payment(svc, ASHA, RAVI, 5_000, "rule")
    sign_in(client, "ada")
    url = f"/console/transactions/{held.reference}/approve"
    for token in (None, "forged"):
        data = {"reason": "ok"} | ({"csrf_token": token} if token else {})
        r = client.post(url, data=data, base_url=HTTPS)
        assert r.status_code == 400
    assert world.balance(RAVI) == 0
    fresh = FlaskClient(client.application)  # a sign-in form posted from another site
    r = fresh.post("/console/login", data={"name": "ada", "password": PASSWORD}, base_url=HTTPS)
    assert r.status_code == 400


def test_lists_mask_numbers_and_pages_show_them_in_full(
    client: FlaskClient, routes: Routes, people: dict[str, Phone], team: None, clock: FakeClock
) -> None:
    text = routes.twilio(ASHA, people[ASHA].pay(RAVI, 2_500, at=clock.now()))[1]
    ref = text.split("Ref ")[1][:10]
    sign_in(client, "sam")
    listing = client.get(f"/console/transactions?phone=%2B{RAVI[1:]}", base_url=HTTPS)
    table = listing.get_data(as_text=True).split('<table class="list">')[1]  # not the search box
    assert ref in table and "+91******5678" in table and RAVI not in table and ASHA not in table
    page = client.get(f"/console/transactions/{ref}", base_url=HTTPS).get_data(as_text=True)
    assert ASHA in page and RAVI in page and 'id="timeline"' in page
    assert "SMS in from" in page and "Ledger entry" in page and "SMS out to" in page
    assert "Approve" not in page and "Reverse payment" not in page  # support sees no buttons
    by_phone = client.get(f"/console/users?phone=%2B{ASHA[1:]}", base_url=HTTPS)
    user_page = client.get(by_phone.headers["Location"], base_url=HTTPS).get_data(as_text=True)
    assert ASHA in user_page and "Rs 975.00" in user_page
    assert client.get(f"/console/transactions?reference={ref}", base_url=HTTPS).status_code == 302


def test_admin_approves_from_the_queue_and_support_cannot(
    client: FlaskClient, svc: Services, world: World, people: dict[str, Phone], team: None
) -> None:
    held = review.hold_payment(svc, ASHA, RAVI, 5_000, "velocity rule")
    support = sign_in(FlaskClient(client.application), "sam")
    queue = support.get("/console/flagged", base_url=HTTPS)
    assert held.reference in queue.get_data(as_text=True)
    r = support.post(
        f"/console/transactions/{held.reference}/approve",
        data={"reason": "looks fine", "csrf_token": csrf(queue.data)},
        base_url=HTTPS,
        follow_redirects=True,
    )
    assert b"needs an admin" in r.data and world.balance(RAVI) == 0
    admin = sign_in(client, "ada")
    queue = admin.get("/console/flagged", base_url=HTTPS)
    assert b"Approve" in queue.data
    r = admin.post(
        f"/console/transactions/{held.reference}/approve",
        data={"reason": "called the payer", "csrf_token": csrf(queue.data),
              "back": "/console/flagged"},
        base_url=HTTPS,
        follow_redirects=True,
    )  # fmt: skip
    assert f"{held.reference} is now SUCCESS".encode() in r.data
    assert world.balance(RAVI) == 5_000
    audit = admin.get("/console/audit", base_url=HTTPS).get_data(as_text=True)
    assert "payment.approve" in audit and "called the payer" in audit


def test_a_new_password_or_a_revocation_ends_older_sessions(
    client: FlaskClient, svc: Services, team: None
) -> None:
    sign_in(client, "ada")
    assert client.get("/console/", base_url=HTTPS).status_code == 200
    staff.set_password(svc, "ada", "another long password", "test")
    assert client.get("/console/", base_url=HTTPS).status_code == 302
    sign_in(client, "ada", "another long password")
    staff.revoke(svc, "test", name="ada")
    assert client.get("/console/", base_url=HTTPS).status_code == 302


def test_sign_out_and_only_console_paths_after_sign_in(client: FlaskClient, team: None) -> None:
    token = csrf(client.get("/console/login", base_url=HTTPS).data)
    r = client.post(
        "/console/login",
        data={"name": "sam", "password": PASSWORD, "csrf_token": token,
              "next": "https://evil.example.com/"},
        base_url=HTTPS,
    )  # fmt: skip
    assert r.headers["Location"] == "/console/"
    page = client.get("/console/", base_url=HTTPS)
    r = client.post("/console/logout", data={"csrf_token": csrf(page.data)}, base_url=HTTPS)
    assert r.status_code == 302 and client.get("/console/", base_url=HTTPS).status_code == 302


@pytest.fixture
def routes(client: FlaskClient, world: World, clock: FakeClock) -> Routes:
    return Routes(client, world, clock)
