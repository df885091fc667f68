"""Write the contract files: ``schemas/json/`` and ``schemas/asyncapi.yaml``.

    python -m services.contract          # what ``make schemas`` runs
    python -m services.contract --check  # exit 1 if the files are stale

One JSON Schema per event type and version, per command, and per message of
the slot and schedule topics, generated from the pydantic models; and an
AsyncAPI 3 document describing the topics, their keys, headers and messages.
A test fails when the files on disk differ from what this writes.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from schemas import topics
from schemas.commands import AnyCommand
from schemas.events import EVENT_TYPES, event_type_name
from schemas.logs import LogRecord
from schemas.schedules import AnyScheduleCommand
from schemas.services import ServiceRecord
from schemas.slots import AnySlotMessage
from schemas.workers import WorkerRecord

HERE = Path(__file__).resolve().parents[1] / "schemas"
"""Where the contract and its generated files live."""
VERSION = "1.0.0"


def _members(annotated) -> list[type[BaseModel]]:
    union = typing.get_args(annotated)[0]
    return list(typing.get_args(union))


def _schema(model: type[BaseModel], schema_id: str) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": schema_id, **schema}


def contract_files() -> dict[str, str]:
    """Relative path → file content, for every generated file."""
    files: dict[str, dict[str, Any]] = {}
    messages: dict[str, dict[str, Any]] = {}
    for event_class in EVENT_TYPES:
        name = event_type_name(event_class)
        path = f"json/events/{name}.v{event_class.SCHEMA_VERSION}.json"
        files[path] = _schema(event_class, f"urn:jobledger:schema:{name}:v{event_class.SCHEMA_VERSION}")
        messages[name] = {
            "name": name,
            "title": name,
            "summary": (event_class.__doc__ or "").strip().split("\n")[0] or None,
            "contentType": topics.CLOUDEVENTS_CONTENT_TYPE,
            "headers": {"$ref": "#/components/schemas/CloudEventsHeaders"},
            "payload": {"$ref": f"./{path}"},
            "bindings": {"kafka": {"key": {"type": "string", "description": "the job id"}}},
        }
    for group, union, key in (
        ("commands", AnyCommand, "the job id"),
        ("slots", AnySlotMessage, "tenant/concurrency key"),
        ("schedules", AnyScheduleCommand, "the schedule id"),
        ("services", ServiceRecord, "tenant/service name"),
        ("workers", WorkerRecord, "the runner id"),
        ("logs", LogRecord, "the job id"),
    ):
        for model in _members(union):
            kind = model.model_fields["type" if "type" in model.model_fields else "kind"].default
            path = f"json/{group}/{kind}.json"
            files[path] = _schema(model, f"urn:jobledger:schema:{group}:{kind}")
            messages[f"{group}.{kind}"] = {
                "name": kind,
                "title": kind,
                "contentType": "application/json",
                "payload": {"$ref": f"./{path}"},
                "bindings": {"kafka": {"key": {"type": "string", "description": key}}},
            }
    for message in messages.values():
        if message.get("summary") is None:
            message.pop("summary", None)

    def refs(prefix: str) -> dict[str, Any]:
        return {
            name.split(".", 1)[-1] if prefix != "jobledger" else name: {"$ref": f"#/components/messages/{name}"}
            for name in messages
            if name.startswith(prefix)
        }

    channels = {
        "commands": {
            "address": topics.COMMANDS,
            "description": "Intents, keyed by job id; co-partitioned with jobs.events.",
            "messages": refs("commands."),
        },
        "events": {
            "address": topics.EVENTS,
            "description": "The log of record: CloudEvents 1.0 in structured mode, keyed by job id, kept forever. "
            "Per job, seq runs 1, 2, 3… and each event's prevhash is the previous event's hash.",
            "messages": refs("jobledger"),
        },
        "slots": {
            "address": topics.SLOTS,
            "description": "Slot requests and releases of jobs sharing a concurrency key, keyed by tenant/key.",
            "messages": refs("slots."),
        },
        "schedules": {
            "address": topics.SCHEDULES,
            "description": "Schedules, keyed by schedule id: created, deleted, and each tick submitted.",
            "messages": refs("schedules."),
        },
        "services": {
            "address": topics.SERVICES,
            "description": "The service registry, keyed by tenant/service name: each registration (the "
            "definition read from the service's OpenAPI document) and deletion, kept forever.",
            "messages": refs("services."),
        },
        "workers": {
            "address": topics.WORKERS,
            "description": "Runners' beats, keyed by runner id: each runner's beat every few seconds and its stop; "
            "compacted, a runner forgotten a day after its last record. GET /workers reads it.",
            "messages": refs("workers."),
        },
        "logs": {
            "address": topics.LOGS,
            "description": "Lines handlers write with ctx.log, keyed by job id: not events (no state, no hash chain), "
            "kept for the broker's retention; the read models keep each job's first lines (GET /jobs/{id}/logs).",
            "messages": refs("logs."),
        },
        "dlq": {
            "address": topics.DLQ,
            "description": "Records that could not be processed: original key, value and headers, plus "
            f"{topics.DLQ_HEADER_PREFIX}error, -stage, -source-topic, -source-partition, -source-offset headers.",
            "messages": {},
        },
    }
    asyncapi = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "jobledger",
            "version": VERSION,
            "description": "The topics of jobledger, an event-sourced job service over Kafka. "
            "Downstream consumers subscribe to jobs.events; `pip install` the project and "
            "`from schemas import parse_event` to read it typed and upcast.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": {
            "consumeJobEvents": {
                "action": "receive",
                "channel": {"$ref": "#/channels/events"},
                "summary": "Follow every state change of every job.",
            },
            "sendCommands": {
                "action": "send",
                "channel": {"$ref": "#/channels/commands"},
                "summary": "What ingest, runners and timers append; only the decider reads it.",
            },
        },
        "components": {
            "messages": messages,
            "schemas": {
                "CloudEventsHeaders": {
                    "type": "object",
                    "properties": {"content-type": {"type": "string", "const": topics.CLOUDEVENTS_CONTENT_TYPE}},
                }
            },
        },
    }
    rendered = {path: json.dumps(schema, indent=2, sort_keys=True) + "\n" for path, schema in files.items()}
    rendered["asyncapi.yaml"] = yaml.safe_dump(asyncapi, sort_keys=False, width=100, allow_unicode=True)
    return rendered


def _superseded(path: str) -> bool:
    """The schema of an older version of an event type: kept as it was written,
    for consumers still reading records of that version."""
    current = {event_type_name(cls): cls.SCHEMA_VERSION for cls in EVENT_TYPES}
    name, dot, version = path.removeprefix("json/events/").removesuffix(".json").rpartition(".v")
    return path.startswith("json/events/") and bool(dot) and version.isdigit() and int(version) < current.get(name, 0)


def stale(root: Path = HERE) -> list[str]:
    """Generated files that are missing, differ, or should no longer exist."""
    wanted = contract_files()
    found = {str(path.relative_to(root)) for path in (root / "json").rglob("*.json")}
    differing = [path for path, text in wanted.items() if not (root / path).exists() or (root / path).read_text() != text]
    return sorted(differing + [path for path in found - wanted.keys() if not _superseded(path)])


def write(root: Path = HERE) -> list[str]:
    wanted = contract_files()
    for path in (root / "json").rglob("*.json"):
        relative = str(path.relative_to(root))
        if relative not in wanted and not _superseded(relative):
            path.unlink()
    for name, text in wanted.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return sorted(wanted)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.contract", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    args = parser.parse_args()
    if args.check:
        outdated = stale()
        for path in outdated:
            print(f"stale: schemas/{path}", file=sys.stderr)
        sys.exit(1 if outdated else 0)
    written = write()
    print(f"wrote {len(written)} files under schemas/")


if __name__ == "__main__":
    main()
