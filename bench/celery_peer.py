"""The peer jobledger is measured against: Celery with Redis, as its users run it.

Redis (from Debian's ``redis-server`` package) keeps an append-only file synced
every second (``appendfsync everysec``, its durable default), and is both
Celery's broker and its result backend; one Celery worker with its default
prefork pool runs a ``noop`` task. ``make bench-peers`` installs both and
drives them with the same client as jobledger (:mod:`bench.client`).

This module is also the worker's app: ``celery -A bench.celery_peer worker``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from celery import Celery

from bench.client import WAIT_S, ClientSystem
from services.embedded.stack import free_port, signal_group

REDIS_URL_ENV = "JOBLEDGER_PEER_REDIS_URL"

app = Celery("peer")
app.conf.update(
    broker_url=os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379/0"),
    result_backend=os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379/0"),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop() -> None:
    return None


def celery_client(url: str) -> ClientSystem:
    """Celery's client on the Redis at ``url`` (also the factory of each client process)."""
    app.conf.broker_url = app.conf.result_backend = url
    return ClientSystem("celery", submit=noop.delay, wait=lambda result: result.get(timeout=WAIT_S), close=lambda: None)


class CeleryPeer:
    """Redis and one Celery worker on loopback for as long as the ``with`` lasts."""

    def __enter__(self) -> ClientSystem:
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise SystemExit("redis-server is missing: `make bench-peers` installs it (apt-get install redis-server)")
        self.dir = Path(tempfile.mkdtemp(prefix="jobledger-peer-"))
        port = free_port()
        url = f"redis://127.0.0.1:{port}/0"
        self.processes: list[subprocess.Popen] = []
        log = open(self.dir / "redis.log", "ab")
        self.processes.append(
            subprocess.Popen(
                [
                    redis_server,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--dir",
                    str(self.dir),
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "everysec",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        worker_log = open(self.dir / "worker.log", "ab")
        self.processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "bench.celery_peer",
                    "worker",
                    "--loglevel=WARNING",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                env={**os.environ, REDIS_URL_ENV: url},
                stdout=worker_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        app.conf.broker_url = app.conf.result_backend = url
        deadline = time.monotonic() + 60
        while True:  # ready once a task makes the round trip
            try:
                noop.delay().get(timeout=2)
                break
            except Exception:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise TimeoutError(f"the Celery worker did not answer; see {self.dir}") from None
        self.url = url
        return celery_client(url)

    @property
    def sessions(self) -> dict[str, int]:
        """Its processes for the CPU meter: each leads a session of its own (the worker's pool included)."""
        return {"redis": self.processes[0].pid, "worker": self.processes[1].pid}

    def __exit__(self, *exc) -> None:
        for process in reversed(self.processes):  # the worker (and its pool) first, then Redis
            signal_group(process, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                pass
            signal_group(process, signal.SIGKILL)
            process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
