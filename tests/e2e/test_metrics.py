"""Prometheus metrics after a known workload, scraped from every service of the stack."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import METRICS_KEY
from tests.e2e.conftest import wait_for_job

pytestmark = pytest.mark.e2e

TENANT = "metrics"
Samples = dict[tuple[str, frozenset], float]


async def scrape(stack) -> Samples:
    """Every sample of every service, summed over services: name and labels → value."""
    samples: Samples = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for service, url in stack.metrics_urls().items():
            response = await client.get(url)
            assert response.status_code == 200, f"{service}: {response.status_code}"
            for family in text_string_to_metric_families(response.text):
                for sample in family.samples:
                    key = (sample.name, frozenset(sample.labels.items()))
                    samples[key] = samples.get(key, 0.0) + sample.value
    return samples


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_metrics_count_a_known_workload_on_every_service(stack):
    before = await scrape(stack)
    async with httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {METRICS_KEY}"}, timeout=30) as api:
        submitted = [await api.post("/jobs", json={"type": "noop"}) for _ in range(5)]
        failing = await api.post(
            "/jobs",
            json={"type": "fail", "payload": {"message": "no"}, "max_attempts": 2, "backoff": {"base_s": 0.05, "jitter": 0}},
        )
        assert [answer.status_code for answer in [*submitted, failing]] == [202] * 6
        jobs = [await wait_for_job(api, answer.json()["id"]) for answer in [*submitted, failing]]
        missing = await api.get("/jobs/no-such-job")
    assert [job["state"] for job in jobs] == ["SUCCEEDED"] * 5 + ["FAILED"] and missing.status_code == 404

    after = await scrape(stack)
    for _ in range(50):  # the projector folds the last events a moment after the API has heard them
        if delta(before, after, "jobledger_projector_events_total") >= 5 * 4 + 6:
            break
        await asyncio.sleep(0.1)
        after = await scrape(stack)

    counted = {
        "submitted noop": delta(before, after, "jobledger_jobs_submitted_total", tenant=TENANT, type="noop"),
        "succeeded noop": delta(before, after, "jobledger_jobs_finished_total", tenant=TENANT, type="noop", outcome="succeeded"),
        "failed fail": delta(before, after, "jobledger_jobs_finished_total", tenant=TENANT, type="fail", outcome="failed"),
        "retries fail": delta(before, after, "jobledger_job_retries_total", tenant=TENANT, type="fail"),
        "errors fail": delta(before, after, "jobledger_attempt_failures_total", tenant=TENANT, type="fail", reason="error"),
    }
    assert counted == {"submitted noop": 5, "succeeded noop": 5, "failed fail": 1, "retries fail": 1, "errors fail": 2}
    assert delta(before, after, "jobledger_queue_wait_seconds_count", type="noop") >= 5
    assert delta(before, after, "jobledger_attempt_duration_seconds_count", type="noop", outcome="succeeded") >= 5
    assert delta(before, after, "jobledger_attempt_duration_seconds_count", type="fail", outcome="failed") >= 2
    assert delta(before, after, "jobledger_projector_events_total") >= 5 * 4 + 6
    assert delta(before, after, "jobledger_projector_apply_seconds_count") >= 1
    # HTTP by route template (the direct paths' answers too), never by path.
    assert delta(before, after, "jobledger_http_requests_total", method="POST", route="/jobs", status="202") >= 6
    assert delta(before, after, "jobledger_http_requests_total", method="GET", route="/jobs/{job_id}", status="404") == 1
    assert not any(name == "jobledger_http_requests_total" and "no-such-job" in str(labels) for name, labels in after)
    # Lag per group and partition, measured at the scrape.
    lag = {dict(labels)["group"] for name, labels in after if name == "jobledger_consumer_lag_records"}
    assert {"jobledger-processor", "jobledger-projector"} <= lag
    assert after[("jobledger_runner_concurrency", frozenset())] >= 1
