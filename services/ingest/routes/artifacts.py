"""Artifacts: a job's (or a step's) result too large for the log, streamed back
from the S3 store to the job's own tenant."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from schemas import Job
from schemas.artifacts import COMPENSATION_SUFFIX, RESULT, ArtifactRef
from schemas.errors import ProblemCode
from services.adapters.artifacts import ArtifactMissing, ArtifactStore
from services.ingest.auth import reader
from services.ingest.bodies import ContractRoute
from services.ingest.bootstrap import Ingest, IngestDep
from services.ingest.problems import PROBLEM_RESPONSE, PROBLEMS, Problem
from services.ingest.store import job_or_404

router = APIRouter(route_class=ContractRoute, tags=["jobs"])


@router.get(
    "/jobs/{job_id}/artifacts/{name}",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/json": {}},
            "description": "the stored bytes; `Repr-Digest` carries their sha256, as the event recorded it",
        },
        **PROBLEMS,
        404: PROBLEM_RESPONSE,
        503: PROBLEM_RESPONSE,
    },
    summary="Download an artifact: a result too large for the log",
    description="`name` is a pipeline step's name (`<step>:compensation` for its compensation's result), or "
    "`result` for a job's own result. The job must be "
    "one of the caller's tenant (else 404, as for a job that does not exist).",
)
async def get_artifact(job_id: str, name: str, state: IngestDep, tenant: str = Depends(reader)) -> StreamingResponse:
    job = await job_or_404(state, job_id, tenant)
    ref = _artifact_of(job, name)
    store = artifact_store(state)
    try:
        chunks = await store.stream(ref)
    except ArtifactMissing as missing:
        raise Problem(404, ProblemCode.ARTIFACT_NOT_FOUND, "No such artifact", str(missing), job_id=job_id) from None
    except Exception as error:  # the store is down or refuses us
        raise store_unavailable(error) from None
    digest = base64.b64encode(bytes.fromhex(ref.sha256)).decode()
    headers = {"Content-Length": str(ref.size), "Repr-Digest": f"sha-256=:{digest}:", "ETag": f'"{ref.sha256}"'}
    return StreamingResponse(chunks, media_type=ref.content_type, headers=headers)


def _artifact_of(job: Job, name: str) -> ArtifactRef:
    if name == RESULT and not job.is_pipeline:
        ref = job.artifact
    elif name.endswith(COMPENSATION_SUFFIX):
        step = job.step(name.removesuffix(COMPENSATION_SUFFIX))
        ref = step.compensation_artifact if step is not None else None
    else:
        step = job.step(name)
        ref = step.artifact if step is not None else None
    if ref is None:
        raise Problem(
            404,
            ProblemCode.ARTIFACT_NOT_FOUND,
            "No such artifact",
            f"Job {job.job_id} has no artifact {name!r} (a result is stored as one only when it is large).",
            job_id=job.job_id,
        )
    return ref


def artifact_store(state: Ingest) -> ArtifactStore:
    """This ingest's artifact store, or a 503 problem when it has none."""
    if state.artifacts is None:
        raise Problem(
            503,
            ProblemCode.ARTIFACT_STORE_UNAVAILABLE,
            "No artifact store",
            "This ingest has no artifact store configured (JOBLEDGER_S3_ENDPOINT).",
        )
    return state.artifacts


def store_unavailable(error: Exception) -> Problem:
    """The 503 problem of a store that is down or refuses us."""
    return Problem(503, ProblemCode.ARTIFACT_STORE_UNAVAILABLE, "The artifact store did not answer", repr(error))
