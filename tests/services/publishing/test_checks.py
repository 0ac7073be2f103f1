"""The `publish` JSON's checks: what is accepted, and each refusal named by its field without
repeating a secret."""

from __future__ import annotations

from typing import Any

import pytest

from cloudtune.domain.publishing import HubTarget, PublishSettings, S3Target
from cloudtune.errors import InvalidInputError
from cloudtune.services.publishing.checks import parse_publish

S3 = {"bucket": "my-models", "access_key_id": "AKIA1", "secret_access_key": "s3cr3t"}


def test_full_shape_is_read() -> None:
    parsed = parse_publish(
        {
            "hub": {"repo_id": "org-1/my.lora_v2", "private": False, "token": "hf_x1"},
            "s3": S3
            | {
                "endpoint_url": "https://minio.example:9000/",
                "prefix": "/team/loras/",
                "region": "eu-west-1",
            },
        }
    )

    assert parsed == PublishSettings(
        hub=HubTarget("org-1/my.lora_v2", private=False, token="hf_x1"),
        s3=S3Target(
            "my-models",
            prefix="team/loras",
            region="eu-west-1",
            endpoint_url="https://minio.example:9000",
            access_key_id="AKIA1",
            secret_access_key="s3cr3t",
        ),
    )


def test_hub_is_private_unless_told() -> None:
    assert parse_publish({"hub": {"repo_id": "me/x"}}).hub == HubTarget("me/x", private=True)
    assert parse_publish({}).empty


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"hub": {"repo_id": "no-owner"}}, "publish.hub.repo_id"),
        ({"hub": {"repo_id": "me/a--b"}}, "publish.hub.repo_id"),
        ({"hub": {"repo_id": "me/../x"}}, "publish.hub.repo_id"),
        ({"hub": {"repo_id": "me/" + "x" * 97}}, "publish.hub.repo_id"),
        ({"hub": {"repo_id": "me/-x"}}, "publish.hub.repo_id"),
        ({"hub": {"repo_id": "me/x", "private": "yes"}}, "publish.hub.private"),
        ({"hub": {"repo_id": "me/x", "token": 5}}, "publish.hub.token"),
        ({"hub": "me/x"}, "publish.hub"),
        ({"s3": S3 | {"bucket": "My_Bucket"}}, "publish.s3.bucket"),
        ({"s3": S3 | {"bucket": "ab"}}, "publish.s3.bucket"),
        ({"s3": S3 | {"bucket": "192.168.1.2"}}, "publish.s3.bucket"),
        ({"s3": S3 | {"bucket": "a..b"}}, "publish.s3.bucket"),
        ({"s3": S3 | {"bucket": "xn--abc"}}, "publish.s3.bucket"),
        ({"s3": S3 | {"endpoint_url": "ftp://host"}}, "publish.s3.endpoint_url"),
        ({"s3": S3 | {"endpoint_url": "https://"}}, "publish.s3.endpoint_url"),
        ({"s3": S3 | {"endpoint_url": "https://u:p@host"}}, "publish.s3.endpoint_url"),
        ({"s3": S3 | {"endpoint_url": "https://host/?x=1"}}, "publish.s3.endpoint_url"),
        ({"s3": S3 | {"endpoint_url": "https://host:99999"}}, "publish.s3.endpoint_url"),
        ({"s3": S3 | {"endpoint_url": "https://h/" + "x" * 2048}}, "publish.s3.endpoint_url"),
        ({"s3": S3 | {"prefix": "a/../b"}}, "publish.s3.prefix"),
        ({"s3": S3 | {"prefix": "a\nb"}}, "publish.s3.prefix"),
        ({"s3": S3 | {"prefix": "p" * 513}}, "publish.s3.prefix"),
        ({"s3": S3 | {"region": "EU WEST"}}, "publish.s3.region"),
        ({"s3": S3 | {"secret_access_key": "has space"}}, "publish.s3.secret_access_key"),
        ({"s3": S3 | {"access_key_id": "k" * 129}}, "publish.s3.access_key_id"),
        ([], "publish"),
    ],
)
def test_refusals_name_the_field(raw: Any, field: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        parse_publish(raw)
    assert refused.value.code == "invalid_publish"
    assert refused.value.extra["field"] == field
    assert "has space" not in refused.value.detail


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"hf": {}}, "publish.hf"),
        ({"hub": {"repo_id": "me/x", "hub_model_id": "me/x"}}, "publish.hub.hub_model_id"),
        ({"s3": S3 | {"use_ssl": False}}, "publish.s3.use_ssl"),
    ],
)
def test_unknown_fields_are_refused_by_name(raw: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        parse_publish(raw)
    assert refused.value.code == "unsupported_field"
    assert named in refused.value.detail
