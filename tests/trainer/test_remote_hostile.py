"""The node-side runner refuses a dataloader folder that would climb out of its archive."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudtune.trainer.remote import localise_dataloader


@pytest.mark.parametrize("folder", ["datasets/../../etc", "datasets/a/../../.."])
def test_an_archive_folder_that_climbs_is_refused(tmp_path: Path, folder: str) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        localise_dataloader([{"type": "csv", "instance_data_dir": folder}], tmp_path)
