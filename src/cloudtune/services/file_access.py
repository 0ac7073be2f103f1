"""The file access policy (DESIGN §8): every path a user names — dataset folders, output
folders, local model files — is resolved here, symlinks followed, and allowed or refused.

- Reads: under the data roots (`CLOUDTUNE_DATA_ROOTS`). With no users the default is the OS
  user's own files (the caller is that user, as with SimpleTuner); once users exist it is
  `<home>/datasets`, and a non-admin may also read back their own outputs.
- Writes: under the output root (`CLOUDTUNE_OUTPUT_ROOT`, default `<home>/outputs`); with users,
  a caller writes under `<output_root>/<username>/` (admins anywhere in the output root); with
  no users, anywhere the OS user owns.
- The server's home (database, secrets key, runs, packages, configs) is never read or written
  through a job, in any mode; only its `outputs/` and `datasets/` folders are, when they are roots.
- "Outside the roots" and "does not exist" are one error, `path_not_allowed`, with one text, so
  an answer never tells whether a file exists somewhere the caller may not look.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cloudtune.domain.principal import ALL_PERMISSIONS, Principal
from cloudtune.domain.training import TrainingSpec, path_fields
from cloudtune.errors import InvalidInputError
from cloudtune.settings import Settings

# The bucket of the built-in S3 endpoint that users upload datasets into; a dataloader names
# one as `s3://datasets/<name>` (or `"dataset": "<name>"`).
DATASETS_BUCKET = "datasets"
DATASETS_URL = f"s3://{DATASETS_BUCKET}/"


class PathNotAllowedError(InvalidInputError):
    code = "path_not_allowed"


@dataclass(frozen=True, slots=True)
class FileAccessPolicy:
    # None: the OS user's own files (no users and no configured roots).
    read_roots: tuple[Path, ...] | None
    # Where relative output folders land and what this caller may write under.
    write_base: Path
    write_roots: tuple[Path, ...] | None  # None: the OS user's own files
    # The server's home, and the folders inside it that are roots (outputs, datasets).
    home: Path
    home_exempt: tuple[Path, ...]
    # Relative dataset paths: from the first data root, or the working folder with no users.
    read_base: Path
    uid: int
    # The caller's own datasets in the built-in S3 endpoint's `datasets` bucket (s3://datasets/
    # names): read like a data root, though inside the server's home.
    uploaded_datasets: Path | None = None

    @classmethod
    def for_caller(cls, settings: Settings, caller: Principal) -> FileAccessPolicy:
        # A caller without a user id exists only while no users do (keys made then stop
        # working once a user exists), so this needs no database read.
        users = caller.user_id is not None
        admin = caller.permissions >= ALL_PERMISSIONS
        home = _real(settings.home)
        output_root = _real(settings.outputs_dir)
        configured = tuple(_real(Path(r).expanduser()) for r in settings.data_roots or ())
        if not users:
            read_roots = configured or None
            write_base = output_root
            write_roots: tuple[Path, ...] | None = None
        else:
            write_base = output_root / caller.name if caller.name else output_root
            own_outputs = output_root if admin else write_base
            read_roots = (configured or (_real(settings.datasets_dir),)) + (own_outputs,)
            write_roots = (output_root,) if admin else (write_base,)
        uploaded = _real(settings.storage_dir / DATASETS_BUCKET / caller.storage_prefix)
        if read_roots is not None:
            read_roots = (*read_roots, uploaded)
        exempt = tuple(
            p for p in (output_root, _real(settings.datasets_dir), uploaded) if _under(p, home)
        )
        return cls(
            read_roots=read_roots,
            write_base=write_base,
            write_roots=write_roots,
            home=home,
            home_exempt=exempt,
            read_base=read_roots[0] if read_roots and configured else Path.cwd(),
            uid=os.getuid(),
            uploaded_datasets=uploaded,
        )

    # -- questions --------------------------------------------------------------------------

    def is_protected(self, path: Path) -> bool:
        """Inside the server's home and not inside one of its root folders."""
        return _under(path, self.home) and not any(_under(path, e) for e in self.home_exempt)

    def contains_home(self, path: Path) -> bool:
        return path != self.home and self.home.is_relative_to(path)

    def may_read(self, path: Path) -> bool:
        """`path` must already be resolved."""
        if self.is_protected(path):
            return False
        if self.read_roots is None:
            return _owned_by(path, self.uid)
        return any(_under(path, root) for root in self.read_roots)

    def may_write(self, path: Path) -> bool:
        if self.is_protected(path) or self.contains_home(path):
            return False
        if self.write_roots is None:
            return _owned_by(_nearest_existing(path), self.uid)
        return any(_under(path, root) for root in self.write_roots)

    # -- checks that answer with a path or raise path_not_allowed ---------------------------

    def dataset_folder(self, raw: str, what: str) -> Path:
        def allowed(path: Path) -> bool:
            return self.may_read(path) and not self.contains_home(path) and _readable_dir(path)

        return self._checked(raw, self.read_base, allowed, what, "an existing folder you may read")

    def local_file(self, raw: str, what: str) -> Path:
        """A model file or folder (weights, LoRA to start from, checkpoint to resume)."""

        def allowed(path: Path) -> bool:
            readable = os.access(path, os.R_OK)
            return self.may_read(path) and not self.contains_home(path) and readable

        must_be = "an existing file or folder you may read"
        return self._checked(raw, self.read_base, allowed, what, must_be)

    def writable_folder(self, raw: str, what: str) -> Path:
        """A folder a trainer will create or write into; relative paths land in the caller's
        output folder."""

        def allowed(path: Path) -> bool:
            return self.may_write(path) and (not path.exists() or path.is_dir())

        return self._checked(raw, self.write_base, allowed, what, "a folder you may write")

    def _checked(
        self, raw: str, base: Path, allowed: Callable[[Path], bool], what: str, must_be: str
    ) -> Path:
        try:
            path = self.resolve(raw, base)
            if allowed(path):
                return path
        except (OSError, ValueError, RuntimeError):
            pass  # a NUL byte, a name too long, `~nobody`: refused like any other path
        raise self.refusal(what, raw, must_be)

    def confine(self, spec: TrainingSpec, *, job_id: str, runs_here: bool) -> None:
        """Resolve and check every path of a job's spec, in place: the output folder (default
        `<write base>/<job id>`) always, and, when the trainer runs on this machine, every other
        path it would open (model files, checkpoints, caches)."""
        output = spec.get("output_dir")
        spec.config["--output_dir"] = str(
            self.writable_folder(str(output), "output_dir")
            if output
            else self.writable_folder(job_id, "output_dir")
        )
        if not runs_here:
            return  # a remote trainer's other paths name files on its own machine
        for found in path_fields(spec):
            if found.writes:
                resolved = self.writable_folder(found.value, found.label)
            else:
                resolved = self.local_file(found.value, found.label)
            if isinstance(found.container, dict):
                found.container[str(found.key)] = str(resolved)
            else:
                found.container[int(found.key)] = str(resolved)

    def resolve(self, raw: str, base: Path) -> Path:
        if "\0" in raw:
            raise ValueError("a path with a NUL byte")
        path = Path(raw).expanduser()
        return _real(path if path.is_absolute() else base / path)

    def describe(self) -> str:
        if self.read_roots is None:
            return "files owned by the user running the server"
        return ", ".join(str(r) for r in self.read_roots)

    def refusal(self, what: str, raw: str, must_be: str) -> PathNotAllowedError:
        write = must_be.endswith("write")
        roots = (
            ("files owned by the user running the server" if self.write_roots is None else "")
            or ", ".join(str(r) for r in self.write_roots or ())
            if write
            else self.describe()
        )
        return PathNotAllowedError(
            f"{what} {raw!r} is not allowed: it must be {must_be} under the "
            f"{'output' if write else 'data'} roots ({roots}), and never the server's own "
            "state folder",
            field=what.rsplit(" ", 1)[-1],
        )


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _under(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _owned_by(path: Path, uid: int) -> bool:
    try:
        return path.stat().st_uid == uid
    except OSError:
        return False


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _readable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.R_OK | os.X_OK)
