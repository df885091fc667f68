from pathlib import Path

from pydantic import Field

from schemas.artifacts import DEFAULT_THRESHOLD_BYTES
from schemas.logs import DEFAULT_LINES_PER_JOB
from services.common.settings import DECIDER_GROUP, RUNNER_GROUP, ConnectionSettings


class ProcessorSettings(ConnectionSettings):
    app_id: str = Field(DECIDER_GROUP, description="the decider's consumer group (on jobs.commands, jobs.slots, jobs.schedules)")
    runner_group_id: str = Field(RUNNER_GROUP, description="consumer group of the runners")
    runner_concurrency: int = Field(3, ge=1, description="jobs one processor process runs at once")
    runner_id: str = Field("", description="name reported in JobStarted; default host:pid")
    handler_modules: list[str] = Field(
        ["services.processor.builtin", "services.processor.objects"], description="modules whose @handler functions are loaded"
    )
    state_dir: Path = Field(
        Path("var/processor"), description="the processor's working directory: the decider's job states on disk (job-states/)"
    )
    decider_enabled: bool = True
    runner_enabled: bool = True
    eager_dispatch: bool = Field(
        True,
        description="with the decider and the runner in one process, hand the runner the attempts of the decider's "
        "partitions in memory and decide its reports there (false: the runner reads jobs.events and reports through "
        "jobs.commands, as a runner-only process does)",
    )
    shutdown_grace_s: float = Field(10.0, ge=0, description="how long running jobs may finish on stop")
    lease_s: float = Field(30.0, gt=0, description="an attempt whose runner sent no heartbeat for this long is failed as lost")
    progress_interval_s: float = Field(1.0, gt=0, description="a running job sends at most one progress event per this interval")
    runner_waits_for_grant: bool = Field(
        False,
        description="true: run an attempt only once the decider granted it to this runner (one more round trip per "
        "job; a JobQueued replayed to two runners across a rebalance then never runs twice at once); false: start "
        "at once beside the claim, and stop if another runner's claim wins",
    )
    runner_prefetch: int = Field(
        1000, ge=1, description="queued attempts a runner holds in memory to pick the highest priority from"
    )
    artifact_threshold_bytes: int = Field(
        DEFAULT_THRESHOLD_BYTES,
        ge=0,
        description="a result whose JSON is larger is stored in the artifact store (S3) and the event refers to it",
    )
    timer_interval_s: float = Field(0.1, gt=0, description="how often the decider looks for passed deadlines")
    schedule_interval_s: float = Field(0.5, gt=0, description="how often the scheduler looks for due cron ticks")
    commit_interval_s: float = Field(
        0.5, gt=0, description="how often the decider and the runner commit their offsets (the decider: its fencing transactions)"
    )
    fencing: bool = Field(
        True,
        description="append each owned partition's events through a transactional producer of its own, so that a "
        "decider that lost the partition (paused past the session timeout) cannot append to it (docs/architecture.md); "
        "make run turns it off when it runs one processor, which has no rival to fence",
    )
    job_log_lines: int = Field(
        DEFAULT_LINES_PER_JOB,
        ge=1,
        description="lines one attempt may write to its job's log (ctx.log); more are counted and dropped",
    )
    worker_beat_s: float = Field(
        5.0, gt=0, description="how often a runner announces itself on jobs.workers (GET /workers drops it after 3 missed)"
    )

    @property
    def heartbeat_interval_s(self) -> float:
        return self.lease_s / 3
