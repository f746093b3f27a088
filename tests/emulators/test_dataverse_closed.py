"""Dataverse emulator: closed sales documents are read-only, and so are their lines.

Each test follows one sentence of the entity reference pages' ``statecode`` descriptions
(MicrosoftDocs dynamics-365-customer-engagement ``ce/developer/reference/entities``):

* salesorder: "Shows whether the order is active, submitted, fulfilled, canceled, or
  invoiced. Only active orders can be edited."
* invoice: "Shows whether the invoice is active, paid, or canceled. Paid and canceled invoices
  are read-only and can't be edited unless they are reactivated."
* quote: "Shows whether the quote is draft, active, won, or closed. Only draft quotes can be
  edited."

The refusal is ``CannotUpdateBecauseItIsReadOnly`` 0x8004022e ("The object cannot be updated
because it is read-only.", powerapps-docs "Web service error codes"); the docs name no error
for this case, so the code and the status 400 are inferred (see `emulators.dataverse.states`).
SetState (a PATCH of ``statecode``/``statuscode``) and Assign (a PATCH of ``ownerid``) stay
allowed: the reference pages list them as messages of their own.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.batch_requests import operation, parts, send

if TYPE_CHECKING:
    import httpx

pytestmark = pytest.mark.integration

READ_ONLY = {"code": "0x8004022e", "message": "The object cannot be updated because it is read-only."}


def refused(response: httpx.Response) -> None:
    """The read-only answer, and nothing else."""
    assert response.status_code == 400, response.text
    assert response.json() == {"error": READ_ONLY}


def create(api: httpx.Client, entity_set: str, body: dict[str, Any]) -> str:
    response = api.post(entity_set, json=body)
    assert response.status_code == 204, response.text
    return response.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")


def row(api: httpx.Client, entity_set: str, row_id: str, select: str) -> dict[str, Any]:
    found = api.get(f"{entity_set}({row_id})", params={"$select": select}).json()
    return {k: v for k, v in found.items() if not k.startswith("@")}


def write_in_line(header_set: str, header_id: str, description: str) -> dict[str, Any]:
    parent = header_set[:-1] + "id"
    return {
        f"{parent}@odata.bind": f"/{header_set}({header_id})",
        "productdescription": description,
        "isproductoverridden": True,
        "quantity": 1,
    }


def invoiced_order(api: httpx.Client) -> tuple[str, str]:
    """An active order with one line, then closed the way the invoices template closes it."""
    order = create(api, "salesorders", {"name": "To invoice"})
    line = create(api, "salesorderdetails", write_in_line("salesorders", order, "Before"))
    # Closing an active order is an update of an active row: other columns may come along.
    closing = api.patch(
        f"salesorders({order})", json={"statecode": 4, "statuscode": 100003, "name": "Invoiced"}
    )
    assert closing.status_code == 204, closing.text
    return order, line


# --- salesorder: "Only active orders can be edited." ---------------------------------------


@pytest.mark.parametrize(("state", "status"), [(1, 3), (2, 4), (3, 100001), (4, 100003)])
def test_an_order_that_is_not_active_refuses_an_update(api: httpx.Client, state: int, status: int) -> None:
    order = create(api, "salesorders", {"name": "Closed", "statecode": state, "statuscode": status})
    refused(api.patch(f"salesorders({order})", json={"name": "Changed"}))
    refused(api.put(f"salesorders({order})/name", json={"value": "Changed"}))
    update = [{"@odata.type": "Microsoft.Dynamics.CRM.salesorder", "salesorderid": order, "name": "Changed"}]
    refused(api.post("salesorders/Microsoft.Dynamics.CRM.UpdateMultiple", json={"Targets": update}))
    refused(api.post("salesorders/Microsoft.Dynamics.CRM.UpsertMultiple", json={"Targets": update}))
    assert row(api, "salesorders", order, "name,statecode,statuscode") == {
        "salesorderid": order,
        "name": "Closed",
        "statecode": state,
        "statuscode": status,
    }


def test_an_active_order_stays_editable(api: httpx.Client) -> None:
    order = create(api, "salesorders", {"name": "Active"})
    assert api.patch(f"salesorders({order})", json={"name": "Edited"}).status_code == 204
    assert row(api, "salesorders", order, "name")["name"] == "Edited"


def test_the_lines_of_an_invoiced_order_can_be_neither_created_updated_nor_deleted(api: httpx.Client) -> None:
    order, line = invoiced_order(api)
    assert row(api, "salesorders", order, "name,statecode,statuscode") == {
        "salesorderid": order,
        "name": "Invoiced",
        "statecode": 4,
        "statuscode": 100003,
    }
    refused(api.post("salesorderdetails", json=write_in_line("salesorders", order, "New")))
    refused(
        api.patch(f"salesorderdetails({uuid.uuid4()})", json=write_in_line("salesorders", order, "Upsert"))
    )
    refused(api.patch(f"salesorderdetails({line})", json={"quantity": 2}))
    update = [
        {"@odata.type": "Microsoft.Dynamics.CRM.salesorderdetail", "salesorderdetailid": line, "quantity": 2}
    ]
    refused(api.post("salesorderdetails/Microsoft.Dynamics.CRM.UpdateMultiple", json={"Targets": update}))
    refused(api.delete(f"salesorderdetails({line})"))
    lines = api.get(
        "salesorderdetails",
        params={"$select": "productdescription,quantity", "$filter": f"_salesorderid_value eq {order}"},
    ).json()["value"]
    assert [(x["salesorderdetailid"], x["productdescription"], x["quantity"]) for x in lines] == [
        (line, "Before", 1)
    ]


def test_a_line_cannot_be_moved_onto_an_invoiced_order(api: httpx.Client) -> None:
    closed, _ = invoiced_order(api)
    active = create(api, "salesorders", {"name": "Open"})
    line = create(api, "salesorderdetails", write_in_line("salesorders", active, "Moving"))
    refused(
        api.patch(f"salesorderdetails({line})", json={"salesorderid@odata.bind": f"/salesorders({closed})"})
    )
    assert row(api, "salesorderdetails", line, "_salesorderid_value")["_salesorderid_value"] == active


def test_a_batch_change_set_touching_a_closed_order_fails_as_a_whole(api: httpx.Client) -> None:
    order, line = invoiced_order(api)
    other = create(api, "salesorders", {"name": "Open in the batch"})
    response = send(
        api,
        [
            [
                operation(
                    "PATCH", f"salesorders({other})", json.dumps({"name": "Changed in the batch"}), "1"
                ),
                operation("PATCH", f"salesorderdetails({line})", json.dumps({"quantity": 5}), "2"),
            ]
        ],
    )
    answers = parts(response)
    assert [status for status, _, _ in answers] == [400]
    assert json.loads(answers[0][2]) == {"error": READ_ONLY}
    assert row(api, "salesorders", other, "name")["name"] == "Open in the batch"
    assert row(api, "salesorderdetails", line, "quantity")["quantity"] == 1
    assert row(api, "salesorders", order, "statecode")["statecode"] == 4


def test_set_state_and_assign_stay_allowed_on_a_closed_order(api: httpx.Client) -> None:
    order, _ = invoiced_order(api)
    owner = api.get("WhoAmI").json()["UserId"]
    assert (
        api.patch(f"salesorders({order})", json={"ownerid@odata.bind": f"/systemusers({owner})"}).status_code
        == 204
    )
    assert api.patch(f"salesorders({order})", json={"statecode": 3, "statuscode": 100002}).status_code == 204
    assert row(api, "salesorders", order, "statecode,statuscode") == {
        "salesorderid": order,
        "statecode": 3,
        "statuscode": 100002,
    }
    # A state change may not carry other columns onto a closed row.
    refused(api.patch(f"salesorders({order})", json={"statecode": 0, "name": "Sneaked in"}))
    assert row(api, "salesorders", order, "name,statecode") == {
        "salesorderid": order,
        "name": "Invoiced",
        "statecode": 3,
    }


# --- invoice: "Paid and canceled invoices are read-only ... unless they are reactivated." ---


@pytest.mark.parametrize(("state", "status"), [(2, 100001), (3, 100003)])
def test_a_paid_or_canceled_invoice_is_read_only_until_reactivated(
    api: httpx.Client, state: int, status: int
) -> None:
    invoice = create(api, "invoices", {"name": "Settled"})
    line = create(api, "invoicedetails", write_in_line("invoices", invoice, "Billed"))
    assert (
        api.patch(f"invoices({invoice})", json={"statecode": state, "statuscode": status}).status_code == 204
    )
    refused(api.patch(f"invoices({invoice})", json={"name": "Changed"}))
    refused(api.patch(f"invoicedetails({line})", json={"quantity": 3}))
    refused(api.post("invoicedetails", json=write_in_line("invoices", invoice, "Late")))
    assert row(api, "invoices", invoice, "name")["name"] == "Settled"
    # Reactivated, it can be edited again.
    assert api.patch(f"invoices({invoice})", json={"statecode": 0}).status_code == 204
    assert api.patch(f"invoices({invoice})", json={"name": "Corrected"}).status_code == 204
    assert api.patch(f"invoicedetails({line})", json={"quantity": 3}).status_code == 204
    assert row(api, "invoices", invoice, "name,statecode,statuscode") == {
        "invoiceid": invoice,
        "name": "Corrected",
        "statecode": 0,
        "statuscode": 1,
    }
    assert row(api, "invoicedetails", line, "quantity")["quantity"] == 3


def test_an_active_billed_invoice_stays_editable(api: httpx.Client) -> None:
    # The invoices template writes invoices Active with status Billed (4), and updates them later.
    invoice = create(api, "invoices", {"name": "Billed", "statecode": 0, "statuscode": 4})
    assert api.patch(f"invoices({invoice})", json={"name": "Billed again"}).status_code == 204
    assert row(api, "invoices", invoice, "name")["name"] == "Billed again"


# --- quote: "Only draft quotes can be edited." ----------------------------------------------


def test_only_a_draft_quote_can_be_edited(api: httpx.Client) -> None:
    quote = create(api, "quotes", {"name": "Draft"})
    line = create(api, "quotedetails", write_in_line("quotes", quote, "Drafted"))
    assert api.patch(f"quotes({quote})", json={"name": "Still draft"}).status_code == 204
    # Activating a draft quote is a state change of an editable row.
    assert api.patch(f"quotes({quote})", json={"statecode": 1}).status_code == 204
    refused(api.patch(f"quotes({quote})", json={"name": "Active now"}))
    refused(api.patch(f"quotedetails({line})", json={"quantity": 4}))
    refused(api.post("quotedetails", json=write_in_line("quotes", quote, "Added")))
    assert row(api, "quotes", quote, "name,statecode,statuscode") == {
        "quoteid": quote,
        "name": "Still draft",
        "statecode": 1,
        "statuscode": 2,
    }
