"""Tracked links: a broadcast's URLs rewritten to short ``/l/<code>`` links that record a click and
redirect to the original.

A code is ``<link id><-><member id><signature>``: both ids in base62 and a signature of nine base62
characters (a truncated HMAC-SHA256, about 53 bits), so link 5,000 for member 1,000,000 is 17
characters. Nothing is stored per member: any process checks a code with the installation's key for
the purpose ``"tracked-link"`` (``Runtime.key_for("tracked-link")``), and a code only ever names a row
of ``broadcast_links``, so a click can only redirect to a URL the owner wrote (never an open redirect).

A click is recorded in ``link_clicks`` for the member the text was sent to, unless that member has
since been erased: the link still works, it just records nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

import regex
import sqlalchemy as sa

from openline.db import schema
from openline.db.sql import insert_ignoring_duplicates

__all__ = [
    "CODE_ALPHABET",
    "LINK_KEY_PURPOSE",
    "InvalidCode",
    "LinkRewriter",
    "TrackedLink",
    "find_link",
    "find_urls",
    "link_code",
    "link_target",
    "read_link_code",
    "record_click",
]

LINK_KEY_PURPOSE = "tracked-link"
CODE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SEPARATOR = "-"
# 62**9 is about 2**53.6: plenty against guessing for a redirect and a click record, and each
# character of a link costs SMS length.
_SIGNATURE_LENGTH = 9
# Two 64-bit ids (11 base62 characters each), the separator and the signature.
_MAX_CODE_LENGTH = 2 * 11 + 1 + _SIGNATURE_LENGTH
_DIGIT = {char: value for value, char in enumerate(CODE_ALPHABET)}

# An http(s) URL in running text: it ends at white space, at characters never written raw in a URL
# (quotes, angle brackets, guillemets, curly quotes), at emoji and other symbols, and at sentence
# marks of other scripts (Devanagari danda, CJK full stops and commas).
_QUOTES = "\u00ab\u00bb\u201c\u201d\u201e\u2018\u2019\u2039\u203a"  # guillemets and curly quotes
_STOPS = "\u0964\u0965\u3002\u3001\uff0c\uff01\uff1f"  # Devanagari dandas; CJK full stop, comma, exclamation, question
_URL = regex.compile(
    rf"(?<![\p{{L}}\p{{N}}_])https?://[^\s<>\"\p{{So}}\p{{Cc}}\p{{Cf}}\p{{Cs}}\p{{Co}}\p{{Z}}{_QUOTES}{_STOPS}]+",
    regex.IGNORECASE,
)
# Sentence punctuation after a URL belongs to the sentence, not the URL.
_TRAILING = frozenset(".,!?:;'*…")
_CLOSING = {")": "(", "]": "[", "}": "{"}
_HOST = regex.compile(r"[\p{L}\p{N}]")


class InvalidCode(ValueError):
    """A link code that was not made with this key: mistyped, cut short or forged."""


def find_urls(text: str) -> list[tuple[int, int, str]]:
    """The http(s) URLs in an SMS body, as ``(start, end, url)`` with ``text[start:end] == url``, in order.

    Punctuation that ends the sentence rather than the URL (``.,!?:;``, an ellipsis, quotes, a ``)``
    that closes a parenthesis opened before the URL) is left out, and so are emoji written right after it.
    """
    found: list[tuple[int, int, str]] = []
    for match in _URL.finditer(text):
        url = match.group()
        while url:
            last = url[-1]
            if last in _TRAILING or (last in _CLOSING and url.count(_CLOSING[last]) < url.count(last)):
                url = url[:-1]
            else:
                break
        host = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
        if _HOST.search(host):
            found.append((match.start(), match.start() + len(url), url))
    return found


# -- codes ----------------------------------------------------------------------------------------


def _base62(number: int) -> str:
    if number < 0:
        raise ValueError("ids are not negative")
    digits = []
    while True:
        number, digit = divmod(number, 62)
        digits.append(CODE_ALPHABET[digit])
        if number == 0:
            return "".join(reversed(digits))


def _from_base62(text: str) -> int:
    number = 0
    for char in text:
        digit = _DIGIT.get(char)
        if digit is None:
            raise InvalidCode("not a link code")
        number = number * 62 + digit
    return number


def _signature(key: bytes, link_id: int, member_id: int) -> str:
    digest = hmac.new(key, f"{link_id}.{member_id}".encode(), hashlib.sha256).digest()
    number = int.from_bytes(digest[:8], "big") % 62**_SIGNATURE_LENGTH
    return _base62(number).rjust(_SIGNATURE_LENGTH, CODE_ALPHABET[0])


def link_code(key: bytes, link_id: int, member_id: int) -> str:
    """The code of ``/l/<code>`` naming link ``link_id`` (a ``broadcast_links`` row) sent to ``member_id``."""
    return f"{_base62(link_id)}{_SEPARATOR}{_base62(member_id)}{_signature(key, link_id, member_id)}"


def read_link_code(key: bytes, code: str) -> tuple[int, int]:
    """The ``(link_id, member_id)`` a genuine code names; raises InvalidCode for anything else."""
    if len(code) > _MAX_CODE_LENGTH:
        raise InvalidCode("not a link code")
    ids, signature = code[:-_SIGNATURE_LENGTH], code[-_SIGNATURE_LENGTH:]
    parts = ids.split(_SEPARATOR)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise InvalidCode("not a link code")
    link_id, member_id = _from_base62(parts[0]), _from_base62(parts[1])
    # Exactly one spelling per code: no leading zeros.
    if _base62(link_id) != parts[0] or _base62(member_id) != parts[1]:
        raise InvalidCode("not a link code")
    # Compared as bytes: a garbled code may hold any character.
    if not hmac.compare_digest(signature.encode(), _signature(key, link_id, member_id).encode()):
        raise InvalidCode("the link code's signature does not match")
    return link_id, member_id


# -- rewriting ------------------------------------------------------------------------------------


class LinkRewriter:
    """Rewrites the URLs of one broadcast's texts to tracked links, one code per member.

    The connection is passed to each :meth:`rewrite`, so the same rewriter serves fan-out (inside its
    write transaction) and the estimate (which then creates the link rows fan-out will use). Link ids
    are kept in memory for the rewriter's life: build one per transaction.

    Links to the installation's own pages (under ``base_url``) are left as they are: they carry their
    own tokens, and a tracked link to them would only redirect to a redirect.
    """

    def __init__(self, broadcast_id: int, base_url: str, key: bytes) -> None:
        self.broadcast_id = broadcast_id
        self.base_url = base_url.rstrip("/")
        self._key = key
        self._ids: dict[str, int] = {}

    def rewrite(self, conn: sa.Connection, text: str, member_id: int) -> str:
        """``text`` with each URL replaced by ``{base_url}/l/{code}`` for ``member_id``."""
        pieces: list[str] = []
        position = 0
        for start, end, url in find_urls(text):
            if url.startswith(f"{self.base_url}/"):
                continue
            pieces += [text[position:start], self.tracked_url(conn, url, member_id)]
            position = end
        if not pieces:
            return text
        pieces.append(text[position:])
        return "".join(pieces)

    def tracked_url(self, conn: sa.Connection, url: str, member_id: int) -> str:
        return f"{self.base_url}/l/{link_code(self._key, self.link_id(conn, url), member_id)}"

    def link_id(self, conn: sa.Connection, url: str) -> int:
        """The ``broadcast_links`` id of ``url``, created if need be."""
        found = self._ids.get(url)
        if found is None:
            found = self._ids[url] = _get_or_create_link(conn, self.broadcast_id, url)
        return found


def _get_or_create_link(conn: sa.Connection, broadcast_id: int, url: str) -> int:
    bl = schema.broadcast_links.c
    query = sa.select(bl.id).where(bl.broadcast_id == broadcast_id, bl.url == url)
    found = conn.execute(query).scalar()
    if found is None:
        # Another process may be creating the same row: a duplicate is ignored (on PostgreSQL after
        # waiting for the other transaction), and the select then sees whichever row won.
        insert = insert_ignoring_duplicates(conn.dialect.name, schema.broadcast_links, ("broadcast_id", "url"))
        conn.execute(insert.values(broadcast_id=broadcast_id, url=url))
        found = conn.execute(query).scalar_one()
    return int(found)


# -- clicks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackedLink:
    id: int
    url: str
    broadcast_id: int
    community_id: int


def find_link(conn: sa.Connection, link_id: int) -> TrackedLink | None:
    bl, b = schema.broadcast_links.c, schema.broadcasts.c
    row = conn.execute(
        sa.select(bl.url, bl.broadcast_id, b.community_id)
        .select_from(schema.broadcast_links.join(schema.broadcasts, b.id == bl.broadcast_id))
        .where(bl.id == link_id)
    ).first()
    return None if row is None else TrackedLink(link_id, row.url, row.broadcast_id, row.community_id)


def link_target(conn: sa.Connection, key: bytes, code: str) -> str | None:
    """The URL a code redirects to, recording nothing; None for an unknown link. Raises InvalidCode."""
    link_id, _ = read_link_code(key, code)
    link = find_link(conn, link_id)
    return None if link is None else link.url


def record_click(conn: sa.Connection, key: bytes, code: str, now: datetime) -> str | None:
    """Record a click on ``code`` and return the URL to redirect to; None for an unknown link.

    Raises InvalidCode for a code not made with ``key``. A click by a member who no longer exists
    (erased) is not recorded, but the URL is still returned.
    """
    link_id, member_id = read_link_code(key, code)
    link = find_link(conn, link_id)
    if link is None:
        return None
    mem = schema.members.c
    # One statement checks the member still exists (in the link's community) and records the click,
    # so an erasure between a check and the insert cannot break the foreign key.
    conn.execute(
        sa.insert(schema.link_clicks).from_select(
            ["community_id", "member_id", "broadcast_id", "url", "clicked_at"],
            sa.select(
                sa.literal(link.community_id, schema.Id),
                mem.id,
                sa.literal(link.broadcast_id, schema.Id),
                sa.literal(link.url, sa.Text()),
                sa.literal(now, schema.UTCDateTime()),
            ).where(mem.id == member_id, mem.community_id == link.community_id),
        )
    )
    return link.url
