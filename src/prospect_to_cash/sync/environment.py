"""The one overridable place for what differs per installation.

Value maps (payment terms, delivery terms, countries, units, price lists), defaults such
as customer group ``10`` and the legal entity ↔ business unit pairs are customer data,
not template logic. They live in ``include/mappings/environment.yaml``; an installation
layers its own file on top (named by ``P2C_ENVIRONMENT_FILE`` or passed by the DAG
layer). The override is deep-merged: mappings merge key by key, lists and scalars
replace, so an override only has to name what it changes.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import yaml

from prospect_to_cash.sync.contracts import CompanyPair
from prospect_to_cash.sync.errors import MappingError
from prospect_to_cash.sync.expressions import ExpressionError, lookup_path

if TYPE_CHECKING:
    from prospect_to_cash.sync.errors import MappingProblems

#: Environment variable naming an override file layered on ``environment.yaml``.
ENVIRONMENT_FILE_VARIABLE = "P2C_ENVIRONMENT_FILE"
#: Environment variable naming the mapping directory.
MAPPINGS_DIR_VARIABLE = "P2C_MAPPINGS_DIR"

ON_MISS = ("reject", "keep", "null", "default")


def default_mappings_dir() -> Path:
    """Where the template files are: ``P2C_MAPPINGS_DIR``, else the project's
    ``include/mappings`` (next to ``src/`` in a checkout, or under ``AIRFLOW_HOME`` / the
    working directory in a deployed Airflow project)."""
    configured = os.environ.get(MAPPINGS_DIR_VARIABLE)
    if configured:
        return Path(configured)
    candidates = [Path(__file__).resolve().parents[3] / "include" / "mappings"]
    if os.environ.get("AIRFLOW_HOME"):
        candidates.append(Path(os.environ["AIRFLOW_HOME"]) / "include" / "mappings")
    candidates.append(Path.cwd() / "include" / "mappings")
    for candidate in candidates:
        if (candidate / "environment.yaml").is_file():
            return candidate
    return candidates[0]


def map_key(value: Any) -> str:
    """The lookup form of a value-map key or of a value being mapped.

    YAML reads ``1:`` as an int and ``true:`` as a bool while a staged column holds
    ``"1"`` or ``"true"``; case and surrounding blanks do not distinguish codes in either
    service. So both sides are reduced to the same folded text.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip().casefold()


@dataclass(frozen=True)
class ValueMap:
    """A code translation table, with what to do for a code it does not know.

    :param on_miss: ``reject`` the row (default: a silent wrong value is worse than a
        dead letter), ``keep`` the source value, write ``null``, or use ``default``.
    """

    name: str
    entries: dict[str, Any]
    on_miss: str = "reject"
    default: Any = None

    @classmethod
    def from_spec(cls, name: str, spec: dict[str, Any]) -> ValueMap:
        if "entries" in spec:
            entries = spec["entries"] or {}
            on_miss = spec.get("on_miss", "reject")
            default = spec.get("default")
        else:
            entries, on_miss, default = spec, "reject", None
        folded = {map_key(k): v for k, v in entries.items()}
        if len(folded) != len(entries):
            raise MappingError(f"value map {name!r} has keys that differ only in case or type")
        return cls(name=name, entries=folded, on_miss=on_miss, default=default)

    def translate(self, value: Any) -> tuple[Any, bool]:
        """The mapped value and whether it was a miss (only ``reject`` makes a miss fatal)."""
        key = map_key(value)
        if key in self.entries:
            return self.entries[key], False
        if self.on_miss == "keep":
            return value, False
        if self.on_miss == "null":
            return None, False
        if self.on_miss == "default":
            return self.default, False
        return None, True


@dataclass(frozen=True)
class Environment:
    """Loaded and merged environment settings."""

    data: dict[str, Any]
    sources: tuple[str, ...]
    legal_entity: str | None = None  # set when company overlays were applied

    @property
    def company_pairs(self) -> list[CompanyPair]:
        return [CompanyPair(**pair) for pair in self.data.get("company_pairs", [])]

    def company_pair(self, legal_entity: str) -> CompanyPair:
        for pair in self.company_pairs:
            if pair.legal_entity.casefold() == legal_entity.casefold():
                return pair
        known = ", ".join(p.legal_entity for p in self.company_pairs)
        raise MappingError(
            f"legal entity {legal_entity!r} has no company pair in {', '.join(self.sources)} (known: {known})"
        )

    def for_company(self, legal_entity: str) -> Environment:
        """These settings as one company sees them: its pair's ``defaults`` and
        ``value_maps`` laid over the shared ones (a German entity has its own warehouse)."""
        pair = self.company_pair(legal_entity)
        overlay = {"defaults": pair.defaults, "value_maps": pair.value_maps}
        return Environment(
            data=deep_merge(self.data, overlay), sources=self.sources, legal_entity=pair.legal_entity
        )

    def value_map(self, name: str) -> ValueMap:
        maps = self.data.get("value_maps", {})
        if name not in maps:
            raise MappingError(f"value map {name!r} is not defined in {', '.join(self.sources)}")
        return ValueMap.from_spec(name, maps[name])

    def has_value_map(self, name: str) -> bool:
        return name in self.data.get("value_maps", {})


def resolve_env_value(value: Any, environment: Environment, problems: MappingProblems, where: str) -> Any:
    """A mapping value written ``{env: a.b.c}`` as this environment sets it, when the
    mapping compiles (an unknown path is a problem of the file); any other value as it is."""
    if isinstance(value, dict) and set(value) == {"env"}:
        try:
            return lookup_path(environment.data, str(value["env"]))
        except ExpressionError as exc:
            problems.add(where, str(exc))
            return None
    return value


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``: nested mappings merge, everything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _schema() -> dict[str, Any]:
    text = resources.files("prospect_to_cash.sync").joinpath("schemas/environment.schema.json").read_text()
    return json.loads(text)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise MappingError(f"{path.name}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise MappingError(f"{path.name}: expected a mapping at the top level")
    return data


def load_environment(
    mappings_dir: str | Path | None = None, override_file: str | Path | None = None
) -> Environment:
    """Read ``environment.yaml`` and layer the override on top, then validate.

    :param override_file: explicit override (the DAG layer passes it); when None,
        ``P2C_ENVIRONMENT_FILE`` is used if set.
    """
    directory = Path(mappings_dir) if mappings_dir else default_mappings_dir()
    base_path = directory / "environment.yaml"
    if not base_path.is_file():
        raise MappingError(f"no environment.yaml in {directory}")
    data = _read_yaml(base_path)
    sources = [str(base_path)]
    override = override_file or os.environ.get(ENVIRONMENT_FILE_VARIABLE)
    if override:
        override_path = Path(override)
        if not override_path.is_file():
            raise MappingError(f"environment override {override_path} does not exist")
        data = deep_merge(data, _read_yaml(override_path))
        sources.append(str(override_path))
    validator = jsonschema.Draft202012Validator(_schema())
    problems = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if problems:
        lines = [f"{'/'.join(map(str, p.absolute_path)) or '(top)'}: {p.message}" for p in problems]
        raise MappingError(f"environment ({' + '.join(Path(s).name for s in sources)}): " + "; ".join(lines))
    for name, spec in data.get("value_maps", {}).items():
        ValueMap.from_spec(name, spec)  # fail early on clashing keys
    return Environment(data=data, sources=tuple(sources))
