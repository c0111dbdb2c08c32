"""deploy/: the Prometheus alerts (unit-tested with promtool) and the Grafana dashboard."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

import api.metrics
import worker.metrics
from api.overview import QueueState
from api.routes.metrics import _Snapshot
from core.jobs import Priority
from scripts.stack import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool tests did not run: no promtool on PATH (apt-get install prometheus)",
)
SERIES = re.compile(r"\b(inferq_[a-z_]+)")


def _promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / "inferq.json").read_text())
    return data


def _dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in _dashboard()["panels"] for target in panel["targets"]]


def _rule_exprs() -> list[str]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def _exported_series() -> set[str]:
    """Every series name inferq exports: its metric objects, and the scrape-time gauges."""
    names: set[str] = set()
    for module in (worker.metrics, api.metrics):
        for metric in vars(module).values():
            if isinstance(metric, MetricWrapperBase):
                kind, name = metric._type, metric._name  # no public accessor
                suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
                names |= {name + suffix for suffix in suffixes.get(kind, [""])}
    snapshot = _Snapshot([QueueState("m@1", Priority.LOW, 1, 2.0)], 1)
    names |= {family.name for family in snapshot.collect()}
    return names


@needs_promtool
def test_the_alert_rules_pass_their_promtool_unit_tests() -> None:
    _promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in _promtool("test", "rules", "alerts_test.yml")


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    rules = [
        {"record": f"inferq:dashboard_check:{n}", "expr": expr}
        for n, expr in enumerate(_dashboard_exprs())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    _promtool("check", "rules", str(path))


def test_every_alert_has_a_test_and_the_series_it_needs_exist() -> None:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for t in tests for case in t["alert_rule_test"]}
    assert alerts == tested
    assert {
        "InferqBacklogGrowing",
        "InferqOldestJobTooOld",
        "InferqNoConsumers",
        "InferqHighFailureRatio",
        "InferqLatencyP99High",
        "InferqHighRefusalRate",
    } <= alerts
    used = {name for expr in _rule_exprs() + _dashboard_exprs() for name in SERIES.findall(expr)}
    assert used <= _exported_series(), f"series nobody exports: {used - _exported_series()}"


def test_the_dashboard_uses_the_provisioned_datasource_and_shows_what_operators_need() -> None:
    source = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    dashboard = _dashboard()
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"]["uid"] == uid and panel["targets"], panel["title"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
    exprs = " ".join(_dashboard_exprs())
    for series in (
        "inferq_queue_depth",
        "inferq_queue_oldest_age_seconds",
        "inferq_consumers_live",
        "inferq_jobs_finished_total",
        "inferq_job_latency_seconds_bucket",
        "inferq_jobs_rejected_total",
        "inferq_cache_hits_total",
        "inferq_batch_size_sum",
    ):
        assert series in exprs, series
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/inferq.yml").read_text())
    mount = "./deploy/grafana/inferq.json:" + provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert any(v.startswith(mount) for v in compose["grafana"]["volumes"])
    assert compose["prometheus"]["profiles"] == compose["grafana"]["profiles"] == ["monitoring"]
