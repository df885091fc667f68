"""A follower of the log's tail: a bounded one notices when it fell behind."""

from __future__ import annotations

from services.ingest.watch import Follower


def test_a_bounded_follower_keeps_what_fits_and_says_it_overflowed():
    follower = Follower(capacity=2)

    for event in ("e1", "e2", "e3"):
        follower.put(event)

    assert follower.overflowed
    assert follower.take() == ["e1", "e2"]


def test_an_unbounded_follower_never_overflows():
    follower = Follower()

    for index in range(10_000):
        follower.put(index)

    assert not follower.overflowed and len(follower.take()) == 10_000
