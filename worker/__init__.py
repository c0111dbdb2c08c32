"""The huey side of inferq. `huey_consumer worker.huey` finds the instance here."""

from worker.app import huey
from worker.tasks import run_batch

__all__ = ["huey", "run_batch"]
