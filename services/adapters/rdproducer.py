"""A producer on librdkafka (confluent-kafka) with the asyncio face the
services use: ``await send(...)`` returns a future that resolves once the
broker acknowledged the record (``acks=all``, idempotent), like aiokafka's.

Why: per produced record librdkafka costs a fifth of aiokafka's client CPU,
and its acknowledged produce is about half as long (docs/performance.md).
``produce`` is a non-blocking C call made on the event loop's thread; one
thread of our own waits in ``poll`` for delivery reports and hands each to
the loop, which resolves its future.
"""

from __future__ import annotations

import asyncio
import threading
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from schemas.errors import JobledgerError
from services.common.settings import ConnectionSettings

POLL_S = 0.1
"""How long the delivery thread waits in one ``poll`` (a report wakes it at once)."""


MAX_REQUEST_BYTES = 1_048_576
"""The largest produce request, as aiokafka's default: room for a record of
``topics.MAX_RECORD_BYTES`` (librdkafka's own default, 1,000,000, refused a
submit that ingest's size check had let through)."""


class DeliveryFailed(JobledgerError):
    """The broker did not acknowledge a record (librdkafka gave up on it)."""


class RdProducer:
    def __init__(self, settings: ConnectionSettings, max_batch_bytes: int, delivery_timeout_s: float = 30.0) -> None:
        """``delivery_timeout_s``: how long librdkafka keeps trying a record;
        a caller that stops waiting sooner should pass its own wait, so that
        a record it answered as not accepted is not written after all."""
        timeout_ms = int(delivery_timeout_s * 1000)
        self._config = {
            "bootstrap.servers": settings.kafka_bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": settings.linger_ms,
            "batch.size": max_batch_bytes,
            "message.max.bytes": MAX_REQUEST_BYTES,
            "request.timeout.ms": min(15_000, timeout_ms),
            "delivery.timeout.ms": timeout_ms,
            "partitioner": "murmur2_random",  # the Java client's (and aiokafka's) choice: keys land where they did
        }
        self._producer: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._deliver, name="rdkafka-deliveries", daemon=True)
        self._running = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._producer = Producer(self._config)
        self._running = True
        self._thread.start()
        await self.ready(timeout_s=10.0)

    @property
    def _started(self) -> tuple[Producer, asyncio.AbstractEventLoop]:
        if self._producer is None or self._loop is None:
            raise RuntimeError("the producer is not started")
        return self._producer, self._loop

    async def ready(self, timeout_s: float = 3.0) -> None:
        """Raises unless the broker answers a metadata request within ``timeout_s``."""
        await asyncio.to_thread(self._started[0].list_topics, timeout=timeout_s)

    async def send(self, topic: str, value: bytes, key: bytes | None = None, headers: list | None = None) -> asyncio.Future:
        """Queue the record; the returned future resolves to its offset once it is acknowledged."""
        producer, loop = self._started
        delivered = loop.create_future()
        producer.produce(
            topic, value, key, headers=headers, on_delivery=lambda error, message: self._report(delivered, error, message)
        )
        return delivered

    async def send_many(self, topic: str, records: list[tuple[bytes, bytes]]) -> Deliveries:
        """Queue ``(key, value)`` records; :class:`Deliveries` says, once each is
        acknowledged or given up on, which were written. One future for them all:
        a future per record, each settled on the loop, was a tenth of a batch
        submit's CPU in ingest (docs/performance.md)."""
        producer, loop = self._started
        deliveries = Deliveries(loop, len(records))
        for index, (key, value) in enumerate(records):
            try:
                producer.produce(topic, value, key, on_delivery=partial(deliveries.report, index))
            except (BufferError, KafkaException) as error:  # refused at once (the queue is full)
                deliveries.report(index, error)
        return deliveries

    def _report(self, delivered: asyncio.Future, error: KafkaError | None, message: Message | None = None) -> None:
        """On the delivery thread: hand the outcome to the loop."""
        offset = message.offset() if error is None and message is not None else None
        self._started[1].call_soon_threadsafe(_settle, delivered, error, offset)

    def _deliver(self) -> None:
        producer = self._started[0]
        while self._running:
            producer.poll(POLL_S)

    async def flush(self, timeout_s: float = 30.0) -> None:
        left = await asyncio.to_thread(self._started[0].flush, timeout_s)
        if left:
            raise DeliveryFailed(f"{left} records not acknowledged within {timeout_s:g} s")

    async def stop(self) -> None:
        if self._producer is None:
            return
        try:
            await self.flush()
        finally:
            self._running = False
            await asyncio.to_thread(self._thread.join)
            self._producer = None


PENDING = object()
"""A record of :class:`Deliveries` neither acknowledged nor given up on yet."""


class Deliveries:
    """The outcome of :meth:`RdProducer.send_many`: per record, ``None`` once
    acknowledged, the error once given up on, :data:`PENDING` until then;
    ``done`` resolves when none is pending."""

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self._loop = loop
        self.outcome: list[Any] = [PENDING] * count
        self._left = count
        self._lock = threading.Lock()  # reports come from whichever thread polls (the delivery thread, or a flush)
        self.done: asyncio.Future = loop.create_future()
        if count == 0:
            self.done.set_result(None)

    def report(self, index: int, error: Any, message: Any = None) -> None:
        self.outcome[index] = error
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self._loop.call_soon_threadsafe(_settle, self.done, None)

    def acknowledged(self, index: int) -> bool:
        return self.outcome[index] is None


def _settle(delivered: asyncio.Future, error: Any, offset: int | None = None) -> None:
    if delivered.done():
        return
    if error is None:
        delivered.set_result(offset)
    else:
        delivered.set_exception(DeliveryFailed(str(KafkaException(error))))
