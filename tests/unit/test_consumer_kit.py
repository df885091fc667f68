"""The consumer kit's deduplication by (job_id, seq)."""

from __future__ import annotations

from jobledger.consumer import SeenEvents


def test_an_event_is_new_once_and_older_seqs_are_repeats():
    seen = SeenEvents()

    assert seen.is_new("a", 1)
    seen.mark("a", 1)
    seen.mark("a", 2)

    assert not seen.is_new("a", 1) and not seen.is_new("a", 2)
    assert seen.is_new("a", 3) and seen.is_new("b", 1)


def test_it_can_be_seeded_from_a_sink_and_stays_bounded():
    seen = SeenEvents(capacity=2, already_seen=[("a", 4), ("b", 1), ("c", 2)])

    assert not seen.is_new("c", 2)
    assert seen.is_new("a", 1), "the oldest job was forgotten: bounded memory"
