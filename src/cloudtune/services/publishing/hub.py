"""Publishing a job's output folder to a Hugging Face Hub model repository: the repository is
made if it is not there (`create_repo(exist_ok=True)`), then one commit adds every file.

The files are listed here (`files.output_files`) and committed with `create_commit`, the call
`upload_folder` makes, because `upload_folder` follows links out of the folder."""

from __future__ import annotations

import os
from pathlib import Path

from cloudtune.domain.publishing import HubTarget
from cloudtune.services.publishing.files import output_files


def hub_endpoint() -> str | None:
    """`HF_ENDPOINT` as it is now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_ENDPOINT") or None


def publish_to_hub(folder: Path, target: HubTarget, *, token: str, job_id: str) -> str:
    """The repository's URL once the commit is made."""
    # Imported on the first publish, not when the server starts (a server that never
    # publishes to the Hub does not load it).
    from huggingface_hub import CommitOperationAdd, HfApi

    files = output_files(folder)
    if not files:
        raise FileNotFoundError("the job's output folder holds no files to publish")
    api = HfApi(endpoint=hub_endpoint(), token=token, library_name="cloudtune")
    api.create_repo(target.repo_id, repo_type="model", private=target.private, exist_ok=True)
    api.create_commit(
        target.repo_id,
        repo_type="model",
        operations=[CommitOperationAdd(f.relpath, str(f.path)) for f in files],
        commit_message=f"Outputs of training job {job_id}",
    )
    return f"{api.endpoint.rstrip('/')}/{target.repo_id}"
