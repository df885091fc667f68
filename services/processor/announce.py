"""A runner's beats on ``jobs.workers`` (schemas.workers): who runs where, how busy.

What ``GET /workers`` lists. A beat is a small record every
``worker_beat_s``; a clean stop says so at once, and a runner that dies is
dropped by readers after a few missed beats."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from datetime import datetime, timezone

import structlog

from schemas import topics
from schemas.workers import WorkerBeat, WorkerStopped

log = structlog.get_logger(component="runner")

STOPPED_WAIT_S = 2.0
"""How long a stopping runner waits for the broker to take its last word; readers drop it later anyway."""


class Announcer:
    def __init__(
        self,
        producer,
        runner_id: str,
        concurrency: int,
        job_types: list[str],
        running: Callable[[], int],
        interval_s: float,
    ) -> None:
        self._producer = producer
        self._running = running
        self._interval_s = interval_s
        self._identity = dict(
            runner_id=runner_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            concurrency=concurrency,
            job_types=sorted(job_types),
            started_at=_now(),
            interval_s=interval_s,
        )
        self._key = runner_id.encode()
        self._stopping = False

    def beat(self) -> WorkerBeat:
        return WorkerBeat(**self._identity, running=self._running(), beat_at=_now())

    async def run(self) -> None:
        """Beat until cancelled; a beat the broker does not take is logged, the next one tries again."""
        while not self._stopping:
            try:
                await self._producer.send(topics.WORKERS, key=self._key, value=self.beat().model_dump_json().encode())
            except Exception as error:
                log.warning("worker beat not sent", error=repr(error))
            await asyncio.sleep(self._interval_s)

    async def stopped(self) -> None:
        """Say the runner is gone, before its producer stops; no beat follows."""
        self._stopping = True
        record = WorkerStopped(runner_id=self._identity["runner_id"], stopped_at=_now())
        try:
            delivery = await self._producer.send(topics.WORKERS, key=self._key, value=record.model_dump_json().encode())
            await asyncio.wait_for(delivery, STOPPED_WAIT_S)
        except Exception as error:  # readers drop it after its missed beats instead
            log.warning("worker stop not announced", error=repr(error))


def _now() -> datetime:
    return datetime.now(timezone.utc)
