"""State and status reason of a written row: the pairing Dataverse enforces on every write.

``statecode`` (Status) and ``statuscode`` (Status Reason) have dependent values. What the
emulator does, and where Microsoft says so:

* A status reason belongs to exactly one state (``StatusOptionMetadata.State``; the
  "StatusCode Choices/Options" tables of each table's entity reference page). A write whose
  pair does not match is refused with ``InvalidStateCodeStatusCode`` (``0x80048408``, "State
  code is invalid or state code is valid but status code is invalid for a specified state
  code.", powerapps-docs "Web service error codes"); the HTTP status 400 is inferred.
* A write that sets the state without a status reason gets that state's DefaultStatus
  ("Behavior of specialized update operations": "When you update StateCode without
  specifying a StatusCode, the default status value will be set by the system";
  ``StateOptionMetadata.DefaultStatus``), even when the state does not change.
* A status reason alone is not a state change: "Define custom state model transitions" lets
  Update set ``statuscode`` to values "that don't represent a change in state" and sends
  state changes through SetState (today: Update of both columns). So a lone status reason
  must belong to the row's current state (on create: the default state) and is refused
  otherwise; the state is never derived from it.
* An explicit null status reason is refused the same way (inferred: the docs list no
  behaviour for it, and a row without a status reason has no valid pair).

Every write path calls :func:`settle_state`: create, upsert (PATCH), property PUT, the bulk
messages and each operation inside ``$batch``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emulators.dataverse import errors

if TYPE_CHECKING:
    from emulators.schema.model import Table

STATE, STATUS = "statecode", "statuscode"


def settle_state(table: Table, changes: dict[str, Any], current: dict[str, Any] | None) -> None:
    """Check the state/status pair a write leaves on a row; fill a state's DefaultStatus.

    ``changes`` are the storage values of the write (already type- and option-checked),
    ``current`` the stored row of an update (None for a create). Raises the Dataverse error
    of a mismatching pair; adds ``statuscode`` to ``changes`` when only the state was given.
    """
    state_field, status_field = table.field(STATE), table.field(STATUS)
    if state_field is None or status_field is None:
        return
    defaults = state_field.default_statuses or {}
    states_of = status_field.option_states or {}
    if STATE not in changes and STATUS not in changes:
        return
    if STATUS not in changes:
        state = changes[STATE]
        if state is not None:  # a null state is the required-level check's business
            changes[STATUS] = defaults[state]
        return
    status = changes[STATUS]
    if STATE in changes:
        state = changes[STATE]
    elif current is not None:
        state = current.get(STATE)
    else:
        state = state_field.default
    if status is None or states_of.get(status) != state:
        raise errors.invalid_state_status()
