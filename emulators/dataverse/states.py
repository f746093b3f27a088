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

Closed documents are read-only (the ``statecode`` descriptions of the entity reference pages:
salesorder "Only active orders can be edited", invoice "Paid and canceled invoices are read-only
and can't be edited unless they are reactivated", quote "Only draft quotes can be edited"):
:func:`check_editable` refuses an update of a row in one of its table's ``read_only_states``
and the create, update or delete of a line whose header is in one. What stays allowed on a
closed row is what the reference pages list as messages of their own, sent as a PATCH: SetState
(``statecode``/``statuscode``: reactivating, or moving between closed states) and Assign
(``ownerid``). Closing an active order (the invoices template's PATCH of ``statecode`` 4) is an
update of an active row, so it is allowed with any other columns. The error, 400
``CannotUpdateBecauseItIsReadOnly`` 0x8004022e, is the closest documented one (inferred: the
docs name none for this case).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from emulators.dataverse import errors

if TYPE_CHECKING:
    from collections.abc import Sequence

    from emulators.schema.model import Catalog, Table

STATE, STATUS = "statecode", "statuscode"
#: Columns a write may change on a closed row: SetState and Assign (``ownerid`` and the
#: column that says which table the polymorphic owner is in).
_ALLOWED_ON_CLOSED = frozenset({STATE, STATUS, "ownerid", "ownerid__set"})


class StoredRows(Protocol):
    """Where :func:`check_editable` reads a header's state: the emulator's ``Store``, or a
    stand-in that keeps rows under the same (storage) column names."""

    @property
    def catalog(self) -> Catalog: ...

    def get(self, entity_set: str, key: Any, columns: Sequence[str] | None = None) -> dict[str, Any] | None:
        """The row with this primary key, or None."""
        ...


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


def check_editable(
    store: StoredRows,
    table: Table,
    *,
    current: dict[str, Any] | None,
    changes: dict[str, Any] | None,
) -> None:
    """Refuse a write to a closed document or to a line of one.

    ``current`` is the stored row of an update or delete (None for a create), ``changes``
    the storage values written (None for a delete); a line write touches the header of
    both (its current one and, when the write moves it, the new one).
    """
    if (
        current is not None
        and changes is not None
        and current.get(STATE) in table.read_only_states
        and not set(changes) <= _ALLOWED_ON_CLOSED
    ):
        raise errors.read_only_record()
    if table.owner_parent is None:
        return
    lookup = next(lk for lk in table.lookups if lk.column == table.owner_parent)
    parent_set = next(iter(lookup.targets.values()))
    parent_table = store.catalog.tables[parent_set]
    if not parent_table.read_only_states:
        return
    for parent_id in {p for p in _parent_ids(table, current, changes) if p is not None}:
        parent = store.get(parent_set, parent_id, columns=[STATE])
        if parent is not None and parent.get(STATE) in parent_table.read_only_states:
            raise errors.read_only_record()


def _parent_ids(table: Table, *rows: dict[str, Any] | None) -> tuple[Any, ...]:
    """The headers a line write touches: its current one and, when the write moves it, the new one."""
    if table.owner_parent is None:
        return ()
    return tuple(row.get(table.owner_parent) for row in rows if row is not None and table.owner_parent in row)
