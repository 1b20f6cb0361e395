"""A community's own engine settings (programme name, languages, keywords, texts), kept as JSON."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from openline.db import schema
from openline.engine.keywords import Intent, classify, normalise
from openline.engine.language import check_language
from openline.engine.texts import SystemText, check_template
from openline.senders import list_senders

__all__ = [
    "CommunityConfig",
    "KeywordRule",
    "add_keyword",
    "add_word",
    "load_config",
    "remove_keyword",
    "save_config",
    "set_text",
    "update_config",
]


class KeywordRule(BaseModel):
    """What an owner's keyword does: tag the member, optionally answer, optionally tell the language."""

    model_config = ConfigDict(extra="forbid")
    tag: str = Field(min_length=1, max_length=64)
    reply: str | None = None
    language: str | None = None


class CommunityConfig(BaseModel):
    """A community's own settings, kept as JSON in ``communities.settings``."""

    model_config = ConfigDict(extra="forbid")
    programme: str | None = Field(None, description="Name used in system texts (default: the community's name)")
    contact: str = Field("reply here", description="How members get help, shown in the HELP answer")
    languages: list[str] = Field(default_factory=lambda: ["en", "es", "it", "hi"], min_length=1)
    default_language: str = "en"
    keywords: dict[str, KeywordRule] = Field(default_factory=dict)
    words: dict[Intent, dict[str, list[str]]] = Field(
        default_factory=dict, description="Extra STOP/START/HELP/YES words per language"
    )
    texts: dict[str, dict[SystemText, str]] = Field(default_factory=dict, description="Per-language overrides")
    sender_texts: dict[str, dict[str, dict[SystemText, str]]] = Field(
        default_factory=dict, description="Overrides for one sender (by address), per language"
    )

    @field_validator("texts")
    @classmethod
    def _known_placeholders(cls, value: dict[str, dict[SystemText, str]]) -> dict[str, dict[SystemText, str]]:
        for templates in value.values():
            for template in templates.values():
                check_template(template)
        return value

    @field_validator("sender_texts")
    @classmethod
    def _known_sender_placeholders(
        cls, value: dict[str, dict[str, dict[SystemText, str]]]
    ) -> dict[str, dict[str, dict[SystemText, str]]]:
        for by_language in value.values():
            cls._known_placeholders(by_language)
        return value

    @field_validator("keywords")
    @classmethod
    def _upper_keywords(cls, value: dict[str, KeywordRule]) -> dict[str, KeywordRule]:
        return {word.strip().upper(): rule for word, rule in value.items()}

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: list[str]) -> list[str]:
        for code in value:
            check_language(code)
        return value

    @model_validator(mode="after")
    def _default_language_is_configured(self) -> CommunityConfig:
        if self.default_language not in self.languages:
            raise ValueError(f"default_language {self.default_language!r} is not one of languages {self.languages}")
        return self


def load_config(conn: sa.Connection, community_id: int) -> CommunityConfig:
    raw: dict[str, Any] = conn.execute(
        sa.select(schema.communities.c.settings).where(schema.communities.c.id == community_id)
    ).scalar_one()
    return CommunityConfig.model_validate(raw or {})


def save_config(conn: sa.Connection, community_id: int, config: CommunityConfig) -> None:
    conn.execute(
        sa.update(schema.communities)
        .where(schema.communities.c.id == community_id)
        .values(settings=config.model_dump(mode="json", exclude_defaults=True))
    )


def update_config(conn: sa.Connection, community_id: int, **changes: Any) -> CommunityConfig:
    """Change some of a community's settings; every change is validated before it is saved."""
    current = load_config(conn, community_id)
    updated = CommunityConfig.model_validate({**current.model_dump(), **changes})
    save_config(conn, community_id, updated)
    return updated


def add_keyword(conn: sa.Connection, community_id: int, word: str, rule: KeywordRule) -> CommunityConfig:
    word = word.strip().upper()
    if not word or " " in word:
        raise ValueError(f"a keyword is one word (got {word!r})")
    if classify(word).intent is Intent.stop:
        raise ValueError(f"{word} is an opt-out word; it always unsubscribes and cannot be a keyword")
    keywords = {**load_config(conn, community_id).keywords, word: rule}
    return update_config(conn, community_id, keywords={k: v.model_dump() for k, v in keywords.items()})


def remove_keyword(conn: sa.Connection, community_id: int, word: str) -> bool:
    keywords = dict(load_config(conn, community_id).keywords)
    if keywords.pop(word.strip().upper(), None) is None:
        return False
    update_config(conn, community_id, keywords={k: v.model_dump() for k, v in keywords.items()})
    return True


def add_word(conn: sa.Connection, community_id: int, intent: Intent, language: str, word: str) -> CommunityConfig:
    """Teach the engine another word for STOP, START, HELP or YES in ``language``."""
    if intent not in (Intent.stop, Intent.start, Intent.help, Intent.yes):
        raise ValueError(f"words can be added for stop, start, help or yes (got {intent.value})")
    if not normalise(word):
        raise ValueError("the word is empty once punctuation and spaces are removed")
    words = {i: {lang: list(ws) for lang, ws in by.items()} for i, by in load_config(conn, community_id).words.items()}
    words.setdefault(intent, {}).setdefault(language, [])
    if word not in words[intent][language]:
        words[intent][language].append(word)
    return update_config(conn, community_id, words=words)


def set_text(
    conn: sa.Connection,
    community_id: int,
    language: str,
    name: SystemText,
    template: str,
    sender: str | None = None,
) -> CommunityConfig:
    """Override one of openline's own texts in one language, for the community or for one of its
    senders (placeholders are checked)."""
    check_language(language)
    config = load_config(conn, community_id)
    if sender is None:
        texts = {lang: dict(t) for lang, t in config.texts.items()}
        texts.setdefault(language, {})[name] = template
        return update_config(conn, community_id, texts=texts)
    if sender not in {s.address for s in list_senders(conn, community_id)}:
        raise ValueError(f"{sender} is not one of this community's senders (see `openline senders list`)")
    by_sender = {a: {lang: dict(t) for lang, t in by.items()} for a, by in config.sender_texts.items()}
    by_sender.setdefault(sender, {}).setdefault(language, {})[name] = template
    return update_config(conn, community_id, sender_texts=by_sender)
