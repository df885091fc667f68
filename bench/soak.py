"""``make bench-soak``: does jobledger stay as fast as its log grows?

    python -m bench.soak [--jobs 50000]

On a fresh stack (as ``make run``), 16 clients submit ``--jobs`` no-op jobs
through ``POST /jobs:batch`` (100 per request) as fast as the stack takes
them, while a change stream on the read model notes when each one turns
SUCCEEDED. Compared: the completion rate of the first 10,000 jobs and of the
last 10,000. A service whose cost grows with its history slows down; the
target is a last-10,000 rate at least 90% of the first.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console

from bench.results import save
from bench.scenarios import throughput
from services.embedded import kafka
from services.embedded.stack import ANY_PORT, EmbeddedStack, StackSettings, stop_on_sigterm

WINDOW = 10_000
console = Console()


async def run(jobs: int) -> dict:
    stack = EmbeddedStack(
        StackSettings(
            data_dir=Path(tempfile.mkdtemp(prefix="jobledger-soak-")),
            **ANY_PORT,
            service_env={"runner_concurrency": "64"},
        )
    )
    with console.status("starting the stack …"):
        await stack.start()
    try:
        finished: list[float] = []
        result = await throughput(stack, jobs, clients=16, batch=100, finished_out=finished)
    finally:
        stack.stop()
    finished.sort()
    window = min(WINDOW, len(finished) // 2)
    first = window / (finished[window - 1] - finished[0])
    last = window / (finished[-1] - finished[-window])
    return {
        "at": datetime.now(timezone.utc).isoformat(),
        "broker": f"Apache Kafka {kafka.kafka_version()}",
        "jobs": jobs,
        "jobs_per_s": result["jobs_per_s"],
        "first_window_jobs_per_s": first,
        "last_window_jobs_per_s": last,
        "last_vs_first": last / first,
        "flat": last >= 0.9 * first,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=50_000, help="no-op jobs (default 50000)")
    args = parser.parse_args()
    stop_on_sigterm()
    result = asyncio.run(run(args.jobs))
    console.print(
        f"[bold]{args.jobs:,} jobs:[/] {result['jobs_per_s']:,.1f} jobs/s overall; first {WINDOW:,} "
        f"{result['first_window_jobs_per_s']:,.1f} jobs/s, last {WINDOW:,} {result['last_window_jobs_per_s']:,.1f} jobs/s "
        f"= {result['last_vs_first']:.0%} of the first ({'flat' if result['flat'] else 'NOT flat'})"
    )
    path = save("soak", result)
    console.print(f"written: {path}")


if __name__ == "__main__":
    main()
