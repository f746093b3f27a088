"""Run-time settings of the emulators: service-protection limits, cost model, faults.

Everything here is a plain dataclass so the whole configuration is JSON: it is persisted
in `<state_dir>/config.json`, can be overridden at start (`serve --config file.json`) and
patched while running (`PATCH /_admin/config`). Patches are partial and validated field by
field, so a typo in a test fails loudly instead of silently configuring nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

if typing.TYPE_CHECKING:
    from pathlib import Path

SERVICES = ("dataverse", "fno")


class ConfigError(ValueError):
    """A configuration file or patch names an unknown key or carries a wrong value."""


@dataclass
class LimitsConfig:
    """Per-caller service-protection limits over a sliding window (Dataverse defaults).

    F&O's optional user-based limits mirror these numbers, so both services share the shape.
    """

    enabled: bool = True
    window_seconds: float = 300.0
    max_requests: int = 6000
    max_execution_ms: float = 1_200_000.0
    max_concurrent: int = 52
    # Each request sent while already throttled pushes the end of the block this far out,
    # the way Dataverse extends Retry-After for clients that keep pushing.
    retry_after_growth_seconds: float = 2.0
    # Concurrency errors are immediate and not tied to the window: a short fixed wait.
    concurrency_retry_after_seconds: int = 1

    def validate(self) -> None:
        _positive(self.window_seconds, "limits.window_seconds")
        _positive(self.max_requests, "limits.max_requests")
        _positive(self.max_execution_ms, "limits.max_execution_ms")
        _positive(self.max_concurrent, "limits.max_concurrent")
        _non_negative(self.retry_after_growth_seconds, "limits.retry_after_growth_seconds")
        _positive(self.concurrency_retry_after_seconds, "limits.concurrency_retry_after_seconds")


@dataclass
class CostConfig:
    """Simulated server time: a fixed latency per request plus a cost per operation.

    Both delay the response (without blocking the event loop) and count toward the
    execution-time limit. Operations are charged by the service app (`charge_operations`),
    so a `$batch` of 100 creates costs 100 operations but only one request.
    """

    request_latency_ms: float = 10.0
    operation_ms: float = 1.0

    def validate(self) -> None:
        _non_negative(self.request_latency_ms, "cost.request_latency_ms")
        _non_negative(self.operation_ms, "cost.operation_ms")


@dataclass
class FaultRule:
    """When one kind of fault fires: by probability and/or for the next `next_n` requests.

    `methods` and `path_contains` narrow the requests the rule applies to (empty = all),
    e.g. only `POST` to `$batch`. `next_n` counts down in memory as faults fire.
    """

    rate: float = 0.0
    next_n: int = 0
    methods: list[str] = field(default_factory=list)
    path_contains: str = ""

    def validate(self, name: str) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ConfigError(f"faults.{name}.rate must be between 0 and 1, got {self.rate}")
        _non_negative(self.next_n, f"faults.{name}.next_n")

    def applies_to(self, method: str, path: str) -> bool:
        if self.methods and method.upper() not in {m.upper() for m in self.methods}:
            return False
        return not self.path_contains or self.path_contains in path


@dataclass
class FaultsConfig:
    """Fault injection; deterministic for a given `seed` and request order."""

    seed: int = 2026
    throttle: FaultRule = field(default_factory=FaultRule)  # 429 with Retry-After
    unavailable: FaultRule = field(default_factory=FaultRule)  # 503 with the service's error body
    reset: FaultRule = field(default_factory=FaultRule)  # connection aborted, no response
    slow: FaultRule = field(default_factory=FaultRule)  # extra delay of `slow_ms`
    revoke_token: FaultRule = field(default_factory=FaultRule)  # all tokens revoked, 401
    # The service applies the request (a whole $batch included), then the answer is lost:
    reset_after: FaultRule = field(default_factory=FaultRule)  # connection aborted, no response
    unavailable_after: FaultRule = field(default_factory=FaultRule)  # 503 in place of the answer
    slow_ms: float = 3000.0
    retry_after_seconds: int = 1

    KINDS: typing.ClassVar[tuple[str, ...]] = (
        "revoke_token",
        "reset",
        "unavailable",
        "throttle",
        "reset_after",
        "unavailable_after",
        "slow",
    )

    def validate(self) -> None:
        for kind in self.KINDS:
            getattr(self, kind).validate(kind)
        _non_negative(self.slow_ms, "faults.slow_ms")
        _non_negative(self.retry_after_seconds, "faults.retry_after_seconds")


@dataclass
class ServiceConfig:
    """Everything configurable about one service (Dataverse or F&O)."""

    limits: LimitsConfig = field(default_factory=LimitsConfig)
    cost: CostConfig = field(default_factory=CostConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    # Recommended degree of parallelism sent as `x-ms-dop-hint` (0 = header not sent).
    dop_hint: int = 0

    def validate(self) -> None:
        self.limits.validate()
        self.cost.validate()
        self.faults.validate()
        _non_negative(self.dop_hint, "dop_hint")


@dataclass
class EntraConfig:
    """Token service settings; a short lifetime lets tests reach expiry quickly."""

    token_lifetime_seconds: int = 3599

    def validate(self) -> None:
        _positive(self.token_lifetime_seconds, "entra.token_lifetime_seconds")


#: F&O's documented maximum (and default) server-driven page size.
FNO_MAX_PAGE_SIZE = 10_000


#: How long an exported data package stays downloadable ("The file in Blob storage will
#: remain there for seven days", Data management package REST API).
DMF_PACKAGE_DAYS = 7


@dataclass
class DmfConfig:
    """Data management export projects of the F&O emulator (`emulators.fno.dmf`).

    `projects` maps a data project (definition group) to the entity set it exports; every
    project is set up as a user would for an incremental export: change tracking on the
    entity's primary table, default refresh type incremental. An execution stays
    `Executing` for `execution_seconds`; the next `fail_next` executions end `Failed`.
    """

    projects: dict[str, str] = field(default_factory=dict)
    execution_seconds: float = 0.3
    fail_next: int = 0
    package_expiry_seconds: int = DMF_PACKAGE_DAYS * 24 * 3600

    def validate(self) -> None:
        _non_negative(self.execution_seconds, "dmf.execution_seconds")
        _non_negative(self.fail_next, "dmf.fail_next")
        _positive(self.package_expiry_seconds, "dmf.package_expiry_seconds")


@dataclass
class FnoServiceConfig(ServiceConfig):
    """F&O settings: the shared ones plus company context and paging.

    Real F&O gives each Entra application a user whose default company is the one a query
    sees without `cross-company=true`; `client_companies` maps a client id (token `appid`)
    to that company, `default_company` covers every other client.
    """

    default_company: str = "usmf"
    client_companies: dict[str, str] = field(default_factory=dict)
    # Server-driven page size (`Prefer: odata.maxpagesize` may lower it, never raise it).
    page_size: int = FNO_MAX_PAGE_SIZE
    dmf: DmfConfig = field(default_factory=DmfConfig)

    def validate(self) -> None:
        super().validate()
        self.dmf.validate()
        for where, company in [("default_company", self.default_company)] + [
            (f"client_companies.{client}", company) for client, company in self.client_companies.items()
        ]:
            if not 1 <= len(company) <= 4:
                raise ConfigError(f"{where} must be a company id of 1 to 4 characters, got {company!r}")
        if not 1 <= self.page_size <= FNO_MAX_PAGE_SIZE:
            raise ConfigError(f"page_size must be between 1 and {FNO_MAX_PAGE_SIZE}, got {self.page_size}")


#: Dataverse's default `Organization.ExpireChangeTrackingInDays` (7 days), in seconds.
CHANGE_TRACKING_EXPIRY_SECONDS = 7 * 24 * 3600


@dataclass
class DataverseServiceConfig(ServiceConfig):
    """Dataverse settings: the shared ones plus the age at which a delta token expires
    (the organization's ExpireChangeTrackingInDays; tests lower it to reach expiry)."""

    change_tracking_expiry_seconds: int = CHANGE_TRACKING_EXPIRY_SECONDS

    def validate(self) -> None:
        super().validate()
        _positive(self.change_tracking_expiry_seconds, "change_tracking_expiry_seconds")


def _dataverse_defaults() -> DataverseServiceConfig:
    return DataverseServiceConfig(cost=CostConfig(request_latency_ms=10.0, operation_ms=1.0), dop_hint=4)


def _fno_defaults() -> FnoServiceConfig:
    # F&O OData is the slower of the two services per operation.
    return FnoServiceConfig(cost=CostConfig(request_latency_ms=20.0, operation_ms=2.0), dop_hint=0)


@dataclass
class EmulatorConfig:
    """The whole configuration file (`config.json`)."""

    entra: EntraConfig = field(default_factory=EntraConfig)
    dataverse: DataverseServiceConfig = field(default_factory=_dataverse_defaults)
    fno: FnoServiceConfig = field(default_factory=_fno_defaults)

    def validate(self) -> None:
        self.entra.validate()
        self.dataverse.validate()
        self.fno.validate()

    def service(self, name: str) -> ServiceConfig:
        if name not in SERVICES:
            raise KeyError(name)
        return typing.cast("ServiceConfig", getattr(self, name))


def to_dict(obj: Any) -> dict[str, Any]:
    """JSON-ready dict of a config dataclass."""
    return dataclasses.asdict(obj)


def merge(obj: Any, patch: Any, path: str = "") -> Any:
    """Return a copy of dataclass `obj` with the partial dict `patch` applied recursively.

    Unknown keys and wrongly typed values raise `ConfigError` naming the dotted path.
    """
    if not isinstance(patch, dict):
        raise ConfigError(f"{path or 'config'} must be a JSON object")
    hints = typing.get_type_hints(type(obj))
    known = {f.name for f in dataclasses.fields(obj)}
    changes: dict[str, Any] = {}
    for key, value in patch.items():
        where = f"{path}.{key}" if path else key
        if key not in known:
            raise ConfigError(f"unknown setting {where!r}")
        changes[key] = _coerce(getattr(obj, key), hints[key], value, where)
    return dataclasses.replace(obj, **changes)


def _coerce(current: Any, hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(current):
        return merge(current, value, where)
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        if value is None:
            return None
        origin = typing.get_origin(hint)
    if origin is dict:
        key_type, value_type = typing.get_args(hint)
        if not isinstance(value, dict) or not all(
            isinstance(k, key_type) and isinstance(v, value_type) for k, v in value.items()
        ):
            raise ConfigError(f"{where} must be an object of {value_type.__name__} values")
        return dict(value)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list) or not all(isinstance(v, item) for v in value):
            raise ConfigError(f"{where} must be a list of {item.__name__}")
        return list(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string")
        return value
    raise ConfigError(f"{where} cannot be set")  # pragma: no cover - every field type is handled


def _positive(value: float, name: str) -> None:
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0, got {value}")


def _non_negative(value: float, name: str) -> None:
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value}")


class ConfigStore:
    """The live configuration of a running emulator, persisted on every change.

    Readers call `current` on every request, so a patch takes effect immediately.
    """

    def __init__(self, path: Path, config: EmulatorConfig) -> None:
        self.path = path
        self._config = config
        self._lock = threading.Lock()
        self._listeners: list[typing.Callable[[EmulatorConfig], None]] = []

    @classmethod
    def load(cls, state_dir: Path, override_file: Path | None = None) -> ConfigStore:
        """Defaults, then `config.json` from the state directory, then `override_file`."""
        path = state_dir / "config.json"
        config = EmulatorConfig()
        for source in (path, override_file):
            if source is not None and source.exists():
                try:
                    data = json.loads(source.read_text())
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{source} is not valid JSON: {exc}") from exc
                config = merge(config, data)
        config.validate()
        store = cls(path, config)
        store.save()
        return store

    @property
    def current(self) -> EmulatorConfig:
        return self._config

    def service(self, name: str) -> ServiceConfig:
        return self._config.service(name)

    def on_change(self, listener: typing.Callable[[EmulatorConfig], None]) -> None:
        self._listeners.append(listener)

    def patch(self, patch: dict[str, Any]) -> EmulatorConfig:
        """Apply a partial patch to the whole configuration, validate, persist, notify."""
        with self._lock:
            updated = merge(self._config, patch)
            updated.validate()
            self._config = updated
            self.save()
        for listener in self._listeners:
            listener(updated)
        return updated

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(to_dict(self._config), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)
