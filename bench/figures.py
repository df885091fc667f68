"""What the bench's figures share: per-job costs, the console, progress bars, percentiles."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.ingest.settings import DEV_API_KEY

MESSAGES_PER_JOB = 5
"""The SubmitJob command + submitted, queued, started, succeeded events (the
processor's own runner claims and reports in memory, not through the log)."""
HOPS_PER_JOB = 2
"""Broker hops from SubmitJob to JobSucceeded seen: to the decider, and from it
to the reader of the log."""
EVENTS_PER_JOB = 4
PIPELINE_STEPS = 5
"""Steps of the pipeline scenario's pipelines: no-op steps in a chain."""
PIPELINE_EVENTS = 3 + 3 * PIPELINE_STEPS
"""submitted, pipeline.started, succeeded + each step's queued, started, succeeded."""
PIPELINE_MESSAGES = PIPELINE_EVENTS + 1
"""Its events + SubmitJob (each step's claim and report stay in the processor's memory)."""
PIPELINE_JOB = {
    "type": "pipeline",
    "steps": [
        {"name": f"s{index}", "type": "noop", "payload": {}, "depends_on": [f"s{index - 1}"] if index else []}
        for index in range(PIPELINE_STEPS)
    ],
}
ASSUMED_PEAK = 50.0
"""jobs/s the latency scenario takes 20% of when the throughput scenario did not run."""
OVERLOADED = 0.9
"""The latency scenario completed less than this share of the load it offered."""
SETTLE_S = 10.0
"""With ``--replicas``, the wait for every member's join before measuring."""
SCENARIOS = ("raw", "client", "throughput", "pipeline", "latency", "ingest", "projector", "replay")
HEADERS = {"Authorization": f"Bearer {DEV_API_KEY}"}
console = Console()


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]
