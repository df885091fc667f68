"""faust's aiokafka transport with a configurable fetch wait.

faust creates its worker consumer with ``fetch_max_wait_ms=1500`` and no
setting to change it. A broker may hold a fetch that long when a partition
has no new data (the embedded broker does: its latency follows this value),
so every decision would wait up to 1.5 s. The decider needs the same short
wait as every other consumer here (``JOBLEDGER_FETCH_MAX_WAIT_MS``).

It also keeps faust's stuck-stream check away from table changelogs, which no
agent streams.
"""

from __future__ import annotations

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher.
        consumer._fetch_max_wait_ms = self.consumer.app.conf.fetch_max_wait_ms
        return consumer

    def verify_event_path(self, now: float, tp) -> None:
        # A table's changelog (jobs.events for the decider's states) is read at
        # recovery and never streamed by an agent; faust would log "Stream has
        # not started processing" for it as an ERROR every second.
        if tp.topic in self.consumer.app.tables.changelog_topics:
            return None
        return super().verify_event_path(now, tp)


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class ProcessorApp(faust.App):
    """A faust app whose consumer honours ``conf.fetch_max_wait_ms``."""

    def __init__(self, *args, fetch_max_wait_ms: int = 10, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conf.fetch_max_wait_ms = fetch_max_wait_ms

    def _new_transport(self):
        return _Transport(self.conf.broker_consumer, self)
