"""S3's XML answers, written with ElementTree (escaping included)."""

from __future__ import annotations

from datetime import datetime
from xml.etree.ElementTree import Element, SubElement, tostring

from cloudtune.services.storage.multipart import Part
from cloudtune.services.storage.objects import BucketInfo, ObjectInfo

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
OWNER_ID = "cloudtune"


def _doc(root: Element) -> bytes:
    body: bytes = tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def _text(parent: Element, tag: str, value: object) -> Element:
    element = SubElement(parent, tag)
    element.text = value if isinstance(value, str) else str(value)
    return element


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def error(code: str, message: str, resource: str, request_id: str) -> bytes:
    root = Element("Error")
    _text(root, "Code", code)
    _text(root, "Message", message)
    _text(root, "Resource", resource)
    _text(root, "RequestId", request_id)
    return _doc(root)


def list_buckets(found: list[BucketInfo]) -> bytes:
    root = Element("ListAllMyBucketsResult", xmlns=NS)
    owner = SubElement(root, "Owner")
    _text(owner, "ID", OWNER_ID)
    _text(owner, "DisplayName", OWNER_ID)
    buckets = SubElement(root, "Buckets")
    for bucket in found:
        entry = SubElement(buckets, "Bucket")
        _text(entry, "Name", bucket.name)
        _text(entry, "CreationDate", iso(bucket.created))
    return _doc(root)


def list_objects_v2(
    *,
    bucket: str,
    prefix: str,
    delimiter: str | None,
    max_keys: int,
    contents: list[ObjectInfo],
    common_prefixes: list[str],
    truncated: bool,
    continuation_token: str | None,
    next_token: str | None,
    start_after: str | None,
    encoding_type: str | None,
) -> bytes:
    root = Element("ListBucketResult", xmlns=NS)
    _text(root, "Name", bucket)
    _text(root, "Prefix", _maybe_url(prefix, encoding_type))
    if delimiter is not None:
        _text(root, "Delimiter", _maybe_url(delimiter, encoding_type))
    _text(root, "MaxKeys", max_keys)
    _text(root, "KeyCount", len(contents) + len(common_prefixes))
    _text(root, "IsTruncated", "true" if truncated else "false")
    if encoding_type:
        _text(root, "EncodingType", encoding_type)
    if continuation_token is not None:
        _text(root, "ContinuationToken", continuation_token)
    if next_token is not None:
        _text(root, "NextContinuationToken", next_token)
    if start_after is not None:
        _text(root, "StartAfter", _maybe_url(start_after, encoding_type))
    for info in contents:
        entry = SubElement(root, "Contents")
        _text(entry, "Key", _maybe_url(info.key, encoding_type))
        _text(entry, "LastModified", iso(info.last_modified))
        _text(entry, "ETag", info.etag)
        _text(entry, "Size", info.size)
        _text(entry, "StorageClass", "STANDARD")
    for common in common_prefixes:
        entry = SubElement(root, "CommonPrefixes")
        _text(entry, "Prefix", _maybe_url(common, encoding_type))
    return _doc(root)


def _maybe_url(value: str, encoding_type: str | None) -> str:
    if encoding_type == "url":
        from urllib.parse import quote

        return quote(value, safe="/~")
    return value


def initiate_multipart(bucket: str, key: str, upload_id: str) -> bytes:
    root = Element("InitiateMultipartUploadResult", xmlns=NS)
    _text(root, "Bucket", bucket)
    _text(root, "Key", key)
    _text(root, "UploadId", upload_id)
    return _doc(root)


def complete_multipart(location: str, bucket: str, key: str, etag: str) -> bytes:
    root = Element("CompleteMultipartUploadResult", xmlns=NS)
    _text(root, "Location", location)
    _text(root, "Bucket", bucket)
    _text(root, "Key", key)
    _text(root, "ETag", etag)
    return _doc(root)


def list_parts(bucket: str, key: str, upload_id: str, parts: list[Part]) -> bytes:
    root = Element("ListPartsResult", xmlns=NS)
    _text(root, "Bucket", bucket)
    _text(root, "Key", key)
    _text(root, "UploadId", upload_id)
    _text(root, "MaxParts", 10000)
    _text(root, "IsTruncated", "false")
    for part in parts:
        entry = SubElement(root, "Part")
        _text(entry, "PartNumber", part.number)
        _text(entry, "ETag", part.etag)
        _text(entry, "Size", part.size)
    return _doc(root)
