"""The API and the worker module stay cheap to import: no ML library, no model loaded."""

import os
import subprocess
import sys

from scripts.stack import ROOT

HEAVY = ("sklearn", "numpy", "scipy")


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_importing_the_api_does_not_import_scikit_learn() -> None:
    assert not _modules_after_import("api.main") & set(HEAVY)


def test_importing_the_worker_does_not_import_scikit_learn() -> None:
    assert not _modules_after_import("worker") & set(HEAVY)


def test_task_names_are_pinned_wire_format() -> None:
    from worker import huey

    assert set(huey._registry._registry) == {"inferq.run_batch", "inferq.check_models"}


def test_core_imports_nothing_from_the_outer_layers() -> None:
    sources = "\n".join(p.read_text() for p in (ROOT / "core").rglob("*.py"))
    for layer in ("api", "worker", "config"):
        assert f"from {layer}" not in sources and f"import {layer}" not in sources


def test_importing_builds_nothing_and_changes_no_environment() -> None:
    code = """
import os, pkgutil, importlib, sys
before = dict(os.environ)
import api, worker, core, config
for package in (api, worker, core, config):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
from config.settings import get_settings
from prometheus_client import values
from worker.app import get_huey
assert dict(os.environ) == before, set(os.environ) ^ set(before)
assert get_settings.cache_info().currsize == 0, "settings built at import"
assert get_huey.cache_info().currsize == 0, "huey built at import"
assert values.ValueClass is values.MutexValue, "metrics storage chosen at import"
print("ok")
"""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"]}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.stdout.strip() == "ok", out.stderr
