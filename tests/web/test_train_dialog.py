"""The Train in Cloud dialog: a saved config reviewed and submitted to this machine, a submit
refused by the cost limit shown in the dialog, and the data consent step of a provider that
uploads (the fake Replicate) as the server's setting asks or denies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.factories import job_body, make_dataset
from tests.fakes.replicate import FakeReplicate
from tests.web.conftest import UiServer, screenshot

TERMINAL = {"completed", "failed", "cancelled"}


def save_config(ui: UiServer, tmp_path: Path, name: str, **config: Any) -> None:
    body = job_body(make_dataset(tmp_path / "data", 4, size=32), tmp_path / "out", steps=5)
    body["config"].update(config)
    saved = ui.api("POST", "/api/configs", json={"name": name, **body})
    assert saved.status_code == 201, saved.text


def open_dialog(ui: UiServer, *, width: int = 1280, dark: bool = False) -> Page:
    page = ui.new_page(width=width, dark=dark)
    page.goto("/jobs")
    page.get_by_role("button", name="Train in Cloud").click()
    expect(page.get_by_role("dialog", name="Train in Cloud")).to_be_visible()
    return page


def job_ids(ui: UiServer) -> list[str]:
    listing = ui.api("GET", "/api/cloud/jobs")
    assert listing.status_code == 200, listing.text
    return [job["job_id"] for job in listing.json()["jobs"]]


@pytest.mark.trainer
def test_a_saved_config_is_reviewed_and_trained_here(ui: UiServer, tmp_path: Path) -> None:
    save_config(ui, tmp_path, "shapes")
    page = open_dialog(ui)
    dialog = page.get_by_role("dialog", name="Train in Cloud")
    dialog.get_by_label("Config").select_option("shapes")
    dialog.get_by_label("Provider").select_option("local")
    expect(dialog.get_by_label("Hardware")).to_contain_text("CPU")
    dialog.get_by_label("Run name").fill("shapes-ui")
    screenshot(page, "train-dialog")

    dialog.get_by_role("button", name="Review").click()
    summary = dialog.locator("#upload-summary")
    # 4 images and their 4 captions, read where they are.
    expect(summary.locator("#upload-where")).to_contain_text("8 files")
    expect(summary.locator("#upload-where")).to_contain_text("Nothing is uploaded")
    expect(summary.get_by_role("row", name="training-images")).to_contain_text("4")
    expect(dialog.get_by_label("I agree to upload", exact=False)).to_have_count(0)
    expect(dialog.locator("#cost-summary")).to_contain_text("Estimated cost")
    screenshot(page, "train-dialog-summary")

    dialog.get_by_role("button", name="Submit").click()
    expect(page).to_have_url(re.compile(re.escape(f"{ui.url}/jobs/") + "[0-9a-f]{32}$"))
    expect(dialog).to_have_count(0)
    job_id = page.url.rsplit("/", 1)[1]
    assert job_ids(ui) == [job_id]
    job = ui.server.wait(job_id, TERMINAL)
    assert job["status"] == "completed", job
    assert (job["config_name"], job["tracker_run_name"]) == ("shapes", "shapes-ui")


@pytest.fixture
def priced_ui(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> UiServer:
    """A server whose own machine costs $36 an hour, so a local job has an estimate."""
    monkeypatch.setenv("CLOUDTUNE_HARDWARE__LOCAL_PER_HOUR_USD", "36")
    ui: UiServer = request.getfixturevalue("ui")
    return ui


def test_a_submit_the_cost_limit_blocks_is_refused_in_the_dialog(
    priced_ui: UiServer, tmp_path: Path
) -> None:
    ui = priced_ui
    save_config(ui, tmp_path, "shapes")
    limit = {"enabled": True, "limit_usd": 0, "period": "daily", "action": "block"}
    changed = ui.api("PUT", "/api/cloud/metrics/cost-limit", json=limit)
    assert changed.status_code == 200, changed.text

    page = open_dialog(ui)
    dialog = page.get_by_role("dialog", name="Train in Cloud")
    dialog.get_by_label("Config").select_option("shapes")
    dialog.get_by_label("Provider").select_option("local")
    dialog.get_by_role("button", name="Review").click()
    cost = dialog.locator("#cost-summary")
    expect(cost).to_contain_text("$0.01")  # 5 steps at 5 a second, at $36 an hour
    expect(cost.get_by_role("note")).to_contain_text("the server will refuse this job")

    with page.expect_response("**/api/cloud/jobs/submit?provider=local") as answer:
        dialog.get_by_role("button", name="Submit").click()
    assert answer.value.status == 402
    alert = dialog.get_by_role("alert")
    expect(alert).to_contain_text("Cost limit exceeded")
    expect(alert).to_be_focused()
    screenshot(page, "train-dialog-refused")
    expect(dialog).to_be_visible()
    expect(page).to_have_url(f"{ui.url}/jobs")
    assert job_ids(ui) == []


def test_the_dialog_reads_on_a_phone_in_the_dark(ui: UiServer, tmp_path: Path) -> None:
    save_config(ui, tmp_path, "shapes")
    page = open_dialog(ui, width=390, dark=True)
    dialog = page.get_by_role("dialog", name="Train in Cloud")
    expect(dialog.get_by_label("Config")).to_have_value("shapes")
    screenshot(page, "train-dialog-phone-dark")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(page.get_by_role("button", name="Train in Cloud")).to_be_focused()
    page.get_by_role("button", name="Train in Cloud").press("Enter")
    dialog.get_by_role("button", name="Review").click()
    expect(dialog.locator("#upload-where")).to_contain_text("8 files")
    dialog.get_by_role("button", name="Submit").scroll_into_view_if_needed()
    expect(dialog.get_by_role("button", name="Submit")).to_be_in_viewport()
    screenshot(page, "train-dialog-summary-phone-dark")


def test_a_hub_target_is_checked_by_the_server_before_the_review(
    ui: UiServer, tmp_path: Path
) -> None:
    save_config(ui, tmp_path, "shapes")
    page = open_dialog(ui)
    dialog = page.get_by_role("dialog", name="Train in Cloud")
    dialog.get_by_label("A Hugging Face Hub repository").check()
    dialog.get_by_role("textbox", name="Hub repository").fill("me/shapes-lora")
    dialog.get_by_role("button", name="Review").click()
    # No token here nor saved on the server: the preview refuses, the setup stays.
    expect(dialog.get_by_role("alert")).to_contain_text("needs a Hugging Face token")
    dialog.get_by_label("Hub token (optional)").fill("hf_test_token")
    with page.expect_request("**/api/cloud/jobs/preview?provider=local") as sent:
        dialog.get_by_role("button", name="Review").click()
    assert sent.value.post_data_json["publish"] == {
        "hub": {"repo_id": "me/shapes-lora", "private": True, "token": "hf_test_token"}
    }
    expect(dialog.locator(".train-facts")).to_contain_text("me/shapes-lora (private)")
    expect(dialog).not_to_contain_text("hf_test_token")
    expect(dialog.get_by_role("alert")).to_have_count(0)


@pytest.fixture
def replicate_ui(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[UiServer, FakeReplicate]]:
    """A server pointed at the fake Replicate, with a token: a provider that uploads."""
    fake = FakeReplicate().start()
    try:
        monkeypatch.setenv("CLOUDTUNE_REPLICATE_BASE_URL", fake.base_url)
        monkeypatch.setenv("CLOUDTUNE_REPLICATE_OUTPUT_HOSTS", fake.file_origin)
        monkeypatch.setenv("REPLICATE_API_TOKEN", fake.token)
        ui: UiServer = request.getfixturevalue("ui")
        yield ui, fake
        # The server stops before the fake (the `ui` fixture's own teardown comes later).
        ui.server.stop()
    finally:
        fake.stop()


def review_on_replicate(ui: UiServer, tmp_path: Path, consent: str) -> tuple[Page, Any]:
    save_config(ui, tmp_path, "flux-shapes", **{"--model_family": "flux"})
    changed = ui.api("PUT", "/api/cloud/data-consent/setting", json={"consent": consent})
    assert changed.status_code == 200, changed.text
    page = open_dialog(ui)
    dialog = page.get_by_role("dialog", name="Train in Cloud")
    dialog.get_by_label("Config").select_option("flux-shapes")
    dialog.get_by_label("Provider").select_option("replicate")
    dialog.get_by_label("Hardware").select_option("l40s")
    expect(dialog.get_by_label("Hardware")).to_contain_text("$3.51/h")
    dialog.get_by_role("button", name="Review").click()
    expect(dialog.locator("#upload-where")).to_contain_text("will be uploaded to replicate")
    return page, dialog


def test_ask_needs_the_consent_checkbox_before_an_upload(
    replicate_ui: tuple[UiServer, FakeReplicate], tmp_path: Path
) -> None:
    ui, fake = replicate_ui
    page, dialog = review_on_replicate(ui, tmp_path, "ask")
    submit = dialog.get_by_role("button", name="Submit")
    agree = dialog.get_by_label("I agree to upload these files to replicate")
    expect(agree).not_to_be_checked()
    expect(submit).to_be_disabled()
    screenshot(page, "train-dialog-consent")
    agree.check()
    expect(submit).to_be_enabled()
    submit.click()
    expect(page).to_have_url(re.compile(re.escape(f"{ui.url}/jobs/") + "[0-9a-f]{32}$"))
    job_id = page.url.rsplit("/", 1)[1]
    assert job_ids(ui) == [job_id]
    assert len(fake.files) == 1  # the upload, agreed to


def test_deny_disables_the_submit_and_says_why(
    replicate_ui: tuple[UiServer, FakeReplicate], tmp_path: Path
) -> None:
    ui, fake = replicate_ui
    page, dialog = review_on_replicate(ui, tmp_path, "deny")
    expect(dialog.locator("#consent-refused")).to_contain_text("never upload")
    expect(dialog.get_by_role("button", name="Submit")).to_be_disabled()
    expect(dialog.get_by_label("I agree to upload", exact=False)).to_have_count(0)
    # Back to the setup, and to this machine: nothing is uploaded, so nothing is refused.
    dialog.get_by_role("button", name="Back").click()
    expect(dialog.get_by_label("Provider")).to_be_visible()
    assert job_ids(ui) == [] and fake.files == {}
