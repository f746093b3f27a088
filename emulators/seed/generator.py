"""Deterministic generator of the emulators' seed data (demo story and scale runs).

`Generator` puts the world together from one row builder per area, in dependency order;
the rules every row follows are in `layout.py` and STORY.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulators.seed.accounts import AccountRows
from emulators.seed.contacts import ContactRows
from emulators.seed.layout import BATCH_SIZE, Batch, Plan
from emulators.seed.orders import OrderRows
from emulators.seed.organisation import OrganisationRows
from emulators.seed.products import ProductRows
from emulators.seed.quotations import QuotationRows

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["BATCH_SIZE", "Generator", "Plan"]


class Generator(OrganisationRows, ProductRows, AccountRows, ContactRows, QuotationRows, OrderRows):
    """Builds every batch of one seeded world."""

    def batches(self) -> Iterator[Batch]:
        yield from self.dataverse_reference()
        yield from self.dataverse_products()
        yield from self.accounts()
        yield from self.contacts()
        yield from self.quotes()
        yield from self.sales_orders()
        yield from self.fno_reference()
        yield from self.fno_customers()
        yield from self.fno_contact_persons()
        yield from self.fno_products()
        yield from self.fno_orders()
