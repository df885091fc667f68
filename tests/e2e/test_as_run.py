"""The stack exactly as ``make run`` starts it (``jobledger up``: the database
on disk, the default partitions, leases and intervals), only on free ports and
in a directory of its own, with a user's job types loaded by configuration.
It is stopped and started again in place, as a user would."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from services.embedded.stack import REPO
from services.ingest.settings import DEV_API_KEY

pytestmark = pytest.mark.e2e

START_TIMEOUT_S = 180

USER_TYPES = """
from pydantic import BaseModel, Field
from schemas.jobtypes import job_type

class Greeting(BaseModel):
    name: str = Field(min_length=1)

GREET = job_type("greet", payload=Greeting, defaults={"max_attempts": 5, "timeout_s": 30})
"""

USER_HANDLERS = """
from userjobs.types import GREET, Greeting
from services.processor.handlers import JobContext, handler

@handler(GREET)
async def greet(ctx: JobContext, payload: Greeting) -> dict:
    await ctx.progress(50, "thinking")
    return {"greeting": f"hello {payload.name}", "attempt": ctx.attempt}
"""


class RunningStack:
    """``python -m services.cli up`` in a subprocess, read from its own output."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.process: subprocess.Popen | None = None
        self.api_url = ""
        self.first_start: list[str] = []
        """What the first start printed until it was up."""

    def start(self) -> None:
        env = {
            **{key: value for key, value in os.environ.items() if not key.startswith("JOBLEDGER_")},
            "PYTHONPATH": os.pathsep.join([str(self.home / "code"), str(REPO)]),
            "JOBLEDGER_BROKER_PORT": "0",
            "JOBLEDGER_CONTROLLER_PORT": "0",
            "JOBLEDGER_MONGO_PORT": "0",
            "JOBLEDGER_PROCESSOR_METRICS_PORT": "0",
            "JOBLEDGER_PROJECTOR_METRICS_PORT": "0",
            "JOBLEDGER_JOB_TYPE_MODULES": '["schemas.builtin", "userjobs.types"]',
            "JOBLEDGER_HANDLER_MODULES": '["services.processor.builtin", "userjobs.handlers"]',
        }
        argv = [sys.executable, "-m", "services.cli", "up", "--data-dir", str(self.home / "var"), "--api-port", "0"]
        self.process = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        seen = []
        for line in self.process.stderr:
            seen.append(line)
            found = re.search(r"API\s+(http://\S+)", line)
            if found:
                self.api_url = found.group(1)
                self.first_start = self.first_start or seen
                threading.Thread(target=self._keep_reading, daemon=True).start()  # a full pipe would block the services
                return
            assert time.monotonic() < deadline, "jobledger up did not come up:\n" + "".join(seen)
        raise AssertionError("jobledger up exited:\n" + "".join(seen))

    def _keep_reading(self) -> None:
        with (self.home / "up.log").open("a") as log:
            for line in self.process.stderr:
                log.write(line)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # as Ctrl-C
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.api_url, headers={"Authorization": f"Bearer {DEV_API_KEY}"}, timeout=30)


@pytest.fixture(scope="module")
def as_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("as-run")
    package = home / "code" / "userjobs"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "types.py").write_text(textwrap.dedent(USER_TYPES))
    (package / "handlers.py").write_text(textwrap.dedent(USER_HANDLERS))
    stack = RunningStack(home)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


async def finished(client: httpx.AsyncClient, job_id: str) -> dict:
    job = (await client.get(f"/jobs/{job_id}")).json()
    while job["state"] not in ("SUCCEEDED", "FAILED", "CANCELLED", "REJECTED"):
        job = (await client.get(f"/jobs/{job_id}", params={"wait_s": 10, "after_version": job["version"]})).json()
    return job


@pytest.mark.timeout(400)
async def test_a_user_job_type_is_validated_by_ingest_and_run_by_the_processor(as_run):
    async with as_run.client() as client:
        submitted = await client.post("/jobs", json={"type": "greet", "payload": {"name": "Ada"}})
        refused = await client.post("/jobs", json={"type": "greet", "payload": {"name": ""}})
        job = await finished(client, submitted.json()["id"])

    assert submitted.status_code == 202, submitted.text
    assert refused.status_code == 422 and [e["field"] for e in refused.json()["errors"]] == ["payload.name"]
    assert job["state"] == "SUCCEEDED" and job["result"] == {"greeting": "hello Ada", "attempt": 1}
    assert (job["max_attempts"], job["timeout_s"]) == (5, 30), "the type's defaults"


def child(parent: int, module: str) -> int:
    """The pid of ``parent``'s child process running ``python -m <module>``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(re.search(r"^PPid:\s+(\d+)", status, re.M).group(1))
        if ppid == parent and module.encode() in argv:
            return int(entry.name)
    raise AssertionError(f"no {module} under {parent}")


@pytest.mark.timeout(400)
async def test_a_killed_service_is_started_again_and_a_job_in_flight_still_succeeds(as_run):
    async with as_run.client() as client:
        # In flight and due in 2 s: the restarted decider restores it and runs it (a running attempt would
        # wait out make run's 30 s lease first).
        due = (datetime.now(timezone.utc) + timedelta(seconds=2)).isoformat()
        in_flight = (await client.post("/jobs", json={"type": "noop", "run_at": due})).json()["id"]
        os.kill(child(as_run.process.pid, "services.processor"), signal.SIGKILL)
        job = await finished(client, in_flight)
        fresh = await finished(client, (await client.post("/jobs", json={"type": "noop"})).json()["id"])
        status = (await client.get("/status")).json()

    assert job["state"] == "SUCCEEDED" and fresh["state"] == "SUCCEEDED"
    assert status["restarts"]["processor"] >= 1
    assert as_run.process.poll() is None, "the stack goes on"


OTHER_FORMATS = re.compile(r"^(\[\d{4}-|(DEBUG|INFO|WARNING|ERROR|CRITICAL):)")
"""How mode's worker, uvicorn and the standard library would print, were they not routed through structlog."""


def test_a_clean_first_start_logs_no_warning_and_every_line_in_one_format(as_run):
    said = "".join(as_run.first_start)

    assert "jobledger is up" in said
    assert not re.search(r"\[(warning|error|critical)", said), said
    assert not [line for line in as_run.first_start if OTHER_FORMATS.match(line)], said


@pytest.mark.timeout(400)
async def test_jobs_and_their_history_survive_a_stop_and_a_start_on_disk(as_run):
    async with as_run.client() as client:
        before = await finished(
            client, (await client.post("/jobs", json={"type": "sleep", "payload": {"seconds": 0.2}})).json()["id"]
        )
        events_before = (await client.get(f"/jobs/{before['id']}/events")).json()["items"]

    await asyncio.to_thread(as_run.stop)
    await asyncio.to_thread(as_run.start)

    async with as_run.client() as client:
        after = (await client.get(f"/jobs/{before['id']}")).json()
        events_after = (await client.get(f"/jobs/{before['id']}/events")).json()["items"]
        fresh = await finished(client, (await client.post("/jobs", json={"type": "noop"})).json()["id"])

    assert before["state"] == "SUCCEEDED" and after == before
    assert events_after == events_before
    assert fresh["state"] == "SUCCEEDED"


@pytest.mark.timeout(200)
def test_a_second_stack_on_a_taken_port_refuses_in_one_line_per_port(as_run, tmp_path):
    port = as_run.api_url.rsplit(":", 1)[1]
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("JOBLEDGER_")},
        "JOBLEDGER_PORT": port,  # the documented name of the API's port, for make run as for ingest
        "JOBLEDGER_BROKER_PORT": "0",
        "JOBLEDGER_CONTROLLER_PORT": "0",
        "JOBLEDGER_MONGO_PORT": "0",
        "JOBLEDGER_S3_PORT": "0",
    }
    argv = [sys.executable, "-m", "services.cli", "up", "--data-dir", str(tmp_path / "var")]

    result = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=180)

    assert result.returncode == 1, result.stderr
    said = " ".join(result.stderr.split())
    assert f"port {port} (the HTTP API) is taken" in said and "set JOBLEDGER_PORT" in said, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "var" / "kafka").exists(), "nothing was started"
