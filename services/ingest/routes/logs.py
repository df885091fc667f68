"""A job's own log: what its handlers wrote with ``ctx.log`` (schemas.logs)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Header, Query, Response
from sse_starlette import EventSourceResponse

from schemas.api import JobLogList
from schemas.values import INT64_MAX
from services.adapters.job_logs import job_log_page
from services.ingest.auth import reader
from services.ingest.bodies import ContractRoute
from services.ingest.bootstrap import IngestDep
from services.ingest.problems import PROBLEM_RESPONSE, PROBLEMS, field_error, invalid
from services.ingest.responses import answer
from services.ingest.routes.stream import KEEPALIVE_S
from services.ingest.store import job_or_404

router = APIRouter(route_class=ContractRoute, tags=["jobs"])

PAGE = 100
MAX_PAGE = 1000
FOLLOW_POLL_S = 0.25
"""How often a follower reads the job's log from the read models."""
SETTLE_S = 2.0
"""After the job ended, how long a follower waits for its last lines (they travel apart from its events)."""


@router.get(
    "/jobs/{job_id}/logs",
    response_model=JobLogList,
    responses={**PROBLEMS, 404: PROBLEM_RESPONSE},
    summary="A page of the job's log",
    description="Lines its handlers wrote with `ctx.log`, oldest first, each with its level, message, fields, "
    "attempt (and step) and time. The read models keep a job's first JOBLEDGER_JOB_LOG_LINES (1,000); a last line "
    "says when more were dropped. Lines arrive a moment after they are written, apart from the job's events.",
)
async def job_logs(
    job_id: str,
    state: IngestDep,
    tenant: str = Depends(reader),
    cursor: str | None = Query(None, description="next_cursor of the page before"),
    limit: int = Query(PAGE, ge=1, le=MAX_PAGE),
) -> Response:
    after = _after(cursor)
    await job_or_404(state, job_id, tenant)
    lines = await job_log_page(state.read_model.db, job_id, tenant, after, limit)
    return answer(JobLogList(items=lines, next_cursor=str(lines[-1].index) if lines else cursor))


@router.get(
    "/jobs/{job_id}/logs/stream",
    responses={**PROBLEMS, 404: PROBLEM_RESPONSE, 200: {"content": {"text/event-stream": {}}}},
    summary="Server-sent events: the job's log lines as they come, until it ends",
    description="One `log` message per line (`id:` its index, `data:` the line), first those stored, then new ones; "
    "closes once the job has ended and its last lines are in. Send `Last-Event-ID` to resume after an index.",
)
async def job_log_stream(
    job_id: str,
    state: IngestDep,
    tenant: str = Depends(reader),
    last_event_id: int = Header(0, ge=0, le=INT64_MAX, description="resume after this index"),
):
    await job_or_404(state, job_id, tenant)
    loop = asyncio.get_running_loop()

    async def messages():
        after, ended_at = last_event_id, None
        while True:
            lines = await job_log_page(state.read_model.db, job_id, tenant, after, MAX_PAGE)
            for line in lines:
                yield {"event": "log", "id": str(line.index), "data": line.model_dump_json()}
            after = lines[-1].index if lines else after
            if lines:
                continue
            if ended_at is None and (await job_or_404(state, job_id, tenant)).status.terminal:
                ended_at = loop.time()
            if ended_at is not None and loop.time() - ended_at >= SETTLE_S:
                return
            await asyncio.sleep(FOLLOW_POLL_S)

    return EventSourceResponse(messages(), ping=KEEPALIVE_S)


def _after(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit() or int(cursor) > INT64_MAX:
        raise invalid([field_error(("query", "cursor"), "not a cursor of this job's log: pass next_cursor as it came")])
    return int(cursor)
