"""``make chaos``: durability proven by killing things, as a user would.

    python -m bench.chaos [--jobs 1600] [--rate 40] [--rounds 1] [--cluster]

On a fresh durable stack (as ``make run``: Kafka's log and the read models on
disk), a client submits ``--jobs`` jobs at ``--rate`` per second — no-op,
short sleeps, flaky ones that fail before they succeed — while, one after the
other, the processor, the projector and ingest are each killed with SIGKILL
and started again, and then every process at once (broker and database too:
a power cut) before the whole stack is started again on the same data.
Meanwhile a watcher outside the stack reads every event of ``jobs.events``.

With ``--cluster`` the stack is ``make cluster``'s (three Kafka nodes,
replication factor 3, two of each service) and the kills come while the
others run: the Kafka node leading the controller quorum, then another node,
one processor (its decider's partitions move to the other), one projector and
one ingest (the other one serves), each started again after a while; then
the power cut. The client retries what was refused with the same
Idempotency-Key, as a client of a cluster should while partitions move.

Then it checks, and exits 1 if any check fails:

- every job answered 202 reaches a terminal state within 5 minutes of the
  load's end (none stuck);
- every event the watcher saw is still in the log, byte for byte;
- no two different events share a ``(job, seq)``;
- ``jobledger audit verify``: every hash chain is intact;
- ``jobledger replay``: the read models equal a rebuild from the log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
from rich.console import Console

from bench.results import save
from schemas import TERMINAL, topics
from services.adapters.consumer_runtime import open_consumer
from services.adapters.log import topic_partitions
from services.embedded.stack import ANY_PORT, EmbeddedStack, StackSettings, broker_name, stop_on_sigterm
from services.ingest.settings import DEV_API_KEY

CLUSTER_DOWN_S = 12.0
"""How long each process killed on the cluster stays down."""
CLUSTER_JOBS = 3600
"""Jobs of a --cluster round at the default rate: 90 s of load, the five kills within it."""
LEASE_S = 5.0
"""Short, so attempts of a killed runner are retried within the run."""
console = Console()


class Watcher:
    """Every (job, seq) → hash the log showed, read from outside the stack."""

    def __init__(self, stack: EmbeddedStack) -> None:
        self.stack = stack
        self.seen: dict[tuple[str, int], str] = {}
        self.conflicts: list[tuple[str, int]] = []
        self.position: dict = {}

    async def run(self) -> None:
        while True:
            consumer = open_consumer(self.stack.settings.kafka_bootstrap)
            try:
                await consumer.start()
                partitions = await topic_partitions(self.stack.settings, topics.EVENTS)
                consumer.assign(partitions)
                for tp in partitions:
                    consumer.seek(tp, self.position.get(tp, 0))
                while True:
                    for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                        for record in records:
                            self.position[tp] = record.offset + 1
                            self.note(record.value)
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(1)  # the broker is down (a power cut): read on when it is back
            finally:
                try:
                    await consumer.stop()
                except Exception:
                    pass

    def note(self, raw: bytes) -> None:
        try:
            event = json.loads(raw)
            key = (event["subject"], event["seq"])
        except (ValueError, KeyError, TypeError):
            return
        known = self.seen.setdefault(key, event["hash"])
        if known != event["hash"]:
            self.conflicts.append(key)


class Load:
    """Submits jobs at a steady rate; keeps the ids answered 202."""

    def __init__(self, stack: EmbeddedStack, jobs: int, rate: float, retry_s: float = 0.0) -> None:
        """``retry_s``: how long a refused submit is tried again with its Idempotency-Key (0: not at all)."""
        self.stack, self.jobs, self.rate, self.retry_s = stack, jobs, rate, retry_s
        self.accepted: list[str] = []
        self.refused = 0
        self.retried = 0

    @staticmethod
    def body(i: int) -> dict:
        kind = i % 4
        if kind == 0:
            return {"type": "sleep", "payload": {"seconds": round(random.uniform(0.1, 1.0), 2)}}
        if kind == 1:
            return {"type": "flaky", "payload": {"failures": 1}, "backoff": {"base_s": 0.2, "jitter": 0}}
        return {"type": "noop"}

    async def run(self) -> None:
        started = time.monotonic()
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {DEV_API_KEY}"}, timeout=10) as http:
            for i in range(self.jobs):
                delay = started + i / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                job_id = await self.submit(http, self.body(i))
                if job_id is None:
                    self.refused += 1  # ingest down, or the log unavailable: the client saw no 202
                else:
                    self.accepted.append(job_id)

    async def submit(self, http: httpx.AsyncClient, body: dict) -> str | None:
        key, deadline = f"chaos-{uuid.uuid4()}", time.monotonic() + self.retry_s
        while True:
            try:
                response = await http.post(f"{self.stack.api_url}/jobs", json=body, headers={"Idempotency-Key": key})
                if response.status_code in (200, 202):
                    return response.json()["id"]
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                return None
            self.retried += 1
            await asyncio.sleep(0.25)


async def chaos(stack: EmbeddedStack, load: Load, say) -> None:
    """Kill each service once, then everything; start them again each time."""
    if stack.settings.cluster:
        await cluster_chaos(stack, load, say)
    else:
        step = max(2.0, load.jobs / load.rate / 6)
        for name in ("processor", "projector", "ingest"):
            await asyncio.sleep(step)
            say(f"kill -9 {name}")
            stack.kill(name)
            await asyncio.sleep(1.0)
            stack.respawn(name)
            say(f"{name} started again")
        await asyncio.sleep(step)
    say("power cut: kill -9 every process, broker and database too")
    for name in list(stack.processes):
        stack.kill(name)
    await asyncio.sleep(1.0)
    await stack.start()
    say("the whole stack started again")


async def cluster_chaos(stack: EmbeddedStack, load: Load, say) -> None:
    """Each kill while the rest runs: the quorum's leader, another node, one
    of each service. Each stays down past the timeouts that move its work
    (a broker's session, 9 s; a group member's, 10 s)."""
    step = 3.0
    leader = stack.quorum_leader()
    other = next(node.node_id for node in stack.nodes if node.node_id != leader)
    victims = [
        (broker_name(leader), "the node leading the controller quorum"),
        (broker_name(other), "another Kafka node"),
        ("processor-2", "a processor: its decider's partitions move to the other"),
        ("projector", "a projector"),
        ("ingest-2", "an ingest: the other one serves"),
    ]
    for name, what in victims:
        await asyncio.sleep(step)
        say(f"kill -9 {name} ({what})")
        stack.kill(name)
        await asyncio.sleep(CLUSTER_DOWN_S)
        stack.respawn(name)
        say(f"{name} started again")
    await asyncio.sleep(step)


ENDED = frozenset(status.value for status in TERMINAL)


async def settle(stack: EmbeddedStack, job_ids: list[str], timeout_s: float) -> dict[str, str]:
    """The final state of every job, waiting up to ``timeout_s`` in all for
    them to end. A job not ended after one long poll is asked again once the
    others were: after a power cut the runners work through a backlog (their
    slots are nearly all taken by the load itself), and a job queued behind it
    may wait longer than one poll without being stuck. Stuck is still unended
    when the whole time is up."""
    states: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    waiting = list(job_ids)
    async with httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {DEV_API_KEY}"}, timeout=70) as http:
        while waiting:
            for job_id in waiting:
                left = max(0.0, deadline - time.monotonic())
                response = await http.get(f"/jobs/{job_id}", params={"wait_s": min(60.0, left)})
                states[job_id] = response.json()["state"] if response.status_code == 200 else f"HTTP {response.status_code}"
            waiting = [job_id for job_id in waiting if states[job_id] not in ENDED]
            if time.monotonic() >= deadline:
                break
    return states


async def log_now(stack: EmbeddedStack) -> dict[tuple[str, int], str]:
    seen = Watcher(stack)
    from services.adapters.log import log_records

    async for raw in log_records(stack.settings):
        seen.note(raw)
    return seen.seen


def jobledger(stack: EmbeddedStack, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "JOBLEDGER_KAFKA_BOOTSTRAP": stack.settings.kafka_bootstrap,
        "JOBLEDGER_MONGO_URL": stack.settings.mongo_url,
    }
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True)


async def run(args) -> dict:
    shape = dict(brokers=3, replicas=2, ingest_replicas=2) if args.cluster else {}
    settings = StackSettings(
        **shape,
        data_dir=Path(tempfile.mkdtemp(prefix="jobledger-chaos-")),
        **ANY_PORT,
        service_env={"lease_s": str(LEASE_S)},
    )
    stack = EmbeddedStack(settings)
    say = console.log
    report: dict = {"at": datetime.now(timezone.utc).isoformat(), "args": vars(args), "rounds": []}
    try:
        await stack.start()
        for round_ in range(1, args.rounds + 1):
            say(f"round {round_}: {args.jobs} jobs at {args.rate}/s")
            watcher, load = Watcher(stack), Load(stack, args.jobs, args.rate, retry_s=60.0 if args.cluster else 0.0)
            watching = asyncio.create_task(watcher.run())
            await asyncio.gather(load.run(), chaos(stack, load, say))
            say(
                f"{len(load.accepted)} jobs accepted ({load.refused} refused while ingest was down, {load.retried} retries); "
                "waiting for them …"
            )
            waited = time.monotonic()
            states = await settle(stack, load.accepted, timeout_s=300)
            say(f"every job ended or the time was up after {time.monotonic() - waited:.0f} s")
            await asyncio.sleep(2)  # the watcher reads the last events
            watching.cancel()
            log = await log_now(stack)
            stuck = sorted(job_id for job_id, state in states.items() if state not in ENDED)
            lost = sorted(key for key in watcher.seen if key not in log)
            changed = sorted(key for key, value in watcher.seen.items() if key in log and log[key] != value)
            verify = jobledger(stack, "audit", "verify")
            replay = jobledger(stack, "replay")
            checks = {
                "every 202 job terminal": not stuck,
                "every event seen still in the log, unchanged": not lost and not changed,
                "no two different events at one (job, seq)": not watcher.conflicts,
                "audit verify clean": verify.returncode == 0,
                "read models equal a replay": replay.returncode == 0,
            }
            report["rounds"].append(
                {
                    "accepted": len(load.accepted),
                    "refused_while_down": load.refused,
                    "retried": load.retried,
                    "states": {state: list(states.values()).count(state) for state in set(states.values())},
                    "events_seen": len(watcher.seen),
                    "stuck": stuck[:20],
                    "lost_events": [list(k) for k in lost[:20]],
                    "changed_events": [list(k) for k in changed[:20]],
                    "conflicts": [list(k) for k in watcher.conflicts[:20]],
                    "audit": verify.stdout.strip().splitlines()[-1:] + verify.stderr.strip().splitlines()[-3:],
                    "replay": replay.stdout.strip().splitlines()[-3:] + replay.stderr.strip().splitlines()[-3:],
                    "checks": checks,
                }
            )
            for name, ok in checks.items():
                console.print(f"  {'[green]pass[/]' if ok else '[red]FAIL[/]'}  {name}")
    finally:
        stack.stop()
    report["passed"] = all(all(r["checks"].values()) for r in report["rounds"])
    report["data_dir"] = str(settings.data_dir)
    return report


def main() -> None:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the watcher reconnects through the power cut
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--jobs", type=int, default=None, help=f"jobs submitted per round (default 1600; {CLUSTER_JOBS} with --cluster)"
    )
    parser.add_argument("--rate", type=float, default=40.0, help="jobs submitted per second (default 40)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of kills on the same stack (default 1)")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="make cluster's stack: three Kafka nodes, two of each service, kills while the rest runs",
    )
    args = parser.parse_args()
    if args.jobs is None:
        args.jobs = CLUSTER_JOBS if args.cluster else 1600
    stop_on_sigterm()
    report = asyncio.run(run(args))
    path = save("chaos", report)
    console.print(f"written: {path}")
    if not report["passed"]:
        console.print("[red]chaos: a check failed[/]")
        raise SystemExit(1)
    console.print("[green]chaos: every check passed[/]")


if __name__ == "__main__":
    main()
