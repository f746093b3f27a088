"""`DataverseHook.read_changes` against the Dataverse emulator over verified HTTPS.

A first read returns the whole table and a token; a read with the token returns exactly
the rows changed since (by version) and the deleted ids; an expired or foreign token
raises `DeltaTokenInvalidError`, after which a full read starts over. Changes are made
with plain httpx (the oracle's client), independent of the hook.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

import pytest

from prospect_to_cash.hooks import DataverseHook, DeltaTokenInvalidError, DynamicsAPIError
from tests.support.connections import connect

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.emulators import AdminClient, Oracle, RunningEmulators

pytestmark = pytest.mark.integration

SELECT = ["contactid", "lastname"]


def create(oracle: Oracle, lastname: str) -> str:
    contact_id = str(uuid.uuid4())
    response = oracle.client.post(
        oracle.root + "contacts", json={"contactid": contact_id, "lastname": lastname}
    )
    assert response.status_code == 204, response.text
    return contact_id


def delete(oracle: Oracle, contact_id: str) -> None:
    assert oracle.client.delete(f"{oracle.root}contacts({contact_id})").status_code == 204


def rename(oracle: Oracle, contact_id: str, lastname: str) -> None:
    response = oracle.client.patch(f"{oracle.root}contacts({contact_id})", json={"lastname": lastname})
    assert response.status_code == 204, response.text


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch, emulators: RunningEmulators) -> Iterator[DataverseHook]:
    with DataverseHook(connect(monkeypatch, emulators.endpoints, "dataverse")) as hook:
        yield hook


def test_first_read_is_the_whole_table_then_deltas_hold_only_the_changes(
    hook: DataverseHook, dv_oracle: Oracle
) -> None:
    gone = create(dv_oracle, "Delta gone")
    kept = create(dv_oracle, "Delta kept")
    everyone = {row["contactid"] for row in dv_oracle.rows("contacts?$select=contactid")}

    first = hook.read_changes("contacts", select=SELECT, page_size=9)
    assert first.initial is True
    assert list(first.changed.columns) == SELECT
    assert set(first.changed["contactid"]) == everyone
    assert len(first.changed) == len(everyone)
    assert first.pages == -(-len(everyone) // 9)
    assert first.deleted_ids == ()

    created = create(dv_oracle, "Delta new")
    rename(dv_oracle, kept, "Delta renamed")
    delete(dv_oracle, gone)
    ephemeral = create(dv_oracle, "Delta ephemeral")
    delete(dv_oracle, ephemeral)

    delta = hook.read_changes("contacts", select=SELECT, delta_token=first.delta_token)
    assert delta.initial is False
    assert delta.changed.to_dict("records") == [
        {"contactid": created, "lastname": "Delta new"},
        {"contactid": kept, "lastname": "Delta renamed"},
    ]
    assert delta.deleted_ids == (gone, ephemeral)
    assert delta.delta_token != first.delta_token

    quiet = hook.read_changes("contacts", select=SELECT, delta_token=delta.delta_token)
    assert quiet.changed.empty
    assert list(quiet.changed.columns) == SELECT
    assert quiet.deleted_ids == ()


def test_a_delta_follows_next_links_across_rows_and_deletions(hook: DataverseHook, dv_oracle: Oracle) -> None:
    doomed = [create(dv_oracle, f"Delta doomed {i}") for i in range(3)]
    token = hook.read_changes("contacts", select=SELECT).delta_token
    new = [create(dv_oracle, f"Delta paged {i}") for i in range(3)]
    for contact_id in doomed:
        delete(dv_oracle, contact_id)

    delta = hook.read_changes("contacts", select=SELECT, delta_token=token, page_size=2)
    assert delta.pages == 3  # 3 rows then 3 deletions, 2 per page
    assert delta.changed["contactid"].tolist() == new
    assert delta.deleted_ids == tuple(doomed)


def test_an_expired_token_raises_and_a_full_read_starts_over(
    hook: DataverseHook, dataverse_admin: AdminClient, dv_oracle: Oracle
) -> None:
    token = hook.read_changes("contacts", select=SELECT).delta_token
    with dataverse_admin.overrides({"change_tracking_expiry_seconds": 1}):
        time.sleep(2.1)
        with pytest.raises(DeltaTokenInvalidError) as failure:
            hook.read_changes("contacts", select=SELECT, delta_token=token)
        assert failure.value.expired is True
        assert failure.value.status == 400
        assert failure.value.code == "0x80044352"
        restart = hook.read_changes("contacts", select=SELECT)
    assert restart.initial is True
    assert set(restart.changed["contactid"]) == {
        row["contactid"] for row in dv_oracle.rows("contacts?$select=contactid")
    }


def test_a_token_the_service_never_issued_raises(hook: DataverseHook) -> None:
    with pytest.raises(DeltaTokenInvalidError) as failure:
        hook.read_changes("contacts", select=SELECT, delta_token="not-a-token")
    assert failure.value.expired is False
    assert failure.value.message == "The $deltatoken 'not-a-token' is not valid."


def test_tables_without_change_tracking_are_reported_and_refused(hook: DataverseHook) -> None:
    assert hook.change_tracking_enabled("contacts") is True
    assert hook.change_tracking_enabled("accounts") is True
    assert hook.change_tracking_enabled("businessunits") is False
    with pytest.raises(DynamicsAPIError) as failure:
        hook.read_changes("businessunits", select=["businessunitid", "name"])
    assert not isinstance(failure.value, DeltaTokenInvalidError)
    assert failure.value.message == "Change tracking is not enabled for the entity 'businessunit'."


def test_page_size_is_checked(hook: DataverseHook) -> None:
    with pytest.raises(ValueError, match="page_size must be between 1 and 5000"):
        hook.read_changes("contacts", select=SELECT, page_size=5001)
