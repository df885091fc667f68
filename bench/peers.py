"""``make bench-peers``: jobledger beside Celery + Redis, the same clients, one run.

    python -m bench.peers [--jobs 2000] [--runs 3] [--singles 200]
                          [--processes 16] [--jobs-per-process 250]

Both systems are started fresh on this machine, one after the other, and
driven by the identical clients (:mod:`bench.client`):

- **one client**: sequential submits over one keep-alive connection, then a
  wait for every job; three runs; then jobs one at a time;
- **many clients**: ``--processes`` client processes, each submitting its
  share one request after another, then waiting for each of its jobs.

jobledger runs as ``make run`` runs it (Apache Kafka with its log on disk, the
database on disk, one processor whose runner has its default concurrency);
Celery runs one worker with its default pool on Redis with an append-only file
synced every second. For each method, what a job cost every process of each
stack in CPU is read from ``/proc`` (:mod:`bench.costs`), and for jobledger
the broker's requests and the database's operations per job. Every
jobledger figure is printed with its ratio to Celery's, and the run is
written to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.client import ClientSystem, jobledger, measure, measure_processes
from bench.costs import CLIENT, CostMeter, read_models_caught_up
from bench.results import save
from services.embedded import kafka
from services.embedded.stack import ANY_PORT, EmbeddedStack, StackSettings, stop_on_sigterm
from services.ingest.settings import DEV_API_KEY

console = Console()

FIGURES = [
    ("one", "submit_per_s", "one client: sequential submits/s", True),
    ("one", "end_to_end_jobs_per_s", "one client: end to end jobs/s (median of runs)", True),
    ("one", "latency_ms_p50", "one at a time: p50 ms", False),
    ("one", "latency_ms_p99", "one at a time: p99 ms", False),
    ("many", "submit_per_s", "{processes} client processes: submits/s", True),
    ("many", "end_to_end_jobs_per_s", "{processes} client processes: end to end jobs/s", True),
    ("one", ("costs", "cpu_ms", "total"), "one client: CPU per job, all processes, ms", False),
    ("many", ("costs", "cpu_ms", "total"), "{processes} client processes: CPU per job, ms", False),
]


def _figure(result: dict, method: str, key) -> float:
    value = result[method]
    for part in key if isinstance(key, tuple) else (key,):
        value = value[part]
    return value


def run_jobledger(args) -> dict:
    stack = EmbeddedStack(
        StackSettings(
            data_dir=Path(tempfile.mkdtemp(prefix="jobledger-peers-")),
            **ANY_PORT,
        )
    )
    with console.status("starting jobledger (make run's stack) …"):
        asyncio.run(stack.start())
    try:

        def meter() -> CostMeter:
            sessions = {name: process.pid for name, process in stack.processes.items() if name != "artifacts"}
            return CostMeter(
                sessions, stack.processes["broker"].pid, stack.settings.mongo_url, read_models_caught_up(stack.settings)
            )

        return _measured(
            "jobledger", jobledger(stack.api_url, DEV_API_KEY), (jobledger, (stack.api_url, DEV_API_KEY)), meter, args
        )
    finally:
        with console.status("stopping jobledger …"):
            stack.stop()


def run_celery(args) -> dict:
    from bench.celery_peer import CeleryPeer, celery_client

    with console.status("starting Redis and a Celery worker …"):
        peer = CeleryPeer()
        system = peer.__enter__()
    try:
        return _measured("celery", system, (celery_client, (peer.url,)), lambda: CostMeter(peer.sessions), args)
    finally:
        peer.__exit__()


def _measured(name: str, system: ClientSystem, factory: tuple, meter, args) -> dict:
    try:
        with console.status("") as status:
            one = measure(system, args.jobs, args.runs, args.singles, progress=status.update, meter=meter())
            many = measure_processes(*factory, args.processes, args.jobs_per_process, progress=status.update, meter=meter())
        return {"one": one, "many": many}
    finally:
        system.close()


def report(result: dict) -> None:
    ours, theirs = result["jobledger"], result["celery"]
    processes = ours["many"]["processes"]
    table = Table(title=f"jobledger ({result['broker']}) vs Celery + Redis — the same clients, one run")
    for column in ("figure", "jobledger", "Celery", "jobledger / Celery"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for method, key, label, higher_is_better in FIGURES:
        mine, peer = _figure(ours, method, key), _figure(theirs, method, key)
        ratio = mine / peer
        verdict = "better" if (ratio >= 1) == higher_is_better else "worse"
        table.add_row(label.format(processes=processes), f"{mine:,.1f}", f"{peer:,.1f}", f"{ratio:.2f}× ({verdict})")
    for name in ("jobledger", "celery"):
        one = result[name]["one"]
        rates = " → ".join(f"{r['end_to_end_jobs_per_s']:,.0f}" for r in one["runs"])
        verdict = "flat" if one["flat"] else "NOT flat (a run < 90% of the first)"
        table.add_row(f"{name} one client end to end, run 1 → {len(one['runs'])}", rates, "", verdict)
    console.print(table)
    for method, title in (("one", "one client"), ("many", f"{processes} client processes")):
        cpu = Table(title=f"CPU per job, ms, by process — {title} (from /proc, before and after)")
        cpu.add_column("system")
        cpu.add_column("by process")
        cpu.add_column("total", justify="right")
        for name in ("jobledger", "celery"):
            per_process = result[name][method]["costs"]["cpu_ms"]
            parts = sorted(((value, key) for key, value in per_process.items() if key != "total"), reverse=True)
            shown = ", ".join(f"{key} {value:.2f}" for value, key in parts if key == CLIENT or value >= 0.005)
            cpu.add_row(name, shown, f"{per_process['total']:.2f}")
        console.print(cpu)
        costs = ours[method]["costs"]
        for kind, label in (("broker_requests", "broker requests"), ("database_operations", "database operations")):
            if kind in costs:
                counts = costs[kind]
                shown = ", ".join(f"{key} {value:.2f}" for key, value in counts.items() if key != "total" and value >= 0.005)
                console.print(f"  jobledger {label} per job ({title}): [bold]{counts['total']:.2f}[/] ({shown})")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peers", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000, help="one client: sequential submits per run (default 2000)")
    parser.add_argument("--runs", type=int, default=3, help="one client: runs on each system (default 3)")
    parser.add_argument("--singles", type=int, default=200, help="jobs one at a time, for latency (default 200)")
    parser.add_argument("--processes", type=int, default=16, help="many clients: client processes (default 16)")
    parser.add_argument("--jobs-per-process", type=int, default=250, help="many clients: jobs each process submits (default 250)")
    args = parser.parse_args()
    stop_on_sigterm()
    result = {
        "at": datetime.now(timezone.utc).isoformat(),
        "broker": f"Apache Kafka {kafka.kafka_version()}",
        "args": vars(args),
        "jobledger": run_jobledger(args),
        "celery": run_celery(args),
    }
    result["ratios"] = {
        f"{method}.{key if isinstance(key, str) else '.'.join(key)}": (
            _figure(result["jobledger"], method, key) / _figure(result["celery"], method, key)
        )
        for method, key, _, _ in FIGURES
    }
    report(result)
    path = save("peers", result)
    console.print(f"written: {path}")


if __name__ == "__main__":
    main()
