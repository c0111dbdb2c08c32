"""The client's retry rules, without a server."""

from __future__ import annotations

import email.utils

import httpx
from inferq_client._policy import RetryPolicy, retry_after_s, submit_request


def test_retry_after_takes_seconds_and_http_dates() -> None:
    assert retry_after_s("3") == 3.0
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert retry_after_s(date, now=now) == 7.0
    assert retry_after_s(email.utils.formatdate(now - 5, usegmt=True), now=now) == 0.0
    assert retry_after_s("soon") is None and retry_after_s(None) is None


def test_waits_follow_retry_after_up_to_the_cap_else_jittered_backoff() -> None:
    retry = RetryPolicy(base_s=0.5, cap_s=10)
    told = httpx.Response(503, headers={"Retry-After": "4"})
    assert retry.delay_s(0, told) == 4.0
    assert retry.delay_s(0, httpx.Response(503, headers={"Retry-After": "3600"})) == 10
    waits = [retry.delay_s(3, None) for _ in range(200)]
    assert all(0 <= w <= 4.0 for w in waits) and len(set(waits)) > 100  # jittered, bounded
    assert all(0 <= retry.delay_s(30, None) <= 10 for _ in range(50))  # capped


def test_every_submit_carries_its_own_idempotency_key() -> None:
    first = submit_request({"a": 1}, "echo", None, None)
    second = submit_request({"a": 1}, "echo", None, None)
    assert first[0] == {"input": {"a": 1}, "model": "echo"}
    assert first[1]["Idempotency-Key"] != second[1]["Idempotency-Key"]
