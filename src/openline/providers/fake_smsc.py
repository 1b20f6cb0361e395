"""A local SMSC that speaks SMPP 3.4 to one or more ESMEs, for tests and the benchmark.

It checks PDUs as a strict SMSC would (command lengths, bind credentials, bind state, data_coding,
short_message lengths, concatenation headers), records what it accepts (decoded, long texts reassembled),
and can be told to throttle, refuse a number, drop the connection after reading a PDU, and send delivery
receipts. Listens on 127.0.0.1 only.

``python -m openline.providers.fake_smsc PORT SYSTEM_ID PASSWORD`` runs one until interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field

from openline.providers.smpp_pdu import (
    BIND_TRANSCEIVER,
    BIND_TRANSCEIVER_RESP,
    DATA_CODING_DEFAULT,
    DATA_CODING_UCS2,
    DELIVER_SM,
    ENQUIRE_LINK,
    ENQUIRE_LINK_RESP,
    ESM_CLASS_RECEIPT,
    ESM_CLASS_UDHI,
    GENERIC_NACK,
    HEADER,
    MAX_PDU,
    SUBMIT_SM,
    SUBMIT_SM_RESP,
    TLV_MESSAGE_STATE,
    TLV_RECEIPTED_MESSAGE_ID,
    UNBIND,
    UNBIND_RESP,
    Address,
    SmDecodeError,
    c_string,
    decode_gsm7,
    encode_pdu,
    parse_sm,
)

__all__ = ["FakeSmsc", "SmscMessage", "SmscPart"]

ESME_RINVMSGLEN, ESME_RINVCMDLEN, ESME_RINVCMDID, ESME_RINVBNDSTS = 0x01, 0x02, 0x03, 0x04
ESME_RALYBND, ESME_RINVSRCADR, ESME_RINVDSTADR, ESME_RBINDFAIL = 0x05, 0x0A, 0x0B, 0x0D
ESME_RINVESMCLASS, ESME_RSUBMITFAIL, ESME_RTHROTTLED = 0x43, 0x45, 0x58
_MESSAGE_STATES = {"DELIVRD": 2, "EXPIRED": 3, "DELETED": 4, "UNDELIV": 5, "ACCEPTD": 6, "UNKNOWN": 7, "REJECTD": 8}


@dataclass(frozen=True)
class SmscPart:
    """One accepted submit_sm."""

    message_id: str
    source: Address
    destination: Address
    data_coding: int
    esm_class: int
    udh: bytes
    text: str  # this part's text, decoded


@dataclass
class SmscMessage:
    """A whole text: a single submit_sm, or the parts of a concatenated one in order."""

    message_id: str  # the first part's
    source: Address
    destination: Address
    data_coding: int
    text: str
    parts: list[SmscPart] = field(default_factory=list)


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class FakeSmsc:
    """An SMSC on 127.0.0.1; ``await start()``, then point an ESME at ``port``; ``await stop()``.

    Knobs: ``throttle_per_second`` (answer ESME_RTHROTTLED above that many submit_sm a second),
    ``fail_numbers`` (destination digits -> command_status to answer), ``drop_numbers`` (destination digits
    whose submit_sm is taken but the connection closed before answering), ``receipt_delay`` (seconds before a
    deliver_sm receipt to every connected ESME, None for none) with ``receipt_stats`` (destination digits ->
    stat word, DELIVRD otherwise).
    """

    def __init__(
        self,
        system_id: str = "openline",
        password: str = "secret",
        *,
        port: int = 0,
        receipt_delay: float | None = None,
    ) -> None:
        self.system_id, self.password = system_id, password
        self.port = port
        self.receipt_delay = receipt_delay
        self.receipt_stats: dict[str, str] = {}
        self.throttle_per_second: int | None = None
        self.fail_numbers: dict[str, int] = {}
        self.drop_numbers: set[str] = set()
        self.messages: list[SmscMessage] = []
        self.refused: list[tuple[int, str]] = []  # (command_status, why) of every refused PDU
        self.binds = 0
        self.enquire_links = 0  # enquire_link the ESMEs sent us
        self.enquire_link_resps = 0  # answers to ours
        self.receipts_acknowledged = 0
        self.receipt_statuses: list[int] = []  # command_status of every deliver_sm_resp, in order
        self._ids = itertools.count(1)
        self._window_start, self._in_window = 0.0, 0
        self._partial: dict[tuple[str, str, int], dict[int, SmscPart]] = {}
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every connection and stop listening (``start`` again reuses the port)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def enquire_link(self) -> None:
        """Send enquire_link to every bound ESME (their answers count in ``enquire_link_resps``)."""
        for writer in list(self._writers):
            writer.write(encode_pdu(ENQUIRE_LINK, 0x7FFFFFFF))
            await writer.drain()

    # -- one connection --------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        bound = False
        buffer = bytearray()
        try:
            while True:
                chunk = await reader.read(1 << 16)
                if not chunk:
                    return
                buffer += chunk
                at = 0
                while len(buffer) - at >= HEADER.size:
                    length, command_id, status, sequence = HEADER.unpack_from(buffer, at)
                    if not HEADER.size <= length <= MAX_PDU:
                        self.refused.append((ESME_RINVCMDLEN, f"command_length {length}"))
                        writer.write(encode_pdu(GENERIC_NACK, sequence, status=ESME_RINVCMDLEN))
                        return  # the stream cannot be resynchronised
                    if len(buffer) - at < length:
                        break
                    body = bytes(buffer[at + HEADER.size : at + length])
                    at += length
                    if command_id == DELIVER_SM | 0x80000000:
                        self.receipt_statuses.append(status)
                    answer, bound, drop = self._handle(command_id, sequence, body, bound)
                    if drop:
                        return
                    if answer:
                        writer.write(answer)
                del buffer[:at]
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.close()

    def _handle(self, command_id: int, sequence: int, body: bytes, bound: bool) -> tuple[bytes, bool, bool]:
        """The answer to one PDU, whether the session is bound after it, and whether to drop the connection."""
        if command_id == BIND_TRANSCEIVER:
            status = ESME_RALYBND if bound else self._bind_status(body)
            if status:
                self.refused.append((status, "bind_transceiver"))
                return encode_pdu(BIND_TRANSCEIVER_RESP, sequence, b"\x00", status), bound, False
            self.binds += 1
            return encode_pdu(BIND_TRANSCEIVER_RESP, sequence, b"fake-smsc\x00"), True, False
        if command_id == ENQUIRE_LINK:
            self.enquire_links += 1
            return encode_pdu(ENQUIRE_LINK_RESP, sequence), bound, False
        if command_id == ENQUIRE_LINK_RESP:
            self.enquire_link_resps += 1
            return b"", bound, False
        if command_id == UNBIND:
            return encode_pdu(UNBIND_RESP, sequence), False, False
        if command_id == DELIVER_SM | 0x80000000:
            self.receipts_acknowledged += 1
            return b"", bound, False
        if command_id != SUBMIT_SM:
            self.refused.append((ESME_RINVCMDID, f"command_id 0x{command_id:08X}"))
            return encode_pdu(GENERIC_NACK, sequence, status=ESME_RINVCMDID), bound, False
        if not bound:
            self.refused.append((ESME_RINVBNDSTS, "submit_sm before bind"))
            return encode_pdu(SUBMIT_SM_RESP, sequence, b"\x00", ESME_RINVBNDSTS), bound, False
        try:
            part, registered = self._accept(body)
        except _Refused as refused:
            return encode_pdu(SUBMIT_SM_RESP, sequence, b"\x00", refused.status), bound, False
        if part.destination.digits in self.drop_numbers:
            return b"", bound, True
        if registered and self.receipt_delay is not None:
            self._spawn(self._receipt(part))
        return encode_pdu(SUBMIT_SM_RESP, sequence, part.message_id.encode() + b"\x00"), bound, False

    def _bind_status(self, body: bytes) -> int:
        try:
            system_id, at = c_string(body, 0, 16)
            password, at = c_string(body, at, 9)
            c_string(body, at, 13)  # system_type
        except ValueError:
            return ESME_RINVCMDLEN
        return 0 if (system_id, password) == (self.system_id, self.password) else ESME_RBINDFAIL

    def _refuse(self, status: int, why: str) -> _Refused:
        self.refused.append((status, why))
        return _Refused(status)

    def _accept(self, body: bytes) -> tuple[SmscPart, bool]:
        try:
            sm = parse_sm(body)
        except (ValueError, IndexError) as exc:
            raise self._refuse(ESME_RINVCMDLEN, f"malformed submit_sm: {exc}") from exc
        source, destination = sm.source, sm.destination
        if not (source.ton == 1 and source.digits.isdigit()) and source.ton not in (3, 5):
            raise self._refuse(ESME_RINVSRCADR, f"source {source}")
        if destination.ton != 1 or destination.npi != 1 or not destination.digits.isdigit():
            raise self._refuse(ESME_RINVDSTADR, f"destination {destination}")
        if destination.digits in self.fail_numbers:
            raise self._refuse(self.fail_numbers[destination.digits], f"told to refuse {destination.digits}")
        if self.throttle_per_second is not None:
            now = time.monotonic()
            if now - self._window_start >= 1.0:
                self._window_start, self._in_window = now, 0
            self._in_window += 1
            if self._in_window > self.throttle_per_second:
                raise self._refuse(ESME_RTHROTTLED, "over the rate")
        payload, udh = sm.short_message, b""
        if len(payload) > 254:
            raise self._refuse(ESME_RINVMSGLEN, "short_message over 254 octets")
        if sm.esm_class & ESM_CLASS_UDHI:
            if not payload or payload[0] + 1 > len(payload):
                raise self._refuse(ESME_RINVESMCLASS, "UDHI set without a user data header")
            udh, payload = payload[: payload[0] + 1], payload[payload[0] + 1 :]
            if udh[1:3] != b"\x00\x03" or len(udh) != 6 or not 1 <= udh[5] <= udh[4] or udh[4] < 2:
                raise self._refuse(ESME_RINVESMCLASS, f"unexpected concatenation header {udh.hex()}")
        elif sm.esm_class & ~0x03:
            raise self._refuse(ESME_RINVESMCLASS, f"esm_class 0x{sm.esm_class:02X}")
        try:
            if sm.data_coding == DATA_CODING_DEFAULT:
                # 160 septets in one message; a 6-octet header takes 7 septets of them.
                if len(payload) > (153 if udh else 160):
                    raise self._refuse(ESME_RINVMSGLEN, f"{len(payload)} septets")
                text = decode_gsm7(payload)
            elif sm.data_coding == DATA_CODING_UCS2:
                if len(udh) + len(payload) > 140 or len(payload) % 2:
                    raise self._refuse(ESME_RINVMSGLEN, f"{len(payload)} UCS-2 octets")
                text = payload.decode("utf-16-be")  # a lone surrogate fails: a pair was split
            else:
                raise self._refuse(ESME_RSUBMITFAIL, f"data_coding 0x{sm.data_coding:02X}")
        except (SmDecodeError, UnicodeDecodeError) as exc:
            raise self._refuse(ESME_RSUBMITFAIL, f"undecodable text: {exc}") from exc
        part = SmscPart(f"{next(self._ids):08X}", source, destination, sm.data_coding, sm.esm_class, udh, text)
        self._record(part)
        return part, bool(sm.registered_delivery & 0x01)

    def _record(self, part: SmscPart) -> None:
        if not part.udh:
            self.messages.append(
                SmscMessage(part.message_id, part.source, part.destination, part.data_coding, part.text, [part])
            )
            return
        reference, total, number = part.udh[3], part.udh[4], part.udh[5]
        key = (part.source.digits, part.destination.digits, reference)
        parts = self._partial.setdefault(key, {})
        if number in parts or any(p.udh[4] != total or p.data_coding != part.data_coding for p in parts.values()):
            raise self._refuse(ESME_RSUBMITFAIL, f"inconsistent part {number}/{total} of reference {reference}")
        parts[number] = part
        if len(parts) == total:
            del self._partial[key]
            ordered = [parts[n] for n in range(1, total + 1)]
            self.messages.append(
                SmscMessage(
                    ordered[0].message_id,
                    part.source,
                    part.destination,
                    part.data_coding,
                    "".join(p.text for p in ordered),
                    ordered,
                )
            )

    # -- receipts --------------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _receipt(self, part: SmscPart) -> None:
        assert self.receipt_delay is not None
        await asyncio.sleep(self.receipt_delay)
        stat = self.receipt_stats.get(part.destination.digits, "DELIVRD")
        err = "000" if stat == "DELIVRD" else "001"
        now = time.strftime("%y%m%d%H%M")
        text = (
            f"id:{part.message_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} submit date:{now} "
            f"done date:{now} stat:{stat} err:{err} text:{part.text[:20]}"
        ).encode("latin-1", "replace")
        tlvs = struct.pack(">HH", TLV_RECEIPTED_MESSAGE_ID, len(part.message_id) + 1) + part.message_id.encode()
        tlvs += b"\x00" + struct.pack(">HHB", TLV_MESSAGE_STATE, 1, _MESSAGE_STATES.get(stat, 7))
        body = (
            b"\x00"
            + bytes((part.destination.ton, part.destination.npi))
            + part.destination.digits.encode()
            + b"\x00"
            + bytes((part.source.ton, part.source.npi))
            + part.source.digits.encode()
            + b"\x00"
            + bytes((ESM_CLASS_RECEIPT, 0, 0))
            + b"\x00\x00"  # schedule_delivery_time, validity_period
            + bytes((0, 0, 0, 0, len(text)))
            + text
            + tlvs
        )
        for writer in list(self._writers):
            with contextlib.suppress(ConnectionError):
                writer.write(encode_pdu(DELIVER_SM, next(self._ids) & 0x7FFFFFFF, body))
                await writer.drain()


async def _main(port: int, system_id: str, password: str) -> None:
    smsc = FakeSmsc(system_id, password, port=port)
    await smsc.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
