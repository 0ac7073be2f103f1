"""The configs folder's git state, as git reports it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cloudtune.services.config_repo import repo_state


def git(folder: Path, *args: str) -> None:
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "-C", str(folder), *identity, *args], check=True)


def test_a_repository_above_the_configs_folder_is_not_its_own(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    configs = tmp_path / "home" / "configs"
    (configs / "one").mkdir(parents=True)
    (configs / "one" / "config.json").write_text("{}")
    state = repo_state(configs)
    assert state.git_available and not state.repo_present and state.dirty_paths == ()


def test_renames_and_new_configs_are_listed_by_their_paths(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    (configs / "one").mkdir(parents=True)
    (configs / "one" / "config.json").write_text("{}")
    git(configs, "init", "-q", "-b", "main")
    git(configs, "add", ".")
    git(configs, "commit", "-q", "-m", "one")
    git(configs, "mv", "one", "two")
    (configs / "three").mkdir()
    (configs / "three" / "config.json").write_text("{}")
    state = repo_state(configs)
    assert state.repo_present and state.is_dirty and state.current_branch == "main"
    assert sorted(state.dirty_paths) == ["one/config.json", "three/", "two/config.json"]
    assert state.dirty_count == 3
