"""Vonage (SMS API): inbound texts sent to ``/webhooks/vonage`` as GET, form POST or JSON POST, signed with ``sig``.

Signature (Vonage's "signed webhooks", the construction its SDKs implement): take every parameter
except ``sig``, sorted by name, and write each as ``&name=value`` with any ``&`` or ``=`` inside the
value replaced by ``_``. Then, by the method chosen in the Vonage dashboard:

* ``md5hash`` (Vonage's default): hex MD5 of that string followed by the signature secret;
* ``md5``, ``sha1``, ``sha256``, ``sha512``: hex HMAC of that string keyed with the signature secret.

Vonage's own SDKs disagree on the case of the hex (some write the HMACs in upper case), so case is
ignored. The ``timestamp`` parameter (Unix seconds) is signed too, which makes a captured request
replayable only within the tolerance. Two quirks of the scheme: ``&``, ``=`` and ``_`` inside a value
sign alike, and a name holding ``&`` or ``=`` could imitate other parameters, so such names are refused
(Vonage never sends one).

Concatenated (long) texts arrive as separate webhooks, one per part, each with its own ``messageId``
and ``concat``, ``concat-ref``, ``concat-total``, ``concat-part``. Each part is stored as the text it
is; putting the parts back together is not done here (out of scope for this adapter).

Genuine requests with no text to keep (a binary SMS, a delivery receipt sent to this URL, a text from
an alphanumeric sender ID) raise ``IgnoredEvent``: answered 200, since any other answer makes Vonage
send them again for 24 hours.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import ClassVar

from openline.phone import InvalidAddress, to_e164
from openline.providers.base import (
    BadSignature,
    IgnoredEvent,
    InboundSms,
    MalformedWebhook,
    StatusReport,
    WebhookRequest,
    check_fresh,
    single,
)

__all__ = ["METHODS", "VonageWebhook", "signing_string"]

# The dashboard's signature methods: None is the plain "MD5 hash" of string + secret, the others name the HMAC digest.
METHODS: dict[str, str | None] = {"md5hash": None, "md5": "md5", "sha1": "sha1", "sha256": "sha256", "sha512": "sha512"}

_DIGITS = re.compile(r"[0-9]+")
_SHORT_CODE = re.compile(r"[0-9]{3,8}")  # as openline.phone classifies sender addresses
_LETTER = re.compile(r"[A-Za-z]")


def signing_string(params: Iterable[tuple[str, str]]) -> str:
    """What Vonage signs: each parameter but ``sig``, by name, as ``&name=value`` (``&``, ``=`` in values: ``_``)."""
    return "".join(
        f"&{name}={value.replace('&', '_').replace('=', '_')}"
        for name, value in sorted(params, key=lambda item: item[0])
        if name != "sig"
    )


class VonageWebhook:
    """Verifies and parses Vonage SMS API inbound-message webhooks (signed webhooks must be on for the account)."""

    name: ClassVar[str] = "vonage"

    def __init__(self, signature_secret: str, method: str = "md5hash", tolerance_seconds: int = 300) -> None:
        if not signature_secret:
            raise ValueError("a Vonage signature secret is required to check webhook signatures")
        if method not in METHODS:
            raise ValueError(f"unknown Vonage signature method {method!r}: expected one of {', '.join(METHODS)}")
        if tolerance_seconds < 1:
            raise ValueError("the webhook timestamp tolerance must be at least 1 second")
        self._secret = signature_secret.encode("utf-8")
        self._digest = METHODS[method]
        self._tolerance = tolerance_seconds

    def signature(self, params: Iterable[tuple[str, str]]) -> str:
        """The ``sig`` Vonage sends with ``params`` (lower-case hex; for tests and tools)."""
        text = signing_string(params).encode("utf-8")
        if self._digest is None:
            return hashlib.md5(text + self._secret).hexdigest()
        return hmac.new(self._secret, text, self._digest).hexdigest()

    def params(self, request: WebhookRequest) -> list[tuple[str, str]]:
        """The parameters Vonage sent: the query string of a GET, else the JSON object or form fields of the body."""
        if request.method.upper() == "GET":
            params = request.query_params()
        elif _media_type(request) == "application/json":
            params = _json_params(request.body)
        else:
            params = request.form()
        seen: set[str] = set()
        for name, _ in params:
            if name in seen:
                raise MalformedWebhook(f"field {name!r} given more than once")
            if "&" in name or "=" in name:
                # It would sign like several parameters (see the module docstring); Vonage sends none such.
                raise MalformedWebhook(f"field name {name[:40]!r} holds '&' or '='")
            seen.add(name)
        return params

    def verify(self, request: WebhookRequest, now: datetime) -> None:
        params = self.params(request)
        given = next((v for k, v in params if k == "sig"), "").strip()
        if not given:
            raise BadSignature("missing sig parameter (turn on signed webhooks for the Vonage account)")
        expected = self.signature(params).encode("ascii")
        if not hmac.compare_digest(given.lower().encode("utf-8", "replace"), expected):
            raise BadSignature(
                "sig does not match the parameters (check OPENLINE_VONAGE_SIGNATURE_SECRET and "
                "OPENLINE_VONAGE_SIGNATURE_METHOD)"
            )
        # Freshness is checked after the signature: the timestamp is only trusted once it is known to be signed,
        # and "too old" is then only ever said of a genuine request (a clock that is off, or a replay).
        timestamp = next((v for k, v in params if k == "timestamp"), "").strip()
        if not timestamp:
            raise BadSignature("missing timestamp parameter (signed Vonage webhooks carry one)")
        if not _DIGITS.fullmatch(timestamp):
            raise BadSignature(f"timestamp parameter {timestamp[:40]!r} is not a Unix time")
        check_fresh(int(timestamp), now, self._tolerance, "timestamp")

    def parse(self, request: WebhookRequest) -> InboundSms:
        fields = self.params(request)
        names = {k for k, _ in fields}
        if "status" in names and "type" not in names:
            # A delivery receipt (status, err-code, scts...) posted here: genuine, but no inbound text.
            raise IgnoredEvent("a Vonage delivery receipt, not an inbound text; acknowledged, not stored")
        message_id = single(fields, "messageId").strip()
        if len(message_id) > 128:
            raise MalformedWebhook("field 'messageId' is longer than 128 characters")
        kind = single(fields, "type", required=False).strip().lower() if "type" in names else "text"
        if kind == "binary":
            # data/udh (WAP push, SIM updates, vCards...) is not something a person wrote: storing it as an
            # empty text would hand the conversation engine a message with nothing in it.
            raise IgnoredEvent("a binary SMS (type=binary), not a text; acknowledged, not stored")
        from_number = _sender(single(fields, "msisdn").strip())
        to = _recipient(single(fields, "to").strip())
        body = single(fields, "text", required=False)
        return InboundSms(self.name, message_id, from_number, to, body)

    def parse_status(self, request: WebhookRequest) -> StatusReport:
        """A delivery receipt: ``messageId``, ``status``, ``err-code`` (9: the recipient opted out)."""
        params = self.params(request)
        message_id = single(params, "messageId").strip()
        provider_status = single(params, "status").strip().lower()
        status = _RECEIPT_STATUSES.get(provider_status)
        if status is None:  # accepted, buffered, unknown: Vonage says more later
            raise IgnoredEvent(f"interim Vonage status {provider_status!r}; acknowledged, not stored")
        code = next((v.strip() for k, v in params if k == "err-code" and v.strip() not in ("", "0")), None)
        return StatusReport(self.name, message_id, status, provider_status, code)

    def acknowledge(self) -> tuple[bytes, str]:
        # Vonage wants 200 or 204, or it sends the text again for 24 hours; it reads nothing from the body.
        return b"", "text/plain"


# Vonage delivery-receipt statuses in openline's words.
_RECEIPT_STATUSES = {"delivered": "delivered", "expired": "undelivered", "failed": "failed", "rejected": "failed"}


def _media_type(request: WebhookRequest) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _json_params(body: bytes) -> list[tuple[str, str]]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise MalformedWebhook("the body is not JSON") from None
    if not isinstance(document, dict):
        raise MalformedWebhook("the JSON body is not an object")
    params = []
    for name, value in document.items():
        # Vonage sends every value as a string; a whole number is read as its digits, anything else is refused
        # because there is no telling how Vonage would have written it when signing.
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise MalformedWebhook(f"field {name!r} is not a string")
        params.append((name, value))
    return params


def _sender(raw: str) -> str:
    """``msisdn``: the sender's number in international format without ``+``; returned in E.164."""
    if _LETTER.search(raw):
        # An alphanumeric sender ID: no one to reply to or enrol; acknowledged so Vonage stops resending.
        raise IgnoredEvent(f"the sender {raw[:20]!r} is an alphanumeric ID, not a phone number")
    digits = raw.removeprefix("+")
    if not _DIGITS.fullmatch(digits):
        raise MalformedWebhook(f"field 'msisdn': {raw!r} is not a phone number")
    try:
        return to_e164("+" + digits)
    except InvalidAddress as exc:
        raise MalformedWebhook(f"field 'msisdn': {exc}") from None


def _recipient(raw: str) -> str:
    """``to``: our virtual number (international, no ``+``) in E.164, or a short code as its digits."""
    digits = raw.removeprefix("+")
    if not _DIGITS.fullmatch(digits):
        raise MalformedWebhook(f"field 'to': {raw!r} is neither a phone number nor a short code")
    try:
        # A valid international number wins: some countries' full numbers are as short as short codes.
        return to_e164("+" + digits)
    except InvalidAddress as exc:
        if not raw.startswith("+") and _SHORT_CODE.fullmatch(digits):
            return digits
        raise MalformedWebhook(f"field 'to': {exc}") from None
