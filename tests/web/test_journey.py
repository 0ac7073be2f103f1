"""The tutorial's web flow in one browser session, as a newcomer does it: a config made in the
form, Train in Cloud with its upload summary, two jobs on this machine (the second waits its
turn) watched in the list from queued to running to completed with the bar moving, the
detail's log, loss chart and sample, an API key seen once, a cost limit that blocks the next
submit with its reason, then the first admin created, and signing out and in."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.factories import make_dataset
from tests.web.conftest import ADMIN, UiServer, screenshot

# Two trainings on a CPU the whole suite shares: minutes on a busy machine.
pytestmark = [pytest.mark.trainer, pytest.mark.timeout(900)]
STEPS = 60

# Records every status and progress value a job's row shows, as the list re-renders it.
WATCH_ROW = """job_id => {
  window.__seen = [];
  const record = () => {
    const row = document.querySelector(`tr[data-job-id="${job_id}"]`);
    if (!row) return;
    const bar = row.querySelector("progress");
    const entry = [row.dataset.status, bar ? Number(bar.value) : null];
    const last = window.__seen[window.__seen.length - 1];
    if (!last || last[0] !== entry[0] || last[1] !== entry[1]) window.__seen.push(entry);
  };
  const changes = {subtree: true, childList: true, attributes: true};
  new MutationObserver(record).observe(document.body, changes);
  record();
}"""


@pytest.fixture
def priced(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> UiServer:
    """This machine at $36 an hour: local jobs have a cost, so a cost limit can refuse one."""
    monkeypatch.setenv("CLOUDTUNE_HARDWARE__LOCAL_PER_HOUR_USD", "36")
    ui: UiServer = request.getfixturevalue("ui")
    return ui


def make_config(page: Page, data: Path, output: Path, steps: int) -> None:
    page.goto("/configs")
    page.locator("#new-config").click()
    page.get_by_label("Name").fill("shapes")
    page.get_by_label("Model family").select_option("reference")
    page.get_by_label("Model type").select_option("lora")
    page.get_by_label("Output folder").fill(str(output))
    page.get_by_role("tab", name="Training").click()
    page.get_by_label("Max steps").fill(str(steps))
    page.get_by_label("LoRA rank").fill("4")
    page.locator("#train-resolution").fill("32")
    page.get_by_role("tab", name="Dataloader").click()
    page.get_by_role("button", name="Add dataset").click()
    page.locator("#ds-0-id").fill("training-images")
    page.locator("#ds-0-path").fill(str(data))
    page.locator("#ds-0-caption").select_option("textfile")
    page.get_by_role("button", name="Create config").click()
    expect(page).to_have_url(re.compile(r"/configs/shapes$"))


def train(page: Page, run_name: str) -> str:
    """Through the dialog: the review shows what stays here; the submit opens the job."""
    page.goto("/jobs")
    page.get_by_role("button", name="Train in Cloud").click()
    dialog = page.get_by_role("dialog", name="Train in Cloud")
    dialog.get_by_label("Config").select_option("shapes")
    dialog.get_by_label("Provider").select_option("local")
    dialog.get_by_label("Run name").fill(run_name)
    dialog.get_by_role("button", name="Review").click()
    expect(dialog.locator("#upload-where")).to_contain_text("8 files")
    expect(dialog.locator("#cost-summary")).to_contain_text("Estimated cost")
    dialog.get_by_role("button", name="Submit").click()
    expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f]{32}$"))
    return page.url.rsplit("/", 1)[1]


def test_the_tutorials_flow_in_the_browser(priced: UiServer, tmp_path: Path) -> None:
    ui = priced
    data = make_dataset(tmp_path / "data", 4, size=32)
    page = ui.new_page()
    make_config(page, data, tmp_path / "out", steps=STEPS)

    first = train(page, "first")
    second = train(page, "second")  # one job at a time on the CPU: this one queues
    page.goto("/jobs")
    page.evaluate(WATCH_ROW, second)
    row = page.locator(f'tr[data-job-id="{second}"]')
    expect(row).to_have_attribute("data-status", "completed", timeout=800_000)
    seen: list[list[Any]] = page.evaluate("window.__seen")
    statuses = [status for status, _ in seen]
    assert statuses.index("queued") < statuses.index("running") < statuses.index("completed")
    moving = [value for status, value in seen if status == "running" and 0 < value < STEPS]
    assert moving and moving == sorted(moving), seen  # the bar moved, forward
    assert seen[-1] == ["completed", STEPS]
    assert ui.server.job(first)["status"] == "completed"
    screenshot(page, "journey-jobs")

    row.get_by_role("link").click()
    expect(page.locator("#job-log")).to_contain_text("training done")
    points = page.locator("#loss-chart polyline.line").get_attribute("points") or ""
    assert len(points.split()) >= 2
    sample = page.locator(".samples img").first
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=sample.element_handle()
    )

    page.goto("/settings")
    keys = page.locator("#settings-api-keys")
    keys.get_by_label("Name").fill("ci")
    keys.get_by_role("button", name="Create key").click()
    key = page.locator(".secret-once").inner_text().strip()
    assert key.startswith("stk_")
    page.reload()
    expect(page.locator("#api-keys-table")).to_contain_text("ci")
    assert key not in page.content()

    cost = page.locator("#settings-cost")
    cost.get_by_label("Limit (USD)").fill("0.01")
    cost.get_by_label("Period").select_option("daily")
    cost.get_by_label("When reached").select_option("block")
    cost.get_by_label("Enforce this limit").check()
    cost.get_by_role("button", name="Save cost limit").click()
    expect(cost).to_contain_text("$0.", timeout=10_000)  # the spend so far is shown

    page.goto("/jobs")
    page.get_by_role("button", name="Train in Cloud").click()
    dialog = page.get_by_role("dialog", name="Train in Cloud")
    dialog.get_by_label("Config").select_option("shapes")
    dialog.get_by_label("Provider").select_option("local")
    dialog.get_by_role("button", name="Review").click()
    dialog.get_by_role("button", name="Submit").click()
    expect(dialog.get_by_role("alert")).to_contain_text("Cost limit exceeded")
    assert ui.api("GET", "/api/cloud/jobs").json()["total"] == 2

    # Multi-user: the first admin is made in the browser; then out and in again.
    page.goto("/setup")
    page.get_by_label("Username").fill(ADMIN["username"])
    page.get_by_label("Email").fill(ADMIN["email"])
    page.get_by_label("Password").fill(ADMIN["password"])
    page.get_by_role("button", name="Create admin").click()
    expect(page).to_have_url(f"{ui.url}/jobs")
    expect(page.locator("#whoami")).to_have_text("admin (admin)")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{ui.url}/login")
    page.get_by_label("Username").fill(ADMIN["username"])
    page.get_by_label("Password").fill(ADMIN["password"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(f'tr[data-job-id="{second}"]')).to_be_visible()
