"""Vonage: sending texts through the SMS API, and what Vonage's status and receipt codes mean.

``POST {api}/sms/json`` with form fields ``api_key``, ``api_secret``, ``from``, ``to`` (international format
without ``+``), ``text``, ``type`` (``unicode`` for texts that need UCS-2, else ``text``, where Vonage swaps
characters GSM-7 lacks for ``?``), ``callback`` (where delivery receipts go) and ``client-ref`` (echoed in
receipts). The answer is HTTP 200 even when the text was refused: ``{"message-count": "1", "messages":
[{"status": "0", "message-id": ..., ...}]}``, one entry per part of a long text, where status ``"0"`` means
accepted and anything else names the error (``error-text`` says it in words). Vonage's SMS API sends no media.

Opted-out recipients are not refused here: Vonage accepts the text (status 0) and reports the opt-out later in
the delivery receipt, ``err-code`` 9 (see ``VONAGE_RECEIPT_ERRORS`` and ``explain_receipt``).

The retry rule is the one of ``twilio_send``: retry only when Vonage certainly did not take the text; when it
may have, the failure is *ambiguous* and never resubmitted, since a duplicate text is worse than a missing one.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, NoReturn

import httpx

from openline.encoding import Encoding, count_segments
from openline.providers.outbound import ErrorKind, OutboundSms, SendFailed, post, retry_after, snippet

__all__ = [
    "DEFAULT_API_URL",
    "VONAGE_ERRORS",
    "VONAGE_RECEIPT_ERRORS",
    "VonageSender",
    "explain",
    "explain_receipt",
    "vonage_number",
]

DEFAULT_API_URL = "https://rest.nexmo.com"

# The SMS API's ``status`` in the answer to a send: code -> (what it means, in our words, kind). Kinds as in
# twilio_send.ErrorKind. From Vonage's SMS API error table (developer.vonage.com/api-errors/sms) and the status
# enum of its SDKs.
VONAGE_ERRORS: Mapping[str, tuple[str, ErrorKind]] = MappingProxyType(
    {
        "1": ("sending faster than the Vonage account's throughput limit", "throttled"),
        "2": ("a required parameter (from, to, api_key, api_secret or text) is missing", "config"),
        "3": ("the value of a parameter is invalid", "config"),
        "4": ("Vonage refused the credentials: check the Vonage API key and secret", "config"),
        "5": ("an internal error at Vonage while processing this text", "temporary"),
        "6": ("Vonage could not process this text (for example an unrecognised number prefix)", "recipient"),
        "7": ("the recipient's number is barred (on a block list) and may not receive texts", "recipient"),
        "8": ("the Vonage account is barred from sending (suspended)", "config"),
        "9": ("the Vonage account does not have enough credit to send", "config"),
        "10": ("more simultaneous connections than the Vonage account allows", "throttled"),
        "11": ("the Vonage account is not enabled for sending over HTTP", "config"),
        "12": ("the text is longer than Vonage accepts", "content"),
        "13": ("a communication failure at Vonage; the text was not submitted", "temporary"),
        "14": ("the request signature is invalid", "config"),
        "15": ("the sender address (from) is not allowed for this destination", "config"),
        "22": ("the network code is invalid", "config"),
        "23": ("the callback URL is invalid", "config"),
        "29": ("a Vonage trial account can only text whitelisted (verified) numbers", "config"),
        "32": ("signed requests may not also carry the API secret", "config"),
        "33": ("the recipient's number is deactivated and may not receive texts", "recipient"),
    }
)

# Delivery receipts' ``err-code`` (another numbering than the send statuses above: 9 here is not 9 there).
# From Vonage's delivery receipt error table; 9 is also how Opt-Out Assist reports an unsubscribed recipient.
VONAGE_RECEIPT_ERRORS: Mapping[str, tuple[str, ErrorKind]] = MappingProxyType(
    {
        "1": ("delivery failed for an unknown reason", "temporary"),
        "2": ("the handset is temporarily unreachable (absent subscriber)", "temporary"),
        "3": ("the number is permanently unreachable (absent subscriber)", "recipient"),
        "4": ("the recipient barred incoming texts", "recipient"),
        "5": ("a number portability error", "recipient"),
        "6": ("the carrier rejected the text as spam", "content"),
        "7": ("the handset was busy", "temporary"),
        "8": ("a network error", "temporary"),
        "9": ("the recipient unsubscribed from this sender (or the number is on a block list)", "opted_out"),
        "10": ("the carrier rejected the text as invalid", "content"),
        "11": ("the number cannot be routed to", "recipient"),
        "12": ("the destination is unreachable", "temporary"),
        "13": ("the recipient is under the age restriction for this content", "recipient"),
        "14": ("the carrier blocked the number", "recipient"),
        "15": ("the recipient's prepaid account has not enough funds", "temporary"),
        "16": ("over the gateway's quota", "throttled"),
        "50": ("blocked by the entity filter (India DLT registration)", "config"),
        "51": ("blocked by the header (sender ID) filter (India DLT registration)", "config"),
        "52": ("blocked by the content (template) filter", "content"),
        "53": ("blocked by the consent filter", "config"),
        "54": ("blocked by a regulation in the destination country", "config"),
        "99": ("a general error", "temporary"),
    }
)

_TRANSIENT: frozenset[ErrorKind] = frozenset({"throttled", "temporary"})
# Statuses that say how long to wait: throughput limits are per second.
_RETRY_AFTER_HINT = {"1": 1.0, "10": 1.0}


def explain(code: str) -> str:
    """A human reason for a Vonage SMS API send ``status``."""
    code = str(code).strip()
    known = VONAGE_ERRORS.get(code)
    if known is not None:
        return known[0]
    return f"Vonage SMS API status {code} (https://developer.vonage.com/api-errors/sms)"


def explain_receipt(code: str) -> str:
    """A human reason for a Vonage delivery receipt's ``err-code``."""
    code = str(code).strip()
    known = VONAGE_RECEIPT_ERRORS.get(code)
    if known is not None:
        return known[0]
    return f"Vonage delivery receipt error {code}"


def vonage_number(address: str) -> str:
    """An E.164 number as Vonage writes it (no ``+``); short codes and sender IDs stay as they are."""
    if address.startswith("+") and address[1:].isdigit():
        return address[1:]
    return address


class VonageSender:
    """Sends texts through Vonage's SMS API; ``send`` returns the message-id of the text's first part."""

    name: ClassVar[str] = "vonage"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_url: str = DEFAULT_API_URL,
        api_key: str,
        api_secret: str,
        timeout: float = 10.0,
    ) -> None:
        if not api_key or not api_secret:
            raise ValueError("a Vonage API key and secret are required to send")
        if not api_url.startswith(("https://", "http://")):
            raise ValueError(f"the Vonage API URL must start with https:// (got {api_url!r})")
        self._client = client
        self._url = f"{api_url.rstrip('/')}/sms/json"
        self._api_key = api_key
        self._api_secret = api_secret
        self._timeout = timeout

    def _form(self, sms: OutboundSms) -> dict[str, str]:
        form = {
            "api_key": self._api_key,
            "api_secret": self._api_secret,
            "from": vonage_number(sms.sender),
            "to": vonage_number(sms.to),
            "text": sms.body,
            # Without type=unicode Vonage sends GSM-7 and replaces what it cannot encode (Hindi, emoji) with "?".
            "type": "unicode" if count_segments(sms.body).encoding is Encoding.ucs2 else "text",
            # Echoed in the receipt: ties it to openline's message even before the message-id is stored.
            "client-ref": str(sms.message_id),
        }
        if sms.status_callback:
            form["callback"] = sms.status_callback
        return form

    async def send(self, sms: OutboundSms) -> str:
        if sms.media_urls:
            # Refused before sending: the SMS API has no media, and dropping the pictures silently would be worse.
            raise SendFailed("Vonage's SMS API cannot send media (MMS); this text has media URLs")
        response = await post(
            self._client,
            "Vonage",
            self._url,
            data=self._form(sms),
            headers={"Accept": "application/json"},
            timeout=self._timeout,
        )
        return self._outcome(response)

    def _outcome(self, response: httpx.Response) -> str:
        status = response.status_code
        if status != 200:
            self._http_error(response)
        try:
            payload: Any = response.json()
        except ValueError:
            payload = None
        messages = payload.get("messages") if isinstance(payload, dict) else None
        parts = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
        if not parts:
            # A 200 we cannot read: Vonage may have queued the text, so never resend.
            raise SendFailed(
                f"Vonage answered HTTP 200 without messages; not retried so it cannot be sent twice "
                f"({snippet(response)})",
                ambiguous=True,
            )
        accepted = [str(m.get("message-id") or "") for m in parts if str(m.get("status")) == "0"]
        refused = [m for m in parts if str(m.get("status")) != "0"]
        if not refused:
            if accepted[0]:
                return accepted[0]
            raise SendFailed("Vonage accepted the text without a message-id; not retried", ambiguous=True)
        code = str(refused[0].get("status", "")).strip() or None
        error_text = refused[0].get("error-text")
        known = VONAGE_ERRORS.get(code or "")
        reason = known[0] if known is not None else (error_text if isinstance(error_text, str) else "unknown")
        if accepted:
            # Some parts of a long text were queued and others refused: the person may get half a text, and
            # sending it again would repeat the parts that went. Report it, never resend.
            raise SendFailed(
                f"Vonage queued {len(accepted)} of {len(parts)} parts (first id {accepted[0]}) and refused the "
                f"rest with status {code}: {reason}; not retried so no part is sent twice",
                code=code,
                ambiguous=True,
            )
        if known is not None and known[1] in _TRANSIENT:
            # Vonage answered for this very text that it did not take it (non-zero status): safe to resend later.
            raise SendFailed(
                f"Vonage status {code}: {reason}",
                code=code,
                transient=True,
                retry_after=_RETRY_AFTER_HINT.get(code or ""),
            )
        raise SendFailed(f"Vonage status {code}: {reason}", code=code)

    def _http_error(self, response: httpx.Response) -> NoReturn:
        status = response.status_code
        wait = retry_after(response.headers.get("retry-after"))
        if status == 429:
            # Refused at the door, before any processing: safe to resend.
            raise SendFailed(
                "Vonage is rate limiting requests (HTTP 429)",
                transient=True,
                retry_after=_RETRY_AFTER_HINT["1"] if wait is None else wait,
            )
        if status >= 500:
            # Vonage documents no 5xx as safe to repeat; one from a gateway may hide a text that was queued.
            raise SendFailed(
                f"Vonage failed with HTTP {status} and may have queued the text; not retried so it cannot be sent "
                "twice",
                ambiguous=True,
            )
        if status in (401, 403):
            raise SendFailed(f"Vonage refused the credentials (HTTP {status}): {explain('4')}", code="4")
        # 2xx other than 200, 3xx, 4xx: not the SMS API's answer (a proxy, a wrong API URL). Permanent until fixed.
        raise SendFailed(f"Vonage answered HTTP {status}: {snippet(response) or '(empty body)'}")
