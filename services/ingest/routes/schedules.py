"""``/schedules``: cron schedules that submit a job at every tick.

Like jobs, schedules are commands on a log (``jobs.schedules``); the processor
fires their ticks and the projector folds them into the ``schedules`` read
model this router reads.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import structlog
from fastapi import APIRouter, Depends, Response
from pydantic import ValidationError

from schemas import JobStatus, encode_command, topics
from schemas.api import JobAccepted, JobLinks, ScheduleList, ScheduleRequest, ScheduleView
from schemas.errors import ProblemCode
from schemas.jobtypes import JobTypes
from schemas.pipelines import PIPELINE
from schemas.schedules import (
    CreateSchedule,
    DeleteSchedule,
    PauseSchedule,
    ResumeSchedule,
    Schedule,
    ScheduleCommand,
    ScheduleSpec,
    encode_schedule_command,
    evolve_schedule,
    trigger_command,
)
from services.adapters.readmodel import schedule_from_document
from services.ingest.auth import reader, writer
from services.ingest.bodies import ContractRoute
from services.ingest.bootstrap import Ingest, IngestDep
from services.ingest.problems import AUTHENTICATED, PROBLEM_RESPONSE, Problem, field_error, invalid
from services.ingest.responses import answer
from services.ingest.store import append_record
from services.ingest.submissions import ServiceCalls, declared_type, job_options, pipeline_plan, validated_payload

router = APIRouter(tags=["schedules"], route_class=ContractRoute)


log = structlog.get_logger(component="ingest")


def schedule_spec(types: JobTypes, body: ScheduleRequest, calls: ServiceCalls | None = None) -> ScheduleSpec:
    """The schedule a request asks for, or a 422 naming the field. Pure, like submits."""
    if body.job.type == PIPELINE:
        payload, options, steps = pipeline_plan(types, body.job, ("job",), calls=calls)
    else:
        job_type = declared_type(types, body.job.type, ("job",))
        payload = validated_payload(job_type, body.job.payload, ("job",), calls)
        options, steps = job_options(job_type, body.job, ("job",)), None
    try:
        return ScheduleSpec(
            cron=body.cron,
            timezone=body.timezone,
            job_type=body.job.type,
            payload=payload,
            options=options,
            steps=steps,
        )
    except ValidationError as error:
        raise invalid([field_error(_request_location(item["loc"]), item["msg"]) for item in error.errors()]) from None


def _request_location(spec_location: tuple) -> tuple:
    """Where a field of the ScheduleSpec came from in the request body."""
    head, rest = (spec_location[0], spec_location[1:]) if spec_location else ("options", ("labels",))
    if head == "job_type":
        return ("job", "type")
    if head in ("payload", "options"):
        return ("job", *rest) if head == "options" else ("job", "payload", *rest)
    return spec_location


@router.post(
    "/schedules",
    status_code=201,
    response_model=ScheduleView,
    responses={**AUTHENTICATED, 422: PROBLEM_RESPONSE, 503: PROBLEM_RESPONSE},
    summary="Create a cron schedule",
    description="Each tick of `cron` (read in `timezone`) submits one job from the template — exactly "
    "one, also across processor restarts; ticks missed while no processor ran are submitted on start.",
)
async def create_schedule(
    body: ScheduleRequest, state: IngestDep, response: Response, tenant: str = Depends(writer)
) -> ScheduleView:
    spec = schedule_spec(state.job_types, body, ServiceCalls(tenant, state.services.get))
    command = CreateSchedule(
        command_id=str(uuid.uuid4()),
        schedule_id=str(uuid.uuid4()),
        tenant=tenant,
        issued_at=datetime.now(timezone.utc),
        spec=spec,
    )
    await _append(state, command)
    schedule = evolve_schedule(None, command)
    state.accepted_schedules.remember(schedule)
    response.headers["Location"] = f"/schedules/{schedule.schedule_id}"
    return ScheduleView.of(schedule)


@router.get("/schedules", response_model=ScheduleList, responses=AUTHENTICATED, summary="List schedules")
async def list_schedules(state: IngestDep, tenant: str = Depends(reader)) -> ScheduleList:
    documents = state.read_model.schedule_documents(tenant)
    listed = [schedule async for document in documents if (schedule := _readable(document)) is not None]
    deleted = state.accepted_schedules.deleted_ids()
    return ScheduleList(items=[ScheduleView.of(schedule) for schedule in listed if schedule.schedule_id not in deleted])


@router.get(
    "/schedules/{schedule_id}",
    response_model=ScheduleView,
    responses={**AUTHENTICATED, 404: PROBLEM_RESPONSE},
    summary="Get a schedule",
)
async def get_schedule(schedule_id: str, state: IngestDep, tenant: str = Depends(reader)) -> ScheduleView:
    return ScheduleView.of(await _schedule_or_404(state, schedule_id, tenant))


@router.delete(
    "/schedules/{schedule_id}",
    status_code=202,
    response_model=ScheduleView,
    responses={**AUTHENTICATED, 404: PROBLEM_RESPONSE, 503: PROBLEM_RESPONSE},
    summary="Delete a schedule",
    description="No tick after this request submits a job. Jobs already submitted are not touched.",
)
async def delete_schedule(schedule_id: str, state: IngestDep, tenant: str = Depends(writer)) -> ScheduleView:
    schedule = await _schedule_or_404(state, schedule_id, tenant)
    command = DeleteSchedule(
        command_id=str(uuid.uuid4()), schedule_id=schedule_id, tenant=tenant, issued_at=datetime.now(timezone.utc)
    )
    await _append(state, command)
    deleted = evolve_schedule(schedule, command)
    state.accepted_schedules.remember(deleted)
    return ScheduleView.of(deleted)


@router.post(
    "/schedules/{schedule_id}/pause",
    status_code=202,
    response_model=ScheduleView,
    responses={**AUTHENTICATED, 404: PROBLEM_RESPONSE, 409: PROBLEM_RESPONSE, 503: PROBLEM_RESPONSE},
    summary="Pause a schedule",
    description="No tick submits a job until it is resumed. Pausing a paused schedule changes nothing.",
)
async def pause_schedule(schedule_id: str, state: IngestDep, tenant: str = Depends(writer)) -> ScheduleView:
    return ScheduleView.of(await _change(state, schedule_id, tenant, PauseSchedule))


@router.post(
    "/schedules/{schedule_id}/resume",
    status_code=202,
    response_model=ScheduleView,
    responses={**AUTHENTICATED, 404: PROBLEM_RESPONSE, 409: PROBLEM_RESPONSE, 503: PROBLEM_RESPONSE},
    summary="Resume a paused schedule",
    description="It ticks again from now on; the ticks that fell while it was paused are skipped, not caught up.",
)
async def resume_schedule(schedule_id: str, state: IngestDep, tenant: str = Depends(writer)) -> ScheduleView:
    return ScheduleView.of(await _change(state, schedule_id, tenant, ResumeSchedule))


@router.post(
    "/schedules/{schedule_id}/trigger",
    status_code=202,
    response_model=JobAccepted,
    responses={**AUTHENTICATED, 404: PROBLEM_RESPONSE, 409: PROBLEM_RESPONSE, 503: PROBLEM_RESPONSE},
    summary="Submit the schedule's job now",
    description="One job from the schedule's template, now, whatever its cron (a paused schedule too); labelled "
    "`schedule:<id>` like its ticks. Its ticks go on as before. The answer names the job.",
)
async def trigger_schedule(schedule_id: str, state: IngestDep, tenant: str = Depends(writer)) -> Response:
    schedule = _not_deleted(await _schedule_or_404(state, schedule_id, tenant))
    submit = trigger_command(schedule, str(uuid.uuid4()), datetime.now(timezone.utc))
    await append_record(state, topics.COMMANDS, submit.job_id, encode_command(submit))
    state.accepted.remember(submit)  # readable at once, as any submit's job
    accepted = JobAccepted(id=submit.job_id, state=JobStatus.PENDING, links=JobLinks.of(submit.job_id))
    return answer(accepted, 202, {"Location": f"/jobs/{submit.job_id}"})


async def _change(state: Ingest, schedule_id: str, tenant: str, kind: type[ScheduleCommand]) -> Schedule:
    """Append a pause or resume on a schedule that is not deleted (else a 409); the schedule as it is after it."""
    schedule = _not_deleted(await _schedule_or_404(state, schedule_id, tenant))
    command = kind(command_id=str(uuid.uuid4()), schedule_id=schedule_id, tenant=tenant, issued_at=datetime.now(timezone.utc))
    await _append(state, command)
    return evolve_schedule(schedule, command)


def _not_deleted(schedule: Schedule) -> Schedule:
    if schedule.deleted_at is not None:
        raise Problem(
            409, ProblemCode.INVALID_TRANSITION, "The schedule was deleted", f"Schedule {schedule.schedule_id!r} was deleted."
        )
    return schedule


def _readable(document: dict) -> Schedule | None:
    """The schedule of a read-model document, or ``None`` for one today's rules refuse
    (written before they existed); it is logged, not served."""
    try:
        return schedule_from_document(document)
    except ValidationError as error:
        log.warning("schedule in the read model is not valid; not served", schedule_id=document.get("_id"), error=str(error))
        return None


async def _schedule_or_404(state: Ingest, schedule_id: str, tenant: str) -> Schedule:
    document = await state.read_model.schedule_document(schedule_id, tenant)
    projected = _readable(document) if document is not None else None
    accepted = state.accepted_schedules.get(schedule_id, tenant)
    if projected is None:
        if accepted is None:
            raise Problem(404, ProblemCode.SCHEDULE_NOT_FOUND, "No such schedule", f"There is no schedule {schedule_id!r}.")
        return accepted
    if accepted is not None and accepted.deleted_at is not None and projected.deleted_at is None:
        # The accepted deletion on top of the read model, which may have moved on
        # since (ticks in flight still land): never the stale accepted copy.
        return projected.model_copy(update={"deleted_at": accepted.deleted_at})
    return projected


async def _append(state, command: ScheduleCommand) -> None:
    await append_record(state, topics.SCHEDULES, command.schedule_id, encode_schedule_command(command))
