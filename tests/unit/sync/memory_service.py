"""An in-memory Dataverse / F&O stand-in for engine tests.

It keeps rows the way the real service identifies them and refuses what the real service
refuses for the operations the engine uses (odata-protocol.md):

* Dataverse create with a caller-chosen id that exists → 412 "A record with matching key
  values already exists."; update of a missing id → 404; ``nav@odata.bind`` must name an
  existing row of the declared target set, and is read back as ``_<column>_value``.
* F&O create of an existing key → 500 "The record already exists."; PATCH of a missing key
  → 404 "No resources were found when selecting for update."; every key field required.
* Writing a property the table does not declare → 400.

Reads support the ``$filter`` subset the mappings use (``eq ne gt ge lt le``, ``and``,
``or``, ``not``, parentheses, strings, numbers, booleans, ``null``, GUIDs, ISO dates and
F&O enum literals); anything else raises, so a test can never pass on an ignored filter.
"""

from __future__ import annotations

import copy
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from prospect_to_cash.hooks.operations import WriteKind, WriteOperation, WriteOutcome


@dataclass
class MemoryTable:
    key: tuple[str, ...]
    fields: set[str] | None = None  # None: any property accepted
    lookups: dict[str, tuple[str, str]] = field(default_factory=dict)  # nav -> (column, target set)
    rows: list[dict[str, Any]] = field(default_factory=list)
    company_specific: bool = False
    read_only: set[str] = field(default_factory=set)  # computed/system columns: refused on write
    wire_lookups: set[str] = field(default_factory=set)  # columns read as _<column>_value


_TOKEN = re.compile(
    r"\s*(?:(?P<lparen>\()|(?P<rparen>\))|(?P<enum>[A-Za-z_][\w.]*'[^']*')|(?P<string>'(?:[^']|'')*')"
    r"|(?P<date>\d{4}-\d{2}-\d{2}T[\d:.]+Z)|(?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(?P<number>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_][\w]*))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    position, found = 0, []
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ValueError(f"MemoryService cannot parse filter near {text[position:]!r}")
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match.group(kind)))
        position = match.end()
    return found


class _Filter:
    """Recursive-descent evaluator for the supported $filter subset."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.position = 0
        self.tree = self._or()
        if self.position != len(self.tokens):
            raise ValueError(f"trailing tokens in filter {text!r}")

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _next(self) -> tuple[str, str]:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def _or(self) -> Any:
        left = self._and()
        while self._peek() == ("word", "or"):
            self._next()
            left = ("or", left, self._and())
        return left

    def _and(self) -> Any:
        left = self._not()
        while self._peek() == ("word", "and"):
            self._next()
            left = ("and", left, self._not())
        return left

    def _not(self) -> Any:
        if self._peek() == ("word", "not"):
            self._next()
            return ("not", self._not())
        return self._comparison()

    def _comparison(self) -> Any:
        if self._peek() == ("lparen", "("):
            self._next()
            inner = self._or()
            assert self._next() == ("rparen", ")")
            return inner
        kind, name = self._next()
        if kind != "word":
            raise ValueError(f"expected a property name, got {name!r}")
        _, operator = self._next()
        if operator not in ("eq", "ne", "gt", "ge", "lt", "le"):
            raise ValueError(f"unsupported operator {operator!r}")
        return ("cmp", operator, name, self._literal())

    def _literal(self) -> Any:
        kind, text = self._next()
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "enum":
            return text.split("'", 1)[1][:-1]
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind in ("date", "guid"):
            return text.lower() if kind == "guid" else text
        if kind == "word" and text in ("true", "false"):
            return text == "true"
        if kind == "word" and text == "null":
            return None
        raise ValueError(f"unsupported literal {text!r}")

    def matches(self, row: dict[str, Any]) -> bool:
        return bool(self._eval(self.tree, row))

    def _eval(self, node: Any, row: dict[str, Any]) -> bool:
        if node[0] == "or":
            return self._eval(node[1], row) or self._eval(node[2], row)
        if node[0] == "and":
            return self._eval(node[1], row) and self._eval(node[2], row)
        if node[0] == "not":
            return not self._eval(node[1], row)
        _, operator, name, literal = node
        value = row.get(name)
        if isinstance(value, str) and isinstance(literal, str):
            value, literal = value.lower(), literal.lower()
        if operator == "eq":
            return value == literal
        if operator == "ne":
            return value != literal
        if value is None or literal is None:
            return False
        return {"gt": value > literal, "ge": value >= literal, "lt": value < literal, "le": value <= literal}[
            operator
        ]


class MemoryService:
    """One service (``dataverse`` or ``fno``) with ``iter_pages``, ``write``, ``get_metadata``."""

    def __init__(
        self,
        system: str,
        tables: dict[str, MemoryTable],
        *,
        fail_after_units: int | None = None,
        lose_answer_of_unit: int | None = None,
        unit_size: int = 1000,
        page_size: int = 2,
        outage: dict[str, int] | None = None,
    ) -> None:
        """``write`` sends operations in units of ``unit_size`` (a hook's change sets).

        :param fail_after_units: units after this many raise before writing (a worker
            killed between units).
        :param lose_answer_of_unit: that unit (1-based) is applied, then the stream raises
            (the service did the work but the answer never arrived).
        :param outage: writes of these refs answer this HTTP status (what a hook returns
            once its retries are spent, e.g. 503); a test empties it when the service heals."""
        self.system = system
        self.tables = tables
        self.writes: list[WriteOperation] = []
        self.units = 0
        self.unit_size = unit_size
        self.fail_after_units = fail_after_units
        self.lose_answer_of_unit = lose_answer_of_unit
        self.page_size = page_size  # small by default so tests exercise paging
        self.reads: list[tuple[str, str | None]] = []
        self.outage = outage if outage is not None else {}

    # reading ------------------------------------------------------------------------------
    def iter_pages(
        self,
        entity_set: str,
        *,
        select: list[str],
        filter: str | None = None,
        orderby: str | None = None,
        companies: list[str] | None = None,
        page_size: int | None = None,
    ) -> Any:
        table = self.tables[entity_set]
        self.reads.append((entity_set, filter))
        condition = _Filter(filter) if filter else None
        rows = []
        for row in table.rows:
            if (
                table.company_specific
                and companies
                and row.get("dataAreaId", "").lower() not in {c.lower() for c in companies}
            ):
                continue
            if condition is None or condition.matches(row):
                rows.append(row)
        if not rows:
            yield pd.DataFrame({c: pd.Series([], dtype=object) for c in select})
            return
        size = page_size or self.page_size
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            yield pd.DataFrame({c: [r.get(c) for r in chunk] for c in select}, columns=select)

    def get_metadata(self) -> str:
        raise NotImplementedError("use tests.unit.sync.fixtures.csdl_for for metadata tests")

    # writing ------------------------------------------------------------------------------
    def _find(self, table: MemoryTable, key: dict[str, Any]) -> dict[str, Any] | None:
        for row in table.rows:
            if all(str(row.get(k, "")).lower() == str(v).lower() for k, v in key.items()):
                return row
        return None

    def _apply_body(self, table: MemoryTable, row: dict[str, Any], body: dict[str, Any]) -> str | None:
        for name, value in body.items():
            if name.endswith("@odata.bind"):
                navigation = name[: -len("@odata.bind")]
                if navigation not in table.lookups and navigation != "ownerid":
                    return f"undeclared navigation property {navigation!r}"
                if navigation == "ownerid":
                    continue
                column, target_set = table.lookups[navigation]
                match = re.fullmatch(r"/(\w+)\(([0-9a-fA-F-]{36})\)", str(value))
                if not match or match.group(1) != target_set:
                    return f"{navigation} must bind to {target_set}, got {value!r}"
                target = self.tables[target_set]
                primary = target.key[0]
                if self._find(target, {primary: match.group(2)}) is None:
                    return f"{target_set}({match.group(2)}) does not exist"
                row[f"_{column}_value"] = match.group(2).lower()
                continue
            if name in table.read_only:
                return f"The property '{name}' is read-only"
            if table.fields is not None and name not in table.fields and name not in table.key:
                return f"The property '{name}' does not exist on type '{self.system}'"
            row[name] = copy.deepcopy(value)
        return None

    def _write_one(self, operation: WriteOperation) -> WriteOutcome:
        table = self.tables[operation.entity_set]
        key = dict(operation.key)
        ref = operation.ref
        if ref in self.outage:
            return WriteOutcome(ref, False, self.outage[ref], message="Service Unavailable")
        if operation.kind == WriteKind.CREATE:
            if self.system == "fno" and set(key) != set(table.key):
                return WriteOutcome(ref, False, 400, message="every key field is required")
            if self._find(table, key) is not None:
                if self.system == "dataverse":
                    return WriteOutcome(
                        ref, False, 412, "0x80040237", "A record with matching key values already exists."
                    )
                return WriteOutcome(
                    ref, False, 500, None, "Write failed for table row. Infolog: The record already exists."
                )
            row = dict(key)
            problem = self._apply_body(table, row, dict(operation.body))
            if problem:
                return WriteOutcome(ref, False, 400, message=problem)
            table.rows.append(row)
            return WriteOutcome(
                ref, True, 201 if self.system == "fno" else 204, entity_id=str(key.get(table.key[0]))
            )
        if operation.kind == WriteKind.UPDATE:
            row = self._find(table, key)
            if row is None:
                message = (
                    "No resources were found when selecting for update."
                    if self.system == "fno"
                    else "Not found"
                )
                return WriteOutcome(ref, False, 404, message=message)
            candidate = dict(row)
            problem = self._apply_body(table, candidate, dict(operation.body))
            if problem:
                return WriteOutcome(ref, False, 400, message=problem)
            row.update(candidate)
            return WriteOutcome(ref, True, 204)
        return WriteOutcome(ref, False, 405, message=f"{operation.kind} not supported by MemoryService")

    def write(
        self,
        operations: Any,
        *,
        batch_size: int | None = None,
        bulk: bool = True,
        expected: int | None = None,
    ) -> Any:
        """Outcomes unit by unit, like the hooks: operations are consumed lazily."""
        unit: list[WriteOperation] = []
        for operation in operations:
            unit.append(operation)
            if len(unit) >= (batch_size or self.unit_size):
                yield from self._write_unit(unit)
                unit = []
        if unit:
            yield from self._write_unit(unit)

    def _write_unit(self, operations: list[WriteOperation]) -> Any:
        self.units += 1
        if self.fail_after_units is not None and self.units > self.fail_after_units:
            raise ConnectionError("simulated crash between units")
        if self.units == self.lose_answer_of_unit:
            for operation in operations:
                self.writes.append(operation)
                self._write_one(operation)
            raise ConnectionError("simulated connection reset after the service applied the unit")
        outcomes = []
        for operation in operations:
            self.writes.append(operation)
            outcomes.append(self._write_one(operation))
        return outcomes


def guid() -> str:
    return str(uuid.uuid4())
