"""Audit tools: read the job log, verify its hash chains, export it.

They read ``jobs.events`` itself (or an exported copy), never the read models:
an auditor checks the log of record.
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from schemas import topics
from schemas.chain import BrokenLink, ChainCheck
from services.common.kafka import topic_partitions
from services.common.settings import ConnectionSettings

CSV_COLUMNS = ["subject", "seq", "type", "time", "tenant", "id", "causationid", "correlationid", "prevhash", "hash", "data"]


async def log_records(
    settings: ConnectionSettings,
    on_total: Callable[[int], None] | None = None,
    start: dict[int, int] | None = None,
    ends_out: dict[int, int] | None = None,
    topic: str = topics.EVENTS,
) -> AsyncIterator[bytes]:
    """Every record value of ``topic``: see :func:`log_entries`."""
    async for record in log_entries(settings, on_total, start, ends_out, topic):
        yield record.value


async def log_entries(
    settings: ConnectionSettings,
    on_total: Callable[[int], None] | None = None,
    start: dict[int, int] | None = None,
    ends_out: dict[int, int] | None = None,
    topic: str = topics.EVENTS,
) -> AsyncIterator[ConsumerRecord]:
    """Every record of ``topic`` (``jobs.events``), partition by partition, from
    ``start`` (partition → offset) if given, until a fetch at the end finds
    nothing more. Where each partition was read up to goes into ``ends_out``,
    to read on from there later."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = await topic_partitions(settings, topic)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        if start is not None:
            starts = {tp: max(offset, start.get(tp.partition, offset)) for tp, offset in starts.items()}
        if on_total is not None:
            on_total(sum(ends[tp] - starts[tp] for tp in tps))
        for tp in tps:
            consumer.assign([tp])
            consumer.seek(tp, starts[tp])
            position = starts[tp]
            while True:
                # Read past the end offset asked for until a fetch comes back empty:
                # an end offset read right after a write may be behind the log.
                batches = await consumer.getmany(tp, timeout_ms=200 if position >= ends[tp] else 1000, max_records=5000)
                records = batches.get(tp, [])
                if not records and position >= ends[tp]:
                    break
                for record in records:
                    position = record.offset + 1
                    yield record
            if ends_out is not None:
                ends_out[tp.partition] = max(position, ends[tp])
    finally:
        await consumer.stop()


def file_records(path: Path) -> Iterator[bytes]:
    """The lines of an exported JSONL copy of the log."""
    with path.open("rb") as file:
        for line in file:
            if line.strip():
                yield line.rstrip(b"\n")


def verify(chain: ChainCheck, raw: bytes, where: str) -> None:
    """Add one record to ``chain``; a record that is not JSON is a break too."""
    try:
        event = json.loads(raw)
        if not isinstance(event, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        chain.broken.append(BrokenLink(job_id=f"({where})", seq=None, reason=f"not a readable event: {error}"))
        return
    chain.add(event)


def selected(event: dict[str, Any], job: str | None, since: datetime | None, until: datetime | None) -> bool:
    if job is not None and event.get("subject") != job:
        return False
    if since is not None or until is not None:
        at = datetime.fromisoformat(str(event.get("time")).replace("Z", "+00:00"))
        if since is not None and at < since:
            return False
        if until is not None and at > until:
            return False
    return True


class Exporter:
    """Writes events as JSONL (the record bytes, unchanged) or CSV (one column per attribute)."""

    def __init__(self, out: TextIO, fmt: str) -> None:
        self.out = out
        self.fmt = fmt
        self.count = 0
        if fmt == "csv":
            self.csv = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            self.csv.writeheader()

    def write(self, raw: bytes, event: dict[str, Any]) -> None:
        self.count += 1
        if self.fmt == "jsonl":
            self.out.write(raw.decode() + "\n")
        else:
            self.csv.writerow({**event, "data": json.dumps(event.get("data"), sort_keys=True, ensure_ascii=False)})
