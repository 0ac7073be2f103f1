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
