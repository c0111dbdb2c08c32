"""Adaptive batching policy, shared by the consumers and the direct path.

The policy answers two questions for one model: how many queued inputs to take into
the next `predict` call (`target`), and whether to hold a partial batch a little
longer for more (`should_wait`). It is BentoML's idea (fit the cost of a call as
`time(n) = a·n + b` from what was measured) with Triton's default (dispatch what is
there at once) and a rule for when waiting pays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from core.models import Model, batch_defaults

# A batch is big enough once its per-input cost is within this share of the best
# possible (the marginal cost `a`): bigger batches only add latency.
EFFICIENCY_SLACK = 0.1
# A batch may cost at most this many single calls, or a single call plus the slack,
# whichever is more: batching never multiplies the latency of the inputs it holds
# (`burn`, whose cost is all per input, stays at 1), and a cheap model may still add
# a few milliseconds to gather dozens of inputs.
LATENCY_FACTOR = 2.0
LATENCY_SLACK_S = 0.005
DECAY = 0.95  # weight of history in the cost fit: about the last 20 batches count
# Probing: a fit is a line through the sizes it has seen; once every batch has the same
# size, new calls only pin its height, never its slope, so a slope misjudged on a busy
# machine (a second call that happened to be slow reads as "all cost is per input")
# would keep batches at that size forever. So after `probe_every` batches the next may be
# twice the fitted size (when that many are waiting). A probe that costs what the fit
# predicts doubles the interval, up to PROBE_MOST (a truly per-input model pays one
# doubled call in 64); one that costs less than predicted starts it over at PROBE_FIRST.
PROBE_FIRST, PROBE_MOST = 2, 64
PROBE_CHEAPER = 0.8  # a probe is news when it costs under this share of the prediction


@dataclass
class CostFit:
    """Exponentially weighted least squares of call time against batch size."""

    s: float = 0.0
    sx: float = 0.0
    sy: float = 0.0
    sxx: float = 0.0
    sxy: float = 0.0

    def observe(self, size: int, seconds: float) -> None:
        """Record one call of `size` inputs that took `seconds`."""
        self.s = self.s * DECAY + 1
        self.sx = self.sx * DECAY + size
        self.sy = self.sy * DECAY + seconds
        self.sxx = self.sxx * DECAY + size * size
        self.sxy = self.sxy * DECAY + size * seconds

    @property
    def is_identified(self) -> bool:
        """True once calls of different sizes have been seen (a and b separate)."""
        return self.s > 0 and self.s * self.sxx - self.sx * self.sx > 1e-9 * self.s * self.s

    def coefficients(self) -> tuple[float, float]:
        """(a, b) of `time(n) = a·n + b`, each at least zero."""
        if not self.is_identified:
            mean = self.sy / self.s if self.s else 0.0
            return 0.0, mean
        det = self.s * self.sxx - self.sx * self.sx
        a = (self.s * self.sxy - self.sx * self.sy) / det
        b = (self.sy - a * self.sx) / self.s
        if a < 0:  # noise: calls of every size cost the same
            return 0.0, self.sy / self.s
        if b < 0:  # noise: no fixed cost
            return self.sxy / self.sxx, 0.0
        return a, b

    def seconds(self, size: int) -> float:
        """Predicted time of a call of `size` inputs."""
        a, b = self.coefficients()
        return a * size + b


@dataclass
class BatchPolicy:
    """How one model is batched in one process; `max_size` 1 turns batching off."""

    max_size: int
    max_wait_s: float
    cost: CostFit = field(default_factory=CostFit)
    largest_seen: int = 0
    since_probe: int = 0  # batches since the last one bigger than the fitted size
    probe_every: int = PROBE_FIRST

    def observe(self, size: int, seconds: float) -> None:
        """Feed back the measured time of a call of `size` inputs."""
        fitted, identified = self._fitted(), self.cost.is_identified
        predicted = self.cost.seconds(size) if identified else 0.0
        self.cost.observe(size, seconds)
        self.largest_seen = max(self.largest_seen, size)
        if not identified:  # exploring is probing
            self.since_probe = 0
            return
        if size <= fitted:
            self.since_probe += 1
            return
        self.since_probe = 0
        if seconds < PROBE_CHEAPER * predicted:
            self.probe_every = PROBE_FIRST
        else:
            self.probe_every = min(PROBE_MOST, 2 * self.probe_every)

    def expected_s(self, size: int) -> float:
        """Measured-cost estimate of a call of `size` inputs; 0 before any call."""
        return self.cost.seconds(size) if self.cost.s else 0.0

    @property
    def is_exploring(self) -> bool:
        """True until calls of two sizes have been seen: the target is a guess so far."""
        return self.max_size > 1 and not self.cost.is_identified

    @property
    def target(self) -> int:
        """How many inputs the next call should take, when that many are waiting."""
        fitted = self._fitted()
        if self.since_probe >= self.probe_every and self.cost.is_identified:
            return min(self.max_size, 2 * fitted)
        return fitted

    def _fitted(self) -> int:
        if self.max_size <= 1:
            return 1
        if not self.cost.is_identified:
            # Explore: double the largest call seen, so a and b become measurable.
            return min(self.max_size, max(2, 2 * self.largest_seen))
        a, b = self.cost.coefficients()
        if a <= 0:
            return self.max_size
        return max(1, min(self.max_size, self._efficient(a, b), self._bounded(a, b)))

    @staticmethod
    def _efficient(a: float, b: float) -> int:
        return math.ceil(b / (EFFICIENCY_SLACK * a))

    @staticmethod
    def _bounded(a: float, b: float) -> int:
        single = a + b
        budget = max(LATENCY_FACTOR * single, single + LATENCY_SLACK_S)
        return math.floor((budget - b) / a)

    def wait_s(
        self, have: int, arrivals_per_s: float, others_idle: bool, others_queued: bool = False
    ) -> float:
        """How long to hold a batch of `have` inputs for more; 0 means dispatch now.

        `arrivals_per_s` counts only arrivals that overlapped other pending work.
        Waiting pays only when more such inputs are expected within the window, and
        only when no other model process is idle (an idle one would take the next
        input at once, so holding this batch would only add latency), and never
        while another model's work is queued. An idle service or a lone client
        therefore never waits.
        """
        missing = self.target - have
        if self.max_wait_s <= 0 or missing <= 0 or others_idle or others_queued:
            return 0.0
        if arrivals_per_s <= 0:
            return 0.0
        if arrivals_per_s * self.max_wait_s < 1:
            return 0.0
        return min(self.max_wait_s, missing / arrivals_per_s)


@dataclass
class ArrivalRate:
    """Arrivals per second, an exponentially weighted estimate from a running count."""

    half_life_s: float = 1.0
    rate: float = 0.0
    _last_count: int | None = None
    _last_at: float = 0.0

    def update(self, count: int, now: float) -> float:
        """Feed the running arrival count seen at `now`; returns the current rate."""
        if self._last_count is None or count < self._last_count:
            self._last_count, self._last_at = count, now
            return self.rate
        elapsed = now - self._last_at
        if elapsed <= 0:
            return self.rate
        sample = (count - self._last_count) / elapsed
        keep = 0.5 ** (elapsed / self.half_life_s)
        self.rate = keep * self.rate + (1 - keep) * sample
        self._last_count, self._last_at = count, now
        return self.rate


def batch_limits(
    batchable: bool,
    model_max_size: int,
    model_max_wait_ms: float,
    cap_size: int | None,
    cap_wait_ms: float | None,
) -> tuple[int, float]:
    """(max size, max wait in seconds) for a model under the deployment's settings.

    A model that is not batchable always gets batches of one; the settings cap the
    size for every model (1 turns batching off) and replace the model's wait.
    """
    if not batchable:
        return 1, 0.0
    size = model_max_size if cap_size is None else min(model_max_size, cap_size)
    wait_ms = model_max_wait_ms if cap_wait_ms is None else cap_wait_ms
    return max(1, size), (max(0.0, wait_ms) / 1000 if size > 1 else 0.0)


def policy_for(model: Model, cap_size: int | None, cap_wait_ms: float | None) -> BatchPolicy:
    """A fresh batching policy for `model` under the deployment's caps."""
    size, wait_ms = batch_defaults(model)
    max_size, max_wait_s = batch_limits(model.batchable, size, wait_ms, cap_size, cap_wait_ms)
    return BatchPolicy(max_size, max_wait_s)
