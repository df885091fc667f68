"""Pipelines in the decider: steps queued in dependency order, in parallel where
they may, and on a failure or a cancel the succeeded steps compensated in
reverse completion order (SAGA). Given these commands, then these events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import count

import pytest

from schemas import (
    CancelJob,
    CompleteJob,
    FailJob,
    Heartbeat,
    InvalidTransition,
    JobCancelled,
    JobCancelRequested,
    JobFailed,
    JobOptions,
    JobStatus,
    JobSucceeded,
    ReleaseJob,
    ReportProgress,
    RetryJob,
    StaleAttempt,
    StartJob,
    SubmitJob,
    decide,
    due_commands,
    fold,
    parse_event,
    queued_work,
    topics,
)
from schemas.errors import InvalidPipeline
from schemas.events import (
    PipelineStarted,
    StepCancelled,
    StepCompensated,
    StepCompensationFailed,
    StepFailed,
    StepQueued,
    StepReleased,
    StepRetryScheduled,
    StepSkipped,
    StepSucceeded,
)
from schemas.job import StepStatus
from schemas.objects import demo_operations
from schemas.pipelines import PIPELINE, Compensation, Operations, PipelineSpec, PipelineStep, plan

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
_ids = count(1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def step(name: str, *depends_on: str, type: str = "noop", undo: str | None = None, **fields) -> PipelineStep:
    compensate = Compensation(type=undo, payload={"undo": name}) if undo else None
    return PipelineStep(name=name, type=type, payload={}, depends_on=depends_on, compensate=compensate, **fields)


class Pipeline:
    """One pipeline job driven command by command, as the processor drives it."""

    def __init__(self, *steps: PipelineStep, **options) -> None:
        self.job = None
        self.now = 0.0
        self.history: list = []
        ordered = plan(PipelineSpec(steps=steps), Operations())
        self.decide(
            SubmitJob(
                **self._common(),
                job_type=PIPELINE,
                options=JobOptions(**options),
                steps=tuple(ordered.steps[name] for name in ordered.order),
            )
        )

    def _common(self) -> dict:
        return dict(command_id=f"c-{next(_ids)}", job_id="pipe-1", tenant="acme", issued_at=at(self.now))

    def decide(self, command) -> list:
        events = decide(command, self.job)
        self.job = fold(events, self.job)
        self.history += events
        return events

    def attempt(self, name: str, command_class, runner_id: str = "r1", **fields) -> list:
        current = self.job.step(name).attempt
        return self.decide(command_class(**self._common(), step=name, attempt=current, runner_id=runner_id, **fields))

    def run(self, name: str, result=None) -> list:
        self.attempt(name, StartJob)
        return self.attempt(name, CompleteJob, result=result)

    def fails(self, name: str, retryable: bool = False) -> list:
        self.attempt(name, StartJob)
        return self.attempt(name, FailJob, error=f"{name} broke", error_type="Boom", retryable=retryable)

    def status(self, name: str) -> StepStatus:
        return self.job.step(name).status


def queued(events) -> list[str]:
    return [event.data.step for event in events if isinstance(event, StepQueued)]


def types(events) -> list[type]:
    return [type(event) for event in events]


def test_a_pipeline_starts_by_queueing_only_the_steps_with_no_dependencies():
    pipeline = Pipeline(step("a"), step("b", "a"), step("c"))

    assert pipeline.job.status is JobStatus.RUNNING
    assert pipeline.job.attempt == 1
    assert [pipeline.status(name) for name in ("a", "b", "c")] == [StepStatus.QUEUED, StepStatus.WAITING, StepStatus.QUEUED]


def test_the_demo_operations_run_in_dependency_order_and_the_pipeline_succeeds_with_its_last_result():
    known = Operations()
    demo_operations(known)
    ordered = plan(PipelineSpec(steps=(PipelineStep(name="export", type="export"),)), known)
    pipeline = Pipeline(*(ordered.steps[name] for name in ordered.order))

    ran = []
    while pipeline.job.status is JobStatus.RUNNING:
        [name] = [s.name for s in pipeline.job.steps if s.status is StepStatus.QUEUED]
        ran.append(name)
        events = pipeline.run(name, result={"by": name})

    assert ran == ["validate", "transform", "enrich", "analyze", "export"]
    assert isinstance(events[-1], JobSucceeded)
    assert pipeline.job.result == {"export": {"by": "export"}}, "the result is that of the step nothing depends on"
    assert pipeline.job.progress == 100.0


def test_independent_branches_are_queued_together_and_a_join_waits_for_both():
    pipeline = Pipeline(step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c"))

    assert queued(pipeline.run("a", result=1)) == ["b", "c"]
    assert queued(pipeline.run("b", result=2)) == []
    assert pipeline.status("d") is StepStatus.WAITING
    events = pipeline.run("c", result=3)

    assert queued(events) == ["d"]
    [d_queued] = [event for event in events if isinstance(event, StepQueued)]
    assert d_queued.data.inputs == {"b": 2, "c": 3}, "a step is handed the results of what it depends on"


def test_progress_is_derived_from_the_steps():
    pipeline = Pipeline(step("a"), step("b", "a"))

    pipeline.run("a")
    assert pipeline.job.progress == 50.0
    pipeline.attempt("b", StartJob)
    [progressed] = pipeline.attempt("b", ReportProgress, percent=40, message="halfway there")

    assert progressed.data.step == "b" and progressed.data.percent == 40
    assert pipeline.job.step("b").progress_message == "halfway there"
    assert pipeline.job.progress == 70.0, "a's 100 and b's 40, each counting half"


def test_a_failing_third_step_compensates_the_first_two_in_reverse_completion_order_and_fails_compensated():
    pipeline = Pipeline(step("reserve", undo="release"), step("charge", "reserve", undo="refund"), step("ship", "charge"))
    pipeline.run("reserve", result={"reservation": 7})
    pipeline.run("charge")

    events = pipeline.fails("ship")

    assert types(events)[-2:] == [StepFailed, StepQueued]
    [compensation] = events[-1:]
    assert compensation.data.step == "charge" and compensation.data.compensation
    assert compensation.data.job_type == "refund" and compensation.data.payload == {"undo": "charge"}
    events = pipeline.run("charge", result="refunded")
    assert types(events) == [StepCompensated, StepQueued]
    assert events[-1].data.step == "reserve"
    assert events[-1].data.inputs == {"reserve": {"reservation": 7}}, "a compensation sees the result it undoes"
    events = pipeline.run("reserve")

    assert types(events) == [StepCompensated, JobFailed]
    failed = events[-1].data
    assert failed.step == "ship" and failed.compensated is True
    assert failed.error == "step 'ship' failed: ship broke"
    job = pipeline.job
    assert job.status is JobStatus.FAILED and job.compensated is True and job.failed_step == "ship"
    assert [job.step(name).status for name in ("reserve", "charge", "ship")] == [
        StepStatus.COMPENSATED,
        StepStatus.COMPENSATED,
        StepStatus.FAILED,
    ]


def test_steps_not_begun_are_skipped_and_a_running_sibling_finishes_before_compensation():
    pipeline = Pipeline(step("a", undo="undo"), step("b", "a", undo="undo"), step("c", "a"), step("d", "b", "c"))
    pipeline.run("a")
    pipeline.attempt("b", StartJob)

    events = pipeline.fails("c")

    assert types(events) == [StepFailed, StepSkipped]
    assert events[-1].data.step == "d"
    assert pipeline.job.status is JobStatus.RUNNING, "b still runs"
    events = pipeline.attempt("b", CompleteJob)
    assert types(events) == [StepSucceeded, StepQueued]
    assert events[-1].data.step == "b" and events[-1].data.compensation, "b finished after a: undone first"


def test_a_failing_compensation_is_retried_then_recorded_and_the_rest_still_compensate():
    pipeline = Pipeline(step("a", undo="undo"), step("b", "a", undo="undo"), step("c", "b"))
    pipeline.run("a")
    pipeline.run("b")
    pipeline.fails("c")

    events = pipeline.fails("b", retryable=True)
    assert types(events) == [StepRetryScheduled]
    [wake] = due_commands(pipeline.job, events[0].data.retry_at)
    assert wake.step == "b"
    assert queued(pipeline.decide(wake)) == ["b"]
    pipeline.fails("b", retryable=True)
    pipeline.now = 3600
    [wake] = due_commands(pipeline.job, at(3600))
    pipeline.decide(wake)
    events = pipeline.fails("b", retryable=True)

    assert types(events) == [StepCompensationFailed, StepQueued], "three attempts, then the next compensation"
    assert events[-1].data.step == "a"
    events = pipeline.run("a")
    assert isinstance(events[-1], JobFailed)
    assert events[-1].data.compensated is False
    assert "compensation of step 'b' failed: b broke" in events[-1].data.error
    assert pipeline.status("b") is StepStatus.COMPENSATION_FAILED


def test_a_failed_step_retries_within_its_own_budget():
    pipeline = Pipeline(step("a", max_attempts=2))

    events = pipeline.fails("a", retryable=True)
    assert types(events) == [StepRetryScheduled]
    [wake] = due_commands(pipeline.job, events[0].data.retry_at)
    assert queued(pipeline.decide(wake)) == ["a"]
    assert pipeline.job.step("a").attempt == 2
    events = pipeline.fails("a", retryable=True)

    assert types(events) == [StepFailed, JobFailed]
    assert events[-1].data.compensated is None, "nothing had succeeded: nothing to undo"


def test_a_released_step_is_queued_again_at_once_without_costing_an_attempt():
    pipeline = Pipeline(step("a", max_attempts=1), step("b", "a"))
    pipeline.attempt("a", StartJob)
    pipeline.attempt("a", ReportProgress, percent=40)

    events = pipeline.attempt("a", ReleaseJob)

    assert types(events) == [StepReleased, StepQueued]
    a = pipeline.job.step("a")
    assert (a.status, a.attempt, a.progress, a.errors) == (StepStatus.QUEUED, 2, None, ())
    assert types(pipeline.fails("a", retryable=True))[0] is StepFailed, "its one attempt, still: no retry"


def test_a_step_released_after_a_cancel_was_asked_for_is_cancelled():
    pipeline = Pipeline(step("a"))
    pipeline.attempt("a", StartJob)
    pipeline.decide(CancelJob(**pipeline._common()))

    assert types(pipeline.attempt("a", ReleaseJob))[0] is StepCancelled


def test_a_step_running_past_its_timeout_is_expired_by_a_timer():
    pipeline = Pipeline(step("a", timeout_s=5, max_attempts=1))
    pipeline.attempt("a", StartJob)

    [expiry] = [c for c in due_commands(pipeline.job, at(6)) if c.reason == "timeout"]
    assert expiry.step == "a" and expiry.attempt == 1
    events = pipeline.decide(expiry)

    assert types(events) == [StepFailed, JobFailed]
    assert events[0].data.error_type == "timeout"


def test_only_the_runner_holding_a_step_may_report_on_it():
    pipeline = Pipeline(step("a"))
    pipeline.attempt("a", StartJob, runner_id="r1")

    with pytest.raises(StaleAttempt):
        pipeline.attempt("a", CompleteJob, runner_id="r2")
    assert pipeline.attempt("a", Heartbeat, runner_id="r1") == []


def test_a_command_on_a_pipeline_must_name_one_of_its_steps():
    pipeline = Pipeline(step("a"))

    with pytest.raises(InvalidTransition, match="must name a step"):
        pipeline.decide(StartJob(**pipeline._common(), attempt=1, runner_id="r1"))
    with pytest.raises(InvalidTransition, match="no step 'zz'"):
        pipeline.decide(StartJob(**pipeline._common(), attempt=1, runner_id="r1", step="zz"))


def test_cancelling_a_running_pipeline_stops_its_steps_and_compensates():
    pipeline = Pipeline(step("a", undo="undo"), step("b", "a"), step("c", "a"))
    pipeline.run("a")
    pipeline.attempt("b", StartJob)

    events = pipeline.decide(CancelJob(**pipeline._common(), reason="enough", grace_s=5))
    assert types(events) == [JobCancelRequested, StepSkipped]
    assert events[-1].data.step == "c"
    pipeline.now = 6
    [expiry] = [c for c in due_commands(pipeline.job, at(6)) if c.reason == "cancelled"]
    events = pipeline.decide(expiry)
    assert types(events) == [StepCancelled, StepQueued]
    events = pipeline.run("a")

    assert types(events) == [StepCompensated, JobCancelled]
    assert events[-1].data.compensated is True and events[-1].data.reason == "enough"
    assert pipeline.job.status is JobStatus.CANCELLED


def test_a_step_that_fails_after_a_cancel_counts_as_cancelled_not_failed():
    pipeline = Pipeline(step("a"))
    pipeline.attempt("a", StartJob)
    pipeline.decide(CancelJob(**pipeline._common()))

    events = pipeline.attempt("a", FailJob, error="stopped", retryable=True)

    assert types(events) == [StepCancelled, JobCancelled]


def test_a_retried_pipeline_runs_again_from_its_first_steps_with_attempts_numbering_on():
    pipeline = Pipeline(step("a"), step("b", "a"))
    pipeline.run("a")
    pipeline.fails("b")

    events = pipeline.decide(RetryJob(**pipeline._common()))

    assert isinstance(events[1], PipelineStarted) and events[1].data.attempt == 2
    assert queued(events) == ["a"]
    assert pipeline.job.step("a").attempt == 2 and pipeline.job.step("b").status is StepStatus.WAITING
    assert pipeline.job.failed_step is None and pipeline.job.compensated is None


@pytest.mark.parametrize(
    "steps, message",
    [
        ((step("a", "b"), step("b", "a")), "cycle"),
        ((step("a", "ghost"),), "'ghost'"),
        ((step("a", type=PIPELINE),), "do not nest"),
    ],
)
def test_a_pipeline_that_cannot_run_is_rejected_naming_why(steps, message):
    command = SubmitJob(command_id="c-bad", job_id="pipe-bad", tenant="acme", issued_at=T0, job_type=PIPELINE, steps=steps)

    with pytest.raises(InvalidPipeline, match=message):
        decide(command, None)


def test_every_pipeline_event_survives_the_wire_and_folds_to_the_same_job():
    pipeline = Pipeline(step("a", undo="undo"), step("b", "a"))
    pipeline.run("a", result={"x": 1})
    pipeline.fails("b")
    pipeline.run("a")

    job = fold(parse_event(event.to_bytes()) for event in pipeline.history)

    assert job == pipeline.job


def test_each_running_step_has_a_lease_of_its_own():
    from schemas.leases import Deadlines

    pipeline = Pipeline(step("a"), step("b"))
    pipeline.attempt("a", StartJob)
    pipeline.attempt("b", StartJob)
    leases = Deadlines(lease_s=30)
    leases.track(pipeline.job, at(0))
    leases.renew(pipeline.job, at(20), step="a")  # a heartbeat of a only

    expiries = [c for c in due_commands(pipeline.job, at(31), leases.leases("pipe-1")) if c.reason == "lost"]

    assert [(c.step, c.attempt) for c in expiries] == [("b", 1)]
    pipeline.now = 31
    events = pipeline.decide(expiries[0])
    assert types(events) == [StepRetryScheduled], "a lost step is retried like a lost job"


def test_a_step_whose_inputs_would_not_fit_one_event_fails_at_once_and_the_pipeline_compensates():
    from schemas.pipeline_rules import INPUTS_TOO_LARGE, QUEUED_BUDGET_BYTES

    sources = [step(f"part{index}", undo="undo") for index in range(10)]
    pipeline = Pipeline(*sources, step("join", *(source.name for source in sources)))
    chunk = "x" * (QUEUED_BUDGET_BYTES // 8)
    for source in sources[:-1]:
        pipeline.run(source.name, result=chunk)

    events = pipeline.run(sources[-1].name, result=chunk)

    assert types(events)[:3] == [StepSucceeded, StepFailed, StepQueued], "failed when it would be queued, then compensation"
    assert events[1].data.step == "join" and events[1].data.error_type == INPUTS_TOO_LARGE
    assert events[2].data.compensation and events[2].data.step == "part9"
    assert all(len(event.to_bytes()) < topics.MAX_RECORD_BYTES for event in events)


def test_a_pipeline_whose_final_results_would_not_fit_one_event_succeeds_with_them_on_its_steps():
    from schemas.pipeline_rules import INLINE_BUDGET_BYTES

    pipeline = Pipeline(step("a"), step("b"), step("c"))
    chunk = "x" * (INLINE_BUDGET_BYTES // 2)
    pipeline.run("a", result=chunk)
    pipeline.run("b", result=chunk)
    events = pipeline.run("c", result=chunk)

    assert isinstance(events[-1], JobSucceeded) and events[-1].data.result is None
    assert pipeline.job.step("a").result == chunk


def test_a_decision_that_reached_the_log_only_in_part_is_completed_by_a_timer():
    """A crash between two record batches of one decision leaves a succeeded step
    whose successors were never queued; the command, redelivered, is a repeat."""
    pipeline = Pipeline(step("a"), step("b", "a"))
    pipeline.attempt("a", StartJob)
    whole = decide(CompleteJob(**pipeline._common(), step="a", attempt=1, runner_id="r1", result=1), pipeline.job)
    assert types(whole) == [StepSucceeded, StepQueued]
    cut = fold(whole[:1], pipeline.job)  # only the first batch made it
    assert due_commands(pipeline.job, at(0)) == [], "a whole decision leaves nothing to advance"

    [advance] = due_commands(cut, at(1))
    events = decide(advance, cut)

    assert advance.type == "AdvancePipeline"
    assert [(type(event), event.data.step) for event in events] == [(StepQueued, "b")]
    assert decide(advance, fold(events, cut)) == [], "applied once"


def test_the_work_of_queued_steps_is_rebuilt_from_the_state_alone():
    """Inputs, compensations and attempt numbers included: what a restarted
    runner is handed equals what the step.queued events carried."""
    p = Pipeline(step("a", undo="noop"), step("b", "a"), step("c", "a"), step("d", "b", "c"), max_attempts=2)

    def queued_now() -> dict:
        latest = {}
        for event in p.history:
            if isinstance(event, StepQueued):
                latest[event.data.step] = event.data
        return {name: data for name, data in latest.items() if p.status(name) is StepStatus.QUEUED}

    def rebuilt() -> dict:
        return {data.step: data for data in queued_work(p.job)}

    assert rebuilt() == queued_now() and set(rebuilt()) == {"a"}
    p.run("a", result={"from": "a"})
    assert rebuilt() == queued_now() and set(rebuilt()) == {"b", "c"}
    assert rebuilt()["b"].inputs == {"a": {"from": "a"}}
    p.fails("b", retryable=True)
    assert set(rebuilt()) == {"c"}, "b waits out its backoff; c is still queued"
    p.fails("c")
    assert rebuilt() == queued_now() and rebuilt()["a"].compensation, "a's compensation is queued"
    assert rebuilt()["a"].inputs == {"a": {"from": "a"}}
