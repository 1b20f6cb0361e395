"""Sending through Vonage, Telnyx and Plivo: the requests, how every failure is classified, and the fakes."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from openline.providers.base import StatusReport
from openline.providers.fakes import FakePlivo, FakeTelnyx, FakeVonage
from openline.providers.outbound import OutboundProvider, OutboundSms, SendFailed
from openline.providers.plivo_send import PLIVO_ERRORS, PlivoSender
from openline.providers.plivo_send import explain as plivo_explain
from openline.providers.telnyx_send import TELNYX_ERRORS, TelnyxSender
from openline.providers.telnyx_send import explain as telnyx_explain
from openline.providers.vonage_send import VONAGE_ERRORS, VONAGE_RECEIPT_ERRORS, VonageSender, explain_receipt
from openline.providers.vonage_send import explain as vonage_explain

NUMBER = "+12025550123"
MEMBER = "+14155550199"
CALLBACK = "https://openline.example/webhooks/status"
API = "https://provider.test"
HINDI = "नमस्ते, आज शाम सात बजे बैठक है 🙏🎉"
VONAGE_KEY, VONAGE_SECRET = "a1b2c3d4", "s3cr3tS3cr3t"
TELNYX_KEY = "KEY0123456789ABCDEF_secret"
PLIVO_ID, PLIVO_TOKEN = "MAXXXXXXXXXXXXXXXXXX", "plivo-token-0123456789"
PROFILE = "16fd2706-8baf-433b-82eb-8c7fada847da"
PICTURE = "https://openline.example/media/flyer.jpg"


def sms(body: str = "Hello from the garden club", **changes: object) -> OutboundSms:
    fields: dict[str, object] = {"message_id": 7, "to": MEMBER, "sender": NUMBER, "body": body}
    fields.update(changes)
    return OutboundSms(**fields)  # type: ignore[arg-type]


async def failure(provider: OutboundProvider, message: OutboundSms | None = None) -> SendFailed:
    with pytest.raises(SendFailed) as caught:
        await provider.send(message or sms())
    return caught.value


def permanent(exc: SendFailed) -> bool:
    return not (exc.transient or exc.ambiguous or exc.opted_out)


def mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def asgi_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app))


def vonage(client: httpx.AsyncClient, **changes: Any) -> VonageSender:
    options: dict[str, Any] = {"api_url": API, "api_key": VONAGE_KEY, "api_secret": VONAGE_SECRET} | changes
    return VonageSender(client, **options)


def telnyx(client: httpx.AsyncClient, **changes: Any) -> TelnyxSender:
    options: dict[str, Any] = {"api_url": API, "api_key": TELNYX_KEY} | changes
    return TelnyxSender(client, **options)


def plivo(client: httpx.AsyncClient, **changes: Any) -> PlivoSender:
    options: dict[str, Any] = {"api_url": API, "auth_id": PLIVO_ID, "auth_token": PLIVO_TOKEN} | changes
    return PlivoSender(client, **options)


SENDERS: dict[str, Callable[[httpx.AsyncClient], OutboundProvider]] = {
    "vonage": vonage,
    "telnyx": telnyx,
    "plivo": plivo,
}


# -- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_vonage() -> FakeVonage:
    fake = FakeVonage(VONAGE_KEY, VONAGE_SECRET)
    fake.add_number(NUMBER)
    return fake


@pytest.fixture
def fake_telnyx() -> FakeTelnyx:
    fake = FakeTelnyx(TELNYX_KEY)
    fake.add_number(NUMBER)
    return fake


@pytest.fixture
def fake_plivo() -> FakePlivo:
    fake = FakePlivo(PLIVO_ID, PLIVO_TOKEN)
    fake.add_number(NUMBER)
    return fake


@pytest.fixture
async def vonage_client(fake_vonage: FakeVonage) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(fake_vonage.app) as client:
        yield client


@pytest.fixture
async def telnyx_client(fake_telnyx: FakeTelnyx) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(fake_telnyx.app) as client:
        yield client


@pytest.fixture
async def plivo_client(fake_plivo: FakePlivo) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(fake_plivo.app) as client:
        yield client


# -- all three: the protocol, and failures below HTTP --------------------------------------------------------------


@pytest.mark.parametrize("provider", SENDERS)
def test_each_sender_is_an_outbound_provider_with_its_name(provider: str) -> None:
    sender: OutboundProvider = SENDERS[provider](httpx.AsyncClient())
    assert sender.name == provider


@pytest.mark.parametrize(
    "make",
    [
        lambda c: VonageSender(c, api_key="", api_secret="x"),
        lambda c: VonageSender(c, api_key="k", api_secret="x", api_url="ftp://x"),
        lambda c: TelnyxSender(c, api_key=""),
        lambda c: PlivoSender(c, auth_id="MA", auth_token=""),
    ],
)
def test_senders_refuse_unusable_settings(make: Callable[[httpx.AsyncClient], object]) -> None:
    with pytest.raises(ValueError):
        make(httpx.AsyncClient())


@pytest.mark.parametrize("provider", SENDERS)
@pytest.mark.parametrize(
    "error", [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow dns"), httpx.PoolTimeout("pool full")]
)
async def test_no_connection_is_transient(provider: str, error: httpx.TransportError) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    async with mock_client(handler) as client:
        exc = await failure(SENDERS[provider](client))
    assert exc.transient and not exc.ambiguous


@pytest.mark.parametrize("provider", SENDERS)
@pytest.mark.parametrize(
    "error",
    [
        httpx.ReadTimeout("no answer"),
        httpx.WriteTimeout("stuck"),
        httpx.RemoteProtocolError("closed"),
        httpx.ReadError("reset"),
    ],
)
async def test_losing_the_answer_after_sending_is_ambiguous(provider: str, error: httpx.TransportError) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    async with mock_client(handler) as client:
        exc = await failure(SENDERS[provider](client))
    assert exc.ambiguous and not exc.transient
    assert "not retried" in exc.reason


@pytest.mark.parametrize("provider", SENDERS)
@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_ambiguous(provider: str, status: int) -> None:
    async with mock_client(lambda request: httpx.Response(status, text="oops")) as client:
        exc = await failure(SENDERS[provider](client))
    assert exc.ambiguous and not exc.transient


@pytest.mark.parametrize("provider", SENDERS)
async def test_success_without_an_id_is_ambiguous(provider: str) -> None:
    async with mock_client(lambda request: httpx.Response(200 if provider != "plivo" else 202, json={})) as client:
        exc = await failure(SENDERS[provider](client))
    assert exc.ambiguous


@pytest.mark.parametrize("provider", SENDERS)
async def test_http_429_is_transient_with_retry_after(provider: str) -> None:
    async with mock_client(lambda request: httpx.Response(429, headers={"Retry-After": "7"}, json={})) as client:
        exc = await failure(SENDERS[provider](client))
    assert exc.transient and exc.retry_after == 7.0


async def test_a_dropped_connection_after_the_fake_recorded_the_text_is_ambiguous(
    fake_vonage: FakeVonage,
    fake_telnyx: FakeTelnyx,
    fake_plivo: FakePlivo,
    vonage_client: httpx.AsyncClient,
    telnyx_client: httpx.AsyncClient,
    plivo_client: httpx.AsyncClient,
) -> None:
    pairs: list[tuple[FakeVonage | FakeTelnyx | FakePlivo, OutboundProvider]] = [
        (fake_vonage, vonage(vonage_client)),
        (fake_telnyx, telnyx(telnyx_client)),
        (fake_plivo, plivo(plivo_client)),
    ]
    for fake, sender in pairs:
        fake.drop_after_accept = True
        exc = await failure(sender)
        assert exc.ambiguous, sender.name
        assert len(fake.sent) == 1, sender.name  # the text exists: resending would send it twice


async def test_latency_delays_the_answer_after_recording(
    fake_telnyx: FakeTelnyx, telnyx_client: httpx.AsyncClient
) -> None:
    fake_telnyx.latency = 0.05
    task = asyncio.create_task(telnyx(telnyx_client).send(sms()))
    await asyncio.sleep(0.02)
    assert len(fake_telnyx.sent) == 1 and not task.done()
    assert await task == fake_telnyx.sent[0].id


# -- Vonage --------------------------------------------------------------------------------------------------------


async def test_vonage_send_returns_the_message_id_and_sends_vonage_formats(
    fake_vonage: FakeVonage, vonage_client: httpx.AsyncClient
) -> None:
    message_id = await vonage(vonage_client).send(sms(status_callback=CALLBACK))
    [record] = fake_vonage.sent
    assert record.id == message_id
    assert (record.to, record.sender, record.body) == ("14155550199", "12025550123", "Hello from the garden club")
    assert record.status_callback == CALLBACK
    assert record.fields["type"] == "text" and record.fields["client-ref"] == "7"
    assert record.status == "queued" and record.error_code is None


async def test_vonage_sends_form_fields_with_the_credentials() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"message-count": "1", "messages": [{"status": "0", "message-id": "abc"}]})

    async with mock_client(handler) as client:
        assert await vonage(client).send(sms()) == "abc"
    [request] = seen
    assert request.url == f"{API}/sms/json"
    fields = dict(parse_qsl(request.content.decode()))
    assert fields["api_key"] == VONAGE_KEY and fields["api_secret"] == VONAGE_SECRET
    assert "callback" not in fields  # no status callback: the account's default applies


async def test_vonage_long_text_returns_the_first_parts_id(
    fake_vonage: FakeVonage, vonage_client: httpx.AsyncClient
) -> None:
    message_id = await vonage(vonage_client).send(sms("garden " * 60))
    [record] = fake_vonage.sent
    assert record.segments == 3 and len(record.part_ids) == 3
    assert message_id == record.part_ids[0]


async def test_vonage_unicode_round_trips_with_type_unicode(
    fake_vonage: FakeVonage, vonage_client: httpx.AsyncClient
) -> None:
    await vonage(vonage_client).send(sms(HINDI))
    [record] = fake_vonage.sent
    assert record.fields["type"] == "unicode"
    assert record.body == HINDI


async def test_fake_vonage_mangles_unicode_sent_as_text_and_takes_json(
    fake_vonage: FakeVonage, vonage_client: httpx.AsyncClient
) -> None:
    fields = {"api_key": VONAGE_KEY, "api_secret": VONAGE_SECRET, "from": "12025550123", "to": "14155550199"}
    response = await vonage_client.post(f"{API}/sms/json", data=fields | {"text": "Hi 🙏"})
    assert response.json()["messages"][0]["status"] == "0"
    # JSON bodies work too, as on Vonage.
    response = await vonage_client.post(f"{API}/sms/json", json=fields | {"text": "Hi 🙏", "type": "unicode"})
    assert response.json()["messages"][0]["status"] == "0"
    assert [record.body for record in fake_vonage.sent] == ["Hi ?", "Hi 🙏"]


async def test_vonage_bad_credentials_are_permanent(vonage_client: httpx.AsyncClient) -> None:
    exc = await failure(vonage(vonage_client, api_secret="wrong"))
    assert permanent(exc) and exc.code == "4"
    assert "API key and secret" in exc.reason


async def test_vonage_throttled_status_is_transient_with_a_hint(
    fake_vonage: FakeVonage, vonage_client: httpx.AsyncClient
) -> None:
    fake_vonage.fail_next(1, "1", "Throttled")
    exc = await failure(vonage(vonage_client))
    assert exc.transient and exc.code == "1" and exc.retry_after == 1.0
    assert fake_vonage.sent == []
    assert await vonage(vonage_client).send(sms())  # the next one goes


async def test_vonage_internal_error_status_is_transient(
    fake_vonage: FakeVonage, vonage_client: httpx.AsyncClient
) -> None:
    fake_vonage.fail_next(1, 5, "Internal Error")
    exc = await failure(vonage(vonage_client))
    assert exc.transient and exc.code == "5"


@pytest.mark.parametrize(("status", "words"), [("9", "credit"), ("29", "whitelisted"), ("6", "prefix")])
async def test_vonage_refusals_are_permanent_and_explained(
    fake_vonage: FakeVonage, vonage_client: httpx.AsyncClient, status: str, words: str
) -> None:
    fake_vonage.fail_next(1, status, "whatever Vonage says")
    exc = await failure(vonage(vonage_client))
    assert permanent(exc) and exc.code == status and words in exc.reason


async def test_vonage_unknown_sender_is_refused(vonage_client: httpx.AsyncClient) -> None:
    exc = await failure(vonage(vonage_client), sms(sender="+19995550100"))
    assert permanent(exc) and exc.code == "15"


async def test_vonage_accepts_opted_out_recipients_and_fails_them_in_the_receipt(
    fake_vonage: FakeVonage, vonage_client: httpx.AsyncClient
) -> None:
    fake_vonage.opted_out.add(MEMBER)
    await vonage(vonage_client).send(sms())
    [record] = fake_vonage.sent
    assert (record.status, record.error_code) == ("failed", "9")
    assert VONAGE_RECEIPT_ERRORS["9"][1] == "opted_out"
    assert "unsubscribed" in explain_receipt("9")


async def test_vonage_barred_number_is_permanent_not_opted_out(
    fake_vonage: FakeVonage, vonage_client: httpx.AsyncClient
) -> None:
    fake_vonage.barred.add(MEMBER)
    exc = await failure(vonage(vonage_client))
    assert permanent(exc) and exc.code == "7"


async def test_vonage_refuses_media_without_sending(fake_vonage: FakeVonage, vonage_client: httpx.AsyncClient) -> None:
    exc = await failure(vonage(vonage_client), sms(media_urls=(PICTURE,)))
    assert permanent(exc) and "media" in exc.reason
    assert fake_vonage.requests == 0


async def test_vonage_partly_refused_long_text_is_ambiguous() -> None:
    parts = [{"status": "0", "message-id": "p1"}, {"status": "5", "error-text": "Internal Error"}]
    async with mock_client(lambda r: httpx.Response(200, json={"message-count": "2", "messages": parts})) as client:
        exc = await failure(vonage(client))
    assert exc.ambiguous and not exc.transient and exc.code == "5" and "p1" in exc.reason


async def test_vonage_http_429_without_retry_after_gets_a_hint() -> None:
    async with mock_client(lambda r: httpx.Response(429)) as client:
        exc = await failure(vonage(client))
    assert exc.transient and exc.retry_after == 1.0


def test_vonage_explain() -> None:
    assert "throughput" in vonage_explain("1")
    assert "status 77" in vonage_explain("77")
    assert explain_receipt("77") == "Vonage delivery receipt error 77"
    assert all(
        kind in {"opted_out", "recipient", "config", "content", "throttled", "temporary"}
        for _, kind in [*VONAGE_ERRORS.values(), *VONAGE_RECEIPT_ERRORS.values()]
    )


# -- Telnyx --------------------------------------------------------------------------------------------------------


async def test_telnyx_send_returns_the_message_id_and_records_the_fields(
    fake_telnyx: FakeTelnyx, telnyx_client: httpx.AsyncClient
) -> None:
    message_id = await telnyx(telnyx_client).send(sms(status_callback=CALLBACK))
    assert uuid.UUID(message_id)
    [record] = fake_telnyx.sent
    assert record.id == message_id
    assert (record.to, record.sender, record.body, record.status_callback) == (
        MEMBER,
        NUMBER,
        "Hello from the garden club",
        CALLBACK,
    )
    assert "messaging_profile_id" not in record.fields and record.media == ()


async def test_telnyx_sends_bearer_json() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": {"id": "abc"}})

    async with mock_client(handler) as client:
        assert await telnyx(client, messaging_profile_id=PROFILE).send(sms()) == "abc"
    [request] = seen
    assert request.url == f"{API}/v2/messages"
    assert request.headers["authorization"] == f"Bearer {TELNYX_KEY}"
    assert request.headers["content-type"] == "application/json"


async def test_telnyx_messaging_profile_and_alphanumeric_sender(
    fake_telnyx: FakeTelnyx, telnyx_client: httpx.AsyncClient
) -> None:
    exc = await failure(telnyx(telnyx_client), sms(sender="GardenClub"))
    assert permanent(exc) and exc.code == "10004"
    fake_telnyx.add_profile(PROFILE)
    await telnyx(telnyx_client, messaging_profile_id=PROFILE).send(sms(sender="GardenClub"))
    assert fake_telnyx.sent[0].fields["messaging_profile_id"] == PROFILE


async def test_telnyx_unicode_round_trips(fake_telnyx: FakeTelnyx, telnyx_client: httpx.AsyncClient) -> None:
    await telnyx(telnyx_client).send(sms(HINDI))
    assert fake_telnyx.sent[0].body == HINDI


async def test_telnyx_media(fake_telnyx: FakeTelnyx, telnyx_client: httpx.AsyncClient) -> None:
    await telnyx(telnyx_client).send(sms(media_urls=(PICTURE,)))
    await telnyx(telnyx_client).send(sms("", media_urls=(PICTURE, PICTURE)))
    first, second = fake_telnyx.sent
    assert first.media == (PICTURE,) and first.body == "Hello from the garden club"
    assert second.media == (PICTURE, PICTURE) and "text" not in second.fields


async def test_telnyx_bad_key_is_permanent(telnyx_client: httpx.AsyncClient) -> None:
    exc = await failure(telnyx(telnyx_client, api_key="wrong"))
    assert permanent(exc) and exc.code == "10009" and "API key" in exc.reason


async def test_telnyx_rate_limit_is_transient_with_retry_after(
    fake_telnyx: FakeTelnyx, telnyx_client: httpx.AsyncClient
) -> None:
    fake_telnyx.fail_next(1, 429, "10011", "Too many requests", retry_after=2)
    exc = await failure(telnyx(telnyx_client))
    assert exc.transient and exc.code == "10011" and exc.retry_after == 2.0
    assert fake_telnyx.sent == []


async def test_telnyx_opted_out_recipient(fake_telnyx: FakeTelnyx, telnyx_client: httpx.AsyncClient) -> None:
    fake_telnyx.opted_out.add(MEMBER)
    exc = await failure(telnyx(telnyx_client))
    assert exc.opted_out and exc.code == "40300"
    assert not exc.transient and not exc.ambiguous
    assert fake_telnyx.sent == []


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (sms(to="4155550199"), "10016"),
        (sms(sender="+19995550100"), "40013"),
        (sms(""), "10004"),
        (sms(media_urls=("not a url",)), "10003"),
    ],
)
async def test_telnyx_invalid_requests_are_permanent(
    telnyx_client: httpx.AsyncClient, message: OutboundSms, code: str
) -> None:
    exc = await failure(telnyx(telnyx_client), message)
    assert permanent(exc) and exc.code == code


async def test_telnyx_unknown_code_keeps_telnyx_words() -> None:
    body = {"errors": [{"code": "40399", "title": "Something new", "detail": "Telnyx says why"}]}
    async with mock_client(lambda r: httpx.Response(400, json=body)) as client:
        exc = await failure(telnyx(client))
    assert permanent(exc) and exc.code == "40399" and "Telnyx says why" in exc.reason


def test_telnyx_explain() -> None:
    assert TELNYX_ERRORS["40300"][1] == "opted_out"
    assert "STOP" in telnyx_explain("40300")
    assert "developers.telnyx.com" in telnyx_explain("12345")


# -- Plivo ---------------------------------------------------------------------------------------------------------


async def test_plivo_send_returns_the_uuid_and_records_the_fields(
    fake_plivo: FakePlivo, plivo_client: httpx.AsyncClient
) -> None:
    message_uuid = await plivo(plivo_client).send(sms(status_callback=CALLBACK))
    assert uuid.UUID(message_uuid)
    [record] = fake_plivo.sent
    assert record.id == message_uuid
    assert (record.to, record.sender, record.body, record.status_callback) == (
        MEMBER,
        NUMBER,
        "Hello from the garden club",
        CALLBACK,
    )
    assert record.fields["method"] == "POST" and "type" not in record.fields
    assert record.status == "queued"


async def test_plivo_sends_basic_auth_json_to_the_account_url() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"api_id": "x", "message": "message(s) queued", "message_uuid": ["u1"]})

    async with mock_client(handler) as client:
        assert await plivo(client).send(sms()) == "u1"
    [request] = seen
    assert request.url == f"{API}/v1/Account/{PLIVO_ID}/Message/"
    expected = base64.b64encode(f"{PLIVO_ID}:{PLIVO_TOKEN}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected}"


async def test_plivo_unicode_round_trips(fake_plivo: FakePlivo, plivo_client: httpx.AsyncClient) -> None:
    await plivo(plivo_client).send(sms(HINDI))
    assert fake_plivo.sent[0].body == HINDI


async def test_plivo_media_goes_as_mms(fake_plivo: FakePlivo, plivo_client: httpx.AsyncClient) -> None:
    await plivo(plivo_client).send(sms(media_urls=(PICTURE,)))
    [record] = fake_plivo.sent
    assert record.fields["type"] == "mms" and record.media == (PICTURE,)


async def test_plivo_bad_credentials_are_permanent(plivo_client: httpx.AsyncClient) -> None:
    exc = await failure(plivo(plivo_client, auth_token="wrong"))
    assert permanent(exc) and "auth ID and auth token" in exc.reason


async def test_plivo_rate_limit_is_transient(fake_plivo: FakePlivo, plivo_client: httpx.AsyncClient) -> None:
    fake_plivo.fail_next(1, 429, "too many requests", retry_after=3)
    exc = await failure(plivo(plivo_client))
    assert exc.transient and exc.retry_after == 3.0
    assert fake_plivo.sent == []


async def test_plivo_accepts_opted_out_recipients_and_fails_them_later(
    fake_plivo: FakePlivo, plivo_client: httpx.AsyncClient
) -> None:
    fake_plivo.opted_out.add(MEMBER)
    await plivo(plivo_client).send(sms())
    [record] = fake_plivo.sent
    assert (record.status, record.error_code) == ("failed", "200")
    assert PLIVO_ERRORS["200"][1] == "opted_out" and "STOP" in plivo_explain("200")


async def test_plivo_refusal_keeps_plivos_words(plivo_client: httpx.AsyncClient) -> None:
    exc = await failure(plivo(plivo_client), sms("x" * 1601))
    assert permanent(exc) and "1600" in exc.reason


async def test_plivo_never_fans_out(fake_plivo: FakePlivo, plivo_client: httpx.AsyncClient) -> None:
    exc = await failure(plivo(plivo_client), sms(to=f"{MEMBER}<+14155550100"))
    assert permanent(exc) and fake_plivo.requests == 0


async def test_plivo_unknown_source_is_accepted_then_failed(
    fake_plivo: FakePlivo, plivo_client: httpx.AsyncClient
) -> None:
    await plivo(plivo_client).send(sms(sender="+19995550100"))
    assert fake_plivo.sent[0].error_code == "40"
    assert "source number" in plivo_explain("40")


@pytest.mark.parametrize(("status", "code"), [(408, "10008"), (400, "10007"), (504, None)])
async def test_telnyx_failing_while_processing_is_ambiguous(status: int, code: str | None) -> None:
    body = {"errors": [{"code": code, "title": "Telnyx trouble"}]} if code else {}
    async with mock_client(lambda r: httpx.Response(status, json=body)) as client:
        exc = await failure(telnyx(client))
    assert exc.ambiguous and exc.code == code


def test_every_configured_provider_can_send() -> None:
    import httpx as _httpx

    from openline.providers import explain_error, outbound_providers
    from openline.settings import Settings

    settings = Settings(
        twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token="t",
        vonage_api_key="k",
        vonage_api_secret="s",
        telnyx_api_key="KEY",
        plivo_auth_id="MA" + "A" * 18,
        plivo_auth_token="p",
    )
    providers = outbound_providers(settings, _httpx.AsyncClient(), on_status=_ignore_status)
    assert sorted(providers) == ["plivo", "sandbox", "telnyx", "twilio", "vonage"]
    assert sorted(outbound_providers(Settings(), _httpx.AsyncClient(), on_status=_ignore_status)) == ["sandbox"]
    assert "unreachable" in explain_error("twilio", "30003").lower()
    assert explain_error("vonage", "9")  # a receipt's err-code 9: the recipient opted out
    assert explain_error("carrier-pigeon", "7") == "carrier-pigeon error 7"


async def _ignore_status(report: StatusReport) -> None:
    """Receipts are not what these tests look at."""
