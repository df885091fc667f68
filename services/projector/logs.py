"""The projector's second part: ``jobs.logs`` into the read models (``job_logs``).

A consumer group of its own (``jobledger-logs``), so a flood of log lines
never delays the job states; offsets are committed once the lines they
cover are stored. Lines are not the log of record: a replay of the read
models leaves them as they are."""

from __future__ import annotations

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from pymongo.asynchronous.database import AsyncDatabase

from schemas import topics
from schemas.logs import JobLogLine, parse_log_line
from schemas.topics import DeadLetterStage
from services.adapters.consumer_runtime import Batches, Committable, ConsumerRuntime
from services.adapters.job_logs import JobLogStore
from services.adapters.log import DeadLetters
from services.common.lifecycle import Service
from services.projector.settings import ProjectorSettings

log = structlog.get_logger(component="log-projector")

FETCH_WAIT_MS = 500
"""How long an idle fetch waits: lines may reach the read models this late, and an idle log costs the broker two fetches a second."""
MAX_RECORDS = 2_000


class LogProjector(Service):
    def __init__(
        self, settings: ProjectorSettings, db: AsyncDatabase, producer: AIOKafkaProducer, consumer: AIOKafkaConsumer
    ) -> None:
        """``consumer``: a member of the group ``settings.logs_group_id``."""
        super().__init__()
        self.store = JobLogStore(db, settings.job_log_lines)
        self.producer = producer
        self.dead_letters = DeadLetters(producer, DeadLetterStage.LOGS)
        self.runtime = ConsumerRuntime(
            consumer,
            [topics.LOGS],
            self,
            name="log-projector",
            commit_interval_s=settings.commit_interval_s,
            fetch_wait_ms=FETCH_WAIT_MS,
            max_records=MAX_RECORDS,
        )
        self._stored: Committable = {}

    def tasks(self):
        return [self._run]

    async def on_start(self) -> None:
        await self.producer.start()
        await self.runtime.start()

    async def _run(self) -> None:
        await self.runtime.run(lambda: not self.should_stop)

    async def on_stop(self) -> None:
        await self.runtime.stop()
        await self.producer.stop()

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        self.store.forget()  # another member may have stored lines of these jobs meanwhile

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        self.store.forget()

    async def handle(self, batches: Batches) -> None:
        lines: list[JobLogLine] = []
        dead: list[tuple[ConsumerRecord, BaseException | str]] = []
        for batch in batches.values():
            for record in batch:
                try:
                    lines.append(parse_log_line(record.value))
                except Exception as error:
                    dead.append((record, f"not a job log line: {error}"))
        await self.dead_letters.send_all(dead)
        if lines:
            await self.store.add(lines)
        self._stored.update({tp: batch[-1].offset + 1 for tp, batch in batches.items() if batch})

    async def done(self) -> Committable:
        stored, self._stored = self._stored, {}
        return stored
