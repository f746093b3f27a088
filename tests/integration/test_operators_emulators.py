"""The generic operators over HTTPS: `DynamicsExtractOperator` exports entity sets of both
services (company scoping, change windows), `DynamicsLoadOperator` upserts, dry-runs and
dead-letters. What landed is read back with the tests' own client (`Oracle`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from airflow.sdk.exceptions import AirflowFailException

from prospect_to_cash.operators import DynamicsExtractOperator, DynamicsLoadOperator
from tests.support.connections import connect
from tests.support.emulators import Oracle

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.emulators import RunningEmulators

pytestmark = pytest.mark.integration

CONTEXT: Any = {"run_id": "op-it", "data_interval_start": None, "data_interval_end": None}


def _export(tmp_path: Path, name: str, **kwargs: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    operator = DynamicsExtractOperator(
        task_id=name, output_path=f"file://{tmp_path / name}.parquet", **kwargs
    )
    result = operator.execute(CONTEXT)
    return result, pq.read_table(str(tmp_path / f"{name}.parquet")).to_pylist()


def test_export_reads_one_company_or_every_company_of_fno(
    emulators: RunningEmulators, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn_id = connect(monkeypatch, emulators.endpoints, "fno", "op_export_fno")
    oracle = Oracle(emulators.endpoints, "fno")
    try:
        every = oracle.rows("CustomersV3?cross-company=true&$select=dataAreaId,CustomerAccount")
    finally:
        oracle.close()
    select = ["dataAreaId", "CustomerAccount"]
    common = {"conn_id": conn_id, "entity_set": "CustomersV3", "select": select, "page_size": 7}

    result, rows = _export(tmp_path, "all", companies="*", **common)
    assert result["rows"] == len(rows) == len(every)
    assert sorted((r["dataAreaId"], r["CustomerAccount"]) for r in rows) == sorted(
        (r["dataAreaId"], r["CustomerAccount"]) for r in every
    )
    result, rows = _export(tmp_path, "demf", companies=["demf"], **common)
    assert {r["dataAreaId"] for r in rows} == {"demf"}
    assert result["rows"] == sum(1 for r in every if r["dataAreaId"] == "demf")
    # no companies: the connection's default company (usmf)
    _, rows = _export(tmp_path, "default", **common)
    assert {r["dataAreaId"] for r in rows} == {"usmf"}


def test_export_reads_the_change_window_of_dataverse(
    emulators: RunningEmulators, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn_id = connect(monkeypatch, emulators.endpoints, "dataverse", "op_export_dv")
    oracle = Oracle(emulators.endpoints, "dataverse")
    try:
        accounts = oracle.rows("accounts?$select=accountid,modifiedon")
    finally:
        oracle.close()
    moments = sorted({a["modifiedon"] for a in accounts})
    assert len(moments) > 2, "the demo story changes accounts at several moments"
    middle = moments[len(moments) // 2]
    common = {"conn_id": conn_id, "entity_set": "accounts", "select": ["accountid", "modifiedon"]}

    result, rows = _export(tmp_path, "since", change_field="modifiedon", window_start=middle, **common)
    assert {r["accountid"] for r in rows} == {a["accountid"] for a in accounts if a["modifiedon"] >= middle}
    assert 0 < len(rows) < len(accounts)
    assert result["filter"] == f"modifiedon ge {middle}"
    assert result["window"] == {"start": middle, "end": None}
    # a per-run increment: the run's data interval, end exclusive
    context = {**CONTEXT, "data_interval_start": moments[0], "data_interval_end": middle}
    operator = DynamicsExtractOperator(
        task_id="delta",
        output_path=f"file://{tmp_path / 'delta'}.parquet",
        change_field="modifiedon",
        incremental=True,
        **common,
    )
    delta = operator.execute(context)
    assert delta["rows"] == sum(1 for a in accounts if moments[0] <= a["modifiedon"] < middle) > 0
    with pytest.raises(ValueError, match="companies apply to F&O only"):
        _export(tmp_path, "bad", companies=["usmf"], **common)


def _contacts(oracle: Oracle, numbers: list[str]) -> dict[str, dict[str, Any]]:
    wanted = " or ".join(f"msdynce_contactnumber eq '{n}'" for n in numbers)
    rows = oracle.rows(f"contacts?$select=msdynce_contactnumber,firstname,lastname&$filter={wanted}")
    return {
        r["msdynce_contactnumber"]: {"firstname": r["firstname"], "lastname": r["lastname"]} for r in rows
    }


def test_load_upserts_by_alternate_key_dry_runs_and_dead_letters(
    fresh_emulators: RunningEmulators, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn_id = connect(monkeypatch, fresh_emulators.endpoints, "dataverse", "op_load_dv")
    fno_conn_id = connect(monkeypatch, fresh_emulators.endpoints, "fno", "op_load_fno")
    source = tmp_path / "people.parquet"
    numbers = ["CON-90001", "CON-90002", "CON-90003"]
    pd.DataFrame(
        {
            "number": numbers,
            "first": ["Ada", "Grace", "Edsger"],
            "last": ["Lovelace", "Hopper", "x" * 51],  # lastname holds 50 characters
        }
    ).to_parquet(source)

    def operator(**kwargs: Any) -> DynamicsLoadOperator:
        return DynamicsLoadOperator(
            task_id="load_contacts",
            conn_id=conn_id,
            input_path=f"file://{source}",
            entity_set="contacts",
            key=["msdynce_contactnumber"],
            columns={"number": "msdynce_contactnumber", "first": "firstname", "last": "lastname"},
            batch_size=2,
            **kwargs,
        )

    oracle = Oracle(fresh_emulators.endpoints, "dataverse")
    try:
        planned = operator(dry_run=True).execute(CONTEXT)
        assert planned["counts"] == {"read": 3, "written": 0, "failed": 0}
        assert planned["deadletter"] is None
        assert _contacts(oracle, numbers) == {}

        landed = operator(deadletter_path=f"file://{tmp_path / 'refused.parquet'}").execute(CONTEXT)
        assert landed["counts"] == {"read": 3, "written": 2, "failed": 1}
        assert json.loads(json.dumps(landed)) == landed
        assert _contacts(oracle, numbers) == {
            "CON-90001": {"firstname": "Ada", "lastname": "Lovelace"},
            "CON-90002": {"firstname": "Grace", "lastname": "Hopper"},
        }
        (refused,) = pq.read_table(str(tmp_path / "refused.parquet")).to_pylist()
        assert json.loads(refused["key"]) == {"msdynce_contactnumber": "CON-90003"}
        assert refused["status"] == 400
        assert refused["reason"]
        assert json.loads(refused["row"])["firstname"] == "Edsger"

        # the same keys again: the upsert updates, it does not add rows
        pd.DataFrame(
            {"number": numbers[:2], "first": ["Augusta Ada", "Grace"], "last": ["King", "Hopper"]}
        ).to_parquet(source)
        again = operator().execute(CONTEXT)
        assert again["counts"] == {"read": 2, "written": 2, "failed": 0}
        assert _contacts(oracle, numbers) == {
            "CON-90001": {"firstname": "Augusta Ada", "lastname": "King"},
            "CON-90002": {"firstname": "Grace", "lastname": "Hopper"},
        }
    finally:
        oracle.close()

    fno = DynamicsLoadOperator(
        task_id="fno_upsert",
        conn_id=fno_conn_id,
        input_path=f"file://{source}",
        entity_set="CustomersV3",
        key=["number"],
    )
    with pytest.raises(AirflowFailException, match="F&O OData has no upsert"):
        fno.execute(CONTEXT)
