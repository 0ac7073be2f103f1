from __future__ import annotations

import pytest

from cloudtune.domain.training import (
    build_spec,
    check_document,
    mask_secrets,
    merge_secrets,
    path_fields,
    split_secrets,
)
from cloudtune.errors import InvalidInputError


def test_keys_with_and_without_dashes_become_dashed() -> None:
    spec = build_spec({"model_family": "reference", "--max_train_steps": "30"}, [])
    assert spec.config == {"--model_family": "reference", "--max_train_steps": 30}
    assert spec.max_train_steps == 30


def test_the_same_key_twice_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="twice"):
        build_spec({"lora_rank": 4, "--lora_rank": 8}, [])


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_train_steps", -1),
        ("max_train_steps", 0),
        ("max_train_steps", "many"),
        ("max_train_steps", 2.5),
        ("lora_rank", True),
        ("learning_rate", "fast"),
        ("resolution", 10**9),
    ],
)
def test_bad_numbers_are_refused(key: str, value: object) -> None:
    with pytest.raises(InvalidInputError) as caught:
        build_spec({"model_family": "reference", key: value}, [])
    assert caught.value.code == "invalid_config"
    assert key in caught.value.detail


@pytest.mark.parametrize("config", [{}, None, [], "text"])
def test_config_must_be_a_non_empty_object(config: object) -> None:
    with pytest.raises(InvalidInputError):
        build_spec(config, [])


def test_local_dataset_needs_instance_data_dir() -> None:
    with pytest.raises(InvalidInputError) as caught:
        build_spec({"model_family": "reference"}, [{"id": "imgs", "type": "local"}])
    assert caught.value.code == "invalid_dataset"
    assert "instance_data_dir" in caught.value.detail


def test_text_embed_cache_entries_need_no_folder() -> None:
    spec = build_spec(
        {"model_family": "reference"},
        [{"id": "te", "type": "local", "dataset_type": "text_embeds", "cache_dir": "/tmp/x"}],
    )
    assert spec.local_datasets() == []


def test_dataloader_must_be_a_list_of_objects() -> None:
    with pytest.raises(InvalidInputError):
        build_spec({"model_family": "reference"}, {"id": "x"})
    with pytest.raises(InvalidInputError):
        build_spec({"model_family": "reference"}, ["x"])


@pytest.mark.parametrize(
    "key",
    [
        "--hub_token",
        "hf_token",
        "aws_secret_access_key",
        "aws_access_key_id",
        "access_key",
        "s3_key",
        "api_key",
        "webhook_auth",
        "auth",
        "db_password",
        "gcs_credentials",
        "client_secret",
    ],
)
def test_secret_keys_are_masked(key: str) -> None:
    masked = mask_secrets({key: "value", "nested": [{key: "value"}]})
    assert masked == {key: "***", "nested": [{key: "***"}]}


@pytest.mark.parametrize(
    "key", ["--tokenizer_max_length", "--learning_rate", "author", "--output_dir"]
)
def test_ordinary_keys_are_not_masked(key: str) -> None:
    assert mask_secrets({key: "value"}) == {key: "value"}


def test_secrets_split_out_and_merge_back() -> None:
    config = {"--hub_token": "hf_x", "--push_to_hub": True, "--lr": 1}
    loader = [{"id": "a", "aws_secret_access_key": "k", "nested": {"auth": "t"}}]
    public_config, public_loader, secrets = split_secrets(config, loader)
    assert "--hub_token" not in public_config and public_config["--push_to_hub"] is True
    assert public_loader == [{"id": "a", "nested": {}}]
    merge_secrets(public_config, public_loader, secrets)
    assert public_config == config and public_loader == loader


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    value: object = 1
    for _ in range(70):
        value = [value]
    with pytest.raises(InvalidInputError):
        check_document("config", value, 64)
    check_document("config", [[1]], 64)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("--wandbApiKey", "k"),
        ("--HubToken", "t"),
        ("--bearer", "b"),
        ("webhook_url", "https://discord.com/api/webhooks/1/abc"),
        ("--tracker_uri", "https://user:pass@tracker.example/x"),
        ("--dataset_url", "https://acct.blob.core.windows.net/c/f?sv=1&sig=abc"),
    ],
)
def test_secrets_found_by_camel_case_and_by_value(key: str, value: str) -> None:
    assert mask_secrets({key: value}) == {key: "***"}


def test_paths_in_lists_and_climbing_paths_are_found() -> None:
    spec = build_spec(
        {
            "--model_family": "reference",
            "--validation": [{"path": "/etc/passwd"}],
            "--pretrained_model_name_or_path": "x/../../../secrets.key",
            "--OUTPUT_DIR": "/tmp/evil",
            "--webhook_config": "/etc/hosts",
        },
        [{"id": "a", "disabled": True, "instance_data_dir": "/srv/other"}],
    )
    found = {(f.name, f.value, f.writes) for f in path_fields(spec)}
    assert ("path", "/etc/passwd", False) in found
    assert ("pretrained_model_name_or_path", "x/../../../secrets.key", False) in found
    assert ("output_dir", "/tmp/evil", True) in found
    assert ("webhook_config", "/etc/hosts", False) in found
    assert ("instance_data_dir", "/srv/other", False) in found
    names = {
        f.name for f in path_fields(build_spec({"--model_family": "r", "--x": "org/model"}, []))
    }
    assert names == set()
