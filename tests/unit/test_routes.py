"""The HTTP edge without a broker or database: the routes get an Ingest whose
adapters are never reached (``dependency_overrides``), so every answer here is
decided by the edge alone — the refusals that must not reach the log."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from schemas.jobtypes import load_job_types
from services.ingest.app import create_app
from services.ingest.bootstrap import Ingest, ingest_of
from services.ingest.settings import DEV_API_KEY, IngestSettings

AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}


class Unreachable:
    """An adapter a refused request must never touch."""

    def __getattr__(self, name):
        raise AssertionError(f"the request reached the adapters ({name}) instead of being refused at the edge")


@pytest.fixture(scope="module")
def client():
    settings = IngestSettings(max_body_bytes=2048)
    app = create_app(settings)
    edge_only = Ingest(
        settings=settings,
        job_types=load_job_types(settings.job_type_modules),
        read_model=Unreachable(),
        producer=Unreachable(),
        watch=Unreachable(),
        mongo=Unreachable(),
        accepted=Unreachable(),
    )
    app.dependency_overrides[ingest_of] = lambda: edge_only
    return TestClient(app)  # not entered: no lifespan, so nothing connects


def fields(response) -> list[str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return [error["field"] for error in response.json()["errors"]]


def test_a_submit_of_an_unknown_type_or_a_bad_payload_is_a_422_naming_the_field(client):
    unknown = client.post("/jobs", json={"type": "resize"}, headers=AUTH)
    bad = client.post("/jobs", json={"type": "sleep", "payload": {"seconds": -1}}, headers=AUTH)
    extra = client.post("/jobs", json={"type": "noop", "retries": 3}, headers=AUTH)

    assert (unknown.status_code, fields(unknown)) == (422, ["type"])
    assert (bad.status_code, fields(bad)) == (422, ["payload.seconds"])
    assert (extra.status_code, fields(extra)) == (422, ["retries"])


def test_a_batch_answers_each_bad_item_at_its_index_and_appends_nothing_when_all_are_bad(client):
    response = client.post("/jobs:batch", json={"jobs": [{"type": "nope"}, {"type": "sleep"}]}, headers=AUTH)

    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["status"] for item in items] == [422, 422]
    assert [error["field"] for error in items[1]["problem"]["errors"]] == ["payload.seconds"]


def test_bad_query_parameters_are_422s_naming_them(client):
    label = client.get("/jobs", params={"label": "no-colon"}, headers=AUTH)
    cursor = client.get("/jobs", params={"cursor": "not-a-cursor"}, headers=AUTH)
    both = client.get("/jobs/some-id", params={"as_of": "2026-01-01T00:00:00Z", "wait_s": 1}, headers=AUTH)

    assert fields(label) == ["query.label.0"]
    assert fields(cursor) == ["query.cursor"]
    assert fields(both) == ["query.wait_s"]


def test_no_key_is_a_401_and_a_large_body_a_413(client):
    anonymous = client.post("/jobs", json={"type": "noop"})
    large = client.post("/jobs", json={"type": "noop", "payload": {"x": "y" * 4096}}, headers=AUTH)

    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
    assert large.status_code == 413 and large.headers["content-type"] == "application/problem+json"


def test_a_schedule_that_never_fires_is_refused(client):
    response = client.post("/schedules", json={"cron": "0 0 31 2 *", "job": {"type": "noop"}}, headers=AUTH)

    assert (response.status_code, fields(response)) == (422, ["cron"])
