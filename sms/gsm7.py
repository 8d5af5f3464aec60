"""The GSM 03.38 default alphabet: what fits in one 160-character SMS."""

from __future__ import annotations

BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
BASIC.discard("\x1b")
# Characters of the extension table cost two septets (an escape, then the character).
EXTENSION = set("\f^{}\\[~]|€")
SEGMENT_CHARS = 160


def is_gsm7(text: str) -> bool:
    """Whether every character is in the GSM-7 basic or extension table."""
    return all(c in BASIC or c in EXTENSION for c in text)


def is_basic_gsm7(text: str) -> bool:
    """Whether every character is in the basic table (the SP1 frame alphabet is)."""
    return all(c in BASIC for c in text)


def septets(text: str) -> int:
    """Length in GSM-7 septets; extension characters count twice."""
    if not is_gsm7(text):
        raise ValueError("text has characters outside GSM-7")
    return sum(2 if c in EXTENSION else 1 for c in text)


def fits_one_sms(text: str) -> bool:
    """Whether the text goes out as one GSM-7 segment."""
    return is_gsm7(text) and septets(text) <= SEGMENT_CHARS
