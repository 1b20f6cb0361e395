"""Plivo: sending texts through the Message API, and what Plivo's message error codes mean.

``POST {api}/v1/Account/{auth_id}/Message/``, HTTP basic auth (auth ID, auth token), JSON ``{"src", "dst",
"text", "url", "method", "type", "media_urls"}``; ``type`` is ``"mms"`` when there is media. Success is ``202``
with ``{"api_id": ..., "message": "message(s) queued", "message_uuid": ["..."]}``; an error is a 4xx with
``{"api_id": ..., "error": "<words>"}``: the send API has no error codes, only words and the HTTP status.

The codes in ``PLIVO_ERRORS`` are those of message detail records and status callbacks (``ErrorCode``):
delivery failures, reported later. Among them is the opt-out: Plivo accepts a text to a recipient who sent STOP
(202) and then fails it with code 200, so the send itself never says ``opted_out``.

The retry rule is the one of ``twilio_send``: retry only when Plivo certainly did not queue the text.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import httpx

from openline.providers.outbound import ErrorKind, OutboundSms, SendFailed, accepted_id, post, retry_after, snippet

__all__ = ["DEFAULT_API_URL", "PLIVO_ERRORS", "PlivoSender", "explain"]

DEFAULT_API_URL = "https://api.plivo.com"

# Plivo's message error codes (MDRs and status callbacks): code -> (what it means, in our words, kind; kinds as in
# twilio_send.ErrorKind). From plivo.com/docs/messaging/troubleshooting/error-codes and Plivo's support articles
# (200: opted out; 900: out of credit).
PLIVO_ERRORS: Mapping[str, tuple[str, ErrorKind]] = MappingProxyType(
    {
        "10": ("a downstream carrier rejected the text as invalid", "content"),
        "20": ("the carrier had network issues (temporary)", "temporary"),
        "30": ("a carrier's spam filter blocked the text", "content"),
        "40": ("the source number is malformed, not SMS-enabled or not in this Plivo account", "config"),
        "50": ("the destination number is invalid", "recipient"),
        "200": ("the recipient sent STOP to this sender; Plivo blocks texts to them", "opted_out"),
        "900": ("the Plivo account has not enough credit", "config"),
    }
)


def explain(code: str) -> str:
    """A human reason for a Plivo message error code (an MDR's or status callback's ``ErrorCode``)."""
    code = str(code).strip()
    known = PLIVO_ERRORS.get(code)
    if known is not None:
        return known[0]
    return f"Plivo message error {code} (https://www.plivo.com/docs/messaging/troubleshooting/error-codes)"


def _error_words(response: httpx.Response) -> str | None:
    try:
        payload: Any = response.json()
    except ValueError:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, str) and error.strip():
        return error.strip()
    if isinstance(error, dict):  # some Plivo answers nest the words per field
        return "; ".join(f"{k}: {v}" for k, v in error.items())
    return None


class PlivoSender:
    """Sends texts through Plivo's Message API; ``send`` returns Plivo's message UUID."""

    name: ClassVar[str] = "plivo"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_url: str = DEFAULT_API_URL,
        auth_id: str,
        auth_token: str,
        timeout: float = 10.0,
    ) -> None:
        if not auth_id or not auth_token:
            raise ValueError("a Plivo auth ID and auth token are required to send")
        if not api_url.startswith(("https://", "http://")):
            raise ValueError(f"the Plivo API URL must start with https:// (got {api_url!r})")
        self._client = client
        self._url = f"{api_url.rstrip('/')}/v1/Account/{auth_id}/Message/"
        self._auth = httpx.BasicAuth(auth_id, auth_token)
        self._timeout = timeout

    def _payload(self, sms: OutboundSms) -> dict[str, Any]:
        payload: dict[str, Any] = {"src": sms.sender, "dst": sms.to, "text": sms.body}
        if sms.media_urls:
            payload["type"] = "mms"
            payload["media_urls"] = list(sms.media_urls)
        if sms.status_callback:
            payload["url"] = sms.status_callback
            payload["method"] = "POST"
        return payload

    async def send(self, sms: OutboundSms) -> str:
        if "<" in sms.to:
            # "<" separates several recipients in Plivo's dst: one text must never fan out.
            raise SendFailed(f"not a single recipient: {sms.to!r}")
        response = await post(
            self._client,
            "Plivo",
            self._url,
            json=self._payload(sms),
            auth=self._auth,
            headers={"Accept": "application/json"},
            timeout=self._timeout,
        )
        return self._outcome(response)

    def _outcome(self, response: httpx.Response) -> str:
        status = response.status_code
        if 200 <= status < 300:
            return accepted_id("Plivo", response, _message_uuid)
        words = _error_words(response) or snippet(response) or "(empty body)"
        if status == 429:
            # Rate limited before the request was processed: safe to resend.
            raise SendFailed(
                f"Plivo is rate limiting requests: {words}",
                transient=True,
                retry_after=retry_after(response.headers.get("retry-after")),
            )
        if status >= 500:
            # Plivo documents no 5xx as leaving the text unqueued, and its send has no idempotency key.
            raise SendFailed(
                f"Plivo failed with HTTP {status} and may have queued the text; not retried so it cannot be sent "
                f"twice ({words})",
                ambiguous=True,
            )
        if status == 401:
            raise SendFailed(f"Plivo refused the credentials: check the Plivo auth ID and auth token ({words})")
        if status == 404:
            raise SendFailed(f"Plivo found no such resource: check the Plivo auth ID and API URL ({words})")
        # 400 and the rest: Plivo refused this text for a reason a resend will not change.
        raise SendFailed(f"Plivo refused the text (HTTP {status}): {words}")


def _message_uuid(payload: Any) -> object:
    uuids = payload.get("message_uuid") if isinstance(payload, dict) else None
    return uuids[0] if isinstance(uuids, list) and uuids else uuids
