"""Liveness and readiness, for orchestrators."""

from __future__ import annotations

import asyncio
import hmac
import os

from fastapi import APIRouter, Depends, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.errors import ProblemCode
from services.ingest.auth import bearer
from services.ingest.bodies import ContractRoute
from services.ingest.bootstrap import IngestDep
from services.ingest.keys import digest, digest_of
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
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "the Prometheus text format"},
        401: PROBLEM_RESPONSE,
    },
    description="HTTP requests by route and status, and every consumer group's lag per partition (measured at the "
    "scrape, reused for a second). It names every tenant and job type: with JOBLEDGER_METRICS_TOKEN set it needs "
    "`Authorization: Bearer <that token>` (401 otherwise; an API key is not enough, the metrics span tenants); "
    "unset, it takes none, like any exporter. The processor and the projector serve theirs on "
    "JOBLEDGER_METRICS_PORT; docs/operations.md lists every metric.",
)
async def metrics(state: IngestDep, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Response:
    expected = state.settings.metrics_token
    if expected is not None and not _token_matches(expected, credentials.credentials if credentials else None):
        raise Problem(
            401,
            ProblemCode.UNAUTHORIZED,
            "The metrics token is required",
            "Send `Authorization: Bearer <JOBLEDGER_METRICS_TOKEN>`.",
            headers={"WWW-Authenticate": 'Bearer realm="jobledger-metrics"'},
        )
    if state.lag is not None:
        await state.lag.export()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _token_matches(expected: str, given: str | None) -> bool:
    """Whether ``given`` is the token ``expected`` names (in clear, or as ``sha256:<hex>``, as API keys are), in constant time."""
    return given is not None and hmac.compare_digest(digest_of(expected), digest(given.encode()))
