from pydantic import Field

from schemas.logs import DEFAULT_LINES_PER_JOB
from services.common.settings import LOGS_GROUP, PROJECTOR_GROUP, ConnectionSettings


class ProjectorSettings(ConnectionSettings):
    group_id: str = Field(PROJECTOR_GROUP, description="consumer group of the projector")
    logs_group_id: str = Field(LOGS_GROUP, description="consumer group of the projector's job-log part (on jobs.logs)")
    retention_sweep_s: float = Field(60.0, gt=0, description="how often finished jobs past JOBLEDGER_RETENTION are removed")
    job_log_lines: int = Field(DEFAULT_LINES_PER_JOB, ge=1, description="lines of each job's log the read models keep")
    batch_max_records: int = Field(2_000, ge=1, description="records folded per bulk write")
    cache_jobs: int = Field(50_000, ge=0, description="job states kept in memory between batches")
    batch_wait_ms: int = Field(
        100,
        ge=0,
        description="how long the broker may hold the projector's fetch to gather a batch (it answers sooner once "
        "256 KiB are there): fewer fetches and bulk writes per job, for a read model this much behind the log "
        "(single-job reads fold the log's tail, so they do not wait for it)",
    )
    hold_new_ms: int = Field(
        5000,
        ge=0,
        description="how long the projector holds back the document of a job that is new and has not ended, so "
        "that a job is written once (one insert instead of an insert and a replacement: about half the "
        "database's CPU per job, more under a backlog, where jobs wait longer in the queue); GET /status counts, and "
        "lists through an ingest that did not accept it, see such a job up to this much (plus one fetch) later, a "
        "bulk action waits for it. Its events are written at once; single-job reads, and lists through the ingest "
        "that accepted it, fold the log's tail. 0: write every batch",
    )
    commit_interval_s: float = Field(
        0.5,
        ge=0,
        description="how often the projector saves its position with the read models and commits its "
        "consumer offsets; bounds how much a restart reads again (absorbed as duplicates)",
    )
    allow_log_loss: bool = Field(
        False,
        description="when the broker's log ends before what the read models hold: false stops the projector "
        "(exit 3); true logs it and goes on from what the broker has",
    )
