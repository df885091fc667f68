"""The whole path of a job in one process (services/processor/local.py): the
decision, the deadlines, the slots and the handlers are the services' own;
the log is in memory and the clock the test's. What only the wire shows
(partitions, acknowledgements, crashes) is in tests/e2e."""

from __future__ import annotations

import asyncio

from schemas import JobStatus, fold
from schemas.builtin import NOOP, SLEEP
from schemas.chain import ChainCheck
from schemas.job import StepStatus
from services.processor.handlers import HandlerRegistry
from services.processor.local import LocalJobledger


def kinds(system: LocalJobledger, job_id: str) -> list[str]:
    return [event.type.removeprefix("jobledger.") for event in system.events(job_id)]


def replayed(system: LocalJobledger, job_id: str):
    """The job as the log alone has it: what a projector or a replay folds."""
    return fold(system.events(job_id))


async def test_a_job_is_decided_run_and_succeeds_in_one_gapless_chained_stream():
    system = LocalJobledger()

    job_id = system.submit({"type": "sleep", "payload": {"seconds": 0}})
    await system.run_until_idle()

    job = system.job(job_id)
    assert job.status is JobStatus.SUCCEEDED and job.result == {"slept": 0}
    assert kinds(system, job_id) == ["job.submitted", "job.queued", "job.started", "job.succeeded"]
    events = system.events(job_id)
    chain = ChainCheck()
    assert [event.seq for event in events] == [1, 2, 3, 4] and [chain.add(event.recorded()) for event in events] == [None] * 4
    assert replayed(system, job_id) == job


async def test_a_failed_attempt_is_retried_when_its_backoff_has_passed():
    system = LocalJobledger()

    job_id = system.submit({"type": "flaky", "payload": {"failures": 1}, "max_attempts": 2, "backoff": {"base_s": 5}})
    await system.run_until_idle()
    waiting = system.job(job_id)
    system.advance(10)
    await system.run_until_idle()

    assert waiting.status is JobStatus.PENDING and waiting.attempt == 1, "nothing runs before its time"
    job = system.job(job_id)
    assert job.status is JobStatus.SUCCEEDED and job.attempt == 2 and job.result == {"succeeded_on_attempt": 2}
    assert [error.error_type for error in job.errors] == ["IntentionalFailure"]


async def test_a_failed_job_retried_by_hand_runs_again_with_a_fresh_budget():
    system = LocalJobledger()
    job_id = system.submit({"type": "flaky", "payload": {"failures": 1}, "max_attempts": 1})
    await system.run_until_idle()
    failed = system.job(job_id)

    system.retry(job_id)
    await system.run_until_idle()

    assert failed.status is JobStatus.FAILED
    job = system.job(job_id)
    assert job.status is JobStatus.SUCCEEDED and job.attempt == 2
    assert kinds(system, job_id)[3:6] == ["job.failed", "job.retried", "job.queued"]


async def test_an_attempt_past_its_timeout_fails_as_a_timeout():
    system = LocalJobledger()

    job_id = system.submit({"type": "sleep", "payload": {"seconds": 30}, "timeout_s": 0.05, "max_attempts": 1})
    await system.run_until_idle()

    job = system.job(job_id)
    assert job.status is JobStatus.FAILED and job.error_type == "timeout"
    assert replayed(system, job_id) == job


def cancellable() -> HandlerRegistry:
    """``sleep`` that ends when asked to (or, ``ignore_cancel``, never), and ``noop``."""
    handlers = HandlerRegistry()

    @handlers.handler(SLEEP)
    async def sleep(ctx, payload):
        while payload.ignore_cancel or not ctx.cancelled:
            await asyncio.sleep(0.001)
        raise RuntimeError("stopped: cancelled")

    @handlers.handler(NOOP)
    async def noop(ctx, payload):
        return None

    return handlers


async def test_a_running_job_asked_to_stop_ends_cancelled_not_failed():
    system = LocalJobledger(cancellable())
    job_id = system.submit({"type": "sleep", "payload": {"seconds": 60}, "max_attempts": 3})
    await system.run_until_idle(wait_for_handlers=False)
    running = system.job(job_id).status

    system.cancel(job_id, grace_s=10)
    await system.run_until_idle()

    job = system.job(job_id)
    assert running is JobStatus.RUNNING and job.status is JobStatus.CANCELLED and job.attempt == 1
    assert kinds(system, job_id)[-2:] == ["job.cancel_requested", "job.cancelled"]


async def test_a_job_that_ignores_a_cancel_is_cancelled_when_the_grace_runs_out():
    system = LocalJobledger(cancellable())
    job_id = system.submit({"type": "sleep", "payload": {"seconds": 60, "ignore_cancel": True}})
    await system.run_until_idle(wait_for_handlers=False)
    system.cancel(job_id, grace_s=10)
    await system.run_until_idle(wait_for_handlers=False)

    system.advance(11)
    await system.run_until_idle()

    assert system.job(job_id).status is JobStatus.CANCELLED
    assert system._running == {}, "the handler's task was stopped"


async def test_a_pipeline_whose_step_fails_for_good_compensates_what_succeeded_latest_first():
    system = LocalJobledger()

    job_id = system.submit(
        {
            "type": "pipeline",
            "steps": [
                {"name": "reserve", "type": "noop", "compensate": {"type": "noop"}},
                {"name": "notify", "type": "noop", "depends_on": ["reserve"], "compensate": {"type": "noop"}},
                {"name": "charge", "type": "fail", "payload": {"retryable": False}, "depends_on": ["notify"]},
            ],
        }
    )
    await system.run_until_idle()

    job = system.job(job_id)
    assert job.status is JobStatus.FAILED and job.compensated is True
    assert [(step.name, step.status) for step in job.steps] == [
        ("reserve", StepStatus.COMPENSATED),
        ("notify", StepStatus.COMPENSATED),
        ("charge", StepStatus.FAILED),
    ]
    compensated = [event.data.step for event in system.events(job_id) if event.type == "jobledger.step.compensated"]
    assert compensated == ["notify", "reserve"]
    assert replayed(system, job_id) == job


async def test_jobs_of_one_concurrency_key_run_one_at_a_time():
    system = LocalJobledger(cancellable())
    first = system.submit({"type": "sleep", "payload": {"seconds": 60}, "concurrency_key": "k", "concurrency_limit": 1})
    second = system.submit({"type": "noop", "concurrency_key": "k", "concurrency_limit": 1})
    await system.run_until_idle(wait_for_handlers=False)

    waiting = system.job(second)
    system.cancel(first, grace_s=0)
    await system.run_until_idle()

    assert waiting.status is JobStatus.PENDING and waiting.awaiting_slot, "the key's one slot is the first job's"
    assert (system.job(first).status, system.job(second).status) == (JobStatus.CANCELLED, JobStatus.SUCCEEDED)
