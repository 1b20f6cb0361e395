"""Plivo inbound webhooks: the V3 signature against an independent reference, and parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openline.providers.base import BadSignature, InboundSms, MalformedWebhook, Media, WebhookRequest
from openline.providers.plivo import (
    EMPTY_RESPONSE,
    MAIN_ACCOUNT_SIGNATURE_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    PlivoWebhook,
    signed_string,
)

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
TOKEN = "ZWQ4ZjJhNzE5NzNmYWM3ZDBkODVhN2Q1"
MAIN_TOKEN = "MmI0ZTQ1YjUzZTNmMmQ0ZjY3YTQ1NjE3"
NONCE = "05429567804466091622"
URL = "https://sms.example.org/webhooks/plivo"

# An inbound SMS with the fields Plivo's "Handling incoming SMS/MMS" reference lists.
SMS = {
    "From": "919876543210",
    "To": "14155550100",
    "Type": "sms",
    "Text": "JOIN",
    "MessageUUID": "2a4b6c8e-1f3d-11ef-9a7b-0242ac120002",
    "Units": "1",
    "TotalRate": "0.00000",
    "TotalAmount": "0.00000",
    "MessageIntent": "optin",
    "PowerpackUUID": "",
}
MMS = {
    "From": "14155550123",
    "To": "14155550100",
    "Type": "mms",
    "Body": "look",
    "MessageUUID": "5b1e3f7a-1f3d-11ef-9a7b-0242ac120002",
    "Units": "1",
    "TotalRate": "0.00000",
    "TotalAmount": "0.00000",
    "PowerpackUUID": "",
    "MediaCount": "2",
    "Media0": "https://media.plivo.com/Account/MA000/Message/5b1e/Media/0",
    "Media1": "https://media.plivo.com/Account/MA000/Message/5b1e/Media/1",
}


def reference_signature(token: str, method: str, url: str, form: dict[str, str], nonce: str) -> str:
    """V3 as Plivo describes it, written out step by step independently of the adapter.

    URL without query; then ``?`` and the query parameters as sorted ``k=v`` pairs joined by ``&``
    (the ``?`` also when a POST has fields but the URL has no query); ``.`` between query and fields;
    the POST fields sorted by name as ``name + value``; then ``.`` + nonce. HMAC-SHA256, base64.
    """
    head, _, query = url.partition("?")
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    query_part = "&".join(k + "=" + v for k, v in pairs)
    fields_part = "".join(k + v for k, v in sorted(form.items())) if method == "POST" else ""
    message = head
    if query_part or fields_part:
        message += "?" + query_part
    if query_part and fields_part:
        message += "."
    message += fields_part + "." + nonce
    return base64.b64encode(hmac.new(token.encode(), message.encode(), hashlib.sha256).digest()).decode()


def request(
    form: dict[str, str],
    headers: Mapping[str, str],
    url: str = URL,
    method: str = "POST",
) -> WebhookRequest:
    body = urlencode(form).encode() if method == "POST" else b""
    return WebhookRequest(method, url, headers, body, urlsplit(url).query, NOW)


def signed(form: dict[str, str], url: str = URL, method: str = "POST", token: str = TOKEN) -> WebhookRequest:
    signature = reference_signature(token, method, url, form, NONCE)
    return request(form, {SIGNATURE_HEADER: signature, NONCE_HEADER: NONCE}, url, method)


# --- the signed string, pinned by hand --------------------------------------------------------------


def test_the_signed_string_for_a_post() -> None:
    fields = [("To", "14155550100"), ("From", "919876543210"), ("Text", "hi there")]
    assert signed_string("POST", URL, fields) == f"{URL}?From919876543210Texthi thereTo14155550100"


def test_the_signed_string_with_a_query() -> None:
    url = URL + "?b=2&a=1&a=0"
    assert signed_string("POST", url, [("X", "1")]) == f"{URL}?a=0&a=1&b=2.X1"
    assert signed_string("POST", url, []) == f"{URL}?a=0&a=1&b=2"
    assert signed_string("GET", url, [("X", "1")]) == f"{URL}?a=0&a=1&b=2"
    assert signed_string("POST", URL, []) == URL


def test_the_adapter_signs_what_the_reference_signs() -> None:
    for method, url, form in [
        ("POST", URL, SMS),
        ("POST", URL + "?community=fans&x=", SMS),
        ("POST", URL, {}),
        ("GET", URL + "?" + urlencode(SMS), {}),
    ]:
        mine = PlivoWebhook(TOKEN).signature(method, url, list(form.items()), NONCE)
        assert mine == reference_signature(TOKEN, method, url, form, NONCE), (method, url)


# --- verify ---------------------------------------------------------------------------------------------


def test_a_signed_inbound_text_verifies() -> None:
    PlivoWebhook(TOKEN).verify(signed(SMS), NOW)
    PlivoWebhook(TOKEN).verify(signed(MMS), NOW)


def test_a_comma_separated_signature_header_matches_any_entry() -> None:
    good = reference_signature(TOKEN, "POST", URL, SMS, NONCE)
    other = reference_signature("a-rotated-out-token", "POST", URL, SMS, NONCE)
    for header in (f"{other},{good}", f"{good},{other}", f"{other}, {good}"):
        PlivoWebhook(TOKEN).verify(request(SMS, {SIGNATURE_HEADER: header, NONCE_HEADER: NONCE}), NOW)
    with pytest.raises(BadSignature):
        PlivoWebhook(TOKEN).verify(request(SMS, {SIGNATURE_HEADER: f"{other},{other}", NONCE_HEADER: NONCE}), NOW)


def test_the_main_account_signature_is_accepted_too() -> None:
    # A subaccount's number: V3 is signed with the subaccount's token, Ma-V3 with the main account's.
    headers = {
        SIGNATURE_HEADER: reference_signature(TOKEN, "POST", URL, SMS, NONCE),
        MAIN_ACCOUNT_SIGNATURE_HEADER: reference_signature(MAIN_TOKEN, "POST", URL, SMS, NONCE),
        NONCE_HEADER: NONCE,
    }
    PlivoWebhook(MAIN_TOKEN).verify(request(SMS, headers), NOW)
    PlivoWebhook(TOKEN).verify(request(SMS, headers), NOW)
    with pytest.raises(BadSignature):
        PlivoWebhook("a-third-token").verify(request(SMS, headers), NOW)


def test_a_wrong_nonce_is_refused() -> None:
    good = reference_signature(TOKEN, "POST", URL, SMS, NONCE)
    with pytest.raises(BadSignature, match="does not match") as refused:
        PlivoWebhook(TOKEN).verify(request(SMS, {SIGNATURE_HEADER: good, NONCE_HEADER: "05429567804466091623"}), NOW)
    assert refused.value.status_code == 403


def test_missing_headers_are_refused() -> None:
    good = reference_signature(TOKEN, "POST", URL, SMS, NONCE)
    with pytest.raises(BadSignature, match="missing X-Plivo-Signature-V3-Nonce header"):
        PlivoWebhook(TOKEN).verify(request(SMS, {SIGNATURE_HEADER: good}), NOW)
    for header in ("", " , "):
        with pytest.raises(BadSignature, match="missing X-Plivo-Signature-V3 header"):
            PlivoWebhook(TOKEN).verify(request(SMS, {SIGNATURE_HEADER: header, NONCE_HEADER: NONCE}), NOW)


def test_a_tampered_request_is_refused() -> None:
    headers = {SIGNATURE_HEADER: reference_signature(TOKEN, "POST", URL, SMS, NONCE), NONCE_HEADER: NONCE}
    hook = PlivoWebhook(TOKEN)
    for form, url in [
        (SMS | {"Text": "STOP"}, URL),
        (SMS | {"Extra": ""}, URL),
        ({k: v for k, v in SMS.items() if k != "PowerpackUUID"}, URL),
        (SMS, URL.replace("https", "http")),
        (SMS, URL + "?x=1"),
    ]:
        with pytest.raises(BadSignature):
            hook.verify(request(form, headers, url), NOW)
    with pytest.raises(BadSignature):
        PlivoWebhook("another-token").verify(request(SMS, headers), NOW)


def test_a_non_ascii_text_verifies_under_either_encoding() -> None:
    form = SMS | {"Text": "नमस्ते, vorrei iscrivermi è 🎉"}
    PlivoWebhook(TOKEN).verify(signed(form), NOW)
    # plivo-python's reading: the UTF-8 bytes taken as Latin-1 characters, encoded to UTF-8 again.
    text = f"{URL}?" + "".join(k + v for k, v in sorted(form.items())) + "." + NONCE
    doubled = text.encode().decode("latin-1").encode()
    signature = base64.b64encode(hmac.new(TOKEN.encode(), doubled, hashlib.sha256).digest()).decode()
    PlivoWebhook(TOKEN).verify(request(form, {SIGNATURE_HEADER: signature, NONCE_HEADER: NONCE}), NOW)


def test_a_get_webhook_is_signed_over_its_query() -> None:
    url = URL + "?" + urlencode(SMS)
    PlivoWebhook(TOKEN).verify(signed({}, url, method="GET"), NOW)
    with pytest.raises(BadSignature):
        bad = request({}, signed({}, url, method="GET").headers, url.replace("JOIN", "STOP"), "GET")
        PlivoWebhook(TOKEN).verify(bad, NOW)


@given(form=st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=6))
def test_any_form_signed_by_the_reference_verifies(form: dict[str, str]) -> None:
    PlivoWebhook(TOKEN).verify(signed(form), NOW)


# --- parse ----------------------------------------------------------------------------------------------


def parse(form: dict[str, str], method: str = "POST") -> InboundSms:
    if method == "GET":
        return PlivoWebhook(TOKEN).parse(request({}, {}, URL + "?" + urlencode(form), "GET"))
    return PlivoWebhook(TOKEN).parse(request(form, {}))


def test_an_inbound_sms_is_parsed() -> None:
    assert parse(SMS) == InboundSms(
        "plivo", "2a4b6c8e-1f3d-11ef-9a7b-0242ac120002", "+919876543210", "+14155550100", "JOIN", ()
    )
    assert parse(SMS, "GET") == parse(SMS)


def test_an_mms_is_parsed_with_its_media_in_order() -> None:
    sms = parse(MMS)
    assert (sms.body, sms.from_number) == ("look", "+14155550123")
    assert sms.media == (Media(MMS["Media0"]), Media(MMS["Media1"]))
    # Numbered from 1, as one of Plivo's pages has it, and past 9: ordered by number, not text.
    one_based = {k: v for k, v in MMS.items() if not k.startswith("Media")} | {
        f"Media{i}": f"https://media.example/{i}" for i in (1, 2, 10)
    }
    assert [m.url for m in parse(one_based).media] == [f"https://media.example/{i}" for i in (1, 2, 10)]


def test_an_mms_of_pictures_alone_has_an_empty_body() -> None:
    assert parse({k: v for k, v in MMS.items() if k != "Body"}).body == ""


def test_numbers_with_a_plus_and_short_codes() -> None:
    sms = parse(SMS | {"From": "+919876543210", "To": "384387"})
    assert (sms.from_number, sms.to) == ("+919876543210", "384387")


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({k: v for k, v in SMS.items() if k != "MessageUUID"}, "MessageUUID"),
        (SMS | {"MessageUUID": " "}, "MessageUUID"),
        ({k: v for k, v in SMS.items() if k != "From"}, "From"),
        (SMS | {"From": "whatsapp:919876543210"}, "From"),
        (SMS | {"From": "99999999999999"}, "From"),
        ({k: v for k, v in SMS.items() if k != "To"}, "To"),
        ({k: v for k, v in SMS.items() if k != "Text"}, "Text"),
        (SMS | {"Type": "whatsapp"}, "Type"),
        ({}, "MessageUUID"),
    ],
)
def test_a_malformed_text_is_refused_naming_the_field(form: dict[str, str], field: str) -> None:
    with pytest.raises(MalformedWebhook) as refused:
        parse(form)
    assert f"'{field}'" in str(refused.value)
    assert refused.value.status_code == 400


def test_repeated_fields_are_refused() -> None:
    body = urlencode(SMS) + "&Text=again"
    with pytest.raises(MalformedWebhook, match="'Text'"):
        PlivoWebhook(TOKEN).parse(WebhookRequest("POST", URL, {}, body.encode(), "", NOW))
    body = urlencode(MMS) + "&Media0=x"
    with pytest.raises(MalformedWebhook, match="'Media0'"):
        PlivoWebhook(TOKEN).parse(WebhookRequest("POST", URL, {}, body.encode(), "", NOW))


def test_the_answer_is_an_empty_plivo_xml_response() -> None:
    assert PlivoWebhook(TOKEN).acknowledge() == (EMPTY_RESPONSE, "application/xml")


def test_a_token_is_required() -> None:
    with pytest.raises(ValueError, match="auth token"):
        PlivoWebhook("")


def test_a_body_that_is_not_utf8_is_a_bad_signature() -> None:
    headers = {SIGNATURE_HEADER: reference_signature(TOKEN, "POST", URL, SMS, NONCE), NONCE_HEADER: NONCE}
    bad = WebhookRequest("POST", URL, headers, b"Text=\xff\xfe", "", NOW)
    with pytest.raises(BadSignature):
        PlivoWebhook(TOKEN).verify(bad, NOW)
