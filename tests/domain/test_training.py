from __future__ import annotations

import pytest

from cloudtune.domain.training import build_spec
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
