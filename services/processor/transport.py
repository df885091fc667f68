"""faust's aiokafka transport, adjusted in three places.

- **Fetch wait.** faust creates its worker consumer with ``fetch_max_wait_ms=1500``
  and no setting to change it. Kafka answers a fetch as soon as data arrives,
  so the wait costs no latency there, but the decider should behave like every
  other consumer here (``JOBLEDGER_FETCH_MAX_WAIT_MS``), on any broker.
- **Idempotent producer.** faust turns idempotence on only inside its
  exactly-once transactions. The decider is the only writer of ``jobs.events``:
  a send retried after a lost acknowledgement must not write an event twice
  or reorder a job's events, so its producer is idempotent (``acks=all``).
- **Stuck-stream check.** faust would log "Stream has not started processing"
  as an ERROR every second for ``jobs.events``, which the decider's state table
  reads at recovery and no agent streams.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher.
        consumer._fetch_max_wait_ms = self.consumer.app.conf.fetch_max_wait_ms
        return consumer

    def verify_event_path(self, now: float, tp) -> None:
        if tp.topic in self.consumer.app.tables.changelog_topics:
            return None
        return super().verify_event_path(now, tp)


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Producer(faust_aiokafka.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        return {"acks": "all", "enable_idempotence": True}


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
    Producer = _Producer


class ProcessorApp(faust.App):
    """A faust app whose consumer honours ``conf.fetch_max_wait_ms`` and whose producer is idempotent."""

    def __init__(self, *args, fetch_max_wait_ms: int = 500, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conf.fetch_max_wait_ms = fetch_max_wait_ms

    def _new_transport(self):
        return _Transport(self.conf.broker_consumer, self)
