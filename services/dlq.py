"""Dead letters (``jobs.dlq``) for operators: list them, read one, send them back.

A record lands in ``jobs.dlq`` when a consumer could not read or decide it
(``jobledger-stage`` names which, ``jobledger-error`` why); the consumer went
on without it. Once the cause is fixed (a handler module deployed, a bug
mended), :func:`redrive` appends each chosen record to its source topic again
— its key, value and own headers, plus ``jobledger-redriven-from`` — and then
a receipt on ``jobs.dlq`` (stage ``redrive``) so that listing it again shows
it as sent back. A record that is still poison comes back as a new dead letter.

Events are never redriven: a dead-lettered event is in the log of record
already (only the projector could not fold it); fix the projector and rebuild
the read models with ``jobledger replay --swap``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from aiokafka import ConsumerRecord

from schemas import topics
from services.adapters.log import make_producer, read_to_end, topic_partitions
from services.common.settings import ConnectionSettings

PREFIX = topics.DLQ_HEADER_PREFIX
REDRIVE_STAGE = "redrive"
REDRIVEN_FROM = f"{PREFIX}redriven-from"
RECEIPT_OF = f"{PREFIX}receipt-of"
NOT_REDRIVEN = frozenset({topics.EVENTS})
"""Source topics a dead letter is never sent back to (see the module's doc)."""


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    at: datetime
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    """The record's own headers, without the dead-letter ones."""
    stage: str
    error: str
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    redriven: bool = False

    @property
    def address(self) -> str:
        """``partition:offset`` in jobs.dlq: how the CLI names it."""
        return f"{self.partition}:{self.offset}"

    @property
    def redrivable(self) -> str | None:
        """Why it cannot be sent back, or ``None``."""
        if self.source_topic in NOT_REDRIVEN:
            return "an event is in the log already: fix the projector, then `jobledger replay --swap`"
        if not self.source_topic:
            return "it names no source topic"
        return None


async def dead_letters(settings: ConnectionSettings) -> list[DeadLetter]:
    """Every dead letter in jobs.dlq, oldest first per partition; ``redriven`` for those sent back."""
    partitions = await topic_partitions(settings, topics.DLQ)
    letters: list[DeadLetter] = []
    receipts: set[str] = set()
    async for records in read_to_end(settings, topics.DLQ, {tp.partition: None for tp in partitions}):
        for record in records:
            headers = _headers(record)
            if headers.get(f"{PREFIX}stage") == REDRIVE_STAGE:
                receipts.add(headers.get(RECEIPT_OF, ""))
            else:
                letters.append(_letter(record, headers))
    return [replace(letter, redriven=True) if letter.address in receipts else letter for letter in letters]


async def redrive(settings: ConnectionSettings, letters: list[DeadLetter], timeout_s: float = 30.0) -> int:
    """Send ``letters`` back to their source topics, then a receipt for each; how many."""
    if not letters:
        return 0
    refused = [letter.address for letter in letters if letter.redrivable]
    if refused:
        raise ValueError(f"cannot be redriven: {', '.join(refused)}")
    producer = make_producer(settings)
    await producer.start()
    try:
        sent = [
            await producer.send(
                letter.source_topic,
                key=letter.key,
                value=letter.value,
                headers=[*letter.headers, (REDRIVEN_FROM, letter.address.encode())],
            )
            for letter in letters
        ]
        await asyncio.wait_for(asyncio.gather(*sent), timeout_s)
        receipts = [
            await producer.send(
                topics.DLQ,
                key=letter.key,
                value=b"",
                headers=[(f"{PREFIX}stage", REDRIVE_STAGE.encode()), (RECEIPT_OF, letter.address.encode())],
            )
            for letter in letters
        ]
        await asyncio.wait_for(asyncio.gather(*receipts), timeout_s)
    finally:
        await producer.stop()
    return len(letters)


def _headers(record: ConsumerRecord) -> dict[str, str]:
    return {name: value.decode("utf-8", "replace") for name, value in record.headers or () if name.startswith(PREFIX)}


def _letter(record: ConsumerRecord, headers: dict[str, str]) -> DeadLetter:
    def number(name: str) -> int | None:
        text = headers.get(f"{PREFIX}{name}", "")
        return int(text) if text.isdigit() else None

    return DeadLetter(
        partition=record.partition,
        offset=record.offset,
        at=datetime.fromtimestamp(record.timestamp / 1000, timezone.utc),
        key=record.key,
        value=record.value or b"",
        headers=[(name, value) for name, value in record.headers or () if not name.startswith(PREFIX)],
        stage=headers.get(f"{PREFIX}stage", ""),
        error=headers.get(f"{PREFIX}error", ""),
        source_topic=headers.get(f"{PREFIX}source-topic", ""),
        source_partition=number("source-partition"),
        source_offset=number("source-offset"),
    )
