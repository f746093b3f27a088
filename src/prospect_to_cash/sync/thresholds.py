"""The error threshold that decides a run: how many rejected and failed rows it tolerates.

A limit is a count (``"25"``) or a percentage of the rows read (``"5%"``); a run whose
rejected (or failed) rows are *above* its limit fails after writing everything it could,
one at or below it succeeds with a warning. Failures the service may heal fail the run
whatever the limit, so that Airflow retries it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prospect_to_cash.sync.contracts import DEFAULT_MAX_FAILED, DEFAULT_MAX_REJECTED
from prospect_to_cash.sync.errors import RowsRefused, ServiceFailures

__all__ = ["DEFAULT_MAX_FAILED", "DEFAULT_MAX_REJECTED", "Limit", "enforce"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    """A count of rows, or a percentage of the rows read."""

    value: float
    percent: bool

    @classmethod
    def parse(cls, text: str | int | Limit) -> Limit:
        """``12`` or ``"12"`` (rows), ``"2.5%"`` (of the rows read).

        :raises ValueError: for anything else, or a negative value.
        """
        if isinstance(text, Limit):
            return text
        raw = str(text).strip()
        percent = raw.endswith("%")
        try:
            value = float(raw[:-1]) if percent else int(raw)
        except ValueError as exc:
            raise ValueError(f"a row limit is a whole number or a percentage, got {text!r}") from exc
        if value < 0 or (percent and value > 100):
            raise ValueError(f"a row limit must be between 0 and 100% (or a count >= 0), got {text!r}")
        return cls(float(value), percent)

    def allowed(self, read: int) -> float:
        """The rows this limit allows out of ``read`` rows."""
        return read * self.value / 100 if self.percent else self.value

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.percent else str(int(self.value))


def enforce(name: str, counts: dict[str, int], *, max_rejected: str, max_failed: str) -> None:
    """Raise when a finished run's ``counts`` cross a threshold; warn when it has any
    rejected or failed row below them. ``name`` says which run (template and company).

    :raises ServiceFailures: when any write failed in a way the service may heal.
    :raises RowsRefused: when rejected or failed rows are above their limit.
    """
    read = int(counts.get("read", 0))
    rejected, failed = int(counts.get("rejected", 0)), int(counts.get("failed", 0))
    retryable = int(counts.get("failed_retryable", 0))
    if retryable:
        raise ServiceFailures(
            f"{name}: {retryable} write(s) failed at the service (5xx, timeout, throttling or "
            f"an ambiguous write); everything else was written and the rows are pending"
        )
    over = []
    for label, value, limit in (
        ("rejected", rejected, Limit.parse(max_rejected)),
        ("failed", failed, Limit.parse(max_failed)),
    ):
        if value > limit.allowed(read):
            over.append(f"{value} {label} of {read} read (max_{label} {limit})")
    if over:
        raise RowsRefused(f"{name}: above the error threshold: {'; '.join(over)}")
    if rejected or failed:
        log.warning(
            "%s: %d rejected and %d failed of %d read, within the threshold "
            "(max_rejected %s, max_failed %s); they are in the pending ledger",
            name,
            rejected,
            failed,
            read,
            max_rejected,
            max_failed,
        )
