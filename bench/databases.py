"""``make bench-databases``: the embedded database, chosen by measurement.

    python -m bench.databases [--jobs 3000] [--reads 2000]

Every candidate that installs from a registry here is started fresh on
loopback with its data on disk, and measured on what jobledger asks of it:

- **live fold**: the projector's own ``JobProjection`` applying the events of
  ``--jobs`` no-op jobs in the order a running stack produces them — small
  batches in which each job's four events arrive at different times, so every
  job is inserted once and replaced three times (events/s);
- **replay fold**: the same events in big batches, as ``jobledger replay`` and
  a catching-up projector apply them (events/s);
- **read**: ``GET /jobs/{id}``'s ``find_one`` by id, p50 and p99 (ms);
- **features**: the unique ``(job_id, seq)`` index and the version guard
  answer duplicate-key errors (code 11000), change streams.

Candidates: SecantusDB's Python server (``secantusd-py``, from PyPI),
FerretDB v1 with its SQLite backend (built from its Go module into
``.tools/``), and SecantusDB's Rust server when crates.io has it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pymongo import AsyncMongoClient, ReplaceOne
from pymongo.errors import BulkWriteError, OperationFailure
from rich.console import Console
from rich.table import Table

from bench.history import noop_history
from bench.results import save
from services.adapters.projections import JobProjection
from services.adapters.readmodel import JOBS, ensure_indexes
from services.embedded.stack import free_port

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / ".tools"
FERRETDB_VERSION = "v1.24.2"
console = Console()


@dataclass
class Candidate:
    name: str
    license: str
    install: str
    command: Callable[[Path, int], list[str]] | None
    """The server's command line for a data directory and a port; ``None``: not
    installable here (``install`` says why)."""


def ferretdb_binary(say=console.print) -> Path:
    """FerretDB v1 built from its Go module (once). Its module on the proxy lacks
    the generated ``build/version/version.txt`` its start-up insists on, so the
    module is copied out of the module cache and the file written first."""
    binary = TOOLS / f"ferretdb-{FERRETDB_VERSION}" / "ferretdb"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("FerretDB is built from its Go module: `go` is needed")
    say(f"building FerretDB {FERRETDB_VERSION} from its Go module (once) …")
    work = Path(tempfile.mkdtemp(prefix="ferretdb-build-"))
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    subprocess.run([go, "mod", "init", "ferretdb-build"], cwd=work, check=True, capture_output=True)
    subprocess.run([go, "get", f"github.com/FerretDB/FerretDB@{FERRETDB_VERSION}"], cwd=work, check=True, env=env)
    cache = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    source = work / "src"
    shutil.copytree(Path(cache) / "github.com" / "!ferret!d!b" / f"!ferret!d!b@{FERRETDB_VERSION}", source)
    for path in source.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    (source / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
    binary.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([go, "build", "-o", str(binary), "./cmd/ferretdb"], cwd=source, check=True, env=env)
    shutil.rmtree(work, ignore_errors=True)
    return binary


def candidates() -> list[Candidate]:
    secantus = shutil.which("secantusd-py") or str(Path(sys.executable).parent / "secantusd-py")
    found = [
        Candidate(
            "SecantusDB (Python)",
            "GPL-2.0",
            "PyPI wheel (uv sync): seconds",
            lambda data, port: [
                secantus,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--storage-path",
                str(data),
                "--log-level",
                "WARNING",
            ],
        ),
    ]
    ferret_name = f"FerretDB {FERRETDB_VERSION} (SQLite)"
    try:
        ferret = str(ferretdb_binary())
        found.append(
            Candidate(
                ferret_name,
                "Apache-2.0",
                "go build of its module: about 1.5 min, once",
                lambda data, port: [
                    ferret,
                    "--handler=sqlite",
                    f"--sqlite-url=file:{data}/",
                    f"--listen-addr=127.0.0.1:{port}",
                    "--telemetry=disable",
                    "--log-level=warn",
                    f"--state-dir={data}",
                ],
            )
        )
    except Exception as error:
        found.append(Candidate(ferret_name, "Apache-2.0", f"not built: {error}", None))
    found.append(
        Candidate(
            "SecantusDB (Rust)",
            "GPL-2.0",
            "not installable: secantus-mdb on crates.io is 0.0.0, a reserved placeholder ('not yet released')",
            None,
        )
    )
    return found


def job_events(jobs: int) -> list[list]:
    """Per job, its four events (submitted, queued, started, succeeded)."""
    now = datetime.now(timezone.utc)
    return [noop_history(f"bench-{i}", "bench", now) for i in range(jobs)]


def live_batches(histories: list[list], batch: int = 40) -> list[list]:
    """The events as a running pipeline emits them: a job's next event comes a
    few batches after its previous one, so each batch mixes jobs at every step."""
    lag = 3
    stream: list = []
    steps = len(histories[0])
    per_step = batch // steps
    for start in range(0, len(histories) + lag * steps * per_step, per_step):
        for step in range(steps):
            first = start - step * lag * per_step
            for history in histories[max(0, first) : max(0, first + per_step)]:
                stream.append(history[step])
    return [stream[i : i + batch] for i in range(0, len(stream), batch)]


async def measure(url: str, jobs: int, reads: int, budget_s: float, result: dict) -> None:
    """Fill ``result`` as the measures come (a later failure keeps the earlier figures)."""
    client = AsyncMongoClient(url, tz_aware=True, serverSelectionTimeoutMS=20_000)
    try:
        histories = job_events(jobs)
        for label, batches in (
            ("live_fold_events_per_s", live_batches(histories)),
            ("replay_fold_events_per_s", [sum(histories[i : i + 500], []) for i in range(0, jobs, 500)]),
        ):
            db = client[f"bench_{label[:4]}"]
            await ensure_indexes(db)
            projection = JobProjection(db, cache_jobs=0)  # every lookup reaches the database, as after a restart
            started = time.perf_counter()
            applied = 0
            for events in batches:
                outcome = await projection.apply(events)
                assert not outcome.gaps and not outcome.rejected, outcome
                applied += len(events)
                if time.perf_counter() - started > budget_s:
                    result.setdefault("unfinished", []).append(f"{label}: {applied} of {jobs * 4} events in {budget_s:.0f} s")
                    break
            result[label] = applied / (time.perf_counter() - started)
        db = client["bench_live"]
        latencies = []
        for _ in range(reads):
            started = time.perf_counter()
            await db[JOBS].find_one({"_id": f"bench-{random.randrange(jobs)}", "tenant": "bench"})
            latencies.append((time.perf_counter() - started) * 1000)
        latencies.sort()
        result["read_ms_p50"] = statistics.median(latencies)
        result["read_ms_p99"] = latencies[int(len(latencies) * 0.99)]
        result["features"] = await features(db)
        for name in await client.list_database_names():
            if name.startswith("bench_"):
                await client.drop_database(name)
    finally:
        await client.close()


async def features(db) -> dict:
    found = {}
    try:
        await db["job_events"].insert_many([{"_id": "x1", "job_id": "j", "seq": 1}, {"_id": "x2", "job_id": "j", "seq": 1}])
        found["unique index"] = "no"
    except BulkWriteError as error:
        found["unique index"] = "yes" if error.details["writeErrors"][0]["code"] == 11000 else "other error"
    await db["guard"].insert_one({"_id": "g", "version": 5})
    try:
        await db["guard"].bulk_write([ReplaceOne({"_id": "g", "version": {"$lt": 3}}, {"version": 3}, upsert=True)])
        found["version guard"] = "no: the stale write went through"
    except BulkWriteError as error:
        found["version guard"] = "yes" if error.details["writeErrors"][0]["code"] == 11000 else "other error"
    try:
        async with await db["guard"].watch(max_await_time_ms=100) as stream:
            await stream.try_next()
        found["change streams"] = "yes"
    except OperationFailure as error:
        found["change streams"] = f"no ({error.code})"
    return found


def run(args) -> list[dict]:
    results = []
    for candidate in candidates():
        row = {"name": candidate.name, "license": candidate.license, "install": candidate.install}
        results.append(row)
        if candidate.command is None:
            continue
        data = Path(tempfile.mkdtemp(prefix="jobledger-db-"))
        port = free_port()
        log = open(data / "server.log", "ab")
        server = subprocess.Popen(candidate.command(data, port), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            with console.status(f"{candidate.name}: {args.jobs} jobs …"):
                url = f"mongodb://127.0.0.1:{port}/?retryWrites=false&directConnection=true"
                try:
                    asyncio.run(measure(url, args.jobs, args.reads, args.budget_s, row))
                except Exception as error:  # a driver-visible incompatibility is a finding, not a crash
                    row["error"] = f"{type(error).__name__}: {error}"
        finally:
            server.terminate()
            server.wait(20)
            shutil.rmtree(data, ignore_errors=True)
    return results


def report(results: list[dict]) -> None:
    table = Table(title="embedded database candidates — jobledger's own write and read pattern")
    for column in ("database", "live fold ev/s", "replay fold ev/s", "read p50 / p99 ms", "features", "install", "license"):
        table.add_column(column)
    for r in results:

        def rate(key: str, r: dict = r) -> str:
            return f"{r[key]:,.0f}" if key in r else "—"

        notes = [f"{k}: {v}" for k, v in r.get("features", {}).items()]
        notes += [f"unfinished {u}" for u in r.get("unfinished", [])] + ([f"failed: {r['error']}"] if "error" in r else [])
        table.add_row(
            r["name"],
            rate("live_fold_events_per_s"),
            rate("replay_fold_events_per_s"),
            f"{r['read_ms_p50']:.2f} / {r['read_ms_p99']:.2f}" if "read_ms_p50" in r else "—",
            "; ".join(notes) or "—",
            r["install"],
            r["license"],
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.databases", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=3000, help="jobs whose events each candidate folds (default 3000)")
    parser.add_argument("--reads", type=int, default=2000, help="single reads by id (default 2000)")
    parser.add_argument(
        "--budget-s", type=float, default=120, help="longest a fold may take; a slower one is reported unfinished (default 120)"
    )
    args = parser.parse_args()
    results = run(args)
    report(results)
    path = save("databases", {"candidates": results})
    console.print(f"written: {path}")


if __name__ == "__main__":
    main()
