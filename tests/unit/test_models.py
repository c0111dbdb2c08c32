from pathlib import Path

import pytest
from pydantic import ValidationError

from core.errors import ModelLoadError, UnknownModelError
from core.models import Model, ModelRegistry, import_model
from core.models.burn import BurnInput, BurnModel, calibrated_iterations_per_ms
from core.models.echo import EchoModel
from core.models.iris import IrisInput, IrisModel


def test_builtin_models_implement_the_protocol() -> None:
    names = {model.name for model in ModelRegistry.from_paths([])}
    assert names == {"iris", "burn", "echo", "digits"}
    assert all(isinstance(model, Model) for model in ModelRegistry.from_paths([]))


def test_user_models_load_by_import_path() -> None:
    registry = ModelRegistry.from_paths(["tests.support.models:CountingModel"])
    assert registry.get("counting").version == "1"


@pytest.mark.parametrize(
    "path", ["nope.module:Model", "core.models.echo:Nope", "core.cache:canonical_json"]
)
def test_bad_model_paths_are_refused(path: str) -> None:
    with pytest.raises(ModelLoadError):
        import_model(path)


def test_unknown_model_error_names_model_and_known_ones() -> None:
    with pytest.raises(UnknownModelError, match=r"'x'.*burn, digits, echo, iris"):
        ModelRegistry.from_paths([]).get("x")


def test_burn_is_deterministic_and_scales_its_work() -> None:
    model = BurnModel(iterations_per_ms=100)
    model.load()  # an explicit count skips calibration
    one, again, longer = model.predict(
        [
            BurnInput(text="a", work_ms=2),
            BurnInput(text="a", work_ms=2),
            BurnInput(text="a", work_ms=4),
        ]
    )
    assert one == again and one["iterations"] == 200 and longer["iterations"] == 400
    assert one["digest"] != longer["digest"]


def test_burn_calibration_is_measured_once_and_kept(tmp_path: Path) -> None:
    cache = tmp_path / "burn.json"
    first = calibrated_iterations_per_ms(cache)
    assert first > 0 and cache.exists()
    cache.write_text(cache.read_text().replace(str(first), str(first + 1)))
    assert calibrated_iterations_per_ms(cache) == first + 1


def test_burn_rejects_negative_work() -> None:
    with pytest.raises(ValidationError):
        BurnInput(text="a", work_ms=-1)


def test_echo_returns_its_input() -> None:
    model = EchoModel()
    item = model.input_schema.model_validate({"a": [1, {"b": None}]})
    assert model.predict([item]) == [{"a": [1, {"b": None}]}]


def test_iris_classifies_the_three_species() -> None:
    model = IrisModel()
    model.load()
    rows = [(5.1, 3.5, 1.4, 0.2), (6.0, 2.9, 4.5, 1.5), (7.7, 3.0, 6.1, 2.3)]
    inputs = [
        IrisInput(sepal_length=a, sepal_width=b, petal_length=c, petal_width=d)
        for a, b, c, d in rows
    ]
    outputs = model.predict(inputs)
    assert [o["class"] for o in outputs] == ["setosa", "versicolor", "virginica"]
    assert all(abs(sum(o["probabilities"].values()) - 1) < 1e-4 for o in outputs)


def test_digits_validates_strictly_and_predicts_held_out_images() -> None:
    from sklearn.datasets import load_digits

    from core.models.digits import DigitsInput, DigitsModel

    for bad in ([True] * 64, [3.5] * 64, ["3"] * 64, [1] * 63, [17] * 64):
        with pytest.raises(ValidationError):
            DigitsInput(pixels=bad)
    model = DigitsModel()
    model.load()
    data = load_digits()
    held_out = range(len(data.target) - 200, len(data.target))
    inputs = [DigitsInput(pixels=[int(v) for v in data.data[i]]) for i in held_out]
    outputs = model.predict(inputs)
    assert len(outputs) == len(inputs)
    correct = sum(out["digit"] == data.target[i] for out, i in zip(outputs, held_out, strict=True))
    assert correct / len(inputs) > 0.85
    assert set(outputs[0]["probabilities"]) == {str(d) for d in range(10)}
    assert model.predict(inputs[:3]) == outputs[:3]  # deterministic, batch or not


def test_the_digits_forest_read_back_from_its_cache_answers_exactly_as_trained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.models import digits

    monkeypatch.setattr(digits, "CACHE_DIR", tmp_path)
    trained = digits.DigitsModel()
    trained.load()  # trains, and saves the forest
    (saved,) = tmp_path.glob("digits-forest-*.skops")
    cached = digits.DigitsModel()
    cached.load()  # reads it back
    images = [item["input"] for item in trained.reference()[:50]]
    inputs = [digits.DigitsInput.model_validate(image) for image in images]
    assert cached.predict(inputs) == trained.predict(inputs)
    saved.write_bytes(b"not a skops file")
    again = digits.DigitsModel()
    again.load()  # an unusable cache: trained afresh
    assert again.predict(inputs) == trained.predict(inputs)
