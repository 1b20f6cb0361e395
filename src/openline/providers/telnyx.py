"""Telnyx: inbound texts posted as JSON to ``/webhooks/telnyx``, signed with Ed25519.

Signature (Telnyx API v2 webhooks; the construction Telnyx's SDKs verify): header
``telnyx-signature-ed25519`` is the base64 of a 64-byte Ed25519 signature over
``<telnyx-timestamp> + "|" + <raw body bytes>``, made with the account's private key; the matching
public key (base64, 32 bytes) is on the portal's Keys page. ``telnyx-timestamp`` is Unix seconds, so a
captured request can be replayed only within the tolerance.

A messaging profile has one webhook URL for everything: the ``message.received`` events this adapter
reads, and also the ``message.sent``/``message.finalized`` status events of texts sent through the
profile. Those are genuine and carry no inbound text, so they are answered 200 (``IgnoredEvent``) and
not stored: a 4xx would only make Telnyx try again and then call the failover URL with them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from openline.phone import InvalidAddress, to_e164
from openline.providers.base import (
    BadSignature,
    IgnoredEvent,
    InboundSms,
    MalformedWebhook,
    Media,
    StatusReport,
    WebhookRequest,
    check_fresh,
)

__all__ = ["INBOUND_EVENT", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "TelnyxWebhook"]

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
INBOUND_EVENT = "message.received"

_DIGITS = re.compile(r"[0-9]+")
_SHORT_CODE = re.compile(r"[0-9]{3,8}")  # as openline.phone classifies sender addresses
_LETTER = re.compile(r"[A-Za-z]")


class TelnyxWebhook:
    """Verifies and parses Telnyx messaging webhooks (SMS and MMS).

    ``public_key`` is the base64 Ed25519 public key from the Telnyx portal; a key that is not one raises
    ValueError here, at start-up, rather than refusing every webhook later.
    """

    name: ClassVar[str] = "telnyx"

    def __init__(self, public_key: str, tolerance_seconds: int = 300) -> None:
        self._key = _public_key(public_key)
        if tolerance_seconds < 1:
            raise ValueError("the webhook timestamp tolerance must be at least 1 second")
        self._tolerance = tolerance_seconds

    def verify(self, request: WebhookRequest, now: datetime) -> None:
        signature_text = (request.headers.get(SIGNATURE_HEADER) or "").strip()
        if not signature_text:
            raise BadSignature(f"missing {SIGNATURE_HEADER} header")
        timestamp = (request.headers.get(TIMESTAMP_HEADER) or "").strip()
        if not timestamp:
            raise BadSignature(f"missing {TIMESTAMP_HEADER} header")
        if not _DIGITS.fullmatch(timestamp):
            raise BadSignature(f"{TIMESTAMP_HEADER} header {timestamp[:40]!r} is not a Unix time")
        try:
            signature = base64.b64decode(signature_text, validate=True)
        except (binascii.Error, ValueError):
            raise BadSignature(f"{SIGNATURE_HEADER} header is not base64") from None
        if len(signature) != 64:
            raise BadSignature(f"{SIGNATURE_HEADER} header is {len(signature)} bytes, not a 64-byte Ed25519 signature")
        try:
            # The timestamp exactly as sent, then the body exactly as received: re-serialised JSON would not match.
            self._key.verify(signature, timestamp.encode("ascii") + b"|" + request.body)
        except InvalidSignature:
            raise BadSignature(
                f"{SIGNATURE_HEADER} does not match the body and timestamp (check OPENLINE_TELNYX_PUBLIC_KEY)"
            ) from None
        # Freshness is checked after the signature, so "too old" is only ever said of a genuine request
        # (a clock that is off, or a replay), never of a forgery.
        check_fresh(int(timestamp), now, self._tolerance, TIMESTAMP_HEADER)

    def parse(self, request: WebhookRequest) -> InboundSms:
        try:
            document = json.loads(request.body)
        except (UnicodeDecodeError, ValueError):
            raise MalformedWebhook("the body is not JSON") from None
        data = _object(document, "data", "")
        event_type = data.get("event_type")
        if not isinstance(event_type, str) or not event_type.strip():
            raise MalformedWebhook("missing field 'data.event_type'")
        if event_type != INBOUND_EVENT:
            raise IgnoredEvent(f"event {event_type[:60]!r} is not an inbound text; acknowledged, not stored")
        payload = _object(data, "payload", "data.")
        message_id = _string(payload, "id", "data.payload.").strip()
        if len(message_id) > 128:
            raise MalformedWebhook("field 'data.payload.id' is longer than 128 characters")
        sender = _string(_object(payload, "from", "data.payload."), "phone_number", "data.payload.from.").strip()
        if not sender.startswith("+"):
            if _LETTER.search(sender):
                # An alphanumeric sender ID: no one to reply to or enrol; acknowledged so Telnyx stops trying.
                raise IgnoredEvent(f"the sender {sender[:20]!r} is an alphanumeric ID, not a phone number")
            raise MalformedWebhook(f"field 'data.payload.from.phone_number': {sender!r} is not an E.164 number")
        try:
            from_number = to_e164(sender)
        except InvalidAddress as exc:
            raise MalformedWebhook(f"field 'data.payload.from.phone_number': {exc}") from None
        to = _recipient(payload)
        media = _media(payload)
        text = payload.get("text")
        if text is None:
            if not media:
                raise MalformedWebhook("missing field 'data.payload.text'")
            text = ""  # a picture alone
        elif not isinstance(text, str):
            raise MalformedWebhook("field 'data.payload.text' is not a string")
        return InboundSms(self.name, message_id, from_number, to, text, media)

    def parse_status(self, request: WebhookRequest) -> StatusReport:
        """``message.sent`` and ``message.finalized`` events for texts openline sent."""
        try:
            document = json.loads(request.body)
        except (UnicodeDecodeError, ValueError):
            raise MalformedWebhook("the body is not JSON") from None
        data = _object(document, "data", "")
        payload = _object(data, "payload", "data.")
        message_id = _string(payload, "id", "data.payload.")
        recipients = payload.get("to")
        first = recipients[0] if isinstance(recipients, list) and recipients else {}
        provider_status = str(first.get("status", "") if isinstance(first, dict) else "").strip().lower()
        status = _RECEIPT_STATUSES.get(provider_status)
        if status is None:  # queued, sending, delivery_unconfirmed...: interim
            raise IgnoredEvent(f"interim Telnyx status {provider_status!r}; acknowledged, not stored")
        errors = payload.get("errors")
        code = None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict) and errors[0].get("code"):
            code = str(errors[0]["code"])
        return StatusReport(self.name, message_id, status, provider_status, code)

    def acknowledge(self) -> tuple[bytes, str]:
        # Telnyx wants any 2xx within 2 seconds; it reads nothing from the body.
        return b"", "text/plain"


# Telnyx per-recipient statuses in openline's words.
_RECEIPT_STATUSES = {
    "sent": "sent",
    "delivered": "delivered",
    "delivery_failed": "undelivered",
    "sending_failed": "failed",
}


def _public_key(text: str) -> Ed25519PublicKey:
    expected = "expected the base64 Ed25519 public key from the Telnyx portal (Keys page; 32 bytes once decoded)"
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the Telnyx public key is not base64: {expected}") from None
    if len(raw) != 32:
        raise ValueError(f"the Telnyx public key is {len(raw)} bytes: {expected}")
    return Ed25519PublicKey.from_public_bytes(raw)


def _object(parent: object, name: str, path: str) -> Mapping[str, object]:
    value = parent.get(name) if isinstance(parent, dict) else None
    if not isinstance(value, dict):
        raise MalformedWebhook(f"missing field '{path}{name}'")
    return value


def _string(parent: Mapping[str, object], name: str, path: str) -> str:
    value = parent.get(name)
    if not isinstance(value, str) or not value.strip():
        raise MalformedWebhook(f"missing field '{path}{name}'")
    return value


def _recipient(payload: Mapping[str, object]) -> str:
    """Our number: the first ``to`` entry (Telnyx's documented inbound events list one; a group MMS may list more)."""
    recipients = payload.get("to")
    if not isinstance(recipients, list) or not recipients:
        raise MalformedWebhook("missing field 'data.payload.to[0].phone_number'")
    first = recipients[0]
    if not isinstance(first, dict):
        raise MalformedWebhook("missing field 'data.payload.to[0].phone_number'")
    raw = _string(first, "phone_number", "data.payload.to[0].").strip()
    if _SHORT_CODE.fullmatch(raw):
        return raw
    try:
        return to_e164(raw if raw.startswith("+") else "+" + raw)
    except InvalidAddress as exc:
        raise MalformedWebhook(f"field 'data.payload.to[0].phone_number': {exc}") from None


def _media(payload: Mapping[str, object]) -> tuple[Media, ...]:
    items = payload.get("media")
    if items is None:
        return ()
    if not isinstance(items, list):
        raise MalformedWebhook("field 'data.payload.media' is not a list")
    media = []
    for i, item in enumerate(items):
        path = f"data.payload.media[{i}]."
        if not isinstance(item, dict):
            raise MalformedWebhook(f"field 'data.payload.media[{i}]' is not an object")
        url = _string(item, "url", path).strip()
        content_type = item.get("content_type")
        if content_type is not None and not isinstance(content_type, str):
            raise MalformedWebhook(f"field '{path}content_type' is not a string")
        media.append(Media(url, (content_type or "").strip() or None))
    return tuple(media)
