"""jobledger's contract: commands, events, topic names and the pure decider.

Downstream consumers import this package and nothing else::

    from schemas import parse_event, JobSucceeded, topics

It imports nothing from the services, Kafka or MongoDB.
"""

from schemas import topics
from schemas.chain import GENESIS, event_hash
from schemas.commands import (
    AnyCommand,
    AttemptCommand,
    CancelJob,
    Command,
    CompleteJob,
    ExpireAttempt,
    FailJob,
    Heartbeat,
    ReportProgress,
    RetryJob,
    StartJob,
    SubmitJob,
    WakeJob,
    encode_command,
    parse_command,
)
from schemas.decider import apply_next, decide, evolve, fold
from schemas.errors import (
    InvalidTransition,
    JobAlreadyExists,
    JobledgerError,
    JobNotFound,
    NotDue,
    Rejection,
    SequenceGap,
    StaleAttempt,
)
from schemas.events import (
    EVENT_TYPES,
    AnyEvent,
    Event,
    JobCancelled,
    JobCancelRequested,
    JobFailed,
    JobProgressed,
    JobQueued,
    JobRetried,
    JobRetryScheduled,
    JobStarted,
    JobSubmitted,
    JobSucceeded,
    event_type_name,
    parse_event,
)
from schemas.job import TERMINAL, AttemptError, Job, JobStatus
from schemas.options import Backoff, JobOptions, Priority
from schemas.timers import deadlines, due_commands, next_deadline

__all__ = [
    "EVENT_TYPES",
    "GENESIS",
    "TERMINAL",
    "AnyCommand",
    "AnyEvent",
    "AttemptCommand",
    "AttemptError",
    "Backoff",
    "CancelJob",
    "Command",
    "CompleteJob",
    "Event",
    "ExpireAttempt",
    "FailJob",
    "Heartbeat",
    "InvalidTransition",
    "Job",
    "JobAlreadyExists",
    "JobCancelRequested",
    "JobCancelled",
    "JobFailed",
    "JobNotFound",
    "JobOptions",
    "JobProgressed",
    "JobQueued",
    "JobRetried",
    "JobRetryScheduled",
    "JobStarted",
    "JobStatus",
    "JobSubmitted",
    "JobSucceeded",
    "JobledgerError",
    "NotDue",
    "Priority",
    "Rejection",
    "ReportProgress",
    "RetryJob",
    "SequenceGap",
    "StaleAttempt",
    "StartJob",
    "SubmitJob",
    "WakeJob",
    "apply_next",
    "deadlines",
    "decide",
    "due_commands",
    "encode_command",
    "event_hash",
    "event_type_name",
    "evolve",
    "fold",
    "next_deadline",
    "parse_command",
    "parse_event",
    "topics",
]
