"""What every service needs to find the broker and the database.

Each service has one settings class that extends this one; every field can be
set by an environment variable ``JOBLEDGER_<FIELD>``. The defaults run the
embedded stack that ``make run`` starts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.common.egress import ANY_HOST, pattern_problem

DECIDER_GROUP = "jobledger-processor"
"""The decider's consumer group (on jobs.commands, jobs.slots and jobs.schedules)."""
RUNNER_GROUP = "jobledger-runner"
PROJECTOR_GROUP = "jobledger-projector"
LOGS_GROUP = "jobledger-logs"
"""The projector's job-log part (on jobs.logs)."""


ALL_TENANTS = "*"
"""In ``JOBLEDGER_RETENTION``: every tenant not named."""
_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def pairs(text: str, what: str) -> dict[str, str]:
    """``a=b,c=d`` → ``{"a": "b", "c": "d"}``; a bad item is named by its place, not echoed (it may be a secret)."""
    found: dict[str, str] = {}
    for number, item in enumerate(filter(None, (part.strip() for part in text.split(","))), 1):
        name, separator, value = item.partition("=")
        if not separator or not name.strip() or not value.strip():
            raise ValueError(f"{what} pairs separated by commas; item {number} is not")
        found[name.strip()] = value.strip()
    return found


def kept_for(text: str) -> timedelta | None:
    """``30d``, ``12h``, ``90m``, ``3600s`` → a duration; ``keep`` → ``None`` (forever)."""
    text = text.strip().lower()
    if text == "keep":
        return None
    number, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not number.isdigit() or int(number) <= 0:
        raise ValueError(f"a retention is a positive whole number of d, h, m or s (30d), or keep; got {text!r}")
    return timedelta(seconds=int(number) * _UNITS[unit])


class ConnectionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBLEDGER_", extra="ignore", hide_input_in_errors=True)
    """A refused value is not echoed: it may be a key, a password in a URL, a secret."""

    kafka_bootstrap: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers, comma separated")
    mongo_url: str = Field(
        "mongodb://127.0.0.1:27027/?retryWrites=false&directConnection=true",
        description="MongoDB connection string",
    )
    mongo_db: str = Field("jobledger", description="database holding the read models")
    s3_endpoint: str = Field(
        "http://127.0.0.1:19000", description="S3 API of the artifact store (large results); empty: no artifact store"
    )
    s3_bucket: str = Field("jobledger-artifacts", description="bucket the artifacts go to (created if missing)")
    s3_access_key: str = Field("jobledger", description="S3 access key id")
    s3_secret_key: str = Field("jobledger-secret", description="S3 secret access key")
    s3_region: str = Field("us-east-1", description="S3 region (MinIO and S3Proxy accept any)")
    partitions: int = Field(8, ge=1, description="partitions of each jobs.* topic")
    replication_factor: int = Field(
        1, ge=1, description="replicas of each partition of the jobs.* topics (3 on a cluster; at most the brokers)"
    )
    secret_key: str | None = Field(
        None,
        description="Fernet key(s) sealing service credentials in the log, comma separated (the first seals, each opens); "
        "make run generates one into its data directory",
    )
    retention: Annotated[dict[str, str], NoDecode] = Field(
        {},
        description="how long each tenant's finished jobs stay in the read models: JOBLEDGER_RETENTION='acme=30d,"
        "*=90d' (d, h, m or s; '*': every other tenant; keep: forever, the default); the log keeps them all",
    )

    @field_validator("retention", mode="before")
    @classmethod
    def _parse_retention(cls, value: Any) -> Any:
        return pairs(value, "retention is 'tenant=30d'") if isinstance(value, str) else value

    @field_validator("retention")
    @classmethod
    def _check_retention(cls, value: dict[str, str]) -> dict[str, str]:
        for keep in value.values():
            kept_for(keep)  # a ValueError naming what is wrong
        return value

    def retention_of(self, tenant: str) -> timedelta | None:
        """How long ``tenant``'s finished jobs stay in the read models; ``None``: forever."""
        keep = self.retention.get(tenant, self.retention.get(ALL_TENANTS))
        return kept_for(keep) if keep is not None else None

    def past_retention(self, tenant: str, finished_at: datetime | None, now: datetime) -> bool:
        """Whether a job of ``tenant`` that ended at ``finished_at`` (``None``: it has not) is past its retention."""
        keep = self.retention_of(tenant)
        return keep is not None and finished_at is not None and finished_at < now - keep

    service_hosts: Annotated[list[str], NoDecode] = Field(
        [ANY_HOST],
        description="hosts a registered service may be fetched from and called at (ingest and the runner): patterns "
        "such as 'api.example.com,*.corp.internal,127.0.0.1:8080' (comma separated, or a JSON list); '*', the default, "
        "allows every host — set it where tenants should not reach the servers' own network",
    )

    @field_validator("service_hosts", mode="before")
    @classmethod
    def _parse_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return orjson.loads(value) if value.lstrip().startswith("[") else [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("service_hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one host pattern is needed ('*' allows every host)")
        for pattern in value:
            problem = pattern_problem(pattern)
            if problem is not None:
                raise ValueError(problem)
        return value

    metrics_host: str = Field("127.0.0.1", description="processor and projector: address their metrics endpoint binds")
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="processor and projector: port of their Prometheus /metrics (unset: none); ingest serves "
        "GET /metrics on its API",
    )
    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"
    fetch_max_wait_ms: int = Field(
        500, ge=0, description="how long the broker may hold a fetch that finds no data (Kafka answers at once when data arrives)"
    )
    group_session_timeout_s: float = Field(
        10.0, gt=1, description="consumer-group session timeout: how soon a dead member's partitions move"
    )
    linger_ms: int = Field(
        0,
        ge=0,
        description="how long a producer waits to batch records (records sent while a request is in flight are batched anyway)",
    )
