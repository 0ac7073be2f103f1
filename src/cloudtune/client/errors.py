"""One exception class for each error `code` the server's envelope carries
(`{"success": false, "code", "detail", "error"}`, DESIGN §3), under one class per kind of
failure, so a caller catches as narrowly as it needs:

    try:
        client.jobs.get(job_id)
    except JobNotFound: ...            # this code only
    except NotFound: ...               # any 404
    except APIError as error: ...      # anything the server refused: error.code, error.message

A code this SDK does not know yet (a newer server) raises its kind's class; `ServerUnreachable`
is raised when no answer came at all."""

from __future__ import annotations

from typing import Any, ClassVar


class CloudtuneClientError(Exception):
    """Every error this SDK raises."""


class ServerUnreachable(CloudtuneClientError):
    """No answer: the server is down, the address is wrong, or the connection broke."""


class APIError(CloudtuneClientError):
    """An error answer of the server."""

    code: ClassVar[str] = "error"
    status_hint: ClassVar[int | None] = None

    def __init__(self, status: int, code: str, message: str, body: dict[str, Any]) -> None:
        super().__init__(message)
        self.status = status
        self.code = code  # type: ignore[misc]  # the code answered, for an unknown one too
        self.message = message
        self.body = body

    @property
    def detail(self) -> Any:
        return self.body.get("detail", self.message)

    def __str__(self) -> str:
        return f"{self.message} ({self.code}, HTTP {self.status})"


# -- one class per kind (HTTP status) -------------------------------------------------------


class InvalidRequest(APIError):
    status_hint = 400
    code = "invalid_input"


class AuthenticationRequired(APIError):
    status_hint = 401
    code = "authentication_required"


class CostLimitExceeded(APIError):
    status_hint = 402
    code = "cost_limit_exceeded"


class PermissionDenied(APIError):
    status_hint = 403
    code = "permission_denied"


class NotFound(APIError):
    status_hint = 404
    code = "not_found"


class MethodNotAllowed(APIError):
    status_hint = 405
    code = "method_not_allowed"


class RequestTimeout(APIError):
    status_hint = 408
    code = "request_timeout"


class Conflict(APIError):
    status_hint = 409
    code = "conflict"


class PayloadTooLarge(APIError):
    status_hint = 413
    code = "payload_too_large"


class RangeNotSatisfiable(APIError):
    status_hint = 416
    code = "range_not_satisfiable"


class ValidationFailed(APIError):
    """The request does not match the schema (422); `detail` lists each problem."""

    status_hint = 422
    code = "validation_error"


class RateLimited(APIError):
    status_hint = 429
    code = "rate_limited"

    @property
    def retry_after_seconds(self) -> float | None:
        value = self.body.get("retry_after_seconds")
        return float(value) if isinstance(value, int | float) else None


class InternalError(APIError):
    status_hint = 500
    code = "internal_error"


class ProviderFailed(APIError):
    status_hint = 502
    code = "provider_error"


class ProviderUnavailable(ProviderFailed):
    status_hint = 503
    code = "provider_unavailable"


# -- one class per code -----------------------------------------------------------------------
# 400
class InvalidConfig(InvalidRequest):
    code = "invalid_config"


class InvalidConfigName(InvalidRequest):
    code = "invalid_config_name"


class InvalidDataset(InvalidRequest):
    code = "invalid_dataset"


class DatasetEmpty(InvalidRequest):
    code = "dataset_empty"


class DatasetTooManyFiles(PayloadTooLarge):
    code = "dataset_too_many_files"


class SymlinkOutsideDataset(InvalidRequest):
    code = "symlink_outside_dataset"


class InvalidPath(InvalidRequest):
    code = "invalid_path"


class InvalidFilter(InvalidRequest):
    code = "invalid_filter"


class InvalidHardwareProfile(InvalidRequest):
    code = "invalid_hardware_profile"


class InvalidPublish(InvalidRequest):
    code = "invalid_publish"


class InvalidSetting(InvalidRequest):
    code = "invalid_setting"


class InvalidPayload(InvalidRequest):
    code = "invalid_payload"


class InvalidPermissions(InvalidRequest):
    code = "invalid_permissions"


class InvalidRole(InvalidRequest):
    code = "invalid_role"


class InvalidUsername(InvalidRequest):
    code = "invalid_username"


class InvalidEmail(InvalidRequest):
    code = "invalid_email"


class InvalidDisplayName(InvalidRequest):
    code = "invalid_display_name"


class WeakPassword(InvalidRequest):
    code = "weak_password"


class UnknownProvider(InvalidRequest):
    code = "unknown_provider"


class UnsupportedField(InvalidRequest):
    code = "unsupported_field"


class UnsupportedModelFamily(InvalidRequest):
    code = "unsupported_model_family"


class MissingToken(InvalidRequest):
    code = "missing_token"


class ProviderNotConfigured(InvalidRequest):
    code = "provider_not_configured"


class ConsentRequired(InvalidRequest):
    code = "consent_required"


class PackagingFailed(InvalidRequest):
    code = "packaging_failed"


class TrainerUnavailable(InvalidRequest):
    code = "trainer_unavailable"


class HostNotAllowed(InvalidRequest):
    code = "host_not_allowed"


class HTTPError(InvalidRequest):
    code = "http_error"


# 401
class InvalidCredentials(AuthenticationRequired):
    code = "invalid_credentials"


class InvalidApiKey(AuthenticationRequired):
    code = "invalid_api_key"


class ApiKeyExpired(AuthenticationRequired):
    code = "api_key_expired"


class InvalidAuthorization(AuthenticationRequired):
    code = "invalid_authorization"


class InvalidSession(AuthenticationRequired):
    code = "invalid_session"


class SessionRequired(PermissionDenied):
    code = "session_required"


class InvalidToken(AuthenticationRequired):
    code = "invalid_token"


class InvalidSignature(AuthenticationRequired):
    code = "invalid_signature"


class InvalidUploadToken(AuthenticationRequired):
    code = "invalid_upload_token"


class SetupTokenRequired(PermissionDenied):
    code = "setup_token_required"


# 403
class CsrfFailed(PermissionDenied):
    code = "csrf_failed"


class IpNotAllowed(PermissionDenied):
    code = "ip_not_allowed"


class PathNotAllowed(InvalidRequest):
    code = "path_not_allowed"


class UploadRefused(PermissionDenied):
    code = "upload_refused"


class CrossOriginRefused(PermissionDenied):
    code = "cross_origin_refused"


# 404
class JobNotFound(NotFound):
    code = "job_not_found"


class ConfigNotFound(NotFound):
    code = "config_not_found"


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"


class CredentialNotFound(NotFound):
    code = "credential_not_found"


class OutputNotFound(NotFound):
    code = "output_not_found"


class UserNotFound(NotFound):
    code = "user_not_found"


# 409
class AdminRequired(Conflict):
    code = "admin_required"


class LastAdmin(Conflict):
    code = "last_admin"


class OwnAccount(Conflict):
    code = "own_account"


class CancelPending(Conflict):
    code = "cancel_pending"


class ConfigExists(Conflict):
    code = "config_exists"


class ConfigNameTaken(Conflict):
    code = "config_name_taken"


class UserExists(Conflict):
    code = "user_exists"


class SetupCompleted(Conflict):
    code = "setup_completed"


class InvalidJobState(Conflict):
    code = "invalid_job_state"


class DeliveryDone(Conflict):
    code = "delivery_done"


class DeliveryInProgress(Conflict):
    code = "delivery_in_progress"


class NoOutputsDelivery(Conflict):
    code = "no_outputs_delivery"


class NothingToRetry(Conflict):
    code = "nothing_to_retry"


# 502 / 503
class ProviderAuthFailed(ProviderFailed):
    code = "provider_auth_failed"


class ProviderCreateUnconfirmed(ProviderFailed):
    """The provider may have started the job: its answer was lost. The job stays findable."""

    code = "provider_create_unconfirmed"


class ProviderListingIncomplete(ProviderFailed):
    code = "provider_listing_incomplete"


def _all(kind: type[APIError]) -> list[type[APIError]]:
    found = [kind]
    for sub in kind.__subclasses__():
        found += _all(sub)
    return found


# Each class by its code, and each kind by its status.
BY_CODE: dict[str, type[APIError]] = {kind.code: kind for kind in _all(APIError)}
BY_STATUS: dict[int, type[APIError]] = {
    kind.status_hint: kind for kind in APIError.__subclasses__() if kind.status_hint is not None
}
BY_STATUS[503] = ProviderUnavailable


def error_for(status: int, body: object) -> APIError:
    """The exception for an error answer (any body: a proxy's HTML page too)."""
    envelope = body if isinstance(body, dict) else {}
    code = envelope.get("code")
    code = code if isinstance(code, str) and code else "error"
    message = envelope.get("error") or envelope.get("detail") or envelope.get("message")
    if not isinstance(message, str) or not message:
        message = f"the server answered HTTP {status}"
    kind = BY_CODE.get(code)
    if kind is None or kind is APIError:
        kind = BY_STATUS.get(status) or (InternalError if status >= 500 else APIError)
    return kind(status, code, message, envelope)
