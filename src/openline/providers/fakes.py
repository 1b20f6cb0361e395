"""Local stand-ins for Vonage's SMS API, Telnyx's Messaging API and Plivo's Message API, for tests
(``httpx.ASGITransport``) and benchmarks (``uvicorn.run(fake.app, ...)``, then ``api_url="http://127.0.0.1:<port>"``).

Each checks requests the way its provider does (credentials, required fields, number formats), answers with the
provider's status codes and JSON shapes, records every text it accepts (``sent``) and can be told to misbehave:
``fail_next()`` queues error answers, ``latency`` delays every answer (after the text is recorded, like a slow
provider that did its work), ``drop_after_accept`` records the text and then breaks the connection, and
``opted_out`` holds recipients who sent STOP. What an opt-out does follows the provider: Telnyx refuses the text
(409, code 40300); Vonage and Plivo accept it and fail it afterwards, so the record's ``status`` is ``"failed"``
with the receipt's ``error_code`` (Vonage ``err-code`` 9, Plivo 200).

Where a provider's exact behaviour is not documented the fake picks one and says so in the class docstring.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from openline.encoding import Encoding, count_segments
from openline.providers.fake_twilio import DroppedConnection

__all__ = ["FakePlivo", "FakeTelnyx", "FakeVonage", "SentText"]

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_DIGITS = re.compile(r"[1-9][0-9]{6,14}")  # Vonage: international format without "+" or "00"
_ALPHANUMERIC = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")  # a sender ID: up to 11, at least one letter
_SHORT_CODE = re.compile(r"[0-9]{3,8}")
MAX_MEDIA = 10


@dataclass
class SentText:
    """A text a fake accepted."""

    id: str  # the provider's ID for it (Vonage: the first part's message-id)
    to: str  # as the request gave it
    sender: str | None  # as the request gave it (None: Telnyx picked one from the messaging profile)
    body: str  # as the recipient will see it (Vonage without type=unicode: "?" for what GSM-7 lacks)
    media: tuple[str, ...]
    status_callback: str | None
    segments: int
    fields: dict[str, Any]  # the whole request, parsed
    received_at: float  # time.monotonic() when the request arrived
    status: str = "queued"
    error_code: str | None = None  # set when the provider fails the text after accepting it
    part_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Failure:
    status: int
    content: Any
    retry_after: float | None


class _Refusal(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


class _HangUp(Response):
    """Start the answer, then break off: the text exists but the client never learns its ID."""

    def __init__(self, status: int) -> None:
        super().__init__(status_code=status)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": self.status_code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1024")],
            }
        )
        raise DroppedConnection("the fake provider recorded the text and dropped the connection (drop_after_accept)")


def _json(content: Any, status: int = 200, retry_after: float | None = None) -> JSONResponse:
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    return JSONResponse(content, status_code=status, headers=headers)


def _is_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _basic_auth(header: str) -> tuple[bytes, bytes] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return None
    return user, password


def _same(given: bytes, expected: bytes) -> bool:
    return hmac.compare_digest(given, expected)


class _FakeProvider:
    """What the three fakes share: knobs, the record of sent texts and queued failures."""

    def __init__(self) -> None:
        self.numbers: set[str] = set()
        self.opted_out: set[str] = set()
        self.latency: float = 0.0
        self.drop_after_accept: bool = False
        self.sent: list[SentText] = []
        self.requests = 0  # every request to the send endpoint, accepted or not
        self._failures: deque[_Failure] = deque()

    def add_number(self, number: str) -> None:
        """A number (or short code) this account owns and may send from, in E.164 (``+`` optional)."""
        self.numbers.add(number.removeprefix("+"))

    def reset(self) -> None:
        """Forget sent texts and queued failures (numbers and knobs stay)."""
        self.sent.clear()
        self._failures.clear()
        self.requests = 0

    def _owns(self, sender: str) -> bool:
        return sender.removeprefix("+") in self.numbers

    @staticmethod
    def _listed(number: str, numbers: set[str]) -> bool:
        """Whether ``number`` is in ``numbers``, with or without ``+`` on either side."""
        bare = number.removeprefix("+")
        return bare in numbers or f"+{bare}" in numbers

    async def _handle(self, request: Request) -> Response:
        received_at = time.monotonic()
        self.requests += 1
        if self._failures:
            failure = self._failures.popleft()
            response: Response = _json(failure.content, failure.status, failure.retry_after)
        else:
            try:
                response = await self._accept(request, received_at)
            except _Refusal as refusal:
                response = refusal.response
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        return response

    async def _accept(self, request: Request, received_at: float) -> Response:
        raise NotImplementedError


class FakeVonage(_FakeProvider):
    """Vonage's ``/sms/json`` for one account (form or JSON bodies; credentials in the body or the query).

    Choices where Vonage documents no exact behaviour: numbers are checked as 7 to 15 digits; a numeric ``from``
    must be a number of this account (``add_number``), an alphanumeric one is up to 11 characters; message-ids
    are UUIDs; without ``type=unicode`` every code point GSM-7 lacks becomes one ``?``. ``barred`` recipients
    are refused with status 7. ``fail_next()`` queues answers in Vonage's shape: HTTP 200 and a non-zero status.
    """

    def __init__(self, api_key: str, api_secret: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.api_secret = api_secret
        self.barred: set[str] = set()
        self.app = Starlette(routes=[Route("/sms/json", self._handle, methods=["POST"])])

    def fail_next(
        self,
        n: int,
        status: str | int = "1",
        error_text: str = "Throttled",
        *,
        http_status: int = 200,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``n`` requests with this status (and HTTP status), before any checks."""
        content = {"message-count": "1", "messages": [{"status": str(status), "error-text": error_text}]}
        self._failures.extend([_Failure(http_status, content, retry_after)] * n)

    @staticmethod
    def _refuse(status: str, error_text: str, to: str | None = None) -> _Refusal:
        message = {"status": status, "error-text": error_text}
        if to:
            message = {"to": to, **message}
        return _Refusal(_json({"message-count": "1", "messages": [message]}))

    async def _accept(self, request: Request, received_at: float) -> Response:
        raw = await request.body()
        fields: dict[str, Any] = dict(request.query_params)
        try:
            if request.headers.get("content-type", "").startswith("application/json"):
                parsed = json.loads(raw or b"{}")
                if not isinstance(parsed, dict):
                    raise ValueError("not an object")
                fields.update(parsed)
            else:
                fields.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        except (ValueError, UnicodeDecodeError) as exc:
            raise self._refuse("3", "Invalid request body") from exc
        for name in ("api_key", "api_secret"):
            if not fields.get(name):
                raise self._refuse("2", f"Missing {name}")
        if not (
            _same(str(fields["api_key"]).encode(), self.api_key.encode())
            & _same(str(fields["api_secret"]).encode(), self.api_secret.encode())
        ):
            raise self._refuse("4", "Bad Credentials")
        for name in ("from", "to", "text"):
            if not fields.get(name):
                raise self._refuse("2", f"Missing {name} param")
        to, sender, text = str(fields["to"]), str(fields["from"]), str(fields["text"])
        if not _DIGITS.fullmatch(to):
            raise self._refuse("3", "Invalid to address", to)
        numeric = sender.isdigit()
        if (numeric and sender not in self.numbers) or (not numeric and not _ALPHANUMERIC.fullmatch(sender)):
            raise self._refuse("15", "Illegal Sender Address - rejected", to)
        kind = fields.get("type", "text")
        if kind not in ("text", "unicode"):
            raise self._refuse("3", "Invalid type parameter", to)
        callback = fields.get("callback")
        if callback is not None and not _is_url(callback):
            raise self._refuse("23", "Invalid callback url", to)
        if self._listed(to, self.barred):
            raise self._refuse("7", "Number barred", to)
        if kind == "unicode":
            body = text
            units = len(text.encode("utf-16-le")) // 2
            parts = 1 if units <= 70 else -(-units // 67)
        else:
            body = "".join("?" if count_segments(ch).encoding is Encoding.ucs2 else ch for ch in text)
            parts = count_segments(body).segments
        part_ids = tuple(str(uuid.uuid4()) for _ in range(parts))
        record = SentText(
            id=part_ids[0],
            to=to,
            sender=sender,
            body=body,
            media=(),
            status_callback=callback,
            segments=parts,
            fields=fields,
            received_at=received_at,
            part_ids=part_ids,
        )
        if self._listed(to, self.opted_out):
            # Vonage takes the text (status 0) and reports the opt-out in the receipt: err-code 9.
            record.status, record.error_code = "failed", "9"
        self.sent.append(record)
        if self.drop_after_accept:
            return _HangUp(200)
        messages = [
            {
                "to": to,
                "message-id": part_id,
                "status": "0",
                "remaining-balance": "15.53590000",
                "message-price": "0.03330000",
                "network": "23410",
                **({"client-ref": fields["client-ref"]} if "client-ref" in fields else {}),
            }
            for part_id in part_ids
        ]
        return _json({"message-count": str(parts), "messages": messages})


class FakeTelnyx(_FakeProvider):
    """Telnyx's ``/v2/messages`` for one API key.

    Choices where Telnyx documents no exact behaviour: validation errors are answered 400 (a ``from`` that is not
    a number of this account: 40013; an unknown messaging profile: 10017), a missing or wrong key 401 / 10009.
    ``profiles`` maps messaging profile IDs to their number pools; an alphanumeric ``from`` needs a profile.
    """

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.profiles: dict[str, tuple[str, ...]] = {}
        self.app = Starlette(routes=[Route("/v2/messages", self._handle, methods=["POST"])])

    def add_profile(self, profile_id: str, numbers: tuple[str, ...] = ()) -> None:
        """A messaging profile of this account and its number pool (whose numbers become sendable too)."""
        self.profiles[profile_id] = numbers
        for number in numbers:
            self.add_number(number)

    def fail_next(
        self,
        n: int,
        status: int,
        code: str,
        title: str,
        *,
        detail: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``n`` requests with this error, before any checks, and create nothing."""
        content = {"errors": [{"code": code, "title": title, "detail": detail or title}]}
        self._failures.extend([_Failure(status, content, retry_after)] * n)

    @staticmethod
    def _refuse(status: int, code: str, title: str, detail: str, pointer: str | None = None) -> _Refusal:
        error: dict[str, Any] = {"code": code, "title": title, "detail": detail}
        if pointer is not None:
            error["source"] = {"pointer": pointer}
        return _Refusal(_json({"errors": [error]}, status))

    async def _accept(self, request: Request, received_at: float) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not _same(token.strip().encode(), self.api_key.encode()):
            raise self._refuse(
                401,
                "10009",
                "Authentication failed",
                "The required authentication headers were either invalid or not included in the request.",
            )
        try:
            fields = json.loads(await request.body())
        except ValueError as exc:
            raise self._refuse(400, "10023", "Invalid JSON", "The supplied JSON is not valid.") from exc
        if not isinstance(fields, dict):
            raise self._refuse(400, "10015", "Bad Request", "The request body must be a JSON object.")
        to = fields.get("to")
        if not to:
            raise self._refuse(400, "10004", "Missing required parameter", "The 'to' parameter is required.", "/to")
        if not isinstance(to, str) or not _E164.fullmatch(to):
            raise self._refuse(
                400, "10016", "Phone number must be in +E.164 format", "The 'to' number must be +E.164.", "/to"
            )
        profile = fields.get("messaging_profile_id")
        if profile is not None and profile not in self.profiles:
            raise self._refuse(
                400,
                "10017",
                "Associated resource does not exist",
                f"Messaging profile {profile} does not exist.",
                "/messaging_profile_id",
            )
        sender = fields.get("from")
        if not sender:
            pool = self.profiles.get(profile, ()) if profile is not None else ()
            if not pool:
                raise self._refuse(
                    400, "10004", "Missing required parameter", "The 'from' parameter is required.", "/from"
                )
        elif not isinstance(sender, str):
            raise self._refuse(400, "10015", "Bad Request", "'from' must be a string.", "/from")
        elif _ALPHANUMERIC.fullmatch(sender) and not sender.isdigit():
            if profile is None:
                raise self._refuse(
                    400,
                    "10004",
                    "Missing required parameter",
                    "An alphanumeric sender ID requires a messaging_profile_id.",
                    "/messaging_profile_id",
                )
        elif not self._owns(sender):
            raise self._refuse(
                400, "40013", "Invalid source number", f"{sender} is not a messaging-enabled number.", "/from"
            )
        text = fields.get("text")
        media = fields.get("media_urls") or []
        if text is not None and not isinstance(text, str):
            raise self._refuse(400, "10015", "Bad Request", "'text' must be a string.", "/text")
        if not text and not media:
            raise self._refuse(
                400, "10004", "Missing required parameter", "Either 'text' or 'media_urls' is required.", "/text"
            )
        if not isinstance(media, list) or len(media) > MAX_MEDIA or not all(_is_url(url) for url in media):
            raise self._refuse(400, "10003", "Invalid URL", "The media URLs are invalid.", "/media_urls")
        webhook = fields.get("webhook_url")
        if webhook is not None and not _is_url(webhook):
            raise self._refuse(400, "10003", "Invalid URL", "The webhook URL is invalid.", "/webhook_url")
        if self._listed(to, self.opted_out):
            raise self._refuse(
                409,
                "40300",
                "Blocked due to STOP message",
                f"Messages cannot be sent from {sender} to {to} due to an existing block rule.",
            )
        chosen = sender or self.profiles[str(profile)][0]
        body = text or ""
        record = SentText(
            id=str(uuid.uuid4()),
            to=to,
            sender=sender or None,
            body=body,
            media=tuple(media),
            status_callback=webhook,
            segments=count_segments(body).segments if body else 1,
            fields=fields,
            received_at=received_at,
        )
        self.sent.append(record)
        if self.drop_after_accept:
            return _HangUp(200)
        encoding = "UCS-2" if body and count_segments(body).encoding is Encoding.ucs2 else "GSM-7"
        data = {
            "record_type": "message",
            "id": record.id,
            "direction": "outbound",
            "type": "MMS" if media else "SMS",
            "messaging_profile_id": profile,
            "from": {"phone_number": chosen, "carrier": "Telnyx", "line_type": "VoIP"},
            "to": [{"phone_number": to, "status": "queued"}],
            "text": body,
            "media": [{"url": url} for url in media],
            "webhook_url": webhook,
            "encoding": encoding,
            "parts": record.segments,
            "errors": [],
        }
        return _json({"data": data})


class FakePlivo(_FakeProvider):
    """Plivo's ``/v1/Account/{auth_id}/Message/`` for one account.

    Choices where Plivo documents no exact behaviour: the words of the 400 answers; a wrong or missing login, or
    an auth ID in the path that is not the login's, is answered 401 ``{"error": "authentication failed"}``; text
    is limited to 1600 characters. Like Plivo, a ``src`` that is not a number of this account (``add_number``) or
    a sender ID is accepted and then failed with error 40, and ``dst`` may name several recipients joined by
    ``<`` (one UUID each).
    """

    MAX_TEXT = 1600

    def __init__(self, auth_id: str, auth_token: str) -> None:
        super().__init__()
        self.auth_id = auth_id
        self.auth_token = auth_token
        self.app = Starlette(routes=[Route("/v1/Account/{auth_id}/Message/", self._handle, methods=["POST"])])

    def fail_next(self, n: int, status: int, error: str, *, retry_after: float | None = None) -> None:
        """Answer the next ``n`` requests with this error, before any checks, and queue nothing."""
        self._failures.extend([_Failure(status, {"api_id": str(uuid.uuid4()), "error": error}, retry_after)] * n)

    @staticmethod
    def _refuse(status: int, error: str) -> _Refusal:
        return _Refusal(_json({"api_id": str(uuid.uuid4()), "error": error}, status))

    async def _accept(self, request: Request, received_at: float) -> Response:
        login = _basic_auth(request.headers.get("authorization", ""))
        if (
            login is None
            or not (_same(login[0], self.auth_id.encode()) & _same(login[1], self.auth_token.encode()))
            or request.path_params["auth_id"] != self.auth_id
        ):
            raise self._refuse(401, "authentication failed")
        try:
            fields = json.loads(await request.body())
        except ValueError as exc:
            raise self._refuse(400, "invalid json data") from exc
        if not isinstance(fields, dict):
            raise self._refuse(400, "invalid json data")
        for name in ("src", "dst"):
            if not fields.get(name):
                raise self._refuse(400, f"{name} parameter not present")
        src, dst = str(fields["src"]), str(fields["dst"])
        recipients = dst.split("<")
        if any(not _E164.fullmatch("+" + r.removeprefix("+")) for r in recipients):
            raise self._refuse(400, "invalid dst parameter")
        if src in recipients:
            raise self._refuse(400, "src and dst cannot be same")
        kind = fields.get("type", "sms")
        if kind not in ("sms", "mms"):
            raise self._refuse(400, "invalid type parameter")
        media = fields.get("media_urls") or []
        text = fields.get("text")
        if media and kind != "mms":
            raise self._refuse(400, "media_urls is only allowed with type mms")
        if not isinstance(media, list) or len(media) > MAX_MEDIA or not all(_is_url(url) for url in media):
            raise self._refuse(400, "invalid media_urls parameter")
        if text is not None and not isinstance(text, str):
            raise self._refuse(400, "invalid text parameter")
        if not text and not media:
            raise self._refuse(400, "text parameter not present")
        if text and len(text) > self.MAX_TEXT:
            raise self._refuse(400, f"text parameter length exceeds {self.MAX_TEXT} characters")
        url = fields.get("url")
        if url is not None and not _is_url(url):
            raise self._refuse(400, "invalid url parameter")
        if fields.get("method", "POST") not in ("GET", "POST"):
            raise self._refuse(400, "invalid method parameter")
        body = text or ""
        known_source = self._owns(src) or bool(_ALPHANUMERIC.fullmatch(src) and not src.isdigit())
        uuids = []
        for recipient in recipients:
            record = SentText(
                id=str(uuid.uuid4()),
                to=recipient,
                sender=src,
                body=body,
                media=tuple(media),
                status_callback=url,
                segments=count_segments(body).segments if body else 1,
                fields=fields,
                received_at=received_at,
            )
            # Plivo queues these and fails them afterwards; the failure shows in the MDR and the status callback.
            if not known_source:
                record.status, record.error_code = "failed", "40"
            elif self._listed(recipient, self.opted_out):
                record.status, record.error_code = "failed", "200"
            self.sent.append(record)
            uuids.append(record.id)
        if self.drop_after_accept:
            return _HangUp(202)
        return _json({"api_id": str(uuid.uuid4()), "message": "message(s) queued", "message_uuid": uuids}, 202)
