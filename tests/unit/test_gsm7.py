"""The GSM 03.38 default alphabet: what one 160-character SMS can carry."""

from __future__ import annotations

import base64
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sms.gsm7 import BASIC, EXTENSION, SEGMENT_CHARS, fits_one_sms, is_basic_gsm7, is_gsm7, septets


def test_table_sizes() -> None:
    assert len(BASIC) == 127  # 128 code points, minus the escape to the extension table
    assert "\x1b" not in BASIC
    assert EXTENSION == set("\f^{}\\[~]|€")
    assert not BASIC & EXTENSION
    assert SEGMENT_CHARS == 160


def test_base64_and_the_sp1_prefix_are_basic() -> None:
    alphabet = string.ascii_letters + string.digits + "+/="
    assert is_basic_gsm7(alphabet + "SP1 ")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Hello, world!",
        "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ",
        "¡¿ÄÖÑÜ§äöñüà",
        "a\nb\rc",
        "¤%&'()*+,-./:;<=>?",
    ],
)
def test_basic_characters(text: str) -> None:
    assert is_basic_gsm7(text)
    assert is_gsm7(text)
    assert septets(text) == len(text)


@pytest.mark.parametrize("char", sorted(EXTENSION))
def test_extension_characters_are_gsm7_but_not_basic_and_cost_two(char: str) -> None:
    assert is_gsm7(char)
    assert not is_basic_gsm7(char)
    assert septets(char) == 2
    assert septets("a" + char + "b") == 4


@pytest.mark.parametrize(
    "char",
    ["₹", "\x1b", "\t", "`", "ç", "á", "ü".upper() + "\u0308", "😀", "ä".upper() + "ß" + "ẞ"],
)
def test_characters_outside_gsm7(char: str) -> None:
    assert not is_gsm7(char)
    assert not is_basic_gsm7(char)
    assert not fits_one_sms(char)
    with pytest.raises(ValueError):
        septets(char)


def test_rupee_sign_is_not_gsm7() -> None:
    assert not is_gsm7("₹")
    assert not is_gsm7("Paid ₹250")
    assert not fits_one_sms("Paid ₹250")
    assert fits_one_sms("Paid Rs 250")


def test_euro_is_in_the_extension_table() -> None:
    assert is_gsm7("€") and not is_basic_gsm7("€") and septets("€") == 2


@pytest.mark.parametrize(
    ("text", "fits"),
    [
        ("a" * 160, True),
        ("a" * 161, False),
        ("a" * 158 + "€", True),  # 158 + 2 = 160 septets
        ("a" * 159 + "€", False),  # 159 + 2 = 161 septets, though only 160 characters
        ("{" * 80, True),
        ("{" * 81, False),
        ("", True),
        ("a" * 100 + "₹", False),
    ],
)
def test_fits_one_sms_at_the_boundary(text: str, fits: bool) -> None:
    assert fits_one_sms(text) is fits


def test_an_sp1_frame_of_92_bytes_fits_one_sms() -> None:
    text = "SP1 " + base64.b64encode(b"\xff" * 117).decode().rstrip("=")
    assert len(text) == 160
    assert is_basic_gsm7(text) and fits_one_sms(text)


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(sorted(BASIC | EXTENSION)), max_size=200))
def test_septets_counts_extension_characters_twice(text: str) -> None:
    n_ext = sum(c in EXTENSION for c in text)
    assert septets(text) == len(text) + n_ext
    assert fits_one_sms(text) is (len(text) + n_ext <= 160)
    assert is_basic_gsm7(text) is (n_ext == 0)
