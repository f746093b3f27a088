"""The integrity rules read index entries, not every customer: the party number sequence and
a contact person's customer party."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emulators.fno.entities import build_views
from emulators.fno.integrity import PARTY_SEQUENCE, PARTY_SEQUENCE_ROWS, PARTY_STORAGE, Integrity
from emulators.server import load_catalog
from emulators.store import Store
from emulators.store import quote as sql_quote

if TYPE_CHECKING:
    import pytest


def test_the_next_party_number_follows_the_highest_numeric_one_through_the_index() -> None:
    store = Store(":memory:", load_catalog("fno"))
    integrity = Integrity(store, build_views(store.catalog))
    assert integrity.next_party_number() == "000000001"
    with store.transaction():
        for account, party in [("C1", "000000041"), ("C2", "P-000000999"), ("C3", "000000007"), ("C4", None)]:
            store.insert(
                PARTY_STORAGE, {"dataAreaId": "usmf", "CustomerAccount": account, "PartyNumber": party}
            )
    assert integrity.next_party_number() == "000000042"  # "P-…" is not of the sequence's format
    plan = store.execute(
        f"EXPLAIN QUERY PLAN SELECT MAX({PARTY_SEQUENCE}) FROM {sql_quote(PARTY_STORAGE)} "
        f"WHERE {PARTY_SEQUENCE_ROWS}"
    )
    assert [row["detail"] for row in plan] == [
        f"SEARCH {PARTY_STORAGE} USING INDEX ix_{PARTY_STORAGE}_party_number_sequence"
    ]


def test_a_contact_persons_party_is_found_through_an_index_exactly_and_case_insensitively(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """F&O compares case-insensitively: `P-7` finds `p-7`. Both probes of a missing party (exact,
    then case-insensitive) search an index of the customers instead of scanning them."""
    store = Store(":memory:", load_catalog("fno"))
    views = build_views(store.catalog)
    integrity = Integrity(store, views)
    with store.transaction():
        store.insert(PARTY_STORAGE, {"dataAreaId": "usmf", "CustomerAccount": "C1", "PartyNumber": "p-7"})
    view = views["CDSContactPersons"]
    person = {"dataAreaId": "usmf", "ContactPersonPartyNumber": "CP1"}
    changed = {"AssociatedPartyNumber"}
    assert integrity.reference_lines(view, {**person, "AssociatedPartyNumber": "P-7"}, changed) == []
    probes: list[tuple[str, list[Any]]] = []
    execute = store.execute
    monkeypatch.setattr(
        store, "execute", lambda sql, params=(): probes.append((sql, list(params))) or execute(sql, params)
    )
    assert integrity.reference_lines(view, {**person, "AssociatedPartyNumber": "P-8"}, changed) == [
        "Warning: The associated party P-8 is not a customer of this company.",
        "Warning: validateField failed on field 'SmmContactPersonCDSEntity.AssociatedPartyNumber'.",
    ]
    plans = [
        [row["detail"] for row in execute(f"EXPLAIN QUERY PLAN {sql}", params)] for sql, params in probes
    ]
    index = f"ix_{PARTY_STORAGE}_ref_PartyNumber"
    assert plans == [
        [f"SEARCH {PARTY_STORAGE} USING COVERING INDEX {index} (dataAreaId=? AND PartyNumber=?)"],
        [f"SEARCH {PARTY_STORAGE} USING COVERING INDEX {index}_nocase (dataAreaId=? AND PartyNumber=?)"],
    ]
