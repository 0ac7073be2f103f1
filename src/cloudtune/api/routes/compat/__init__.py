"""The compatibility layer: paths the reference server serves that scripts written for it call,
answered in its shapes by the same services as our own routes. Everything under this package
exists for compatibility alone: our native API keeps its own paths and shapes, and docs/api.md
has the table of every compatible path and field and where the two still differ on purpose.

One module per area, each with its own router; `router` includes them all."""

from __future__ import annotations

from fastapi import APIRouter

from cloudtune.api.routes.compat import auth, costs, health, jobs, providers

router = APIRouter()
for area in (health, jobs, auth, costs, providers):
    router.include_router(area.router)
