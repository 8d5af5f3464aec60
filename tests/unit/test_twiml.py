"""sms.twilio.twiml_reply answers with the document Twilio's SDK makes: one Message verb with the
reply's text, or an empty Response; the SDK is the oracle on any text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from sms.twilio import _sdk_twiml, twiml_reply


def test_a_reply_is_one_message_with_its_text() -> None:
    text = "SMSPay: Paid Rs 1.00 to +91******0002. Ref E7Y7Q937TU. Bal Rs 9997.00."
    doc = twiml_reply(text)
    assert doc == _sdk_twiml(text)
    root = ET.fromstring(doc.encode())
    assert root.tag == "Response" and [m.tag for m in root] == ["Message"]
    assert root[0].text == text


def test_no_reply_is_an_empty_response() -> None:
    for text in (None, ""):
        doc = twiml_reply(text)
        assert doc == _sdk_twiml(text)
        assert len(ET.fromstring(doc.encode())) == 0


def test_markup_in_a_reply_is_text_not_markup() -> None:
    text = "a & b < c > d \"e\" 'f' ]]> <Redirect>http://x</Redirect>"
    doc = twiml_reply(text)
    assert doc == _sdk_twiml(text)
    root = ET.fromstring(doc.encode())
    assert [m.tag for m in root] == ["Message"] and root[0].text == text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_renders_as_the_sdk_renders_it(text: str) -> None:
    assert twiml_reply(text) == _sdk_twiml(text)
