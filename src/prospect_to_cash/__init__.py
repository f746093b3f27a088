"""Prospect-to-cash synchronization between Dynamics 365 Sales and Finance and Operations."""

from __future__ import annotations

__version__ = "0.1.0"
