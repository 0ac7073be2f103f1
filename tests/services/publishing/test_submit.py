"""Whose Hub token a submit may lean on: the server's (the saved defaults' or HF_TOKEN) pushes
only to the saved defaults' repository, unless the submitter manages the providers."""

from __future__ import annotations

import pytest

from cloudtune.domain.principal import LOCAL_ADMIN, ROLE_PERMISSIONS, Principal
from cloudtune.errors import InvalidInputError
from cloudtune.services import publishing
from cloudtune.services.context import Context
from cloudtune.settings import Settings
from cloudtune.store.db import Database
from tests.factories import make_context
from tests.services.publishing.conftest import HUB_TOKEN

RESEARCHER = Principal(user_id="u-olga", permissions=ROLE_PERMISSIONS["researcher"], name="olga")


@pytest.fixture
def ctx(settings: Settings, db: Database) -> Context:
    made = make_context(settings, db)
    publishing.update_defaults(
        made, LOCAL_ADMIN, {"hub": {"repo_id": "admin-org/team", "token": HUB_TOKEN}}
    )
    return made


@pytest.mark.parametrize("environment", [None, "hf_from_the_environment"])
def test_a_researcher_needs_their_own_token_for_another_repository(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, environment: str | None
) -> None:
    if environment:
        monkeypatch.setenv("HF_TOKEN", environment)
    with pytest.raises(InvalidInputError) as refused:
        publishing.for_submit(ctx, RESEARCHER, {"hub": {"repo_id": "admin-org/prod"}})
    assert refused.value.code == "invalid_publish"
    assert refused.value.extra["field"] == "publish.hub.token"
    assert HUB_TOKEN not in str(refused.value)


def test_a_researcher_may_use_the_saved_token_for_the_saved_repository(ctx: Context) -> None:
    named = publishing.for_submit(ctx, RESEARCHER, {"hub": {"repo_id": "admin-org/team"}})
    from_defaults = publishing.for_submit(ctx, RESEARCHER, None)
    own = publishing.for_submit(
        ctx, RESEARCHER, {"hub": {"repo_id": "olga/lora", "token": "hf_olgas_own"}}
    )

    for publish in (named, from_defaults):
        assert publish is not None and publish.settings.hub is not None
        assert publish.settings.hub.token == HUB_TOKEN and not publish.server_token_anywhere
    assert own is not None and own.settings.hub is not None
    assert own.settings.hub.token == "hf_olgas_own"


def test_a_provider_manager_may_use_the_servers_token_anywhere(ctx: Context) -> None:
    publish = publishing.for_submit(ctx, LOCAL_ADMIN, {"hub": {"repo_id": "admin-org/prod"}})

    assert publish is not None and publish.settings.hub is not None
    assert publish.settings.hub.token == HUB_TOKEN and publish.server_token_anywhere
