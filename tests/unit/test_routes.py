"""The HTTP edge without a broker or database: the routes get an Ingest whose
adapters are never reached (``dependency_overrides``), so every answer here is
decided by the edge alone — the refusals that must not reach the log."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import pytest
from fastapi.testclient import TestClient

from schemas import parse_command
from schemas.api import BatchAccepted, JobAccepted, job_links
from services.common.modules import load_job_types
from services.ingest.accepted import AcceptedJobs
from services.ingest.app import create_app
from services.ingest.bootstrap import Ingest, ingest_of
from services.ingest.settings import DEV_API_KEY, IngestSettings

AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}


class Unreachable:
    """An adapter a refused request must never touch."""

    def __getattr__(self, name):
        raise AssertionError(f"the request reached the adapters ({name}) instead of being refused at the edge")


def edge_only_app(settings: IngestSettings, direct_paths: bool = False) -> TestClient:
    """The app with an Ingest whose adapters must never be reached (``direct_paths``:
    the direct paths get it too, so they refuse alike). Not entered: no lifespan, so nothing connects."""
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
    if direct_paths:
        app.state.ingest = edge_only
    return TestClient(app)


@pytest.fixture(scope="module")
def client():
    return edge_only_app(IngestSettings(max_body_bytes=2048))


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


@pytest.mark.parametrize("token", ["metrics-s3cret", "sha256:" + hashlib.sha256(b"metrics-s3cret").hexdigest()])
def test_metrics_need_the_metrics_token_once_one_is_set_and_an_api_key_is_not_enough(token):
    guarded = edge_only_app(IngestSettings(metrics_token=token))

    refused = [guarded.get("/metrics", headers=headers) for headers in ({}, AUTH, {"Authorization": "Bearer wrong"})]
    scraped = guarded.get("/metrics", headers={"Authorization": "Bearer metrics-s3cret"})

    assert [response.status_code for response in refused] == [401, 401, 401]
    assert refused[0].headers["content-type"] == "application/problem+json"
    assert "JOBLEDGER_METRICS_TOKEN" in refused[0].json()["detail"]
    assert scraped.status_code == 200 and "jobledger_http_requests" in scraped.text
    assert edge_only_app(IngestSettings()).get("/metrics").status_code == 200, "unset: no token, like any exporter"
    with pytest.raises(ValueError, match="64 hex digits"):
        IngestSettings(metrics_token="sha256:not-hex")


def test_a_schedule_that_never_fires_is_refused(client):
    response = client.post("/schedules", json={"cron": "0 0 31 2 *", "job": {"type": "noop"}}, headers=AUTH)

    assert (response.status_code, fields(response)) == (422, ["cron"])


def test_a_body_that_is_not_json_is_refused_by_what_is_wrong_with_it(client):
    broken = client.post(
        "/jobs", content=b'{"type": "noop", "payload": {"a": 1,}}', headers={**AUTH, "Content-Type": "application/json"}
    )
    untyped = client.post("/jobs", content=b'{"type": "noop"}', headers=AUTH)
    text = client.post("/jobs:batch", content=b'{"jobs": []}', headers={**AUTH, "Content-Type": "text/plain"})

    assert broken.status_code == 422 and fields(broken) == [""], "the body as a whole, not a field named 36"
    assert (
        broken.json()["errors"][0]["message"]
        == "not valid JSON: Expecting property name enclosed in double quotes (at character 36)"
    )
    assert "Content-Type: application/json; this request had no Content-Type" in untyped.json()["detail"]
    assert "this request had Content-Type text/plain" in text.json()["detail"]


def test_a_validators_message_reaches_the_client_without_pydantics_prefix(client):
    cron = client.post("/schedules", json={"cron": "99 * * * *", "job": {"type": "noop"}}, headers=AUTH)
    zone = client.post("/schedules", json={"cron": "0 * * * *", "timezone": "Mars/Base", "job": {"type": "noop"}}, headers=AUTH)

    assert cron.json()["errors"][0]["message"].startswith("'99 * * * *' is not a cron expression")
    assert zone.json()["errors"][0]["message"].startswith("'Mars/Base' is not an IANA time zone")


def test_a_cursor_jobledger_did_not_make_is_a_422(client):
    for cursor in (base64.b64encode(b"[1,2]").decode(), "!!!", base64.b64encode(b'{"a": 1}').decode()):
        response = client.get("/jobs", params={"cursor": cursor}, headers=AUTH)
        assert (response.status_code, fields(response)) == (422, ["query.cursor"]), cursor


class LaggingTail:
    """A log tail that has heard a job only up to an older version than the read model holds."""

    def __init__(self, heard) -> None:
        self.heard = heard

    def from_start(self, job_id):
        return self.heard

    def heard_of(self, job_id):
        return True

    def catch_up(self, job_id, job):
        return job

    def served(self, job_id, version):
        pass


class StoredJobs:
    def __init__(self, stored) -> None:
        self.stored = stored

    async def job(self, job_id, tenant):
        return self.stored


class Acknowledging:
    """A producer whose every record is acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, topic, key, value, headers=None):
        self.sent.append((topic, value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def test_a_cancel_is_decided_on_the_read_models_version_when_the_tail_lags_behind_it():
    from tests.unit.test_decider import JOB, cancel, given_history, retry, start, submit

    cancelled, _ = given_history(submit(), cancel())
    running_again, _ = given_history(submit(), cancel(), retry(), start(attempt=2))
    settings = IngestSettings(api_keys={"acme-key": "acme"})
    app = create_app(settings)
    producer = Acknowledging()
    app.dependency_overrides[ingest_of] = lambda: Ingest(
        settings=settings,
        job_types=load_job_types(settings.job_type_modules),
        read_model=StoredJobs(running_again),
        producer=producer,
        watch=LaggingTail(cancelled),
        mongo=Unreachable(),
        accepted=Unreachable(),
    )

    response = TestClient(app).post(f"/jobs/{JOB}/cancel", json={}, headers={"Authorization": "Bearer acme-key"})

    assert response.status_code == 202, "a client that saw the retried run RUNNING (a stream reads the read model) may cancel it"
    assert response.json()["state"] == "RUNNING" and [topic for topic, _ in producer.sent] == ["jobs.commands"]


@pytest.fixture
def direct():
    """An app whose plain submits are answered by the direct path: an Ingest
    that acknowledges every record and touches nothing else."""
    settings = IngestSettings(api_keys={"acme-key": "acme"}, max_body_bytes=2048)
    app = create_app(settings)
    producer = Acknowledging()
    app.state.ingest = Ingest(
        settings=settings,
        job_types=load_job_types(settings.job_type_modules),
        read_model=Unreachable(),
        producer=producer,
        watch=Unreachable(),
        mongo=Unreachable(),
        accepted=AcceptedJobs(100),
    )
    return TestClient(app), producer


def test_a_plain_submit_is_appended_and_answered_as_the_route_documents_it(direct):
    client, producer = direct

    response = client.post(
        "/jobs",
        json={"type": "sleep", "payload": {"seconds": 1}, "labels": {"team": "ml"}},
        headers={"Authorization": "Bearer acme-key", "X-Correlation-Id": "trace-7"},
    )

    assert response.status_code == 202, response.text
    accepted = JobAccepted.model_validate(response.json())
    assert response.headers["location"] == f"/jobs/{accepted.id}" and accepted.state == "PENDING"
    [(topic, value)] = producer.sent
    command = parse_command(value)
    assert topic == "jobs.commands" and command.job_id == accepted.id
    assert (command.tenant, command.correlation_id, command.options.labels) == ("acme", "trace-7", {"team": "ml"})


@pytest.mark.parametrize(
    "body, headers, status, field",
    [
        ({"type": "sleep", "payload": {"seconds": -1}}, {}, 422, ["payload.seconds"]),
        ({"type": "resize"}, {}, 422, ["type"]),
        ({"type": "noop"}, {"Authorization": "Bearer wrong"}, 401, None),
    ],
    ids=["bad payload", "unknown type", "unknown key"],
)
def test_what_the_direct_path_refuses_gets_the_routes_own_answer_and_nothing_is_appended(direct, body, headers, status, field):
    client, producer = direct

    response = client.post("/jobs", json=body, headers={"Authorization": "Bearer acme-key", **headers})

    assert response.status_code == status and response.headers["content-type"] == "application/problem+json"
    if field is not None:
        assert fields(response) == field
    assert producer.sent == []


def test_a_chunked_body_over_the_limit_is_a_413_problem_on_the_direct_path_too(direct):
    client, producer = direct

    def chunks():
        yield b'{"type": "noop", "payload": {"x": "'
        yield b"y" * 4096
        yield b'"}}'

    response = client.post(
        "/jobs", content=chunks(), headers={"Authorization": "Bearer acme-key", "Content-Type": "application/json"}
    )

    assert response.status_code == 413 and response.headers["content-type"] == "application/problem+json"
    assert producer.sent == []


class HeardTail(LaggingTail):
    """A log tail that has heard the job from its first event (no database read)."""

    def from_start(self, job_id):
        return self.heard if self.heard is not None and job_id == self.heard.job_id else None


@pytest.fixture
def reading():
    """An app whose reads of one job are answered by the direct path: the
    tail has heard a finished job of tenant acme; the read model has nothing."""
    from tests.unit.test_decider import complete, given_history, start, submit

    succeeded, _ = given_history(submit(), start(), complete())
    settings = IngestSettings(api_keys={"acme-key": "acme", "other-key": "other"})
    app = create_app(settings)
    app.state.ingest = Ingest(
        settings=settings,
        job_types=load_job_types(settings.job_type_modules),
        read_model=StoredJobs(None),
        producer=Unreachable(),
        watch=HeardTail(succeeded),
        mongo=Unreachable(),
        accepted=AcceptedJobs(100),
    )
    return TestClient(app), succeeded


def test_a_read_of_one_job_is_answered_as_the_route_documents_it(reading):
    from schemas.api import JobView

    client, job = reading
    client.app.dependency_overrides[ingest_of] = lambda: pytest.fail("the read went through the framework's route")

    now = client.get(f"/jobs/{job.job_id}", headers={"Authorization": "Bearer acme-key"})
    waited = client.get(
        f"/jobs/{job.job_id}", params={"wait_s": "2.5", "after_version": "1"}, headers={"Authorization": "Bearer acme-key"}
    )

    for response in (now, waited):
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        assert response.json() == JobView.of(job).model_dump(mode="json")


@pytest.mark.parametrize(
    "params, key, status, field",
    [
        ({"wait_s": "61"}, "acme-key", 422, ["query.wait_s"]),
        ({"wait_s": "-1"}, "acme-key", 422, ["query.wait_s"]),
        ({"wait_s": "soon"}, "acme-key", 422, ["query.wait_s"]),
        ({"after_version": "1.5"}, "acme-key", 422, ["query.after_version"]),
        ({"as_of": "2026-01-01T00:00:00Z", "wait_s": "1"}, "acme-key", 422, ["query.wait_s"]),
        ({}, "wrong-key", 401, None),
        ({}, "other-key", 404, None),
    ],
    ids=[
        "wait too long",
        "negative wait",
        "not a number",
        "fractional version",
        "as_of with wait",
        "unknown key",
        "other tenant",
    ],
)
def test_a_read_the_direct_path_does_not_take_gets_the_routes_own_answer(reading, params, key, status, field):
    client, job = reading

    response = client.get(f"/jobs/{job.job_id}", params=params, headers={"Authorization": f"Bearer {key}"})

    assert response.status_code == status and response.headers["content-type"] == "application/problem+json"
    assert response.json()["instance"] == f"/jobs/{job.job_id}" or status == 401
    if field is not None:
        assert fields(response) == field


class PartlyAcknowledging:
    """Acknowledges a batch's first record, refuses its second, never answers for the rest."""

    async def send_many(self, topic, records):
        from services.adapters.rdproducer import Deliveries

        deliveries = Deliveries(asyncio.get_running_loop(), len(records))
        deliveries.report(0, None)
        deliveries.report(1, "refused by the broker")
        return deliveries


def test_a_batch_answers_503_for_each_item_the_broker_did_not_acknowledge_in_time():
    settings = IngestSettings(api_keys={"acme-key": "acme"}, produce_timeout_s=0.2)
    app = create_app(settings)
    app.state.ingest = Ingest(
        settings=settings,
        job_types=load_job_types(settings.job_type_modules),
        read_model=Unreachable(),
        producer=PartlyAcknowledging(),
        watch=Unreachable(),
        mongo=Unreachable(),
        accepted=AcceptedJobs(100),
    )
    body = {"jobs": [{"type": "noop"}, {"type": "noop"}, {"type": "nope"}, {"type": "noop"}]}

    response = TestClient(app).post("/jobs:batch", json=body, headers={"Authorization": "Bearer acme-key"})

    assert response.status_code == 200
    answer = response.json()
    assert BatchAccepted.model_validate(answer).model_dump(mode="json") == answer  # written as JSON at once: still the model
    assert [item["status"] for item in answer["items"]] == [202, 503, 422, 503]
    assert answer["items"][0]["links"] == job_links(answer["items"][0]["id"])
    assert (answer["accepted"], answer["rejected"]) == (1, 3)
    assert answer["items"][1]["problem"]["instance"] == "/jobs:batch#1"
