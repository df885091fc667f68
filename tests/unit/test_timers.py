"""Timers: which deadlines a job has, and the commands sent when they pass."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas import Backoff, ExpireAttempt, JobOptions, NotDue, WakeJob, deadlines, decide, due_commands, fold, next_deadline
from schemas.leases import Deadlines, require_lease_ended
from tests.unit.test_decider import at, cancel, fail, given_history, start, submit


def test_a_pending_job_for_later_is_woken_at_its_run_at():
    job, _ = given_history(submit(options=JobOptions(run_at=at(60)), issued_at=at(0)))

    assert next_deadline(job) == at(60)
    assert due_commands(job, at(59)) == []
    [command] = due_commands(job, at(60))
    assert isinstance(command, WakeJob)
    assert decide(command, job)[0].data.attempt == 1


def test_a_retry_is_woken_at_its_backoff():
    options = JobOptions(max_attempts=2, backoff=Backoff(base_s=5, jitter=0))
    job, _ = given_history(submit(options=options), start(), fail(issued_at=at(10)))

    assert next_deadline(job) == at(15)


def test_a_running_job_has_its_timeout_its_lease_and_its_cancel_grace():
    job, _ = given_history(submit(options=JobOptions(timeout_s=30)), start(issued_at=at(0)), cancel(grace_s=20, issued_at=at(5)))
    lease = at(12)

    assert sorted(reason for _, reason, _ in deadlines(job, lease)) == ["cancelled", "lost", "timeout"]
    assert next_deadline(job, lease) == lease
    commands = due_commands(job, at(30), lease)
    assert [c.reason for c in commands] == ["lost", "cancelled", "timeout"]
    assert all(isinstance(c, ExpireAttempt) and c.attempt == 1 for c in commands)


def test_finished_and_queued_jobs_have_no_deadline():
    queued, _ = given_history(submit())
    finished, _ = given_history(submit(), cancel())

    assert next_deadline(queued) is None
    assert next_deadline(finished) is None


def test_a_timer_that_fires_twice_sends_the_same_command_which_the_decider_applies_once():
    job, _ = given_history(submit(options=JobOptions(run_at=at(60)), issued_at=at(0)))

    first = due_commands(job, at(61))[0]
    again = due_commands(job, at(62))[0]

    assert first.command_id == again.command_id
    after = fold(decide(first, job), job)
    assert decide(again, after) == []


def test_a_deadline_at_exactly_now_is_due():
    job, _ = given_history(submit(options=JobOptions(run_at=at(60)), issued_at=at(0)))

    assert due_commands(job, at(60) - timedelta(microseconds=1)) == []
    assert len(due_commands(job, at(60))) == 1


def test_a_lost_expiry_is_refused_when_a_heartbeat_renewed_the_lease_after_it_was_sent():
    """A backlog delays the heartbeats and the timer's expiry alike; the expiry is
    judged against the lease as it is when the decider reaches it."""
    job, _ = given_history(submit(), start(issued_at=at(0)))
    leases = Deadlines(lease_s=30)
    leases.track(job, at(0))
    [expiry] = [c for c in due_commands(job, at(30), leases.leases(job.job_id)) if c.reason == "lost"]

    require_lease_ended(expiry, leases)  # nothing renewed it: the attempt is lost
    leases.renew(job, at(31))  # a heartbeat queued ahead of the expiry
    with pytest.raises(NotDue):
        require_lease_ended(expiry, leases)
