"""The huey side of inferq. `huey_consumer worker.huey` finds the instance here.

`worker.huey` is built when first asked for (settings read, tasks registered), so
importing `worker` or any of its modules builds and connects nothing.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "huey":
        from worker.app import get_huey

        return get_huey()
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
