"""Fuzz the live API from its own OpenAPI schema with every schemathesis check: valid
requests (positive) are accepted and invalid ones (negative) refused, every response
matches the schema, and no 5xx but the documented refusals and time limits.

schemathesis drives hypothesis directly here (its pytest plugin does not load under
this pytest), one property test per operation.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from tests.support.stack import RedisServer, running_stack

EXAMPLES_PER_OPERATION = 120
FUZZ_ENV = {
    # Built-in models only: the tests' "failing" model raises on purpose, which
    # /predict reports as 500 model_error by design.
    "INFERQ_MODELS": "tests.support.models:CountingModel",
    "INFERQ_BURN_ITERATIONS_PER_MS": "1",  # generated work_ms must not cost real seconds
    "INFERQ_WAIT_TIMEOUT_MAX_S": "1",  # nor may generated wait timeouts
    "INFERQ_WAIT_TIMEOUT_DEFAULT_S": "1",
    "INFERQ_DIRECT_MAX_PENDING": "64",
    # The counting model may sleep 10 s, past the fuzzer's read timeout: the time limit
    # bounds every call (answered 504 on /predict, `failed` on the queue).
    "INFERQ_MODEL_TIMEOUT_S": "2",
}


# 503s that refuse work on purpose (overload, deadlines), each with a Retry-After;
# a fuzzer's tiny deadlines meet a real backlog, so these are expected answers.
DELIBERATE_503 = {
    "queue_full",
    "deadline_unmeetable",
    "deadline_exceeded",
    "shed",
    "model_version_not_loaded",  # a pinned version while a killed worker is replaced
}


def assert_no_server_error(response: Any) -> None:
    if response.status_code < 500:
        return
    if response.status_code == 504:
        assert response.json()["error"]["code"] == "timeout", response.text
        return
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] in DELIBERATE_503, response.text
    retry_after = response.headers["retry-after"]  # schemathesis keeps header values as lists
    assert int(retry_after[0] if isinstance(retry_after, list) else retry_after) >= 1


@pytest.mark.timeout(600)
def test_api_never_answers_5xx_and_matches_its_schema(
    redis_server: RedisServer, workdir: Path
) -> None:
    with running_stack(redis_server, workdir, **FUZZ_ENV) as live:
        schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
        # An oversized body is refused by its size (413) before anything reads it.
        rejection = schema.config.checks.negative_data_rejection
        rejection.expected_statuses = [*rejection.expected_statuses, "413"]
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 8
        calls = 0
        plan = [(op, mode) for op in operations for mode in GenerationMode]
        for operation, mode in plan:
            examples = EXAMPLES_PER_OPERATION if mode == GenerationMode.POSITIVE else 60

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case: Any) -> None:
                nonlocal calls
                calls += 1
                # fuzz() runs within this iteration, so `mode` is this operation's.
                positive = mode == GenerationMode.POSITIVE  # noqa: B023
                if positive and "idempotency-key" in (case.headers or {}):
                    # A key names one logical request: a generated key reused for another
                    # body is refused (422) by design (tests/e2e/test_idempotency.py). Only
                    # valid cases get a fresh key: in an invalid one the key may be what is
                    # invalid, and a valid key in its place made the case valid.
                    case.headers["idempotency-key"] = uuid.uuid4().hex
                response = case.call()
                case.validate_response(response, excluded_checks=[not_a_server_error])
                assert_no_server_error(response)

            try:
                fuzz()
            except Unsatisfiable:
                # An operation with nothing to get wrong (no parameters, no body) has
                # no negative cases.
                assert mode == GenerationMode.NEGATIVE, operation.label
    assert calls >= 300
