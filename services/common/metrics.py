"""Every Prometheus metric jobledger exports, in one place (docs/operations.md reads them).

Each process exports the ones it updates: ingest on ``GET /metrics`` of its
API, the processor and the projector on their own port
(``JOBLEDGER_METRICS_PORT``). A metric that counts what the decider decided
is updated by each decider for the jobs of its partitions; sum over processes.
Labels stay bounded: tenants and job types are configured, never request data
(a path is labelled by its route's template, a path no route has as
``unmatched``).
"""

from __future__ import annotations

import structlog
from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, start_http_server

log = structlog.get_logger(component="metrics")

disable_created_metrics()  # no *_created series beside each counter: Prometheus reads a reset from the counter itself

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds, for what should take milliseconds (a request, a projection batch)."""
JOB_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
"""Seconds, for what may take an hour (an attempt, a wait in the queue)."""

# --- ingest -----------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "jobledger_http_requests", "HTTP requests answered by ingest, by route template and status", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "jobledger_http_request_duration_seconds",
    "Time from a request's arrival to its answer's start (a stream: until it opens)",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "jobledger_consumer_lag_records",
    "Records a consumer group has not processed (end offset minus committed), per partition; measured at each scrape",
    ["group", "topic", "partition"],
)

# --- processor: what the deciders decided --------------------------------------------

JOBS_SUBMITTED = Counter("jobledger_jobs_submitted", "Jobs accepted into the log, by tenant and type", ["tenant", "type"])
JOBS_FINISHED = Counter(
    "jobledger_jobs_finished",
    "Jobs that reached an end: succeeded, failed, cancelled or rejected",
    ["tenant", "type", "outcome"],
)
RETRIES = Counter("jobledger_job_retries", "Failed attempts followed by another (a retry scheduled)", ["tenant", "type"])
ATTEMPT_FAILURES = Counter(
    "jobledger_attempt_failures",
    "Failed attempts by reason: error (the handler raised), timeout (timeout_s passed), lost (no heartbeat for lease_s)",
    ["tenant", "type", "reason"],
)
QUEUE_WAIT = Histogram(
    "jobledger_queue_wait_seconds", "From a job's queueing to its attempt's start", ["type"], buckets=JOB_BUCKETS
)
ATTEMPT_DURATION = Histogram(
    "jobledger_attempt_duration_seconds",
    "From an attempt's start to its end, by how it ended (succeeded, failed)",
    ["type", "outcome"],
    buckets=JOB_BUCKETS,
)
DEAD_LETTERS = Counter("jobledger_dead_letters", "Records sent to jobs.dlq, by the stage that could not take them", ["stage"])

# --- processor: runners ---------------------------------------------------------------

RUNNING = Gauge("jobledger_runner_attempts_running", "Attempts the runner of this process is running now")
CONCURRENCY = Gauge("jobledger_runner_concurrency", "Attempts the runner of this process runs at most at once")

# --- projector ----------------------------------------------------------------------

PROJECTED = Counter("jobledger_projector_events", "Events folded into the read models")
APPLY_DURATION = Histogram(
    "jobledger_projector_apply_seconds",
    "Time to fold one batch of events into the read models (database writes included)",
    buckets=LATENCY_BUCKETS,
)


def serve(host: str, port: int | None) -> None:
    """Export this process's metrics over HTTP at ``host:port`` (a daemon
    thread of prometheus-client's; a service's ``__main__`` calls it once); ``None``: not at all."""
    if port is None:
        return
    try:
        start_http_server(port, addr=host)
    except OSError as error:
        raise SystemExit(
            f"cannot serve metrics on {host}:{port} ({error.strerror}); set JOBLEDGER_METRICS_PORT to a free port, "
            "or unset it for no metrics endpoint"
        ) from None
    log.info("metrics served", url=f"http://{host}:{port}/metrics")
