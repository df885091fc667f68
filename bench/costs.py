"""What a job costs the stack: CPU per process, broker requests, database operations.

Read before and after a run, divided by its jobs:

- **CPU** from ``/proc``: every process a stack starts runs in its own session,
  so a process and its children (a JVM's launcher, a Celery worker's pool) are
  the processes whose session id is the started process's pid. The client is
  this process itself (``os.times``: its own threads, not its children).
- **Broker requests** by type (Produce, Fetch, OffsetCommit, …): Kafka's own
  counters (``kafka.network:type=RequestMetrics,name=RequestsPerSec``), read
  over JMX by ``bench/java/KafkaRequests.java`` attached to the broker's pid.
- **Database operations** by type: the server's ``serverStatus`` opcounters.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pymongo import MongoClient

from services.adapters.broker import READ_MODEL_GROUPS, caught_up

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
CLIENT = "client"
KAFKA_REQUESTS = Path(__file__).parent / "java" / "KafkaRequests.java"
CLIENT_REQUESTS = ("Produce", "FetchConsumer", "OffsetCommit", "Heartbeat", "ListOffsets", "Metadata")
"""The request types a job's traffic causes (``Fetch`` also counts replicas' fetches)."""


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            text = file.read().decode()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces.
    return text[text.rindex(")") + 2 :].split()


def session_cpu_s(session: int) -> float:
    """CPU seconds (user + system) of every live process in ``session``, and
    of the children they have waited for."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(int(entry))
        # After the name: state(3) ppid pgrp session(6) … utime(14) stime cutime cstime(17)
        if fields is None or int(fields[3]) != session:
            continue
        total += sum(int(value) for value in fields[11:15])
    return total / TICKS_PER_S


def own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def _compiled_reader() -> Path:
    """The directory of ``KafkaRequests.class``, compiled once (a JVM that
    compiles the source on every read takes seconds of a busy machine)."""
    from services.embedded.jars import TOOLS, java

    classes = TOOLS / "bench-java"
    compiled = classes / "KafkaRequests.class"
    if not compiled.exists() or compiled.stat().st_mtime < KAFKA_REQUESTS.stat().st_mtime:
        javac = Path(java()).with_name("javac")
        subprocess.run([str(javac), "-d", str(classes), str(KAFKA_REQUESTS)], check=True, capture_output=True, timeout=120)
    return classes


def broker_requests(pid: int) -> dict[str, int]:
    """The broker's request counts by type since it started (``{}`` if they cannot be read)."""
    from services.embedded.jars import java

    try:
        classes = _compiled_reader()
        done = subprocess.run(
            [java(), "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-cp", str(classes), "KafkaRequests", str(pid)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}


def database_operations(mongo_url: str) -> dict[str, int]:
    """The database's operation counts by type since it started (``{}`` if it has none)."""
    with MongoClient(mongo_url, serverSelectionTimeoutMS=2000) as client:
        try:
            return {key: int(value) for key, value in client.admin.command("serverStatus").get("opcounters", {}).items()}
        except Exception:
            return {}


def read_models_caught_up(settings) -> Callable[[], None]:
    """A ``settle`` for jobledger: until the decider and the projector have
    committed past the log's end as it is (the projector holds a new job's
    document back, and its batches trail the runs' last jobs)."""

    def settle() -> None:
        if not asyncio.run(caught_up(settings, READ_MODEL_GROUPS.items(), timeout_s=120)):
            raise RuntimeError("the read models did not catch up with the log within 120 s")

    return settle


def _difference(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0) for name in after}


@dataclass
class CostMeter:
    """``start()``, the run, ``stop()``; then ``per_job(jobs)``.

    ``broker_pid`` and ``mongo_url`` are optional: a peer without them is
    measured by CPU alone. Several broker pids (a cluster's nodes): their
    requests are summed. ``settle``, if given, is called by ``stop()`` before
    it reads: it returns once the system has done what the run left it to do
    later (jobledger's projector writing the read models), so that work is
    counted too; what it costs this process is not."""

    sessions: Mapping[str, int]
    """process name → the pid that leads its session"""
    broker_pid: int | tuple[int, ...] | None = None
    mongo_url: str | None = None
    settle: Callable[[], None] | None = None
    _before: dict = field(default_factory=dict)
    spent: dict = field(default_factory=dict)

    def _cpu(self) -> dict[str, float]:
        cpu = {name: session_cpu_s(pid) for name, pid in self.sessions.items()}
        cpu[CLIENT] = own_cpu_s()
        return cpu

    def _counts(self) -> dict[str, dict[str, float]]:
        counts = {}
        if self.broker_pid is not None:
            pids = self.broker_pid if isinstance(self.broker_pid, tuple) else (self.broker_pid,)
            summed: dict[str, float] = {}
            for each in (broker_requests(pid) for pid in pids):
                for name, count in each.items():
                    summed[name] = summed.get(name, 0) + count
            counts["broker_requests"] = summed
        if self.mongo_url is not None:
            counts["database_operations"] = database_operations(self.mongo_url)
        return counts

    def start(self) -> None:
        # Counted first, then CPU: reading the counts costs the broker and the
        # database CPU of their own, which must stay outside the run.
        self._before = self._counts()
        self._before["cpu_s"] = self._cpu()

    def stop(self) -> None:
        settling_s = 0.0
        if self.settle is not None:
            own = own_cpu_s()
            self.settle()
            settling_s = own_cpu_s() - own
        after = {"cpu_s": self._cpu()}
        after["cpu_s"][CLIENT] -= settling_s
        after.update(self._counts())
        self.spent = {kind: _difference(values, self._before.get(kind, {})) for kind, values in after.items()}

    def per_job(self, jobs: int) -> dict[str, dict[str, float]]:
        """``cpu_ms`` by process (with ``total``), ``broker_requests`` and
        ``database_operations`` by type (with ``total``), each per job."""
        cpu_ms = {name: spent * 1000 / jobs for name, spent in self.spent["cpu_s"].items()}
        cpu_ms["total"] = sum(cpu_ms.values())
        result = {"cpu_ms": cpu_ms}
        requests = self.spent.get("broker_requests")
        if requests:
            per_job = {name: requests.get(name, 0) / jobs for name in CLIENT_REQUESTS}
            per_job["total"] = sum(per_job.values())
            result["broker_requests"] = per_job
        operations = self.spent.get("database_operations")
        if operations:
            per_job = {name: count / jobs for name, count in operations.items() if count}
            per_job["total"] = sum(per_job.values())
            result["database_operations"] = per_job
        return result
