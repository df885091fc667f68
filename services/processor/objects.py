"""What the Object Processing demo operations do (declared in :mod:`schemas.objects`)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from schemas.objects import ANALYZE, ENRICH, EXPORT, TRANSFORM, VALIDATE, ExportPayload, ObjectPayload
from services.processor.handlers import JobContext, PermanentError, handler


def _object(ctx: JobContext, payload: ObjectPayload) -> dict[str, Any]:
    """The object this step works on: from the step before it, else its payload."""
    for result in ctx.inputs.values():
        if isinstance(result, dict) and isinstance(result.get("object"), dict):
            return result["object"]
    if payload.object is None:
        raise PermanentError("no object to work on: give the pipeline (or this step) a payload with 'object'")
    return payload.object


@handler(VALIDATE)
async def validate(ctx: JobContext, payload: ObjectPayload) -> dict:
    obj = _object(ctx, payload)
    if not obj:
        raise PermanentError("the object is empty")
    await ctx.progress(100, "valid")
    return {"object": obj, "fields": len(obj)}


def _snake(key: str) -> str:
    key = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key.strip())
    return re.sub(r"[^0-9a-zA-Z]+", "_", key).strip("_").lower() or "_"


def _normalised(value: Any) -> Any:
    if isinstance(value, dict):
        return {_snake(key): _normalised(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalised(item) for item in value]
    return value.strip() if isinstance(value, str) else value


@handler(TRANSFORM)
async def transform(ctx: JobContext, payload: ObjectPayload) -> dict:
    return {"object": _normalised(_object(ctx, payload))}


@handler(ENRICH)
async def enrich(ctx: JobContext, payload: ObjectPayload) -> dict:
    obj = _object(ctx, payload)
    strings = [value for value in obj.values() if isinstance(value, str)]
    meta = {
        "field_count": len(obj),
        "string_chars": sum(len(value) for value in strings),
        "words": sum(len(value.split()) for value in strings),
    }
    return {"object": {**obj, "_meta": meta}}


@handler(ANALYZE)
async def analyze(ctx: JobContext, payload: ObjectPayload) -> dict:
    obj = _object(ctx, payload)
    numbers = [value for value in obj.values() if isinstance(value, (int, float)) and not isinstance(value, bool)]
    kinds: dict[str, int] = {}
    for value in obj.values():
        kind = type(value).__name__
        kinds[kind] = kinds.get(kind, 0) + 1
    numeric: dict[str, float] = {"count": len(numbers)}
    if numbers:
        numeric.update(sum=sum(numbers), min=min(numbers), max=max(numbers), mean=sum(numbers) / len(numbers))
    return {"object": obj, "analysis": {"types": kinds, "numeric": numeric}}


@handler(EXPORT)
async def export(ctx: JobContext, payload: ExportPayload) -> dict:
    obj = _object(ctx, payload)
    analysis = next((result.get("analysis") for result in ctx.inputs.values() if isinstance(result, dict)), None)
    document = orjson.dumps({"object": obj, "analysis": analysis}, option=orjson.OPT_SORT_KEYS).decode()
    if len(document) < payload.pad_to_bytes:
        document += " " * (payload.pad_to_bytes - len(document))
    return {"document": document, "bytes": len(document), "sha256": hashlib.sha256(document.encode()).hexdigest()}
