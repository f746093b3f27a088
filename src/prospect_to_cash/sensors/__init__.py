"""Sensors of the provider: the run order between the P2C DAGs."""

from __future__ import annotations

from prospect_to_cash.sensors.run_order import RunOrderSensor, SameIntervalTrigger

__all__ = ["RunOrderSensor", "SameIntervalTrigger"]
