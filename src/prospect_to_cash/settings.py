"""Typed settings: a value given by the caller (an operator argument, a Param, a CLI
option), else an environment variable, else a default.

One parser per kind, so that every setting treats an empty variable as unset and says in
its error which setting and which environment variable were wrong: :class:`NumberSetting`
(checked against a lower bound) and :class:`FlagSetting` (yes/no, with an explicit choice
of what text that is neither means). :func:`bool_word` is the one list of yes/no words,
also used for row values (``sync.values.to_bool``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

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


#: The words a yes/no text may be (case and surrounding blanks aside).
TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no"})


def bool_word(text: str) -> bool | None:
    """``True`` or ``False`` for a yes/no word, ``None`` for any other text: what that
    means (an error, a default) is the caller's choice, not this function's."""
    folded = text.strip().lower()
    if folded in TRUE_WORDS:
        return True
    if folded in FALSE_WORDS:
        return False
    return None


@dataclass(frozen=True, kw_only=True)
class FlagSetting:
    """One yes/no setting: ``name`` (how callers pass it), ``variable`` (its environment
    variable; None for an argument only), ``default`` (nothing given, blank, or ``None`` as a
    template renders an unset value), and ``unknown``, what other text means, chosen at
    every setting: ``"raise"`` (a typo must not decide for the user) or ``"default"`` (a
    switch whose default is the safe side, such as keeping row values out of logs)."""

    name: str
    variable: str | None = None
    default: bool
    unknown: Literal["raise", "default"]

    def read(self, value: bool | int | str | None = None) -> bool:
        """``value`` when given, else the environment variable, else the default."""
        configured = value
        if configured is None and self.variable is not None:
            configured = os.environ.get(self.variable)
        if configured is None:
            return self.default
        if isinstance(configured, bool):
            return configured
        text = str(configured)
        if not text.strip() or text.strip().lower() == "none":
            return self.default
        word = bool_word(text)
        if word is not None:
            return word
        if self.unknown == "default":
            return self.default
        label = f"{self.name} ({self.variable})" if self.variable else self.name
        raise ValueError(f"{label} must be true or false, got {configured!r}")
