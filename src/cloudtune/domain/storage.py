"""What a job's trainer is given to reach the built-in S3 endpoint."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class JobStorageCredentials:
    """A job's own access key (read-write, bucket `outputs`, under `prefix`, dead once the job
    is terminal) and its upload token for the plain-PUT form. In memory only: the secret is
    stored encrypted and reaches a trainer by environment or provider input."""

    access_key_id: str
    secret_access_key: str
    bucket: str
    prefix: str
    endpoint_url: str
    upload_token: str

    def environment(self) -> dict[str, str]:
        """How a trainer is given the key: `CLOUDTUNE_STORAGE_*` (not `AWS_*`: those stay the
        job's keys to the operator's S3). The upload token is not among them."""
        return {
            "CLOUDTUNE_STORAGE_ENDPOINT_URL": self.endpoint_url,
            "CLOUDTUNE_STORAGE_BUCKET": self.bucket,
            "CLOUDTUNE_STORAGE_PREFIX": self.prefix,
            "CLOUDTUNE_STORAGE_ACCESS_KEY_ID": self.access_key_id,
            "CLOUDTUNE_STORAGE_SECRET_ACCESS_KEY": self.secret_access_key,
        }
