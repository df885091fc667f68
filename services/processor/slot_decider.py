"""The slot decider: grants the slots of one concurrency key in request order
(and refuses the requests that asked not to wait), keeping each key's state
in a table whose changelog is ``jobs.slots.state``. The rules are pure
(:func:`schemas.decide_slots`); this applies them to ``jobs.slots``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import structlog
from aiokafka import AIOKafkaProducer

from schemas import (
    GrantSlot,
    RefuseSlot,
    SlotState,
    decide_slots,
    encode_command,
    grant_command,
    parse_slot_message,
    refuse_command,
    topics,
)
from services.adapters.log import DeadLetters
from services.processor.tables import ChangelogTable

log = structlog.get_logger(component="processor")


class SlotDecider:
    def __init__(self, producer: AIOKafkaProducer, dead_letters: DeadLetters, sent: Callable) -> None:
        self.table = ChangelogTable(topics.SLOT_STATE)
        self._producer = producer
        self._dead = dead_letters
        self._sent = sent

    async def decide(self, record) -> None:
        """Decide one record of ``jobs.slots``."""
        message = await self._dead.parsed(record, parse_slot_message, "slot message")
        if message is None:
            return
        now = datetime.now(timezone.utc)
        try:
            stored = self.table.get(message.key)
            state = SlotState.model_validate(stored) if stored is not None else None
            after, granted, refused = decide_slots(state, message)
            commands: list[GrantSlot | RefuseSlot] = [grant_command(entry, now) for entry in granted]
            commands += [refuse_command(entry, after.limit, now) for entry in refused]
            document = after.model_dump(mode="json")
        except Exception as error:  # one key's trouble must not stop the partition
            log.exception("slot decider failed on a message", key=message.key)
            await self._dead.send(record, error)
            return
        for command in commands:
            self._sent(await self._producer.send(topics.COMMANDS, key=command.job_id.encode(), value=encode_command(command)))
        self._sent(await self.table.set(self._producer, record.partition, message.key, document))
