"""Entry point of a trainer away from the server (a Ray job's entrypoint):
`python -m cloudtune.trainer.remote`, run in a folder holding the job's `config.json`,
`multidatabackend.json` and `cloudtune-job.json`.

It reaches the server only over HTTP: the packaged datasets come from the built-in S3 endpoint
with the job's own key (`CLOUDTUNE_STORAGE_*`), progress goes to the trainer webhook
(`CLOUDTUNE_WEBHOOK_*`), and once training succeeded every file of the output folder goes back
under the job's `<prefix>output/`, which is the job's output folder on the server. The run
itself is `trainer.launch`'s, in a scratch folder of this node: the working folder Ray unpacks
is shared by jobs with the same files and is not ours to write in. Exit 0 only when training
and the upload both succeeded; SIGTERM (a stop) ends it as cancelled, 143.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

JOB_FILE = "cloudtune-job.json"
# Where trainers put the images they make while training (SimpleTuner's validation images,
# the reference trainer's samples), looked at this often.
SAMPLE_FOLDERS = ("validation_images", "samples")
SAMPLES_EVERY_SECONDS = 10.0
OUTPUT_DIR = "output"
DATA_DIR = "data"


def _storage_client() -> Any:
    import boto3  # the trainer extra's; imported here so `--help`-like uses need none
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ["CLOUDTUNE_STORAGE_ENDPOINT_URL"],
        aws_access_key_id=os.environ["CLOUDTUNE_STORAGE_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["CLOUDTUNE_STORAGE_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
    )


def _split_s3(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise ValueError(f"the dataset archive is not an s3:// URL: {url!r}")
    bucket, _, key = url[len("s3://") :].partition("/")
    return bucket, key


def extract_safely(archive: Path, target: Path) -> None:
    """Unpack the server's archive, refusing any member that would land outside `target`."""
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            name = PurePosixPath(member.filename)
            if name.is_absolute() or ".." in name.parts:
                raise ValueError(f"the dataset archive holds an unsafe name: {member.filename!r}")
            if not (root / name).resolve().is_relative_to(root):
                raise ValueError(f"the dataset archive holds an unsafe name: {member.filename!r}")
        zf.extractall(root)


def localise_dataloader(dataloader: list[Any], data_dir: Path) -> list[Any]:
    """Archive folders (`datasets/<id>`) in the dataloader become folders of this node; one
    that climbs out of them (`datasets/../..`) is refused, not joined."""
    out = []
    for entry in dataloader:
        if isinstance(entry, dict) and isinstance(entry.get("instance_data_dir"), str):
            folder = entry["instance_data_dir"]
            if folder.startswith("datasets/") and not os.path.isabs(folder):
                if ".." in PurePosixPath(folder).parts:
                    raise ValueError(f"the dataloader names an unsafe folder: {folder!r}")
                entry = {**entry, "instance_data_dir": str(data_dir / folder)}
        out.append(entry)
    return out


def with_output_dir(config: dict[str, Any], output: Path) -> dict[str, Any]:
    """The config with its output folder on this node (the one it names is the server's)."""
    kept = {k: v for k, v in config.items() if k.lstrip("-") != "output_dir"}
    return {**kept, "--output_dir": str(output)}


def upload_outputs(
    client: Any, bucket: str, prefix: str, output: Path, sent: dict[str, tuple[int, int]]
) -> int:
    """Send every file not sent yet as it is now (`sent`: relative path → size and mtime)."""
    count = 0
    for path in sorted(output.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        relative = path.relative_to(output).as_posix()
        stat = path.stat()
        if sent.get(relative) == (stat.st_size, stat.st_mtime_ns):
            continue
        client.upload_file(str(path), bucket, prefix + relative)
        sent[relative] = (stat.st_size, stat.st_mtime_ns)
        count += 1
    return count


class LiveSamples(threading.Thread):
    """Sends the validation images a trainer writes while it trains, so they show on the
    server during the run, not only once it ended. Files still being written are left for
    the next look (a file is sent once its size held still for one interval)."""

    def __init__(self, client: Any, bucket: str, prefix: str, output: Path) -> None:
        super().__init__(name="live-samples", daemon=True)
        self._client, self._bucket, self._prefix = client, bucket, prefix
        self._output = output
        self.sent: dict[str, tuple[int, int]] = {}
        self._seen: dict[str, tuple[int, int]] = {}
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(SAMPLES_EVERY_SECONDS):
            try:
                self._look()
            except Exception as exc:  # the run must not end for a preview
                print(f"cloudtune: sending samples failed: {exc}", flush=True)

    def _look(self) -> None:
        for folder in SAMPLE_FOLDERS:
            for path in sorted((self._output / folder).glob("*")):
                relative = path.relative_to(self._output).as_posix()
                stat = path.stat()
                now = (stat.st_size, stat.st_mtime_ns)
                settled = self._seen.get(relative) == now
                self._seen[relative] = now
                if path.is_file() and settled and self.sent.get(relative) != now:
                    self._client.upload_file(str(path), self._bucket, self._prefix + relative)
                    self.sent[relative] = now

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=60)


def prepare_run(work: Path, run_dir: Path, job: dict[str, Any], client: Any) -> None:
    config = json.loads((work / "config.json").read_text())
    dataloader = json.loads((work / "multidatabackend.json").read_text())
    dataset_url = job.get("dataset_url")
    if dataset_url:
        bucket, key = _split_s3(dataset_url)
        archive = run_dir / "datasets.zip"
        print(f"cloudtune: fetching the datasets ({key})", flush=True)
        client.download_file(bucket, key, str(archive))
        # Fetched once: the server's copy has done its work (the key may delete in its prefix).
        client.delete_object(Bucket=bucket, Key=key)
        extract_safely(archive, run_dir / DATA_DIR)
        archive.unlink()
        dataloader = localise_dataloader(dataloader, run_dir / DATA_DIR)
    config = with_output_dir(config, run_dir / OUTPUT_DIR)
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    (run_dir / "multidatabackend.json").write_text(json.dumps(dataloader, indent=2))


def run(work: Path) -> int:
    from cloudtune.trainer import launch
    from cloudtune.trainer.progress import ProgressReporter

    job = json.loads((work / JOB_FILE).read_text())
    bucket = os.environ["CLOUDTUNE_STORAGE_BUCKET"]
    prefix = os.environ["CLOUDTUNE_STORAGE_PREFIX"] + OUTPUT_DIR + "/"
    run_dir = Path(tempfile.mkdtemp(prefix="cloudtune-run-"))
    os.environ["CLOUDTUNE_RUN_DIR"] = str(run_dir)
    # First word to the server: it asks the cluster at once whether the job runs, instead of
    # at its next pass (no progress in it, so nothing else changes).
    ProgressReporter().send({"type": "started"})
    try:
        client = _storage_client()
        prepare_run(work, run_dir, job, client)
        samples = LiveSamples(client, bucket, prefix, run_dir / OUTPUT_DIR)
        samples.start()
        try:
            code = launch.run(run_dir)
        finally:
            samples.stop()
        if code != 0:
            result = json.loads((run_dir / "result.json").read_text())
            print(f"cloudtune: training {result.get('status')}: {result.get('error')}", flush=True)
            return code
        count = upload_outputs(client, bucket, prefix, run_dir / OUTPUT_DIR, samples.sent)
        live = len(samples.sent) - count
        print(
            f"cloudtune: {count} output files sent to the server ({live} during training)",
            flush=True,
        )
        return 0
    except launch.Cancelled:
        print("cloudtune: cancelled", flush=True)
        return 143
    except Exception as exc:  # one line the server shows as the job's error
        print(f"cloudtune: the run failed: {type(exc).__name__}: {exc}", flush=True)
        return 1
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def main() -> None:
    if len(sys.argv) != 1:
        print("usage: python -m cloudtune.trainer.remote (in the job's folder)", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(run(Path.cwd()))


if __name__ == "__main__":
    main()
