"""F&O's error answers, worded and shaped like the real service's.

Shapes, from captured F&O responses (third-party captures, *(3p)*):

* A failed write: ``{"error": {"code": "", "message": "An error has occurred.",
  "innererror": {"message": "Write failed for table row of type 'CustCustomerV3Entity'.
  Infolog: Warning: The value 'Local' in field 'Customer group' is not found in the related
  table 'Customer groups'.; Warning: validateField failed on field
  'CustCustomerV3Entity.CustomerGroupId'.", "type":
  "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException", ...}}}``.
  Validation failures of this kind come back as 400.
* Creating a key that exists: the same envelope with status **500** and
  ``Infolog: Info: Cannot create a record in Customer groups (CustGroup). Customer group:
  Batch2, ...\\nThe record already exists..``.
* PATCH or DELETE of a missing row: 400, inner message ``No resources were found when
  selecting for update.``
* A path that names no entity set (wrong case included): ASP.NET Web API's 404
  ``{"Message": "No HTTP resource was found that matches the request URI '...'."}``.

Payload errors the OData reader raises before F&O's code runs (unknown property, wrong
JSON type, null for a non-nullable property) use ODL's own texts inside the same
envelope with ``Microsoft.OData.ODataException`` as type *(inferred: the envelope is the
one F&O uses for every error; the texts are ODL's)*.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emulators.odata.errors import ODataError
from emulators.schema.model import EdmType

if TYPE_CHECKING:
    from emulators.fno.entities import EntityView

WRITE_EXCEPTION = "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"
ODATA_EXCEPTION = "Microsoft.OData.ODataException"
GENERIC_MESSAGE = "An error has occurred."
NOT_FOUND_FOR_UPDATE = "No resources were found when selecting for update."


class RouteNotFound(ODataError):
    """No entity set (or other resource) matches the path: Web API's routing 404."""

    def __init__(self, url: str) -> None:
        super().__init__(404, "", f"No HTTP resource was found that matches the request URI '{url}'.")


class MethodNotAllowed(ODataError):
    """The resource exists but not for this HTTP method."""

    def __init__(self, method: str) -> None:
        super().__init__(405, "", f"The requested resource does not support http method '{method}'.")


def error_body(error: ODataError) -> dict[str, Any]:
    """The JSON body F&O sends for an error."""
    if isinstance(error, (RouteNotFound, MethodNotAllowed)):
        return {"Message": error.message}
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.inner is not None:
        body["innererror"] = error.inner
    return {"error": body}


def _inner(message: str, kind: str) -> dict[str, Any]:
    return {"message": message, "type": kind, "stacktrace": ""}


def payload_error(message: str) -> ODataError:
    """400 for a body the OData reader refuses (ODL wording inside F&O's envelope)."""
    return ODataError(400, "", GENERIC_MESSAGE, inner=_inner(message, ODATA_EXCEPTION))


def write_failed(view: EntityView, infolog: list[str], status: int = 400) -> ODataError:
    """F&O's AxODataWriteException: the entity's Infolog lines joined the way F&O joins them."""
    text = f"Write failed for table row of type '{view.names.aot_name}'. Infolog: {'; '.join(infolog)}"
    return ODataError(status, "", GENERIC_MESSAGE, inner=_inner(text, WRITE_EXCEPTION))


def not_found_for_update() -> ODataError:
    """PATCH / DELETE of a row the caller cannot see: F&O never creates on PATCH."""
    return ODataError(400, "", GENERIC_MESSAGE, inner=_inner(NOT_FOUND_FOR_UPDATE, WRITE_EXCEPTION))


def entity_not_found(entity_set: str) -> ODataError:
    """GET of a key that matches no visible row (ODL's segment wording)."""
    return ODataError(
        404,
        "",
        f"Resource not found for the segment '{entity_set}'.",
        inner=_inner(f"Resource not found for the segment '{entity_set}'.", ODATA_EXCEPTION),
    )


def uri_error(message: str) -> ODataError:
    """400 for a resource path ODL cannot parse (bad key segment)."""
    return ODataError(400, "", message, inner=_inner(message, ODATA_EXCEPTION))


# -- ODL payload texts ------------------------------------------------------------------


def unknown_property(view: EntityView, name: str) -> str:
    return (
        f"The property '{name}' does not exist on type '{view.type_name}'. Make sure to only use "
        "property names that are defined by the type or mark the type as open type."
    )


def wire_type_name(view: EntityView, field_name: str) -> str:
    field = view.field(field_name)
    if field is None:
        return "Edm.Untyped"
    if field.type is EdmType.ENUM:
        return f"Microsoft.Dynamics.DataEntities.{field.enum_type}"
    return field.type.value


def cannot_convert(view: EntityView, field_name: str, value: object) -> str:
    literal = value if isinstance(value, str) else repr(value).lower() if isinstance(value, bool) else value
    return (
        f"Cannot convert the literal '{literal}' to the expected type '{wire_type_name(view, field_name)}'."
    )


def null_for_non_nullable(view: EntityView, field_name: str) -> str:
    type_name = wire_type_name(view, field_name)
    return (
        f"A null value was found for the property named '{field_name}', which has the expected type "
        f"'{type_name}[Nullable=False]'. The expected type '{type_name}[Nullable=False]' does not allow "
        "null values."
    )


def invalid_enum_member(value: object) -> str:
    """ASP.NET OData maps enum names through .NET's Enum.Parse (inferred wording)."""
    return f"Requested value '{value}' was not found."
