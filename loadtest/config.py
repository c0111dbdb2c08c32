"""Load-test knobs, passed from the runner to locust through INFERQ_LT_* variables."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Literal

Mode = Literal["closed", "open"]


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


@dataclass
class LoadConfig:
    mode: Mode = "closed"
    users: list[int] = field(default_factory=lambda: [1, 2, 5, 10, 20, 50])
    rates: list[float] = field(default_factory=lambda: [10, 25, 50, 100, 150])
    step_s: float = 20.0
    timeout_s: float = 2.0
    seed: int = 1
    cached_share: float = 0.0
    model: str = "burn"
    work_ms: int = 20
    work_sigma: float = 0.5
    record: str = "requests.csv"
    # Closed-loop users wait out a 503's Retry-After before their next request, as a
    # well-behaved client does; False makes them retry at once (a retry storm).
    honor_retry_after: bool = True

    @property
    def levels(self) -> list[float]:
        """Users per step (closed loop) or arrivals per second per step (open loop)."""
        return [float(u) for u in self.users] if self.mode == "closed" else self.rates

    @property
    def duration_s(self) -> float:
        return self.step_s * len(self.levels)

    def to_env(self) -> dict[str, str]:
        env = {}
        for name, value in asdict(self).items():
            text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
            env[f"INFERQ_LT_{name.upper()}"] = text
        return env

    @classmethod
    def from_env(cls) -> LoadConfig:
        get = os.environ.get
        base = cls()
        return cls(
            mode="open" if get("INFERQ_LT_MODE") == "open" else "closed",
            users=_ints(get("INFERQ_LT_USERS", "")) or base.users,
            rates=_floats(get("INFERQ_LT_RATES", "")) or base.rates,
            step_s=float(get("INFERQ_LT_STEP_S", base.step_s)),
            timeout_s=float(get("INFERQ_LT_TIMEOUT_S", base.timeout_s)),
            seed=int(get("INFERQ_LT_SEED", base.seed)),
            cached_share=float(get("INFERQ_LT_CACHED_SHARE", base.cached_share)),
            model=get("INFERQ_LT_MODEL", base.model),
            work_ms=int(get("INFERQ_LT_WORK_MS", base.work_ms)),
            work_sigma=float(get("INFERQ_LT_WORK_SIGMA", base.work_sigma)),
            record=get("INFERQ_LT_RECORD", base.record),
            honor_retry_after=get("INFERQ_LT_HONOR_RETRY_AFTER", "True") == "True",
        )
