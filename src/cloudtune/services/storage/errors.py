"""The object store's refusals, each with the S3 error code stock clients read.

They are the domain's own error classes (so the one status mapping applies); the S3 routes
render them as S3's XML error document, and `S3_STATUS` holds the few statuses that the
domain's classes do not have."""

from __future__ import annotations

from cloudtune.errors import AuthenticationError as AuthenticationError
from cloudtune.errors import ConflictError as ConflictError
from cloudtune.errors import InvalidInputError as InvalidInputError
from cloudtune.errors import NotFoundError as NotFoundError
from cloudtune.errors import PayloadTooLargeError as PayloadTooLargeError
from cloudtune.errors import PermissionDeniedError as PermissionDeniedError

S3_STATUS = {
    "InvalidRange": 416,
    "NotImplemented": 501,
    "MissingContentLength": 411,
    "RequestTimeout": 400,
}


def access_denied(detail: str = "Access Denied") -> PermissionDeniedError:
    return PermissionDeniedError(detail, code="AccessDenied")


def signature_mismatch() -> PermissionDeniedError:
    # Never says which part differed: the secret stays the only unknown.
    return PermissionDeniedError(
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        code="SignatureDoesNotMatch",
    )


def unknown_key() -> PermissionDeniedError:
    return PermissionDeniedError(
        "The AWS Access Key Id you provided does not exist in our records.",
        code="InvalidAccessKeyId",
    )


def no_credentials() -> AuthenticationError:
    return AuthenticationError(
        "Access Denied: the request carries no credentials", code="AccessDenied"
    )


def no_such_key() -> NotFoundError:
    return NotFoundError("The specified key does not exist.", code="NoSuchKey")


def no_such_bucket() -> NotFoundError:
    return NotFoundError("The specified bucket does not exist", code="NoSuchBucket")


def no_such_upload() -> NotFoundError:
    return NotFoundError("The specified multipart upload does not exist.", code="NoSuchUpload")


def invalid_argument(detail: str) -> InvalidInputError:
    return InvalidInputError(detail, code="InvalidArgument")


def invalid_request(detail: str) -> InvalidInputError:
    return InvalidInputError(detail, code="InvalidRequest")


def malformed_xml(detail: str = "The XML you provided was not well-formed") -> InvalidInputError:
    return InvalidInputError(detail, code="MalformedXML")


def invalid_part(detail: str) -> InvalidInputError:
    return InvalidInputError(detail, code="InvalidPart")


def not_implemented(what: str) -> InvalidInputError:
    return InvalidInputError(f"{what} is not implemented by this server", code="NotImplemented")


def too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"Your proposed upload exceeds the maximum allowed size ({limit} bytes)",
        code="EntityTooLarge",
        limit_bytes=limit,
    )


def invalid_range(size: int) -> InvalidInputError:
    return InvalidInputError(
        "The requested range is not satisfiable", code="InvalidRange", object_size=size
    )


def key_conflict() -> ConflictError:
    return ConflictError(
        "the key needs a folder where an object of a shorter key is, or the reverse",
        code="InvalidArgument",
    )
