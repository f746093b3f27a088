"""The ``Prefer`` request header of the Dataverse Web API and the annotations it selects.

``Prefer`` is a comma-separated list whose values may be quoted and contain commas
themselves (``odata.include-annotations="A,B"``), so it is split quote-aware. Annotation
patterns follow OData: ``*`` matches everything, ``Namespace.*`` a namespace, a leading
``-`` excludes (compose-http-requests-handle-errors.md, "Request annotations").
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

MAX_PAGE_SIZE = 5000

FORMATTED_VALUE = "OData.Community.Display.V1.FormattedValue"
LOOKUP_LOGICAL_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
ASSOCIATED_NAVIGATION = "Microsoft.Dynamics.CRM.associatednavigationproperty"
TOTAL_COUNT_EXCEEDED = "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"
TOTAL_COUNT = "Microsoft.Dynamics.CRM.totalrecordcount"


@dataclass
class Preferences:
    """What a request asked for through ``Prefer`` (unknown preferences are ignored, per RFC 7240)."""

    max_page_size: int | None = None
    annotations: str | None = None
    return_representation: bool = False
    track_changes: bool = False
    continue_on_error: bool = False
    patterns: list[str] = field(default_factory=list)

    def wants(self, annotation: str) -> bool:
        """Whether ``odata.include-annotations`` selects this annotation term."""
        included = False
        for pattern in self.patterns:
            if pattern.startswith("-"):
                if fnmatch.fnmatchcase(annotation, pattern[1:]):
                    return False
            elif fnmatch.fnmatchcase(annotation, pattern):
                included = True
        return included

    @property
    def page_size(self) -> int:
        """Rows per page: the preference when valid, capped at Dataverse's 5000."""
        if self.max_page_size is None or self.max_page_size <= 0:
            return MAX_PAGE_SIZE
        return min(self.max_page_size, MAX_PAGE_SIZE)


def _split(value: str) -> list[str]:
    parts, current, quoted = [], [], False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def parse_prefer(values: Iterable[str]) -> Preferences:
    """Parse every ``Prefer`` header value of a request."""
    prefs = Preferences()
    for value in values:
        for item in _split(value):
            name, _, setting = item.partition("=")
            name = name.strip().lower()
            setting = setting.strip()
            if name == "odata.maxpagesize":
                try:
                    prefs.max_page_size = int(setting.strip('"'))
                except ValueError:
                    continue
            elif name == "odata.include-annotations":
                prefs.annotations = setting.strip('"')
                prefs.patterns = [p.strip() for p in prefs.annotations.split(",") if p.strip()]
            elif name == "return" and setting.strip('"').lower() == "representation":
                prefs.return_representation = True
            elif name == "odata.track-changes":
                prefs.track_changes = True
            elif name in ("odata.continue-on-error", "continue-on-error"):
                prefs.continue_on_error = setting.strip('"').lower() != "false"
    return prefs
