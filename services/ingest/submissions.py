"""What a submit becomes: a request checked against the contract, then a ``SubmitJob``.

Pure (no I/O), so what the edge accepts can be tested with any value: the
routes of ``POST /jobs``, ``POST /jobs:batch`` and ``POST /schedules`` go
through here, and so do the property tests that feed them extreme values.
Every refusal is a :class:`Problem` (422) naming the field.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from schemas import JobOptions, SubmitJob, encode_command, topics
from schemas.api import SubmitJobRequest
from schemas.jobtypes import JobType, JobTypes, UnknownJobType
from schemas.pipelines import PIPELINE, Operations, PipelineSpec, PipelineStep, PlanError, operations, pipelines, plan
from schemas.services import ServiceCall, ServiceRegistered, UnknownOperation, service_call_problems, templated_at
from schemas.values import document_problems, json_problems
from services.common.ids import random_id
from services.ingest.problems import field_error, invalid, pydantic_errors

_IDEMPOTENCY_NAMESPACE = uuid.UUID("9a7c2f4e-1d3b-4e5f-8a6b-2c1d0e9f8a7b")
SUBMIT_BUDGET_BYTES = topics.MAX_RECORD_BYTES - 8 * 1024
"""The largest SubmitJob accepted: its events (the same job plus an envelope) must fit one record."""


def parse_request(raw: Any, values_checked: bool = False) -> SubmitJobRequest:
    """A decoded JSON value as a submit request (a batch item: the single submit's
    body is decoded the same way by the route). ``values_checked``: the body it
    came in was checked against the contract's value rules already."""
    if not values_checked:
        unfit = [field_error(path, message) for path, message in json_problems(raw)]
        if unfit:
            raise invalid(unfit)
    try:
        return SubmitJobRequest.model_validate(raw)
    except ValidationError as error:
        raise invalid(pydantic_errors(error.errors())) from None


def declared_type(types: JobTypes, name: str, where: tuple = ()) -> JobType:
    """The declared job type ``name``, or a 422 naming ``type``."""
    try:
        return types.get(name)
    except UnknownJobType as unknown:
        raise invalid([field_error(where + ("type",), str(unknown))]) from None


@dataclass(frozen=True)
class ServiceCalls:
    """What a ``service`` job's call is checked against when it is submitted:
    the submitting tenant's registry."""

    tenant: str
    lookup: Callable[[str, str], ServiceRegistered | None]

    def check(self, call: ServiceCall, where: tuple) -> None:
        """The call fits its operation's schemas, or a 422 naming the field of the payload."""
        registered = self.lookup(self.tenant, call.service)
        if registered is None:
            raise invalid([field_error(where + ("service",), f"no service {call.service!r} is registered (GET /services)")])
        definition = registered.definition
        try:
            operation = definition.operation(call.operation)
        except UnknownOperation as unknown:
            raise invalid([field_error(where + ("operation",), str(unknown))]) from None
        problems = [
            (path, message)
            for path, message in service_call_problems(definition, operation, call)
            if not templated_at(call, path)  # (checked again when the step runs, filled)
        ]
        if problems:
            raise invalid([field_error(where + path, message) for path, message in problems])


def validated_payload(
    job_type: JobType, raw: dict[str, Any], where: tuple = (), calls: ServiceCalls | None = None
) -> dict[str, Any]:
    """The payload as the job type's model has it (defaults filled in), as JSON,
    one the read model can hold; or a 422 naming the payload field. A service
    call is checked against ``calls``."""
    try:
        payload = job_type.validate(raw)
    except ValidationError as error:
        raise invalid(pydantic_errors(error.errors(), where + ("payload",))) from None
    if calls is not None and isinstance(payload, ServiceCall):
        calls.check(payload, where + ("payload",))
    document = payload.model_dump(mode="json")
    errors = [field_error(where + ("payload",) + path, message) for path, message in document_problems(document)]
    if errors:
        raise invalid(errors)
    return document


def job_options(job_type: JobType, body: SubmitJobRequest, where: tuple = ()) -> JobOptions:
    """The request's options over the job type's defaults, or a 422 naming the option."""
    try:
        return job_type.options(body.given_options())
    except ValidationError as error:
        raise invalid(pydantic_errors(error.errors(), where)) from None


@dataclass(frozen=True)
class Submission:
    """A checked submit: its command, and the command as the record that carries it."""

    command: SubmitJob
    value: bytes


def submit_command(types: JobTypes, body: SubmitJobRequest, **fields: Any) -> SubmitJob:
    """The ``SubmitJob`` of a request (see :func:`submission`)."""
    return submission(types, body, **fields).command


def submission(
    types: JobTypes,
    body: SubmitJobRequest,
    *,
    tenant: str,
    job_id: str,
    issued_at: datetime,
    idempotency_key: str | None = None,
    correlation_id: str | None = None,
    calls: ServiceCalls | None = None,
) -> Submission:
    """A request as the command to append, or a 422 naming the field."""
    if body.type == PIPELINE:
        payload, options, steps = pipeline_plan(types, body, calls=calls)
    else:
        for name in ("steps", "pipeline"):
            if getattr(body, name) is not None:
                raise invalid([field_error((name,), f"only a job of type {PIPELINE!r} has {name}")])
        job_type = declared_type(types, body.type)
        payload = validated_payload(job_type, body.payload, calls=calls)
        options, steps = job_options(job_type, body), None
    try:
        command = SubmitJob(
            command_id=random_id(),
            job_id=job_id,
            tenant=tenant,
            issued_at=issued_at,
            correlation_id=correlation_id,
            job_type=body.type,
            payload=payload,
            options=options,
            idempotency_key=idempotency_key,
            request_hash=fingerprint(body) if idempotency_key is not None else None,  # (only a replayed key is compared)
            steps=steps,
        )
    except ValidationError as error:
        raise invalid(pydantic_errors(error.errors())) from None
    value = encode_command(command)
    if len(value) > SUBMIT_BUDGET_BYTES:
        where = ("steps",) if steps is not None else ("payload",)
        raise invalid(
            [
                field_error(
                    where,
                    (
                        f"the job takes {len(value):,} bytes in the log, more than one record may carry ({SUBMIT_BUDGET_BYTES:,}); "
                        "pass large inputs by reference (a URL or an object key)"
                    ),
                )
            ]
        )
    return Submission(command, value)


def pipeline_plan(
    types: JobTypes, body: SubmitJobRequest, where: tuple = (), known: Operations = operations, calls: ServiceCalls | None = None
) -> tuple[dict[str, Any], JobOptions, tuple[PipelineStep, ...]]:
    """A pipeline request as its payload, options and planned steps (in dependency
    order, prerequisites added, each with its payload), or a 422 naming the step."""
    if body.pipeline is not None:
        if body.steps is not None:
            raise invalid([field_error(where + ("steps",), "give steps or the name of a defined pipeline, not both")])
        defined = pipelines.by_name.get(body.pipeline)
        if defined is None:
            names = ", ".join(sorted(pipelines.by_name)) or "none"
            raise invalid([field_error(where + ("pipeline",), f"no pipeline is defined as {body.pipeline!r}; defined: {names}")])
        body = body.model_copy(update={"steps": list(defined.steps)})
    if not body.steps:
        raise invalid([field_error(where + ("steps",), f"a {PIPELINE} needs at least one step (or a defined pipeline's name)")])
    unfit = [field_error(where + ("payload",) + path, message) for path, message in document_problems(body.payload)]
    if unfit:
        raise invalid(unfit)
    try:
        options = JobOptions.model_validate(body.given_options())
    except ValidationError as error:
        raise invalid(pydantic_errors(error.errors(), where)) from None
    if options.concurrency_key is not None:
        raise invalid(
            [
                field_error(
                    where + ("concurrency_key",), "a pipeline takes no concurrency key (its steps run as they become ready)"
                )
            ]
        )
    try:
        planned = plan(PipelineSpec(steps=tuple(body.steps)), known)
    except PlanError as error:
        raise invalid([field_error(where + error.where, error.message)]) from None
    index = {step.name: position for position, step in enumerate(body.steps)}
    steps = []
    for name in planned.order:
        step = planned.steps[name]
        at = where + ("steps", index.get(name, name))
        payload = body.payload if step.payload is None else step.payload
        if step.payload is None:
            step = step.model_copy(update={"payload": payload})
        _runnable(types, step.type, payload, at, calls)
        if step.compensate is not None:
            _runnable(types, step.compensate.type, step.compensate.payload, at + ("compensate",), calls)
        steps.append(step)
    return body.payload, options, tuple(steps)


def _runnable(types: JobTypes, type_name: str, payload: dict[str, Any], where: tuple, calls: ServiceCalls | None) -> None:
    """A step's (or compensation's) job type is declared and takes its payload, or a 422 naming where."""
    if type_name == PIPELINE:
        raise invalid([field_error(where + ("type",), "a step cannot be a pipeline: pipelines do not nest")])
    validated_payload(declared_type(types, type_name, where), payload, where, calls)


def idempotent_job_id(tenant: str, idempotency_key: str) -> str:
    """One job per key and tenant: the id derives from both."""
    return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{tenant}\n{idempotency_key}"))


def fingerprint(body: SubmitJobRequest) -> str:
    """The request as the job will run it: equal bodies (defaults filled in) hash equal."""
    canonical = orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()
