"""`model.toml`: how one version of a model in the repository is loaded and served."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ModelSection(_Strict):
    loader: Literal["sklearn", "onnx", "python"]
    artifact: str | None = Field(None, description="file in the version's directory")
    class_path: str | None = Field(None, alias="class", description="python loader: mod:Class")
    batchable: bool = True
    deterministic: bool = True
    max_batch_size: int = Field(64, ge=1, le=4096)
    max_batch_wait_ms: float = Field(0.0, ge=0, le=10_000)
    timeout_s: float | None = Field(None, gt=0)
    current: bool = Field(False, description="serve this version when no version is named")
    trusted: list[str] = Field(
        default_factory=list, description="types skops may load beyond its own safe set"
    )

    @model_validator(mode="after")
    def _loader_needs(self) -> ModelSection:
        if self.loader == "python" and not self.class_path:
            raise ValueError('the python loader needs class = "package.module:Class"')
        if self.loader != "python" and not self.artifact:
            raise ValueError(f"the {self.loader} loader needs artifact = <file>")
        return self


class InputSection(_Strict):
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    pydantic: str | None = Field(None, description="import path of a pydantic model")
    features: list[str] | None = Field(None, description="fields that make the row, in order")
    field: str | None = Field(None, description="one field that holds the whole row")


class OutputSection(_Strict):
    labels: list[str] | None = Field(None, description="class index -> label")
    label: str | None = Field(None, description="onnx: the output tensor with the class")
    probabilities: str | None = Field(None, description="onnx: the class probabilities")
    value: str | None = Field(None, description="onnx: a regressor's output tensor")


class CheckSection(_Strict):
    """Thresholds for the periodic check on reference.jsonl (see core/checks.py)."""

    min_accuracy: float = Field(0.9, ge=0, le=1)
    max_distance: float = Field(0.1, ge=0, le=1)


class Manifest(_Strict):
    model: ModelSection
    input: InputSection = InputSection()
    output: OutputSection = OutputSection()
    check: CheckSection = CheckSection()

    @model_validator(mode="after")
    def _input_needs(self) -> Manifest:
        section = self.input
        if self.model.loader == "python":
            return self
        if (section.json_schema is None) == (section.pydantic is None):
            raise ValueError("[input] needs exactly one of schema (JSON Schema) or pydantic")
        if bool(section.features) == bool(section.field):
            raise ValueError("[input] needs exactly one of features = [...] or field = <name>")
        return self
