"""Consumer lag for ``GET /status`` and ``GET /metrics``: how many records each consumer group still has to process."""

from __future__ import annotations

import asyncio
import time

from aiokafka import TopicPartition

from schemas import topics
from services.adapters.broker import GROUP_TOPICS, partition_lag
from services.common.metrics import CONSUMER_LAG
from services.common.settings import DECIDER_GROUP, LOGS_GROUP, PROJECTOR_GROUP, RUNNER_GROUP

_TOPICS_OF = {
    "decider": GROUP_TOPICS[DECIDER_GROUP],
    "runner": GROUP_TOPICS[RUNNER_GROUP],
    "projector": GROUP_TOPICS[PROJECTOR_GROUP],
    "logs": GROUP_TOPICS[LOGS_GROUP],
}
PartitionLag = dict[str, dict[TopicPartition, int]]
"""Per consumer group id, records behind per partition."""


async def measure(settings, timeout_s: float = 5.0) -> PartitionLag | None:
    """Per group of ``settings.consumer_groups`` that exists, per partition;
    ``None`` if the broker did not answer."""
    groups = {group: _TOPICS_OF.get(name, (topics.EVENTS,)) for name, group in settings.consumer_groups.items()}
    try:
        return await asyncio.wait_for(partition_lag(settings, groups), timeout_s)
    except Exception:  # best effort: unknown rather than an error
        return None


def by_name(settings, measured: PartitionLag | None) -> dict[str, int | None]:
    """Per name of ``settings.consumer_groups`` whose group exists: records not
    yet processed; ``None`` for every name if the broker did not answer."""
    if measured is None:
        return {name: None for name in settings.consumer_groups}
    return {name: sum(measured[group].values()) for name, group in settings.consumer_groups.items() if group in measured}


async def consumer_lag(settings) -> dict[str, int | None]:
    return by_name(settings, await measure(settings))


class ConsumerLag:
    """The process's ``GET /status`` calls and metric scrapes share one
    measurement at a time and reuse it for ``max_age_s``: each measurement
    opens an admin client and a consumer, too dear for every poll of a dashboard."""

    def __init__(self, settings, max_age_s: float = 1.0) -> None:
        self.settings = settings
        self.max_age_s = max_age_s
        self._lock = asyncio.Lock()
        self._measured: tuple[float, PartitionLag | None] | None = None

    async def _current(self) -> PartitionLag | None:
        async with self._lock:
            if self._measured is None or time.monotonic() - self._measured[0] >= self.max_age_s:
                self._measured = (time.monotonic(), await measure(self.settings))
            return self._measured[1]

    async def get(self) -> dict[str, int | None]:
        return by_name(self.settings, await self._current())

    async def export(self) -> None:
        """Set ``jobledger_consumer_lag_records`` to the measurement (none of it when the broker did not answer)."""
        measured = await self._current()
        CONSUMER_LAG.clear()
        for group, partitions in (measured or {}).items():
            for tp, lag in partitions.items():
                CONSUMER_LAG.labels(group, tp.topic, str(tp.partition)).set(lag)
