"""Twilio: sending texts through the Messages API, and what Twilio's error codes mean.

``POST {api}/2010-04-01/Accounts/{AccountSid}/Messages.json``, HTTP basic auth (AccountSid, AuthToken), form
fields ``To``, ``From`` and/or ``MessagingServiceSid``, ``Body``, ``MediaUrl`` (repeated), ``StatusCallback``,
``ValidityPeriod``. Success is ``201`` with the Message resource as JSON (``sid``, ``status``, ...); an error is
JSON ``{"code": 21211, "message": ..., "more_info": ..., "status": 400}``.

The heart of this module is deciding, for every way a send can go wrong, whether the text may be submitted
again. The rule: retry only when Twilio certainly did not create the message. Whenever the request may have
reached Twilio and been acted on, the failure is *ambiguous* and the text is never resubmitted, because a
duplicate text to a person is worse than a missing one (the dispatcher can still report or reconcile it).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar
from urllib.parse import urlencode

import httpx

from openline.providers.outbound import ErrorKind, OutboundSms, SendFailed, accepted_id, post, retry_after, snippet

__all__ = ["API_VERSION", "DEFAULT_API_URL", "TWILIO_ERRORS", "ErrorKind", "TwilioSender", "explain"]

API_VERSION = "2010-04-01"
DEFAULT_API_URL = "https://api.twilio.com"

# What an error code says about the text and what to do next:
#   opted_out  the recipient unsubscribed from this sender: never text them until they opt in again
#   recipient  the number cannot get texts (invalid, landline, gone, blocked us): stop texting it
#   config     our setup is wrong (credentials, From, geo permissions, registration): fix it; the recipient is fine
#   content    this text cannot go as written (too long, filtered)
#   throttled  too fast or over a cap: the same text may go later
#   temporary  a carrier-side failure that may clear (handset off, congestion); mostly seen in delivery receipts

# Twilio's error codes openline acts on: code -> (what it means, in our words, kind). Codes 2xxxx and 14107 come
# back when creating a message; 30xxx mostly arrive later as ``ErrorCode`` in delivery receipts. Texts follow
# Twilio's error pages (https://www.twilio.com/docs/api/errors/<code>) and sms-facts §4.4.
TWILIO_ERRORS: Mapping[str, tuple[str, ErrorKind]] = MappingProxyType(
    {
        # Creating the message (answered to the POST)
        "14107": (
            "more than 30 texts between the same two numbers within 30 seconds; Twilio holds more for 30 s",
            "throttled",
        ),
        "20003": ("Twilio refused the credentials: check the Twilio account SID and auth token", "config"),
        "20404": ("Twilio found no such resource: check the account SID in the API URL", "config"),
        "20429": ("too many concurrent requests to Twilio's API", "throttled"),
        "21211": ("the 'To' number is not a valid phone number", "recipient"),
        "21408": (
            "this Twilio account may not text the recipient's country (see the account's geo permissions)",
            "config",
        ),
        "21602": ("the text has neither a body nor media", "content"),
        "21603": ("neither From nor MessagingServiceSid was given", "config"),
        "21604": ("no 'To' number was given", "config"),
        "21606": (
            "the From number is not a message-capable Twilio number of this account for this destination",
            "config",
        ),
        "21608": ("a Twilio trial account can only text verified numbers", "config"),
        "21610": ("the recipient unsubscribed from this sender (replied STOP); Twilio will not text them", "opted_out"),
        "21611": ("the From number has more than 10 hours of texts queued at Twilio", "throttled"),
        "21612": (
            "Twilio cannot reach this number from this sender (unreachable, or an unsupported To/From pair)",
            "recipient",
        ),
        "21614": ("the 'To' number cannot receive texts (not a mobile number)", "recipient"),
        "21617": ("the body is longer than Twilio's limit of 1600 characters", "content"),
        "21619": ("the text has neither a body, media nor a content template", "content"),
        "21620": ("a media URL is invalid", "content"),
        "21623": ("more than 10 media URLs", "content"),
        "21624": ("ValidityPeriod must be a whole number of seconds from 1 to 36000", "config"),
        "21635": ("the 'To' number is a landline", "recipient"),
        "21659": ("From is not a Twilio number of this account (or a short code texting another country)", "config"),
        "21701": ("the Messaging Service does not exist in this Twilio account", "config"),
        "21705": ("the Messaging Service SID is not valid", "config"),
        # Delivery (mostly in receipts)
        "30001": ("Twilio's queue for this sender overflowed", "throttled"),
        "30002": ("the Twilio account is suspended", "config"),
        "30003": ("the handset is unreachable (switched off or out of coverage)", "temporary"),
        "30004": ("the text was blocked, by the carrier or by the recipient", "recipient"),
        "30005": ("unknown handset: the number does not exist or is no longer in service", "recipient"),
        "30006": ("a landline, or a carrier that cannot be reached", "recipient"),
        "30007": ("the carrier filtered the text (spam filtering); review the content and registration", "content"),
        "30008": ("an unknown error from the carrier", "temporary"),
        "30017": ("carrier network congestion", "temporary"),
        "30018": ("the sender ID must be registered in the recipient's country", "config"),
        "30019": ("the text is longer than the carrier accepts", "content"),
        "30022": ("US 10DLC: over the campaign's carrier rate limit", "throttled"),
        "30023": ("US 10DLC: the brand's daily cap is reached (resets at midnight Pacific)", "throttled"),
        "30024": ("the numeric sender ID is not provisioned with the carrier", "config"),
        "30027": ("US 10DLC: T-Mobile's daily limit is reached (resets at midnight Pacific)", "throttled"),
        "30032": ("the toll-free number is not verified", "config"),
        "30034": ("US A2P 10DLC: the number is not registered to an approved campaign", "config"),
        "30036": ("the text waited in Twilio's queue past its validity period", "temporary"),
        "63017": ("over the account's overall sending rate", "throttled"),
        "63018": ("over the channel's rate limit", "throttled"),
    }
)

# Codes that say how long to wait even when the answer carries no Retry-After.
_RETRY_AFTER_HINT = {"14107": 30.0}


def explain(code: str) -> str:
    """A human reason for a Twilio error code (an API answer's ``code`` or a receipt's ``ErrorCode``)."""
    code = str(code).strip()
    known = TWILIO_ERRORS.get(code)
    if known is not None:
        return known[0]
    return f"Twilio error {code} (https://www.twilio.com/docs/api/errors/{code})"


def _error_fields(response: httpx.Response) -> tuple[str | None, str | None]:
    """``(code, message)`` from Twilio's error JSON; also reads the newer RFC 9457 form (``title``/``detail``)."""
    try:
        payload = response.json()
    except ValueError:  # not JSON, or not UTF-8
        return None, None
    if not isinstance(payload, dict):
        return None, None
    raw_code = payload.get("code")
    code = str(raw_code) if isinstance(raw_code, int | str) and str(raw_code).strip() else None
    message = next((m for m in (payload.get(k) for k in ("message", "detail", "title")) if isinstance(m, str)), None)
    return code, message


class TwilioSender:
    """Sends texts through Twilio's Messages API; ``send`` returns Twilio's message SID (``SM…``/``MM…``).

    ``messaging_service_sid``: sends through that Messaging Service as well as ``From`` (Twilio allows both:
    the service's features and callbacks apply, and the text still leaves from the sender openline paces and
    that members reply to). ``validity_period``: how long (s) Twilio may queue a text before dropping it with
    30036; by default Twilio's (10 hours), which can carry a text into quiet hours.
    """

    name: ClassVar[str] = "twilio"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_url: str = DEFAULT_API_URL,
        account_sid: str,
        auth_token: str,
        messaging_service_sid: str | None = None,
        timeout: float = 10.0,
        validity_period: int | None = None,
    ) -> None:
        if not account_sid or not auth_token:
            raise ValueError("a Twilio account SID and auth token are required to send")
        if not api_url.startswith(("https://", "http://")):
            raise ValueError(f"the Twilio API URL must start with https:// (got {api_url!r})")
        if validity_period is not None and not 1 <= validity_period <= 36_000:
            raise ValueError("validity_period must be from 1 to 36000 seconds")
        self._client = client
        self._url = f"{api_url.rstrip('/')}/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        # Headers built once: httpx's auth flow and form encoding per request cost more than the request.
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode("ascii")
        self._headers = {
            "Authorization": f"Basic {credentials}",
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        self._messaging_service_sid = messaging_service_sid or None
        self._timeout = timeout
        self._validity_period = validity_period

    def _form(self, sms: OutboundSms) -> list[tuple[str, str]]:
        form = [("To", sms.to)]
        if sms.sender:
            form.append(("From", sms.sender))
        if self._messaging_service_sid is not None:
            form.append(("MessagingServiceSid", self._messaging_service_sid))
        if sms.body or not sms.media_urls:
            form.append(("Body", sms.body))  # an empty body alone is sent as is: Twilio's 21602 says what is wrong
        form.extend(("MediaUrl", url) for url in sms.media_urls)
        if sms.status_callback:
            form.append(("StatusCallback", sms.status_callback))
        if self._validity_period is not None:
            form.append(("ValidityPeriod", str(self._validity_period)))
        return form

    async def send(self, sms: OutboundSms) -> str:
        response = await post(
            self._client,
            "Twilio",
            self._url,
            # Encoded once here: repeated MediaUrl fields keep their order.
            content=urlencode(self._form(sms)).encode("utf-8"),
            headers=self._headers,
            timeout=self._timeout,
        )
        return self._outcome(response)

    def _outcome(self, response: httpx.Response) -> str:
        status = response.status_code
        if 200 <= status < 300:
            return accepted_id("Twilio", response, lambda p: p.get("sid") if isinstance(p, dict) else None)
        code, message = _error_fields(response)
        wait = retry_after(response.headers.get("retry-after"))
        if status == 429:
            # Twilio (error 20429): "requests that receive 429 responses aren't processed and are safe to retry".
            raise SendFailed(
                f"Twilio is rate limiting requests: {explain(code or '20429')}",
                code=code or "20429",
                transient=True,
                retry_after=wait,
            )
        if status == 503:
            # 20503 "Service unavailable": Twilio shed the request before processing it and asks for retries
            # with back-off, so the message was not created.
            raise SendFailed(
                f"Twilio is temporarily unavailable (HTTP 503{f', error {code}' if code else ''})",
                code=code,
                transient=True,
                retry_after=wait,
            )
        if status >= 500:
            # Not retried, on Twilio's own word (error 20500): a 500 may be "a timeout in the API" and "sending an
            # SMS" is "not idempotent: ... if you retry the request, it is possible for a customer to receive
            # multiple messages". 502 and 504 come from a gateway whose upstream may have created the message.
            raise SendFailed(
                f"Twilio failed with HTTP {status}{f' (error {code})' if code else ''} and may have created the "
                "message; not retried so it cannot be sent twice",
                code=code,
                ambiguous=True,
            )
        if code is not None:
            known = TWILIO_ERRORS.get(code)
            if known is not None and known[1] == "throttled":
                # Rate and cap codes: Twilio did not take this text now; the same text can go later.
                raise SendFailed(
                    f"Twilio error {code}: {known[0]}",
                    code=code,
                    transient=True,
                    retry_after=wait if wait is not None else _RETRY_AFTER_HINT.get(code),
                )
            # A 4xx with a code: Twilio refused this text for a reason sending it again will not change.
            reason = known[0] if known is not None else (message or f"HTTP {status}")
            raise SendFailed(
                f"Twilio error {code}: {reason}",
                code=code,
                opted_out=known is not None and known[1] == "opted_out",
            )
        # A 4xx (or 3xx) that is not Twilio's JSON: a proxy, a wrong API URL. Permanent until someone looks.
        raise SendFailed(f"Twilio answered HTTP {status}: {snippet(response) or '(empty body)'}")
