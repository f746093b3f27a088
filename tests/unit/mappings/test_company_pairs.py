"""What the templates need of each company pair, refused before any row is read: an F&O ->
Sales template creates its rows owned by the pair's ``owner`` and finds them again within the
pair's business unit, so a pair with a business unit and no owner would reject every order
("dangling lookup") without saying why. ``check_mapping`` (the DAGs' preflight) and the sync
CLI's ``validate`` name the file, the pair and the key instead."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException

from prospect_to_cash.dags.run_books import RUN_BOOKS
from prospect_to_cash.dags.steps import check_mapping
from prospect_to_cash.sync import __main__ as cli
from prospect_to_cash.sync.company_scope import missing_owner_problems
from prospect_to_cash.sync.mapping import load_template
from tests.support.world import ENVIRONMENT

if TYPE_CHECKING:
    from pathlib import Path

OWNED = {"sales_orders_fno_to_sales": "order_headers", "sales_invoices": "invoice_headers"}


def _pairs_file(path: Path, *, drop_owner_of: str, business_unit: bool = True) -> Path:
    """An override with the shipped pairs, ``drop_owner_of``'s without its owner (and without
    its business unit unless ``business_unit``)."""
    pairs = []
    for shipped in ENVIRONMENT["company_pairs"]:
        pair = dict(shipped)
        if pair["legal_entity"] == drop_owner_of:
            del pair["owner"]
            if not business_unit:
                pair["business_unit"] = None
        pairs.append(pair)
    path.write_text(yaml.safe_dump({"company_pairs": pairs}))
    return path


def _problem(template: str) -> str:
    return (
        f"environment.yaml + no-owner.yaml: company pair 'usmf' has no 'owner', which {template}.yaml "
        f"(task '{OWNED[template]}': company_scope: owner) needs: its rows would be created outside "
        "business unit 'Contoso US' and never found there again; set company_pairs[].owner to a user "
        "or team of that business unit"
    )


@pytest.mark.parametrize("template", sorted(OWNED))
def test_check_mapping_refuses_a_pair_with_a_business_unit_and_no_owner(
    template: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "P2C_ENVIRONMENT_FILE", str(_pairs_file(tmp_path / "no-owner.yaml", drop_owner_of="usmf"))
    )
    # refused offline: no connection is defined, and none is needed to say it
    with pytest.raises(AirflowFailException) as raised:
        check_mapping(RUN_BOOKS[template])
    assert str(raised.value) == _problem(template)


def test_the_cli_validate_refuses_it_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    override = _pairs_file(tmp_path / "no-owner.yaml", drop_owner_of="usmf")
    monkeypatch.delenv("P2C_ENVIRONMENT_FILE", raising=False)
    assert cli.main(["--environment-file", str(override), "validate"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        _problem(t)
        for t in ("sales_orders_fno_to_sales", "sales_invoices")  # in run order
    ]


def test_what_is_not_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the shipped pairs have their owners
    monkeypatch.delenv("P2C_ENVIRONMENT_FILE", raising=False)
    assert [missing_owner_problems(load_template(t)) for t in OWNED] == [[], []]
    # a pair without an owner and without a business unit reads Sales unscoped: it finds the
    # rows it created (owned by the application user), so it serves
    unscoped = _pairs_file(tmp_path / "unscoped.yaml", drop_owner_of="usmf", business_unit=False)
    monkeypatch.setenv("P2C_ENVIRONMENT_FILE", str(unscoped))
    assert [missing_owner_problems(load_template(t)) for t in OWNED] == [[], []]
    # templates that create nothing owned in Sales do not need an owner
    monkeypatch.setenv(
        "P2C_ENVIRONMENT_FILE", str(_pairs_file(tmp_path / "no-owner.yaml", drop_owner_of="usmf"))
    )
    others = sorted(set(RUN_BOOKS) - set(OWNED))
    assert others == ["accounts", "contacts", "products", "sales_orders_sales_to_fno", "sales_quotations"]
    assert {t: missing_owner_problems(load_template(t)) for t in others} == {t: [] for t in others}
