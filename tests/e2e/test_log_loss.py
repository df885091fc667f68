"""A lost log is reported loudly, not silently started again from zero.

Its own small stack: after a job, the broker's log directory is wiped and
the broker starts on a new, empty cluster, while the read models remain.
"""

from __future__ import annotations

import asyncio
import shutil
import time

import httpx
import pytest

from services.adapters.broker import ensure_topics
from services.embedded.stack import EmbeddedStack
from services.ingest.settings import DEV_API_KEY
from tests.e2e.conftest import stack_settings, wait_for_job

pytestmark = pytest.mark.e2e


async def test_the_projector_stops_with_a_clear_error_when_the_log_was_lost(tmp_path):
    stack = EmbeddedStack(stack_settings(tmp_path, mongo_storage="disk", partitions=1))
    await stack.start()
    try:
        async with httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {DEV_API_KEY}"}) as api:
            job_id = (await api.post("/jobs", json={"type": "noop"})).json()["id"]
            await wait_for_job(api, job_id)
        for name in ("ingest", "processor", "projector"):
            stack.stop_service(name)

        stack.stop_service("broker")
        shutil.rmtree(stack.settings.broker_dir)  # the log is gone, the read models are not
        stack.start_broker()
        await stack.wait_for_broker()
        await ensure_topics(stack.settings)
        stack.restart("projector")

        projector = stack.processes["projector"]
        deadline = time.monotonic() + 90
        while projector.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert projector.returncode == 3
        output = (stack.logs / "projector.log").read_text()
        assert "jobs log lost" in output and "log ends at 0" in output
    finally:
        await asyncio.to_thread(stack.stop)
