"""The built-in S3 endpoint with stock clients (boto3, the aws CLI, a presigned URL through
httpx) against a real server process on loopback."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import psutil
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from sqlalchemy import update

from cloudtune.domain.jobs import JobStatus, JobType, utcnow
from cloudtune.services.secrets import SecretBox
from cloudtune.services.storage import end_job_credentials, mint_job_credentials
from cloudtune.settings import Settings
from cloudtune.store import jobs as job_store
from cloudtune.store.db import Database
from cloudtune.store.tables import StorageCredentialModel
from tests.e2e.test_server import ServerProcess
from tests.factories import create_job, make_context

pytestmark = [pytest.mark.e2e]

AWS = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "aws"
MiB = 1024 * 1024


@dataclass
class Storage:
    server: ServerProcess
    db: Database
    settings: Settings

    @property
    def endpoint(self) -> str:
        return f"{self.server.url}/api/cloud/storage"

    def credential(self, bucket: str = "outputs", **body: Any) -> dict[str, Any]:
        answer = self.server.post(
            "/api/cloud/storage/credentials", json={"bucket": bucket, **body}
        )
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def client(self, key_id: str, secret: str, **config: Any) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4", **config),
        )

    def s3(self, bucket: str = "outputs") -> Any:
        made = self.credential(bucket)
        return self.client(made["access_key_id"], made["secret_access_key"])

    @property
    def root(self) -> Path:
        return self.settings.storage_dir


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    # SQLite only: what differs between databases is covered by tests/api/routes/test_storage.py.
    url = f"sqlite:///{tmp_path / 'test.db'}"
    server = ServerProcess(tmp_path / "home", url)
    server.start()
    db = Database(url)
    try:
        yield Storage(server, db, Settings(home=server.home, database_url=url))
    finally:
        db.dispose()
        server.stop()


def _big_file(path: Path, size: int) -> str:
    """Written in 1 MiB chunks (never held whole); its SHA-256."""
    digest = hashlib.sha256()
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        for index in range(size // MiB):
            chunk = index.to_bytes(8, "big") + block[8:]
            f.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def _leftovers(root: Path) -> list[Path]:
    return list(root.rglob(".ct~tmp-*"))


def test_boto3_multipart_upload_of_200_mb_and_download(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    expected = _big_file(source, 200 * MiB)
    s3 = storage.s3()
    server = psutil.Process(storage.server.process.pid)  # type: ignore[union-attr]
    rss_before = server.memory_info().rss
    started = time.monotonic()
    s3.upload_file(str(source), "outputs", "runs/one/weights.bin")
    upload_seconds = time.monotonic() - started
    rss_after = server.memory_info().rss
    print(
        f"200 MiB upload: {upload_seconds:.2f} s; "
        f"server RSS {rss_before >> 20} -> {rss_after >> 20} MiB"
    )

    head = s3.head_object(Bucket="outputs", Key="runs/one/weights.bin")
    assert head["ContentLength"] == 200 * MiB
    # A multipart ETag as S3 makes it: the parts' MD5s' MD5, then the part count.
    assert head["ETag"].strip('"').endswith("-25")
    on_disk = storage.root / "outputs" / "runs" / "one" / "weights.bin"
    assert _sha256(on_disk) == expected
    assert not list((storage.root / ".ct~uploads").iterdir())  # the parts are gone

    target = tmp_path / "back.bin"
    s3.download_file("outputs", "runs/one/weights.bin", str(target))
    assert _sha256(target) == expected
    # The server held neither file: its memory grew by far less than one (it streams).
    assert server.memory_info().rss - rss_before < 100 * MiB


def test_listing_pages_with_continuation_and_common_prefixes(storage: Storage) -> None:
    s3 = storage.s3()
    keys = [f"set/{i:03d}.txt" for i in range(25)] + ["set/sub/a.txt", "set/sub/b.txt", "top.txt"]
    for key in keys:
        s3.put_object(Bucket="outputs", Key=key, Body=key.encode())

    seen, token, pages = [], None, 0
    while True:
        extra = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket="outputs", Prefix="set/", MaxKeys=10, **extra)
        pages += 1
        seen += [item["Key"] for item in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert pages == 3
    assert seen == sorted(k for k in keys if k.startswith("set/"))

    grouped = s3.list_objects_v2(Bucket="outputs", Prefix="set/", Delimiter="/", MaxKeys=1000)
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["set/sub/"]
    assert len(grouped["Contents"]) == 25
    after = s3.list_objects_v2(Bucket="outputs", StartAfter="set/024.txt")
    assert [item["Key"] for item in after["Contents"]] == [
        "set/sub/a.txt",
        "set/sub/b.txt",
        "top.txt",
    ]

    paginator = s3.get_paginator("list_objects_v2")
    everything = [
        item["Key"]
        for page in paginator.paginate(Bucket="outputs", PaginationConfig={"PageSize": 7})
        for item in page["Contents"]
    ]
    assert everything == sorted(keys)


def test_range_reads_presigned_urls_and_deletes(storage: Storage) -> None:
    s3 = storage.s3()
    s3.put_object(
        Bucket="outputs", Key="notes/hello.txt", Body=b"hello world", ContentType="text/plain"
    )
    part = s3.get_object(Bucket="outputs", Key="notes/hello.txt", Range="bytes=6-")
    assert part["Body"].read() == b"world"
    assert part["ContentRange"] == "bytes 6-10/11"
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    with pytest.raises(ClientError) as past_end:
        s3.get_object(Bucket="outputs", Key="notes/hello.txt", Range="bytes=50-60")
    assert past_end.value.response["Error"]["Code"] == "InvalidRange"

    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "outputs", "Key": "notes/hello.txt"}, ExpiresIn=300
    )
    fetched = httpx.get(url)
    assert fetched.status_code == 200
    assert fetched.content == b"hello world"
    assert fetched.headers["content-type"] == "text/plain"
    tampered = httpx.get(url.replace("hello.txt", "hello.txT"))
    assert tampered.status_code in (403, 404)  # the key changed, so the signature fails
    assert b"SignatureDoesNotMatch" in tampered.content

    s3.delete_object(Bucket="outputs", Key="notes/hello.txt")
    with pytest.raises(ClientError) as gone:
        s3.head_object(Bucket="outputs", Key="notes/hello.txt")
    assert gone.value.response["Error"]["Code"] == "404"
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket="outputs", Key="notes/hello.txt")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
    assert not (storage.root / "outputs" / "notes").exists()  # emptied folders go too


def test_the_aws_cli_copies_both_ways(storage: Storage, tmp_path: Path) -> None:
    made = storage.credential()
    config, shared = tmp_path / "aws-config", tmp_path / "aws-credentials"
    config.write_text("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
    shared.write_text(
        f"[default]\naws_access_key_id = {made['access_key_id']}\n"
        f"aws_secret_access_key = {made['secret_access_key']}\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(shared),
    }
    source = tmp_path / "model.safetensors"
    expected = _big_file(source, 20 * MiB)  # over the CLI's 8 MiB multipart threshold

    def aws(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(AWS), "--endpoint-url", storage.endpoint, "s3", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    up = aws("cp", str(source), "s3://outputs/cli/model.safetensors")
    assert up.returncode == 0, up.stderr
    small = tmp_path / "small.txt"
    small.write_text("small")
    assert aws("cp", str(small), "s3://outputs/cli/small.txt").returncode == 0
    listed = aws("ls", "s3://outputs/cli/")
    assert listed.returncode == 0, listed.stderr
    assert "model.safetensors" in listed.stdout and "small.txt" in listed.stdout
    down = aws("cp", "s3://outputs/cli/model.safetensors", str(tmp_path / "back.safetensors"))
    assert down.returncode == 0, down.stderr
    assert _sha256(tmp_path / "back.safetensors") == expected
    assert _sha256(storage.root / "outputs" / "cli" / "model.safetensors") == expected


def _code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def test_wrong_secrets_expired_keys_and_other_prefixes_are_refused(storage: Storage) -> None:
    made = storage.credential()
    wrong = storage.client(made["access_key_id"], made["secret_access_key"] + "x")
    with pytest.raises(ClientError) as denied:
        wrong.put_object(Bucket="outputs", Key="a.txt", Body=b"x")
    assert _code(denied) == "SignatureDoesNotMatch"
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    unknown = storage.client("CTAKNOSUCHKEY0000000", "secret")
    with pytest.raises(ClientError) as nobody:
        unknown.list_objects_v2(Bucket="outputs")
    assert _code(nobody) == "InvalidAccessKeyId"

    with storage.db.write() as session:
        session.execute(
            update(StorageCredentialModel)
            .where(StorageCredentialModel.access_key_id == made["access_key_id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    expired = storage.client(made["access_key_id"], made["secret_access_key"])
    with pytest.raises(ClientError) as late:
        expired.list_objects_v2(Bucket="outputs")
    assert _code(late) == "AccessDenied"
    assert late.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    other_bucket = storage.s3("models")
    with pytest.raises(ClientError) as elsewhere:
        other_bucket.put_object(Bucket="outputs", Key="a.txt", Body=b"x")
    assert _code(elsewhere) == "AccessDenied"

    # Two jobs' keys: each writes under its own prefix only, and dies with its job.
    ctx = make_context(
        storage.settings, storage.db, secret_box=SecretBox.from_settings(storage.settings)
    )
    first = create_job(storage.db, job_type=JobType.CLOUD, provider="replicate")
    second = create_job(storage.db, job_type=JobType.CLOUD, provider="replicate")
    mine = mint_job_credentials(ctx, first.job_id, None)
    theirs = mint_job_credentials(ctx, second.job_id, None)
    assert mine.prefix == f"{first.job_id}/"
    s3 = storage.client(mine.access_key_id, mine.secret_access_key)
    s3.put_object(Bucket="outputs", Key=f"{first.job_id}/out/a.txt", Body=b"a")
    with pytest.raises(ClientError) as foreign:
        s3.put_object(Bucket="outputs", Key=f"{second.job_id}/out/a.txt", Body=b"a")
    assert _code(foreign) == "AccessDenied"
    with pytest.raises(ClientError) as listing:
        s3.list_objects_v2(Bucket="outputs", Prefix=f"{second.job_id}/")
    assert _code(listing) == "AccessDenied"
    with storage.db.write() as session:
        job_store.switch_job_status(session, first.job_id, JobStatus.FAILED)
    with pytest.raises(ClientError) as ended:
        s3.get_object(Bucket="outputs", Key=f"{first.job_id}/out/a.txt")
    assert _code(ended) == "AccessDenied"
    assert end_job_credentials(ctx, second.job_id) == 1
    with pytest.raises(ClientError) as revoked:
        storage.client(theirs.access_key_id, theirs.secret_access_key).list_objects_v2(
            Bucket="outputs", Prefix=f"{second.job_id}/"
        )
    assert _code(revoked) == "AccessDenied"


@pytest.mark.parametrize(
    "raw_key",
    ["a/%2E%2E/b.txt", "..%2Fescape.txt", "a%5Cb.txt", "a/%00.txt", "a//b.txt", "x" * 1025],
)
def test_keys_that_leave_the_bucket_are_refused(storage: Storage, raw_key: str) -> None:
    # The local admin (no users) may write through the plain form; the key is checked first.
    answer = httpx.put(f"{storage.endpoint}/outputs/{raw_key}", content=b"x")
    assert answer.status_code == 400, answer.text
    assert not any(storage.root.parent.rglob("escape.txt"))
    assert not any(storage.root.rglob("b.txt"))


def test_bucket_names_follow_s3_rules(storage: Storage) -> None:
    for bucket in ("AB", "Upper", "a_b", "%2E%2E", "-ab", "a" * 64):
        answer = httpx.put(f"{storage.endpoint}/{bucket}/k.txt", content=b"x")
        assert answer.status_code == 400, (bucket, answer.text)


def test_an_upload_cut_off_mid_body_leaves_nothing(storage: Storage) -> None:
    made = storage.credential()
    presigned = storage.client(
        made["access_key_id"], made["secret_access_key"]
    ).generate_presigned_url(
        "put_object", Params={"Bucket": "outputs", "Key": "cut/half.bin"}, ExpiresIn=300
    )
    target = httpx.URL(presigned)
    with socket.create_connection(("127.0.0.1", storage.server.port)) as raw:
        path = target.raw_path.decode()
        raw.sendall(
            f"PUT {path} HTTP/1.1\r\nHost: {target.netloc.decode()}\r\n"
            f"Content-Length: {64 * MiB}\r\n\r\n".encode()
        )
        raw.sendall(os.urandom(4 * MiB))
        # The temp file exists while the body streams in ...
        deadline = time.monotonic() + 30
        while not _leftovers(storage.root) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _leftovers(storage.root), "the upload never started"
    # ... and goes with the connection.
    deadline = time.monotonic() + 30
    while _leftovers(storage.root) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _leftovers(storage.root)
    assert not (storage.root / "outputs" / "cut" / "half.bin").exists()


def test_plain_put_with_a_jobs_upload_token(storage: Storage) -> None:
    ctx = make_context(
        storage.settings, storage.db, secret_box=SecretBox.from_settings(storage.settings)
    )
    job = create_job(storage.db, job_type=JobType.CLOUD, provider="replicate")
    made = mint_job_credentials(ctx, job.job_id, None)
    key = f"{job.job_id}/output/validation_images/step_10.png"
    for header in ("X-Upload-Token", "X-SimpleTuner-Secret"):
        answer = httpx.put(
            f"{storage.endpoint}/outputs/{key}",
            content=b"png bytes",
            headers={header: made.upload_token},
        )
        assert answer.status_code == 200, answer.text
        etag = '"' + hashlib.md5(b"png bytes").hexdigest() + '"'
        assert answer.json() == {"ETag": etag, "Key": key, "Bucket": "outputs"}
        assert answer.headers["etag"] == etag
    assert (storage.root / "outputs" / key).read_bytes() == b"png bytes"

    other = create_job(storage.db, job_type=JobType.CLOUD, provider="replicate")
    elsewhere = httpx.put(
        f"{storage.endpoint}/outputs/{other.job_id}/x.txt",
        content=b"x",
        headers={"X-Upload-Token": made.upload_token},
    )
    assert elsewhere.status_code == 401
    wrong = httpx.put(
        f"{storage.endpoint}/outputs/{key}", content=b"x", headers={"X-Upload-Token": "ctj_nope"}
    )
    assert wrong.status_code == 401
    with storage.db.write() as session:
        job_store.switch_job_status(session, job.job_id, JobStatus.CANCELLED)
    ended = httpx.put(
        f"{storage.endpoint}/outputs/{key}",
        content=b"x",
        headers={"X-Upload-Token": made.upload_token},
    )
    assert ended.status_code == 401
    assert (storage.root / "outputs" / key).read_bytes() == b"png bytes"
