"""The built-in S3-compatible object store (DESIGN §3 "Webhooks and storage").

Buckets are folders under `<home>/cloud_outputs`; objects stream to disk (objects.py,
multipart.py); callers prove themselves with AWS Signature V4 checked by botocore's signer
(sigv4.py), a job's upload token, or this API's own credentials (credentials.py); s3.py runs
one request. A job's access key is made at its submit by `mint_job_credentials`, found again
by `job_credentials`, and ends with the job (`store.jobs.switch_job_status`) or by
`end_job_credentials`."""

from cloudtune.domain.storage import JobStorageCredentials
from cloudtune.services.storage.credentials import (
    end_job_credentials,
    job_credentials,
    mint_job_credentials,
)

__all__ = [
    "JobStorageCredentials",
    "end_job_credentials",
    "job_credentials",
    "mint_job_credentials",
]
