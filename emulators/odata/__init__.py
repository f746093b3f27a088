"""OData v4 protocol pieces shared by the Dataverse and F&O emulators (no HTTP server here).

* :mod:`emulators.odata.errors` - :class:`ODataError`, raised for every client-visible failure.
* :mod:`emulators.odata.query` - system query options: ``$filter`` parser, type checks, SQL.
* :mod:`emulators.odata.batch` - ``$batch`` multipart/mixed parsing and response building.
* :mod:`emulators.odata.csdl` - ``$metadata`` CSDL documents generated from a ``Catalog``.
"""

from __future__ import annotations

from emulators.odata.errors import ODataError

__all__ = ["ODataError"]
