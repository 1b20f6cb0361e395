"""SMPP submissions per second: one SmppSender against the local SMSC in its own process.

N single-part texts (GSM-7 and UCS-2) go through one bound connection with a window of submit_sm in
flight; target 1,500 submit_sm/s. The ceiling, measured in the same run against the same SMSC process: the
same number of submit_sm PDUs, encoded beforehand, written by a minimal client as fast as the SMSC answers
(each measurement against a fresh SMSC process).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench.common import Headline, Options, Table
from bench.ingest import _free_port
from openline.providers.outbound import OutboundSms
from openline.providers.smpp import SmppSender
from openline.providers.smpp_pdu import BIND_TRANSCEIVER, HEADER, SUBMIT_SM, address, encode_pdu, short_messages

__all__ = ["run"]

TARGET = 1_500
WINDOW = 128
SYSTEM_ID, PASSWORD = "bench", "secret"
TEXTS = [
    "Hi Sam, doors open at 8pm tonight. Reply STOP to opt out.",
    "Ciao! Il concerto è stasera alle 21. Tickets €25 [VIP]",
    "See you in Milan on the 12th! 🎉",
    "नमस्ते! आज रात 8 बजे मिलते हैं।",
]


@contextmanager
def _smsc() -> Iterator[int]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "openline.providers.fake_smsc", str(port), SYSTEM_ID, PASSWORD],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def _texts(count: int) -> list[OutboundSms]:
    return [
        OutboundSms(i, f"+39333{i % 10_000_000:07d}", "+12025550100", f"{TEXTS[i % len(TEXTS)]} {i}")
        for i in range(count)
    ]


async def _through_sender(port: int, texts: list[OutboundSms]) -> float:
    sender = SmppSender("127.0.0.1", port, SYSTEM_ID, PASSWORD, window=WINDOW)
    try:
        await sender.send(texts[0])  # bind before timing
        pending = iter(texts[1:])

        async def worker() -> None:
            for sms in pending:
                await sender.send(sms)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(WINDOW)))
        return time.perf_counter() - started
    finally:
        await sender.close()


async def _raw(port: int, texts: list[OutboundSms]) -> float:
    """The same submit_sm, encoded beforehand and pipelined with no window: the SMSC's own pace."""
    pdus = []
    for sequence, sms in enumerate(texts[1:], start=2):
        source, destination = address(sms.sender), address(sms.to)
        [part] = short_messages(sms.body, 0)
        body = b"\x00%c%c%s\x00%c%c%s\x00\x00\x00\x00\x00\x00\x01\x00%c\x00%c%s" % (
            source.ton,
            source.npi,
            source.digits.encode(),
            destination.ton,
            destination.npi,
            destination.digits.encode(),
            part.data_coding,
            len(part.octets),
            part.octets,
        )
        pdus.append(encode_pdu(SUBMIT_SM, sequence, body))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(encode_pdu(BIND_TRANSCEIVER, 1, f"{SYSTEM_ID}\x00{PASSWORD}\x00\x00\x34\x00\x00\x00".encode()))
        length = HEADER.unpack(await reader.readexactly(HEADER.size))[0]
        await reader.readexactly(length - HEADER.size)

        async def answers() -> None:
            left, buffer = len(pdus), bytearray()
            while left:
                chunk = await reader.read(1 << 16)
                if not chunk:
                    raise ConnectionError("the SMSC closed the connection")
                buffer += chunk
                at = 0
                while len(buffer) - at >= HEADER.size:
                    size, _, status, _ = HEADER.unpack_from(buffer, at)
                    if len(buffer) - at < size:
                        break
                    if status:
                        raise RuntimeError(f"the SMSC refused a benchmark PDU with status 0x{status:02X}")
                    at, left = at + size, left - 1
                del buffer[:at]

        started = time.perf_counter()
        reading = asyncio.create_task(answers())
        for at in range(0, len(pdus), 256):
            writer.write(b"".join(pdus[at : at + 256]))
            await writer.drain()
        await reading
        return time.perf_counter() - started
    finally:
        writer.close()


def run(options: Options) -> Table:
    """SMPP submit_sm/s through one SmppSender vs a raw-PDU ceiling (fake SMSC in its own process)"""
    count = 2_000 if options.smoke else 50_000
    texts = _texts(count + 1)
    # A fresh SMSC process for each: the texts one run leaves recorded there do not slow the other.
    with _smsc() as port:
        raw_seconds = asyncio.run(_raw(port, texts))
    with _smsc() as port:
        sender_seconds = asyncio.run(_through_sender(port, texts))
    rate, ceiling = count / sender_seconds, count / raw_seconds
    table = Table()
    for client, seconds, per_second in (
        ("SmppSender", sender_seconds, rate),
        ("raw PDUs (ceiling)", raw_seconds, ceiling),
    ):
        table.rows.append(
            {
                "client": client,
                "submit_sm": f"{count:,}",
                "seconds": f"{seconds:.2f}",
                "submit_sm/s": f"{per_second:,.0f}",
                "target": f"{TARGET:,}",
                "rate/target": f"{per_second / TARGET:.2f}",
                "rate/ceiling": f"{per_second / ceiling:.2f}",
            }
        )
    table.headlines.append(
        Headline(
            "SMPP submit_sm/s through one SmppSender vs raw PDUs",
            "-",
            rate,
            "submit_sm/s",
            ceiling=ceiling,
            target=f"≥ {TARGET:,}/s",
            met=rate >= TARGET,
        )
    )
    table.notes.append(
        f"one connection, window {WINDOW}; SmppSender encodes each text (GSM-7 or UCS-2) and awaits its answer; "
        "the ceiling pipelines pre-encoded PDUs with no window"
    )
    table.notes.append("the SMSC process parses and records every PDU: its pace bounds both rows")
    return table
