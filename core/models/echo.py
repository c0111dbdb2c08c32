from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class EchoInput(BaseModel):
    """Any JSON object."""

    model_config = ConfigDict(extra="allow")


class EchoModel:
    """Returns its input: measures the serving overhead alone."""

    name = "echo"
    version = "1"
    batchable = True
    deterministic = True
    input_schema = EchoInput

    def load(self) -> None:
        pass

    def predict(self, inputs: list[Any]) -> list[Any]:
        return [item.model_dump(mode="json") for item in inputs]
