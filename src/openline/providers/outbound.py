"""What the dispatcher hands a provider, and how a provider says a send failed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal, Protocol

import httpx

__all__ = [
    "ErrorKind",
    "OutboundProvider",
    "OutboundSms",
    "SendFailed",
    "accepted_id",
    "describe",
    "post",
    "retry_after",
    "snippet",
]


@dataclass(frozen=True)
class OutboundSms:
    message_id: int  # openline's id for the text (messages.id)
    to: str  # E.164
    sender: str  # the sender's address: E.164 number, short code or alphanumeric ID
    body: str
    media_urls: tuple[str, ...] = ()
    # Where the provider should post delivery receipts (None: the provider's account default).
    status_callback: str | None = None


class SendFailed(Exception):
    """The provider did not take the text.

    ``transient``: nothing was sent and trying again later may work (throttled, 5xx, could not connect).
    ``ambiguous``: the request may have reached the provider (a timeout after sending it): the text must
    not be submitted again, since that could text the person twice. ``opted_out``: the provider says
    the recipient unsubscribed (their STOP reached the carrier, not us).
    """

    def __init__(
        self,
        reason: str,
        *,
        code: str | None = None,
        transient: bool = False,
        ambiguous: bool = False,
        opted_out: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.transient = transient
        self.ambiguous = ambiguous
        self.opted_out = opted_out
        self.retry_after = retry_after


class OutboundProvider(Protocol):
    name: ClassVar[str]

    async def send(self, sms: OutboundSms) -> str:
        """Submit ``sms``; return the provider's id for it, or raise SendFailed."""


# How a provider's error code is handled: the recipient opted out, cannot receive, our setup is wrong,
# the content was refused, we went too fast, or a passing fault.
ErrorKind = Literal["opted_out", "recipient", "config", "content", "throttled", "temporary"]

# How much of an unexpected answer to quote in a reason.
SNIPPET_LENGTH = 200


def retry_after(header: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not header:
        return None
    header = header.strip()
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def snippet(response: httpx.Response) -> str:
    """The start of an unexpected answer's body, for a human reason."""
    text = response.text.strip().replace("\n", " ")
    return text[:SNIPPET_LENGTH] + ("…" if len(text) > SNIPPET_LENGTH else "")


def describe(exc: Exception) -> str:
    """An exception as a short reason: its type, and its message when it has one."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def post(client: httpx.AsyncClient, provider: str, url: str, **request: Any) -> httpx.Response:
    """POST to a provider's API, turning transport failures into the right SendFailed.

    No connection made (or none free in the pool): the request never went out, so sending again is safe
    (transient). Anything failing after it went out (a timeout, a dropped connection, an unreadable
    answer): the provider may have created the message and none of them takes an idempotency key, so
    it must not be sent again (ambiguous).
    """
    try:
        return await client.post(url, **request)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError) as exc:
        raise SendFailed(f"could not connect to {provider}: {describe(exc)}", transient=True) from exc
    except httpx.UnsupportedProtocol as exc:
        raise SendFailed(f"the {provider} API URL is not usable: {exc}") from exc
    except httpx.RequestError as exc:
        raise SendFailed(
            f"no answer from {provider} after sending; not retried so it cannot be sent twice ({describe(exc)})",
            ambiguous=True,
        ) from exc


def accepted_id(provider: str, response: httpx.Response, find: Callable[[Any], object]) -> str:
    """The provider's id for the message a 2xx answer created, picked from its JSON by ``find``.

    Without one the text exists at the provider but cannot be identified: ambiguous, never resent.
    """
    try:
        payload: Any = response.json()
    except ValueError:  # not JSON, or not UTF-8
        payload = None
    found = find(payload)
    if isinstance(found, str) and found:
        return found
    raise SendFailed(
        f"{provider} answered HTTP {response.status_code} without a message id; not retried so it cannot be sent "
        f"twice ({snippet(response)})",
        ambiguous=True,
    )
