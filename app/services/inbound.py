"""handle_inbound_sms: one SMS from Tasker or Twilio, from frame to reply, exactly once.

authenticate (done by the web layer) -> normalise (InboundSms) -> the forwarding phone's rate
limit -> decode the SP1 frame -> find the device by key id, check its phone is the sender ->
decrypt -> deduplicate on (key id, counter; the same counter with another ciphertext burns the
key) -> replay window -> the user's rate limit -> parse -> PIN and lockout -> risk rules and
limits -> execute -> record -> reply. Refusal replies to one number are limited too, so the
service cannot be used to flood a phone.

Everything from the duplicate checks to the record runs in one unit of work, so the same SMS
delivered twice (same MessageSid, or the same frame through both routes) is processed once and
every delivery gets the first answer. The work that needs no lock is done before it: the frame
is decrypted and its instruction parsed with the device key this process last saw
(`Services.device_keys`), and the unit of work uses that result only if the device row it
reads still holds the same wrapped key (otherwise it decrypts again, inside).
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from datetime import datetime

from app.bootstrap import Services
from app.services import payments, settlement
from app.services.common import Outcome, local_time
from app.services.holds import RISK_ACTOR
from app.services.staff import audit
from crypto.codec import InvalidMessage, SealedFrame, looks_like_frame
from crypto.keys import KeyManagementError, device_key_label
from crypto.replay import Verdict
from sms import replies
from sms.inbound import InboundSms
from sms.instructions import Balance, Instruction, InvalidInstruction, Pay, Status, TopUp, parse
from sms.numbers import mask_party, mask_phone
from storage.contract import UnitOfWork
from storage.models import Device, FrameRecord, InboundRecord, User

log = logging.getLogger(__name__)
# A Tasker phone's `last_seen_at` is written by an SMS it forwards at most once in this many
# seconds per web process (and by each of its outbox polls): the dashboard flags a phone silent
# after SMSPAY_KPI_TASKER_SILENT_MINUTES, so a value up to this much older changes nothing there,
# and most SMS save the write (a round trip on MongoDB).
GATEWAY_TOUCH_SECONDS = 30.0
BURNED_KEY_ACTION = "device.burned"  # the audit entry the console's burned-key alarm shows


@dataclass(frozen=True)
class SmsReply:
    """The answer to an inbound SMS, sent back by the route that brought it."""

    text: str
    to: str
    outcome: str
    reference: str | None = None


@dataclass(frozen=True)
class Opened:
    """A frame decrypted, and its instruction parsed, with one wrapped device key."""

    wrapped_key: bytes
    parsed: Instruction | InvalidInstruction | None  # None: the tag did not verify


def _open(svc: Services, frame: SealedFrame, sender: str, wrapped: bytes) -> Opened:
    key = svc.keyring.unwrap(wrapped, device_key_label(frame.key_id))
    try:
        plaintext = frame.open(key, sender)
    except InvalidMessage:
        return Opened(wrapped, None)
    try:
        return Opened(wrapped, parse(plaintext))
    except InvalidInstruction as exc:
        return Opened(wrapped, exc)


def _open_ahead(svc: Services, sms: InboundSms, frame: SealedFrame | None) -> Opened | None:
    """Decrypt and parse before the unit of work (no lock needed), if this process knows the
    device's key; None when it does not (the unit of work does it)."""
    wrapped = svc.device_keys.get(frame.key_id) if frame is not None else None
    if frame is None or wrapped is None:
        return None
    try:
        return _open(svc, frame, sms.sender, wrapped)
    except KeyManagementError:  # the unit of work reads the device and says why
        return None


def handle_inbound_sms(svc: Services, sms: InboundSms) -> SmsReply:
    """Process one authenticated inbound SMS and return the reply to send to its sender."""
    frame: SealedFrame | None = None
    early: Outcome | None = None
    body = sms.body.strip()
    if not looks_like_frame(body):
        early = (
            Outcome("help", replies.HELP)
            if body.upper() == "HELP"
            else Outcome("plain_text", replies.USAGE)
        )
    else:
        try:
            frame = SealedFrame.parse(body)
        except InvalidMessage as exc:
            early = Outcome(f"undecodable:{exc.reason}", replies.UNREADABLE)
    ahead = _open_ahead(svc, sms, frame) if early is None else None
    touches = svc.gateway_touches
    touch = bool(sms.gateway_id) and (
        sms.received_at - touches.get(sms.gateway_id or "", -math.inf) >= GATEWAY_TOUCH_SECONDS
    )

    runs = 0

    def unit(uow: UnitOfWork) -> SmsReply:
        nonlocal runs
        runs += 1
        # The provider retrying a delivery it made (the same MessageSid) is rare, so the first
        # run does not look for it: the unique key of (route, provider id) refuses its inbound
        # record at the end, the store undoes the run and runs it again (Store.atomic), and
        # that run looks. One read fewer inside the writers' lock for every Twilio SMS.
        if sms.provider_message_id and runs > 1:
            prior = uow.find_inbound(sms.route.value, sms.provider_message_id)
            if prior is not None:  # the provider retried the same delivery
                assert prior.id is not None
                uow.count_redelivery(prior.id)
                return SmsReply(prior.reply, sms.sender, "redelivered", prior.reference)
        if sms.gateway_id and touch:
            uow.touch_gateway(sms.gateway_id, sms.received_at)
        # the forwarding phone's bucket first: a flood through it costs no decryption
        outcome = _gateway_limited(svc, uow, sms, frame) or early
        if outcome is not None:
            outcome = _limit_refusal_reply(svc, uow, sms.sender, outcome)
        else:  # a frame's reply is limited before it is stored with the frame (see below)
            outcome = _process_frame(svc, uow, sms, frame, ahead)  # type: ignore[arg-type]
        uow.insert_inbound(
            InboundRecord(
                route=sms.route.value,
                sender=sms.sender,
                received_at=sms.received_at,
                outcome=outcome.code,
                reply=outcome.reply,
                provider_message_id=sms.provider_message_id,
                gateway_id=sms.gateway_id,
                key_id=frame.key_id if frame else None,
                counter=frame.counter if frame else None,
                reference=outcome.reference,
            )
        )
        return SmsReply(outcome.reply, sms.sender, outcome.code, outcome.reference)

    reply = svc.store.atomic(unit)
    if sms.gateway_id and touch and reply.outcome != "redelivered":  # written and committed
        touches[sms.gateway_id] = sms.received_at
    # the one INFO line of an SMS is the access line, which the web layer gives these fields
    log.debug(
        "inbound sms route=%s from=%s outcome=%s ref=%s",
        sms.route.value,
        mask_phone(sms.sender),
        reply.outcome,
        reply.reference,
    )
    return reply


def _process_frame(
    svc: Services, uow: UnitOfWork, sms: InboundSms, frame: SealedFrame, ahead: Opened | None
) -> Outcome:
    """Authenticate the frame against the sender's device, then run it once; its reply is the
    one stored with the frame, after the refusal-reply limit, so a duplicate delivery of the same
    SMS always gets the same answer (silence included) and never counts against the limit."""
    outcome, stored = _open_and_run(svc, uow, sms, frame, ahead)
    if stored or outcome.code == "duplicate":
        return outcome
    return _limit_refusal_reply(svc, uow, sms.sender, outcome)


def _open_and_run(
    svc: Services, uow: UnitOfWork, sms: InboundSms, frame: SealedFrame, ahead: Opened | None
) -> tuple[Outcome, bool]:
    """The frame's outcome, and whether it was run and stored now (its reply already limited):
    refused before it opened, a duplicate of a stored frame, or run and recorded once."""
    found = _sender_and_device(uow, sms, frame)
    if isinstance(found, Outcome):
        return found, False
    user, device = found
    opened = ahead
    if opened is None or opened.wrapped_key != device.wrapped_key:  # decrypted with another key
        opened = _open(svc, frame, sms.sender, device.wrapped_key)
    svc.device_keys.remember(device.key_id, device.wrapped_key)
    if opened.parsed is None:
        return Outcome("bad_tag", replies.UNREADABLE), False

    digest = _digest(frame)
    verdict = device.window.check(frame.counter)
    # a frame is stored in the unit of work that accepts its counter into the window, and the
    # window only moves on: a counter it calls fresh has no stored frame (no read needed; the
    # frames' unique key still refuses a concurrent twin, whose unit then runs again and reads)
    seen = None if verdict is Verdict.FRESH else uow.find_frame(frame.key_id, frame.counter)
    if seen is not None and seen.digest and seen.digest != digest:
        return _burn_key(svc, uow, user, device, frame), False
    if seen is not None:  # the same SMS again, maybe through the other route
        return Outcome("duplicate", seen.reply, seen.reference), False
    if verdict is not Verdict.FRESH:
        return Outcome("replay", replies.REPLAYED), False
    now = svc.clock.now()
    uow.save_window(device.key_id, device.window.accept(frame.counter), now)
    outcome = _user_limited(svc, uow, user, now) or _execute(
        svc, uow, user, device, opened.parsed, sms.route.value, now
    )
    outcome = _limit_refusal_reply(svc, uow, sms.sender, outcome)  # stored as the sender sees it
    uow.insert_frame(
        FrameRecord(
            frame.key_id, frame.counter, outcome.code, outcome.reply, now, outcome.reference,
            digest,
        )
    )  # fmt: skip
    return outcome, True


def _sender_and_device(
    uow: UnitOfWork, sms: InboundSms, frame: SealedFrame
) -> tuple[User, Device] | Outcome:
    """The sender and the active device the frame's key id names, if that device is the
    sender's own phone; otherwise the refusal."""
    found = uow.sender(sms.sender, frame.key_id)  # the user and the device in one read
    if found is None:
        return Outcome("unknown_sender", replies.UNKNOWN_SENDER)
    user, device = found
    if device is None or not device.active:
        return Outcome("unknown_device", replies.UNREADABLE)
    if device.phone != sms.sender or device.user_id != user.id:
        return Outcome("sender_mismatch", replies.UNREADABLE)
    return user, device


def _digest(frame: SealedFrame) -> str:
    """What identifies a frame's bytes: the same key id and counter with another digest is a
    reused nonce, with the same digest a duplicate delivery."""
    return hashlib.sha256(frame.header + frame.sealed).hexdigest()[:32]


def _stored_reply(uow: UnitOfWork, sms: InboundSms, frame: SealedFrame) -> Outcome | None:
    """The answer stored with this very frame (same key id, counter and bytes, from its
    device's phone) when it already ran, else None. No decryption needed: the bytes are the
    ones that were authenticated when the frame was run."""
    if isinstance(_sender_and_device(uow, sms, frame), Outcome):
        return None
    seen = uow.find_frame(frame.key_id, frame.counter)
    if seen is None or seen.digest != _digest(frame):
        return None
    return Outcome("duplicate", seen.reply, seen.reference)


# The outcomes whose replies count against a number's hourly allowance of refusal replies.
LIMITED_REPLIES = frozenset(
    {"rate_limited", "unknown_sender", "unknown_device", "sender_mismatch", "bad_tag",
     "plain_text", "help", "replay"}
)  # fmt: skip


def _limit_refusal_reply(svc: Services, uow: UnitOfWork, sender: str, outcome: Outcome) -> Outcome:
    """Silence a refusal once the number had its allowance of them this hour (the outcome is
    still recorded): a forged or runaway sender cannot make the service flood a phone."""
    per_hour = svc.settings.risk_refusal_replies_per_hour
    limited = outcome.code in LIMITED_REPLIES or outcome.code.startswith(("undecodable", "rate"))
    if not per_hour or not limited or not outcome.reply:
        return outcome
    if uow.take_in_window(f"risk:replies:{sender}", per_hour, 3600, 1, svc.clock.now()):
        return outcome
    return Outcome(outcome.code + ":silenced", "", outcome.reference)


def _gateway_limited(
    svc: Services, uow: UnitOfWork, sms: InboundSms, frame: SealedFrame | None
) -> Outcome | None:
    """The forwarding phone's token bucket (SMSPAY_RISK_GATEWAY_PER_MINUTE), before any work.
    A frame it refuses that already ran gets the answer stored with it, not "try later, no
    money moved": that would be false for a payment made, and a user who believed it and sent
    the payment again would pay twice."""
    per_minute = svc.settings.risk_gateway_per_minute
    if not sms.gateway_id or not per_minute or "gateway_rate" in svc.settings.rules_off:
        return None
    bucket = f"risk:gateway:{sms.gateway_id}"
    if uow.take_tokens(bucket, per_minute, per_minute / 60, 1, svc.clock.now()):
        return None
    log.warning("forwarding phone over its rate gateway=%s", sms.gateway_id)
    stored = _stored_reply(uow, sms, frame) if frame is not None else None
    return stored or Outcome("rate_limited_gateway", replies.TRY_LATER)


def _user_limited(svc: Services, uow: UnitOfWork, user: User, now: float) -> Outcome | None:
    """The user's token bucket (SMSPAY_RISK_USER_PER_MINUTE), shared by every process through
    the store, taken before the PIN is checked and before any money logic."""
    per_minute = svc.settings.risk_user_per_minute
    if not per_minute or "user_rate" in svc.settings.rules_off:
        return None
    if uow.take_tokens(f"risk:user:{user.id}", per_minute, per_minute / 60, 1, now):
        return None
    retry_at = math.ceil((now + 60 / per_minute) / 60) * 60  # one token back, whole minute
    when = datetime.fromtimestamp(retry_at, svc.tz).strftime("%H:%M")
    return Outcome("rate_limited", replies.rate_limited(when))


def _burn_key(
    svc: Services, uow: UnitOfWork, user: User, device: Device, frame: SealedFrame
) -> Outcome:
    """The same device key and counter with another ciphertext: the phone reused a nonce (a
    restored backup, a cloned phone), which with AES-GCM can expose the key. Treat the key as
    burned: disable the device, tell the user to have the phone re-registered, raise the alarm
    (the audit log, shown on the console's dashboard)."""
    now = svc.clock.now()
    uow.deactivate_devices(user.id)
    why = f"key {device.key_id} counter {frame.counter} arrived again with another ciphertext"
    audit(uow, now, RISK_ACTOR, BURNED_KEY_ACTION, user.phone, why, "device disabled")
    log.warning("burned device key key_id=%s phone=%s", device.key_id, mask_phone(user.phone))
    return Outcome("key_burned", replies.KEY_BURNED)


def _execute(
    svc: Services,
    uow: UnitOfWork,
    user: User,
    device: Device,
    instr: Instruction | InvalidInstruction,
    channel: str,
    now: float,
) -> Outcome:
    """Run one authenticated, fresh instruction (or say it was not understood)."""
    if isinstance(instr, InvalidInstruction):
        log.info("instruction refused key_id=%s: %s", device.key_id, instr)
        return Outcome("not_understood", replies.NOT_UNDERSTOOD)
    if isinstance(instr, Status):
        return _status(uow, user, instr.reference)
    max_age = svc.settings.instruction_max_age_seconds
    if max_age and now - instr.sent_at > max_age:
        return Outcome("expired", replies.EXPIRED)
    if isinstance(instr, TopUp):  # no money leaves the wallet: the device key is enough
        return settlement.request_top_up(svc, uow, user, instr.amount, channel, now)
    refused = _check_pin(svc, uow, user, instr.pin, now)
    if refused is not None:
        return refused
    if isinstance(instr, Balance):
        return Outcome("balance", replies.balance(uow.balance(user.account)))
    assert isinstance(instr, Pay)
    return payments.pay(svc, uow, user, instr, channel, now)


def _check_pin(svc: Services, uow: UnitOfWork, user: User, pin: str, now: float) -> Outcome | None:
    """None when the PIN is right; otherwise record the attempt and say why not."""
    settings = svc.settings
    if user.locked_until is not None and user.locked_until > now:
        return Outcome("locked", replies.locked(local_time(user.locked_until, svc.tz)))
    if svc.pins(uow).verify(pin, user.pin_salt, user.pin_hash):
        if user.failed_pin_attempts or user.locked_until is not None:
            uow.set_pin_state(user.id, 0, None)
        return None
    attempts = user.failed_pin_attempts + 1
    if attempts >= settings.pin_max_attempts:
        until = now + settings.pin_lock_seconds
        uow.set_pin_state(user.id, 0, until)
        log.warning("user locked after %d wrong PINs phone=%s", attempts, mask_phone(user.phone))
        return Outcome("wrong_pin_locked", replies.locked(local_time(until, svc.tz)))
    uow.set_pin_state(user.id, attempts, None)
    return Outcome("wrong_pin", replies.wrong_pin(settings.pin_max_attempts - attempts))


def _status(uow: UnitOfWork, user: User, reference: str) -> Outcome:
    """STS: the state of one of the sender's own transactions."""
    txn = uow.get_transaction(reference)
    if txn is None or user.id not in (txn.payer_id, txn.payee_id):
        return Outcome("status_not_found", replies.status_not_found(reference))
    outgoing = txn.payer_id == user.id
    party = txn.payee if outgoing else txn.payer_phone
    counterparty = mask_party(party) if party else "an agent"
    text = replies.status(reference, txn.state.value, txn.amount, counterparty, outgoing)
    return Outcome("status", text, reference)
