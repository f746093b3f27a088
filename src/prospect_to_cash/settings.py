"""Numeric settings: a value given by the caller (an operator argument, a Param, a CLI
option), else an environment variable, else a default, checked against a lower bound.

One parser for all of them, so that every such setting treats an empty variable as unset,
refuses text that is not a number and a value below its bound the same way, and says in
its error which setting and which environment variable were wrong.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Generic, TypeVar

Number = TypeVar("Number", int, float)


@dataclass(frozen=True)
class NumberSetting(Generic[Number]):
    """One numeric setting: ``name`` (how callers pass it), ``variable`` (its environment
    variable), ``default``, ``unit`` for errors, and ``minimum`` (inclusive, or exclusive
    with ``above=True``: "more than 0 seconds")."""

    name: str
    variable: str
    default: Number
    unit: str
    minimum: Number
    above: bool = False

    def read(self, value: Number | str | None = None) -> Number:
        """``value`` when given, else the environment variable, else the default."""
        configured = value if value is not None else os.environ.get(self.variable)
        if configured is None or (isinstance(configured, str) and not configured.strip()):
            return self.default
        kind = type(self.default)
        try:
            number = kind(str(configured).strip())  # str(): 2.5 is not a whole number of rows
        except ValueError:
            whole = "a whole number" if kind is int else "a number"
            raise ValueError(f"{self._label} must be {whole} of {self.unit}, got {configured!r}") from None
        if kind is float and not math.isfinite(number):
            raise ValueError(f"{self._label} must be a finite number of {self.unit}, got {configured!r}")
        if number < self.minimum or (self.above and number == self.minimum):
            bound = f"more than {self.minimum:g}" if self.above else f"at least {self.minimum:g}"
            raise ValueError(f"{self._label} must be {bound} {self.unit}, got {configured!r}")
        return number

    @property
    def _label(self) -> str:
        return f"{self.name} ({self.variable})"
