"""Hook writes against the emulator service apps over verified HTTPS.

One bad record inside a change set or a bulk message (its outcome carries the service's
status and message, every other record lands), the ``$batch`` fallback of tables without
``CreateMultiple``/``UpsertMultiple``, and key escaping end to end on both services.

The module has its own demo-seeded instance so its writes never reach the shared one.
"""

from __future__ import annotations

import ssl
import threading
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx
import pandas as pd
import pytest

from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook, WriteKind, WriteOperation
from prospect_to_cash.hooks.dataverse import BulkSupport
from prospect_to_cash.hooks.odata import format_literal
from tests.conftest import TEST_CONFIG
from tests.support.connections import connect
from tests.support.emulators import Oracle, start_emulators

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from prospect_to_cash.hooks import WriteOutcome
    from tests.support.emulators import EmulatorEndpoints, RunningEmulators

pytestmark = pytest.mark.integration

CUSTOMER_GROUP_MISSING = "The value '99' in field 'Customer group' is not found in the related table"
STRING_TOO_LONG = "0x80044331"
OPTION_OUT_OF_RANGE = "0x8004431a"


# ---------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulators]:
    instance = start_emulators(
        tmp_path_factory.mktemp("hooks-writes") / "state", "--seed", "demo", config=TEST_CONFIG
    )
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def endpoints(running: RunningEmulators) -> EmulatorEndpoints:
    return running.endpoints


class RecordingTransport(httpx.BaseTransport):
    """A verified HTTPS transport that remembers method, URL and status of every request."""

    def __init__(self, ca_bundle: str) -> None:
        self._inner = httpx.HTTPTransport(verify=ssl.create_default_context(cafile=ca_bundle))
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        with self._lock:
            self.calls.append((request.method, urlsplit(str(request.url)).path, response.status_code))
        return response

    def close(self) -> None:
        self._inner.close()

    def posts_to(self, suffix: str) -> list[int]:
        return [status for method, path, status in self.calls if method == "POST" and path.endswith(suffix)]


@pytest.fixture
def dataverse(monkeypatch: pytest.MonkeyPatch, endpoints: EmulatorEndpoints) -> Iterator[DataverseHook]:
    transport = RecordingTransport(endpoints.ca_bundle)
    with DataverseHook(connect(monkeypatch, endpoints, "dataverse"), transport=transport) as hook:
        yield hook


@pytest.fixture
def fno(monkeypatch: pytest.MonkeyPatch, endpoints: EmulatorEndpoints) -> Iterator[FinanceOperationsHook]:
    with FinanceOperationsHook(connect(monkeypatch, endpoints, "fno")) as hook:
        yield hook


def recorded(hook: DataverseHook | FinanceOperationsHook) -> RecordingTransport:
    transport = hook.transport
    assert isinstance(transport, RecordingTransport)
    return transport


def by_ref(outcomes: Iterable[WriteOutcome], operations: list[WriteOperation]) -> dict[str, WriteOutcome]:
    """Outcomes keyed by ref, after checking there is exactly one per operation."""
    listed = list(outcomes)
    refs = [outcome.ref for outcome in listed]
    assert sorted(refs) == sorted(op.ref for op in operations), "one outcome per operation"
    return {outcome.ref: outcome for outcome in listed}


def tag() -> str:
    return uuid.uuid4().hex[:6].upper()


def fno_key_path(entity_set: str, company: str, account: str, *, twice: str = "%/\\+") -> str:
    """The key URL built by hand (not by the hook): ``twice`` are the characters encoded twice."""
    literal = format_literal(account)
    for character in twice:
        literal = literal.replace(character, f"%{ord(character):02X}")
    key = f"dataAreaId='{company}',CustomerAccount={quote(literal, safe=chr(39))}"
    return f"{entity_set}({key})?cross-company=true"


# ---------------------------------------------------------------------------- F&O change sets


def customer_create(account: str, ref: str, **body: Any) -> WriteOperation:
    return WriteOperation(
        WriteKind.CREATE,
        "CustomersV3",
        {"dataAreaId": "usmf", "CustomerAccount": account},
        {"CustomerGroupId": "10", "OrganizationName": f"{account} Ltd", **body},
        ref=ref,
    )


def test_fno_bad_records_in_a_change_set_fail_alone(fno: FinanceOperationsHook, fno_oracle: Oracle) -> None:
    run = tag()
    operations = [customer_create(f"HW-{run}-{n:02d}", f"c{n}") for n in range(12)]
    operations[3] = customer_create(f"HW-{run}-03", "c3", CustomerGroupId="99")
    operations[8] = customer_create(f"HW-{run}-08", "c8", CustomerGroupId="")  # mandatory field blank

    outcomes = by_ref(fno.write(operations, batch_size=12), operations)

    unknown_group, blank_group = outcomes["c3"], outcomes["c8"]
    assert not unknown_group.ok
    assert unknown_group.status == 400
    assert CUSTOMER_GROUP_MISSING in (unknown_group.message or "")
    assert not blank_group.ok
    assert blank_group.status == 400
    assert "Field 'Customer group' must be filled in." in (blank_group.message or "")
    good = [ref for ref in outcomes if ref not in ("c3", "c8")]
    assert all(outcomes[ref].ok and outcomes[ref].status == 201 for ref in good)
    landed = {
        row["CustomerAccount"]
        for row in fno_oracle.rows(
            f"CustomersV3?cross-company=true&$select=CustomerAccount&$filter=CustomerAccount eq 'HW-{run}-*'"
        )
    }
    assert landed == {f"HW-{run}-{n:02d}" for n in range(12)} - {f"HW-{run}-03", f"HW-{run}-08"}


def test_fno_updates_and_deletes_by_full_key(fno: FinanceOperationsHook, fno_oracle: Oracle) -> None:
    run = tag()
    accounts = [f"UD-{run}-{n}" for n in range(4)]
    creates = [customer_create(account, f"c-{account}") for account in accounts]
    assert all(outcome.ok for outcome in fno.write(creates))
    changes = [
        WriteOperation(
            WriteKind.UPDATE,
            "CustomersV3",
            {"dataAreaId": "usmf", "CustomerAccount": accounts[0]},
            {"PrimaryContactPhone": "+1 555 0199"},
            ref="update",
        ),
        WriteOperation(
            WriteKind.DELETE,
            "CustomersV3",
            {"dataAreaId": "usmf", "CustomerAccount": accounts[1]},
            ref="delete",
        ),
        WriteOperation(
            WriteKind.UPDATE,
            "CustomersV3",
            {"dataAreaId": "usmf", "CustomerAccount": f"UD-{run}-missing"},
            {"PrimaryContactPhone": "x"},
            ref="missing",
        ),
        WriteOperation(
            WriteKind.UPSERT, "CustomersV3", {"dataAreaId": "usmf", "CustomerAccount": "x"}, ref="upsert"
        ),
    ]
    outcomes = by_ref(fno.write(changes), changes)
    assert outcomes["update"].ok
    assert outcomes["delete"].ok
    assert not outcomes["missing"].ok
    assert outcomes["missing"].status == 400
    assert "No resources were found when selecting for update" in (outcomes["missing"].message or "")
    assert outcomes["upsert"].error_code == "unsupported_operation"
    assert fno_oracle.get(fno_key_path("CustomersV3", "usmf", accounts[0])).json()["PrimaryContactPhone"] == (
        "+1 555 0199"
    )
    assert fno_oracle.get(fno_key_path("CustomersV3", "usmf", accounts[1])).status_code == 404


# ---------------------------------------------------------------------------- Dataverse change sets


def account_upsert(ref: str, **body: Any) -> WriteOperation:
    return WriteOperation(
        WriteKind.UPSERT,
        "accounts",
        {"accountid": str(uuid.uuid4())},
        {"name": f"Hook {ref}", **body},
        ref=ref,
    )


def test_dataverse_bad_records_in_a_change_set_fail_alone(
    dataverse: DataverseHook, dv_oracle: Oracle
) -> None:
    operations = [account_upsert(f"a{n}") for n in range(10)]
    operations[2] = account_upsert("a2", customertypecode=99)
    operations[7] = account_upsert("a7", name="N" * 161)

    outcomes = by_ref(dataverse.write(operations, batch_size=10), operations)

    invalid_option, too_long = outcomes["a2"], outcomes["a7"]
    assert (invalid_option.ok, invalid_option.status, invalid_option.error_code) == (
        False,
        400,
        OPTION_OUT_OF_RANGE,
    )
    assert "The value 99 of 'customertypecode'" in (invalid_option.message or "")
    assert (too_long.ok, too_long.status, too_long.error_code) == (False, 400, STRING_TOO_LONG)
    assert "The length of the 'name' attribute of the 'account' entity exceeded" in (too_long.message or "")
    for op in operations:
        exists = dv_oracle.get(f"accounts({op.key['accountid']})?$select=name").status_code == 200
        assert exists is outcomes[op.ref].ok
        if outcomes[op.ref].ok:
            assert outcomes[op.ref].entity_id == op.key["accountid"]
    # accounts have no bulk messages: everything went through $batch
    assert recorded(dataverse).posts_to("/CreateMultiple") == []
    assert recorded(dataverse).posts_to("/UpsertMultiple") == []


def test_dataverse_creates_are_idempotent_by_the_chosen_guid(
    dataverse: DataverseHook, dv_oracle: Oracle
) -> None:
    account_id = str(uuid.uuid4())
    create = WriteOperation(
        WriteKind.CREATE, "accounts", {"accountid": account_id}, {"name": "Once"}, ref="x"
    )
    (first,) = dataverse.write([create])
    (second,) = dataverse.write([create])
    assert first.ok
    assert first.status in (201, 204)
    assert not second.ok
    assert second.status == 412  # If-None-Match: * — the row exists, nothing was inserted twice
    rows = dv_oracle.rows(f"accounts?$select=accountid&$filter=accountid eq {account_id}")
    assert len(rows) == 1


# ---------------------------------------------------------------------------- bulk messages


def product(ref: str, number: str, **body: Any) -> dict[str, Any]:
    return {"name": f"Bulk {ref}", "productnumber": number, "quantitydecimal": 2, **body}


def test_dataverse_create_multiple_with_one_bad_record(dataverse: DataverseHook, dv_oracle: Oracle) -> None:
    run = tag()
    operations = [
        WriteOperation(
            WriteKind.CREATE,
            "products",
            {"productid": str(uuid.uuid4())},
            product(f"p{n}", f"HB-{run}-{n:02d}"),
            ref=f"p{n}",
        )
        for n in range(16)
    ]
    bad = operations[11]
    operations[11] = WriteOperation(
        bad.kind, bad.entity_set, bad.key, {**bad.body, "name": "X" * 101}, ref="p11"
    )

    outcomes = by_ref(dataverse.write(operations, batch_size=16), operations)

    assert dataverse.bulk_support("products").create_multiple
    failed = outcomes["p11"]
    assert (failed.ok, failed.status, failed.error_code) == (False, 400, STRING_TOO_LONG)
    assert "'name' attribute of the 'product' entity" in (failed.message or "")
    assert all(outcome.ok for ref, outcome in outcomes.items() if ref != "p11")
    numbers = {
        row["productnumber"]
        for row in dv_oracle.rows(
            f"products?$select=productnumber&$filter=startswith(productnumber,'HB-{run}-')"
        )
    }
    assert numbers == {f"HB-{run}-{n:02d}" for n in range(16) if n != 11}
    # The bulk message carried the records (split until the bad one was alone), no $batch.
    bulk_calls = recorded(dataverse).posts_to("/products/Microsoft.Dynamics.CRM.CreateMultiple")
    assert 400 in bulk_calls
    # halving 16 records isolates the bad one: 16, 8, 4, 2 and 1 refused, their good halves landed
    assert sorted(bulk_calls) == [200] * 4 + [400] * 5
    assert recorded(dataverse).posts_to("/$batch") == []


def test_dataverse_upsert_multiple_with_one_bad_record(dataverse: DataverseHook, dv_oracle: Oracle) -> None:
    run = tag()
    existing = str(uuid.uuid4())
    (seeded,) = dataverse.write(
        [
            WriteOperation(
                WriteKind.CREATE, "products", {"productid": existing}, product("seed", f"HU-{run}-00")
            )
        ]
    )
    assert seeded.ok
    operations = [
        WriteOperation(
            WriteKind.UPSERT,
            "products",
            {"productid": existing if n == 0 else str(uuid.uuid4())},
            product(f"u{n}", f"HU-{run}-{n:02d}", price=10.0 + n),
            ref=f"u{n}",
        )
        for n in range(8)
    ]
    operations[5] = WriteOperation(
        WriteKind.UPSERT,
        "products",
        operations[5].key,
        product("u5", f"HU-{run}-05", producttypecode=42),
        ref="u5",
    )

    outcomes = by_ref(dataverse.write(operations, batch_size=8), operations)

    assert (outcomes["u5"].ok, outcomes["u5"].status, outcomes["u5"].error_code) == (
        False,
        400,
        OPTION_OUT_OF_RANGE,
    )
    assert all(outcome.ok for ref, outcome in outcomes.items() if ref != "u5")
    prices = {
        row["productnumber"]: row["price"]
        for row in dv_oracle.rows(
            f"products?$select=productnumber,price&$filter=startswith(productnumber,'HU-{run}-')"
        )
    }
    assert prices == {f"HU-{run}-{n:02d}": 10.0 + n for n in range(8) if n != 5}
    assert 200 in recorded(dataverse).posts_to("/products/Microsoft.Dynamics.CRM.UpsertMultiple")


@pytest.mark.parametrize("entity_set", ["accounts", "contacts"])
def test_tables_without_bulk_messages_go_through_batch(
    dataverse: DataverseHook, dv_oracle: Oracle, entity_set: str
) -> None:
    """sdkmessagefilters lists no CreateMultiple for account/contact: the hook never tries it."""
    key = entity_set[:-1] + "id"
    name = {"accounts": "name", "contacts": "lastname"}[entity_set]
    operations = [
        WriteOperation(
            WriteKind.CREATE, entity_set, {key: str(uuid.uuid4())}, {name: f"Batch {n}"}, ref=f"r{n}"
        )
        for n in range(6)
    ]
    outcomes = by_ref(dataverse.write(operations, batch_size=3), operations)
    assert all(outcome.ok for outcome in outcomes.values())
    assert not dataverse.bulk_support(entity_set).create_multiple
    assert recorded(dataverse).posts_to("/CreateMultiple") == []
    assert recorded(dataverse).posts_to("/$batch") == [200, 200]
    for op in operations:
        assert dv_oracle.get(f"{entity_set}({op.key[key]})?$select={key}").status_code == 200


@pytest.mark.parametrize(
    ("entity_set", "kind"), [("accounts", WriteKind.CREATE), ("contacts", WriteKind.UPSERT)]
)
def test_a_refused_bulk_message_falls_back_to_batch(
    dataverse: DataverseHook, dv_oracle: Oracle, entity_set: str, kind: WriteKind
) -> None:
    """Availability said yes (a stale answer, or a message registered but not usable): the
    service refuses with "The 'CreateMultiple' method does not support entities of type …";
    the records still land through $batch and the table is not tried in bulk again."""
    key = entity_set[:-1] + "id"
    logical = entity_set[:-1]
    dataverse._bulk_support[entity_set] = BulkSupport(logical, create_multiple=True, upsert_multiple=True)
    message = "CreateMultiple" if kind is WriteKind.CREATE else "UpsertMultiple"
    name = {"accounts": "name", "contacts": "lastname"}[entity_set]
    operations = [
        WriteOperation(kind, entity_set, {key: str(uuid.uuid4())}, {name: f"Fallback {n}"}, ref=f"f{n}")
        for n in range(8)
    ]

    outcomes = by_ref(dataverse.write(operations, batch_size=4), operations)

    assert all(outcome.ok for outcome in outcomes.values()), [o for o in outcomes.values() if not o.ok]
    assert all(outcome.attempts == 1 for outcome in outcomes.values())
    refused = recorded(dataverse).posts_to(f"/{entity_set}/Microsoft.Dynamics.CRM.{message}")
    # Both units may have tried the message before the first refusal was learnt; never more.
    assert 1 <= len(refused) <= 2
    assert set(refused) == {400}
    assert not dataverse.bulk_support(entity_set).create_multiple
    for op in operations:
        assert dv_oracle.get(f"{entity_set}({op.key[key]})?$select={key}").status_code == 200


# ---------------------------------------------------------------------------- key escaping

FNO_KEYS = [
    "O'Brien & Sons",
    "A/B #1",
    "Müller Öl-Großhandel",
    "東京 支店+1",
    "50% off?",
    "C:\\ü + 100%41 / 'x' & #",
]


def test_fno_keys_with_quotes_reserved_and_non_ascii_characters(
    fno: FinanceOperationsHook, fno_oracle: Oracle
) -> None:
    """Create, read back (by key and by filter), update and delete rows keyed with text that
    needs both OData quoting and URL encoding.

    F&O answers 404 to a key segment holding ``%2F``, ``%5C`` or ``%2B`` encoded once (third-party
    reports; no Microsoft page): the hook encodes them, and ``%``, twice. Read by hand, the same
    keys encoded once are refused with F&O's routing message. Creates (POST to the collection)
    and filters are unaffected.
    """
    run = tag()
    accounts = [f"{key} {run}" for key in FNO_KEYS]
    creates = [customer_create(account, f"k{n}") for n, account in enumerate(accounts)]
    assert all(outcome.ok for outcome in fno.write(creates)), "creates"

    for account in accounts:
        response = fno_oracle.get(fno_key_path("CustomersV3", "usmf", account))
        assert response.status_code == 200, (account, response.text)
        assert response.json()["CustomerAccount"] == account
        once = fno_oracle.get(fno_key_path("CustomersV3", "usmf", account, twice=""))
        if set("/\\+") & set(account):
            assert once.status_code == 404, (account, once.text)
            assert once.json()["Message"].startswith(
                "No HTTP resource was found that matches the request URI"
            )
        elif "%" not in account:
            assert once.status_code == 200, (account, once.text)
        rows = pd.concat(
            list(
                fno.iter_pages(
                    "CustomersV3",
                    select=["CustomerAccount", "OrganizationName"],
                    filter=f"CustomerAccount eq {format_literal(account)}",
                )
            )
        )
        assert rows["CustomerAccount"].tolist() == [account]

    updates = [
        WriteOperation(
            WriteKind.UPDATE,
            "CustomersV3",
            {"dataAreaId": "usmf", "CustomerAccount": account},
            {"NameAlias": f"alias {n}"},
            ref=f"u{n}",
        )
        for n, account in enumerate(accounts)
    ]
    assert all(outcome.ok for outcome in fno.write(updates)), "updates by key"
    for n, account in enumerate(accounts):
        assert (
            fno_oracle.get(fno_key_path("CustomersV3", "usmf", account)).json()["NameAlias"] == f"alias {n}"
        )

    deletes = [
        WriteOperation(WriteKind.DELETE, "CustomersV3", {"dataAreaId": "usmf", "CustomerAccount": a}, ref=a)
        for a in accounts
    ]
    assert all(outcome.ok for outcome in fno.write(deletes)), "deletes by key"
    assert all(fno_oracle.get(fno_key_path("CustomersV3", "usmf", a)).status_code == 404 for a in accounts)


def contact_upsert(number: str, ref: str, **body: Any) -> WriteOperation:
    return WriteOperation(
        WriteKind.UPSERT,
        "contacts",
        {"msdynce_contactnumber": number},
        {"lastname": f"Key {ref}", **body},
        ref=ref,
    )


def test_dataverse_alternate_keys_with_quotes_and_non_ascii(
    dataverse: DataverseHook, dv_oracle: Oracle
) -> None:
    run = tag()
    numbers = [f"CON-O'Brien {run}", f"CON-Müller-{run}", f"CON-東京-{run}", f"CON ({run}), x=1"]
    operations = [contact_upsert(number, f"c{n}") for n, number in enumerate(numbers)]
    outcomes = by_ref(dataverse.write(operations), operations)
    assert all(outcome.ok for outcome in outcomes.values()), [o.message for o in outcomes.values()]

    again = [contact_upsert(number, f"c{n}", jobtitle="updated") for n, number in enumerate(numbers)]
    assert all(outcome.ok for outcome in dataverse.write(again))
    for number in numbers:
        literal = quote(format_literal(number), safe="'(),=")
        row = dv_oracle.get(
            f"contacts(msdynce_contactnumber={literal})?$select=msdynce_contactnumber,jobtitle"
        )
        assert row.status_code == 200, (number, row.text)
        assert row.json()["jobtitle"] == "updated"
        assert (
            len(dv_oracle.rows(f"contacts?$select=contactid&$filter=msdynce_contactnumber eq {literal}")) == 1
        )


@pytest.mark.parametrize("character", list("/#<>*%&:\\?+"))
def test_dataverse_alternate_key_values_with_forbidden_characters_fail_clearly(
    dataverse: DataverseHook, dv_oracle: Oracle, character: str
) -> None:
    number = f"CON-A{character}B-{tag()}"
    operations = [contact_upsert(number, "bad"), contact_upsert(f"CON-OK-{tag()}", "good")]

    outcomes = by_ref(dataverse.write(operations), operations)

    bad = outcomes["bad"]
    assert not bad.ok
    assert bad.status == 0  # refused before sending: the service would answer 400 or 404
    assert bad.error_code == "invalid_key"
    assert f"Dataverse does not allow {character} in alternate key values" in (bad.message or "")
    assert "msdynce_contactnumber" in (bad.message or "")
    assert "primary key" in (bad.message or "")
    assert outcomes["good"].ok
    # The row can still be written and read by its primary key.
    contact_id = str(uuid.uuid4())
    by_primary = WriteOperation(
        WriteKind.UPSERT,
        "contacts",
        {"contactid": contact_id},
        {"lastname": "Odd", "msdynce_contactnumber": number},
    )
    assert all(outcome.ok for outcome in dataverse.write([by_primary]))
    assert (
        dv_oracle.get(f"contacts({contact_id})?$select=msdynce_contactnumber").json()["msdynce_contactnumber"]
        == number
    )


@pytest.mark.parametrize("character", list("/#<>*%&:\\?+"))
def test_the_emulator_refuses_forbidden_alternate_key_characters_too(
    dv_oracle: Oracle, character: str
) -> None:
    """What the hook saves the caller from: the service refuses such a key in the URL."""
    literal = quote(format_literal(f"CON-A{character}B"), safe="'")
    response = dv_oracle.get(f"contacts(msdynce_contactnumber={literal})")
    assert response.status_code == 400, response.text
    assert "potentially dangerous" in response.json()["error"]["message"]
