"""The batching policy: how big a batch to take and when holding one for more pays."""

import pytest

from core import batching
from core.batching import ArrivalRate, BatchPolicy, CostFit, batch_limits


def _fitted(a_s: float, b_s: float, sizes: tuple[int, ...] = (1, 2, 4, 8, 16)) -> BatchPolicy:
    policy = BatchPolicy(max_size=64, max_wait_s=0.005)
    for size in sizes:
        policy.observe(size, a_s * size + b_s)
    return policy


def test_the_cost_fit_recovers_a_line() -> None:
    fit = CostFit()
    for size in (1, 3, 9, 27):
        fit.observe(size, 0.002 * size + 0.010)
    a, b = fit.coefficients()
    assert a == pytest.approx(0.002) and b == pytest.approx(0.010)


def test_a_model_whose_call_costs_the_same_for_any_size_batches_to_the_cap() -> None:
    # digits: about 10 ms a call whatever the size.
    assert _fitted(a_s=0.00003, b_s=0.010).target == 64


def test_a_model_whose_cost_is_all_per_input_is_not_batched() -> None:
    # burn: 500 ms per input, nothing fixed; a batch would only multiply latency.
    assert _fitted(a_s=0.5, b_s=0.0).target == 1


def test_latency_bound_caps_a_batch_at_about_two_single_calls() -> None:
    policy = _fitted(a_s=0.001, b_s=0.004)
    a, b = 0.001, 0.004
    assert policy.cost.seconds(policy.target) <= 2 * (a + b) + 1e-9
    assert policy.target > 1


def test_before_sizes_vary_the_policy_explores_upwards() -> None:
    policy = BatchPolicy(max_size=64, max_wait_s=0)
    assert policy.target == 2
    policy.observe(1, 0.01)
    assert policy.target == 2  # one size seen: a and b are not separable yet
    policy.observe(2, 0.02)
    assert policy.target == 1  # cost doubled with the size: nothing to gain


def _settle_under_load(policy: BatchPolicy, batches: int) -> int:
    """Dispatch full batches of `target` inputs of digits (10 ms + 0.05 ms per input)."""
    for _ in range(batches):
        size = policy.target
        policy.observe(size, 0.010 + 0.00005 * size)
    return policy.target


def test_a_fit_spoiled_by_noise_is_probed_back_to_large_batches() -> None:
    # The first two calls on a busy machine: the second took 2.5 times the first, which
    # reads as "all cost is per input", so batches of one.
    noisy = BatchPolicy(max_size=64, max_wait_s=0.005)
    noisy.observe(1, 0.010)
    noisy.observe(2, 0.025)
    assert noisy.target == 1
    assert _settle_under_load(noisy, 200) == 64
    # Without probing, batches of one only pin the fit's height, never its slope.
    stuck = BatchPolicy(max_size=64, max_wait_s=0.005, probe_every=10**9)
    stuck.observe(1, 0.010)
    stuck.observe(2, 0.025)
    assert _settle_under_load(stuck, 200) == 1


def test_a_model_whose_cost_is_all_per_input_is_probed_ever_more_rarely() -> None:
    policy = _fitted(a_s=0.5, b_s=0.0)
    sizes = []
    for _ in range(1000):
        sizes.append(policy.target)
        policy.observe(sizes[-1], 0.5 * sizes[-1])
    assert set(sizes) == {1, 2}
    assert sizes[500:].count(2) <= 500 // batching.PROBE_MOST + 1


def test_max_size_one_turns_batching_off() -> None:
    policy = BatchPolicy(max_size=1, max_wait_s=0.1)
    policy.observe(1, 0.01)
    assert policy.target == 1
    assert policy.wait_s(1, arrivals_per_s=10_000, others_idle=False) == 0


def test_waiting_pays_only_when_more_inputs_are_due_and_no_process_is_idle() -> None:
    policy = _fitted(a_s=0.00003, b_s=0.010)
    busy = {"others_idle": False}
    assert policy.wait_s(4, arrivals_per_s=0, **busy) == 0  # idle service: answer now
    assert policy.wait_s(4, arrivals_per_s=2_000, others_idle=True) == 0  # lone client
    assert policy.wait_s(4, arrivals_per_s=50, **busy) == 0  # none due within 5 ms
    held = policy.wait_s(4, arrivals_per_s=2_000, **busy)
    assert 0 < held <= 0.005
    assert policy.wait_s(64, arrivals_per_s=2_000, **busy) == 0  # already full


def test_arrival_rate_follows_a_running_count() -> None:
    rate = ArrivalRate(half_life_s=0.5)
    for tick in range(100):
        rate.update(count=tick * 10, now=tick * 0.1)  # 100 per second
    assert rate.rate == pytest.approx(100, rel=0.05)


@pytest.mark.parametrize(
    ("batchable", "cap_size", "cap_wait", "expected"),
    [
        (False, None, None, (1, 0.0)),
        (True, None, None, (32, 0.004)),
        (True, 1, None, (1, 0.0)),
        (True, 8, 10.0, (8, 0.010)),
        (True, 100, None, (32, 0.004)),
    ],
)
def test_settings_cap_the_models_own_limits(
    batchable: bool, cap_size: int | None, cap_wait: float | None, expected: tuple[int, float]
) -> None:
    assert batch_limits(batchable, 32, 4.0, cap_size, cap_wait) == expected
