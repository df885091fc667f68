"""The hash chain check an auditor runs over a copy of the log."""

from __future__ import annotations

import json

from schemas.chain import ChainCheck, event_hash
from tests.unit.test_decider import complete, given_history, start, submit


def wire_log() -> list[dict]:
    _, log = given_history(submit(payload={"n": 1}), start(), complete())
    return [event.wire_dict() for event in log]


def check(events) -> ChainCheck:
    chain = ChainCheck()
    for event in events:
        chain.add(event)
    return chain


def test_an_untouched_log_verifies_and_redeliveries_are_not_breaks():
    events = wire_log()

    chain = check(events + events[1:2])

    assert chain.broken == []
    assert chain.events == 5


def test_an_edited_event_breaks_at_that_event():
    events = wire_log()
    events[1]["data"]["payload"] = {"n": 2}

    [link] = check(events).broken

    assert (link.seq, link.reason) == (2, "hash does not match the event's content")


def test_a_removed_event_is_a_gap_and_a_reordered_hash_is_caught():
    events = wire_log()

    [gap] = check([events[0], events[2], events[3]]).broken
    forged = [events[0], {**events[1], "prevhash": "f" * 64}]
    [link] = check(forged).broken

    assert gap.seq == 3 and "missing" in gap.reason
    assert link.reason == "prevhash is not the previous event's hash"


def test_a_repeated_seq_with_other_content_is_a_forgery():
    events = wire_log()
    forged = {**events[1], "data": {**events[1]["data"], "payload": {"n": 2}}}
    rehashed = {**forged, "hash": event_hash(forged)}

    for repeat in (forged, rehashed):
        [link] = check(events + [repeat]).broken

        assert (link.seq, link.reason) == (2, "seq 2 appears twice with different content")


def test_a_seq_below_one_is_a_break():
    events = wire_log()

    [link] = check([events[0], {**events[1], "seq": 0}]).broken

    assert link.reason == "no seq"


def test_a_record_that_is_not_a_json_object_is_foreign_not_a_break():
    from services.audit import verify

    chain = ChainCheck()
    for raw in [b"{not json", b"[1, 2]", b"\xff\xfe", *(json.dumps(event).encode() for event in wire_log())]:
        verify(chain, raw, "topic")

    assert chain.broken == [] and chain.foreign == 3 and chain.events == 7
