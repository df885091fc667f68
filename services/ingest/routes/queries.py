"""Reading jobs: one job (now, at a past moment, or once it changes), its events, lists, counts."""

from __future__ import annotations

import base64
import re
from datetime import datetime
from pathlib import Path

import orjson
from fastapi import APIRouter, Depends, Query, Response
from pydantic import TypeAdapter

from schemas import (
    Job,
    JobStatus,
    Priority,
    fold,
    parse_event,
)
from schemas.api import (
    JobList,
    JobView,
    StatusView,
)
from schemas.errors import ProblemCode
from schemas.values import INT64_MAX, Moment, label_key_problem
from services.adapters.readmodel import JobFilter
from services.ingest import store
from services.ingest.auth import reader
from services.ingest.bodies import ContractRoute
from services.ingest.bootstrap import Ingest, IngestDep
from services.ingest.lag import consumer_lag
from services.ingest.problems import PROBLEM_RESPONSE, PROBLEMS, Problem, field_error, invalid
from services.ingest.responses import answer
from services.ingest.store import job_or_404

router = APIRouter(route_class=ContractRoute, tags=["jobs"])

MAX_WAIT_S = 60.0


@router.get(
    "/jobs/{job_id}",
    response_model=JobView,
    responses={**PROBLEMS, 404: PROBLEM_RESPONSE},
    summary="Get a job (optionally as it was at a past moment)",
)
async def get_job(
    job_id: str,
    state: IngestDep,
    tenant: str = Depends(reader),
    as_of: Moment | None = Query(None, description="the job as it was at this time: its events up to then, folded"),
    wait_s: float | None = Query(
        None,
        ge=0,
        le=MAX_WAIT_S,
        description="hold the answer up to this many seconds until the job has ended (or, with after_version, "
        "until its version is past that), then answer the job as it is; a long poll that hears of changes at once",
    ),
    after_version: int | None = Query(None, ge=0, le=INT64_MAX, description="with wait_s: wait for a version past this one"),
) -> Response:
    if as_of is None:
        return answer(JobView.of(await current_job(state, job_id, tenant, wait_s, after_version)))
    if wait_s is not None or after_version is not None:
        raise invalid(
            [field_error(("query", "wait_s"), "as_of reads the past: it cannot be combined with wait_s or after_version")]
        )
    job = fold([parse_event(recorded) for recorded in await store.history(state, job_id, tenant, up_to_time=as_of)])
    if job is None:
        raise Problem(404, ProblemCode.JOB_NOT_FOUND, "No such job then", f"Job {job_id!r} did not exist at {as_of.isoformat()}.")
    return answer(JobView.of(job))


async def current_job(state: Ingest, job_id: str, tenant: str, wait_s: float | None, after_version: int | None) -> Job:
    """The job now; with ``wait_s``, once it has ended (or its version is past
    ``after_version``), or as it is when the wait runs out."""
    job = await job_or_404(state, job_id, tenant)
    done = (lambda j: j.version > after_version) if after_version is not None else (lambda j: j.status.terminal)
    if wait_s and not done(job):
        job = await state.watch.until(job_id, lambda tail_first: job_or_404(state, job_id, tenant, tail_first), done, wait_s)
    return job


@router.get(
    "/jobs/{job_id}/events",
    responses={**PROBLEMS, 404: PROBLEM_RESPONSE},
    summary="A job's history: its events in seq order, as CloudEvents",
)
async def job_events(
    job_id: str,
    state: IngestDep,
    tenant: str = Depends(reader),
    until: str | None = Query(None, description="only events up to this seq (an integer) or time (ISO 8601, with a zone)"),
) -> dict:
    bounds = _until(until) if until is not None else {}
    return {"items": await store.history(state, job_id, tenant, **bounds)}


@router.get(
    "/jobs",
    response_model=JobList,
    responses=PROBLEMS,
    summary="List jobs, newest first",
    description="From the read models, with the jobs this ingest accepted in the last 10 s as the log has them now: "
    "a job is listed as soon as its submit was answered, in its current state. Through another ingest replica, a new "
    "job that has not ended may show up to JOBLEDGER_HOLD_NEW_MS later (the projector holds its document back).",
)
async def list_jobs(
    ingest: IngestDep,
    tenant: str = Depends(reader),
    limit: int = Query(50, ge=1, le=1000, description="how many jobs to return"),
    state: JobStatus | None = Query(None, description="only jobs in this state"),
    type: str | None = Query(None, description="only jobs of this type"),
    priority: Priority | None = Query(None, description="only jobs of this priority"),
    label: list[str] = Query([], description="only jobs with this label, as key:value (repeat to require several)"),
    created_after: Moment | None = Query(None, description="only jobs created at or after this time (with a zone)"),
    created_before: Moment | None = Query(None, description="only jobs created before this time (with a zone)"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    id_prefix: str | None = Query(
        None, min_length=1, max_length=64, description="only jobs whose id starts with this (a short id, as the CLI takes it)"
    ),
) -> JobList:
    labels = {}
    for index, item in enumerate(label):
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise invalid([field_error(("query", "label", index), "a label filter is key:value")])
        problem = label_key_problem(key)
        if problem is not None:
            raise invalid([field_error(("query", "label", index), problem)])
        labels[key] = value
    wanted = JobFilter(
        tenant=tenant,
        status=state,
        job_type=type,
        priority=priority,
        labels=labels,
        created_after=created_after,
        created_before=created_before,
        after=decode_cursor(cursor) if cursor is not None else None,
        id_prefix=id_prefix,
    )
    jobs = await store.list_jobs(ingest, wanted, limit + 1)
    next_cursor = encode_cursor(jobs[limit - 1]) if len(jobs) > limit else None
    return JobList(items=[JobView.of(job) for job in jobs[:limit]], next_cursor=next_cursor)


@router.get("/status", response_model=StatusView, responses=PROBLEMS, summary="Jobs per state and consumer lag")
async def status(state: IngestDep, tenant: str = Depends(reader)) -> StatusView:
    counts = await state.read_model.count_by_status(tenant)
    lag = await state.lag.get() if state.lag is not None else await consumer_lag(state.settings)
    return StatusView(jobs=counts, lag=lag, restarts=_restarts(state.settings.supervisor_file))


def _restarts(path: Path | None) -> dict[str, int] | None:
    """What ``make run``'s supervisor counted (services.embedded.supervisor), if this ingest runs under one."""
    try:
        return orjson.loads(path.read_bytes())["restarts"] if path is not None else None
    except (OSError, ValueError, KeyError, TypeError):  # not written yet, or being written
        return None


_SEQ = re.compile(r"[0-9]{1,19}")
_MOMENT: TypeAdapter[datetime] = TypeAdapter(Moment)


def _until(until: str) -> dict:
    """``?until=``: a seq (a non-negative 64-bit integer) or a time with a zone,
    as the bound of :meth:`ReadModel.job_events` it sets."""
    if _SEQ.fullmatch(until) and int(until) <= INT64_MAX:
        return {"up_to_seq": int(until)}
    try:  # ISO 8601 only: pydantic would also read "-1" as a Unix time
        return {"up_to_time": _MOMENT.validate_python(datetime.fromisoformat(until))}
    except ValueError:  # ValidationError is one
        message = "a seq (an integer from 0 to 2**63-1) or an ISO 8601 time with a zone, e.g. 2026-01-01T00:00:00Z"
        raise invalid([field_error(("query", "until"), message)]) from None


def encode_cursor(job: Job) -> str:
    raw = orjson.dumps([job.created_at.isoformat(), job.job_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, field: tuple[str, ...] = ("query", "cursor")) -> tuple[datetime, str]:
    """``(created_at, job id)`` of the last job of a page of ``GET /jobs`` (or of a bulk action)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, job_id = orjson.loads(raw)
        if not (isinstance(at, str) and isinstance(job_id, str)):
            raise ValueError("a cursor is [created_at, job id]")
        return _MOMENT.validate_python(at), job_id
    except (ValueError, TypeError):
        raise invalid([field_error(field, "not a cursor from a previous page")]) from None
