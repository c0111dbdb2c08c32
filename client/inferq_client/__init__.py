"""inferq's Python client: `Client` and `AsyncClient`, which wait and retry correctly."""

from inferq_client._async import AsyncClient
from inferq_client._errors import ApiError, JobFailedError
from inferq_client._sync import Client

__all__ = ["ApiError", "AsyncClient", "Client", "JobFailedError"]
