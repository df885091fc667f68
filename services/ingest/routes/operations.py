"""Liveness and readiness, for orchestrators."""

from __future__ import annotations

import asyncio
import os

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.errors import ProblemCode
from services.ingest.bodies import ContractRoute
from services.ingest.bootstrap import IngestDep
from services.ingest.problems import PROBLEM_RESPONSE, Problem

router = APIRouter(route_class=ContractRoute)


@router.get("/healthz", summary="The process is alive", tags=["operations"])
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Broker and database answer", tags=["operations"], responses={503: PROBLEM_RESPONSE})
async def readyz(state: IngestDep) -> dict:
    checks = {}
    try:
        await state.producer.ready(timeout_s=3)
        checks["broker"] = "ok"
    except Exception as error:
        checks["broker"] = f"unavailable: {type(error).__name__}"
    try:
        await asyncio.wait_for(state.read_model.ping(), 3)
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = f"unavailable: {type(error).__name__}"
    if any(value != "ok" for value in checks.values()):
        raise Problem(503, ProblemCode.NOT_READY, "Not ready", "A dependency does not answer.", checks=checks)
    return {"status": "ready", "checks": checks, "pid": os.getpid()}  # (which process answered, behind a shared port)


@router.get(
    "/metrics",
    summary="Prometheus metrics of this ingest process",
    tags=["operations"],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "the Prometheus text format"}},
    description="HTTP requests by route and status, and every consumer group's lag per partition (measured at the "
    "scrape, reused for a second). Takes no key, like any exporter: it names tenants and job types, so keep it off "
    "the public network. The processor and the projector serve theirs on JOBLEDGER_METRICS_PORT; "
    "docs/operations.md lists every metric.",
)
async def metrics(state: IngestDep) -> Response:
    if state.lag is not None:
        await state.lag.export()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
