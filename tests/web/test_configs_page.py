"""The Configure tab: the list of named configs and the editor (form tabs and raw JSON), its
checks beside each field, duplicate and delete, and what a viewer may not do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect
from sqlalchemy import update

from cloudtune.store import users as user_store
from cloudtune.store.db import Database
from cloudtune.store.tables import UserModel
from tests.factories import make_dataset
from tests.web.conftest import ADMIN, UiServer, screenshot

PERSON = {"username": "rita", "email": "rita@example.com", "password": "a long passphrase 9"}
LOGIN = {"username": PERSON["username"], "password": PERSON["password"]}


def _tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    expect(page.get_by_role("tab", name=name)).to_have_attribute("aria-selected", "true")


def _error_of(page: Page, field_id: str) -> Any:
    """The error shown beside an input, found the way a screen reader finds it."""
    field = page.locator(f"#{field_id}")
    expect(field).to_have_attribute("aria-invalid", "true")
    described = field.get_attribute("aria-describedby") or ""
    assert f"{field_id}-error" in described.split()
    return page.locator(f"#{field_id}-error")


def _saved(ui: UiServer, name: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    answer = ui.api("GET", f"/api/configs/{name}", headers=headers or {})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _put(ui: UiServer, name: str, steps: int = 50) -> None:
    body = {
        "description": "made by the API",
        "config": {
            "--model_family": "reference",
            "--model_type": "lora",
            "--max_train_steps": steps,
        },
        "dataloader_config": [],
    }
    answer = ui.api("PUT", f"/api/configs/{name}", json=body)
    assert answer.status_code in (200, 201), answer.text


def test_a_config_made_in_the_form_is_saved_and_listed(ui: UiServer, tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", 3, size=32)
    page = ui.new_page()
    page.goto("/configs")
    expect(page.get_by_role("heading", name="No configs yet")).to_be_visible()
    page.locator("#new-config").click()
    expect(page).to_have_url(f"{ui.url}/configs?new")

    page.get_by_label("Name").fill("shapes")
    page.get_by_label("Description").fill("coloured shapes")
    expect(page.get_by_role("tab", name="Model")).to_have_attribute("aria-selected", "true")
    page.get_by_label("Model family").select_option("reference")
    page.get_by_label("Model type").select_option("lora")
    page.get_by_label("Base model").fill("org/base-model")
    page.get_by_label("Output folder").fill("shapes-lora")

    # Arrow keys move between the tabs.
    page.get_by_role("tab", name="Model").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Training")).to_be_focused()
    expect(page.get_by_role("tab", name="Training")).to_have_attribute("aria-selected", "true")
    page.get_by_label("Max steps").fill("40")
    page.get_by_label("LoRA rank").fill("8")
    page.get_by_label("Learning rate").fill("2e-4")
    page.locator("#train-resolution").fill("32")

    _tab(page, "Dataloader")
    expect(page.locator("#no-datasets")).to_be_visible()
    page.get_by_role("button", name="Add dataset").click()
    page.locator("#ds-0-id").fill("shapes")
    page.locator("#ds-0-path").fill(str(data))
    page.locator("#ds-0-caption").select_option("filename")
    page.locator("#ds-0-resolution").fill("32")
    page.get_by_role("button", name="Add dataset").click()
    expect(page.locator("fieldset.dataset")).to_have_count(2)
    page.get_by_role("button", name="Remove dataset 2").click()
    expect(page.locator("fieldset.dataset")).to_have_count(1)
    screenshot(page, "config-editor")

    page.get_by_role("button", name="Create config").click()
    expect(page).to_have_url(f"{ui.url}/configs/shapes")
    expect(page.get_by_role("heading", name="shapes")).to_be_visible()

    saved = _saved(ui, "shapes")
    assert saved["metadata"]["description"] == "coloured shapes"
    config = saved["config"]
    assert config["--model_family"] == "reference"
    assert config["--model_type"] == "lora"
    assert config["--pretrained_model_name_or_path"] == "org/base-model"
    assert config["--output_dir"] == "shapes-lora"
    assert config["--max_train_steps"] == 40
    assert config["--lora_rank"] == 8
    assert config["--learning_rate"] == 0.0002
    assert config["--resolution"] == 32
    assert saved["dataloader_config"] == [
        {
            "id": "shapes",
            "type": "local",
            "dataset_type": "image",
            "instance_data_dir": str(data),
            "caption_strategy": "filename",
            "resolution": 32,
        }
    ]

    page.get_by_role("link", name="← Configs").click()
    row = page.locator('tr[data-config="shapes"]')
    expect(row).to_contain_text("reference · lora")
    expect(row).to_contain_text("coloured shapes")
    screenshot(page, "configs-list")


def test_the_raw_json_and_the_form_follow_each_other(ui: UiServer, tmp_path: Path) -> None:
    data = str(make_dataset(tmp_path / "data", 2, size=32))
    _put(ui, "raw", steps=50)
    page = ui.new_page()
    page.goto("/configs/raw")
    _tab(page, "Training")
    expect(page.get_by_label("Max steps")).to_have_value("50")
    page.get_by_label("LoRA rank").fill("16")

    _tab(page, "Raw JSON")
    raw = page.locator("#raw-json")
    document = json.loads(raw.input_value())
    assert document["config"]["--lora_rank"] == 16  # the form's edit shows here
    document["config"]["--max_train_steps"] = 250
    document["config"]["--my_own_arg"] = "kept"
    document["dataloader_config"] = [{"id": "typed", "instance_data_dir": data}]
    raw.fill(json.dumps(document, indent=2))

    _tab(page, "Training")
    expect(page.get_by_label("Max steps")).to_have_value("250")
    _tab(page, "Dataloader")
    expect(page.locator("#ds-0-id")).to_have_value("typed")
    expect(page.locator("#ds-0-path")).to_have_value(data)

    # A syntax error says where it is, and keeps the raw view until it is fixed.
    _tab(page, "Raw JSON")
    raw.fill('{\n  "config": {\n    "--max_train_steps": 250,,\n  }\n}')
    page.get_by_role("tab", name="Model").click()
    expect(page.get_by_role("tab", name="Raw JSON")).to_have_attribute("aria-selected", "true")
    expect(_error_of(page, "raw-json")).to_contain_text("line 3, column 30")
    screenshot(page, "config-editor-raw-json")
    raw.fill(json.dumps(document))
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#raw-json-error")).to_have_count(0)
    expect(page.locator(".toast-ok")).to_contain_text("updated")
    saved = _saved(ui, "raw")
    assert saved["config"]["--max_train_steps"] == 250
    assert saved["config"]["--lora_rank"] == 16
    assert saved["config"]["--my_own_arg"] == "kept"
    assert saved["dataloader_config"] == [{"id": "typed", "instance_data_dir": data}]


def test_duplicate_and_delete(ui: UiServer) -> None:
    _put(ui, "base", steps=70)
    page = ui.new_page()
    page.goto("/configs")
    page.get_by_role("button", name="Duplicate base").click()
    expect(page).to_have_url(f"{ui.url}/configs?copy=base&as=base-copy")
    expect(page.get_by_label("Name")).to_have_value("base-copy")
    expect(page.get_by_label("Name")).to_be_editable()
    page.get_by_label("Name").fill("base-two")
    page.get_by_role("button", name="Create config").click()
    expect(page).to_have_url(f"{ui.url}/configs/base-two")
    copied = _saved(ui, "base-two")
    assert copied["config"]["--max_train_steps"] == 70
    assert copied["metadata"]["description"] == "made by the API"

    page.goto("/configs")
    expect(page.locator("#configs-table tbody tr")).to_have_count(2)
    narrow = ui.new_page(width=390, dark=True)
    narrow.goto("/configs")
    expect(narrow.get_by_role("button", name="Duplicate base-two")).to_be_visible()
    screenshot(narrow, "configs-list-390-dark")
    page.get_by_role("button", name="Delete base-two").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text('Delete the config "base-two"?')
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    assert ui.api("GET", "/api/configs/base-two").status_code == 200

    page.get_by_role("button", name="Delete base-two").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator('tr[data-config="base-two"]')).to_have_count(0)
    expect(page.locator('tr[data-config="base"]')).to_be_visible()
    assert ui.api("GET", "/api/configs/base-two").status_code == 404


def test_mistakes_are_shown_beside_their_field(ui: UiServer) -> None:
    _put(ui, "taken")
    page = ui.new_page()
    page.goto("/configs?new")
    _tab(page, "Training")
    page.get_by_label("Max steps").fill("many")
    page.get_by_role("button", name="Create config").click()
    # Both are refused before anything is sent; the first is focused, in its own tab.
    expect(_error_of(page, "config-name")).to_have_text("A name is required.")
    expect(page.get_by_label("Name")).to_be_focused()
    expect(_error_of(page, "train-steps")).to_contain_text("Max steps must be a whole number")

    page.get_by_label("Name").fill("taken")
    page.get_by_role("tab", name="Training").click()
    page.get_by_label("Max steps").fill("0")
    page.get_by_role("button", name="Create config").click()
    expect(_error_of(page, "train-steps")).to_contain_text("above 0")
    expect(page.get_by_label("Max steps")).to_be_focused()

    # What only the server knows (the name is taken) lands beside the name too.
    page.get_by_label("Max steps").fill("10")
    page.get_by_role("button", name="Create config").click()
    expect(_error_of(page, "config-name")).to_contain_text("already exists")
    expect(page.locator("#train-steps")).not_to_have_attribute("aria-invalid", "true")

    # A value only the server refuses, typed in the raw view, is shown beside its form field.
    page.get_by_label("Name").fill("fresh")
    _tab(page, "Raw JSON")
    raw = page.locator("#raw-json")
    document = json.loads(raw.input_value())
    document["config"]["--resolution"] = 4
    raw.fill(json.dumps(document))
    page.get_by_role("button", name="Create config").click()
    expect(page.get_by_role("tab", name="Training")).to_have_attribute("aria-selected", "true")
    expect(_error_of(page, "train-resolution")).to_contain_text("resolution must be between 8")
    assert ui.api("GET", "/api/configs/fresh").status_code == 404


def _sign_up_researcher(ui: UiServer) -> dict[str, str]:
    ui.create_admin()
    # The admin's own key (the fixture's admin_headers sends `email`, which login refuses).
    login = ui.api("POST", "/api/auth/login", json={k: ADMIN[k] for k in ("username", "password")})
    assert login.status_code == 200, login.text
    admin = {"Authorization": f"Bearer {login.json()['token']}"}
    made = ui.api("POST", "/api/users", json={**PERSON, "role": "researcher"}, headers=admin)
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


def _sign_in(page: Page, ui: UiServer, path: str) -> None:
    page.goto(path)
    page.get_by_label("Username").fill(PERSON["username"])
    page.get_by_label("Password").fill(PERSON["password"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{ui.url}{path}")


def test_a_path_the_policy_refuses_is_shown_beside_it(ui: UiServer, tmp_path: Path) -> None:
    _sign_up_researcher(ui)
    page = ui.new_page(width=390, dark=True)
    _sign_in(page, ui, "/configs")
    expect(page.locator("#whoami")).to_have_text("rita (researcher)")
    page.locator("#new-config").click()
    page.get_by_label("Name").fill("secret-files")
    _tab(page, "Dataloader")
    page.get_by_role("button", name="Add dataset").click()
    page.locator("#ds-0-path").fill("/etc")
    page.get_by_role("button", name="Create config").click()
    error = _error_of(page, "ds-0-path")
    expect(error).to_contain_text("'/etc' is not allowed")
    screenshot(page, "config-editor-390-dark")
    login = ui.api("POST", "/api/auth/login", json=LOGIN)
    researcher = {"Authorization": f"Bearer {login.json()['token']}"}
    assert ui.api("GET", "/api/configs/secret-files", headers=researcher).status_code == 404

    # An output folder outside the researcher's own is refused beside its field too.
    page.get_by_role("button", name="Remove dataset 1").click()
    _tab(page, "Model")
    page.get_by_label("Output folder").fill(str(tmp_path / "elsewhere"))
    page.get_by_role("button", name="Create config").click()
    expect(_error_of(page, "model-output")).to_contain_text("is not allowed")
    page.get_by_label("Output folder").fill("mine")
    page.get_by_role("button", name="Create config").click()
    expect(page).to_have_url(f"{ui.url}/configs/secret-files")
    assert _saved(ui, "secret-files", researcher)["config"]["--output_dir"] == "mine"


def test_a_viewer_sees_configs_without_edit_actions(ui: UiServer) -> None:
    _put(ui, "shared-one")  # before the first user: shared, visible to everyone
    made = _sign_up_researcher(ui)
    db = Database(ui.server.database_url)
    with db.write() as session:
        session.execute(update(UserModel).where(UserModel.id == made["id"]).values(role="viewer"))
        user_store.bump_auth_epoch(session)
    db.engine.dispose()

    page = ui.new_page()
    _sign_in(page, ui, "/configs")
    row = page.locator('tr[data-config="shared-one"]')
    expect(row).to_be_visible()
    expect(page.locator("#new-config")).to_have_count(0)
    expect(row.get_by_role("button")).to_have_count(0)
    row.get_by_role("link", name="shared-one").click()
    expect(page.get_by_label("Description")).to_be_disabled()
    _tab(page, "Training")
    expect(page.get_by_label("Max steps")).to_be_disabled()
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    expect(page.get_by_role("link", name="Duplicate")).to_have_count(0)
