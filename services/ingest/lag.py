"""Consumer lag for ``GET /status``: how many records each consumer group still has to process."""

from __future__ import annotations

import asyncio

from schemas import topics
from services.adapters.broker import GROUP_TOPICS, group_lag
from services.common.settings import DECIDER_GROUP, PROJECTOR_GROUP, RUNNER_GROUP

_TOPICS_OF = {"decider": GROUP_TOPICS[DECIDER_GROUP], "runner": GROUP_TOPICS[RUNNER_GROUP], "projector": GROUP_TOPICS[PROJECTOR_GROUP]}


async def consumer_lag(settings, timeout_s: float = 5.0) -> dict[str, int | None]:
    """Per name of ``settings.consumer_groups``: records not yet processed; ``None`` if unknown."""
    groups = {group: _TOPICS_OF.get(name, (topics.EVENTS,)) for name, group in settings.consumer_groups.items()}
    try:
        lag = await asyncio.wait_for(group_lag(settings, groups), timeout_s)
    except Exception:  # best effort: unknown rather than an error
        return {name: None for name in settings.consumer_groups}
    return {name: lag[group] for name, group in settings.consumer_groups.items()}
