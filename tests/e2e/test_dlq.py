"""Dead letters for operators: listed, shown, sent back once fixed (jobledger dlq)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest

from schemas import topics
from services.adapters.log import dead_letter_headers, make_producer
from tests.e2e.conftest import eventually, jobledger, wait_for_job

pytestmark = pytest.mark.e2e


def submit_command(job_id: str) -> bytes:
    return json.dumps(
        {
            "type": "SubmitJob",
            "command_id": str(uuid.uuid4()),
            "job_id": job_id,
            "tenant": "default",
            "issued_at": datetime.now(timezone.utc).isoformat(),
            "job_type": "noop",
            "payload": {},
        }
    ).encode()


async def dead_letter(stack, value: bytes, stage: str, source: str, key: bytes) -> None:
    """A record as a consumer gives up on it: its bytes, and why, on jobs.dlq."""
    producer = make_producer(stack.settings)
    await producer.start()
    try:
        headers = [
            ("origin", b"test"),
            *dead_letter_headers(stage=stage, error="a handler was missing", topic=source, partition=0, offset=7),
        ]
        await (await producer.send(topics.DLQ, key=key, value=value, headers=headers))
    finally:
        await producer.stop()


def listed(stack, *options: str) -> dict[str, dict]:
    """``jobledger dlq ls --json``, by the dead letters' keys."""
    result = jobledger(stack, "dlq", "ls", "--json", *options)
    assert result.returncode == 0, result.stderr
    return {letter["key"]: letter for letter in map(json.loads, result.stdout.splitlines())}


async def test_a_fixed_dead_letter_is_sent_back_runs_and_leaves_the_list(api, stack):
    job_id = str(uuid.uuid4())
    event_key = f"event-{uuid.uuid4()}"
    await dead_letter(stack, submit_command(job_id), "decider", topics.COMMANDS, job_id.encode())
    await dead_letter(stack, b"{}", "projector", topics.EVENTS, event_key.encode())

    before = listed(stack)
    letter = before[job_id]
    shown = jobledger(stack, "dlq", "show", letter["at"])
    skipped = jobledger(stack, "dlq", "redrive", before[event_key]["at"], "--yes")
    sent = jobledger(stack, "dlq", "redrive", letter["at"], "--yes")

    assert (letter["stage"], letter["error"], letter["source"]["topic"]) == ("decider", "a handler was missing", topics.COMMANDS)
    assert shown.returncode == 0 and json.loads(shown.stdout)["headers"] == {"origin": "test"}
    assert "replay --swap" in skipped.stderr and "0 to send back" in skipped.stderr
    assert sent.returncode == 0 and "sent back" in sent.stderr, sent.stderr
    assert (await wait_for_job(api, job_id))["state"] == "SUCCEEDED"
    await eventually(lambda: job_id not in listed(stack))
    assert listed(stack, "--all")[job_id]["redriven"] is True


def test_redrive_names_what_to_send_back(stack):
    refused = jobledger(stack, "dlq", "redrive")
    unknown = jobledger(stack, "dlq", "redrive", "0:999999999")
    assert refused.returncode == 2 and "--stage or --all" in refused.stderr
    assert unknown.returncode == 1 and "not pending" in unknown.stderr
