"""jobledger's contract: commands, events, topic names and the pure decider.

Downstream consumers import this package and nothing else::

    from schemas import parse_event, JobSucceeded, topics

It imports nothing from the services, Kafka or MongoDB.
"""

from schemas import topics
from schemas.chain import GENESIS, event_hash
from schemas.commands import (
    AnyCommand,
    Command,
    CompleteJob,
    FailJob,
    StartJob,
    SubmitJob,
    encode_command,
    parse_command,
)
from schemas.decider import apply_next, decide, evolve, fold
from schemas.errors import (
    InvalidTransition,
    JobAlreadyExists,
    JobledgerError,
    JobNotFound,
    Rejection,
    SequenceGap,
    StaleAttempt,
)
from schemas.events import (
    EVENT_TYPES,
    AnyEvent,
    Event,
    JobFailed,
    JobQueued,
    JobStarted,
    JobSubmitted,
    JobSucceeded,
    event_type_name,
    parse_event,
)
from schemas.job import TERMINAL, Job, JobStatus

__all__ = [
    "EVENT_TYPES",
    "GENESIS",
    "TERMINAL",
    "AnyCommand",
    "AnyEvent",
    "Command",
    "CompleteJob",
    "Event",
    "FailJob",
    "InvalidTransition",
    "Job",
    "JobAlreadyExists",
    "JobFailed",
    "JobNotFound",
    "JobQueued",
    "JobStarted",
    "JobStatus",
    "JobSubmitted",
    "JobSucceeded",
    "JobledgerError",
    "Rejection",
    "SequenceGap",
    "StaleAttempt",
    "StartJob",
    "SubmitJob",
    "apply_next",
    "decide",
    "encode_command",
    "event_hash",
    "event_type_name",
    "evolve",
    "fold",
    "parse_command",
    "parse_event",
    "topics",
]
