from pydantic import Field

from services.common.settings import ConnectionSettings

DEV_API_KEY = "jl-dev-key"
"""The embedded default's key. Set JOBLEDGER_API_KEYS anywhere else."""


class IngestSettings(ConnectionSettings):
    host: str = Field("127.0.0.1", description="address the HTTP API binds")
    port: int = Field(8000, ge=0, le=65535, description="port of the HTTP API")
    api_keys: dict[str, str] = Field(
        {DEV_API_KEY: "default"},
        description='API key → tenant, as JSON: JOBLEDGER_API_KEYS=\'{"key": "tenant"}\'',
    )
    handler_modules: list[str] = Field(
        ["services.processor.builtin"], description="modules declaring the job types ingest accepts"
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="largest request body accepted")
    accepted_cache_size: int = Field(
        10_000, ge=0, description="accepted jobs remembered to answer reads before they are projected"
    )
    produce_timeout_s: float = Field(10.0, gt=0, description="how long a submit waits for the broker's ack")
