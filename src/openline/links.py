"""Signed, expiring links for members (the sign-up form at /join/<token>).

A token is ``<member id>.<expiry, unix seconds>.<signature>``: nothing secret in it, nothing stored,
and any process of the installation can check it with the installation's key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta

__all__ = ["ExpiredLink", "InvalidLink", "sign_member_link", "verify_member_link"]

JOIN_LINK_LIFETIME = timedelta(days=30)


class InvalidLink(ValueError):
    pass


class ExpiredLink(InvalidLink):
    pass


def _signature(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_member_link(key: bytes, member_id: int, now: datetime, lifetime: timedelta = JOIN_LINK_LIFETIME) -> str:
    payload = f"{member_id}.{int((now + lifetime).timestamp())}"
    return f"{payload}.{_signature(key, payload)}"


def verify_member_link(key: bytes, token: str, now: datetime) -> int:
    """The member id the token was made for; raises InvalidLink or ExpiredLink."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        raise InvalidLink("not a member link")
    payload = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(parts[2], _signature(key, payload)):
        raise InvalidLink("the link's signature does not match")
    if int(parts[1]) < now.timestamp():
        raise ExpiredLink("the link has expired")
    return int(parts[0])
