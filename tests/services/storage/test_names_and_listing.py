"""Keys, bucket names, the on-disk layout, listing order and range parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudtune.errors import InvalidInputError
from cloudtune.services.storage import listing, multipart, objects
from cloudtune.services.storage.names import check_bucket, check_key, object_path
from cloudtune.services.storage.s3 import _parse_range


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "a/../b",
        "a/./b",
        "/abs",
        "a\\b",
        "a\x00b",
        "a//b",
        "x" * 1025,
        ".ct~meta/x",
        "a/.ct~tmp-1",
        "a/" + "x" * 256,  # a file name the filesystem refuses
        "é" * 128 + "/b",
    ],
)
def test_keys_that_could_leave_their_bucket_or_reach_the_stores_files_are_refused(
    key: str,
) -> None:
    with pytest.raises(InvalidInputError):
        check_key(key)


@pytest.mark.parametrize(
    "key", ["a", "a/b.txt", "dir/", "ü/名前.png", ("x" * 255 + "/") * 4, "a..b/c"]
)
def test_ordinary_keys_pass(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize("bucket", ["ab", "A-b", "a_b", "-ab", "ab-", "a..b", "1.2.3.4", "x" * 64])
def test_bucket_names_outside_s3s_rules_are_refused(bucket: str) -> None:
    with pytest.raises(InvalidInputError):
        check_bucket(bucket)


def test_a_symlink_out_of_the_bucket_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "outputs").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "outputs" / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InvalidInputError):
        object_path(root, "outputs", "link/x.txt")


def _put(root: Path, key: str, data: bytes = b"x") -> None:
    where = object_path(root, "bk1", key)
    where.folder.mkdir(parents=True, exist_ok=True)
    temp = where.folder / ".ct~tmp-test"
    temp.write_bytes(data)
    written = objects.Written(temp, len(data), b"\0" * 16, None)
    objects.commit(root, "bk1", key, written, content_type=None, etag='"e"')


def test_listing_is_in_key_order_across_folders(tmp_path: Path) -> None:
    keys = ["a-c", "a/b", "a/", "a0", "b/c/d", "b/c.txt", "ab"]
    for key in keys:
        _put(tmp_path, key, b"" if key.endswith("/") else b"x")
    page = listing.list_page(tmp_path, "bk1", prefix="", delimiter=None, max_keys=100, after="")
    assert [o.key for o in page.contents] == sorted(keys)
    grouped = listing.list_page(tmp_path, "bk1", prefix="", delimiter="/", max_keys=100, after="")
    assert grouped.common_prefixes == ["a/", "b/"]
    assert [o.key for o in grouped.contents] == ["a-c", "a0", "ab"]
    # A page may end on a common prefix; the next starts after all of its keys.
    first = listing.list_page(tmp_path, "bk1", prefix="", delimiter="/", max_keys=2, after="")
    assert first.truncated and first.next_token is not None
    assert [o.key for o in first.contents] + first.common_prefixes == ["a-c", "a/"]
    rest = listing.list_page(
        tmp_path,
        "bk1",
        prefix="",
        delimiter="/",
        max_keys=100,
        after=listing.decode_token(first.next_token),
    )
    assert [o.key for o in rest.contents] == ["a0", "ab"] and rest.common_prefixes == ["b/"]


def test_metadata_is_read_back_and_recomputed_for_files_put_by_other_means(
    tmp_path: Path,
) -> None:
    _put(tmp_path, "k.bin", b"abc")
    assert objects.head(tmp_path, "bk1", "k.bin").etag == '"e"'
    (tmp_path / "bk1" / "plain.txt").write_bytes(b"hello")  # e.g. outputs delivered as files
    info = objects.head(tmp_path, "bk1", "plain.txt")
    assert info.etag == '"5d41402abc4b2a76b9719d911017c592"' and info.size == 5


def test_deleting_the_last_object_removes_emptied_folders(tmp_path: Path) -> None:
    _put(tmp_path, "deep/er/k.bin")
    objects.delete(tmp_path, "bk1", "deep/er/k.bin")
    assert not (tmp_path / "bk1" / "deep").exists()
    assert (tmp_path / "bk1").is_dir()


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-4", 10, (0, 5)),
        ("bytes=5-", 10, (5, 5)),
        ("bytes=-3", 10, (7, 3)),
        ("bytes=-30", 10, (0, 10)),
        ("bytes=8-100", 10, (8, 2)),
        ("bytes=0-1,4-5", 10, None),  # several ranges: the whole object, as S3
        ("items=0-1", 10, None),
    ],
)
def test_ranges(header: str, size: int, expected: tuple[int, int] | None) -> None:
    assert _parse_range(header, size) == expected


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=5-2", "bytes=-0"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        _parse_range(header, 10)
    assert refused.value.code == "InvalidRange"


@pytest.mark.parametrize("raw", ["٣", "３", "+3", " 3", "3_0", "-1", ""])
def test_counts_in_the_query_are_ascii_digits(raw: str) -> None:
    # int() and str.isdigit take other scripts' digits (and signs, spaces, underscores).
    with pytest.raises(InvalidInputError):
        multipart.part_number(raw)
    with pytest.raises(InvalidInputError):
        listing.max_keys_of(raw)


def test_a_dataset_folder_holds_only_its_objects(tmp_path: Path) -> None:
    # A trainer reads every file of a dataset's folder: metadata there once crashed it.
    for key in ("olga/shapes/", "olga/shapes/img0.png", "olga/shapes/sub/img1.png"):
        where = object_path(tmp_path, "datasets", key)
        where.folder.mkdir(parents=True, exist_ok=True)
        temp = where.folder / ".ct~tmp-test"
        temp.write_bytes(b"" if key.endswith("/") else b"png")
        written = objects.Written(temp, temp.stat().st_size, b"\0" * 16, None)
        objects.commit(tmp_path, "datasets", key, written, content_type="image/png", etag='"e"')
    shapes = tmp_path / "datasets" / "olga" / "shapes"
    found = sorted(p.relative_to(shapes).as_posix() for p in shapes.rglob("*"))
    assert found == ["img0.png", "sub", "sub/img1.png"]
    assert objects.head(tmp_path, "datasets", "olga/shapes/img0.png").content_type == "image/png"
    page = listing.list_page(
        tmp_path, "datasets", prefix="olga/", delimiter=None, max_keys=10, after=""
    )
    assert [o.key for o in page.contents] == [
        "olga/shapes/",
        "olga/shapes/img0.png",
        "olga/shapes/sub/img1.png",
    ]
    # The marker keeps its folder when the objects in it go; deleting it too leaves nothing.
    objects.delete(tmp_path, "datasets", "olga/shapes/img0.png")
    objects.delete(tmp_path, "datasets", "olga/shapes/sub/img1.png")
    assert shapes.is_dir() and not list(shapes.iterdir())
    assert objects.head(tmp_path, "datasets", "olga/shapes/").size == 0
    objects.delete(tmp_path, "datasets", "olga/shapes/")
    assert sorted(p.name for p in (tmp_path / "datasets").iterdir()) == []


def test_metadata_of_an_object_removed_by_other_means_gives_way(tmp_path: Path) -> None:
    _put(tmp_path, "a", b"old")
    (tmp_path / "bk1" / "a").unlink()  # removed on disk, its metadata left behind
    _put(tmp_path, "a/b", b"new")
    assert objects.head(tmp_path, "bk1", "a/b").size == 3


def test_metadata_of_the_earlier_layout_moves_out_of_the_folder_when_listed(
    tmp_path: Path,
) -> None:
    shapes = tmp_path / "bk1" / "olga" / "shapes"
    (shapes / ".ct~meta").mkdir(parents=True)
    (shapes / "img0.png").write_bytes(b"png")
    stat = (shapes / "img0.png").stat()
    doc = {"etag": '"e"', "size": 3, "content_type": "image/png", "mtime_ns": stat.st_mtime_ns}
    (shapes / ".ct~meta" / "img0.png").write_text(json.dumps(doc))
    (shapes / ".ct~meta" / ".ct~dir").write_text(json.dumps({**doc, "size": 0}))
    page = listing.list_page(tmp_path, "bk1", prefix="", delimiter=None, max_keys=10, after="")
    assert [o.key for o in page.contents] == ["olga/shapes/", "olga/shapes/img0.png"]
    assert [p.name for p in shapes.iterdir()] == ["img0.png"]
    info = objects.head(tmp_path, "bk1", "olga/shapes/img0.png")
    assert info.content_type == "image/png" and info.etag == '"e"'
