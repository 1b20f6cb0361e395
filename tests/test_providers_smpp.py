"""SMPP: the ESME client against the local SMSC, the PDU codec, receipts, and the dispatcher end to end."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from openline.communities import get_community
from openline.db import schema
from openline.dispatcher import Dispatcher
from openline.encoding import count_segments
from openline.outbox import queue_text
from openline.providers import explain_error, outbound_providers
from openline.providers.base import StatusReport
from openline.providers.fake_smsc import FakeSmsc
from openline.providers.outbound import OutboundSms, SendFailed
from openline.providers.smpp import Receipt, SmppSender
from openline.providers.smpp_pdu import (
    BIND_TRANSCEIVER,
    HEADER,
    SUBMIT_SM,
    TLV_MESSAGE_STATE,
    TLV_NETWORK_ERROR_CODE,
    TLV_RECEIPTED_MESSAGE_ID,
    Address,
    address,
    decode_gsm7,
    encode_gsm7,
    encode_pdu,
    parse_receipt,
    parse_sm,
    short_messages,
)
from openline.receipts import apply_receipts
from openline.runtime import Runtime
from openline.senders import add_sender
from openline.settings import Settings

from .test_cli import invoke
from .test_dispatcher import queue, states

TO = "+393331234567"
FROM = "+12025550100"


@pytest.fixture
async def smsc() -> AsyncIterator[FakeSmsc]:
    server = FakeSmsc("openline", "secret")
    await server.start()
    yield server
    await server.stop()


def make_sender(
    port: int,
    password: str = "secret",
    *,
    response_timeout: float = 2.0,
    enquire_link_interval: float = 30.0,
    on_receipt: Callable[[Receipt], Awaitable[None]] | None = None,
) -> SmppSender:
    return SmppSender(
        "127.0.0.1",
        port,
        "openline",
        password,
        on_receipt=on_receipt,
        response_timeout=response_timeout,
        enquire_link_interval=enquire_link_interval,
        connect_timeout=1.0,
        reconnect_delay=0.05,
        max_reconnect_delay=0.2,
    )


@pytest.fixture
async def sender(smsc: FakeSmsc) -> AsyncIterator[SmppSender]:
    client = make_sender(smsc.port)
    yield client
    await client.close()


def sms(body: str, to: str = TO, sender: str = FROM, message_id: int = 1) -> OutboundSms:
    return OutboundSms(message_id=message_id, to=to, sender=sender, body=body)


# -- encodings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "data_coding"),
    [
        ("Tickets €25 [VIP €60] {doors} ~8pm | ^_^ \\o/", 0),
        ("Ciao! Il concerto è stasera alle 21, però... à ù ì ò É Ç", 0),
        ("See you in Milan 🎉🎉", 8),
        ("नमस्ते! आज रात 8 बजे मिलते हैं।", 8),
    ],
)
async def test_texts_reach_the_smsc_intact(smsc: FakeSmsc, sender: SmppSender, body: str, data_coding: int) -> None:
    message_id = await sender.send(sms(body))
    [message] = smsc.messages
    assert (message.text, message.data_coding, message.message_id) == (body, data_coding, message_id)
    assert message.source == Address(1, 1, FROM[1:]) and message.destination == Address(1, 1, TO[1:])
    assert smsc.refused == []


async def test_a_long_gsm_text_goes_in_three_parts_without_splitting_an_escape(
    smsc: FakeSmsc, sender: SmppSender
) -> None:
    body = "a" * 152 + "€" + "b" * 150 + "[" + "c" * 96  # the € would straddle the first part's end
    assert len(body) == 400 and count_segments(body).segments == 3
    message_id = await sender.send(sms(body))
    [message] = smsc.messages
    assert message.text == body and message.message_id == message_id == message.parts[0].message_id
    assert [p.esm_class for p in message.parts] == [0x40] * 3
    headers = [p.udh for p in message.parts]
    assert {h[:5] for h in headers} == {bytes((5, 0, 3, headers[0][3], 3))}
    assert [h[5] for h in headers] == [1, 2, 3]
    assert message.parts[0].text == "a" * 152 and message.parts[1].text.startswith("€")


async def test_a_long_emoji_text_keeps_surrogate_pairs_whole(smsc: FakeSmsc, sender: SmppSender) -> None:
    body = "x" + "🎉" * 80  # 161 UTF-16 units: part one holds the x and 33 emoji
    await sender.send(sms(body, sender="OpenLine"))
    [message] = smsc.messages
    assert message.text == body and len(message.parts) == count_segments(body).segments == 3
    assert message.source == Address(5, 0, "OpenLine")


_ALPHABET = st.sampled_from([*"aZ0 @£èÇ\n", *"€[]{}^~|\\", "\r\n", "é", "🎉", "न", "म", "\u094d", "🇮🇹", "ß"])


@settings(max_examples=150, deadline=None)
@given(st.lists(_ALPHABET, max_size=400).map("".join))
def test_parts_match_count_segments_and_decode_back(text: str) -> None:
    parts = short_messages(text, 7)
    assert len(parts) == max(1, count_segments(text).segments)
    decoded = "".join(
        (decode_gsm7 if p.data_coding == 0 else lambda o: o.decode("utf-16-be"))(p.octets[6 if p.esm_class else 0 :])
        for p in parts
    )
    assert decoded == text
    assert all(len(p.octets) <= 160 for p in parts)


def test_gsm7_round_trip_and_bad_octets() -> None:
    text = "@£$¥èéùìòÇ\nØøΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!¤¡ÄÖÑÜ§¿äöñüà€[]{}^~|\\\f"
    assert decode_gsm7(encode_gsm7(text)) == text
    assert encode_gsm7("€") == b"\x1b\x65"
    for bad in (b"\x80", b"abc\x1b", b"\x1b\x1b", b"\x1bA"):
        with pytest.raises(ValueError):
            decode_gsm7(bad)


def test_addresses() -> None:
    assert address("+393331234567") == Address(1, 1, "393331234567")
    assert address("12345") == Address(3, 0, "12345")
    assert address("OpenLine") == Address(5, 0, "OpenLine")
    for bad in ("OpenLine Tickets", "+39 333", ""):
        with pytest.raises(ValueError):
            address(bad)


async def test_an_unaddressable_sender_is_a_permanent_failure(smsc: FakeSmsc, sender: SmppSender) -> None:
    with pytest.raises(SendFailed) as failed:
        await sender.send(sms("hi", sender="OpenLine Tickets"))
    assert not failed.value.transient and not failed.value.ambiguous
    assert "alphanumeric" in failed.value.reason and smsc.binds == 0


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "transient", "words"),
    [
        (0x58, True, "ESME_RTHROTTLED (0x58)"),
        (0x14, True, "ESME_RMSGQFUL (0x14)"),
        (0x08, True, "ESME_RSYSERR (0x08)"),
        (0x0B, False, "ESME_RINVDSTADR (0x0B): the SMSC refused the destination number"),
        (0x0A, False, "ESME_RINVSRCADR (0x0A): the SMSC refused the sender address"),
        (0x01, False, "ESME_RINVMSGLEN (0x01)"),
        (0x45, False, "ESME_RSUBMITFAIL (0x45)"),
        (0xFF, False, "ESME_RUNKNOWNERR (0xFF)"),
        (0x99, False, "unknown status (0x99)"),
    ],
)
async def test_submit_sm_resp_statuses_map_to_send_failures(
    smsc: FakeSmsc, sender: SmppSender, status: int, transient: bool, words: str
) -> None:
    smsc.fail_numbers[TO[1:]] = status
    with pytest.raises(SendFailed) as failed:
        await sender.send(sms("hello"))
    assert failed.value.transient is transient and not failed.value.ambiguous
    assert failed.value.code == f"0x{status:02X}"
    assert words in failed.value.reason
    assert (failed.value.retry_after is not None) is (status in (0x58, 0x14))
    assert await sender.send(sms("hello", to="+393330000000"))  # the link is still fine
    assert words.split(":")[0] in explain_error("smpp", f"0x{status:02X}")


async def test_throttling_above_the_rate(smsc: FakeSmsc, sender: SmppSender) -> None:
    smsc.throttle_per_second = 5
    outcomes = await asyncio.gather(*(sender.send(sms(f"hi {i}")) for i in range(12)), return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, SendFailed)]
    assert len(refused) == 7 and all(f.transient and f.code == "0x58" for f in refused)
    assert len(smsc.messages) == 5


async def test_a_connection_lost_after_writing_is_ambiguous_and_not_resent(smsc: FakeSmsc, sender: SmppSender) -> None:
    smsc.drop_numbers.add(TO[1:])
    with pytest.raises(SendFailed) as failed:
        await sender.send(sms("hello"))
    assert failed.value.ambiguous and not failed.value.transient
    assert "not retried so it cannot be sent twice" in failed.value.reason
    assert [m.text for m in smsc.messages] == ["hello"]  # it did reach the SMSC
    smsc.drop_numbers.clear()
    deadline = time.monotonic() + 3
    while True:  # the link comes back by itself; the ambiguous text is not among what follows
        try:
            await sender.send(sms("next"))
            break
        except SendFailed as again:
            assert again.transient and time.monotonic() < deadline
            await asyncio.sleep(0.02)
    assert [m.text for m in smsc.messages] == ["hello", "next"] and smsc.binds == 2


async def test_no_answer_in_time_is_ambiguous(smsc: FakeSmsc) -> None:
    silent = asyncio.Event()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Binds, then reads submit_sm without ever answering.
        header = await reader.readexactly(HEADER.size)
        length, _, _, sequence = HEADER.unpack(header)
        await reader.readexactly(length - HEADER.size)
        writer.write(encode_pdu(0x80000009, sequence, b"x\x00"))
        await reader.read(1 << 16)
        silent.set()
        await reader.read(1 << 16)
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    client = make_sender(server.sockets[0].getsockname()[1], response_timeout=0.2)
    try:
        with pytest.raises(SendFailed) as failed:
            await client.send(sms("hello"))
        assert failed.value.ambiguous and "no submit_sm_resp within 0.2 s" in failed.value.reason
        assert silent.is_set()
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


async def test_cannot_connect_is_transient_with_backoff() -> None:
    probe = FakeSmsc()
    await probe.start()
    port = probe.port
    await probe.stop()
    client = make_sender(port)
    try:
        with pytest.raises(SendFailed) as first:
            await client.send(sms("hello"))
        assert first.value.transient and "could not connect to the SMSC at 127.0.0.1" in first.value.reason
        with pytest.raises(SendFailed) as second:
            await client.send(sms("hello"))
        assert second.value.transient and second.value.retry_after is not None
        assert "next try in" in second.value.reason
    finally:
        await client.close()


async def test_bind_failure_says_what_to_check(smsc: FakeSmsc) -> None:
    client = make_sender(smsc.port, password="wrong")
    try:
        with pytest.raises(SendFailed) as failed:
            await client.send(sms("hello"))
    finally:
        await client.close()
    assert failed.value.transient and failed.value.code == "0x0D"
    assert "refused bind_transceiver: ESME_RBINDFAIL (0x0D)" in failed.value.reason
    assert "check the SMPP system ID and password" in failed.value.reason
    assert smsc.messages == [] and smsc.refused == [(0x0D, "bind_transceiver")]


async def test_reconnects_after_the_smsc_restarts(smsc: FakeSmsc, sender: SmppSender) -> None:
    await sender.send(sms("before"))
    await smsc.stop()
    restarted = FakeSmsc("openline", "secret", port=smsc.port)
    await restarted.start()
    try:
        deadline = time.monotonic() + 3
        while not restarted.binds:  # bound again in the background, without a send
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await sender.send(sms("after"))
        assert [m.text for m in restarted.messages] == ["after"] and restarted.binds == 1
    finally:
        await restarted.stop()


async def test_enquire_link_both_ways(smsc: FakeSmsc) -> None:
    client = make_sender(smsc.port, enquire_link_interval=0.05)
    try:
        await client.send(sms("hello"))
        await asyncio.sleep(0.3)
        assert smsc.enquire_links >= 2  # ours, answered by the SMSC
        await smsc.enquire_link()
        await asyncio.sleep(0.05)
        assert smsc.enquire_link_resps == 1  # the SMSC's, answered by us
    finally:
        await client.close()


# -- the simulator refuses what a real SMSC would --------------------------------------------------


async def _raw(port: int, *pdus: bytes) -> list[tuple[int, int]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    try:
        for pdu in pdus:
            writer.write(pdu)
            header = await asyncio.wait_for(reader.readexactly(HEADER.size), 2)
            length, command_id, status, _ = HEADER.unpack(header)
            await reader.readexactly(length - HEADER.size)
            answers.append((command_id, status))
    finally:
        writer.close()
    return answers


def _submit(
    short_message: bytes, esm_class: int = 0, data_coding: int = 0, destination: bytes = b"393331234567"
) -> bytes:
    body = b"\x00\x01\x0112025550100\x00\x01\x01" + destination + b"\x00"
    body += bytes((esm_class, 0, 0)) + b"\x00\x00" + bytes((1, 0, data_coding, 0, len(short_message) & 0xFF))
    return encode_pdu(SUBMIT_SM, 2, body + short_message)


async def test_the_simulator_validates_pdus(smsc: FakeSmsc) -> None:
    bind = encode_pdu(BIND_TRANSCEIVER, 1, b"openline\x00secret\x00\x00\x34\x00\x00\x00")
    assert await _raw(smsc.port, _submit(b"hi")) == [(0x80000004, 0x04)]  # not bound
    split_escape = bytes((5, 0, 3, 9, 2, 1)) + b"a" * 152 + b"\x1b"
    answers = await _raw(
        smsc.port,
        bind,
        _submit(b"a" * 161),  # over 160 septets
        _submit(b"hi", data_coding=0x03),
        _submit(split_escape, esm_class=0x40),
        _submit(bytes((5, 0, 3, 9, 1, 1)) + b"hi", esm_class=0x40),  # a "long" text of one part
        _submit("é".encode("utf-16-be")[:1], data_coding=8),
        _submit(b"hi", destination=b"+393331234567"),
        _submit(b"hi"),
    )
    assert answers == [
        (0x80000009, 0),
        (0x80000004, 0x01),
        (0x80000004, 0x45),
        (0x80000004, 0x45),
        (0x80000004, 0x43),
        (0x80000004, 0x01),
        (0x80000004, 0x0B),
        (0x80000004, 0),
    ]
    assert await _raw(smsc.port, struct.pack(">IIII", 8, SUBMIT_SM, 0, 1)) == [(0x80000000, 0x02)]
    assert [m.text for m in smsc.messages] == ["hi"]


# -- delivery receipts ---------------------------------------------------------------------------


async def test_delivery_receipts_reach_the_callback(smsc: FakeSmsc) -> None:
    smsc.receipt_delay = 0.01
    smsc.receipt_stats["393330000000"] = "UNDELIV"
    received: list[Receipt] = []

    async def on_receipt(receipt: Receipt) -> None:
        received.append(receipt)

    client = make_sender(smsc.port, on_receipt=on_receipt)
    try:
        delivered = await client.send(sms("hello"))
        undelivered = await client.send(sms("hello", to="+393330000000"))
        deadline = time.monotonic() + 2
        while len(received) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        await client.close()
    assert sorted(received) == sorted(
        [Receipt(delivered, "delivered", None), Receipt(undelivered, "undelivered", "001")]
    )
    assert smsc.receipts_acknowledged == 2


def test_receipt_texts_and_tlvs() -> None:
    text = "id:0A1B2C sub:001 dlvrd:001 submit date:2611241200 done date:2611241201 stat:DELIVRD err:000 text:Hi"
    assert parse_receipt(text, {}) == Receipt("0A1B2C", "delivered", None)
    assert parse_receipt(text.replace("DELIVRD", "EXPIRED").replace("000", "027"), {}) == Receipt(
        "0A1B2C", "undelivered", "027"
    )
    assert parse_receipt("id:7 stat:REJECTD err:11", {}) == Receipt("7", "failed", "11")
    assert parse_receipt("id:7 stat:ENROUTE", {}) == Receipt("7", "sent", None)
    tlvs = {TLV_RECEIPTED_MESSAGE_ID: b"abc\x00", TLV_MESSAGE_STATE: b"\x05", TLV_NETWORK_ERROR_CODE: b"\x03\x00\x22"}
    assert parse_receipt("", tlvs) == Receipt("abc", "undelivered", "3:34")
    assert parse_receipt(text, {TLV_MESSAGE_STATE: b"\x08"}) == Receipt("0A1B2C", "failed", None)
    assert parse_receipt("stat:DELIVRD", {}) is None  # no id
    assert parse_receipt("id:1 stat:WHATEVER", {}) is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(max_size=200) | st.from_regex(r"id:\S{0,12} (sub:\d+ )?stat:[A-Z]{0,8} err:\w{0,4}", fullmatch=True),
    st.dictionaries(st.sampled_from([0x1E, 0x427, 0x423, 0x0005]), st.binary(max_size=8), max_size=3),
    st.binary(max_size=120),
)
def test_receipt_and_pdu_parsing_never_crash(text: str, tlvs: dict[int, bytes], body: bytes) -> None:
    receipt = parse_receipt(text, tlvs)
    assert receipt is None or (
        receipt.provider_message_id and receipt.status in {"delivered", "undelivered", "failed", "sent"}
    )
    with contextlib.suppress(ValueError, IndexError):
        parse_sm(body)
    answer = asyncio.run(SmppSender("127.0.0.1", 1, "x", "y")._deliver(body))
    assert answer == (0, b"\x00")


async def test_a_receipt_that_cannot_be_stored_is_not_acknowledged(smsc: FakeSmsc) -> None:
    """The SMSC keeps what was answered with a temporary error and delivers it again."""
    smsc.receipt_delay = 0.01

    async def database_away(receipt: Receipt) -> None:
        raise OSError("the database is unavailable")

    client = make_sender(smsc.port, on_receipt=database_away)
    try:
        await client.send(sms("hello"))
        deadline = time.monotonic() + 2
        while not smsc.receipt_statuses and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        await client.close()
    assert smsc.receipt_statuses == [0x64]  # ESME_RX_T_APPN


# -- wiring --------------------------------------------------------------------------------------


async def test_settings_register_the_sender_and_senders_accept_smpp() -> None:
    async with httpx.AsyncClient() as http:
        assert "smpp" not in outbound_providers(Settings(database_url="sqlite:///x.db"), http, on_status=_ignore_status)
        configured = Settings(
            database_url="sqlite:///x.db",
            smpp_host="127.0.0.1",
            smpp_system_id="openline",
            smpp_password="secret",  # type: ignore[arg-type]
        )
        provider = outbound_providers(configured, http, on_status=_ignore_status)["smpp"]
        assert isinstance(provider, SmppSender) and provider.name == "smpp"
    code, output = invoke("senders", "add", "+14155550123", "--provider", "smpp")
    assert code == 0 and "(smpp," in output, output


async def test_the_dispatcher_sends_through_smpp(runtime: Runtime, smsc: FakeSmsc, sender: SmppSender) -> None:
    with runtime.db.write_engine.begin() as conn:
        add_sender(conn, get_community(conn).id, "+12025550177", provider="smpp", mps=500)
    runtime.senders.reload()
    ids = [queue(runtime, f"+39333{i:07d}", f"ciao {i} €", sender="+12025550177") for i in range(50)]
    dispatcher = Dispatcher(runtime.db, runtime.writer, {"smpp": sender}, owner="smpp-test")
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    deadline = time.monotonic() + 10
    try:
        while any(states(runtime).get(i, ("",))[0] != "sent" for i in ids) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    assert all(states(runtime)[i] == ("sent", None) for i in ids), states(runtime)
    m = schema.messages.c
    with runtime.db.read_engine.connect() as conn:
        recorded = dict(conn.execute(sa.select(m.phone, m.provider_message_id).where(m.id.in_(ids))).all())
    at_smsc = {"+" + message.destination.digits: message.message_id for message in smsc.messages}
    assert recorded == at_smsc and len(at_smsc) == 50
    assert {message.text for message in smsc.messages} == {f"ciao {i} €" for i in range(50)}


async def test_smpp_receipts_are_stored_and_applied_like_webhook_receipts(runtime: Runtime, smsc: FakeSmsc) -> None:
    """The service's wiring: receipts on the SMPP link go through the same durable receipt path."""
    smsc.receipt_delay = 0.01
    configured = runtime.settings.model_copy(
        update={
            "smpp_host": "127.0.0.1",
            "smpp_port": smsc.port,
            "smpp_system_id": "openline",
            "smpp_password": SecretStr("secret"),
        }
    )
    with runtime.db.write_engine.begin() as conn:
        add_sender(conn, get_community(conn).id, "+12025550177", provider="smpp", mps=500)
    runtime.senders.reload()
    with runtime.db.write_engine.begin() as conn:
        queued, _ = queue_text(
            conn,
            get_community(conn).id,
            "+393331234567",
            "ciao",
            suppression_key=runtime.key_for("suppression"),
            sender="+12025550177",
        )
    message = queued.id
    async with httpx.AsyncClient() as http:
        provider = outbound_providers(configured, http, on_status=runtime.ingest.receive_status)["smpp"]
        dispatcher = Dispatcher(runtime.db, runtime.writer, {"smpp": provider}, owner="smpp-receipts")
        stop = asyncio.Event()
        task = asyncio.create_task(dispatcher.run(stop))
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                await runtime.writer.run(lambda conn: apply_receipts(conn, datetime.now(UTC)))
                if states(runtime)[message][0] == "delivered":
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await task
            await provider.close()  # type: ignore[attr-defined]
    assert states(runtime)[message] == ("delivered", None)


async def _ignore_status(report: StatusReport) -> None:
    """Receipts are not what these tests look at."""
