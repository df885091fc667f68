"""The projector notices a log that ends before what it already applied."""

from __future__ import annotations

from aiokafka import TopicPartition

from services.adapters.positions import LogLost, lost_partitions

P0, P1 = TopicPartition("jobs.events", 0), TopicPartition("jobs.events", 1)


def test_a_position_past_the_end_of_the_log_is_a_lost_log():
    lost = lost_partitions({P0: 120, P1: 40}, {P0: 0, P1: 40})

    assert [(item.tp, item.applied_up_to, item.log_ends_at) for item in lost] == [(P0, 120, 0)]
    assert "jobs.events[0] applied to 120, log ends at 0" in str(LogLost(lost))


def test_a_log_that_reaches_the_positions_is_fine():
    assert lost_partitions({P0: 10}, {P0: 10, P1: 5}) == []
