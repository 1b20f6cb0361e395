"""Signed Twilio inbound webhooks as raw HTTP/1.1 requests, and a paced poster over keep-alive connections.

Raw bytes, not an HTTP client: building and signing every request up front and writing it on one of a
few dozen persistent connections is what lets one Python process offer thousands of requests per second,
so the server, not the client, is what gets measured. The poster understands just enough HTTP/1.1 for
openline's answers (a status line, headers, ``Content-Length`` or chunked body, ``Connection: close``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from openline.encoding import count_segments
from openline.phone import region_of
from openline.providers.twilio import TwilioWebhook
from openline.providers.twilio_send import API_VERSION

__all__ = ["NOT_ANSWERED", "Answer", "TwilioInbound", "post_all"]

NOT_ANSWERED = 0  # the status recorded when a request got no HTTP answer (refused, reset, timed out)
TIMEOUT_SECONDS = 10.0  # Twilio's own webhook timeout is 15 s; an answer slower than this is a failure anyway


class TwilioInbound:
    """Builds the webhook Twilio posts for an inbound text, signed as Twilio signs it.

    ``url`` is where the request goes; ``signed_url`` the URL openline checks the signature against
    (``OPENLINE_PUBLIC_URL`` + path when openline has one, else the same as ``url``).
    """

    def __init__(self, url: str, auth_token: str, account_sid: str, *, signed_url: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected an http:// URL (got {url!r})")
        self.host = parts.hostname
        self.port = parts.port or 80
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        self._host_header = f"{netloc}:{self.port}"
        self._signed_url = signed_url or url
        self._signer = TwilioWebhook(auth_token)
        self._account_sid = account_sid

    def fields(self, message_id: str, sender: str, to: str, body: str) -> list[tuple[str, str]]:
        """The form fields, in the order Twilio sends them."""
        return [
            ("ToCountry", region_of(to) or ""),
            ("ToState", ""),
            ("SmsMessageSid", message_id),
            ("NumMedia", "0"),
            ("ToCity", ""),
            ("FromZip", ""),
            ("SmsSid", message_id),
            ("FromState", ""),
            ("SmsStatus", "received"),
            ("FromCity", ""),
            ("Body", body),
            ("FromCountry", region_of(sender) or ""),
            ("To", to),
            ("ToZip", ""),
            ("NumSegments", str(count_segments(body).segments)),
            ("MessageSid", message_id),
            ("AccountSid", self._account_sid),
            ("From", sender),
            ("ApiVersion", API_VERSION),
        ]

    def request(self, message_id: str, sender: str, to: str, body: str) -> bytes:
        """The whole signed POST, ready to write on a connection."""
        fields = self.fields(message_id, sender, to, body)
        encoded = urlencode(fields).encode("ascii")
        head = (
            f"POST {self._path} HTTP/1.1\r\nHost: {self._host_header}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nUser-Agent: TwilioProxy/1.1\r\n"
            f"X-Twilio-Signature: {self._signer.signature(self._signed_url, fields)}\r\n"
            f"Content-Length: {len(encoded)}\r\n\r\n"
        )
        return head.encode("ascii") + encoded


@dataclass(frozen=True)
class Answer:
    status: int  # HTTP status, or NOT_ANSWERED
    latency: float  # seconds from writing the request to reading the whole answer
    sent_at: float  # time.monotonic() when the request was written


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, whether the server keeps the connection open) of one HTTP/1.1 answer, body consumed."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    if headers.get(b"transfer-encoding") == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return status, headers.get(b"connection") != b"close"


async def post_all(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    connections: int = 64,
    rate: float | None = None,
    time_limit: float | None = None,
) -> list[Answer | None]:
    """Post ``requests`` in order over ``connections`` keep-alive connections; one answer each, None for those
    never sent. ``rate`` (requests/s) spaces the starts evenly (an open schedule: a slow answer does not
    delay the requests behind it, as long as a connection is free); ``time_limit`` (s) stops sending then."""
    answers: list[Answer | None] = [None] * len(requests)
    started = time.monotonic()
    next_index = 0

    def take() -> int | None:
        nonlocal next_index
        if next_index >= len(requests):
            return None
        if time_limit is not None:
            due = next_index / rate if rate is not None else 0.0
            if max(due, time.monotonic() - started) >= time_limit:
                return None
        next_index += 1
        return next_index - 1

    async def connection() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while (i := take()) is not None:
                if rate is not None:
                    delay = started + i / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                sent_at = time.monotonic()
                try:
                    if writer is None or reader is None:
                        reader, writer = await asyncio.open_connection(host, port)
                    writer.write(requests[i])
                    status, keep = await asyncio.wait_for(_read_answer(reader), TIMEOUT_SECONDS)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
                    status, keep = NOT_ANSWERED, False
                answers[i] = Answer(status, time.monotonic() - sent_at, sent_at)
                if not keep and writer is not None:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    await asyncio.gather(*(connection() for _ in range(max(1, min(connections, len(requests))))))
    return answers
