"""Broadcast messages: per-language bodies, an A/B split between variants, and the sponsored disclosure.

A message is one to five variants, each a body with its translations and a share of the recipients.
Every body is a template checked and rendered by openline.broadcasts.templates; this module picks each
member's variant and language, adds the disclosure to sponsored texts, and re-exports the errors a
message raises (TemplateProblem when composed; MissingValue, RenderProblem and TooLong when rendered).
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from openline.broadcasts.templates import (
    CompiledBody,
    MissingValue,
    RenderProblem,
    TemplateProblem,
    TooLong,
    check_length,
)

__all__ = [
    "CompiledMessage",
    "Message",
    "MissingValue",
    "RenderProblem",
    "Rendered",
    "TemplateProblem",
    "TooLong",
    "Variant",
    "compile_message",
    "language_name",
    "preview",
]

# ISO 639-1 codes of the languages a community is likely to write in; others are shown by their code.
_LANGUAGE_NAMES = {
    "am": "Amharic", "ar": "Arabic", "bg": "Bulgarian", "bn": "Bengali", "ca": "Catalan", "cs": "Czech",
    "da": "Danish", "de": "German", "el": "Greek", "en": "English", "es": "Spanish", "fa": "Persian",
    "fi": "Finnish", "fr": "French", "gu": "Gujarati", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian",
    "ht": "Haitian Creole", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "ko": "Korean", "mr": "Marathi", "ms": "Malay", "nb": "Norwegian", "nl": "Dutch", "no": "Norwegian",
    "pa": "Punjabi", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak",
    "sl": "Slovenian", "so": "Somali", "sq": "Albanian", "sr": "Serbian", "sv": "Swedish", "sw": "Swahili",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "uk": "Ukrainian",
    "ur": "Urdu", "vi": "Vietnamese", "zh": "Chinese",
}  # fmt: skip
_LANGUAGE_CODE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
_VARIANT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,20}$")


# -- messages: variants and languages --------------------------------------------------------------


def _language_key(code: str) -> str:
    return code.strip().lower().replace("_", "-")


def language_name(code: str) -> str:
    """The language's English name for messages: Italian for "it", Portuguese (pt-BR) for "pt-BR", else the code."""
    base = _language_key(code).split("-")[0]
    name = _LANGUAGE_NAMES.get(base)
    if name is None:
        return code
    return name if _language_key(code) == base else f"{name} ({code})"


class Variant(BaseModel):
    """One arm of the A/B split: a body, its translations, and its share of recipients."""

    model_config = ConfigDict(extra="forbid")

    name: str = "A"
    weight: int = Field(default=100, gt=0, le=1_000_000)
    body: str
    translations: dict[str, str] = Field(default_factory=dict)  # language code -> body

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _VARIANT_NAME.match(value):
            raise ValueError("a variant's name is 1 to 20 letters, digits, - or _")
        return value

    @field_validator("translations")
    @classmethod
    def _translations(cls, value: dict[str, str]) -> dict[str, str]:
        seen: set[str] = set()
        for code in value:
            if not _LANGUAGE_CODE.match(code):
                raise ValueError(f"{code!r} is not a language code (like it, hi, es or en-GB)")
            if _language_key(code) in seen:
                raise ValueError(f"two translations for {code!r}")
            seen.add(_language_key(code))
        return value


class Message(BaseModel):
    """What a broadcast says: one to five variants, and whether it is sponsored (then it carries a disclosure)."""

    model_config = ConfigDict(extra="forbid")

    variants: list[Variant] = Field(min_length=1, max_length=5)
    sponsored: bool = False

    @model_validator(mode="after")
    def _distinct(self) -> Message:
        names = [v.name.lower() for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("the variants need distinct names")
        return self


@dataclass(frozen=True, slots=True)
class Rendered:
    """One member's text and how it was chosen (stored with the message for the A/B and language counts)."""

    variant: str
    language: str | None  # the translation used; None for the variant's default body
    text: str


class CompiledMessage:
    """Every body of a message, compiled once, and the split between variants."""

    __slots__ = ("_bodies", "_bounds", "_names", "_total", "custom_fields", "message", "variables")

    def __init__(self, message: Message, custom_fields: Collection[str]) -> None:
        self.message = message
        several_variants = len(message.variants) > 1
        bodies: dict[str, tuple[CompiledBody, dict[str, tuple[str, CompiledBody]]]] = {}
        for variant in message.variants:
            label = f"variant {variant.name}" if several_variants else None
            default = CompiledBody(variant.body, custom_fields, _where(label, variant, "default"))
            translated = {
                _language_key(code): (code, CompiledBody(source, custom_fields, _where(label, variant, code)))
                for code, source in variant.translations.items()
            }
            bodies[variant.name] = (default, translated)
        self._bodies = bodies
        self._names = [v.name for v in message.variants]
        self._bounds = list(accumulate(v.weight for v in message.variants))
        self._total = self._bounds[-1]
        compiled = [default for default, _ in bodies.values()]
        compiled += [body for _, translated in bodies.values() for _, body in translated.values()]
        self.variables: frozenset[str] = frozenset().union(*(b.variables for b in compiled))
        self.custom_fields: frozenset[str] = frozenset().union(*(b.custom_fields for b in compiled))

    def pick(self, broadcast_id: int, member_id: int) -> str:
        """The member's variant: a hash of (broadcast, member), so estimate, resumed fan-out and re-run agree."""
        if len(self._names) == 1:
            return self._names[0]
        digest = hashlib.blake2b(f"{broadcast_id}:{member_id}".encode(), digest_size=8).digest()
        return self._names[bisect_right(self._bounds, int.from_bytes(digest, "big") % self._total)]

    def body_for(self, variant: str, language: str | None) -> tuple[str | None, CompiledBody]:
        """The translation for ``language`` (exact code, then its base language), else the default body."""
        default, translated = self._bodies[variant]
        if language and translated:
            key = _language_key(language)
            found = translated.get(key) or translated.get(key.split("-")[0])
            if found is not None:
                return found
        return None, default

    def render_for(
        self,
        broadcast_id: int,
        member_id: int,
        language: str | None,
        values: Mapping[str, object],
        *,
        disclosure: str | None,
    ) -> Rendered:
        """One member's text: their variant, their language, their values, and the disclosure when sponsored.
        Raises MissingValue, TooLong or RenderProblem (all ValueError) when it cannot be sent."""
        variant = self.pick(broadcast_id, member_id)
        used, body = self.body_for(variant, language)
        text = body.personalise(values)
        if self.message.sponsored and disclosure and disclosure.strip():
            text = _disclosed(text, disclosure.strip())
        return Rendered(variant, used, check_length(text))


def _where(label: str | None, variant: Variant, language: str) -> str | None:
    """Which body a problem is in, said only as precisely as the message needs ("variant B, Italian body")."""
    if not variant.translations:
        return label
    body = "default body" if language == "default" else f"{language_name(language)} body"
    return f"{label}, {body}" if label else body


def _disclosed(text: str, disclosure: str) -> str:
    """The disclosure first, where nobody can miss it; not doubled when the owner already wrote it."""
    head = text[: len(disclosure)]
    rest = text[len(disclosure) : len(disclosure) + 1]
    if head.casefold() == disclosure.casefold() and not (rest.isalnum() or rest == "_"):
        return text
    return f"{disclosure} {text}"


def compile_message(message: Message, *, custom_fields: Collection[str] = ()) -> CompiledMessage:
    """Compile every body. A problem raises TemplateProblem saying where: "variant B, Italian body: line 1, ..."."""
    return CompiledMessage(message, tuple(custom_fields))


def preview(
    compiled: CompiledMessage,
    samples: Sequence[tuple[int, str | None, Mapping[str, object]]],
    broadcast_id: int,
    disclosure: str | None,
) -> list[Rendered | ValueError]:
    """The texts a few members (member id, language, values) would get; the error for those who would get none
    (MissingValue, TooLong or RenderProblem)."""
    results: list[Rendered | ValueError] = []
    for member_id, language, values in samples:
        try:
            results.append(compiled.render_for(broadcast_id, member_id, language, values, disclosure=disclosure))
        except ValueError as exc:
            results.append(exc)
    return results
