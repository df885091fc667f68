"""The HTTP API's request and response bodies: part of the contract, so the SDK
(and anyone) can import them without the service."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas import Job, JobOptions, JobStatus, Priority
from schemas.artifacts import ArtifactRef
from schemas.job import Step, StepPhase, StepStatus
from schemas.logs import StoredLogLine
from schemas.pipelines import PIPELINE, Compensation, PipelineStep
from schemas.schedules import Schedule, next_tick
from schemas.services import SERVICE_NAME_PATTERN, Credentials, Operation, Polling, ServiceRegistered
from schemas.values import Moment
from schemas.workers import WorkerBeat

DEV_API_KEY = "jl-dev-key"
"""The embedded stack's development key (``make run`` prints it); set
``JOBLEDGER_API_KEYS`` anywhere else."""
DEFAULT_TENANT = "default"
"""The development key's tenant, and where service files register without a ``tenant``."""


class Scope(StrEnum):
    """What an API key may do. Each route needs one scope; a key configured
    without scopes has all three."""

    READ = "jobs:read"
    """read jobs, their events, artifacts, schedules, services and status"""
    WRITE = "jobs:write"
    """submit, cancel and retry jobs; create and delete schedules; register services; upload files"""
    ADMIN = "admin"
    """operate the whole service: operations on many jobs at once, dead letters, retention, workers"""


class SubmitJobRequest(JobOptions):
    """A job: its type, its payload, and how to run it (every option has a default)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"type": "sleep", "payload": {"seconds": 3}},
                {
                    "type": "flaky",
                    "payload": {"failures": 2},
                    "max_attempts": 5,
                    "backoff": {"base_s": 0.5, "factor": 2, "max_s": 30, "jitter": 0.2},
                    "timeout_s": 60,
                    "priority": "high",
                    "labels": {"team": "ml"},
                },
                {
                    "type": "pipeline",
                    "payload": {"object": {"Name": " Ada ", "age": 36}},
                    "steps": [{"name": "analyze", "type": "analyze"}],
                },
            ]
        },
    )

    type: str = Field(
        min_length=1, max_length=200, description="job type, e.g. sleep, noop, fail, flaky; or pipeline, with steps"
    )
    payload: dict[str, Any] = Field(
        default_factory=dict, description="input of the job type (a pipeline: of each step that has none of its own)"
    )
    steps: list[PipelineStep] | None = Field(
        None,
        description=f"type {PIPELINE} only: the steps, each a job type with its dependencies; a registered "
        "operation's prerequisites are added; independent steps run in parallel",
        max_length=100,
    )
    pipeline: str | None = Field(
        None, max_length=200, description=f"type {PIPELINE} only, instead of steps: the name of a pipeline defined in code"
    )

    def given_options(self) -> dict[str, Any]:
        """The options this request sets itself; the job type's defaults fill in the rest."""
        given = self.model_fields_set & _OPTION_FIELDS
        return self.model_dump(include=given) if given else {}


_OPTION_FIELDS = frozenset(JobOptions.model_fields)


class FieldError(BaseModel):
    field: str = Field(description="where, dotted: payload.seconds, query.until, header.Idempotency-Key")
    message: str


class ProblemDocument(BaseModel):
    """An RFC 9457 problem document: every answer that is not a success."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:jobledger:problem:invalid-request",
                    "title": "The request is not valid",
                    "status": 422,
                    "instance": "/jobs",
                    "errors": [{"field": "payload.seconds", "message": "Input should be greater than or equal to 0"}],
                }
            ]
        },
    )

    type: str = Field(description="urn:jobledger:problem:<code>; the code names the kind of refusal")
    title: str
    status: int
    instance: str = Field(description="the request's path")
    detail: str | None = None
    errors: list[FieldError] | None = Field(None, description="the bad fields, when the request named some")


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=1000, description="why; kept in the job's history")
    grace_s: float = Field(10.0, ge=0, le=3600, description="how long a running job may take to stop")


class JobLinks(BaseModel):
    self: str
    events: str
    stream: str
    cancel: str
    retry: str

    @classmethod
    def of(cls, job_id: str) -> "JobLinks":
        return cls(**job_links(job_id))


class JobAccepted(BaseModel):
    id: str
    state: JobStatus
    links: JobLinks


class BatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"jobs": [{"type": "noop"}, {"type": "sleep", "payload": {"seconds": 1}}]}]},
    )

    jobs: list[dict[str, Any]] = Field(
        min_length=1, max_length=1000, description="up to 1,000 jobs, each as the body of POST /jobs"
    )


class BatchItem(BaseModel):
    index: int
    status: int = Field(description="202 accepted; 409, 422 or 503 with a problem document")
    id: str | None = None
    state: JobStatus | None = None
    links: JobLinks | None = None
    problem: dict[str, Any] | None = None


class BatchAccepted(BaseModel):
    accepted: int
    rejected: int
    items: list[BatchItem]


class AttemptErrorView(BaseModel):
    attempt: int
    error: str
    error_type: str | None = None
    traceback: str | None = Field(None, description="the handler's traceback (its own frames), when a handler raised")
    at: datetime


class ArtifactView(BaseModel):
    name: str
    size: int = Field(description="bytes")
    sha256: str
    content_type: str
    uri: str = Field(description="where the store keeps it (s3://bucket/key)")
    href: str = Field(description="download it here, with your API key")

    @classmethod
    def of(cls, job_id: str, ref: ArtifactRef | None) -> "ArtifactView | None":
        if ref is None:
            return None
        return cls(
            name=ref.name,
            size=ref.size,
            sha256=ref.sha256,
            content_type=ref.content_type,
            uri=ref.uri,
            href=f"{job_path(job_id)}/artifacts/{ref.name}",
        )


class StepView(BaseModel):
    name: str
    type: str
    state: StepStatus
    phase: StepPhase = Field(description="run, or compensate once its compensation began")
    depends_on: list[str]
    attempt: int = Field(description="the step's current (or last) attempt, numbering on through compensation")
    progress: float | None = None
    progress_message: str | None = None
    result: Any = None
    artifact: ArtifactView | None = Field(None, description="the result, stored as an artifact because it was large")
    error: str | None = None
    error_type: str | None = None
    errors: list[AttemptErrorView] = Field(default_factory=list)
    compensate: Compensation | None = None
    compensation_result: Any = None
    compensation_artifact: ArtifactView | None = None
    next_attempt_at: datetime | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def of(cls, job_id: str, step: Step) -> "StepView":
        return cls(
            name=step.name,
            type=step.type,
            state=step.status,
            phase=step.phase,
            depends_on=list(step.depends_on),
            attempt=step.attempt,
            progress=step.progress,
            progress_message=step.progress_message,
            result=step.result,
            artifact=ArtifactView.of(job_id, step.artifact),
            error=step.error,
            error_type=step.error_type,
            errors=_error_views(step.errors),
            compensate=step.compensate,
            compensation_result=step.compensation_result,
            compensation_artifact=ArtifactView.of(job_id, step.compensation_artifact),
            next_attempt_at=millis(step.due_at),
            queued_at=millis(step.queued_at),
            started_at=millis(step.started_at),
            finished_at=millis(step.finished_at),
        )


class JobView(BaseModel):
    id: str
    type: str
    state: JobStatus
    payload: dict[str, Any]
    priority: Priority
    labels: dict[str, str]
    attempt: int = Field(description="the current (or last) attempt; 0 before the first")
    max_attempts: int
    attempts_left: int = Field(description="attempts after the current one before the job fails for good")
    timeout_s: float | None = None
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    run_at: datetime | None = None
    next_attempt_at: datetime | None = Field(None, description="PENDING: when the job is queued (run_at or backoff)")
    progress: float | None = Field(None, description="latest percent reported by the handler")
    progress_message: str | None = None
    result: Any = None
    artifact: ArtifactView | None = Field(None, description="the result, stored as an artifact because it was large")
    error: str | None = None
    error_type: str | None = None
    errors: list[AttemptErrorView] = Field(default_factory=list, description="every failed attempt, oldest first")
    cancel_requested_at: datetime | None = None
    cancel_reason: str | None = None
    idempotency_key: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    version: int = Field(description="seq of the last event folded into this view; 0 before the first")
    steps: list[StepView] | None = Field(None, description="a pipeline's steps, in dependency order; null for a plain job")
    failed_step: str | None = Field(None, description="a failed pipeline: the step that failed for good")
    compensated: bool | None = Field(
        None,
        description="a pipeline that ended early: true if every compensation succeeded, false if one failed; null if nothing needed undoing",
    )
    links: JobLinks

    @classmethod
    def of(cls, job: Job) -> "JobView":
        options = job.options
        return cls(
            id=job.job_id,
            type=job.job_type,
            state=job.status,
            payload=job.payload,
            priority=options.priority,
            labels=options.labels,
            attempt=job.attempt,
            max_attempts=options.max_attempts,
            attempts_left=max(0, job.attempts_left) if job.attempt else options.max_attempts,
            timeout_s=options.timeout_s,
            concurrency_key=options.concurrency_key,
            concurrency_limit=options.concurrency_limit if options.concurrency_key else None,
            run_at=millis(options.run_at),
            next_attempt_at=millis(job.due_at),
            progress=job.progress,
            progress_message=job.progress_message,
            result=job.result,
            artifact=ArtifactView.of(job.job_id, job.artifact),
            error=job.error,
            error_type=job.error_type,
            errors=_error_views(job.errors),
            cancel_requested_at=millis(job.cancel_requested_at),
            cancel_reason=job.cancel_reason,
            idempotency_key=job.idempotency_key,
            created_at=millis(job.created_at),
            updated_at=millis(job.updated_at),
            started_at=millis(job.started_at),
            finished_at=millis(job.finished_at),
            version=job.version,
            steps=[StepView.of(job.job_id, step) for step in job.steps] if job.is_pipeline else None,
            failed_step=job.failed_step,
            compensated=job.compensated,
            links=JobLinks.of(job.job_id),
        )


def _error_views(errors) -> list[AttemptErrorView]:
    return [AttemptErrorView(**{**error.model_dump(), "at": millis(error.at)}) for error in errors]


class JobList(BaseModel):
    items: list[JobView]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page; null on the last page")


class StatusView(BaseModel):
    jobs: dict[str, int] = Field(description="jobs of this tenant per state")
    lag: dict[str, int | None] = Field(
        description="records each consumer group has yet to process (null: unknown): decider, projector, logs (the "
        "projector's job-log part), and the runners' group only where runner-only processes joined it (a processor's "
        "own runner is fed by its decider)"
    )
    restarts: dict[str, int] | None = Field(
        None, description="make run: how often its supervisor started each process again after it exited (null elsewhere)"
    )


def millis(moment: datetime | None) -> datetime | None:
    """``moment`` to the millisecond, as the read model stores it: a job reads
    the same whether it came from the read model or from the log's tail."""
    return None if moment is None else moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def job_links(job_id: str) -> dict[str, str]:
    """A job's :class:`JobLinks` as JSON."""
    path = job_path(job_id)
    return {
        "self": path,
        "events": f"{path}/events",
        "stream": f"{path}/stream",
        "cancel": f"{path}/cancel",
        "retry": f"{path}/retry",
    }


def job_path(job_id: str) -> str:
    return f"/jobs/{job_id}"


class ScheduleRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"cron": "0 2 * * *", "timezone": "Europe/Berlin", "job": {"type": "sleep", "payload": {"seconds": 5}}}]
        },
    )

    cron: str = Field(description="cron expression (five fields; a sixth, last, is seconds)")
    timezone: str = Field("UTC", description="IANA time zone the expression is read in")
    job: SubmitJobRequest = Field(description="the job each tick submits, as for POST /jobs")


class ScheduleView(BaseModel):
    id: str
    cron: str
    timezone: str
    job: dict[str, Any]
    created_at: datetime
    last_tick: datetime | None = Field(None, description="the latest tick whose job was submitted")
    next_tick: datetime | None = Field(None, description="when the next job is due (none once deleted, or while paused)")
    paused: bool = Field(False, description="paused: no tick submits a job until it is resumed")
    deleted: bool
    jobs: str = Field(description="the jobs of this schedule: GET /jobs?label=schedule:<id>")

    @classmethod
    def of(cls, schedule: Schedule) -> "ScheduleView":
        spec = schedule.spec
        deleted = schedule.deleted_at is not None
        return cls(
            id=schedule.schedule_id,
            cron=spec.cron,
            timezone=spec.timezone,
            job={
                "type": spec.job_type,
                "payload": spec.payload,
                **spec.options.model_dump(mode="json"),
                **({"steps": [step.model_dump(mode="json", exclude_none=True) for step in spec.steps]} if spec.steps else {}),
            },
            created_at=schedule.created_at,
            last_tick=schedule.last_tick,
            next_tick=None if deleted or schedule.paused_at is not None else _next_tick(schedule),
            paused=schedule.paused_at is not None,
            deleted=deleted,
            jobs=f"/jobs?label=schedule:{schedule.schedule_id}",
        )


def _next_tick(schedule: Schedule) -> datetime | None:
    """``None`` for a schedule that cannot tick (one recorded before its rules were checked)."""
    try:
        return next_tick(schedule)
    except (ValueError, OverflowError, KeyError):
        return None


class ScheduleList(BaseModel):
    items: list[ScheduleView]


class ServiceRequest(BaseModel):
    """A service to register: its name and its OpenAPI 3.0/3.1 or Swagger 2.0
    document, given inline (``document``) or by a URL the server fetches
    (``url``) — one of the two."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "billing", "url": "http://127.0.0.1:9000/openapi.json"}],
        },
    )

    name: str = Field(pattern=SERVICE_NAME_PATTERN, description="how jobs name the service: lower case, digits, - and _")
    document: dict[str, Any] | str | None = Field(None, description="the document: a JSON object, or its JSON or YAML text")
    url: str | None = Field(
        None, pattern=r"^https?://", max_length=2000, description="where the server fetches the document, instead of `document`"
    )
    base_url: str | None = Field(
        None,
        pattern=r"^https?://",
        max_length=2000,
        description="where calls go; default: the document's first server (Swagger 2.0: its host and basePath)",
    )
    auth: Credentials | None = Field(
        None, description="credentials every call sends: stored sealed, never shown again, never in the log in clear"
    )
    polling: Polling = Field(default_factory=Polling, description="how an operation answering 202 is followed to its end")


class ServiceView(BaseModel):
    """A registered service: what jobs can call on it."""

    name: str
    title: str | None = None
    version: str | None = Field(None, description="the document's info.version")
    spec_version: str
    base_url: str | None = Field(None, description="where calls go (none: the document has no absolute server URL)")
    operations: list[Operation] = Field(description="each with its parameters and request body, schemas resolved")
    warnings: list[str] = Field(description="what the validator found wrong in the document; it is still usable")
    document_sha256: str
    source_url: str | None = None
    auth: dict[str, Any] | None = Field(
        None, description="how calls authenticate (`type`, and where an API key goes); never the secret"
    )
    polling: Polling
    registered_at: datetime

    @classmethod
    def of(cls, registered: ServiceRegistered) -> ServiceView:
        definition = registered.definition
        return cls(
            name=registered.name,
            title=definition.title,
            version=definition.version,
            spec_version=definition.spec_version,
            base_url=definition.base_url,
            operations=list(definition.operations.values()),
            warnings=list(definition.warnings),
            document_sha256=registered.document_sha256,
            source_url=registered.source_url,
            auth=registered.auth.shown() if registered.auth is not None else None,
            polling=registered.polling,
            registered_at=registered.registered_at,
        )


class ServiceSummary(BaseModel):
    name: str
    title: str | None = None
    version: str | None = None
    base_url: str | None = None
    operations: list[str] = Field(description="each operation as a job names it")
    warnings: int
    registered_at: datetime

    @classmethod
    def of(cls, registered: ServiceRegistered) -> ServiceSummary:
        definition = registered.definition
        return cls(
            name=registered.name,
            title=definition.title,
            version=definition.version,
            base_url=definition.base_url,
            operations=list(definition.operations),
            warnings=len(definition.warnings),
            registered_at=registered.registered_at,
        )


class ServiceList(BaseModel):
    items: list[ServiceSummary]


class UploadView(BaseModel):
    """A stored file: a job's payload names it by ``ref`` (a service call's ``files``)."""

    id: str
    ref: str = Field(description="how a payload names it: upload:<id>")
    filename: str
    content_type: str
    size: int
    sha256: str


class WorkerView(BaseModel):
    """A live runner: what it is, how busy, when it last said so."""

    runner_id: str = Field(description="the lease holder named in jobledger.job.started")
    host: str
    pid: int
    concurrency: int = Field(description="attempts it runs at most at once")
    running: int = Field(description="attempts it ran at its last beat")
    job_types: list[str]
    started_at: datetime
    beat_at: datetime = Field(description="its last beat; a runner 3 beats late is no longer listed")

    @classmethod
    def of(cls, beat: WorkerBeat) -> WorkerView:
        return cls(**beat.model_dump(include=set(cls.model_fields)))


class WorkerList(BaseModel):
    items: list[WorkerView]
    concurrency: int = Field(description="the live runners' concurrency, summed")
    running: int = Field(description="attempts they run, summed")


class JobLogList(BaseModel):
    """A page of a job's log, oldest first."""

    items: list[StoredLogLine]
    next_cursor: str | None = Field(description="pass as `cursor` for the lines after these; null: none stored yet")


class BulkAction(StrEnum):
    CANCEL = "cancel"
    """every matching PENDING, QUEUED or RUNNING job"""
    RETRY = "retry"
    """every matching FAILED or CANCELLED job"""


BULK_STATES: dict[BulkAction, frozenset[JobStatus]] = {
    BulkAction.CANCEL: frozenset({JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING}),
    BulkAction.RETRY: frozenset({JobStatus.FAILED, JobStatus.CANCELLED}),
}
"""The states a job may be in for each action; the filter narrows within them."""


class BulkFilter(BaseModel):
    """Which of the tenant's jobs (all that the action applies to when empty)."""

    model_config = ConfigDict(extra="forbid")

    state: JobStatus | None = Field(None, description="one of the states the action applies to")
    type: str | None = None
    labels: dict[str, str] = Field(default_factory=dict, description="every one of these labels")
    created_after: Moment | None = Field(None, description="created at or after this time")
    created_before: Moment | None = Field(None, description="created before this time")


class BulkRequest(BaseModel):
    """One page of a bulk action: ``limit`` matching jobs past ``cursor``, newest first."""

    model_config = ConfigDict(extra="forbid")

    action: BulkAction
    filter: BulkFilter = Field(default_factory=BulkFilter)
    dry_run: bool = Field(False, description="count the matching jobs and act on none")
    limit: int = Field(500, ge=1, le=1000, description="jobs acted on in this request")
    cursor: str | None = Field(None, description="next_cursor of the page before")
    reason: str | None = Field(None, max_length=1000, description="cancel: kept in each job's history")
    grace_s: float = Field(10.0, ge=0, le=3600, description="cancel: how long a running job may take to stop")


class BulkRefusal(BaseModel):
    id: str
    code: str = Field(description="the decider's rejection, as a 409 would name it")
    detail: str


class BulkResult(BaseModel):
    action: BulkAction
    dry_run: bool
    matched: int | None = Field(description="jobs the filter matches now: on a dry run and on the first page; null on later ones")
    accepted: list[str] = Field(description="ids of the jobs whose command the log acknowledged")
    refused: list[BulkRefusal] = Field(description="jobs that moved on since they matched")
    next_cursor: str | None = Field(description="pass as cursor for the next page; null: this was the last")


class UpdateJobRequest(BaseModel):
    """What to change of a job that has not started; what is left out stays."""

    model_config = ConfigDict(extra="forbid")

    priority: Priority | None = Field(None, description="a PENDING or QUEUED job's new priority")
    run_at: Moment | None = Field(
        None, description="a PENDING job's new run_at (while it waits for its run_at or a backoff); a past time: now"
    )

    @model_validator(mode="after")
    def _something(self) -> "UpdateJobRequest":
        if self.priority is None and self.run_at is None:
            raise ValueError("name what to change: priority, run_at or both")
        return self
