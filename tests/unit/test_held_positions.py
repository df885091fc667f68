"""The projector's saved position never passes the first event of a job whose document it holds back."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka import TopicPartition

from services.projector.service import HeldAt

P0, P1 = TopicPartition("jobs.events", 0), TopicPartition("jobs.events", 1)


@dataclass
class Record:
    """A record of ``jobs.events`` with the event it carries (only what ``HeldAt`` reads)."""

    job_id: str
    partition: int
    offset: int
    topic: str = "jobs.events"
    key: bytes = field(default=b"a-pipeline")  # a step's events travel under its pipeline's key


def read(*records: Record) -> list[tuple[Record, Record]]:
    return [(record, record) for record in records]


def test_the_position_stays_before_a_held_jobs_first_event_until_it_is_written():
    held_at = HeldAt()
    batch = read(Record("a", 0, 10), Record("b", 0, 11), Record("a", 0, 12), Record("c", 1, 5))

    held_at.track(batch, {"b": object(), "c": object()})
    while_held = held_at.durable({P0: 13, P1: 6})
    held_at.track(read(Record("b", 0, 13)), {"c": object()})  # b was written by the next batch
    after_b = held_at.durable({P0: 14, P1: 6})
    held_at.track([], {})

    assert while_held == {P0: 11, P1: 5}
    assert after_b == {P0: 14, P1: 5}
    assert held_at.durable({P0: 14, P1: 6}) == {P0: 14, P1: 6}


def test_a_revoked_partitions_holds_are_handed_back_and_no_longer_hold_anything():
    held_at = HeldAt()
    held_at.track(read(Record("a", 0, 3), Record("b", 1, 7)), {"a": object(), "b": object()})

    gone = held_at.revoked({P1})

    assert gone == ["b"]
    assert held_at.durable({P0: 9, P1: 9}) == {P0: 3, P1: 9}
