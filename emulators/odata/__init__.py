"""OData v4 protocol pieces shared by the Dataverse and F&O emulators (no HTTP server here).

* :mod:`emulators.odata.errors` - :class:`ODataError`, raised for every client-visible failure.
* :mod:`emulators.odata.query` - the system query option set, ``$select`` and ``$orderby``.
* :mod:`emulators.odata.filter_parse` - the ``$filter`` lexer, AST and parser.
* :mod:`emulators.odata.filter_sql` - ``$filter`` type checks and SQLite.
* :mod:`emulators.odata.dialect` - the two dialects, their limits and their 400.
* :mod:`emulators.odata.batch` - ``$batch`` multipart/mixed parsing and response building.
* :mod:`emulators.odata.csdl` - ``$metadata`` CSDL documents generated from a ``Catalog``.
"""

from __future__ import annotations

from emulators.odata.errors import ODataError

__all__ = ["ODataError"]
