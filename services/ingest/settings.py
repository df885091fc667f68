from pathlib import Path
from typing import Annotated, Any

import orjson
from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from schemas.api import DEFAULT_TENANT, DEV_API_KEY
from services.common.settings import DECIDER_GROUP, LOGS_GROUP, PROJECTOR_GROUP, RUNNER_GROUP, ConnectionSettings, pairs
from services.ingest.keys import KeyTable, digest_of


class IngestSettings(ConnectionSettings):
    host: str = Field("127.0.0.1", description="address the HTTP API binds")
    port: int = Field(8000, ge=0, le=65535, description="port of the HTTP API")
    reuse_port: bool = Field(
        False, description="listen with SO_REUSEPORT: several ingest processes share the port, the kernel spreads connections"
    )
    api_keys: Annotated[dict[str, str], NoDecode] = Field(
        {DEV_API_KEY: DEFAULT_TENANT},
        description="API key → tenant and scopes: JOBLEDGER_API_KEYS='key1=tenant1,key2=tenant2:jobs:read' or a JSON "
        "object; a key may be given as sha256:<hex> (jobledger keys new); without scopes a key has all "
        "(jobs:read, jobs:write, admin)",
    )
    metrics_token: str | None = Field(
        None,
        description="a bearer token GET /metrics requires (Prometheus: authorization: {credentials: …}), in clear or "
        "as sha256:<hex>; unset, the default, it takes none, like any exporter — set it where the API port is public: "
        "the metrics name every tenant and job type",
    )
    job_type_modules: list[str] = Field(
        ["schemas.builtin", "schemas.objects"],
        description="modules declaring the job types ingest accepts (schemas.jobtypes.job_type)",
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="largest request body accepted")
    max_upload_bytes: int = Field(
        64 * 1_048_576, ge=1024, description="largest file POST /uploads takes (held in memory while it is stored)"
    )
    accepted_cache_size: int = Field(
        10_000, ge=0, description="accepted jobs remembered to answer reads before they are projected"
    )
    produce_timeout_s: float = Field(10.0, gt=0, description="how long a submit waits for the broker's ack")
    unknown_job_wait_s: float = Field(
        0.0,
        ge=0,
        le=30,
        description="how long a read of a job this ingest knows nothing of waits for it to appear before a 404: with "
        "several ingest replicas behind one address, another may have accepted it a moment ago; set, ingest also "
        "follows the submissions on jobs.commands (0: neither)",
    )
    bulk_catch_up_s: float = Field(
        10.0,
        ge=0,
        le=120,
        description="how long POST /jobs:bulk (its dry run and first page) waits for the read models to hold every job "
        "accepted before it (the decider's and the projector's groups past the log's end as it was); after that it acts "
        "on what they hold, and logs so (0: no wait)",
    )
    service_files: list[str] = Field(
        [],
        description="files registering services at start-up, each a POST /services body (JSON or YAML) with an optional "
        "tenant: JOBLEDGER_SERVICE_FILES='[\"billing.yaml\"]'",
    )

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _no_empty_token(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("metrics_token")
    @classmethod
    def _check_token(cls, value: str | None) -> str | None:
        if value is not None:
            digest_of(value)  # a ValueError naming what is wrong with a sha256:<hex> one
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("{"):
            return orjson.loads(value)
        keys = pairs(value, "API keys are 'key=tenant'")
        if not keys:
            raise ValueError("at least one API key is needed")
        return keys

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, value: dict[str, str]) -> dict[str, str]:
        KeyTable(value)  # each grant and each hashed key readable, or a ValueError naming it
        return value

    consumer_groups: dict[str, str] = Field(
        {"decider": DECIDER_GROUP, "runner": RUNNER_GROUP, "projector": PROJECTOR_GROUP, "logs": LOGS_GROUP},
        description="consumer groups whose lag GET /status reports (name → group id)",
    )
    supervisor_file: Path | None = Field(
        None, description="make run: where its supervisor counts restarts, reported by GET /status (set by the stack)"
    )
    stream_poll_s: float = Field(
        1.0, gt=0, description="how often a waiting request (wait_s, /stream) reads the read model when the log brings nothing"
    )
