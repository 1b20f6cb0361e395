"""Sending through Twilio's Messages API: the request, and how every failure is classified; the fake Twilio."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from openline.encoding import count_segments
from openline.providers.base import WebhookRequest
from openline.providers.fake_twilio import FakeTwilio, SentMessage
from openline.providers.outbound import OutboundProvider, OutboundSms, SendFailed
from openline.providers.twilio import TwilioWebhook
from openline.providers.twilio_send import TWILIO_ERRORS, TwilioSender, explain

ACCOUNT = "AC" + "a1" * 16
TOKEN = "f00dfeed" * 4
API = "https://api.twilio.test"
NUMBER = "+12025550123"
MEMBER = "+14155550199"
SERVICE = "MG" + "b2" * 16
CALLBACK = "https://openline.example/webhooks/twilio/status"
MESSAGES_URL = f"{API}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"


def sms(body: str = "Hello from the garden club", **changes: object) -> OutboundSms:
    fields: dict[str, object] = {"message_id": 7, "to": MEMBER, "sender": NUMBER, "body": body}
    fields.update(changes)
    return OutboundSms(**fields)  # type: ignore[arg-type]


@pytest.fixture
def fake() -> FakeTwilio:
    twilio = FakeTwilio(ACCOUNT, TOKEN)
    twilio.add_number(NUMBER)
    return twilio


@pytest.fixture
async def client(fake: FakeTwilio) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app)) as c:
        yield c


def sender(client: httpx.AsyncClient, **changes: object) -> TwilioSender:
    options: dict[str, object] = {"api_url": API, "account_sid": ACCOUNT, "auth_token": TOKEN}
    options.update(changes)
    return TwilioSender(client, **options)  # type: ignore[arg-type]


async def failure(provider: TwilioSender, message: OutboundSms | None = None) -> SendFailed:
    with pytest.raises(SendFailed) as caught:
        await provider.send(message or sms())
    return caught.value


def mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


# -- success ---------------------------------------------------------------------------------------------------


async def test_send_returns_the_sid_and_the_fake_records_exactly_the_fields(
    fake: FakeTwilio, client: httpx.AsyncClient
) -> None:
    provider: OutboundProvider = sender(client)
    sid = await provider.send(sms())
    assert sid.startswith("SM") and len(sid) == 34
    [record] = fake.sent
    assert record.sid == sid
    assert (record.to, record.from_, record.body, record.media) == (MEMBER, NUMBER, "Hello from the garden club", ())
    assert (record.status_callback, record.messaging_service_sid, record.validity_period) == (None, None, None)
    assert record.status == "queued"
    assert record.num_segments == 1


async def test_the_request_is_twilios_form_with_basic_auth() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"sid": "SM" + "0" * 32, "status": "queued"})

    async with mock_client(handler) as c:
        await sender(c, api_url=API + "/").send(sms("Hi & welcome = 100%"))
    [request] = seen
    assert request.method == "POST"
    assert str(request.url) == MESSAGES_URL
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert parse_qsl(request.content.decode(), keep_blank_values=True) == [
        ("To", MEMBER),
        ("From", NUMBER),
        ("Body", "Hi & welcome = 100%"),
    ]


async def test_media_urls_and_status_callback_are_passed(fake: FakeTwilio, client: httpx.AsyncClient) -> None:
    media = ("https://cdn.example/a.jpg", "https://cdn.example/b.png?size=2")
    sid = await sender(client).send(sms("Photos from Saturday", media_urls=media, status_callback=CALLBACK))
    assert sid.startswith("MM")  # Twilio's prefix for a message with media
    [record] = fake.sent
    assert record.media == media
    assert record.status_callback == CALLBACK


async def test_media_without_a_body_sends_no_body_field(fake: FakeTwilio, client: httpx.AsyncClient) -> None:
    await sender(client).send(sms("", media_urls=("https://cdn.example/a.jpg",)))
    assert fake.sent[0].body == ""


async def test_validity_period_is_sent(fake: FakeTwilio, client: httpx.AsyncClient) -> None:
    await sender(client, validity_period=3600).send(sms())
    assert fake.sent[0].validity_period == 3600
    with pytest.raises(ValueError, match="36000"):
        sender(client, validity_period=36_001)


async def test_messaging_service_mode_sends_the_service_and_the_sender(
    fake: FakeTwilio, client: httpx.AsyncClient
) -> None:
    fake.add_messaging_service(SERVICE, [NUMBER])
    await sender(client, messaging_service_sid=SERVICE).send(sms())
    [record] = fake.sent
    assert (record.messaging_service_sid, record.from_, record.status) == (SERVICE, NUMBER, "accepted")


async def test_the_fake_picks_a_pool_number_for_a_service_alone(fake: FakeTwilio, client: httpx.AsyncClient) -> None:
    fake.add_messaging_service(SERVICE, ["+12025550188"])
    response = await client.post(
        MESSAGES_URL, data={"To": MEMBER, "MessagingServiceSid": SERVICE, "Body": "hi"}, auth=(ACCOUNT, TOKEN)
    )
    assert response.status_code == 201
    assert response.json()["status"] == "accepted"
    assert response.json()["from"] is None  # Twilio picks the sender after answering
    assert fake.sent[0].from_ == "+12025550188"


async def test_the_fakes_answer_looks_like_twilios(client: httpx.AsyncClient) -> None:
    response = await client.post(
        MESSAGES_URL, data={"To": MEMBER, "From": NUMBER, "Body": "नमस्ते 🙂"}, auth=(ACCOUNT, TOKEN)
    )
    assert response.status_code == 201
    resource = response.json()
    assert resource["account_sid"] == ACCOUNT
    assert resource["api_version"] == "2010-04-01"
    assert resource["direction"] == "outbound-api"
    assert resource["num_segments"] == "1" and resource["num_media"] == "0"
    assert resource["body"] == "नमस्ते 🙂"
    assert resource["uri"] == f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{resource['sid']}.json"
    datetime.strptime(resource["date_created"], "%a, %d %b %Y %H:%M:%S %z")  # RFC 2822, as Twilio writes dates


# -- Twilio refuses --------------------------------------------------------------------------------------------


async def test_wrong_token_is_permanent_20003(fake: FakeTwilio, client: httpx.AsyncClient) -> None:
    error = await failure(sender(client, auth_token="not-the-token"))
    assert error.code == "20003"
    assert not (error.transient or error.ambiguous or error.opted_out)
    assert "auth token" in error.reason
    assert fake.sent == []


async def test_another_accounts_url_is_refused(fake: FakeTwilio, client: httpx.AsyncClient) -> None:
    other = "AC" + "c3" * 16
    response = await client.post(
        f"{API}/2010-04-01/Accounts/{other}/Messages.json",
        data={"To": MEMBER, "From": NUMBER, "Body": "hi"},
        auth=(ACCOUNT, TOKEN),
    )
    assert response.status_code == 404
    assert response.json()["code"] == 20404
    assert fake.sent == []


async def test_unregistered_from_is_permanent(client: httpx.AsyncClient) -> None:
    error = await failure(sender(client), sms(sender="+12025550999"))
    assert error.code == "21606"
    assert not (error.transient or error.ambiguous)


async def test_opted_out_recipient(fake: FakeTwilio, client: httpx.AsyncClient) -> None:
    fake.opted_out.add(MEMBER)
    error = await failure(sender(client))
    assert error.opted_out
    assert error.code == "21610"
    assert not (error.transient or error.ambiguous)
    assert "unsubscribed" in error.reason
    assert fake.sent == []


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (sms(to="4155550199"), "21211"),
        (sms(to=""), "21604"),
        (sms(sender=""), "21603"),
        (sms(""), "21602"),
        (sms("x" * 1601), "21617"),
        (sms(media_urls=tuple(f"https://cdn.example/{i}.jpg" for i in range(11))), "21623"),
        (sms(media_urls=("ftp://cdn.example/a.jpg",)), "21620"),
    ],
)
async def test_the_fake_checks_requests_like_twilio(
    fake: FakeTwilio, client: httpx.AsyncClient, message: OutboundSms, code: str
) -> None:
    error = await failure(sender(client), message)
    assert error.code == code
    assert not (error.transient or error.ambiguous or error.opted_out)
    assert error.reason == f"Twilio error {code}: {TWILIO_ERRORS[code][0]}"
    assert fake.sent == []


async def test_the_body_limit_is_1600_characters(fake: FakeTwilio, client: httpx.AsyncClient) -> None:
    await sender(client).send(sms("🙂" * 1600))
    assert fake.sent[0].body == "🙂" * 1600


async def test_an_unknown_code_keeps_twilios_message(fake: FakeTwilio, client: httpx.AsyncClient) -> None:
    fake.fail_next(1, 400, 21999, "Something new went wrong")
    error = await failure(sender(client))
    assert error.code == "21999"
    assert error.reason == "Twilio error 21999: Something new went wrong"
    assert not (error.transient or error.ambiguous)


async def test_a_non_json_4xx_is_permanent_with_a_snippet() -> None:
    async with mock_client(lambda request: httpx.Response(403, text="<html>Forbidden by proxy</html>")) as c:
        error = await failure(sender(c))
    assert error.reason == "Twilio answered HTTP 403: <html>Forbidden by proxy</html>"
    assert error.code is None
    assert not (error.transient or error.ambiguous)


# -- try again later -------------------------------------------------------------------------------------------


async def test_429_is_transient_with_retry_after(fake: FakeTwilio, client: httpx.AsyncClient) -> None:
    fake.fail_next(1, 429, 20429, "Too Many Requests", retry_after=2)
    error = await failure(sender(client))
    assert error.transient and not error.ambiguous
    assert error.code == "20429"
    assert error.retry_after == 2.0
    assert fake.sent == []
    assert (await sender(client).send(sms())).startswith("SM")  # fail_next(1) fails one request only


async def test_429_retry_after_as_a_date() -> None:
    later = datetime.fromtimestamp(time.time() + 120, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    async with mock_client(lambda request: httpx.Response(429, headers={"Retry-After": later})) as c:
        error = await failure(sender(c))
    assert error.transient and error.code == "20429"
    assert error.retry_after is not None and 100 < error.retry_after <= 120


@pytest.mark.parametrize("code", ["14107", "30022", "30023", "30027", "21611"])
async def test_rate_limit_codes_are_transient(fake: FakeTwilio, client: httpx.AsyncClient, code: str) -> None:
    fake.fail_next(1, 400, int(code), "rate limited")
    error = await failure(sender(client))
    assert error.transient and not error.ambiguous
    assert error.code == code


async def test_14107_waits_30_seconds(fake: FakeTwilio, client: httpx.AsyncClient) -> None:
    fake.fail_next(1, 400, 14107, "SMS send rate limit exceeded")
    assert (await failure(sender(client))).retry_after == 30.0


async def test_503_is_transient(fake: FakeTwilio, client: httpx.AsyncClient) -> None:
    fake.fail_next(1, 503, 20503, "Service unavailable", retry_after=5)
    error = await failure(sender(client))
    assert error.transient and not error.ambiguous
    assert error.retry_after == 5.0


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_other_5xx_are_ambiguous(fake: FakeTwilio, client: httpx.AsyncClient, status: int) -> None:
    # Twilio, error 20500: creating a message is not idempotent, and a 500 may follow a created message.
    fake.fail_next(1, status, 20500 if status == 500 else None, "Internal Server Error")
    error = await failure(sender(client))
    assert error.ambiguous and not error.transient


async def test_connect_error_is_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with mock_client(refuse) as c:
        error = await failure(sender(c))
    assert error.transient and not error.ambiguous
    assert "could not connect" in error.reason


@pytest.mark.parametrize("exc_type", [httpx.ConnectTimeout, httpx.PoolTimeout])
async def test_nothing_sent_timeouts_are_transient(exc_type: type[httpx.TimeoutException]) -> None:
    def stall(request: httpx.Request) -> httpx.Response:
        raise exc_type("timed out", request=request)

    async with mock_client(stall) as c:
        assert (await failure(sender(c))).transient


@pytest.mark.parametrize(
    "exc_type", [httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.RemoteProtocolError]
)
async def test_no_answer_after_sending_is_ambiguous(exc_type: type[httpx.TransportError]) -> None:
    def lose(request: httpx.Request) -> httpx.Response:
        raise exc_type("lost", request=request)

    async with mock_client(lose) as c:
        error = await failure(sender(c))
    assert error.ambiguous and not error.transient
    assert error.reason.startswith("no answer from Twilio after sending; not retried so it cannot be sent twice")


async def test_drop_after_accept_is_ambiguous_and_the_message_exists_once(
    fake: FakeTwilio, client: httpx.AsyncClient
) -> None:
    fake.drop_after_accept = True
    error = await failure(sender(client))
    assert error.ambiguous and not error.transient
    assert len(fake.sent) == 1
    assert fake.requests == 1


async def test_a_2xx_without_a_sid_is_ambiguous() -> None:
    async with mock_client(lambda request: httpx.Response(201, text="OK")) as c:
        error = await failure(sender(c))
    assert error.ambiguous


async def test_latency_delays_the_answer(fake: FakeTwilio, client: httpx.AsyncClient) -> None:
    fake.latency = 0.05
    started = time.monotonic()
    await sender(client).send(sms())
    assert time.monotonic() - started >= 0.05
    assert fake.sent[0].received_at >= started


# -- explaining codes ------------------------------------------------------------------------------------------


def test_explain() -> None:
    assert "unsubscribed" in explain("21610")
    assert "not a valid phone number" in explain("21211")
    assert "1600" in explain("21617")
    assert "credentials" in explain("20003")
    assert "carrier filtered" in explain(" 30007 ")
    assert explain("12345") == "Twilio error 12345 (https://www.twilio.com/docs/api/errors/12345)"


def test_the_table_covers_the_codes_openline_acts_on() -> None:
    needed = "21610 21211 21614 21408 21612 21617 21606 21659 20003 20404 30003 30004 30005 30006 30007 30008 30034"
    assert set(needed.split()) <= set(TWILIO_ERRORS)
    assert TWILIO_ERRORS["21610"][1] == "opted_out"
    assert all(TWILIO_ERRORS[c][1] == "throttled" for c in ("14107", "20429", "30022", "30023", "30027"))


# -- status callbacks ------------------------------------------------------------------------------------------


async def test_status_callback_request_is_signed_like_twilio(fake: FakeTwilio, client: httpx.AsyncClient) -> None:
    await sender(client).send(sms(status_callback=CALLBACK))
    record = fake.sent[0]
    url, body, headers = fake.status_callback_request(record, "undelivered", "30005")
    assert url == CALLBACK
    fields = dict(parse_qsl(body.decode()))
    assert fields["MessageSid"] == fields["SmsSid"] == record.sid
    assert fields["MessageStatus"] == "undelivered"
    assert (fields["To"], fields["From"], fields["AccountSid"]) == (MEMBER, NUMBER, ACCOUNT)
    assert fields["ApiVersion"] == "2010-04-01"
    assert fields["ErrorCode"] == "30005"
    assert len(fields["RawDlrDoneDate"]) == 10
    assert RequestValidator(TOKEN).validate(url, fields, headers["X-Twilio-Signature"])
    # openline's own check accepts it too
    request = WebhookRequest("POST", url, {k.lower(): v for k, v in headers.items()}, body)
    TwilioWebhook(TOKEN, ACCOUNT).verify(request, datetime.now(UTC))


def test_status_callback_fields_by_status() -> None:
    fake = FakeTwilio(ACCOUNT, TOKEN)
    record = SentMessage(
        sid="SM" + "d4" * 16,
        account_sid=ACCOUNT,
        to=MEMBER,
        from_=NUMBER,
        messaging_service_sid=None,
        body="hi",
        media=(),
        status_callback=None,
        validity_period=None,
        num_segments=1,
        received_at=0.0,
        date_created=datetime.now(UTC),
    )
    with pytest.raises(ValueError, match="StatusCallback"):
        fake.status_callback_request(record, "sent")
    sent = dict(parse_qsl(fake.status_callback_request(record, "sent", url=CALLBACK)[1].decode()))
    assert "ErrorCode" not in sent and "RawDlrDoneDate" not in sent
    failed = dict(parse_qsl(fake.status_callback_request(record, "failed", url=CALLBACK)[1].decode()))
    assert failed["ErrorCode"] == "30008"
    # a retried callback carries the same idempotency token
    first = fake.status_callback_request(record, "delivered", url=CALLBACK)[2]["I-Twilio-Idempotency-Token"]
    again = fake.status_callback_request(record, "delivered", url=CALLBACK)[2]["I-Twilio-Idempotency-Token"]
    assert first == again


async def test_deliver_posts_the_callback(fake: FakeTwilio, client: httpx.AsyncClient) -> None:
    await sender(client).send(sms(status_callback=CALLBACK))
    received: list[httpx.Request] = []

    def app(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    async with mock_client(app) as callbacks:
        response = await fake.deliver(fake.sent[0], callbacks, "delivered")
    assert response.status_code == 200
    assert str(received[0].url) == CALLBACK
    assert fake.sent[0].status == "delivered"


# -- any body arrives exactly ----------------------------------------------------------------------------------

_SCRIPTS = "नमस्ते दुनिया 🙂👍🏽🇮🇳 €^{}[]~|\\ àéñüß ÆØÅ 你好 \r\n\t\"'&=+%#?"


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.text(min_size=1, max_size=1600),
        st.text(alphabet=_SCRIPTS, min_size=1, max_size=1600),
    )
)
def test_any_body_round_trips_exactly(body: str) -> None:
    async def run() -> SentMessage:
        fake = FakeTwilio(ACCOUNT, TOKEN)
        fake.add_number(NUMBER)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app)) as c:
            await sender(c).send(sms(body))
        [record] = fake.sent
        return record

    record = asyncio.run(run())
    assert record.body == body
    assert record.num_segments == count_segments(body).segments
