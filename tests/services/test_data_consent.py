"""The data consent setting as a service: saved for every replica, and enforced by the submit
of a provider that uploads local datasets (never by one that trains here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from cloudtune.domain.principal import LOCAL_ADMIN, ROLE_PERMISSIONS, Principal
from cloudtune.errors import InvalidInputError, PermissionDeniedError
from cloudtune.providers.registry import ProviderRegistry, settings_model
from cloudtune.services import data_consent, submission
from cloudtune.services.context import Context
from cloudtune.services.submission.prepare import prepare
from cloudtune.settings import Settings
from cloudtune.store.db import Database
from tests.factories import job_body, make_context, make_dataset

RESEARCHER = Principal(user_id="u1", permissions=ROLE_PERMISSIONS["researcher"], name="rita")


class TokenOnly:
    """Provider settings with a token: prepare() packages and never calls Replicate."""

    def config(self, provider: str) -> BaseModel:
        return settings_model(provider)()

    def token(self, provider: str) -> str | None:
        return "r8_not_used"


@pytest.fixture
def ctx(settings: Settings, db: Database, tmp_path: Path) -> Iterator[Context]:
    settings.data_roots = [str(tmp_path)]
    context = make_context(settings, db)
    context.providers = ProviderRegistry(
        settings, names=["local", "replicate"], config=TokenOnly()
    )
    yield context


@pytest.fixture
def request_body(tmp_path: Path) -> submission.SubmitRequest:
    body = job_body(make_dataset(tmp_path / "data", 2, size=16), tmp_path / "out")
    body["config"]["--model_family"] = "flux"  # one that Replicate trains
    return submission.SubmitRequest(
        config=body["config"], dataloader_config=body["dataloader_config"]
    )


def for_local(request: submission.SubmitRequest) -> submission.SubmitRequest:
    config = {**(request.config or {}), "--model_family": "reference"}
    return submission.SubmitRequest(config=config, dataloader_config=request.dataloader_config)


def with_consent(request: submission.SubmitRequest) -> submission.SubmitRequest:
    return submission.SubmitRequest(
        config=request.config, dataloader_config=request.dataloader_config, upload_consent=True
    )


def test_the_mode_defaults_to_allow_and_is_shared_by_every_replica(
    ctx: Context, settings: Settings, db: Database
) -> None:
    assert data_consent.get_mode(ctx, RESEARCHER) is data_consent.ConsentMode.ALLOW
    other_replica = make_context(settings, db, providers=["local"])
    for value in ("deny", "ask", "allow", "ask"):
        saved = data_consent.set_mode(ctx, LOCAL_ADMIN, {"consent": value})
        assert saved.value == value
        assert data_consent.get_mode(other_replica, RESEARCHER).value == value


@pytest.mark.parametrize(
    "body",
    [{"consent": "maybe"}, {"consent": None}, {"consent": 1}, {}, {"consent": "ask", "x": 1}],
)
def test_anything_but_the_three_modes_is_refused(ctx: Context, body: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        data_consent.set_mode(ctx, LOCAL_ADMIN, body)
    assert data_consent.load_mode(ctx) is data_consent.ConsentMode.ALLOW


def test_changing_it_needs_provider_manage(ctx: Context) -> None:
    with pytest.raises(PermissionDeniedError):
        data_consent.set_mode(ctx, RESEARCHER, {"consent": "allow"})


def test_deny_refuses_an_upload_before_anything_is_packaged(
    ctx: Context, settings: Settings, request_body: submission.SubmitRequest
) -> None:
    data_consent.set_mode(ctx, LOCAL_ADMIN, {"consent": "deny"})
    for request in (request_body, with_consent(request_body)):
        with pytest.raises(PermissionDeniedError) as refused:
            prepare(ctx, LOCAL_ADMIN, "replicate", request)
        assert refused.value.code == "upload_refused"
        assert "PUT /api/cloud/data-consent/setting" in refused.value.detail
    packages = settings.packages_dir
    assert not packages.exists() or list(packages.iterdir()) == []


def test_ask_needs_the_submits_own_consent(
    ctx: Context, request_body: submission.SubmitRequest
) -> None:
    data_consent.set_mode(ctx, LOCAL_ADMIN, {"consent": "ask"})
    with pytest.raises(InvalidInputError) as refused:
        prepare(ctx, LOCAL_ADMIN, "replicate", request_body)
    assert refused.value.code == "consent_required"
    assert "upload_consent" in refused.value.detail
    prepared = prepare(ctx, LOCAL_ADMIN, "replicate", with_consent(request_body))
    assert prepared.package is not None


def test_allow_needs_nothing(ctx: Context, request_body: submission.SubmitRequest) -> None:
    assert prepare(ctx, LOCAL_ADMIN, "replicate", request_body).package is not None


@pytest.mark.parametrize("mode", ["ask", "deny"])
def test_a_job_trained_here_is_never_affected(
    ctx: Context, request_body: submission.SubmitRequest, mode: str
) -> None:
    data_consent.set_mode(ctx, LOCAL_ADMIN, {"consent": mode})
    prepared = prepare(ctx, LOCAL_ADMIN, "local", for_local(request_body))
    assert prepared.package is None and prepared.scan is None


async def test_the_preview_says_the_mode_and_whether_a_submit_would_be_refused(
    ctx: Context, request_body: submission.SubmitRequest
) -> None:
    data_consent.set_mode(ctx, LOCAL_ADMIN, {"consent": "deny"})
    cloud = await submission.preview_job(ctx, LOCAL_ADMIN, "replicate", request_body)
    assert cloud.consent == "deny" and cloud.data_leaves_machine and cloud.blocked
    assert any("consent" in warning for warning in cloud.warnings)
    here = await submission.preview_job(ctx, LOCAL_ADMIN, "local", for_local(request_body))
    assert here.consent == "deny" and not here.data_leaves_machine and not here.blocked
    data_consent.set_mode(ctx, LOCAL_ADMIN, {"consent": "ask"})
    asked = await submission.preview_job(ctx, LOCAL_ADMIN, "replicate", request_body)
    assert asked.consent == "ask" and not asked.blocked
