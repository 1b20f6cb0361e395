"""The sandbox provider: a provider that lives inside openline, for trying it and for tests.

Inbound wire format (``POST /webhooks/sandbox``, form-encoded): ``message_id``, ``from``, ``to``,
``body``, and ``media_url``/``media_type`` repeated per attachment. Requests are signed like most
providers sign theirs: ``X-Openline-Signature: sha256=<hex HMAC-SHA256 of the raw body>``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import ClassVar
from urllib.parse import urlencode

from openline.phone import InvalidAddress, to_e164
from openline.providers.base import (
    BadSignature,
    InboundSms,
    MalformedWebhook,
    Media,
    StatusReport,
    WebhookRequest,
    single,
)
from openline.providers.outbound import OutboundSms

__all__ = ["SIGNATURE_HEADER", "SandboxSender", "SandboxWebhook", "encode_inbound"]

SIGNATURE_HEADER = "x-openline-signature"


def encode_inbound(sms: InboundSms) -> bytes:
    """The request body the sandbox sends for ``sms`` (used by the simulator and tests)."""
    fields: list[tuple[str, str]] = [
        ("message_id", sms.provider_message_id),
        ("from", sms.from_number),
        ("to", sms.to),
        ("body", sms.body),
    ]
    for item in sms.media:
        fields += [("media_url", item.url), ("media_type", item.content_type or "")]
    return urlencode(fields).encode()


class SandboxWebhook:
    """Verifies and parses sandbox webhooks; ``key`` None means signatures are not checked."""

    name: ClassVar[str] = "sandbox"

    def __init__(self, key: bytes | None) -> None:
        self._key = key

    def sign(self, body: bytes) -> str:
        if self._key is None:
            raise RuntimeError("signature checks are off; there is no key to sign with")
        return "sha256=" + hmac.new(self._key, body, hashlib.sha256).hexdigest()

    def verify(self, request: WebhookRequest, now: datetime) -> None:
        if self._key is None:
            return
        given = request.headers.get(SIGNATURE_HEADER)
        if not given:
            raise BadSignature(f"missing {SIGNATURE_HEADER} header")
        if not hmac.compare_digest(given.encode(), self.sign(request.body).encode()):
            raise BadSignature(f"{SIGNATURE_HEADER} does not match the request body")

    def parse(self, request: WebhookRequest) -> InboundSms:
        fields = request.form()
        message_id = single(fields, "message_id")
        if len(message_id) > 128:
            raise MalformedWebhook("field 'message_id' is longer than 128 characters")
        try:
            from_number = to_e164(single(fields, "from"))
        except InvalidAddress as exc:
            raise MalformedWebhook(f"field 'from': {exc}") from None
        urls = [v for k, v in fields if k == "media_url"]
        types = [v for k, v in fields if k == "media_type"]
        media = tuple(Media(url, (types[i] or None) if i < len(types) else None) for i, url in enumerate(urls))
        to = single(fields, "to").strip()
        return InboundSms(self.name, message_id, from_number, to, single(fields, "body", required=False), media)

    def parse_status(self, request: WebhookRequest) -> StatusReport:
        """A sandbox receipt: ``message_id``, ``status`` (sent, delivered, undelivered, failed), ``error_code``."""
        fields = request.form()
        status = single(fields, "status").strip()
        if status not in {"sent", "delivered", "undelivered", "failed"}:
            raise MalformedWebhook(f"field 'status': {status!r} is not sent, delivered, undelivered or failed")
        code = [v for k, v in fields if k == "error_code" and v.strip()]
        return StatusReport(self.name, single(fields, "message_id").strip(), status, status, code[0] if code else None)

    def acknowledge(self) -> tuple[bytes, str]:
        return b"", "text/plain"


class SandboxSender:
    """Sends nothing: the text's row in ``messages`` is the record, and the simulator shows it."""

    name: ClassVar[str] = "sandbox"

    async def send(self, sms: OutboundSms) -> str:
        return f"sandbox-{sms.message_id}"
