"""The decider's rules, as specifications: given these events, when this command, then these events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import count, pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import (
    GENESIS,
    Backoff,
    CancelJob,
    CompleteJob,
    ExpireAttempt,
    FailJob,
    Heartbeat,
    InvalidTransition,
    Job,
    JobAlreadyExists,
    JobCancelled,
    JobCancelRequested,
    JobFailed,
    JobNotFound,
    JobOptions,
    JobProgressed,
    JobQueued,
    JobReleased,
    JobRetried,
    JobRetryScheduled,
    JobStarted,
    JobStatus,
    JobSubmitted,
    JobSucceeded,
    NotDue,
    Priority,
    Rejection,
    ReleaseJob,
    ReportProgress,
    RetryJob,
    SequenceGap,
    StaleAttempt,
    StartJob,
    SubmitJob,
    WakeJob,
    apply_next,
    decide,
    event_hash,
    fold,
    parse_event,
    queued_work,
)

JOB = "job-1"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
_ids = count(1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


RUNNER = "runner-a"
NO_BACKOFF = Backoff(base_s=0, jitter=0)


def submit(**kw) -> SubmitJob:
    options = kw.get("options", JobOptions(max_attempts=1))
    return SubmitJob(**_base(kw), job_type=kw.get("job_type", "noop"), payload=kw.get("payload", {}), options=options)


def start(attempt: int = 1, **kw) -> StartJob:
    return StartJob(**_base(kw), attempt=attempt, runner_id=kw.get("runner_id", RUNNER))


def complete(attempt: int = 1, **kw) -> CompleteJob:
    return CompleteJob(**_base(kw), attempt=attempt, runner_id=kw.get("runner_id", RUNNER), result=kw.get("result", {"ok": True}))


def fail(attempt: int = 1, **kw) -> FailJob:
    return FailJob(
        **_base(kw),
        attempt=attempt,
        runner_id=kw.get("runner_id", RUNNER),
        error=kw.get("error", "boom"),
        error_type="RuntimeError",
        retryable=kw.get("retryable", True),
        retry_after_s=kw.get("retry_after_s"),
    )


def progress(percent: float = 50, attempt: int = 1, **kw) -> ReportProgress:
    return ReportProgress(**_base(kw), attempt=attempt, runner_id=RUNNER, percent=percent, message=kw.get("message"))


def heartbeat(attempt: int = 1, **kw) -> Heartbeat:
    return Heartbeat(**_base(kw), attempt=attempt, runner_id=kw.get("runner_id", RUNNER))


def cancel(**kw) -> CancelJob:
    return CancelJob(**_base(kw), reason=kw.get("reason", "not needed"), grace_s=kw.get("grace_s", 10))


def retry(**kw) -> RetryJob:
    return RetryJob(**_base(kw))


def wake(**kw) -> WakeJob:
    return WakeJob(**_base(kw))


def expire(reason: str = "lost", attempt: int = 1, **kw) -> ExpireAttempt:
    return ExpireAttempt(**_base(kw), attempt=attempt, reason=reason)


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


def test_a_running_job_on_its_last_attempt_fails_with_its_error_text():
    job, _ = given_history(submit(), start())

    events = decide(fail(error="disk full"), job)

    assert types(events) == [JobFailed]
    after = fold(events, job)
    assert after.status is JobStatus.FAILED
    assert after.error == "disk full"
    assert after.error_type == "RuntimeError"
    assert [e.error for e in after.errors] == ["disk full"]


# --- run_at ---------------------------------------------------------------------


def test_a_job_for_later_stays_pending_until_its_time():
    events = decide(submit(options=JobOptions(run_at=at(3600)), issued_at=at(0)), None)

    assert types(events) == [JobSubmitted]
    job = fold(events)
    assert job.status is JobStatus.PENDING
    assert job.due_at == at(3600)


def test_waking_a_job_before_its_time_is_refused_and_at_its_time_queues_it():
    job, _ = given_history(submit(options=JobOptions(run_at=at(3600)), issued_at=at(0)))

    with pytest.raises(NotDue):
        decide(wake(issued_at=at(3599)), job)
    events = decide(wake(issued_at=at(3600)), job)

    assert types(events) == [JobQueued]
    assert events[0].data.attempt == 1


def test_a_run_at_in_the_past_queues_at_once():
    assert types(decide(submit(options=JobOptions(run_at=at(-5)), issued_at=at(0)), None)) == [JobSubmitted, JobQueued]


def test_the_queued_attempt_carries_priority_and_timeout_for_the_runner():
    events = decide(submit(options=JobOptions(priority=Priority.HIGH, timeout_s=30)), None)

    assert events[1].data.priority is Priority.HIGH
    assert events[1].data.timeout_s == 30


# --- retries ----------------------------------------------------------------------

RETRYING = JobOptions(max_attempts=3, backoff=Backoff(base_s=2, factor=3, max_s=100, jitter=0))


def test_a_failed_attempt_with_attempts_left_is_retried_after_the_backoff():
    job, _ = given_history(submit(options=RETRYING), start())

    events = decide(fail(error="flaky", issued_at=at(100)), job)

    assert types(events) == [JobRetryScheduled]
    assert events[0].data.retry_at == at(102)
    after = fold(events, job)
    assert after.status is JobStatus.PENDING
    assert after.due_at == at(102)
    assert after.attempts_left == 2


def test_a_retry_after_longer_than_the_backoff_delays_the_retry_and_a_shorter_one_does_not():
    job, _ = given_history(submit(options=RETRYING), start())

    waited = decide(fail(issued_at=at(100), retry_after_s=30), job)
    backed_off = decide(fail(issued_at=at(100), retry_after_s=1), job)

    assert waited[0].data.retry_at == at(130), "the service asked for 30 s"
    assert backed_off[0].data.retry_at == at(102), "the backoff's 2 s are longer"


def release(attempt: int = 1, **kw) -> ReleaseJob:
    return ReleaseJob(**_base(kw), attempt=attempt, runner_id=kw.get("runner_id", RUNNER))


def test_a_released_attempt_is_queued_again_at_once_without_costing_an_attempt():
    job, _ = given_history(submit(options=JobOptions(max_attempts=1)), start(), progress(40))

    events = decide(release(), job)

    assert types(events) == [JobReleased, JobQueued]
    assert events[1].data.attempt == 2
    after = fold(events, job)
    assert (after.status, after.attempt, after.attempts_left) == (JobStatus.QUEUED, 2, 0), "still its one attempt"
    assert after.progress is None and after.runner_id is None and after.errors == ()
    assert types(decide(complete(attempt=2), fold(decide(start(attempt=2), after), after))) == [JobSucceeded]


def test_only_the_lease_holder_releases_and_a_cancel_asked_for_wins():
    job, _ = given_history(submit(), start())
    asked, _ = given_history(submit(), start(), cancel())

    with pytest.raises(StaleAttempt):
        decide(release(runner_id="runner-b"), job)
    assert types(decide(release(), asked)) == [JobCancelled]


def test_the_backoff_grows_by_its_factor_and_the_next_attempt_is_queued_when_due():
    job, _ = given_history(submit(options=RETRYING), start(), fail(issued_at=at(100)), wake(issued_at=at(102)), start(attempt=2))

    events = decide(fail(attempt=2, issued_at=at(200)), job)

    assert events[0].data.retry_at == at(206)
    job = fold(events, job)
    with pytest.raises(NotDue):
        decide(wake(issued_at=at(205)), job)
    queued = decide(wake(issued_at=at(206)), job)
    assert types(queued) == [JobQueued]
    assert queued[0].data.attempt == 3


def test_the_last_failure_ends_failed_with_every_attempts_error():
    job, _ = given_history(
        submit(options=RETRYING),
        start(),
        fail(error="one", issued_at=at(10)),
        wake(issued_at=at(20)),
        start(attempt=2),
        fail(attempt=2, error="two", issued_at=at(30)),
        wake(issued_at=at(40)),
        start(attempt=3),
    )

    events = decide(fail(attempt=3, error="three"), job)

    assert types(events) == [JobFailed]
    after = fold(events, job)
    assert after.status is JobStatus.FAILED
    assert [(e.attempt, e.error) for e in after.errors] == [(1, "one"), (2, "two"), (3, "three")]


def test_a_non_retryable_error_fails_the_job_at_once():
    job, _ = given_history(submit(options=RETRYING), start())

    assert types(decide(fail(retryable=False), job)) == [JobFailed]


def test_backoff_is_capped_and_its_jitter_is_bounded_and_deterministic():
    backoff = Backoff(base_s=1, factor=2, max_s=10, jitter=0.5)

    delays = [backoff.delay_s("job-x", n) for n in range(1, 8)]

    assert delays == [backoff.delay_s("job-x", n) for n in range(1, 8)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(10, 2 ** (n - 1))
        assert ceiling * 0.5 <= delay <= ceiling
    assert len({backoff.delay_s(f"job-{i}", 3) for i in range(20)}) > 1, "jitter spreads jobs apart"


# --- timeouts and lost runners ------------------------------------------------------


def test_an_attempt_past_its_timeout_is_failed_as_timeout_and_retried():
    options = JobOptions(max_attempts=2, timeout_s=60, backoff=NO_BACKOFF)
    job, _ = given_history(submit(options=options), start(issued_at=at(0)))

    with pytest.raises(NotDue):
        decide(expire("timeout", issued_at=at(59)), job)
    events = decide(expire("timeout", issued_at=at(60)), job)

    assert types(events) == [JobRetryScheduled]
    assert events[0].data.error_type == "timeout"


def test_an_attempt_whose_runner_is_lost_is_failed_as_lost():
    job, _ = given_history(submit(), start())

    events = decide(expire("lost"), job)

    assert types(events) == [JobFailed]
    assert events[0].data.error_type == "lost"


def test_a_heartbeat_from_the_lease_holder_emits_nothing_and_from_another_runner_is_stale():
    job, _ = given_history(submit(), start())

    assert decide(heartbeat(), job) == []
    with pytest.raises(StaleAttempt):
        decide(heartbeat(runner_id="runner-b"), job)


def test_only_the_runner_holding_the_lease_may_report():
    job, _ = given_history(submit(), start(runner_id="runner-a"))

    with pytest.raises(StaleAttempt):
        decide(complete(runner_id="runner-b"), job)
    with pytest.raises(InvalidTransition):
        decide(start(runner_id="runner-b"), job)


# --- progress ------------------------------------------------------------------------


def test_progress_is_recorded_and_a_repeat_of_the_same_progress_is_dropped():
    job, _ = given_history(submit(), start())

    events = decide(progress(40, message="half way"), job)
    assert types(events) == [JobProgressed]
    job = fold(events, job)
    assert (job.progress, job.progress_message) == (40, "half way")
    assert decide(progress(40, message="half way"), job) == []


# --- cancel ----------------------------------------------------------------------------


@pytest.mark.parametrize("history", [(submit,), (lambda: submit(options=JobOptions(run_at=at(10_000))),)])
def test_a_queued_or_pending_job_is_cancelled_at_once(history):
    job, _ = given_history(*(make() for make in history))

    events = decide(cancel(reason="changed my mind"), job)

    assert types(events) == [JobCancelled]
    after = fold(events, job)
    assert after.status is JobStatus.CANCELLED
    assert after.cancel_reason == "changed my mind"


def test_a_running_job_is_asked_to_stop_with_a_grace_period():
    job, _ = given_history(submit(), start())

    events = decide(cancel(grace_s=5, issued_at=at(100)), job)

    assert types(events) == [JobCancelRequested]
    assert events[0].data.deadline == at(105)
    job = fold(events, job)
    assert job.status is JobStatus.RUNNING
    assert decide(cancel(), job) == [], "asking twice changes nothing"


def test_a_running_job_that_stops_after_a_cancel_request_is_cancelled_not_retried():
    job, _ = given_history(submit(options=RETRYING), start(), cancel())

    assert types(decide(fail(error="CancelledError"), job)) == [JobCancelled]


def test_a_running_job_that_ignores_the_cancel_is_cancelled_after_the_grace():
    job, _ = given_history(submit(), start(), cancel(grace_s=5, issued_at=at(100)))

    with pytest.raises(NotDue):
        decide(expire("cancelled", issued_at=at(104)), job)
    assert types(decide(expire("cancelled", issued_at=at(105)), job)) == [JobCancelled]


def test_a_job_that_finishes_within_the_grace_keeps_its_result():
    job, _ = given_history(submit(), start(), cancel())

    assert types(decide(complete(), job)) == [JobSucceeded]


# --- manual retry -------------------------------------------------------------------------


@pytest.mark.parametrize("history", [(submit, start, fail), (submit, cancel)], ids=["failed", "cancelled"])
def test_a_failed_or_cancelled_job_is_retried_with_a_fresh_budget(history):
    job, _ = given_history(*(make() for make in history))

    events = decide(retry(), job)

    assert types(events) == [JobRetried, JobQueued]
    after = fold(events, job)
    assert after.status is JobStatus.QUEUED
    assert after.attempt == job.attempt + 1
    assert after.attempts_left == 0
    assert after.error is None


# --- refused transitions -------------------------------------------------------

REFUSED = [
    # (history, command, rejection)
    *[((), command, JobNotFound) for command in (start, complete, fail, progress, heartbeat, cancel, retry, wake, expire)],
    ((submit,), submit, JobAlreadyExists),
    ((submit,), complete, InvalidTransition),
    ((submit,), fail, InvalidTransition),
    ((submit,), progress, InvalidTransition),
    ((submit,), heartbeat, InvalidTransition),
    ((submit,), expire, InvalidTransition),
    ((submit,), wake, InvalidTransition),
    ((submit,), retry, InvalidTransition),
    ((submit, start), start, InvalidTransition),
    ((submit, start), submit, JobAlreadyExists),
    ((submit, start), wake, InvalidTransition),
    ((submit, start), retry, InvalidTransition),
    *[
        ((submit, start, ending), command, InvalidTransition)
        for ending in (complete, fail)
        for command in (start, complete, fail, progress, heartbeat, cancel, wake, expire)
    ],
    ((submit, start, complete), retry, InvalidTransition),
    ((submit, cancel), cancel, InvalidTransition),
    ((submit, cancel), start, InvalidTransition),
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


@pytest.mark.parametrize("report", [start, complete, fail, progress, heartbeat, expire])
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
    for before, after in pairwise(log):
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
    st.tuples(
        st.sampled_from(["submit", "start", "complete", "fail", "progress", "cancel", "retry", "wake", "expire"]),
        st.integers(1, 3),
        st.integers(0, 1000),
    ),
    max_size=16,
)


@settings(max_examples=200, deadline=None)
@given(COMMANDS)
def test_any_command_sequence_yields_a_gapless_chained_log(script):
    makers = {
        "submit": lambda attempt, when: submit(options=RETRYING, issued_at=at(when)),
        "start": lambda attempt, when: start(attempt, issued_at=at(when)),
        "complete": lambda attempt, when: complete(attempt, issued_at=at(when)),
        "fail": lambda attempt, when: fail(attempt, issued_at=at(when)),
        "progress": lambda attempt, when: progress(when % 100, attempt, issued_at=at(when)),
        "cancel": lambda attempt, when: cancel(issued_at=at(when)),
        "retry": lambda attempt, when: retry(issued_at=at(when)),
        "wake": lambda attempt, when: wake(issued_at=at(when)),
        "expire": lambda attempt, when: expire("lost", attempt, issued_at=at(when)),
    }
    job, log = None, []
    for name, attempt, when in script:
        try:
            events = decide(makers[name](attempt, when), job)
        except Rejection:
            continue
        before = job.status if job else None
        log.extend(events)
        job = fold(events, job)
        assert before is None or not before.terminal or name == "retry", "terminal states accept only a retry"
        assert job.attempt <= job.budget_start + job.options.max_attempts - 1

    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    assert all(b.hash == a.prev_hash for b, a in pairwise(log))
    assert fold(log) == job


@settings(max_examples=200, deadline=None)
@given(COMMANDS)
def test_a_queued_attempts_work_is_rebuilt_from_the_state_alone(script):
    """A runner handed the state rather than the events (after a restart) runs
    exactly what the last JobQueued carried."""
    makers = {
        "submit": lambda attempt, when: submit(options=RETRYING, issued_at=at(when)),
        "start": lambda attempt, when: start(attempt, issued_at=at(when)),
        "fail": lambda attempt, when: fail(attempt, issued_at=at(when)),
        "cancel": lambda attempt, when: cancel(issued_at=at(when)),
        "retry": lambda attempt, when: retry(issued_at=at(when)),
        "wake": lambda attempt, when: wake(issued_at=at(when)),
        "expire": lambda attempt, when: expire("lost", attempt, issued_at=at(when)),
    }
    job, last_queued = None, None
    for name, attempt, when in script:
        if name not in makers:
            continue
        try:
            events = decide(makers[name](attempt, when), job)
        except Rejection:
            continue
        job = fold(events, job)
        last_queued = next((e for e in reversed(events) if isinstance(e, JobQueued)), last_queued)
        if job.status is JobStatus.QUEUED:
            assert queued_work(job) == [last_queued.data]
        else:
            assert queued_work(job) == []


# --- deleting a job ---------------------------------------------------------------


def delete(**kw):
    from schemas import DeleteJob

    return DeleteJob(**_base(kw), reason=kw.get("reason"))


def test_a_job_that_ended_is_deleted_by_an_event_and_then_takes_no_command():
    from schemas.errors import JobNotFound

    deleted, log = given_history(submit(), start(), complete(), delete(reason="gdpr"))

    assert log[-1].type == "jobledger.job.deleted" and log[-1].data.reason == "gdpr"
    assert deleted is not None and deleted.deleted_at is not None and deleted.status is JobStatus.SUCCEEDED
    assert all(later.prev_hash == earlier.hash and later.seq == earlier.seq + 1 for earlier, later in pairwise(log))
    for command in (retry(), cancel(), delete()):
        with pytest.raises(JobNotFound):
            decide(command, deleted)


def test_a_job_that_has_not_ended_cannot_be_deleted():
    running, _ = given_history(submit(), start())
    with pytest.raises(InvalidTransition):
        decide(delete(), running)


# --- changing a job that has not started --------------------------------------------------


def update(**kw):
    from schemas import UpdateJob

    return UpdateJob(**_base(kw), priority=kw.get("priority"), run_at=kw.get("run_at"))


def test_a_waiting_jobs_run_at_moves_its_due_time_and_a_queued_jobs_priority_changes():
    from schemas import Priority

    later = at(10_000)
    waiting, _ = given_history(submit(options=JobOptions(run_at=later, max_attempts=1), issued_at=at(1)))
    moved, log = given_history(
        submit(options=JobOptions(run_at=later, max_attempts=1), issued_at=at(1)), update(run_at=at(2), priority="high")
    )
    queued, _ = given_history(submit())
    raised = fold(decide(update(priority="low"), queued), queued)

    assert waiting.due_at == later and moved.due_at == at(2) and moved.options.run_at == at(2)
    assert moved.options.priority is Priority.HIGH and log[-1].type == "jobledger.job.updated"
    assert raised.options.priority is Priority.LOW and raised.status is JobStatus.QUEUED


def test_a_job_that_started_or_is_queued_already_cannot_take_a_new_run_at():
    running, _ = given_history(submit(), start())
    queued, _ = given_history(submit())
    with pytest.raises(InvalidTransition):
        decide(update(priority="high"), running)
    with pytest.raises(InvalidTransition):
        decide(update(run_at=at(50)), queued)
