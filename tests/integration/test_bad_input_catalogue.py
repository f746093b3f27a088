"""The bad-input catalogue (issue 15, point 6): each class of bad row seeded through the
emulators' public APIs (Dataverse Web API, F&O OData) into the demo world, run through the
templates over HTTPS, and dead-lettered with a reason a person understands, while every
good row lands. Malformed mapping, environment and connection settings fail before any
row is read, naming the file, the key and the problem.

docs/reliability.md lists every class with its result.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from airflow.sdk import ObjectStoragePath

from devstack.airflow_stack import connection_env
from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.sync import deadletter
from prospect_to_cash.sync.contracts import SyncOptions
from prospect_to_cash.sync.runner import SyncHooks, run_template
from prospect_to_cash.sync.staging import TaskStaging
from tests.conftest import TEST_CONFIG
from tests.support.emulators import ROOT, acquire_token, start_emulators

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import pandas as pd

    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TEMPLATES = ("accounts", "products", "sales_orders_sales_to_fno")
CONN = {"dataverse": "p2c_catalogue_dataverse", "fno": "p2c_catalogue_fno"}
COMPANY = "usmf"
RUN_ID = "catalogue"
#: The keys the accounts template must land whatever their characters (OData key literals
#: double a quote; the URL encodes &, /, +, #, % and non-ASCII).
ODD_KEYS = ("CAT-Q'1", "CAT-A&1", "CAT-S/1", "CAT-P+1", "CAT-H#1", "CAT-P%1", "CAT-ÄÖß-1")
#: This environment's F&O has no terms for Sales's Net 60 (paymenttermscode 4): a choice
#: that is valid in Sales but has no counterpart in the target.
PAYMENT_TERMS = ('{1: Net30, 2: "2%10Net30", 3: Net45, 4: Net60}', '{1: Net30, 2: "2%10Net30", 3: Net45}')


class _Api:
    """The services' public APIs as an integrator's script would call them."""

    def __init__(self, running: RunningEmulators) -> None:
        self.endpoints = running.endpoints
        self.http = httpx.Client(verify=running.endpoints.ssl_context(), timeout=60)
        self.tokens = {s: acquire_token(running.endpoints, s) for s in ("dataverse", "fno")}

    def call(self, service: str, method: str, path: str, body: Any = None, **params: str) -> Any:
        url = f"{self.endpoints.service_root(service).rstrip('/')}/{path}"
        headers = {
            "Authorization": f"Bearer {self.tokens[service]}",
            "Accept": "application/json",
            "Prefer": "return=representation",
        }
        response = self.http.request(method, url, json=body, params=params or None, headers=headers)
        assert response.status_code in (200, 201, 204), (
            f"{method} {path}: {response.status_code} {response.text}"
        )
        return response.json() if response.content else None

    def rows(self, service: str, path: str, **params: str) -> list[dict[str, Any]]:
        rows = self.call(service, "GET", path, **params)["value"]
        return [{k: v for k, v in row.items() if not k.startswith("@")} for row in rows]


@dataclass
class _Catalogue:
    """What the catalogue run left: dead letters per template task, and both services."""

    staging_root: Path
    api: _Api
    seeded: _Seeded
    results: dict[str, Any]
    rerun: dict[str, Any]
    endpoints: Any

    def deadletters(self, template: str, task: str) -> pd.DataFrame:
        staging = TaskStaging(
            root=ObjectStoragePath(f"file://{self.staging_root}"),
            template=template,
            run_id=RUN_ID,
            company=COMPANY,
            task=task,
        )
        return deadletter.read(staging)


@dataclass(frozen=True)
class _Seeded:
    """Ids and numbers of the seeded rows the expectations name."""

    no_key_account: str
    early_order: str
    moved_order: str
    held_back_lines: frozenset[str]  # salesorderdetailid of both orders' lines
    template_orders: frozenset[str]  # every order number the orders template keeps


def _seed(api: _Api) -> _Seeded:
    """The bad rows (and a few good ones), through the public APIs only."""
    users = api.rows("dataverse", "systemusers", **{"$select": "systemuserid,fullname"})
    seller = next(u["systemuserid"] for u in users if u["fullname"] == "Sam Seller")  # Contoso US
    owner = {"ownerid@odata.bind": f"/systemusers({seller})"}
    currencies = {
        c["isocurrencycode"]: c["transactioncurrencyid"]
        for c in api.rows(
            "dataverse", "transactioncurrencies", **{"$select": "isocurrencycode,transactioncurrencyid"}
        )
    }
    yen = api.call(
        "dataverse",
        "POST",
        "transactioncurrencies",
        {
            "isocurrencycode": "JPY",
            "currencyname": "Yen",
            "currencysymbol": "¥",
            "exchangerate": 150.0,
            "currencyprecision": 0,
        },
    )["transactioncurrencyid"]

    def account(number: str | None, **extra: Any) -> dict[str, Any]:
        body = {
            "name": f"Catalogue {number}",
            "accountnumber": number,
            "transactioncurrencyid@odata.bind": f"/transactioncurrencies({currencies['USD']})",
            **owner,
            **extra,
        }
        return api.call("dataverse", "POST", "accounts", {k: v for k, v in body.items() if v is not ...})

    account("CAT-GOOD-1")
    for number in ODD_KEYS:
        account(number)
    missing = account("CAT-NOKEY")
    api.call("dataverse", "PATCH", f"accounts({missing['accountid']})", {"accountnumber": None})
    account("CAT-DUP-1", name="Catalogue duplicate one")
    account("CAT-DUP-1", name="Catalogue duplicate two")
    account("CAT-LONG-1", name="L" * 150)  # F&O's OrganizationName takes 100
    account("CAT-NONAME-1", name=None)
    account("CAT-ATLANTIS-1", address1_country="Atlantis")
    account("CAT-NET60-1", paymenttermscode=4)
    account(
        "CAT-YEN-1",
        **{"transactioncurrencyid@odata.bind": f"/transactioncurrencies({yen})"},
    )
    atlantis = account("CAT-ATLANTIS-2", address1_country="Atlantis")["accountid"]

    # two of Contoso US's active orders the orders template sends: one asks for delivery
    # before F&O's first date, the other is moved to a customer F&O will never have
    units = {u["name"]: u["businessunitid"] for u in api.rows("dataverse", "businessunits")}
    orders = sorted(
        api.rows(
            "dataverse",
            "salesorders",
            **{
                "$select": "salesorderid,ordernumber",
                "$filter": "statecode eq 0 and msdynce_processingstatus eq 647390000 "
                "and msdynce_hasexternallymaintainedproductsonly eq true "
                "and msdynce_ismaintainedexternally ne true "
                f"and _owningbusinessunit_value eq {units['Contoso US']}",
            },
        ),
        key=lambda order: order["ordernumber"],
    )
    early, moved = orders[0], orders[1]
    api.call(
        "dataverse",
        "PATCH",
        f"salesorders({early['salesorderid']})",
        {"requestdeliveryby": "1850-06-01T00:00:00Z"},
    )
    api.call(
        "dataverse",
        "PATCH",
        f"salesorders({moved['salesorderid']})",
        {"customerid_account@odata.bind": f"/accounts({atlantis})"},
    )

    # F&O products: one priced beyond what a Sales currency column holds, one ordinary
    def product(number: str, price: float) -> None:
        api.call(
            "fno",
            "POST",
            "SellableReleasedProducts",
            {
                "dataAreaId": COMPANY,
                "ProductNumber": number,
                "ProductName": f"Catalogue {number}",
                "ProductType": "Item",
                "SalesUnitSymbol": "ea",
                "InventoryUnitSymbol": "ea",
                "SalesPrice": price,
                "CurrencyCode": "USD",
            },
        )

    product("CAT-PRICE-1", 1e15)
    product("CAT-PROD-1", 10.5)

    lines = [
        line["salesorderdetailid"]
        for order in (early, moved)
        for line in api.rows(
            "dataverse",
            "salesorderdetails",
            **{"$select": "salesorderdetailid", "$filter": f"_salesorderid_value eq {order['salesorderid']}"},
        )
    ]
    return _Seeded(
        no_key_account=missing["accountid"],
        early_order=early["ordernumber"],
        moved_order=moved["ordernumber"],
        held_back_lines=frozenset(lines),
        template_orders=frozenset(o["ordernumber"] for o in orders),
    )


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Catalogue]:
    logging.getLogger("prospect_to_cash").setLevel(logging.ERROR)
    base = tmp_path_factory.mktemp("catalogue")
    running = start_emulators(base / "emulators", "--seed", "demo", config=TEST_CONFIG)
    variables = connection_env(running.endpoints, conn_ids=CONN)
    os.environ.update(variables)
    try:
        api = _Api(running)
        seeded = _seed(api)
        mappings = base / "mappings"
        shutil.copytree(ROOT / "include" / "mappings", mappings)
        environment = mappings / "environment.yaml"
        text = environment.read_text()
        assert PAYMENT_TERMS[0] in text
        environment.write_text(text.replace(*PAYMENT_TERMS))
        hooks = SyncHooks(
            dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"]),
            fno=FinanceOperationsHook(fno_conn_id=CONN["fno"]),
        )
        options = SyncOptions(
            run_id=RUN_ID,
            staging_root=f"file://{base / 'staging'}",
            mappings_dir=mappings,
            hooks=hooks,
            max_rejected="100%",
            max_failed="100%",
        )
        results = {
            template: run_template(template, legal_entity=COMPANY, options=options) for template in TEMPLATES
        }
        # the same run again: what landed is found unchanged, keys with odd characters included
        again = options.but(run_id=f"{RUN_ID}-again")
        rerun = {
            template: run_template(template, legal_entity=COMPANY, options=again) for template in TEMPLATES
        }
        yield _Catalogue(base / "staging", api, seeded, results, rerun, running.endpoints)
    finally:
        for name in variables:
            os.environ.pop(name, None)
        running.stop()


def _reason(catalogue: _Catalogue, template: str, task: str, stage: str, **match: str) -> list[str]:
    frame = catalogue.deadletters(template, task)
    for column, value in match.items():
        frame = frame[frame[column] == value]
    return sorted(frame[frame["stage"] == stage]["reason"].tolist())


NAMED_REJECTS = {
    # class: (source key, the reasons it is dead-lettered with)
    "duplicate keys": (
        "CAT-DUP-1",
        ["duplicate source key accountnumber='CAT-DUP-1' (2 rows): rejected, not merged"] * 2,
    ),
    "text over the target's MaxLength": (
        "CAT-LONG-1",
        ["OrganizationName is 150 characters, at most 100 allowed"],
    ),
    "null required field": ("CAT-NONAME-1", ["required field OrganizationName is empty"]),
    "value-map miss": (
        "CAT-ATLANTIS-1",
        [
            "value 'Atlantis' of DeliveryAddressCountryRegionISOCode has no entry in value map "
            "'country_to_iso'; value 'Atlantis' of AddressCountryRegionISOCode has no entry in "
            "value map 'country_to_iso'"
        ],
    ),
    "choice value without a counterpart": (
        "CAT-NET60-1",
        ["value '4' of PaymentTerms has no entry in value map 'payment_terms'"],
    ),
}


@pytest.mark.parametrize("kind", sorted(NAMED_REJECTS))
def test_account_classes_are_rejected_with_their_reason(catalogue: _Catalogue, kind: str) -> None:
    key, reasons = NAMED_REJECTS[kind]
    assert _reason(catalogue, "accounts", "customers", "transform", source_key=key) == reasons
    assert _reason(catalogue, "accounts", "customers", "load", source_key=key) == []
    assert key not in _customers(catalogue)


def test_a_row_without_its_key_is_rejected(catalogue: _Catalogue) -> None:
    record = catalogue.seeded.no_key_account
    assert _reason(catalogue, "accounts", "customers", "transform", record_id=record) == [
        "required field CustomerAccount is empty; source key accountnumber is empty"
    ]


def test_a_row_the_target_refuses_for_a_business_rule_fails_with_the_services_words(
    catalogue: _Catalogue,
) -> None:
    assert _reason(catalogue, "accounts", "customers", "load", source_key="CAT-YEN-1") == [
        "An error has occurred. — Write failed for table row of type 'CustCustomerV3Entity'. "
        "Infolog: Warning: The value 'JPY' in field 'Currency' is not found in the related table "
        "'Currency'.; Warning: validateField failed on field 'CustCustomerV3Entity.SalesCurrencyCode'."
    ]
    assert "CAT-YEN-1" not in _customers(catalogue)


def _customers(catalogue: _Catalogue) -> Counter[str]:
    rows = catalogue.api.rows(
        "fno",
        "CustomersV3",
        **{"cross-company": "true", "$filter": f"dataAreaId eq '{COMPANY}'", "$select": "CustomerAccount"},
    )
    return Counter(row["CustomerAccount"] for row in rows)


@pytest.mark.parametrize("key", ["CAT-GOOD-1", *ODD_KEYS])
def test_good_accounts_land_once_whatever_their_key_characters(catalogue: _Catalogue, key: str) -> None:
    assert _customers(catalogue)[key] == 1
    literal = key.replace("'", "''")
    found = catalogue.api.rows(
        "fno",
        "CustomersV3",
        **{
            "cross-company": "true",
            "$filter": f"dataAreaId eq '{COMPANY}' and CustomerAccount eq '{literal}'",
            "$select": "CustomerAccount,OrganizationName",
        },
    )
    assert found == [{"CustomerAccount": key, "OrganizationName": f"Catalogue {key}"}]


def test_the_rerun_finds_what_landed_unchanged(catalogue: _Catalogue) -> None:
    for template, result in catalogue.rerun.items():
        counts = result["counts"]
        assert counts["created"] == counts["updated"] == 0, (template, counts)
        assert counts["rejected"] == catalogue.results[template]["counts"]["rejected"], template
    assert catalogue.rerun["accounts"]["counts"]["failed"] == 1  # the yen customer, refused again


def test_an_order_dated_before_fno_first_day_is_rejected_before_sending(catalogue: _Catalogue) -> None:
    order = catalogue.seeded.early_order
    assert _reason(
        catalogue, "sales_orders_sales_to_fno", "order_headers", "transform", source_key=order
    ) == ["CDSSalesOrderHeaders.RequestedShippingDate accepts dates from 1900-01-01; 1850-06-01 is earlier"]


def test_an_order_whose_customer_is_missing_is_rejected(catalogue: _Catalogue) -> None:
    order = catalogue.seeded.moved_order
    assert _reason(
        catalogue, "sales_orders_sales_to_fno", "order_headers", "transform", source_key=order
    ) == [
        "dangling lookup OrderingCustomerAccountNumber: no CustomersV3 with "
        "CustomerAccount='CAT-ATLANTIS-2'; required field OrderingCustomerAccountNumber is empty"
    ]


def test_lines_without_their_header_are_held_back_naming_it(catalogue: _Catalogue) -> None:
    frame = catalogue.deadletters("sales_orders_sales_to_fno", "order_lines")
    held = frame[frame["source_key"].isin(catalogue.seeded.held_back_lines)]
    assert set(held["source_key"]) == catalogue.seeded.held_back_lines
    assert len(held) == len(catalogue.seeded.held_back_lines) > 0
    for reason, key in zip(held["reason"], held["source_key"], strict=True):
        order = next(o for o in (catalogue.seeded.early_order, catalogue.seeded.moved_order) if o in reason)
        assert f"held back: order {order} was rejected (" in reason, (key, reason)
    assert len(frame) == len(held)  # nothing else rejected


def test_every_other_order_lands(catalogue: _Catalogue) -> None:
    rows = catalogue.api.rows(
        "fno",
        "CDSSalesOrderHeaders",
        **{"cross-company": "true", "$filter": f"dataAreaId eq '{COMPANY}'", "$select": "SalesOrderNumber"},
    )
    landed = Counter(row["SalesOrderNumber"] for row in rows)
    expected = catalogue.seeded.template_orders - {catalogue.seeded.early_order, catalogue.seeded.moved_order}
    assert {number: landed[number] for number in catalogue.seeded.template_orders} == {
        number: int(number in expected) for number in catalogue.seeded.template_orders
    }


def test_a_price_beyond_a_sales_currency_column_is_rejected_before_sending(catalogue: _Catalogue) -> None:
    assert _reason(catalogue, "products", "products", "transform", source_key="CAT-PRICE-1") == [
        "products.price holds -922337203685477 to 922337203685477; 1000000000000000.0 is out of range"
    ]
    products = catalogue.api.rows(
        "dataverse",
        "products",
        **{"$select": "productnumber,price", "$filter": "startswith(productnumber,'CAT-')"},
    )
    assert [(p["productnumber"], p["price"]) for p in products] == [("CAT-PROD-1", 10.5)]


#: Malformed settings: (file, text replaced, replacement, the error naming file, key, problem)
MALFORMED = {
    "unknown key in a mapping": (
        "accounts.yaml",
        "{target: CustomerAccount, source: accountnumber,",
        "{target: CustomerAccount, sorce: accountnumber,",
        "accounts.yaml: task 'customers', field 'CustomerAccount': Additional properties are not "
        "allowed ('sorce' was unexpected)",
    ),
    "value map the environment lacks": (
        "accounts.yaml",
        "value_map: payment_terms,",
        "value_map: payment_termz,",
        "accounts.yaml: task 'customers', field 'PaymentTerms': value map 'payment_termz' is not "
        "defined in the environment",
    ),
    "unknown on_miss in a value map": (
        "environment.yaml",
        "    entries: {1: FOB, 2: NoCharge}\n    on_miss: reject",
        "    entries: {1: FOB, 2: NoCharge}\n    on_miss: explode",
        "environment (environment.yaml): value_maps/delivery_terms: {'entries': {1: 'FOB', 2: "
        "'NoCharge'}, 'on_miss': 'explode'} is not valid under any of the given schemas",
    ),
    "misspelt company pair key": (
        "environment.yaml",
        "business_unit: Contoso US",
        "business_unt: Contoso US",
        "environment (environment.yaml): company_pairs/0: Additional properties are not allowed "
        "('business_unt' was unexpected)",
    ),
    "enum member the target lacks (against $metadata)": (
        "accounts.yaml",
        '{target: IsExternallyMaintained, constant: "Yes", type: enum,',
        '{target: IsExternallyMaintained, constant: "Maybe", type: enum,',
        "accounts.yaml does not match the services' $metadata:\naccounts.yaml: task 'customers', "
        "field 'IsExternallyMaintained': 'Maybe' is not a member of "
        "Microsoft.Dynamics.DataEntities.NoYes (No, Yes)",
    ),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_settings_fail_before_reading_naming_file_key_and_problem(
    catalogue: _Catalogue, kind: str, tmp_path: Path
) -> None:
    from prospect_to_cash.sync.errors import MappingError, MetadataMismatch
    from prospect_to_cash.sync.mapping import load_template
    from prospect_to_cash.sync.metadata_check import check_template

    name, old, new, message = MALFORMED[kind]
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "include" / "mappings", mappings)
    text = (mappings / name).read_text()
    assert text.count(old) >= 1
    (mappings / name).write_text(text.replace(old, new, 1))
    hooks = SyncHooks(
        dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"]),
        fno=FinanceOperationsHook(fno_conn_id=CONN["fno"]),
    )
    with pytest.raises((MappingError, MetadataMismatch)) as raised:
        check_template(load_template("accounts", mappings_dir=mappings), hooks, raise_on_problems=True)
    assert str(raised.value) == message


def test_a_connection_missing_its_secret_fails_before_reading_naming_what_is_missing(
    catalogue: _Catalogue,
) -> None:
    from prospect_to_cash.hooks.errors import DynamicsConnectionConfigError
    from prospect_to_cash.sync.mapping import load_template
    from prospect_to_cash.sync.metadata_check import check_template

    broken = json.loads(
        connection_env(catalogue.endpoints, conn_ids={"fno": "p2c_catalogue_broken"})[
            "AIRFLOW_CONN_P2C_CATALOGUE_BROKEN"
        ]
    )
    broken.pop("password")
    os.environ["AIRFLOW_CONN_P2C_CATALOGUE_BROKEN"] = json.dumps(broken)
    try:
        hooks = SyncHooks(
            dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"]),
            fno=FinanceOperationsHook(fno_conn_id="p2c_catalogue_broken"),
        )
        with pytest.raises(DynamicsConnectionConfigError) as raised:
            check_template(load_template("accounts"), hooks, raise_on_problems=True)
    finally:
        os.environ.pop("AIRFLOW_CONN_P2C_CATALOGUE_BROKEN")
    assert str(raised.value) == "connection 'p2c_catalogue_broken' is missing: password (client secret)"
