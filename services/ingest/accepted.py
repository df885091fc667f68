"""Read-your-writes: jobs (and schedules) this ingest accepted but the projector has not folded yet.

A client that got a 202 may GET the job at once. Until the projection has it,
ingest answers from the accepted command, folded by the decider's own rules
(state PENDING, version 0) instead of a 404. Bounded. With several ingest
replicas (``unknown_job_wait_s`` set), each also follows the submissions the
others append (:class:`AcceptedElsewhere`), and a read of a job it has not
heard of waits that long for it (see docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

import structlog

from schemas import Job, SubmitJob, decide, evolve, parse_command, topics
from schemas.schedules import Schedule
from services.adapters.consumer_runtime import stop_consumer
from services.adapters.log import make_consumer, topic_partitions
from services.common.settings import ConnectionSettings

log = structlog.get_logger(component="ingest")

FRESH_S = 5.0
"""A job accepted this recently, whose first event the log's tail has not
brought back yet, is answered as accepted without asking the read model:
the read model cannot be ahead of a tail that has heard nothing of it
unless that tail lags by seconds (a waiter reads the read model anyway
when the tail stays silent)."""


class AcceptedJobs:
    """The accepted commands, folded into a job only when one is read: most are
    projected before anybody asks, and deciding costs a third of a batch submit."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._commands: OrderedDict[str, tuple[SubmitJob, float]] = OrderedDict()

    def remember(self, command: SubmitJob) -> None:
        if self._capacity <= 0:
            return
        self._commands[command.job_id] = (command, time.monotonic())
        while len(self._commands) > self._capacity:
            self._commands.popitem(last=False)

    def recent(self, tenant: str, within_s: float, at_most: int) -> list[SubmitJob]:
        """``tenant``'s submissions accepted within ``within_s``, the last accepted first, at most ``at_most``."""
        found: list[SubmitJob] = []
        since = time.monotonic() - within_s
        for command, accepted_at in reversed(self._commands.values()):
            if accepted_at < since or len(found) >= at_most:
                break
            if command.tenant == tenant:
                found.append(command)
        return found

    def get(self, job_id: str, tenant: str, within_s: float | None = None) -> Job | None:
        """The job as accepted (PENDING, version 0); with ``within_s``, only if accepted that recently."""
        found = self._commands.get(job_id)
        if found is None:
            return None
        command, accepted_at = found
        if command.tenant != tenant or (within_s is not None and time.monotonic() - accepted_at > within_s):
            return None
        submitted = decide(command, None)[0]
        return evolve(None, submitted).model_copy(update={"version": 0})


class AcceptedSchedules:
    """Read-your-writes for schedules, as for jobs: the accepted, not yet projected ones."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._schedules: OrderedDict[str, Schedule] = OrderedDict()

    def remember(self, schedule: Schedule) -> None:
        self._schedules[schedule.schedule_id] = schedule
        while len(self._schedules) > self._capacity:
            self._schedules.popitem(last=False)

    def get(self, schedule_id: str, tenant: str) -> Schedule | None:
        schedule = self._schedules.get(schedule_id)
        return schedule if schedule is not None and schedule.tenant == tenant else None

    def deleted_ids(self) -> set[str]:
        """Schedules this replica accepted a deletion of: gone from listings at once."""
        return {schedule_id for schedule_id, schedule in self._schedules.items() if schedule.deleted_at is not None}


class AcceptedElsewhere:
    """With several ingest replicas: the jobs the others accept, from the tail
    of ``jobs.commands`` (outside any group, from its end), remembered as if
    accepted here. So a read that reaches this replica right after another
    answered 202 finds the job — PENDING, as accepted — even while no decider
    has decided it yet (a takeover may take a session timeout)."""

    def __init__(self, settings: ConnectionSettings, accepted: AcceptedJobs) -> None:
        self._settings = settings
        self._accepted = accepted
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="follow jobs.commands")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            consumer = make_consumer(self._settings)
            try:
                await consumer.start()
                consumer.assign(await topic_partitions(self._settings, topics.COMMANDS))
                await consumer.seek_to_end()
                while True:
                    for records in (await consumer.getmany(timeout_ms=1000)).values():
                        for record in records:
                            self._take(record.value)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the broker went away: reads wait for the tail of events meanwhile
                log.warning("lost the tail of jobs.commands; following it again", error=repr(error))
                await asyncio.sleep(1.0)
            finally:
                await stop_consumer(consumer)

    def _take(self, value: bytes) -> None:
        if b'"SubmitJob"' not in value:  # (most commands are not submissions: not parsed at all)
            return
        try:
            command = parse_command(value)
        except Exception:
            return  # (the decider dead-letters what it cannot read)
        if isinstance(command, SubmitJob):
            self._accepted.remember(command)
