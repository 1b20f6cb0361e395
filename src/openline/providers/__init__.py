"""Provider adapters: each knows its provider's wire format and nothing of openline's database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from openline.providers.base import (
    BadSignature,
    IgnoredEvent,
    InboundSms,
    InboundWebhook,
    MalformedWebhook,
    Media,
    StatusReport,
    WebhookRejected,
    WebhookRequest,
)
from openline.providers.outbound import OutboundProvider, OutboundSms, SendFailed
from openline.providers.plivo import PlivoWebhook
from openline.providers.plivo_send import PlivoSender
from openline.providers.plivo_send import explain as plivo_explain
from openline.providers.sandbox import SandboxSender, SandboxWebhook
from openline.providers.smpp import SmppSender
from openline.providers.smpp import explain as smpp_explain
from openline.providers.telnyx import TelnyxWebhook
from openline.providers.telnyx_send import TelnyxSender
from openline.providers.telnyx_send import explain as telnyx_explain
from openline.providers.twilio import TwilioWebhook
from openline.providers.twilio_send import TwilioSender
from openline.providers.twilio_send import explain as twilio_explain
from openline.providers.vonage import VonageWebhook
from openline.providers.vonage_send import VonageSender
from openline.providers.vonage_send import explain_receipt as vonage_explain_receipt
from openline.settings import Settings

__all__ = [
    "BadSignature",
    "IgnoredEvent",
    "InboundSms",
    "InboundWebhook",
    "MalformedWebhook",
    "Media",
    "OutboundProvider",
    "OutboundSms",
    "SendFailed",
    "WebhookRejected",
    "WebhookRequest",
    "inbound_webhooks",
    "outbound_providers",
]


def inbound_webhooks(settings: Settings, sandbox_key: bytes) -> dict[str, InboundWebhook]:
    """The inbound webhooks this installation accepts: the sandbox, and each provider with credentials.

    A provider without credentials has no webhook: its requests are refused, never accepted unchecked.
    """
    hooks: dict[str, InboundWebhook] = {
        "sandbox": SandboxWebhook(sandbox_key if settings.sandbox_verify_signatures else None),
    }
    if settings.twilio_auth_token is not None:
        hooks["twilio"] = TwilioWebhook(settings.twilio_auth_token.get_secret_value(), settings.twilio_account_sid)
    if settings.vonage_signature_secret is not None:
        hooks["vonage"] = VonageWebhook(
            settings.vonage_signature_secret.get_secret_value(),
            settings.vonage_signature_method,
            settings.webhook_tolerance_seconds,
        )
    if settings.telnyx_public_key is not None:
        hooks["telnyx"] = TelnyxWebhook(settings.telnyx_public_key, settings.webhook_tolerance_seconds)
    if settings.plivo_auth_token is not None:
        hooks["plivo"] = PlivoWebhook(settings.plivo_auth_token.get_secret_value())
    return hooks


def outbound_providers(
    settings: Settings, client: httpx.AsyncClient, *, on_status: Callable[[StatusReport], Awaitable[None]]
) -> dict[str, OutboundProvider]:
    """The providers this installation can send through: the sandbox, and each provider with credentials.

    ``on_status`` stores a delivery receipt (``Ingest.receive_status``): SMPP receipts arrive on the
    sending connection itself rather than at a webhook.
    """
    providers: dict[str, OutboundProvider] = {"sandbox": SandboxSender()}
    if settings.twilio_account_sid and settings.twilio_auth_token is not None:
        providers["twilio"] = TwilioSender(
            client,
            api_url=settings.twilio_api_url,
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            messaging_service_sid=settings.twilio_messaging_service_sid,
        )
    if settings.vonage_api_key and settings.vonage_api_secret is not None:
        providers["vonage"] = VonageSender(
            client,
            api_url=settings.vonage_api_url,
            api_key=settings.vonage_api_key,
            api_secret=settings.vonage_api_secret.get_secret_value(),
        )
    if settings.telnyx_api_key is not None:
        providers["telnyx"] = TelnyxSender(
            client,
            api_url=settings.telnyx_api_url,
            api_key=settings.telnyx_api_key.get_secret_value(),
            messaging_profile_id=settings.telnyx_messaging_profile_id,
        )
    if settings.plivo_auth_id and settings.plivo_auth_token is not None:
        providers["plivo"] = PlivoSender(
            client,
            api_url=settings.plivo_api_url,
            auth_id=settings.plivo_auth_id,
            auth_token=settings.plivo_auth_token.get_secret_value(),
        )
    if settings.smpp_host and settings.smpp_system_id:
        providers["smpp"] = SmppSender(
            settings.smpp_host,
            settings.smpp_port,
            settings.smpp_system_id,
            settings.smpp_password.get_secret_value() if settings.smpp_password is not None else "",
            settings.smpp_system_type,
            on_receipt=lambda receipt: on_status(
                StatusReport("smpp", receipt.provider_message_id, receipt.status, receipt.status, receipt.error_code)
            ),
        )
    return providers


def explain_error(provider: str, code: str) -> str:
    """A human reason for a provider's error code (in a delivery receipt or a refused send)."""
    explainers = {
        "twilio": twilio_explain,
        "vonage": vonage_explain_receipt,
        "telnyx": telnyx_explain,
        "plivo": plivo_explain,
        "smpp": smpp_explain,
    }
    explainer = explainers.get(provider)
    return explainer(code) if explainer is not None else f"{provider} error {code}"
