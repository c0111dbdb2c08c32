"""The asyncio client: the same calls as `Client`, awaited."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from inferq_client import _policy as policy


class AsyncClient:
    """inferq over HTTP for asyncio code. Refusals (429, 503) and lost connections are retried."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        retry: policy.RetryPolicy | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.retry = retry or policy.RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=url, headers=policy.headers_for(api_key), timeout=timeout_s
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def submit(
        self,
        input: dict[str, Any],
        model: str | None = None,
        priority: str | None = None,
        deadline_s: float | None = None,
        wait_s: float | None = None,
    ) -> dict[str, Any]:
        """Create a job (at most once, however often it is retried); its record."""
        body, headers = policy.submit_request(input, model, priority, deadline_s)
        params = {"wait": "true", "timeout": wait_s} if wait_s else None
        return await self._call("POST", "/jobs", json=body, headers=headers, params=params)

    async def get(self, job_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/jobs/{job_id}")

    async def wait(self, job_id: str, timeout_s: float | None = None) -> dict[str, Any]:
        """The job once finished (long-polls, never busy-polls), or as it stands at the timeout."""
        give_up = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = policy.LONG_POLL_S if give_up is None else give_up - time.monotonic()
            slice_s = max(0.1, min(policy.LONG_POLL_S, left))
            job = await self._call(
                "GET", f"/jobs/{job_id}", params={"wait": "true", "timeout": slice_s}
            )
            if job["status"] in policy.TERMINAL or (give_up and time.monotonic() >= give_up):
                return job

    async def predict(
        self,
        input: dict[str, Any],
        model: str | None = None,
        priority: str | None = None,
        deadline_s: float | None = None,
    ) -> Any:
        """Submit and wait: the result, or JobFailedError carrying the job."""
        job = await self.submit(input, model, priority, deadline_s, wait_s=policy.LONG_POLL_S)
        if job["status"] not in policy.TERMINAL:
            job = await self.wait(job["id"])
        return policy.result_of(job)

    async def cancel(self, job_id: str) -> dict[str, Any]:
        return await self._call("DELETE", f"/jobs/{job_id}")

    async def list(self, **filters: Any) -> dict[str, Any]:
        """One page of `GET /jobs` (status, model, priority, since, until, limit, cursor)."""
        params = {k: v for k, v in filters.items() if v is not None}
        return await self._call("GET", "/jobs", params=params)

    async def _call(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        for attempt in range(self.retry.attempts):
            last = attempt == self.retry.attempts - 1
            try:
                response = await self._http.request(method, path, **options)
            except httpx.TransportError:
                if last:
                    raise
                await asyncio.sleep(self.retry.delay_s(attempt, None))
                continue
            if policy.is_retried(response) and not last:
                await asyncio.sleep(self.retry.delay_s(attempt, response))
                continue
            return policy.checked(response)
        raise AssertionError("unreachable")
