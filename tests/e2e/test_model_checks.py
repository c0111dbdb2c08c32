"""Reference checks in a running deployment: results in /models, metrics and logs, and a
version that fails its check never becomes current by being the highest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.artifacts import FEATURES, LABELS
from tests.support.stack import RedisServer, running_stack, wait_for


@pytest.fixture
def built(model_repository: Path) -> Path:
    return model_repository


def _write_reference(path: Path, shift: int) -> None:
    """Every fifth iris flower, labelled right (shift 0) or wrongly (shift 1)."""
    from sklearn.datasets import load_iris

    data = load_iris()
    lines = [
        json.dumps(
            {
                "input": dict(zip(FEATURES, row.tolist(), strict=True)),
                "expected": LABELS[(target + shift) % 3],
            }
        )
        for n, (row, target) in enumerate(zip(data.data, data.target, strict=True))
        if n % 5 == 4
    ]
    path.write_text("\n".join(lines) + "\n")


def test_checks_report_and_hold_back_a_version_that_fails(
    redis_server: RedisServer, workdir: Path, built: Path
) -> None:
    repository = workdir / "models"
    shutil.copytree(built, repository)
    _write_reference(repository / "flowers" / "1" / "reference.jsonl", shift=0)
    _write_reference(repository / "flowers" / "2" / "reference.jsonl", shift=1)
    with running_stack(redis_server, workdir, INFERQ_MODEL_DIR=str(repository)) as live:
        with live.client() as client:

            def checked() -> dict[str, Any]:
                models = client.get("/models").json()
                return {f"{m['name']}@{m['version']}": m for m in models if m["check"]}

            wanted = {"flowers@1", "flowers@2", "iris@2", "digits@1"}
            wait_for(lambda: wanted <= set(checked()), what="the first checks of each version")
            wait_for(
                lambda: (
                    client.post(
                        "/jobs?wait=true",
                        json={"model": "flowers", "input": {name: 5.0 for name in FEATURES}},
                    ).json()["model_version"]
                    == "1"
                ),
                what="flowers@1 current once flowers@2 failed its check",
            )
            models = checked()
            scrape = client.get("/metrics").text
    good, bad = models["flowers@1"], models["flowers@2"]
    assert good["check"]["passed"] and good["ready_for_promotion"] and good["current"]
    assert good["check"]["samples"] == 30 and good["check"]["accuracy"] >= 0.9
    assert not bad["check"]["passed"] and not bad["ready_for_promotion"] and not bad["current"]
    assert bad["check"]["accuracy"] < 0.1 and "accuracy" in bad["check"]["reason"]
    for builtin in ("iris@2", "digits@1"):
        assert models[builtin]["check"]["passed"] and models[builtin]["current"]
    assert 'inferq_model_check_passed{model="flowers",version="2"} 0.0' in scrape
    assert 'inferq_model_check_passed{model="flowers",version="1"} 1.0' in scrape
    assert "inferq_model_check_accuracy{" in scrape and "inferq_model_check_distance{" in scrape
    logs = "\n".join(p.read_text() for p in (workdir / "logs").glob("*.log"))
    assert "model check of flowers@2 failed" in logs
    assert logs.count("model check of flowers@2") == 1  # two worker processes, one check
