"""What ingest makes of a pipeline request: planned steps, or a 422 naming the step."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from schemas import decide
from schemas.pipelines import PIPELINE
from services.common.modules import load_job_types
from services.ingest.problems import Problem
from services.ingest.submissions import parse_request, submit_command

JOB_TYPES = load_job_types(["schemas.builtin", "schemas.objects"])
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def submit(body: dict):
    return submit_command(JOB_TYPES, parse_request(body), tenant="t", job_id="p-1", issued_at=NOW)


def refused(body: dict) -> dict[str, str]:
    with pytest.raises(Problem) as problem:
        submit(body)
    assert problem.value.status == 422
    return {error["field"]: error["message"] for error in problem.value.errors}


def test_asking_for_an_operation_plans_its_prerequisites_in_order_each_with_the_pipeline_payload():
    command = submit({"type": PIPELINE, "payload": {"object": {"a": 1}}, "steps": [{"name": "analyze", "type": "analyze"}]})

    assert [step.name for step in command.steps] == ["validate", "transform", "enrich", "analyze"]
    assert command.steps[3].depends_on == ("enrich",)
    assert all(step.payload == {"object": {"a": 1}} for step in command.steps)
    assert decide(command, None)[-1].data.step == "validate", "the decider accepts what ingest planned"


def test_a_step_with_a_payload_of_its_own_keeps_it():
    command = submit(
        {
            "type": PIPELINE,
            "payload": {"object": {}},
            "steps": [
                {"name": "nap", "type": "sleep", "payload": {"seconds": 1}},
                {"name": "after", "type": "noop", "payload": {}, "depends_on": ["nap"]},
            ],
        }
    )

    assert [step.payload for step in command.steps] == [{"seconds": 1}, {}]


@pytest.mark.parametrize(
    ("steps", "field", "words"),
    [
        (
            [{"name": "a", "type": "noop", "depends_on": ["b"]}, {"name": "b", "type": "noop", "depends_on": ["a"]}],
            "steps.0.depends_on",
            "cycle: a → b → a",
        ),
        ([{"name": "a", "type": "noop", "depends_on": ["ghost"]}], "steps.0.depends_on", "'ghost'"),
        ([{"name": "a", "type": "noop"}, {"name": "a", "type": "noop"}], "steps.1.name", "two steps"),
        ([{"name": "a", "type": "nope"}], "steps.0.type", "unknown job type 'nope'"),
        ([{"name": "a", "type": "sleep", "payload": {"seconds": -1}}], "steps.0.payload.seconds", "greater than"),
        ([{"name": "a", "type": "noop", "compensate": {"type": "nope"}}], "steps.0.compensate.type", "unknown job type"),
        ([{"name": "a", "type": PIPELINE}], "steps.0.type", "do not nest"),
        (
            [{"name": "a", "type": "validate", "payload": {"object": {"$set": 1}}}],
            "steps.0.payload.object.$set",
            "may not start with '$'",
        ),
        (
            [{"name": "a", "type": "noop", "compensate": {"type": "validate", "payload": {"object": {"a.b": 1}}}}],
            "steps.0.compensate.payload.object.a.b",
            "contain '.'",
        ),
        ([], "steps", "at least one step"),
        (None, "steps", "at least one step"),
    ],
)
def test_a_pipeline_that_cannot_run_is_a_422_naming_the_step(steps, field, words):
    errors = refused({"type": PIPELINE, "steps": steps})

    assert field in errors, errors
    assert words in errors[field]


def test_steps_belong_to_pipelines_only():
    assert "steps" in refused({"type": "noop", "steps": [{"name": "a", "type": "noop"}]})


def test_a_pipeline_takes_no_concurrency_key():
    assert "concurrency_key" in refused({"type": PIPELINE, "concurrency_key": "k", "steps": [{"name": "a", "type": "noop"}]})


def test_a_pipeline_defined_in_code_is_submitted_by_name():
    command = submit({"type": PIPELINE, "pipeline": "object-processing", "payload": {"object": {"a": 1}}})

    assert [step.name for step in command.steps] == ["validate", "transform", "enrich", "analyze", "export"]


def test_an_unknown_pipeline_name_is_a_422_listing_the_defined_ones():
    errors = refused({"type": PIPELINE, "pipeline": "nope"})

    assert "object-processing" in errors["pipeline"]


def test_a_job_too_large_for_one_record_of_the_log_is_a_422_naming_its_payload():
    from services.ingest.submissions import SUBMIT_BUDGET_BYTES

    errors = refused({"type": "export", "payload": {"object": {"blob": "x" * SUBMIT_BUDGET_BYTES}}})
    assert "payload" in errors and "more than one record may carry" in errors["payload"]
    errors = refused(
        {
            "type": PIPELINE,
            "steps": [
                {"name": f"s{index}", "type": "export", "payload": {"object": {"blob": "x" * (SUBMIT_BUDGET_BYTES // 3)}}}
                for index in range(4)
            ],
        }
    )
    assert "steps" in errors


def test_a_schedule_plans_its_pipeline_once_and_each_tick_submits_it():
    from datetime import timedelta

    from schemas.api import ScheduleRequest
    from schemas.schedules import Schedule, tick_command
    from services.ingest.routes.schedules import schedule_spec

    spec = schedule_spec(
        JOB_TYPES,
        ScheduleRequest.model_validate(
            {
                "cron": "* * * * *",
                "job": {"type": PIPELINE, "payload": {"object": {"a": 1}}, "steps": [{"name": "analyze", "type": "analyze"}]},
            }
        ),
    )
    schedule = Schedule(schedule_id="s-1", tenant="t", spec=spec, created_at=NOW)
    command = tick_command(schedule, NOW + timedelta(minutes=1), NOW + timedelta(minutes=1))

    assert [step.name for step in command.steps] == ["validate", "transform", "enrich", "analyze"]
    assert decide(command, None)[1].type == "jobledger.pipeline.started"
    with pytest.raises(Problem) as refused_schedule:
        schedule_spec(
            JOB_TYPES,
            ScheduleRequest.model_validate(
                {"cron": "* * * * *", "job": {"type": PIPELINE, "steps": [{"name": "a", "type": "noop", "depends_on": ["a"]}]}}
            ),
        )
    assert [error["field"] for error in refused_schedule.value.errors] == ["job.steps.0.depends_on"]
