"""``make bench``: jobledger against the raw limits of its own broker and
database, measured in the same run on the same machine.

    python -m bench [--scenarios raw,throughput,latency,ingest,projector,replay]
                    [--jobs 10000] [--clients 16] [--batch 100] [--runner-concurrency 64]
                    [--replicas 1]

On the stack ``make run`` starts: Apache Kafka with its log on disk, the
database on disk.

Scenarios (all by default, on one fresh embedded stack):

- raw (always): broker produce and consume msg/s with the services' client
  settings; database bulk upserts/s.
- client: the client method of ``make bench-peers`` (:mod:`bench.client`):
  sequential ``POST /jobs`` over one connection, then a wait for each, three
  runs; then jobs one at a time.
- throughput: ``--jobs`` no-op jobs submitted by ``--clients`` concurrent HTTP
  clients in ``POST /jobs:batch`` requests of ``--batch``; submit → SUCCEEDED
  visible in the read model; jobs/s.
- latency: single ``POST /jobs`` at a fixed offered load of 20% of the measured
  peak for 15 s; submit → SUCCEEDED visible p50/p95/p99.
- ingest: accepted jobs/s (202s) with the processor stopped, single and batch.
- projector: the projector's fold (``JobProjection``) from a pre-filled
  ``jobs.events`` into empty read models; events/s.
- replay: ``jobledger replay``'s rebuild of the whole log; events/s.

Every figure is printed with its ratio to the raw limit that bounds it, and
written to ``bench/results/bench-<time>.json`` and ``.png``. The runner runs
``--runner-concurrency`` no-op jobs at once (the default of 3 is for real work;
a no-op pipeline measures the pipeline, not the handlers). ``--replicas N``
runs N processor and N projector processes, for the scale-out figures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient, UpdateOne
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench import client, stages
from bench.history import noop_history
from bench.results import save
from schemas import JobStatus, parse_event
from services.common.kafka import ensure_topics, make_producer, topic_partitions
from services.common.readmodel import JOBS, ensure_indexes
from services.embedded import kafka
from services.embedded.stack import EmbeddedStack, StackSettings, stop_on_sigterm
from services.ingest.settings import DEV_API_KEY
from services.projector.projection import JobProjection

MESSAGES_PER_JOB = 7
"""SubmitJob, StartJob, CompleteJob commands + submitted, queued, started, succeeded events."""
HOPS_PER_JOB = 4
"""Broker hops from SubmitJob to JobSucceeded seen: decider, runner (its claim and
its report travel together), decider, and the reader of the log."""
EVENTS_PER_JOB = 4
ASSUMED_PEAK = 50.0
"""jobs/s the latency scenario takes 20% of when the throughput scenario did not run."""
OVERLOADED = 0.9
"""The latency scenario completed less than this share of the load it offered."""
SETTLE_S = 10.0
"""With ``--replicas``, the wait for every member's join before measuring."""
SCENARIOS = ("raw", "client", "throughput", "latency", "ingest", "projector", "replay")
HEADERS = {"Authorization": f"Bearer {DEV_API_KEY}"}
console = Console()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# --- raw limits -------------------------------------------------------------------------


def _consumer(stack: EmbeddedStack) -> AIOKafkaConsumer:
    """A consumer outside any group, with the services' fetch settings."""
    return AIOKafkaConsumer(
        bootstrap_servers=stack.settings.kafka_bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=stack.settings.fetch_max_wait_ms,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )


async def raw_broker(stack: EmbeddedStack, count: int, size: int = 400) -> dict:
    """Produce then consume ``count`` keyed records with the services' client settings."""
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.settings, [topic])
    producer = make_producer(stack.settings)
    await producer.start()
    value = b"x" * size
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, key=str(i).encode(), value=value) for i in range(count)]
        await asyncio.gather(*futures)
        produce_s = time.perf_counter() - started
    finally:
        await producer.stop()
    consumer = _consumer(stack)
    await consumer.start()
    try:
        consumer.assign(await topic_partitions(stack.settings, topic))
        await consumer.seek_to_beginning()
        seen = 0
        started = time.perf_counter()
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            seen += sum(len(batch) for batch in batches.values())
        consume_s = time.perf_counter() - started
    finally:
        await consumer.stop()
    return {"produce_msgs_per_s": count / produce_s, "consume_msgs_per_s": count / consume_s}


async def raw_hop(stack: EmbeddedStack, pings: int = 100) -> dict:
    """One record produced and seen by a consumer polling with the services'
    settings: the least one hop of the pipeline can take."""
    topic = f"bench.hop.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.settings, [topic])
    tp = TopicPartition(topic, 0)
    producer = make_producer(stack.settings)
    consumer = _consumer(stack)
    await producer.start()
    await consumer.start()
    samples = []
    try:
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        await consumer.position(tp)
        for _ in range(pings):
            sent = time.perf_counter()
            await producer.send(topic, value=b"ping", partition=0)
            while not (await consumer.getmany(tp, timeout_ms=1000)).get(tp):
                pass
            samples.append((time.perf_counter() - sent) * 1000)
    finally:
        await consumer.stop()
        await producer.stop()
    return {"hop_ms_p50": statistics.median(samples), "hop_ms_p99": _percentile(samples, 0.99)}


async def raw_database(stack: EmbeddedStack, count: int, batch: int = 1000) -> dict:
    """Bulk upserts of job-sized documents, as the projector writes them."""
    client = AsyncMongoClient(stack.settings.mongo_url)
    collection = client["bench_raw"]["docs"]
    document = {"status": "QUEUED", "payload": {"n": 1}, "version": 2, "tenant": "bench", "type": "noop"}
    try:
        started = time.perf_counter()
        for offset in range(0, count, batch):
            ops = [
                UpdateOne({"_id": f"doc-{i}"}, {"$set": {**document, "version": i}}, upsert=True)
                for i in range(offset, min(count, offset + batch))
            ]
            await collection.bulk_write(ops, ordered=False)
        elapsed = time.perf_counter() - started
        await client.drop_database("bench_raw")
    finally:
        await client.close()
    return {"bulk_upserts_per_s": count / elapsed}


# --- the pipeline --------------------------------------------------------------------------


class Watch:
    """Sees submitted jobs turn SUCCEEDED in the read model through a change
    stream: pushed by the database, so watching does not load what it measures
    (polling did, and dominated the latency it reported). A sweep of the ids
    still pending is the safety net; it runs only when the stream has been
    quiet for ``sweep_s``, and asks for 100 ids at a time, because the
    database matches an ``$in`` list against every candidate document
    (quadratic in the list's length)."""

    SUCCEEDED = [
        {
            "$match": {
                "$or": [
                    {"fullDocument.status": JobStatus.SUCCEEDED.value},
                    {"updateDescription.updatedFields.status": JobStatus.SUCCEEDED.value},
                ]
            }
        }
    ]

    def __init__(self, stack: EmbeddedStack, sweep_s: float = 2.0) -> None:
        self.sweep_s = sweep_s
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
        self._stream = await self.jobs.watch(self.SUCCEEDED)

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
        async for change in self._stream:
            self._last_change = time.perf_counter()
            self._done(change["documentKey"]["_id"], time.perf_counter(), on_done)

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
            await self._stream.close()
        await self.mongo.close()


async def throughput(stack: EmbeddedStack, jobs: int, clients: int, batch: int, finished_out: list | None = None) -> dict:
    """``finished_out``, if given, receives every job's finish time (for the soak's windows)."""
    watch = Watch(stack)
    await watch.open()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for start in range(0, jobs, batch):
        queue.put_nowait(min(batch, jobs - start))
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    with _progress() as bar:
        sent_task = bar.add_task("submitted (batches)", total=jobs)
        done_task = bar.add_task("succeeded", total=jobs)

        async def client(http: httpx.AsyncClient) -> None:
            while True:
                try:
                    size = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                sent = time.perf_counter()
                response = await http.post("/jobs:batch", json={"jobs": [{"type": "noop"}] * size})
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
        "latency_ms_p99": _percentile(latencies, 0.99),
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
        "latency_ms_p95": _percentile(latencies, 0.95),
        "latency_ms_p99": _percentile(latencies, 0.99),
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
    consumer = _consumer(stack)
    await consumer.start()
    total = jobs * EVENTS_PER_JOB
    try:
        consumer.assign(await topic_partitions(stack.settings, topic))
        await consumer.seek_to_beginning()
        applied = 0
        with _progress() as bar:
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
        with _progress() as bar:
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


# --- the run -------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict:
    wanted = [name.strip() for name in args.scenarios.split(",")]
    unknown = set(wanted) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    settings = StackSettings(
        data_dir=Path(tempfile.mkdtemp(prefix="jobledger-bench-")),
        broker_port=0,
        controller_port=0,
        mongo_port=0,
        api_port=0,
        mongo_storage="disk",
        service_env={"runner_concurrency": str(args.runner_concurrency)},
        replicas=args.replicas,
    )
    stack = EmbeddedStack(settings)
    broker = f"Apache Kafka {kafka.kafka_version()}"
    result: dict = {"at": datetime.now(timezone.utc).isoformat(), "broker": broker, "args": vars(args)}
    with console.status(f"starting the embedded stack ({broker}) …"):
        await stack.start()
    try:
        raw = {}  # always measured: every ratio needs it
        with console.status("raw broker produce/consume …"):
            raw.update(await raw_broker(stack, args.raw_messages))
            raw.update(await raw_hop(stack))
        with console.status("raw database bulk upserts …"):
            raw.update(await raw_database(stack, args.raw_upserts))
        result["raw"] = raw
        if "client" in wanted:  # first: on a young log, like the peers' runs
            with console.status("the client method: sequential submits, then a wait for each …") as status:
                system = client.jobledger(stack.api_url, DEV_API_KEY)
                try:
                    result["client"] = await asyncio.to_thread(
                        client.measure, system, args.client_jobs, 3, args.client_singles, status.update
                    )
                finally:
                    system.close()
        if "throughput" in wanted or "latency" in wanted:
            with console.status("warming up: waiting for the processor to join its groups …"):
                await throughput_warmup(stack)
                if args.replicas > 1:  # the later members' joins move partitions once more
                    await asyncio.sleep(SETTLE_S)
                    await throughput_warmup(stack)
        if "throughput" in wanted:
            result["throughput"] = await throughput(stack, args.jobs, args.clients, args.batch)
        if "latency" in wanted:
            peak = result.get("throughput", {}).get("jobs_per_s", ASSUMED_PEAK)
            result["latency"] = await latency(stack, max(1.0, 0.2 * peak), args.latency_seconds)
            result["latency"]["peak_measured"] = "throughput" in result
        if "projector" in wanted:
            result["projector"] = await projector_fold(stack, args.fold_jobs)
        if "replay" in wanted:
            result["replay"] = await replay_rate(stack)
        if "ingest" in wanted:  # last: it stops the processor and the projector
            result["ingest"] = await ingest_only(stack, args.ingest_jobs, args.clients, args.batch)
    finally:
        # Blocking on purpose: awaited, the stop would itself be cancelled when
        # SIGTERM or Ctrl-C cancels this task, and the stack would outlive us.
        with console.status("stopping …"):
            stack.stop()
    result["ratios"] = ratios(result)
    return result


async def throughput_warmup(stack: EmbeddedStack) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url, headers=HEADERS, timeout=60) as http:
        job_id = (await http.post("/jobs", json={"type": "noop"})).json()["id"]
        deadline = time.monotonic() + 120
        while (await http.get(f"/jobs/{job_id}")).json()["state"] != "SUCCEEDED":
            if time.monotonic() > deadline:
                raise TimeoutError("the warm-up job did not finish")
            await asyncio.sleep(0.05)


def ratios(result: dict) -> dict:
    raw = result.get("raw", {})
    if not raw:
        return {}
    broker = min(raw["produce_msgs_per_s"], raw["consume_msgs_per_s"])
    database = raw["bulk_upserts_per_s"]
    found = {}
    if "throughput" in result:
        jobs_per_s = result["throughput"]["jobs_per_s"]
        found["throughput_vs_broker"] = jobs_per_s * MESSAGES_PER_JOB / broker
        found["throughput_vs_database"] = jobs_per_s * EVENTS_PER_JOB / database
    if "latency" in result and "hop_ms_p50" in raw:
        found["latency_vs_hops"] = result["latency"]["latency_ms_p50"] / (HOPS_PER_JOB * raw["hop_ms_p50"])
    if "ingest" in result:
        found["ingest_single_vs_produce"] = result["ingest"]["single_accepted_per_s"] / raw["produce_msgs_per_s"]
        found["ingest_batch_vs_produce"] = result["ingest"]["batch_accepted_per_s"] / raw["produce_msgs_per_s"]
    if "client" in result:
        found["client_submit_vs_produce"] = result["client"]["submit_per_s"] / raw["produce_msgs_per_s"]
        if "hop_ms_p50" in raw:
            found["client_latency_vs_hops"] = result["client"]["latency_ms_p50"] / (HOPS_PER_JOB * raw["hop_ms_p50"])
    if "projector" in result:
        found["projector_vs_database"] = result["projector"]["events_per_s"] / database
    if "replay" in result:
        found["replay_vs_database"] = result["replay"]["events_per_s"] / database
    return found


def report(result: dict) -> None:
    raw, r = result.get("raw", {}), result["ratios"]
    table = Table(title=f"jobledger bench — {result['broker']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("ratio to the raw limit that bounds it", justify="right")
    if raw:
        table.add_row("raw broker produce", f"{raw['produce_msgs_per_s']:,.0f} msg/s", "")
        table.add_row("raw broker consume", f"{raw['consume_msgs_per_s']:,.0f} msg/s", "")
        table.add_row("raw broker hop (produce → consumed)", f"p50 {raw['hop_ms_p50']:,.1f} · p99 {raw['hop_ms_p99']:,.1f} ms", "")
        table.add_row("raw database bulk upsert", f"{raw['bulk_upserts_per_s']:,.0f} ops/s", "")
    if "client" in result:
        c = result["client"]
        runs = " → ".join(f"{run['end_to_end_jobs_per_s']:,.0f}" for run in c["runs"])
        table.add_row(
            f"client method: {c['jobs']:,} sequential POST /jobs",
            f"{c['submit_per_s']:,.0f} jobs/s",
            f"{r['client_submit_vs_produce']:.1%} of raw produce",
        )
        table.add_row(
            "  then waited for, end to end (runs 1 → 3)",
            f"{c['end_to_end_jobs_per_s']:,.0f} jobs/s ({runs})",
            "flat" if c["flat"] else "NOT flat: a later run more than 10% below the first",
        )
        table.add_row(
            "  one at a time, submit → SUCCEEDED",
            f"p50 {c['latency_ms_p50']:,.1f} · p99 {c['latency_ms_p99']:,.1f} ms",
            f"p50 = {r['client_latency_vs_hops']:.1f}× the floor of {HOPS_PER_JOB} raw hops ({HOPS_PER_JOB * raw['hop_ms_p50']:,.1f} ms)"
            if "client_latency_vs_hops" in r
            else "",
        )
    if "throughput" in result:
        t = result["throughput"]
        table.add_row(
            f"end to end, {t['jobs']:,} no-op jobs",
            f"{t['jobs_per_s']:,.1f} jobs/s",
            f"{r['throughput_vs_broker']:.1%} of broker ({MESSAGES_PER_JOB} msg/job); "
            f"{r['throughput_vs_database']:.1%} of database ({EVENTS_PER_JOB} events/job)",
        )
        table.add_row("  submit → SUCCEEDED p50 / p99 (saturated)", f"{t['latency_ms_p50']:,.0f} / {t['latency_ms_p99']:,.0f} ms", "")
        if len(t.get("jobs_per_runner", {})) > 1:
            shares = sorted(t["jobs_per_runner"].values(), reverse=True)
            table.add_row(f"  jobs per runner ({len(shares)} runners)", " / ".join(f"{n:,}" for n in shares), "")
    if "latency" in result:
        lat = result["latency"]
        table.add_row(
            f"latency at {lat['offered_jobs_per_s']:.0f} jobs/s offered "
            + ("(20% of peak)" if lat.get("peak_measured", True) else f"(no throughput run: 20% of {ASSUMED_PEAK:.0f})"),
            f"p50 {lat['latency_ms_p50']:,.0f} · p95 {lat['latency_ms_p95']:,.0f} · p99 {lat['latency_ms_p99']:,.0f} ms",
            f"p50 = {r['latency_vs_hops']:.1f}× the floor of {HOPS_PER_JOB} raw hops ({HOPS_PER_JOB * raw['hop_ms_p50']:,.0f} ms)"
            if "latency_vs_hops" in r
            else "",
        )
        if lat.get("completed_jobs_per_s", lat["offered_jobs_per_s"]) < OVERLOADED * lat["offered_jobs_per_s"]:
            table.add_row(
                "  overloaded: jobs/s completed",
                f"{lat['completed_jobs_per_s']:,.1f} jobs/s",
                "under the offered load: the latency above is mostly queueing",
            )
    if "ingest" in result:
        i = result["ingest"]
        table.add_row("ingest only, single POST /jobs", f"{i['single_accepted_per_s']:,.0f} jobs/s", f"{r['ingest_single_vs_produce']:.1%} of raw produce")
        table.add_row("ingest only, POST /jobs:batch", f"{i['batch_accepted_per_s']:,.0f} jobs/s", f"{r['ingest_batch_vs_produce']:.1%} of raw produce")
    if "projector" in result:
        table.add_row("projector fold", f"{result['projector']['events_per_s']:,.0f} events/s", f"{r['projector_vs_database']:.1%} of raw bulk upsert")
    if "replay" in result:
        table.add_row(f"replay ({result['replay']['events']:,} events)", f"{result['replay']['events_per_s']:,.0f} events/s", f"{r['replay_vs_database']:.1%} of raw bulk upsert")
    console.print(table)
    hops = result.get("latency", {}).get("hops")
    if hops:
        where = Table(title="where the latency goes (latency scenario, per hop)")
        where.add_column("hop")
        where.add_column("p50", justify="right")
        where.add_column("p95", justify="right")
        for hop in hops:
            where.add_row(hop["hop"], f"{hop['p50_ms']:,.1f} ms", f"{hop['p95_ms']:,.1f} ms")
        console.print(where)


def chart(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values = [], []
    names = {
        "throughput_vs_broker": "end-to-end\nvs broker",
        "throughput_vs_database": "end-to-end\nvs database",
        "ingest_single_vs_produce": "ingest single\nvs produce",
        "ingest_batch_vs_produce": "ingest batch\nvs produce",
        "projector_vs_database": "projector\nvs bulk upsert",
        "replay_vs_database": "replay\nvs bulk upsert",
    }
    for key, label in names.items():
        if key in result["ratios"]:
            labels.append(label)
            values.append(100 * result["ratios"][key])
    figure, axis = plt.subplots(figsize=(9, 4.5))
    bars = axis.bar(labels, values, color="#3b6ea8")
    axis.bar_label(bars, fmt="%.1f%%")
    axis.set_ylabel("% of the raw limit measured in the same run")
    axis.set_title(f"jobledger bench — {result['broker']} — {result['at'][:19]}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, from {', '.join(SCENARIOS)}")
    parser.add_argument("--jobs", type=int, default=10_000, help="no-op jobs of the throughput scenario (default 10000)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients (default 16)")
    parser.add_argument("--client-jobs", type=int, default=2000, help="sequential submits per run of the client method (default 2000)")
    parser.add_argument("--client-singles", type=int, default=200, help="jobs one at a time in the client method (default 200)")
    parser.add_argument("--batch", type=int, default=100, help="jobs per POST /jobs:batch (default 100)")
    parser.add_argument(
        "--replicas", type=int, default=1, help="processor and projector processes, for the scale-out figures (default 1)"
    )
    parser.add_argument("--runner-concurrency", type=int, default=64, help="no-op jobs a runner runs at once (default 64)")
    parser.add_argument("--latency-seconds", type=float, default=15.0, help="length of the latency scenario (default 15)")
    parser.add_argument("--ingest-jobs", type=int, default=4000, help="jobs of the ingest scenario (default 4000)")
    parser.add_argument("--fold-jobs", type=int, default=5000, help="jobs whose events the projector folds (default 5000)")
    parser.add_argument("--raw-messages", type=int, default=20_000, help="records for the raw broker figure")
    parser.add_argument("--raw-upserts", type=int, default=10_000, help="documents for the raw database figure")
    args = parser.parse_args()
    stop_on_sigterm()
    result = asyncio.run(run(args))
    report(result)
    path = save("bench", result)
    chart(result, path.with_suffix(".png"))
    console.print(f"written: {path} and its .png")


if __name__ == "__main__":
    main()
