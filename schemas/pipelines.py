"""Pipelines: a job made of steps with dependencies — the plan, pure.

A pipeline is a list of steps, each a job type with its payload, the steps it
depends on, and optionally the compensation that undoes it (SAGA). Operations
registered with their prerequisites (``operation("analyze", requires=("enrich",))``)
pull those in: asking for ``analyze`` alone plans ``validate → transform →
enrich → analyze``. :func:`plan` checks the graph — every name once, every
dependency present, no cycle — and orders it: :attr:`Plan.waves` are the
steps that may run side by side. A refusal is a :class:`PlanError` naming the
step (and, for a cycle, the cycle) so the API can answer 422 with it.

The plan travels in the job's ``JobSubmitted`` event; the job decider runs it
(:mod:`schemas.decider`), and :class:`Step` is how far each step got, folded
from the step events (:mod:`schemas.fold`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.errors import JobledgerError

PIPELINE = "pipeline"
"""The job type of a pipeline job: its work is its steps."""


class Compensation(BaseModel):
    """What undoes a step once a later one has failed for good."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str = Field(min_length=1, max_length=200, description="the job type that undoes the step")
    payload: dict[str, Any] = Field(default_factory=dict)
    max_attempts: int = Field(3, ge=1, le=100, description="a failing compensation is retried up to this many attempts")


class PipelineStep(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$", description="unique in the pipeline")
    type: str = Field(min_length=1, max_length=200, description="the job type the step runs")
    payload: dict[str, Any] | None = Field(None, description="the step's input; none: the pipeline's payload")
    depends_on: tuple[str, ...] = Field((), description="names of the steps that must succeed first")
    compensate: Compensation | None = Field(None, description="the job that undoes this step if a later one fails for good")
    max_attempts: int | None = Field(None, ge=1, le=100, description="none: the pipeline's max_attempts")
    timeout_s: float | None = Field(None, gt=0, le=86_400 * 7, description="per attempt; none: the pipeline's timeout_s")


class PipelineSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: tuple[PipelineStep, ...] = Field(min_length=1, max_length=100)


class PlanError(JobledgerError):
    """The steps do not form a runnable graph; ``where`` names the step."""

    def __init__(self, where: tuple, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


@dataclass(frozen=True)
class Operation:
    """A registered pipeline operation: the job type it runs and what it needs first."""

    name: str
    job_type: str
    requires: tuple[str, ...] = ()


@dataclass
class Operations:
    by_name: dict[str, Operation] = field(default_factory=dict)

    def declare(self, name: str, *, requires: Iterable[str] = (), job_type: str | None = None) -> Operation:
        declared = Operation(name, job_type or name, tuple(requires))
        self.by_name[name] = declared
        return declared


operations = Operations()
"""The operations declared in this process."""

operation = operations.declare


@dataclass
class Pipelines:
    """Pipelines defined in code, submitted by name (``{"type": "pipeline", "pipeline": name}``)."""

    by_name: dict[str, PipelineSpec] = field(default_factory=dict)

    def define(self, name: str, steps: Iterable[PipelineStep | dict[str, Any]]) -> PipelineSpec:
        spec = PipelineSpec(steps=tuple(PipelineStep.model_validate(step) for step in steps))
        plan(spec)  # a definition that cannot run fails when it is loaded, not when it is submitted
        self.by_name[name] = spec
        return spec


pipelines = Pipelines()
"""The pipelines defined in this process."""

define_pipeline = pipelines.define


@dataclass(frozen=True)
class Plan:
    steps: dict[str, PipelineStep]
    """Every step by name, prerequisites included."""
    order: tuple[str, ...]
    """A topological order: each step after all it depends on (given order kept where free)."""
    waves: tuple[tuple[str, ...], ...]
    """Steps grouped by depth: those of one wave may run at once."""

    def ready(self, succeeded: Iterable[str], started: Iterable[str]) -> list[str]:
        """The steps not started yet whose dependencies have all succeeded, in plan order."""
        done, begun = set(succeeded), set(started)
        return [
            name
            for name in self.order
            if name not in begun and name not in done and all(dep in done for dep in self.steps[name].depends_on)
        ]

    def compensations(self, completed: Iterable[str]) -> list[PipelineStep]:
        """What to undo after a failure: the completed steps that have a
        compensation, in reverse completion order."""
        return [self.steps[name] for name in reversed(list(completed)) if self.steps[name].compensate is not None]


def plan(spec: PipelineSpec, known: Operations = operations) -> Plan:
    steps = _with_prerequisites(spec, known)
    for name, step in steps.items():
        for dependency in step.depends_on:
            if dependency not in steps:
                index = _index(spec, name)
                raise PlanError(
                    ("steps", index, "depends_on"), f"step {name!r} depends on {dependency!r}, which is no step of this pipeline"
                )
    order = _topological(steps, spec)
    depth: dict[str, int] = {}
    for name in order:
        depth[name] = 1 + max((depth[dep] for dep in steps[name].depends_on), default=-1)
    waves = tuple(tuple(name for name in order if depth[name] == level) for level in range(max(depth.values()) + 1))
    return Plan(steps=steps, order=tuple(order), waves=waves)


def _with_prerequisites(spec: PipelineSpec, known: Operations) -> dict[str, PipelineStep]:
    steps: dict[str, PipelineStep] = {}
    for index, step in enumerate(spec.steps):
        if step.name in steps:
            raise PlanError(("steps", index, "name"), f"two steps are named {step.name!r}")
        steps[step.name] = step
    pending = list(steps)
    while pending:
        name = pending.pop(0)
        step = steps[name]
        registered = known.by_name.get(step.type)
        if registered is None or not registered.requires:
            continue
        missing = [required for required in registered.requires if required not in step.depends_on]
        if missing:
            steps[name] = step.model_copy(update={"depends_on": step.depends_on + tuple(missing)})
        for required in registered.requires:
            if required not in steps:
                operation_needed = known.by_name.get(required)
                job_type = operation_needed.job_type if operation_needed is not None else required
                steps[required] = PipelineStep(name=required, type=job_type)
                pending.append(required)
    return steps


def _topological(steps: dict[str, PipelineStep], spec: PipelineSpec) -> list[str]:
    """Depth-first, in the given order; a cycle is refused naming it."""
    order: list[str] = []
    state: dict[str, str] = {}  # "visiting" | "done"
    path: list[str] = []

    def visit(name: str) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name) :] + [name]
            raise PlanError(("steps", _index(spec, name), "depends_on"), f"the steps form a cycle: {' → '.join(cycle)}")
        state[name] = "visiting"
        path.append(name)
        for dependency in steps[name].depends_on:
            visit(dependency)
        path.pop()
        state[name] = "done"
        order.append(name)

    for name in steps:
        visit(name)
    return order


def _index(spec: PipelineSpec, name: str) -> int | str:
    """The step's index in the request, or its name for a step added as a prerequisite."""
    return next((index for index, step in enumerate(spec.steps) if step.name == name), name)
