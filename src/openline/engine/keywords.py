"""What an inbound text asks for: STOP, START, HELP, YES, an owner's keyword, or nothing (free text).

Matched on the whole message, as carriers do: "Stop." and " stop " are STOP, "we have to stop this
bill" is not. Before matching, a text is NFKC-normalised, case-folded, and stripped of surrounding
spaces, punctuation and emoji.

No carrier publishes Italian, Spanish or Hindi keyword sets; the lists below extend the carriers'
English sets (Twilio's defaults, including REVOKE and OPTOUT required since 2025) with the words
people write in those languages to stop, start, confirm or ask for help. English always works for
everyone. Left out on purpose: Italian "fine" (English speakers reply "fine" to mean yes) and
"ok"-like words as consent (consent must be explicit). Owners add words per community (``extra``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["DEFAULT_WORDS", "Intent", "Match", "classify", "normalise"]


class Intent(StrEnum):
    stop = "stop"
    start = "start"
    help = "help"
    yes = "yes"
    profile = "profile"  # "send me my data": a private link to see, change, download or erase it
    keyword = "keyword"
    text = "text"


# intent → language → words (already normalised: lower case, NFKC).
DEFAULT_WORDS: dict[Intent, dict[str, tuple[str, ...]]] = {
    Intent.stop: {
        "en": (
            "stop",
            "stopall",
            "stop all",
            "unsubscribe",
            "cancel",
            "end",
            "quit",
            "revoke",
            "optout",
            "opt out",
            "opt-out",
        ),
        "es": ("alto", "parar", "para", "cancelar", "baja", "darse de baja", "detener"),
        "it": ("basta", "annulla", "cancella", "disiscrivi", "disiscriviti", "esci"),
        "hi": ("रोकें", "रोको", "रोक", "बंद", "बंद करो", "बंद करें", "band", "band karo", "ruko"),
    },
    Intent.start: {
        "en": ("start", "unstop"),
        "es": ("comenzar", "reanudar"),
        "it": ("inizia", "riprendi", "iscrivi", "iscrivimi"),
        "hi": ("शुरू", "शुरू करें", "chalu", "shuru"),
    },
    # Consent must be explicit: plain yes-words only, no "ok" or "sure".
    Intent.yes: {
        "en": ("yes", "y", "yeah", "yep", "join", "subscribe"),
        "es": ("si", "sí"),
        "it": ("si", "sì"),
        "hi": ("हाँ", "हां", "haan"),
    },
    Intent.help: {
        "en": ("help", "info"),
        "es": ("ayuda", "información", "informacion"),
        "it": ("aiuto", "informazioni"),
        "hi": ("मदद", "सहायता", "madad"),
    },
    Intent.profile: {
        "en": ("profile", "my profile", "my data"),
        "es": ("perfil", "mis datos"),
        "it": ("profilo", "i miei dati"),
        "hi": ("प्रोफ़ाइल", "प्रोफाइल", "मेरा डेटा"),
    },
}

# STOP wins over every other reading of the same word ("para" is also Spanish for "for"): an
# unwanted text after someone asked to stop is worse than a missed "yes".
_PRECEDENCE = (Intent.stop, Intent.start, Intent.help, Intent.yes, Intent.profile)


@dataclass(frozen=True)
class Match:
    intent: Intent
    language: str | None = None  # the language whose list matched, when it tells one
    keyword: str | None = None  # the owner's keyword, for Intent.keyword


def normalise(text: str) -> str:
    """NFKC, case-folded, inner runs of spaces collapsed, surrounding punctuation/symbols removed."""
    folded = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    start, end = 0, len(folded)
    while start < end and _is_trim(folded[start]):
        start += 1
    while end > start and _is_trim(folded[end - 1]):
        end -= 1
    return folded[start:end]


def _is_trim(char: str) -> bool:
    # Punctuation, symbols (emoji) and separators; combining marks stay (Devanagari vowel signs).
    return unicodedata.category(char)[0] in "PSZ"


def _table(extra: Mapping[Intent, Mapping[str, tuple[str, ...]]]) -> dict[str, Match]:
    table: dict[str, Match] = {}
    for intent in reversed(_PRECEDENCE):  # later (higher precedence) entries overwrite
        for source in (DEFAULT_WORDS, extra):
            for language, words in source.get(intent, {}).items():
                for word in words:
                    key = normalise(word)
                    if key:
                        # English is everyone's language; it tells nothing about the member's own.
                        table[key] = Match(intent, None if language == "en" else language)
    return table


_DEFAULT_TABLE = _table({})


def classify(
    text: str,
    *,
    keywords: Mapping[str, str | None] | None = None,
    extra: Mapping[Intent, Mapping[str, tuple[str, ...]]] | None = None,
) -> Match:
    """Read a whole inbound text. ``keywords`` maps an owner's keyword to the language it implies
    (or None); ``extra`` adds words to the built-in lists."""
    key = normalise(text)
    table = _table(extra) if extra else _DEFAULT_TABLE
    found = table.get(key)
    if found is not None and found.intent is Intent.stop:
        return found
    if keywords:
        for word, language in keywords.items():
            if normalise(word) == key:
                return Match(Intent.keyword, language, word)
    return found or Match(Intent.text)
