"""The model repository on disk: `<INFERQ_MODEL_DIR>/<name>/<version>/model.toml`.

A version that cannot be served (a bad manifest, a missing or refused artifact) is kept
out, with its reason, and never stops the others.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationError

from core.errors import ModelLoadError
from core.models.loaders import REFERENCE, OnnxModel, SklearnModel
from core.models.manifest import Manifest
from core.models.schema import ManifestError, json_schema_input, pydantic_input

if TYPE_CHECKING:
    from core.models import Model

log = logging.getLogger(__name__)
MANIFEST = "model.toml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class Scan:
    models: list[Model] = field(default_factory=list)
    current: dict[str, str] = field(default_factory=dict)  # name -> version flagged current
    problems: dict[str, str] = field(default_factory=dict)  # name@version -> why not served


def scan_repository(root: Path) -> Scan:
    """Every servable version under `root`, which versions are flagged current, and problems."""
    scan = Scan()
    if not root.is_dir():
        scan.problems[str(root)] = f"{root}: INFERQ_MODEL_DIR is not a directory"
        return scan
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for version_dir in sorted(p for p in model_dir.iterdir() if p.is_dir()):
            spec = f"{model_dir.name}@{version_dir.name}"
            try:
                model, is_current = build_version(model_dir.name, version_dir.name, version_dir)
            except ManifestError as exc:
                scan.problems[spec] = str(exc)
                log.error("model %s is not served: %s", spec, exc)
                continue
            scan.models.append(model)
            if is_current:
                scan.current[model_dir.name] = version_dir.name
    return scan


def fingerprint(root: Path) -> str:
    """What a reload compares: every file's path, size and modification time (stat only)."""
    if not root.is_dir():
        return ""
    entries = sorted(
        f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}"
        for path in root.rglob("*")
        if path.is_file() and (stat := path.stat())
    )
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def build_version(name: str, version: str, directory: Path) -> tuple[Model, bool]:
    """The model one version directory describes (not loaded), and whether it is current."""
    path = directory / MANIFEST
    for part in (name, version):
        if not _NAME.match(part):
            raise ManifestError(f"{directory}: {part!r} is not a valid model name or version")
    try:
        manifest = Manifest.model_validate(tomllib.loads(path.read_text()))
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(manifest)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ManifestError(f"{path}: {problems}") from None
    spec = manifest.model
    if spec.loader == "python":
        model = _python_model(name, version, spec.class_path or "", path)
        model.reference_path = directory / REFERENCE  # type: ignore[attr-defined]
        model.check_limits = (manifest.check.min_accuracy, manifest.check.max_distance)  # type: ignore[attr-defined]
        return model, spec.current
    artifact = directory / (spec.artifact or "")
    if not artifact.is_file():
        raise ManifestError(f"{path}: artifact {artifact.name!r} not found")
    schema = _input_schema(name, manifest, path)
    loader = SklearnModel if spec.loader == "sklearn" else OnnxModel
    model = loader(name, version, manifest, directory, schema)
    model.check()  # a refused or unreadable artifact is a problem now, in every process
    return model, spec.current


def _input_schema(name: str, manifest: Manifest, path: Path) -> type[BaseModel]:
    section = manifest.input
    try:
        if section.json_schema is not None:
            return json_schema_input(name.capitalize(), section.json_schema)
        return pydantic_input(section.pydantic or "")
    except ManifestError as exc:
        raise ManifestError(f"{path}: {exc}") from None


def _python_model(name: str, version: str, class_path: str, path: Path) -> Model:
    from core.models import import_model

    try:
        model = import_model(class_path)
    except ModelLoadError as exc:
        raise ManifestError(f"{path}: {exc.message}") from None
    # The repository names the version: the directory, not the class, says which it is.
    model.name, model.version = name, version
    return model
