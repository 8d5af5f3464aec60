"""The device bundle format, defined once (sms/device_bundle.py) for the service and the phone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.services import admin
from scripts import phone
from sms.device_bundle import DeviceBundle

ROOT = Path(__file__).resolve().parents[2]
KEY = bytes(range(32))
BUNDLE = DeviceBundle("+919876543210", 42, KEY, "+15005550006")
# The file `flask devices provision` writes and the phone's state file, byte for byte.
FILE = """{
  "phone": "+919876543210",
  "key_id": 42,
  "key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
  "service_number": "+15005550006",
  "next_counter": 1
}"""


def test_the_file_format_is_unchanged() -> None:
    assert json.dumps(BUNDLE.to_json(), indent=2) == FILE
    assert DeviceBundle.from_json(json.loads(FILE)) == BUNDLE


def test_the_service_and_the_phone_share_one_definition() -> None:
    assert admin.DeviceBundle is DeviceBundle
    assert phone.Device is DeviceBundle


def test_the_key_never_shows_in_its_repr() -> None:
    assert repr(BUNDLE) == "Device(phone='+919876543210', key_id=42, next=1)"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"phone": "9876543210"}, "phone is not an E.164 number"),
        ({"service_number": "12"}, "service_number is not an E.164 number or a short code"),
        ({"key_id": True}, "key_id is not a uint32"),
        ({"key_id": 2**32}, "key_id is not a uint32"),
        ({"next_counter": 0}, "next_counter is not >= 1"),
        ({"key": "AAEC"}, "key is not base64 of 32 bytes"),
        ({"key": "not base64!"}, "key is not base64 of 32 bytes"),
    ],
)
def test_from_json_says_what_is_wrong(change: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        DeviceBundle.from_json({**BUNDLE.to_json(), **change})
    with pytest.raises(ValueError, match="not a JSON object"):
        DeviceBundle.from_json([])


def test_a_short_code_is_a_service_number() -> None:
    assert DeviceBundle.from_json({**BUNDLE.to_json(), "service_number": "56767"}).key == KEY


def test_the_phone_loads_without_flask_or_the_service() -> None:
    code = (
        "import sys, scripts.phone\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "assert not loaded & {'flask', 'app', 'storage'}, loaded & {'flask', 'app', 'storage'}\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
