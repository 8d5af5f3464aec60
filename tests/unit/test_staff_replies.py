"""The SMS texts of staff actions fit one GSM-7 segment, filled with their longest fields."""

from __future__ import annotations

import pytest

from sms import replies
from sms.gsm7 import fits_one_sms
from tests.unit.test_replies import BIG, LONG_PARTY, LONG_PHONE, REF

FILLED = {
    "payment_rejected": replies.payment_rejected(BIG, LONG_PARTY, REF, BIG),
    "reversed_to_payer": replies.reversed_to_payer(BIG, LONG_PARTY, REF, BIG),
    "reversed_from_payee": replies.reversed_from_payee(BIG, LONG_PHONE, REF, BIG),
    "UNLOCKED": replies.UNLOCKED,
}


@pytest.mark.parametrize("name", sorted(FILLED))
def test_staff_action_texts_fit_one_sms(name: str) -> None:
    assert fits_one_sms(FILLED[name]), (name, len(FILLED[name]))
