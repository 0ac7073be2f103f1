"""Who is calling, and what they may do."""

from __future__ import annotations

from dataclasses import dataclass

from cloudtune.domain.jobs import Job
from cloudtune.errors import PermissionDeniedError, job_not_found

ALL_PERMISSIONS = frozenset(
    {
        "job.submit",
        "job.view.own",
        "job.view.all",
        "job.cancel.own",
        "job.cancel.all",
        "job.delete.own",
        "job.delete.all",
        "config.view",
        "config.edit",
        "provider.manage",
        "cost.manage",
        "user.manage",
        "api.keys.own",
        "api.keys.all",
        "storage.read",
        "storage.write",
    }
)


_RESEARCHER = frozenset(
    {
        "job.submit",
        "job.view.own",
        "job.cancel.own",
        "job.delete.own",
        "config.view",
        "config.edit",
        "api.keys.own",
        "storage.read",
        "storage.write",
    }
)
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"job.view.own", "config.view", "api.keys.own", "storage.read"}),
    "researcher": _RESEARCHER,
    # A lead is a researcher who also sees and manages everyone's jobs and the costs.
    "lead": _RESEARCHER | {"job.view.all", "job.cancel.all", "job.delete.all", "cost.manage"},
    "admin": ALL_PERMISSIONS,
}
ROLES = tuple(ROLE_PERMISSIONS)


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str | None
    permissions: frozenset[str]
    name: str = "local"
    # How the caller proved who it is: local (no users yet), session, cookie or api_key.
    via: str = "local"
    key_id: str | None = None

    def has(self, permission: str) -> bool:
        return permission in self.permissions

    def require(self, permission: str) -> None:
        if not self.has(permission):
            raise PermissionDeniedError(
                f"Permission denied: {permission}", required_permission=permission
            )

    def owns(self, job: Job) -> bool:
        return job.user_id == self.user_id

    def require_visible(self, job: Job) -> None:
        """Someone else's job that the caller may not see reads as unknown, not forbidden;
        their own job without `job.view.own` is forbidden."""
        if self.has("job.view.all") or (self.owns(job) and self.has("job.view.own")):
            return
        if self.owns(job):
            self.require("job.view.own")
        raise job_not_found(job.job_id)

    @property
    def storage_prefix(self) -> str:
        """Where this caller's objects live in each bucket of the built-in S3 endpoint: its
        own `<username>/`, or anywhere for an admin."""
        return "" if self.permissions >= ALL_PERMISSIONS else f"{self.name}/"

    def require_on_job(self, action: str, job: Job) -> None:
        """`action` is cancel or delete: own jobs need `.own` or `.all`, others' need `.all`."""
        self.require_visible(job)
        if self.has(f"job.{action}.all"):
            return
        self.require(f"job.{action}.own" if self.owns(job) else f"job.{action}.all")


# With no users and a loopback bind, every request acts as this admin.
LOCAL_ADMIN = Principal(user_id=None, permissions=ALL_PERMISSIONS, name="local")
