"""Factories for test data: jobs, datasets, submit bodies, and a service context."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cloudtune.domain.jobs import Job, JobStatus, JobType, utcnow
from cloudtune.providers.registry import ProviderRegistry
from cloudtune.services.context import Context
from cloudtune.services.tokens import TokenSigner
from cloudtune.settings import Settings
from cloudtune.store import jobs as job_store
from cloudtune.store.db import Database
from cloudtune.trainer.reference.sample_data import make_shapes_dataset


def make_job(**overrides: Any) -> Job:
    values: dict[str, Any] = {
        "job_id": uuid.uuid4().hex,
        "job_type": JobType.LOCAL,
        "provider": "local",
        "status": JobStatus.PENDING,
        "created_at": utcnow(),
    }
    values.update(overrides)
    return Job(**values)


def create_job(db: Database, **overrides: Any) -> Job:
    job = make_job(**overrides)
    with db.write() as session:
        job_store.insert_job(session, job)
    return job


def create_jobs(
    db: Database, count: int, *, start: datetime | None = None, **overrides: Any
) -> list[Job]:
    start = start or utcnow() - timedelta(days=1)
    jobs = [make_job(created_at=start + timedelta(seconds=i), **overrides) for i in range(count)]
    with db.write() as session:
        for job in jobs:
            job_store.insert_job(session, job)
    return jobs


def make_dataset(folder: Path, count: int = 8, *, size: int = 64, seed: int = 0) -> Path:
    """Fixed-seed coloured shapes with one caption file each."""
    return make_shapes_dataset(folder, count, size=size, seed=seed)


def job_body(dataset: Path, output: Path, *, steps: int = 5, **config: Any) -> dict[str, Any]:
    return {
        "config": {
            "--model_family": "reference",
            "--model_type": "lora",
            "--output_dir": str(output),
            "--max_train_steps": steps,
            "--lora_rank": 4,
            "--resolution": 32,
            "--checkpointing_steps": 0,
            **config,
        },
        "dataloader_config": [
            {
                "id": "training-images",
                "type": "local",
                "dataset_type": "image",
                "instance_data_dir": str(dataset),
                "caption_strategy": "textfile",
            }
        ],
    }


def make_context(
    settings: Settings, db: Database, *, providers: list[str] | None = None, **options: Any
) -> Context:
    """A service context on `db` with the named providers (none by default), as the app
    builds it; `options` are Context's own (e.g. `clock`)."""
    settings.ensure_folders()
    return Context(
        settings=settings,
        db=db,
        providers=ProviderRegistry(settings, names=providers or []),
        tokens=TokenSigner.from_home(settings.home),
        **options,
    )
