"""Runs jobs as Replicate predictions of the trainer model, one model per hardware profile."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from cloudtune.domain.hardware import HardwareProfile
from cloudtune.domain.jobs import Job, JobStatus, JobType
from cloudtune.domain.training import TrainingSpec
from cloudtune.errors import (
    InvalidInputError,
    PayloadTooLargeError,
    ProviderError,
    ProviderUnavailableError,
    UnconfirmedSubmitError,
)
from cloudtune.providers.base import (
    FetchedFile,
    JobBundle,
    ProviderAccount,
    ProviderConfig,
    ProviderHandle,
    ProviderStatus,
    ProviderVersion,
    WebhookPolicy,
    tail_lines,
)
from cloudtune.providers.breaker import CircuitBreaker
from cloudtune.providers.replicate import lookup as tags
from cloudtune.providers.replicate import outputs as output_files
from cloudtune.providers.replicate.account import MISSING_TOKEN, account_of, check_token_format
from cloudtune.providers.replicate.client import (
    MAX_UPLOAD_BYTES,
    BreakerOpenError,
    ReplicateClient,
    ReplicateError,
    UncertainCreateError,
)
from cloudtune.providers.replicate.predictions import parse_prediction, prediction_input
from cloudtune.providers.replicate.profiles import (
    normalise_profile,
    replicate_profiles,
    replicate_sku,
)
from cloudtune.providers.replicate.settings import ReplicateSettings
from cloudtune.providers.replicate.webhook_secret import WebhookSecretCache
from cloudtune.settings import Settings

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/api/webhooks/replicate"
WEBHOOK_EVENTS = ["start", "output", "logs", "completed"]
# After a failed fetch of the webhook secret, webhooks are refused this long without asking
# Replicate again. Replicate retries a final webhook for about a minute, so a short outage
# loses nothing that polling would not find anyway.
SECRET_RETRY_SECONDS = 30.0
# A create is sent again only after a lookup shows it was not applied; this many times at most.
CREATE_ATTEMPTS = 8


class ReplicateProvider:
    name = "replicate"
    job_type = JobType.CLOUD.value
    poll_with_backoff = True
    upload_limit_bytes = MAX_UPLOAD_BYTES
    secret_retry_seconds = SECRET_RETRY_SECONDS
    description = "Trains on Replicate's cloud GPUs; local datasets are packaged and uploaded"

    def __init__(self, settings: Settings, config: ProviderConfig) -> None:
        self._settings = settings
        self._config = config
        self._breaker = CircuitBreaker()
        self._client: ReplicateClient | None = None
        self._client_token: str | None = None
        self._webhook_secrets = WebhookSecretCache(self.name)
        self._downloads: httpx.AsyncClient | None = None

    # -- the Provider protocol --------------------------------------------------------------

    def check(self, spec: TrainingSpec) -> None:
        self._token()  # a clear 400 before anything is packaged or written
        if spec.model_family is None:
            raise InvalidInputError(
                "config lacks model_family (e.g. flux, sdxl)", code="invalid_config"
            )

    def hardware_type(self) -> str | None:
        return None

    def offer(self, profile: str | None) -> HardwareProfile:
        default = self._own_settings().hardware_profile
        return replicate_profiles(self._settings)[normalise_profile(profile, default)]

    def profiles(self) -> list[HardwareProfile]:
        return list(replicate_profiles(self._settings).values())

    async def upload(self, job: Job, archive: Path) -> str:
        try:
            result = await self._api().upload_file(
                archive, filename=f"cloudtune-{job.job_id}.zip", content_type="application/zip"
            )
        except ReplicateError as exc:
            if exc.status == 413:
                raise PayloadTooLargeError(
                    f"Replicate refused the dataset archive: {exc.detail}",
                    size=archive.stat().st_size,
                    limit=MAX_UPLOAD_BYTES,
                ) from None
            raise _provider_error("upload", exc) from None
        url = (result.get("urls") or {}).get("get") or result.get("url")
        if not url:
            raise ProviderError(
                "replicate: upload answered without a file URL", provider=self.name
            )
        return str(url)

    async def submit(self, job: Job, bundle: JobBundle) -> ProviderHandle:
        config = self._own_settings()
        offer = self.offer(bundle.hardware_profile)
        model = self.model_of(offer.name)
        client = self._api()
        try:
            version = config.version or await client.latest_version(model)
        except ReplicateError as exc:
            raise _provider_error("version lookup", exc) from None
        body: dict[str, Any] = {
            "version": f"{model}:{version}" if ":" not in str(version) else version,
            "input": prediction_input(job.job_id, bundle),
        }
        webhook = _webhook_url(config.webhook_url, job.job_id)
        if webhook:
            body["webhook"] = webhook
            body["webhook_events_filter"] = WEBHOOK_EVENTS
        prediction = await self._create_once(client, job.job_id, body)
        return ProviderHandle(
            ref=str(prediction["id"]),
            data={"model": model, "hardware_profile": offer.name},
        )

    async def status(self, handle: ProviderHandle) -> ProviderStatus:
        try:
            prediction = await self._api().get_prediction(handle.ref)
        except ReplicateError as exc:
            if exc.status == 404:
                return ProviderStatus(
                    status=JobStatus.FAILED,
                    error_message="Replicate no longer knows this prediction",
                )
            raise _provider_error("status", exc) from None
        return self.parse_webhook(prediction)[1]

    async def cancel(self, handle: ProviderHandle) -> None:
        try:
            await self._api().cancel_prediction(handle.ref)
        except ReplicateError as exc:
            raise _provider_error("cancel", exc) from None

    async def logs(self, handle: ProviderHandle, tail: int | None) -> str:
        try:
            text = str((await self._api().get_prediction(handle.ref)).get("logs") or "")
        except ReplicateError as exc:
            raise _provider_error("logs", exc) from None
        return tail_lines(text, tail)

    async def validate(self) -> ProviderAccount:
        return await self._validate(once=False)

    # -- outputs (HasOutputs; the streaming is providers/replicate/outputs.py) ----------------

    def output_urls(self, outputs: Sequence[Any]) -> list[str]:
        return output_files.output_urls(outputs)

    def may_fetch(self, url: str) -> bool:
        return output_files.may_fetch(url, self._settings.replicate_output_hosts)

    async def fetch_output(
        self, url: str, dest: Path, *, heartbeat: Callable[[], Awaitable[None]]
    ) -> FetchedFile:
        if not self.may_fetch(url):  # the token goes to Replicate's own hosts only
            raise ProviderError("not a Replicate file link; not fetched", provider=self.name)
        if self._downloads is None:
            timeout = self._settings.replicate_timeout_seconds
            self._downloads = httpx.AsyncClient(
                timeout=httpx.Timeout(timeout, connect=10.0), follow_redirects=False
            )
        return await output_files.fetch(
            self._downloads, url, dest, token=self._token(), heartbeat=heartbeat
        )

    # -- what the API shows of it -----------------------------------------------------------

    async def validate_once(self) -> ProviderAccount:
        """One attempt (a token just saved is checked while its user waits)."""
        return await self._validate(once=True)

    async def _validate(self, *, once: bool) -> ProviderAccount:
        """Not valid without a token or when Replicate refuses it; ProviderError when
        Replicate cannot be asked."""
        if not self._config.token(self.name):
            return ProviderAccount(ok=False, detail=MISSING_TOKEN)
        try:
            return await account_of(self._api(), once=once)
        except ReplicateError as exc:
            raise _provider_error("validate", exc) from None

    def configured(self) -> bool:
        return bool(self._config.token(self.name))

    def check_token(self, token: str) -> None:
        check_token_format(token)

    def model_of(self, profile: str) -> str:
        return f"{self._own_settings().trainer_model}-{profile}"

    def pinned_version(self) -> str | None:
        return self._own_settings().version

    def hardware_sku(self, profile: str) -> str:
        return replicate_sku(profile)

    # -- webhooks and the rest of the API ---------------------------------------------------

    async def webhook_secret(self) -> str:
        """The account's webhook signing secret (webhook_secret.py: cached, fetched once at a
        time, a failure remembered for `secret_retry_seconds`)."""
        return await self._webhook_secrets.get(
            self._token(),
            lambda: self._api().default_webhook_secret(),
            retry_seconds=self.secret_retry_seconds,
        )

    def parse_webhook(self, payload: dict[str, Any]) -> tuple[str, ProviderStatus]:
        return parse_prediction(payload)

    async def versions(self, profile: str | None) -> list[ProviderVersion]:
        model = self.model_of(self.offer(profile).name)
        try:
            found = await self._api().versions(model)
        except ReplicateError as exc:
            raise _provider_error("versions", exc) from None
        return [
            ProviderVersion(id=str(v["id"]), created_at=v.get("created_at"))
            for v in found
            if v.get("id")
        ]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._downloads is not None:
            await self._downloads.aclose()

    # -- internals --------------------------------------------------------------------------

    def _own_settings(self) -> ReplicateSettings:
        # The store validates saved settings with this provider's own model (registry).
        saved = self._config.config(self.name)
        if isinstance(saved, ReplicateSettings):
            return saved
        return ReplicateSettings.model_validate(saved.model_dump())

    def webhook_policy(self) -> WebhookPolicy:
        own = self._own_settings()
        return WebhookPolicy(
            allowed_networks=tuple(own.webhook_allowed_ips or ()),
            require_signature=own.require_signature,
        )

    def _token(self) -> str:
        token = self._config.token(self.name)
        if not token:
            raise InvalidInputError(MISSING_TOKEN, code="missing_token")
        return token

    def _api(self) -> ReplicateClient:
        token = self._token()
        if self._client is None or token != self._client_token:
            self._client = ReplicateClient(
                self._settings.replicate_base_url,
                token,
                timeout=self._settings.replicate_timeout_seconds,
                breaker=self._breaker,
                upload_timeout=max(300.0, self._settings.replicate_timeout_seconds),
            )
            self._client_token = token
        return self._client

    async def _create_once(
        self, client: ReplicateClient, job_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Create the prediction at most once: after an uncertain failure (no answer, or a
        5xx that may have come after the create was applied), look for it by its tag and
        adopt it; the create is sent again only when Replicate's whole list shows it does not
        exist. A lookup that cannot be made, or whose list was cut off, fails the submit
        rather than risk two runs."""
        since = datetime.now(UTC) - tags.LOOKUP_SLACK
        last: ReplicateError | None = None
        for _ in range(CREATE_ATTEMPTS):
            try:
                return await client.create_prediction(body)
            except UncertainCreateError as exc:
                last = exc
                log.warning("job %s: create answered %s; looking it up", job_id, exc)
                try:
                    lookup = await self._find(client, {job_id}, since, pages=tags.LOOKUP_PAGES)
                except ProviderError:
                    raise UnconfirmedSubmitError(
                        "replicate: could not confirm whether Replicate created the prediction "
                        "(looking it up failed); not sent again, to avoid a second run",
                        provider=self.name,
                    ) from None
                if job_id in lookup.found:
                    log.info("job %s: the create had been applied; adopted", job_id)
                    return lookup.found[job_id]
                if lookup.cut_off is not None:
                    raise UnconfirmedSubmitError(
                        "replicate: could not confirm whether Replicate created the prediction "
                        f"(its list of predictions: {lookup.cut_off}); not sent again, to "
                        "avoid a second run",
                        provider=self.name,
                    ) from None
            except ReplicateError as exc:
                raise _provider_error("create", exc) from None
        assert last is not None
        raise _provider_error("create", last)

    async def discover(self, job_ids: Collection[str]) -> dict[str, ProviderHandle]:
        """Our predictions among Replicate's recent ones, by the job id each carries in its
        input. Replicate removes an API prediction's input after an hour, so only jobs lost
        within the last hour can be found; older pages are not read. Raises ProviderError
        when the list was cut off before every job was found: a job not found then may
        still run, and the caller must not take it for one that never reached Replicate."""
        since = datetime.now(UTC) - tags.DISCOVERY_WINDOW
        lookup = await self._find(self._api(), set(job_ids), since, pages=tags.DISCOVERY_PAGES)
        unknown = lookup.unknown(job_ids)
        if unknown:
            raise ProviderError(
                f"replicate: {len(unknown)} lost job(s) neither found nor ruled out (the list "
                f"of predictions: {lookup.cut_off})",
                code="provider_listing_incomplete",
                provider=self.name,
            )
        return {job_id: self._handle(prediction) for job_id, prediction in lookup.found.items()}

    async def _find(
        self, client: ReplicateClient, job_ids: set[str], since: datetime, *, pages: int
    ) -> tags.Lookup:
        try:
            return await tags.find_tagged(client, job_ids, since, pages=pages)
        except ReplicateError as exc:
            raise _provider_error("prediction lookup", exc) from None

    def _handle(self, prediction: dict[str, Any]) -> ProviderHandle:
        """A handle like `submit`'s, for a prediction found by its tag."""
        model = str(prediction.get("model") or "")
        data: dict[str, Any] = {"model": model}
        prefix = f"{self._own_settings().trainer_model}-"
        if model.startswith(prefix):
            data["hardware_profile"] = model.removeprefix(prefix)
        return ProviderHandle(ref=str(prediction["id"]), data=data)


def _webhook_url(base: str | None, job_id: str) -> str | None:
    if not base:
        return None
    base = base.rstrip("/")
    if not base.endswith(WEBHOOK_PATH):
        base += WEBHOOK_PATH
    return f"{base}?job_id={job_id}"


def _provider_error(action: str, exc: ReplicateError) -> ProviderError:
    """Says which request failed (method and URL: a wrong base URL shows at once)."""
    if isinstance(exc, BreakerOpenError):
        return ProviderUnavailableError(f"replicate: {exc.detail}", provider="replicate")
    where = f" ({exc.request})" if exc.request else ""
    if exc.status in (401, 403):
        return ProviderError(
            f"replicate: the token was refused{where}; check REPLICATE_API_TOKEN",
            code="provider_auth_failed",
            provider="replicate",
        )
    answer = f"answered {exc.status}" if exc.status else "no answer"
    return ProviderError(
        f"replicate: {action} failed: {exc.request or 'request'} {answer}: {exc.detail}",
        provider="replicate",
        provider_status=exc.status,
    )
