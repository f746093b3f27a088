"""What each benchmarked template needs: tables to seed, source and target, companies."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    """One template's initial load.

    :param template: mapping name (``include/mappings/<template>.yaml``).
    :param streams: generator methods that fill its source table (besides reference data).
    :param source: (service, entity set) the template reads.
    :param target: (service, entity set) it writes first.
    :param sdk: whether Microsoft's Dataverse SDK can load the same rows (Dataverse target).
    """

    template: str
    title: str
    streams: tuple[str, ...]
    source: tuple[str, str]
    target: tuple[str, str]
    sdk: bool
    companies: tuple[str, ...] = ("usmf", "demf")

    @property
    def source_service(self) -> str:
        return self.source[0]

    @property
    def target_service(self) -> str:
        return self.target[0]


SCENARIOS = {
    "products": Scenario(
        template="products",
        title="Products (F&O SellableReleasedProducts -> Dataverse products + price list items)",
        streams=("fno_products",),
        source=("fno", "SellableReleasedProducts"),
        target=("dataverse", "products"),
        sdk=True,
    ),
    "accounts": Scenario(
        template="accounts",
        title="Accounts (Dataverse accounts -> F&O CustomersV3)",
        streams=("accounts",),
        source=("dataverse", "accounts"),
        target=("fno", "CustomersV3"),
        sdk=False,
    ),
}
