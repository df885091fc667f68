"""``GET /workers``: the runners alive now (folded from ``jobs.workers``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from schemas.api import WorkerList, WorkerView
from services.ingest.auth import admin
from services.ingest.bodies import ContractRoute
from services.ingest.bootstrap import IngestDep
from services.ingest.problems import AUTHENTICATED
from services.ingest.responses import answer

router = APIRouter(tags=["operations"], route_class=ContractRoute)


@router.get(
    "/workers",
    response_model=WorkerList,
    responses=AUTHENTICATED,
    summary="The runners alive now (admin)",
    description="Each runner beats on jobs.workers every JOBLEDGER_WORKER_BEAT_S (5 s): host, pid, concurrency, "
    "attempts running, job types. One that stops cleanly leaves at once; one that dies leaves after three missed "
    "beats (its attempts' leases run out and they are retried). Runners serve every tenant, so this needs `admin`.",
)
async def list_workers(state: IngestDep, tenant: str = Depends(admin)) -> Response:
    workers = [WorkerView.of(beat) for beat in state.workers.live()]
    return answer(
        WorkerList(
            items=workers,
            concurrency=sum(worker.concurrency for worker in workers),
            running=sum(worker.running for worker in workers),
        )
    )
