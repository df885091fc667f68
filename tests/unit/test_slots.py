"""Concurrency slots: the slot decider, and how the job decider asks for and uses a slot."""

from __future__ import annotations

import pytest

from schemas import (
    GrantSlot,
    InvalidTransition,
    JobOptions,
    JobQueued,
    JobRejected,
    JobSlotRequested,
    JobStatus,
    RefuseSlot,
    SlotEntry,
    SlotRelease,
    SlotRequest,
    decide,
    decide_slots,
    encode_slot_message,
    fold,
    grant_command,
    parse_slot_message,
    refuse_command,
)
from tests.unit.test_decider import _base, at, cancel, complete, fail, given_history, retry, start, submit, wake

KEYED = JobOptions(concurrency_key="provider-a", concurrency_limit=1, max_attempts=2)


def request(job_id: str, limit: int = 1, submitted: float = 0, on_conflict: str = "queue") -> SlotRequest:
    return SlotRequest(
        key="acme/provider-a",
        job_id=job_id,
        tenant="acme",
        limit=limit,
        request_id=f"req-{job_id}",
        submitted_at=at(submitted),
        on_conflict=on_conflict,
    )


def release(job_id: str) -> SlotRelease:
    return SlotRelease(key="acme/provider-a", job_id=job_id, tenant="acme")


def run(*messages):
    state, grants = None, []
    for message in messages:
        state, granted, _ = decide_slots(state, message)
        grants.extend(entry.job_id for entry in granted)
    return state, grants


# --- the slot decider -------------------------------------------------------------


def test_slots_are_granted_up_to_the_limit_then_in_request_order():
    state, grants = run(request("a", 2), request("b", 2), request("c", 2), request("d", 2))

    assert grants == ["a", "b"]
    assert [e.job_id for e in state.waiting] == ["c", "d"]


def test_waiting_jobs_get_slots_in_submit_order_whatever_order_their_requests_came_in():
    state, grants = run(
        request("first", submitted=1),
        request("third", submitted=3),
        request("second", submitted=2),
        release("first"),
        release("second"),
    )

    assert grants == ["first", "second", "third"]


def test_a_release_hands_the_slot_to_the_oldest_waiting_job():
    state, grants = run(request("a"), request("b"), request("c"), release("a"))

    assert grants == ["a", "b"]
    assert [e.job_id for e in state.holders] == ["b"]
    assert [e.job_id for e in state.waiting] == ["c"]


def test_a_waiting_job_that_is_released_leaves_the_queue():
    state, grants = run(request("a"), request("b"), release("b"), release("a"))

    assert grants == ["a"]
    assert state.holders == () and state.waiting == ()


def test_applying_messages_twice_changes_nothing_but_repeats_a_grant():
    once, grants_once = run(request("a"), request("b"))
    twice, grants_twice = run(request("a"), request("b"), request("a"), request("b"), release("x"))

    assert once == twice
    assert grants_twice == ["a", "a"]
    first, again = (grant_command(once.holders[0], at(1)), grant_command(once.holders[0], at(2)))
    assert first.command_id == again.command_id, "a repeated grant is dropped by the job's decider"


def test_a_rejecting_request_is_refused_while_the_key_is_full_and_never_waits():
    state = None
    decisions = []
    for message in (
        request("a", 2, on_conflict="reject"),
        request("b", 2),
        request("c", 2, on_conflict="reject"),
        release("a"),
        request("d", 2, on_conflict="reject"),
    ):
        state, granted, refused = decide_slots(state, message)
        decisions.append(([e.job_id for e in granted], [e.job_id for e in refused]))

    assert decisions == [(["a"], []), (["b"], []), ([], ["c"]), ([], []), (["d"], [])]
    assert [e.job_id for e in state.holders] == ["b", "d"] and state.waiting == ()
    refusal = refuse_command(SlotEntry(job_id="c", tenant="acme", request_id="req-c", submitted_at=at(0)), 2, at(1))
    assert (
        refusal.command_id
        != grant_command(SlotEntry(job_id="c", tenant="acme", request_id="req-c", submitted_at=at(0)), at(1)).command_id
    )


def test_a_rejecting_request_does_not_jump_the_queue():
    _, _, refused = decide_slots(run(request("a"), request("b"))[0], request("c", on_conflict="reject"))

    assert [e.job_id for e in refused] == ["c"]


def test_slot_messages_round_trip():
    for message in (request("a", 3), release("a")):
        assert parse_slot_message(encode_slot_message(message)) == message


# --- the job decider with a concurrency key -------------------------------------------


def grant(**kw) -> GrantSlot:
    return GrantSlot(**_base(kw))


def test_a_keyed_job_asks_for_a_slot_and_is_queued_when_granted():
    events = decide(submit(options=KEYED), None)
    assert [type(e) for e in events[1:]] == [JobSlotRequested]
    job = fold(events)
    assert job.status is JobStatus.PENDING and job.awaiting_slot

    queued = decide(grant(), job)

    assert [type(e) for e in queued] == [JobQueued]
    assert fold(queued, job).holds_slot


def test_a_retry_keeps_its_slot_and_a_manual_retry_asks_again():
    job, _ = given_history(submit(options=KEYED), grant(), start(), fail(issued_at=at(10)))
    assert job.holds_slot and job.status is JobStatus.PENDING
    assert [type(e) for e in decide(wake(issued_at=at(100)), job)] == [JobQueued]

    failed, _ = given_history(
        submit(options=KEYED),
        grant(),
        start(),
        fail(issued_at=at(10)),
        wake(issued_at=at(100)),
        start(attempt=2),
        fail(attempt=2),
    )
    assert failed.status is JobStatus.FAILED and not failed.holds_slot
    assert [type(e).__name__ for e in decide(retry(), failed)] == ["JobRetried", "JobSlotRequested"]


def test_a_refused_job_ends_rejected_and_can_be_retried():
    job, _ = given_history(submit(options=KEYED))

    events = decide(RefuseSlot(**_base({}), detail="concurrency limit reached"), job)
    rejected = fold(events, job)

    assert [type(e) for e in events] == [JobRejected]
    assert (rejected.status, rejected.error_type, rejected.awaiting_slot) == (
        JobStatus.REJECTED,
        "concurrency-limit-reached",
        False,
    )
    assert [type(e).__name__ for e in decide(retry(), rejected)] == ["JobRetried", "JobSlotRequested"]
    with pytest.raises(InvalidTransition):
        decide(RefuseSlot(**_base({}), detail="again"), rejected)


def test_a_grant_for_a_job_not_waiting_is_refused():
    queued, _ = given_history(submit())
    cancelled, _ = given_history(submit(options=KEYED), cancel())

    with pytest.raises(InvalidTransition):
        decide(grant(), queued)
    with pytest.raises(InvalidTransition):
        decide(grant(), cancelled)


def test_a_finished_keyed_job_holds_no_slot():
    job, _ = given_history(submit(options=KEYED), grant(), start(), complete())

    assert job.status is JobStatus.SUCCEEDED and not job.holds_slot


def test_limit_and_on_conflict_need_a_key():
    with pytest.raises(ValueError):
        JobOptions(concurrency_limit=2)
    with pytest.raises(ValueError):
        JobOptions(on_conflict="reject")
