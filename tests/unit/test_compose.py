"""docker-compose.yml cannot run here (no Docker engine), so check it statically."""

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

from scripts.stack import ROOT

COMPOSE = ROOT / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_compose_matches_the_compose_spec_schema() -> None:
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert checker, "check-jsonschema is a dev dependency"
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cross_references_resolve() -> None:
    compose = _compose()
    services, volumes = compose["services"], set(compose.get("volumes", {}))
    for name, service in services.items():
        for target in service.get("depends_on", {}):
            assert target in services, f"{name} depends on unknown {target}"
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert source in volumes or source.startswith((".", "/")), f"{name}: {source}"
    assert (ROOT / services["api"]["build"]["context"]).joinpath("Dockerfile").exists()


def test_locust_services_name_user_classes_the_locustfile_has() -> None:
    tree = ast.parse((ROOT / "loadtest" / "locustfile.py").read_text())
    classes = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    for name in ("locust-master", "locust"):
        named = [arg for arg in _compose()["services"][name]["command"] if arg.endswith("User")]
        assert named and set(named) <= classes, f"{name}: {named}"


def test_services_follow_the_operational_contract() -> None:
    services = _compose()["services"]
    assert {"redis", "api", "worker", "locust"} <= set(services)
    worker = services["worker"]
    assert worker["command"][:2] == ["huey_consumer", "worker.huey"]
    assert worker["stop_signal"] == "SIGINT" and worker["stop_grace_period"]
    assert "ports" not in worker and "container_name" not in worker  # --scale worker=N works
    assert services["locust"]["profiles"] == ["loadtest"]
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "noeviction" in redis_cmd
    assert "healthcheck" in services["redis"]
    assert services["api"]["command"][:2] == ["uvicorn", "api.main:app"]


def test_dockerfile_copies_every_package_before_installing() -> None:
    """`pip install .` fails on a package pyproject names but the image has not copied yet."""
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    install = next(i for i, line in enumerate(lines) if "pip install" in line and " . " in line)
    copied = {line.split()[1] for line in lines[:install] if line.startswith("COPY ")}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {name.split(".")[0] for name in pyproject["tool"]["setuptools"]["packages"]}
    assert packages <= copied, f"copied after (or never before) pip install: {packages - copied}"


def test_the_image_lock_has_every_pin_of_pyproject() -> None:
    """The image installs deploy/requirements.lock: it must not drift from pyproject.toml."""
    lock = {}
    for line in (ROOT / "deploy" / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            lock[_normal(name)] = version
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for requirement in pyproject["project"]["dependencies"]:
        name, _, version = requirement.partition("==")
        name = _normal(name.split("[")[0])
        assert lock.get(name) == version, f"{requirement}: the lock has {lock.get(name)}"


def _normal(name: str) -> str:
    return name.strip().lower().replace("_", "-")
