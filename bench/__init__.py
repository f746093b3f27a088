"""Benchmark harness: initial-load speed and service-protection behaviour, reproducibly.

`python -m bench` seeds fresh emulators at a chosen scale (only the tables the chosen
templates need), sets a documented cost model through the admin routes, runs each
contender in its own subprocess on a copy of the same seeded data (the cost-model
ceiling, a naive one-request-per-record loader, Microsoft's Python SDK, and this
package's sync engine through its hooks), reads the emulators' admin counters, times
DAG-file parsing and writes `docs/benchmarks.md`.
"""

from __future__ import annotations
