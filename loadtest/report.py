"""Per-step numbers from the request records, written as summary.md, summary.json and charts."""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from loadtest.config import LoadConfig
from loadtest.outcomes import OUTCOMES

HEADER = (
    "req/s sent | goodput req/s | p50 ms | p95 ms | p99 ms "
    "| error % | timeout % | refused % | expired %"
)


@dataclass
class StepResult:
    architecture: str
    step: int
    level: float
    requests: int
    offered_rps: float
    goodput_rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    error_pct: float
    timeout_pct: float
    refused_pct: float
    expired_pct: float


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None without values."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
        if q < 100
        else max(values)
    )


def summarize(architecture: str, records: Path, cfg: LoadConfig) -> list[StepResult]:
    """One row per step: goodput, latency percentiles of successes, outcome shares."""
    by_step: dict[int, list[tuple[str, float]]] = defaultdict(list)
    with records.open() as handle:
        for row in csv.DictReader(handle):
            by_step[int(row["step"])].append((row["outcome"], float(row["latency_ms"])))
    return [
        _step_result(architecture, step, level, by_step.get(step, []), cfg.step_s)
        for step, level in enumerate(cfg.levels)
    ]


def _step_result(
    architecture: str, step: int, level: float, rows: list[tuple[str, float]], step_s: float
) -> StepResult:
    total = len(rows)
    counts = {outcome: sum(1 for o, _ in rows if o == outcome) for outcome in OUTCOMES}
    ok = sorted(latency for outcome, latency in rows if outcome == "ok")

    def pct(outcome: str) -> float:
        return round(100 * counts[outcome] / total, 2) if total else 0.0

    def ms(q: float) -> float | None:
        value = percentile(ok, q)
        return None if value is None else round(value, 1)

    return StepResult(
        architecture,
        step,
        level,
        total,
        round(total / step_s, 2),
        round(len(ok) / step_s, 2),
        ms(50),
        ms(95),
        ms(99),
        pct("error"),
        pct("timeout"),
        pct("refused"),
        pct("expired"),
    )


def write_summary(
    out: Path, results: list[StepResult], cfg: LoadConfig, labels: dict[str, str]
) -> None:
    (out / "summary.json").write_text(
        json.dumps(
            {"config": asdict(cfg), "architectures": labels, "steps": [asdict(r) for r in results]},
            indent=2,
        )
    )
    level = "users" if cfg.mode == "closed" else "target req/s"
    lines = [
        f"# inferq load test ({cfg.mode} loop, {cfg.step_s:g} s per step, "
        f"client timeout {cfg.timeout_s:g} s, model {cfg.model} ~{cfg.work_ms} ms)",
        "",
    ]
    for name, label in labels.items():
        lines += [f"## {name}: {label}", "", f"| {level} | {HEADER} |", "|---:" * 10 + "|"]
        for r in (r for r in results if r.architecture == name):
            cells = [
                f"{r.level:g}",
                f"{r.offered_rps:g}",
                f"{r.goodput_rps:g}",
                *(("-" if v is None else f"{v:g}") for v in (r.p50_ms, r.p95_ms, r.p99_ms)),
                f"{r.error_pct:g}",
                f"{r.timeout_pct:g}",
                f"{r.refused_pct:g}",
                f"{r.expired_pct:g}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    (out / "summary.md").write_text("\n".join(lines))


def write_charts(
    out: Path, results: list[StepResult], cfg: LoadConfig, labels: dict[str, str]
) -> list[Path]:
    """latency.png, throughput.png, failures.png: one line per architecture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    xlabel = (
        "concurrent users (closed loop)"
        if cfg.mode == "closed"
        else "offered load (req/s, open loop)"
    )
    series = {name: [r for r in results if r.architecture == name] for name in labels}
    paths = []

    def chart(name: str, title: str, panels: list[tuple[str, str, str]]) -> None:
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
        for ax, (field, subtitle, ylabel) in zip(axes[0], panels, strict=True):
            for arch, rows in series.items():
                points = [
                    (r.level, getattr(r, field)) for r in rows if getattr(r, field) is not None
                ]
                if points:
                    ax.plot(*zip(*points, strict=True), marker="o", label=arch)
            ax.set_title(subtitle)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_xscale("log")
            ax.set_xticks(cfg.levels)
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.minorticks_off()
            ax.grid(True, alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
        fig.suptitle(title)
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    chart(
        "latency",
        "Latency of successful requests",
        [("p50_ms", "p50", "ms"), ("p95_ms", "p95", "ms"), ("p99_ms", "p99", "ms")],
    )
    chart(
        "throughput",
        "Goodput: successful requests per second",
        [("goodput_rps", "goodput", "req/s")],
    )
    chart(
        "failures",
        "Requests that did not succeed",
        [
            ("timeout_pct", "client timeouts", "% of requests"),
            ("refused_pct", "refused at once (503)", "% of requests"),
            ("expired_pct", "expired (deadline passed in queue)", "% of requests"),
        ],
    )
    return paths
