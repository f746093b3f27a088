r"""Resource paths under `/data/`: entity set, key segment, property, `$count`.

F&O keys are composite and must be given in full and by name:
`CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')`; the order of the parts does
not matter, quotes inside values are doubled, the whole path may be percent-encoded.
Key errors carry ODL's wording (F&O parses URIs with Microsoft.OData.Core).

A path is decoded twice, as F&O's stack does: once by the web server before routing, then
each key value by the OData layer. So a key value holding ``/``, ``\`` or ``+`` encoded only
once (``%2F``) reaches routing as a bare character and F&O answers 404 "No HTTP resource
was found"; integrators encode those (and ``%``) twice (``%252F``). Sources: third-party
reports in docs/design.md's F&O notes; no Microsoft page documents it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from emulators.fno.errors import uri_error
from emulators.schema.model import EdmType

if TYPE_CHECKING:
    from emulators.fno.entities import EntityView

SYNTAX_ERROR = "Bad Request - Error in query syntax."
_INT_RE = re.compile(r"-?\d+")
_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})")
# Characters left readable in the key segment of URLs the emulator builds.
_KEY_SAFE = "=',()-._~:*!$@"
#: Characters of a key value that must reach the web server encoded twice.
UNROUTABLE_KEY_CHARACTERS = "/\\+"


class UnroutableKey(Exception):
    """A key segment holds a character the web server's routing takes as path syntax."""


@dataclass(frozen=True)
class ResourcePath:
    """A parsed path: `name`, raw key text (None without parentheses), following segments."""

    name: str
    key_text: str | None = None
    rest: tuple[str, ...] = ()


def parse_path(path: str) -> ResourcePath:
    """Split a percent-encoded path below the service root, respecting quoted key values.

    :raises UnroutableKey: a key value held ``/``, ``\\`` or ``+`` after the first decoding.
    """
    text = unquote(path)  # the web server's decoding
    i = 0
    while i < len(text) and text[i] not in "(/":
        i += 1
    name = text[:i]
    key_text: str | None = None
    if i < len(text) and text[i] == "(":
        start = i + 1
        j = start
        in_quote = False
        while j < len(text):
            ch = text[j]
            if ch == "'":
                in_quote = not in_quote  # a doubled quote toggles twice
            elif ch == ")" and not in_quote:
                break
            j += 1
        if j >= len(text):
            raise uri_error(SYNTAX_ERROR)
        key_text = text[start:j]
        if any(ch in key_text for ch in UNROUTABLE_KEY_CHARACTERS):
            raise UnroutableKey(key_text)
        i = j + 1
    rest = tuple(segment for segment in text[i:].split("/") if segment) if i < len(text) else ()
    if i < len(text) and text[i] != "/":
        raise uri_error(SYNTAX_ERROR)
    return ResourcePath(name, key_text, rest)


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts, current, in_quote = [], [], False
    for ch in text:
        if ch == "'":
            in_quote = not in_quote
        if ch == separator and not in_quote:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if in_quote:
        raise uri_error(SYNTAX_ERROR)
    parts.append("".join(current))
    return parts


def _literal(raw: str, kind: EdmType) -> Any:
    raw = raw.strip()
    if kind is EdmType.STRING:
        if len(raw) < 2 or raw[0] != "'" or raw[-1] != "'":
            raise uri_error(SYNTAX_ERROR)
        return unquote(raw[1:-1]).replace("''", "'")  # the OData layer's decoding
    if kind in (EdmType.INT32, EdmType.INT64):
        if not _INT_RE.fullmatch(raw):
            raise uri_error(SYNTAX_ERROR)
        return int(raw)
    if kind is EdmType.DATETIMEOFFSET:
        if not _DATETIME_RE.fullmatch(raw):
            raise uri_error(SYNTAX_ERROR)
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    raise uri_error(SYNTAX_ERROR)  # pragma: no cover - no other key types in the catalogue


def parse_key(view: EntityView, key_text: str) -> dict[str, Any]:
    """Every key field of the entity, typed; anything less (or more) is ODL's 400."""
    key_fields = view.table.key
    mismatch = (
        "The number of keys specified in the URI does not match number of key properties for "
        f"the resource '{view.type_name}'."
    )
    parts = _split_outside_quotes(key_text, ",") if key_text.strip() else []
    values: dict[str, Any] = {}
    for part in parts:
        name, eq, raw = ("", "", part) if part.strip().startswith("'") else part.partition("=")
        if not eq:
            if len(parts) > 1:
                raise uri_error("Segments with multiple key values must specify them in 'name=value' form.")
            if len(key_fields) > 1:
                raise uri_error(mismatch)
            name, raw = key_fields[0], part  # a single key may be given positionally
        name = name.strip()
        if name not in key_fields or name in values:
            raise uri_error(mismatch)
        field = view.field(name)
        assert field is not None
        values[name] = _literal(raw, field.type)
    if set(values) != set(key_fields):
        raise uri_error(mismatch)
    return {name: values[name] for name in key_fields}


def key_literal(view: EntityView, row: dict[str, Any]) -> str:
    """`dataAreaId='usmf',CustomerAccount='US-001'` for a row, percent-encoded for a URL
    (``%``, ``/``, ``\\`` and ``+`` twice, as `parse_path` needs them)."""
    parts = []
    for name in view.table.key:
        field = view.field(name)
        value = row[name]
        if field is not None and field.type is EdmType.STRING:
            text = "'" + _pre_encode(str(value)).replace("'", "''") + "'"
        else:
            text = str(value)
        parts.append(f"{name}={text}")
    return quote(",".join(parts), safe=_KEY_SAFE)


def _pre_encode(value: str) -> str:
    """The first of two encodings of the characters routing would otherwise see."""
    value = value.replace("%", "%25")
    for ch in UNROUTABLE_KEY_CHARACTERS:
        value = value.replace(ch, quote(ch, safe=""))
    return value
