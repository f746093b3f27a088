"""Command line of the emulators: `serve`, `seed`, `reset`, `show`.

python -m emulators serve [--state-dir DIR] [--port-base 8440|0] [--config FILE] [--seed demo|N]
python -m emulators seed  --state-dir DIR --scale demo|N
python -m emulators reset --state-dir DIR [--all]
python -m emulators show  [--state-dir DIR]

(`make demo` is the whole product on these emulators: `python -m devstack demo`.)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_STATE_DIR = Path("state/emulators")


def _scale(value: str) -> str | int:
    from emulators.server import parse_scale

    try:
        return parse_scale(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emulators", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run Entra ID, Dataverse and F&O (first stdout line is JSON)")
    serve.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    serve.add_argument(
        "--port-base", type=int, default=8440, help="Entra port; Dataverse +1, F&O +2; 0 = free ports"
    )
    serve.add_argument("--config", type=Path, help="JSON merged over config.json (limits, cost, faults)")
    serve.add_argument("--seed", type=_scale, help="seed empty stores first: demo or rows per large table")
    serve.add_argument("--random-seed", type=int, default=2026, help="seed of the data generator")
    serve.add_argument("--tenant-id", help="pin the tenant id (GUID)")
    serve.add_argument("--client-id", help="pin the client id (GUID)")
    serve.add_argument("--client-secret", help="pin the client secret")

    seed = commands.add_parser("seed", help="fill the stores with generated data")
    seed.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    seed.add_argument("--scale", type=_scale, default="demo", help="demo or rows per large table")
    seed.add_argument("--random-seed", type=int, default=2026)

    reset = commands.add_parser("reset", help="delete the databases (keep TLS and credentials)")
    reset.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    reset.add_argument("--all", action="store_true", help="also delete TLS files, credentials and config")

    show = commands.add_parser(
        "show", help="start (seeding the demo data into empty stores), print each service's row counts, stop"
    )
    show.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    show.add_argument("--port-base", type=int, default=0)
    return parser


def cmd_serve(args: argparse.Namespace) -> int:
    from emulators.config import ConfigError
    from emulators.server import ServeOptions, run_serve

    options = ServeOptions(
        state_dir=args.state_dir,
        port_base=args.port_base,
        config_file=args.config,
        seed=args.seed,
        seed_random=args.random_seed,
        tenant_id=args.tenant_id,
        client_id=args.client_id,
        client_secret=args.client_secret,
    )
    if args.config is not None and not args.config.exists():
        print(f"config file {args.config} does not exist", file=sys.stderr)
        return 2
    try:
        run_serve(options)
    except (ConfigError, ValueError) as exc:
        print(f"cannot start the emulators: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"cannot start the emulators: {exc} (is another instance running? try --port-base 0)",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from emulators.server import open_stores, seed_stores

    stores = open_stores(args.state_dir)
    try:
        started = time.perf_counter()
        counts = seed_stores(stores, args.scale, args.random_seed)
        elapsed = time.perf_counter() - started
    finally:
        for store in stores.values():
            store.close()
    print(json.dumps(counts, indent=2, sort_keys=True))
    print(f"seeded {sum(counts.values())} rows in {elapsed:.1f}s", file=sys.stderr)
    return 0


DATABASE_SUFFIXES = (".sqlite", ".sqlite-wal", ".sqlite-shm")


def cmd_reset(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    removed = []
    for service in ("dataverse", "fno"):
        for suffix in DATABASE_SUFFIXES:
            path = state_dir / f"{service}{suffix}"
            if path.exists():
                path.unlink()
                removed.append(path.name)
    if args.all:
        for name in ("credentials.json", "config.json"):
            path = state_dir / name
            if path.exists():
                path.unlink()
                removed.append(name)
        if (state_dir / "tls").exists():
            shutil.rmtree(state_dir / "tls")
            removed.append("tls/")
    print(f"removed from {state_dir}: {', '.join(removed) or 'nothing'}", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Start `serve --seed demo` in a subprocess, read row counts over HTTPS, stop it."""
    import ssl

    import httpx

    command = [sys.executable, "-m", "emulators", "serve", "--state-dir", str(args.state_dir)]
    command += ["--port-base", str(args.port_base), "--seed", "demo"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # stderr passes through
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            print("the emulators did not start (see the messages above)", file=sys.stderr)
            return 1
        endpoints = json.loads(line)
        verify = ssl.create_default_context(cafile=endpoints["ca_bundle"])
        with httpx.Client(verify=verify, timeout=30) as client:
            for service in ("dataverse", "fno"):
                counts = client.get(f"{endpoints['admin'][service]}/tables").raise_for_status().json()
                url = endpoints[f"{service}_url"]
                print(f"{service} at {url}: {sum(counts.values())} rows")
                width = max((len(name) for name in counts), default=0)
                for entity_set, count in sorted(counts.items()):
                    print(f"  {entity_set:{width}s} {count:>10}")
        print(f"Entra ID authority: {endpoints['authority']} (client id {endpoints['client_id']})")
        print(f"CA bundle: {endpoints['ca_bundle']}")
        return 0
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Third-party loggers stay quiet unless asked; secrets never reach any log line.
    if not args.verbose:
        for noisy in ("httpx", "httpcore", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    commands = {"serve": cmd_serve, "seed": cmd_seed, "reset": cmd_reset, "show": cmd_show}
    return commands[args.command](args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
