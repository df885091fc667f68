"""The projector's third part: the retention sweep (services.adapters.retention), on a timer."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import structlog
from pymongo.asynchronous.database import AsyncDatabase

from services.adapters.retention import sweep
from services.common.lifecycle import Service
from services.projector.settings import ProjectorSettings

log = structlog.get_logger(component="retention")


class RetentionSweep(Service):
    def __init__(self, settings: ProjectorSettings, db: AsyncDatabase) -> None:
        super().__init__()
        self.settings = settings
        self.db = db

    def tasks(self):
        return [self._sweep] if self.settings.retention else []

    async def _sweep(self) -> None:
        log.info("retention sweeps started", retention=self.settings.retention, every_s=self.settings.retention_sweep_s)
        while True:
            try:
                swept = await sweep(self.db, self.settings, datetime.now(timezone.utc))
                if swept:
                    log.info("finished jobs past their retention left the read models", jobs=swept)
            except Exception as error:  # the database is away: the next round tries again
                log.warning("retention sweep failed", error=repr(error))
            await asyncio.sleep(self.settings.retention_sweep_s)
