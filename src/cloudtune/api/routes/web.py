"""The web UI's pages and files (cloudtune.web): each page path answers the same HTML shell,
whose modules render the page from the API; `/ui/` serves the modules and styles."""

from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import FileResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from cloudtune.web import SECURITY_HEADERS, STATIC_DIR

router = APIRouter(include_in_schema=False)

PAGES = (
    "/",
    "/jobs",
    "/jobs/{job_id}",
    "/configs",
    "/configs/{name}",
    "/settings",
    "/login",
    "/setup",
)


def _shell() -> Response:
    # Read on each request: small, and a changed file shows without a restart.
    body = (STATIC_DIR / "index.html").read_bytes()
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return Response(body, media_type="text/html; charset=utf-8", headers=headers)


for _path in PAGES:
    router.add_api_route(_path, _shell, methods=["GET"], response_class=Response)


@router.get("/ui")
def _no_listing() -> Response:
    # The folder itself is not a page: answered here, since `/ui/` reaches the app as `/ui`
    # (the edge drops one trailing slash) and the mount would redirect it back to `/ui/`.
    raise StarletteHTTPException(404)


class UiFiles(StaticFiles):
    """The modules and styles, with the UI's headers; revalidated on each load (ETag), so a
    new version of the server is never mixed with an old module."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "no-cache"
        if isinstance(response, FileResponse) and str(full_path).endswith(".js"):
            response.headers["Content-Type"] = "text/javascript; charset=utf-8"
        return response


ui_files = UiFiles(directory=STATIC_DIR)
