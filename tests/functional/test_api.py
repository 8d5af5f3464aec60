"""The staff API through Flask's test client, on both backends: every endpoint and every role.

Data is made by real signed SMS (Routes) and the service layer; a FLAGGED payment comes from
`review.hold_payment`, which the risk rules will call. Each refused call asserts nothing moved.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.bootstrap import Services
from app.services import review, staff
from app.web.api.views import api
from sms import replies
from storage.models import StaffRole
from tests.conftest import World
from tests.functional.test_inbound import ASHA, MEERA, RAVI, Routes
from tests.support import FakeClock, Phone

REF_404 = "ZZZZZZZZZZ"
ADMIN_ONLY = [op for op in api.operations if op.role is StaffRole.ADMIN]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Staff:
    """An admin and a support agent with their API tokens."""

    def __init__(self, svc: Services) -> None:
        self.admin_member, self.admin = staff.add_staff(svc, "ada", StaffRole.ADMIN, "test")
        self.support_member, self.support = staff.add_staff(svc, "sam", StaffRole.SUPPORT, "test")


@pytest.fixture
def team(svc: Services) -> Staff:
    return Staff(svc)


@pytest.fixture
def routes(client: FlaskClient, world: World, clock: FakeClock) -> Routes:
    return Routes(client, world, clock)


@pytest.fixture
def people(world: World) -> dict[str, Phone]:
    return {
        ASHA: world.user(ASHA, "1234", rupees=1000, name="Asha"),
        RAVI: world.user(RAVI, "4321", rupees=100, name="Ravi"),
        MEERA: world.user(MEERA, "5555", name="Meera"),
    }


def paid_reference(text: str) -> str:
    assert "Paid" in text, text
    return text.split("Ref ")[1][:10]


def path(rule: str, ref: str = REF_404, phone: str = ASHA) -> str:
    return "/api/v1" + rule.replace("<reference>", ref).replace("<phone>", phone)


def call(client: FlaskClient, op: Any, headers: dict[str, str], **kw: Any) -> Any:
    url = path(op.rule, **kw)
    if op.method == "GET":
        return client.get(url, headers=headers)
    body = {"reason": "test", "amount": 100} if op.body else None
    return client.post(url, json=body, headers=headers)


@pytest.mark.parametrize("op", api.operations, ids=lambda op: f"{op.method} {op.rule}")
def test_every_endpoint_refuses_a_request_without_a_valid_token(
    op: Any, client: FlaskClient, team: Staff
) -> None:
    for headers in ({}, bearer("smsp_" + "x" * 43), {"Authorization": team.admin}):
        r = call(client, op, headers)
        assert r.status_code == 401, (op.rule, headers, r.data)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.get_json() == {"error": "a valid API token is required"}


@pytest.mark.parametrize("op", ADMIN_ONLY, ids=lambda op: f"{op.method} {op.rule}")
def test_a_support_token_cannot_act(
    op: Any, client: FlaskClient, svc: Services, world: World, people: dict[str, Phone],
    team: Staff,
) -> None:  # fmt: skip
    held = review.hold_payment(svc, ASHA, RAVI, 5_000, "velocity rule")
    total, before = world.total(), [world.balance(p) for p in people]
    r = call(client, op, bearer(team.support), ref=held.reference)
    assert r.status_code == 403
    assert "needs an admin" in r.get_json()["error"]
    assert [world.balance(p) for p in people] == before and world.total() == total
    assert svc.store.read(lambda uow: uow.get_transaction(held.reference)).state.value == "FLAGGED"
    assert svc.store.read(lambda uow: uow.audit_entries(target=held.reference)) == []


def test_revoked_tokens_are_refused(client: FlaskClient, svc: Services, team: Staff) -> None:
    second = staff.issue_token(svc, "sam", "test")
    assert client.get("/api/v1/me", headers=bearer(team.support)).status_code == 200
    assert staff.revoke(svc, "test", prefix=team.support[: staff.SHOWN_PREFIX]) == 1
    assert client.get("/api/v1/me", headers=bearer(team.support)).status_code == 401
    assert client.get("/api/v1/me", headers=bearer(second)).get_json() == {
        "name": "sam",
        "role": "support",
    }
    assert staff.revoke(svc, "test", name="sam") == 1
    assert client.get("/api/v1/me", headers=bearer(second)).status_code == 401
    assert client.get("/api/v1/me", headers=bearer(team.admin)).status_code == 200
    log = svc.store.read(lambda uow: uow.audit_entries(actor="test"))
    assert sorted(e.action for e in log) == [
        "staff.add", "staff.add", "staff.revoke", "staff.revoke", "staff.token",
    ]  # fmt: skip


def test_tokens_are_stored_only_as_hashes(svc: Services, team: Staff) -> None:
    def read(uow: Any) -> list[Any]:
        return [*uow.tokens_of(team.admin_member.id), *uow.tokens_of(team.support_member.id)]

    stored = svc.store.read(read)
    assert {t.token_hash for t in stored} == {
        staff.hash_token(team.admin),
        staff.hash_token(team.support),
    }
    assert all(team.admin not in repr(t) and len(t.prefix) == 12 for t in stored)


def test_search_by_phone_state_reference_and_days_masks_numbers(
    client: FlaskClient, routes: Routes, people: dict[str, Phone], team: Staff, clock: FakeClock
) -> None:
    asha, ravi = people[ASHA], people[RAVI]
    first = paid_reference(routes.twilio(ASHA, asha.pay(RAVI, 2_500, at=clock.now()))[1])
    clock.advance(60)
    second = paid_reference(routes.tasker(RAVI, ravi.pay(MEERA, 1_000, at=clock.now()))[1])
    assert "not enough" in routes.tasker(RAVI, ravi.pay(ASHA, 50_000, at=clock.now()))[1]
    h = bearer(team.support)

    r = client.get(f"/api/v1/transactions?phone=%2B{MEERA[1:]}", headers=h)
    page = r.get_json()
    assert r.status_code == 200 and [t["reference"] for t in page["items"]] == [second]
    item = page["items"][0]
    assert item["payer_phone"] == "+91******5678" and item["payee"] == "+91******0001"
    assert item["amount"] == 1_000 and item["state"] == "SUCCESS" and item["channel"] == "tasker"
    assert MEERA not in r.get_data(as_text=True) and RAVI not in r.get_data(as_text=True)

    failed = client.get("/api/v1/transactions?state=FAILED", headers=h).get_json()["items"]
    assert [t["reason"] for t in failed] == ["insufficient_funds"]
    by_ref = client.get(f"/api/v1/transactions?reference={first}", headers=h).get_json()
    assert [t["reference"] for t in by_ref["items"]] == [first]

    today = datetime.fromtimestamp(clock.now(), routes.world.svc.tz).date()
    days = f"since={today - timedelta(days=1)}&until={today}"
    everything = client.get(f"/api/v1/transactions?{days}&per_page=2", headers=h).get_json()
    assert len(everything["items"]) == 2 and everything["has_next"] is True
    rest = client.get(f"/api/v1/transactions?{days}&per_page=2&page=2", headers=h).get_json()
    assert rest["page"] == 2 and len(rest["items"]) == 2  # 3 cash-ins, 2 payments, 1 refusal
    seen = [t["reference"] for t in everything["items"] + rest["items"]]
    assert len(set(seen)) == 4
    later = f"since={today + timedelta(days=1)}"
    assert client.get(f"/api/v1/transactions?{later}", headers=h).get_json()["items"] == []


def test_a_transaction_shows_its_whole_timeline_with_full_numbers(
    client: FlaskClient, routes: Routes, people: dict[str, Phone], team: Staff, clock: FakeClock
) -> None:
    ref = paid_reference(
        routes.twilio(ASHA, people[ASHA].pay(RAVI, 2_500, at=clock.now(), note="tea"))[1]
    )
    r = client.get(f"/api/v1/transactions/{ref.lower()}", headers=bearer(team.support))
    assert r.status_code == 200
    data = r.get_json()
    txn = data["transaction"]
    assert (txn["payer_phone"], txn["payee"], txn["note"]) == (ASHA, RAVI, "tea")
    kinds = [i["kind"] for i in data["timeline"]]
    assert kinds == ["sms_in", "risk", "state", "state", "ledger", "sms_out"]
    assert data["timeline"][1]["title"] == "Risk rules: allow" and txn["risk"] == "allow"
    assert data["timeline"][0]["title"] == f"SMS in from {ASHA} via twilio"
    assert data["timeline"][3]["status"] == "SUCCESS"
    assert data["outbound_sms"][0]["to"] == RAVI and data["outbound_sms"][0]["status"]
    assert data["inbound_sms"][0]["outcome"] == "paid"
    postings = {p["account"]: p["amount"] for p in data["ledger"][0]["postings"]}
    assert sorted(postings.values()) == [-2_500, 2_500]
    assert data["jobs"] == [] or all(j["kind"] for j in data["jobs"])


def test_missing_things_are_404_and_bad_input_is_422_with_fields(
    client: FlaskClient, people: dict[str, Phone], team: Staff
) -> None:
    h = bearer(team.admin)
    assert client.get(f"/api/v1/transactions/{REF_404}", headers=h).status_code == 404
    assert client.get("/api/v1/users/%2B919999999999", headers=h).status_code == 404
    r = client.post(f"/api/v1/flagged/{REF_404}/approve", json={"reason": "ok"}, headers=h)
    assert r.status_code == 404 and "no transaction" in r.get_json()["error"]
    r = client.get("/api/v1/users/12345", headers=h)
    assert r.status_code == 422 and "phone" in r.get_json()["fields"]
    r = client.get("/api/v1/transactions?state=LOST&per_page=500&since=yesterday", headers=h)
    assert r.status_code == 422
    assert set(r.get_json()["fields"]) == {"state", "per_page", "since"}
    r = client.post(f"/api/v1/users/%2B{ASHA[1:]}/credit", json={"amount": 0}, headers=h)
    assert r.status_code == 422 and set(r.get_json()["fields"]) == {"amount", "reason"}
    r = client.post(f"/api/v1/users/%2B{ASHA[1:]}/unlock", json={"reason": "  "}, headers=h)
    assert r.status_code == 422 and "reason" in r.get_json()["fields"]
    r = client.post(
        f"/api/v1/users/%2B{ASHA[1:]}/unlock", json={"reason": "x", "extra": 1}, headers=h
    )
    assert r.status_code == 422 and "extra" in r.get_json()["fields"]
    r = client.post(f"/api/v1/users/%2B{ASHA[1:]}/unlock", data="not json", headers=h)
    assert r.status_code == 422


def test_a_user_page_has_balance_devices_lock_limits_and_masked_history(
    client: FlaskClient, routes: Routes, people: dict[str, Phone], team: Staff, clock: FakeClock
) -> None:
    clock.advance(1)  # after the cash-in, so the newest-first order is certain
    paid_reference(routes.tasker(ASHA, people[ASHA].pay(RAVI, 2_500, at=clock.now()))[1])
    r = client.get(f"/api/v1/users/%2B{ASHA[1:]}", headers=bearer(team.support))
    user = r.get_json()
    assert r.status_code == 200
    assert (user["phone"], user["name"], user["balance"]) == (ASHA, "Asha", 97_500)
    assert user["locked"] is False and user["failed_pin_attempts"] == 0
    assert user["limits"]["spent_today"] == 2_500
    assert user["limits"]["left_today"] == user["limits"]["per_day"] - 2_500
    (device,) = user["devices"]
    assert device["active"] and device["highest_counter"] == 1 and device["counter_gaps"] == 0
    assert [t["payee"] for t in user["recent_transactions"]] == ["+91******5678", "+91******3210"]
    assert "key" not in str(device.keys() - {"key_id"})


def test_flagged_queue_approve_moves_held_money_on_once(
    client: FlaskClient, svc: Services, world: World, people: dict[str, Phone], team: Staff
) -> None:
    held = review.hold_payment(svc, ASHA, RAVI, 5_000, "velocity rule")
    assert (world.balance(ASHA), world.balance(RAVI)) == (95_000, 10_000)
    queue = client.get("/api/v1/flagged", headers=bearer(team.support)).get_json()
    assert [(t["reference"], t["reason"]) for t in queue["items"]] == [
        (held.reference, "velocity rule")
    ]
    url = f"/api/v1/flagged/{held.reference}/approve"
    r = client.post(url, json={"reason": "called the payer"}, headers=bearer(team.admin))
    assert r.status_code == 200 and r.get_json()["state"] == "SUCCESS"
    assert (world.balance(ASHA), world.balance(RAVI)) == (95_000, 15_000)
    again = client.post(url, json={"reason": "twice"}, headers=bearer(team.admin))
    assert again.status_code == 409 and world.balance(RAVI) == 15_000
    assert client.get("/api/v1/flagged", headers=bearer(team.admin)).get_json()["items"] == []
    sms = svc.store.read(lambda uow: uow.outbound_for_reference(held.reference))
    assert [m.to for m in sms] == [RAVI, ASHA]
    assert sms[0].body.startswith("SMSPay: Received Rs 50.00 from +91******3210.")
    (entry,) = svc.store.read(lambda uow: uow.audit_entries(target=held.reference))
    assert (entry.actor, entry.action, entry.reason, entry.outcome) == (
        "ada", "payment.approve", "called the payer", "SUCCESS",
    )  # fmt: skip


def test_reject_returns_held_money_to_the_payer(
    client: FlaskClient, svc: Services, world: World, people: dict[str, Phone], team: Staff
) -> None:
    held = review.hold_payment(svc, ASHA, RAVI, 5_000, "new payee")
    total = world.total()
    r = client.post(
        f"/api/v1/flagged/{held.reference}/reject",
        json={"reason": "payer says fraud"},
        headers=bearer(team.admin),
    )
    assert r.status_code == 200 and r.get_json()["state"] == "FAILED"
    assert (world.balance(ASHA), world.balance(RAVI), world.total()) == (100_000, 10_000, total)
    (sms,) = svc.store.read(lambda uow: uow.outbound_for_reference(held.reference))
    assert sms.to == ASHA and sms.body == replies.payment_rejected(
        5_000, "+91******5678", held.reference, 100_000
    )
    entries = svc.store.read(lambda uow: uow.entries(held.reference))
    assert all(sum(p.amount for p in e.postings) == 0 for e in entries) and len(entries) == 2


def test_reverse_a_payment_once_and_only_if_the_payee_can_cover_it(
    client: FlaskClient, routes: Routes, world: World, people: dict[str, Phone], team: Staff,
    clock: FakeClock,
) -> None:  # fmt: skip
    ref = paid_reference(routes.twilio(ASHA, people[ASHA].pay(MEERA, 2_500, at=clock.now()))[1])
    other = paid_reference(routes.twilio(ASHA, people[ASHA].pay(RAVI, 20_000, at=clock.now()))[1])
    paid_reference(routes.tasker(RAVI, people[RAVI].pay(MEERA, 25_000, at=clock.now()))[1])
    h = bearer(team.admin)
    short = client.post(f"/api/v1/transactions/{other}/reverse", json={"reason": "x"}, headers=h)
    assert short.status_code == 409 and "no longer covers" in short.get_json()["error"]
    assert world.balance(RAVI) == 5_000
    r = client.post(
        f"/api/v1/transactions/{ref}/reverse", json={"reason": "sent by mistake"}, headers=h
    )
    assert r.status_code == 200 and r.get_json()["state"] == "FAILED"
    assert (world.balance(ASHA), world.balance(MEERA)) == (100_000 - 20_000, 25_000)
    again = client.post(f"/api/v1/transactions/{ref}/reverse", json={"reason": "x"}, headers=h)
    assert again.status_code == 409
    detail = client.get(f"/api/v1/transactions/{ref}", headers=h).get_json()
    assert [i["kind"] for i in detail["timeline"]].count("ledger") == 2
    assert detail["timeline"][-1]["title"] == "payment.reverse by ada"
    assert {m["to"] for m in detail["outbound_sms"]} == {ASHA, MEERA}


def test_unlock_a_user_locked_by_wrong_pins(
    client: FlaskClient, routes: Routes, svc: Services, people: dict[str, Phone], team: Staff,
    clock: FakeClock,
) -> None:  # fmt: skip
    h = bearer(team.admin)
    url = f"/api/v1/users/%2B{ASHA[1:]}/unlock"
    assert client.post(url, json={"reason": "asked"}, headers=h).status_code == 409
    for pin in ("9999", "9998", "9997"):
        routes.tasker(ASHA, people[ASHA].pay(RAVI, 100, pin=pin, at=clock.now()))
    assert client.get(url.removesuffix("/unlock"), headers=h).get_json()["locked"] is True
    r = client.post(url, json={"reason": "verified by phone call"}, headers=h)
    assert r.status_code == 200
    assert r.get_json() == {"phone": ASHA, "failed_pin_attempts": 0, "locked_until": None}
    assert "Paid" in routes.tasker(ASHA, people[ASHA].pay(RAVI, 100, at=clock.now()))[1]
    texts = [m.body for m in svc.store.read(lambda uow: uow.outbox(100)) if m.to == ASHA]
    assert replies.UNLOCKED in texts


def test_credit_a_wallet_with_a_reason(
    client: FlaskClient, svc: Services, world: World, people: dict[str, Phone], team: Staff
) -> None:
    r = client.post(
        f"/api/v1/users/%2B{MEERA[1:]}/credit",
        json={"amount": 12_345, "reason": "goodwill after outage"},
        headers=bearer(team.admin),
    )
    txn = r.get_json()
    assert r.status_code == 200 and txn["state"] == "SUCCESS" and txn["kind"] == "cash_in"
    assert world.balance(MEERA) == 12_345 and world.total() == 0
    assert txn["channel"] == "staff:ada" and txn["note"] == "goodwill after outage"
    (entry,) = svc.store.read(lambda uow: uow.audit_entries(target=MEERA))
    assert (entry.action, entry.reason) == ("wallet.credit", "goodwill after outage")
    missing = client.post(
        "/api/v1/users/%2B919999999999/credit",
        json={"amount": 1, "reason": "x"},
        headers=bearer(team.admin),
    )
    assert missing.status_code == 404


@pytest.mark.parametrize("amount", ["100", 10.5, 100.0, True, None, "1e3", [100]])
def test_a_credit_amount_that_is_not_a_whole_number_of_paise_is_refused(
    amount: Any,
    client: FlaskClient,
    svc: Services,
    world: World,
    people: dict[str, Phone],
    team: Staff,
) -> None:
    r = client.post(
        f"/api/v1/users/%2B{MEERA[1:]}/credit",
        json={"amount": amount, "reason": "goodwill"},
        headers=bearer(team.admin),
    )
    assert r.status_code == 422 and "amount" in r.get_data(as_text=True)
    assert world.balance(MEERA) == 0 and world.total() == 0
    assert svc.store.read(lambda uow: uow.audit_entries(target=MEERA)) == []


def test_a_body_nested_too_deeply_is_422(
    client: FlaskClient, world: World, people: dict[str, Phone], team: Staff
) -> None:
    body = b'{"amount": ' + b"[" * 5_000 + b"]" * 5_000 + b', "reason": "x"}'
    r = client.post(
        f"/api/v1/users/%2B{MEERA[1:]}/credit",
        data=body,
        headers={**bearer(team.admin), "Content-Type": "application/json"},
    )
    assert r.status_code == 422 and world.balance(MEERA) == 0


def test_audit_log_says_who_did_what_when_and_why(
    client: FlaskClient, svc: Services, people: dict[str, Phone], team: Staff, clock: FakeClock
) -> None:
    held = review.hold_payment(svc, ASHA, RAVI, 1_000, "rule")
    clock.advance(5)
    client.post(
        f"/api/v1/flagged/{held.reference}/reject",
        json={"reason": "not the payer"},
        headers=bearer(team.admin),
    )
    r = client.get("/api/v1/audit?per_page=2", headers=bearer(team.support))
    log = r.get_json()
    assert r.status_code == 200 and log["has_next"] is True
    newest = log["items"][0]
    assert newest["actor"] == "ada" and newest["action"] == "payment.reject"
    assert newest["target"] == held.reference and newest["reason"] == "not the payer"
    assert newest["at"].startswith(datetime.fromtimestamp(clock.now(), UTC).strftime("%Y-%m-%d"))
    by_actor = client.get("/api/v1/audit?actor=test", headers=bearer(team.support)).get_json()
    assert {e["action"] for e in by_actor["items"]} == {"staff.add"}


def test_kpis_count_today_and_the_week(
    client: FlaskClient, routes: Routes, svc: Services, people: dict[str, Phone], team: Staff,
    clock: FakeClock,
) -> None:  # fmt: skip
    paid_reference(routes.twilio(ASHA, people[ASHA].pay(RAVI, 2_500, at=clock.now()))[1])
    clock.advance(2)
    paid_reference(routes.tasker(ASHA, people[ASHA].pay(MEERA, 500, at=clock.now()))[1])
    routes.tasker(RAVI, people[RAVI].pay(ASHA, 50_000, at=clock.now()))
    r = client.get("/api/v1/kpis", headers=bearer(team.support))
    k = r.get_json()
    assert r.status_code == 200
    today = k["today"]
    assert today["count"] == 5 and today["succeeded"] == 4 and today["failed"] == 1
    assert today["amount"] == 100_000 + 10_000 + 2_500 + 500
    assert today["success_rate"] == pytest.approx(0.8)
    assert today["failures"] == {"insufficient_funds": 1}
    assert today["channels"] == {"test": 2, "twilio": 1, "tasker": 2}
    assert today["median_seconds"] == 0 and today["p95_seconds"] == 0
    assert k["week"]["count"] == 5 and len(k["days"]) == 7 and k["days"][-1]["count"] == 5
    assert [g["id"] for g in k["gateways"]] == ["shop-1"] and not k["gateways"][0]["silent"]
    assert k["devices_active"] == 3 and k["devices"] == []


def test_kpis_show_counter_gaps_and_silent_phones(
    client: FlaskClient, routes: Routes, people: dict[str, Phone], team: Staff, clock: FakeClock
) -> None:
    asha = people[ASHA]
    asha.next_counter = 5  # counters 1-4 never arrived
    routes.twilio(ASHA, asha.balance(at=clock.now()))
    clock.advance(4 * 86_400)
    k = client.get("/api/v1/kpis", headers=bearer(team.support)).get_json()
    (device,) = k["devices"]
    assert device["phone"] == "+91******3210" and device["gaps"] == 4 and device["silent"]
    assert device["highest_counter"] == 5 and k["devices_with_gaps"] == 1
    assert k["gateways"][0]["silent"] is True  # shop-1 never forwarded anything


def test_me_and_the_openapi_document(client: FlaskClient, team: Staff) -> None:
    assert client.get("/api/v1/me", headers=bearer(team.admin)).get_json() == {
        "name": "ada",
        "role": "admin",
    }
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    served = {(op.method, path(op.rule, "{reference}", "{phone}")) for op in api.operations}
    assert documented == served
    approve = spec["paths"]["/api/v1/flagged/{reference}/approve"]["post"]
    assert approve["security"] == [{"bearer": []}] and set(approve["responses"]) >= {
        "200", "401", "403", "404", "409", "422",
    }  # fmt: skip
