"""A typed Python client for the service: `Client` (blocking) and `AsyncClient` (asyncio), over httpx.

One method per route, each returning the response model of app/schemas.py; 429 and 503 are retried
(honouring Retry-After); every failure is a `ClientError` (`APIError` carries the status, the code and
the server's message). `connect()` gives a `Client` for a server URL, or for the app run in-process on
a model and a data directory (the CLI's local mode)::

    from app.client import Client

    with Client("http://127.0.0.1:8000") as vatt:
        hits = vatt.search("a dog barking", k=5)
        print(hits.results[0].item.source, hits.results[0].score)
"""

from .aio import AsyncClient
from .call import MAX_RETRY_WAIT_S, RETRIES, RETRY_STATUSES, Call, retry_wait
from .errors import APIError, ClientError, UnreachableError
from .local import LocalTransport, connect
from .sync import DEFAULT_URL, Client

__all__ = ["Client", "AsyncClient", "ClientError", "APIError", "UnreachableError", "connect", "LocalTransport",
           "Call", "retry_wait", "RETRIES", "RETRY_STATUSES", "MAX_RETRY_WAIT_S", "DEFAULT_URL"]
