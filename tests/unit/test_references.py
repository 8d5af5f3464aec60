"""Transaction references: 10 letters of the unambiguous alphabet, every letter equally likely."""

from __future__ import annotations

from collections import Counter

from app.services.common import new_reference
from sms.instructions import REFERENCE, REFERENCE_ALPHABET


def test_a_reference_is_ten_letters_of_the_alphabet() -> None:
    for _ in range(1000):
        assert REFERENCE.fullmatch(new_reference())


def test_every_letter_turns_up_in_every_position() -> None:
    draws = [new_reference() for _ in range(4000)]
    for position in range(10):
        seen = Counter(ref[position] for ref in draws)
        assert set(seen) == set(REFERENCE_ALPHABET)
        # 125 expected per letter; a biased mapping (e.g. modulo a non-power of two) shows here
        assert min(seen.values()) > 60 and max(seen.values()) < 200
