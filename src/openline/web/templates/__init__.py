"""The member-facing pages' templates (Jinja2, autoescaped), the pieces they are built from, and how a
page is sent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

import phonenumbers
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from openline.engine.config import FormField
from openline.forms import FieldError, field_kind, field_label
from openline.web.i18n import LANGUAGE_NAMES, Translator

__all__ = ["PAGE_HEADERS", "FieldView", "display_number", "field_views", "render_page", "switcher"]

_environment = Environment(
    loader=PackageLoader("openline.web", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# The pages show personal data and carry a secret link: never cached, never framed, no referrer sent
# on, nothing loaded from elsewhere (their only style is inline).
PAGE_HEADERS: Mapping[str, str] = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}

# Browsers fill these in from the person's saved details.
_AUTOCOMPLETE = {
    "first_name": "given-name",
    "last_name": "family-name",
    "city": "address-level2",
    "postcode": "postal-code",
    "country": "country-name",
    "birthday": "bday",
    "email": "email",
}
_MAX_LENGTH = {"first_name": 100, "last_name": 100, "city": 100, "postcode": 20, "email": 320, "country": 100}


@dataclass(frozen=True)
class FieldView:
    """One form field as the template draws it."""

    id: str
    name: str
    label: str
    required: bool
    value: str
    input_type: str = "text"
    options: list[tuple[str, str]] | None = None
    hint: str = ""
    error: str = ""
    autocomplete: str = ""
    inputmode: str = ""
    max: str = ""
    maxlength: int = 0

    @property
    def describedby(self) -> str:
        ids = [f"{self.id}-hint"] if self.hint else []
        return " ".join([*ids, f"{self.id}-error"] if self.error else ids)


def _error_text(t: Translator, error: FieldError) -> str:
    if error.code == "postcode" and not error.params.get("country"):
        return t("error.postcode_any")
    return t(f"error.{error.code}", **dict(error.params))


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def field_views(
    fields: Sequence[FormField],
    t: Translator,
    *,
    values: Mapping[str, Any],
    errors: Sequence[FieldError] = (),
    languages: Sequence[str],
    today: date,
) -> list[FieldView]:
    """The fields as drawn: label in the page's language, the value typed (or stored), the error."""
    by_field = {e.field: e for e in errors}
    views = []
    for form_field in fields:
        name, kind = form_field.name, field_kind(form_field)
        error = by_field.get(name)
        common: dict[str, Any] = {
            "id": f"f-{name}",
            "name": name,
            "label": field_label(form_field, t.language),
            "required": form_field.required,
            "value": _shown(values.get(name)),
            "error": _error_text(t, error) if error else "",
            "autocomplete": _AUTOCOMPLETE.get(name, ""),
        }
        if kind == "language":
            common["options"] = [(code, LANGUAGE_NAMES.get(code, code)) for code in languages]
        elif kind == "choice":
            common["options"] = [(choice, choice) for choice in form_field.choices]
        elif kind in ("birthday", "date"):
            # The browser's date picker shows the format of the person's own locale and sends YYYY-MM-DD.
            common["input_type"] = "date"
            if kind == "birthday":
                common.update(max=today.isoformat(), autocomplete="bday")
        elif kind == "email":
            common.update(input_type="email", inputmode="email", maxlength=_MAX_LENGTH["email"])
        elif kind == "number":
            common.update(inputmode="decimal")
        elif kind == "country":
            common.update(hint=t("hint.country"), maxlength=_MAX_LENGTH["country"])
        else:
            common.update(maxlength=_MAX_LENGTH.get(name, 500))
        views.append(FieldView(**common))
    return views


def switcher(path: str, t: Translator, languages: Sequence[str]) -> list[dict[str, Any]]:
    """Links to the same page in each language."""
    return [
        {
            "code": code,
            "name": LANGUAGE_NAMES.get(code, code),
            "href": f"{path}?{urlencode({'lang': code})}",
            "current": code == t.language,
        }
        for code in languages
    ]


def display_number(address: str | None, t: Translator) -> str:
    """A sender's number as people write it (+1 202-555-0100); a short code as it is."""
    if not address:
        return t("the_number")
    if address.startswith("+"):
        try:
            number = phonenumbers.parse(address)
        except phonenumbers.NumberParseException:
            return address
        return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL))
    return address


def render_page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("switcher", [])
    html = _environment.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=dict(PAGE_HEADERS))
