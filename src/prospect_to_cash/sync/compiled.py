"""Templates compiled once per process: every step of every task needs its template, and
parsing and validating the YAML, the environment and every expression again for each would
repeat the same work (`compiled_template`)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

from prospect_to_cash.sync.environment import ENVIRONMENT_FILE_VARIABLE
from prospect_to_cash.sync.mapping import Template, load_template, template_file

#: Templates compiled in this process, by what they were compiled from (see `compiled_template`).
_COMPILED: dict[tuple[Any, ...], Template] = {}
_COMPILING: dict[tuple[Any, ...], threading.Lock] = {}
_COMPILED_LOCK = threading.Lock()


def _version(path: Path) -> tuple[str, str | None]:
    """A file as a cache key: its resolved path and a digest of its bytes (None: no file).

    The bytes rather than the modification time, which some file systems keep to the
    second: an edit made within it must still be seen. Hashing a mapping file costs a
    fraction of parsing and validating it.
    """
    try:
        return str(path.resolve()), hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return str(path), None


def compiled_template(
    name_or_path: str | Path,
    *,
    mappings_dir: str | Path | None = None,
    environment_file: str | Path | None = None,
    legal_entity: str | None = None,
) -> Template:
    """`load_template`, compiled once per process for the same files and company.

    Every step of a task (extract, snapshot, transform, load) needs the template; parsing
    and validating the YAML, the environment and every expression again for each would
    repeat the same work. The key is the mapping file, ``environment.yaml`` and the
    override (explicit or ``P2C_ENVIRONMENT_FILE``), each with its content, and
    the legal entity: a file edited since is compiled afresh.
    """
    path, directory = template_file(name_or_path, mappings_dir)
    override = environment_file or os.environ.get(ENVIRONMENT_FILE_VARIABLE)
    key = (
        _version(path),
        _version(directory / "environment.yaml"),
        _version(Path(override)) if override else None,
        (legal_entity or "").casefold(),
    )
    with _COMPILED_LOCK:  # one compilation per key, even when two steps start together
        key_lock = _COMPILING.setdefault(key, threading.Lock())
    with key_lock:
        found = _COMPILED.get(key)
        if found is None:
            found = _COMPILED[key] = load_template(
                path, mappings_dir=directory, environment_file=environment_file, legal_entity=legal_entity
            )
        return found
