"""The providers a :class:`~openline.simulate.carrier.Carrier` can play: their API, codes and signed callbacks.

Twilio (on :class:`~openline.providers.fake_twilio.FakeTwilio`): callbacks are form posts signed with the
auth token (``X-Twilio-Signature``), exactly what openline's ``/webhooks/twilio/status`` checks. Codes, from
Twilio's error pages: 30036 for a message that waited past its ``ValidityPeriod`` (1 to 36,000 s, default
36,000), status ``failed``; 21611 when creating a message on a number whose queue already holds more than
10 hours; 21610 for a recipient who opted out; 30023 for a 10DLC daily cap (T-Mobile's own limit reports
30027); 30003/30005/30006/30007/30008 for handsets unreachable, unknown, landlines, carrier filtering and
unknown errors, reported as ``undelivered``.

Telnyx (on :class:`~openline.providers.fakes.FakeTelnyx`): callbacks are ``message.sent`` and
``message.finalized`` events signed with an Ed25519 key (openline needs its public key as
``OPENLINE_TELNYX_PUBLIC_KEY``). Codes, from Telnyx's messaging error reference: 40014 "expired in queue",
40001/40002/40004/40006/40008 for carrier rejections, 40300 (refused by the API) after STOP. Telnyx documents
no API parameter for a validity period nor a code for a daily cap; the simulator expires messages after
4 hours (Telnyx's documented queue lengths are 4 hours of each sender type's rate) and reports the cap as
40011, "rate limit exceeded (upstream)" — both choices, not Telnyx facts.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openline.providers.fake_twilio import FakeTwilio, SentMessage
from openline.providers.fakes import FakeTelnyx, SentText
from openline.simulate.carrier import Carrier, Job

__all__ = ["TELNYX_TITLES", "TelnyxCarrier", "TwilioCarrier", "public_key"]

TWILIO_VALIDITY = 36_000  # seconds: Twilio's default and largest ValidityPeriod
TWILIO_QUEUE_LIMIT = 36_000  # seconds of queued traffic on one number before Twilio refuses with 21611
TELNYX_VALIDITY = 14_400  # seconds (a choice: 4 hours, see the module docstring)
# The carrier's words for a message's fate, as Telnyx reports them per recipient.
_TELNYX_STATUS = {"undelivered": "delivery_failed"}
TELNYX_TITLES = {
    "40001": "Not routable",
    "40002": "Blocked as spam (temporary)",
    "40004": "Rejected by destination",
    "40006": "Recipient unavailable",
    "40008": "Undeliverable",
    "40011": "Rate limit exceeded (upstream)",
    "40014": "Expired in queue",
}


class TwilioCarrier:
    """Twilio's Messages API for one account, with a carrier behind it."""

    name: str = "twilio"
    expiry: tuple[str, str] = ("failed", "30036")
    capped: str = "30023"
    failures: tuple[str, ...] = ("30003", "30005", "30006", "30007", "30008")
    default_validity: float = TWILIO_VALIDITY
    default_queue_limit: float | None = TWILIO_QUEUE_LIMIT

    def __init__(self, account_sid: str, auth_token: str, numbers: tuple[str, ...] = ()) -> None:
        self.fake = FakeTwilio(account_sid, auth_token)
        for number in numbers:
            self.fake.add_number(number)
        # Without a list of the owner's numbers, any From is taken for one of theirs.
        self.fake.any_number = not numbers
        self.app: ASGIApp = self.fake.app
        self._carrier: Carrier | None = None

    @property
    def _bound(self) -> Carrier:
        if self._carrier is None:
            raise RuntimeError("not bound to a Carrier yet")
        return self._carrier

    def bind(self, carrier: Carrier) -> None:
        self._carrier = carrier
        self.fake.latency = carrier.options.latency
        self.fake.admit = self._admit
        self.fake.on_accept = self._accepted

    def _admit(self, message: SentMessage) -> tuple[int, int, str] | None:
        sender = message.from_ or message.messaging_service_sid or ""
        if self._bound.queue_full(sender):
            self._bound.refused(21611)
            return 400, 21611, "This 'From' number has exceeded the maximum number of queued messages"
        return None

    def _accepted(self, message: SentMessage) -> None:
        validity = self._bound.validity(message.validity_period)
        self._bound.submit(
            Job(
                id=message.sid,
                sender=message.from_ or message.messaging_service_sid or "",
                to=message.to,
                segments=max(1, message.num_segments),
                received_at=message.received_at,
                deadline=message.received_at + validity,
                callback=message.status_callback,
                record=message,
            )
        )

    def opt_out(self, number: str, stopped: bool) -> None:
        if stopped:
            self.fake.opted_out.add(number)
        else:
            self.fake.opted_out.discard(number)

    def callback(self, job: Job, status: str, code: str | None, url: str) -> tuple[bytes, dict[str, str]]:
        _target, body, headers = self.fake.status_callback_request(job.record, status, code, url=url)
        job.record.status = status
        return body, headers


def public_key(key: Ed25519PrivateKey) -> str:
    """The base64 public key openline checks Telnyx signatures with (``OPENLINE_TELNYX_PUBLIC_KEY``)."""
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


class TelnyxCarrier:
    """Telnyx's Messaging API for one API key, with a carrier behind it."""

    name: str = "telnyx"
    expiry: tuple[str, str] = ("sending_failed", "40014")
    capped: str = "40011"
    failures: tuple[str, ...] = ("40001", "40002", "40004", "40006", "40008")
    default_validity: float = TELNYX_VALIDITY
    default_queue_limit: float | None = None

    def __init__(self, api_key: str, signing_key: Ed25519PrivateKey, numbers: tuple[str, ...] = ()) -> None:
        self.fake = FakeTelnyx(api_key)
        for number in numbers:
            self.fake.add_number(number)
        self._any_number = not numbers
        self._key = signing_key
        self._seen = 0  # how many of fake.sent have been handed to the carrier
        self._carrier: Carrier | None = None
        self.app: ASGIApp = self._api

    @property
    def _bound(self) -> Carrier:
        if self._carrier is None:
            raise RuntimeError("not bound to a Carrier yet")
        return self._carrier

    def bind(self, carrier: Carrier) -> None:
        self._carrier = carrier
        self.fake.latency = carrier.options.latency

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The fake's API; learns a new ``from`` first when any number goes, then queues what the fake accepted."""
        if scope["type"] != "http":
            await self.fake.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if self._any_number:
            try:
                sender = json.loads(body).get("from")
            except (ValueError, AttributeError):
                sender = None
            if isinstance(sender, str) and sender.startswith("+"):
                self.fake.add_number(sender)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            await self.fake.app(scope, replay, send)
        finally:
            self._collect()

    def _collect(self) -> None:
        for record in self.fake.sent[self._seen :]:
            self._accepted(record)
        self._seen = len(self.fake.sent)

    def _accepted(self, record: SentText) -> None:
        profile = record.fields.get("messaging_profile_id")
        sender = record.sender or (self.fake.profiles.get(str(profile)) or ("",))[0]
        self._bound.submit(
            Job(
                id=record.id,
                sender=sender,
                to=record.to,
                segments=max(1, record.segments),
                received_at=record.received_at,
                deadline=record.received_at + self._bound.validity(None),
                callback=record.status_callback,
                record=record,
            )
        )

    def opt_out(self, number: str, stopped: bool) -> None:
        bare = number.removeprefix("+")
        if stopped:
            self.fake.opted_out.add(number)
        else:
            self.fake.opted_out.difference_update({number, bare, f"+{bare}"})

    def callback(self, job: Job, status: str, code: str | None, url: str) -> tuple[bytes, dict[str, str]]:
        record: SentText = job.record
        event = "message.sent" if status == "sent" else "message.finalized"
        status = _TELNYX_STATUS.get(status, status)
        title = TELNYX_TITLES.get(code or "", "Error")
        errors = [{"code": code, "title": title, "detail": title}]
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        payload: dict[str, Any] = {
            "record_type": "message",
            "id": record.id,
            "direction": "outbound",
            "type": "SMS",
            "from": {"phone_number": job.sender, "carrier": "Telnyx", "line_type": "VoIP"},
            "to": [{"phone_number": record.to, "status": status}],
            "text": record.body,
            "parts": record.segments,
            "webhook_url": record.status_callback,
            "errors": errors if code is not None else [],
        }
        document = {
            "data": {
                "event_type": event,
                "id": str(uuid.uuid4()),
                "occurred_at": now,
                "payload": payload,
                "record_type": "event",
            },
            "meta": {"attempt": 1, "delivered_to": url},
        }
        body = json.dumps(document, separators=(",", ":")).encode("utf-8")
        timestamp = str(int(time.time()))
        signature = self._key.sign(timestamp.encode("ascii") + b"|" + body)
        headers = {
            "Content-Type": "application/json",
            "telnyx-signature-ed25519": base64.b64encode(signature).decode("ascii"),
            "telnyx-timestamp": timestamp,
            "User-Agent": "telnyx-webhooks",
        }
        record.status = status
        return body, headers
