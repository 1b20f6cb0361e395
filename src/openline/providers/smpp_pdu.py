"""SMPP 3.4 wire format: PDUs, addresses, GSM 03.38 and UCS-2 short messages, long-text parts, receipts.

Pure functions and constants shared by the ESME client (:mod:`openline.providers.smpp`) and the SMSC
simulator (:mod:`openline.providers.fake_smsc`). A PDU is a 16-octet header (command_length, command_id,
command_status, sequence_number, all big-endian unsigned 32-bit) and a body of C-octet strings (NUL
terminated), single octets, a length-prefixed short_message and optional TLVs.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, NamedTuple

import regex

from openline.encoding import Encoding, count_segments

__all__ = [
    "BIND_TRANSCEIVER",
    "BIND_TRANSCEIVER_RESP",
    "DELIVER_SM",
    "DELIVER_SM_RESP",
    "ENQUIRE_LINK",
    "ENQUIRE_LINK_RESP",
    "GENERIC_NACK",
    "HEADER",
    "STATUSES",
    "SUBMIT_SM",
    "SUBMIT_SM_RESP",
    "UNBIND",
    "UNBIND_RESP",
    "Address",
    "Receipt",
    "ReceiptStatus",
    "ShortMessage",
    "Sm",
    "SmDecodeError",
    "address",
    "c_string",
    "decode_gsm7",
    "encode_gsm7",
    "encode_pdu",
    "parse_receipt",
    "parse_sm",
    "parse_tlvs",
    "short_messages",
    "status_name",
]

HEADER = struct.Struct(">IIII")
MAX_PDU = 65_536  # far above any PDU of this protocol's use; a longer length is garbage on the line

GENERIC_NACK = 0x80000000
BIND_TRANSCEIVER = 0x00000009
BIND_TRANSCEIVER_RESP = 0x80000009
SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
DELIVER_SM_RESP = 0x80000005
UNBIND = 0x00000006
UNBIND_RESP = 0x80000006
ENQUIRE_LINK = 0x00000015
ENQUIRE_LINK_RESP = 0x80000015

# command_status values (SMPP 3.4 §5.1.3) -> (name, what it means in our words).
STATUSES: dict[int, tuple[str, str]] = {
    0x00: ("ESME_ROK", "no error"),
    0x01: ("ESME_RINVMSGLEN", "the message is too long or its length is wrong"),
    0x02: ("ESME_RINVCMDLEN", "the PDU's length is wrong"),
    0x03: ("ESME_RINVCMDID", "the SMSC does not know the command"),
    0x04: ("ESME_RINVBNDSTS", "the session is not bound for this command"),
    0x05: ("ESME_RALYBND", "the session is already bound"),
    0x08: ("ESME_RSYSERR", "a system error at the SMSC"),
    0x0A: ("ESME_RINVSRCADR", "the SMSC refused the sender address"),
    0x0B: ("ESME_RINVDSTADR", "the SMSC refused the destination number"),
    0x0C: ("ESME_RINVMSGID", "the message id is not valid"),
    0x0D: ("ESME_RBINDFAIL", "the SMSC refused the bind: check the SMPP system ID and password"),
    0x0E: ("ESME_RINVPASWD", "the SMSC refused the SMPP password"),
    0x0F: ("ESME_RINVSYSID", "the SMSC does not know the SMPP system ID"),
    0x14: ("ESME_RMSGQFUL", "the SMSC's message queue is full"),
    0x43: ("ESME_RINVESMCLASS", "the esm_class is not valid (a long-text header problem)"),
    0x45: ("ESME_RSUBMITFAIL", "the SMSC could not take the message"),
    0x48: ("ESME_RINVSRCTON", "the SMSC refused the sender address type (TON)"),
    0x49: ("ESME_RINVSRCNPI", "the SMSC refused the sender numbering plan (NPI)"),
    0x50: ("ESME_RINVDSTTON", "the SMSC refused the destination type (TON)"),
    0x51: ("ESME_RINVDSTNPI", "the SMSC refused the destination numbering plan (NPI)"),
    0x58: ("ESME_RTHROTTLED", "sending faster than the SMSC allows"),
    0x61: ("ESME_RINVSCHED", "the scheduled delivery time is not valid"),
    0x62: ("ESME_RINVEXPIRY", "the validity period is not valid"),
    0xFE: ("ESME_RDELIVERYFAILURE", "the SMSC could not deliver the message"),
    0xFF: ("ESME_RUNKNOWNERR", "an unknown error at the SMSC"),
}


def status_name(status: int) -> str:
    """``ESME_RTHROTTLED (0x58)``: a command_status as a name and its hex code."""
    name = STATUSES.get(status, ("unknown status", ""))[0]
    return f"{name} (0x{status:02X})"


def encode_pdu(command_id: int, sequence: int, body: bytes = b"", status: int = 0) -> bytes:
    return HEADER.pack(HEADER.size + len(body), command_id, status, sequence) + body


def c_string(body: bytes, at: int, limit: int = 256) -> tuple[str, int]:
    """A C-octet string at ``at``: its text (Latin-1, so any octets decode) and the offset after its NUL."""
    end = body.index(b"\x00", at, at + limit)  # ValueError when it is missing: a malformed PDU
    return body[at:end].decode("latin-1"), end + 1


def parse_tlvs(body: bytes, at: int) -> dict[int, bytes]:
    """The optional parameters from ``at`` on: tag -> value (a truncated TLV raises ValueError)."""
    tlvs: dict[int, bytes] = {}
    while at < len(body):
        if at + 4 > len(body):
            raise ValueError("truncated TLV header")
        tag, length = struct.unpack_from(">HH", body, at)
        at += 4
        if at + length > len(body):
            raise ValueError("truncated TLV value")
        tlvs[tag] = body[at : at + length]
        at += length
    return tlvs


@dataclass(frozen=True)
class Sm:
    """The fields of a submit_sm or deliver_sm body (they share one layout) that openline reads."""

    source: Address
    destination: Address
    esm_class: int
    registered_delivery: int
    data_coding: int
    short_message: bytes
    tlvs: dict[int, bytes]


def parse_sm(body: bytes) -> Sm:
    """A submit_sm or deliver_sm body; ValueError (or IndexError) when it is malformed."""
    at = c_string(body, 0, 6)[1]  # service_type
    source_ton, source_npi = body[at], body[at + 1]
    source, at = c_string(body, at + 2, 21)
    destination_ton, destination_npi = body[at], body[at + 1]
    destination, at = c_string(body, at + 2, 21)
    esm_class = body[at]
    at = c_string(body, at + 3, 17)[1]  # after protocol_id, priority_flag: schedule_delivery_time
    at = c_string(body, at, 17)[1]  # validity_period
    registered_delivery, data_coding, length = body[at], body[at + 2], body[at + 4]
    short_message = body[at + 5 : at + 5 + length]
    if len(short_message) != length:
        raise ValueError("short_message is shorter than sm_length")
    return Sm(
        Address(source_ton, source_npi, source),
        Address(destination_ton, destination_npi, destination),
        esm_class,
        registered_delivery,
        data_coding,
        short_message,
        parse_tlvs(body, at + 5 + length),
    )


# -- addresses -----------------------------------------------------------------------------------

TON_INTERNATIONAL, TON_NETWORK_SPECIFIC, TON_ALPHANUMERIC = 1, 3, 5
NPI_UNKNOWN, NPI_ISDN = 0, 1
_SHORT_CODE = re.compile(r"[0-9]{3,8}")
_NUMBER = re.compile(r"\+?[0-9]{9,15}")
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9 .&'-]{1,11}")


class Address(NamedTuple):
    ton: int
    npi: int
    digits: str  # as written in the PDU


def address(text: str) -> Address:
    """TON/NPI and the written form of a sender or recipient: an E.164 number (TON 1, NPI 1, no '+'),
    a short code (TON 3, NPI 0) or an alphanumeric sender ID (TON 5, NPI 0; at most 11 characters)."""
    text = text.strip()
    if _SHORT_CODE.fullmatch(text):
        return Address(TON_NETWORK_SPECIFIC, NPI_UNKNOWN, text)
    if _NUMBER.fullmatch(text):
        return Address(TON_INTERNATIONAL, NPI_ISDN, text.removeprefix("+"))
    if _ALPHANUMERIC.fullmatch(text) and not text.isdigit():
        return Address(TON_ALPHANUMERIC, NPI_UNKNOWN, text)
    raise ValueError(f"{text!r} is neither an E.164 number, a short code nor an alphanumeric sender ID")


# -- GSM 03.38 -----------------------------------------------------------------------------------

# The basic table in septet order (0x1B is the escape to the extension table).
_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40}
_GSM_EXTENSION["€"] = 0x65
assert len(_GSM_BASIC) == 128
# Text -> one octet per septet ("the SMSC default": unpacked), via str.translate so it runs in C.
_TO_SEPTETS: dict[int, str] = {ord(c): chr(i) for i, c in enumerate(_GSM_BASIC) if c != "\x1b"}
_TO_SEPTETS.update({ord(c): "\x1b" + chr(s) for c, s in _GSM_EXTENSION.items()})
_FROM_SEPTETS: dict[int, str] = {i: c for i, c in enumerate(_GSM_BASIC) if c != "\x1b"}
_FROM_EXTENSION = {chr(s): c for c, s in _GSM_EXTENSION.items()}


class SmDecodeError(ValueError):
    """A short message whose octets are not valid in its data coding."""


def encode_gsm7(text: str) -> bytes:
    """``text`` (GSM-7 characters only) as unpacked septets, extension characters escaped."""
    return text.translate(_TO_SEPTETS).encode("latin-1")


def decode_gsm7(octets: bytes) -> str:
    """Unpacked septets back to text; an octet above 0x7F or a dangling or unknown escape is an error."""
    if max(octets, default=0) > 0x7F:
        raise SmDecodeError("an octet above 0x7F in GSM-7 text")
    first, *escaped = octets.decode("latin-1").split("\x1b")
    out = [first.translate(_FROM_SEPTETS)]
    for chunk in escaped:
        extension = _FROM_EXTENSION.get(chunk[:1]) if chunk else None
        if extension is None:
            raise SmDecodeError("an escape without a known extension character")
        out.append(extension + chunk[1:].translate(_FROM_SEPTETS))
    return "".join(out)


# -- short messages and long-text parts ----------------------------------------------------------

DATA_CODING_DEFAULT, DATA_CODING_UCS2 = 0x00, 0x08
ESM_CLASS_UDHI, ESM_CLASS_RECEIPT = 0x40, 0x04
_GRAPHEME = regex.compile(r"\X")


@dataclass(frozen=True)
class ShortMessage:
    """One submit_sm's worth of text: its data_coding, esm_class and short_message octets."""

    data_coding: int
    esm_class: int
    octets: bytes


def _pieces(text: str, size: int, cost: dict[str, int] | None) -> Iterator[str]:
    """Whole graphemes packed greedily into pieces of at most ``size`` units, as count_segments counts
    them: an escape pair, surrogate pair or joined character never straddles two parts."""
    piece: list[str] = []
    used = 0
    for grapheme in _GRAPHEME.findall(text):
        width = len(grapheme.encode("utf-16-le")) // 2 if cost is None else sum(cost.get(c, 1) for c in grapheme)
        if used + width > size and piece:
            yield "".join(piece)
            piece, used = [], 0
        if width > size:  # a grapheme longer than a part: cut between its code points
            for char in grapheme:
                char_width = len(char.encode("utf-16-le")) // 2 if cost is None else cost.get(char, 1)
                if used + char_width > size:
                    yield "".join(piece)
                    piece, used = [], 0
                piece.append(char)
                used += char_width
            continue
        piece.append(grapheme)
        used += width
    if piece:
        yield "".join(piece)


_ESCAPE_COST = dict.fromkeys(_GSM_EXTENSION, 2)


def short_messages(text: str, reference: int) -> list[ShortMessage]:
    """``text`` as the submit_sm payloads that carry it: GSM-7 (data_coding 0) when every character fits,
    else UCS-2 big-endian (8); a long text as concatenated parts, each with an 8-bit reference UDH
    (IE 0x00: reference, total, number) and esm_class 0x40."""
    count = count_segments(text)
    gsm = count.encoding is Encoding.gsm7
    coding = DATA_CODING_DEFAULT if gsm else DATA_CODING_UCS2
    if count.segments <= 1:
        return [ShortMessage(coding, 0, encode_gsm7(text) if gsm else text.encode("utf-16-be"))]
    pieces = list(_pieces(text, 153 if gsm else 67, _ESCAPE_COST if gsm else None))
    if len(pieces) > 255:
        raise ValueError(f"a text of {len(pieces)} parts is longer than SMPP concatenation allows (255)")
    reference &= 0xFF
    return [
        ShortMessage(
            coding,
            ESM_CLASS_UDHI,
            bytes((5, 0x00, 3, reference, len(pieces), number))
            + (encode_gsm7(piece) if gsm else piece.encode("utf-16-be")),
        )
        for number, piece in enumerate(pieces, start=1)
    ]


# -- delivery receipts ---------------------------------------------------------------------------

ReceiptStatus = Literal["delivered", "undelivered", "failed", "sent"]
TLV_RECEIPTED_MESSAGE_ID, TLV_MESSAGE_STATE, TLV_NETWORK_ERROR_CODE = 0x001E, 0x0427, 0x0423
# The receipt's stat word (SMPP 3.4 Appendix B) and message_state TLV values -> openline's status words.
# ENROUTE, ACCEPTD and UNKNOWN say nothing new: the text stays "sent".
_STAT_WORDS: dict[str, ReceiptStatus] = {
    "DELIVRD": "delivered",
    "UNDELIV": "undelivered",
    "EXPIRED": "undelivered",
    "DELETED": "failed",
    "REJECTD": "failed",
    "ENROUTE": "sent",
    "ACCEPTD": "sent",
    "UNKNOWN": "sent",
}
_MESSAGE_STATES: dict[int, ReceiptStatus] = {
    1: "sent",
    2: "delivered",
    3: "undelivered",
    4: "failed",
    5: "undelivered",
    6: "sent",
    7: "sent",
    8: "failed",
}
_RECEIPT_FIELD = re.compile(r"(?i)\b(id|stat|err):(\S*)")


class Receipt(NamedTuple):
    """What a delivery receipt says: the SMSC's id of the text, its status, and the error code if any."""

    provider_message_id: str
    status: ReceiptStatus
    error_code: str | None


def parse_receipt(text: str, tlvs: dict[int, bytes]) -> Receipt | None:
    """A receipt from a deliver_sm's short_message (``id:… stat:DELIVRD err:000 …``) and/or its
    receipted_message_id, message_state and network_error_code TLVs (the TLVs win); None when it names
    no message or no known state."""
    fields: dict[str, str] = {}
    for match in _RECEIPT_FIELD.finditer(text):
        fields.setdefault(match.group(1).lower(), match.group(2))
    message_id = fields.get("id") or None
    raw_id = tlvs.get(TLV_RECEIPTED_MESSAGE_ID)
    if raw_id:
        message_id = raw_id.split(b"\x00", 1)[0].decode("latin-1") or message_id
    status = _STAT_WORDS.get(fields.get("stat", "").upper())
    state = tlvs.get(TLV_MESSAGE_STATE)
    if state is not None and len(state) == 1 and state[0] in _MESSAGE_STATES:
        status = _MESSAGE_STATES[state[0]]
    if not message_id or status is None:
        return None
    error: str | None = fields.get("err") or None
    network = tlvs.get(TLV_NETWORK_ERROR_CODE)
    if network is not None and len(network) == 3:
        error = f"{network[0]}:{int.from_bytes(network[1:], 'big')}"
    if error is not None and error.strip("0") == "":  # err:000 is "no error"
        error = None
    return Receipt(message_id, status, error)
