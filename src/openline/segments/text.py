"""The text form of filters, for people: ``country = IT and tag milan and not replied within 30 days``.

Grammar (keywords are case-insensitive; ``not`` binds tighter than ``and``, ``and`` tighter than ``or``)::

    filter     := expr | "everyone" | "nobody"
    expr       := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := "not" factor | "(" expr ")" | condition
    condition  := "tag" VALUE
                | ("replied" | "received" | "clicked") ["within" N ("day" | "days")]
                | FIELD comparison
    FIELD      := first_name | last_name | city | postcode | country | email | language | state
                | age | joined | created | custom.NAME[:text|number|date|choice]
    comparison := ("=" | "!=" | "<" | "<=" | ">" | ">=") VALUE
                | "in" "(" VALUE ("," VALUE)* ")" | ("contains" | "startswith") VALUE
                | "is" ["not"] "set" | ("after" | "before" | "on") DATE | "within" N ("day" | "days")
    VALUE      := a word without spaces or ( ) , ' " = < > !  |  "quoted"  |  'quoted'   (\\ escapes)

A custom field without ``:type`` takes its type from its values: all plain numbers make it a number
field, all plain YYYY-MM-DD dates a date field, anything else (or any quoted value) a text field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from openline.segments.fields import (
    ISO_DATE,
    NUMBER,
    PRESENCE,
    Engagement,
    FieldType,
    FilterError,
    Kind,
    Op,
    Scalar,
    check_tag,
    resolve_field,
)
from openline.segments.model import (
    Activity,
    And,
    Condition,
    Filter,
    Not,
    Or,
    Tag,
    activity,
    all_of,
    any_of,
    located_condition,
)

__all__ = ["parse_text", "to_text"]

MAX_LENGTH = 10_000
MAX_DEPTH = 64
SPECIAL = frozenset("(),\"'=<>!")
OPERATOR_TOKENS = ("!=", "<=", ">=", "=", "<", ">")
ALIASES = {"after": Op.gt, "before": Op.lt, "on": Op.eq}
KEYWORDS = frozenset(
    {"and", "or", "not", "in", "is", "set", "tag", "within", "day", "days", "contains", "startswith"}
    | {"everyone", "nobody"}
    | set(ALIASES)
    | {e.value for e in Engagement}
)
# Keywords that begin a condition; the others cannot.
STARTS = frozenset({"tag", "everyone", "nobody"} | {e.value for e in Engagement})
OPERATOR_HELP = (
    "an operator (=, !=, <, <=, >, >=, in, contains, startswith, is set, is not set; "
    "for dates also after, before, on, within N days)"
)


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "string", "op", "(", ")", ",", "end"
    text: str
    column: int  # 1-based

    def describe(self) -> str:
        if self.kind == "end":
            return "the end of the filter"
        if self.kind == "string":
            return f"the quoted text {self.text!r}"
        return repr(self.text)

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words


def _tokens(text: str) -> list[Token]:
    found: list[Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "(),":
            found.append(Token(char, char, i + 1))
            i += 1
        elif char in "\"'":
            value, end = _quoted(text, i)
            found.append(Token("string", value, i + 1))
            i = end
        elif char in "=<>!":
            operator = next((o for o in OPERATOR_TOKENS if text.startswith(o, i)), None)
            if operator is None:
                raise FilterError(f"expected '!=' (a lone '!' means nothing), found {char!r}", column=i + 1)
            found.append(Token("op", operator, i + 1))
            i += len(operator)
        else:
            start = i
            while i < len(text) and not text[i].isspace() and text[i] not in SPECIAL:
                i += 1
            found.append(Token("word", text[start:i], start + 1))
    found.append(Token("end", "", len(text) + 1))
    return found


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The text inside the quotes starting at ``start``, and the index after the closing quote."""
    quote = text[start]
    parts: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == quote:
            return "".join(parts), i + 1
        if char == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "\\\"'":
                raise FilterError("expected \\\\, \\\" or \\' (the only escapes in quoted text)", column=i + 1)
            parts.append(text[i + 1])
            i += 2
            continue
        parts.append(char)
        i += 1
    raise FilterError(
        f"expected a closing {quote} for the quoted text opened at column {start + 1}", column=len(text) + 1
    )


def parse_text(text: str) -> Filter:
    """Read a filter written in the text form; a FilterError gives the column and what was expected."""
    if len(text) > MAX_LENGTH:
        raise FilterError(f"a filter is at most {MAX_LENGTH} characters (got {len(text)})")
    return _Parser(_tokens(text)).filter()


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.at = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        if token.kind != "end":
            self.at += 1
        return token

    def fail(self, expected: str, token: Token | None = None) -> FilterError:
        token = token or self.peek()
        return FilterError(f"expected {expected}, found {token.describe()}", column=token.column)

    def expect_word(self, expected: str, *words: str) -> Token:
        if not self.peek().is_word(*words):
            raise self.fail(expected)
        return self.take()

    def filter(self) -> Filter:
        if self.peek().kind == "end":
            raise self.fail("a condition (for everyone, write everyone)")
        node = self.expression()
        if self.peek().kind != "end":
            raise self.fail("'and', 'or' or the end of the filter")
        return node

    def expression(self) -> Filter:
        items = [self.term()]
        while self.peek().is_word("or"):
            self.take()
            items.append(self.term())
        return any_of(*items) if len(items) > 1 else items[0]

    def term(self) -> Filter:
        items = [self.factor()]
        while self.peek().is_word("and"):
            self.take()
            items.append(self.factor())
        return all_of(*items) if len(items) > 1 else items[0]

    def factor(self) -> Filter:
        token = self.peek()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(f"filters nest at most {MAX_DEPTH} deep", column=token.column)
        try:
            if token.is_word("not"):
                self.take()
                return Not(self.factor())
            if token.kind == "(":
                self.take()
                node = self.expression()
                if self.peek().kind != ")":
                    raise self.fail(f"')' to close the '(' at column {token.column}, or 'and' or 'or'")
                self.take()
                return node
            return self.condition()
        finally:
            self.depth -= 1

    def condition(self) -> Filter:
        token = self.take()
        if token.kind != "word" or token.text.lower() in KEYWORDS - STARTS:
            raise self.fail(
                "a condition: a field such as country, tag NAME, replied, received, clicked, not or (", token
            )
        word = token.text.lower()
        if word == "everyone":
            return And(())
        if word == "nobody":
            return Or(())
        if word == "tag":
            value = self.value("a tag after 'tag'")
            try:
                return Tag(check_tag(value.text))
            except FilterError as exc:
                raise FilterError(exc.reason, column=value.column) from None
        if word in {e.value for e in Engagement}:
            if not self.peek().is_word("within"):
                return activity(word)
            self.take()
            days = self.days()
            try:
                return activity(word, int(days.text))
            except FilterError as exc:
                raise FilterError(exc.reason, column=days.column) from None
        return self.comparison(token)

    def comparison(self, field: Token) -> Condition:
        name, colon, type_name = field.text.partition(":")
        operator = self.take()
        values: list[Token] = []
        if operator.kind == "op":
            op = Op(operator.text)
            values.append(self.value(f"a value after {operator.text!r}"))
        elif operator.is_word("in"):
            op = Op.in_
            if self.peek().kind != "(":
                raise self.fail("'(' and a list of values after 'in', like in (gold, silver)")
            self.take()
            values.append(self.value("a value in the list"))
            while self.peek().kind == ",":
                self.take()
                values.append(self.value("a value after ','"))
            if self.peek().kind != ")":
                raise self.fail("',' or ')' to end the list")
            self.take()
        elif operator.is_word("contains", "startswith"):
            op = Op(operator.text.lower())
            values.append(self.value(f"a value after {operator.text!r}"))
        elif operator.is_word("is"):
            negated = self.peek().is_word("not")
            if negated:
                self.take()
            self.expect_word("'set'" if negated else "'set' or 'not set'", "set")
            op = Op.is_not_set if negated else Op.is_set
        elif operator.is_word(*ALIASES):
            op = ALIASES[operator.text.lower()]
            values.append(self.value(f"a date after {operator.text!r}"))
        elif operator.is_word("within"):
            op = Op.within
            values.append(self.days())
        else:
            raise self.fail(f"{OPERATOR_HELP} after {field.text}", operator)

        field_type: str | None = type_name if colon else None
        if colon and not type_name:
            raise FilterError(
                f"expected a type after ':' ({', '.join(t.value for t in FieldType)})", column=field.column
            )
        if field_type is None and name.lower().startswith("custom.") and op not in PRESENCE:
            field_type = FieldType.text if op in (Op.contains, Op.starts_with) else _inferred(values)
        raw: object = None
        if op is Op.in_:
            raw = tuple(v.text for v in values)
        elif values:
            raw = values[0].text
        columns = {"field": field.column, "type": field.column, "op": operator.column}
        columns["value"] = values[0].column if values else operator.column

        def place(part: str, exc: FilterError) -> FilterError:
            return FilterError(exc.reason, column=columns[part])

        if operator.is_word(*ALIASES) and _kind(name, field_type) not in (None, Kind.moment, Kind.date):
            raise FilterError(
                f"{operator.text!r} compares dates: use it with joined, created or a custom date field",
                column=operator.column,
            )
        return located_condition(name, op, raw, field_type, from_text=True, place=place)

    def value(self, expected: str) -> Token:
        if self.peek().kind not in ("word", "string"):
            raise self.fail(f'{expected} (a word, a number, a date or "quoted text")')
        return self.take()

    def days(self) -> Token:
        days = self.peek()
        if days.kind != "word" or not (days.text.isascii() and days.text.isdigit()):
            raise self.fail("a whole number of days after 'within'")
        self.take()
        self.expect_word("'days'", "day", "days")
        return days


def _kind(name: str, field_type: str | None) -> Kind | None:
    """The kind of the named field, or None when the name or type is wrong (reported elsewhere)."""
    try:
        return resolve_field(name, None if field_type is None else FieldType(field_type)).kind
    except (FilterError, ValueError):
        return None


def _inferred(values: Sequence[Token]) -> FieldType:
    """A custom field's type from how its values are written (quotes always mean text)."""
    if any(v.kind == "string" for v in values):
        return FieldType.text
    if all(NUMBER.fullmatch(v.text) for v in values):
        return FieldType.number
    if all(ISO_DATE.fullmatch(v.text) for v in values):
        return FieldType.date
    return FieldType.text


def to_text(node: Filter) -> str:
    """The text form of a filter; `parse_text` reads it back as an equal filter."""
    if isinstance(node, And):
        return " and ".join(_operand(item) for item in node.items) if node.items else "everyone"
    if isinstance(node, Or):
        return " or ".join(_operand(item) for item in node.items) if node.items else "nobody"
    if isinstance(node, Not):
        return f"not {_operand(node.item)}"
    if isinstance(node, Tag):
        return f"tag {_literal(node.name)}"
    if isinstance(node, Activity):
        if node.days is None:
            return node.engagement.value
        return f"{node.engagement.value} within {node.days} day{'' if node.days == 1 else 's'}"
    return _condition(node)


def _operand(node: Filter) -> str:
    return f"({to_text(node)})" if isinstance(node, And | Or) and node.items else to_text(node)


def _condition(node: Condition) -> str:
    kind = resolve_field(node.field, node.type).kind
    values = node.value if isinstance(node.value, tuple) else () if node.value is None else (node.value,)
    written = [_literal(v) for v in values]
    name = node.field
    if node.type is not None and node.op not in (Op.contains, Op.starts_with):
        tokens = [Token("string" if w.startswith(("'", '"')) else "word", w, 0) for w in written]
        if _inferred(tokens) is not node.type:
            name = f"{name}:{node.type.value}"
    if node.op in PRESENCE:
        return f"{name} {node.op.value}"
    if node.op is Op.within:
        return f"{name} within {node.value} day{'' if node.value == 1 else 's'}"
    if node.op is Op.in_:
        return f"{name} in ({', '.join(written)})"
    if kind is Kind.moment and node.op in (Op.gt, Op.lt, Op.eq):
        alias = next(word for word, op in ALIASES.items() if op is node.op)
        return f"{name} {alias} {written[0]}"
    return f"{name} {node.op.value} {written[0]}"


def _literal(value: Scalar) -> str:
    if isinstance(value, str):
        plain = (
            value.isprintable()
            and not any(c.isspace() or c in SPECIAL for c in value)
            and value.lower() not in KEYWORDS
            and not NUMBER.fullmatch(value)
            and not ISO_DATE.fullmatch(value)
        )
        return value if plain else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return value.isoformat()
