"""Every kind of job the worker runs, and the function that runs it."""

from __future__ import annotations

from collections.abc import Mapping

from app.services import holds, outbound, settlement
from app.worker import DeadLetterHook, Handler

HANDLERS: Mapping[str, Handler] = {
    "payout.create": settlement.run_payout_create,
    "payout.poll": settlement.run_payout_poll,
    "topup.link": settlement.run_top_up_link,
    "sms.send": outbound.run_sms_send,
    holds.EXPIRY_JOB: holds.run_flag_expiry,
}

ON_DEAD: Mapping[str, DeadLetterHook] = {
    "sms.send": outbound.give_up_sms,
}
