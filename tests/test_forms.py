"""The forms' domain: field definitions, checking typed values, progressive profiling, the owner's
commands (library and CLI)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from openline.communities import bootstrap, get_community
from openline.db import Database
from openline.engine.config import CommunityConfig, FormConfig, FormField, load_config
from openline.forms import (
    DEFAULT_DISCLOSURE,
    MemberProfile,
    SenderInfo,
    add_form_field,
    card_as_media,
    country_code,
    disclosure_text,
    field_label,
    fields_to_ask,
    remove_form_field,
    set_disclosure,
    validate,
)
from openline.states import MemberState, SenderKind

from .test_cli import invoke

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LANGUAGES = ["en", "it", "es", "hi"]

ALL_FIELDS = [
    FormField(name="first_name", required=True),
    FormField(name="last_name"),
    FormField(name="email"),
    FormField(name="birthday"),
    FormField(name="country"),
    FormField(name="postcode"),
    FormField(name="language"),
    FormField(name="shirt", type="choice", choices=["S", "M", "L"]),
    FormField(name="tickets", type="number"),
    FormField(name="first_show", type="date"),
    FormField(name="song", type="text"),
]


def check(**typed: str) -> tuple[dict[str, Any], dict[str, str]]:
    values, errors = validate(ALL_FIELDS, {"first_name": "Ada", **typed}, languages=LANGUAGES, now=NOW)
    return values, {e.field: e.code for e in errors}


def test_good_values_are_cleaned() -> None:
    values, errors = check(
        first_name="  Giulia ",
        email="Giulia.R@Example.COM",
        birthday="1990-05-31",
        country="Italia",
        postcode="20121",
        language="it",
        shirt="M",
        tickets="2",
        first_show="2026-12-01",
        song="Ciao, ciao",
    )
    assert errors == {}
    assert values == {
        "first_name": "Giulia",
        "email": "Giulia.R@example.com",
        "birthday": date(1990, 5, 31),
        "country": "IT",
        "postcode": "20121",
        "language": "it",
        "shirt": "M",
        "tickets": 2,
        "first_show": "2026-12-01",
        "song": "Ciao, ciao",
    }


@pytest.mark.parametrize(
    ("typed", "field", "code"),
    [
        ({"first_name": ""}, "first_name", "required"),
        ({"first_name": "   "}, "first_name", "required"),
        ({"first_name": "x" * 101}, "first_name", "too_long"),
        ({"first_name": "Ada\x00"}, "first_name", "characters"),
        ({"last_name": "Love\nlace"}, "last_name", "characters"),
        ({"email": "giulia@"}, "email", "email"),
        ({"email": "giulia example.com"}, "email", "email"),
        ({"email": "a@b"}, "email", "email"),
        ({"birthday": "31/05/1990"}, "birthday", "date"),
        ({"birthday": "1990-02-30"}, "birthday", "date"),
        ({"birthday": "2999-01-01"}, "birthday", "future"),
        ({"birthday": "1890-01-01"}, "birthday", "too_old"),
        ({"country": "Narnia"}, "country", "country"),
        ({"country": "IT", "postcode": "2012"}, "postcode", "postcode"),
        ({"country": "GB", "postcode": "20121"}, "postcode", "postcode"),
        ({"postcode": "!!"}, "postcode", "postcode"),
        ({"language": "fr"}, "language", "choice"),
        ({"shirt": "XL"}, "shirt", "choice"),
        ({"tickets": "two"}, "tickets", "number"),
        ({"tickets": "1e400"}, "tickets", "number"),
        ({"tickets": "nan"}, "tickets", "number"),
        ({"first_show": "tomorrow"}, "first_show", "date"),
    ],
)
def test_bad_values_are_refused_with_a_reason(typed: dict[str, str], field: str, code: str) -> None:
    values, errors = check(**typed)
    assert errors == {field: code}
    assert field not in values


def test_lenient_where_people_write_differently() -> None:
    assert check(tickets="2,5")[0]["tickets"] == 2.5  # decimal comma
    assert check(country="gb", postcode="sw1a 1aa")[0]["postcode"] == "SW1A 1AA"
    assert check(country="NL", postcode="1011 ab")[1] == {}
    assert check(country="US", postcode="10001-1234")[1] == {}
    assert check(birthday="2026-11-25")[1] == {}  # already the 25th east of UTC
    for spelling in ("IT", "ita", "Italy", "italia", " Italy. "):
        assert country_code(spelling) == "IT"
    assert country_code("United States of America") == "US"
    assert country_code("भारत") == "IN"


def test_empty_optional_fields_are_left_out_or_cleared() -> None:
    fields = [FormField(name="city"), FormField(name="email")]
    assert validate(fields, {"city": ""}, languages=LANGUAGES, now=NOW) == ({}, [])
    assert validate(fields, {"city": ""}, languages=LANGUAGES, now=NOW, clearing=True) == (
        {"city": None, "email": None},
        [],
    )


def test_a_postcode_is_checked_against_the_members_known_country() -> None:
    fields = [FormField(name="postcode")]
    assert validate(fields, {"postcode": "123"}, languages=LANGUAGES, now=NOW, known_country="IT")[1]
    assert not validate(fields, {"postcode": "12345"}, languages=LANGUAGES, now=NOW, known_country="IT")[1]


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "email", "type": "text"},  # a built-in's type is fixed
        {"name": "team"},  # a custom field needs a type
        {"name": "team", "type": "choice"},  # and a choice field its choices
        {"name": "team", "type": "choice", "choices": ["a", "a"]},
        {"name": "team", "type": "text", "choices": ["a"]},
        {"name": "Team Name", "type": "text"},
        {"name": "phone", "type": "text"},  # member data that is not a form field
        {"name": "team", "type": "colour"},
        {"name": "team", "type": "text", "labels": {"xx": "Team"}},
        {"name": "team", "type": "text", "labels": {"en": " "}},
    ],
)
def test_field_definitions_are_checked(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FormField.model_validate(spec)


def test_the_form_section_is_checked() -> None:
    with pytest.raises(ValidationError):
        FormConfig.model_validate({"fields": [{"name": "city"}, {"name": "city"}]})
    with pytest.raises(ValidationError):
        FormConfig.model_validate({"disclosure": {"en": "Texts from {sender}"}})
    with pytest.raises(ValidationError):
        CommunityConfig.model_validate({"form": {"colour": "red"}})
    default = CommunityConfig().form
    assert [(f.name, f.required) for f in default.fields] == [
        ("first_name", True),
        ("city", False),
        ("birthday", False),
        ("language", False),
    ]


def test_labels_and_disclosure_per_language() -> None:
    team = FormField(name="team", type="text", labels={"en": "Team", "it": "Squadra"})
    assert field_label(team, "it") == "Squadra"
    assert field_label(team, "hi") == "Team"  # English when the language has none
    assert field_label(FormField(name="first_name"), "it") == "Nome"
    assert field_label(FormField(name="first_name", labels={"it": "Come ti chiami?"}), "it") == "Come ti chiami?"
    assert field_label(FormField(name="fav_song", type="text"), "es") == "Fav song"

    config = CommunityConfig(form=FormConfig(disclosure={"it": "Messaggi da {programme}. STOP per annullare."}))
    assert disclosure_text(config, "Ashton", "it") == "Messaggi da Ashton. STOP per annullare."
    assert disclosure_text(config, "Ashton", "es") == DEFAULT_DISCLOSURE["es"].format(programme="Ashton")
    for text in DEFAULT_DISCLOSURE.values():
        assert "{programme}" in text and "STOP" in text
    english = DEFAULT_DISCLOSURE["en"]
    assert "Message frequency varies" in english and "Msg & data rates may apply" in english


def _profile(**values: Any) -> MemberProfile:
    builtins = dict.fromkeys(
        ("first_name", "last_name", "city", "postcode", "country", "birthday", "email", "language")
    )
    custom = values.pop("custom", {})
    submitted = values.pop("form_submitted_at", None)
    return MemberProfile(
        id=1,
        community_id=1,
        community_slug="default",
        community_name="Ashton",
        phone="+393471234567",
        state=MemberState.subscribed,
        values={**builtins, **values},
        custom=custom,
        tags=[],
        time_zone=None,
        time_zones=[],
        form_submitted_at=submitted,
        joined_at=None,
        config=CommunityConfig(
            form=FormConfig(
                fields=[
                    FormField(name="first_name", required=True),
                    FormField(name="country"),
                    FormField(name="language"),
                    FormField(name="team", type="text"),
                ]
            )
        ),
    )


def test_progressive_profiling_asks_only_what_is_not_known() -> None:
    fresh = _profile(country="IT", language="it")
    # The engine's guesses (country from the number, language from the texts) are asked once.
    assert [f.name for f in fields_to_ask(fresh)] == ["first_name", "country", "language", "team"]
    returning = _profile(first_name="Giulia", country="IT", language="it", form_submitted_at=NOW)
    assert [f.name for f in fields_to_ask(returning)] == ["team"]
    done = _profile(first_name="Giulia", country="IT", language="it", custom={"team": "Inter"}, form_submitted_at=NOW)
    assert fields_to_ask(done) == []


def test_the_owner_changes_the_form(db: Database) -> None:
    with db.write_engine.begin() as conn:
        bootstrap(conn, "Ashton")
        community_id = get_community(conn).id
        add_form_field(conn, community_id, FormField(name="email", required=True))
        add_form_field(conn, community_id, FormField(name="team", type="choice", choices=["Inter", "Milan"]))
        add_form_field(conn, community_id, FormField(name="city", required=True))  # changed where it stands
        assert remove_form_field(conn, community_id, "birthday")
        assert not remove_form_field(conn, community_id, "birthday")
        set_disclosure(conn, community_id, "it", "Messaggi da {programme}.")
        with pytest.raises(ValueError, match="placeholder"):
            set_disclosure(conn, community_id, "it", "Messaggi da {sender}.")
        form = load_config(conn, community_id).form
        assert [(f.name, f.required) for f in form.fields] == [
            ("first_name", True),
            ("city", True),
            ("language", False),
            ("email", True),
            ("team", False),
        ]
        assert form.disclosure == {"it": "Messaggi da {programme}."}
        set_disclosure(conn, community_id, "it", None)
        assert load_config(conn, community_id).form.disclosure == {}


def test_the_form_commands() -> None:
    code, output = invoke("form", "field", "add", "team", "--type", "choice", "--choices", "Inter, Milan", "--required")
    assert code == 0, output
    code, output = invoke("form", "field", "add", "email", "--label", "it=Posta elettronica")
    assert code == 0, output
    code, output = invoke("form", "disclosure", "it", "Messaggi da {programme}. STOP per annullare.")
    assert code == 0, output
    code, output = invoke("form", "show", "--language", "it")
    assert code == 0, output
    assert "team" in output and "Inter, Milan" in output and "Posta elettronica" in output
    assert "Messaggi da My community. STOP per annullare." in output
    assert invoke("form", "field", "remove", "team")[0] == 0
    code, output = invoke("form", "field", "remove", "team")
    assert code == 1 and "no field 'team'" in output
    code, output = invoke("form", "field", "add", "shirt", "--type", "choice")
    assert code == 1 and "needs distinct choices" in output
    code, output = invoke("form", "field", "add", "email", "--label", "Email")
    assert code == 1 and "LANGUAGE=TEXT" in output
    code, output = invoke("form", "disclosure", "it")
    assert code == 1 and "--reset" in output
    assert invoke("form", "disclosure", "it", "--reset")[0] == 0


@pytest.mark.parametrize(
    ("provider", "kind", "sender", "phone", "as_media"),
    [
        ("twilio", SenderKind.long_code, "+14155550100", "+16505550123", True),
        ("twilio", SenderKind.long_code, "+14155550100", "+14165550123", True),  # Canada
        ("telnyx", SenderKind.toll_free, "+18005550100", "+17875550123", True),  # Puerto Rico
        ("plivo", SenderKind.short_code, "12345", "+16505550123", True),
        ("twilio", SenderKind.long_code, "+14155550100", "+393471234567", False),  # Italy: no A2P MMS
        ("twilio", SenderKind.long_code, "+447700900123", "+16505550123", False),  # a UK number sends none
        ("twilio", SenderKind.alphanumeric, "Ashton", "+16505550123", False),
        ("vonage", SenderKind.long_code, "+14155550100", "+16505550123", False),  # its API has no media
        ("sandbox", SenderKind.long_code, "+12025550100", "+393471234567", True),  # the simulator shows it
    ],
)
def test_the_card_goes_as_media_only_between_mms_countries(
    provider: str, kind: SenderKind, sender: str, phone: str, as_media: bool
) -> None:
    assert card_as_media(SenderInfo(sender, provider, kind), phone) is as_media
