"""An attempt as one runner sees it, from its ``JobQueued`` to its report.

Its states (:class:`AttemptState`) are the runner's own bookkeeping: the job's
state is the decider's, in the log. :func:`outcome` runs the handler and says
what to report; it knows nothing of Kafka, so it is tested without a broker.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import structlog
from aiokafka import TopicPartition
from pydantic import ValidationError

from schemas import AttemptCommand, CompleteJob, Event, ExpiryReason, FailJob, Job, JobQueued, Priority, timeout_error
from schemas.artifacts import COMPENSATION_SUFFIX, RESULT
from schemas.events import STEP_EVENTS, JobQueuedData, StepQueued, StepQueuedData
from services.adapters.artifacts import ArtifactMissing, Offloader
from services.processor import handlers
from services.processor.handlers import HandlerRegistry, JobContext, PermanentError, RetryLater, UnknownJobType

log = structlog.get_logger(component="runner")

_REPORT_NAMESPACE = uuid.UUID("0d8f5b8e-2f47-4c55-8f3b-7a3c4e1f9b21")
MAX_ERROR_CHARS = 10_000
"""An exception's message is cut to this length in the job's error."""
MAX_TRACEBACK_CHARS = 8_000
"""A traceback longer than this keeps its end: the frame that raised, and the exception."""
MAX_RETRY_AFTER_S = 86_400.0
"""A handler's :class:`RetryLater` is kept to this (a day), as the command takes it."""
_RUNNER_FRAMES = (__file__, handlers.__file__, asyncio.__file__.rpartition("/")[0] + "/")
"""Where the frames that call a handler live: a traceback starts below them."""

AttemptKey = tuple[str, str | None, int]
"""(job id, pipeline step or ``None``, attempt number)"""


def attempt_key(event: Event) -> AttemptKey:
    """The attempt an event is about (attempt 0: none). Only step events name a
    step: a pipeline's JobFailed names its failed step, not an attempt of it."""
    step = getattr(event.data, "step", None) if isinstance(event, STEP_EVENTS) else None
    return (event.job_id, step, getattr(event.data, "attempt", 0))


class AttemptState(StrEnum):
    WAITING = "waiting"
    """its JobQueued was read; it waits in the buffer for a free slot"""
    CLAIMED = "claimed"
    """StartJob was sent; the decider has not granted it to this runner yet"""
    RUNNING = "running"
    """its handler runs"""
    DONE = "done"
    """reported, dropped or ended: nothing more to do here"""


IN_FLIGHT = (AttemptState.CLAIMED, AttemptState.RUNNING)
"""Holding a slot: heartbeated, and followed after a rebalance."""


class ReportName(StrEnum):
    """What a runner reports on an attempt; with the attempt's order and the
    runner, it names the report's command (:func:`report_id`), so the same
    report sent twice is one command to the decider. Progress and heartbeats
    are named again each time (a timestamp after the name): each counts."""

    START = "start"
    COMPLETE = "complete"
    FAIL = "fail"
    RELEASE = "release"
    PROGRESS = "progress"
    HEARTBEAT = "heartbeat"


def report_id(order_id: str, runner_id: str, report: str) -> str:
    """The command id of a report: the same report of the same attempt is the same command."""
    return str(uuid.uuid5(_REPORT_NAMESPACE, f"{order_id}/{runner_id}/{report}"))


@dataclass(frozen=True)
class Work:
    """What one attempt runs: the data its ``job.queued`` (``step.queued``) carried."""

    job_id: str
    tenant: str
    correlation_id: str | None
    order_id: str
    """Names this queueing of the attempt: the queued event's id, or for work
    rebuilt from a job's state, an id derived from the attempt."""
    data: JobQueuedData | StepQueuedData

    @classmethod
    def of_event(cls, event: JobQueued | StepQueued) -> "Work":
        return cls(event.job_id, event.tenant, event.correlation_id, event.event_id, event.data)

    @classmethod
    def of_state(cls, job: Job, data: JobQueuedData | StepQueuedData) -> "Work":
        """Work rebuilt from the job's state (:func:`schemas.queued_work`), for an attempt whose event is not at hand."""
        step = getattr(data, "step", None)
        order_id = str(uuid.uuid5(_REPORT_NAMESPACE, f"{job.job_id}/{step}/{data.attempt}"))
        return cls(job.job_id, job.tenant, None, order_id, data)

    @property
    def step(self) -> str | None:
        return getattr(self.data, "step", None)

    @property
    def key(self) -> AttemptKey:
        return (self.job_id, self.step, self.data.attempt)


@dataclass(eq=False)
class Attempt:
    tp: TopicPartition
    offset: int | None
    """Where its queued event was read (``None``: handed over in memory, not read)."""
    work: Work
    state: AttemptState = AttemptState.WAITING
    claimed_at: float = 0.0
    resends: int = 0
    ctx: JobContext | None = None
    task: asyncio.Task | None = None
    sent_progress: tuple[float, str | None] | None = None
    ended_by_decider: bool = False
    trace: Any = None
    """The trace of the decision that queued it (services.common.tracing), its attempt span's parent."""

    @property
    def key(self) -> AttemptKey:
        return self.work.key

    @property
    def step(self) -> str | None:
        return self.work.step

    @property
    def compensation(self) -> bool:
        return getattr(self.work.data, "compensation", False)

    def report(
        self, command_class: type[AttemptCommand], runner_id: str, name: str, issued_at: datetime, **fields: Any
    ) -> AttemptCommand:
        """A command of ``runner_id`` about this attempt; the same report of it
        is the same command to the decider (:func:`report_id`)."""
        work = self.work
        return command_class(
            command_id=report_id(work.order_id, runner_id, name),
            job_id=work.job_id,
            tenant=work.tenant,
            correlation_id=work.correlation_id,
            issued_at=issued_at,
            attempt=work.data.attempt,
            runner_id=runner_id,
            step=self.step,
            **fields,
        )

    def begin(self) -> None:
        """Granted to this runner: it runs now, with a context of its own."""
        work = self.work
        self.state = AttemptState.RUNNING
        self.ctx = JobContext(
            job_id=work.job_id,
            attempt=work.data.attempt,
            tenant=work.tenant,
            step=self.step,
            inputs=getattr(work.data, "inputs", {}),
            compensating=self.compensation,
        )


@dataclass
class WaitingAttempts:
    """Waiting attempts, highest priority first, then oldest first."""

    heap: list = field(default_factory=list)
    order: itertools.count = field(default_factory=itertools.count)
    size: int = 0

    def push(self, attempt: Attempt) -> None:
        heapq.heappush(self.heap, (attempt.work.data.priority.rank, next(self.order), attempt))
        self.size += 1

    def pop(self) -> Attempt | None:
        while self.heap:
            attempt = heapq.heappop(self.heap)[2]
            if attempt.state is AttemptState.WAITING:
                self.size -= 1
                return attempt
        return None

    def reprioritize(self, attempt: Attempt, priority: Priority) -> None:
        """A waiting attempt's job changed priority: it is taken by its new rank
        (the old entry stays in the heap and is skipped once the attempt is taken)."""
        heapq.heappush(self.heap, (priority.rank, next(self.order), attempt))

    def discard(self) -> None:
        """One waiting attempt left the buffer by other means (it stays in the heap, marked)."""
        self.size -= 1


@dataclass(frozen=True)
class Report:
    """What a finished attempt tells the decider: a command class, a name for its id, its fields."""

    command: type[AttemptCommand]
    name: str
    fields: dict[str, Any]


async def outcome(registry: HandlerRegistry, attempt: Attempt, offloader: Offloader | None = None) -> Report | None:
    """Run the attempt's handler: the report to send, or ``None`` when the decider ended the attempt.

    With an ``offloader``, inputs stored as artifacts are fetched first and a
    large result is stored as one."""
    work, ctx = attempt.work, attempt.ctx
    if ctx is None:
        raise RuntimeError(f"attempt {attempt.key} runs before it began")
    deadline: asyncio.Timeout | None = None
    try:
        try:  # neither would change on a later attempt
            job_handler = registry.get(work.data.job_type)
            payload = job_handler.job_type.validate(work.data.payload)
        except UnknownJobType as unknown:
            raise PermanentError(
                f"no handler here for job type {unknown.job_type!r}; this runner has: {', '.join(unknown.known)}"
            ) from None
        except ValidationError as error:
            raise PermanentError(f"payload does not fit job type {job_handler.name!r}: {first_error(error)}") from None
        stored_inputs = getattr(work.data, "input_artifacts", None)
        if offloader is not None and stored_inputs:
            try:
                ctx.inputs = {**ctx.inputs, **await offloader.inputs(stored_inputs)}
            except ArtifactMissing as missing:
                raise PermanentError(str(missing)) from None
        async with asyncio.timeout(work.data.timeout_s) as deadline:
            result = await job_handler.run(ctx, payload)
        if offloader is None:
            return Report(CompleteJob, ReportName.COMPLETE, {"result": result})
        name = RESULT if attempt.step is None else attempt.step + (COMPENSATION_SUFFIX if attempt.compensation else "")
        fields = await offloader.result(result, tenant=work.tenant, job_id=work.job_id, name=name, attempt=work.data.attempt)
        return Report(CompleteJob, ReportName.COMPLETE, fields)
    except asyncio.CancelledError:
        if not attempt.ended_by_decider:
            raise
        log.info("attempt ended by the decider", job_id=work.job_id, attempt=work.data.attempt)
        return None
    except TimeoutError as error:
        if deadline is None or not deadline.expired() or work.data.timeout_s is None:
            return _failed(work, error)  # the handler's own TimeoutError: a failure like any other
        return Report(
            FailJob, ReportName.FAIL, {"error": timeout_error(work.data.timeout_s), "error_type": ExpiryReason.TIMEOUT.value}
        )
    except Exception as error:
        return _failed(work, error)


def _failed(work: Work, error: Exception) -> Report:
    log.error("job attempt failed", job_id=work.job_id, job_type=work.data.job_type, attempt=work.data.attempt, exc_info=error)
    fields = {
        "error": text(str(error))[:MAX_ERROR_CHARS] or type(error).__name__,
        "error_type": getattr(error, "error_type", None) or type(error).__name__,
        "traceback": handler_traceback(error),
        "retryable": not isinstance(error, PermanentError),
    }
    if isinstance(error, RetryLater):
        fields["retry_after_s"] = min(error.after_s, MAX_RETRY_AFTER_S)
    return Report(FailJob, ReportName.FAIL, fields)


def handler_traceback(error: BaseException) -> str | None:
    """The traceback of an exception a handler raised, from the handler's own
    frames down (the runner's and asyncio's are left out), its last
    :data:`MAX_TRACEBACK_CHARS`; ``None`` when no frame is the handler's (the
    runner refused the attempt itself: an unknown type, a payload that does not fit)."""
    frames = error.__traceback__
    while frames is not None and frames.tb_frame.f_code.co_filename.startswith(_RUNNER_FRAMES):
        frames = frames.tb_next
    if frames is None:
        return None
    formatted = text("".join(_shortened(part) for part in traceback.format_exception(type(error), error, frames)))
    if len(formatted) <= MAX_TRACEBACK_CHARS:
        return formatted
    return f"… ({len(formatted) - MAX_TRACEBACK_CHARS} characters left out)\n" + formatted[-MAX_TRACEBACK_CHARS:]


def _shortened(part: str, keep: int = 500) -> str:
    """One frame or exception line of a traceback, its middle left out when
    longer than twice ``keep`` (a huge message must not push the frames out)."""
    if len(part) <= 2 * keep:
        return part
    return f"{part[:keep]} … ({len(part) - 2 * keep} characters) … {part[-keep:]}"


def text(message: str) -> str:
    """``message`` as valid Unicode: an exception's message may hold lone surrogates."""
    return message.encode("utf-8", "replace").decode("utf-8")


def first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return text(f"{where}: {first['msg']}" if where else first["msg"])
