"""The conversation engine: turns received texts into members, consent, inbox threads and replies."""

from openline.engine.keywords import DEFAULT_WORDS, Intent, Match, classify, normalise
from openline.engine.process import Engine
from openline.engine.texts import DEFAULT_TEXTS, SystemText

__all__ = ["DEFAULT_TEXTS", "DEFAULT_WORDS", "Engine", "Intent", "Match", "SystemText", "classify", "normalise"]
