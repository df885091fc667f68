"""The runner's attempts without a broker: the waiting order, and what a
finished handler reports."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from pydantic import BaseModel

from schemas import CompleteJob, FailJob, JobQueued, JobOptions, Priority, decide
from schemas.jobtypes import JobType
from services.processor.attempts import Attempt, AttemptState, WaitingAttempts, Work, outcome
from services.processor.handlers import HandlerRegistry, JobContext, PermanentError
from tests.unit.test_decider import submit

TP = TopicPartition("jobs.events", 0)


class Size(BaseModel):
    width: int


def queued(job_type: str = "resize", payload: dict | None = None, **options) -> Attempt:
    command = submit(job_type=job_type, payload=payload if payload is not None else {"width": 1}, options=JobOptions(**options))
    event = next(e for e in decide(command, None) if isinstance(e, JobQueued))
    attempt = Attempt(TP, 0, Work.of_event(event))
    attempt.ctx = JobContext(job_id=event.job_id, attempt=1, tenant=event.tenant)
    return attempt


def registry_with(run) -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.handler(JobType("resize", Size))(run)  # not declared in the process-wide catalog
    return registry


def report_of(registry: HandlerRegistry, attempt: Attempt):
    return asyncio.run(outcome(registry, attempt))


def test_waiting_attempts_come_out_by_priority_then_in_arrival_order():
    waiting = WaitingAttempts()
    lows = [queued(priority=Priority.LOW) for _ in range(2)]
    high = queued(priority=Priority.HIGH)
    for attempt in (*lows, high):
        waiting.push(attempt)
    lows[0].state = AttemptState.DONE  # dropped while waiting: skipped
    waiting.discard()

    assert [waiting.pop(), waiting.pop(), waiting.pop()] == [high, lows[1], None]
    assert waiting.size == 0


def test_a_result_is_reported_as_complete():
    async def resize(ctx, payload: Size) -> dict:
        return {"width": payload.width * 2}

    report = report_of(registry_with(resize), queued(payload={"width": 3}))

    assert (report.command, report.fields) == (CompleteJob, {"result": {"width": 6}})


def test_an_exception_is_a_retryable_failure_and_permanent_error_is_not():
    async def broken(ctx, payload):
        raise ValueError("bad pixels")

    async def refuses(ctx, payload):
        raise PermanentError("never")

    broken_report = report_of(registry_with(broken), queued())
    refused_report = report_of(registry_with(refuses), queued())

    assert (broken_report.command, broken_report.fields["error_type"], broken_report.fields["retryable"]) == (FailJob, "ValueError", True)
    assert refused_report.fields["retryable"] is False


def test_an_unknown_type_or_unfit_payload_fails_for_good_without_running():
    ran = []

    async def resize(ctx, payload):
        ran.append(payload)

    registry = registry_with(resize)
    unknown = report_of(registry, queued(job_type="crop"))
    unfit = report_of(registry, queued(payload={"width": "wide"}))

    assert ran == []
    assert unknown.fields["retryable"] is False and "no handler here for job type 'crop'" in unknown.fields["error"]
    assert unfit.fields["retryable"] is False and "payload does not fit" in unfit.fields["error"]


def test_a_handler_past_its_timeout_fails_as_timeout():
    async def slow(ctx, payload):
        await asyncio.sleep(10)

    report = report_of(registry_with(slow), queued(timeout_s=0.01))

    assert report.fields == {"error": "attempt timed out after 0.01 s", "error_type": "timeout"}
