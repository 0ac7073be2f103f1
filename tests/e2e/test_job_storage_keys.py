"""A job's own key to the built-in S3 endpoint: minted at submit, handed to its trainer by
environment, scoped to the job's prefix, dead once the job ends, and never written anywhere in
plaintext by the server."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.e2e.test_server import ServerProcess
from tests.factories import job_body, make_dataset

pytestmark = [pytest.mark.e2e, pytest.mark.trainer]

# Started by the local provider in place of the trainer's Python: it uses only what the
# environment gives it, as a trainer writing its outputs through the endpoint would.
STAND_IN = """
import json, os, sys
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

env = os.environ
s3 = boto3.client(
    "s3",
    endpoint_url=env["CLOUDTUNE_STORAGE_ENDPOINT_URL"],
    aws_access_key_id=env["CLOUDTUNE_STORAGE_ACCESS_KEY_ID"],
    aws_secret_access_key=env["CLOUDTUNE_STORAGE_SECRET_ACCESS_KEY"],
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
)
bucket, prefix = env["CLOUDTUNE_STORAGE_BUCKET"], env["CLOUDTUNE_STORAGE_PREFIX"]
s3.put_object(Bucket=bucket, Key=prefix + "weights.bin", Body=b"trained weights")
try:
    s3.put_object(Bucket=bucket, Key="someone-else/weights.bin", Body=b"x")
    outside = "written"
except ClientError as exc:
    outside = exc.response["Error"]["Code"]
listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
# For the test only: a real trainer keeps its key to itself.
with open(os.path.join(env["CLOUDTUNE_RUN_DIR"], "stand-in-report.json"), "w") as f:
    json.dump({
        "access_key_id": env["CLOUDTUNE_STORAGE_ACCESS_KEY_ID"],
        "secret": env["CLOUDTUNE_STORAGE_SECRET_ACCESS_KEY"],
        "endpoint": env["CLOUDTUNE_STORAGE_ENDPOINT_URL"],
        "bucket": bucket, "prefix": prefix, "outside": outside, "listed": listed,
        "aws_key_in_env": "AWS_SECRET_ACCESS_KEY" in env,
    }, f)
print("uploaded through the job's key", flush=True)
"""


def test_a_local_jobs_trainer_writes_through_its_own_key_which_dies_with_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in = tmp_path / "stand-in-python"
    stand_in.write_text(f"#!{sys.executable}\n{STAND_IN}")
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("CLOUDTUNE_LOCAL__PYTHON", str(stand_in))
    url = f"sqlite:///{tmp_path / 'test.db'}"
    server = ServerProcess(tmp_path / "home", url)
    server.start()
    try:
        body = job_body(make_dataset(tmp_path / "data", 2, size=32), tmp_path / "out")
        submitted = server.post("/api/cloud/jobs/submit?provider=local", json=body)
        assert submitted.status_code == 200, submitted.text
        job_id = submitted.json()["job_id"]
        job = server.wait(job_id, {"completed", "failed", "cancelled"})
        assert job["status"] == "completed", job
        report = json.loads((server.home / "runs" / job_id / "stand-in-report.json").read_text())
        listed = server.get("/api/cloud/storage/credentials").json()
        job_json = server.get(f"/api/cloud/jobs/{job_id}").text
    finally:
        server.stop()

    # No users: the job's prefix is its id, in the bucket `outputs`.
    assert report["bucket"] == "outputs" and report["prefix"] == f"{job_id}/"
    assert report["endpoint"] == f"{server.url}/api/cloud/storage"
    assert report["listed"] == [f"{job_id}/weights.bin"]
    assert report["outside"] == "AccessDenied"
    assert not report["aws_key_in_env"], "the job's key is not passed as the AWS_* keys"
    stored = server.home / "cloud_outputs" / "outputs" / job_id / "weights.bin"
    assert stored.read_bytes() == b"trained weights"

    # A job's key is not one of the people's keys listed.
    keys = listed if isinstance(listed, list) else listed.get("credentials", [])
    assert all(key["access_key_id"] != report["access_key_id"] for key in keys)

    # The secret is nowhere the server writes: not the job's JSON, the database, the run
    # folder's files (but the stand-in's own report), nor the server's log.
    secret = report["secret"].encode()
    assert secret not in job_json.encode()
    written = [p for p in server.home.rglob("*") if p.is_file()]
    written += list(tmp_path.glob("server-*.log"))
    for path in written:
        if path.name != "stand-in-report.json":
            assert secret not in path.read_bytes(), path

    # Ended with the job: the same key is refused, even for reading its own prefix.
    server.start()
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=report["endpoint"],
            aws_access_key_id=report["access_key_id"],
            aws_secret_access_key=report["secret"],
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
        )
        with pytest.raises(ClientError) as ended:
            s3.get_object(Bucket="outputs", Key=f"{job_id}/weights.bin")
        assert ended.value.response["Error"]["Code"] == "AccessDenied"
        assert "revoked" in ended.value.response["Error"]["Message"]
    finally:
        server.stop()
