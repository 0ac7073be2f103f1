"""The job detail page: a finished job's log, loss chart, samples, files and history; a running
job's live log, cancel and delete; and what a caller without the rights does not see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.factories import job_body, make_dataset
from tests.web.conftest import UiServer, screenshot


def _submit(ui: UiServer, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    submitted = ui.api(
        "POST", "/api/cloud/jobs/submit?provider=local", json=body, headers=headers or {}
    )
    assert submitted.status_code == 200, submitted.text
    job_id: str = submitted.json()["job_id"]
    return job_id


def _bearer(ui: UiServer, person: dict[str, str]) -> dict[str, str]:
    """A session token of the person, as a bearer header (a login takes only these two)."""
    login = ui.api(
        "POST",
        "/api/auth/login",
        json={"username": person["username"], "password": person["password"]},
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['token']}"}


def _badge(page: Page) -> Any:
    return page.locator(".page-head .badge")


@pytest.mark.trainer
def test_a_finished_job_shows_its_log_loss_samples_files_and_history(
    ui: UiServer, tmp_path: Path
) -> None:
    body = job_body(make_dataset(tmp_path / "data", 4, size=32), tmp_path / "out", steps=40)
    job_id = _submit(ui, body)
    page = ui.new_page()
    page.goto(f"/jobs/{job_id}")
    expect(page.locator("#job-log")).to_contain_text("step", timeout=120_000)  # streamed live
    expect(_badge(page)).to_have_text("completed", timeout=120_000)
    log = page.locator("#job-log")
    expect(log).to_contain_text("training done")
    expect(page.locator(".job-summary progress")).to_have_attribute("value", "40")
    expect(page.locator(".job-summary")).to_contain_text("40/40")

    chart = page.locator("#loss-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("title")).to_contain_text("steps 1 to 40")
    points = chart.locator("polyline.line").get_attribute("points") or ""
    assert len(points.split()) == 40

    sample = page.locator(".samples img").first
    expect(sample).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=sample.element_handle()
    )
    expect(page.locator(".samples figcaption").first).to_have_text("samples/sample_0.png")
    files = page.locator("#outputs-table")
    download = files.get_by_role("link", name="Download pytorch_lora_weights.safetensors")
    expect(download).to_have_attribute(
        "href", f"/api/cloud/jobs/{job_id}/outputs/pytorch_lora_weights.safetensors"
    )
    fetched = ui.api("GET", download.get_attribute("href") or "")
    assert fetched.status_code == 200 and len(fetched.content) > 0

    timeline = page.locator(".timeline")
    expect(timeline).to_contain_text("running")
    expect(timeline.locator("li").last).to_contain_text("completed")
    expect(page.locator(".job-config")).to_contain_text('"--max_train_steps": 40')
    # Nothing to cancel any more; the owner (the local admin) may delete it.
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete job")).to_be_visible()
    screenshot(page, "job-detail")

    phone = ui.new_page(width=390, dark=True)
    phone.goto(f"/jobs/{job_id}")
    phone_log = phone.locator("#job-log")
    expect(phone_log).to_contain_text("training done")  # from the log's tail
    # Following: the view sits at the end; scrolling up stops following.
    follow = phone.get_by_label("Follow")
    expect(follow).to_be_checked()
    phone.wait_for_function(
        "el => el.scrollHeight > el.clientHeight"
        " && el.scrollTop + el.clientHeight >= el.scrollHeight - 4",
        arg=phone_log.element_handle(),
    )
    expect(phone.locator(".samples img").first).to_be_visible()
    screenshot(phone, "job-detail-phone-dark")
    phone_log.evaluate("el => { el.scrollTop = 0; }")
    expect(follow).not_to_be_checked()
    follow.check()
    phone.wait_for_function(
        "el => el.scrollTop + el.clientHeight >= el.scrollHeight - 4",
        arg=phone_log.element_handle(),
    )


@pytest.mark.trainer
def test_a_running_job_streams_its_log_then_is_cancelled_and_deleted(
    ui: UiServer, tmp_path: Path
) -> None:
    body = job_body(make_dataset(tmp_path / "data", 4, size=32), tmp_path / "out", steps=100_000)
    job_id = _submit(ui, body)
    page = ui.new_page()
    page.goto(f"/jobs/{job_id}")
    expect(_badge(page)).to_have_text("running", timeout=60_000)
    expect(page.locator("#job-log")).to_contain_text("step ", timeout=60_000)
    expect(page.locator("#loss-chart polyline.line")).to_have_count(1, timeout=60_000)
    expect(page.get_by_role("button", name="Delete job")).to_have_count(0)
    screenshot(page, "job-running")

    page.get_by_role("button", name="Cancel job").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Cancel this job?")
    dialog.get_by_role("button", name="Cancel job").click()
    expect(_badge(page)).to_have_text("cancelled", timeout=30_000)
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    expect(page.locator(".timeline li").last).to_contain_text("cancelled")
    assert ui.api("GET", f"/api/cloud/jobs/{job_id}").json()["job"]["status"] == "cancelled"

    # Turning the confirmation down keeps the job.
    page.get_by_role("button", name="Delete job").click()
    expect(dialog).to_contain_text("Delete this job?")
    dialog.get_by_role("button", name="Cancel", exact=True).click()
    expect(dialog).to_have_count(0)
    expect(page).to_have_url(f"{ui.url}/jobs/{job_id}")
    assert ui.api("GET", f"/api/cloud/jobs/{job_id}").status_code == 200

    page.get_by_role("button", name="Delete job").click()
    dialog.get_by_role("button", name="Delete job").click()
    expect(page).to_have_url(f"{ui.url}/jobs")
    expect(page.locator(f'tr[data-job-id="{job_id}"]')).to_have_count(0)
    assert ui.api("GET", f"/api/cloud/jobs/{job_id}").status_code == 404


@pytest.mark.trainer
def test_a_viewer_sees_their_job_without_cancel_or_delete(ui: UiServer) -> None:
    ui.create_admin()
    admin = ui.admin_headers()
    person = {"username": "vera", "email": "vera@example.com", "password": "a long passphrase 7"}
    made = ui.api("POST", "/api/users", json={**person, "role": "researcher"}, headers=admin)
    assert made.status_code == 201, made.text
    researcher = _bearer(ui, person)
    # With users, a job reads and writes only under the server's data roots.
    home = ui.server.home
    dataset = make_dataset(home / "datasets" / "shapes", 4, size=32)
    body = job_body(dataset, home / "outputs" / person["username"] / "run", steps=100_000)
    job_id = _submit(ui, body, researcher)

    changed = ui.api(
        "PATCH", f"/api/users/{made.json()['id']}", json={"role": "viewer"}, headers=admin
    )
    assert changed.status_code == 200, changed.text

    try:
        page = ui.new_page()
        page.goto(f"/jobs/{job_id}")
        expect(page).to_have_url(f"{ui.url}/login?next=%2Fjobs%2F{job_id}")
        page.get_by_label("Username").fill(person["username"])
        page.get_by_label("Password").fill(person["password"])
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{ui.url}/jobs/{job_id}")
        expect(page.locator("#whoami")).to_have_text("vera (viewer)")
        expect(_badge(page)).to_have_text("running", timeout=60_000)
        expect(page.locator("#job-log")).to_contain_text("step ", timeout=60_000)
        expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
        expect(page.get_by_role("button", name="Delete job")).to_have_count(0)
    finally:
        cancelled = ui.api("POST", f"/api/cloud/jobs/{job_id}/cancel", headers=admin)
        assert cancelled.status_code == 200, cancelled.text
    expect(_badge(page)).to_have_text("cancelled", timeout=30_000)
    expect(page.get_by_role("button", name="Delete job")).to_have_count(0)


def test_an_unknown_job_says_not_found_and_secrets_stay_masked(ui: UiServer) -> None:
    page = ui.new_page()
    page.goto("/jobs/no-such-job")
    expect(page.get_by_role("heading", name="Job not found")).to_be_visible()
    expect(page.get_by_role("link", name="Back to the jobs")).to_be_visible()
    masked = page.evaluate(
        """async () => (await import('/ui/pages/job.js')).maskSecrets({
            config: {'--hub_token': 'hf_abc', '--learning_rate': 0.1, '--push_to_hub': true,
                     'wandbApiKey': 'w', '--aws_secret_access_key': '***'},
            dataloader_config: [{id: 'd', 'api-key': 'k', nested: {password: 'p'}}],
        })"""
    )
    assert masked == {
        "config": {
            "--hub_token": "••••",
            "--learning_rate": 0.1,
            "--push_to_hub": True,
            "wandbApiKey": "••••",
            "--aws_secret_access_key": "***",
        },
        "dataloader_config": [{"id": "d", "api-key": "••••", "nested": {"password": "••••"}}],
    }


def test_the_loss_chart_without_reports_says_so_and_thins_a_long_run(ui: UiServer) -> None:
    page = ui.new_page()
    page.goto("/jobs")
    drawn = page.evaluate(
        """async () => {
            const chart = await import('/ui/pages/job-chart.js');
            const status = {kind: 'status', data: null};
            const progress = (step) => ({kind: 'progress', data: {step, loss: 1 / step}});
            const long = Array.from({length: 4000}, (_, i) => progress(i + 1));
            const points = chart.lossPoints([status, ...long]);
            return {
                empty: chart.lossChart([status, {kind: 'progress', data: {step: 3, loss: null}}])
                    .textContent,
                count: points.length,
                last: points[points.length - 1],
                one: chart.lossChart([progress(7)], 640).querySelectorAll('circle').length,
            };
        }"""
    )
    assert drawn == {
        "empty": "No loss reported yet.",
        "count": 1334,
        "last": [4000, 0.00025],
        "one": 1,
    }
