"""The decider's state, per partition it owns.

- :class:`JobStates` — job states: the unfinished and recently decided ones in
  memory, every one on local disk (:class:`DurableStates`) as of the
  acknowledged log. Restored on assignment by folding ``jobs.events`` past the
  offset the disk has reached.
- :class:`ChangelogTable` — slot holders per concurrency key and schedules per
  id: JSON documents written through to a compacted topic
  (``jobs.slots.state``, ``jobs.schedules.state``) in the partition of the
  record that changed them, and read back from it on assignment.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet

import orjson
import structlog
from aiokafka import AIOKafkaProducer

from schemas import Job, SequenceGap, apply_next, parse_event, topics
from services.adapters.log import read_to_end
from services.common.settings import ConnectionSettings
from services.processor.states import DurableStates

log = structlog.get_logger(component="decider")


class JobStates:
    def __init__(self, durable: DurableStates) -> None:
        self.durable = durable
        self._memory: dict[str, Job] = {}
        self._partition: dict[str, int] = {}

    def get(self, job_id: str) -> Job | None:
        job = self._memory.get(job_id)
        return job if job is not None else self.durable.job(job_id)

    def partition_of(self, job_id: str) -> int | None:
        """The partition of a job held in memory (unfinished, or decided lately); ``None`` otherwise."""
        return self._partition.get(job_id)

    def put(self, partition: int, job: Job) -> None:
        self._memory[job.job_id] = job
        self._partition[job.job_id] = partition

    def acknowledged(self, partition: int, offset: int, jobs: list[Job]) -> None:
        """``jobs`` as of ``offset`` of their partition are in the log: keep them on
        disk, and out of memory once ended (the disk answers for them from now on)."""
        self.durable.write(partition, offset, jobs)
        for job in jobs:
            if job.status.terminal and self._memory.get(job.job_id) is job:
                del self._memory[job.job_id]
                del self._partition[job.job_id]

    def forget(self, partitions: set[int]) -> list[str]:
        """Drop the jobs of partitions this decider no longer owns; their ids."""
        gone = [job_id for job_id, partition in self._partition.items() if partition in partitions]
        for job_id in gone:
            del self._memory[job_id]
            del self._partition[job_id]
        return gone

    async def restore(self, settings: ConnectionSettings, partitions: set[int]) -> list[tuple[int, Job]]:
        """Fold ``jobs.events`` past what the disk holds for ``partitions``; the
        unfinished jobs of those partitions, now in memory, with their partition."""
        self.forget(partitions)  # only the disk and the log count: memory may hold what a lost decision left
        starts = {partition: _after(self.durable.offset(partition)) for partition in partitions}
        folded = 0
        async for records in read_to_end(settings, topics.EVENTS, starts):
            changed: dict[str, Job] = {}
            for record in records:
                try:
                    event = parse_event(record.value)
                    job = apply_next(changed.get(event.job_id) or self.durable.job(event.job_id), event)
                except SequenceGap as gap:
                    log.error("sequence gap while restoring job state", job_id=gap.job_id, expected=gap.expected, got=gap.got)
                    continue
                except Exception:  # not a job event (the projector dead-letters it), or one no rule folds
                    continue
                if job is not None:
                    changed[event.job_id] = job
            self.durable.write(records[0].partition, records[-1].offset, changed.values())
            folded += len(records)
        live = []
        for partition, job in self.durable.live(partitions):
            self.put(partition, job)
            live.append((partition, job))
        log.info("job states restored", partitions=sorted(partitions), folded_events=folded, unfinished_jobs=len(live))
        return live


def _after(offset: int | None) -> int | None:
    return None if offset is None else offset + 1


class ChangelogTable:
    """JSON documents by key, written through to a compacted changelog topic."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._rows: dict[str, dict] = {}
        self._partition: dict[str, int] = {}

    def get(self, key: str) -> dict | None:
        return self._rows.get(key)

    def items(self) -> list[tuple[str, dict]]:
        return list(self._rows.items())

    async def set(self, producer: AIOKafkaProducer, partition: int, key: str, document: dict):
        """Keep ``document`` and send it to the changelog; the delivery future."""
        self._rows[key] = document
        self._partition[key] = partition
        return await producer.send(self.topic, key=orjson.dumps(key), value=orjson.dumps(document), partition=partition)

    def forget(self, partitions: AbstractSet[int]) -> None:
        for key in [key for key, partition in self._partition.items() if partition in partitions]:
            del self._rows[key]
            del self._partition[key]

    async def restore(self, settings: ConnectionSettings, partitions: Iterable[int]) -> None:
        """The latest document per key of ``partitions``, from the changelog."""
        async for records in read_to_end(settings, self.topic, {partition: None for partition in partitions}):
            for record in records:
                try:
                    key = orjson.loads(record.key)
                except (orjson.JSONDecodeError, TypeError):
                    continue
                if record.value is None:
                    self._rows.pop(key, None)
                    self._partition.pop(key, None)
                    continue
                try:
                    self._rows[key] = orjson.loads(record.value)
                    self._partition[key] = record.partition
                except orjson.JSONDecodeError:
                    log.error("changelog record is not JSON; skipped", topic=self.topic, key=key, offset=record.offset)
