"""Signed, expiring links for members: the sign-up form (/join/<token>) and the profile page
(/profile/<token>), and the nonce that ties a submitted form to the page that showed it.

A token is ``<member id>.<expiry, unix seconds>.<signature>``: nothing secret in it, nothing stored,
and any process of the installation can check it with the installation's key. Each purpose has its
own key (``Runtime.key_for("member-link")``, ``key_for("member-profile")``), so a join link never
opens a profile. A join link is also single-use: it was issued ``JOIN_LINK_LIFETIME`` before it
expires, and one issued before the member last submitted a form is used up (see :func:`link_issued_at`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "JOIN_LINK_LIFETIME",
    "PROFILE_LINK_LIFETIME",
    "ExpiredLink",
    "InvalidLink",
    "SignedLink",
    "join_url",
    "link_issued_at",
    "read_member_link",
    "sign_form_nonce",
    "sign_member_link",
    "sign_profile_link",
    "verify_form_nonce",
    "verify_member_link",
    "verify_profile_link",
]

JOIN_LINK_LIFETIME = timedelta(days=30)
# A profile link opens someone's personal data: short-lived.
PROFILE_LINK_LIFETIME = timedelta(hours=24)


class InvalidLink(ValueError):
    pass


class ExpiredLink(InvalidLink):
    pass


@dataclass(frozen=True)
class SignedLink:
    member_id: int
    expires_at: datetime


def _signature(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_member_link(key: bytes, member_id: int, now: datetime, lifetime: timedelta = JOIN_LINK_LIFETIME) -> str:
    # Rounded up, so the issue time read back (expiry - lifetime) is never before the real one: a
    # link sent a moment after a form was submitted is not mistaken for one from before it.
    payload = f"{member_id}.{math.ceil((now + lifetime).timestamp())}"
    return f"{payload}.{_signature(key, payload)}"


def join_url(base_url: str, key: bytes, member_id: int, now: datetime) -> str:
    """The member's sign-up form, ``<base_url>/join/<token>``, issued ``now`` (sign with ``key_for("member-link")``)."""
    return f"{base_url.rstrip('/')}/join/{sign_member_link(key, member_id, now)}"


def read_member_link(key: bytes, token: str) -> SignedLink:
    """The member and expiry a genuine token names, expired or not; raises InvalidLink."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or len(parts[1]) > 12:
        raise InvalidLink("not a member link")
    payload = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(parts[2], _signature(key, payload)):
        raise InvalidLink("the link's signature does not match")
    return SignedLink(int(parts[0]), datetime.fromtimestamp(int(parts[1]), UTC))


def verify_member_link(key: bytes, token: str, now: datetime) -> int:
    """The member id the token was made for; raises InvalidLink or ExpiredLink."""
    link = read_member_link(key, token)
    if link.expires_at < now:
        raise ExpiredLink("the link has expired")
    return link.member_id


def link_issued_at(link: SignedLink, lifetime: timedelta = JOIN_LINK_LIFETIME) -> datetime:
    return link.expires_at - lifetime


def sign_profile_link(key: bytes, member_id: int, now: datetime, lifetime: timedelta = PROFILE_LINK_LIFETIME) -> str:
    """A link to the member's own profile page (sign with ``key_for("member-profile")``)."""
    return sign_member_link(key, member_id, now, lifetime)


def verify_profile_link(key: bytes, token: str, now: datetime) -> int:
    """The member id a profile token was made for; raises InvalidLink or ExpiredLink."""
    return verify_member_link(key, token, now)


def sign_form_nonce(key: bytes, member_id: int, bound_to: str, now: datetime) -> str:
    """A value for a form's hidden field: proves the form was rendered by this installation for this
    member, with what ``bound_to`` names (the page's token, the text shown), at ``now``."""
    payload = f"{member_id}.{int(now.timestamp())}.{secrets.token_urlsafe(9)}"
    return f"{payload}.{_signature(key, payload + '|' + bound_to)}"


def verify_form_nonce(
    key: bytes, nonce: str, member_id: int, bound_to: str, now: datetime, max_age: timedelta
) -> datetime:
    """When the form carrying ``nonce`` was rendered; raises InvalidLink (forged, for another member
    or page) or ExpiredLink (older than ``max_age``)."""
    parts = nonce.split(".")
    if len(parts) != 4 or parts[0] != str(member_id) or not parts[1].isdigit() or len(parts[1]) > 12:
        raise InvalidLink("not a form nonce for this member")
    payload = ".".join(parts[:3])
    if not hmac.compare_digest(parts[3], _signature(key, payload + "|" + bound_to)):
        raise InvalidLink("the form nonce's signature does not match")
    rendered = datetime.fromtimestamp(int(parts[1]), UTC)
    if rendered + max_age < now:
        raise ExpiredLink("the form is too old")
    return rendered
