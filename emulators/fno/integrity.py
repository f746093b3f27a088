"""F&O's integrity rules on a write: the company exists, references name existing rows
(validateField), and a new customer's party gets the next number of the party number
sequence. Used by `FnoService` for creates and updates alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emulators.fno.entities import field_label
from emulators.store import quote as sql_quote

if TYPE_CHECKING:
    from emulators.fno.entities import EntityView
    from emulators.schema.model import Reference
    from emulators.store import Store

#: Customers (V2 and V3 share it) get a party from the party number sequence, format #########.
PARTY_STORAGE = "CustomersV3"
PARTY_NUMBER_DIGITS = 9
#: The sequence's SQL: the numeric party numbers (a literal, so SQLite can use the partial index).
PARTY_SEQUENCE = f"CAST({sql_quote('PartyNumber')} AS INTEGER)"
PARTY_SEQUENCE_ROWS = f"{sql_quote('PartyNumber')} GLOB '{'[0-9]' * PARTY_NUMBER_DIGITS}'"


class Integrity:
    """The checks and numbers that read other rows of the store."""

    def __init__(self, store: Store, views: dict[str, EntityView]) -> None:
        self.store = store
        self.views = views
        # The party number sequence is read on every customer create: without this index it
        # scanned every customer, and a 100,000-row load spent 95 % of the F&O emulator's time
        # there. The query below must repeat the index's expression and WHERE literally.
        store.execute_write(
            f"CREATE INDEX IF NOT EXISTS {sql_quote(f'ix_{PARTY_STORAGE}_party_number_sequence')} "
            f"ON {sql_quote(PARTY_STORAGE)} ({PARTY_SEQUENCE}) WHERE {PARTY_SEQUENCE_ROWS}"
        )
        self._index_reference_targets()

    def _index_reference_targets(self) -> None:
        """Indexes for the probes of `_reference_exists` whose target is not a key (a contact
        person's customer party): without them each create scanned the customers twice."""
        for view in self.views.values():
            for reference in view.table.references:
                target = self.views[reference.entity_set]
                company = ["dataAreaId"] if target.company_specific else []
                columns = [*company, *reference.target_fields]
                if tuple(columns) == self.store.table(target.storage).key[: len(columns)]:
                    continue  # the key's unique index serves the exact probe
                name = f"ix_{target.storage}_ref_{'_'.join(reference.target_fields)}"
                exact = ", ".join(sql_quote(c) for c in columns)
                loose = ", ".join(
                    [
                        *map(sql_quote, company),
                        *(f"{sql_quote(c)} COLLATE NOCASE" for c in reference.target_fields),
                    ]
                )
                for suffix, spec in (("", exact), ("_nocase", loose)):
                    self.store.execute_write(
                        f"CREATE INDEX IF NOT EXISTS {sql_quote(name + suffix)} "
                        f"ON {sql_quote(target.storage)} ({spec})"
                    )

    def company_exists(self, company: str) -> bool:
        rows = self.store.execute(
            f"SELECT 1 FROM {sql_quote('LegalEntities')} "
            f"WHERE {sql_quote('LegalEntityId')} = ? COLLATE NOCASE LIMIT 1",
            [company],
        )
        return bool(rows)

    def reference_lines(self, view: EntityView, row: dict[str, Any], changed: set[str]) -> list[str]:
        """validateField: every reference whose fields were written must name an existing row."""
        lines: list[str] = []
        for reference in view.table.references:
            if not changed.intersection(reference.fields):
                continue
            values = [row.get(name) for name in reference.fields]
            if any(value is None or value == "" for value in values):
                continue
            if self._reference_exists(reference, row, values):
                continue
            lines += self._reference_failure(view, reference, values)
        return lines

    def _reference_exists(self, reference: Reference, row: dict[str, Any], values: list[Any]) -> bool:
        target = self.views[reference.entity_set]
        terms = [target.predicate] if target.predicate else []
        params: list[Any] = []
        if target.company_specific:
            terms.append(f"{sql_quote('dataAreaId')} = ?")
            params.append(row.get("dataAreaId"))
        exact = [f"{sql_quote(name)} = ?" for name in reference.target_fields]
        converted = [
            self.store.to_storage(target.storage, name, value)
            for name, value in zip(reference.target_fields, values, strict=True)
        ]
        where = " AND ".join(f"({t})" for t in [*terms, *exact])
        sql = f"SELECT 1 FROM {sql_quote(target.storage)} WHERE {where} LIMIT 1"
        if self.store.execute(sql, params + converted):
            return True
        # F&O compares case-insensitively; the exact probe above uses the key index.
        loose = [f"{sql_quote(name)} = ? COLLATE NOCASE" for name in reference.target_fields]
        where = " AND ".join(f"({t})" for t in [*terms, *loose])
        sql = f"SELECT 1 FROM {sql_quote(target.storage)} WHERE {where} LIMIT 1"
        return bool(self.store.execute(sql, params + converted))

    def _reference_failure(self, view: EntityView, reference: Reference, values: list[Any]) -> list[str]:
        first = reference.fields[0]
        check = f"Warning: validateField failed on field '{view.names.aot_name}.{first}'."
        if len(reference.fields) == 1 and view.entity_set != "CDSContactPersons":
            target = self.views[reference.entity_set].names.table_label
            return [
                f"Warning: The value '{values[0]}' in field '{field_label(first)}' is not found in the "
                f"related table '{target}'.",
                check,
            ]
        # Several fields (a line's header) or a rule beyond a plain relation: the catalogue's text.
        shown = ", ".join(str(v) for v in values)
        return [f"Warning: {reference.message.format(shown)}", check]

    def next_party_number(self) -> str:
        """The party number sequence (global, like DirPartyTable): a customer created without
        ``PartyNumber`` becomes a new party numbered after the highest sequence number so far,
        unrelated to its customer account."""
        found = self.store.execute(
            f"SELECT MAX({PARTY_SEQUENCE}) FROM {sql_quote(PARTY_STORAGE)} WHERE {PARTY_SEQUENCE_ROWS}"
        )
        return f"{int(found[0][0] or 0) + 1:0{PARTY_NUMBER_DIGITS}d}"
