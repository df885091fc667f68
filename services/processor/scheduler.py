"""The scheduler: keeps each schedule's state (from ``jobs.schedules``) and,
on each tick of its cron, submits the job its template describes.

The job goes first, acknowledged; then the record that moves the schedule on.
A crash in between submits the same tick again, and the tick's job id
(derived from the schedule and the tick) makes that a duplicate the decider
drops.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from schemas import encode_command, topics
from schemas.schedules import (
    Schedule,
    encode_schedule_command,
    evolve_schedule,
    parse_schedule_command,
    tick_command,
    ticked,
    ticks_due,
)
from services.adapters.log import DeadLetters
from services.processor.tables import ChangelogTable

log = structlog.get_logger(component="processor")


class Scheduler:
    def __init__(self, producer: AIOKafkaProducer, dead_letters: DeadLetters, sent: Callable) -> None:
        self.table = ChangelogTable(topics.SCHEDULE_STATE)
        self._producer = producer
        self._dead = dead_letters
        self._sent = sent
        """Receives each delivery the decider must see acknowledged before it commits."""
        self._submitted_ticks: dict[str, datetime] = {}
        """Latest tick submitted per schedule, until the table records it."""
        self._unfit: set[str] = set()

    async def keep(self, record) -> None:
        """Apply one record of ``jobs.schedules`` to the schedule's state."""
        command = await self._dead.parsed(record, parse_schedule_command, "schedule command")
        if command is None:
            return
        try:
            stored = self.table.get(command.schedule_id)
            before = Schedule.model_validate(stored) if stored is not None else None
            after = evolve_schedule(before, command)
        except Exception as error:
            log.exception("scheduler failed on a schedule command", schedule_id=command.schedule_id)
            await self._dead.send(record, error)
            return
        if after is not None and after != before:
            self._sent(await self.table.set(self._producer, record.partition, command.schedule_id, after.model_dump(mode="json")))

    async def tick(self, now: datetime) -> None:
        """Submit every tick due by ``now``, of every schedule this process owns."""
        for schedule_id, stored in self.table.items():
            try:
                schedule = Schedule.model_validate(stored)
            except ValidationError as error:
                self._report_once(schedule_id, "stored schedule is not valid; skipped", error)
                continue
            seen = self._submitted_ticks.get(schedule_id)
            if seen is not None and (schedule.last_tick is None or seen > schedule.last_tick):
                schedule = schedule.model_copy(update={"last_tick": seen})
            try:
                due = [(tick, tick_command(schedule, tick, now)) for tick in ticks_due(schedule, now)]
            except Exception as error:  # a schedule recorded before today's rules; the others go on
                self._report_once(schedule_id, "schedule cannot tick; skipped", error)
                continue
            for tick, submit in due:
                # The job first, acknowledged; then the record that moves the schedule on.
                await (await self._producer.send(topics.COMMANDS, key=submit.job_id.encode(), value=encode_command(submit)))
                await self._producer.send(
                    topics.SCHEDULES, key=schedule_id.encode(), value=encode_schedule_command(ticked(schedule, tick, now))
                )
                self._submitted_ticks[schedule_id] = tick

    def _report_once(self, key: str, message: str, error: Exception) -> None:
        if key not in self._unfit:
            self._unfit.add(key)
            log.error(message, key=key, error=f"{type(error).__name__}: {error}")
