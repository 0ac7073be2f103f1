"""AWS Signature V4 checks, with botocore's own signer computing the expected signature.

The request is rebuilt as the client signed it (its method, its path as sent, percent-encoding
included, its query as sent, and only the headers it named as signed) and handed to botocore's
S3 signer with the stored secret; the two signatures are compared in constant time. Nothing of
the canonical request is computed here, so it cannot drift from what clients sign.

Payloads: a hex SHA-256 in `x-amz-content-sha256` is checked against the body as it streams
(`payload_sha256`); `UNSIGNED-PAYLOAD` is taken as is; the aws-chunked forms
(`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, with each chunk's signature checked, and
`STREAMING-UNSIGNED-PAYLOAD-TRAILER`) are decoded by `decode_chunks` while they stream."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cloudtune.services.storage import errors

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600
UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING = {STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_CHUNK_LINE = 4096
# A chunk's size: hex digits only (int() would take a sign, spaces or underscores, and a
# negative size never counts down), at most 16 MiB; clients send 64 KiB to 8 MiB.
_CHUNK_SIZE = re.compile(r"^[0-9a-fA-F]{1,8}$")
MAX_CHUNK_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What a signed request says about itself, before its secret is known."""

    access_key_id: str
    timestamp: str  # X-Amz-Date, 20250101T000000Z
    region: str
    signed_headers: tuple[str, ...]
    signature: str
    presigned: bool
    expires_seconds: int | None
    payload: str  # the claimed x-amz-content-sha256 (UNSIGNED-PAYLOAD when presigned)

    @property
    def scope(self) -> str:
        return f"{self.timestamp[:8]}/{self.region}/s3/aws4_request"


def parse(headers: dict[str, str], query: list[tuple[str, str]]) -> SignedRequest | None:
    """The request's SigV4 claims; None when it carries no SigV4 (another kind of caller).
    `headers` have lowercase names."""
    authorization = headers.get("authorization", "")
    if authorization.startswith("AWS ") or any(name == "AWSAccessKeyId" for name, _ in query):
        raise errors.access_denied(
            "Signature Version 2 is not supported: sign with Signature Version 4 (boto3: "
            "Config(signature_version='s3v4'))"
        )
    if authorization.startswith(ALGORITHM + " "):
        fields = {}
        for part in authorization[len(ALGORITHM) + 1 :].split(","):
            name, _, value = part.strip().partition("=")
            fields[name] = value
        try:
            credential, signed, signature = (
                fields["Credential"],
                fields["SignedHeaders"],
                fields["Signature"],
            )
        except KeyError as exc:
            raise errors.InvalidInputError(
                "the Authorization header is malformed", code="AuthorizationHeaderMalformed"
            ) from exc
        timestamp = headers.get("x-amz-date", "")
        payload = headers.get("x-amz-content-sha256", "")
        if not payload:
            raise errors.invalid_request(
                "Missing required header for this request: x-amz-content-sha256"
            )
        return _claims(credential, timestamp, signed, signature, False, None, payload)
    params = dict(query)
    if params.get("X-Amz-Algorithm") is None:
        return None
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise errors.access_denied("Only AWS4-HMAC-SHA256 signatures are supported")
    try:
        raw_expires = params["X-Amz-Expires"]
        if not (raw_expires.isascii() and raw_expires.isdigit()):
            raise ValueError(raw_expires)
        expires = int(raw_expires)
        claims = _claims(
            params["X-Amz-Credential"],
            params["X-Amz-Date"],
            params["X-Amz-SignedHeaders"],
            params["X-Amz-Signature"],
            True,
            expires,
            UNSIGNED,
        )
    except (KeyError, ValueError) as exc:
        raise errors.access_denied(
            "Query-string authentication requires the X-Amz-* parameters"
        ) from exc
    if not 1 <= expires <= MAX_PRESIGN_EXPIRES:
        raise errors.access_denied("X-Amz-Expires must be between 1 and 604800 seconds")
    return claims


def _claims(
    credential: str,
    timestamp: str,
    signed: str,
    signature: str,
    presigned: bool,
    expires: int | None,
    payload: str,
) -> SignedRequest:
    parts = credential.split("/")
    if len(parts) != 5 or parts[3] != "s3" or parts[4] != "aws4_request":
        raise errors.InvalidInputError(
            "the credential scope must be <key>/<date>/<region>/s3/aws4_request",
            code="AuthorizationHeaderMalformed",
        )
    if not re.match(r"^[0-9]{8}T[0-9]{6}Z$", timestamp) or parts[1] != timestamp[:8]:
        raise errors.access_denied("X-Amz-Date is missing or does not match the credential date")
    try:
        datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ")
    except ValueError as exc:  # digits that name no time, such as month 13
        raise errors.invalid_argument("X-Amz-Date is not a valid date and time") from exc
    return SignedRequest(
        access_key_id=parts[0],
        timestamp=timestamp,
        region=parts[2],
        signed_headers=tuple(signed.split(";")),
        signature=signature,
        presigned=presigned,
        expires_seconds=expires,
        payload=payload,
    )


def check_time(claims: SignedRequest, now: datetime) -> None:
    """Header form: within 15 minutes of now. Presigned: not yet expired (and not signed more
    than 15 minutes in the future)."""
    signed_at = datetime.strptime(claims.timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if signed_at - now > MAX_SKEW:
        raise errors.PermissionDeniedError(
            "The difference between the request time and the server's time is too large.",
            code="RequestTimeTooSkewed",
        )
    if claims.presigned:
        assert claims.expires_seconds is not None
        if now > signed_at + timedelta(seconds=claims.expires_seconds):
            raise errors.access_denied("Request has expired")
    elif now - signed_at > MAX_SKEW:
        raise errors.PermissionDeniedError(
            "The difference between the request time and the server's time is too large.",
            code="RequestTimeTooSkewed",
        )


def verify(
    claims: SignedRequest,
    secret: str,
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
) -> None:
    """Raise SignatureDoesNotMatch unless botocore, signing this request with `secret`, gets
    the client's signature."""
    signed = {}
    for name in claims.signed_headers:
        if name not in headers:
            raise errors.signature_mismatch()
        signed[name] = headers[name]
    if "host" not in signed:
        raise errors.access_denied("the host header must be signed")
    if not claims.presigned and "x-amz-content-sha256" not in signed:
        # Unsigned, it could be swapped (to UNSIGNED-PAYLOAD) with the body: a replay within
        # the 15 minutes could store another body under the same signature.
        raise errors.access_denied("the x-amz-content-sha256 header must be signed")
    if claims.presigned:
        kept = [p for p in raw_query.split("&") if p and not p.startswith("X-Amz-Signature=")]
        query = "&".join(kept)
        signer: SigV4Auth = S3SigV4QueryAuth(
            Credentials(claims.access_key_id, secret), "s3", claims.region
        )
    else:
        query = raw_query
        signer = S3SigV4Auth(Credentials(claims.access_key_id, secret), "s3", claims.region)
    url = f"http://{signed['host']}{raw_path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, headers=signed)
    request.context["timestamp"] = claims.timestamp
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected.encode(), claims.signature.encode()):
        raise errors.signature_mismatch()


def payload_sha256(claims: SignedRequest | None) -> str | None:
    """The SHA-256 the body must have, when the client signed one."""
    if claims is None or claims.presigned:
        return None
    if claims.payload in STREAMING or claims.payload == UNSIGNED:
        return None
    if not _HEX64.match(claims.payload):
        raise errors.InvalidInputError(
            "x-amz-content-sha256 must be a hex SHA-256, UNSIGNED-PAYLOAD or a streaming mode",
            code="InvalidArgument",
        )
    return claims.payload


def signing_key(secret: str, claims: SignedRequest) -> bytes:
    """For chunk signatures, which botocore's signer does not cover: the same derivation."""
    key = hmac.new(f"AWS4{secret}".encode(), claims.timestamp[:8].encode(), hashlib.sha256)
    for part in (claims.region, "s3", "aws4_request"):
        key = hmac.new(key.digest(), part.encode(), hashlib.sha256)
    return key.digest()


async def decode_chunks(
    raw: AsyncIterator[bytes], claims: SignedRequest, key: bytes | None
) -> AsyncIterator[bytes]:
    """The payload of an aws-chunked body; with `key`, each chunk's signature is checked
    (chained from the request's signature), the final one included. Trailers (checksums a
    client adds after the last chunk) are read and not acted on."""
    buffer = bytearray()
    source = raw.__aiter__()
    previous = claims.signature

    async def fill(need: int) -> bool:
        while len(buffer) < need:
            try:
                buffer.extend(await source.__anext__())
            except StopAsyncIteration:
                return False
        return True

    async def line() -> bytes:
        while (end := buffer.find(b"\r\n")) < 0:
            if len(buffer) > MAX_CHUNK_LINE or not await fill(len(buffer) + 1):
                raise errors.invalid_argument("malformed aws-chunked body")
        text = bytes(buffer[:end])
        del buffer[: end + 2]
        return text

    while True:
        header = (await line()).decode("latin-1")
        size_text, _, extension = header.partition(";")
        if not _CHUNK_SIZE.match(size_text) or int(size_text, 16) > MAX_CHUNK_BYTES:
            raise errors.invalid_argument("malformed aws-chunked body: a bad chunk size")
        size = int(size_text, 16)
        chunk_sha = hashlib.sha256()
        remaining = size
        while remaining > 0:
            if not buffer and not await fill(1):
                raise errors.invalid_argument("the aws-chunked body ended early")
            piece = bytes(buffer[:remaining])
            del buffer[: len(piece)]
            remaining -= len(piece)
            chunk_sha.update(piece)
            yield piece
        if key is not None:
            name, _, presented = extension.partition("=")
            string_to_sign = "\n".join(
                (
                    "AWS4-HMAC-SHA256-PAYLOAD",
                    claims.timestamp,
                    claims.scope,
                    previous,
                    _EMPTY_SHA256,
                    chunk_sha.hexdigest(),
                )
            )
            expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
            if name != "chunk-signature" or not hmac.compare_digest(
                expected.encode(), presented.encode()
            ):
                raise errors.signature_mismatch()
            previous = presented
        if size == 0:
            # Trailers (a checksum line, maybe its signature), up to an empty line or the end.
            while True:
                end = buffer.find(b"\r\n")
                if end == 0:
                    return
                if end > 0:
                    del buffer[: end + 2]
                elif len(buffer) > MAX_CHUNK_LINE or not await fill(len(buffer) + 1):
                    return
        if await line() != b"":
            raise errors.invalid_argument("malformed aws-chunked body")
