"""The live runners, folded from ``jobs.workers`` and kept current (``GET /workers``).

The log's replay (:class:`~services.adapters.log_table.LogTable`): every
ingest that holds one sees the same runners, and none stores them."""

from __future__ import annotations

from datetime import datetime, timezone

from schemas import topics
from schemas.workers import WorkerBeat, WorkerStopped, evolve_workers, live_workers, parse_worker_record
from services.adapters.log_table import LogTable
from services.common.settings import ConnectionSettings


class WorkerTable:
    def __init__(self, settings: ConnectionSettings) -> None:
        self._workers: dict[str, WorkerBeat] = {}
        self._table = LogTable(
            settings, topics.WORKERS, parse_worker_record, key_of=lambda record: record.runner_id, fold=self._fold
        )

    def _fold(self, record: WorkerBeat | WorkerStopped) -> None:
        evolve_workers(self._workers, record)

    async def start(self) -> None:
        await self._table.start()

    async def stop(self) -> None:
        await self._table.stop()

    def live(self, now: datetime | None = None) -> list[WorkerBeat]:
        """The runners that beat lately, by runner id."""
        return live_workers(self._workers, now or datetime.now(timezone.utc))
