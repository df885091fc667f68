"""The service registry of every tenant, folded from ``jobs.services`` and kept current.

Ingest reads it to answer ``/services`` and to check a service call at
submit time; it is the log's replay (:class:`~services.adapters.log_table.LogTable`),
so every process that holds one agrees with the log, and none stores it.
"""

from __future__ import annotations

import asyncio

from schemas import topics
from schemas.services import Registry, ServiceDeleted, ServiceRegistered, evolve_registry, parse_service_record
from services.adapters.log_table import LogTable
from services.common.settings import ConnectionSettings


class ServiceRegistry:
    def __init__(self, settings: ConnectionSettings) -> None:
        self._services: Registry = {}
        self._changed = asyncio.Event()
        self._table = LogTable(
            settings,
            topics.SERVICES,
            parse_service_record,
            key_of=lambda record: (record.tenant, record.name),
            fold=self._fold,
        )

    def _fold(self, record: ServiceRegistered | ServiceDeleted) -> None:
        evolve_registry(self._services, record)
        self._changed.set()

    async def known(self, tenant: str, name: str, wait_s: float) -> ServiceRegistered | None:
        """The service, waiting up to ``wait_s`` for it to reach this process: a
        job submitted right after its service was registered may come here
        through the log before the registration does."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while (found := self.get(tenant, name)) is None and (left := deadline - loop.time()) > 0:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                break
        return found

    async def start(self) -> None:
        await self._table.start()

    async def stop(self) -> None:
        await self._table.stop()

    def get(self, tenant: str, name: str) -> ServiceRegistered | None:
        return self._services.get((tenant, name))

    def of_tenant(self, tenant: str) -> list[ServiceRegistered]:
        return sorted((found for (owner, _), found in self._services.items() if owner == tenant), key=lambda found: found.name)

    def appended(self, offset: int, record: ServiceRegistered | ServiceDeleted) -> None:
        """A record this process appended, acknowledged at ``offset``: in force at once here."""
        self._table.apply(offset, record)
