"""The contract downstream consumers rely on, checked on the real topic."""

from __future__ import annotations

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka_event

from schemas import parse_event, topics
from tests.e2e.conftest import read_topic, wait_for_job

pytestmark = pytest.mark.e2e


async def test_every_record_on_the_event_topic_is_a_structured_cloudevent(api, stack):
    job_id = (await api.post("/jobs", json={"type": "flaky", "payload": {"failures": 1}, "backoff": {"base_s": 0}})).json()["id"]
    await wait_for_job(api, job_id)

    records = await read_topic(stack, topics.EVENTS, lambda rs: sum(r.key == job_id.encode() for r in rs) >= 7)

    assert records
    for record in records:
        headers = {key: value for key, value in record.headers}
        assert headers["content-type"] == b"application/cloudevents+json"
        event = from_kafka_event(KafkaMessage(headers=headers, key=record.key, value=record.value))
        attributes = event.get_attributes()
        assert attributes["specversion"] == "1.0"
        assert attributes["source"] == "/jobledger/processor"
        assert attributes["type"].startswith("jobledger.job.")
        assert attributes["subject"] == record.key.decode()
        assert {"seq", "prevhash", "hash", "schemaversion", "causationid", "correlationid", "tenant"} <= attributes.keys()
        assert parse_event(record.value).seq == attributes["seq"]
