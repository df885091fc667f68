"""Consumer lag for ``GET /status``: how many records each consumer group still has to process."""

from __future__ import annotations

import asyncio
import time

from schemas import topics
from services.adapters.broker import GROUP_TOPICS, group_lag
from services.common.settings import DECIDER_GROUP, PROJECTOR_GROUP, RUNNER_GROUP

_TOPICS_OF = {
    "decider": GROUP_TOPICS[DECIDER_GROUP],
    "runner": GROUP_TOPICS[RUNNER_GROUP],
    "projector": GROUP_TOPICS[PROJECTOR_GROUP],
}


async def consumer_lag(settings, timeout_s: float = 5.0) -> dict[str, int | None]:
    """Per name of ``settings.consumer_groups`` whose group exists: records not
    yet processed; ``None`` for every name if the broker did not answer."""
    groups = {group: _TOPICS_OF.get(name, (topics.EVENTS,)) for name, group in settings.consumer_groups.items()}
    try:
        lag = await asyncio.wait_for(group_lag(settings, groups), timeout_s)
    except Exception:  # best effort: unknown rather than an error
        return {name: None for name in settings.consumer_groups}
    return {name: lag[group] for name, group in settings.consumer_groups.items() if group in lag}


class ConsumerLag:
    """The process's ``GET /status`` calls share one measurement at a time and
    reuse it for ``max_age_s``: each measurement opens an admin client and a
    consumer, too dear for every poll of a dashboard."""

    def __init__(self, settings, max_age_s: float = 1.0) -> None:
        self.settings = settings
        self.max_age_s = max_age_s
        self._lock = asyncio.Lock()
        self._measured: tuple[float, dict[str, int | None]] | None = None

    async def get(self) -> dict[str, int | None]:
        async with self._lock:
            if self._measured is None or time.monotonic() - self._measured[0] >= self.max_age_s:
                self._measured = (time.monotonic(), await consumer_lag(self.settings))
            return self._measured[1]
