"""Broadcast body templates: checked when composed, rendered for each member in a sandbox.

A body is a small Jinja template run in a sandbox: ``Hi {{ first_name | default("friend") }}``. It is
checked when the broadcast is composed (unknown names, filters, attribute access, loops inside loops...)
so that the owner hears about a typo at once, with its line and column, rather than from a million
skipped members later. Rendering never half-fills a text: a missing value without a default raises
MissingValue for that member instead of sending "Hi ," or "Hi None".

Members' values are the data here; the templates are written by a community's owner, who is trusted
with their own list but not with the server, so everything a template can do is bounded: no imports,
no attribute access beyond ``custom.<field>`` and ``loop.<counter>``, no function calls, one level of
loops, and values that may not grow past a few thousand characters.

Messages (variants, languages, the disclosure) are built from these bodies in openline.broadcasts.compose.
"""

from __future__ import annotations

import difflib
import re
from bisect import bisect_right
from collections.abc import Callable, Collection, Iterable, Mapping
from types import TracebackType
from typing import Any, NoReturn

from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.filters import FILTERS
from jinja2.meta import find_undeclared_variables
from jinja2.runtime import Context, LoopContext, Undefined
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

__all__ = [
    "MAX_LENGTH",
    "MEMBER_VARIABLES",
    "CompiledBody",
    "MissingValue",
    "RenderProblem",
    "TemplateProblem",
    "TooLong",
    "check_length",
    "compile_body",
    "render",
]

MAX_LENGTH = 1600  # characters in one text, once personalised (ten concatenated segments and then some)
# form_link is not stored: the planner signs each member's own /join/<token> link when it renders the text.
MEMBER_VARIABLES = frozenset(
    (
        "first_name", "last_name", "city", "postcode", "country", "language", "birthday", "email", "tags", "custom",
        "form_link",
    )
)  # fmt: skip

_MAX_SOURCE = 10_000  # characters of template; a body is a text message, not a program
_MAX_VALUE = 10_000  # characters (or items) any value inside a template may reach
_MAX_INT_BITS = 4096
_MAX_DEPTH = 60  # nodes inside nodes; a real text uses about ten
_MAX_OUTPUT = 4 * MAX_LENGTH  # raw output before trimming; past it the text cannot fit anyway
_LOOP_ATTRIBUTES = frozenset(
    ("index", "index0", "revindex", "revindex0", "first", "last", "length", "previtem", "nextitem", "cycle", "changed")
)
_LOOP_CALLS = frozenset(("cycle", "changed"))
_FORBIDDEN_STATEMENTS: dict[type[nodes.Node], tuple[str, str]] = {
    # node type -> (tag as written, why)
    nodes.Include: ("include", "a text cannot include other templates"),
    nodes.Import: ("import", "a text cannot import other templates"),
    nodes.FromImport: ("from", "a text cannot import other templates"),
    nodes.Extends: ("extends", "a text cannot extend other templates"),
    nodes.Block: ("block", "blocks need extends, which texts do not have"),
    nodes.Macro: ("macro", "macros are not available in texts"),
    nodes.CallBlock: ("call", "macros are not available in texts"),
    nodes.EvalContextModifier: ("autoescape", "autoescape is for HTML; a text is sent as written"),
}
_DEFAULT_SUGGESTIONS = {"first_name": "friend", "city": "your city", "country": "your country"}


# -- errors ----------------------------------------------------------------------------------------


class TemplateProblem(ValueError):
    """A body that cannot be used, found when the broadcast is composed."""

    def __init__(self, problem: str, line: int, column: int, where: str | None = None) -> None:
        self.problem = problem
        self.line = line
        self.column = column
        self.where = where  # "variant B, Italian body" when the message has more than one body
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}line {line}, column {column}: {problem}")


class MissingValue(ValueError):
    """A member lacks a value the body uses without a default: their text is not sent half-filled."""

    def __init__(self, variable: str, line: int | None, where: str | None = None) -> None:
        self.variable = variable
        self.line = line
        self.where = where
        place = ", ".join(p for p in (where, f"line {line}" if line else None) if p)
        place = f" ({place})" if place else ""
        suggestion = _DEFAULT_SUGGESTIONS.get(variable, "...")
        if re.fullmatch(r"[\w.]+", variable):
            advice = f'write {{{{ {variable} | default("{suggestion}") }}}}'
            super().__init__(f"no {variable} for this member{place}; {advice}")
        else:  # an item of a list ("[0]") or a loop's previous item: there is no name to show
            super().__init__(f'{variable} is missing for this member{place}; add | default("...") after it')


class RenderProblem(ValueError):
    """The body failed for this member for another reason (a value grew too large, text plus a number...)."""

    def __init__(self, problem: str, line: int | None, where: str | None = None) -> None:
        self.problem = problem
        self.line = line
        self.where = where
        place = ", ".join(p for p in (where, f"line {line}" if line else None) if p)
        super().__init__(f"{place}: {problem}" if place else problem)


class TooLong(ValueError):
    """The personalised text is longer than one text may be."""

    def __init__(self, length: int, *, at_least: bool = False) -> None:
        self.length = length
        super().__init__(f"the text is {'over ' if at_least else ''}{length} characters; at most {MAX_LENGTH}")


class _Unfilled(UndefinedError):
    """Raised inside the template by an undefined value that is printed, iterated or computed with."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        super().__init__(f"{name!r} is undefined")


# -- the sandbox -----------------------------------------------------------------------------------


class _Absent(Undefined):
    """A missing value: false in ``{% if %}``, replaced by ``default``, an error anywhere else."""

    __slots__ = ()

    def _fail_with_undefined_error(self, *args: object, **kwargs: object) -> NoReturn:
        name = self._undefined_name
        raise _Unfilled(name if isinstance(name, str) or name is None else str(name))

    # Undefined binds these to its own method; rebinding makes each raise _Unfilled with the name.
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _fail_with_undefined_error
    __div__ = __rdiv__ = __truediv__ = __rtruediv__ = _fail_with_undefined_error
    __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __pos__ = __neg__ = _fail_with_undefined_error
    __call__ = __getitem__ = __lt__ = __le__ = __gt__ = __ge__ = _fail_with_undefined_error
    __int__ = __float__ = __complex__ = __pow__ = __rpow__ = _fail_with_undefined_error
    __str__ = __len__ = __iter__ = _fail_with_undefined_error


def _size(value: object, budget: int = _MAX_VALUE) -> int:
    """How big a value is (characters, items, nested), stopping early once it is over budget."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int):
        return value.bit_length() // 8
    if isinstance(value, list | tuple | set | frozenset | dict):
        total = len(value)
        for item in value.values() if isinstance(value, dict) else value:
            if total > budget:
                break
            total += _size(item, budget - total)
        return total
    return 0


def _bounded(value: Any) -> Any:
    """What ``{% set %}`` and ``{% with %}`` store: reusing a value is how a template would double it."""
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        raise SecurityError("a number in the text grew too large")
    if _size(value) > _MAX_VALUE:
        raise SecurityError(f"a value in the text grew past {_MAX_VALUE:,} characters")
    return value


def _replace(value: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old, new = str(value), str(old), str(new)
    hits = text.count(old) if count is None else min(count, text.count(old))
    if len(text) + hits * (len(new) - len(old)) > _MAX_VALUE:
        raise SecurityError(f"replace would make the text longer than {_MAX_VALUE:,} characters")
    return text.replace(old, new, -1 if count is None else count)


def _join(value: Iterable[Any], separator: Any = "") -> str:
    between, parts, total = str(separator), [], 0
    for item in value:
        part = str(item)
        total += len(part) + len(between)
        if total > _MAX_VALUE:
            raise SecurityError(f"join would make the text longer than {_MAX_VALUE:,} characters")
        parts.append(part)
    return between.join(parts)


def _finalize(value: Any) -> Any:
    """A list printed as it is written to a person ("music, film"), not as Python's ['music', 'film']."""
    if isinstance(value, list | tuple | set | frozenset):
        return _join(value, ", ")
    return value


# Only filters that make sense in a text and cannot be used to build huge values; `random` is left out
# because the estimate, the preview and the send must all produce the same text.
_SAFE_FILTERS = (
    "abs", "capitalize", "count", "d", "default", "first", "float", "int", "last", "length", "list", "lower",
    "max", "min", "reject", "reverse", "round", "select", "sort", "string", "title", "trim", "truncate",
    "unique", "upper", "urlencode", "wordcount",
)  # fmt: skip
_FILTERS: dict[str, Callable[..., Any]] = {name: FILTERS[name] for name in _SAFE_FILTERS}
_FILTERS |= {"replace": _replace, "join": _join, "_bounded": _bounded}


class _Sandbox(SandboxedEnvironment):
    # Intercepted operators are also never folded at compile time, so `10 ** 10 ** 10` cannot hang it.
    intercepted_binops = frozenset(("*", "**", "+", "%"))

    def __init__(self) -> None:
        super().__init__(
            autoescape=False,  # SMS text, not HTML
            undefined=_Absent,
            finalize=_finalize,
            trim_blocks=True,  # a {% tag %} alone on its line leaves no blank line in the text
            lstrip_blocks=True,
            keep_trailing_newline=False,
            auto_reload=False,
        )
        self.filters = dict(_FILTERS)
        self.globals.clear()  # range, cycler, namespace, lipsum...: nothing a text needs

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        numbers = isinstance(left, int | float) and isinstance(right, int | float)
        if operator == "**":
            if not numbers or abs(right) > 100 or abs(left) > 10**9:
                raise SecurityError("** is only for small numbers in a text")
        elif operator == "%":
            if isinstance(left, str):  # "%0999999999d" % 1 would build a gigabyte
                raise SecurityError("% formatting is not available; join text with ~")
        elif operator == "*":
            if numbers:
                if (
                    isinstance(left, int)
                    and isinstance(right, int)
                    and left.bit_length() + right.bit_length() > _MAX_INT_BITS
                ):
                    raise SecurityError("a number in the text grew too large")
            else:  # "ab" * 3, [1] * 3, 3 * "ab"
                count, repeated = (right, left) if isinstance(right, int) else (left, right)
                if isinstance(count, int) and _size(repeated) * count > _MAX_VALUE:
                    raise SecurityError(f"a value in the text grew past {_MAX_VALUE:,} characters")
        elif operator == "+" and not numbers and _size(left) + _size(right) > _MAX_VALUE:
            raise SecurityError(f"a value in the text grew past {_MAX_VALUE:,} characters")
        return self.binop_table[operator](left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Compile-time checks allow only loop.<counter>; custom.<field> is rewritten to a plain name.
        if isinstance(obj, LoopContext) and attribute in _LOOP_ATTRIBUTES:
            return getattr(obj, attribute)
        if isinstance(obj, Undefined):
            return obj
        raise SecurityError(f"attribute {attribute!r} is not available in a text")

    def getitem(self, obj: Any, argument: Any) -> Any:
        # Unlike Jinja's, never falls back to attributes: tags["append"] must not reach list.append.
        if isinstance(obj, Undefined):
            return obj
        try:
            return obj[argument]
        except (TypeError, LookupError):
            return self.undefined(obj=obj, name=f"[{argument!r}]")  # MissingValue says "nothing at [0]"


_ENV = _Sandbox()


# -- checking a template ---------------------------------------------------------------------------


_CODE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)


class _Source:
    """Finds the column of a token on a line (Jinja's nodes only know their line)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.line_starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]
        self.lines = text.splitlines() or [""]

    def position(self, offset: int) -> tuple[int, int]:
        line = bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1

    def column(self, line: int, pattern: str, group: int = 0) -> int:
        """Column of the first match of ``pattern`` inside template code on ``line``."""
        compiled = re.compile(pattern)
        for span in _CODE.finditer(self.text):
            for match in compiled.finditer(self.text, span.start(), span.end()):
                found_line, column = self.position(match.start(group))
                if found_line == line:
                    return column
        if 0 < line <= len(self.lines):  # not in a complete tag (an unclosed one, say): anywhere on the line
            anywhere = compiled.search(self.lines[line - 1]) or re.search(r"\{[{%]", self.lines[line - 1])
            if anywhere:
                return anywhere.start(group if anywhere.re is compiled else 0) + 1
        return 1

    def line_length(self, line: int) -> int:
        return len(self.lines[line - 1]) if 0 < line <= len(self.lines) else 0


def _suggest(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def _listing(known: Iterable[str]) -> str:
    return ", ".join(sorted(known))


def _name_pattern(name: str) -> str:
    return rf"(?<![\w.]){re.escape(name)}(?!\w)"


def _syntax_column(source: _Source, error: TemplateSyntaxError) -> int:
    line, message = error.lineno, error.message or ""
    at = re.search(r"unexpected char .* at (\d+)$", message)
    if at:  # the lexer reports an offset into the whole source
        return source.position(int(at.group(1)))[1]
    if "end of template" in message:
        return source.line_length(line) + 1
    quoted = re.findall(r"'([^']+)'", message)
    for token in reversed(quoted):  # "expected token 'x', got 'y'": the one found is the last quoted
        if not token.startswith("end of") and token not in ("name", "string", "integer", "float", "operator"):
            return source.column(line, re.escape(token))
    return source.column(line, r"\{[{%]")


class _Checker:
    """Walks a parsed body and rejects what a text may not do; records the custom fields it names."""

    def __init__(self, source: _Source) -> None:
        self.source = source
        self.custom_used: set[str] = set()

    def fail(self, node: nodes.Node, problem: str, pattern: str, group: int = 0) -> NoReturn:
        raise TemplateProblem(problem, node.lineno, self.source.column(node.lineno, pattern, group))

    def visit(self, node: nodes.Node, loops: int = 0, depth: int = 0) -> None:
        if depth > _MAX_DEPTH:  # Jinja's compiler recurses per level; stop well before Python's limit
            self.fail(node, "the body is nested too deeply", r"\{[{%]")
        for kind, (tag, why) in _FORBIDDEN_STATEMENTS.items():
            if isinstance(node, kind):
                self.fail(node, f"{{% {tag} %}}: {why}", rf"\{{%-?\s*{tag}\b")
        if isinstance(node, nodes.For):
            if loops:
                self.fail(node, "a loop inside a loop is not available in a text", r"\{%-?\s*for\b")
            loops += 1
        elif isinstance(node, nodes.Name):
            self.visit_name(node)
        elif isinstance(node, nodes.Getattr):
            if self.visit_getattr(node):
                return
        elif isinstance(node, nodes.Getitem):
            if self.visit_getitem(node):
                return
        elif isinstance(node, nodes.Filter | nodes.Test):
            self.visit_filter_or_test(node)
        elif isinstance(node, nodes.Call):
            call = node.node
            if not (
                isinstance(call, nodes.Getattr)
                and isinstance(call.node, nodes.Name)
                and call.node.name == "loop"
                and call.attr in _LOOP_CALLS
            ):
                self.fail(
                    node, "calling functions is not available in a text (only loop.cycle and loop.changed)", r"\("
                )
        elif isinstance(node, nodes.NSRef):
            self.fail(node, "namespaces are not available in a text", _name_pattern(node.name))
        for child in node.iter_child_nodes():
            self.visit(child, loops, depth + 1)

    def visit_name(self, node: nodes.Name) -> None:
        if node.name.startswith("_"):
            self.fail(node, f"names starting with _ are not available ({node.name!r})", _name_pattern(node.name))
        if node.ctx != "load" and node.name in ("custom", "loop"):
            self.fail(node, f"{node.name!r} is reserved; choose another name", _name_pattern(node.name))
        if node.ctx == "load" and node.name == "custom":
            self.fail(node, "custom holds the custom fields: name one, e.g. custom.favourite_song", r"\bcustom\b")

    def visit_getattr(self, node: nodes.Getattr) -> bool:
        """True when the node is fully checked (its children need no visit)."""
        target = node.node
        if isinstance(target, nodes.Name) and target.name == "custom" and not node.attr.startswith("_"):
            self.custom_used.add(node.attr)
            return True
        if isinstance(target, nodes.Name) and target.name == "loop" and node.attr in _LOOP_ATTRIBUTES:
            return False
        self.fail(
            node,
            f"'.{node.attr}' is not available: a dot only reaches custom fields (custom.favourite_song) "
            f"and loop counters (loop.index)",
            rf"\.\s*{re.escape(node.attr)}\b",
        )

    def visit_getitem(self, node: nodes.Getitem) -> bool:
        target, key = node.node, node.arg
        if isinstance(target, nodes.Name) and target.name == "custom":
            if isinstance(key, nodes.Const) and isinstance(key.value, str) and not key.value.startswith("_"):
                self.custom_used.add(key.value)
                return True
            self.fail(node, 'name the custom field: custom.favourite_song or custom["favourite song"]', r"\[")
        if isinstance(key, nodes.Const) and isinstance(key.value, str):
            self.fail(node, f"[{key.value!r}] is not available: only custom fields are reached by name", r"\[")
        return False

    def visit_filter_or_test(self, node: nodes.Filter | nodes.Test) -> None:
        is_filter = isinstance(node, nodes.Filter)
        known = [n for n in (_ENV.filters if is_filter else _ENV.tests) if not n.startswith("_")]
        if node.name in known:
            return
        kind = "filter" if is_filter else "test"
        pattern = rf"\|\s*({re.escape(node.name)})\b" if is_filter else rf"\bis\s+(?:not\s+)?({re.escape(node.name)})\b"
        self.fail(
            node, f"unknown {kind} {node.name!r} ({_suggest(node.name, known)}known: {_listing(known)})", pattern, 1
        )


class _Rewriter(NodeTransformer):
    """custom.x becomes a plain name, so it is looked up (and found missing) like first_name; values that
    are stored for reuse pass through _bounded."""

    def __init__(self, custom_names: Mapping[str, str]) -> None:
        self.custom_names = custom_names

    def _custom(self, node: nodes.Getattr | nodes.Getitem, key: str) -> nodes.Node:
        if isinstance(node.node, nodes.Name) and node.node.name == "custom":
            return nodes.Name(self.custom_names[key], "load", lineno=node.lineno, environment=_ENV)
        return self.generic_visit(node)

    def visit_Getattr(self, node: nodes.Getattr) -> nodes.Node:
        return self._custom(node, node.attr)

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:
        key = node.arg.value if isinstance(node.arg, nodes.Const) else None
        return self._custom(node, key) if isinstance(key, str) else self.generic_visit(node)

    @staticmethod
    def _bound(expr: nodes.Expr) -> nodes.Filter:
        return nodes.Filter(expr, "_bounded", [], [], None, None, lineno=expr.lineno, environment=_ENV)

    def visit_Assign(self, node: nodes.Assign) -> nodes.Node:
        self.generic_visit(node)
        assert isinstance(node.node, nodes.Expr)
        node.node = self._bound(node.node)
        return node

    def visit_With(self, node: nodes.With) -> nodes.Node:
        self.generic_visit(node)
        node.values = [self._bound(value) for value in node.values]
        return node

    def visit_AssignBlock(self, node: nodes.AssignBlock) -> nodes.Node:
        self.generic_visit(node)
        # A Filter over None applies to the block's own output; wrapping the owner's filter keeps it.
        node.filter = nodes.Filter(node.filter, "_bounded", [], [], None, None, lineno=node.lineno, environment=_ENV)
        return node


# -- compiled bodies -------------------------------------------------------------------------------


class CompiledBody:
    """One checked, compiled body; render it as often as needed."""

    __slots__ = ("_lookups", "_render", "_shown", "_template", "custom_fields", "source", "variables", "where")

    def __init__(self, source: str, custom_fields: Collection[str], where: str | None = None) -> None:
        if len(source) > _MAX_SOURCE:
            raise TemplateProblem(f"the body is {len(source):,} characters; at most {_MAX_SOURCE:,}", 1, 1, where)
        if not source.strip():
            raise TemplateProblem("the text is empty", 1, 1, where)
        text = _Source(source)
        checker = _Checker(text)
        try:
            ast = _ENV.parse(source)
            checker.visit(ast)
            names = find_undeclared_variables(ast)
        except TemplateProblem as found:
            raise TemplateProblem(found.problem, found.line, found.column, where) from None
        except TemplateSyntaxError as exc:
            line = exc.lineno or 1
            raise TemplateProblem(exc.message or "syntax error", line, _syntax_column(text, exc), where) from None
        except RecursionError:  # a few thousand "(" in a row; the checker stops anything deep it gets to see
            raise TemplateProblem("the body is nested too deeply", 1, 1, where) from None
        except ValueError as exc:  # a number too long for Python to read, say
            raise TemplateProblem(f"the body cannot be read: {exc}", 1, 1, where) from None
        # The checker has made sure `custom` only appears as custom.<field>.
        known = (MEMBER_VARIABLES - {"custom"}) | {f for f in custom_fields if f.isidentifier()}
        unknown = names - known - {"custom"}
        if unknown:
            used = [n for n in ast.find_all(nodes.Name) if n.name in unknown and n.ctx == "load"]
            first = min(n.lineno for n in used)
            node = min((n for n in used if n.lineno == first), key=lambda n: text.column(first, _name_pattern(n.name)))
            listing = _listing([*known, "custom.<field>"])
            problem = f"unknown variable {node.name!r} ({_suggest(node.name, known)}known: {listing})"
            column = text.column(node.lineno, _name_pattern(node.name))
            raise TemplateProblem(problem, node.lineno, column, where)
        # Context names for custom.x cannot be written by the owner (names starting with _ are rejected).
        custom_names = {field: f"_custom_{i}" for i, field in enumerate(sorted(checker.custom_used))}
        rewritten = _Rewriter(custom_names).visit(ast)
        assert isinstance(rewritten, nodes.Template)
        self._template = _ENV.from_string(rewritten)
        self._render = self._template.root_render_func
        self.source = source
        self.where = where
        top_level_custom = frozenset(names - MEMBER_VARIABLES)
        self.custom_fields = frozenset(checker.custom_used) | top_level_custom
        self.variables = frozenset(names & MEMBER_VARIABLES) | ({"custom"} if self.custom_fields else set())
        # (context name, key in values or None, key in values["custom"] or None), read on every render.
        lookups: list[tuple[str, str | None, str | None]] = [
            (n, n, None) for n in sorted(names & MEMBER_VARIABLES - {"custom"})
        ]
        lookups += [(n, n, n) for n in sorted(top_level_custom)]
        lookups += [(name, None, field) for field, name in custom_names.items()]
        self._lookups = tuple(lookups)
        self._shown = {name: f"custom.{field}" for field, name in custom_names.items()}

    def __repr__(self) -> str:
        return f"CompiledBody({self.source!r})"

    def personalise(self, values: Mapping[str, object]) -> str:
        """The personalised text, trimmed, without the length check: render() adds it, and
        CompiledMessage.render_for adds it once the disclosure is in."""
        data: dict[str, object] = {}
        custom: Any = None
        for name, key, custom_key in self._lookups:
            value = values.get(key) if key is not None else None
            if value is None and custom_key is not None:
                if custom is None:
                    custom = values.get("custom") or {}
                value = custom.get(custom_key) if isinstance(custom, Mapping) else None
            # None and blank text are both "no value": either would leave a hole in the text.
            if value is not None and not (isinstance(value, str) and not value.strip()):
                data[name] = value
        chunks: list[str] = []
        size = 0
        try:
            for chunk in self._render(self._template.new_context(data, shared=True)):
                size += len(chunk)
                if size > _MAX_OUTPUT:
                    raise TooLong(_MAX_OUTPUT, at_least=True)
                chunks.append(chunk)
        except _Unfilled as missing:
            name = missing.name or "a value"  # unnamed: loop.previtem on the first item, say
            raise MissingValue(self._shown.get(name, name), self._line(missing.__traceback__), self.where) from None
        except TooLong:
            raise
        except Exception as exc:  # the owner's template failed for this member's values: say where and why
            raise RenderProblem(_explain(exc), self._line(exc.__traceback__), self.where) from None
        text = "".join(chunks).strip()
        if not text:
            raise RenderProblem("the text is empty for this member", None, self.where)
        return text

    def _line(self, tb: TracebackType | None) -> int | None:
        """The body's line where the template stopped, from the compiled code's own line."""
        line = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "<template>":
                line = self._template.get_corresponding_lineno(tb.tb_lineno)
            tb = tb.tb_next
        return line


def _explain(exc: Exception) -> str:
    if isinstance(exc, SecurityError | UndefinedError):
        return str(exc)
    return f"the text cannot be personalised: {exc}"


def check_length(text: str) -> str:
    """The text as it is if it fits in one text; TooLong past MAX_LENGTH characters."""
    if len(text) > MAX_LENGTH:
        raise TooLong(len(text))
    return text


def compile_body(source: str, *, custom_fields: Collection[str] = ()) -> CompiledBody:
    """Check and compile one body. Raises TemplateProblem with the line and column of the first problem."""
    return CompiledBody(source, tuple(custom_fields))


def render(body: CompiledBody, values: Mapping[str, object]) -> str:
    """The body for one member, trimmed. A value that is None, blank or absent is undefined: it may be
    tested (``{% if city %}``) or replaced (``| default("friend")``) but printing it raises MissingValue.
    Raises TooLong past MAX_LENGTH characters and RenderProblem when the template fails for these values."""
    return check_length(body.personalise(values))
