"""ScheduleProjection: folds ``jobs.schedules`` into the ``schedules`` read model
with the same ``evolve_schedule`` the processor's scheduler uses."""

from __future__ import annotations

from pymongo import ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from schemas.schedules import ScheduleCommand, evolve_schedule
from services.adapters.projections import BatchOutcome
from services.adapters.readmodel import SCHEDULES, schedule_document, schedule_from_document


class ScheduleProjection:
    def __init__(self, db: AsyncDatabase, collection: str = SCHEDULES) -> None:
        self._collection = db[collection]

    def forget(self) -> None:
        """Nothing is cached: every batch reads what it folds."""

    async def apply(self, commands: list[ScheduleCommand]) -> BatchOutcome:
        """Fold a batch in one find and one bulk write."""
        if not commands:
            return BatchOutcome()
        ids = list({command.schedule_id for command in commands})
        stored = {
            document["_id"]: schedule_from_document(document) async for document in self._collection.find({"_id": {"$in": ids}})
        }
        changed = {}
        for command in commands:
            before = stored.get(command.schedule_id)
            after = evolve_schedule(before, command)
            if after is not None and after != before:
                stored[command.schedule_id] = changed[command.schedule_id] = after
        if changed:
            await self._collection.bulk_write(
                [ReplaceOne({"_id": key}, schedule_document(schedule), upsert=True) for key, schedule in changed.items()],
                ordered=False,
            )
        return BatchOutcome(applied=len(commands))
