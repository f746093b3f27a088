"""The party number sequence reads one index entry, not every customer."""

from __future__ import annotations

from emulators.fno.integrity import PARTY_SEQUENCE, PARTY_SEQUENCE_ROWS, PARTY_STORAGE, Integrity
from emulators.server import load_catalog
from emulators.store import Store
from emulators.store import quote as sql_quote


def test_the_next_party_number_follows_the_highest_numeric_one_through_the_index() -> None:
    store = Store(":memory:", load_catalog("fno"))
    integrity = Integrity(store, {})
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
