"""Planning a pipeline: prerequisites pulled in, order, waves, and refusals that name the step."""

from __future__ import annotations

import pytest

from schemas.objects import demo_operations
from schemas.pipelines import Operations, PipelineSpec, PlanError, plan


def known() -> Operations:
    operations = Operations()
    demo_operations(operations)
    return operations


def spec(*steps: dict) -> PipelineSpec:
    return PipelineSpec.model_validate({"steps": list(steps)})


def test_asking_for_analyze_pulls_in_its_prerequisites_in_dependency_order():
    planned = plan(spec({"name": "analyze", "type": "analyze"}), known())

    assert planned.order == ("validate", "transform", "enrich", "analyze")
    assert planned.waves == (("validate",), ("transform",), ("enrich",), ("analyze",))


def test_independent_steps_share_a_wave_and_run_side_by_side():
    planned = plan(
        spec(
            {"name": "fetch", "type": "noop"},
            {"name": "thumb", "type": "noop", "depends_on": ["fetch"]},
            {"name": "ocr", "type": "noop", "depends_on": ["fetch"]},
            {"name": "index", "type": "noop", "depends_on": ["thumb", "ocr"]},
        ),
        Operations(),
    )

    assert planned.waves == (("fetch",), ("thumb", "ocr"), ("index",))
    assert planned.ready(succeeded=["fetch"], started=["fetch"]) == ["thumb", "ocr"]
    assert planned.ready(succeeded=["fetch", "thumb"], started=["fetch", "thumb", "ocr"]) == []


def test_a_cycle_is_refused_naming_it():
    with pytest.raises(PlanError) as refused:
        plan(
            spec(
                {"name": "a", "type": "noop", "depends_on": ["c"]},
                {"name": "b", "type": "noop", "depends_on": ["a"]},
                {"name": "c", "type": "noop", "depends_on": ["b"]},
            ),
            Operations(),
        )

    assert "cycle" in refused.value.message and "a → c → b → a" in refused.value.message
    assert refused.value.where == ("steps", 0, "depends_on")


def test_a_dangling_dependency_or_a_repeated_name_is_refused_naming_the_step():
    with pytest.raises(PlanError) as dangling:
        plan(spec({"name": "a", "type": "noop"}, {"name": "b", "type": "noop", "depends_on": ["ghost"]}), Operations())
    with pytest.raises(PlanError) as repeated:
        plan(spec({"name": "a", "type": "noop"}, {"name": "a", "type": "noop"}), Operations())

    assert dangling.value.where == ("steps", 1, "depends_on") and "'ghost'" in dangling.value.message
    assert repeated.value.where == ("steps", 1, "name")


def test_compensations_run_in_reverse_completion_order_and_skip_steps_without_one():
    planned = plan(
        spec(
            {"name": "reserve", "type": "noop", "compensate": {"type": "noop", "payload": {"undo": "reserve"}}},
            {
                "name": "charge",
                "type": "noop",
                "depends_on": ["reserve"],
                "compensate": {"type": "noop", "payload": {"undo": "charge"}},
            },
            {"name": "notify", "type": "noop", "depends_on": ["charge"]},
            {"name": "ship", "type": "noop", "depends_on": ["notify"]},
        ),
        Operations(),
    )

    undo = planned.compensations(completed=["reserve", "charge", "notify"])

    assert [step.compensate.payload["undo"] for step in undo] == ["charge", "reserve"]
