"""``make bench``: jobledger against the raw limits of its own broker and
database, measured in the same run on the same machine.

    python -m bench [--scenarios raw,throughput,latency,ingest,projector,replay]
                    [--jobs 10000] [--clients 16] [--batch 100] [--runner-concurrency 64]
                    [--replicas 1]

On the stack ``make run`` starts: Apache Kafka with its log on disk, the
database on disk.

Scenarios (all by default, on one fresh embedded stack):

- raw (always): broker produce and consume msg/s with the services' client
  settings; database bulk upserts/s.
- client: the client method of ``make bench-peers`` (:mod:`bench.client`):
  sequential ``POST /jobs`` over one connection, then a wait for each, three
  runs; then jobs one at a time.
- throughput: ``--jobs`` no-op jobs submitted by ``--clients`` concurrent HTTP
  clients in ``POST /jobs:batch`` requests of ``--batch``; submit →
  ``JobSucceeded`` in the log; jobs/s.
- latency: single ``POST /jobs`` at a fixed offered load of 20% of the measured
  peak for 15 s; submit → ``JobSucceeded`` in the log p50/p95/p99.
- ingest: accepted jobs/s (202s) with the processor stopped, single and batch.
- projector: the projector's fold (``JobProjection``) from a pre-filled
  ``jobs.events`` into empty read models; events/s.
- replay: ``jobledger replay``'s rebuild of the whole log; events/s.

Every figure is printed with its ratio to the raw limit that bounds it, and
written to ``bench/results/bench-<time>.json`` and ``.png``. The runner runs
``--runner-concurrency`` no-op jobs at once (the default of 3 is for real work;
a no-op pipeline measures the pipeline, not the handlers). ``--replicas N``
runs N processor and N projector processes, for the scale-out figures.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from bench import client
from bench.figures import ASSUMED_PEAK, PIPELINE_JOB, PIPELINE_STEPS, SCENARIOS, SETTLE_S, console
from bench.raw import raw_broker, raw_database, raw_hop
from bench.report import chart, ratios, report
from bench.results import save
from bench.scenarios import ingest_only, latency, projector_fold, replay_rate, throughput, throughput_warmup
from services.embedded import kafka
from services.embedded.stack import ANY_PORT, EmbeddedStack, StackSettings, stop_on_sigterm
from services.ingest.settings import DEV_API_KEY

# --- the run -------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict:
    wanted = [name.strip() for name in args.scenarios.split(",")]
    unknown = set(wanted) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    settings = StackSettings(
        data_dir=Path(tempfile.mkdtemp(prefix="jobledger-bench-")),
        **ANY_PORT,
        mongo_storage="disk",
        service_env={"runner_concurrency": str(args.runner_concurrency)},
        replicas=args.replicas,
    )
    stack = EmbeddedStack(settings)
    broker = f"Apache Kafka {kafka.kafka_version()}"
    result: dict = {"at": datetime.now(timezone.utc).isoformat(), "broker": broker, "args": vars(args)}
    with console.status(f"starting the embedded stack ({broker}) …"):
        await stack.start()
    try:
        raw = {}  # always measured: every ratio needs it
        with console.status("raw broker produce/consume …"):
            raw.update(await raw_broker(stack, args.raw_messages))
            raw.update(await raw_hop(stack))
        with console.status("raw database bulk upserts …"):
            raw.update(await raw_database(stack, args.raw_upserts))
        result["raw"] = raw
        if "client" in wanted:  # first: on a young log, like the peers' runs
            with console.status("the client method: sequential submits, then a wait for each …") as status:
                system = client.jobledger(stack.api_url, DEV_API_KEY)
                try:
                    result["client"] = await asyncio.to_thread(
                        client.measure, system, args.client_jobs, 3, args.client_singles, status.update
                    )
                finally:
                    system.close()
        if "throughput" in wanted or "latency" in wanted or "pipeline" in wanted:
            with console.status("warming up: waiting for the processor to join its groups …"):
                await throughput_warmup(stack)
                if args.replicas > 1:  # the later members' joins move partitions once more
                    await asyncio.sleep(SETTLE_S)
                    await throughput_warmup(stack)
        if "throughput" in wanted:
            result["throughput"] = await throughput(stack, args.jobs, args.clients, args.batch)
        if "pipeline" in wanted:
            pipelines = await throughput(
                stack, args.pipeline_jobs, args.clients, max(1, args.batch // PIPELINE_STEPS), job=PIPELINE_JOB
            )
            result["pipeline"] = {**pipelines, "steps": PIPELINE_STEPS, "steps_per_s": pipelines["jobs_per_s"] * PIPELINE_STEPS}
        if "latency" in wanted:
            peak = result.get("throughput", {}).get("jobs_per_s", ASSUMED_PEAK)
            result["latency"] = await latency(stack, max(1.0, 0.2 * peak), args.latency_seconds)
            result["latency"]["peak_measured"] = "throughput" in result
        if "projector" in wanted:
            result["projector"] = await projector_fold(stack, args.fold_jobs)
        if "replay" in wanted:
            result["replay"] = await replay_rate(stack)
        if "ingest" in wanted:  # last: it stops the processor and the projector
            result["ingest"] = await ingest_only(stack, args.ingest_jobs, args.clients, args.batch)
    finally:
        # Blocking on purpose: awaited, the stop would itself be cancelled when
        # SIGTERM or Ctrl-C cancels this task, and the stack would outlive us.
        with console.status("stopping …"):
            stack.stop()
    result["ratios"] = ratios(result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, from {', '.join(SCENARIOS)}")
    parser.add_argument("--jobs", type=int, default=10_000, help="no-op jobs of the throughput scenario (default 10000)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients (default 16)")
    parser.add_argument(
        "--client-jobs", type=int, default=2000, help="sequential submits per run of the client method (default 2000)"
    )
    parser.add_argument("--client-singles", type=int, default=200, help="jobs one at a time in the client method (default 200)")
    parser.add_argument("--batch", type=int, default=100, help="jobs per POST /jobs:batch (default 100)")
    parser.add_argument(
        "--pipeline-jobs",
        type=int,
        default=1000,
        help="pipelines of 5 no-op steps in a chain, for the pipeline scenario (default 1000)",
    )
    parser.add_argument(
        "--replicas", type=int, default=1, help="processor and projector processes, for the scale-out figures (default 1)"
    )
    parser.add_argument("--runner-concurrency", type=int, default=64, help="no-op jobs a runner runs at once (default 64)")
    parser.add_argument("--latency-seconds", type=float, default=15.0, help="length of the latency scenario (default 15)")
    parser.add_argument(
        "--ingest-jobs",
        type=int,
        default=20000,
        help="jobs of the ingest scenario: a quarter posted singly, all of them in batches (default 20000; "
        "4,000 took a fifth of a second in batches, too short for a stable rate)",
    )
    parser.add_argument("--fold-jobs", type=int, default=5000, help="jobs whose events the projector folds (default 5000)")
    parser.add_argument("--raw-messages", type=int, default=20_000, help="records for the raw broker figure")
    parser.add_argument("--raw-upserts", type=int, default=10_000, help="documents for the raw database figure")
    args = parser.parse_args()
    stop_on_sigterm()
    result = asyncio.run(run(args))
    report(result)
    path = save("bench", result)
    chart(result, path.with_suffix(".png"))
    console.print(f"written: {path} and its .png")


if __name__ == "__main__":
    main()
