"""aws-chunked bodies: the chunk signatures of AWS's published example, and the unsigned
trailer form that clients use with checksums."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cloudtune.errors import InvalidInputError, PermissionDeniedError
from cloudtune.services.storage import sigv4

# AWS's example of a streaming upload (Signature V4, "Transferring Payload in Multiple Chunks").
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
CHUNK_SIGNATURES = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]
CLAIMS = sigv4.SignedRequest(
    access_key_id="AKIAIOSFODNN7EXAMPLE",
    timestamp="20130524T000000Z",
    region="us-east-1",
    signed_headers=("host",),
    signature=SEED,
    presigned=False,
    expires_seconds=None,
    payload=sigv4.STREAMING_SIGNED,
)


def _example_body(signatures: list[str]) -> bytes:
    chunks = [b"a" * 65536, b"a" * 1024, b""]
    body = b""
    for data, signature in zip(chunks, signatures, strict=True):
        body += f"{len(data):x};chunk-signature={signature}\r\n".encode() + data + b"\r\n"
    return body


async def _pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def _decode(body: bytes, key: bytes | None, claims: sigv4.SignedRequest = CLAIMS) -> bytes:
    out = b""
    async for piece in sigv4.decode_chunks(_pieces(body, 1000), claims, key):
        out += piece
    return out


async def test_the_published_example_decodes_with_every_chunk_signature_checked() -> None:
    key = sigv4.signing_key(SECRET, CLAIMS)
    assert await _decode(_example_body(CHUNK_SIGNATURES), key) == b"a" * (65536 + 1024)


async def test_a_wrong_chunk_signature_is_refused() -> None:
    key = sigv4.signing_key(SECRET, CLAIMS)
    forged = [CHUNK_SIGNATURES[0], "0" * 64, CHUNK_SIGNATURES[2]]
    with pytest.raises(PermissionDeniedError) as refused:
        await _decode(_example_body(forged), key)
    assert refused.value.code == "SignatureDoesNotMatch"
    with pytest.raises(PermissionDeniedError):
        await _decode(_example_body(CHUNK_SIGNATURES), sigv4.signing_key("other", CLAIMS))


async def test_unsigned_chunks_with_a_trailer() -> None:
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n"
    assert await _decode(body, None) == b"hello world"


async def test_a_truncated_body_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        await _decode(b"10\r\nshort", None)


@pytest.mark.parametrize(
    "size_line", [b"-5", b"+5", b" 5", b"0x5", b"5_0", b"", b"1000001", b"fffffffffffffffff"]
)
async def test_a_chunk_size_other_than_bounded_hex_is_refused(size_line: bytes) -> None:
    # A negative size once never counted down: the decoder spun forever without awaiting.
    with pytest.raises(InvalidInputError) as refused:
        await _decode(size_line + b";chunk-signature=00\r\nabc", None)
    assert refused.value.code == "InvalidArgument" and "chunk size" in refused.value.detail


@pytest.mark.parametrize("stamp", ["20261399T999999Z", "20260230T120000Z", "20260101T250000Z"])
def test_digits_that_name_no_time_are_refused_as_a_bad_request(stamp: str) -> None:
    credential = f"CTAKX/{stamp[:8]}/us-east-1/s3/aws4_request"
    headers = {
        "authorization": (
            f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, Signature=00"
        ),
        "x-amz-date": stamp,
        "x-amz-content-sha256": sigv4.UNSIGNED,
    }
    with pytest.raises(InvalidInputError):
        sigv4.parse(headers, [])
    query = [
        ("X-Amz-Algorithm", sigv4.ALGORITHM),
        ("X-Amz-Credential", credential),
        ("X-Amz-Date", stamp),
        ("X-Amz-Expires", "60"),
        ("X-Amz-SignedHeaders", "host"),
        ("X-Amz-Signature", "00"),
    ]
    with pytest.raises(InvalidInputError):
        sigv4.parse({}, query)
