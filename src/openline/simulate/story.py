"""Who texts on launch night, and what they write: people, their numbers and their texts, per language.

Each simulated person writes in one language. Their first text is a greeting ("Hi!!", "Ciao! Ti seguo",
"नमस्ते", "¡Hola!"); later texts are chatter, some a YES to join, and for some the last one is STOP, each
in the words the conversation engine knows for that language (``openline.engine.keywords``), so the
flood exercises the same paths real fans do. Numbers look like the language's country (+1, +39, +91, +34);
a run picks a random block of them and a random message-id prefix, so rehearsing twice on the same
database starts with new people and new texts.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from openline.engine.keywords import DEFAULT_WORDS, Intent

__all__ = ["LANGUAGES", "Person", "Story", "Text", "write_story"]

# First texts, chatter and the share of people who say YES / STOP, per language. Nothing in GREETINGS or
# CHATTER is a keyword (a test checks it): they must reach the engine as plain texts.
GREETINGS: dict[str, tuple[str, ...]] = {
    "en": ("Hi!!", "Hey! huge fan 🎉", "omg hi", "Hello! Can't wait for the tour", "hiii 😍", "Hey it's Sam from Ohio"),
    "it": ("Ciao! Ti seguo", "Ciao!! sono una tua grande fan", "Ciao, che bello!", "Buonasera 😊", "Ciao da Milano"),
    "hi": ("नमस्ते", "नमस्ते! मैं आपका बहुत बड़ा प्रशंसक हूँ", "हाय! 🙏", "नमस्ते जी, दिल्ली से"),
    "es": ("¡Hola!", "Hola! Te sigo desde siempre", "¡Hola! Soy tu fan número uno", "Buenas 😊", "Hola desde Madrid"),
}
CHATTER: dict[str, tuple[str, ...]] = {
    "en": ("can't wait for the show", "love you!!", "when are you coming to Chicago?", "this is so cool", "❤️❤️"),
    "it": ("non vedo l'ora del concerto", "ti voglio bene!!", "quando vieni a Roma?", "che emozione", "❤️❤️"),
    "hi": ("आपका नया गाना बहुत अच्छा है", "कब मुंबई आओगे?", "बहुत प्यार ❤️", "शो का इंतज़ार है"),
    "es": ("¡qué ganas del concierto!", "te quiero mucho!!", "¿cuándo vienes a Sevilla?", "qué emoción", "❤️❤️"),
}
# How each language's numbers are made: country prefix, then digits from a block of the national plan.
_NUMBERS = {
    "en": ("+1", ("202", "212", "305", "312", "415", "512", "617", "646", "702", "713", "718", "773")),
    "it": ("+39", ("347", "348", "349", "333", "338", "339", "320", "328", "329", "340", "345", "366")),
    "hi": ("+91", ("98", "97", "96", "99", "93", "94", "95", "90", "91", "88", "89", "87")),
    "es": ("+34", ("6",)),
}
LANGUAGES = tuple(GREETINGS)
_SPACE = 120_000  # numbers per language (the smallest plan above: 12 US area codes x 10,000)
YES_SHARE = 0.5  # of people who text at least twice, how many answer YES with their second text
STOP_SHARE = 0.1  # of people who text at least twice, how many end with STOP


@dataclass(frozen=True)
class Person:
    number: str
    language: str


@dataclass(frozen=True)
class Text:
    message_id: str
    person: int  # index into Story.people
    body: str
    first: bool  # the person's first text of this run


@dataclass(frozen=True)
class Story:
    people: tuple[Person, ...]
    texts: tuple[Text, ...]  # in sending order: a person's texts keep their order
    sends: tuple[int, ...]  # indexes into texts, in the order to post them (replays appear twice)
    id_prefix: str  # every message id of this run starts with it


def _number(language: str, index: int) -> str:
    """The ``index``-th number of a language: a block of 10,000 numbers per prefix, then the next prefix."""
    country, prefixes = _NUMBERS[language]
    if language == "en":
        return f"{country}{prefixes[(index // 10_000) % len(prefixes)]}555{index % 10_000:04d}"
    if language == "es":
        return f"{country}6{index % 100_000_000:08d}"
    width = 10 - len(prefixes[0])
    block = 10**width
    return f"{country}{prefixes[(index // block) % len(prefixes)]}{index % block:0{width}d}"


def _variant(rng: random.Random, word: str) -> str:
    """A keyword as people type it: as listed, capitalised, or shouted."""
    return rng.choice((word, word.capitalize(), word.upper(), word + "!"))


def _keyword(rng: random.Random, intent: Intent, language: str) -> str:
    words = DEFAULT_WORDS[intent].get(language) or DEFAULT_WORDS[intent]["en"]
    # People mostly use the short, obvious words; the long tail shows up now and then.
    return _variant(rng, rng.choice(words[:3]) if rng.random() < 0.8 else rng.choice(words))


def write_story(
    people: int,
    texts: int,
    *,
    languages: Sequence[str] = LANGUAGES,
    replays: float = 0.05,
    seed: int | None = None,
) -> Story:
    """``people`` people sending ``texts`` texts in all (each at least one), ``replays`` of them posted twice
    (a provider retrying), languages taken in turn. The same ``seed`` gives the same story."""
    if people < 1:
        raise ValueError("at least one person must text")
    if texts < people:
        raise ValueError(f"every person texts at least once: --texts must be at least --people ({people:,})")
    if not 0 <= replays <= 1:
        raise ValueError("the replayed share must be between 0 and 1 (e.g. 0.05 for 5 %)")
    unknown = [language for language in languages if language not in GREETINGS]
    if not languages or unknown:
        raise ValueError(
            f"unknown language(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(LANGUAGES)}"
        )
    if -(-people // len(languages)) > _SPACE:
        raise ValueError(f"at most {_SPACE:,} people per language")
    rng = random.Random(seed if seed is not None else secrets.randbits(64))
    id_prefix = f"SM{rng.getrandbits(32):08x}"
    block = rng.randrange(_SPACE)  # where this run's numbers start
    cast = tuple(
        Person(
            _number(languages[i % len(languages)], (block + i // len(languages)) % _SPACE),
            languages[i % len(languages)],
        )
        for i in range(people)
    )

    # How many texts each person sends: T // P each, one more for a random T % P of them.
    counts = [texts // people] * people
    for p in rng.sample(range(people), texts % people):
        counts[p] += 1

    # Waves: everyone's first text (shuffled), then the second texts, and so on; launch night starts
    # with a rush of first texts, and a person's texts keep their order.
    written: list[Text] = []
    for wave in range(max(counts)):
        senders = [p for p in range(people) if counts[p] > wave]
        rng.shuffle(senders)
        for p in senders:
            language = cast[p].language
            if wave == 0:
                body = rng.choice(GREETINGS[language])
            elif wave == counts[p] - 1 and rng.random() < STOP_SHARE:
                body = _keyword(rng, Intent.stop, language)
            elif wave == 1 and rng.random() < YES_SHARE:
                body = _keyword(rng, Intent.yes, language)
            else:
                body = rng.choice(CHATTER[language])
            written.append(Text(f"{id_prefix}{len(written):024x}", p, body, wave == 0))

    # Replays: a text posted again somewhere after its first post, as a provider does when it missed the answer.
    n = len(written)
    order = [(float(i), i) for i in range(n)]
    order += [(rng.uniform(i + 0.5, n), i) for i in rng.sample(range(n), round(replays * n))]
    order.sort()
    return Story(cast, tuple(written), tuple(i for _, i in order), id_prefix)
