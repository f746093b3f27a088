"""The SQLite store: typed columns, keys, transactions with savepoints, bulk inserts."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from emulators.schema.model import AlternateKey, Catalog, EdmType, EnumType, Field, Lookup, Table
from emulators.store import KeyExists, NotFound, Store, StoreBusy, UnknownColumn

if TYPE_CHECKING:
    from pathlib import Path


def dataverse_catalog(extra_field: Field | None = None) -> Catalog:
    catalog = Catalog(service="dataverse")
    fields = [
        Field("accountid", EdmType.GUID),
        Field("name", EdmType.STRING, max_length=160),
        Field("accountnumber", EdmType.STRING, max_length=20),
        Field("creditlimit", EdmType.DECIMAL),
        Field("donotemail", EdmType.BOOLEAN),
        Field("numberofemployees", EdmType.INT32),
        Field("createdon", EdmType.DATETIMEOFFSET),
    ]
    if extra_field is not None:
        fields.append(extra_field)
    catalog.add(
        Table(
            logical_name="account",
            entity_set="accounts",
            key=("accountid",),
            fields=tuple(fields),
            alternate_keys=(AlternateKey("accountnumber_key", ("accountnumber",)),),
            lookups=(Lookup("parentaccountid", {"parentaccountid": "accounts"}),),
        )
    )
    catalog.add(
        Table(
            logical_name="salesorder",
            entity_set="salesorders",
            key=("salesorderid",),
            fields=(Field("salesorderid", EdmType.GUID), Field("name", EdmType.STRING)),
            lookups=(
                Lookup("customerid", {"customerid_account": "accounts", "customerid_contact": "contacts"}),
            ),
        )
    )
    return catalog


def fno_catalog() -> Catalog:
    catalog = Catalog(service="fno", enums={"NoYes": EnumType("NoYes", {"No": 0, "Yes": 1})})
    catalog.add(
        Table(
            logical_name="CustomerV3",
            entity_set="CustomersV3",
            key=("dataAreaId", "CustomerAccount"),
            fields=(
                Field("dataAreaId", EdmType.STRING, max_length=4),
                Field("CustomerAccount", EdmType.STRING, max_length=20),
                Field("OrganizationName", EdmType.STRING),
                Field("IsExternallyMaintained", EdmType.ENUM, enum_type="NoYes"),
            ),
            alternate_keys=(AlternateKey("ByName", ("OrganizationName",)),),
            company_specific=True,
        )
    )
    return catalog


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "dataverse.sqlite", dataverse_catalog())
    yield store
    store.close()


def test_columns_follow_the_catalog_including_lookups(store: Store) -> None:
    assert store.columns("accounts")[-1] == "parentaccountid"
    # A polymorphic lookup also records the target entity set; a single-target one does not.
    assert store.columns("salesorders") == ("salesorderid", "name", "customerid", "customerid__set")
    assert "parentaccountid__set" not in store.columns("accounts")


def test_values_are_stored_in_sortable_typed_form(store: Store) -> None:
    account_id = uuid.UUID("6E4F0A52-0000-4000-8000-000000000001")
    created = datetime(2026, 3, 1, 10, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    row = store.insert(
        "accounts",
        {
            "accountid": account_id,
            "name": "Contoso",
            "creditlimit": Decimal("1500.25"),
            "donotemail": True,
            "createdon": created,
        },
    )
    assert row["accountid"] == str(account_id).lower()
    assert row["createdon"] == "2026-03-01T08:30:15Z"  # UTC, second precision
    raw = store.execute("SELECT donotemail, creditlimit, typeof(creditlimit) FROM accounts")[0]
    assert tuple(raw) == (1, 1500.25, "real")
    fetched = store.get("accounts", str(account_id).upper())
    assert fetched is not None
    assert fetched["donotemail"] is True
    assert fetched["name"] == "Contoso"
    assert fetched["numberofemployees"] is None


def test_single_guid_key_is_generated_when_missing(store: Store) -> None:
    row = store.insert("accounts", {"name": "No id"})
    assert uuid.UUID(row["accountid"]).version == 4
    assert store.get("accounts", row["accountid"]) is not None


def test_duplicate_primary_and_alternate_keys_raise_key_exists(store: Store) -> None:
    first = store.insert("accounts", {"name": "A", "accountnumber": "ACC-1"})
    with pytest.raises(KeyExists) as primary:
        store.insert("accounts", {"accountid": first["accountid"], "name": "B"})
    assert primary.value.key_name == "primary"
    with pytest.raises(KeyExists) as alternate:
        store.insert("accounts", {"name": "C", "accountnumber": "ACC-1"})
    assert alternate.value.key_name == "accountnumber_key"
    assert alternate.value.key == {"accountnumber": "ACC-1"}
    assert store.count("accounts") == 1


def test_unknown_columns_are_refused(store: Store) -> None:
    with pytest.raises(UnknownColumn):
        store.insert("accounts", {"name": "A", "nonsense": 1})


def test_update_delete_and_not_found(store: Store) -> None:
    row = store.insert("accounts", {"name": "Before"})
    updated = store.update("accounts", row["accountid"], {"name": "After", "donotemail": False})
    assert updated["name"] == "After"
    assert updated["donotemail"] is False
    missing = str(uuid.uuid4())
    with pytest.raises(NotFound):
        store.update("accounts", missing, {"name": "x"})
    with pytest.raises(NotFound):
        store.delete("accounts", missing)
    store.delete("accounts", row["accountid"])
    assert store.get("accounts", row["accountid"]) is None


def test_composite_keys_accept_tuple_or_mapping(tmp_path: Path) -> None:
    store = Store(tmp_path / "fno.sqlite", fno_catalog())
    store.insert(
        "CustomersV3", {"dataAreaId": "usmf", "CustomerAccount": "US-001", "IsExternallyMaintained": 1}
    )
    store.insert("CustomersV3", {"dataAreaId": "demf", "CustomerAccount": "US-001"})
    # F&O secondary indexes are not unique.
    store.insert("CustomersV3", {"dataAreaId": "demf", "CustomerAccount": "DE-002"})
    row = store.get("CustomersV3", ("usmf", "US-001"))
    assert row is not None
    assert row["IsExternallyMaintained"] == 1
    assert store.get("CustomersV3", {"dataAreaId": "demf", "CustomerAccount": "US-001"}) is not None
    with pytest.raises(KeyExists):
        store.insert("CustomersV3", {"dataAreaId": "usmf", "CustomerAccount": "US-001"})
    with pytest.raises(Exception, match="composite key"):
        store.get("CustomersV3", "US-001")
    store.close()


def test_query_filters_orders_pages_and_projects(store: Store) -> None:
    for i in range(10):
        store.insert("accounts", {"name": f"acc{i % 3}", "numberofemployees": i})
    rows = store.query(
        "accounts",
        '"numberofemployees" >= ?',
        [2],
        order_by='"name" DESC',
        limit=3,
        offset=1,
        columns=["name", "numberofemployees", "__rowid"],
    )
    assert [(r["name"], r["numberofemployees"]) for r in rows] == [("acc2", 5), ("acc2", 8), ("acc1", 4)]
    assert set(rows[0]) == {"name", "numberofemployees", "__rowid"}
    assert store.count("accounts", '"name" = ?', ["acc0"]) == 4
    assert [r["numberofemployees"] for r in store.find_by("accounts", {"name": "acc1"})] == [1, 4, 7]
    assert len(store.find_by("accounts", {"accountnumber": None})) == 10
    with pytest.raises(UnknownColumn):
        store.query("accounts", columns=["bogus"])


def test_insertion_order_is_the_default_order(store: Store) -> None:
    names = [f"n{i}" for i in (5, 1, 9, 3)]
    for name in names:
        store.insert("accounts", {"name": name})
    assert [r["name"] for r in store.query("accounts")] == names


def failing_change_set(store: Store) -> None:
    with store.transaction():
        store.insert("accounts", {"name": "one"})
        store.insert("accounts", {"name": "two"})
        raise RuntimeError("change set failed")


def test_transaction_rolls_back_everything_on_error(store: Store) -> None:
    with pytest.raises(RuntimeError):
        failing_change_set(store)
    assert store.count("accounts") == 0
    with store.transaction():
        store.insert("accounts", {"name": "kept"})
    assert store.count("accounts") == 1


def insert_then_duplicate(store: Store, inserted: list[str]) -> None:
    with store.transaction():
        inserted.append(store.insert("accounts", {"name": "inner", "accountnumber": "X"})["accountid"])
        store.insert("accounts", {"name": "dup", "accountnumber": "X"})


def test_nested_transaction_is_a_savepoint(store: Store) -> None:
    inserted: list[str] = []
    with store.transaction():
        store.insert("accounts", {"name": "outer"})
        with pytest.raises(KeyExists):
            insert_then_duplicate(store, inserted)
        assert store.get("accounts", inserted[0]) is None  # the inner part rolled back alone
        store.insert("accounts", {"name": "after"})
    assert sorted(r["name"] for r in store.query("accounts")) == ["after", "outer"]
    assert not store.in_transaction


def test_insert_many_is_atomic_and_fast_path(store: Store) -> None:
    rows = [{"name": f"bulk{i}", "accountnumber": f"N{i}"} for i in range(2500)]
    assert store.insert_many("accounts", rows, chunk_size=1000) == 2500
    assert store.count("accounts") == 2500
    duplicate = [{"name": "x", "accountnumber": "NEW-1"}, {"name": "y", "accountnumber": "N7"}]
    with pytest.raises(KeyExists):
        store.insert_many("accounts", duplicate)
    assert store.count("accounts") == 2500  # neither row of the failed bulk insert stayed
    assert not store.find_by("accounts", {"accountnumber": "NEW-1"})


def test_data_survives_reopen_and_reset_clears_it(tmp_path: Path) -> None:
    path = tmp_path / "dv.sqlite"
    first = Store(path, dataverse_catalog())
    first.insert("accounts", {"name": "persisted"})
    first.close()
    second = Store(path, dataverse_catalog())
    assert second.counts() == {"accounts": 1, "salesorders": 0}
    second.reset()
    assert second.counts() == {"accounts": 0, "salesorders": 0}
    second.close()


def test_new_catalog_fields_are_added_to_existing_files(tmp_path: Path) -> None:
    path = tmp_path / "dv.sqlite"
    Store(path, dataverse_catalog()).close()
    grown = Store(path, dataverse_catalog(Field("telephone1", EdmType.STRING)))
    row = grown.insert("accounts", {"name": "n", "telephone1": "555"})
    assert grown.get("accounts", row["accountid"])["telephone1"] == "555"  # type: ignore[index]
    grown.close()


def test_wal_mode_for_file_databases(store: Store) -> None:
    assert store.execute("PRAGMA journal_mode")[0][0] == "wal"


def test_atomic_serialises_transactions_across_awaits(store: Store) -> None:
    order: list[str] = []

    async def change_set(name: str, fail: bool) -> None:
        async with store.atomic():
            store.insert("accounts", {"name": f"{name}-1"})
            order.append(f"{name} in")
            await asyncio.sleep(0.01)  # another request runs here
            if fail:
                raise ValueError(name)
            store.insert("accounts", {"name": f"{name}-2"})
            order.append(f"{name} out")

    async def main() -> None:
        results = await asyncio.gather(change_set("a", True), change_set("b", False), return_exceptions=True)
        assert isinstance(results[0], ValueError)

    asyncio.run(main())
    assert order == ["a in", "b in", "b out"]  # b waited for a's change set to finish
    assert sorted(r["name"] for r in store.query("accounts")) == ["b-1", "b-2"]


def test_writing_into_another_tasks_open_transaction_is_refused(store: Store) -> None:
    async def holder(started: asyncio.Event, release: asyncio.Event) -> None:
        with store.transaction():
            store.insert("accounts", {"name": "held"})
            started.set()
            await release.wait()

    async def main() -> None:
        started, release = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(holder(started, release))
        await started.wait()
        with pytest.raises(StoreBusy):
            store.insert("accounts", {"name": "intruder"})
        release.set()
        await task

    asyncio.run(main())
    assert [r["name"] for r in store.query("accounts")] == ["held"]


def test_reading_raw_sqlite_sees_committed_rows(tmp_path: Path) -> None:
    path = tmp_path / "dv.sqlite"
    store = Store(path, dataverse_catalog())
    store.insert("accounts", {"name": "visible"})
    other = sqlite3.connect(path)
    assert other.execute("SELECT name FROM accounts").fetchall() == [("visible",)]
    other.close()
    store.close()


def test_lookup_declared_as_a_field_still_gets_its_set_column(tmp_path: Path) -> None:
    catalog = Catalog(service="dataverse")
    catalog.add(
        Table(
            logical_name="contact",
            entity_set="contacts",
            key=("contactid",),
            fields=(Field("contactid", EdmType.GUID), Field("parentcustomerid", EdmType.GUID)),
            lookups=(Lookup("parentcustomerid", {"a": "accounts", "c": "contacts"}),),
        )
    )
    store = Store(tmp_path / "c.sqlite", catalog)
    assert store.columns("contacts") == ("contactid", "parentcustomerid", "parentcustomerid__set")
    store.close()


def test_bulk_conflicts_name_the_key(store: Store) -> None:
    store.insert("accounts", {"name": "existing", "accountnumber": "TAKEN"})
    with pytest.raises(KeyExists) as against_existing:
        store.insert_many("accounts", [{"name": "a", "accountnumber": "FREE"}, {"accountnumber": "TAKEN"}])
    assert (against_existing.value.key_name, against_existing.value.key) == (
        "accountnumber_key",
        {"accountnumber": "TAKEN"},
    )
    same_id = str(uuid.uuid4())
    with pytest.raises(KeyExists) as within_batch:
        store.insert_many("accounts", [{"accountid": same_id}, {"accountid": same_id.upper()}])
    assert (within_batch.value.key_name, within_batch.value.key) == ("primary", {"accountid": same_id})
    assert store.count("accounts") == 1


def test_bulk_rows_may_name_different_columns(store: Store) -> None:
    rows = [{"name": "a"}, {"name": "b", "donotemail": True}, {"numberofemployees": 3.0}, {"name": "d"}]
    assert store.insert_many("accounts", rows) == 4
    stored = store.query("accounts", columns=["name", "donotemail", "numberofemployees"])
    assert stored == [
        {"name": "a", "donotemail": None, "numberofemployees": None},
        {"name": "b", "donotemail": True, "numberofemployees": None},
        {"name": None, "donotemail": None, "numberofemployees": 3},
        {"name": "d", "donotemail": None, "numberofemployees": None},
    ]


def test_update_into_a_taken_alternate_key(store: Store) -> None:
    store.insert("accounts", {"name": "a", "accountnumber": "ONE"})
    other = store.insert("accounts", {"name": "b", "accountnumber": "TWO"})
    with pytest.raises(KeyExists) as taken:
        store.update("accounts", other["accountid"], {"accountnumber": "ONE"})
    assert taken.value.key_name == "accountnumber_key"
