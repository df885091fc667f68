"""Artifacts: results too large to travel in the log, kept in an S3-compatible
store. The event carries an :class:`ArtifactRef` instead of the result — where
it is, how large, and its sha256 — so the log stays small and an auditor can
still prove the stored bytes are the ones the job produced.

The API streams an artifact back at ``GET /jobs/{id}/artifacts/{name}``:
``name`` is the step's name for a pipeline step (``<step>:compensation`` for
its compensation's), ``result`` for a job's result.
"""

from __future__ import annotations

from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

RESULT = "result"
"""The artifact name of a plain job's result."""
COMPENSATION_SUFFIX = ":compensation"
"""A step's compensation's artifact is named ``<step>:compensation`` (a step's name has no colon)."""
DEFAULT_THRESHOLD_BYTES = 64 * 1024
"""A result whose JSON is larger than this is stored as an artifact."""


class ArtifactRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="the step's name, or 'result' for a job's result")
    uri: str = Field(description="s3://<bucket>/<key>")
    size: int = Field(ge=0, description="bytes")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex digest of the stored bytes")
    content_type: str = "application/json"

    @property
    def bucket(self) -> str:
        return self.uri.removeprefix("s3://").split("/", 1)[0]

    @property
    def key(self) -> str:
        return self.uri.removeprefix("s3://").split("/", 1)[1]


UPLOAD_PREFIX = "upload:"
"""How a job's payload names an uploaded file: ``upload:<id>`` (``POST /uploads``)."""


def upload_key(tenant: str, upload_id: str) -> str:
    """Where an uploaded file is stored: under its tenant, by its id."""
    return f"uploads/{quote(tenant, safe='')}/{quote(upload_id, safe='')}"


def artifact_key(tenant: str, job_id: str, name: str, attempt: int) -> str:
    """Where an attempt's artifact is stored: one object per attempt, never overwritten."""
    return f"{quote(tenant, safe='')}/{quote(job_id, safe='')}/{quote(name, safe='')}/{attempt}.json"
