"""``make bench-peers``: jobledger beside Celery + Redis, one client, one run.

    python -m bench.peers [--jobs 2000] [--runs 3] [--singles 200]

Both systems are started fresh on this machine, one after the other, and
driven by the identical client (:mod:`bench.client`): sequential submits over
one keep-alive connection, then a wait for every job; three runs; then jobs
one at a time. jobledger runs as ``make run`` runs it (Apache Kafka with its
log on disk, the database on disk, one processor with its default runner
concurrency); Celery runs one worker with its default pool on Redis with an
append-only file synced every second. Every jobledger figure is printed with
its ratio to Celery's, and the run is written to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.client import ClientSystem, jobledger, measure
from bench.results import save
from services.embedded import kafka
from services.embedded.stack import EmbeddedStack, StackSettings, stop_on_sigterm
from services.ingest.settings import DEV_API_KEY

console = Console()

FIGURES = [
    ("submit_per_s", "sequential submits/s", True),
    ("end_to_end_jobs_per_s", "end to end jobs/s (median of runs)", True),
    ("latency_ms_p50", "one at a time, p50 ms", False),
    ("latency_ms_p99", "one at a time, p99 ms", False),
]


def run_jobledger(args) -> dict:
    stack = EmbeddedStack(
        StackSettings(
            data_dir=Path(tempfile.mkdtemp(prefix="jobledger-peers-")),
            broker_port=0,
            controller_port=0,
            mongo_port=0,
            api_port=0,
            s3_port=0,
        )
    )
    with console.status("starting jobledger (make run's stack) …"):
        asyncio.run(stack.start())
    try:
        return _measured(jobledger(stack.api_url, DEV_API_KEY), args)
    finally:
        with console.status("stopping jobledger …"):
            stack.stop()


def run_celery(args) -> dict:
    from bench.celery_peer import CeleryPeer

    with console.status("starting Redis and a Celery worker …"):
        peer = CeleryPeer()
        system = peer.__enter__()
    try:
        return _measured(system, args)
    finally:
        peer.__exit__()


def _measured(system: ClientSystem, args) -> dict:
    try:
        with console.status("") as status:
            return measure(system, args.jobs, args.runs, args.singles, progress=status.update)
    finally:
        system.close()


def report(result: dict) -> None:
    ours, theirs = result["jobledger"], result["celery"]
    table = Table(title=f"jobledger ({result['broker']}) vs Celery + Redis — one client, same run")
    for column in ("figure", "jobledger", "Celery", "jobledger / Celery"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for key, label, higher_is_better in FIGURES:
        ratio = ours[key] / theirs[key]
        verdict = "better" if (ratio >= 1) == higher_is_better else "worse"
        table.add_row(label, f"{ours[key]:,.1f}", f"{theirs[key]:,.1f}", f"{ratio:.2f}× ({verdict})")
    for name in ("jobledger", "celery"):
        rates = " → ".join(f"{r['end_to_end_jobs_per_s']:,.0f}" for r in result[name]["runs"])
        table.add_row(f"{name} end to end, run 1 → {len(result[name]['runs'])}", rates, "", "flat" if result[name]["flat"] else "NOT flat")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000, help="sequential submits per run (default 2000)")
    parser.add_argument("--runs", type=int, default=3, help="runs on each system (default 3)")
    parser.add_argument("--singles", type=int, default=200, help="jobs one at a time, for latency (default 200)")
    args = parser.parse_args()
    stop_on_sigterm()
    result = {
        "at": datetime.now(timezone.utc).isoformat(),
        "broker": f"Apache Kafka {kafka.kafka_version()}",
        "args": vars(args),
        "jobledger": run_jobledger(args),
        "celery": run_celery(args),
    }
    result["ratios"] = {key: result["jobledger"][key] / result["celery"][key] for key, _, _ in FIGURES}
    report(result)
    path = save("peers", result)
    console.print(f"written: {path}")


if __name__ == "__main__":
    main()
