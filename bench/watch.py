"""Watching jobs finish: each job's ``JobSucceeded`` as it reaches the log."""

from __future__ import annotations

import asyncio
import itertools
import time

from pymongo import AsyncMongoClient

from schemas import JobStatus, JobSucceeded, parse_event, topics
from services.adapters.log import make_consumer, topic_partitions
from services.adapters.readmodel import JOBS
from services.embedded.stack import EmbeddedStack

# --- the pipeline --------------------------------------------------------------------------


class Watch:
    """Sees submitted jobs succeed by reading ``jobs.events`` from its end, in
    this process: pushed by the broker, so watching loads what it measures no
    more than any consumer of the log does (polling the read model did, and
    dominated the latency it reported). It was a change stream on the read
    model until the one-node database ran without a replica set, which change
    streams need; the read model also lags the log by design now
    (docs/architecture.md, "Projector"). ``GET /jobs:stream``, tried in its
    place, loaded this process instead (its client parsed every event of the
    tenant beside the open-loop submits), so the latency scenario measured the
    bench; the stream costs ingest about 40 µs per event. A sweep of
    the read model for the ids still pending is the safety net; it runs only
    when nothing was heard for ``sweep_s``, and asks for 100 ids at a time,
    because the database matches an ``$in`` list against every candidate
    document (quadratic in the list's length)."""

    def __init__(self, stack: EmbeddedStack, sweep_s: float = 2.0) -> None:
        self.sweep_s = sweep_s
        self.settings = stack.settings
        self.mongo = AsyncMongoClient(stack.settings.mongo_url)
        self.jobs = self.mongo[stack.settings.mongo_db][JOBS]
        self.submitted: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.seen_at: dict[str, float] = {}
        """Wall-clock time each job was seen SUCCEEDED, for the hop breakdown."""
        self._stream = None
        self._last_change = time.perf_counter()

    async def open(self) -> None:
        """Start listening; call before submitting."""
        partitions = await topic_partitions(self.settings, topics.EVENTS)
        self._stream = make_consumer(self.settings, None, fetch_max_wait_ms=100)
        await self._stream.start()
        self._stream.assign(partitions)
        await self._stream.seek_to_end(*partitions)

    async def run(self, until_all: asyncio.Event, on_done=None) -> None:
        if self._stream is None:
            await self.open()
        listener = asyncio.create_task(self._listen(on_done))
        try:
            while not until_all.is_set() or len(self.finished) < len(self.submitted):
                await asyncio.sleep(self.sweep_s)
                if time.perf_counter() - self._last_change >= self.sweep_s:
                    await self._sweep(on_done)
        finally:
            listener.cancel()

    async def _listen(self, on_done) -> None:
        while True:
            for records in (await self._stream.getmany(timeout_ms=1000)).values():
                now = time.perf_counter()
                self._last_change = now
                for record in records:
                    if b"jobledger.job.succeeded" in record.value and isinstance(
                        event := parse_event(record.value), JobSucceeded
                    ):
                        self._done(event.job_id, now, on_done)

    async def _sweep(self, on_done) -> None:
        """The 100 oldest pending jobs: the likeliest to be done."""
        pending = list(itertools.islice((job_id for job_id in self.submitted if job_id not in self.finished), 100))
        if not pending:
            return
        now = time.perf_counter()
        async for document in self.jobs.find({"_id": {"$in": pending}, "status": JobStatus.SUCCEEDED.value}, {"_id": 1}):
            self._done(document["_id"], now, on_done)

    def _done(self, job_id: str, now: float, on_done) -> None:
        if job_id in self.submitted and job_id not in self.finished:
            self.finished[job_id] = now
            self.seen_at[job_id] = time.time()
            if on_done:
                on_done()

    def latencies_ms(self) -> list[float]:
        return [(self.finished[job_id] - sent) * 1000 for job_id, sent in self.submitted.items() if job_id in self.finished]

    async def close(self) -> None:
        if self._stream is not None:
            await self._stream.stop()
        await self.mongo.close()
