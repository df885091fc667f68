"""The client methods: the work a producer does, the same loop for jobledger and its peers.

**One client** (:func:`measure`):

1. **submit**: ``jobs`` no-op jobs, one request after another over one
   keep-alive connection; submits/s;
2. **end to end**: then wait until every one of them has finished; jobs/s from
   the first submit to the last finish;
3. repeat ``runs`` times on the same system (a rate that falls from run to run
   means its cost grows with its history);
4. **one at a time**: ``singles`` jobs, each submitted and waited for before
   the next; p50/p99 of submit → finished observed.

**Many clients** (:func:`measure_processes`): ``processes`` client processes
start together, each submitting its share one request after another, then
waiting for each of its jobs; submits/s until the last process submitted its
last, end to end jobs/s until the last job finished. Processes, not threads:
Celery's Redis result backend hangs when threads share it.

A system is two functions: ``submit() -> handle`` and ``wait(handle)``, each
peer's own client library: jobledger's are its SDK's ``Client.submit`` and
``Client.wait`` (``POST /jobs``, then ``GET /jobs/{id}?wait_s=``, a long poll
that returns when the job has ended); Celery's are ``task.delay()`` and
``AsyncResult.get()``. A many-clients system is made in each process by a
factory: a module-level function and its arguments, which pickle.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.costs import CostMeter, own_cpu_s
from jobledger import Client

WAIT_S = 60.0


@dataclass
class ClientSystem:
    name: str
    submit: Callable[[], Any]
    wait: Callable[[Any], None]
    close: Callable[[], None] = lambda: None


def jobledger(api_url: str, api_key: str) -> ClientSystem:
    client = Client(api_url, api_key)

    def submit() -> str:
        return client.submit("noop").id

    def wait(job_id: str) -> None:
        client.wait(job_id, timeout=WAIT_S)  # JobFailed, WaitTimeout: the run stops

    return ClientSystem("jobledger", submit, wait, client.close)


def measure(
    system: ClientSystem,
    jobs: int,
    runs: int,
    singles: int,
    progress: Callable[[str], None] = print,
    meter: CostMeter | None = None,
) -> dict:
    """The one-client method. With a ``meter``, what the ``runs`` cost the
    stack per job is added as ``costs`` (:meth:`CostMeter.per_job`)."""
    rounds = []
    if meter is not None:
        meter.start()
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
    if meter is not None:
        meter.stop()
    progress(f"{system.name}: {singles} jobs one at a time …")
    latencies = []
    for _ in range(singles):
        started = time.perf_counter()
        system.wait(system.submit())
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    first = rounds[0]["end_to_end_jobs_per_s"]
    result = {
        "jobs": jobs,
        "runs": rounds,
        "submit_per_s": statistics.median(r["submit_per_s"] for r in rounds),
        "end_to_end_jobs_per_s": statistics.median(r["end_to_end_jobs_per_s"] for r in rounds),
        "flat": all(r["end_to_end_jobs_per_s"] >= 0.9 * first for r in rounds),
        "latency_ms_p50": statistics.median(latencies),
        "latency_ms_p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }
    if meter is not None:
        result["costs"] = meter.per_job(jobs * runs)
    return result


def _one_process(factory, args: tuple, jobs: int, ready, results) -> None:
    system = factory(*args)
    try:
        system.wait(system.submit())  # connected and warm before the clock starts
        ready.wait()
        cpu = own_cpu_s()
        started = time.time()
        handles = [system.submit() for _ in range(jobs)]
        submitted = time.time()
        for handle in handles:
            system.wait(handle)
        results.put((started, submitted, time.time(), own_cpu_s() - cpu))
    except BaseException as error:
        results.put(error)
        raise
    finally:
        system.close()


def measure_processes(
    factory: Callable[..., ClientSystem],
    args: tuple,
    processes: int,
    jobs_per_process: int,
    progress: Callable[[str], None] = print,
    meter: CostMeter | None = None,
) -> dict:
    """The many-clients method. The client's CPU is the processes' own."""
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(processes + 1)
    results = context.Queue()
    workers = [
        context.Process(target=_one_process, args=(factory, args, jobs_per_process, ready, results)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    progress(f"{processes} client processes connecting …")
    if meter is not None:
        meter.start()  # while the clients wait at the barrier: they are idle, connected and warm
    ready.wait(timeout=120)
    progress(f"{processes} client processes, {jobs_per_process} sequential submits each, then a wait for each …")
    answers = [results.get(timeout=600) for _ in workers]
    if meter is not None:
        meter.stop()
    for worker in workers:
        worker.join(timeout=60)
    failures = [answer for answer in answers if isinstance(answer, BaseException)]
    if failures:
        raise RuntimeError(f"{len(failures)} client processes failed: {failures[0]!r}")
    started = min(answer[0] for answer in answers)
    jobs = processes * jobs_per_process
    result = {
        "processes": processes,
        "jobs": jobs,
        "submit_per_s": jobs / (max(answer[1] for answer in answers) - started),
        "end_to_end_jobs_per_s": jobs / (max(answer[2] for answer in answers) - started),
    }
    if meter is not None:
        costs = meter.per_job(jobs)
        client_ms = sum(answer[3] for answer in answers) * 1000 / jobs
        costs["cpu_ms"]["total"] += client_ms - costs["cpu_ms"]["client"]
        costs["cpu_ms"]["client"] = client_ms  # the processes', not this one's (it only waits)
        result["costs"] = costs
    return result
