"""``POST /jobs:bulk``: cancel or retry every job of a filter, a page at a time.

Each page is ``limit`` matching jobs, newest first, past the cursor (keyset on
``created_at`` and id, so jobs that change state meanwhile never shift a
page). Each job is checked as a single cancel or retry is, and its command
appended; the decider has the last word, as always. A dry run counts."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import structlog
from fastapi import APIRouter, Depends, Request, Response

from schemas import CancelJob, Command, RetryJob, encode_command, topics
from schemas.api import BULK_STATES, BulkAction, BulkRefusal, BulkRequest, BulkResult
from schemas.errors import ProblemCode
from schemas.values import label_key_problem
from services.adapters.broker import GROUP_TOPICS, caught_up
from services.adapters.readmodel import JobFilter
from services.common.settings import DECIDER_GROUP, PROJECTOR_GROUP
from services.ingest.auth import admin
from services.ingest.bodies import ContractRoute
from services.ingest.bootstrap import Ingest, IngestDep
from services.ingest.problems import PROBLEM_RESPONSE, PROBLEMS, Problem, field_error, invalid
from services.ingest.responses import answer
from services.ingest.routes.commands import refusal
from services.ingest.routes.queries import decode_cursor, encode_cursor

router = APIRouter(route_class=ContractRoute, tags=["operations"])
log = structlog.get_logger(component="ingest")


@router.post(
    "/jobs:bulk",
    response_model=BulkResult,
    responses={**PROBLEMS, 503: PROBLEM_RESPONSE},
    summary="Cancel or retry every job of a filter (admin), a page at a time",
    description="`cancel` takes the filter's PENDING, QUEUED and RUNNING jobs, `retry` its FAILED and CANCELLED "
    "ones; `filter.state` narrows within those. Each request acts on up to `limit` jobs, newest first, and "
    "answers `next_cursor` for the next; `dry_run` only counts (`matched`). A dry run and a first page first wait "
    "(up to JOBLEDGER_BULK_CATCH_UP_S) until the read models hold every job accepted before the request. A job "
    "that moved on since it matched is listed in `refused` with the reason a single cancel or retry would give. "
    "`jobledger bulk` pages through it with a progress bar.",
)
async def bulk(request: Request, body: BulkRequest, state: IngestDep, tenant: str = Depends(admin)) -> Response:
    wanted = _filter(body, tenant)
    first = body.cursor is None
    if first or body.dry_run:
        await _read_models_caught_up(state)
    matched = await state.read_model.count(wanted) if first or body.dry_run else None
    if body.dry_run:
        return answer(BulkResult(action=body.action, dry_run=True, matched=matched, accepted=[], refused=[], next_cursor=None))
    jobs = await state.read_model.jobs(wanted, body.limit + 1)
    page, more = jobs[: body.limit], len(jobs) > body.limit
    commands: list[Command] = []
    refused: list[BulkRefusal] = []
    correlation = request.headers.get("x-correlation-id")
    for job in page:
        command = _command(body, job.job_id, tenant, correlation)
        rejection = refusal(command, job)
        if rejection is None:
            commands.append(command)
        else:
            refused.append(BulkRefusal(id=job.job_id, code=rejection.code, detail=rejection.detail))
    accepted = await _append(state, commands)
    return answer(
        BulkResult(
            action=body.action,
            dry_run=False,
            matched=matched,
            accepted=accepted,
            refused=refused,
            next_cursor=encode_cursor(page[-1]) if more else None,
        )
    )


async def _read_models_caught_up(state: Ingest) -> None:
    """Wait until the read models hold every job accepted before this request
    (the projector holds a new job back for a moment, JOBLEDGER_HOLD_NEW_MS): a
    script that submits, then cancels by label, cancels them all. Up to
    ``bulk_catch_up_s``; then it goes on with what they hold."""
    timeout_s = state.settings.bulk_catch_up_s
    if not timeout_s:
        return
    groups = state.settings.consumer_groups
    stages = [
        (groups.get(name, group), GROUP_TOPICS[group])
        for name, group in (("decider", DECIDER_GROUP), ("projector", PROJECTOR_GROUP))
    ]
    try:
        if await caught_up(state.settings, stages, timeout_s):
            return
        reason = f"not caught up after {timeout_s:g} s"
    except Exception as error:  # the append that follows answers 503 if the broker is gone
        reason = f"{type(error).__name__}: {error}"
    log.warning("bulk action on read models that may lag the log", reason=reason)


def _filter(body: BulkRequest, tenant: str) -> JobFilter:
    allowed = BULK_STATES[body.action]
    given = body.filter
    if given.state is not None and given.state not in allowed:
        names = ", ".join(sorted(allowed))
        raise invalid([field_error(("filter", "state"), f"{body.action.value} takes jobs in {names}")])
    for key in given.labels:
        problem = label_key_problem(key)
        if problem is not None:
            raise invalid([field_error(("filter", "labels", key), problem)])
    return JobFilter(
        tenant=tenant,
        statuses=frozenset({given.state}) if given.state is not None else allowed,
        job_type=given.type,
        labels=given.labels,
        created_after=given.created_after,
        created_before=given.created_before,
        after=decode_cursor(body.cursor, ("cursor",)) if body.cursor is not None else None,
    )


def _command(body: BulkRequest, job_id: str, tenant: str, correlation: str | None) -> Command:
    common = dict(
        command_id=str(uuid.uuid4()),
        job_id=job_id,
        tenant=tenant,
        issued_at=datetime.now(timezone.utc),
        correlation_id=correlation,
    )
    if body.action is BulkAction.CANCEL:
        return CancelJob(**common, reason=body.reason, grace_s=body.grace_s)
    return RetryJob(**common)


async def _append(state: Ingest, commands: list[Command]) -> list[str]:
    """Append every command with one call and one deadline, as a batch submit does
    (``RdProducer.send_many``); a 503 naming the ones acknowledged if any is not."""
    deliveries = await state.producer.send_many(
        topics.COMMANDS, [(command.job_id.encode(), encode_command(command)) for command in commands]
    )
    await asyncio.wait([deliveries.done], timeout=state.settings.produce_timeout_s)
    accepted = [command.job_id for position, command in enumerate(commands) if deliveries.acknowledged(position)]
    if len(accepted) < len(commands):
        raise Problem(
            503,
            ProblemCode.BROKER_UNAVAILABLE,
            "The log did not acknowledge every command",
            f"{len(accepted)} of {len(commands)} were accepted; send the same request again for the rest.",
            accepted=accepted,
        )
    return accepted
