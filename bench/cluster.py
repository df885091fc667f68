"""``make bench-cluster``: what a job costs each part of ``make cluster``'s stack.

    python -m bench.cluster [--jobs 2000] [--singles 200] [--processes 16] [--jobs-per-process 125]

On the stack ``make cluster`` starts (three Kafka nodes with replication
factor 3 and ``min.insync.replicas=2``, two ingest processes sharing the
API's port, two processors, two projectors; logs and read models on disk),
the client methods of ``make bench-peers`` (:mod:`bench.client`): one client
submitting one ``POST /jobs`` after another, then waiting for each; then
``--processes`` client processes doing the same. For each method, per job:

- CPU by part, every process of a kind summed (the three Kafka nodes, the two
  ingests …), read from ``/proc``;
- broker requests by type, summed over the three nodes (their JMX counters:
  replication's own fetches are ``Fetch`` less ``FetchConsumer``);
- database operations by type;
- offsets and bytes appended to each topic, every replica counted (the
  nodes' log segments on disk).

These are the figures ``docs/scaling.md`` builds its capacity model from;
the model is checked against the rates measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.client import jobledger, measure, measure_processes
from bench.costs import CLIENT, CostMeter, read_models_caught_up
from bench.results import save
from services.adapters.log import make_consumer, topic_partitions
from services.embedded import kafka
from services.embedded.stack import ANY_PORT, EmbeddedStack, StackSettings, broker_name, stop_on_sigterm
from services.ingest.settings import DEV_API_KEY

console = Console()
TOPIC_PREFIXES = ("jobs.", "__consumer_offsets", "__transaction_state")


def part(name: str) -> str:
    """The kind of a process: ``broker-2`` and ``broker`` are both ``broker``."""
    return name.split("-")[0]


def log_bytes(stack: EmbeddedStack) -> dict[str, int]:
    """Bytes in the log segments of each topic, over every node (every replica)."""
    sizes: dict[str, int] = {}
    for node in stack.nodes:
        for directory in node.log_dir.iterdir():
            topic = directory.name.rpartition("-")[0]
            if directory.is_dir() and topic.startswith(TOPIC_PREFIXES):
                sizes[topic] = sizes.get(topic, 0) + sum(segment.stat().st_size for segment in directory.glob("*.log"))
    return sizes


async def log_ends(stack: EmbeddedStack) -> dict[str, int]:
    """Each jobledger topic's end offsets, summed over its partitions."""
    consumer = make_consumer(stack.settings)
    await consumer.start()
    try:
        ends: dict[str, int] = {}
        for topic in ("jobs.commands", "jobs.events", "jobs.logs", "jobs.slots", "jobs.workers"):
            partitions = await topic_partitions(stack.settings, topic)
            ends[topic] = sum((await consumer.end_offsets(partitions)).values())
        return ends
    finally:
        await consumer.stop()


def measured(stack: EmbeddedStack, method, jobs: int) -> dict:
    """Run ``method(meter)`` and add the log's growth per job to its result."""
    sessions = {name: process.pid for name, process in stack.processes.items() if name != "artifacts"}
    brokers = tuple(stack.processes[broker_name(node.node_id)].pid for node in stack.nodes)
    meter = CostMeter(sessions, brokers, stack.settings.mongo_url, read_models_caught_up(stack.settings))
    offsets_before, bytes_before = asyncio.run(log_ends(stack)), log_bytes(stack)
    result = method(meter)
    offsets_after, bytes_after = asyncio.run(log_ends(stack)), log_bytes(stack)
    by_part: dict[str, float] = {}
    for name, value in result["costs"]["cpu_ms"].items():
        if name != "total":
            by_part[part(name)] = by_part.get(part(name), 0.0) + value
    result["costs"]["cpu_ms_by_part"] = by_part
    result["costs"]["offsets"] = {topic: (offsets_after[topic] - offsets_before[topic]) / jobs for topic in offsets_after}
    result["costs"]["bytes"] = {topic: (bytes_after.get(topic, 0) - bytes_before.get(topic, 0)) / jobs for topic in bytes_after}
    return result


def run(args) -> dict:
    settings = StackSettings(
        data_dir=Path(tempfile.mkdtemp(prefix="jobledger-cluster-")),
        **ANY_PORT,
        brokers=3,
        replicas=2,
        ingest_replicas=2,
    )
    stack = EmbeddedStack(settings)
    with console.status("starting make cluster's stack …"):
        asyncio.run(stack.start())
    try:
        system = jobledger(stack.api_url, DEV_API_KEY)
        try:
            with console.status("") as status:
                one = measured(
                    stack, lambda meter: measure(system, args.jobs, 1, args.singles, status.update, meter=meter), args.jobs
                )
                total = args.processes * args.jobs_per_process
                many = measured(
                    stack,
                    lambda meter: measure_processes(
                        jobledger, (stack.api_url, DEV_API_KEY), args.processes, args.jobs_per_process, status.update, meter
                    ),
                    total,
                )
        finally:
            system.close()
    finally:
        with console.status("stopping …"):
            stack.stop()
    return {
        "at": datetime.now(timezone.utc).isoformat(),
        "broker": f"Apache Kafka {kafka.kafka_version()}, 3 nodes, replication factor 3, min.insync.replicas 2",
        "shape": {"partitions": settings.partitions, "brokers": 3, "ingest": 2, "processors": 2, "projectors": 2},
        "args": vars(args),
        "one": one,
        "many": many,
    }


def report(result: dict) -> None:
    for method, title in (("one", "one client"), ("many", f"{result['args']['processes']} client processes")):
        figures = result[method]
        costs = figures["costs"]
        table = Table(title=f"make cluster, {title}: {figures['end_to_end_jobs_per_s']:,.0f} jobs/s end to end")
        table.add_column("per job")
        table.add_column("by part")
        table.add_column("total", justify="right")
        parts = sorted(((value, name) for name, value in costs["cpu_ms_by_part"].items()), reverse=True)
        table.add_row(
            "CPU, ms",
            ", ".join(f"{name} {value:.2f}" for value, name in parts if name == CLIENT or value >= 0.005),
            f"{sum(costs['cpu_ms_by_part'].values()):.2f}",
        )
        for kind, label in (("broker_requests", "broker requests"), ("database_operations", "database operations")):
            if kind in costs:
                shown = ", ".join(f"{k} {v:.2f}" for k, v in costs[kind].items() if k != "total" and v >= 0.005)
                table.add_row(label, shown, f"{costs[kind]['total']:.2f}")
        table.add_row(
            "offsets appended",
            ", ".join(f"{k} {v:.2f}" for k, v in costs["offsets"].items() if v >= 0.005),
            f"{sum(costs['offsets'].values()):.2f}",
        )
        table.add_row(
            "bytes on disk (every replica)",
            ", ".join(f"{k} {v:,.0f}" for k, v in costs["bytes"].items() if v >= 1),
            f"{sum(costs['bytes'].values()):,.0f}",
        )
        if "latency_ms_p50" in figures:
            table.add_row("one at a time", f"p50 {figures['latency_ms_p50']:.1f} ms, p99 {figures['latency_ms_p99']:.1f} ms", "")
        console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000, help="one client: sequential submits (default 2000)")
    parser.add_argument("--singles", type=int, default=200, help="jobs one at a time, for latency (default 200)")
    parser.add_argument("--processes", type=int, default=16, help="many clients: client processes (default 16)")
    parser.add_argument("--jobs-per-process", type=int, default=125, help="many clients: jobs each submits (default 125)")
    args = parser.parse_args()
    stop_on_sigterm()
    result = run(args)
    report(result)
    console.print(f"written: {save('cluster', result)}")


if __name__ == "__main__":
    main()
