"""The Object Processing demo: five operations on a JSON object, each needing
the one before it — ``validate → transform → enrich → analyze → export``.

Ask for ``export`` alone and the pipeline plans all five::

    POST /jobs {"type": "pipeline", "payload": {"object": {"Name": " Ada "}},
                "steps": [{"name": "export", "type": "export"}]}

Each is a job type (declared here, so ingest validates their payloads) and a
registered operation with its prerequisite (so the plan adds it). The first
step takes the object from its payload; every later one from the result of
the step before it. Their implementations: ``services.processor.objects``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.jobtypes import job_type
from schemas.pipelines import Operations, define_pipeline, operations


class ObjectPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    object: dict[str, Any] | None = Field(None, description="the object to work on (the first step's input)")


class ExportPayload(ObjectPayload):
    pad_to_bytes: int = Field(
        0, ge=0, le=16 * 1024 * 1024, description="pad the exported document to at least this size (to try large results)"
    )


VALIDATE = job_type("validate", payload=ObjectPayload, description="checks the object: a JSON object with string keys")
TRANSFORM = job_type("transform", payload=ObjectPayload, description="normalises keys to snake_case and trims strings")
ENRICH = job_type("enrich", payload=ObjectPayload, description="adds derived fields: counts of fields and characters")
ANALYZE = job_type("analyze", payload=ObjectPayload, description="summarises the values: types, numeric statistics")
EXPORT = job_type("export", payload=ExportPayload, description="serialises the object and its analysis, with a sha256")


def demo_operations(known: Operations = operations) -> None:
    """Register the five operations and their dependency rules in ``known``."""
    known.declare("validate")
    known.declare("transform", requires=("validate",))
    known.declare("enrich", requires=("transform",))
    known.declare("analyze", requires=("enrich",))
    known.declare("export", requires=("analyze",))


demo_operations()

OBJECT_PROCESSING = define_pipeline("object-processing", [{"name": "export", "type": "export"}])
"""The whole demo by name: ``{"type": "pipeline", "pipeline": "object-processing", "payload": {"object": …}}``."""
