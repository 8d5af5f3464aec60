"""The risk controls through the webhooks, on SQLite and MongoDB: a payment 50 km from the usual
area is FLAGGED with its money held, then approved, rejected or left to expire (balances checked
after each); a reused counter burns the key and raises the console's alarm; the eleventh
instruction in a minute is refused with the time to try again."""

from __future__ import annotations

from decimal import Decimal

import pytest
from flask.testing import FlaskClient, FlaskCliRunner

from app.bootstrap import Services
from app.jobs import HANDLERS
from app.services import review, staff
from app.worker import Worker
from sms import replies
from sms.instructions import format_pay
from storage.models import HELD_ACCOUNT, StaffMember, StaffRole, TransactionState
from tests.conftest import World
from tests.functional.test_console import HTTPS, PASSWORD, sign_in
from tests.functional.test_inbound import ASHA, RAVI, Routes
from tests.support import FakeClock, Phone

HOME = (Decimal("12.9716"), Decimal("77.5946"))  # Bengaluru
FAR = (Decimal("13.4213"), Decimal("77.5946"))  # 50 km due north


def located(phone: Phone, clock: FakeClock, paise: int, where: tuple[Decimal, Decimal]) -> str:
    return phone.seal(format_pay(RAVI, paise, phone.pin, int(clock.now()), "", where))


def held_payment(routes: Routes, world: World, clock: FakeClock) -> str:
    """Asha pays Ravi three times at home, then Rs 50 from 50 km away: FLAGGED, money held."""
    asha = world.user(ASHA, "1234", rupees=1000, name="Asha")
    world.user(RAVI, "4321", name="Ravi")
    for _ in range(3):
        assert "Paid Rs 10.00" in routes.twilio(ASHA, located(asha, clock, 1_000, HOME))[1]
        clock.advance(3600)
    text = routes.tasker(ASHA, located(asha, clock, 5_000, FAR))[1]
    assert "is held for a security check" in text
    ref = text.split("Ref ")[1][:10]
    assert balances(world) == (97_000 - 5_000, 3_000, 5_000)
    return ref


def balances(world: World) -> tuple[int, int, int]:
    held = world.svc.store.read(lambda uow: uow.balance(HELD_ACCOUNT))
    return world.balance(ASHA), world.balance(RAVI), int(held)


@pytest.fixture
def ada(svc: Services) -> StaffMember:
    member, _ = staff.add_staff(svc, "ada", StaffRole.ADMIN, "test")
    staff.set_password(svc, "ada", PASSWORD, "test")
    return member


@pytest.fixture
def routes(client: FlaskClient, world: World, clock: FakeClock) -> Routes:
    return Routes(client, world, clock)


def test_flagged_then_approved(
    routes: Routes, world: World, clock: FakeClock, svc: Services, ada: StaffMember
) -> None:
    ref = held_payment(routes, world, clock)
    txn = svc.store.read(lambda uow: uow.get_transaction(ref))
    assert txn.state is TransactionState.FLAGGED and (txn.lat, txn.lon) == (13.4213, 77.5946)
    assert txn.reason.startswith("flagged:geofence: 50.0 km from the usual area")
    review.approve(svc, ada, ref, "called Asha")
    assert balances(world) == (92_000, 8_000, 0)
    assert svc.store.read(lambda uow: uow.total_balance()) == 0


def test_flagged_then_rejected(
    routes: Routes, world: World, clock: FakeClock, svc: Services, ada: StaffMember
) -> None:
    ref = held_payment(routes, world, clock)
    review.reject(svc, ada, ref, "not Asha")
    assert balances(world) == (97_000, 3_000, 0)
    states = [e.state.value for e in svc.store.read(lambda uow: uow.events(ref))]
    assert states == ["PENDING", "FLAGGED", "FAILED"]


def test_flagged_then_expired_by_the_worker(
    routes: Routes, world: World, clock: FakeClock, svc: Services
) -> None:
    ref = held_payment(routes, world, clock)
    worker = Worker(svc, HANDLERS, owner="risk-test")
    while worker.run_once():  # the status SMS go; the expiry is not due yet
        pass
    assert svc.store.read(lambda uow: uow.get_transaction(ref)).state is TransactionState.FLAGGED
    clock.advance(svc.settings.risk_flag_expiry_seconds)
    while worker.run_once():
        pass
    assert balances(world) == (97_000, 3_000, 0)
    txn = svc.store.read(lambda uow: uow.get_transaction(ref))
    assert txn.state is TransactionState.FAILED and txn.reason.startswith("flag_expired")
    actions = [a.action for a in svc.store.read(lambda uow: uow.audit_entries(target=ref))]
    assert actions == ["payment.expire", "payment.flag"]


def test_the_flagged_queue_shows_each_rules_reason_and_facts(
    routes: Routes, world: World, clock: FakeClock, client: FlaskClient, ada: StaffMember
) -> None:
    ref = held_payment(routes, world, clock)
    page = sign_in(client, "ada").get("/console/flagged", base_url=HTTPS).get_data(True)
    assert ref in page and "flag geofence: 50.0 km from the usual area" in page
    assert "usual_area=12.9716,77.5946" in page and "distance_km=50.0" in page
    detail = client.get(f"/console/transactions/{ref}", base_url=HTTPS).get_data(True)
    assert "13.4213,77.5946" in detail and "Risk rules: flag" in detail


def test_counter_reuse_burns_the_key_and_raises_the_alarm(
    routes: Routes, world: World, clock: FakeClock, client: FlaskClient, ada: StaffMember
) -> None:
    asha = world.user(ASHA, "1234", rupees=1000, name="Asha")
    world.user(RAVI, "4321", name="Ravi")
    first = asha.seal(format_pay(RAVI, 500, "1234", int(clock.now())), counter=5)
    paid = routes.twilio(ASHA, first)[1]
    assert "Paid Rs 5.00" in paid
    assert routes.tasker(ASHA, first)[1] == paid  # the same SMS through the other route
    again = asha.seal(format_pay(RAVI, 900, "1234", int(clock.now())), counter=5)
    assert routes.tasker(ASHA, again)[1] == replies.KEY_BURNED
    assert routes.twilio(ASHA, asha.pay(RAVI, 100, at=clock.now()))[1] == replies.UNREADABLE
    assert (world.balance(ASHA), world.balance(RAVI)) == (99_500, 500)
    dashboard = sign_in(client, "ada").get("/console/", base_url=HTTPS).get_data(True)
    assert 'id="burned-keys"' in dashboard and "arrived again with another ciphertext" in dashboard


def test_the_eleventh_instruction_in_a_minute_is_refused(
    routes: Routes, world: World, clock: FakeClock
) -> None:
    asha = world.user(ASHA, "1234", rupees=10, name="Asha")
    for _ in range(10):
        assert "balance is" in routes.twilio(ASHA, asha.balance(at=clock.now()))[1]
    assert routes.tasker(ASHA, asha.balance(at=clock.now()))[1].startswith(
        "SMSPay: Too many messages. Please try again after "
    )


def test_staff_set_the_usual_area_from_the_cli(
    routes: Routes, world: World, clock: FakeClock, svc: Services, runner: FlaskCliRunner
) -> None:
    asha = world.user(ASHA, "1234", rupees=1000, name="Asha")
    world.user(RAVI, "4321", name="Ravi")
    result = runner.invoke(args=["users", "usual-area", "--phone", ASHA, "--at",
                                 "13.4213,77.5946", "--reason", "moved to the north"])  # fmt: skip
    assert result.exit_code == 0 and "13.4213,77.5946" in result.output, result.output
    # her first located payment, at the old home 50 km south: held, no history needed
    assert "held for a security check" in routes.twilio(ASHA, located(asha, clock, 1_000, HOME))[1]
    clock.advance(3600)  # 50 km in an hour: no impossible travel
    assert "Paid Rs 10.00" in routes.twilio(ASHA, located(asha, clock, 1_000, FAR))[1]
    (entry,) = svc.store.read(lambda uow: uow.audit_entries(target=ASHA))
    assert (entry.action, entry.reason) == ("user.usual_area", "moved to the north")
    result = runner.invoke(args=["users", "usual-area", "--phone", ASHA, "--clear",
                                 "--reason", "learn again"])  # fmt: skip
    assert result.exit_code == 0 and "learned" in result.output
    bad = runner.invoke(args=["users", "usual-area", "--phone", ASHA, "--at", "north",
                              "--reason", "x"])  # fmt: skip
    assert bad.exit_code != 0 and "lat,lon" in bad.output
