"""``GET /jobs/{id}/stream``: a job's changes as server-sent events."""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter, Depends, Header
from sse_starlette import EventSourceResponse

from schemas import (
    TERMINAL,
    AnyEvent,
    Job,
    evolve,
    parse_event,
)
from schemas.values import INT64_MAX
from services.ingest.auth import reader
from services.ingest.bodies import ContractRoute
from services.ingest.bootstrap import Ingest, IngestDep
from services.ingest.problems import PROBLEM_RESPONSE, PROBLEMS
from services.ingest.store import job_or_404
from services.ingest.watch import GAP_RECHECK_S, Follower

router = APIRouter(route_class=ContractRoute, tags=["jobs"])

READY = "ready"
"""The tenant stream's first message: it listens from here on."""
MAX_PENDING_EVENTS = 10_000
"""A tenant stream whose client reads slower than the tenant's jobs change is
closed once this many events wait for it; the client reconnects and lists."""
KEEPALIVE_S = 15.0
"""A stream with nothing to say sends a comment this often, so proxies keep it open."""


@router.get(
    "/jobs:stream",
    responses={**PROBLEMS, 200: {"content": {"text/event-stream": {}}}},
    summary="Server-sent events: every change of every job of yours, live",
    description="First a `ready` message once the stream is listening; then one SSE message per event of "
    "any of the tenant's jobs (`event:` its type, `data:` the CloudEvent). Live only: to catch up, list "
    "`GET /jobs` after `ready`. A client too slow for the tenant's rate is disconnected.",
)
async def tenant_stream(state: IngestDep, tenant: str = Depends(reader)):
    async def messages():
        async with state.watch.follow_tenant(tenant, MAX_PENDING_EVENTS) as follower:
            yield {"event": READY, "data": "{}"}  # from here on nothing is missed: list GET /jobs now to catch up
            while not follower.overflowed:
                await follower.arrival(KEEPALIVE_S)
                for event in follower.take():
                    yield {"event": event.type, "data": orjson.dumps(event.recorded()).decode()}

    return EventSourceResponse(messages(), ping=KEEPALIVE_S)


@router.get(
    "/jobs/{job_id}/stream",
    responses={**PROBLEMS, 404: PROBLEM_RESPONSE, 200: {"content": {"text/event-stream": {}}}},
    summary="Server-sent events: each change of the job until it ends",
    description="One SSE message per job event (`event:` its type, `id:` its seq, `data:` the job's state, "
    "progress and the event). Closes after the job ends (SUCCEEDED, FAILED, CANCELLED or REJECTED). Send "
    "`Last-Event-ID` to resume after a seq.",
)
async def job_stream(
    job_id: str,
    state: IngestDep,
    tenant: str = Depends(reader),
    last_event_id: int = Header(0, ge=0, le=INT64_MAX, description="resume after this seq"),
):
    await job_or_404(state, job_id, tenant)

    async def messages():
        async with state.watch.follow(job_id) as follower:
            async for message in _stream_messages(state, job_id, tenant, last_event_id, follower):
                yield message

    return EventSourceResponse(messages(), ping=KEEPALIVE_S)


async def _stream_messages(state: Ingest, job_id: str, tenant: str, last_event_id: int, follower: Follower):
    """One message per event of the job, in seq order: first those the read model
    holds, then those the log's tail brings (the read model again after a gap)."""
    job: Job | None = None
    ahead: dict[int, AnyEvent] = {}
    look_in_store = True

    def version() -> int:
        return job.version if job is not None else 0

    while True:
        if look_in_store:
            async for recorded in state.read_model.job_events(job_id, tenant, after_seq=version()):
                event = parse_event(recorded)
                if event.seq != version() + 1:
                    break  # a gap: the projector has not written the missing one yet
                job = evolve(job, event)
                state.watch.served(job_id, job.version)
                if event.seq > last_event_id:
                    yield _message(job, event)
        for event in follower.take():
            if event.seq > version():
                ahead[event.seq] = event
        while version() + 1 in ahead:
            event = ahead.pop(version() + 1)
            job = evolve(job, event)
            if event.seq > last_event_id:
                yield _message(job, event)
        for seq in [seq for seq in ahead if seq <= version()]:
            del ahead[seq]
        if job is not None and job.status in TERMINAL:
            return
        if ahead:
            await asyncio.sleep(GAP_RECHECK_S)
            look_in_store = True
        else:
            look_in_store = not await follower.arrival(state.watch.poll_s)


def _message(job: Job, event: AnyEvent) -> dict:
    return {
        "id": str(event.seq),
        "event": event.type,
        "data": orjson.dumps(
            {"state": job.status, "progress": job.progress, "progress_message": job.progress_message, "event": event.recorded()}
        ).decode(),
    }
