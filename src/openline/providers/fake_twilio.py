"""A local stand-in for Twilio's Messages API, for tests (``httpx.ASGITransport``) and benchmarks (uvicorn).

It checks requests the way Twilio does and answers with Twilio's status codes, error codes and JSON shapes,
records every message it accepts, and can be told to misbehave (errors, latency, opted-out recipients, a
dropped connection after creating the message). It also builds the signed status callbacks Twilio would post.

Where Twilio's exact behaviour is not documented the fake picks one and says so: it counts the 1600-character
body limit in Python characters (code points), and answers a URL naming another account with 404 / 20404.

Serve it for a benchmark with ``uvicorn.run(FakeTwilio(sid, token).app, ...)``; the sender then uses
``api_url="http://127.0.0.1:<port>"``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from openline.encoding import count_segments
from openline.providers.twilio import TwilioWebhook
from openline.providers.twilio_send import API_VERSION

__all__ = ["DroppedConnection", "FakeTwilio", "SentMessage"]

MAX_BODY = 1600
MAX_MEDIA = 10
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
_FINAL_FAILURES = ("failed", "undelivered")


class DroppedConnection(httpx.RemoteProtocolError):
    """Raised by the fake after it created a message, to drop the connection without an answer.

    Through ``httpx.ASGITransport`` the client sees this very exception (a RemoteProtocolError, as for a real
    broken connection); under uvicorn the response has started, so uvicorn closes the connection mid-answer
    and the client sees a RemoteProtocolError of its own.
    """


@dataclass
class SentMessage:
    """A message the fake accepted, as the request gave it."""

    sid: str
    account_sid: str
    to: str
    from_: str | None  # From as given; with a Messaging Service alone, the first number of its pool
    messaging_service_sid: str | None
    body: str
    media: tuple[str, ...]
    status_callback: str | None
    validity_period: int | None
    num_segments: int
    received_at: float  # time.monotonic() when the request arrived
    date_created: datetime
    status: str = "queued"


@dataclass(frozen=True)
class _Failure:
    status: int
    code: int | None
    message: str
    retry_after: float | None


class _TwilioError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _HangUp(Response):
    """Start the answer, then break off: the message exists but the client never learns its SID."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1024")],
            }
        )
        raise DroppedConnection("FakeTwilio created the message and dropped the connection (drop_after_accept)")


def _error(
    status: int, code: int | None, message: str, *, retry_after: float | None = None, detail: str | None = None
) -> JSONResponse:
    content: dict[str, Any] = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}" if code is not None else None,
        "status": status,
    }
    if detail is not None:
        content["detail"] = detail
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Basic realm="Twilio API"'}
    return JSONResponse(content, status_code=status, headers=headers)


class FakeTwilio:
    """Twilio's ``Messages.json`` endpoint for one account, in memory.

    Knobs (plain attributes, change them between requests): ``latency`` seconds before each answer;
    ``opted_out`` recipients answered 400 / 21610; ``drop_after_accept`` creates and records each message, then
    drops the connection; ``fail_next()`` queues error answers. ``sent`` lists accepted messages in order.

    Hooks for a carrier simulator built on the fake: ``any_number`` takes any From as one of the account's
    numbers (the simulator does not know the owner's); ``admit``, called with a message that passed every
    check, may refuse it with ``(HTTP status, code, message)`` (a full queue: 21611); ``on_accept`` is called
    with each message as it is recorded.
    """

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.numbers: set[str] = set()
        self.services: dict[str, tuple[str, ...]] = {}
        self.opted_out: set[str] = set()
        self.latency: float = 0.0
        self.drop_after_accept: bool = False
        self.any_number: bool = False
        self.admit: Callable[[SentMessage], tuple[int, int, str] | None] | None = None
        self.on_accept: Callable[[SentMessage], None] | None = None
        self.sent: list[SentMessage] = []
        self.requests = 0  # every request to the Messages endpoint, accepted or not
        self._failures: deque[_Failure] = deque()
        self._webhook = TwilioWebhook(auth_token, account_sid)
        self._credentials = (account_sid.encode("utf-8"), auth_token.encode("utf-8"))
        self.app = Starlette(
            routes=[Route(f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json", self._create, methods=["POST"])],
            exception_handlers={404: self._not_found},
        )

    # -- set-up -------------------------------------------------------------------------------------------------

    def add_number(self, number: str) -> None:
        """A number (or short code, or sender ID) this account owns and may send from."""
        self.numbers.add(number)

    def add_messaging_service(self, sid: str, numbers: Iterable[str] = ()) -> None:
        """A Messaging Service of this account and its sender pool (whose numbers become sendable too)."""
        pool = tuple(numbers)
        self.services[sid] = pool
        self.numbers.update(pool)

    def fail_next(
        self, n: int, status: int, code: int | None, message: str, *, retry_after: float | None = None
    ) -> None:
        """Answer the next ``n`` requests with this error, before any checks, and create nothing."""
        self._failures.extend([_Failure(status, code, message, retry_after)] * n)

    def reset(self) -> None:
        """Forget sent messages and queued failures (the numbers, services and knobs stay)."""
        self.sent.clear()
        self._failures.clear()
        self.requests = 0

    # -- the endpoint -------------------------------------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        received_at = time.monotonic()
        self.requests += 1
        response = await self._answer(request, received_at)
        if self.latency > 0:
            # After creating the message, like a slow answer from a Twilio that did its work.
            await asyncio.sleep(self.latency)
        return response

    async def _answer(self, request: Request, received_at: float) -> Response:
        if self._failures:
            failure = self._failures.popleft()
            return _error(failure.status, failure.code, failure.message, retry_after=failure.retry_after)
        if not self._authorized(request.headers.get("authorization", "")):
            return _error(401, 20003, "Authenticate", detail="Your AccountSid or AuthToken was incorrect.")
        if request.path_params["account_sid"] != self.account_sid:
            return _error(404, 20404, f"The requested resource {request.url.path} was not found")
        try:
            fields = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return _error(400, None, "The request body is not UTF-8 form data")
        try:
            message = self._accept(fields, received_at)
        except _TwilioError as exc:
            return _error(exc.status, exc.code, exc.message)
        refusal = self.admit(message) if self.admit is not None else None
        if refusal is not None:
            return _error(*refusal)
        self.sent.append(message)
        if self.on_accept is not None:
            self.on_accept(message)
        if self.drop_after_accept:
            return _HangUp()
        given_from = next((v.strip() for k, v in fields if k == "From"), "") or None
        return JSONResponse(self._resource(message, given_from), status_code=201)

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        # Both compared in full, constant time, like any credential check.
        return hmac.compare_digest(user, self._credentials[0]) & hmac.compare_digest(password, self._credentials[1])

    def _accept(self, fields: list[tuple[str, str]], received_at: float) -> SentMessage:
        """Twilio's checks on a create request, in the order that gives its most specific error first."""

        def first(name: str) -> str | None:
            return next((v for k, v in fields if k == name), None)

        to = (first("To") or "").strip()
        if not to:
            raise _TwilioError(400, 21604, "A 'To' phone number is required.")
        if not _E164.fullmatch(to):
            raise _TwilioError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        from_ = (first("From") or "").strip() or None
        service = (first("MessagingServiceSid") or "").strip() or None
        if from_ is None and service is None:
            raise _TwilioError(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message")
        if service is not None:
            if not _SERVICE_SID.fullmatch(service):
                raise _TwilioError(400, 21705, "The Messaging Service Sid is invalid.")
            if service not in self.services:
                raise _TwilioError(400, 21701, f"The Messaging Service {service} does not exist")
        if from_ is not None and from_ not in self.numbers and not self.any_number:
            raise _TwilioError(
                400,
                21606,
                f"The 'From' phone number provided ({from_}) is not a valid message-capable Twilio phone number "
                "for this destination/account",
            )
        body = first("Body") or ""
        media = tuple(v for k, v in fields if k == "MediaUrl")
        if not body and not media:
            if service is not None:
                raise _TwilioError(400, 21619, "A text message body, media URL or content SID is required")
            raise _TwilioError(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY:
            raise _TwilioError(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if len(media) > MAX_MEDIA:
            raise _TwilioError(400, 21623, "Number of media files exceeds allowed limit.")
        if any(urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc for url in media):
            raise _TwilioError(400, 21620, "Invalid media URL(s)")
        validity = first("ValidityPeriod")
        validity_period = None
        if validity is not None:
            if not validity.strip().isdigit() or not 1 <= int(validity) <= 36_000:
                raise _TwilioError(400, 21624, "Invalid validity period value")
            validity_period = int(validity)
        if to in self.opted_out:
            raise _TwilioError(400, 21610, "Attempt to send to unsubscribed recipient")
        pool = self.services.get(service, ()) if service is not None else ()
        return SentMessage(
            sid=("MM" if media else "SM") + secrets.token_hex(16),
            account_sid=self.account_sid,
            to=to,
            from_=from_ if from_ is not None else (pool[0] if pool else None),
            messaging_service_sid=service,
            body=body,
            media=media,
            status_callback=first("StatusCallback") or None,
            validity_period=validity_period,
            num_segments=count_segments(body).segments,
            received_at=received_at,
            date_created=datetime.now(UTC),
            # Through a Messaging Service Twilio answers "accepted" and picks a sender later; else "queued".
            status="accepted" if service is not None else "queued",
        )

    def _resource(self, message: SentMessage, given_from: str | None) -> dict[str, Any]:
        """The Message resource as Twilio's create answer shows it (``from`` is null until a service picks one)."""
        created = format_datetime(message.date_created)
        base = f"/{API_VERSION}/Accounts/{message.account_sid}/Messages/{message.sid}"
        return {
            "account_sid": message.account_sid,
            "api_version": API_VERSION,
            "body": message.body,
            "date_created": created,
            "date_sent": None,
            "date_updated": created,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": given_from,
            "messaging_service_sid": message.messaging_service_sid,
            "num_media": str(len(message.media)),
            "num_segments": str(message.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": message.status,
            "subresource_uris": {"media": f"{base}/Media.json"},
            "to": message.to,
            "uri": f"{base}.json",
        }

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        return _error(404, 20404, f"The requested resource {request.url.path} was not found")

    # -- status callbacks ---------------------------------------------------------------------------------------

    def status_callback_request(
        self, record: SentMessage, status: str, error_code: str | None = None, *, url: str | None = None
    ) -> tuple[str, bytes, dict[str, str]]:
        """The status callback Twilio would post for ``record``: ``(url, form body, headers)``, signed.

        ``url`` defaults to the message's StatusCallback. ``ErrorCode`` is sent with ``failed`` and
        ``undelivered`` (30008, "unknown error", unless ``error_code`` says otherwise) or whenever given;
        ``RawDlrDoneDate`` with ``delivered`` and ``undelivered``, as Twilio does. Repeating a call for the same
        message and status gives the same ``I-Twilio-Idempotency-Token``, as a retried callback would carry.
        """
        target = url if url is not None else record.status_callback
        if not target:
            raise ValueError(f"message {record.sid} was sent without a StatusCallback; pass url=")
        fields = [
            ("SmsSid", record.sid),
            ("SmsStatus", status),
            ("MessageStatus", status),
            ("To", record.to),
        ]
        if record.messaging_service_sid is not None:
            fields.append(("MessagingServiceSid", record.messaging_service_sid))
        fields += [
            ("MessageSid", record.sid),
            ("AccountSid", record.account_sid),
            ("From", record.from_ or ""),
            ("ApiVersion", API_VERSION),
        ]
        if error_code is not None or status in _FINAL_FAILURES:
            fields.append(("ErrorCode", error_code if error_code is not None else "30008"))
        if status in ("delivered", "undelivered"):
            fields.append(("RawDlrDoneDate", datetime.now(UTC).strftime("%y%m%d%H%M")))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": self._webhook.signature(target, fields),
            "I-Twilio-Idempotency-Token": str(uuid.uuid5(uuid.NAMESPACE_URL, f"twilio:{record.sid}:{status}")),
            "User-Agent": "TwilioProxy/1.1",
        }
        return target, urlencode(fields).encode("ascii"), headers

    async def deliver(
        self,
        record: SentMessage,
        client: httpx.AsyncClient,
        status: str = "delivered",
        *,
        error_code: str | None = None,
    ) -> httpx.Response:
        """Post the status callback for ``record`` with ``client`` (e.g. one on openline's ASGI app)."""
        url, body, headers = self.status_callback_request(record, status, error_code)
        response = await client.post(url, content=body, headers=headers)
        record.status = status
        return response
