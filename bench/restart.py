"""``make bench-restart``: how long ``make run`` takes to be ready again after a long history.

    python -m bench.restart [--jobs 100000]

1. Start the embedded stack (as ``make run``, in a fresh data directory).
2. Fill ``jobs.events`` with the history of ``--jobs`` finished jobs (the
   decider's own events, hash chains and all, appended straight to the log: a
   long history without waiting hours for it), and let the projector fold it.
3. Stop the whole stack — broker, database, services — and start it again on
   the same data directory, twice: the first start finds a history its
   decider's disk has never seen (as after an upgrade from a version without
   it) and folds all of it; the second is an ordinary restart.
4. Ready = a fresh job submitted after the start has SUCCEEDED. Reported per
   start: the time to ready, and the decider's own share (its restore, as its
   log says).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
from rich.console import Console

from bench.history import noop_history
from bench.results import save
from schemas import topics
from services.adapters.log import make_producer
from services.embedded import kafka
from services.embedded.stack import ANY_PORT, EmbeddedStack, StackSettings, stop_on_sigterm
from services.ingest.lag import consumer_lag
from services.ingest.settings import DEV_API_KEY, IngestSettings

EVENT_HEADERS = [("content-type", topics.CLOUDEVENTS_CONTENT_TYPE.encode())]
console = Console()


async def fill(stack: EmbeddedStack, jobs: int) -> None:
    """The events of ``jobs`` no-op jobs, as the decider would have written them."""
    producer = make_producer(stack.settings, linger_ms=20)
    await producer.start()
    now = datetime.now(timezone.utc)
    try:
        pending = []
        for i in range(jobs):
            job_id = f"history-{i:07d}"
            for event in noop_history(job_id, "default", now):
                pending.append(
                    await producer.send(topics.EVENTS, key=job_id.encode(), value=event.to_bytes(), headers=EVENT_HEADERS)
                )
            if len(pending) > 20_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def projected(stack: EmbeddedStack) -> None:
    settings = IngestSettings(kafka_bootstrap=stack.settings.kafka_bootstrap)
    while True:
        lag = (await consumer_lag(settings)).get("projector")
        if lag == 0:
            return
        console.log(f"projector lag: {lag} events")
        await asyncio.sleep(5)


async def fresh_job_succeeds(stack: EmbeddedStack) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {DEV_API_KEY}"}, timeout=130) as api:
        job_id = (await api.post("/jobs", json={"type": "noop"})).json()["id"]
        job = (await api.get(f"/jobs/{job_id}", params={"wait_s": 60})).json()
        if job["state"] != "SUCCEEDED":
            raise RuntimeError(f"the fresh job is {job['state']}")


def decider_restore_s(log: Path, since: float) -> float | None:
    """From the processor's log: how long the decider's restore of its partitions took after ``since``."""
    total = None
    for line in log.read_text(errors="replace").splitlines():
        found = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z .*partitions assigned.*restore_s=([\d.]+)", line)
        if found and datetime.fromisoformat(found.group(1) + "+00:00").timestamp() >= since:
            total = (total or 0.0) + float(found.group(2))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.restart", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000, help="finished jobs in the log before the restart (default 100000)")
    args = parser.parse_args()
    stop_on_sigterm()
    settings = StackSettings(
        data_dir=Path(tempfile.mkdtemp(prefix="jobledger-restart-")),
        **ANY_PORT,
    )
    stack = EmbeddedStack(settings)
    try:
        with console.status("starting the stack …"):
            asyncio.run(stack.start())
        with console.status(f"appending the history of {args.jobs:,} jobs to jobs.events …"):
            started = time.perf_counter()
            asyncio.run(fill(stack, args.jobs))
            console.log(f"history appended in {time.perf_counter() - started:.0f} s")
        with console.status("waiting for the projector to fold the history …"):
            asyncio.run(projected(stack))
        rounds = {}
        for name in ("first start on a log the decider's disk has not seen", "restart"):
            with console.status("stopping the whole stack …"):
                stack.stop()
            restarted_at = time.time()
            started = time.perf_counter()
            with console.status(f"{name}: starting it again and waiting for a fresh job to succeed …"):
                asyncio.run(stack.start())
                up = time.perf_counter() - started
                asyncio.run(fresh_job_succeeds(stack))
            rounds[name] = {
                "ready_s": time.perf_counter() - started,
                "stack_up_s": up,
                "decider_restore_s": decider_restore_s(settings.data_dir / "logs" / "processor.log", restarted_at),
            }
    finally:
        stack.stop()
    result = {
        "at": datetime.now(timezone.utc).isoformat(),
        "broker": f"Apache Kafka {kafka.kafka_version()}",
        "jobs": args.jobs,
        "events": args.jobs * 4,
        "rounds": rounds,
    }
    for name, figures in rounds.items():
        console.print(
            f"[bold]{args.jobs:,} jobs in the log, {name}:[/] ready (a fresh job SUCCEEDED) {figures['ready_s']:.1f} s "
            f"after the start; stack up {figures['stack_up_s']:.1f} s; the decider's restore "
            f"{figures['decider_restore_s'] or float('nan'):.2f} s"
        )
    path = save("restart", result)
    console.print(f"written: {path}")


if __name__ == "__main__":
    main()
