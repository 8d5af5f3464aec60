"""Outbound SMS: every status SMS leaves through the outbox, once.

The SMS row is written in the unit of work of the change it reports, with an `sms.send` job. The
worker hands it to the configured channel: Twilio (rate-limited, every process drawing from one
shared token bucket) or the log; for the Tasker channel it marks the row for the phones, which
poll for it. A row is marked `sending` before the provider is asked, so after a crash or a
timeout the next attempt first looks for the message at the provider and never sends it twice.
"""

from __future__ import annotations

import logging

from app.bootstrap import Services
from app.worker import Retry
from sms.channels import ChannelRejected, ChannelUnavailable, OutgoingSms
from sms.numbers import mask_phone
from storage.contract import UnitOfWork
from storage.models import SMS_FINAL, Job, OutboundSms

log = logging.getLogger(__name__)
# A provider's word for a message, as our status; and how far along each status is.
TWILIO_STATUS = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "partially_delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
RANK = {"pending": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3}
LOOK_BACK_SECONDS = 300  # how far before our attempt to look for a message at the provider


def run_sms_send(svc: Services, job: Job) -> Retry | None:
    """Worker: send one outbox SMS through the configured channel."""
    sms_id = job.payload["id"]
    sms = svc.store.read(lambda uow: uow.get_sms(sms_id))
    if sms is None or sms.status not in ("pending", "sending"):
        return None
    now = svc.clock.now()
    if svc.settings.sms_channel == "tasker":
        if sms.channel != "tasker":  # the phones can lease it from now on
            svc.store.atomic(lambda uow: uow.update_sms(sms_id, now, channel="tasker"))
        return None
    channel = svc.sms_channel
    rate = svc.settings.twilio_messages_per_second if channel.name == "twilio" else 1000
    bucket = f"sms:{channel.name}"
    if not svc.store.atomic(lambda uow: uow.take_tokens(bucket, rate, rate, 1, now)):
        return Retry("rate limit", after=1 / rate, counts=False)
    message = OutgoingSms(sms_id, sms.to, sms.body)
    try:
        if sms.status == "sending":  # an earlier attempt may have reached the provider
            since = (sms.updated_at or sms.created_at) - LOOK_BACK_SECONDS
            found = channel.find(message, since)
            if found is not None:
                _mark(svc, sms_id, status="sent", provider_id=found.provider_id, error="")
                return None
        else:
            _mark(svc, sms_id, status="sending", channel=channel.name, attempts=sms.attempts + 1)
        sent = channel.send(message)
    except ChannelRejected as exc:
        _mark(svc, sms_id, status="failed", error=f"{exc.code} {exc.reason}".strip()[:200])
        log.warning("sms %s to %s refused: %s", sms_id, mask_phone(sms.to), exc.code)
        return None
    except ChannelUnavailable as exc:
        return Retry(f"{channel.name} outcome unknown: {exc}")
    _mark(svc, sms_id, status="sent", provider_id=sent.provider_id, error="")
    return None


def give_up_sms(svc: Services, job: Job, reason: str) -> None:
    """Its send job is dead: the SMS is failed (not left 'sending'), for support to see."""
    sms_id, now = job.payload["id"], svc.clock.now()

    def unit(uow: UnitOfWork) -> None:
        sms = uow.get_sms(sms_id)
        if sms is not None and sms.status in ("pending", "sending"):
            uow.update_sms(sms_id, now, status="failed", error=f"gave up: {reason}"[:200])

    svc.store.atomic(unit)


def _mark(svc: Services, sms_id: str, **changes: object) -> None:
    now = svc.clock.now()
    svc.store.atomic(lambda uow: uow.update_sms(sms_id, now, **changes))


def record_twilio_status(svc: Services, message_sid: str, status: str, error_code: str) -> bool:
    """A delivery report from Twilio; False when no message of ours has that SID."""
    ours = TWILIO_STATUS.get(status)
    now = svc.clock.now()

    def unit(uow: UnitOfWork) -> bool:
        sms = uow.find_sms_by_provider_id(message_sid)
        if sms is None:
            return False
        if ours is not None and RANK[ours] > RANK.get(sms.status, 0):
            error = f"twilio {error_code}" if error_code else sms.error
            uow.update_sms(sms.id or "", now, status=ours, error=error)
        return True

    return svc.store.atomic(unit)


def lease_for_phone(svc: Services, gateway_id: str, want: int) -> list[OutboundSms]:
    """Hand pending SMS to one Tasker phone, within its hourly budget; it must ack each."""
    settings, now = svc.settings, svc.clock.now()
    if settings.sms_channel != "tasker":
        return []
    per_hour = settings.tasker_sms_per_hour

    def unit(uow: UnitOfWork) -> list[OutboundSms]:
        uow.touch_gateway(gateway_id, now)  # a poll is also the phone's heartbeat
        window = f"tasker:{gateway_id}"  # at most N in any hour, as Android counts them
        budget = uow.take_in_window(window, per_hour, 3600, want, now)
        leased = uow.lease_sms(
            gateway_id, now, settings.tasker_lease_seconds, budget, settings.tasker_max_attempts
        )
        if unused := budget - len(leased):  # give back what there was nothing to send with
            uow.take_in_window(window, per_hour, 3600, -unused, now)
        return leased

    return svc.store.atomic(unit)


class AckRefused(Exception):
    """An ack that cannot be taken."""


class UnknownSms(AckRefused):
    """No Tasker SMS has that id."""


class NotHeld(AckRefused):
    """The phone acked an SMS leased to another phone, or to none."""


def ack_from_phone(svc: Services, gateway_id: str, sms_id: str, sent: bool, reason: str) -> str:
    """A Tasker phone reports one SMS sent or failed; a failure is offered again, up to a limit."""
    now = svc.clock.now()

    def unit(uow: UnitOfWork) -> str:
        sms = uow.get_sms(sms_id)
        if sms is None or sms.channel != "tasker":
            raise UnknownSms("no such message")
        if sms.lease_gateway != gateway_id:  # before the repeat check: only the holder repeats
            raise NotHeld("this phone does not hold the message")
        if sms.status in SMS_FINAL or sms.status == "sent":
            return sms.status  # a repeated ack
        if sms.status != "sending":
            raise NotHeld("this phone does not hold the message")
        if sent:
            uow.update_sms(
                sms_id, now, status="sent", provider_id=f"tasker:{gateway_id}", lease_until=None
            )
            return "sent"
        if sms.attempts >= svc.settings.tasker_max_attempts:
            uow.update_sms(sms_id, now, status="failed", error=reason[:200], lease_until=None)
            return "failed"
        uow.update_sms(
            sms_id, now, status="pending", error=reason[:200], lease_gateway=None, lease_until=None
        )
        return "pending"

    return svc.store.atomic(unit)
