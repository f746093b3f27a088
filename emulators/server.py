"""One process, three HTTPS servers in one asyncio loop: Entra ID, Dataverse, F&O.

Each service has its own port so each has its own resource URL (the `aud` of its tokens),
like the real services. The loop accepts connections, runs TLS, HTTP and the protection
middleware; Dataverse's and F&O's own request handling runs on a thread each
(`emulators.offload`), so a queue of large batches cannot hold up new connections.

The first line on stdout is one JSON object that tells clients where everything is (URLs,
credentials, CA bundle); everything else goes to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import uvicorn

from emulators.admin import create_admin_app
from emulators.client import EmulatorEndpoints
from emulators.config import ConfigStore
from emulators.context import Counters, ServiceContext
from emulators.credentials import ensure_credentials
from emulators.entra import TokenIssuer
from emulators.entra import create_app as create_entra_app
from emulators.offload import Offloaded, ServiceThread
from emulators.protection import ServiceProtection
from emulators.store import Store
from emulators.tls import ensure_tls

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from emulators.schema.model import Catalog

log = logging.getLogger("emulators")

HOST = "127.0.0.1"
PUBLIC_HOST = "localhost"
DEFAULT_PORT_BASE = 8440
ROOT_PATHS = {"dataverse": "/api/data/v9.2/", "fno": "/data/"}
PORT_OFFSETS = {"entra": 0, "dataverse": 1, "fno": 2}


@dataclass
class ServeOptions:
    """What `python -m emulators serve` was asked to do."""

    state_dir: Path
    port_base: int = DEFAULT_PORT_BASE
    config_file: Path | None = None
    seed: str | int | None = None
    seed_random: int = 2026
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = None


def load_catalog(service: str) -> Catalog:
    """The service's table catalogue (`emulators.schema.<service>.CATALOG`)."""
    module = importlib.import_module(f"emulators.schema.{service}")
    return module.CATALOG  # type: ignore[no-any-return]


def database_path(state_dir: Path, service: str) -> Path:
    return state_dir / f"{service}.sqlite"


def open_stores(state_dir: Path) -> dict[str, Store]:
    state_dir.mkdir(parents=True, exist_ok=True)
    return {
        service: Store(database_path(state_dir, service), load_catalog(service)) for service in ROOT_PATHS
    }


def seed_stores(stores: dict[str, Store], scale: str | int, random_seed: int = 2026) -> dict[str, int]:
    """Fill the stores through `emulators.seed.seed_store` (imported lazily: optional part)."""
    try:
        seed_module = importlib.import_module("emulators.seed")
        seed_store = seed_module.seed_store
    except (ImportError, AttributeError) as exc:
        raise SystemExit(
            f"cannot seed: emulators.seed.seed_store is not available ({exc}); "
            "start without --seed or add the seed module"
        ) from exc
    return dict(seed_store(stores, scale, random_seed=random_seed))


def parse_scale(value: str) -> str | int:
    """`demo` or a positive row count (`10000`, `1_000_000`)."""
    if value == "demo":
        return value
    try:
        number = int(value.replace("_", ""))
    except ValueError:
        raise ValueError(f"scale must be 'demo' or a row count, got {value!r}") from None
    if number <= 0:
        raise ValueError("scale must be positive")
    return number


def _bind(port: int) -> list[socket.socket]:
    """Listening sockets on 127.0.0.1 (and ::1 on the same port when available)."""
    primary = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    primary.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        primary.bind((HOST, port))
    except OSError:
        primary.close()
        raise
    sockets = [primary]
    actual = primary.getsockname()[1]
    if socket.has_ipv6:
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            v6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            v6.bind(("::1", actual))
            sockets.append(v6)
        except OSError:  # no IPv6 loopback here: localhost still resolves to 127.0.0.1
            v6.close()
    for sock in sockets:
        sock.listen(1024)
        sock.setblocking(False)
    return sockets


class _Server(uvicorn.Server):
    """uvicorn server that leaves signal handling to us (three servers share one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Idle keep-alive TLS connections would wait for the client's close_notify until the
        # graceful timeout; drop them at once (clients reconnect), let busy ones finish.
        for connection in list(self.server_state.connections):
            cycle = getattr(connection, "cycle", None)
            transport = getattr(connection, "transport", None)
            if transport is not None and (cycle is None or cycle.response_complete):
                transport.abort()
        await super().shutdown(sockets)


class EmulatorProcess:
    """Builds and runs the three services; `run()` returns after SIGTERM/SIGINT."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.stores: dict[str, Store] = {}
        self.servers: list[_Server] = []
        self.workers: dict[str, ServiceThread] = {}
        self.endpoints: EmulatorEndpoints | None = None

    def prepare(self) -> dict[str, list[socket.socket]]:
        opts = self.options
        state_dir = opts.state_dir.resolve()
        state_dir.mkdir(parents=True, exist_ok=True)
        self.tls = ensure_tls(state_dir)
        self.credentials = ensure_credentials(
            state_dir, tenant_id=opts.tenant_id, client_id=opts.client_id, client_secret=opts.client_secret
        )
        self.config_store = ConfigStore.load(state_dir, opts.config_file)

        sockets: dict[str, list[socket.socket]] = {}
        try:
            for name, offset in PORT_OFFSETS.items():
                sockets[name] = _bind(0 if opts.port_base == 0 else opts.port_base + offset)
        except OSError:
            for bound in sockets.values():
                for sock in bound:
                    sock.close()
            raise
        ports = {name: bound[0].getsockname()[1] for name, bound in sockets.items()}
        urls = {name: f"https://{PUBLIC_HOST}:{port}" for name, port in ports.items()}
        authority = f"{urls['entra']}/{self.credentials.tenant_id}"

        self.issuer = TokenIssuer(self.credentials, authority, lambda: self.config_store.current.entra)
        for service in ROOT_PATHS:
            self.issuer.add_resource(urls[service])

        self.stores = open_stores(state_dir)
        if opts.seed is not None:
            if any(any(store.counts().values()) for store in self.stores.values()):
                log.warning("stores already hold data; --seed %s skipped (use `reset` first)", opts.seed)
            else:
                counts = seed_stores(self.stores, opts.seed, opts.seed_random)
                log.info("seeded %s rows (%s)", sum(counts.values()), opts.seed)

        self.apps: dict[str, Any] = {"entra": create_entra_app(self.issuer)}
        self.protections: dict[str, ServiceProtection] = {}
        for service, root_path in ROOT_PATHS.items():
            counters = Counters()
            ctx = ServiceContext(
                service=service,
                catalog=self.stores[service].catalog,
                store=self.stores[service],
                resource=urls[service],
                service_root=f"{urls[service]}{root_path}",
                root_path=root_path,
                authority=authority,
                tenant_id=self.credentials.tenant_id,
                config_store=self.config_store,
                counters=counters,
            )
            app_module = importlib.import_module(f"emulators.{service}.app")
            worker = self.workers[service] = ServiceThread(service)
            protection = ServiceProtection(
                service=service,
                app=Offloaded(app_module.create_app(ctx), worker),
                issuer=self.issuer,
                config_store=self.config_store,
                counters=counters,
                root_path=root_path,
                resource=urls[service],
            )
            protection.admin_app = create_admin_app(protection, self.stores[service], worker)
            self.protections[service] = protection
            self.apps[service] = protection

        self.endpoints = EmulatorEndpoints(
            dataverse_url=urls["dataverse"],
            fno_url=urls["fno"],
            authority=authority,
            tenant_id=self.credentials.tenant_id,
            client_id=self.credentials.client_id,
            client_secret=self.credentials.client_secret,
            ca_bundle=str(self.tls.ca_bundle),
            state_dir=str(state_dir),
            admin={service: f"{urls[service]}/_admin" for service in ROOT_PATHS},
            pid=os.getpid(),
            entra_url=urls["entra"],
            dataverse_service_root=f"{urls['dataverse']}{ROOT_PATHS['dataverse']}",
            fno_service_root=f"{urls['fno']}{ROOT_PATHS['fno']}",
            ports=ports,
        )
        return sockets

    async def run(self, announce: bool = True) -> None:
        sockets = self.prepare()
        assert self.endpoints is not None
        for worker in self.workers.values():
            worker.start()
        for name in sockets:
            config = uvicorn.Config(
                self.apps[name],
                ssl_certfile=str(self.tls.cert_chain),
                ssl_keyfile=str(self.tls.private_key),
                log_config=None,
                log_level="warning",
                access_log=False,
                lifespan="off",
                server_header=False,
                timeout_keep_alive=30,
                timeout_graceful_shutdown=5,
            )
            self.servers.append(_Server(config))

        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)

        tasks = [
            asyncio.create_task(server.serve(sockets=bound))
            for server, bound in zip(self.servers, sockets.values(), strict=True)
        ]
        try:
            while not all(server.started for server in self.servers):
                if any(task.done() for task in tasks):
                    raise RuntimeError("an emulator server failed to start")
                await asyncio.sleep(0.01)
            if announce:
                sys.stdout.write(json.dumps(self.endpoints.to_dict(), separators=(",", ":")) + "\n")
                sys.stdout.flush()
            log.info(
                "emulators ready: entra %s, dataverse %s, fno %s",
                self.endpoints.entra_url,
                self.endpoints.dataverse_url,
                self.endpoints.fno_url,
            )
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
        finally:
            for server in self.servers:
                server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
            for service, store in self.stores.items():
                worker = self.workers.get(service)
                if worker is None or worker.stop():
                    store.close()
                else:  # still in a request: the process exit closes the store (uncommitted work lost)
                    log.warning("%s still busy with a request at shutdown; not waiting for it", service)
            for bound in sockets.values():
                for sock in bound:
                    with contextlib.suppress(OSError):
                        sock.close()
            log.info("emulators stopped")


def run_serve(options: ServeOptions) -> None:
    """Blocking entry point of `serve`: uvloop when installed, else asyncio."""
    process = EmulatorProcess(options)
    try:
        import uvloop
    except ImportError:
        asyncio.run(process.run())
    else:
        uvloop.run(process.run())
