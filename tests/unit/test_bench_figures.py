"""The bench's targeted figures: what a row reports from its rounds."""

from typing import Any

from loadtest.bench_batching import MEASUREMENTS, _combined, figures


def _round(p50_ms: float) -> dict[str, Any]:
    return {
        "ok": 100,
        "other": 0,
        "errors": 0,
        "seconds": 2.0,
        "cpu_s": 0.01,
        "redis_cpu_s": 0.01,
        "p50_ms": p50_ms,
        "p99_ms": 2 * p50_ms,
    }


def test_p50_deltas_pair_each_round_so_drift_between_rounds_cancels() -> None:
    # One run's rounds of `digits` /predict at 1 user (the VM's speed drifting between
    # rounds): the difference of the medians is 8.9 - 11.7 = -2.8 ms, while the rounds'
    # own differences, each between two runs seconds apart, have a median of +0.3 ms.
    on = [8.8, 11.6, 14.0, 8.9, 8.8]
    off = [11.7, 12.0, 13.0, 8.0, 8.5]
    rounds: dict[str, list[dict[str, Any]]] = {}
    for name, *_ in MEASUREMENTS:
        for label in ("on", "off"):
            rounds[f"{name}_{label}"] = [_round(10.0) for _ in range(5)]
    rounds["digits_direct_c1_on"] = [_round(p) for p in on]
    rounds["digits_direct_c1_off"] = [_round(p) for p in off]
    runs = {key: _combined(rows) for key, rows in rounds.items()}

    result = figures(runs)

    assert result["single_user_p50_delta_direct_ms"] == 0.3
    assert result["single_user_p50_delta_queued_ms"] == 0.0
    assert (runs["digits_direct_c1_on"]["p50_ms"], runs["digits_direct_c1_off"]["p50_ms"]) == (
        8.9,
        11.7,
    )
