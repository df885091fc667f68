"""The projector's positions, kept in MongoDB beside the read models.

Committed consumer-group offsets live in the broker and can be lost with it
(the embedded broker kept them across one restart and not across another).
Positions stored with the read models tell the projector where it really is,
and let it notice when the broker's log no longer reaches that far: the log
was lost or truncated, and the read models now describe events the log does
not hold. That is reported loudly and the projector stops, rather than
silently starting again from zero.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import TopicPartition
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from schemas.errors import JobledgerError

POSITIONS = "projector_positions"


@dataclass(frozen=True)
class LostLog:
    tp: TopicPartition
    applied_up_to: int
    log_ends_at: int


class LogLost(JobledgerError):
    """The broker's log ends before events the read models already hold."""

    exit_code = 3
    """The projector's exit code when it stops for this."""

    def __init__(self, lost: list[LostLog]) -> None:
        self.lost = lost
        parts = ", ".join(
            f"{gap.tp.topic}[{gap.tp.partition}] applied to {gap.applied_up_to}, log ends at {gap.log_ends_at}" for gap in lost
        )
        super().__init__(f"the log is shorter than the read models: {parts}")


def lost_partitions(stored: dict[TopicPartition, int], ends: dict[TopicPartition, int]) -> list[LostLog]:
    """Partitions whose stored position lies past the broker's end of the log."""
    return [LostLog(tp, position, ends[tp]) for tp, position in stored.items() if tp in ends and position > ends[tp]]


def _key(tp: TopicPartition) -> str:
    return f"{tp.topic}:{tp.partition}"


async def load(db: AsyncDatabase, partitions) -> dict[TopicPartition, int]:
    wanted = {_key(tp): tp for tp in partitions}
    found = {}
    async for document in db[POSITIONS].find({"_id": {"$in": list(wanted)}}):
        found[wanted[document["_id"]]] = document["offset"]
    return found


async def save(db: AsyncDatabase, positions: dict[TopicPartition, int]) -> None:
    if positions:
        await db[POSITIONS].bulk_write(
            [UpdateOne({"_id": _key(tp)}, {"$max": {"offset": offset}}, upsert=True) for tp, offset in positions.items()],
            ordered=False,
        )


async def reset(db: AsyncDatabase, partitions) -> None:
    await db[POSITIONS].delete_many({"_id": {"$in": [_key(tp) for tp in partitions]}})


async def rewind(db: AsyncDatabase, topic: str) -> None:
    """Every stored position on ``topic`` back to its start: the read models
    it fed are to be rebuilt from the log."""
    keys = [document["_id"] async for document in db[POSITIONS].find({}, {"_id": 1}) if document["_id"].startswith(f"{topic}:")]
    if keys:
        await db[POSITIONS].update_many({"_id": {"$in": keys}}, {"$set": {"offset": 0}})
