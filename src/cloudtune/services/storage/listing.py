"""ListObjectsV2 over the folder tree: prefix, delimiter (common prefixes), max-keys,
continuation tokens and start-after, in S3's key order."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path

from cloudtune.services.storage import errors
from cloudtune.services.storage.objects import ObjectInfo, info_of, walk_keys

MAX_KEYS = 1000


@dataclass(frozen=True, slots=True)
class Page:
    contents: list[ObjectInfo]
    common_prefixes: list[str]
    truncated: bool
    next_token: str | None


def encode_token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode("utf-8")).decode()


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise errors.invalid_argument("The continuation token provided is incorrect") from exc


def max_keys_of(raw: str | None) -> int:
    if raw is None:
        return MAX_KEYS
    # ASCII digits only: str.isdigit and int() also take other scripts' digits.
    if not raw.isascii() or not raw.isdigit():
        raise errors.invalid_argument("max-keys must be a non-negative integer")
    return min(int(raw), MAX_KEYS)


def list_page(
    root: Path,
    bucket: str,
    *,
    prefix: str,
    delimiter: str | None,
    max_keys: int,
    after: str,
) -> Page:
    """Keys after `after` (a start-after or a continuation token's last key or prefix)."""
    contents: list[ObjectInfo] = []
    prefixes: list[str] = []
    last: str | None = None
    bucket_dir = root / bucket
    for key in walk_keys(bucket_dir, prefix=prefix, after=after):
        common = None
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                common = key[: cut + len(delimiter)]
        if common is not None and prefixes and prefixes[-1] == common:
            continue  # the rest of a group already answered
        if common is not None and after.startswith(common):
            continue  # the group a previous page ended on
        if len(contents) + len(prefixes) >= max_keys:
            return Page(contents, prefixes, True, encode_token(last) if last else None)
        if common is not None:
            prefixes.append(common)
            last = common
        else:
            info = info_of(root, bucket, key)
            if info is None:
                continue
            contents.append(info)
            last = key
    return Page(contents, prefixes, False, None)
