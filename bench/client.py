"""The client method: one client, one system, the work a producer does.

Exactly the same loop drives jobledger and its peers (``make bench-peers``):

1. **submit**: ``jobs`` no-op jobs, one request after another over one
   keep-alive connection; submits/s;
2. **end to end**: then wait until every one of them has finished; jobs/s from
   the first submit to the last finish;
3. repeat ``runs`` times on the same system (a rate that falls from run to run
   means its cost grows with its history);
4. **one at a time**: ``singles`` jobs, each submitted and waited for before
   the next; p50/p99 of submit → finished observed.

A system is two functions: ``submit() -> handle`` and ``wait(handle)``.
jobledger's are ``POST /jobs`` and ``GET /jobs/{id}?wait_s=`` (a long poll that
returns when the job has ended); Celery's are ``task.delay()`` and
``AsyncResult.get()``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

WAIT_S = 60.0


@dataclass
class ClientSystem:
    name: str
    submit: Callable[[], Any]
    wait: Callable[[Any], None]
    close: Callable[[], None] = lambda: None


def jobledger(api_url: str, api_key: str) -> ClientSystem:
    http = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=WAIT_S + 10)

    def submit() -> str:
        response = http.post("/jobs", json={"type": "noop"})
        response.raise_for_status()
        return response.json()["id"]

    def wait(job_id: str) -> None:
        job = http.get(f"/jobs/{job_id}", params={"wait_s": WAIT_S}).json()
        if job["state"] != "SUCCEEDED":
            raise RuntimeError(f"job {job_id} is {job['state']} after {WAIT_S} s")

    return ClientSystem("jobledger", submit, wait, http.close)


def measure(system: ClientSystem, jobs: int, runs: int, singles: int, progress: Callable[[str], None] = print) -> dict:
    rounds = []
    for run in range(1, runs + 1):
        progress(f"{system.name}: run {run}/{runs}, {jobs} sequential submits …")
        started = time.perf_counter()
        handles = [system.submit() for _ in range(jobs)]
        submitted = time.perf_counter()
        progress(f"{system.name}: run {run}/{runs}, waiting for {jobs} jobs …")
        for handle in handles:
            system.wait(handle)
        finished = time.perf_counter()
        rounds.append({"submit_per_s": jobs / (submitted - started), "end_to_end_jobs_per_s": jobs / (finished - started)})
    progress(f"{system.name}: {singles} jobs one at a time …")
    latencies = []
    for _ in range(singles):
        started = time.perf_counter()
        system.wait(system.submit())
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    first = rounds[0]["end_to_end_jobs_per_s"]
    return {
        "jobs": jobs,
        "runs": rounds,
        "submit_per_s": statistics.median(r["submit_per_s"] for r in rounds),
        "end_to_end_jobs_per_s": statistics.median(r["end_to_end_jobs_per_s"] for r in rounds),
        "flat": all(r["end_to_end_jobs_per_s"] >= 0.9 * first for r in rounds),
        "latency_ms_p50": statistics.median(latencies),
        "latency_ms_p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }
