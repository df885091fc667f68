"""``POST /uploads``: a file stored in the artifact store, for a job to send (a service call's ``files``)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Request, Response

from schemas.api import UploadView
from schemas.artifacts import UPLOAD_PREFIX
from services.ingest.auth import writer
from services.ingest.bootstrap import IngestDep
from services.ingest.problems import AUTHENTICATED, PROBLEM_RESPONSE
from services.ingest.responses import answer
from services.ingest.routes.artifacts import artifact_store, store_unavailable

router = APIRouter(tags=["services"])


@router.post(
    "/uploads",
    status_code=201,
    response_model=UploadView,
    responses={**AUTHENTICATED, 413: PROBLEM_RESPONSE, 503: PROBLEM_RESPONSE},
    summary="Upload a file that a job sends",
    description="The request body is the file, its `Content-Type` the file's. It is stored in the artifact store "
    "with its sha256 (up to `JOBLEDGER_MAX_UPLOAD_BYTES`, else 413) and named by the answer's `ref` "
    "(`upload:<id>`) in a service call's `files`.",
)
async def upload_file(
    request: Request,
    state: IngestDep,
    tenant: str = Depends(writer),
    filename: str = Query("upload", min_length=1, max_length=255, description="the name the file is sent with"),
) -> Response:
    store = artifact_store(state)
    data = bytearray()
    async for chunk in request.stream():  # (the body limit of /uploads is JOBLEDGER_MAX_UPLOAD_BYTES)
        data += chunk
    upload_id = str(uuid.uuid4())
    content_type = request.headers.get("content-type") or "application/octet-stream"
    try:
        stored = await store.put_upload(
            bytes(data), tenant=tenant, upload_id=upload_id, filename=filename, content_type=content_type
        )
    except Exception as error:  # the store is down or refuses us
        raise store_unavailable(error) from None
    view = UploadView(
        id=upload_id,
        ref=UPLOAD_PREFIX + upload_id,
        filename=filename,
        content_type=content_type,
        size=stored.size,
        sha256=stored.sha256,
    )
    return answer(view, 201)
