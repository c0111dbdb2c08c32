"""Models for tests, loaded through INFERQ_MODELS like any user model."""

from __future__ import annotations

import os
import re
import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.errors import TransientModelError
from core.jsontypes import Integer


class CountingInput(BaseModel):
    key: str
    sleep_ms: Integer = Field(0, ge=0, le=10_000)


class CountingModel:
    """Appends each input's key to $INFERQ_TEST_RUNS_FILE, so tests can count model runs."""

    name = "counting"
    version = "1"
    batchable = False
    deterministic = True
    input_schema = CountingInput

    def load(self) -> None:
        self._runs_file = os.environ["INFERQ_TEST_RUNS_FILE"]

    def predict(self, inputs: list[Any]) -> list[Any]:
        outputs = []
        for item in inputs:
            with open(self._runs_file, "a") as runs:
                runs.write(f"{item.key} {time.time():.6f}\n")
            time.sleep(item.sleep_ms / 1000)
            outputs.append({"key": item.key})
        return outputs


class FailingInput(BaseModel):
    reason: str = "boom"


class FailingModel:
    name = "failing"
    version = "1"
    batchable = False
    deterministic = False
    input_schema = FailingInput

    def load(self) -> None:
        pass

    def predict(self, inputs: list[Any]) -> list[Any]:
        raise ValueError(inputs[0].reason)


class BatchInput(BaseModel):
    key: str
    sleep_ms: Integer = Field(0, ge=0, le=2_000)
    fail: bool = False  # the model raises on any batch that holds this input
    short: bool = False  # the model returns one output too few for a batch holding it


class BatchingModel:
    """Records every call's batch to $INFERQ_TEST_RUNS_FILE.batches: `size key,key,...`.

    A call sleeps once, for the longest `sleep_ms` in it: a fixed cost per call,
    which is what makes batching pay.
    """

    name = "batching"
    version = "1"
    batchable = True
    deterministic = False
    input_schema = BatchInput
    max_batch_size = 16

    def load(self) -> None:
        self._batches_file = os.environ["INFERQ_TEST_RUNS_FILE"] + ".batches"

    def predict(self, inputs: list[Any]) -> list[Any]:
        with open(self._batches_file, "a") as batches:
            batches.write(f"{self.name} {len(inputs)} {','.join(i.key for i in inputs)}\n")
        time.sleep(max(item.sleep_ms for item in inputs) / 1000)
        if any(item.fail for item in inputs):
            raise ValueError("asked to fail")
        outputs = [{"key": item.key, "batch": len(inputs)} for item in inputs]
        return outputs[:-1] if any(item.short for item in inputs) else outputs


class OtherBatchingModel(BatchingModel):
    name = "batching2"


class FlakyInput(BaseModel):
    key: str
    failures: Integer = Field(0, ge=0, le=10)  # raise TransientModelError this many times first


class FlakyModel:
    """Fails transiently `failures` times per key (counted in the runs file), then answers."""

    name = "flaky"
    version = "1"
    batchable = False
    deterministic = False
    input_schema = FlakyInput

    def load(self) -> None:
        self._runs_file = os.environ["INFERQ_TEST_RUNS_FILE"]

    def predict(self, inputs: list[Any]) -> list[Any]:
        item = inputs[0]
        with open(self._runs_file, "a+") as runs:
            runs.seek(0)
            tries = sum(1 for line in runs if line.split()[0] == item.key)
            runs.write(f"{item.key} {time.time():.6f}\n")
        if tries < item.failures:
            raise TransientModelError(f"attempt {tries + 1} of {item.key} failed")
        return [{"key": item.key, "tries": tries + 1}]


class HangInput(BaseModel):
    key: str
    mode: Literal["regex", "sleep", "none"] = "regex"


class HangModel:
    """Hangs: in C (a catastrophic regular-expression backtrack, deaf to signals) or asleep."""

    name = "hang"
    version = "1"
    batchable = False
    deterministic = False
    input_schema = HangInput
    timeout_s = 1.0

    def load(self) -> None:
        self._runs_file = os.environ["INFERQ_TEST_RUNS_FILE"]

    def predict(self, inputs: list[Any]) -> list[Any]:
        item = inputs[0]
        with open(self._runs_file, "a") as runs:
            runs.write(f"{item.key} {time.time():.6f}\n")
        if item.mode == "regex":
            re.match(r"(a+)+$", "a" * 40 + "b")  # about 2^40 steps, all inside the re engine
        elif item.mode == "sleep":
            time.sleep(3600)
        return [{"key": item.key}]


class RetriedHangModel(HangModel):
    """Hangs too, but opts in to retrying a call that ran out of time."""

    name = "hang_retried"
    retry_on_timeout = True


class AlwaysTransientInput(BaseModel):
    n: int


class AlwaysTransientModel:
    """Fails transiently every time: a retry that runs out."""

    name = "always_transient"
    version = "1"
    batchable = False
    deterministic = False
    input_schema = AlwaysTransientInput

    def load(self) -> None:
        pass

    def predict(self, inputs: list[Any]) -> list[Any]:
        raise TransientModelError("down")
