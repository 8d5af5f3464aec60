"""Every reply template, filled with its longest possible fields, fits one GSM-7 SMS."""

from __future__ import annotations

import pytest

from sms import replies
from sms.gsm7 import fits_one_sms, septets
from sms.instructions import MAX_AMOUNT_PAISE
from sms.numbers import mask_party, mask_phone

BIG = MAX_AMOUNT_PAISE  # Rs 10000000000.00
REF = "ZZZZZZZZZZ"
LONG_PHONE = mask_phone("+" + "9" * 15)
LONG_VPA = mask_party("a" * 256 + "@" + "b" * 64)
LONG_PARTY = max(LONG_PHONE, LONG_VPA, key=len)
REASONS = [
    replies.INSUFFICIENT_FUNDS,
    replies.PAYEE_NOT_REGISTERED,
    replies.SELF_PAYMENT,
    replies.over_txn_limit(BIG),
    replies.over_daily_limit(BIG),
    replies.over_monthly_limit(BIG),
    replies.over_new_payee_limit(BIG),
    replies.over_new_payee_daily_limit(BIG),
]

FILLED = {
    "paid": replies.paid(BIG, LONG_PHONE, REF, BIG),
    "received": replies.received(BIG, LONG_PHONE, REF, BIG),
    "credited": replies.credited(BIG, REF, BIG),
    "payout_started": replies.payout_started(BIG, LONG_PARTY, REF, BIG),
    "payout_done": replies.payout_done(BIG, LONG_PARTY, REF, BIG),
    "payout_refunded": replies.payout_refunded(BIG, LONG_PARTY, REF, BIG),
    "top_up_requested": replies.top_up_requested(BIG, REF),
    "top_up_link": replies.top_up_link(BIG, "https://rzp.io/i/" + "x" * 80, REF),
    "balance": replies.balance(BIG),
    "payment_held": replies.payment_held(BIG, LONG_PARTY, REF, BIG),
    "held_expired": replies.held_expired(BIG, LONG_PARTY, REF, BIG),
    "rate_limited": replies.rate_limited("23:59"),
    "status": replies.status(REF, "PROCESSING", BIG, LONG_PARTY, True),
    "status_not_found": replies.status_not_found(REF),
    "wrong_pin": replies.wrong_pin(99),
    "locked": replies.locked("30 Sep 23:59"),
    **{f"failed:{r}": replies.payment_failed(BIG, LONG_PARTY, r, REF, BIG) for r in REASONS},
    **{
        name: getattr(replies, name)
        for name in (
            "TOP_UP_UNAVAILABLE",
            "UNREADABLE",
            "REPLAYED",
            "EXPIRED",
            "NOT_UNDERSTOOD",
            "UNKNOWN_SENDER",
            "HELP",
            "USAGE",
            "TRY_LATER",
            "KEY_BURNED",
        )
    },  # fmt: skip
}


@pytest.mark.parametrize("name", sorted(FILLED))
def test_template_fits_one_gsm7_segment(name: str) -> None:
    text = FILLED[name]
    assert fits_one_sms(text), f"{name}: {septets(text) if text.isascii() else text!r} > 160"


def test_success_notices_carry_reference_amount_masked_party_and_balance() -> None:
    text = replies.paid(25_000, mask_phone("+919812345678"), "ABCDEFGHJK", 75_000)
    assert text == "SMSPay: Paid Rs 250.00 to +91******5678. Ref ABCDEFGHJK. Bal Rs 750.00."
    assert "9812345678" not in text


def test_vpa_masking_keeps_the_handle_short() -> None:
    assert mask_party("ramesh.kumar@okbank") == "ra****@okbank"
    assert len(LONG_VPA) <= 30
