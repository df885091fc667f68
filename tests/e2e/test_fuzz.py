"""Generated requests against the real API: whatever arrives, the answer is a
4xx problem document or an acceptance the rest of the stack can carry.

- schemathesis derives requests from ``/openapi.json`` (every route, bounded);
- hypothesis sends submit bodies with extreme values in every field (the
  strategies of ``tests/unit/test_edge.py``) and follows each accepted job.

Both use a tenant of their own. Afterwards a fresh job of the default tenant
must still succeed: nothing they sent stalled a consumer.
"""

from __future__ import annotations

import json

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from tests.e2e.conftest import FUZZ_KEY, cancel_unfinished, wait_for_job
from tests.unit.test_edge import submit_bodies

pytestmark = pytest.mark.e2e

FUZZ = {"Authorization": f"Bearer {FUZZ_KEY}"}
PROBLEM = "application/problem+json"
BOUNDED = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

schema = schemathesis.openapi.from_dict(create_app(IngestSettings()).openapi()).exclude(path="/jobs:stream")
"""Every route but the tenant's live stream, which takes no input and never ends
(tests/e2e/test_jobs.py covers it)."""


@pytest.fixture(scope="module")
def api_url(stack) -> str:
    return stack.api_url


@schema.parametrize()
@BOUNDED
def test_no_generated_request_is_a_server_error(case, api_url):
    response = case.call(base_url=api_url, headers=FUZZ, timeout=30)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
    if response.status_code >= 400:
        content_type = response.headers.get("content-type")
        assert PROBLEM in (content_type if isinstance(content_type, list) else [content_type]), response.text


runnable_at_once = submit_bodies.filter(lambda body: body.get("type") != "sleep")
"""A generated sleep may last an hour, and would hold one of the runner's
slots for the tests that come after."""


@settings(BOUNDED, max_examples=120)
@given(st.one_of(runnable_at_once, runnable_at_once.map(lambda body: {"jobs": [body]})))
def test_extreme_submits_are_refused_with_a_field_or_accepted_and_readable(api_url, body):
    with httpx.Client(base_url=api_url, headers=FUZZ, timeout=30) as client:
        path = "/jobs:batch" if "jobs" in body else "/jobs"
        response = client.post(path, content=_json(body), headers={"Content-Type": "application/json"})
        assert response.status_code in (200, 202, 409, 422), response.text
        if response.status_code in (409, 422):
            assert response.headers["content-type"] == PROBLEM
            assert response.json()["errors" if response.status_code == 422 else "type"]
            return
        items = response.json()["items"] if "jobs" in body else [response.json() | {"status": 202}]
        for item in items:
            if item["status"] == 202:
                assert client.get(f"/jobs/{item['id']}").status_code == 200


def _json(value) -> bytes:
    """JSON with non-ASCII text as \\u escapes: how a client sends a lone surrogate."""
    return json.dumps(value, ensure_ascii=True).encode()


async def test_after_the_fuzzing_a_fresh_job_still_succeeds(api, stack):
    await cancel_unfinished(api, stack, FUZZ)  # nothing the fuzzing started holds a slot for later tests
    response = await api.post("/jobs", json={"type": "noop"})
    assert response.status_code == 202
    assert (await wait_for_job(api, response.json()["id"], timeout_s=60))["state"] == "SUCCEEDED"
