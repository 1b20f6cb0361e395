"""Telnyx webhooks: Ed25519 signatures made with a key pair of the test's own, and parsing of documented events."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from openline.providers.base import BadSignature, IgnoredEvent, InboundSms, MalformedWebhook, Media, WebhookRequest
from openline.providers.telnyx import SIGNATURE_HEADER, TIMESTAMP_HEADER, TelnyxWebhook

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
TS = str(int(NOW.timestamp()))
URL = "https://sms.example.org/webhooks/telnyx"

PRIVATE_KEY = Ed25519PrivateKey.generate()
PUBLIC_KEY = base64.b64encode(PRIVATE_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
OTHER_KEY = Ed25519PrivateKey.generate()

# The inbound SMS event of Telnyx's API reference (developers.telnyx.com/api-reference/callbacks/inbound-message),
# as Telnyx posts it: the envelope's ``meta`` included, the body sent pretty-printed as shown.
INBOUND: dict[str, Any] = {
    "data": {
        "record_type": "event",
        "id": "bf6307bd-884d-4c1f-b6ea-c62b8c495d3c",
        "event_type": "message.received",
        "occurred_at": "2019-01-23T18:10:02.574Z",
        "payload": {
            "record_type": "message",
            "direction": "inbound",
            "id": "7ee4241c-f127-47e5-9c34-3aac291f8058",
            "type": "SMS",
            "messaging_profile_id": "0f512bda-ae1e-4597-8e11-e5f5686b97d3",
            "organization_id": "b448f9cc-a842-4784-98e9-03c1a5872950",
            "from": {"phone_number": "+18665550001", "carrier": "T-MOBILE USA, INC.", "line_type": "Wireless"},
            "to": [
                {"phone_number": "+18445550001", "status": "delivered", "carrier": "TELNYX LLC", "line_type": "VoIP"}
            ],
            "cc": [],
            "text": "Hello, World!",
            "subject": "From Telnyx!",
            "media": [],
            "webhook_url": "https://www.example.com/hooks",
            "webhook_failover_url": "https://backup.example.com/hooks",
            "encoding": "GSM-7",
            "parts": 1,
            "tags": ["Greetings"],
            "cost": {"amount": "0.0051", "currency": "USD"},
            "received_at": "2019-01-23T18:10:02.574Z",
            "sent_at": None,
            "completed_at": None,
            "valid_until": None,
            "errors": [],
        },
    },
    "meta": {"attempt": 1, "delivered_to": "https://www.example.com/hooks"},
}
# The same number sending a picture with no words (media fields as in Telnyx's InboundMessagePayload schema).
MMS_PAYLOAD = INBOUND["data"]["payload"] | {
    "id": "b0c37f4a-67b5-4c9a-a4a2-5b3c0e3d5a11",
    "type": "MMS",
    "text": None,
    "media": [
        {
            "url": "https://media.telnyx.example/7ee4241c/cat.jpg",
            "content_type": "image/jpeg",
            "hash_sha256": "4f2a1c0e1d3b8e2f7a6c5b4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f",
            "size": 48213,
        },
        {"url": "https://media.telnyx.example/7ee4241c/note.vcf", "content_type": None, "size": 120},
    ],
}
MMS = {"data": INBOUND["data"] | {"payload": MMS_PAYLOAD}, "meta": INBOUND["meta"]}
# A delivery report on the messaging profile's URL (developers.telnyx.com, receiving webhooks).
FINALIZED = {
    "data": {
        "event_type": "message.finalized",
        "id": "4ee8c3a6-4995-4309-a3c6-38e3db9ea4be",
        "occurred_at": "2019-12-09T21:32:14.148+00:00",
        "payload": {
            "completed_at": "2019-12-09T21:32:14.148+00:00",
            "cost": {"amount": "0.0051", "currency": "USD"},
            "direction": "outbound",
            "from": {"carrier": "Telnyx", "line_type": "VoIP", "phone_number": "+13125550000"},
            "id": "b301ed3f-1490-491f-995f-6e64e69674d4",
            "text": "Hello from Telnyx!",
            "to": [{"carrier": "T-MOBILE USA, INC.", "phone_number": "+13125550001", "status": "delivered"}],
            "type": "SMS",
        },
        "record_type": "event",
    },
    "meta": {"attempt": 1, "delivered_to": "https://webhook.site/e3b4b8d8"},
}


def body_of(event: dict[str, Any]) -> bytes:
    return json.dumps(event, indent=2).encode()


def sign(body: bytes, timestamp: str = TS, key: Ed25519PrivateKey = PRIVATE_KEY) -> str:
    """What Telnyx sends in telnyx-signature-ed25519, written out independently of the adapter."""
    return base64.b64encode(key.sign(timestamp.encode() + b"|" + body)).decode()


def request(
    body: bytes, signature: str | None = "", timestamp: str | None = TS, key: Ed25519PrivateKey = PRIVATE_KEY
) -> WebhookRequest:
    headers = {"content-type": "application/json"}
    if signature == "":
        signature = sign(body, timestamp or TS, key)
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    if timestamp is not None:
        headers[TIMESTAMP_HEADER] = timestamp
    return WebhookRequest("POST", URL, headers, body, "", NOW)


def payload_without(*path: str | int) -> bytes:
    """INBOUND with the item at ``path`` (under data.payload) removed."""
    event = json.loads(json.dumps(INBOUND))
    parent = event["data"]["payload"]
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    return body_of(event)


# --- signatures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", [INBOUND, MMS, FINALIZED])
def test_signed_events_verify(event: dict[str, Any]) -> None:
    TelnyxWebhook(PUBLIC_KEY).verify(request(body_of(event)), NOW)


def test_the_body_is_verified_as_received_not_as_reserialised() -> None:
    compact = json.dumps(INBOUND, separators=(",", ":")).encode()
    hook = TelnyxWebhook(PUBLIC_KEY)
    hook.verify(request(compact), NOW)
    with pytest.raises(BadSignature):
        hook.verify(request(compact, signature=sign(body_of(INBOUND))), NOW)


def test_a_tampered_body_is_refused() -> None:
    body = body_of(INBOUND)
    signature = sign(body)
    hook = TelnyxWebhook(PUBLIC_KEY)
    for tampered in (body.replace(b"Hello, World!", b"Hello, World?"), body + b"\n", body[:-1]):
        with pytest.raises(BadSignature, match="does not match the body and timestamp") as refused:
            hook.verify(request(tampered, signature=signature), NOW)
        assert refused.value.status_code == 403


def test_the_timestamp_is_signed_too() -> None:
    body = body_of(INBOUND)
    later = str(int(TS) + 60)
    with pytest.raises(BadSignature, match="does not match"):
        TelnyxWebhook(PUBLIC_KEY).verify(request(body, signature=sign(body), timestamp=later), NOW)


def test_another_key_is_refused() -> None:
    with pytest.raises(BadSignature, match="does not match"):
        TelnyxWebhook(PUBLIC_KEY).verify(request(body_of(INBOUND), key=OTHER_KEY), NOW)


@pytest.mark.parametrize("offset", [301, -301, 3600])
def test_a_stale_or_future_timestamp_is_refused(offset: int) -> None:
    hook = TelnyxWebhook(PUBLIC_KEY)
    with pytest.raises(BadSignature, match="too old or in the future") as refused:
        hook.verify(request(body_of(INBOUND)), NOW + timedelta(seconds=offset))
    assert refused.value.status_code == 403
    hook.verify(request(body_of(INBOUND)), NOW + timedelta(seconds=offset // abs(offset) * 300))


def test_the_tolerance_is_configurable() -> None:
    later = NOW + timedelta(seconds=20)
    TelnyxWebhook(PUBLIC_KEY, tolerance_seconds=30).verify(request(body_of(INBOUND)), later)
    with pytest.raises(BadSignature, match="too old"):
        TelnyxWebhook(PUBLIC_KEY, tolerance_seconds=10).verify(request(body_of(INBOUND)), later)


@pytest.mark.parametrize(
    ("signature", "timestamp", "missing"),
    [(None, TS, SIGNATURE_HEADER), ("", None, TIMESTAMP_HEADER), ("  ", TS, SIGNATURE_HEADER)],
)
def test_a_missing_header_is_refused_by_name(signature: str | None, timestamp: str | None, missing: str) -> None:
    body = body_of(INBOUND)
    with pytest.raises(BadSignature, match=f"missing {missing} header") as refused:
        TelnyxWebhook(PUBLIC_KEY).verify(request(body, signature=signature, timestamp=timestamp), NOW)
    assert refused.value.status_code == 403


@pytest.mark.parametrize(
    ("signature", "timestamp", "match"),
    [
        ("not base64!", TS, "not base64"),
        (base64.b64encode(b"x" * 32).decode(), TS, "32 bytes, not a 64-byte"),
        (base64.b64encode(b"x" * 64).decode(), TS, "does not match"),
        ("ünïcode", TS, "not base64"),
        (None, "2026-11-03T12:00:00Z", "not a Unix time"),
        (None, "-1", "not a Unix time"),
    ],
)
def test_a_garbled_header_is_refused_not_crashed_on(signature: str | None, timestamp: str, match: str) -> None:
    body = body_of(INBOUND)
    headers = {SIGNATURE_HEADER: signature or sign(body), TIMESTAMP_HEADER: timestamp}
    with pytest.raises(BadSignature, match=match):
        TelnyxWebhook(PUBLIC_KEY).verify(WebhookRequest("POST", URL, headers, body, "", NOW), NOW)


def test_a_forged_request_is_refused_for_its_signature_not_its_age() -> None:
    body = body_of(INBOUND)
    with pytest.raises(BadSignature, match="does not match"):
        TelnyxWebhook(PUBLIC_KEY).verify(request(body, key=OTHER_KEY, timestamp="1000"), NOW)


@given(body=st.binary(max_size=300), data=st.data())
def test_any_signed_body_verifies_and_no_changed_byte_does(body: bytes, data: st.DataObject) -> None:
    hook = TelnyxWebhook(PUBLIC_KEY)
    signature = sign(body)
    hook.verify(request(body, signature=signature), NOW)
    at = data.draw(st.integers(0, len(body)), label="position")
    byte = data.draw(st.integers(0, 255).filter(lambda b: at == len(body) or b != body[at]), label="byte")
    changed = body[:at] + bytes([byte]) + body[at + 1 :]
    with pytest.raises(BadSignature):
        hook.verify(request(changed, signature=signature), NOW)


# --- the public key -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "match"),
    [
        ("", "32 bytes"),
        ("not a key!", "not base64"),
        (base64.b64encode(b"k" * 16).decode(), "is 16 bytes"),
        (
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----",
            "not base64",
        ),
    ],
)
def test_a_malformed_public_key_is_refused_at_construction(key: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as refused:
        TelnyxWebhook(key)
    assert "Telnyx portal" in str(refused.value)


def test_surrounding_whitespace_around_the_key_is_ignored() -> None:
    TelnyxWebhook(f"  {PUBLIC_KEY}\n").verify(request(body_of(INBOUND)), NOW)


def test_the_tolerance_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1 second"):
        TelnyxWebhook(PUBLIC_KEY, tolerance_seconds=0)


# --- parsing ------------------------------------------------------------------------------------------


def test_the_documented_inbound_text_parses() -> None:
    sms = TelnyxWebhook(PUBLIC_KEY).parse(request(body_of(INBOUND)))
    assert sms == InboundSms(
        "telnyx", "7ee4241c-f127-47e5-9c34-3aac291f8058", "+18665550001", "+18445550001", "Hello, World!"
    )


def test_an_mms_of_pictures_alone_parses_with_its_media() -> None:
    sms = TelnyxWebhook(PUBLIC_KEY).parse(request(body_of(MMS)))
    assert sms.body == ""
    assert sms.media == (
        Media("https://media.telnyx.example/7ee4241c/cat.jpg", "image/jpeg"),
        Media("https://media.telnyx.example/7ee4241c/note.vcf", None),
    )


def test_text_in_italian_and_hindi_survives() -> None:
    for text in ("Ciao, perché no? Sì!", "नमस्ते 🙏"):
        event = json.loads(json.dumps(INBOUND))
        event["data"]["payload"]["text"] = text
        body = json.dumps(event, ensure_ascii=False).encode()
        hook = TelnyxWebhook(PUBLIC_KEY)
        hook.verify(request(body), NOW)
        assert hook.parse(request(body)).body == text


def test_a_short_code_recipient_stays_digits() -> None:
    event = json.loads(json.dumps(INBOUND))
    event["data"]["payload"]["to"][0]["phone_number"] = "86753"
    assert TelnyxWebhook(PUBLIC_KEY).parse(request(body_of(event))).to == "86753"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"{not json", "the body is not JSON"),
        (b"\xff\xfe{}", "the body is not JSON"),
        (b"[]", "missing field 'data'"),
        (b'{"data": {"payload": {}}}', "missing field 'data.event_type'"),
        (b'{"data": {"event_type": "message.received"}}', "missing field 'data.payload'"),
        (payload_without("id"), "missing field 'data.payload.id'"),
        (payload_without("from", "phone_number"), "missing field 'data.payload.from.phone_number'"),
        (payload_without("from"), "missing field 'data.payload.from'"),
        (payload_without("to", 0), r"missing field 'data.payload.to\[0\].phone_number'"),
        (payload_without("to"), r"missing field 'data.payload.to\[0\].phone_number'"),
        (payload_without("to", 0, "phone_number"), r"missing field 'data.payload.to\[0\].phone_number'"),
        (payload_without("text"), "missing field 'data.payload.text'"),
    ],
)
def test_a_malformed_event_is_a_400_naming_what_is_missing(body: bytes, match: str) -> None:
    with pytest.raises(MalformedWebhook, match=match) as refused:
        TelnyxWebhook(PUBLIC_KEY).parse(request(body))
    assert refused.value.status_code == 400


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("id", "x" * 129, "'data.payload.id' is longer than 128"),
        ("text", 42, "'data.payload.text' is not a string"),
        ("media", "cat.jpg", "'data.payload.media' is not a list"),
        ("media", [{"content_type": "image/png"}], r"missing field 'data.payload.media\[0\].url'"),
        ("media", ["cat.jpg"], r"'data.payload.media\[0\]' is not an object"),
        ("from", {"phone_number": "18665550001"}, "'data.payload.from.phone_number'.*not an E.164"),
        ("from", {"phone_number": "+1866"}, "'data.payload.from.phone_number'"),
        ("to", [{"phone_number": "+1844"}], r"'data.payload.to\[0\].phone_number'"),
    ],
)
def test_a_malformed_field_is_a_400_naming_it(field: str, value: object, match: str) -> None:
    event = json.loads(json.dumps(INBOUND))
    event["data"]["payload"][field] = value
    with pytest.raises(MalformedWebhook, match=match):
        TelnyxWebhook(PUBLIC_KEY).parse(request(body_of(event)))


@pytest.mark.parametrize("event_type", ["message.finalized", "message.sent", "some.future.event"])
def test_other_events_are_acknowledged_and_not_stored(event_type: str) -> None:
    event = json.loads(json.dumps(FINALIZED))
    event["data"]["event_type"] = event_type
    hook = TelnyxWebhook(PUBLIC_KEY)
    hook.verify(request(body_of(event)), NOW)  # genuine: signed like any other event
    with pytest.raises(IgnoredEvent, match=f"event '{event_type}' is not an inbound text") as ignored:
        hook.parse(request(body_of(event)))
    assert ignored.value.status_code == 200


def test_a_text_from_an_alphanumeric_sender_is_acknowledged_and_not_stored() -> None:
    event = json.loads(json.dumps(INBOUND))
    event["data"]["payload"]["from"]["phone_number"] = "TELNYX"
    with pytest.raises(IgnoredEvent, match="alphanumeric") as ignored:
        TelnyxWebhook(PUBLIC_KEY).parse(request(body_of(event)))
    assert ignored.value.status_code == 200


def test_the_acknowledgement_is_an_empty_200() -> None:
    assert TelnyxWebhook(PUBLIC_KEY).acknowledge() == (b"", "text/plain")
