"""The budget a custom template renders under, and the one error it ends with.

Numbers: no value over `VALUE_MAX` characters (the largest Discord field is 4,096), no
number over `INT_BITS_MAX` bits (str() of it stays cheap), `CHARGE_MAX` characters made in
all per render (≤ 256 KB even at 4 bytes a character), `STEPS_MAX` nodes evaluated, and
`RENDER_SECONDS` of time. Measured worst cases are in docs/discord.md.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from jinja2 import Undefined

from clipwatch.errors import InvalidInput

STEPS_MAX = 4000
VALUE_MAX = 8192
OUTPUT_MAX = 8192
CHARGE_MAX = 65536
INT_BITS_MAX = 2048
FORMAT_WIDTH_MAX = 100
RENDER_SECONDS = 0.02


def render_clock() -> float:
    """The clock of every render budget: this thread's CPU seconds. Renders never await, so
    only their own work moves it; a busy machine that preempts the process (wall time) no
    longer fails a template that is well within its budget (a CI run refused a route's
    `{{ channel }} · {{ views }} views` as "out of time")."""
    return time.thread_time()


UNDEFINED = Undefined()
SEQUENCE = (str, list, tuple)


class TemplateProblem(InvalidInput):
    """A custom template that cannot be used: syntax, a refused construct, a budget
    exceeded, or an error while rendering one clip."""

    def __init__(self, message: str, *, field: str | None = "template") -> None:
        super().__init__(f"template: {message}", field=field)
        self.reason = message


class Budget:
    def __init__(self, deadline: float, variables: Mapping[str, Any]) -> None:
        self.deadline = deadline
        self.variables = variables
        self.steps = 0
        self.charged = 0
        self.output = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > STEPS_MAX:
            raise TemplateProblem(f"over {STEPS_MAX} steps")
        if render_clock() > self.deadline:
            raise TemplateProblem(
                f"ran out of time (at most {RENDER_SECONDS * 1000:.0f} ms a render)"
            )

    def allow(self, size: int, what: str) -> None:
        """Refuse an operation whose result would be too big, before it runs."""
        if size > VALUE_MAX:
            raise TemplateProblem(f"{what} would make a value over {VALUE_MAX} characters")

    def allow_bits(self, bits: int, what: str) -> None:
        if bits > INT_BITS_MAX:
            raise TemplateProblem(f"{what} would make a number over {INT_BITS_MAX} bits")

    def charge(self, value: Any, what: str) -> Any:
        if isinstance(value, int) and value.bit_length() > INT_BITS_MAX:
            raise TemplateProblem(f"{what} made a number over {INT_BITS_MAX} bits")
        size = size_of(value)
        self.allow(size, what)
        self.charged += size
        if self.charged > CHARGE_MAX:
            raise TemplateProblem(f"made over {CHARGE_MAX} characters of values in all")
        return value


def size_of(value: Any) -> int:
    """About the characters a value holds or prints as (what the budget counts)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple):
        return 2 + sum(size_of(v) + 4 for v in value)
    if isinstance(value, int):
        return value.bit_length() * 3 // 10 + 2
    return 0 if isinstance(value, Undefined) else 24


def text_of(value: Any) -> str:
    return "" if isinstance(value, Undefined) else str(value)


_FORMAT_SPEC = re.compile(r"%(?:\([^)]{0,100}\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d*))?")


def check_format(template: str, what: str) -> None:
    """printf-style widths and precisions are how `'%9999999d' % 1` makes 10 MB."""
    for match in _FORMAT_SPEC.finditer(template):
        for number in match.groups():
            if number == "*":
                raise TemplateProblem(f"{what}: '*' widths not allowed")
            if number and (len(number) > 3 or int(number) > FORMAT_WIDTH_MAX):
                raise TemplateProblem(f"{what}: widths over {FORMAT_WIDTH_MAX} not allowed")
