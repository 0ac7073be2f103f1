"""The trainer's side of a job away from the server (trainer/remote.py), without a cluster."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from cloudtune.trainer.remote import (
    LiveSamples,
    extract_safely,
    localise_dataloader,
    upload_outputs,
    with_output_dir,
)


def test_archive_folders_become_folders_of_the_node(tmp_path: Path) -> None:
    entries = [
        {"id": "a", "instance_data_dir": "datasets/a"},
        {"id": "b", "instance_data_dir": "/mnt/data/b"},  # a folder the nodes see
        {"id": "c", "type": "aws"},
    ]
    out = localise_dataloader(entries, tmp_path)
    assert out[0]["instance_data_dir"] == str(tmp_path / "datasets/a")
    assert out[1:] == entries[1:]


def test_the_output_folder_is_the_nodes_whatever_the_config_named(tmp_path: Path) -> None:
    config = {"--output_dir": "/server/only", "output_dir": "/x", "--max_train_steps": 3}
    assert with_output_dir(config, tmp_path) == {
        "--max_train_steps": 3,
        "--output_dir": str(tmp_path),
    }


@pytest.mark.parametrize("name", ["../escape.txt", "/abs.txt", "a/../../b.txt"])
def test_an_archive_member_that_would_leave_the_folder_is_refused(
    tmp_path: Path, name: str
) -> None:
    archive = tmp_path / "d.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("datasets/a/ok.txt", "fine")
        zf.writestr(name, "bad")
    with pytest.raises(ValueError, match="unsafe name"):
        extract_safely(archive, tmp_path / "data")
    assert not (tmp_path / "escape.txt").exists()


def test_a_good_archive_is_unpacked(tmp_path: Path) -> None:
    archive = tmp_path / "d.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("datasets/a/img.txt", "a caption")
    extract_safely(archive, tmp_path / "data")
    assert (tmp_path / "data/datasets/a/img.txt").read_text() == "a caption"


class RecordingClient:
    """Stands for the S3 client: what was sent, and when."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def upload_file(self, path: str, bucket: str, key: str) -> None:
        self.sent.append((bucket, key))


def test_samples_go_once_they_settle_and_the_end_sends_only_the_rest(tmp_path: Path) -> None:
    client = RecordingClient()
    output = tmp_path / "output"
    (output / "validation_images").mkdir(parents=True)
    image = output / "validation_images" / "step_2_0.png"
    image.write_bytes(b"\x89PNG one")
    samples = LiveSamples(client, "outputs", "u/j/output/", output)
    samples._look()
    assert client.sent == []  # just written: it may still grow
    samples._look()
    assert client.sent == [("outputs", "u/j/output/validation_images/step_2_0.png")]
    samples._look()
    assert len(client.sent) == 1  # unchanged: not again

    (output / "pytorch_lora_weights.safetensors").write_bytes(b"weights")
    count = upload_outputs(client, "outputs", "u/j/output/", output, samples.sent)
    assert count == 1 and client.sent[-1][1] == "u/j/output/pytorch_lora_weights.safetensors"
