"""The model registry a process serves, built from settings."""

from __future__ import annotations

from config import Settings
from core.models import ModelRegistry
from core.models.burn import BurnModel


def build_models(
    paths: list[str], burn_iterations_per_ms: int = 0, repository: str | None = None
) -> ModelRegistry:
    """Built-in, user and repository models; constructing them loads no artifact."""
    registry = ModelRegistry.from_paths(paths, repository)
    for model in registry:
        if isinstance(model, BurnModel) and burn_iterations_per_ms:
            model.iterations_per_ms = burn_iterations_per_ms
    return registry


def configured_models(settings: Settings) -> ModelRegistry:
    return build_models(settings.models, settings.burn_iterations_per_ms, settings.model_dir)
