"""The instruction plaintext: PAY, BAL, STS (docs/protocol.md section 8)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sms.instructions import (
    MAX_AMOUNT_PAISE,
    REFERENCE_ALPHABET,
    Balance,
    InvalidInstruction,
    Pay,
    Status,
    format_balance,
    format_pay,
    format_rupees,
    format_status,
    parse,
    parse_rupees,
)

PAYEE = "+919812345678"
T = 1735689600


def p(text: str) -> object:
    return parse(text.encode("utf-8"))


def refused(text: str | bytes) -> bool:
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        parse(data)
    except InvalidInstruction:
        return True
    return False


def pay_with(**fields: str) -> str:
    values = {"payee": PAYEE, "amount": "25000", "pin": "1234", "time": str(T)}
    values.update(fields)
    text = f"PAY|{values['payee']}|{values['amount']}|{values['pin']}|{values['time']}"
    if "note" in values or "location" in values:
        text += "|" + values.get("note", "")
    if "location" in values:
        text += "|" + values["location"]
    return text


# --- PAY -------------------------------------------------------------------------------------


def test_pay_to_a_phone_with_note_and_location() -> None:
    loc = (Decimal("12.9716"), Decimal("77.5946"))
    text = format_pay(PAYEE, 25000, "1234", T, "lunch", loc)
    assert text == "PAY|+919812345678|25000|1234|1735689600|lunch|12.9716,77.5946"
    assert p(text) == Pay(PAYEE, 25000, "1234", T, "lunch", loc)


def test_pay_to_a_vpa_without_note() -> None:
    text = format_pay("ramesh.k@okbank", 99950, "654321", T)
    assert text == "PAY|ramesh.k@okbank|99950|654321|1735689600"
    assert p(text) == Pay("ramesh.k@okbank", 99950, "654321", T, "", None)


def test_pay_with_a_note_only() -> None:
    text = format_pay(PAYEE, 1, "0000", 0, "rent for März ₹")
    assert text == "PAY|+919812345678|1|0000|0|rent for März ₹"
    assert p(text) == Pay(PAYEE, 1, "0000", 0, "rent for März ₹")


def test_pay_with_an_empty_note_and_a_location() -> None:
    loc = (Decimal("-33.8688"), Decimal("151.2093"))
    text = format_pay(PAYEE, 500, "1234", T, "", loc)
    assert text == "PAY|+919812345678|500|1234|1735689600||-33.8688,151.2093"
    assert p(text) == Pay(PAYEE, 500, "1234", T, "", loc)


def test_pay_at_latitude_and_longitude_zero() -> None:
    loc = (Decimal("0"), Decimal("0"))
    text = format_pay(PAYEE, 500, "1234", T, "", loc)
    assert text.endswith("||0,0")
    assert p(text) == Pay(PAYEE, 500, "1234", T, "", loc)


def test_pay_with_a_trailing_empty_note_is_accepted() -> None:
    assert p(pay_with(note="")) == Pay(PAYEE, 25000, "1234", T)


def test_format_pay_refuses_a_note_with_a_separator() -> None:
    with pytest.raises(InvalidInstruction):
        format_pay(PAYEE, 100, "1234", T, "a|b")


def test_pay_and_balance_reprs_hide_the_pin() -> None:
    assert "7395" not in repr(p(pay_with(pin="7395")))
    assert "7395" not in repr(p(format_balance("7395", T)))


@pytest.mark.parametrize(
    "payee",
    [
        "+1234567",  # shortest E.164: 7 digits
        "+123456789012345",  # longest: 15 digits
        "ab@cd",
        "ramesh.k@okbank",
        "9876543210@ybl",
        "a-b_c.d@Paytm2",
    ],
)
def test_valid_payees(payee: str) -> None:
    pay = p(pay_with(payee=payee))
    assert isinstance(pay, Pay) and pay.payee == payee


@pytest.mark.parametrize(
    "payee",
    [
        "",
        "9876543210",
        "919876543210",
        "+0123456789",
        "+123456",
        "+1234567890123456",
        "+91 9876543210",
        "+91-9876543210",
        "+9198765432a0",
        "a@bank",
        "@bank",
        "name@",
        "name@1bank",
        "name@b",
        "name@bank.com",
        "na me@bank",
        "name@@bank",
        ".name@bank",
        "रमेश@okbank",
    ],
)
def test_invalid_payees(payee: str) -> None:
    assert refused(pay_with(payee=payee))


@pytest.mark.parametrize("amount", [1, 100, 25000, MAX_AMOUNT_PAISE])
def test_valid_amounts(amount: int) -> None:
    pay = p(pay_with(amount=str(amount)))
    assert isinstance(pay, Pay) and pay.amount == amount


@pytest.mark.parametrize(
    "amount",
    [
        "0",
        "00",
        "-1",
        "-100",
        "+100",
        "1.5",
        "100.00",
        "1e3",
        "abc",
        "",
        " 100",
        "100 ",
        "1_000",
        "１００",
        str(MAX_AMOUNT_PAISE + 1),
        str(10**13),
        "9" * 14,
        "9" * 100,
    ],
)
def test_invalid_amounts(amount: str) -> None:
    assert refused(pay_with(amount=amount))


@pytest.mark.parametrize("pin", ["123", "abcd", "12a4", "", " 1234", "12 34", "-123", "a1234"])
def test_invalid_pins(pin: str) -> None:
    assert refused(pay_with(pin=pin))
    assert refused(f"BAL|{pin}|{T}")


def test_pins_with_a_valid_prefix_are_refused() -> None:
    """Bug: marshmallow's validate.Regexp uses re.match, which anchors only at the start, so the
    PIN field accepts anything that starts with 4-6 digits ("BAL|1234999|0" is a Balance)."""
    accepted = [
        pin
        for pin in ["1234567", "12345678", "1234abc", "1234 ", "123456\n"]
        if not refused(pay_with(pin=pin)) or not refused(f"BAL|{pin}|{T}")
    ]
    assert accepted == []


@pytest.mark.parametrize("time", ["-1", "abc", "", "1.5", "1e9", " 1", "1735689600\n", "9" * 14])
def test_invalid_times(time: str) -> None:
    assert refused(pay_with(time=time))
    assert refused(f"BAL|1234|{time}")
    assert refused(f"STS|7K3M9QXA2B|{time}")


def test_time_zero_and_13_digits_are_accepted() -> None:
    assert p(pay_with(time="0")) == Pay(PAYEE, 25000, "1234", 0)
    assert p(f"BAL|1234|{'9' * 13}") == Balance("1234", 10**13 - 1)


@pytest.mark.parametrize(
    "location",
    ["90,180", "-90,-180", "90.0000,180.0000", "12.9716,77.5946", "-0.0001,0.0001", "1,2", "0,0"],
)
def test_valid_locations(location: str) -> None:
    pay = p(pay_with(location=location))
    lat, lon = location.split(",")
    assert isinstance(pay, Pay) and pay.location == (Decimal(lat), Decimal(lon))


@pytest.mark.parametrize(
    "location",
    [
        "91,0",
        "-91,0",
        "90.0001,0",
        "0,181",
        "0,-181",
        "0,180.0001",
        "12.12345,0",
        "0,12.12345",
        "100,0",
        "0,1000",
        "12.9716",
        "12,",
        ",12",
        "12;77",
        "12,77,1",
        "a,b",
        "12.5, 77.5",
        " 12.5,77.5",
        "12.,77",
        ".5,77",
        "+12.5,77",
        "1e1,0",
        "",
    ],
)
def test_invalid_locations(location: str) -> None:
    assert refused(pay_with(location=location))


def test_note_of_80_characters_is_accepted_and_81_is_not() -> None:
    pay = p(pay_with(note="n" * 80))
    assert isinstance(pay, Pay) and pay.note == "n" * 80
    assert refused(pay_with(note="n" * 81))


@pytest.mark.parametrize(
    "text",
    [
        pay_with(note="a", location="1,2") + "|extra",  # a note with "|" makes extra fields
        pay_with(note="a|b"),  # "b" taken as location
        pay_with(note="a|b|c"),
        "PAY|+919812345678|25000|1234",  # too few fields
        "PAY|+919812345678|25000",
        "PAY",
        "PAY|",
    ],
)
def test_wrong_number_of_pay_fields(text: str) -> None:
    assert refused(text)


# --- BAL and STS -------------------------------------------------------------------------------


def test_balance() -> None:
    assert format_balance("1234", T) == "BAL|1234|1735689600"
    assert p("BAL|1234|1735689600") == Balance("1234", T)
    assert p(format_balance("987654", 0)) == Balance("987654", 0)


@pytest.mark.parametrize("text", ["BAL|1234", "BAL|1234|0|x", "BAL||0", "BAL|1234|", "BAL"])
def test_invalid_balance(text: str) -> None:
    assert refused(text)


def test_status() -> None:
    assert format_status("7K3M9QXA2B", T) == "STS|7K3M9QXA2B|1735689600"
    assert p("STS|7K3M9QXA2B|1735689600") == Status("7K3M9QXA2B", T)


def test_status_reference_is_upper_cased() -> None:
    assert p("STS|7k3m9qxa2b|0") == Status("7K3M9QXA2B", 0)
    assert p("STS|7K3m9QxA2b|0") == Status("7K3M9QXA2B", 0)


def test_every_reference_character_is_accepted() -> None:
    assert len(REFERENCE_ALPHABET) == 32
    for i in range(0, 32, 10):
        ref = (REFERENCE_ALPHABET[i:] + REFERENCE_ALPHABET)[:10]
        assert p(f"STS|{ref}|0") == Status(ref, 0)


@pytest.mark.parametrize(
    "reference",
    [
        "7K3M9QXA2",  # 9
        "",
        "0K3M9QXA2B",  # 0 is not in the alphabet
        "1K3M9QXA2B",
        "IK3M9QXA2B",
        "OK3M9QXA2B",
        "ik3m9qxa2b",  # i and o upper-case to letters outside the alphabet
        "oK3M9QXA2B",
        "7K3M9QXA2-",
        " 7K3M9QXA2",
        "７K3M9QXA2B",
    ],
)
def test_invalid_references(reference: str) -> None:
    assert refused(f"STS|{reference}|0")


def test_references_with_a_valid_prefix_are_refused() -> None:
    """Bug: the reference field also uses validate.Regexp (re.match, start-anchored only), so
    "7K3M9QXA2B" followed by anything parses; the STS reply then echoes that text
    (replies.status_not_found), which can be non-GSM-7 or longer than one SMS."""
    references = ["7K3M9QXA2BC", "7K3M9QXA2B-", "7K3M9QXA2B ₹ any text"]
    assert [r for r in references if not refused(f"STS|{r}|0")] == []


@pytest.mark.parametrize("text", ["STS|7K3M9QXA2B", "STS|7K3M9QXA2B|0|0", "STS"])
def test_wrong_number_of_status_fields(text: str) -> None:
    assert refused(text)


# --- verbs and bytes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "pay|+919812345678|25000|1234|0",
        "Pay|+919812345678|25000|1234|0",
        " PAY|+919812345678|25000|1234|0",
        "bal|1234|0",
        "sts|7K3M9QXA2B|0",
        "SEND|+919812345678|25000|1234|0",
        "HELP",
        "|BAL|1234|0",
        "BAL 1234 0",
    ],
)
def test_unknown_instruction(text: str) -> None:
    assert refused(text)


@pytest.mark.parametrize(
    "data",
    [b"\xff", b"BAL|1234|\xff", b"PAY|\xc3(|1|1234|0", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80BAL"],
)
def test_non_utf8_is_refused(data: bytes) -> None:
    assert refused(data)


def test_the_reason_names_the_field_not_the_value() -> None:
    with pytest.raises(InvalidInstruction) as info:
        p(pay_with(pin="12"))
    assert str(info.value) == "invalid pin"
    assert "12" not in str(info.value)
    with pytest.raises(InvalidInstruction, match="invalid amount"):
        p(pay_with(amount="0"))
    with pytest.raises(InvalidInstruction, match="unknown instruction"):
        p("XYZ")
    with pytest.raises(InvalidInstruction, match="not UTF-8"):
        parse(b"\xff")


def test_invalid_instruction_is_a_value_error() -> None:
    assert issubclass(InvalidInstruction, ValueError)


# --- ASCII digits only (known bug: `\d` in the patterns matches any Unicode digit) ---------------

UNICODE_DIGITS = {
    "arabic-indic": "٠١٢٣٤٥٦٧٨٩",
    "devanagari": "०१२३४५६७८९",
    "fullwidth": "０１２３４５６７８９",
}


def _digits(script: str, ascii_digits: str) -> str:
    return "".join(UNICODE_DIGITS[script][int(d)] for d in ascii_digits)


SCRIPTS = sorted(UNICODE_DIGITS)


def test_pin_of_non_ascii_digits_is_refused() -> None:
    """Bug: crypto.pins.PIN_PATTERN (r"\\d{4,6}") accepts e.g. "١٢٣٤"; the PIN then reaches
    PinHasher.verify, which raises UnicodeEncodeError inside the inbound unit of work."""
    pins = [_digits(script, "1234") for script in SCRIPTS]
    assert [pin for pin in pins if not refused(pay_with(pin=pin))] == []
    assert [pin for pin in pins if not refused(f"BAL|{pin}|0")] == []


def test_phone_payee_of_non_ascii_digits_is_refused() -> None:
    """Bug: sms.numbers.E164 (r"\\+[1-9]\\d{6,14}") accepts "+9" followed by other digits."""
    payees = ["+9" + _digits(script, "19812345678") for script in SCRIPTS]
    assert [payee for payee in payees if not refused(pay_with(payee=payee))] == []


def test_location_of_non_ascii_digits_is_refused() -> None:
    """Bug: the location pattern uses \\d, and Decimal() reads other scripts' digits."""
    locations = [f"{_digits(script, '12')}.5,{_digits(script, '77')}" for script in SCRIPTS]
    assert [loc for loc in locations if not refused(pay_with(location=loc))] == []


def test_parse_rupees_refuses_non_ascii_digits() -> None:
    """Bug: parse_rupees' pattern uses \\d; "١٠٠" becomes 10000 paise."""
    for script in SCRIPTS:
        with pytest.raises(ValueError):
            parse_rupees(_digits(script, "100"))


# --- rupees --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "paise"),
    [
        ("0", 0),
        ("1", 100),
        ("250", 25000),
        ("250.5", 25050),
        ("250.50", 25050),
        ("250.05", 25005),
        ("0.01", 1),
        ("0.1", 10),
        (" 250 ", 25000),
        ("007", 700),
        ("9999999999.99", 999999999999),
    ],
)
def test_parse_rupees(text: str, paise: int) -> None:
    assert parse_rupees(text) == paise


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "250.",
        ".5",
        "250.555",
        "-1",
        "+1",
        "1,000",
        "1 000",
        "Rs 250",
        "₹250",
        "1e3",
        "12345678901",
        "250 .5",
        "NaN",
        "Infinity",
    ],
)
def test_parse_rupees_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rupees(text)


@pytest.mark.parametrize(
    ("paise", "text"),
    [
        (0, "Rs 0.00"),
        (1, "Rs 0.01"),
        (10, "Rs 0.10"),
        (100, "Rs 1.00"),
        (12345, "Rs 123.45"),
        (-1, "Rs -0.01"),
        (-12345, "Rs -123.45"),
        (10**12, "Rs 10000000000.00"),
    ],
)
def test_format_rupees(paise: int, text: str) -> None:
    assert format_rupees(paise) == text


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**12 - 1))
def test_rupees_round_trip(paise: int) -> None:
    assert parse_rupees(format_rupees(paise).removeprefix("Rs ")) == paise


# --- properties ----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(pin=st.text("0123456789", min_size=4, max_size=6), sent_at=st.integers(0, 10**13 - 1))
def test_balance_round_trips(pin: str, sent_at: int) -> None:
    assert p(format_balance(pin, sent_at)) == Balance(pin, sent_at)


@settings(max_examples=200, deadline=None)
@given(
    reference=st.text(REFERENCE_ALPHABET, min_size=10, max_size=10),
    sent_at=st.integers(0, 10**13 - 1),
)
def test_status_round_trips(reference: str, sent_at: int) -> None:
    assert p(format_status(reference, sent_at)) == Status(reference, sent_at)
    assert p(format_status(reference.lower(), sent_at)) == Status(reference, sent_at)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120) | st.text(max_size=120).map(str.encode))
def test_parse_never_raises_anything_but_invalid_instruction(data: bytes) -> None:
    try:
        result = parse(data)
    except InvalidInstruction:
        return
    assert isinstance(result, Pay | Balance | Status)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.sampled_from(["PAY", "BAL", "STS", "+919812345678", "ab@cd", "1234", "0", "-1", ""])
        | st.text("0123456789.,-+|@abcKX ", max_size=12),
        min_size=1,
        max_size=8,
    )
)
def test_parse_of_field_soup_never_raises_anything_else(fields: list[str]) -> None:
    try:
        parse("|".join(fields).encode())
    except InvalidInstruction:
        pass
