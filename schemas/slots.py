"""Concurrency slots: at most ``limit`` jobs with one concurrency key hold a slot.

Jobs with the same key may live on different partitions, so their slot
requests and releases are re-keyed by the key onto ``jobs.slots``, where one
slot decider sees them all in order. Like the job decider it is pure:
``decide_slots(state, message)`` returns the new state and the job ids granted
a slot. Waiting jobs get slots in the order they were submitted (their
``submitted_at``, then job id), whatever partitions their requests came from.
A request with ``on_conflict: reject`` that finds no free slot is refused
instead of waiting: it is decided here, in log order, so whichever path the
job came by (a submit, a batch, a schedule's tick, a retry) and however many
race, the key never holds more than its limit.

Applying a message twice is harmless (a redelivery after a crash): a request
of a job that already holds a slot grants it again, which the job's decider
drops as already applied; a request of a waiting job changes nothing; a release
of a job that holds nothing changes nothing.
"""

from __future__ import annotations

import bisect
import uuid
from typing import Annotated, Literal, NamedTuple, Union

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from schemas.commands import GrantSlot, RefuseSlot
from schemas.events import JobSlotRequested
from schemas.options import OnConflict

_GRANT_NAMESPACE = uuid.UUID("5e2b8c1a-7d4f-4a3e-9b6c-0f1e2d3a4b5c")


def slot_key(tenant: str, concurrency_key: str) -> str:
    """The key of ``jobs.slots``: concurrency keys are per tenant."""
    return f"{tenant}/{concurrency_key}"


class SlotMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    job_id: str
    tenant: str


class SlotRequest(SlotMessage):
    kind: Literal["request"] = "request"
    limit: int = Field(ge=1)
    request_id: str = Field(description="id of the job's slot_requested event: one grant per request")
    submitted_at: AwareDatetime
    on_conflict: OnConflict = OnConflict.QUEUE


class SlotRelease(SlotMessage):
    kind: Literal["release"] = "release"


AnySlotMessage = Annotated[Union[SlotRequest, SlotRelease], Field(discriminator="kind")]
_MESSAGE = TypeAdapter(AnySlotMessage)


class SlotEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    tenant: str
    request_id: str
    submitted_at: AwareDatetime


class SlotState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    limit: int = 1
    holders: tuple[SlotEntry, ...] = ()
    waiting: tuple[SlotEntry, ...] = Field((), description="in submit order")


class SlotDecision(NamedTuple):
    state: SlotState
    granted: list[SlotEntry]
    """entries that now hold a slot"""
    refused: list[SlotEntry]
    """entries that asked to be refused rather than wait, and found the key full"""


def decide_slots(state: SlotState | None, message: SlotRequest | SlotRelease) -> SlotDecision:
    """The state after ``message``, the entries granted a slot and those refused by it."""
    state = state or SlotState(key=message.key)
    holders, waiting = list(state.holders), list(state.waiting)
    limit = state.limit
    granted: list[SlotEntry] = []
    refused: list[SlotEntry] = []
    held = next((entry for entry in holders if entry.job_id == message.job_id), None)
    queued = next((entry for entry in waiting if entry.job_id == message.job_id), None)
    if isinstance(message, SlotRequest):
        limit = message.limit
        if held is not None:
            granted.append(held)
        elif queued is None:
            entry = SlotEntry(
                job_id=message.job_id,
                tenant=message.tenant,
                request_id=message.request_id,
                submitted_at=message.submitted_at,
            )
            if message.on_conflict == OnConflict.REJECT and (waiting or len(holders) >= limit):
                refused.append(entry)
            else:
                bisect.insort(waiting, entry, key=lambda e: (e.submitted_at, e.job_id))
    elif held is not None:
        holders.remove(held)
    elif queued is not None:
        waiting.remove(queued)
    while waiting and len(holders) < limit:
        entry = waiting.pop(0)
        holders.append(entry)
        granted.append(entry)
    return SlotDecision(SlotState(key=state.key, limit=limit, holders=tuple(holders), waiting=tuple(waiting)), granted, refused)


def grant_command(entry: SlotEntry, issued_at) -> GrantSlot:
    """The command telling a job it holds a slot. Its id derives from the
    request, so a repeated grant of one request is dropped as applied."""
    return GrantSlot(
        command_id=str(uuid.uuid5(_GRANT_NAMESPACE, entry.request_id)),
        job_id=entry.job_id,
        tenant=entry.tenant,
        issued_at=issued_at,
    )


def refuse_command(entry: SlotEntry, limit: int, issued_at) -> RefuseSlot:
    """The command telling a job it was refused a slot; its id derives from the request too."""
    return RefuseSlot(
        command_id=str(uuid.uuid5(_GRANT_NAMESPACE, f"{entry.request_id}/refused")),
        job_id=entry.job_id,
        tenant=entry.tenant,
        issued_at=issued_at,
        detail=f"concurrency limit reached: {limit} job(s) with this key are running or waiting",
    )


def parse_slot_message(raw: bytes | str) -> SlotRequest | SlotRelease:
    return _MESSAGE.validate_json(raw)


def encode_slot_message(message: SlotMessage) -> bytes:
    return message.model_dump_json().encode()


def slot_messages(before, events, after) -> list[SlotMessage]:
    """What the job decider tells the slot decider after deciding ``events``:
    a request for each ``slot_requested``, a release when a keyed job ends."""
    messages: list[SlotMessage] = []
    for event in events:
        if isinstance(event, JobSlotRequested):
            messages.append(
                SlotRequest(
                    key=slot_key(event.tenant, event.data.concurrency_key),
                    job_id=event.job_id,
                    tenant=event.tenant,
                    limit=event.data.limit,
                    request_id=event.event_id,
                    submitted_at=after.created_at,
                    on_conflict=after.options.on_conflict,
                )
            )
    key = after.options.concurrency_key
    if key is not None and after.status.terminal and (before is None or not before.status.terminal):
        messages.append(SlotRelease(key=slot_key(after.tenant, key), job_id=after.job_id, tenant=after.tenant))
    return messages
