"""A community's own engine settings (programme name, languages, keywords, texts), kept as JSON."""

from __future__ import annotations

import re
import string
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from openline.broadcast_settings import BroadcastSettings
from openline.db import schema
from openline.engine.keywords import Intent, classify, normalise
from openline.engine.language import check_language
from openline.engine.texts import SystemText, check_template
from openline.senders import list_senders

__all__ = [
    "BUILTIN_FORM_FIELDS",
    "SAVED_REPLIES_MAX",
    "SAVED_REPLY_NAME_MAX",
    "SAVED_REPLY_TEXT_MAX",
    "CommunityConfig",
    "FormConfig",
    "FormField",
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


# The member columns the sign-up form can ask for; any other field is kept in ``members.custom``.
BUILTIN_FORM_FIELDS = ("first_name", "last_name", "city", "postcode", "country", "birthday", "email", "language")
FieldKind = Literal["text", "number", "date", "choice"]
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Member data that is not a form field: a custom field by one of these names would be confusing.
# "form_link" is the broadcast variable for a member's own sign-up link; a field of that name would hide it.
_RESERVED_FIELD_NAMES = frozenset({"id", "phone", "state", "tags", "custom", "time_zone", "time_zones", "form_link"})
# Saved replies: named texts the team picks from when replying in the inbox.
SAVED_REPLIES_MAX = 100
SAVED_REPLY_NAME_MAX = 40
SAVED_REPLY_TEXT_MAX = 1600


class FormField(BaseModel):
    """One field of the sign-up form: a built-in profile column, or a custom field of a given type."""

    model_config = ConfigDict(extra="forbid")
    name: str
    type: FieldKind | None = Field(None, description="Custom fields only: text, number, date or choice")
    required: bool = False
    labels: dict[str, str] = Field(default_factory=dict, description="Label per language (built-ins have defaults)")
    choices: list[str] = Field(default_factory=list, description="The options of a choice field")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for code, label in value.items():
            check_language(code)
            if not label.strip() or len(label) > 200:
                raise ValueError(f"the {code} label must be 1 to 200 characters")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FormField:
        if not _FIELD_NAME.match(self.name) or self.name in _RESERVED_FIELD_NAMES:
            raise ValueError(f"{self.name!r} cannot be a field name (lower-case letters, digits and _, at most 40)")
        if self.name in BUILTIN_FORM_FIELDS:
            if self.type is not None or self.choices:
                raise ValueError(f"{self.name} is a built-in field: its type and choices are fixed")
            return self
        if self.type is None:
            raise ValueError(f"custom field {self.name} needs a type: text, number, date or choice")
        if self.type == "choice":
            if not self.choices or len(set(self.choices)) != len(self.choices):
                raise ValueError(f"choice field {self.name} needs distinct choices")
            if any(not c.strip() or len(c) > 100 for c in self.choices):
                raise ValueError(f"the choices of {self.name} must be 1 to 100 characters each")
        elif self.choices:
            raise ValueError(f"only choice fields have choices ({self.name} is {self.type})")
        return self


def _default_form_fields() -> list[FormField]:
    return [
        FormField(name="first_name", required=True),
        FormField(name="city"),
        FormField(name="birthday"),
        FormField(name="language"),
    ]


class FormConfig(BaseModel):
    """The sign-up form: which fields it asks, in order, and the consent disclosure per language."""

    model_config = ConfigDict(extra="forbid")
    fields: list[FormField] = Field(default_factory=_default_form_fields, max_length=40)
    disclosure: dict[str, str] = Field(
        default_factory=dict, description="Consent text shown above the button, per language; {programme} is filled"
    )

    @field_validator("fields")
    @classmethod
    def _distinct_names(cls, value: list[FormField]) -> list[FormField]:
        names = [f.name for f in value]
        if len(set(names)) != len(names):
            raise ValueError("each form field appears once")
        return value

    @field_validator("disclosure")
    @classmethod
    def _disclosure(cls, value: dict[str, str]) -> dict[str, str]:
        for code, text in value.items():
            check_language(code)
            if not text.strip():
                raise ValueError(f"the {code} disclosure is empty")
            for _, name, _, _ in string.Formatter().parse(text):
                if name is not None and name != "programme":
                    raise ValueError(f"unknown placeholder {{{name}}} in the disclosure; known: {{programme}}")
        return value


class CommunityConfig(BaseModel):
    """A community's own settings, kept as JSON in ``communities.settings``."""

    model_config = ConfigDict(extra="forbid")
    programme: str | None = Field(None, description="Name used in system texts (default: the community's name)")
    contact: str = Field("reply here", description="How members get help, shown in the HELP answer")
    languages: list[str] = Field(default_factory=lambda: ["en", "es", "it", "hi"], min_length=1)
    default_language: str = "en"
    keywords: dict[str, KeywordRule] = Field(default_factory=dict)
    words: dict[Intent, dict[str, list[str]]] = Field(
        default_factory=dict, description="Extra STOP/START/HELP/YES/PROFILE words per language"
    )
    texts: dict[str, dict[SystemText, str]] = Field(default_factory=dict, description="Per-language overrides")
    sender_texts: dict[str, dict[str, dict[SystemText, str]]] = Field(
        default_factory=dict, description="Overrides for one sender (by address), per language"
    )
    form: FormConfig = Field(default_factory=FormConfig, description="The sign-up form's fields and disclosure")
    broadcasts: BroadcastSettings = Field(
        default_factory=BroadcastSettings, description="Sending windows, frequency cap, disclosure, prices"
    )
    saved_replies: dict[str, str] = Field(
        default_factory=dict, description="Named reply texts the team picks from in a conversation"
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

    @field_validator("saved_replies")
    @classmethod
    def _saved_replies(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > SAVED_REPLIES_MAX:
            raise ValueError(f"at most {SAVED_REPLIES_MAX} saved replies (remove one first)")
        value = {name.strip(): text for name, text in value.items()}
        for name, text in value.items():
            if not name or len(name) > SAVED_REPLY_NAME_MAX or not name.isprintable():
                raise ValueError(
                    f"a saved reply's name is 1 to {SAVED_REPLY_NAME_MAX} printable characters (got {name!r})"
                )
            if not text.strip() or len(text) > SAVED_REPLY_TEXT_MAX:
                raise ValueError(f"the saved reply {name!r} must be 1 to {SAVED_REPLY_TEXT_MAX} characters")
        return value

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
    """Teach the engine another word for STOP, START, HELP, YES or PROFILE in ``language``."""
    if intent not in (Intent.stop, Intent.start, Intent.help, Intent.yes, Intent.profile):
        raise ValueError(f"words can be added for stop, start, help, yes or profile (got {intent.value})")
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
