"""``make bench``: jobledger end to end against the raw limits of its own broker
and database, measured in the same run on the same machine.

    python -m bench [--jobs 2000] [--clients 32] [--memory]

Prints a table and writes bench/results/bench-<time>.json. Ratios say how much
of the bounding resource's raw rate the pipeline achieves: a job costs
MESSAGES_PER_JOB broker messages and EVENTS_PER_JOB read-model events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

from schemas import JobStatus
from services.common.kafka import ensure_topics, make_producer
from services.common.readmodel import JOBS
from services.embedded.stack import EmbeddedStack, StackSettings, stop_on_sigterm
from services.ingest.settings import DEV_API_KEY

MESSAGES_PER_JOB = 7
"""SubmitJob, StartJob, CompleteJob commands + Submitted, Queued, Started, Succeeded events."""
EVENTS_PER_JOB = 4
RESULTS = Path(__file__).parent / "results"
console = Console()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


class _Silent:
    """A progress display that shows nothing (warm-up)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def advance(self, task) -> None:
        return None


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
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.settings.kafka_bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=stack.settings.fetch_max_wait_ms,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or {0}
        consumer.assign([TopicPartition(topic, p) for p in partitions])
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


async def end_to_end(stack: EmbeddedStack, jobs: int, clients: int, quiet: bool = False) -> dict:
    """Submit ``jobs`` noop jobs over HTTP; time each from submit to SUCCEEDED in the read model."""
    submitted: dict[str, float] = {}
    finished: dict[str, float] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(jobs):
        queue.put_nowait(i)

    async def client_loop(http: httpx.AsyncClient, bar, task) -> None:
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            sent = time.perf_counter()
            response = await http.post("/jobs", json={"type": "noop"})
            response.raise_for_status()
            submitted[response.json()["id"]] = sent
            bar.advance(task)

    mongo = AsyncMongoClient(stack.settings.mongo_url)
    collection = mongo[stack.settings.mongo_db][JOBS]
    done = asyncio.Event()

    async def watch(bar, task) -> None:
        while not done.is_set() or len(finished) < len(submitted):
            pending = [job_id for job_id in submitted if job_id not in finished]
            if pending:
                now = time.perf_counter()
                cursor = collection.find({"_id": {"$in": pending}, "status": JobStatus.SUCCEEDED.value}, {"_id": 1})
                async for document in cursor:
                    finished[document["_id"]] = now
                    bar.advance(task)
            await asyncio.sleep(0.01)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {DEV_API_KEY}"}
    started = time.perf_counter()
    try:
        with _progress() if not quiet else _Silent() as bar:
            sent_task = bar.add_task("submitted", total=jobs)
            done_task = bar.add_task("succeeded", total=jobs)
            watcher = asyncio.create_task(watch(bar, done_task))
            async with httpx.AsyncClient(base_url=stack.api_url, headers=headers, limits=limits, timeout=60) as http:
                await asyncio.gather(*(client_loop(http, bar, sent_task) for _ in range(clients)))
            submit_s = time.perf_counter() - started
            done.set()
            await asyncio.wait_for(watcher, timeout=600)
    finally:
        await mongo.close()
    total_s = max(finished.values()) - started
    latencies = sorted((finished[job_id] - submitted[job_id]) * 1000 for job_id in submitted)
    return {
        "jobs": jobs,
        "clients": clients,
        "accepted_jobs_per_s": jobs / submit_s,
        "jobs_per_s": jobs / total_s,
        "latency_ms_p50": statistics.median(latencies),
        "latency_ms_p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


async def run(args: argparse.Namespace) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="jobledger-bench-"))
    settings = StackSettings(
        data_dir=data_dir,
        broker_port=0,
        mongo_port=0,
        s3_port=0,
        api_port=0,
        broker_storage="memory" if args.memory else "s3",
        mongo_storage="disk",
    )
    stack = EmbeddedStack(settings)
    with console.status(f"starting the embedded stack (broker log: {settings.broker_storage}) …"):
        await stack.start()
    try:
        with console.status("raw broker produce/consume …"):
            broker = await raw_broker(stack, args.raw_messages)
        with console.status("raw database bulk upserts …"):
            database = await raw_database(stack, args.raw_upserts)
        with console.status("warming up: waiting for the processor to join its groups …"):
            await end_to_end(stack, 1, 1, quiet=True)
        e2e = await end_to_end(stack, args.jobs, args.clients)
    finally:
        with console.status("stopping …"):
            await asyncio.to_thread(stack.stop)
    broker_limit = min(broker["produce_msgs_per_s"], broker["consume_msgs_per_s"])
    return {
        "at": datetime.now(timezone.utc).isoformat(),
        "broker_storage": settings.broker_storage,
        "raw": {**broker, **database},
        "end_to_end": e2e,
        "ratios": {
            "broker": e2e["jobs_per_s"] * MESSAGES_PER_JOB / broker_limit,
            "database": e2e["jobs_per_s"] * EVENTS_PER_JOB / database["bulk_upserts_per_s"],
            "ingest_vs_produce": e2e["accepted_jobs_per_s"] / broker["produce_msgs_per_s"],
        },
    }


def report(result: dict) -> None:
    raw, e2e, ratios = result["raw"], result["end_to_end"], result["ratios"]
    table = Table(title=f"jobledger bench — broker log: {result['broker_storage']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("ratio to its raw limit", justify="right")
    table.add_row("raw broker produce", f"{raw['produce_msgs_per_s']:,.0f} msg/s", "")
    table.add_row("raw broker consume", f"{raw['consume_msgs_per_s']:,.0f} msg/s", "")
    table.add_row("raw database bulk upsert", f"{raw['bulk_upserts_per_s']:,.0f} ops/s", "")
    table.add_row(
        "end-to-end no-op jobs",
        f"{e2e['jobs_per_s']:,.1f} jobs/s",
        f"{ratios['broker']:.1%} of broker ({MESSAGES_PER_JOB} msg/job); "
        f"{ratios['database']:.1%} of database ({EVENTS_PER_JOB} events/job)",
    )
    table.add_row(
        "accepted (202) while submitting",
        f"{e2e['accepted_jobs_per_s']:,.1f} jobs/s",
        f"{ratios['ingest_vs_produce']:.1%} of raw produce",
    )
    table.add_row("submit → SUCCEEDED visible p50", f"{e2e['latency_ms_p50']:,.1f} ms", "")
    table.add_row("submit → SUCCEEDED visible p99", f"{e2e['latency_ms_p99']:,.1f} ms", "")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000, help="no-op jobs submitted over HTTP (default 2000)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients (default 32)")
    parser.add_argument("--memory", action="store_true", help="keep the broker's log in memory instead of on disk")
    parser.add_argument("--raw-messages", type=int, default=20_000, help="records for the raw broker figure")
    parser.add_argument("--raw-upserts", type=int, default=10_000, help="documents for the raw database figure")
    args = parser.parse_args()
    stop_on_sigterm()
    result = asyncio.run(run(args))
    report(result)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"bench-{result['at'][:19].replace(':', '')}.json"
    path.write_text(json.dumps(result, indent=2))
    console.print(f"written: {path}")


if __name__ == "__main__":
    main()
