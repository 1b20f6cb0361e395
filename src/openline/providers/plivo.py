"""Plivo: inbound texts sent to an application's ``message_url`` (``/webhooks/plivo``), signed with V3 headers.

Signature V3, reimplemented from the construction in Plivo's SDKs (``plivo.utils.signature_v3``):

* start from ``scheme://host/path`` of the URL Plivo called;
* the query string's parameters (decoded), sorted by name, ``name=value`` joined by ``&`` (a repeated
  name: each value, values sorted), after a ``?`` - for a POST with fields, the ``?`` is written even
  without a query, and a ``.`` separates query from fields when there are both;
* for a POST, the form fields sorted by name as ``name + value`` with no separators;
* then ``"." + nonce``; HMAC-SHA256 with the auth token (of the UTF-8 string; see ``_expected`` for
  the second reading plivo-python has of non-ASCII text), base64.

``X-Plivo-Signature-V3`` is signed with the token of the (sub)account owning the number and
``X-Plivo-Signature-Ma-V3`` with the main account's; either may hold a comma-separated list (one per
active token). A match of any of them with the configured token is accepted. The older V2 scheme signs
only URL and nonce, not the fields, so it is not accepted: a captured V2 header would let anyone post
any text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections import defaultdict
from datetime import datetime
from typing import ClassVar
from urllib.parse import parse_qsl, urlparse, urlunparse

from openline.phone import InvalidAddress, to_e164
from openline.providers.base import (
    BadSignature,
    IgnoredEvent,
    InboundSms,
    MalformedWebhook,
    Media,
    StatusReport,
    WebhookRequest,
    single,
)

__all__ = ["EMPTY_RESPONSE", "MAIN_ACCOUNT_SIGNATURE_HEADER", "NONCE_HEADER", "SIGNATURE_HEADER", "PlivoWebhook"]

SIGNATURE_HEADER = "x-plivo-signature-v3"
MAIN_ACCOUNT_SIGNATURE_HEADER = "x-plivo-signature-ma-v3"
NONCE_HEADER = "x-plivo-signature-v3-nonce"
EMPTY_RESPONSE = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

_DIGITS = re.compile(r"[0-9]+")
_SHORT_CODE = re.compile(r"[0-9]{3,8}")  # as openline.phone classifies sender addresses
_MEDIA_FIELD = re.compile(r"Media([0-9]+)")


def _grouped(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    by_name: defaultdict[str, list[str]] = defaultdict(list)
    for name, value in fields:
        by_name[name].append(value)
    return by_name


def signed_string(method: str, url: str, fields: list[tuple[str, str]]) -> str:
    """What Plivo signs (before ``"." + nonce``) for a request to ``url`` carrying form ``fields``."""
    parts = urlparse(url)
    base = urlunparse((parts.scheme, parts.netloc, parts.path, "", "", ""))
    query = _grouped(parse_qsl(parts.query, keep_blank_values=True))
    query_string = "&".join(f"{name}={value}" for name in sorted(query) for value in sorted(query[name]))
    post = _grouped(fields) if method.upper() != "GET" else {}
    if query_string or post:
        base += "?" + query_string
    if query_string and post:
        base += "."
    return base + "".join(name + value for name in sorted(post) for value in sorted(post[name]))


class PlivoWebhook:
    """Verifies and parses Plivo's inbound-message webhooks (SMS and MMS)."""

    name: ClassVar[str] = "plivo"

    def __init__(self, auth_token: str) -> None:
        if not auth_token:
            raise ValueError("a Plivo auth token is required to check webhook signatures")
        # A keyed HMAC object copied per request saves re-deriving the key pads on the hot path.
        self._mac = hmac.new(auth_token.encode("utf-8"), digestmod=hashlib.sha256)

    def _digest(self, message: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(message)
        return base64.b64encode(mac.digest())

    def signature(self, method: str, url: str, fields: list[tuple[str, str]], nonce: str) -> str:
        """The V3 signature Plivo sends for this request (for tests and tools)."""
        return self._digest(f"{signed_string(method, url, fields)}.{nonce}".encode()).decode("ascii")

    def _expected(self, method: str, url: str, fields: list[tuple[str, str]], nonce: str) -> list[bytes]:
        text = f"{signed_string(method, url, fields)}.{nonce}"
        expected = [self._digest(text.encode())]
        if not text.isascii():
            # plivo-python encodes the string to UTF-8, reads those bytes back as Latin-1 and encodes again;
            # plivo-node does not. Which one Plivo's servers match is not documented, and a text in Hindi
            # must not be refused for it, so both readings of the same string are accepted.
            expected.append(self._digest(text.encode().decode("latin-1").encode()))
        return expected

    def verify(self, request: WebhookRequest, now: datetime) -> None:
        nonce = request.headers.get(NONCE_HEADER)
        if not nonce:
            raise BadSignature("missing X-Plivo-Signature-V3-Nonce header")
        given = [
            candidate.strip().encode("utf-8", "replace")
            for header in (SIGNATURE_HEADER, MAIN_ACCOUNT_SIGNATURE_HEADER)
            for candidate in (request.headers.get(header) or "").split(",")
            if candidate.strip()
        ]
        if not given:
            raise BadSignature("missing X-Plivo-Signature-V3 header")
        try:
            fields = request.form() if request.method.upper() != "GET" else []
        except MalformedWebhook:  # Plivo posts UTF-8 form data: a body that is not was not signed by Plivo
            raise BadSignature("X-Plivo-Signature-V3 cannot match a body that is not UTF-8 form data") from None
        expected = self._expected(request.method, request.url, fields, nonce)
        # Every pair is compared (no early exit), so timing does not tell which candidate came close.
        matches = [hmac.compare_digest(e, g) for e in expected for g in given]
        if not any(matches):
            raise BadSignature(
                "X-Plivo-Signature-V3 does not match the URL, fields and nonce (check OPENLINE_PUBLIC_URL "
                "and OPENLINE_PLIVO_AUTH_TOKEN)"
            )

    def parse(self, request: WebhookRequest) -> InboundSms:
        # Plivo calls message_url with the method the application names: POST (form) or GET (query).
        fields = request.query_params() if request.method.upper() == "GET" else request.form()
        message_id = single(fields, "MessageUUID").strip()
        if len(message_id) > 128:
            raise MalformedWebhook("field 'MessageUUID' is longer than 128 characters")
        from_number = _address(fields, "From")
        to = _address(fields, "To")
        kind = (_optional(fields, "Type") or "sms").strip().lower()
        if kind not in ("sms", "mms"):
            # The same message_url can receive WhatsApp; answering it by SMS would be wrong, so it is refused.
            raise MalformedWebhook(f"field 'Type': {kind!r} messages are not texts (expected sms or mms)")
        # SMS carries the text in Text; MMS in Body, which an MMS of pictures alone may lack.
        body = _optional(fields, "Text")
        if body is None:
            body = _optional(fields, "Body")
        if body is None:
            if kind == "sms":
                raise MalformedWebhook("missing field 'Text'")
            body = ""
        return InboundSms(self.name, message_id, from_number, to, body, _media(fields))

    def parse_status(self, request: WebhookRequest) -> StatusReport:
        """A delivery report: ``MessageUUID``, ``Status``, ``ErrorCode``."""
        fields = request.query_params() if request.method.upper() == "GET" else request.form()
        message_id = single(fields, "MessageUUID").strip()
        provider_status = single(fields, "Status").strip().lower()
        status = _RECEIPT_STATUSES.get(provider_status)
        if status is None:  # queued: interim
            raise IgnoredEvent(f"interim Plivo status {provider_status!r}; acknowledged, not stored")
        code = _optional(fields, "ErrorCode")
        return StatusReport(
            self.name, message_id, status, provider_status, code if code not in (None, "", "0") else None
        )

    def acknowledge(self) -> tuple[bytes, str]:
        # An empty Plivo XML response: no reply now (openline answers later through the API).
        return EMPTY_RESPONSE, "application/xml"


# Plivo message statuses in openline's words.
_RECEIPT_STATUSES = {
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "rejected": "failed",
}


def _optional(fields: list[tuple[str, str]], name: str) -> str | None:
    if not any(k == name for k, _ in fields):
        return None
    return single(fields, name, required=False)


def _address(fields: list[tuple[str, str]], name: str) -> str:
    """A Plivo number field in E.164: Plivo writes numbers without the ``+``; short codes stay digits."""
    raw = single(fields, name).strip()
    if _SHORT_CODE.fullmatch(raw):
        return raw
    if not raw.startswith("+"):
        if not _DIGITS.fullmatch(raw):
            raise MalformedWebhook(f"field {name!r}: {raw!r} is neither a phone number nor a short code")
        raw = "+" + raw
    try:
        return to_e164(raw)
    except InvalidAddress as exc:
        raise MalformedWebhook(f"field {name!r}: {exc}") from None


def _media(fields: list[tuple[str, str]]) -> tuple[Media, ...]:
    # Plivo's pages disagree on whether attachments start at Media0 or Media1, so take every MediaN in
    # order of N rather than counting from MediaCount. Plivo sends no per-attachment content type.
    found: dict[int, str] = {}
    for name, value in fields:
        match = _MEDIA_FIELD.fullmatch(name)
        if match is None:
            continue
        index = int(match.group(1))
        if index in found:
            raise MalformedWebhook(f"field {name!r} given more than once")
        if value.strip():
            found[index] = value.strip()
    return tuple(Media(found[i]) for i in sorted(found))
