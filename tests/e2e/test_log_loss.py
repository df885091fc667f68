"""A lost log is reported loudly, not silently started again from zero.

Its own small stack: the broker's log in memory, the read models on disk, so
restarting the broker loses the log while the read models remain.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from services.common.kafka import ensure_topics, wait_for_broker
from services.embedded.stack import EmbeddedStack, StackSettings
from services.ingest.settings import DEV_API_KEY
from tests.e2e.conftest import wait_for_job

pytestmark = pytest.mark.e2e


async def test_the_projector_stops_with_a_clear_error_when_the_log_was_lost(tmp_path):
    stack = EmbeddedStack(
        StackSettings(
            data_dir=tmp_path, broker_port=0, mongo_port=0, s3_port=0, api_port=0,
            broker_storage="memory", mongo_storage="disk", partitions=1,
        )
    )
    await stack.start()
    try:
        async with httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {DEV_API_KEY}"}) as api:
            job_id = (await api.post("/jobs", json={"type": "noop"})).json()["id"]
            await wait_for_job(api, job_id)
        for name in ("ingest", "processor", "projector"):
            stack.stop_service(name)

        stack.restart("broker")  # in memory: the log is gone, the read models are not
        await wait_for_broker(stack.settings)
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
