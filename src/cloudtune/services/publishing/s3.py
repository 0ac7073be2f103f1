"""Publishing a job's output folder to an external S3-compatible bucket with boto3: each file
under `<prefix>/<job id>/`, large ones in parts (the transfer manager's multipart upload)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cloudtune.domain.publishing import S3Target
from cloudtune.services.publishing.files import output_files

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig

MIB = 1024 * 1024


def default_transfer() -> TransferConfig:
    """Parts of 16 MiB from 64 MiB up: 10,000 parts (S3's limit) reach 156 GiB, past any LoRA
    or full checkpoint this server trains; 4 parts in flight bound the memory to about 64 MiB.
    boto3 is imported here, on the first publish, not when the server starts: it is some
    10 MiB a server that never publishes to S3 does not need."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=64 * MIB, multipart_chunksize=16 * MIB, max_concurrency=4
    )


def key_base(target: S3Target, job_id: str) -> str:
    return f"{target.prefix}/{job_id}" if target.prefix else job_id


def publish_to_s3(
    folder: Path,
    target: S3Target,
    *,
    access_key_id: str,
    secret_access_key: str,
    job_id: str,
    transfer: TransferConfig | None = None,
) -> str:
    """The `s3://bucket/prefix/job/` URL the files went under."""
    import boto3
    from botocore.config import Config

    files = output_files(folder)
    if not files:
        raise FileNotFoundError("the job's output folder holds no files to publish")
    # A session of its own: the server's AWS settings (profiles, its own keys) stay out of it.
    session = boto3.session.Session(
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        region_name=target.region or "us-east-1",
    )
    client = session.client(
        "s3",
        endpoint_url=target.endpoint_url,
        config=Config(
            retries={"max_attempts": 4, "mode": "standard"},
            connect_timeout=10,
            read_timeout=120,
            # Path style for a named endpoint: most S3-compatible stores take no bucket
            # subdomains.
            s3={"addressing_style": "path" if target.endpoint_url else "auto"},
        ),
    )
    base = key_base(target, job_id)
    parts = transfer or default_transfer()
    for f in files:
        client.upload_file(str(f.path), target.bucket, f"{base}/{f.relpath}", Config=parts)
    return f"s3://{target.bucket}/{base}/"
