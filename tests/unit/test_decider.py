"""The decider's rules, as specifications: given these events, when this command, then these events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import (
    GENESIS,
    CompleteJob,
    FailJob,
    InvalidTransition,
    Job,
    JobAlreadyExists,
    JobFailed,
    JobNotFound,
    JobQueued,
    JobStarted,
    JobStatus,
    JobSubmitted,
    JobSucceeded,
    Rejection,
    SequenceGap,
    StaleAttempt,
    StartJob,
    SubmitJob,
    apply_next,
    decide,
    event_hash,
    fold,
    parse_event,
)

JOB = "job-1"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
_ids = count(1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def submit(**kw) -> SubmitJob:
    return SubmitJob(**_base(kw), job_type=kw.get("job_type", "noop"), payload=kw.get("payload", {}))


def start(attempt: int = 1, **kw) -> StartJob:
    return StartJob(**_base(kw), attempt=attempt, runner_id="runner-a")


def complete(attempt: int = 1, **kw) -> CompleteJob:
    return CompleteJob(**_base(kw), attempt=attempt, result=kw.get("result", {"ok": True}))


def fail(attempt: int = 1, **kw) -> FailJob:
    return FailJob(**_base(kw), attempt=attempt, error=kw.get("error", "boom"), error_type="RuntimeError")


def _base(kw: dict) -> dict:
    return {
        "command_id": kw.get("command_id", f"cmd-{next(_ids)}"),
        "job_id": JOB,
        "tenant": "acme",
        "issued_at": kw.get("issued_at", at(next(_ids))),
    }


def given_history(*commands) -> tuple[Job | None, list]:
    """Run commands through decide+evolve, as the processor does."""
    job, log = None, []
    for command in commands:
        events = decide(command, job)
        log.extend(events)
        job = fold(events, job)
    return job, log


def types(events) -> list[type]:
    return [type(e) for e in events]


# --- allowed transitions -------------------------------------------------------


def test_submit_creates_the_job_and_queues_its_first_attempt():
    events = decide(submit(job_type="sleep", payload={"seconds": 1}), None)

    assert types(events) == [JobSubmitted, JobQueued]
    assert [e.seq for e in events] == [1, 2]
    assert events[1].data.attempt == 1
    assert events[1].data.payload == {"seconds": 1}
    job = fold(events)
    assert job.status is JobStatus.QUEUED
    assert job.version == 2


def test_a_queued_job_starts_when_a_runner_takes_its_attempt():
    job, _ = given_history(submit())

    events = decide(start(attempt=1), job)

    assert types(events) == [JobStarted]
    assert events[0].seq == 3
    after = fold(events, job)
    assert after.status is JobStatus.RUNNING
    assert after.runner_id == "runner-a"
    assert after.started_at == events[0].occurred_at


def test_a_running_job_succeeds_with_its_result():
    job, _ = given_history(submit(), start())

    events = decide(complete(result={"answer": 42}), job)

    assert types(events) == [JobSucceeded]
    after = fold(events, job)
    assert after.status is JobStatus.SUCCEEDED
    assert after.result == {"answer": 42}
    assert after.finished_at is not None


def test_a_running_job_fails_with_its_error_text():
    job, _ = given_history(submit(), start())

    events = decide(fail(error="disk full"), job)

    assert types(events) == [JobFailed]
    after = fold(events, job)
    assert after.status is JobStatus.FAILED
    assert after.error == "disk full"
    assert after.error_type == "RuntimeError"


# --- refused transitions -------------------------------------------------------

REFUSED = [
    # (history, command, rejection)
    ((), start, JobNotFound),
    ((), complete, JobNotFound),
    ((), fail, JobNotFound),
    ((submit,), submit, JobAlreadyExists),
    ((submit,), complete, InvalidTransition),
    ((submit,), fail, InvalidTransition),
    ((submit, start), start, InvalidTransition),
    ((submit, start), submit, JobAlreadyExists),
    ((submit, start, complete), start, InvalidTransition),
    ((submit, start, complete), complete, InvalidTransition),
    ((submit, start, complete), fail, InvalidTransition),
    ((submit, start, fail), start, InvalidTransition),
    ((submit, start, fail), complete, InvalidTransition),
    ((submit, start, fail), fail, InvalidTransition),
]


@pytest.mark.parametrize(
    ("history", "command", "rejection"),
    REFUSED,
    ids=[f"{'+'.join(h.__name__ for h in hist) or 'nothing'}-then-{c.__name__}" for hist, c, _ in REFUSED],
)
def test_impossible_commands_are_rejected_with_a_typed_reason(history, command, rejection):
    job, _ = given_history(*(make() for make in history))

    with pytest.raises(rejection) as caught:
        decide(command(), job)

    assert isinstance(caught.value, Rejection)
    assert caught.value.job_id == JOB


@pytest.mark.parametrize("report", [start, complete, fail])
def test_a_report_for_another_attempt_is_stale(report):
    queued, _ = given_history(submit())
    running, _ = given_history(submit(), start())
    job = queued if report is start else running

    with pytest.raises(StaleAttempt):
        decide(report(attempt=2), job)


# --- idempotency and determinism ----------------------------------------------


def test_a_command_already_applied_emits_nothing():
    starting = start(command_id="start-once")
    job, _ = given_history(submit(command_id="submit-once"), starting)

    assert decide(submit(command_id="submit-once"), job) == []
    assert decide(starting, job) == []


def test_the_same_command_on_the_same_state_yields_identical_events():
    command = submit(command_id="c-42")

    assert decide(command, None) == decide(command, None)
    first = decide(command, None)[0]
    assert first.event_id == decide(submit(command_id="c-42", issued_at=command.issued_at), None)[0].event_id


def test_event_time_is_the_command_time_not_a_clock():
    command = submit(issued_at=at(3600))

    assert {e.occurred_at for e in decide(command, None)} == {at(3600)}


# --- the log: seq, hash chain, wire format ------------------------------------


def test_events_chain_by_hash_from_genesis():
    _, log = given_history(submit(), start(), complete())

    assert [e.seq for e in log] == [1, 2, 3, 4]
    assert log[0].prev_hash == GENESIS
    for before, after in zip(log, log[1:]):
        assert after.prev_hash == before.hash
    for event in log:
        assert event.hash == event_hash(event.wire_dict())


def test_events_round_trip_through_their_cloudevents_json():
    _, log = given_history(submit(payload={"seconds": 1.5}), start(), fail())

    for event in log:
        wire = event.wire_dict()
        assert wire["specversion"] == "1.0"
        assert wire["subject"] == JOB
        assert {"id", "source", "type", "time", "seq", "prevhash", "hash", "schemaversion"} <= wire.keys()
        assert parse_event(event.to_bytes()) == event


def test_consumers_skip_redeliveries_and_detect_gaps():
    _, log = given_history(submit(), start(), complete())
    job = fold(log[:2])

    assert apply_next(job, log[1]) is None
    assert apply_next(job, log[2]).status is JobStatus.RUNNING
    with pytest.raises(SequenceGap):
        apply_next(job, log[3])
    assert fold(log + log) == fold(log)


# --- property: any sequence of commands keeps the log sound -------------------

COMMANDS = st.lists(
    st.tuples(st.sampled_from(["submit", "start", "complete", "fail"]), st.integers(1, 2)),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(COMMANDS)
def test_any_command_sequence_yields_a_gapless_chained_log(script):
    makers = {"submit": lambda _: submit(), "start": start, "complete": complete, "fail": fail}
    job, log = None, []
    for name, attempt in script:
        try:
            events = decide(makers[name](attempt), job)
        except Rejection:
            continue
        before = job.status if job else None
        log.extend(events)
        job = fold(events, job)
        assert before is None or not before.terminal, "terminal states accept nothing"

    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    assert all(b.hash == a.prev_hash for b, a in zip(log, log[1:]))
    assert fold(log) == job
