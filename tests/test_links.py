from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from openline.links import ExpiredLink, InvalidLink, sign_member_link, verify_member_link

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_a_link_names_its_member_until_it_expires() -> None:
    token = sign_member_link(b"k", 42, NOW, timedelta(days=1))
    assert verify_member_link(b"k", token, NOW) == 42
    with pytest.raises(ExpiredLink):
        verify_member_link(b"k", token, NOW + timedelta(days=2))


@pytest.mark.parametrize(
    "mangle", [lambda t: t.replace("42.", "43.", 1), lambda t: t[:-2], lambda t: "x", lambda t: t + ".1"]
)
def test_tampered_links_are_refused(mangle: object) -> None:
    token = sign_member_link(b"k", 42, NOW)
    with pytest.raises(InvalidLink):
        verify_member_link(b"k", mangle(token), NOW)  # type: ignore[operator]
    with pytest.raises(InvalidLink):
        verify_member_link(b"other key", token, NOW)
