"""Custom templates: a small Jinja dialect that cannot hurt the service (docs/discord.md).

Jinja's parser reads the template; `compile_template` then allows only substitution,
filters, tests, operators and `{% if %}` over the clip variables (no loops, macros, calls,
attributes, assignments or includes), so the work of a render is linear in the template's
size. `render` evaluates that tree itself instead of compiling it to Python, which makes
every step ours to count:
- a deadline and a step count, checked at every node;
- every value made is charged to the render (`CHARGE_MAX` characters in all), and no one
  value may exceed `VALUE_MAX` characters or `INT_BITS_MAX` bits: operations that can grow
  (`*`, `**`, `+`, `~`, `%`, replace, center, join, format) are refused *before* they run
  when their result would be too big;
- output past `OUTPUT_MAX` characters is dropped (Discord keeps at most 4,096 anyway).
Whatever goes wrong surfaces as `TemplateProblem`, an `InvalidInput` naming the problem.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import Environment, nodes

from clipwatch.discord.template_budget import (
    INT_BITS_MAX,
    OUTPUT_MAX,
    RENDER_SECONDS,
    SEQUENCE,
    UNDEFINED,
    Budget,
    TemplateProblem,
    check_format,
    render_clock,
    size_of,
    text_of,
)
from clipwatch.discord.template_filters import FILTERS, TESTS

__all__ = ["Program", "TemplateProblem", "compile_template", "render"]

SOURCE_MAX = 4000
DEPTH_MAX = 40
VARIABLES = frozenset(
    {
        "id",
        "url",
        "title",
        "channel",
        "creator",
        "game",
        "views",
        "duration",
        "created_at",
        "language",
    }
)


CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_parser = Environment(autoescape=False)  # only its parser is used: nothing is compiled
_REFUSED = {
    nodes.For: "loops ({% for %})",
    nodes.Macro: "macros ({% macro %})",
    nodes.CallBlock: "{% call %} blocks",
    nodes.Call: "calls (functions and methods; use filters)",
    nodes.Getattr: "attributes (x.y; use filters)",
    nodes.Assign: "assignments ({% set %})",
    nodes.AssignBlock: "assignments ({% set %})",
    nodes.FilterBlock: "{% filter %} blocks",
    nodes.With: "{% with %} blocks",
    nodes.Block: "{% block %}",
    nodes.Extends: "{% extends %}",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% import %}",
    nodes.Dict: "dict literals",
}
_ALLOWED = (
    nodes.Template,
    nodes.Output,
    nodes.If,
    nodes.TemplateData,
    nodes.Const,
    nodes.Name,
    nodes.List,
    nodes.Tuple,
    nodes.Getitem,
    nodes.Slice,
    nodes.Filter,
    nodes.Test,
    nodes.Keyword,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Pos,
    nodes.BinExpr,
    nodes.Concat,
)


@dataclass(frozen=True)
class Program:
    """A template that passed the checks, ready to render."""

    body: tuple[nodes.Node, ...]


def compile_template(source: str) -> Program:
    """The template checked and ready to render, or TemplateProblem saying why not."""
    compiled = _compile(source)
    if isinstance(compiled, str):
        raise TemplateProblem(compiled)  # a fresh one: a raised exception keeps its traceback
    return compiled


@lru_cache(maxsize=512)
def _compile(source: str) -> Program | str:
    if len(source) > SOURCE_MAX:
        return f"over {SOURCE_MAX} characters"
    if CONTROL.search(source):
        return "control characters not allowed (line breaks and tabs are)"
    try:
        tree = _parser.parse(source)
        _check(tree)
    except TemplateProblem as problem:
        return problem.reason
    except RecursionError:
        return f"nested more than {DEPTH_MAX} deep"
    except Exception as exc:  # TemplateSyntaxError, and a lexer's ValueError on odd numbers
        return _describe(exc)
    return Program(tuple(tree.body))


def _check(tree: nodes.Template) -> None:
    # An explicit stack: a deep tree must not cost the caller's recursion depth.
    stack: list[tuple[nodes.Node, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > DEPTH_MAX:
            raise TemplateProblem(f"nested more than {DEPTH_MAX} deep")
        what = _REFUSED.get(type(node))
        if what is not None or not isinstance(node, _ALLOWED):
            what = what or f"{type(node).__name__} nodes"
            raise TemplateProblem(
                f"{what} not allowed: templates hold variables, filters, tests, operators "
                "and {% if %}"
            )
        if isinstance(node, nodes.Name) and (node.ctx != "load" or node.name not in VARIABLES):
            known = ", ".join(sorted(VARIABLES))
            raise TemplateProblem(f"unknown variable {node.name!r} (known: {known})")
        if isinstance(node, nodes.Filter | nodes.Test):
            kind, table = ("filter", FILTERS) if isinstance(node, nodes.Filter) else ("test", TESTS)
            if node.name not in table:
                known = ", ".join(sorted(table))
                raise TemplateProblem(f"unknown {kind} {node.name!r} (known: {known})")
            if node.node is None or node.dyn_args is not None or node.dyn_kwargs is not None:
                raise TemplateProblem(f"{kind} {node.name!r}: *args and **kwargs not allowed")
        if isinstance(node, nodes.Const) and _too_big(node.value):
            raise TemplateProblem(f"a number over {INT_BITS_MAX} bits")
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())


def _too_big(value: Any) -> bool:
    return isinstance(value, int) and value.bit_length() > INT_BITS_MAX


def render(program: Program, variables: Mapping[str, Any], *, deadline: float | None = None) -> str:
    """The template's text for these variables, within the budget (or TemplateProblem)."""
    until = render_clock() + RENDER_SECONDS
    budget = Budget(until if deadline is None else min(until, deadline), variables)
    pieces: list[str] = []
    try:
        _emit(program.body, budget, pieces)
    except _OutputFull:
        pass
    except TemplateProblem:
        raise
    except RecursionError:
        raise TemplateProblem(f"nested more than {DEPTH_MAX} deep") from None
    except Exception as exc:  # the template's own error on this clip: 1/0, 'a' + 1, ...
        raise TemplateProblem(_describe(exc)) from None
    return "".join(pieces)


def _describe(exc: Exception) -> str:
    text = str(getattr(exc, "message", None) or exc or type(exc).__name__)
    return f"{type(exc).__name__}: {text[:200]}"


class _OutputFull(Exception):
    pass


def _emit(body: tuple[nodes.Node, ...] | list[nodes.Node], b: Budget, out: list[str]) -> None:
    for node in body:
        b.step()
        if isinstance(node, nodes.If):
            branches = [node, *node.elif_]
            for branch in branches:
                if _eval(branch.test, b):
                    _emit(branch.body, b, out)
                    break
            else:
                _emit(node.else_, b, out)
            continue
        assert isinstance(node, nodes.Output)
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                piece = child.data
            else:
                piece = b.charge(text_of(_eval(child, b)), "output")
            room = OUTPUT_MAX - b.output
            out.append(piece[:room])
            b.output += min(len(piece), room)
            if b.output >= OUTPUT_MAX:
                raise _OutputFull


def _eval(node: nodes.Node, b: Budget) -> Any:
    b.step()
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.Name):
        return b.variables.get(node.name, UNDEFINED)
    if isinstance(node, nodes.List | nodes.Tuple):
        items = [_eval(item, b) for item in node.items]
        return b.charge(items if isinstance(node, nodes.List) else tuple(items), "a list")
    if isinstance(node, nodes.Getitem):
        return _getitem(node, b)
    if isinstance(node, nodes.CondExpr):
        if _eval(node.test, b):
            return _eval(node.expr1, b)
        return UNDEFINED if node.expr2 is None else _eval(node.expr2, b)
    if isinstance(node, nodes.And):
        left = _eval(node.left, b)
        return _eval(node.right, b) if left else left
    if isinstance(node, nodes.Or):
        left = _eval(node.left, b)
        return left if left else _eval(node.right, b)
    if isinstance(node, nodes.Not):
        return not _eval(node.node, b)
    if isinstance(node, nodes.Neg | nodes.Pos):
        value = _eval(node.node, b)
        return b.charge(-value if isinstance(node, nodes.Neg) else +value, node.operator)
    if isinstance(node, nodes.Concat):
        parts = [text_of(_eval(n, b)) for n in node.nodes]
        b.allow(sum(len(p) for p in parts), "'~'")
        return b.charge("".join(parts), "'~'")
    if isinstance(node, nodes.BinExpr):
        return _binop(node.operator, _eval(node.left, b), _eval(node.right, b), b)
    if isinstance(node, nodes.Compare):
        return _compare(node, b)
    if isinstance(node, nodes.Filter | nodes.Test):
        assert node.node is not None  # refused by _check otherwise
        value = _eval(node.node, b)
        args = [_eval(a, b) for a in node.args]
        kwargs: dict[str, Any] = {str(k.key): _eval(k.value, b) for k in node.kwargs}
        if isinstance(node, nodes.Test):
            return bool(TESTS[node.name](value, *args, **kwargs))
        result = FILTERS[node.name](b, value, *args, **kwargs)
        if result is value or any(result is a for a in args):
            return result  # nothing new was made (default, a text already short enough)
        return b.charge(result, f"filter {node.name!r}")
    raise TemplateProblem(f"{type(node).__name__} not allowed")  # unreachable after _check


def _getitem(node: nodes.Getitem, b: Budget) -> Any:
    value = _eval(node.node, b)
    arg = node.arg
    if isinstance(arg, nodes.Slice):
        # As in Jinja, a slice of what cannot be sliced is an error...
        parts = (arg.start, arg.stop, arg.step)
        key = slice(*(None if part is None else _eval(part, b) for part in parts))
        return b.charge(value[key], "[]")
    index = _eval(arg, b)
    try:
        item = value[index]
    except (TypeError, LookupError):
        return UNDEFINED  # ... and a missing item is undefined
    return b.charge(item, "[]")


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gteq": operator.ge,
    "lt": operator.lt,
    "lteq": operator.le,
    "in": lambda a, b: a in b,
    "notin": lambda a, b: a not in b,
}


def _compare(node: nodes.Compare, b: Budget) -> bool:
    left = _eval(node.expr, b)
    for operand in node.ops:
        right = _eval(operand.expr, b)
        if not _COMPARE[operand.op](left, right):
            return False
        left = right
    return True


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}


def _binop(op: str, left: Any, right: Any, b: Budget) -> Any:
    what = f"{op!r}"
    if op == "*":
        if isinstance(left, SEQUENCE) and isinstance(right, int):
            b.allow(size_of(left) * right, what)
        elif isinstance(right, SEQUENCE) and isinstance(left, int):
            b.allow(size_of(right) * left, what)
        elif isinstance(left, int) and isinstance(right, int):
            b.allow_bits(left.bit_length() + right.bit_length(), what)
    elif op == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
        b.allow_bits(abs(left).bit_length() * max(right, 0), what)
    elif op == "+" and isinstance(left, SEQUENCE) and isinstance(right, SEQUENCE):
        b.allow(size_of(left) + size_of(right), what)
    elif op == "%" and isinstance(left, str):
        check_format(left, what)
    return b.charge(_BINOPS[op](left, right), what)
