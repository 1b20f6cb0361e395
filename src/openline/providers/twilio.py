"""Twilio: inbound texts posted (or fetched with GET) to ``/webhooks/twilio``, signed with ``X-Twilio-Signature``.

Signature (Twilio's documented algorithm, the one its own validators implement): the URL Twilio called,
query string included, then for form posts every field sorted by name as ``name + value`` (a repeated
name contributes each distinct value, values sorted); HMAC-SHA1 with the account's auth token, base64.
Twilio's validators accept the URL with and without its port, because Twilio's own signing is not
consistent about it; this adapter does the same. Implemented here rather than with the ``twilio``
package: it is a few lines, keeps a large dependency off the request path, and tests pin it to the
package's results.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections import defaultdict
from datetime import datetime
from functools import lru_cache
from typing import ClassVar
from urllib.parse import SplitResult, urlsplit

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

__all__ = ["EMPTY_TWIML", "SIGNATURE_HEADER", "TwilioWebhook"]

SIGNATURE_HEADER = "x-twilio-signature"
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

# Newer Twilio fields first; the Sms* names are what older accounts and API versions still send.
_MESSAGE_ID_FIELDS = ("MessageSid", "SmsMessageSid", "SmsSid")
_DEFAULT_PORTS = {"https": 443, "http": 80}
# Twilio's final statuses in openline's words ("read" is a delivery that was also read).
_STATUSES = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "partially_delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
_DIGITS = re.compile(r"[0-9]+")


@lru_cache(maxsize=64)  # one URL per provider endpoint: computed once, not per request
def _url_variants(url: str) -> tuple[str, ...]:
    """``url`` as given, without its port, and with the scheme's default port if it had none."""
    variants = [url]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number: only the URL as given can match
        return (url,)
    if port is not None:
        host = parts.netloc.rpartition(":")[0]
        variants.append(_with_netloc(parts, host))
    elif parts.scheme in _DEFAULT_PORTS:
        variants.append(_with_netloc(parts, f"{parts.netloc}:{_DEFAULT_PORTS[parts.scheme]}"))
    return tuple(dict.fromkeys(variants))


def _with_netloc(parts: SplitResult, netloc: str) -> str:
    return parts._replace(netloc=netloc).geturl()


def _params_string(fields: list[tuple[str, str]]) -> str:
    """The signed tail: fields sorted by name, ``name + value``, each distinct value of a name in order."""
    by_name: defaultdict[str, set[str]] = defaultdict(set)
    for name, value in fields:
        by_name[name].add(value)
    return "".join(name + value for name in sorted(by_name) for value in sorted(by_name[name]))


class TwilioWebhook:
    """Verifies and parses Twilio's inbound-message webhooks.

    ``account_sid``, when set, is a second, cheap check: a correctly signed request that reports another
    ``AccountSid`` is refused too, so a webhook meant for some other account never lands here.
    """

    name: ClassVar[str] = "twilio"

    def __init__(self, auth_token: str, account_sid: str | None = None) -> None:
        if not auth_token:
            raise ValueError("a Twilio auth token is required to check webhook signatures")
        # A keyed HMAC object copied per request saves re-deriving the key pads on the hot path.
        self._mac = hmac.new(auth_token.encode("utf-8"), digestmod=hashlib.sha1)
        self._account_sid = account_sid

    def _sign(self, text: str) -> bytes:
        mac = self._mac.copy()
        mac.update(text.encode("utf-8"))
        return base64.b64encode(mac.digest())

    def signature(self, url: str, fields: list[tuple[str, str]]) -> str:
        """The ``X-Twilio-Signature`` Twilio sends for a form post of ``fields`` to ``url`` (for tests and tools)."""
        return self._sign(url + _params_string(fields)).decode("ascii")

    def verify(self, request: WebhookRequest, now: datetime) -> None:
        given_text = request.headers.get(SIGNATURE_HEADER)
        if not given_text:
            raise BadSignature("missing X-Twilio-Signature header")
        given = given_text.strip().encode("utf-8", "replace")
        query = request.query_params()
        body_hashes = [v for k, v in query if k == "bodySHA256"]
        if body_hashes:
            # JSON webhooks: Twilio signs the URL alone, and the URL carries the body's SHA-256.
            actual = hashlib.sha256(request.body).hexdigest().encode("ascii")
            if len(body_hashes) != 1 or not hmac.compare_digest(actual, body_hashes[0].lower().encode("utf-8")):
                raise BadSignature("the body does not match the bodySHA256 in the signed URL")
            tail = ""
        elif request.method.upper() == "GET":
            tail = ""  # a GET's parameters are in the URL, which is signed as a whole
        else:
            try:
                tail = _params_string(request.form())
            except MalformedWebhook:  # Twilio's bodies are ASCII form data: this one was not signed by Twilio
                raise BadSignature("X-Twilio-Signature cannot match a body that is not UTF-8 form data") from None
        if not any(hmac.compare_digest(self._sign(url + tail), given) for url in _url_variants(request.url)):
            raise BadSignature("X-Twilio-Signature does not match the URL and parameters (check OPENLINE_PUBLIC_URL)")
        if self._account_sid is not None:
            accounts = [v for k, v in self._fields(request) if k == "AccountSid"]
            if accounts != [self._account_sid]:
                shown = accounts[0] if len(accounts) == 1 else f"{len(accounts)} values"
                raise BadSignature(f"AccountSid {shown!r} is not the configured Twilio account")

    def _fields(self, request: WebhookRequest) -> list[tuple[str, str]]:
        return request.query_params() if request.method.upper() == "GET" else request.form()

    def parse(self, request: WebhookRequest) -> InboundSms:
        fields = self._fields(request)
        present = {k for k, v in fields if v.strip()}
        id_field = next((f for f in _MESSAGE_ID_FIELDS if f in present), _MESSAGE_ID_FIELDS[0])
        message_id = single(fields, id_field).strip()
        if len(message_id) > 128:
            raise MalformedWebhook(f"field {id_field!r} is longer than 128 characters")
        raw_from = single(fields, "From").strip()
        if not raw_from.startswith("+"):
            # Twilio writes phone numbers in E.164; anything else is another channel (whatsapp:+1..., rcs:...)
            # that libphonenumber would otherwise happily read as a phone number.
            raise MalformedWebhook(f"field 'From': {raw_from!r} is not an E.164 phone number")
        try:
            from_number = to_e164(raw_from)
        except InvalidAddress as exc:
            raise MalformedWebhook(f"field 'From': {exc}") from None
        to = single(fields, "To").strip()
        if to.startswith("+"):
            try:
                to = to_e164(to)
            except InvalidAddress as exc:
                raise MalformedWebhook(f"field 'To': {exc}") from None
        elif not _DIGITS.fullmatch(to):
            raise MalformedWebhook(f"field 'To': {to!r} is neither an E.164 number nor a short code")
        media = self._media(fields)
        # A picture alone: some senders (and recorded fixtures) leave Body out entirely.
        body_missing = bool(media) and not any(k == "Body" for k, _ in fields)
        body = "" if body_missing else single(fields, "Body", required=False)
        return InboundSms(self.name, message_id, from_number, to, body, media)

    @staticmethod
    def _media(fields: list[tuple[str, str]]) -> tuple[Media, ...]:
        if not any(k == "NumMedia" for k, _ in fields):
            return ()
        raw = single(fields, "NumMedia").strip()
        if not _DIGITS.fullmatch(raw):
            raise MalformedWebhook(f"field 'NumMedia': {raw!r} is not a count")
        media = []
        for i in range(int(raw)):
            url = single(fields, f"MediaUrl{i}").strip()
            types = [v for k, v in fields if k == f"MediaContentType{i}"]
            if len(types) > 1:
                raise MalformedWebhook(f"field 'MediaContentType{i}' given {len(types)} times")
            media.append(Media(url, (types[0].strip() or None) if types else None))
        return tuple(media)

    def parse_status(self, request: WebhookRequest) -> StatusReport:
        """A status callback: ``MessageSid``, ``MessageStatus`` (legacy ``SmsSid``/``SmsStatus``), ``ErrorCode``."""
        fields = self._fields(request)
        present = {k for k, v in fields if v.strip()}
        id_field = "MessageSid" if "MessageSid" in present else "SmsSid"
        status_field = "MessageStatus" if "MessageStatus" in present else "SmsStatus"
        message_id = single(fields, id_field).strip()
        provider_status = single(fields, status_field).strip().lower()
        status = _STATUSES.get(provider_status)
        if status is None:
            # queued, accepted, scheduled, sending: interim; Twilio reports the final word later.
            raise IgnoredEvent(f"interim Twilio status {provider_status!r}; acknowledged, not stored")
        codes = [v.strip() for k, v in fields if k == "ErrorCode" and v.strip()]
        return StatusReport(self.name, message_id, status, provider_status, codes[0] if codes else None)

    def acknowledge(self) -> tuple[bytes, str]:
        # Empty TwiML: Twilio sends nothing back; openline replies later through the REST API.
        return EMPTY_TWIML, "application/xml"
