"""Twilio inbound webhooks: the signature against published vectors and the official package, and parsing."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from openline.providers.base import BadSignature, InboundSms, MalformedWebhook, Media, WebhookRequest
from openline.providers.twilio import EMPTY_TWIML, SIGNATURE_HEADER, TwilioWebhook

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)

# Published vectors: twilio/twilio-python tests/unit/test_request_validator.py (see sms-facts §5.2).
VECTOR_TOKEN = "12345"
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
VECTOR_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
JSON_BODY = b'{"property": "value", "boolean": true}'
JSON_BODY_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"

# A real inbound text as Twilio posts it (nyaruka/courier handlers/twiml/handlers_test.go, receiveValid).
INBOUND = (
    "ToCountry=US&ToState=District+Of+Columbia&SmsMessageSid=SMe287d7109a5a925f182f0e07fe5b223b&NumMedia=0"
    "&ToCity=&FromZip=01022&SmsSid=SMe287d7109a5a925f182f0e07fe5b223b&FromState=MA&SmsStatus=received"
    "&FromCity=CHICOPEE&Body=Msg&FromCountry=US&To=%2B12028831111&ToZip=&NumSegments=1"
    "&MessageSid=SMe287d7109a5a925f182f0e07fe5b223b&AccountSid=acctid&From=%2B14133881111&ApiVersion=2010-04-01"
)
# The same with two pictures and no Body field at all (courier receiveMedia).
INBOUND_MEDIA = (
    "ToCountry=US&ToState=District+Of+Columbia&SmsMessageSid=SMe287d7109a5a925f182f0e07fe5b223b&NumMedia=2"
    "&ToCity=&FromZip=01022&SmsSid=SMe287d7109a5a925f182f0e07fe5b223b&FromState=MA&SmsStatus=received"
    "&FromCity=CHICOPEE&FromCountry=US&To=%2B12028831111&ToZip=&NumSegments=1"
    "&MessageSid=SMe287d7109a5a925f182f0e07fe5b223b&AccountSid=acctid&From=%2B14133881111&ApiVersion=2010-04-01"
    "&MediaUrl0=cat.jpg&MediaUrl1=dog.jpg"
)
# To a short code (courier tmsReceiveExtra).
INBOUND_SHORT_CODE = (
    "ToCountry=US&ToState=&SmsMessageSid=SMbbf29aeb9d380ce2a1c0ae4635ff9dab&NumMedia=0&ToCity=&FromZip=27609"
    "&SmsSid=SMbbf29aeb9d380ce2a1c0ae4635ff9dab&FromState=NC&SmsStatus=received&FromCity=RALEIGH&Body=John+Cruz"
    "&FromCountry=US&To=384387&ToZip=&NumSegments=1&MessageSid=SMbbf29aeb9d380ce2a1c0ae4635ff9dab"
    "&AccountSid=acctid&From=%2B14133881111&ApiVersion=2010-04-01"
)

TOKEN = "f3a8c1d2e4b5a6978877665544332211"
WEBHOOK_URL = "https://sms.example.org/webhooks/twilio"


def request(url: str, body: str | bytes = b"", signature: str | None = None, method: str = "POST") -> WebhookRequest:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    raw = body.encode() if isinstance(body, str) else body
    return WebhookRequest(method, url, headers, raw, urlsplit(url).query, NOW)


def official(url: str, body: str, token: str = TOKEN) -> str:
    """The signature Twilio's own package computes for a form post of ``body`` to ``url``."""
    return str(RequestValidator(token).compute_signature(url, dict(parse_qsl(body, keep_blank_values=True))))


def replace(body: str, field: str, value: str | None) -> str:
    """``body`` with ``field`` set to ``value`` (None: removed)."""
    fields = [(k, v) for k, v in parse_qsl(body, keep_blank_values=True) if k != field]
    return urlencode(fields + ([(field, value)] if value is not None else []))


# --- published vectors -------------------------------------------------------------------------------


def test_the_published_vector_verifies() -> None:
    hook = TwilioWebhook(VECTOR_TOKEN)
    assert hook.signature(VECTOR_URL, list(VECTOR_PARAMS.items())) == VECTOR_SIGNATURE
    hook.verify(request(VECTOR_URL, urlencode(VECTOR_PARAMS), VECTOR_SIGNATURE), NOW)


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        # signed with the default port added, received without it
        (VECTOR_URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),
        (VECTOR_URL.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        # signed with an explicit non-default port, received with it
        (VECTOR_URL.replace("https", "http").replace(".com", ".com:1234"), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
        # signed without the port, received with one (Twilio's validators drop it)
        (VECTOR_URL.replace(".com", ".com:1234"), VECTOR_SIGNATURE),
        (VECTOR_URL.replace(".com", ".com:443"), VECTOR_SIGNATURE),
    ],
)
def test_the_published_port_variants_verify(url: str, signature: str) -> None:
    TwilioWebhook(VECTOR_TOKEN).verify(request(url, urlencode(VECTOR_PARAMS), signature), NOW)


def test_the_docs_example_verifies() -> None:
    params = VECTOR_PARAMS | {"Caller": "+12349013030", "From": "+12349013030"}
    TwilioWebhook(VECTOR_TOKEN).verify(request(VECTOR_URL, urlencode(params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ="), NOW)


def test_repeated_names_sign_each_value_in_sorted_order() -> None:
    body = "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234"
    TwilioWebhook(VECTOR_TOKEN).verify(request(VECTOR_URL, body, "IK+Dwps556ElfBT0I3Rgjkr1wJU="), NOW)


def test_a_json_body_is_checked_against_the_signed_body_hash() -> None:
    assert hashlib.sha256(JSON_BODY).hexdigest() == JSON_BODY_HASH
    url = f"{VECTOR_URL}&bodySHA256={JSON_BODY_HASH}"
    hook = TwilioWebhook(VECTOR_TOKEN)
    hook.verify(request(url, JSON_BODY, "a9nBmqA0ju/hNViExpshrM61xv4="), NOW)
    with pytest.raises(BadSignature, match="bodySHA256"):
        hook.verify(request(url, JSON_BODY.replace(b"value", b"valuf"), "a9nBmqA0ju/hNViExpshrM61xv4="), NOW)


@pytest.mark.parametrize(
    "url",
    [
        VECTOR_URL.replace("https", "http"),  # the scheme is signed
        VECTOR_URL.replace("foo=1", "foo=2"),  # so is the query string
        VECTOR_URL.replace("myapp", "other"),
    ],
)
def test_the_vector_does_not_verify_for_another_url(url: str) -> None:
    with pytest.raises(BadSignature) as refused:
        TwilioWebhook(VECTOR_TOKEN).verify(request(url, urlencode(VECTOR_PARAMS), VECTOR_SIGNATURE), NOW)
    assert refused.value.status_code == 403


def test_a_non_default_port_in_the_signature_must_be_in_the_url() -> None:
    hook = TwilioWebhook(VECTOR_TOKEN)
    signature = hook.signature(VECTOR_URL.replace(".com", ".com:8443"), list(VECTOR_PARAMS.items()))
    with pytest.raises(BadSignature):
        hook.verify(request(VECTOR_URL, urlencode(VECTOR_PARAMS), signature), NOW)


# --- real-looking requests signed by the official package ----------------------------------------------


def test_an_inbound_text_signed_by_the_official_package_verifies() -> None:
    TwilioWebhook(TOKEN).verify(request(WEBHOOK_URL, INBOUND, official(WEBHOOK_URL, INBOUND)), NOW)
    with_port = WEBHOOK_URL.replace(".org", ".org:443")
    TwilioWebhook(TOKEN).verify(request(WEBHOOK_URL, INBOUND, official(with_port, INBOUND)), NOW)


def test_a_tampered_body_is_refused() -> None:
    signature = official(WEBHOOK_URL, INBOUND)
    for tampered in (replace(INBOUND, "Body", "Msh"), replace(INBOUND, "ApiVersion", None), INBOUND + "&Extra=1"):
        with pytest.raises(BadSignature, match="does not match"):
            TwilioWebhook(TOKEN).verify(request(WEBHOOK_URL, tampered, signature), NOW)


def test_another_token_is_refused() -> None:
    signature = official(WEBHOOK_URL, INBOUND, token="someone-elses-token")
    with pytest.raises(BadSignature):
        TwilioWebhook(TOKEN).verify(request(WEBHOOK_URL, INBOUND, signature), NOW)


def test_a_missing_signature_is_refused() -> None:
    for signature in (None, ""):
        with pytest.raises(BadSignature, match="missing X-Twilio-Signature header") as refused:
            TwilioWebhook(TOKEN).verify(request(WEBHOOK_URL, INBOUND, signature), NOW)
        assert refused.value.status_code == 403


def test_a_garbled_signature_is_refused_not_crashed_on() -> None:
    for signature in ("ünïcode", "not base64 at all", official(WEBHOOK_URL, INBOUND)[:-2]):
        with pytest.raises(BadSignature):
            TwilioWebhook(TOKEN).verify(request(WEBHOOK_URL, INBOUND, signature), NOW)


def test_the_configured_account_must_match() -> None:
    signature = official(WEBHOOK_URL, INBOUND)
    TwilioWebhook(TOKEN, account_sid="acctid").verify(request(WEBHOOK_URL, INBOUND, signature), NOW)
    with pytest.raises(BadSignature, match="AccountSid") as refused:
        TwilioWebhook(TOKEN, account_sid="AC0ther").verify(request(WEBHOOK_URL, INBOUND, signature), NOW)
    assert refused.value.status_code == 403
    without = replace(INBOUND, "AccountSid", None)
    with pytest.raises(BadSignature, match="AccountSid"):
        TwilioWebhook(TOKEN, account_sid="acctid").verify(
            request(WEBHOOK_URL, without, official(WEBHOOK_URL, without)), NOW
        )


def test_a_get_webhook_is_signed_over_the_url_alone() -> None:
    url = f"{WEBHOOK_URL}?{INBOUND}"
    signature = str(RequestValidator(TOKEN).compute_signature(url, {}))
    hook = TwilioWebhook(TOKEN, account_sid="acctid")
    hook.verify(request(url, b"", signature, method="GET"), NOW)
    assert hook.parse(request(url, method="GET")).body == "Msg"
    with pytest.raises(BadSignature):
        hook.verify(request(url.replace("Body=Msg", "Body=Msh"), b"", signature, method="GET"), NOW)


names = st.text(min_size=1, max_size=12)
values = st.text(max_size=30)


@given(params=st.dictionaries(names, values, max_size=8), data=st.data())
def test_any_params_signed_by_the_official_package_verify_and_no_one_character_change_does(
    params: dict[str, str], data: st.DataObject
) -> None:
    hook = TwilioWebhook(TOKEN)
    body = urlencode(params)
    signature = str(RequestValidator(TOKEN).compute_signature(WEBHOOK_URL, params))
    hook.verify(request(WEBHOOK_URL, body, signature), NOW)

    changeable = sorted(k for k, v in params.items() if v)
    if not changeable:
        return
    name = data.draw(st.sampled_from(changeable), label="field")
    old = params[name]
    at = data.draw(st.integers(0, len(old) - 1), label="position")
    # A webhook body is UTF-8, so a lone surrogate (which UTF-8 cannot encode) is not a change that can arrive.
    char = data.draw(st.characters(codec="utf-8").filter(lambda c: c != old[at]), label="character")
    changed = params | {name: old[:at] + char + old[at + 1 :]}
    with pytest.raises(BadSignature):
        hook.verify(request(WEBHOOK_URL, urlencode(changed), signature), NOW)


# --- parsing --------------------------------------------------------------------------------------------


def parse(body: str) -> InboundSms:
    return TwilioWebhook(TOKEN).parse(request(WEBHOOK_URL, body))


def test_an_inbound_text_is_parsed() -> None:
    assert parse(INBOUND) == InboundSms(
        "twilio", "SMe287d7109a5a925f182f0e07fe5b223b", "+14133881111", "+12028831111", "Msg", ()
    )


def test_media_are_parsed_in_order_with_their_types() -> None:
    sms = parse(INBOUND_MEDIA)
    assert sms.media == (Media("cat.jpg"), Media("dog.jpg"))
    assert sms.body == ""  # no Body field: a picture alone
    typed = INBOUND_MEDIA + "&Body=look&MediaContentType0=image%2Fjpeg&MediaContentType1=image%2Fpng"
    sms = parse(typed)
    assert sms.body == "look"
    assert sms.media == (Media("cat.jpg", "image/jpeg"), Media("dog.jpg", "image/png"))


def test_a_short_code_recipient_stays_digits() -> None:
    sms = parse(INBOUND_SHORT_CODE)
    assert (sms.to, sms.body, sms.provider_message_id) == ("384387", "John Cruz", "SMbbf29aeb9d380ce2a1c0ae4635ff9dab")


def test_numbers_are_normalised_to_e164() -> None:
    sms = parse(replace(replace(INBOUND, "From", "+39 347 123 4567"), "To", "+1 (202) 883-1111"))
    assert (sms.from_number, sms.to) == ("+393471234567", "+12028831111")


def test_an_empty_body_is_a_text() -> None:
    assert parse(replace(INBOUND, "Body", "")).body == ""


def test_older_message_id_fields_are_used_when_message_sid_is_absent() -> None:
    body = replace(INBOUND, "MessageSid", None)
    assert parse(body).provider_message_id == "SMe287d7109a5a925f182f0e07fe5b223b"
    body = replace(replace(body, "SmsMessageSid", None), "SmsSid", "SMold")
    assert parse(body).provider_message_id == "SMold"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (replace(replace(replace(INBOUND, "MessageSid", None), "SmsMessageSid", None), "SmsSid", None), "MessageSid"),
        (replace(replace(replace(INBOUND, "MessageSid", " "), "SmsMessageSid", ""), "SmsSid", ""), "MessageSid"),
        (replace(INBOUND, "From", None), "From"),
        (replace(INBOUND, "From", "whatsapp:+14133881111"), "From"),
        (replace(INBOUND, "From", "+1 555"), "From"),
        (replace(INBOUND, "To", None), "To"),
        (replace(INBOUND, "To", "whatsapp:+12028831111"), "To"),
        (replace(INBOUND, "Body", None), "Body"),
        (INBOUND + "&Body=again", "Body"),
        (replace(INBOUND_MEDIA, "NumMedia", "two"), "NumMedia"),
        (replace(INBOUND_MEDIA, "MediaUrl1", None), "MediaUrl1"),
        ("", "MessageSid"),
    ],
)
def test_a_malformed_text_is_refused_naming_the_field(body: str, field: str) -> None:
    with pytest.raises(MalformedWebhook) as refused:
        parse(body)
    assert f"'{field}'" in str(refused.value)
    assert refused.value.status_code == 400


def test_the_answer_is_empty_twiml() -> None:
    body, media_type = TwilioWebhook(TOKEN).acknowledge()
    assert (body, media_type) == (EMPTY_TWIML, "application/xml")
    assert body == b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def test_a_token_is_required() -> None:
    with pytest.raises(ValueError, match="auth token"):
        TwilioWebhook("")


def test_a_body_that_is_not_utf8_is_a_bad_signature() -> None:
    with pytest.raises(BadSignature):
        TwilioWebhook(TOKEN).verify(request(WEBHOOK_URL, b"Body=\xff\xfe", official(WEBHOOK_URL, "Body=x")), NOW)
