"""Delivery receipts as Vonage, Telnyx and Plivo send them, read into openline's words."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from openline.providers.base import IgnoredEvent, StatusReport, WebhookRequest
from openline.providers.plivo import PlivoWebhook
from openline.providers.telnyx import TelnyxWebhook
from openline.providers.vonage import VonageWebhook


def form(fields: dict[str, str]) -> WebhookRequest:
    return WebhookRequest(
        "POST",
        "https://sms.example.org/webhooks/x/status",
        {"content-type": "application/x-www-form-urlencoded"},
        urlencode(fields).encode(),
    )


@pytest.mark.parametrize(
    ("status", "err", "expected"),
    [("delivered", "0", ("delivered", None)), ("failed", "9", ("failed", "9")), ("expired", "5", ("undelivered", "5"))],
)
def test_vonage_receipts(status: str, err: str, expected: tuple[str, str | None]) -> None:
    hook = VonageWebhook("secret")
    report = hook.parse_status(
        form({"messageId": "0A0000001", "status": status, "err-code": err, "msisdn": "447700900001"})
    )
    assert (report.status, report.error_code) == expected
    assert report.provider_message_id == "0A0000001"
    with pytest.raises(IgnoredEvent):
        hook.parse_status(form({"messageId": "0A0000001", "status": "buffered"}))


def test_telnyx_receipts() -> None:
    key = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    hook = TelnyxWebhook(key.decode())

    def event(status: str, errors: list[dict[str, str]]) -> WebhookRequest:
        payload = {"id": "40385f64", "to": [{"phone_number": "+12025550143", "status": status}], "errors": errors}
        body = json.dumps({"data": {"event_type": "message.finalized", "payload": payload}}).encode()
        return WebhookRequest("POST", "https://sms.example.org/webhooks/telnyx/status", {}, body)

    assert hook.parse_status(event("delivered", [])) == StatusReport("telnyx", "40385f64", "delivered", "delivered")
    failed = hook.parse_status(event("delivery_failed", [{"code": "40008", "title": "Undeliverable"}]))
    assert (failed.status, failed.error_code) == ("undelivered", "40008")
    with pytest.raises(IgnoredEvent):
        hook.parse_status(event("queued", []))


def test_plivo_receipts() -> None:
    hook = PlivoWebhook("token")
    report = hook.parse_status(form({"MessageUUID": "db3ce55a", "Status": "undelivered", "ErrorCode": "200"}))
    assert (report.status, report.error_code) == ("undelivered", "200")
    assert (
        hook.parse_status(form({"MessageUUID": "db3ce55a", "Status": "delivered", "ErrorCode": "0"})).error_code is None
    )
    with pytest.raises(IgnoredEvent):
        hook.parse_status(form({"MessageUUID": "db3ce55a", "Status": "queued"}))
