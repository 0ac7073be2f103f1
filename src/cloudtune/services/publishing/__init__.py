"""Publishing a job's outputs to Hugging Face Hub and to an external S3 bucket: the `publish`
settings of a submit and the saved defaults, the deliveries they plan, the runner that makes
them for local jobs, and their state on the job."""

from __future__ import annotations

from cloudtune.services.publishing.defaults import (
    PublishDefaults,
    get_defaults,
    load_defaults,
    update_defaults,
)
from cloudtune.services.publishing.runner import PublishRunner
from cloudtune.services.publishing.state import (
    PublishState,
    TargetState,
    get_publish,
    job_publish_fields,
    publish_fields,
    publish_state,
    retry_publish,
)
from cloudtune.services.publishing.submit import JobPublish, for_submit, plan_publish

__all__ = [
    "JobPublish",
    "PublishDefaults",
    "PublishRunner",
    "PublishState",
    "TargetState",
    "for_submit",
    "get_defaults",
    "get_publish",
    "job_publish_fields",
    "load_defaults",
    "plan_publish",
    "publish_fields",
    "publish_state",
    "retry_publish",
    "update_defaults",
]
