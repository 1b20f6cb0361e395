"""The language a member writes in, among the community's configured languages only.

lingua is accurate on short texts when it only has to choose among a few languages; restricting it to
the community's languages also keeps a fan's "ok lol" from being read as Tagalog. Below a confidence
threshold the member's known language stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

__all__ = ["LanguageGuesser", "UnknownLanguage", "check_language"]

MIN_CONFIDENCE = 0.6
MIN_LETTERS = 4


class UnknownLanguage(ValueError):
    pass


def _language(code: str) -> Language:
    try:
        return Language.from_iso_code_639_1(IsoCode639_1.from_str(code))
    except ValueError:
        raise UnknownLanguage(f"{code!r} is not an ISO 639-1 language code lingua knows") from None


def check_language(code: str) -> None:
    """Raise UnknownLanguage unless ``code`` is an ISO 639-1 code the detector knows."""
    _language(code)


@lru_cache(maxsize=32)
def _detector(codes: tuple[str, ...]) -> LanguageDetector:
    return LanguageDetectorBuilder.from_languages(*(_language(c) for c in codes)).build()


class LanguageGuesser:
    def __init__(self, codes: Sequence[str]) -> None:
        self._codes = tuple(sorted(set(codes)))
        self._single = self._codes[0] if len(self._codes) == 1 else None
        self._detector = None if self._single else _detector(self._codes)

    def guess(self, text: str) -> str | None:
        """The ISO 639-1 code of ``text``'s language, or None when the text says too little."""
        if sum(c.isalpha() for c in text) < MIN_LETTERS:
            return None
        if self._single is not None:
            return self._single
        assert self._detector is not None
        values = self._detector.compute_language_confidence_values(text)
        if not values or values[0].value < MIN_CONFIDENCE:
            return None
        return values[0].language.iso_code_639_1.name.lower()
