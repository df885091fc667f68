"""``GET /workers``: runners announce themselves on jobs.workers; killed ones drop out."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from tests.conftest import READ_KEY

pytestmark = pytest.mark.e2e

WAIT_S = 30.0


async def live_until(api, condition) -> dict:
    """``GET /workers`` once ``condition(body)`` holds."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        response = await api.get("/workers")
        assert response.status_code == 200, response.text
        body = response.json()
        if condition(body):
            return body
        assert asyncio.get_running_loop().time() < deadline, f"/workers never matched: {body}"
        await asyncio.sleep(0.2)


def runner_ids(body: dict) -> set[str]:
    return {worker["runner_id"] for worker in body["items"]}


async def test_the_processors_runner_is_listed_with_its_capacity_and_job_types(api, stack):
    processor = f"{socket.gethostname()}:{stack.processes['processor'].pid}"

    body = await live_until(api, lambda body: processor in runner_ids(body))

    mine = next(worker for worker in body["items"] if worker["runner_id"] == processor)
    assert mine["pid"] == stack.processes["processor"].pid and mine["concurrency"] >= 1
    assert {"noop", "sleep", "service"} <= set(mine["job_types"])
    assert body["concurrency"] >= mine["concurrency"] and 0 <= mine["running"] <= mine["concurrency"]


async def test_a_killed_runner_leaves_the_list_and_a_stopped_one_too(api, stack):
    stack.start_runner("runner-killed")
    stack.start_runner("runner-stopped")
    killed = f"{socket.gethostname()}:{stack.processes['runner-killed'].pid}"
    stopped = f"{socket.gethostname()}:{stack.processes['runner-stopped'].pid}"
    try:
        await live_until(api, lambda body: {killed, stopped} <= runner_ids(body))

        stack.kill("runner-killed")  # no last word: it drops out after three missed beats
        stack.stop_service("runner-stopped")  # says so on its way out

        after = await live_until(api, lambda body: not {killed, stopped} & runner_ids(body))
    finally:
        for name in ("runner-killed", "runner-stopped"):
            if name in stack.processes:
                stack.stop_service(name)
    assert f"{socket.gethostname()}:{stack.processes['processor'].pid}" in runner_ids(after)


async def test_workers_need_an_admin_key(stack):
    async with httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {READ_KEY}"}) as reader:
        refused = await reader.get("/workers")
    assert refused.status_code == 403 and refused.json()["scope"] == "admin"
