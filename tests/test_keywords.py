from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openline.engine.keywords import DEFAULT_WORDS, Intent, classify, normalise
from openline.engine.texts import DEFAULT_TEXTS, SystemText

TWILIO_STOP = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"]


@pytest.mark.parametrize("word", [*TWILIO_STOP, "ANNULLA", "BASTA", "BAJA", "रोकें", "बंद करें", "Stop All"])
def test_stop_words_in_every_language(word: str) -> None:
    assert classify(word).intent is Intent.stop


@pytest.mark.parametrize(
    ("word", "intent"),
    [
        ("START", Intent.start),
        ("UNSTOP", Intent.start),
        ("HELP", Intent.help),
        ("INFO", Intent.help),
        ("AIUTO", Intent.help),
        ("मदद", Intent.help),
        ("YES", Intent.yes),
        ("Sì", Intent.yes),
        ("हाँ", Intent.yes),
        ("Profile", Intent.profile),
        ("my data!", Intent.profile),
        ("PERFIL", Intent.profile),
        ("profilo", Intent.profile),
        ("प्रोफ़ाइल", Intent.profile),
        ("\u092a\u094d\u0930\u094b\u095e\u093e\u0907\u0932", Intent.profile),  # फ़ as one code point
    ],
)
def test_the_other_carrier_keywords(word: str, intent: Intent) -> None:
    assert classify(word).intent is intent


def test_the_language_of_a_keyword_is_reported() -> None:
    assert classify("basta").language == "it"
    assert classify("baja").language == "es"
    assert classify("रोको").language == "hi"
    assert classify("stop").language is None  # English keywords work for everyone


@pytest.mark.parametrize(
    "text",
    [
        "we have to stop this bill",
        "stop it please",
        "please cancel",
        "yes please",
        "help me with tickets",
        "I'm fine",
        "ok",
    ],
)
def test_a_sentence_is_free_text(text: str) -> None:
    assert classify(text).intent is Intent.text


@given(
    word=st.sampled_from([w for words in DEFAULT_WORDS[Intent.stop].values() for w in words]),
    before=st.text(alphabet=" .!?,;:-*\"'()🙏✋\t\n", max_size=4),
    after=st.text(alphabet=" .!?,;:-*\"'()🙏✋\t\n", max_size=4),
    upper=st.booleans(),
)
def test_case_punctuation_and_spacing_never_hide_a_stop(word: str, before: str, after: str, upper: bool) -> None:
    assert classify(before + (word.upper() if upper else word) + after).intent is Intent.stop


@given(st.text(max_size=40))
def test_a_stop_inside_a_longer_text_is_never_a_stop(text: str) -> None:
    words = normalise(text).split()
    if len(words) >= 3 and "stop" in words[1:-1]:
        assert classify(text).intent is not Intent.stop


def test_owner_keywords_and_extra_words() -> None:
    found = classify("milan!", keywords={"MILAN": "it"})
    assert (found.intent, found.keyword, found.language) == (Intent.keyword, "MILAN", "it")
    assert classify("stop", keywords={"STOP": None}).intent is Intent.stop  # STOP cannot be taken over
    assert classify("FERMATI", extra={Intent.stop: {"it": ("fermati",)}}).intent is Intent.stop


@pytest.mark.parametrize("language", sorted(DEFAULT_TEXTS))
def test_every_word_the_texts_tell_members_to_reply_is_understood(language: str) -> None:
    told = {
        name: {word: classify(word).intent for word in re.findall(r"\b[A-Z]{2,}\b", text)}
        for name, text in DEFAULT_TEXTS[language].items()
    }
    for name, words in told.items():
        assert Intent.text not in words.values(), (name, words)
    # HELP names the self-service profile (the issue asks for it) and the way out.
    assert {Intent.profile, Intent.stop} <= set(told[SystemText.help].values())
