"""Vonage SMS API webhooks: the signature against published vectors and an independent signer, and parsing."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openline.providers.base import BadSignature, IgnoredEvent, InboundSms, MalformedWebhook, WebhookRequest
from openline.providers.vonage import METHODS, VonageWebhook

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
TS = str(int(NOW.timestamp()))
SECRET = "Zp3xQk9LwR2vT7mN"
URL = "https://sms.example.org/webhooks/vonage"

# Vonage's documented inbound message (developer.vonage.com messaging/sms/guides/inbound-sms, the JSON example
# in Vonage's SMS tutorials) with the concatenation and binary fields left out, as a plain text arrives.
# Its numbers are in Ofcom's drama range, which libphonenumber does not accept as real numbers, so the
# parsing tests use the same shape with real-format numbers (DOCS_INBOUND is used for signatures only).
DOCS_INBOUND = {
    "msisdn": "447700900001",
    "to": "447700900000",
    "messageId": "0A0000000123ABCD1",
    "text": "Hello world",
    "type": "text",
    "keyword": "Hello",
    "message-timestamp": "2020-01-01 12:00:00",
    "timestamp": "1578787200",
    "nonce": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
}
INBOUND = DOCS_INBOUND | {"msisdn": "447400123456", "to": "447911123456", "timestamp": TS}
# One part of a long Unicode text, as Vonage posts it (shape from djnexmo's tests, a Vonage developer's library).
PART = {
    "concat": "true",
    "concat-part": "1",
    "concat-ref": "78",
    "concat-total": "9",
    "keyword": "LOREM",
    "message-timestamp": "2026-11-03 12:00:00",
    "messageId": "0B000000D0EBB58D",
    "msisdn": "393471234567",
    "nonce": "0a455d75-459e-446c-9072-698728516d7c",
    "text": "Ciao! Vorrei iscrivermi alla newsletter della comunità, però prima una domanda",
    "timestamp": TS,
    "to": "447911123456",
    "type": "unicode",
}
# A delivery receipt (Vonage SMS API docs), which a misconfigured account could send to the inbound URL.
RECEIPT = {
    "msisdn": "447400123456",
    "to": "Acme Inc",
    "network-code": "23410",
    "messageId": "0A0000001234567B",
    "price": "0.03330000",
    "status": "delivered",
    "scts": "2611031200",
    "err-code": "0",
    "message-timestamp": "2026-11-03 12:00:00",
    "timestamp": TS,
    "nonce": "c1f3a1a2-52b1-4fbd-9e6f-6f1a1b4f3c2d",
}


def sign(params: dict[str, str], secret: str = SECRET, method: str = "md5hash") -> str:
    """Vonage's signing written out again, independently of the adapter."""
    text = ""
    for key in sorted(params):
        if key != "sig":
            text += "&" + key + "=" + params[key].replace("&", "_").replace("=", "_")
    if method == "md5hash":
        return hashlib.md5((text + secret).encode()).hexdigest()
    return hmac.new(secret.encode(), text.encode(), getattr(hashlib, method)).hexdigest().upper()


def signed(params: dict[str, str], secret: str = SECRET, method: str = "md5hash") -> dict[str, str]:
    return params | {"sig": sign(params, secret, method)}


def get(params: dict[str, str]) -> WebhookRequest:
    query = urlencode(params)
    return WebhookRequest("GET", f"{URL}?{query}", {}, b"", query, NOW)


def form(params: dict[str, str]) -> WebhookRequest:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    return WebhookRequest("POST", URL, headers, urlencode(params).encode(), "", NOW)


def as_json(params: Mapping[str, object]) -> WebhookRequest:
    headers = {"content-type": "application/json; charset=utf-8"}
    return WebhookRequest("POST", URL, headers, json.dumps(params).encode(), "", NOW)


Transport = Callable[[dict[str, str]], WebhookRequest]
TRANSPORTS: list[Transport] = [get, form, as_json]


# --- signatures ---------------------------------------------------------------------------------------

# Published vectors from Vonage's Python SDK tests: md5hash from the v3 client's test_signature
# (secret "secret"), the HMACs from http_client/tests/test_auth.py (secret "signature_secret").
SDK_VECTORS = [
    ("secret", "md5hash", {"a": "1", "b": "2", "timestamp": "1461605396"}, "6af838ef94998832dbfc29020b564830"),
    (
        "signature_secret",
        "md5",
        {"param1": "value1", "param2": "value2", "timestamp": "1234567890"},
        "724c2bf6ca423c36e20631b11d1c5753",
    ),
    (
        "signature_secret",
        "md5",
        {"param1": "value&1", "param2": "value=2", "timestamp": "1234567890"},
        "2bbf0abafb2c55e5af6231513896a2ac",
    ),
    ("signature_secret", "md5", {"param": "value", "timestamp": "1234567890"}, "655a4d0b7f064dff438defc52b012cf5"),
    (
        "signature_secret",
        "sha256",
        {"param1": "value1", "param2": "value2", "timestamp": "1234567890"},
        "280c4320703dbc98bfa22db676655ed2acfbfe8792b062ff7622e67f1183c287",
    ),
]


@pytest.mark.parametrize(("secret", "method", "params", "sig"), SDK_VECTORS)
def test_the_sdk_vectors_verify(secret: str, method: str, params: dict[str, str], sig: str) -> None:
    hook = VonageWebhook(secret, method)
    assert hook.signature(params.items()) == sig
    at = datetime.fromtimestamp(int(params["timestamp"]), UTC)
    hook.verify(form(params | {"sig": sig}), at)
    hook.verify(form(params | {"sig": sig.upper()}), at)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_method_verifies_on_every_transport(method: str, transport: Transport) -> None:
    hook = VonageWebhook(SECRET, method)
    hook.verify(transport(signed(INBOUND, method=method)), NOW)
    # The HMACs Vonage writes in upper case, the MD5 hash in lower; either case is accepted.
    hook.verify(transport(INBOUND | {"sig": sign(INBOUND, method=method).lower()}), NOW)
    for other in METHODS:
        if other != method:
            with pytest.raises(BadSignature, match="sig does not match"):
                hook.verify(transport(signed(INBOUND, method=other)), NOW)


def test_md5hash_is_the_default() -> None:
    hook = VonageWebhook(SECRET)
    hook.verify(form(signed(INBOUND)), NOW)
    with pytest.raises(BadSignature):
        hook.verify(form(signed(INBOUND, method="md5")), NOW)


def test_the_documented_payload_verifies_at_its_own_time() -> None:
    at = datetime.fromtimestamp(int(DOCS_INBOUND["timestamp"]), UTC)
    VonageWebhook(SECRET, "sha256").verify(as_json(signed(DOCS_INBOUND, method="sha256")), at)


@pytest.mark.parametrize("text", ["a&b=c", "x=1&y=2", "&&==", "price: 5 €&tax=1"])
def test_ampersands_and_equals_in_values_are_signed_as_underscores(text: str) -> None:
    params = INBOUND | {"text": text}
    hook = VonageWebhook(SECRET)
    for transport in TRANSPORTS:
        hook.verify(transport(signed(params)), NOW)
        assert hook.parse(transport(signed(params))).body == text
    # Signing the raw value (what a naive implementation would do) is not what Vonage does.
    naive = "".join(f"&{k}={params[k]}" for k in sorted(params))
    with pytest.raises(BadSignature):
        hook.verify(form(params | {"sig": hashlib.md5((naive + SECRET).encode()).hexdigest()}), NOW)


def test_a_tampered_value_or_an_added_field_is_refused() -> None:
    hook = VonageWebhook(SECRET)
    good = signed(INBOUND)
    for tampered in (good | {"text": "Hello wprld"}, good | {"msisdn": "447400123457"}, good | {"extra": "1"}):
        with pytest.raises(BadSignature, match="sig does not match") as refused:
            hook.verify(form(tampered), NOW)
        assert refused.value.status_code == 403
    without_nonce = {k: v for k, v in good.items() if k != "nonce"}
    with pytest.raises(BadSignature):
        hook.verify(form(without_nonce), NOW)


def test_another_secret_is_refused() -> None:
    with pytest.raises(BadSignature):
        VonageWebhook(SECRET).verify(form(signed(INBOUND, secret="someone-elses-secret")), NOW)


def test_a_missing_or_garbled_sig_is_refused() -> None:
    hook = VonageWebhook(SECRET)
    for params in (INBOUND, INBOUND | {"sig": ""}, INBOUND | {"sig": "   "}):
        with pytest.raises(BadSignature, match="missing sig") as refused:
            hook.verify(form(params), NOW)
        assert refused.value.status_code == 403
    for sig in ("ünïcode", "zz", sign(INBOUND)[:-1]):
        with pytest.raises(BadSignature, match="does not match"):
            hook.verify(form(INBOUND | {"sig": sig}), NOW)


@pytest.mark.parametrize("offset", [301, -301, 86_400])
def test_a_stale_or_future_timestamp_is_refused(offset: int) -> None:
    hook = VonageWebhook(SECRET)
    with pytest.raises(BadSignature, match="too old or in the future") as refused:
        hook.verify(form(signed(INBOUND)), NOW + timedelta(seconds=offset))
    assert refused.value.status_code == 403
    hook.verify(form(signed(INBOUND)), NOW + timedelta(seconds=offset // abs(offset) * 300))


def test_the_tolerance_is_configurable() -> None:
    later = NOW + timedelta(seconds=20)
    VonageWebhook(SECRET, tolerance_seconds=30).verify(form(signed(INBOUND)), later)
    with pytest.raises(BadSignature, match="too old"):
        VonageWebhook(SECRET, tolerance_seconds=10).verify(form(signed(INBOUND)), later)


def test_a_signed_request_without_a_usable_timestamp_is_refused() -> None:
    hook = VonageWebhook(SECRET)
    without = {k: v for k, v in INBOUND.items() if k != "timestamp"}
    with pytest.raises(BadSignature, match="missing timestamp"):
        hook.verify(form(signed(without)), NOW)
    with pytest.raises(BadSignature, match="not a Unix time"):
        hook.verify(form(signed(INBOUND | {"timestamp": "2026-11-03 12:00:00"})), NOW)


def test_a_forged_request_is_refused_for_its_signature_not_its_age() -> None:
    stale = INBOUND | {"timestamp": "1000", "sig": "0" * 32}
    with pytest.raises(BadSignature, match="sig does not match"):
        VonageWebhook(SECRET).verify(form(stale), NOW)


def test_names_that_would_sign_like_other_parameters_are_refused() -> None:
    # "&a=1&b=2" is also what the single parameter named "a=1&b" with value "2" signs as.
    hook = VonageWebhook(SECRET)
    params = {"a=1&b": "2", "timestamp": TS}
    with pytest.raises(MalformedWebhook, match="holds '&' or '='"):
        hook.verify(form(signed(params)), NOW)


def test_a_repeated_field_is_refused() -> None:
    body = urlencode([*signed(INBOUND).items(), ("text", "again")]).encode()
    request = WebhookRequest("POST", URL, {"content-type": "application/x-www-form-urlencoded"}, body, "", NOW)
    with pytest.raises(MalformedWebhook, match="'text' given more than once"):
        VonageWebhook(SECRET).verify(request, NOW)


@given(
    params=st.dictionaries(
        st.text("abcdefghijklmnopqrstuvwxyz-ABCXYZ_0123456789", min_size=1, max_size=12).filter(
            lambda name: name not in {"sig", "timestamp"}
        ),
        st.text(max_size=30),
        max_size=8,
    ),
    method=st.sampled_from(list(METHODS)),
    transport=st.sampled_from(TRANSPORTS),
    data=st.data(),
)
def test_any_params_signed_correctly_verify_and_no_changed_value_does(
    params: dict[str, str], method: str, transport: Transport, data: st.DataObject
) -> None:
    params = params | {"timestamp": TS}
    hook = VonageWebhook(SECRET, method)
    hook.verify(transport(signed(params, method=method)), NOW)

    name = data.draw(st.sampled_from(sorted(params)), label="field")
    old = params[name]
    at = data.draw(st.integers(0, len(old)), label="position")

    def signs_alike(char: str) -> bool:
        # The scheme cannot tell these apart: Vonage signs "&", "=" and "_" in values alike.
        underscore = {"&", "=", "_"}
        return at < len(old) and (char == old[at] or (char in underscore and old[at] in underscore))

    char = data.draw(st.characters(exclude_categories=["Cs"]).filter(lambda c: not signs_alike(c)), label="char")
    changed = old[:at] + char + old[at + 1 :]  # at == len(old): a character appended
    with pytest.raises(BadSignature):
        hook.verify(transport(signed(params, method=method) | {name: changed}), NOW)


# --- parsing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_documented_inbound_text_parses_the_same_on_every_transport(transport: Transport) -> None:
    sms = VonageWebhook(SECRET).parse(transport(signed(INBOUND)))
    assert sms == InboundSms("vonage", "0A0000000123ABCD1", "+447400123456", "+447911123456", "Hello world")


def test_a_part_of_a_long_text_is_stored_as_the_part_it_is() -> None:
    hook = VonageWebhook(SECRET)
    request = as_json(signed(PART))
    hook.verify(request, NOW)
    sms = hook.parse(request)
    assert (sms.provider_message_id, sms.from_number, sms.to) == ("0B000000D0EBB58D", "+393471234567", "+447911123456")
    assert sms.body == PART["text"]


def test_unicode_text_in_hindi_survives_every_transport() -> None:
    params = INBOUND | {"type": "unicode", "text": "नमस्ते, मैं जुड़ना चाहता हूँ 🙏", "msisdn": "919876543210"}
    hook = VonageWebhook(SECRET)
    for transport in TRANSPORTS:
        request = transport(signed(params))
        hook.verify(request, NOW)
        sms = hook.parse(request)
        assert (sms.body, sms.from_number) == (params["text"], "+919876543210")


def test_an_empty_text_is_a_text() -> None:
    assert VonageWebhook(SECRET).parse(form(INBOUND | {"text": ""})).body == ""


def test_a_short_code_stays_digits_and_a_plus_is_accepted() -> None:
    hook = VonageWebhook(SECRET)
    assert hook.parse(form(INBOUND | {"to": "86753"})).to == "86753"
    assert hook.parse(form(INBOUND | {"to": "+447911123456", "msisdn": "+447400123456"})).to == "+447911123456"
    # A full number as short as a short code is read as the number (Niue: +683 4002).
    assert hook.parse(form(INBOUND | {"to": "6834002"})).to == "+6834002"


@pytest.mark.parametrize("field", ["messageId", "msisdn", "to", "text"])
def test_a_missing_field_is_a_400_naming_it(field: str) -> None:
    params = {k: v for k, v in INBOUND.items() if k != field}
    for transport in TRANSPORTS:
        with pytest.raises(MalformedWebhook, match=f"missing field '{field}'") as refused:
            VonageWebhook(SECRET).parse(transport(params))
        assert refused.value.status_code == 400


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("msisdn", "447700900001"),  # the docs' drama-range number: not a number anyone can text from
        ("msisdn", "12"),
        ("msisdn", "44 7400 123456!"),
        ("to", "Acme-1"),
        ("to", "12"),
        ("messageId", "x" * 129),
    ],
)
def test_a_malformed_field_is_a_400_naming_it(field: str, value: str) -> None:
    with pytest.raises(MalformedWebhook, match=f"'{field}'"):
        VonageWebhook(SECRET).parse(form(INBOUND | {field: value}))


def test_a_binary_message_is_acknowledged_and_not_stored() -> None:
    params = {k: v for k, v in INBOUND.items() if k not in {"text", "keyword"}}
    params |= {"type": "binary", "data": "0605040B8423F0", "udh": "050003CC0201"}
    with pytest.raises(IgnoredEvent, match="binary") as ignored:
        VonageWebhook(SECRET).parse(form(params))
    assert ignored.value.status_code == 200


def test_a_delivery_receipt_is_acknowledged_and_not_stored() -> None:
    hook = VonageWebhook(SECRET)
    hook.verify(form(signed(RECEIPT)), NOW)
    with pytest.raises(IgnoredEvent, match="delivery receipt") as ignored:
        hook.parse(form(signed(RECEIPT)))
    assert ignored.value.status_code == 200


def test_a_text_from_an_alphanumeric_sender_is_acknowledged_and_not_stored() -> None:
    with pytest.raises(IgnoredEvent, match="alphanumeric") as ignored:
        VonageWebhook(SECRET).parse(form(INBOUND | {"msisdn": "FDF"}))
    assert ignored.value.status_code == 200


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b'["msisdn"]', "not an object"),
        (json.dumps(INBOUND | {"text": None}).encode(), "'text' is not a string"),
        (json.dumps(INBOUND | {"concat": True}).encode(), "'concat' is not a string"),
    ],
)
def test_a_malformed_json_body_is_a_400(body: bytes, match: str) -> None:
    request = WebhookRequest("POST", URL, {"content-type": "application/json"}, body, "", NOW)
    with pytest.raises(MalformedWebhook, match=match):
        VonageWebhook(SECRET).parse(request)


def test_json_whole_numbers_are_read_as_their_digits() -> None:
    params: dict[str, object] = INBOUND | {"timestamp": int(TS), "concat-part": 2}
    text_params = {k: str(v) for k, v in params.items()}
    VonageWebhook(SECRET).verify(as_json(params | {"sig": sign(text_params)}), NOW)


def test_the_constructor_refuses_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="signature secret is required"):
        VonageWebhook("")
    with pytest.raises(ValueError, match="md5hash, md5, sha1, sha256, sha512"):
        VonageWebhook(SECRET, "sha384")
    with pytest.raises(ValueError, match="at least 1 second"):
        VonageWebhook(SECRET, tolerance_seconds=0)


def test_the_acknowledgement_is_an_empty_200() -> None:
    assert VonageWebhook(SECRET).acknowledge() == (b"", "text/plain")
