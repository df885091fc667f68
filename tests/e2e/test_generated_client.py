"""A third party's client, generated from docs/openapi.json with a standard
generator (openapi-python-client), drives one job through the API: proof that
the API needs no SDK of ours."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.api import DEV_API_KEY
from services.ingest.openapi import PATH

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    where = tmp_path_factory.mktemp("generated")
    generator = Path(sys.executable).parent / "openapi-python-client"
    subprocess.run(
        [str(generator), "generate", "--path", str(PATH), "--meta", "none", "--output-path", str(where / "jobledger_api")],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module("jobledger_api")
    finally:
        sys.path.remove(str(where))


async def test_a_generated_client_submits_a_job_and_follows_it_to_success(generated, stack):
    from jobledger_api.api.jobs import get_job_jobs_job_id_get, submit_job_jobs_post
    from jobledger_api.models import ProblemDocument, SubmitJobRequest

    async with generated.AuthenticatedClient(base_url=stack.api_url, token=DEV_API_KEY) as client:
        accepted = await submit_job_jobs_post.asyncio(
            client=client, body=SubmitJobRequest.from_dict({"type": "sleep", "payload": {"seconds": 0.2}})
        )
        refused = await submit_job_jobs_post.asyncio(
            client=client, body=SubmitJobRequest.from_dict({"type": "sleep", "payload": {"seconds": -1}})
        )
        job = await get_job_jobs_job_id_get.asyncio(client=client, job_id=accepted.id)
        while job.state.value not in ("SUCCEEDED", "FAILED"):
            job = await get_job_jobs_job_id_get.asyncio(client=client, job_id=accepted.id, wait_s=10, after_version=job.version)

    assert job.state.value == "SUCCEEDED" and job.result == {"slept": 0.2}
    assert isinstance(refused, ProblemDocument) and refused.status == 422
    assert [error.field for error in refused.errors] == ["payload.seconds"]
