"""The Python SDK of cloudtune's HTTP API: `Client` (blocking) and `AsyncClient` (asyncio),
both on httpx, answering typed models (`cloudtune.client.models`) and raising one exception
class per error code (`cloudtune.client.errors`). The CLI talks to a server only through it.

    from cloudtune.client import Client

    with Client() as client:  # CLOUDTUNE_URL / CLOUDTUNE_API_KEY, or what `cloudtune login` saved
        job = client.submit({"config_name_to_load": "shapes"}, provider="local")
        print(client.wait(job.job_id).status)
"""

from cloudtune.client import errors, models
from cloudtune.client.aio import AsyncClient
from cloudtune.client.calls import LogEvent
from cloudtune.client.errors import APIError, CloudtuneClientError, ServerUnreachable
from cloudtune.client.sync import Client

__all__ = [
    "APIError",
    "AsyncClient",
    "Client",
    "CloudtuneClientError",
    "LogEvent",
    "ServerUnreachable",
    "errors",
    "models",
]
