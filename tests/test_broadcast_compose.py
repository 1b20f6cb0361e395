"""Broadcast messages: languages, the A/B split, the disclosure, and the errors a message raises."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from openline.broadcasts.compose import (
    CompiledMessage,
    Message,
    MissingValue,
    Rendered,
    RenderProblem,
    TemplateProblem,
    TooLong,
    Variant,
    compile_message,
    language_name,
    preview,
)


def message(*variants: Variant, sponsored: bool = False) -> CompiledMessage:
    return compile_message(Message(variants=list(variants), sponsored=sponsored))


# -- messages --------------------------------------------------------------------------------------


def test_message_models_validate_and_store_as_json() -> None:
    stored = Message(
        variants=[
            Variant(body="Hi", translations={"it": "Ciao", "en-GB": "Hiya"}),
            Variant(name="B", weight=20, body="Yo"),
        ],
        sponsored=True,
    )
    assert Message.model_validate(json.loads(stored.model_dump_json())) == stored
    assert Message.model_validate({"variants": [{"body": "Hi"}]}).variants[0].name == "A"
    bad_messages: list[dict[str, object]] = [
        {"variants": []},
        {"variants": [{"body": "x", "name": f"v{i}"} for i in range(6)]},
        {"variants": [{"body": "x"}, {"body": "y"}]},  # both named A
        {"variants": [{"body": "x", "name": "A"}, {"body": "y", "name": "a"}]},
        {"variants": [{"body": "x", "name": "has space"}]},
        {"variants": [{"body": "x", "name": "x" * 21}]},
        {"variants": [{"body": "x", "weight": 0}]},
        {"variants": [{"body": "x", "translations": {"italiano!": "Ciao"}}]},
        {"variants": [{"body": "x", "translations": {"pt-BR": "a", "pt_br": "b"}}]},
        {"variants": [{"body": "x", "colour": "red"}]},
        {"variants": [{"body": "x"}], "extra": 1},
    ]
    for bad in bad_messages:
        with pytest.raises(ValidationError):
            Message.model_validate(bad)


def test_a_problem_in_a_message_says_which_body() -> None:
    with pytest.raises(TemplateProblem) as caught:
        message(Variant(body="Hi"), Variant(name="B", body="Yo", translations={"it": "{{ nme }}"}))
    found = caught.value
    assert str(found).startswith("variant B, Italian body: line 1, column 4: unknown variable 'nme'")
    assert (found.where, found.line, found.column) == ("variant B, Italian body", 1, 4)
    with pytest.raises(TemplateProblem, match=r"^variant B: line 1, column 4: unknown variable"):
        message(Variant(body="Hi"), Variant(name="B", body="{{ nme }}"))
    with pytest.raises(TemplateProblem, match=r"^default body: line 1"):
        message(Variant(body="{{ nme }}", translations={"xx": "Hi"}))
    with pytest.raises(TemplateProblem, match=r"^xx body: line 1"):
        message(Variant(body="Hi", translations={"xx": "{{ nme }}"}))
    with pytest.raises(TemplateProblem, match=r"^line 1, column 4"):
        message(Variant(body="{{ nme }}"))


def test_language_names() -> None:
    assert language_name("it") == "Italian"
    assert language_name("pt-BR") == "Portuguese (pt-BR)"
    assert language_name("xx") == "xx"


def test_languages_fall_back_from_exact_to_base_to_default() -> None:
    compiled = message(Variant(body="Hi", translations={"pt-BR": "Oi", "pt": "Olá", "it": "Ciao"}))
    said = {lang: compiled.render_for(1, 1, lang, {}, disclosure=None) for lang in ("pt-BR", "PT_br", "pt-PT", "it-CH")}
    assert said["pt-BR"] == Rendered("A", "pt-BR", "Oi")
    assert said["PT_br"] == Rendered("A", "pt-BR", "Oi")
    assert said["pt-PT"] == Rendered("A", "pt", "Olá")
    assert said["it-CH"] == Rendered("A", "it", "Ciao")
    assert compiled.render_for(1, 1, "hi", {}, disclosure=None) == Rendered("A", None, "Hi")
    assert compiled.render_for(1, 1, None, {}, disclosure=None) == Rendered("A", None, "Hi")
    assert compiled.render_for(1, 1, "", {}, disclosure=None) == Rendered("A", None, "Hi")


def test_sponsored_texts_start_with_the_disclosure() -> None:
    body = Variant(body="Hi {{ first_name | default('friend') }}, 20% off today")
    sponsored = message(body, sponsored=True)
    assert sponsored.render_for(1, 1, None, {"first_name": "Sam"}, disclosure="#ad").text == "#ad Hi Sam, 20% off today"
    assert sponsored.render_for(1, 1, None, {}, disclosure=" #ad ").text == "#ad Hi friend, 20% off today"
    assert sponsored.render_for(1, 1, None, {}, disclosure=None).text == "Hi friend, 20% off today"
    assert message(body).render_for(1, 1, None, {}, disclosure="#ad").text == "Hi friend, 20% off today"
    # Written by the owner already: not doubled. A word that merely starts like it is not a disclosure.
    for written in ("#ad Big sale", "#AD: Big sale", "#ad"):
        assert (
            message(Variant(body=written), sponsored=True).render_for(1, 1, None, {}, disclosure="#ad").text == written
        )
    adventure = message(Variant(body="#adventure awaits"), sponsored=True)
    assert adventure.render_for(1, 1, None, {}, disclosure="#ad").text == "#ad #adventure awaits"
    # The limit counts the disclosure too.
    full = message(Variant(body="x" * 1598), sponsored=True)
    with pytest.raises(TooLong, match="1602 characters"):
        full.render_for(1, 1, None, {}, disclosure="#ad")


def _shares(compiled: CompiledMessage, broadcast_id: int = 42) -> dict[str, float]:
    counts: dict[str, int] = {}
    for member_id in range(1, 10_001):
        name = compiled.pick(broadcast_id, member_id)
        counts[name] = counts.get(name, 0) + 1
    return {name: count / 10_000 for name, count in counts.items()}


def test_the_split_follows_the_weights() -> None:
    even = _shares(message(Variant(name="A", body="a"), Variant(name="B", body="b")))
    assert abs(even["A"] - 0.5) <= 0.03 and abs(even["B"] - 0.5) <= 0.03
    uneven = _shares(message(Variant(name="A", weight=80, body="a"), Variant(name="B", weight=20, body="b")))
    assert abs(uneven["A"] - 0.8) <= 0.03 and abs(uneven["B"] - 0.2) <= 0.03
    three = _shares(message(*(Variant(name=n, weight=1, body=n) for n in "XYZ")), broadcast_id=7)
    assert all(abs(share - 1 / 3) <= 0.03 for share in three.values())
    assert _shares(message(Variant(name="only", body="x"))) == {"only": 1.0}


def test_the_split_is_the_same_every_time() -> None:
    variants = (Variant(name="A", body="a {{ city | d('x') }}"), Variant(name="B", body="b {{ city | d('x') }}"))
    first, again = message(*variants), message(*variants)
    picks = [first.pick(5, member) for member in range(500)]
    assert picks == [again.pick(5, member) for member in range(500)]
    assert picks != [first.pick(6, member) for member in range(500)]  # each broadcast splits afresh
    for member in range(50):
        rendered = first.render_for(5, member, None, {}, disclosure=None)
        assert rendered.text == f"{rendered.variant.lower()} x"
        assert rendered.variant == picks[member]
    # The hash is part of the stored outcome (a resumed send must agree with the first run): keep it.
    digest = hashlib.blake2b(b"5:3", digest_size=8).digest()
    assert first.pick(5, 3) == ("A" if int.from_bytes(digest, "big") % 200 < 100 else "B")


def test_message_variables_cover_every_body() -> None:
    compiled = compile_message(
        Message(
            variants=[
                Variant(body="{{ first_name | d('x') }}", translations={"it": "{{ city | d('x') }}"}),
                Variant(name="B", body="{{ fav | d('x') }}"),
            ]
        ),
        custom_fields=["fav"],
    )
    assert compiled.variables == {"first_name", "city", "custom"}
    assert compiled.custom_fields == {"fav"}


def test_a_missing_value_in_a_message_says_which_body() -> None:
    compiled = message(Variant(body="Hi", translations={"it": "Ciao\n{{ first_name }}"}))
    with pytest.raises(MissingValue) as caught:
        compiled.render_for(1, 1, "it", {}, disclosure=None)
    assert str(caught.value).startswith("no first_name for this member (Italian body, line 2);")


def test_preview_returns_texts_and_problems() -> None:
    compiled = message(
        Variant(body="Hi {{ first_name }}", translations={"it": "Ciao {{ first_name }}"}), sponsored=True
    )
    samples: list[tuple[int, str | None, Mapping[str, object]]] = [
        (1, None, {"first_name": "Sam"}),
        (2, "it", {"first_name": "Lia"}),
        (3, None, {}),
        (4, None, {"first_name": "x" * 1600}),
    ]
    results = preview(compiled, samples, 9, "#ad")
    assert results[:2] == [Rendered("A", None, "#ad Hi Sam"), Rendered("A", "it", "#ad Ciao Lia")]
    assert isinstance(results[2], MissingValue) and results[2].variable == "first_name"
    assert isinstance(results[3], TooLong)


# -- properties ------------------------------------------------------------------------------------

_VALUE = st.one_of(
    st.none(),
    st.text(max_size=30).filter(lambda s: "None" not in s and "Undefined" not in s),
)
_EVERYTHING = compile_message(
    Message(
        variants=[
            Variant(
                body=(
                    'Hi {{ first_name | default("friend") }} {{ last_name | d("") }}{% if city %}, in {{ city }}'
                    '{% endif %} {{ tags | join(", ") }} {{ custom.song | default("a song") }} {{ postcode }}'
                ),
                translations={"it": "Ciao {{ first_name }} {{ song | d('?') }}"},
            ),
            Variant(name="B", body="{{ email | d('no email') }} {{ country | d('') }} {{ language }}"),
        ],
        sponsored=True,
    ),
    custom_fields=["song"],
)


@settings(max_examples=150, deadline=None)
@given(
    member_id=st.integers(min_value=1, max_value=10**9),
    language=st.sampled_from([None, "it", "en", "it-IT"]),
    values=st.fixed_dictionaries(
        {name: _VALUE for name in ("first_name", "last_name", "city", "postcode", "email", "country", "language")}
        | {"tags": st.lists(st.text(max_size=10).filter(lambda s: "None" not in s), max_size=3)}
        | {"custom": st.dictionaries(st.sampled_from(["song", "other"]), _VALUE, max_size=2)}
    ),
)
def test_member_values_never_leave_none_or_undefined(
    member_id: int, language: str | None, values: dict[str, object]
) -> None:
    try:
        rendered = _EVERYTHING.render_for(3, member_id, language, values, disclosure="#ad")
    except (MissingValue, RenderProblem):
        return  # not sent at all, which is the point
    assert "None" not in rendered.text
    assert "Undefined" not in rendered.text
    assert rendered.text.startswith("#ad ")
    assert rendered.text == rendered.text.strip()
