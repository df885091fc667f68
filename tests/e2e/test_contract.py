"""The contract downstream consumers rely on, checked on the real topic."""

from __future__ import annotations

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka_event

from schemas import parse_event, topics
from tests.e2e.conftest import read_topic, wait_for_job

pytestmark = pytest.mark.e2e


async def test_every_event_of_a_job_is_a_structured_cloudevent_on_the_topic(api, stack):
    job_id = (await api.post("/jobs", json={"type": "flaky", "payload": {"failures": 1}, "backoff": {"base_s": 0}})).json()["id"]
    await wait_for_job(api, job_id)

    records = await read_topic(stack, topics.EVENTS, lambda rs: sum(r.key == job_id.encode() for r in rs) >= 7)

    ours = [record for record in records if record.key == job_id.encode()]
    assert len(ours) >= 7
    for record in ours:  # (the topic may also hold records no jobledger service wrote: the poison tests add some)
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
