"""``make bench-transactions``: what exactly-once would cost the decider, measured.

    python -m bench.transactions [--records 20000] [--singles 200]

The decider consumes a command and produces the events it decides. It can do
that at least once (produce, wait for the acknowledgement, commit the input
offset later — today's design, with deterministic events that consumers drop
by ``(job_id, seq)``), or exactly once with Kafka transactions (the events and
the input offsets committed together; readers use ``read_committed``). This
bench runs the same relay both ways on the embedded Kafka — read a record,
write two (a decision of two events), commit — and measures:

- **hop**: one record at a time, the time from its produce to both outputs
  being readable (by a ``read_committed`` consumer in the transactional case);
- **throughput**: records relayed per second from a pre-filled input topic.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer, TopicPartition
from rich.console import Console
from rich.table import Table

from services.adapters.broker import ensure_topics
from services.adapters.consumer_runtime import open_consumer
from services.adapters.log import topic_partitions
from services.embedded.stack import ANY_PORT, EmbeddedStack, StackSettings, stop_on_sigterm

PARTITIONS = 8
console = Console()


class Relay:
    """Reads ``source``, writes two records per input to ``target``, commits."""

    def __init__(self, bootstrap: str, source: str, target: str, transactional: bool) -> None:
        self.source, self.target, self.transactional = source, target, transactional
        self.group = f"relay-{uuid.uuid4().hex[:8]}"
        self.consumer = open_consumer(bootstrap, self.group, isolation_level="read_committed")
        self.consumer.subscribe([source])
        extra = {"transactional_id": f"{self.group}-tx"} if transactional else {}
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **extra)
        self.relayed = 0

    async def run(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        last_commit = time.monotonic()
        pending: dict[TopicPartition, int] = {}
        try:
            while True:
                batches = await self.consumer.getmany(timeout_ms=200, max_records=1000)
                if not batches:
                    continue
                offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
                if self.transactional:
                    async with self.producer.transaction():
                        for records in batches.values():
                            for record in records:
                                await self._relay(record)
                        await self.producer.send_offsets_to_transaction(offsets, self.group)
                else:
                    futures = []
                    for records in batches.values():
                        for record in records:
                            futures += await self._relay(record)
                    await asyncio.gather(*futures)
                    pending.update(offsets)
                    if time.monotonic() - last_commit >= 0.5:
                        await self.consumer.commit(pending)
                        pending, last_commit = {}, time.monotonic()
                self.relayed += sum(len(records) for records in batches.values())
        finally:
            await self.consumer.stop()
            await self.producer.stop()

    async def _relay(self, record) -> list:
        return [await self.producer.send(self.target, key=record.key, value=record.value + suffix) for suffix in (b"/1", b"/2")]


async def measure(stack: EmbeddedStack, transactional: bool, records: int, singles: int) -> dict:
    tag = uuid.uuid4().hex[:6]
    source, target = f"bench.tx.in.{tag}", f"bench.tx.out.{tag}"
    await ensure_topics(stack.settings, [source, target])
    relay = Relay(stack.settings.kafka_bootstrap, source, target, transactional)
    running = asyncio.create_task(relay.run())
    producer = AIOKafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap, acks="all", enable_idempotence=True)
    reader = open_consumer(stack.settings.kafka_bootstrap, isolation_level="read_committed")
    await producer.start()
    await reader.start()
    try:
        reader.assign(await topic_partitions(stack.settings, target))
        await reader.seek_to_end()
        hops = []
        for i in range(singles):
            key = f"single-{i}".encode()
            started = time.perf_counter()
            await producer.send_and_wait(source, key=key, value=b"x")
            seen = 0
            while seen < 2:
                for batch in (await reader.getmany(timeout_ms=1000)).values():
                    seen += sum(1 for record in batch if record.key == key)
            hops.append((time.perf_counter() - started) * 1000)
        before = relay.relayed
        started = time.perf_counter()
        futures = [await producer.send(source, key=str(i).encode(), value=b"x" * 300) for i in range(records)]
        await asyncio.gather(*futures)
        while relay.relayed - before < records:
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        running.cancel()
        await reader.stop()
        await producer.stop()
    hops.sort()
    return {
        "hop_ms_p50": statistics.median(hops),
        "hop_ms_p99": hops[min(len(hops) - 1, int(len(hops) * 0.99))],
        "records_per_s": records / elapsed,
    }


async def run(args) -> dict:
    stack = EmbeddedStack(
        StackSettings(
            data_dir=Path(tempfile.mkdtemp(prefix="jobledger-tx-")),
            **ANY_PORT,
            partitions=PARTITIONS,
        )
    )
    await stack.start_infrastructure()
    try:
        return {
            "at least once": await measure(stack, False, args.records, args.singles),
            "exactly once (transactions)": await measure(stack, True, args.records, args.singles),
        }
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.transactions", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20_000, help="records relayed for the throughput figure (default 20000)")
    parser.add_argument("--singles", type=int, default=200, help="records relayed one at a time for the hop figure (default 200)")
    args = parser.parse_args()
    stop_on_sigterm()
    with console.status("relaying, at least once and then exactly once …"):
        result = asyncio.run(run(args))
    table = Table(title="the decider's relay, at least once vs exactly once (Kafka transactions)")
    for column in ("mode", "hop p50 / p99", "throughput", "vs at least once"):
        table.add_column(column)
    base = result["at least once"]
    for mode, figures in result.items():
        table.add_row(
            mode,
            f"{figures['hop_ms_p50']:.1f} / {figures['hop_ms_p99']:.1f} ms",
            f"{figures['records_per_s']:,.0f} records/s",
            f"hop ×{figures['hop_ms_p50'] / base['hop_ms_p50']:.2f}, throughput ×{figures['records_per_s'] / base['records_per_s']:.2f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
