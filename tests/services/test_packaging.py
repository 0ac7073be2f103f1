"""The packaging rules: what a scan takes, what it leaves out and why, and how archives are
written and reused."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from cloudtune.errors import PayloadTooLargeError
from cloudtune.services.file_access import FileAccessPolicy
from cloudtune.services.packaging import (
    EXAMPLES_PER_RULE,
    DatasetScan,
    package,
    printable,
    remote_dataloader,
    scan_datasets,
)


def policy_for(tmp_path: Path, *, read_roots: tuple[Path, ...] | None = None) -> FileAccessPolicy:
    home = (tmp_path / "home").resolve()
    home.mkdir(exist_ok=True)
    return FileAccessPolicy(
        read_roots=read_roots,
        write_base=home / "outputs",
        write_roots=None,
        home=home,
        home_exempt=(home / "outputs", home / "datasets"),
        read_base=tmp_path,
        uid=os.getuid(),
    )


def make_dataset(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root.resolve()


def scan_one(
    tmp_path: Path,
    root: Path,
    *,
    max_files: int = 1000,
    read_roots: tuple[Path, ...] | None = None,
) -> DatasetScan:
    entry = {"id": "pets", "instance_data_dir": str(root)}
    policy = policy_for(tmp_path, read_roots=read_roots)
    return scan_datasets([entry], policy, max_files=max_files)


class TestScan:
    def test_counts_images_and_bytes_per_dataset(self, tmp_path: Path) -> None:
        root = make_dataset(
            tmp_path / "pets", {"a.png": b"x" * 10, "a.txt": b"cap", "sub/b.JPG": b"y" * 5}
        )
        scan = scan_one(tmp_path, root)
        [stats] = scan.datasets
        assert (stats.files, stats.images, stats.bytes) == (3, 2, 18)
        assert [f.arcname for f in scan.files] == [
            "datasets/pets/a.png",
            "datasets/pets/a.txt",
            "datasets/pets/sub/b.JPG",
        ]
        assert scan.total_bytes == 18 and scan.excluded == {}

    @pytest.mark.parametrize(
        "name", [".env", ".env.local", "aws_credentials.json", "server.pem", "id.key", ".DS_Store"]
    )
    def test_secret_and_junk_files_are_left_out_by_name(self, tmp_path: Path, name: str) -> None:
        root = make_dataset(tmp_path / "pets", {"a.png": b"x", name: b"secret"})
        scan = scan_one(tmp_path, root)
        assert [f.arcname for f in scan.files] == ["datasets/pets/a.png"]
        assert scan.excluded["secrets and junk"].examples == [f"pets/{name}"]

    @pytest.mark.parametrize("folder", [".git", ".ssh", ".aws", "__pycache__"])
    def test_secret_and_junk_folders_are_not_entered(self, tmp_path: Path, folder: str) -> None:
        root = make_dataset(tmp_path / "pets", {"a.png": b"x", f"{folder}/inner.png": b"y"})
        scan = scan_one(tmp_path, root)
        assert [f.arcname for f in scan.files] == ["datasets/pets/a.png"]
        assert scan.excluded["secrets and junk"].examples == [f"pets/{folder}/"]

    def test_a_link_inside_the_dataset_is_read_through_its_target(self, tmp_path: Path) -> None:
        root = make_dataset(tmp_path / "pets", {"a.png": b"x"})
        (root / "alias.png").symlink_to(root / "a.png")
        scan = scan_one(tmp_path, root)
        alias = next(f for f in scan.files if f.arcname.endswith("alias.png"))
        assert alias.source == root / "a.png"

    def test_links_leaving_the_dataset_are_left_out(self, tmp_path: Path) -> None:
        outside = make_dataset(tmp_path / "outside", {"private.png": b"p", "d/x.png": b"q"})
        root = make_dataset(tmp_path / "pets", {"a.png": b"x"})
        (root / "leak.png").symlink_to(outside / "private.png")
        (root / "dir").symlink_to(outside / "d")
        scan = scan_one(tmp_path, root)
        assert [f.arcname for f in scan.files] == ["datasets/pets/a.png"]
        assert scan.excluded["symlink leaving the dataset"].examples == ["pets/leak.png"]
        assert scan.excluded["symlinked folder"].examples == ["pets/dir/"]

    def test_files_outside_the_read_roots_are_left_out(self, tmp_path: Path) -> None:
        root = make_dataset(tmp_path / "pets", {"a.png": b"x"})
        allowed = make_dataset(tmp_path / "allowed", {})
        scan = scan_one(tmp_path, root, read_roots=(allowed,))
        assert scan.files == []
        assert scan.excluded["not allowed by the file access policy"].count == 1

    def test_the_servers_home_inside_a_dataset_is_skipped(self, tmp_path: Path) -> None:
        (tmp_path / "home" / "db").mkdir(parents=True)
        (tmp_path / "home" / "db" / "cloudtune.db").write_bytes(b"db")
        (tmp_path / "a.png").write_bytes(b"x")
        scan = scan_one(tmp_path, tmp_path.resolve())
        names = [f.arcname for f in scan.files]
        assert names == ["datasets/pets/a.png"]
        assert scan.excluded["server state folder"].examples == ["pets/home/"]

    def test_a_fifo_is_not_read(self, tmp_path: Path) -> None:
        root = make_dataset(tmp_path / "pets", {"a.png": b"x"})
        os.mkfifo(root / "pipe.png")
        scan = scan_one(tmp_path, root)
        assert scan.excluded["not a regular file"].examples == ["pets/pipe.png"]

    def test_undecodable_names_are_excluded_and_shown_escaped(self, tmp_path: Path) -> None:
        root = make_dataset(tmp_path / "pets", {"a.png": b"x"})
        bad = os.fsencode(root) + b"/caf\xe9.png"
        with open(bad, "wb") as f:
            f.write(b"y")
        scan = scan_one(tmp_path, root)
        assert scan.excluded["name not valid UTF-8"].examples == ["pets/caf\\udce9.png"]
        assert printable("caf\udce9") == "caf\\udce9"

    def test_examples_per_rule_are_bounded_but_counted(self, tmp_path: Path) -> None:
        count = EXAMPLES_PER_RULE + 5
        root = make_dataset(tmp_path / "pets", {f"{i:03}.pem": b"k" for i in range(count)})
        group = scan_one(tmp_path, root).excluded["secrets and junk"]
        assert group.count == count and len(group.examples) == EXAMPLES_PER_RULE

    def test_too_many_files_stops_the_scan(self, tmp_path: Path) -> None:
        root = make_dataset(tmp_path / "pets", {f"{i}.png": b"x" for i in range(4)})
        with pytest.raises(PayloadTooLargeError) as refused:
            scan_one(tmp_path, root, max_files=3)
        assert refused.value.code == "dataset_too_many_files"

    def test_datasets_with_one_id_get_their_own_folders(self, tmp_path: Path) -> None:
        first = make_dataset(tmp_path / "one", {"a.png": b"1"})
        second = make_dataset(tmp_path / "two", {"a.png": b"2"})
        entries = [{"id": "x/y", "instance_data_dir": str(p)} for p in (first, second)]
        scan = scan_datasets(entries, policy_for(tmp_path), max_files=10)
        assert [f.arcname for f in scan.files] == ["datasets/x_y/a.png", "datasets/x_y-1/a.png"]
        remote = remote_dataloader(entries, scan, entries)
        assert [d["instance_data_dir"] for d in remote] == ["datasets/x_y", "datasets/x_y-1"]


class TestPackage:
    def test_images_are_stored_and_text_deflated(self, tmp_path: Path) -> None:
        root = make_dataset(tmp_path / "pets", {"a.png": b"\x89PNG" * 50, "a.txt": b"cap " * 50})
        made = package(scan_one(tmp_path, root), tmp_path / "packages")
        with zipfile.ZipFile(made.path) as zf:
            kinds = {i.filename: i.compress_type for i in zf.infolist()}
            assert zf.read("datasets/pets/a.txt") == b"cap " * 50
        assert kinds == {
            "datasets/pets/a.png": zipfile.ZIP_STORED,
            "datasets/pets/a.txt": zipfile.ZIP_DEFLATED,
        }
        assert made.files == 2 and made.size == made.path.stat().st_size

    def test_unchanged_files_reuse_the_archive_and_a_change_makes_a_new_one(
        self, tmp_path: Path
    ) -> None:
        root = make_dataset(tmp_path / "pets", {"a.png": b"x"})
        first = package(scan_one(tmp_path, root), tmp_path / "packages")
        again = package(scan_one(tmp_path, root), tmp_path / "packages")
        assert not first.reused and again.reused
        assert again.path == first.path and again.content_hash == first.content_hash
        (root / "b.png").write_bytes(b"y")
        changed = package(scan_one(tmp_path, root), tmp_path / "packages")
        assert not changed.reused and changed.content_hash != first.content_hash

    def test_a_file_gone_before_packaging_leaves_no_partial_archive(self, tmp_path: Path) -> None:
        root = make_dataset(tmp_path / "pets", {"a.png": b"x", "b.png": b"y"})
        scan = scan_one(tmp_path, root)
        (root / "b.png").unlink()
        with pytest.raises(Exception) as failed:
            package(scan, tmp_path / "packages")
        assert getattr(failed.value, "code", None) == "packaging_failed"
        assert [p.name for p in (tmp_path / "packages").iterdir()] == []
