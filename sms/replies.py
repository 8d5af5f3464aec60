"""Every SMS text the service sends, in one place. Each fits one GSM-7 segment (tested)."""

from __future__ import annotations

from sms.instructions import format_rupees as rs

BRAND = "SMSPay"
NO_MONEY_MOVED = "No money moved."


def paid(amount: int, payee: str, reference: str, balance: int) -> str:
    """To the payer, after a successful payment."""
    return f"{BRAND}: Paid {rs(amount)} to {payee}. Ref {reference}. Bal {rs(balance)}."


def received(amount: int, payer: str, reference: str, balance: int) -> str:
    """To the payee of an internal transfer."""
    return f"{BRAND}: Received {rs(amount)} from {payer}. Ref {reference}. Bal {rs(balance)}."


def credited(amount: int, reference: str, balance: int) -> str:
    """To a user whose wallet an agent or staff member credited."""
    return f"{BRAND}: {rs(amount)} added to your wallet. Ref {reference}. Bal {rs(balance)}."


def payment_failed(amount: int, payee: str, reason: str, reference: str, balance: int) -> str:
    """To the payer, when a payment was refused after the PIN was right."""
    return (
        f"{BRAND}: {rs(amount)} to {payee} failed: {reason}. "
        f"Ref {reference}. Bal {rs(balance)}. {NO_MONEY_MOVED}"
    )


def over_txn_limit(limit: int) -> str:
    """Reason text: over the per-payment cap."""
    return f"above the limit of {rs(limit)} per payment"


def over_daily_limit(left: int) -> str:
    """Reason text: over the per-day cap."""
    return f"daily limit reached ({rs(left)} left today)"


def over_monthly_limit(left: int) -> str:
    """Reason text: over the per-month cap."""
    return f"monthly limit reached ({rs(left)} left)"


def over_new_payee_limit(limit: int) -> str:
    """Reason text: over the per-payment cap for a payee first paid in the last 24 h."""
    return f"new payee limit {rs(limit)} for 24 h"


def over_new_payee_daily_limit(left: int) -> str:
    """Reason text: over the 24-hour cap for a payee first paid in that time."""
    return f"new payee: {rs(left)} left for 24 h"


def payment_held(amount: int, payee: str, reference: str, balance: int) -> str:
    """To the payer, when the risk rules held a payment for review (the money is set aside)."""
    return (
        f"{BRAND}: {rs(amount)} to {payee} is held for a security check. "
        f"Ref {reference}. Bal {rs(balance)}. We will SMS you the result."
    )


def held_expired(amount: int, payee: str, reference: str, balance: int) -> str:
    """To the payer, when nobody reviewed a held payment in time and the money came back."""
    return (
        f"{BRAND}: {rs(amount)} to {payee} was not checked in time and is back in your wallet. "
        f"Ref {reference}. Bal {rs(balance)}."
    )


def rate_limited(when: str) -> str:
    """To a user who sent more instructions a minute than allowed; `when` is HH:MM local time."""
    return f"{BRAND}: Too many messages. Please try again after {when}. {NO_MONEY_MOVED}"


KEY_BURNED = (
    f"{BRAND}: Your phone's key was used twice, so we blocked it for your safety. "
    f"Visit an agent to re-register your phone. {NO_MONEY_MOVED}"
)


def payout_started(amount: int, payee: str, reference: str, balance: int) -> str:
    """To the payer, when a payout to a UPI id is on its way."""
    return (
        f"{BRAND}: Sending {rs(amount)} to {payee}. Ref {reference}. Bal {rs(balance)}. "
        "We will SMS you when it arrives."
    )


def payout_done(amount: int, payee: str, reference: str, balance: int) -> str:
    """To the payer, when the gateway says the payout reached the payee."""
    return f"{BRAND}: {rs(amount)} sent to {payee}. Ref {reference}. Bal {rs(balance)}."


def payout_refunded(amount: int, payee: str, reference: str, balance: int) -> str:
    """To the payer, when a payout failed or was reversed and the money came back."""
    return (
        f"{BRAND}: {rs(amount)} to {payee} could not be sent and is back in your wallet. "
        f"Ref {reference}. Bal {rs(balance)}."
    )


def top_up_requested(amount: int, reference: str) -> str:
    """Answer to TOP: the link follows by SMS."""
    return f"{BRAND}: We will SMS you a link to add {rs(amount)} to your wallet. Ref {reference}."


def top_up_link(amount: int, url: str, reference: str) -> str:
    """The payment link for a top-up (a short https URL)."""
    return f"{BRAND}: Pay {rs(amount)} with UPI to top up your wallet: {url[:60]} Ref {reference}."


TOP_UP_UNAVAILABLE = (
    f"{BRAND}: Top-up by payment link is not available here. Add money at your agent. "
    f"{NO_MONEY_MOVED}"
)
INSUFFICIENT_FUNDS = "not enough balance"
PAYEE_NOT_REGISTERED = "payee is not registered with SMS Pay"
SELF_PAYMENT = "you cannot pay yourself"


def balance(amount: int) -> str:
    """Answer to BAL."""
    return f"{BRAND}: Your balance is {rs(amount)}."


def status(reference: str, state: str, amount: int, counterparty: str, outgoing: bool) -> str:
    """Answer to STS for a transaction the sender took part in."""
    direction = "to" if outgoing else "from"
    return f"{BRAND}: Ref {reference}: {rs(amount)} {direction} {counterparty} is {state}."


def status_not_found(reference: str) -> str:
    """Answer to STS for a reference the sender has no part in."""
    return f"{BRAND}: No transaction {reference} found for this number."


def wrong_pin(tries_left: int) -> str:
    """A wrong PIN that did not yet lock the account."""
    tries = "1 try" if tries_left == 1 else f"{tries_left} tries"
    return f"{BRAND}: Wrong PIN. {tries} left before your account is locked. {NO_MONEY_MOVED}"


def locked(until: str) -> str:
    """Too many wrong PINs; `until` is a short local time like '26 Nov 14:05'."""
    return f"{BRAND}: Too many wrong PINs. Your account is locked until {until}. {NO_MONEY_MOVED}"


UNREADABLE = (
    f"{BRAND}: We could not read this message. Please send it again from the SMS Pay app. "
    f"{NO_MONEY_MOVED}"
)
REPLAYED = f"{BRAND}: This message was already used or is too old. {NO_MONEY_MOVED}"
EXPIRED = f"{BRAND}: This instruction is too old. Please send a new one. {NO_MONEY_MOVED}"
NOT_UNDERSTOOD = (
    f"{BRAND}: We could not understand this instruction. Please update the SMS Pay app. "
    f"{NO_MONEY_MOVED}"
)
UNKNOWN_SENDER = f"{BRAND}: This number is not registered with SMS Pay. Ask an agent to sign up."
HELP = (
    f"{BRAND}: Pay by SMS with the SMS Pay app: it sends PAY, BAL and STS for you, encrypted. "
    "Lost your phone or PIN? Ask your agent to block it."
)
USAGE = f"{BRAND}: We only read messages sent by the SMS Pay app. Send HELP for help."
TRY_LATER = f"{BRAND}: Service busy. Please try again in a few minutes. {NO_MONEY_MOVED}"


# after a staff member's action (app/services/review.py)


def payment_rejected(amount: int, payee: str, reference: str, balance: int) -> str:
    """To the payer, when an admin rejected a held payment and the money came back."""
    return (
        f"{BRAND}: {rs(amount)} to {payee} was not approved and is back in your wallet. "
        f"Ref {reference}. Bal {rs(balance)}."
    )


def reversed_to_payer(amount: int, payee: str, reference: str, balance: int) -> str:
    """To the payer of a payment that support reversed."""
    return (
        f"{BRAND}: {rs(amount)} paid to {payee} was reversed and is back in your wallet. "
        f"Ref {reference}. Bal {rs(balance)}."
    )


def reversed_from_payee(amount: int, payer: str, reference: str, balance: int) -> str:
    """To the payee of a payment that support reversed."""
    return (
        f"{BRAND}: {rs(amount)} from {payer} was reversed by support. "
        f"Ref {reference}. Bal {rs(balance)}."
    )


UNLOCKED = f"{BRAND}: Your account is unlocked. You can pay by SMS again."
