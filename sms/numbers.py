"""Phone numbers and UPI ids: validation and masking for replies and logs."""

from __future__ import annotations

import re

E164 = re.compile(r"\+[1-9][0-9]{6,14}")  # ASCII digits only
VPA = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-_]{1,255}@[A-Za-z][A-Za-z0-9]{1,63}")


def is_e164(text: str) -> bool:
    """A phone number in E.164 form, e.g. +919876543210."""
    return E164.fullmatch(text) is not None


def is_vpa(text: str) -> bool:
    """A UPI virtual payment address, e.g. name@okbank."""
    return VPA.fullmatch(text) is not None


def mask_phone(phone: str) -> str:
    """+919876543210 -> +91******3210 (country code and last four stay)."""
    if not is_e164(phone):
        return "***"
    cc = 3 if phone.startswith("+91") else 2
    return phone[:cc] + "*" * (len(phone) - cc - 4) + phone[-4:]


def mask_vpa(vpa: str) -> str:
    """ramesh.k@okbank -> ra****@okbank (a long handle is cut to 12 characters)."""
    name, _, handle = vpa.partition("@")
    return name[:2] + "****@" + handle[:12]


def mask_party(party: str) -> str:
    """Mask a phone number or a VPA."""
    return mask_vpa(party) if "@" in party else mask_phone(party)


# A run of 8 or more digits, optionally after "+" or its URL encoding: a phone number (or several
# run together) in a request line, a query string or a log message. References and amounts are
# never that long; a long timestamp loses its middle digits, which costs nothing.
PHONE_IN_TEXT = re.compile(r"(?<![0-9])(\+|%2[Bb])?([0-9]{8,})")


def mask_numbers_in(text: str) -> str:
    """Mask every phone number in free text: /users/%2B919876543210 -> /users/%2B91******3210."""

    def masked(match: re.Match[str]) -> str:
        plus, digits = match.group(1) or "", match.group(2)
        keep = 2 if plus else 0  # the country code stays, as in mask_phone
        return plus + digits[:keep] + "*" * (len(digits) - keep - 4) + digits[-4:]

    return PHONE_IN_TEXT.sub(masked, text)
