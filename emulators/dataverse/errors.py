"""The errors the emulated Dataverse Web API answers with, worded like the real service.

Every failure is an `ODataError(status, code, message)` rendered as
``{"error": {"code": "0x…", "message": "…"}}``. Sources, so a reader can tell a
documented text from an inferred one:

* powerapps-docs ``perform-conditional-operations-using-web-api.md``: the 404 of a missing
  row (``account With Id = … Does Not Exist``), the 412 texts of ``If-None-Match: *`` and of
  a version mismatch.
* SupportArticles-docs ``web-api-client-errors.md``: ``Resource not found for the segment``,
  ``Could not find a property named … on type …``, ``No HTTP resource was found that
  matches the request URI`` and the ``0x80048d19`` "Error identified in Payload" shape of
  body errors (undeclared property with only annotations).
* ``use-alternate-key-reference-record.md``: the invalid alternate key message.
* ``bulk-operations.md``: ``Cannot insert duplicate key.`` and ``… With Ids = … Do Not
  Exist`` of the bulk messages.
* Widely quoted service texts (not in the docs): ``A validation error occurred. The length
  of …`` (0x80044331), ``… is outside the valid range. Accepted Values: …`` (0x8004431a), ``The
  'CreateMultiple' method does not support entities of type …``, ODL's ``The property 'x'
  does not exist on type …`` inside the 0x80048d19 payload error.
* ``web-service-error-codes.md`` (its ``data-service-error-codes.md`` table):
  ``InvalidStateCodeStatusCode`` 0x80048408, a status reason that is not one of the state's.
* ``use-change-tracking-synchronize-data-external-systems.md``: ``The "$filter" query
  parameter isn't supported when Change Tracking is enabled.`` (also $orderby, $expand, $top).
* ``web-service-error-codes.md``: ``CannotUpdateBecauseItIsReadOnly`` 0x8004022e, "The object
  cannot be updated because it is read-only.": what a write to a closed document (or to a line
  of one) gets. The docs name no error for it; this is the closest documented one (inferred).
* PowerApps-Samples (change tracking, metadata cache): ``Version stamp associated with the
  client has expired. Please perform a full sync.``, ErrorCodes.ExpiredVersionStamp 0x80044352.
* Inferred (marked below): the codes of the last ones where no capture shows them, the
  missing-required and read-only texts, the URL-length and key-character errors.
"""

from __future__ import annotations

from emulators.odata.errors import ODataError

CRM = "Microsoft.Dynamics.CRM"
PAYLOAD_HELP = "https://go.microsoft.com/fwlink/?linkid=2195293"

OBJECT_DOES_NOT_EXIST = "0x80040217"
DUPLICATE_RECORD = "0x80040237"
DUPLICATE_KEY = "0x80060892"
VERSION_MISMATCH = "0x80060882"
PAYLOAD_ERROR = "0x80048d19"
STRING_TOO_LONG = "0x80044331"
OPTION_OUT_OF_RANGE = "0x8004431a"
INVALID_ARGUMENT = "0x80040203"
MESSAGE_NOT_SUPPORTED = "0x80040800"  # inferred: SdkEntityDoesNotSupportMessage
SEGMENT_NOT_FOUND = "0x8006088a"
QUERY_ERROR = "0x0"
INVALID_STATE_STATUS = "0x80048408"
READ_ONLY_RECORD = "0x8004022e"
EXPIRED_VERSION_STAMP = "0x80044352"
CHANGE_TRACKING_NOT_ENABLED = "0x80044353"  # inferred


def segment_not_found(segment: str) -> ODataError:
    return ODataError(404, SEGMENT_NOT_FOUND, f"Resource not found for the segment '{segment}'.")


def no_resource(url: str) -> ODataError:
    """Wrong HTTP method for a resource (documented for `POST WhoAmI`)."""
    return ODataError(404, "", f"No HTTP resource was found that matches the request URI '{url}'.")


def method_not_allowed(method: str, what: str) -> ODataError:
    return ODataError(405, "", f"The requested resource does not support http method '{method}' on {what}.")


def unknown_property(logical_name: str, name: str) -> ODataError:
    """`$select`/`$filter`/`$orderby` on a property the entity type lacks."""
    return ODataError(
        400, QUERY_ERROR, f"Could not find a property named '{name}' on type '{CRM}.{logical_name}'."
    )


def row_not_found(logical_name: str, row_id: str) -> ODataError:
    return ODataError(404, OBJECT_DOES_NOT_EXIST, f"{logical_name} With Id = {row_id} Does Not Exist")


def key_not_found(logical_name: str) -> ODataError:
    return ODataError(
        404,
        OBJECT_DOES_NOT_EXIST,
        f"A record with the specified key values does not exist in {logical_name} entity",
    )


def rows_not_found(logical_name: str, row_ids: list[str]) -> ODataError:
    return ODataError(
        404,
        OBJECT_DOES_NOT_EXIST,
        f"{logical_name.capitalize()} With Ids = {', '.join(row_ids)} Do Not Exist",
    )


def record_exists() -> ODataError:
    return ODataError(412, DUPLICATE_RECORD, "A record with matching key values already exists.")


def duplicate_insert() -> ODataError:
    """A bulk message whose record repeats a primary key (bulk-operations.md)."""
    return ODataError(412, DUPLICATE_RECORD, "Cannot insert duplicate key.")


def duplicate_alternate_key(key_name: str, values: list[object]) -> ODataError:
    shown = ",".join("" if v is None else str(v) for v in values)
    return ODataError(
        412,
        DUPLICATE_KEY,
        f"A record that has the attribute values {shown} already exists. The entity key {key_name} "
        "requires that this set of attributes contains unique values. Select unique values and try again.",
    )


def version_mismatch() -> ODataError:
    return ODataError(
        412,
        VERSION_MISMATCH,
        "The version of the existing record doesn't match the RowVersion property provided.",
    )


def invalid_key(logical_name: str) -> ODataError:
    qualified = f"{CRM}.{logical_name}"
    return ODataError(
        400,
        QUERY_ERROR,
        f"The key in the request URI is not valid for resource '{qualified}'. Ensure that the names and "
        f"number of key properties match the declared or alternate key properties for the resource "
        f"'{qualified}'.",
    )


def dangerous_path(character: str) -> ODataError:
    """A key value with one of `/ # < > * % & : \\ ? +` (inferred: ASP.NET's request path check)."""
    return ODataError(
        400, "", f"A potentially dangerous Request.Path value was detected from the client ({character})."
    )


def url_too_long(length: int) -> ODataError:
    """GET URLs over 32 KB (query-data-web-api.md; status and wording inferred)."""
    return ODataError(
        414,
        "",
        f"The request URL is too long ({length} characters; the limit is 32768). Send long queries "
        "in a $batch request body instead.",
    )


def payload_error(entity_set: str, inner: str) -> ODataError:
    """The 0x80048d19 shape of a request body the OData reader refuses."""
    return ODataError(
        400,
        PAYLOAD_ERROR,
        f"Error identified in Payload provided by the user for Entity :'{entity_set}', For more information "
        f"on this error please follow this help link {PAYLOAD_HELP}  ---->  InnerException : "
        f"Microsoft.OData.ODataException: {inner}",
    )


def property_does_not_exist(entity_set: str, logical_name: str, name: str) -> ODataError:
    return payload_error(
        entity_set,
        f"The property '{name}' does not exist on type '{CRM}.{logical_name}'. Make sure to only use "
        "property names that are defined by the type or mark the type as open type.",
    )


def undeclared_navigation(entity_set: str, navigation: str) -> ODataError:
    return payload_error(
        entity_set,
        f"An undeclared property '{navigation}' which only has property annotations in the payload but no "
        "property value was found in the payload. In OData, only declared navigation properties and "
        "declared named streams can be represented as properties without values.",
    )


def cannot_convert(entity_set: str, value: object, edm_type: str) -> ODataError:
    return payload_error(
        entity_set, f"Cannot convert the literal '{value}' to the expected type '{edm_type}'."
    )


def string_too_long(logical_name: str, column: str, max_length: int) -> ODataError:
    """Two spaces after "occurred." as in the documented batch error example."""
    return ODataError(
        400,
        STRING_TOO_LONG,
        f"A validation error occurred.  The length of the '{column}' attribute of the '{logical_name}' "
        f"entity exceeded the maximum allowed length of '{max_length}'.",
    )


def option_out_of_range(logical_name: str, column: str, value: object, accepted: list[int]) -> ODataError:
    return ODataError(
        400,
        OPTION_OUT_OF_RANGE,
        f"A validation error occurred. The value {value} of '{column}' on record of type '{logical_name}' is "
        f"outside the valid range. Accepted Values: {','.join(str(v) for v in accepted)}",
    )


def invalid_state_status() -> ODataError:
    """A status reason that does not belong to the row's state (status 400 inferred)."""
    return ODataError(
        400,
        INVALID_STATE_STATUS,
        "State code is invalid or state code is valid but status code is invalid for a specified state code.",
    )


def read_only_record() -> ODataError:
    """A write to a document in a read-only state, or to its lines (code chosen, status 400 inferred)."""
    return ODataError(400, READ_ONLY_RECORD, "The object cannot be updated because it is read-only.")


def required_missing(logical_name: str, column: str) -> ODataError:
    """A SystemRequired column missing or nulled (wording inferred)."""
    return ODataError(
        400,
        INVALID_ARGUMENT,
        f"Attribute '{column}' of entity '{logical_name}' is required and cannot be null.",
    )


def read_only(logical_name: str, column: str, detail: str) -> ODataError:
    """A column the platform computes (IsValidForCreate/Update false; wording inferred)."""
    return ODataError(
        400,
        INVALID_ARGUMENT,
        f"The attribute '{column}' of entity '{logical_name}' is not valid for create or update. {detail}",
    )


def bind_wrong_target(entity_set: str, navigation: str, expected: str, given: str) -> ODataError:
    return payload_error(
        entity_set,
        f"The navigation property '{navigation}' expects a reference to an entity of set '{expected}', "
        f"but the reference addresses '{given}'.",
    )


def bind_not_a_reference(entity_set: str, navigation: str, value: object) -> ODataError:
    return payload_error(
        entity_set, f"The value '{value}' of '{navigation}@odata.bind' is not a valid entity URL."
    )


def message_not_supported(message: str, logical_name: str) -> ODataError:
    return ODataError(
        400,
        MESSAGE_NOT_SUPPORTED,
        f"The '{message}' method does not support entities of type '{logical_name}'. "
        "MessageProcessorCache returned MessageProcessor.Empty.",
    )


def not_implemented(what: str) -> ODataError:
    """Something the real service does that this emulator does not (never silently ignored)."""
    return ODataError(501, "0x80040216", f"The Dataverse emulator does not implement {what}.")


def tracking_option_refused(option: str) -> ODataError:
    """A query option the docs list as unsupported with ``Prefer: odata.track-changes``
    (the status 400 is inferred)."""
    return ODataError(
        400, QUERY_ERROR, f'The "{option}" query parameter isn\'t supported when Change Tracking is enabled.'
    )


def expired_version_stamp() -> ODataError:
    """A delta token older than the organization's change tracking expiry (status inferred)."""
    return ODataError(
        400,
        EXPIRED_VERSION_STAMP,
        "Version stamp associated with the client has expired. Please perform a full sync.",
    )


def tracking_not_enabled(logical_name: str) -> ODataError:
    """Inferred text and code: the docs say only that the table must have change tracking on."""
    return ODataError(
        400, CHANGE_TRACKING_NOT_ENABLED, f"Change tracking is not enabled for the entity '{logical_name}'."
    )


def invalid_delta_token(token: str) -> ODataError:
    """Inferred: a ``$deltatoken`` this service never issued."""
    return ODataError(400, INVALID_ARGUMENT, f"The $deltatoken '{token}' is not valid.")
