"""What every provider adapter produces from a webhook, and how it refuses one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Protocol
from urllib.parse import parse_qsl

__all__ = [
    "BadSignature",
    "IgnoredEvent",
    "InboundSms",
    "InboundWebhook",
    "MalformedWebhook",
    "Media",
    "StatusReport",
    "StatusWebhook",
    "WebhookRejected",
    "WebhookRequest",
    "check_fresh",
    "single",
]


@dataclass(frozen=True)
class Media:
    url: str
    content_type: str | None = None


@dataclass(frozen=True)
class InboundSms:
    """One inbound text as the provider reported it (numbers in E.164, short codes as digits)."""

    provider: str
    provider_message_id: str
    from_number: str
    to: str
    body: str
    media: tuple[Media, ...] = ()


@dataclass(frozen=True)
class WebhookRequest:
    """A webhook request as an adapter sees it, independent of the web framework.

    ``url`` is the URL the provider called, as the provider knows it: ``OPENLINE_PUBLIC_URL`` + path
    + query string (signatures cover it, so it must not be rebuilt from what a proxy forwarded).
    """

    method: str
    url: str
    headers: Mapping[str, str]  # names in lower case
    body: bytes
    query: str = ""
    received_at: datetime | None = None
    # Parsed once: verifying and reading a request both need the fields.
    _parsed: dict[str, list[tuple[str, str]]] = field(default_factory=dict, repr=False, compare=False)

    def form(self) -> list[tuple[str, str]]:
        """The body as form fields (in order, repeats kept); MalformedWebhook if it is not UTF-8."""
        fields = self._parsed.get("form")
        if fields is None:
            try:
                fields = parse_qsl(self.body.decode("utf-8"), keep_blank_values=True)
            except UnicodeDecodeError:
                raise MalformedWebhook("the body is not UTF-8 form data") from None
            self._parsed["form"] = fields
        return fields

    def query_params(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query, keep_blank_values=True)


@dataclass(frozen=True)
class StatusReport:
    """A delivery receipt: what became of a text openline sent."""

    provider: str
    provider_message_id: str
    status: str  # openline's word: sent, delivered, undelivered or failed
    provider_status: str  # the provider's own word, kept for the record
    error_code: str | None = None


class StatusWebhook(Protocol):
    """A provider's delivery-receipt webhook (``/webhooks/<provider>/status``)."""

    name: ClassVar[str]

    def verify(self, request: WebhookRequest, now: datetime) -> None: ...

    def parse_status(self, request: WebhookRequest) -> StatusReport:
        """Raise MalformedWebhook naming a bad field, IgnoredEvent for an interim status."""

    def acknowledge(self) -> tuple[bytes, str]: ...


class InboundWebhook(Protocol):
    """A provider's inbound-text webhook: check it came from the provider, read it, answer it."""

    name: ClassVar[str]

    def verify(self, request: WebhookRequest, now: datetime) -> None:
        """Raise BadSignature unless the request is signed by the provider (and fresh, where it says when)."""

    def parse(self, request: WebhookRequest) -> InboundSms:
        """Raise MalformedWebhook naming the field that is missing or wrong."""

    def acknowledge(self) -> tuple[bytes, str]:
        """The body and media type of the success answer the provider expects."""


class WebhookRejected(Exception):
    """A webhook request openline refuses; ``status_code`` is what the provider gets back."""

    status_code = 400


class BadSignature(WebhookRejected):
    status_code = 403


class MalformedWebhook(WebhookRejected):
    status_code = 400


class IgnoredEvent(WebhookRejected):
    """A genuine webhook that carries no inbound text openline can keep: answered 200 and not stored.

    A refusal (4xx) would only make the provider send it again (Telnyx: to the failover URL; Vonage:
    for 24 hours), so the provider is told it arrived. The message says what it was.
    """

    status_code = 200


def single(fields: list[tuple[str, str]], name: str, *, required: bool = True) -> str:
    """The one value of form field ``name``; MalformedWebhook if missing (or blank when required) or repeated."""
    values = [v for k, v in fields if k == name]
    if not values or (required and not values[0].strip()):
        raise MalformedWebhook(f"missing field {name!r}")
    if len(values) > 1:
        raise MalformedWebhook(f"field {name!r} given {len(values)} times")
    return values[0]


def check_fresh(timestamp: int, now: datetime, tolerance: int, what: str) -> None:
    """Refuse a signed request whose ``timestamp`` (Unix seconds) is further than ``tolerance`` from
    ``now``: a replay, or a clock that is off. Call it after the signature check, so that "too old" is
    only ever said of a genuine request."""
    age = now.timestamp() - timestamp
    if abs(age) > tolerance:
        raise BadSignature(
            f"{what} is {int(abs(age))} s {'old' if age > 0 else 'in the future'}: too old or in the "
            f"future (tolerance {tolerance} s; check this server's clock)"
        )
