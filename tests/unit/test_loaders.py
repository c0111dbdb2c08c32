"""The skops and ONNX loaders on batches: the same answers as scikit-learn itself, in order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.models.repository import build_version, scan_repository
from core.predict import predict_batch
from tests.support.artifacts import FEATURES, LABELS, write_manifest


@pytest.fixture
def repository(model_repository: Path) -> Path:
    return model_repository


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_batch_answers_like_the_estimator_row_by_row(repository: Path, version: str) -> None:
    from sklearn.datasets import load_iris

    features, target = load_iris(return_X_y=True)
    model, _ = build_version("flowers", version, repository / "flowers" / version)
    model.load()
    inputs = [json.dumps(dict(zip(FEATURES, row.tolist(), strict=True))) for row in features]
    outcomes = predict_batch(model, inputs)
    labels = [json.loads(o.result_json)["label"] for o in outcomes]
    accuracy = sum(LABELS[t] == label for t, label in zip(target, labels, strict=True)) / len(
        target
    )
    assert accuracy > 0.95  # a fitted logistic regression on its own training data
    first = json.loads(outcomes[0].result_json)
    assert set(first["probabilities"]) == set(LABELS)
    assert abs(sum(first["probabilities"].values()) - 1) < 1e-3


def test_the_two_artifacts_agree(repository: Path) -> None:
    from sklearn.datasets import load_iris

    features, _ = load_iris(return_X_y=True)
    inputs = [json.dumps(dict(zip(FEATURES, row.tolist(), strict=True))) for row in features]
    answers = []
    for version in ("1", "2"):
        model, _ = build_version("flowers", version, repository / "flowers" / version)
        model.load()
        answers.append([json.loads(o.result_json)["label"] for o in predict_batch(model, inputs)])
    assert answers[0] == answers[1]


def test_a_scan_names_each_problem_with_its_file(repository: Path, tmp_path: Path) -> None:
    scan = scan_repository(repository)
    assert {(m.name, m.version) for m in scan.models} == {
        ("flowers", "1"),
        ("flowers", "2"),
        ("counter", "1"),
    }
    assert set(scan.problems) == {"flowers@3", "broken@1", "unvetted@1"}
    write_manifest(tmp_path / "m" / "1", {"loader": "onnx"})
    write_manifest(tmp_path / "m" / "2", {"loader": "sklearn", "artifact": "x", "bogus": 1})
    write_manifest(tmp_path / "bad name" / "1", {"loader": "python", "class": "a:B"})
    problems = scan_repository(tmp_path).problems
    assert "needs artifact" in problems["m@1"] and "model.toml" in problems["m@1"]
    assert "bogus" in problems["m@2"]
    assert "not a valid model name" in problems["bad name@1"]
    assert "not a directory" in next(iter(scan_repository(tmp_path / "nope").problems.values()))


def test_the_readmes_manifest_examples_are_valid() -> None:
    import re
    import tomllib

    from core.models.manifest import Manifest
    from scripts.stack import ROOT

    readme = (ROOT / "README.md").read_text()
    examples = re.findall(r"```toml\n(.*?)```", readme, flags=re.S)
    assert len(examples) >= 3
    loaders = {Manifest.model_validate(tomllib.loads(text)).model.loader for text in examples}
    assert loaders == {"sklearn", "onnx", "python"}
