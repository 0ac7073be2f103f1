"""Whether the configs folder is a git work tree, and its state: what the reference server's
submit dialog checks before a job is sent (GET /api/cloud/pre-submit-check). This server does
not commit anything itself; it reports what git says, so a user who versions their configs
sees before submitting that the job would run uncommitted changes.

git runs with hooks and the filesystem monitor off, without the system-wide config, and never
looks above the configs folder for a repository; filters the operator configured in that
repository (e.g. for large files) do run, as they would for the operator's own `git status`.
A caller sees the changed paths of the configs it may see, and no others."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cloudtune.domain.principal import Principal
from cloudtune.domain.training import config_text
from cloudtune.services import configs
from cloudtune.services.context import Context

GIT_TIMEOUT_SECONDS = 5.0
MAX_DIRTY_PATHS = 50
# No hooks, no filesystem monitor, no pager, no prompt.
_SAFE = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "--no-pager")


@dataclass(frozen=True, slots=True)
class RepoState:
    git_available: bool
    repo_present: bool
    is_dirty: bool | None = False  # None: git could not say
    dirty_count: int | None = 0
    dirty_paths: tuple[str, ...] = ()
    current_commit: str | None = None
    current_abbrev: str | None = None
    current_branch: str | None = None


@dataclass(frozen=True, slots=True)
class PreSubmitCheck:
    repo: RepoState
    config_name: str | None
    tracker_run_name: str | None


def pre_submit_check(ctx: Context, caller: Principal, config_name: str | None) -> PreSubmitCheck:
    caller.require("job.submit")
    run_name = None
    if config_name:
        named = configs.get_config(ctx, caller, config_name)  # 404 for one the caller can't see
        run_name = config_text(named.config, "tracker_run_name")
    repo = repo_state(ctx.settings.configs_dir)
    if repo.dirty_paths:
        visible = {summary.name for summary in configs.list_configs(ctx, caller)}
        shown = [p for p in repo.dirty_paths if p.split("/", 1)[0] in visible]
        repo = dataclasses.replace(
            repo,
            is_dirty=bool(shown),
            dirty_count=len(shown),
            dirty_paths=tuple(shown[:MAX_DIRTY_PATHS]),
        )
    return PreSubmitCheck(repo, config_name, run_name)


def repo_state(folder: Path) -> RepoState:
    git = shutil.which("git")
    if git is None:
        return RepoState(git_available=False, repo_present=False)
    if not folder.is_dir() or _git(git, folder, "rev-parse", "--is-inside-work-tree") != "true":
        return RepoState(git_available=True, repo_present=False)
    status = _git(
        git, folder, "status", "--porcelain=v1", "-z", "--no-renames", "--", ".", strip=False
    )
    dirty = [entry[3:] for entry in (status or "").split("\0") if len(entry) > 3]
    commit = _git(git, folder, "rev-parse", "--verify", "-q", "HEAD")
    branch = _git(git, folder, "rev-parse", "--abbrev-ref", "HEAD") if commit else None
    return RepoState(
        git_available=True,
        repo_present=True,
        is_dirty=bool(dirty) if status is not None else None,
        dirty_count=len(dirty) if status is not None else None,
        dirty_paths=tuple(dirty),
        current_commit=commit,
        current_abbrev=commit[:7] if commit else None,
        current_branch=branch if branch and branch != "HEAD" else None,
    )


def _git(git: str, folder: Path, *args: str, strip: bool = True) -> str | None:
    """git's output (stripped unless told: a status line starts with a space); None when it
    fails or takes too long."""
    try:
        done = subprocess.run(
            [git, *_SAFE, "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            env={
                "GIT_OPTIONAL_LOCKS": "0",
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_CONFIG_NOSYSTEM": "1",
                # Never the repository of a folder above: only the configs folder's own.
                "GIT_CEILING_DIRECTORIES": str(folder.resolve().parent),
                "PATH": "/usr/bin:/bin",
            },
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() if strip else done.stdout
