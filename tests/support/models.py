"""Models for tests, loaded through INFERQ_MODELS like any user model."""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import BaseModel, Field


class CountingInput(BaseModel):
    key: str
    sleep_ms: int = Field(0, ge=0, le=10_000)


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
