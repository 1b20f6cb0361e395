"""The words of the member-facing pages, per language, and which language a page is shown in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CATALOGUE", "LANGUAGE_NAMES", "Translator", "negotiate", "page_languages", "parse_accept_language"]

# Each language under its own name, as a switcher shows it.
LANGUAGE_NAMES = {"en": "English", "it": "Italiano", "es": "Español", "hi": "हिन्दी"}
_RIGHT_TO_LEFT = frozenset({"ar", "he", "fa", "ur", "yi", "ps", "sd", "ug"})

CATALOGUE: dict[str, dict[str, str]] = {
    "en": {
        "skip": "Skip to the form",
        "language": "Language",
        "optional": "optional",
        "required": "required",
        "choose": "Choose…",
        "join.title": "Join {programme}",
        "join.heading": "Tell {programme} about you",
        "join.intro": "A few details help {programme} send you texts that matter to you.",
        "join.returning": "Just what we don't know yet: nothing you told us before is asked again.",
        "join.nothing": "We already have your details. Send the form to confirm you want texts from {programme}.",
        "join.complete_title": "You're all set",
        "join.complete": "We already have your details: there is nothing more to tell {programme} for now.",
        "join.submit": "Send",
        "errors.title": "Please check your answers",
        "errors.stale": "This page was open for a long time. Please check your answers and send the form again.",
        "errors.disclosure": "The text above the button has changed since the page loaded. Please read it and send "
        "the form again.",
        "error.prefix": "Error:",
        "error.required": "Please fill this in.",
        "error.too_long": "Please use at most {max} characters.",
        "error.characters": "Please remove line breaks and other special characters.",
        "error.email": "Enter an email address like name@example.com.",
        "error.date": "Enter a date as YYYY-MM-DD, for example 1990-05-31.",
        "error.future": "This date is in the future.",
        "error.too_old": "Please check the year: that would be older than {max}.",
        "error.number": "Enter a number, for example 42.",
        "error.choice": "Choose one of the options.",
        "error.postcode": "This doesn't look like a postcode in {country}.",
        "error.postcode_any": "This doesn't look like a postcode.",
        "error.country": "We don't know this country. Try its name in English or a code like IT.",
        "hint.country": "A name or a code, for example Italy or IT",
        "thanks.title": "Thank you!",
        "thanks.body": "Your details are saved. {programme} will text you from {numbers}.",
        "thanks.card": "Add {programme} to your contacts",
        "thanks.card_help": "The contact card saves the number {programme} texts you from, so you know it's them.",
        "thanks.stop": "Reply STOP to any text to stop, HELP for help.",
        "link.invalid_title": "Link not found",
        "link.invalid": "This link isn't valid. Check that it was copied whole, or text {number} again.",
        "link.expired_title": "This link has expired",
        "link.used_title": "This link was already used",
        "link.used": "You already sent this form, so its link no longer works.",
        "link.new_profile": "To see or change your details, text PROFILE to {number}: you'll get a new private link.",
        "link.new_yes": "Text YES to {number} to get a new link.",
        "link.profile_expired": "Profile links work for 24 hours, to keep your data private.",
        "optedout.title": "You have opted out",
        "optedout.body": "You won't get texts from {programme}. To join again, text START to {number}.",
        "the_number": "the number you texted",
        "profile.title": "Your data at {programme}",
        "profile.intro": "This private page shows everything {programme} keeps about you. Its link works for 24 "
        "hours; don't share it.",
        "profile.saved": "Your changes are saved.",
        "profile.details": "Your details",
        "profile.phone": "Phone number",
        "profile.status": "Status",
        "profile.not_given": "not given",
        "profile.tags": "Tags",
        "profile.none": "none",
        "profile.zones": "Time zone",
        "profile.zone_sure": "{zone}",
        "profile.zones_maybe": "One of: {zones} (we send only at hours that suit all of them)",
        "profile.zone_unknown": "not known",
        "profile.joined": "Joined",
        "profile.form_sent": "Last form sent",
        "profile.consent": "Consent history",
        "profile.when": "When",
        "profile.change": "Change",
        "profile.how": "How",
        "profile.edit": "Change your details",
        "profile.save": "Save changes",
        "profile.download": "Download all your data",
        "profile.download_help": "A JSON file with your profile, consent history and every text exchanged with "
        "{programme}.",
        "profile.erase": "Erase everything",
        "profile.erase_help": "Deletes your data and stops all texts.",
        "profile.gone_title": "Nothing here",
        "profile.gone": "There is no data for this link any more.",
        "state.new": "new",
        "state.pending": "pending (waiting for YES)",
        "state.subscribed": "subscribed",
        "state.unsubscribed": "opted out",
        "state.blocked": "blocked",
        "source.sms": "by text",
        "source.form": "sign-up form",
        "source.import_file": "imported",
        "source.api": "added by the team's software",
        "source.dashboard": "added by the team",
        "erase.title": "Erase everything?",
        "erase.body": "{programme} will delete your profile, tags, consent history and conversation, and blank "
        "the words and your number in the texts it keeps for its statistics. This cannot be undone.",
        "erase.after": "You will get no more texts. If you text START to {number} later, you join again as new.",
        "erase.confirm": "Yes, erase everything",
        "erase.cancel": "No, keep my data",
        "erased.title": "Your data has been erased",
        "erased.body": "{programme} deleted your profile, tags, consent history and conversation, cancelled any "
        "text waiting to be sent to you, and blanked the words and your number in the texts it keeps.",
        "erased.after": "You will not be texted again unless you text START to {number}. Only a one-way "
        "fingerprint of your number is kept, so that it is never texted or imported again by mistake.",
    },
    "it": {
        "skip": "Vai al modulo",
        "language": "Lingua",
        "optional": "facoltativo",
        "required": "obbligatorio",
        "choose": "Scegli…",
        "join.title": "Unisciti a {programme}",
        "join.heading": "Racconta qualcosa di te a {programme}",
        "join.intro": "Qualche informazione aiuta {programme} a mandarti messaggi che ti interessano.",
        "join.returning": "Solo ciò che ancora non sappiamo: non ti chiediamo di nuovo quello che ci hai già detto.",
        "join.nothing": "Abbiamo già i tuoi dati. Invia il modulo per confermare che vuoi i messaggi di {programme}.",
        "join.complete_title": "Tutto a posto",
        "join.complete": "Abbiamo già i tuoi dati: per ora non c'è altro da dire a {programme}.",
        "join.submit": "Invia",
        "errors.title": "Controlla le risposte",
        "errors.stale": "Questa pagina è rimasta aperta a lungo. Controlla le risposte e invia di nuovo il modulo.",
        "errors.disclosure": "Il testo sopra il pulsante è cambiato da quando hai aperto la pagina. Leggilo e invia "
        "di nuovo il modulo.",
        "error.prefix": "Errore:",
        "error.required": "Compila questo campo.",
        "error.too_long": "Usa al massimo {max} caratteri.",
        "error.characters": "Togli gli a capo e gli altri caratteri speciali.",
        "error.email": "Scrivi un indirizzo email come nome@esempio.it.",
        "error.date": "Scrivi la data come AAAA-MM-GG, per esempio 1990-05-31.",
        "error.future": "Questa data è nel futuro.",
        "error.too_old": "Controlla l'anno: vorrebbe dire più di {max} anni.",
        "error.number": "Scrivi un numero, per esempio 42.",
        "error.choice": "Scegli una delle opzioni.",
        "error.postcode": "Questo non sembra un codice postale di {country}.",
        "error.postcode_any": "Questo non sembra un codice postale.",
        "error.country": "Non conosciamo questo paese. Prova con il nome in inglese o un codice come IT.",
        "hint.country": "Un nome o un codice, per esempio Italia o IT",
        "thanks.title": "Grazie!",
        "thanks.body": "I tuoi dati sono salvati. {programme} ti scriverà da {numbers}.",
        "thanks.card": "Aggiungi {programme} ai tuoi contatti",
        "thanks.card_help": "Il biglietto da visita salva il numero da cui {programme} ti scrive, così lo riconosci.",
        "thanks.stop": "Rispondi STOP a qualsiasi messaggio per annullare, AIUTO per assistenza.",
        "link.invalid_title": "Link non trovato",
        "link.invalid": "Questo link non è valido. Controlla di averlo copiato per intero, o scrivi di nuovo a "
        "{number}.",
        "link.expired_title": "Questo link è scaduto",
        "link.used_title": "Questo link è già stato usato",
        "link.used": "Hai già inviato questo modulo, quindi il suo link non funziona più.",
        "link.new_profile": "Per vedere o cambiare i tuoi dati, scrivi PROFILO a {number}: riceverai un nuovo link "
        "privato.",
        "link.new_yes": "Scrivi SI a {number} per ricevere un nuovo link.",
        "link.profile_expired": "I link al profilo valgono 24 ore, per proteggere i tuoi dati.",
        "optedout.title": "Hai annullato l'iscrizione",
        "optedout.body": "Non riceverai messaggi da {programme}. Per tornare, scrivi START a {number}.",
        "the_number": "il numero a cui hai scritto",
        "profile.title": "I tuoi dati presso {programme}",
        "profile.intro": "Questa pagina privata mostra tutto ciò che {programme} conserva su di te. Il link vale "
        "24 ore; non condividerlo.",
        "profile.saved": "Le modifiche sono salvate.",
        "profile.details": "I tuoi dati",
        "profile.phone": "Numero di telefono",
        "profile.status": "Stato",
        "profile.not_given": "non indicato",
        "profile.tags": "Etichette",
        "profile.none": "nessuna",
        "profile.zones": "Fuso orario",
        "profile.zone_sure": "{zone}",
        "profile.zones_maybe": "Uno tra: {zones} (scriviamo solo in orari adatti a tutti)",
        "profile.zone_unknown": "non noto",
        "profile.joined": "Iscritto il",
        "profile.form_sent": "Ultimo modulo inviato",
        "profile.consent": "Storico del consenso",
        "profile.when": "Quando",
        "profile.change": "Cambiamento",
        "profile.how": "Come",
        "profile.edit": "Modifica i tuoi dati",
        "profile.save": "Salva le modifiche",
        "profile.download": "Scarica tutti i tuoi dati",
        "profile.download_help": "Un file JSON con il tuo profilo, lo storico del consenso e tutti i messaggi "
        "scambiati con {programme}.",
        "profile.erase": "Cancella tutto",
        "profile.erase_help": "Elimina i tuoi dati e ferma tutti i messaggi.",
        "profile.gone_title": "Non c'è niente qui",
        "profile.gone": "Non ci sono più dati per questo link.",
        "state.new": "nuovo",
        "state.pending": "in attesa (del SI)",
        "state.subscribed": "iscritto",
        "state.unsubscribed": "iscrizione annullata",
        "state.blocked": "bloccato",
        "source.sms": "via messaggio",
        "source.form": "modulo di iscrizione",
        "source.import_file": "importato",
        "source.api": "aggiunto dal software del team",
        "source.dashboard": "aggiunto dal team",
        "erase.title": "Cancellare tutto?",
        "erase.body": "{programme} eliminerà il tuo profilo, le etichette, lo storico del consenso e la "
        "conversazione, e cancellerà le parole e il tuo numero dai messaggi che conserva per le statistiche. "
        "Non si può annullare.",
        "erase.after": "Non riceverai più messaggi. Se più avanti scrivi START a {number}, ti iscrivi di nuovo da "
        "capo.",
        "erase.confirm": "Sì, cancella tutto",
        "erase.cancel": "No, tieni i miei dati",
        "erased.title": "I tuoi dati sono stati cancellati",
        "erased.body": "{programme} ha eliminato il tuo profilo, le etichette, lo storico del consenso e la "
        "conversazione, ha annullato i messaggi in attesa di invio e ha cancellato le parole e il tuo numero dai "
        "messaggi che conserva.",
        "erased.after": "Non riceverai più messaggi, a meno che tu non scriva START a {number}. Del tuo numero resta "
        "solo un'impronta non reversibile, perché non venga mai più contattato o importato per errore.",
    },
    "es": {
        "skip": "Ir al formulario",
        "language": "Idioma",
        "optional": "opcional",
        "required": "obligatorio",
        "choose": "Elige…",
        "join.title": "Únete a {programme}",
        "join.heading": "Cuéntale a {programme} sobre ti",
        "join.intro": "Algunos datos ayudan a {programme} a enviarte mensajes que te interesan.",
        "join.returning": "Solo lo que aún no sabemos: no volvemos a preguntar lo que ya nos dijiste.",
        "join.nothing": "Ya tenemos tus datos. Envía el formulario para confirmar que quieres los mensajes de "
        "{programme}.",
        "join.complete_title": "Todo listo",
        "join.complete": "Ya tenemos tus datos: por ahora no hay nada más que contarle a {programme}.",
        "join.submit": "Enviar",
        "errors.title": "Revisa tus respuestas",
        "errors.stale": "Esta página estuvo abierta mucho tiempo. Revisa tus respuestas y envía el formulario otra "
        "vez.",
        "errors.disclosure": "El texto sobre el botón cambió desde que abriste la página. Léelo y envía el "
        "formulario otra vez.",
        "error.prefix": "Error:",
        "error.required": "Completa este campo.",
        "error.too_long": "Usa como máximo {max} caracteres.",
        "error.characters": "Quita los saltos de línea y otros caracteres especiales.",
        "error.email": "Escribe un correo como nombre@ejemplo.com.",
        "error.date": "Escribe la fecha como AAAA-MM-DD, por ejemplo 1990-05-31.",
        "error.future": "Esta fecha está en el futuro.",
        "error.too_old": "Revisa el año: serían más de {max} años.",
        "error.number": "Escribe un número, por ejemplo 42.",
        "error.choice": "Elige una de las opciones.",
        "error.postcode": "Esto no parece un código postal de {country}.",
        "error.postcode_any": "Esto no parece un código postal.",
        "error.country": "No conocemos este país. Prueba con su nombre en inglés o un código como ES.",
        "hint.country": "Un nombre o un código, por ejemplo España o ES",
        "thanks.title": "¡Gracias!",
        "thanks.body": "Tus datos están guardados. {programme} te escribirá desde {numbers}.",
        "thanks.card": "Añade {programme} a tus contactos",
        "thanks.card_help": "La tarjeta de contacto guarda el número desde el que {programme} te escribe, para que "
        "lo reconozcas.",
        "thanks.stop": "Responde BAJA a cualquier mensaje para cancelar, AYUDA para ayuda.",
        "link.invalid_title": "Enlace no encontrado",
        "link.invalid": "Este enlace no es válido. Comprueba que lo copiaste entero, o escribe de nuevo a {number}.",
        "link.expired_title": "Este enlace ha caducado",
        "link.used_title": "Este enlace ya se usó",
        "link.used": "Ya enviaste este formulario, así que su enlace ya no funciona.",
        "link.new_profile": "Para ver o cambiar tus datos, escribe PERFIL a {number}: recibirás un enlace privado "
        "nuevo.",
        "link.new_yes": "Escribe SI a {number} para recibir un enlace nuevo.",
        "link.profile_expired": "Los enlaces al perfil valen 24 horas, para proteger tus datos.",
        "optedout.title": "Te has dado de baja",
        "optedout.body": "No recibirás mensajes de {programme}. Para volver, escribe START a {number}.",
        "the_number": "el número al que escribiste",
        "profile.title": "Tus datos en {programme}",
        "profile.intro": "Esta página privada muestra todo lo que {programme} guarda sobre ti. Su enlace vale 24 "
        "horas; no lo compartas.",
        "profile.saved": "Tus cambios están guardados.",
        "profile.details": "Tus datos",
        "profile.phone": "Número de teléfono",
        "profile.status": "Estado",
        "profile.not_given": "sin indicar",
        "profile.tags": "Etiquetas",
        "profile.none": "ninguna",
        "profile.zones": "Zona horaria",
        "profile.zone_sure": "{zone}",
        "profile.zones_maybe": "Una de: {zones} (solo escribimos a horas que convienen a todas)",
        "profile.zone_unknown": "desconocida",
        "profile.joined": "Te uniste",
        "profile.form_sent": "Último formulario enviado",
        "profile.consent": "Historial de consentimiento",
        "profile.when": "Cuándo",
        "profile.change": "Cambio",
        "profile.how": "Cómo",
        "profile.edit": "Cambia tus datos",
        "profile.save": "Guardar cambios",
        "profile.download": "Descarga todos tus datos",
        "profile.download_help": "Un archivo JSON con tu perfil, el historial de consentimiento y todos los mensajes "
        "intercambiados con {programme}.",
        "profile.erase": "Borrar todo",
        "profile.erase_help": "Elimina tus datos y detiene todos los mensajes.",
        "profile.gone_title": "No hay nada aquí",
        "profile.gone": "Ya no hay datos para este enlace.",
        "state.new": "nuevo",
        "state.pending": "pendiente (esperando el SI)",
        "state.subscribed": "suscrito",
        "state.unsubscribed": "dado de baja",
        "state.blocked": "bloqueado",
        "source.sms": "por mensaje",
        "source.form": "formulario de registro",
        "source.import_file": "importado",
        "source.api": "añadido por el software del equipo",
        "source.dashboard": "añadido por el equipo",
        "erase.title": "¿Borrar todo?",
        "erase.body": "{programme} eliminará tu perfil, etiquetas, historial de consentimiento y conversación, y "
        "borrará las palabras y tu número de los mensajes que guarda para sus estadísticas. No se puede deshacer.",
        "erase.after": "No recibirás más mensajes. Si más adelante escribes START a {number}, te unes de nuevo desde "
        "cero.",
        "erase.confirm": "Sí, borrar todo",
        "erase.cancel": "No, conservar mis datos",
        "erased.title": "Tus datos se han borrado",
        "erased.body": "{programme} eliminó tu perfil, etiquetas, historial de consentimiento y conversación, "
        "canceló los mensajes pendientes de envío y borró las palabras y tu número de los mensajes que guarda.",
        "erased.after": "No volverás a recibir mensajes a menos que escribas START a {number}. Solo se guarda una "
        "huella irreversible de tu número, para que nunca se le escriba ni se importe de nuevo por error.",
    },
    "hi": {
        "skip": "फ़ॉर्म पर जाएँ",
        "language": "भाषा",
        "optional": "वैकल्पिक",
        "required": "ज़रूरी",
        "choose": "चुनें…",
        "join.title": "{programme} से जुड़ें",
        "join.heading": "{programme} को अपने बारे में बताएँ",
        "join.intro": "कुछ जानकारी से {programme} आपको आपकी पसंद के संदेश भेज पाएगा।",
        "join.returning": "सिर्फ़ वही जो हम अभी नहीं जानते: जो आप पहले बता चुके हैं, वह दोबारा नहीं पूछा जाएगा।",
        "join.nothing": "आपकी जानकारी हमारे पास पहले से है। {programme} के संदेश पाने की पुष्टि के लिए फ़ॉर्म भेजें।",
        "join.complete_title": "सब तैयार है",
        "join.complete": "आपकी जानकारी हमारे पास पहले से है: अभी {programme} को और कुछ बताने की ज़रूरत नहीं है।",
        "join.submit": "भेजें",
        "errors.title": "कृपया अपने जवाब जाँचें",
        "errors.stale": "यह पेज काफ़ी देर तक खुला रहा। कृपया अपने जवाब जाँचें और फ़ॉर्म फिर से भेजें।",
        "errors.disclosure": "पेज खुलने के बाद बटन के ऊपर का टेक्स्ट बदल गया है। कृपया उसे पढ़ें और फ़ॉर्म फिर से भेजें।",
        "error.prefix": "त्रुटि:",
        "error.required": "कृपया इसे भरें।",
        "error.too_long": "कृपया ज़्यादा से ज़्यादा {max} अक्षर लिखें।",
        "error.characters": "कृपया नई पंक्तियाँ और दूसरे विशेष अक्षर हटाएँ।",
        "error.email": "name@example.com जैसा ईमेल पता लिखें।",
        "error.date": "तारीख़ YYYY-MM-DD के रूप में लिखें, जैसे 1990-05-31।",
        "error.future": "यह तारीख़ भविष्य में है।",
        "error.too_old": "कृपया साल जाँचें: इससे उम्र {max} से ज़्यादा होगी।",
        "error.number": "एक संख्या लिखें, जैसे 42।",
        "error.choice": "दिए गए विकल्पों में से एक चुनें।",
        "error.postcode": "यह {country} का पिन कोड नहीं लगता।",
        "error.postcode_any": "यह पिन कोड नहीं लगता।",
        "error.country": "हम इस देश को नहीं पहचानते। अंग्रेज़ी में नाम या IN जैसा कोड लिखें।",
        "hint.country": "नाम या कोड, जैसे India या IN",
        "thanks.title": "धन्यवाद!",
        "thanks.body": "आपकी जानकारी सहेज ली गई है। {programme} आपको {numbers} से संदेश भेजेगा।",
        "thanks.card": "{programme} को अपने संपर्कों में जोड़ें",
        "thanks.card_help": "संपर्क कार्ड वह नंबर सहेज लेता है जिससे {programme} आपको संदेश भेजता है, ताकि आप पहचान सकें।",
        "thanks.stop": "बंद करने के लिए किसी भी संदेश का जवाब STOP दें, मदद के लिए HELP।",
        "link.invalid_title": "लिंक नहीं मिला",
        "link.invalid": "यह लिंक मान्य नहीं है। जाँचें कि पूरा लिंक कॉपी हुआ है, या {number} पर फिर से संदेश भेजें।",
        "link.expired_title": "इस लिंक की समय-सीमा ख़त्म हो गई है",
        "link.used_title": "यह लिंक पहले ही इस्तेमाल हो चुका है",
        "link.used": "आप यह फ़ॉर्म पहले ही भेज चुके हैं, इसलिए इसका लिंक अब काम नहीं करता।",
        "link.new_profile": "अपनी जानकारी देखने या बदलने के लिए {number} पर PROFILE लिखें: आपको नया निजी लिंक मिलेगा।",
        "link.new_yes": "नया लिंक पाने के लिए {number} पर YES लिखें।",
        "link.profile_expired": "आपके डेटा की सुरक्षा के लिए प्रोफ़ाइल लिंक 24 घंटे चलते हैं।",
        "optedout.title": "आपने सदस्यता छोड़ दी है",
        "optedout.body": "आपको {programme} से संदेश नहीं मिलेंगे। फिर से जुड़ने के लिए {number} पर START लिखें।",
        "the_number": "वह नंबर जिस पर आपने संदेश भेजा था",
        "profile.title": "{programme} के पास आपका डेटा",
        "profile.intro": "यह निजी पेज दिखाता है कि {programme} आपके बारे में क्या रखता है। इसका लिंक 24 घंटे चलता है; "
        "इसे किसी से साझा न करें।",
        "profile.saved": "आपके बदलाव सहेज लिए गए हैं।",
        "profile.details": "आपकी जानकारी",
        "profile.phone": "फ़ोन नंबर",
        "profile.status": "स्थिति",
        "profile.not_given": "नहीं बताया",
        "profile.tags": "टैग",
        "profile.none": "कोई नहीं",
        "profile.zones": "समय क्षेत्र",
        "profile.zone_sure": "{zone}",
        "profile.zones_maybe": "इनमें से एक: {zones} (हम सिर्फ़ उन घंटों में भेजते हैं जो सभी के लिए ठीक हों)",
        "profile.zone_unknown": "पता नहीं",
        "profile.joined": "जुड़ने की तारीख़",
        "profile.form_sent": "आख़िरी फ़ॉर्म भेजा",
        "profile.consent": "सहमति का इतिहास",
        "profile.when": "कब",
        "profile.change": "बदलाव",
        "profile.how": "कैसे",
        "profile.edit": "अपनी जानकारी बदलें",
        "profile.save": "बदलाव सहेजें",
        "profile.download": "अपना सारा डेटा डाउनलोड करें",
        "profile.download_help": "एक JSON फ़ाइल: आपकी प्रोफ़ाइल, सहमति का इतिहास और {programme} के साथ हुए सभी संदेश।",
        "profile.erase": "सब कुछ मिटाएँ",
        "profile.erase_help": "आपका डेटा मिटाता है और सभी संदेश बंद करता है।",
        "profile.gone_title": "यहाँ कुछ नहीं है",
        "profile.gone": "इस लिंक के लिए अब कोई डेटा नहीं है।",
        "state.new": "नया",
        "state.pending": "लंबित (YES का इंतज़ार)",
        "state.subscribed": "सदस्य",
        "state.unsubscribed": "सदस्यता छोड़ी",
        "state.blocked": "रोका गया",
        "source.sms": "संदेश से",
        "source.form": "साइन-अप फ़ॉर्म",
        "source.import_file": "आयात किया गया",
        "source.api": "टीम के सॉफ़्टवेयर से जोड़ा गया",
        "source.dashboard": "टीम ने जोड़ा",
        "erase.title": "सब कुछ मिटाएँ?",
        "erase.body": "{programme} आपकी प्रोफ़ाइल, टैग, सहमति का इतिहास और बातचीत मिटा देगा, और आँकड़ों के लिए रखे "
        "संदेशों से शब्द और आपका नंबर हटा देगा। इसे वापस नहीं किया जा सकता।",
        "erase.after": "आपको और संदेश नहीं मिलेंगे। अगर बाद में आप {number} पर START लिखते हैं, तो आप नए सिरे से जुड़ेंगे।",
        "erase.confirm": "हाँ, सब कुछ मिटाएँ",
        "erase.cancel": "नहीं, मेरा डेटा रखें",
        "erased.title": "आपका डेटा मिटा दिया गया है",
        "erased.body": "{programme} ने आपकी प्रोफ़ाइल, टैग, सहमति का इतिहास और बातचीत मिटा दी, भेजे जाने वाले संदेश रद्द "
        "कर दिए, और रखे गए संदेशों से शब्द और आपका नंबर हटा दिया।",
        "erased.after": "जब तक आप {number} पर START नहीं लिखते, आपको फिर कभी संदेश नहीं भेजा जाएगा। आपके नंबर का सिर्फ़ "
        "एक ऐसा निशान रखा जाता है जिससे नंबर वापस नहीं बनता, ताकि गलती से उस पर फिर संदेश न जाए या वह आयात न हो।",
    },
}


@dataclass(frozen=True)
class Translator:
    """The page strings of one language (English where a string is missing)."""

    language: str

    @property
    def direction(self) -> str:
        return "rtl" if self.language.split("-")[0] in _RIGHT_TO_LEFT else "ltr"

    def __call__(self, key: str, **values: object) -> str:
        text = CATALOGUE.get(self.language, {}).get(key) or CATALOGUE["en"][key]
        return text.format_map(values) if values else text


def parse_accept_language(header: str | None) -> list[str]:
    """The primary language codes of an Accept-Language header, most wanted first."""
    if not header:
        return []
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:20]):
        code, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = code.strip().split("-")[0].lower()
        if primary and primary != "*" and quality > 0:
            ranked.append((-quality, position, primary))
    return [code for _, _, code in sorted(ranked)]


def page_languages(configured: Sequence[str]) -> list[str]:
    """The community's languages the pages can be shown in (English when none of them can)."""
    return [code for code in configured if code in CATALOGUE] or ["en"]


def negotiate(
    available: Sequence[str],
    *,
    asked: str | None,
    member: str | None,
    accept_language: str | None,
    default: str,
) -> str:
    """The page's language: the one picked with the switcher, else the member's own, else the browser's,
    else the community's default."""
    for candidate in (asked, member, *parse_accept_language(accept_language), default):
        if candidate and candidate in available:
            return candidate
    return available[0]
