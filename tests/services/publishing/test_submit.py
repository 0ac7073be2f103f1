"""Whose Hub token a submit may lean on: the server's (the saved defaults' or HF_TOKEN) pushes
only to the saved defaults' repository, unless the submitter manages the providers."""

from __future__ import annotations

import socket
from typing import Any

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
        assert publish.settings.hub.token == HUB_TOKEN and not publish.by_provider_manager
    assert own is not None and own.settings.hub is not None
    assert own.settings.hub.token == "hf_olgas_own"


def test_a_provider_manager_may_use_the_servers_token_anywhere(ctx: Context) -> None:
    publish = publishing.for_submit(ctx, LOCAL_ADMIN, {"hub": {"repo_id": "admin-org/prod"}})

    assert publish is not None and publish.settings.hub is not None
    assert publish.settings.hub.token == HUB_TOKEN and publish.by_provider_manager


def _s3(endpoint_url: str) -> dict[str, object]:
    return {
        "s3": {
            "bucket": "models",
            "endpoint_url": endpoint_url,
            "access_key_id": "AKIAOLGA",
            "secret_access_key": "olgas-secret",
        }
    }


@pytest.mark.parametrize(
    "endpoint_url",
    [
        "http://169.254.169.254",
        "http://[::1]:9000",
        "http://0.0.0.0:8001",
        "http://localhost:8001",
        "http://127.0.0.1:9000",
        "http://10.0.0.5",
        "https://192.168.1.20:9000",
        "http://100.64.0.1",  # carrier NAT space
        "http://224.0.0.1",
        "http://240.0.0.1",
        "http://[::ffff:127.0.0.1]:9000",
        "http://[fe80::1]",
        "http://0177.0.0.1",  # octal, as the resolver reads it: 127.0.0.1
        "http://2130706433",  # 127.0.0.1 as one number
    ],
)
def test_a_researcher_may_not_publish_into_the_servers_network(
    ctx: Context, endpoint_url: str
) -> None:
    with pytest.raises(InvalidInputError) as refused:
        publishing.for_submit(ctx, RESEARCHER, _s3(endpoint_url))
    assert refused.value.code == "invalid_publish"
    assert refused.value.extra["field"] == "publish.s3.endpoint_url"


def test_every_address_of_a_name_is_checked(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {
        "s3.example.com": ["93.184.216.34", "2606:2800:220:1::1"],
        "rebind.example.com": ["93.184.216.34", "127.0.0.1"],
    }

    def resolve(host: str, port: object, *args: object, **kw: object) -> list[Any]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 443)) for a in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)

    public = publishing.for_submit(ctx, RESEARCHER, _s3("https://s3.example.com"))
    assert public is not None and public.settings.s3 is not None
    for url in ("https://rebind.example.com", "https://nowhere.example.com"):
        with pytest.raises(InvalidInputError):
            publishing.for_submit(ctx, RESEARCHER, _s3(url))


def test_a_provider_manager_may_publish_to_a_lan_endpoint(ctx: Context) -> None:
    publish = publishing.for_submit(ctx, LOCAL_ADMIN, _s3("http://127.0.0.1:9000"))

    assert publish is not None and publish.settings.s3 is not None
    assert publish.settings.s3.endpoint_url == "http://127.0.0.1:9000"
    assert publish.by_provider_manager
