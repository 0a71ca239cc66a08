"""What ``billing.plans`` and ``billing.prices`` do alike, written once in
:class:`RecordService`: the engine and strategy wiring, metadata merged under the service's
limit, archiving (locally in one unit of work, or through the providers), a provider's copy
taken as the truth (an archived record is never reactivated by one), and the reads by id, by
provider id, by page and by keyset. Each service keeps its public methods, whose docstrings the
blocking twins show, and the rules that are only its own (plan keys, lookup keys).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from qzpay._time import utcnow
from qzpay.blocking import KeysetWalk, Lister, PageRead
from qzpay.catalog import inputs
from qzpay.catalog.models import Plan, Price, archive_changes
from qzpay.catalog.reads import check_external_lookup, single_owner
from qzpay.catalog.resource import CatalogResource
from qzpay.catalog.wiring import Wiring
from qzpay.engine.core import Engine
from qzpay.engine.pending import SyncReport
from qzpay.engine.resource import Remote
from qzpay.engine.strategy import Strategy, choose
from qzpay.engine.unit_of_work import UnitOfWork, retrying
from qzpay.limits import DEFAULT_SYNC_BATCH
from qzpay.providers.base import PaymentProvider
from qzpay.storage.base import PlanFilter, PriceFilter

C = TypeVar("C", Plan, Price)
F = TypeVar("F", PlanFilter, PriceFilter)
P = TypeVar("P")
F_contra = TypeVar("F_contra", contravariant=True)
X = TypeVar("X")


class _FindByProviderId(Protocol[X]):
    def __call__(self, provider_id: str, /, *, provider: str | None) -> Awaitable[list[X]]: ...


class _Scan(Protocol[F_contra, X]):
    def __call__(
        self, filters: F_contra, /, *, before_id: str | None, limit: int
    ) -> Awaitable[list[X]]: ...


@dataclass(frozen=True)
class Reads(Generic[C, F]):
    """One kind's committed reads in storage (``storage.get_plan``, ``storage.scan_plans``...)."""

    get: Callable[[str], Awaitable[C | None]]
    find: _FindByProviderId[C]
    list: Lister[C, F]
    scan: _Scan[F, C]


async def archive_if_active(before: Plan | Price) -> dict[str, Any]:
    """The change that archives a record through the strategy (nothing if archived already)."""
    return archive_changes(utcnow()) if before.active else {}


class RecordService(Generic[C, F]):
    """The base of PlanService and PriceService (see the module docstring)."""

    def __init__(
        self,
        resource: CatalogResource[C],
        wiring: Wiring,
        remote: Remote[C] | None,
        reads: Reads[C, F],
    ) -> None:
        self._storage = wiring.storage
        self._resource: CatalogResource[C] = resource
        self._reads: Reads[C, F] = reads
        self.engine: Engine[C] = Engine(resource, wiring.storage, wiring.bus)
        self._strategy: Strategy[C] = choose(self.engine, remote, wiring.sync_errors)
        self._metadata_limit = wiring.metadata_limit

    # -- writes --------------------------------------------------------------------------
    def _with_metadata(
        self, before: C, changes: Mapping[str, Any], patch: Mapping[str, str | None]
    ) -> dict[str, Any]:
        """An update's ``changes`` with the metadata ``patch`` merged over ``before``'s."""
        merged = inputs.merge_metadata(before.metadata, patch, limit=self._metadata_limit)
        return {**changes, "metadata": merged}

    async def _archive_here(
        self, record_id: str, *, then: Callable[[UnitOfWork], Awaitable[None]] | None = None
    ) -> C:
        """Archive without providers, in one unit of work (``then`` adds to it). Archiving an
        archived record changes nothing."""

        async def block(work: UnitOfWork) -> C:
            before = await self.engine.load(work.tx, record_id)
            if not before.active:
                return before
            after = await self._resource.change(work, before, archive_changes(utcnow()))
            if then is not None:
                await then(work)
            return after

        return await retrying(self.engine.unit, block)

    async def _archive_at_providers(self, record_id: str) -> C:
        return await self._strategy.modify(record_id, archive_if_active, remote_visible=True)

    async def _take_remote(
        self,
        record_id: str,
        remote: P | None,
        merge: Callable[[C, P], C],
        *,
        provider: PaymentProvider,
        delivery: str | None,
    ) -> C | None:
        """``provider``'s copy ``remote`` taken as the truth (``merge`` is its adapter's
        ``merge_remote``); None means gone there, so archived here. An archived record stays
        archived whatever the provider says."""

        def take(before: C) -> C:
            if remote is None:
                return before.model_copy(update={"active": False})
            merged = merge(before, remote)
            return merged if before.active else merged.model_copy(update={"active": False})

        return await self._strategy.apply_remote(
            record_id, take, source=provider.name, delivery=delivery
        )

    async def sync_pending(self, *, limit: int = DEFAULT_SYNC_BATCH) -> SyncReport:
        """Finish or undo this service's work (plans', or prices') left pending at the
        providers by failures, crashes or "log" mode, as ``billing.customers.sync_pending``.
        A price waits for its plan to reach a provider that has plans: run the plans' first
        (``billing.catalog.sync_pending`` runs both, in that order)."""
        return await self._strategy.sync_pending(limit)

    # -- reads ---------------------------------------------------------------------------
    async def _by_external_id(
        self, provider_id: str, provider: str | None, *, field: str
    ) -> C | None:
        checked = check_external_lookup(provider_id, provider, field)
        found = await self._reads.find(checked, provider=provider)
        return single_owner(found, checked)

    def _page(self, check: Callable[[], F], limit: int, offset: int) -> PageRead[C, F]:
        """``list``'s page; ``check`` checks its arguments when it is read."""
        return PageRead(self._reads.list, check, limit=limit, offset=offset)

    def _walk(self, filters: F, page_size: int) -> KeysetWalk[C, F]:
        return KeysetWalk(self.scan_page, filters, page_size)

    async def scan_page(self, filters: F, before_id: str | None, limit: int) -> list[C]:
        """One keyset page (the blocking twin's ``iterate`` and the console read by it)."""
        return await self._reads.scan(filters, before_id=before_id, limit=limit)
