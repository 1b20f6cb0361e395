"""Telnyx: sending texts through the Messaging API v2, and what Telnyx's error codes mean.

``POST {api}/v2/messages`` with ``Authorization: Bearer <API key>`` and JSON ``{"from", "to", "text",
"media_urls", "webhook_url", "messaging_profile_id"}`` (numbers in +E.164). Success is ``200`` with
``{"data": {"id": ..., "record_type": "message", ...}}``; an error is ``{"errors": [{"code": "40300", "title":
..., "detail": ..., "source": {"pointer": ...}}]}`` with an HTTP status that fits it (401, 409, 422, 429, ...).

Telnyx refuses texts to a recipient who sent STOP to the sender at once, with code 40300 ("Blocked due to STOP
message"): that is the one provider of the three that says so when sending rather than in a receipt.

The retry rule is the one of ``twilio_send``: retry only when Telnyx certainly did not create the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import httpx

from openline.providers.outbound import ErrorKind, OutboundSms, SendFailed, accepted_id, post, retry_after, snippet

__all__ = ["DEFAULT_API_URL", "TELNYX_ERRORS", "TelnyxSender", "explain"]

DEFAULT_API_URL = "https://api.telnyx.com"

# Telnyx's error codes openline acts on: code -> (what it means, in our words, kind; kinds as in
# twilio_send.ErrorKind). 1xxxx are the platform's request errors (answered to the POST); 40xxx are messaging
# errors: 40300 is answered to the POST, the others mostly arrive in ``message.finalized`` webhooks. From
# developers.telnyx.com/development/api-fundamentals/api-errors and /docs/messaging/messages/error-codes.
TELNYX_ERRORS: Mapping[str, tuple[str, ErrorKind]] = MappingProxyType(
    {
        "10001": ("the phone number is inactive", "recipient"),
        "10002": ("the phone number is invalid", "recipient"),
        "10003": ("a URL (webhook or media) is invalid, malformed or longer than 2000 characters", "config"),
        "10004": ("a required parameter is missing", "config"),
        "10005": ("Telnyx found no such resource: check the API URL", "config"),
        "10006": ("an ID is invalid (check the messaging profile ID)", "config"),
        "10007": ("an unexpected error at Telnyx", "temporary"),
        "10008": ("the request timed out at Telnyx", "temporary"),
        "10009": ("Telnyx refused the credentials: check the Telnyx API key", "config"),
        "10010": ("the Telnyx API key may not do this (authorization failed)", "config"),
        "10011": ("too many requests to Telnyx's API", "throttled"),
        "10015": ("the request was not well-formed", "config"),
        "10016": ("a phone number is not in +E.164 format", "recipient"),
        "10017": ("an associated resource does not exist", "config"),
        "10023": ("the request is not valid JSON", "config"),
        # Messaging
        "40001": ("not routable: a landline or a number that cannot get texts", "recipient"),
        "40002": ("blocked as spam by the carrier (temporary)", "content"),
        "40003": ("blocked as spam: the sending number is permanently blocked by the carrier", "config"),
        "40004": ("the recipient's carrier rejected the text for an unknown reason", "temporary"),
        "40005": ("the text expired before it could be delivered", "temporary"),
        "40006": ("the recipient's carrier is unavailable", "temporary"),
        "40008": ("undeliverable: the carrier did not accept the text", "temporary"),
        "40009": ("the carrier rejected the message body", "content"),
        "40011": ("over the carrier's throughput limit", "throttled"),
        "40012": ("the carrier rejected the destination number", "recipient"),
        "40013": ("the carrier rejected the sending number: is it active and messaging-enabled?", "config"),
        "40014": ("the text expired in Telnyx's queue", "temporary"),
        "40015": ("blocked by Telnyx's spam filter", "content"),
        "40300": (
            "the recipient sent STOP to this sender; Telnyx will not text them until they send START",
            "opted_out",
        ),
    }
)

_TRANSIENT: frozenset[ErrorKind] = frozenset({"throttled"})
# Telnyx failing while it handled the request, whatever the HTTP status: the message may exist.
_PROCESSING_FAILED = frozenset({"10007", "10008"})


def explain(code: str) -> str:
    """A human reason for a Telnyx error code (an API answer's or a ``message.finalized`` event's)."""
    code = str(code).strip()
    known = TELNYX_ERRORS.get(code)
    if known is not None:
        return known[0]
    return f"Telnyx error {code} (https://developers.telnyx.com/api/errors/{code})"


def _first_error(response: httpx.Response) -> tuple[str | None, str | None]:
    """``(code, title/detail)`` of the first entry of Telnyx's ``errors`` list."""
    try:
        payload: Any = response.json()
    except ValueError:
        return None, None
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None, None
    first = errors[0]
    raw = first.get("code")
    code = str(raw).strip() if isinstance(raw, int | str) and str(raw).strip() else None
    words = [w for w in (first.get("title"), first.get("detail")) if isinstance(w, str) and w]
    return code, ": ".join(words) or None


class TelnyxSender:
    """Sends texts through Telnyx's Messaging API; ``send`` returns Telnyx's message ID (a UUID).

    ``messaging_profile_id``: sent with every text; needed for alphanumeric senders and number pools, and it
    decides which profile's settings (and webhooks, unless a status callback is given) apply.
    """

    name: ClassVar[str] = "telnyx"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_url: str = DEFAULT_API_URL,
        api_key: str,
        messaging_profile_id: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not api_key:
            raise ValueError("a Telnyx API key is required to send")
        if not api_url.startswith(("https://", "http://")):
            raise ValueError(f"the Telnyx API URL must start with https:// (got {api_url!r})")
        self._client = client
        self._url = f"{api_url.rstrip('/')}/v2/messages"
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._messaging_profile_id = messaging_profile_id or None
        self._timeout = timeout

    def _payload(self, sms: OutboundSms) -> dict[str, Any]:
        payload: dict[str, Any] = {"to": sms.to}
        if sms.sender:
            payload["from"] = sms.sender
        if self._messaging_profile_id is not None:
            payload["messaging_profile_id"] = self._messaging_profile_id
        if sms.body or not sms.media_urls:
            payload["text"] = sms.body
        if sms.media_urls:
            payload["media_urls"] = list(sms.media_urls)
        if sms.status_callback:
            payload["webhook_url"] = sms.status_callback
        return payload

    async def send(self, sms: OutboundSms) -> str:
        response = await post(
            self._client, "Telnyx", self._url, json=self._payload(sms), headers=self._headers, timeout=self._timeout
        )
        return self._outcome(response)

    def _outcome(self, response: httpx.Response) -> str:
        status = response.status_code
        if 200 <= status < 300:
            return accepted_id("Telnyx", response, _message_id)
        code, words = _first_error(response)
        wait = retry_after(response.headers.get("retry-after"))
        if status == 429:
            # Rate limited before the request was processed: safe to resend.
            raise SendFailed(
                f"Telnyx is rate limiting requests: {explain(code or '10011')}",
                code=code or "10011",
                transient=True,
                retry_after=wait,
            )
        if status >= 500 or status == 408 or code in _PROCESSING_FAILED:
            # Telnyx documents no 5xx as safe to repeat: 10007 "unexpected error" and 10008 "request timeout" are
            # about Telnyx's own processing, which may have created the message before it failed.
            raise SendFailed(
                f"Telnyx failed with HTTP {status}{f' (error {code})' if code else ''} and may have created the "
                "message; not retried so it cannot be sent twice",
                code=code,
                ambiguous=True,
            )
        if code is not None:
            known = TELNYX_ERRORS.get(code)
            reason = known[0] if known is not None else (words or f"HTTP {status}")
            if known is not None and known[1] in _TRANSIENT:
                raise SendFailed(f"Telnyx error {code}: {reason}", code=code, transient=True, retry_after=wait)
            raise SendFailed(
                f"Telnyx error {code}: {reason}",
                code=code,
                opted_out=known is not None and known[1] == "opted_out",
            )
        raise SendFailed(f"Telnyx answered HTTP {status}: {snippet(response) or '(empty body)'}")


def _message_id(payload: Any) -> object:
    data = payload.get("data") if isinstance(payload, dict) else None
    return data.get("id") if isinstance(data, dict) else None
