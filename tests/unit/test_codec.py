"""The SP1 codec against its specification (docs/protocol.md) and against attacks on the frame."""

from __future__ import annotations

import base64
import json
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from crypto import codec
from crypto.codec import InvalidMessage, MessageTooLong, SealedFrame, decode, encode
from sms import instructions
from sms.gsm7 import is_basic_gsm7

ROOT = Path(__file__).resolve().parents[2]
VECTORS: list[dict[str, Any]] = json.loads(
    (ROOT / "tests" / "fixtures" / "protocol_vectors.json").read_text(encoding="utf-8")
)["vectors"]
PROTOCOL_DOC = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
PHONE = "+919876543210"
OTHER_PHONE = "+919876543211"


def _ids(v: dict[str, Any]) -> str:
    return str(v["name"])


def frame_of(text: str) -> bytes:
    """The frame bytes of an SMS text (the test's own base64 handling)."""
    payload = text.strip()[4:].rstrip("=")
    return base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)


def text_of(frame: bytes) -> str:
    """The SMS text of frame bytes, as the spec says: "SP1 " + unpadded base64."""
    return "SP1 " + base64.b64encode(frame).decode("ascii").rstrip("=")


def independent_sms(key: bytes, key_id: int, counter: int, phone: str, plaintext: bytes) -> str:
    """The spec computed by hand, without crypto.codec."""
    header = bytes([1]) + key_id.to_bytes(4, "big") + counter.to_bytes(4, "big")
    assert header == struct.pack(">BII", 1, key_id, counter)
    nonce = key_id.to_bytes(4, "big") + counter.to_bytes(8, "big")
    aad = header + phone.encode("ascii")
    sealed = AESGCM(key).encrypt(nonce, plaintext, aad)
    return text_of(header + sealed)


def rejected(text: str, key: bytes = KEY, phone: str = PHONE) -> bool:
    """Whether decoding raises the one opaque error (any other exception propagates)."""
    try:
        decode(key, phone, text)
    except InvalidMessage:
        return True
    return False


# --- test vectors ------------------------------------------------------------------------------


def test_there_are_enough_vectors() -> None:
    names = {v["name"] for v in VECTORS}
    assert len(VECTORS) >= 4 and len(names) == len(VECTORS)
    assert any(len(v["sms"]) == 160 for v in VECTORS)
    assert any(v["key_id"] >= 2**32 - 2 and v["counter"] >= 2**32 - 2 for v in VECTORS)
    verbs = {v["plaintext"].split("|")[0] for v in VECTORS}
    assert verbs == {"PAY", "BAL", "STS"}


@pytest.mark.parametrize("v", VECTORS, ids=_ids)
def test_vector_encodes_to_the_exact_sms(v: dict[str, Any]) -> None:
    key = bytes.fromhex(v["key"])
    assert encode(key, v["key_id"], v["counter"], v["phone"], v["plaintext"]) == v["sms"]
    # bytes and str plaintexts are the same thing
    plaintext = v["plaintext"].encode("utf-8")
    assert encode(key, v["key_id"], v["counter"], v["phone"], plaintext) == v["sms"]


@pytest.mark.parametrize("v", VECTORS, ids=_ids)
def test_vector_matches_an_independent_aes_gcm_computation(v: dict[str, Any]) -> None:
    key = bytes.fromhex(v["key"])
    plaintext = v["plaintext"].encode("utf-8")
    assert independent_sms(key, v["key_id"], v["counter"], v["phone"], plaintext) == v["sms"]
    header = bytes.fromhex(v["header"])
    assert header == bytes([1]) + v["key_id"].to_bytes(4, "big") + v["counter"].to_bytes(4, "big")
    assert bytes.fromhex(v["nonce"]) == header[1:5] + bytes(4) + header[5:9]
    assert bytes.fromhex(v["aad"]) == header + v["phone"].encode("ascii")
    assert codec.nonce_for(v["key_id"], v["counter"]).hex() == v["nonce"]
    assert codec.associated_data(header, v["phone"]).hex() == v["aad"]


@pytest.mark.parametrize("v", VECTORS, ids=_ids)
def test_vector_decodes_to_its_plaintext(v: dict[str, Any]) -> None:
    frame, plaintext = decode(bytes.fromhex(v["key"]), v["phone"], v["sms"])
    assert plaintext.decode("utf-8") == v["plaintext"]
    assert (frame.key_id, frame.counter) == (v["key_id"], v["counter"])
    assert frame.header.hex() == v["header"]


@pytest.mark.parametrize("v", VECTORS, ids=_ids)
def test_vector_plaintext_is_a_valid_instruction(v: dict[str, Any]) -> None:
    instructions.parse(v["plaintext"].encode("utf-8"))


@pytest.mark.parametrize("v", VECTORS, ids=_ids)
def test_vector_appears_verbatim_in_the_protocol_doc(v: dict[str, Any]) -> None:
    assert v["sms"] in PROTOCOL_DOC.splitlines()
    assert v["key"] in PROTOCOL_DOC
    assert v["plaintext"] in PROTOCOL_DOC
    assert v["header"] in PROTOCOL_DOC


def test_first_vector_nonce_and_aad_are_in_the_doc() -> None:
    assert VECTORS[0]["nonce"] in PROTOCOL_DOC
    assert VECTORS[0]["aad"] in PROTOCOL_DOC


@pytest.mark.parametrize("v", VECTORS, ids=_ids)
def test_vector_sms_is_one_gsm7_segment(v: dict[str, Any]) -> None:
    assert len(v["sms"]) <= 160 and is_basic_gsm7(v["sms"])
    assert codec.looks_like_frame(v["sms"])


@pytest.mark.parametrize("body", ["SP1 AAAA", " sp1 AAAA", "Sp1AAAA", "SP2 AAAA", "sp9", "SP0 x"])
def test_anything_that_claims_to_be_a_frame_is_treated_as_one(body: str) -> None:
    assert codec.looks_like_frame(body)
    if not body.startswith("SP1 "):
        with pytest.raises(codec.InvalidMessage):
            codec.SealedFrame.parse(body)


@pytest.mark.parametrize("body", ["HELP", "SPEND 5", "spa", "SP", "", "S P1", "SP١ x", "pay"])
def test_plain_text_is_not_a_frame(body: str) -> None:
    assert not codec.looks_like_frame(body)


# --- tampering -----------------------------------------------------------------------------------


@pytest.mark.parametrize("v", VECTORS, ids=_ids)
def test_every_single_bit_flip_is_rejected(v: dict[str, Any]) -> None:
    key, phone = bytes.fromhex(v["key"]), v["phone"]
    frame = frame_of(v["sms"])
    for i in range(len(frame) * 8):
        flipped = bytearray(frame)
        flipped[i // 8] ^= 1 << (i % 8)
        assert rejected(text_of(bytes(flipped)), key, phone), f"bit {i} flipped was accepted"


@pytest.mark.parametrize("v", VECTORS, ids=_ids)
def test_every_truncation_is_rejected(v: dict[str, Any]) -> None:
    key, phone = bytes.fromhex(v["key"]), v["phone"]
    frame = frame_of(v["sms"])
    for n in range(len(frame)):
        assert rejected(text_of(frame[:n]), key, phone), f"frame cut to {n} bytes was accepted"
    for n in range(len(v["sms"])):
        assert rejected(v["sms"][:n], key, phone), f"text cut to {n} chars was accepted"


@pytest.mark.parametrize("n", [0, 1, 9, 24])
def test_frame_shorter_than_header_and_tag_is_rejected_at_parse(n: int) -> None:
    frame = struct.pack(">BII", 1, 1, 1) + bytes(16)
    with pytest.raises(InvalidMessage):
        SealedFrame.parse(text_of(frame[:n]))


def test_frame_of_exactly_header_and_tag_parses_but_does_not_open() -> None:
    sealed = SealedFrame.parse(text_of(struct.pack(">BII", 1, 7, 9) + bytes(16)))
    assert (sealed.key_id, sealed.counter) == (7, 9)
    with pytest.raises(InvalidMessage):
        sealed.open(KEY, PHONE)


def test_a_frame_longer_than_one_sms_is_rejected() -> None:
    text = independent_sms(KEY, 42, 1, PHONE, b"x" * 200)
    assert len(text) > 163
    assert rejected(text)
    assert rejected(text + "\n")


def test_empty_plaintext_round_trips() -> None:
    text = encode(KEY, 1, 1, PHONE, b"")
    assert decode(KEY, PHONE, text)[1] == b""


def test_another_senders_number_is_rejected() -> None:
    text = encode(KEY, 42, 1, PHONE, "BAL|1234|1735689720")
    with pytest.raises(InvalidMessage):
        decode(KEY, OTHER_PHONE, text)
    with pytest.raises(InvalidMessage):
        decode(KEY, PHONE.replace("+", ""), text)  # the same digits without "+"


def test_non_ascii_sender_number_is_the_opaque_error() -> None:
    text = encode(KEY, 42, 1, PHONE, "BAL|1234|1735689720")
    with pytest.raises(InvalidMessage):
        decode(KEY, "+९१९८७६५४३२१०", text)


def test_wrong_key_is_rejected() -> None:
    text = encode(KEY, 42, 1, PHONE, "BAL|1234|1735689720")
    with pytest.raises(InvalidMessage):
        decode(OTHER_KEY, PHONE, text)
    with pytest.raises(InvalidMessage):
        decode(KEY[:16], PHONE, text)  # an AES-128 key of the right prefix
    with pytest.raises(InvalidMessage):
        decode(b"short", PHONE, text)


def test_header_moved_to_another_key_id_or_counter_is_rejected() -> None:
    frame = frame_of(encode(KEY, 42, 7, PHONE, "BAL|1234|1735689720"))
    for key_id, counter in [(43, 7), (42, 8), (42, 7 + 2**16)]:
        moved = struct.pack(">BII", 1, key_id, counter) + frame[9:]
        with pytest.raises(InvalidMessage):
            decode(KEY, PHONE, text_of(moved))


@pytest.mark.parametrize("version", [0, 2, 0x81, 0xFF])
def test_wrong_version_is_rejected(version: int) -> None:
    frame = bytearray(frame_of(encode(KEY, 42, 1, PHONE, "BAL|1234|1735689720")))
    frame[0] = version
    with pytest.raises(InvalidMessage):
        SealedFrame.parse(text_of(bytes(frame)))


def test_counter_zero_is_rejected_at_parse() -> None:
    header = struct.pack(">BII", 1, 42, 0)
    nonce = struct.pack(">IQ", 42, 0)
    sealed = AESGCM(KEY).encrypt(nonce, b"BAL|1234|1735689720", header + PHONE.encode())
    with pytest.raises(InvalidMessage):
        SealedFrame.parse(text_of(header + sealed))


GOOD = encode(KEY, 42, 3, PHONE, "BAL|1234|1735689720")
PAYLOAD = GOOD[4:]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "SP1",
        "SP1 ",
        "SP1 =",
        "SP2 " + PAYLOAD,
        "sp1 " + PAYLOAD,
        "Sp1 " + PAYLOAD,
        "SP1" + PAYLOAD,
        "SP10 " + PAYLOAD,
        "SP " + PAYLOAD,
        " " + PAYLOAD,
        PAYLOAD,
        "HELP",
        "PAY|+919812345678|25000|1234|1735689600",
        "SP1 " + PAYLOAD[:20] + "!" + PAYLOAD[21:],
        "SP1 " + PAYLOAD[:20] + "-" + PAYLOAD[21:],  # URL-safe alphabet is not SP1
        "SP1 " + PAYLOAD[:20] + " " + PAYLOAD[20:],
        "SP1 " + PAYLOAD[:20] + "\n" + PAYLOAD[20:],
        "SP1 " + PAYLOAD[:20] + "=" + PAYLOAD[20:],
        "SP1 " + PAYLOAD[:20] + "é" + PAYLOAD[21:],
        "SP1 " + PAYLOAD + "A",  # one more byte: authentication fails
        "SP1 " + PAYLOAD + "AA",  # 1 mod 4 characters cannot be base64
        "SP1 " + PAYLOAD + " x",
        "SP1 \x00" + PAYLOAD,
    ],
)
def test_malformed_texts_are_the_one_opaque_error(text: str) -> None:
    assert rejected(text)


def test_a_malformed_text_says_nothing_in_its_message() -> None:
    errors = []
    for text in ["SP2 " + PAYLOAD, "SP1 !!!!", "SP1 AAAA", GOOD.replace("SP1 A", "SP1 B")]:
        with pytest.raises(InvalidMessage) as info:
            decode(KEY, PHONE, text)
        errors.append(str(info.value))
    with pytest.raises(InvalidMessage) as info:
        decode(OTHER_KEY, PHONE, GOOD)
    errors.append(str(info.value))
    assert set(errors) == {"invalid message"}


@pytest.mark.parametrize(
    "text",
    [
        GOOD,
        GOOD + "=",  # the BAL frame is 44 bytes: its base64 ends in one "="
        " " + GOOD + " ",
        "\n" + GOOD + "\r\n",
        "\t" + GOOD + "\n\n",
    ],
)
def test_padding_and_surrounding_whitespace_are_accepted(text: str) -> None:
    assert len(frame_of(GOOD)) % 3 == 2  # so the padded form differs from GOOD
    frame, plaintext = decode(KEY, PHONE, text)
    assert plaintext == b"BAL|1234|1735689720"
    assert (frame.key_id, frame.counter) == (42, 3)


def test_full_padding_is_accepted_for_every_frame_length() -> None:
    for n in range(3):
        text = encode(KEY, 42, 3, PHONE, b"x" * n)
        padded = "SP1 " + base64.b64encode(frame_of(text)).decode("ascii")
        assert decode(KEY, PHONE, padded)[1] == b"x" * n


# --- length budget -----------------------------------------------------------------------------


def test_budget_constants() -> None:
    assert codec.MAX_FRAME_BYTES == (160 - 4) * 6 // 8 == 117
    assert codec.MAX_PLAINTEXT_BYTES == 117 - 9 - 16 == 92
    assert codec.HEADER_SIZE == 9 and codec.TAG_SIZE == 16


def test_92_bytes_fit_in_exactly_160_basic_gsm7_characters() -> None:
    text = encode(KEY, 2**32 - 1, 2**32 - 1, PHONE, b"\xff" * 92)
    assert len(text) == 160
    assert is_basic_gsm7(text)
    assert decode(KEY, PHONE, text)[1] == b"\xff" * 92


def test_92_bytes_of_utf8_text_fit() -> None:
    plaintext = "PAY|ab@cd|1|1234|0|" + "₹" * 24 + "x"
    assert len(plaintext.encode()) == 92
    assert len(encode(KEY, 1, 1, PHONE, plaintext)) == 160


@pytest.mark.parametrize("plaintext", [b"x" * 93, "₹" * 31, b"\x00" * 1000])
def test_more_than_92_bytes_are_refused(plaintext: str | bytes) -> None:
    with pytest.raises(MessageTooLong):
        encode(KEY, 1, 1, PHONE, plaintext)


def test_message_too_long_is_a_value_error() -> None:
    assert issubclass(MessageTooLong, ValueError)


@pytest.mark.parametrize(
    ("key", "key_id", "counter"),
    [
        (KEY, 1, 0),
        (KEY, 1, -1),
        (KEY, 1, 2**32),
        (KEY, -1, 1),
        (KEY, 2**32, 1),
        (KEY[:16], 1, 1),
        (KEY[:31], 1, 1),
        (KEY + b"\x00", 1, 1),
        (b"", 1, 1),
    ],
)
def test_encode_refuses_bad_parameters(key: bytes, key_id: int, counter: int) -> None:
    with pytest.raises(ValueError):
        encode(key, key_id, counter, PHONE, b"BAL|1234|1735689720")


def test_encode_accepts_the_extreme_ids() -> None:
    for key_id, counter in [(0, 1), (2**32 - 1, 2**32 - 1)]:
        frame, _ = decode(KEY, PHONE, encode(KEY, key_id, counter, PHONE, b"x"))
        assert (frame.key_id, frame.counter) == (key_id, counter)


def test_same_plaintext_under_new_counter_gives_unrelated_ciphertext() -> None:
    a = frame_of(encode(KEY, 42, 1, PHONE, b"BAL|1234|1735689720"))
    b = frame_of(encode(KEY, 42, 2, PHONE, b"BAL|1234|1735689720"))
    assert a[9:] != b[9:]
    assert b"1234" not in a  # not the plaintext in disguise


# --- properties --------------------------------------------------------------------------------

DIGITS = "0123456789"
e164s = st.builds(
    lambda first, rest: f"+{first}{rest}",
    st.sampled_from("123456789"),
    st.text(DIGITS, min_size=6, max_size=14),
)
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
vpas = st.builds(
    lambda a, b, c, d: f"{a}{b}@{c}{d}",
    st.sampled_from(ALNUM),
    st.text(ALNUM + ".-_", min_size=1, max_size=30),
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    st.text(ALNUM, min_size=1, max_size=12),
)
pins = st.text(DIGITS, min_size=4, max_size=6)
notes = st.text(
    st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="|")
) | st.text(st.characters(exclude_characters="|", exclude_categories=("Cs",)), max_size=24)


locations = st.none() | st.tuples(
    st.builds(lambda n: Decimal(n).scaleb(-4), st.integers(-90 * 10**4, 90 * 10**4)),
    st.builds(lambda n: Decimal(n).scaleb(-4), st.integers(-180 * 10**4, 180 * 10**4)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    payee=e164s | vpas,
    amount=st.integers(1, instructions.MAX_AMOUNT_PAISE),
    pin=pins,
    sent_at=st.integers(0, 2**40),
    note=notes,
    location=locations,
    key_id=st.integers(0, 2**32 - 1),
    counter=st.integers(1, 2**32 - 1),
)
def test_pay_round_trips_through_the_wire(
    payee: str,
    amount: int,
    pin: str,
    sent_at: int,
    note: str,
    location: tuple[Decimal, Decimal] | None,
    key_id: int,
    counter: int,
) -> None:
    plaintext = instructions.format_pay(payee, amount, pin, sent_at, note, location)
    assume(len(plaintext.encode("utf-8")) <= codec.MAX_PLAINTEXT_BYTES)
    text = encode(KEY, key_id, counter, PHONE, plaintext)
    assert len(text) <= 160 and is_basic_gsm7(text)
    sealed = SealedFrame.parse(text)
    assert (sealed.key_id, sealed.counter) == (key_id, counter)
    pay = instructions.parse(sealed.open(KEY, PHONE))
    assert pay == instructions.Pay(payee, amount, pin, sent_at, note, location)


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=codec.MAX_PLAINTEXT_BYTES),
    key=st.binary(min_size=32, max_size=32),
    key_id=st.integers(0, 2**32 - 1),
    counter=st.integers(1, 2**32 - 1),
    phone=e164s,
)
def test_arbitrary_bytes_round_trip(
    data: bytes, key: bytes, key_id: int, counter: int, phone: str
) -> None:
    text = encode(key, key_id, counter, phone, data)
    assert text == independent_sms(key, key_id, counter, phone, data)
    assert len(text) == 4 + -(-(25 + len(data)) * 4 // 3)
    frame, plaintext = decode(key, phone, text)
    assert plaintext == data
    assert (frame.key_id, frame.counter) == (key_id, counter)


@settings(max_examples=500, deadline=None)
@given(
    text=st.text()
    | st.text().map(lambda t: "SP1 " + t)
    | st.text(ALNUM + "+/= \n").map(lambda t: "SP1 " + t)
    | st.binary(max_size=130).map(lambda b: "SP1 " + base64.b64encode(b).decode())
)
def test_parse_never_raises_anything_but_invalid_message(text: str) -> None:
    try:
        sealed = SealedFrame.parse(text)
    except InvalidMessage:
        return
    assert sealed.counter >= 1
    with pytest.raises(InvalidMessage):
        sealed.open(KEY, PHONE)


@settings(max_examples=200, deadline=None)
@given(index=st.integers(0, 117 * 8 - 1), data=st.binary(min_size=92, max_size=92))
def test_random_bit_flips_of_full_frames_are_rejected(index: int, data: bytes) -> None:
    frame = bytearray(frame_of(encode(KEY, 42, 5, PHONE, data)))
    frame[index // 8] ^= 1 << (index % 8)
    assert rejected(text_of(bytes(frame)))
