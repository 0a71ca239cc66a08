"""``billing.entitlements`` and ``billing.limits``: what a customer may use, now.

Access is granted by the customer's subscriptions whose status is ``trialing``, ``active`` or
``past_due`` (:data:`~qzpay.subscriptions.models.GRANTING`); ``incomplete``, ``paused``,
``unpaid``, ``canceled`` and ``incomplete_expired`` grant nothing. A customer's entitlements
are the union of the entitlement keys of those subscriptions' plans, and a limit is the
largest value among those plans that define it.

Each answer is one indexed read of the customer's granting subscriptions joined to their plans
(``Storage.grants``), never a scan of the customer's history; an unknown customer has no
access (``check`` is False, ``list`` empty, ``get`` None) rather than an error, so the
per-request question costs one read. A plan's entitlements or limits changed by
``billing.plans.update`` apply to its subscribers at once.
"""

from __future__ import annotations

from qzpay.storage.base import Storage
from qzpay.subscriptions import inputs
from qzpay.subscriptions.ledger import entitlement_keys


class EntitlementService:
    """``billing.entitlements`` (see the module docstring)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def check(self, customer_id: str, key: str, /) -> bool:
        """Whether the customer may use the feature ``key`` now."""
        customer, wanted = inputs.entitlement_query(customer_id, key)
        grants = await self._storage.grants(customer)
        return any(wanted in grant.entitlements for grant in grants)

    async def list(self, customer_id: str, /) -> list[str]:
        """The feature keys the customer may use now, sorted."""
        return entitlement_keys(await self._storage.grants(inputs.customer_only(customer_id)))


class LimitService:
    """``billing.limits`` (see the module docstring)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def get(self, customer_id: str, key: str, /) -> int | None:
        """The largest limit ``key`` among the plans that grant the customer access; None
        when none of them defines it (or nothing grants access)."""
        customer, name = inputs.entitlement_query(customer_id, key)
        values = [
            grant.limits[name]
            for grant in await self._storage.grants(customer)
            if name in grant.limits
        ]
        return max(values) if values else None
