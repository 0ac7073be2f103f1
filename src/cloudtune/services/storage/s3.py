"""The S3-compatible endpoint's requests: who is calling, then one operation.

Callers, in this order: an AWS Signature V4 (header or presigned URL) with a storage access
key; the plain-PUT form with a job's upload token in `X-Upload-Token` or
`X-SimpleTuner-Secret`; otherwise an API caller (session, API key, or the local admin with no
users) with storage.read / storage.write. A presented credential that fails is refused, never
passed over for the next kind. Signed callers get S3's XML answers; the others get JSON for
listings (the reference server's shapes) and for a plain PUT."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from cloudtune.domain.jobs import utcnow
from cloudtune.domain.principal import Principal
from cloudtune.services.context import Context
from cloudtune.services.storage import credentials, errors, listing, multipart, objects, sigv4
from cloudtune.services.storage import xml as s3xml
from cloudtune.services.storage.names import check_bucket, check_key, check_prefix, object_path

PREFIX = "/api/cloud/storage"
_KNOWN_PARAMS = {
    "list-type", "prefix", "delimiter", "max-keys", "continuation-token", "start-after",
    "encoding-type", "fetch-owner", "uploads", "uploadId", "partNumber", "x-id",
}  # fmt: skip
_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")


@dataclass(frozen=True, slots=True)
class S3Request:
    method: str
    path: str  # decoded, as routed
    raw_path: str  # as the client sent it: what it signed
    raw_query: str
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lowercase names
    body: AsyncIterator[bytes]
    caller: Callable[[], Awaitable[Principal]]


@dataclass(frozen=True, slots=True)
class FileBody:
    path: Path
    start: int
    length: int


@dataclass
class S3Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | FileBody = b""
    media_type: str | None = None
    json: Any = None  # a JSON answer instead of `body`


@dataclass(frozen=True, slots=True)
class Auth:
    grant: credentials.Grant
    claims: sigv4.SignedRequest | None
    secret: str | None

    @property
    def s3(self) -> bool:
        return self.claims is not None


def request_id() -> str:
    return secrets.token_hex(8).upper()


async def authenticate(ctx: Context, req: S3Request, bucket: str, key: str) -> Auth:
    claims = sigv4.parse(req.headers, req.query)
    if claims is not None:
        grant, secret = await ctx.in_thread(credentials.grant_for_key, ctx, claims.access_key_id)
        sigv4.check_time(claims, utcnow())
        sigv4.verify(
            claims,
            secret,
            method=req.method,
            raw_path=req.raw_path,
            raw_query=req.raw_query,
            headers=req.headers,
        )
        return Auth(grant, claims, secret)
    token = req.headers.get("x-upload-token") or req.headers.get("x-simpletuner-secret")
    if token is not None:
        if req.method != "PUT" or not key:
            raise errors.access_denied("an upload token only uploads objects (PUT)")
        check_bucket(bucket)
        check_key(key)
        grant = await ctx.in_thread(credentials.grant_for_upload_token, ctx, bucket, key, token)
        return Auth(grant, None, None)
    return Auth(credentials.grant_for_caller(await req.caller()), None, None)


async def handle(ctx: Context, req: S3Request) -> S3Response:
    rest = req.path[len(PREFIX) :].lstrip("/")
    bucket, _, key = rest.partition("/")
    auth = await authenticate(ctx, req, bucket, key)
    params = dict(req.query)
    unknown = {
        name for name in params if name not in _KNOWN_PARAMS and not name.startswith("X-Amz-")
    }
    if unknown:
        raise errors.not_implemented(f"the parameter(s) {', '.join(sorted(unknown))}")
    root = ctx.settings.storage_dir
    if not bucket:
        if req.method != "GET":
            raise errors.not_implemented(f"{req.method} on the service")
        return await ctx.in_thread(_list_buckets, root, auth)
    check_bucket(bucket)
    if not key:
        return await _bucket_operation(ctx, req, auth, root, bucket, params)
    check_key(key)
    if req.method in ("GET", "HEAD") and "uploadId" not in params:
        auth.grant.check(bucket, key, write=False)
        return await ctx.in_thread(
            _get_object, root, bucket, key, req.headers, req.method == "HEAD"
        )
    auth.grant.check(bucket, key, write=req.method != "GET")
    if req.method == "PUT":
        if "x-amz-copy-source" in req.headers:
            raise errors.not_implemented("CopyObject")
        if "uploadId" in params or "partNumber" in params:
            return await _upload_part(ctx, req, auth, root, bucket, key, params)
        return await _put_object(ctx, req, auth, root, bucket, key)
    if req.method == "DELETE":
        if "uploadId" in params:
            upload = await ctx.in_thread(multipart.find, root, bucket, key, params["uploadId"])
            await ctx.in_thread(multipart.abort, upload)
        else:
            await ctx.in_thread(objects.delete, root, bucket, key)
        return S3Response(status=204)
    if req.method == "POST" and "uploads" in params:
        content_type = req.headers.get("content-type")
        upload = await ctx.in_thread(multipart.create, root, bucket, key, content_type)
        return _xml(s3xml.initiate_multipart(bucket, key, upload.upload_id))
    if req.method == "POST" and "uploadId" in params:
        return await _complete(ctx, req, root, bucket, key, params["uploadId"])
    if req.method == "GET":  # ListParts
        upload = await ctx.in_thread(multipart.find, root, bucket, key, params["uploadId"])
        found = await ctx.in_thread(multipart.parts, upload)
        return _xml(s3xml.list_parts(bucket, key, upload.upload_id, found))
    raise errors.not_implemented(f"{req.method} on an object")


def _xml(body: bytes, status: int = 200) -> S3Response:
    return S3Response(status=status, body=body, media_type="application/xml")


def _list_buckets(root: Path, auth: Auth) -> S3Response:
    found = [b for b in objects.buckets(root) if auth.grant.bucket in (None, b.name)]
    if auth.s3:
        return _xml(s3xml.list_buckets(found))
    return S3Response(
        json={"Buckets": [{"Name": b.name, "CreationDate": b.created.isoformat()} for b in found]}
    )


async def _bucket_operation(
    ctx: Context, req: S3Request, auth: Auth, root: Path, bucket: str, params: dict[str, str]
) -> S3Response:
    bucket_dir = root / bucket
    if auth.grant.bucket not in (None, bucket):
        raise errors.access_denied()
    if req.method == "HEAD":
        return S3Response(status=200 if bucket_dir.is_dir() else 404)
    if req.method == "PUT":  # CreateBucket: a key for the whole bucket may make it
        auth.grant.check(bucket, "", write=True)
        await ctx.in_thread(bucket_dir.mkdir, parents=True, exist_ok=True)
        return S3Response(headers={"Location": f"/{bucket}"})
    if req.method != "GET":
        raise errors.not_implemented(f"{req.method} on a bucket")
    if auth.s3 and params.get("list-type") != "2":
        raise errors.not_implemented("ListObjects (v1); use list-type=2")
    if params.get("fetch-owner") == "true":
        raise errors.not_implemented("fetch-owner")
    encoding = params.get("encoding-type")
    if encoding not in (None, "url"):
        raise errors.invalid_argument("Invalid Encoding Method specified in Request")
    prefix = params.get("prefix", "")
    if not auth.s3 and not prefix:
        prefix = auth.grant.prefix  # an API caller's listing: what it may see
    check_prefix(prefix)
    auth.grant.check(bucket, prefix, write=False)
    if not bucket_dir.is_dir():
        raise errors.no_such_bucket()
    token = params.get("continuation-token")
    start_after = params.get("start-after")
    after = listing.decode_token(token) if token else (start_after or "")
    check_prefix(after, "start-after key or continuation token")
    max_keys = listing.max_keys_of(params.get("max-keys"))
    delimiter = params.get("delimiter") or None
    page = await ctx.in_thread(
        listing.list_page,
        root,
        bucket,
        prefix=prefix,
        delimiter=delimiter,
        max_keys=max_keys,
        after=after,
    )
    if not auth.s3:
        return S3Response(
            json={
                "Name": bucket,
                "Contents": [
                    {"Key": o.key, "Size": o.size, "LastModified": o.last_modified.isoformat()}
                    for o in page.contents
                ],
                "CommonPrefixes": page.common_prefixes,
                "IsTruncated": page.truncated,
                "NextContinuationToken": page.next_token,
            }
        )
    return _xml(
        s3xml.list_objects_v2(
            bucket=bucket,
            prefix=prefix,
            delimiter=delimiter,
            max_keys=max_keys,
            contents=page.contents,
            common_prefixes=page.common_prefixes,
            truncated=page.truncated,
            continuation_token=token,
            next_token=page.next_token,
            start_after=start_after,
            encoding_type=encoding,
        )
    )


# An object's type is the uploader's word, and it is served from this API's own origin: a
# browser must neither run it (an HTML page's scripts would act with a signed-in admin's
# session) nor sniff a type, and saves it rather than showing it. S3 clients ignore these.
UNTRUSTED_CONTENT_HEADERS = {
    "Content-Security-Policy": "sandbox",
    "X-Content-Type-Options": "nosniff",
    "Content-Disposition": "attachment",
}


def _object_headers(info: objects.ObjectInfo) -> dict[str, str]:
    return {
        "ETag": info.etag,
        "Last-Modified": format_datetime(info.last_modified, usegmt=True),
        "Content-Type": info.content_type,
        "Accept-Ranges": "bytes",
        **UNTRUSTED_CONTENT_HEADERS,
    }


def _get_object(
    root: Path, bucket: str, key: str, headers: dict[str, str], head_only: bool
) -> S3Response:
    info = objects.head(root, bucket, key)
    answer = _object_headers(info)
    start, length, status = 0, info.size, 200
    raw_range = headers.get("range")
    if raw_range and not head_only:
        picked = _parse_range(raw_range, info.size)
        if picked is not None:
            start, length = picked
            status = 206
            answer["Content-Range"] = f"bytes {start}-{start + length - 1}/{info.size}"
    answer["Content-Length"] = str(length)
    if head_only or info.size == 0 or key.endswith("/"):
        return S3Response(status=status, headers=answer)
    return S3Response(
        status=status,
        headers=answer,
        body=FileBody(object_path(root, bucket, key).data, start, length),
    )


def _parse_range(raw: str, size: int) -> tuple[int, int] | None:
    """(start, length) of a single `bytes=` range; None (the whole object, as S3 serves it)
    for what cannot be parsed, several ranges included; 416 for a range past the end."""
    match = _RANGE.match(raw.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise errors.invalid_range(size)
        return max(size - suffix, 0), min(suffix, size)
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise errors.invalid_range(size)
    end = min(end, size - 1)
    return start, end - start + 1


def _payload(req: S3Request, auth: Auth, limit: int) -> tuple[AsyncIterator[bytes], str | None]:
    """The body's bytes (aws-chunked decoded) and the SHA-256 they must have, if signed."""
    claims = auth.claims
    declared = req.headers.get("x-amz-decoded-content-length") or req.headers.get("content-length")
    if (
        declared is not None
        and declared.isascii()
        and declared.isdigit()
        and int(declared) > limit
    ):
        raise errors.too_large(limit)
    chunked = "aws-chunked" in req.headers.get("content-encoding", "")
    if claims is not None and claims.payload in sigv4.STREAMING:
        key = None
        if claims.payload != sigv4.STREAMING_UNSIGNED_TRAILER:
            assert auth.secret is not None
            key = sigv4.signing_key(auth.secret, claims)
        return sigv4.decode_chunks(req.body, claims, key), None
    if chunked:
        raise errors.invalid_argument("aws-chunked bodies need a streaming x-amz-content-sha256")
    return req.body, sigv4.payload_sha256(claims)


def _check_digests(req: S3Request, written: objects.Written, sha256: str | None) -> None:
    if sha256 is not None and written.sha256 != sha256:
        raise errors.InvalidInputError(
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
            code="XAmzContentSHA256Mismatch",
        )
    content_md5 = req.headers.get("content-md5")
    if content_md5 is not None:
        try:
            expected = base64.b64decode(content_md5, validate=True)
        except ValueError as exc:
            raise errors.InvalidInputError(
                "The Content-MD5 you specified was invalid.", code="InvalidDigest"
            ) from exc
        if expected != written.md5:
            raise errors.InvalidInputError(
                "The Content-MD5 you specified did not match what we received.", code="BadDigest"
            )


async def _put_object(
    ctx: Context, req: S3Request, auth: Auth, root: Path, bucket: str, key: str
) -> S3Response:
    limit = min(ctx.settings.storage_max_part_bytes, ctx.settings.storage_max_object_bytes)
    where = object_path(root, bucket, key)
    body, sha256 = _payload(req, auth, limit)
    written = await objects.receive_to_temp(
        body, where.folder, max_bytes=limit, want_sha256=sha256 is not None
    )
    try:
        _check_digests(req, written, sha256)
    except BaseException:
        objects.discard(written)
        raise
    info = await ctx.in_thread(
        objects.commit,
        root,
        bucket,
        key,
        written,
        content_type=req.headers.get("content-type"),
        etag=objects.md5_etag(written.md5),
    )
    if auth.s3:
        return S3Response(headers={"ETag": info.etag})
    # The plain-PUT form answers as the reference server does.
    return S3Response(
        headers={"ETag": info.etag}, json={"ETag": info.etag, "Key": key, "Bucket": bucket}
    )


async def _upload_part(
    ctx: Context,
    req: S3Request,
    auth: Auth,
    root: Path,
    bucket: str,
    key: str,
    params: dict[str, str],
) -> S3Response:
    number = multipart.part_number(params.get("partNumber", ""))
    upload = await ctx.in_thread(multipart.find, root, bucket, key, params.get("uploadId", ""))
    object_limit = ctx.settings.storage_max_object_bytes
    room = await ctx.in_thread(multipart.room, upload, number, object_limit)
    limit = min(ctx.settings.storage_max_part_bytes, room)
    body, sha256 = _payload(req, auth, limit)
    written = await multipart.receive_part(
        upload, number, body, max_bytes=limit, want_sha256=sha256 is not None
    )
    try:
        _check_digests(req, written, sha256)
        part = await ctx.in_thread(
            lambda: multipart.keep_part(upload, number, written, max_object_bytes=object_limit)
        )
    except BaseException:
        objects.discard(written)
        raise
    return S3Response(headers={"ETag": part.etag})


async def _complete(
    ctx: Context, req: S3Request, root: Path, bucket: str, key: str, upload_id: str
) -> S3Response:
    upload = await ctx.in_thread(multipart.find, root, bucket, key, upload_id)
    document = bytearray()
    async for chunk in req.body:
        document.extend(chunk)
        if len(document) > multipart.MAX_COMPLETE_XML_BYTES:
            raise errors.malformed_xml("the part list is too long")
    wanted = multipart.parse_complete(bytes(document))
    have = await ctx.in_thread(multipart.parts, upload)
    total = sum(p.size for p in have if p.number in {n for n, _ in wanted})
    if total > ctx.settings.storage_max_object_bytes:
        raise errors.too_large(ctx.settings.storage_max_object_bytes)
    info = await ctx.in_thread(multipart.complete, root, upload, wanted)
    location = f"{PREFIX}/{bucket}/{key}"
    return _xml(s3xml.complete_multipart(location, bucket, key, info.etag))
