"""`openline form ...`: the sign-up form's fields and consent disclosure ."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from openline.cli_common import CommunityOption, admin_connection, fail, out
from openline.communities import DEFAULT_SLUG, get_community
from openline.engine.config import BUILTIN_FORM_FIELDS, FormField, load_config
from openline.forms import (
    add_form_field,
    disclosure_text,
    field_kind,
    field_label,
    remove_form_field,
    set_disclosure,
)

__all__ = ["form_app"]

form_app = typer.Typer(help="The sign-up form members get a link to: fields and disclosure.", no_args_is_help=True)
field_app = typer.Typer(help="The form's fields (built-in profile fields and custom ones).", no_args_is_help=True)
form_app.add_typer(field_app, name="field")


@form_app.command("show")
def form_show(
    language: Annotated[str, typer.Option(help="Show labels and the disclosure in this language.")] = "en",
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Show the form's fields, in order, and its consent disclosure."""
    with admin_connection() as conn:
        found = get_community(conn, community)
        config = load_config(conn, found.id)
    table = Table("field", "type", "required", "label", "choices")
    for form_field in config.form.fields:
        table.add_row(
            form_field.name,
            field_kind(form_field) + ("" if form_field.name in BUILTIN_FORM_FIELDS else " (custom)"),
            "yes" if form_field.required else "-",
            field_label(form_field, language),
            ", ".join(form_field.choices) or "-",
        )
    out.print(table)
    source = "custom" if language in config.form.disclosure else "openline's own"
    out.print(f"disclosure ({language}, {source}):")
    out.print(disclosure_text(config, config.programme or found.name, language), markup=False)


def _labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        language, separator, text = pair.partition("=")
        if not separator or not language.strip():
            fail(f"--label takes LANGUAGE=TEXT (got {pair!r})")
        labels[language.strip()] = text.strip()
    return labels


@field_app.command("add")
def field_add(
    name: Annotated[str, typer.Argument(help="A built-in field (first_name, email...) or a new custom field's name.")],
    kind: Annotated[str | None, typer.Option("--type", help="Custom fields: text, number, date or choice.")] = None,
    choices: Annotated[str | None, typer.Option(help="Comma-separated options of a choice field.")] = None,
    required: Annotated[bool, typer.Option("--required/--optional", help="Whether members must answer it.")] = False,
    label: Annotated[
        list[str] | None, typer.Option(help="LANGUAGE=TEXT, e.g. it='Squadra del cuore' (repeat per language).")
    ] = None,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Add a field at the end of the form (or change the field of that name where it stands)."""
    spec = {
        "name": name.strip(),
        "type": kind,
        "required": required,
        "labels": _labels(label or []),
        "choices": [c.strip() for c in choices.split(",") if c.strip()] if choices else [],
    }
    try:
        new = FormField.model_validate(spec)
    except ValidationError as exc:
        fail("; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors()))
    with admin_connection() as conn:
        add_form_field(conn, get_community(conn, community).id, new)
    out.print(f"the form asks {name.strip()} ({'required' if required else 'optional'})")


@field_app.command("remove")
def field_remove(
    name: Annotated[str, typer.Argument(help="The field's name.")], community: CommunityOption = DEFAULT_SLUG
) -> None:
    """Stop asking a field (answers members already gave are kept)."""
    with admin_connection() as conn:
        if not remove_form_field(conn, get_community(conn, community).id, name.strip()):
            fail(f"the form has no field {name.strip()!r}")
    out.print(f"removed {name.strip()}")


@form_app.command("disclosure")
def form_disclosure(
    language: Annotated[str, typer.Argument(help="ISO 639-1 code of the language it is written in.")],
    text: Annotated[
        str | None, typer.Argument(help="The consent text shown above the button; {programme} is filled in.")
    ] = None,
    reset: Annotated[bool, typer.Option(help="Go back to openline's own text in this language.")] = False,
    community: CommunityOption = DEFAULT_SLUG,
) -> None:
    """Set the consent disclosure the form shows (and the consent ledger records) in one language."""
    if (text is None) == (not reset):
        fail("give the disclosure TEXT, or --reset")
    with admin_connection() as conn:
        set_disclosure(conn, get_community(conn, community).id, language, None if reset else text)
    out.print(f"disclosure ({language}): " + ("back to openline's own" if reset else "saved"))
