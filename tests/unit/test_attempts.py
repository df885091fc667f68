"""The runner's attempts without a broker: the waiting order, and what a
finished handler reports."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from pydantic import BaseModel

from schemas import CompleteJob, FailJob, Job, JobOptions, JobQueued, Priority, decide, fold
from schemas.jobtypes import JobType
from services.processor.attempts import MAX_TRACEBACK_CHARS, Attempt, AttemptState, WaitingAttempts, Work, outcome
from services.processor.handlers import HandlerRegistry, JobContext, PermanentError, RetryLater
from services.processor.runner import Runner
from services.processor.settings import ProcessorSettings
from tests.unit.test_decider import at, submit

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

    assert (broken_report.command, broken_report.fields["error_type"], broken_report.fields["retryable"]) == (
        FailJob,
        "ValueError",
        True,
    )
    assert refused_report.fields["retryable"] is False


def test_a_failure_carries_the_handlers_traceback_from_its_own_frames():
    def parse(pixels: dict) -> int:
        return pixels["boom"]

    async def resize(ctx, payload):
        return parse({})

    report = report_of(registry_with(resize), queued())

    trace = report.fields["traceback"]
    assert trace.startswith("Traceback (most recent call last):")
    assert "in resize" in trace and "in parse" in trace and 'return pixels["boom"]' in trace
    assert trace.rstrip().endswith("KeyError: 'boom'")
    assert "services/processor" not in trace and "asyncio" not in trace, "the runner's own frames are left out"


def test_a_long_traceback_keeps_its_end():
    async def verbose(ctx, payload):
        raise RuntimeError("x" * 20_000 + " at the bottom")

    async def deep(ctx, payload, depth: int = 0):
        if depth == 300:
            raise RuntimeError(f"at the bottom, {depth}")
        return await (deep if depth % 2 else deeper)(ctx, payload, depth + 1)

    async def deeper(ctx, payload, depth: int):
        return await deep(ctx, payload, depth)

    long_message = report_of(registry_with(verbose), queued()).fields["traceback"]
    many_frames = report_of(registry_with(deep), queued()).fields["traceback"]

    assert "in verbose" in long_message and long_message.rstrip().endswith("at the bottom"), "a huge message keeps the frames"
    assert len(long_message) < 2_000
    assert len(many_frames) <= MAX_TRACEBACK_CHARS + 50
    assert many_frames.startswith("… (") and many_frames.rstrip().endswith("RuntimeError: at the bottom, 300")


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
    assert unknown.fields["traceback"] is None and unfit.fields["traceback"] is None, "no frame of a handler: nothing to show"


def test_a_handler_past_its_timeout_fails_as_timeout():
    async def slow(ctx, payload):
        await asyncio.sleep(10)

    report = report_of(registry_with(slow), queued(timeout_s=0.01))

    assert report.fields == {"error": "attempt timed out after 0.01 s", "error_type": "timeout"}


def test_a_handlers_own_timeout_error_is_a_failure_not_the_jobs_timeout():
    async def gives_up(ctx, payload):
        raise TimeoutError("the camera did not answer")

    without_timeout = report_of(registry_with(gives_up), queued())
    within_timeout = report_of(registry_with(gives_up), queued(timeout_s=30))

    for report in (without_timeout, within_timeout):
        assert (report.command, report.fields["error"], report.fields["error_type"], report.fields["retryable"]) == (
            FailJob,
            "the camera did not answer",
            "TimeoutError",
            True,
        )


def test_retry_later_carries_its_wait_to_the_decider():
    async def busy(ctx, payload):
        raise RetryLater("the camera is busy", after_s=5)

    report = report_of(registry_with(busy), queued())

    assert (report.fields["retryable"], report.fields["retry_after_s"], report.fields["error"]) == (True, 5, "the camera is busy")


async def test_restored_attempts_wait_oldest_first_across_partitions():
    """After a restart the runner gets the queued jobs of every partition it now
    owns; the one free slot goes to the job queued longest ago, whichever
    partition holds it (not to the first id of the first partition)."""

    def queued_job(job_id: str, seconds: float) -> Job:
        command = submit(issued_at=at(seconds)).model_copy(update={"job_id": job_id})
        return fold(decide(command, None))

    class Decider:
        def __init__(self) -> None:
            self.taken: list = []

        def take(self, command, trace=None) -> bool:
            self.taken.append(command)
            return True

    decider = Decider()
    runner = Runner(ProcessorSettings(runner_concurrency=1), HandlerRegistry(), producer=None, decider=decider)  # type: ignore[arg-type]
    jobs = [(0, queued_job("a-newest", 30)), (0, queued_job("b-newer", 20)), (1, queued_job("z-oldest", 10))]

    await runner.restored({0, 1}, jobs)

    assert [command.job_id for command in decider.taken] == ["z-oldest"]
