"""Senders, tokens, phone numbers and the installation key: plain library calls, no server."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from openline.communities import bootstrap, get_community
from openline.db import Database, DatabaseError
from openline.db.schema import utcnow
from openline.erasure import erase_phone
from openline.installation import SecretKeyChanged, derive_key, secret_key
from openline.phone import InvalidAddress, classify_sender_address, to_e164
from openline.runtime import Runtime
from openline.senders import SANDBOX_NUMBER, DuplicateSender, UnknownProvider, add_sender, list_senders
from openline.settings import Settings
from openline.states import SenderKind
from openline.tokens import DuplicateTokenName, authenticate, create_token, list_tokens, revoke_token


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+39 347 123 4567", ("+393471234567", SenderKind.long_code)),
        ("12025550143", ("+12025550143", SenderKind.long_code)),
        ("+1 800 555 0199", ("+18005550199", SenderKind.toll_free)),
        ("86753", ("86753", SenderKind.short_code)),
        ("OPENLINE", ("OPENLINE", SenderKind.alphanumeric)),
    ],
)
def test_sender_addresses_are_classified(raw: str, expected: tuple[str, SenderKind]) -> None:
    assert classify_sender_address(raw) == expected


@pytest.mark.parametrize("raw", ["", "+1 555", "TOO LONG A NAME", "+999 123", "ab!c"])
def test_bad_sender_addresses_say_what_is_expected(raw: str) -> None:
    with pytest.raises(InvalidAddress):
        classify_sender_address(raw)


@given(st.text(max_size=30))
def test_to_e164_either_normalises_or_raises_invalid_address(raw: str) -> None:
    try:
        result = to_e164(raw)
    except InvalidAddress as exc:
        assert repr(raw) in str(exc)
    else:
        assert result.startswith("+") and result[1:].isdigit()
        assert to_e164(result) == result


def test_first_start_creates_one_community_with_a_sandbox_sender(db: Database) -> None:
    with db.write_engine.begin() as conn:
        created = bootstrap(conn, "Ashton")
        assert created is not None and created.name == "Ashton"
        assert bootstrap(conn, "Other") is None  # only once
        senders = list_senders(conn, created.id)
    assert [(s.address, s.provider) for s in senders] == [(SANDBOX_NUMBER, "sandbox")]


def test_senders_are_validated(db: Database) -> None:
    with db.write_engine.begin() as conn:
        community = bootstrap(conn, "c")
        assert community is not None
        sender = add_sender(conn, community.id, "+1 415 555 0100", provider="twilio", mps=1, daily_cap=2000)
        assert (sender.address, sender.kind, sender.daily_cap) == ("+14155550100", SenderKind.long_code, 2000)
        with pytest.raises(DuplicateSender, match=r"\+14155550100 is already a sender"):
            add_sender(conn, community.id, "+14155550100", provider="twilio")
        with pytest.raises(UnknownProvider, match="expected one of sandbox, twilio"):
            add_sender(conn, community.id, "+14155550101", provider="carrier-pigeon")
        with pytest.raises(ValueError, match="--mps must be more than 0"):
            add_sender(conn, community.id, "+14155550101", provider="twilio", mps=0)
        with pytest.raises(ValueError, match="--daily-cap must be a positive"):
            add_sender(conn, community.id, "+14155550101", provider="twilio", daily_cap=-1)


def test_tokens_are_stored_hashed_and_revocable(db: Database) -> None:
    with db.write_engine.begin() as conn:
        community = bootstrap(conn, "c")
        assert community is not None
        token = create_token(conn, community.id, "deploy")
        assert token.startswith("ol_") and len(token) > 40
        stored = conn.exec_driver_sql("SELECT token_hash FROM api_tokens").scalar_one()
        assert token not in stored
        found = authenticate(conn, token)
        assert found is not None and found.name == "deploy"
        with pytest.raises(DuplicateTokenName):
            create_token(conn, community.id, "deploy")
        with pytest.raises(ValueError, match="needs a name"):
            create_token(conn, community.id, "  ")
        assert revoke_token(conn, community.id, "deploy")
        assert not revoke_token(conn, community.id, "deploy")
        assert authenticate(conn, token) is None
        assert [t.revoked_at is not None for t in list_tokens(conn, community.id)] == [True]
        assert get_community(conn).slug == "default"


def test_the_generated_secret_key_is_kept(db: Database) -> None:
    with db.write_engine.begin() as conn:
        first = secret_key(conn, None)
        assert len(first) >= 48
        assert secret_key(conn, None) == first
        assert secret_key(conn, "configured") == b"configured"


def test_a_new_secret_key_is_refused_while_erased_numbers_depend_on_the_old_one(db: Database) -> None:
    with db.write_engine.begin() as conn:
        community = bootstrap(conn, "default") or get_community(conn)
        secret_key(conn, None)  # generated and kept
        assert secret_key(conn, "first configured key") == b"first configured key"  # nobody erased yet: taken
        erase_phone(
            conn,
            community.id,
            "+12025550143",
            key=derive_key(b"first configured key", "suppression"),
            now=utcnow(),
            reason="asked",
        )
    with (
        db.write_engine.begin() as conn,
        pytest.raises(SecretKeyChanged, match="its 1 erased number would no longer be recognised"),
    ):
        secret_key(conn, None)  # back to the generated key: it would no longer recognise the erased number
    with db.write_engine.begin() as conn:
        assert secret_key(conn, "first configured key") == b"first configured key"
        with pytest.raises(SecretKeyChanged, match="set OPENLINE_SECRET_KEY back to the previous key"):
            secret_key(conn, "rotated")


def test_a_runtime_will_not_start_with_another_secret_key(settings: Settings, db: Database) -> None:
    Runtime.open(settings, migrate=False).close()
    with db.write_engine.begin() as conn:
        erase_phone(conn, get_community(conn).id, "+12025550143", key=b"k" * 32, now=utcnow(), reason="asked")
    with pytest.raises(DatabaseError, match="suppression list"):
        Runtime.open(settings.model_copy(update={"secret_key": SecretStr("another key")}), migrate=False)
