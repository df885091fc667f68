"""The pipeline's scenarios: throughput, latency, ingest alone, the projector's fold, replay."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from datetime import datetime, timezone

import httpx
from pymongo import AsyncMongoClient

from bench import stages
from bench.figures import EVENTS_PER_JOB, HEADERS, console, percentile, progress_bar
from bench.history import noop_history
from bench.raw import log_consumer
from bench.watch import Watch
from schemas import JobStatus, parse_event
from services.adapters.broker import READ_MODEL_GROUPS, caught_up, ensure_topics
from services.adapters.log import make_producer, topic_partitions
from services.adapters.projections import JobProjection
from services.adapters.readmodel import ensure_indexes
from services.embedded.stack import EmbeddedStack


async def throughput(
    stack: EmbeddedStack, jobs: int, clients: int, batch: int, finished_out: list | None = None, job: dict | None = None
) -> dict:
    """``jobs`` of ``job`` (default: a no-op job) through ``POST /jobs:batch``, until
    every one SUCCEEDED. ``finished_out``, if given, receives every job's finish
    time (for the soak's windows)."""
    job = job or {"type": "noop"}
    watch = Watch(stack)
    await watch.open()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for start in range(0, jobs, batch):
        queue.put_nowait(min(batch, jobs - start))
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    with progress_bar() as bar:
        sent_task = bar.add_task("submitted (batches)", total=jobs)
        done_task = bar.add_task("succeeded", total=jobs)

        async def client(http: httpx.AsyncClient) -> None:
            while True:
                try:
                    size = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                sent = time.perf_counter()
                response = await http.post("/jobs:batch", json={"jobs": [job] * size})
                response.raise_for_status()
                for item in response.json()["items"]:
                    watch.submitted[item["id"]] = sent
                bar.advance(sent_task, size)

        watcher = asyncio.create_task(watch.run(done, lambda: bar.advance(done_task)))
        started = time.perf_counter()
        async with httpx.AsyncClient(base_url=stack.api_url, headers=HEADERS, limits=limits, timeout=120) as http:
            await asyncio.gather(*(client(http) for _ in range(clients)))
        submit_s = time.perf_counter() - started
        done.set()
        await asyncio.wait_for(watcher, timeout=900)
    await caught_up(stack.settings, READ_MODEL_GROUPS.items(), timeout_s=60)  # the read model holds every job heard
    per_runner = {
        group["_id"]: group["jobs"]
        async for group in await watch.jobs.aggregate(
            [{"$match": {"status": JobStatus.SUCCEEDED.value}}, {"$group": {"_id": "$runner_id", "jobs": {"$sum": 1}}}]
        )
    }
    await watch.close()
    if finished_out is not None:
        finished_out.extend(watch.finished.values())
    total_s = max(watch.finished.values()) - started
    latencies = watch.latencies_ms()
    return {
        "jobs_per_runner": per_runner,
        "jobs": jobs,
        "clients": clients,
        "batch": batch,
        "accepted_jobs_per_s": jobs / submit_s,
        "jobs_per_s": jobs / total_s,
        "latency_ms_p50": statistics.median(latencies),
        "latency_ms_p99": percentile(latencies, 0.99),
    }


async def latency(stack: EmbeddedStack, rate: float, seconds: float) -> dict:
    """Open loop: one POST /jobs every 1/rate s, whatever the answers take."""
    watch = Watch(stack)
    await watch.open()
    done = asyncio.Event()
    watcher = asyncio.create_task(watch.run(done))
    count = max(1, int(rate * seconds))
    marks: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=HEADERS, timeout=60) as http:

        async def one() -> None:
            sent, posted = time.perf_counter(), time.time()
            response = await http.post("/jobs", json={"type": "noop"})
            response.raise_for_status()
            job_id = response.json()["id"]
            watch.submitted[job_id] = sent
            marks[job_id] = {"posted": posted}

        with console.status(f"latency at {rate:.0f} jobs/s offered for {seconds:.0f} s …"):
            started = time.perf_counter()
            tasks = []
            for i in range(count):
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one()))
            await asyncio.gather(*tasks)
            done.set()
            await asyncio.wait_for(watcher, timeout=300)
    await watch.close()
    latencies = watch.latencies_ms()
    completed_s = max(watch.finished.values()) - started
    with console.status("reading the log for the hop breakdown …"):
        for job_id, recorded in (await stages.record_times(stack.settings, set(marks))).items():
            marks[job_id].update(recorded)
    for job_id, seen in watch.seen_at.items():
        marks[job_id]["visible"] = seen
    return {
        "offered_jobs_per_s": rate,
        "completed_jobs_per_s": count / completed_s,
        "jobs": count,
        "latency_ms_p50": statistics.median(latencies),
        "latency_ms_p95": percentile(latencies, 0.95),
        "latency_ms_p99": percentile(latencies, 0.99),
        "hops": stages.breakdown(marks),
    }


async def ingest_only(stack: EmbeddedStack, jobs: int, clients: int, batch: int) -> dict:
    """Accepted jobs/s with nothing downstream competing for the CPU but the broker."""
    with console.status("stopping the processor and projector for the ingest figure …"):
        await asyncio.to_thread(stack.stop_service, "processor")
        await asyncio.to_thread(stack.stop_service, "projector")
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=stack.api_url, headers=HEADERS, limits=limits, timeout=120) as http:
        single = list(range(jobs // 4))

        async def post_single() -> None:
            while single:
                single.pop()
                (await http.post("/jobs", json={"type": "noop"})).raise_for_status()

        with console.status("ingest: single submits …"):
            started = time.perf_counter()
            await asyncio.gather(*(post_single() for _ in range(clients)))
            single_rate = (jobs // 4) / (time.perf_counter() - started)
        batches = [batch] * (jobs // batch)

        async def post_batches() -> None:
            while batches:
                size = batches.pop()
                (await http.post("/jobs:batch", json={"jobs": [{"type": "noop"}] * size})).raise_for_status()

        with console.status("ingest: batch submits …"):
            started = time.perf_counter()
            count = len(batches) * batch
            await asyncio.gather(*(post_batches() for _ in range(clients)))
            batch_rate = count / (time.perf_counter() - started)
    return {"single_accepted_per_s": single_rate, "batch_accepted_per_s": batch_rate}


async def projector_fold(stack: EmbeddedStack, jobs: int) -> dict:
    """Pre-fill a topic with the events of ``jobs`` finished jobs, then fold them
    with the projector's JobProjection into empty collections."""
    topic = f"bench.events.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.settings, [topic])
    producer = make_producer(stack.settings)
    await producer.start()
    now = datetime.now(timezone.utc)
    try:
        with console.status(f"projector: writing the events of {jobs} jobs …"):
            futures = []
            for i in range(jobs):
                job_id = f"bench-{i}"
                for event in noop_history(job_id, "bench", now):
                    futures.append(await producer.send(topic, key=job_id.encode(), value=event.to_bytes()))
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    mongo = AsyncMongoClient(stack.settings.mongo_url)
    db = mongo["bench_fold"]
    await ensure_indexes(db)
    projection = JobProjection(db)
    consumer = log_consumer(stack)
    await consumer.start()
    total = jobs * EVENTS_PER_JOB
    try:
        consumer.assign(await topic_partitions(stack.settings, topic))
        await consumer.seek_to_beginning()
        applied = 0
        with progress_bar() as bar:
            task = bar.add_task("projector fold", total=total)
            started = time.perf_counter()
            while applied < total:
                batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
                events = [parse_event(r.value) for records in batches.values() for r in records]
                if events:
                    outcome = await projection.apply(events)
                    applied += len(events)
                    bar.advance(task, len(events))
                    assert not outcome.gaps and not outcome.rejected
            elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
        await mongo.drop_database("bench_fold")
        await mongo.close()
    return {"events": total, "events_per_s": total / elapsed}


async def replay_rate(stack: EmbeddedStack) -> dict:
    from services.replay import discard, rebuild

    mongo = AsyncMongoClient(stack.settings.mongo_url, tz_aware=True)
    db = mongo[stack.settings.mongo_db]
    read = 0
    try:
        with progress_bar() as bar:
            task = bar.add_task("replay", total=None)

            def progress(total, done):
                if total is not None:
                    bar.update(task, total=total)
                bar.advance(task, done)

            started = time.perf_counter()
            read = await rebuild(stack.settings, db, "_bench", progress, {})
            elapsed = time.perf_counter() - started
        await discard(db, "_bench")
    finally:
        await mongo.close()
    return {"events": read, "events_per_s": read / elapsed}


async def throughput_warmup(stack: EmbeddedStack) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url, headers=HEADERS, timeout=60) as http:
        job_id = (await http.post("/jobs", json={"type": "noop"})).json()["id"]
        deadline = time.monotonic() + 120
        while (await http.get(f"/jobs/{job_id}")).json()["state"] != "SUCCEEDED":
            if time.monotonic() > deadline:
                raise TimeoutError("the warm-up job did not finish")
            await asyncio.sleep(0.05)
