"""The dashboard in a real headless Chromium (Debian's, driven by Playwright):
sign in, submit a job from the page, watch its progress bar reach 100% and
its state SUCCEEDED, then see it in the jobs table; page through the table,
read a pipeline's step results and download a large one, fail a job and read
its traceback, all also at phone width. Screenshots go to var/test-output/."""

from __future__ import annotations

import hashlib
import shutil
import uuid

import pytest
from playwright.async_api import async_playwright, expect

from schemas.api import DEV_API_KEY
from services.embedded.stack import REPO

pytestmark = pytest.mark.e2e

SCREENSHOT = REPO / "var" / "test-output" / "dashboard.png"


@pytest.fixture
async def page(stack):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is missing: `make test` installs Debian's chromium"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield await browser.new_page()
        finally:
            await browser.close()


async def sign_in(page, stack) -> None:
    await page.goto(f"{stack.api_url}/ui")
    await page.fill("#api-key", DEV_API_KEY)
    await page.click("#login-form button")


async def submit_from_the_form(page, stack, payload: str, job_type: str | None = None, steps: str | None = None) -> None:
    """Sign in and submit a job with the dashboard's form (its type field keeps its default when ``job_type`` is None)."""
    await sign_in(page, stack)
    await page.click("#submit-panel summary")
    if job_type is not None:
        await page.fill("#submit-type", job_type)
    await page.fill("#submit-payload", payload)
    if steps is not None:
        await page.fill("#submit-steps", steps)
    await page.click("#submit-button")


@pytest.mark.timeout(180)
async def test_a_job_submitted_in_the_dashboard_runs_to_success_with_a_live_progress_bar(page, stack):
    await submit_from_the_form(page, stack, '{"seconds": 2.5}', "sleep")

    await expect(page.locator("#job-state")).to_have_text("RUNNING", timeout=30_000)
    midway = "document.getElementById('job-progress').value > 0 && document.getElementById('job-progress').value < 100"
    await page.wait_for_function(midway, timeout=30_000)
    await expect(page.locator("#job-state")).to_have_text("SUCCEEDED", timeout=60_000)
    await page.wait_for_function("document.getElementById('job-progress').value === 100", timeout=30_000)
    history = page.locator("#event-rows tr td:nth-child(2)")
    await expect(history.first).to_have_text("submitted", timeout=30_000)
    await expect(history.last).to_have_text("succeeded", timeout=30_000)
    await expect(history.filter(has_text="progressed")).not_to_have_count(0)
    job_id = await page.text_content("#job-id")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOT), full_page=True)

    await page.goto(f"{stack.api_url}/ui#/")
    await expect(page.locator(f"a[href='#/jobs/{job_id}']")).to_be_visible(timeout=30_000)


@pytest.mark.timeout(120)
async def test_a_refused_submit_shows_the_problem_naming_the_field(page, stack):
    await submit_from_the_form(page, stack, '{"seconds": -1}')

    await expect(page.locator("#submit-error")).to_contain_text("payload.seconds", timeout=30_000)


@pytest.mark.timeout(180)
async def test_a_pipeline_shows_its_steps_as_a_graph_that_fills_in_as_they_succeed(page, stack):
    await submit_from_the_form(
        page, stack, '{"object": {"Name": " Ada ", "born": 1815}}', "pipeline", steps='[{"name": "export", "type": "export"}]'
    )

    await expect(page.locator("#job-state")).to_have_text("SUCCEEDED", timeout=60_000)
    nodes = page.locator("#job-dag g.node")
    await expect(nodes).to_have_count(5, timeout=30_000)
    await expect(page.locator("#job-dag g.node[data-state='SUCCEEDED']")).to_have_count(5, timeout=30_000)
    await expect(page.locator("#job-dag path.edge")).to_have_count(4)
    await expect(page.locator("#event-rows tr td:nth-child(2)").filter(has_text="step.started validate")).to_have_count(1)
    await page.screenshot(path=str(SCREENSHOT.with_name("dashboard-pipeline.png")), full_page=True)


@pytest.mark.timeout(120)
async def test_the_jobs_table_shows_a_job_submitted_elsewhere_without_a_reload(page, stack, api):
    await sign_in(page, stack)
    await expect(page.locator("#jobs[data-live='true']")).to_be_visible(timeout=30_000)
    job_id = (await api.post("/jobs", json={"type": "noop"})).json()["id"]

    row = page.locator(f"a[href='#/jobs/{job_id}']").locator("xpath=ancestor::tr")
    await expect(row).to_be_visible(timeout=10_000)
    await expect(row.locator("td.state")).to_have_text("SUCCEEDED", timeout=10_000)
    await expect(page.locator("#state-counts a[data-state='SUCCEEDED']")).to_contain_text("SUCCEEDED ")


@pytest.mark.timeout(120)
async def test_a_failed_jobs_page_lists_its_attempts_with_the_handlers_traceback(page, stack):
    await submit_from_the_form(page, stack, '{"message": "disk full", "retryable": false}', "fail")

    await expect(page.locator("#job-state")).to_have_text("FAILED", timeout=60_000)
    failure = page.locator("#failure-list details").first
    await expect(failure.locator("summary")).to_contain_text("attempt 1 · PermanentError: disk full")
    await failure.locator("summary").click()
    await expect(failure.locator("pre.traceback")).to_contain_text("Traceback (most recent call last)")
    await expect(failure.locator("pre.traceback")).to_contain_text("in fail")
    await expect(page.locator("#job-payload")).to_contain_text('"message":"disk full"')
    await expect(page.locator("#job-finished")).to_contain_text(" s)")  # how long it ran
    await page.screenshot(path=str(SCREENSHOT.with_name("dashboard-failed.png")), full_page=True)


@pytest.mark.timeout(120)
async def test_a_payload_that_is_not_json_is_named_before_anything_is_sent(page, stack):
    await submit_from_the_form(page, stack, '{"seconds": ')

    await expect(page.locator("#submit-error")).to_contain_text("payload is not valid JSON")


@pytest.mark.timeout(120)
async def test_the_jobs_table_pages_past_fifty_rows_and_back(page, stack, api):
    label = f"page:{uuid.uuid4().hex[:8]}"
    response = await api.post("/jobs:batch", json={"jobs": [{"type": "noop", "labels": {"page": label[5:]}}] * 55})
    assert response.status_code == 200 and all(item["status"] == 202 for item in response.json()["items"])
    await sign_in(page, stack)

    await page.fill("#filter-label", label)
    async with page.expect_response(lambda response: "label=page" in response.url) as filtered:
        await page.press("#filter-label", "Enter")
    await filtered.value  # else the unfiltered first listing's 50 rows would pass for the filter's
    rows = page.locator("#job-rows tr")
    await expect(rows).to_have_count(50, timeout=30_000)
    await page.click("#older-button")
    await expect(rows).to_have_count(5, timeout=30_000)
    await expect(page.locator("#older-button")).to_be_disabled()
    await expect(page.locator("#page-number")).to_have_text("page 2")
    await page.click("#newer-button")
    await expect(rows).to_have_count(50, timeout=30_000)


@pytest.mark.timeout(180)
async def test_a_pipelines_page_shows_each_steps_json_result_and_a_large_one_as_a_download(page, stack, api):
    response = await api.post(
        "/jobs",
        json={
            "type": "pipeline",
            "payload": {"object": {"a": 1}},
            "steps": [
                {"name": "export", "type": "export", "payload": {"pad_to_bytes": 100_000}},
                {"name": "check", "type": "noop", "payload": {}, "depends_on": ["export"]},
            ],
        },
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    await sign_in(page, stack)
    await page.goto(f"{stack.api_url}/ui#/jobs/{job_id}")

    await expect(page.locator("#job-state")).to_have_text("SUCCEEDED", timeout=60_000)
    analysis = page.locator("#step-rows tr[data-step='analyze'] pre.json")
    await expect(analysis).to_contain_text('"numeric": {')  # indented JSON, not an escaped string
    link = page.locator("#step-rows tr[data-step='export'] a.artifact")
    await expect(link).to_contain_text("export (")
    await expect(page.locator("#job-artifacts a.artifact[data-name='export']")).to_be_visible()
    async with page.expect_download() as downloading:
        await link.click()
    download = await downloading.value
    stored = await page.evaluate(
        f"fetch('/jobs/{job_id}', {{headers: {{Authorization: 'Bearer {DEV_API_KEY}'}}}}).then(r => r.json())"
    )
    export = next(step for step in stored["steps"] if step["name"] == "export")
    with open(await download.path(), "rb") as saved:
        assert hashlib.sha256(saved.read()).hexdigest() == export["artifact"]["sha256"]
    await page.screenshot(path=str(SCREENSHOT.with_name("dashboard-artifact.png")), full_page=True)


@pytest.mark.timeout(180)
async def test_the_dashboard_reads_at_phone_width_without_scrolling_sideways(page, stack):
    await page.set_viewport_size({"width": 390, "height": 844})
    await submit_from_the_form(page, stack, '{"message": "disk full", "retryable": false}', "fail")
    await expect(page.locator("#job-state")).to_have_text("FAILED", timeout=60_000)
    await expect(page.locator("#event-rows tr").last).to_contain_text("failed", timeout=30_000)

    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the job page overflows"
    await page.screenshot(path=str(SCREENSHOT.with_name("dashboard-phone-job.png")), full_page=True)
    await page.goto(f"{stack.api_url}/ui#/")
    await expect(page.locator("#job-rows tr").first).to_be_visible(timeout=30_000)
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the jobs table overflows"
    await page.screenshot(path=str(SCREENSHOT.with_name("dashboard-phone.png")), full_page=True)


@pytest.mark.timeout(120)
async def test_the_jobs_page_lists_the_live_workers_for_an_admin_key(page, stack):
    await sign_in(page, stack)

    panel = page.locator("#workers-panel")
    await expect(panel).to_be_visible(timeout=30_000)
    await panel.locator("summary").click()
    processor = f":{stack.processes['processor'].pid}"
    await expect(page.locator("#worker-rows td.mono").filter(has_text=processor)).to_be_visible(timeout=10_000)
    await expect(page.locator("#worker-sum")).to_contain_text("live")


@pytest.mark.timeout(120)
async def test_a_jobs_page_shows_its_log(page, stack, api):
    job_id = (await api.post("/jobs", json={"type": "echo", "payload": {"message": "dashboard line", "lines": 3}})).json()["id"]
    await sign_in(page, stack)
    await page.goto(f"{stack.api_url}/ui#/jobs/{job_id}")

    rows = page.locator("#log-rows tr")
    await expect(rows).to_have_count(3, timeout=15_000)
    await expect(rows.nth(2)).to_contain_text("dashboard line 3")
    await expect(page.locator("#log-empty")).to_be_hidden()
