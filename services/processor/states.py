"""The decider's job states, kept on local disk so a restart costs what changed, not all history.

The log is still the only source of truth: a state is written here only once
the events it folds are acknowledged in ``jobs.events``, together with the
offset of the last of them (one atomic RocksDB write batch). So what is on
disk is always the fold of a prefix of each partition of the log, and on
start the decider reads the log only past that offset — a restart with
100,000 finished jobs behind it reads a handful of records instead of
400,000.

Only unfinished jobs are loaded at start (their deadlines must be tracked);
a finished job is read from disk the first time a command names it (a retry
of a failed job, a repeated submit). If the log is shorter than what the
disk claims (the broker's data was replaced), the disk is wiped and the state
folded from the log again: the state must never be ahead of the log.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson
import structlog
from rocksdict import Options, Rdict, WriteBatch

from schemas import Job, topics
from services.adapters.broker import STARTING_BROKER_WAIT_S, wait_for_broker
from services.adapters.consumer_runtime import stop_consumer
from services.adapters.log import make_consumer, topic_partitions

log = structlog.get_logger(component="decider")

_JOB = b"j:"
_LIVE = b"l:"
_OFFSET = b"o:"


class DurableStates:
    """Job states and per-partition log offsets in one RocksDB under ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path), options=Options(raw_mode=True))

    def close(self) -> None:
        self._db.close()

    def wipe(self) -> None:
        self._db.close()
        shutil.rmtree(self.path, ignore_errors=True)
        self._db = Rdict(str(self.path), options=Options(raw_mode=True))

    def offset(self, partition: int) -> int | None:
        """The offset of the last ``jobs.events`` record of ``partition`` folded into the disk."""
        raw = self._db.get(_OFFSET + str(partition).encode())
        return int(raw) if raw is not None else None

    def offsets(self) -> dict[int, int]:
        return {int(key[len(_OFFSET) :]): int(value) for key, value in self._prefixed(_OFFSET)}

    def job(self, job_id: str) -> Job | None:
        raw = self._db.get(_JOB + job_id.encode())
        return Job.model_validate_json(raw) if raw is not None else None

    def live(self, partitions: set[int]) -> Iterator[tuple[int, Job]]:
        """The unfinished jobs of ``partitions``, with their partition."""
        for key, _ in self._prefixed(_LIVE):
            partition, _, job_id = key[len(_LIVE) :].partition(b":")
            if int(partition) in partitions:
                job = self.job(job_id.decode())
                if job is not None:
                    yield int(partition), job

    def write(self, partition: int, offset: int, jobs: Iterable[Job]) -> None:
        """``jobs`` as the log has them up to ``offset`` of ``partition``, atomically."""
        batch = WriteBatch(raw_mode=True)
        for job in jobs:
            key = job.job_id.encode()
            batch.put(_JOB + key, orjson.dumps(job.model_dump(mode="json")))
            live_key = _LIVE + str(partition).encode() + b":" + key
            if job.status.terminal:
                batch.delete(live_key)
            else:
                batch.put(live_key, b"")
        batch.put(_OFFSET + str(partition).encode(), str(offset).encode())
        self._db.write(batch)

    def _prefixed(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._db.items(from_key=prefix):
            if not (isinstance(key, bytes) and key.startswith(prefix)):
                return
            yield key, value


async def trust_only_the_log(settings, states: DurableStates) -> None:
    """Wipe ``states`` if they claim more of ``jobs.events`` than the log holds
    (its broker's data was replaced or the topic recreated): then the state is
    folded from the log again, as on a first start."""
    offsets = states.offsets()
    if not offsets:
        return
    await wait_for_broker(settings, timeout_s=STARTING_BROKER_WAIT_S)
    consumer = make_consumer(settings)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(await topic_partitions(settings, topics.EVENTS))
    finally:
        await stop_consumer(consumer)
    ends_by_partition = {tp.partition: end for tp, end in ends.items()}
    ahead = {partition: offset for partition, offset in offsets.items() if offset >= ends_by_partition.get(partition, 0)}
    if ahead:
        log.warning("job states on disk are ahead of the log; folding the log again", ahead=ahead, log_ends=ends_by_partition)
        states.wipe()
