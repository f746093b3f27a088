"""The two OData dialects the emulators speak, and the 400 each answers to a bad query.

Parsing, compiling and option handling all branch on the dialect; this is the one home
of its names, its limits and its error shape.
"""

from __future__ import annotations

from typing import Literal

from emulators.odata.errors import ODataError

Dialect = Literal["dataverse", "fno"]
DATAVERSE: Dialect = "dataverse"
FNO: Dialect = "fno"

FNO_ENUM_NAMESPACE = "Microsoft.Dynamics.DataEntities"
DATAVERSE_NAMESPACE = "Microsoft.Dynamics.CRM"

# Grammar levels entered while parsing (about seven per parenthesis): ~55 nested
# parentheses, far beyond real filters. Anything deeper is a 400, like ODL's limit.
MAX_DEPTH = 400
TOO_DEEP = "Recursion depth exceeded allowed limit."


def query_error(dialect: Dialect, message: str) -> ODataError:
    """Build the 400 a service returns for an invalid query, in that service's wording.

    Dataverse documents ``{"code": "0x0", "message": "<parser message>"}``. F&O runs
    ASP.NET Web API OData, which prefixes the parser message and repeats it in
    ``innererror`` (inferred from captures of that stack; F&O-specific captures are rare).
    """
    if dialect == FNO:
        return ODataError(
            400,
            "",
            f"The query specified in the URI is not valid. {message}",
            inner={"message": message, "type": "Microsoft.OData.ODataException", "stacktrace": ""},
        )
    return ODataError(400, "0x0", message)


def check_dialect(dialect: str) -> Dialect:
    if dialect not in (DATAVERSE, FNO):
        raise ValueError(f"unknown OData dialect {dialect!r}; expected 'dataverse' or 'fno'")
    return dialect  # type: ignore[return-value]
