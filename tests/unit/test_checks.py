"""Model checks: scoring reference data, the held-out data of the built-in models, the schedule."""

from __future__ import annotations

import datetime
from typing import Any

from pydantic import BaseModel

from config import Settings
from core.checks import run_check
from core.models import ModelRegistry
from core.models.digits import DigitsModel
from core.models.iris import IrisModel
from worker.app import make_huey
from worker.tasks import register


class LabelInput(BaseModel):
    label: str


class Parrot:
    """Answers the label it is given: its accuracy is whatever the reference says."""

    name, version, batchable, deterministic = "parrot", "1", True, True
    input_schema = LabelInput

    def load(self) -> None:
        pass

    def predict(self, inputs: list[Any]) -> list[Any]:
        return [{"label": item.label} for item in inputs]


def _items(pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"input": {"label": given}, "expected": wanted} for given, wanted in pairs]


def test_a_check_scores_accuracy_and_the_distance_between_distributions() -> None:
    perfect = run_check(Parrot(), _items([("a", "a"), ("b", "b")] * 10))
    assert perfect.passed and perfect.accuracy == 1 and perfect.distance == 0
    # Every answer wrong, yet the same mix of labels: accuracy fails, the distance does not.
    swapped = run_check(Parrot(), _items([("a", "b"), ("b", "a")] * 10))
    assert not swapped.passed and swapped.accuracy == 0 and swapped.distance == 0
    assert "accuracy 0.000 < 0.9" in swapped.reason
    # Only a stated distribution: a model that answers "a" nine times in ten drifted.
    drifted = _items([("a", "a")] * 9 + [("b", "b")])
    drifted = [{"input": i["input"]} for i in drifted] + [{"distribution": {"a": 0.5, "b": 0.5}}]
    result = run_check(Parrot(), drifted)
    assert not result.passed and result.accuracy is None and result.distance == 0.4


def test_the_built_in_models_pass_on_their_held_out_data() -> None:
    for model in (IrisModel(), DigitsModel()):
        model.load()
        reference = model.reference()
        result = run_check(model, reference)
        assert result.passed, (model.name, result)
        assert result.samples == len(reference) >= 30
        assert result.accuracy is not None and result.accuracy >= 0.9


def test_a_version_held_back_by_its_check_is_not_current_unless_flagged() -> None:
    old, new = Parrot(), Parrot()
    new.version = "2"
    registry = ModelRegistry([old, new])
    assert registry.current_version("parrot") == "2"
    held = registry.holding_back({"parrot@2"})
    assert held.current_version("parrot") == "1"
    assert held.get("parrot@2") is new  # still served when pinned
    assert registry.holding_back({"parrot@1", "parrot@2"}).current_version("parrot") == "2"
    flagged = ModelRegistry([old, new], current={"parrot": "2"}, held_back={"parrot@2"})
    assert flagged.current_version("parrot") == "2"  # an operator's explicit choice stands


def test_consumers_check_models_on_the_configured_schedule() -> None:
    huey = make_huey(Settings(_env_file=None, model_check_minutes=7, environment="development"))
    register(huey)
    (task,) = huey._registry.periodic_tasks  # no public accessor
    assert str(task).startswith("inferq.check_models:")  # its wire name
    minutes = [m for m in range(60) if task.validate_datetime(datetime.datetime(2026, 1, 1, 3, m))]
    assert minutes == list(range(0, 60, 7))
