"""The whole path of a job in one process, on the in-memory log: submit,
decide, claim, run, report, time, slots — with the code the services run,
and without a broker, a database or a second process.

    system = LocalJobledger()
    job_id = system.submit({"type": "flaky", "payload": {"failures": 1}, "max_attempts": 2})
    await system.run_until_idle()      # decided, run, failed, retried after the backoff …
    system.advance(5)                  # … once its time has come
    await system.run_until_idle()
    assert system.job(job_id).status is JobStatus.SUCCEEDED

What is shared with the services, and so tested here in milliseconds: the
request → command of ingest (:func:`~services.ingest.submissions.submission`),
the decision (:func:`~services.processor.decision.decide_command`, the pure
rules under it), the deadlines and the commands they become
(:class:`~schemas.leases.Deadlines`, :func:`~schemas.due_commands`), the slot
decisions (:func:`~schemas.slots.decide_slots`), running a handler and what it
reports (:func:`~services.processor.attempts.outcome`), and every record's
encoding. What is not: Kafka's partitions, acknowledgements, rebalances and
crashes, the read model's database, HTTP — the e2e tests' part. The clock is
the system's own (:meth:`LocalJobledger.advance`); a handler runs on the event
loop, at once when its attempt is granted, and sends neither progress nor
heartbeats (a lease runs out only if the test moves the clock past it). As a burst worker (arq's, or
dramatiq's ``join``), :meth:`LocalJobledger.run_until_idle` returns once
nothing is left to read and no handler runs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from schemas import (
    AnyEvent,
    CancelJob,
    Command,
    CompleteJob,
    Job,
    JobQueued,
    RetryJob,
    StartJob,
    encode_command,
    encode_slot_message,
    parse_command,
    parse_event,
    topics,
)
from schemas.events import ATTEMPT_ENDED, JobCancelRequested, JobStarted, StepQueued, StepStarted
from schemas.leases import Deadlines
from schemas.slots import SlotState, decide_slots, grant_command, parse_slot_message, refuse_command
from services.adapters.memory_log import MemoryLog
from services.common.modules import load_job_types
from services.ingest.settings import IngestSettings
from services.ingest.submissions import parse_request, submit_command
from services.processor.attempts import Attempt, AttemptKey, AttemptState, ReportName, Work, attempt_key, outcome
from services.processor.decision import RecordTooLarge, decide_command, due_now, keep_time, unrecordable
from services.processor.handlers import HandlerRegistry, load_handlers
from services.processor.settings import ProcessorSettings

RUNNER_ID = "local"
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


class LocalJobledger:
    def __init__(self, handlers: HandlerRegistry | None = None, *, lease_s: float = 30.0, now: datetime = START) -> None:
        """``handlers``: the processor's own (built-in and demo job types) unless given."""
        self.handlers = handlers or load_handlers(ProcessorSettings().handler_modules)
        self.job_types = load_job_types(IngestSettings().job_type_modules)
        self.log = MemoryLog()
        self.now = now
        self.jobs: dict[str, Job] = {}
        """The decider's state of every job."""
        self.rejections: list[tuple[Command, Exception]] = []
        """Commands the decider refused, with why (a test may look)."""
        self.deadlines = Deadlines(lease_s)
        self._slots: dict[str, SlotState] = {}
        self._running: dict[AttemptKey, Attempt] = {}

    # --- what a producer does ----------------------------------------------------------

    def submit(self, body: dict, tenant: str = "default") -> str:
        """A ``POST /jobs`` body, appended as ingest appends it; the job's id."""
        job_id = str(uuid.uuid4())
        self.send(submit_command(self.job_types, parse_request(body), tenant=tenant, job_id=job_id, issued_at=self.now))
        return job_id

    def cancel(self, job_id: str, grace_s: float = 10.0) -> None:
        self.send(CancelJob(**self._common(job_id), grace_s=grace_s))

    def retry(self, job_id: str) -> None:
        self.send(RetryJob(**self._common(job_id)))

    def send(self, command: Command) -> None:
        self.log.append(topics.COMMANDS, command.job_id.encode(), encode_command(command))

    def advance(self, seconds: float) -> None:
        """Move the clock: deadlines that pass fire on the next run."""
        self.now += timedelta(seconds=seconds)

    # --- what a reader sees -------------------------------------------------------------

    def job(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def events(self, job_id: str) -> list[AnyEvent]:
        """The job's events, from the log."""
        return [event for event in map(_event, self.log.records(topics.EVENTS)) if event.job_id == job_id]

    # --- running ---------------------------------------------------------------------------

    async def run_until_idle(self, wait_for_handlers: bool = True) -> None:
        """Decide, run and report until nothing is left to read and no handler
        runs (``wait_for_handlers=False``: handlers still running are left to run)."""
        await self.run_until(lambda: False, wait_for_handlers)

    async def run_until(self, done: Callable[[], bool], wait_for_handlers: bool = True) -> None:
        """As :meth:`run_until_idle`, stopping early once ``done()``."""
        while not done():
            if self._step():
                continue
            running = [attempt.task for attempt in self._running.values() if attempt.task is not None and not attempt.task.done()]
            if not running or not wait_for_handlers:
                return
            await asyncio.wait(running, timeout=0.01, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.sleep(0)

    def _step(self) -> bool:
        """One pass over every reader; whether anything was read or reported."""
        busy = False
        for record in self.log.read("decider", topics.COMMANDS):
            self._decide(parse_command(record.value))
            busy = True
        for record in self.log.read("slots", topics.SLOTS):
            self._decide_slots(parse_slot_message(record.value))
            busy = True
        for record in self.log.read("runner", topics.EVENTS):
            self._hear(_event(record))
            busy = True
        busy |= self._reports()
        busy |= self._fire_deadlines()
        return busy

    # --- the decider ---------------------------------------------------------------------

    def _decide(self, command: Command) -> None:
        try:
            decision = decide_command(command, self.jobs.get(command.job_id), self.deadlines)
        except RecordTooLarge as error:
            self.rejections.append((command, error))
            if isinstance(command, CompleteJob):  # the runner's result: failed as the log would have refused it
                self._decide(unrecordable(command, str(error)))
            return
        except Exception as error:  # a rejection, as the decider logs it
            self.rejections.append((command, error))
            return
        for message in decision.to_slots:
            self.log.append(topics.SLOTS, message.key.encode(), encode_slot_message(message))
        for value in decision.values:
            self.log.append(topics.EVENTS, command.job_id.encode(), value)
        if decision.after is not None:
            self.jobs[command.job_id] = decision.after
        keep_time(self.deadlines, decision, self.now)

    def _decide_slots(self, message) -> None:
        after, granted, refused = decide_slots(self._slots.get(message.key), message)
        self._slots[message.key] = after
        for entry in granted:
            self.send(grant_command(entry, self.now))
        for entry in refused:
            self.send(refuse_command(entry, after.limit, self.now))

    def _fire_deadlines(self) -> bool:
        """As the decider's timer loop: the commands of the deadlines passed."""
        due = due_now(self.deadlines, self.jobs.get, self.now)
        for command in due:
            self.send(command)
        return bool(due)

    # --- the runner ----------------------------------------------------------------------

    def _hear(self, event: AnyEvent) -> None:
        if isinstance(event, (JobQueued, StepQueued)):
            work = Work.of_event(event)
            self._running[work.key] = Attempt(tp=None, offset=None, work=work, state=AttemptState.CLAIMED)
            self.send(self._running[work.key].report(StartJob, RUNNER_ID, ReportName.START, self.now))
        elif isinstance(event, (JobStarted, StepStarted)):
            attempt = self._running.get(attempt_key(event))
            if attempt is not None and event.data.runner_id == RUNNER_ID and attempt.state is AttemptState.CLAIMED:
                self._start(attempt)
        elif isinstance(event, JobCancelRequested):
            for attempt in self._running.values():
                if attempt.work.job_id == event.job_id and attempt.ctx is not None:
                    attempt.ctx.cancel_requested.set()
        elif isinstance(event, ATTEMPT_ENDED):
            attempt = self._running.pop(attempt_key(event), None)
            if attempt is not None and attempt.task is not None and not attempt.task.done():
                attempt.ended_by_decider = True  # a timer ended it: its report would not count
                attempt.task.cancel()

    def _start(self, attempt: Attempt) -> None:
        attempt.begin()
        attempt.task = asyncio.ensure_future(outcome(self.handlers, attempt))

    def _reports(self) -> bool:
        """The reports of the handlers that finished."""
        reported = False
        for attempt in list(self._running.values()):
            if attempt.task is None or not attempt.task.done() or attempt.state is AttemptState.DONE:
                continue
            attempt.state = AttemptState.DONE
            report = None if attempt.task.cancelled() else attempt.task.result()
            if report is not None:
                self.send(attempt.report(report.command, RUNNER_ID, report.name, self.now, **report.fields))
                reported = True
        return reported

    def _common(self, job_id: str) -> dict:
        job = self.jobs.get(job_id)
        return dict(command_id=str(uuid.uuid4()), job_id=job_id, tenant=job.tenant if job else "default", issued_at=self.now)


def _event(record) -> AnyEvent:
    return parse_event(record.value)
