"""The texts openline sends on its own (autotext, confirmations, STOP and HELP answers), per language.

Every text carries what carriers and CTIA expect: the programme's name, how often it texts, "Msg &
data rates may apply", and how to stop and get help. Owners override any of them per language; a
placeholder they misspell is refused when the override is saved, not when a member texts.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from enum import StrEnum

__all__ = ["DEFAULT_TEXTS", "PLACEHOLDERS", "SystemText", "UnknownPlaceholder", "check_template", "render"]


class SystemText(StrEnum):
    autotext = "autotext"  # the first answer to a new number: who we are, reply YES to join
    confirmed = "confirmed"  # after YES/START: welcome, the sign-up link
    stopped = "stopped"  # after STOP: the last text they get
    help = "help"
    profile = "profile"  # after PROFILE: a private link to see, change, download or erase their data
    form_confirmation = "form_confirmation"  # after the sign-up form: thanks, and the contact card ({link})
    frequency = "frequency"  # a fragment used inside the others


PLACEHOLDERS = frozenset({"programme", "frequency", "contact", "link"})

DEFAULT_TEXTS: dict[str, dict[SystemText, str]] = {
    "en": {
        SystemText.frequency: "Msg frequency varies",
        SystemText.autotext: (
            "Hey, it's {programme}. This is an autotext to let you know I got your message. "
            "Reply YES to get my texts ({frequency}. Msg & data rates may apply). "
            "Reply STOP to opt out, HELP for help."
        ),
        SystemText.confirmed: (
            "You're in! Welcome to {programme}'s texts. Tell me about you: {link} "
            "({frequency}. Msg & data rates may apply. Reply HELP for help, STOP to opt out.)"
        ),
        SystemText.stopped: ("{programme}: you're unsubscribed and won't get any more texts. Reply START to rejoin."),
        SystemText.help: (
            "{programme}: {frequency}. Msg & data rates may apply. Help: {contact}. Reply PROFILE for your data, "
            "STOP to opt out."
        ),
        SystemText.profile: (
            "{programme}: see, change, download or erase your data here (private link, valid 24 hours): {link}"
        ),
        SystemText.form_confirmation: (
            "{programme}: thanks, your details are saved. Save my number so you know it's me: {link} "
            "(Reply HELP for help, STOP to opt out.)"
        ),
    },
    "es": {
        SystemText.frequency: "Frecuencia de mensajes variable",
        SystemText.autotext: (
            "Hola, soy {programme}. Este es un mensaje automático para avisarte de que recibí tu mensaje. "
            "Responde SI para recibir mis mensajes ({frequency}. Pueden aplicarse tarifas de mensajes y datos). "
            "Responde BAJA para darte de baja, AYUDA para ayuda."
        ),
        SystemText.confirmed: (
            "¡Ya estás dentro! Bienvenido a los mensajes de {programme}. Cuéntame de ti: {link} "
            "({frequency}. Pueden aplicarse tarifas. Responde AYUDA para ayuda, BAJA para darte de baja.)"
        ),
        SystemText.stopped: (
            "{programme}: te has dado de baja y no recibirás más mensajes. Responde START para volver."
        ),
        SystemText.help: (
            "{programme}: {frequency}. Pueden aplicarse tarifas de mensajes y datos. Ayuda: {contact}. "
            "Responde PERFIL para tus datos, BAJA para darte de baja."
        ),
        SystemText.profile: (
            "{programme}: mira, cambia, descarga o borra tus datos aquí (enlace privado, válido 24 horas): {link}"
        ),
        SystemText.form_confirmation: (
            "{programme}: gracias, tus datos están guardados. Guarda mi número para reconocerme: {link} "
            "(Responde AYUDA para ayuda, BAJA para darte de baja.)"
        ),
    },
    "it": {
        SystemText.frequency: "Frequenza dei messaggi variabile",
        SystemText.autotext: (
            "Ciao, sono {programme}. Questo è un messaggio automatico per dirti che ho ricevuto il tuo messaggio. "
            "Rispondi SI per ricevere i miei messaggi ({frequency}. Possono essere applicati costi di messaggi "
            "e dati). Rispondi STOP per annullare, AIUTO per assistenza."
        ),
        SystemText.confirmed: (
            "Ci sei! Benvenuto nei messaggi di {programme}. Raccontami di te: {link} "
            "({frequency}. Possono essere applicati costi. Rispondi AIUTO per assistenza, STOP per annullare.)"
        ),
        SystemText.stopped: (
            "{programme}: sei stato disiscritto e non riceverai altri messaggi. Rispondi START per tornare."
        ),
        SystemText.help: (
            "{programme}: {frequency}. Possono essere applicati costi di messaggi e dati. Assistenza: {contact}. "
            "Rispondi PROFILO per i tuoi dati, STOP per annullare."
        ),
        SystemText.profile: (
            "{programme}: vedi, modifica, scarica o cancella i tuoi dati qui (link privato, valido 24 ore): {link}"
        ),
        SystemText.form_confirmation: (
            "{programme}: grazie, i tuoi dati sono salvati. Salva il mio numero per riconoscermi: {link} "
            "(Rispondi AIUTO per assistenza, STOP per annullare.)"
        ),
    },
    "hi": {
        SystemText.frequency: "संदेशों की संख्या बदलती रहती है",
        SystemText.autotext: (
            "नमस्ते, मैं {programme} हूँ। यह एक स्वचालित संदेश है: मुझे आपका संदेश मिल गया। "
            "मेरे संदेश पाने के लिए YES लिखें ({frequency}। संदेश और डेटा शुल्क लग सकते हैं)। "
            "बंद करने के लिए STOP, मदद के लिए HELP लिखें।"
        ),
        SystemText.confirmed: (
            "आप जुड़ गए! {programme} के संदेशों में आपका स्वागत है। अपने बारे में बताएँ: {link} "
            "({frequency}। शुल्क लग सकते हैं। मदद के लिए HELP, बंद करने के लिए STOP लिखें।)"
        ),
        SystemText.stopped: ("{programme}: आपकी सदस्यता बंद कर दी गई है, अब कोई संदेश नहीं आएगा। फिर से जुड़ने के लिए START लिखें।"),
        SystemText.help: (
            "{programme}: {frequency}। संदेश और डेटा शुल्क लग सकते हैं। मदद: {contact}। "
            "अपने डेटा के लिए PROFILE, बंद करने के लिए STOP लिखें।"
        ),
        SystemText.profile: ("{programme}: अपना डेटा यहाँ देखें, बदलें, डाउनलोड करें या मिटाएँ (निजी लिंक, 24 घंटे मान्य): {link}"),
        SystemText.form_confirmation: (
            "{programme}: धन्यवाद, आपकी जानकारी सहेज ली गई है। मुझे पहचानने के लिए मेरा नंबर सेव करें: {link} "
            "(मदद के लिए HELP, बंद करने के लिए STOP लिखें।)"
        ),
    },
}


class UnknownPlaceholder(ValueError):
    pass


def check_template(template: str) -> None:
    """Refuse a template that uses a placeholder openline does not fill."""
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None and name not in PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
            raise UnknownPlaceholder(f"unknown placeholder {{{name}}} in {template!r}; known: {known}")


def render(
    name: SystemText,
    language: str,
    values: Mapping[str, str],
    *overrides: Mapping[str, Mapping[str, str]],
) -> str:
    """The text ``name`` in ``language`` (English when there is none), placeholders filled.

    ``overrides`` (language → name → template) are searched most specific first (a sender's, then the
    community's) before openline's own texts.
    """

    def pick(which: SystemText) -> str:
        for lang in (language, "en"):
            for layer in overrides:
                custom = layer.get(lang, {}).get(which.value)
                if custom is not None:
                    return custom
            builtin = DEFAULT_TEXTS.get(lang, {}).get(which)
            if builtin is not None:
                return builtin
        raise KeyError(which)

    filled = {**values, "frequency": pick(SystemText.frequency).format_map(values)}
    return pick(name).format_map(filled)
