"""The filters and tests custom templates may use. Each filter whose result can outgrow its
input (replace, center, join, format) checks the size before it runs; `round` bounds its
precision (`round(5, -10**7)` computes 10**10**7)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from jinja2 import Undefined
from jinja2.filters import do_filesizeformat
from jinja2.tests import TESTS as JINJA_TESTS

from clipwatch.discord.template_budget import (
    SEQUENCE,
    UNDEFINED,
    Budget,
    TemplateProblem,
    check_format,
    size_of,
    text_of,
)

ROUND_DIGITS_MAX = 20


def _replace(b: Budget, value: Any, old: Any, new: Any, count: int | None = None) -> str:
    s, old, new = text_of(value), text_of(old), text_of(new)
    found = s.count(old) if old else len(s) + 1
    if count is not None and count >= 0:
        found = min(found, count)
    b.allow(len(s) + found * (len(new) - len(old)), "filter 'replace'")
    return s.replace(old, new, -1 if count is None else count)


def _center(b: Budget, value: Any, width: int = 80) -> str:
    b.allow(width, "filter 'center'")
    return text_of(value).center(width)


def _join(b: Budget, value: Any, d: Any = "", attribute: None = None) -> str:
    if attribute is not None:
        raise TemplateProblem("filter 'join': attribute not allowed")
    sep = text_of(d)
    if isinstance(value, str):
        b.allow(len(value) + len(sep) * max(len(value) - 1, 0), "filter 'join'")
        return sep.join(value)
    if not isinstance(value, list | tuple):
        raise TemplateProblem("filter 'join': needs a list or a text")
    b.allow(sum(size_of(v) for v in value) + len(sep) * len(value), "filter 'join'")
    return sep.join(text_of(v) for v in value)


def _format(b: Budget, value: Any, *args: Any, **kwargs: Any) -> str:
    if args and kwargs:
        raise TemplateProblem("filter 'format': positional or named arguments, not both")
    template = text_of(value)
    check_format(template, "filter 'format'")
    return template % (kwargs or args)


def _truncate(
    b: Budget,
    value: Any,
    length: int = 255,
    killwords: bool = False,
    end: str = "...",
    leeway: int | None = None,
) -> Any:
    # As Jinja's: the value itself, not its text (a number has no length: an error).
    if len(value) <= length + (5 if leeway is None else leeway):
        return value
    if killwords:
        return value[: length - len(end)] + end
    return value[: length - len(end)].rsplit(" ", 1)[0] + end


def _round(b: Budget, value: Any, precision: int = 0, method: str = "common") -> Any:
    if abs(precision) > ROUND_DIGITS_MAX:  # round(5, -10**7) computes 10**10**7
        raise TemplateProblem(f"filter 'round': precision over {ROUND_DIGITS_MAX}")
    if method == "common":
        return round(value, precision)
    if method not in ("ceil", "floor"):
        raise TemplateProblem("filter 'round': method is common, ceil or floor")
    func = math.ceil if method == "ceil" else math.floor
    return func(value * (10**precision)) / (10**precision)


def _int(b: Budget, value: Any, default: Any = 0, base: int = 10) -> Any:
    try:
        return int(value, base) if isinstance(value, str) else int(value)
    except (TypeError, ValueError, OverflowError):
        try:
            return int(float(value))  # "42.5"|int is 42, as in Jinja
        except (TypeError, ValueError, OverflowError):
            return default


def _float(b: Budget, value: Any, default: Any = 0.0) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _default(b: Budget, value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    return default_value if isinstance(value, Undefined) or (boolean and not value) else value


def _first(b: Budget, value: Any) -> Any:
    return _item(value, 0)


def _last(b: Budget, value: Any) -> Any:
    return _item(value, -1)


def _item(value: Any, index: int) -> Any:
    """As Jinja's first and last: undefined when empty, an error when not a sequence."""
    if isinstance(value, Undefined):
        return UNDEFINED
    if not isinstance(value, SEQUENCE):
        raise TemplateProblem(f"first and last need a list or a text, not {type(value).__name__}")
    return value[index] if len(value) else UNDEFINED


def _reverse(b: Budget, value: Any) -> Any:
    if not isinstance(value, SEQUENCE):
        raise TemplateProblem("filter 'reverse': needs a list or a text")
    return value[::-1]


_WORD = re.compile(r"\w+")


def _text_filter(method: Callable[[str], Any]) -> Callable[..., Any]:
    return lambda b, value, *args: method(text_of(value), *args)


FILTERS: dict[str, Callable[..., Any]] = {
    "upper": _text_filter(str.upper),
    "lower": _text_filter(str.lower),
    "capitalize": lambda b, value: text_of(value).capitalize(),
    "trim": _text_filter(str.strip),
    "string": lambda b, value: text_of(value),
    "length": lambda b, value: len(value),
    "count": lambda b, value: len(value),
    "wordcount": lambda b, value: sum(1 for _ in _WORD.finditer(text_of(value))),
    "abs": lambda b, value: abs(value),
    "filesizeformat": lambda b, value, binary=False: do_filesizeformat(value, binary),
    "replace": _replace,
    "center": _center,
    "join": _join,
    "format": _format,
    "truncate": _truncate,
    "round": _round,
    "int": _int,
    "float": _float,
    "default": _default,
    "d": _default,
    "first": _first,
    "last": _last,
    "reverse": _reverse,
}
_TEST_NAMES = (
    "odd even divisibleby defined undefined none boolean false true integer float lower upper "
    "string number sameas in == eq equalto != ne > gt greaterthan >= ge < lt lessthan <= le"
)
TESTS: dict[str, Callable[..., Any]] = {
    name: JINJA_TESTS[name]  # type: ignore[misc]  # jinja2 annotates TESTS as dict[str, function]
    for name in _TEST_NAMES.split()
}
