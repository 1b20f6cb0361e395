"""SMPP 3.4: sending texts to an SMSC as an ESME bound as transceiver, and taking its delivery receipts.

Written on asyncio streams and ``struct`` rather than a library: the Python SMPP clients available are either
synchronous and thread-based (smpplib) or queue-driven with partial ESME support and no request/answer API
(aiosmpplib: messages are enqueued and outcomes arrive through a correlator), neither of which fits an
``await send() -> id`` adapter with many submit_sm in flight on one connection.

One connection, bound lazily on the first send and kept alive with enquire_link; when it drops it is bound
again in the background with growing delays. Up to ``window`` submit_sm are in flight at once, each answered
by the submit_sm_resp with its sequence number. The never-twice rule: once a submit_sm has been written,
losing the connection (or waiting past ``response_timeout``) before its answer is *ambiguous* and the text is
never resubmitted; only a text whose PDU never left (not bound, cannot connect) is *transient*.

A long text goes as concatenated parts; the id ``send`` returns is the first part's message_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import ClassVar

from openline.providers.outbound import OutboundSms, SendFailed
from openline.providers.smpp_pdu import (
    BIND_TRANSCEIVER,
    DELIVER_SM,
    DELIVER_SM_RESP,
    ENQUIRE_LINK,
    ENQUIRE_LINK_RESP,
    ESM_CLASS_RECEIPT,
    GENERIC_NACK,
    HEADER,
    MAX_PDU,
    STATUSES,
    SUBMIT_SM,
    UNBIND,
    UNBIND_RESP,
    Receipt,
    ReceiptStatus,
    address,
    encode_pdu,
    parse_receipt,
    parse_sm,
    short_messages,
    status_name,
)

__all__ = ["Receipt", "ReceiptStatus", "SmppSender", "explain"]

log = logging.getLogger(__name__)

ESME_RINVCMDID = 0x03
ESME_RX_T_APPN = 0x64  # the ESME cannot take a deliver_sm now: the SMSC tries again later
# submit_sm_resp statuses under which nothing was taken and the same text may go later.
_TRANSIENT = frozenset({0x04, 0x08, 0x14, 0x58})


def explain(code: str) -> str:
    """A human reason for an SMPP command_status written as hex (``0x58``)."""
    try:
        status = int(code, 16)
    except ValueError:
        return f"SMPP error {code}"
    known = STATUSES.get(status)
    return f"{status_name(status)}: {known[1]}" if known else f"SMPP {status_name(status)}"


class _Lost(Exception):
    """The connection ended while a PDU waited for its answer."""


class _Link:
    """One bound connection: writes PDUs and matches answers to them by sequence number."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_deliver: Callable[[bytes], Awaitable[tuple[int, bytes]]],
    ) -> None:
        self.reader, self.writer = reader, writer
        self._on_deliver = on_deliver
        self._delivering: set[asyncio.Task[None]] = set()
        self._sequence = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self.closed = asyncio.Event()
        self.reading = asyncio.get_running_loop().create_task(self._read())

    def next_sequence(self) -> int:
        sequence = next(self._sequence)
        if sequence >= 0x7FFFFFFF:  # SMPP allows 1..0x7FFFFFFF; wrap around
            self._sequence = itertools.count(1)
        return sequence

    def write(self, command_id: int, body: bytes) -> asyncio.Future[tuple[int, bytes]]:
        """Write a request; the future gets ``(command_status, body)`` of its answer or fails with _Lost."""
        if self.closed.is_set() or self.writer.is_closing():
            raise _Lost("not connected")
        sequence = self.next_sequence()
        answer: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._waiting[sequence] = answer
        self.writer.write(encode_pdu(command_id, sequence, body))
        return answer

    def answer(self, command_id: int, sequence: int, body: bytes = b"", status: int = 0) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode_pdu(command_id, sequence, body, status))

    async def _read(self) -> None:
        buffer = bytearray()
        try:
            while True:
                chunk = await self.reader.read(1 << 16)
                if not chunk:
                    break
                buffer += chunk
                at = 0
                while len(buffer) - at >= HEADER.size:
                    length, command_id, status, sequence = HEADER.unpack_from(buffer, at)
                    if not HEADER.size <= length <= MAX_PDU:
                        raise _Lost(f"the SMSC sent a PDU of length {length}")
                    if len(buffer) - at < length:
                        break
                    body = bytes(buffer[at + HEADER.size : at + length])
                    at += length
                    self._dispatch(command_id, status, sequence, body)
                del buffer[:at]
        except (OSError, _Lost) as exc:
            log.warning("SMPP connection lost: %s", exc)
        finally:
            self.close()

    def _dispatch(self, command_id: int, status: int, sequence: int, body: bytes) -> None:
        if command_id & 0x80000000:  # an answer (generic_nack included)
            waiting = self._waiting.pop(sequence, None)
            if waiting is not None and not waiting.done():
                waiting.set_result((status, body))
        elif command_id == ENQUIRE_LINK:
            self.answer(ENQUIRE_LINK_RESP, sequence)
        elif command_id == DELIVER_SM:
            task = asyncio.get_running_loop().create_task(self._deliver(sequence, body))
            self._delivering.add(task)
            task.add_done_callback(self._delivering.discard)
        elif command_id == UNBIND:
            self.answer(UNBIND_RESP, sequence)
            self.close()
        else:
            self.answer(GENERIC_NACK, sequence, status=ESME_RINVCMDID)

    async def _deliver(self, sequence: int, body: bytes) -> None:
        # Answered only once what it carries is stored: an SMSC redelivers what is not acknowledged.
        status, answer = await self._on_deliver(body)
        self.answer(DELIVER_SM_RESP, sequence, answer, status)

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_exception(_Lost("the connection to the SMSC was lost"))
        self._waiting.clear()
        self.writer.close()
        if self.reading is not asyncio.current_task():
            self.reading.cancel()


class SmppSender:
    """Sends texts to an SMSC over SMPP 3.4; ``send`` returns the SMSC's message_id (a long text's first part's).

    ``on_receipt``: awaited with each delivery receipt (a deliver_sm with the receipt bit of esm_class set).
    ``window``: most submit_sm awaiting their answer at once.
    """

    name: ClassVar[str] = "smpp"

    def __init__(
        self,
        host: str,
        port: int,
        system_id: str,
        password: str,
        system_type: str = "",
        *,
        on_receipt: Callable[[Receipt], Awaitable[None]] | None = None,
        window: int = 128,
        connect_timeout: float = 5.0,
        response_timeout: float = 10.0,
        enquire_link_interval: float = 30.0,
        reconnect_delay: float = 1.0,
        max_reconnect_delay: float = 60.0,
    ) -> None:
        if not host or not system_id:
            raise ValueError("an SMPP host and system ID are required to send")
        if len(system_id) > 15 or len(password) > 8 or len(system_type) > 12:
            raise ValueError("SMPP 3.4 allows a system_id of 15, a password of 8 and a system_type of 12 characters")
        self._host, self._port = host, port
        self._bind_body = b"".join(
            (
                system_id.encode("latin-1") + b"\x00",
                password.encode("latin-1") + b"\x00",
                system_type.encode("latin-1") + b"\x00",
                bytes((0x34, 0, 0)),  # interface_version 3.4, addr_ton, addr_npi
                b"\x00",  # address_range: any
            )
        )
        self._on_receipt = on_receipt
        self._window = asyncio.Semaphore(window)
        self._connect_timeout = connect_timeout
        self._response_timeout = response_timeout
        self._enquire_link_interval = enquire_link_interval
        self._first_delay, self._max_delay = reconnect_delay, max_reconnect_delay
        self._delay = reconnect_delay
        self._next_attempt = 0.0  # monotonic time before which no connection is tried
        self._last_error = ""
        self._link: _Link | None = None
        self._connecting = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reconnector: asyncio.Task[None] | None = None
        self._references = itertools.count(1)
        self._closed = False

    # -- connection ------------------------------------------------------------------------------

    async def _bound(self) -> _Link:
        link = self._link
        if link is not None and not link.closed.is_set():
            return link
        async with self._connecting:
            link = self._link
            if link is not None and not link.closed.is_set():
                return link
            if self._closed:
                raise SendFailed("the SMPP sender is closed", transient=True)
            wait = self._next_attempt - time.monotonic()
            if wait > 0:
                raise SendFailed(
                    f"not bound to the SMSC ({self._last_error}); next try in {wait:.1f} s",
                    transient=True,
                    retry_after=wait,
                )
            try:
                self._link = await self._connect()
            except SendFailed as failed:
                self._last_error = failed.reason
                self._next_attempt = time.monotonic() + self._delay
                self._delay = min(self._max_delay, self._delay * 2)
                self._keep_reconnecting()
                raise
            self._delay = self._first_delay
            return self._link

    async def _connect(self) -> _Link:
        where = f"{self._host}:{self._port}"
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self._host, self._port), self._connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise SendFailed(f"could not connect to the SMSC at {where}: {reason}", transient=True) from exc
        link = _Link(reader, writer, self._deliver)
        try:
            status, _ = await asyncio.wait_for(link.write(BIND_TRANSCEIVER, self._bind_body), self._connect_timeout)
        except (_Lost, TimeoutError) as exc:
            link.close()
            raise SendFailed(f"the SMSC at {where} did not answer bind_transceiver ({exc})", transient=True) from exc
        if status != 0:
            link.close()
            reason = STATUSES.get(status, ("", "the SMSC refused the bind"))[1]
            raise SendFailed(
                f"the SMSC at {where} refused bind_transceiver: {status_name(status)}: {reason}",
                code=f"0x{status:02X}",
                transient=True,  # nothing was sent; the texts wait until the credentials are fixed
            )
        log.info("bound to the SMSC at %s as transceiver", where)
        self._spawn(self._keep_alive(link))
        return link

    async def _keep_alive(self, link: _Link) -> None:
        """enquire_link whenever the link has been quiet; no answer in time ends the link."""
        while not link.closed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(link.closed.wait(), self._enquire_link_interval)
                break
            try:
                await asyncio.wait_for(link.write(ENQUIRE_LINK, b""), self._response_timeout)
            except (_Lost, TimeoutError):
                log.warning("the SMSC did not answer enquire_link; reconnecting")
                link.close()
        self._keep_reconnecting()

    def _keep_reconnecting(self) -> None:
        if not self._closed and (self._reconnector is None or self._reconnector.done()):
            self._reconnector = asyncio.get_running_loop().create_task(self._reconnect())
            self._tasks.add(self._reconnector)
            self._reconnector.add_done_callback(self._tasks.discard)

    async def _reconnect(self) -> None:
        """Bind again in the background (with the same growing delays), so receipts keep coming."""
        while not self._closed:
            await asyncio.sleep(max(0.0, self._next_attempt - time.monotonic()))
            try:
                await self._bound()
                return
            except SendFailed:
                continue

    def _spawn(self, coroutine: Coroutine[None, None, None]) -> None:
        if self._closed:
            coroutine.close()
            return
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, body: bytes) -> tuple[int, bytes]:
        """A deliver_sm: hands a receipt to ``on_receipt`` and waits for it to be taken; returns the
        deliver_sm_resp (status, body with message_id ""). If ``on_receipt`` fails (the database is
        away), the answer is ESME_RX_T_APPN, a temporary error, so the SMSC delivers the receipt again."""
        try:
            sm = parse_sm(body)
        except (ValueError, IndexError):
            log.warning("a malformed deliver_sm from the SMSC was acknowledged and ignored")
            return 0, b"\x00"
        if not sm.esm_class & ESM_CLASS_RECEIPT:
            log.info("an inbound text over SMPP was acknowledged and ignored (texts arrive through webhooks)")
            return 0, b"\x00"
        receipt = parse_receipt(sm.short_message.decode("latin-1"), sm.tlvs)
        if receipt is None:
            log.warning("a delivery receipt without a message id or a known state was ignored")
        elif self._on_receipt is not None:
            try:
                await self._on_receipt(receipt)
            except Exception:
                log.exception(
                    "the delivery receipt for %s could not be stored; the SMSC will resend it",
                    receipt.provider_message_id,
                )
                return ESME_RX_T_APPN, b"\x00"
        return 0, b"\x00"

    # -- sending ---------------------------------------------------------------------------------

    async def send(self, sms: OutboundSms) -> str:
        try:
            source, destination = address(sms.sender), address(sms.to)
        except ValueError as exc:
            raise SendFailed(f"SMPP cannot address this text: {exc}") from exc
        try:
            parts = short_messages(sms.body, next(self._references))
        except ValueError as exc:
            raise SendFailed(str(exc)) from exc
        head = b"\x00%c%c%s\x00%c%c%s\x00" % (
            source.ton,
            source.npi,
            source.digits.encode("latin-1"),
            destination.ton,
            destination.npi,
            destination.digits.encode("latin-1"),
        )
        first_id = ""
        for number, part in enumerate(parts, start=1):
            # esm_class, protocol_id, priority_flag, schedule_delivery_time, validity_period,
            # registered_delivery (a receipt for every part), replace_if_present, data_coding,
            # sm_default_msg_id, sm_length, short_message.
            body = head + b"%c\x00\x00\x00\x00\x01\x00%c\x00%c%s" % (
                part.esm_class,
                part.data_coding,
                len(part.octets),
                part.octets,
            )
            message_id = await self._submit(body, later_part=number > 1, number=number, total=len(parts))
            first_id = first_id or message_id
        return first_id

    async def _submit(self, body: bytes, *, later_part: bool, number: int, total: int) -> str:
        attempt = 0
        while True:
            try:
                return await self._submit_once(body)
            except SendFailed as failed:
                if not later_part or failed.ambiguous:
                    raise
                # The earlier parts are out: sending the text again would repeat them, so a refused later
                # part is retried here (throttling passes) and otherwise ends the text for good.
                attempt += 1
                if failed.transient and attempt <= 5:
                    await asyncio.sleep(0.1 * 2**attempt)
                    continue
                raise SendFailed(
                    f"part {number} of {total} was refused after the earlier parts were sent: {failed.reason}",
                    code=failed.code,
                ) from failed

    async def _submit_once(self, body: bytes) -> str:
        async with self._window:
            link = await self._bound()
            try:
                answer = link.write(SUBMIT_SM, body)
            except _Lost as exc:
                raise SendFailed("not bound to the SMSC (the connection just closed)", transient=True) from exc
            if link.writer.transport.get_write_buffer_size() > 1 << 16:  # the SMSC reads slower than we write
                with contextlib.suppress(ConnectionError):
                    await link.writer.drain()  # a failure shows as the answer's _Lost
            try:
                status, resp = await asyncio.wait_for(answer, self._response_timeout)
            except _Lost as exc:
                raise SendFailed(
                    "the connection to the SMSC was lost after the text was sent; not retried so it cannot be "
                    "sent twice",
                    ambiguous=True,
                ) from exc
            except TimeoutError as exc:
                raise SendFailed(
                    f"no submit_sm_resp within {self._response_timeout:g} s; not retried so it cannot be sent twice",
                    ambiguous=True,
                ) from exc
        if status == 0:
            message_id = resp.split(b"\x00", 1)[0].decode("latin-1")
            if not message_id:
                raise SendFailed(
                    "the SMSC accepted the text without a message id; not retried so it cannot be sent twice",
                    ambiguous=True,
                )
            return message_id
        code = f"0x{status:02X}"
        reason = STATUSES.get(status, ("", "the SMSC refused the text"))[1]
        raise SendFailed(
            f"the SMSC refused the text: {status_name(status)}: {reason}",
            code=code,
            transient=status in _TRANSIENT,
            retry_after=1.0 if status in (0x58, 0x14) else None,
        )

    async def close(self) -> None:
        """Unbind (briefly waiting for the answer) and close the connection; later sends fail as transient."""
        self._closed = True
        link = self._link
        if link is not None and not link.closed.is_set():
            with contextlib.suppress(_Lost, TimeoutError):
                await asyncio.wait_for(link.write(UNBIND, b""), 1.0)
            link.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
