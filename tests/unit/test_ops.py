"""The Prometheus alert rules and the Grafana dashboard: valid, tested, and about real metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics_core import Metric

from appliance.observability.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "tel3sis.json"
_NAME = re.compile(r"\btel3sis_[a-z0-9_]+")
_SAMPLES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    program = shutil.which("promtool")
    if program is None:
        pytest.fail("promtool is missing: ./install.sh --dev (Debian's prometheus package)")
    return subprocess.run(
        [program, *args], capture_output=True, text=True, timeout=120, check=False, cwd=RULES.parent
    )


def _sample_names() -> set[str]:
    """Every sample name /metrics can show, from the registry's own metric families."""
    families: list[Metric] = list(Metrics().registry.collect())
    return {f.name + suffix for f in families for suffix in _SAMPLES[f.type]}


def _expressions(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for value in node.values() for e in _expressions(value)]
    if isinstance(node, list):
        return [e for item in node for e in _expressions(item)]
    return []


@pytest.mark.tools
def test_the_alert_rules_pass_promtool() -> None:
    checked = _promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 3 rules found" in checked.stdout


@pytest.mark.tools
def test_each_alert_fires_on_its_sample_series_and_not_before() -> None:
    tested = _promtool("test", "rules", "alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.tools
def test_the_example_prometheus_config_is_valid() -> None:
    checked = _promtool("check", "config", "prometheus.example.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_metric_the_rules_and_the_dashboard_use_exists() -> None:
    rules = yaml.safe_load(RULES.read_text())
    used = {
        name
        for expr in _expressions(rules) + _expressions(json.loads(DASHBOARD.read_text()))
        for name in _NAME.findall(expr)
    }
    assert len(used) >= 15
    assert used - _sample_names() == set()
    # Each alert the issue asks for is there, on the metric that carries it.
    alerts = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}
    assert "tel3sis_stage_seconds_sum" in alerts["Tel3sisStageSlow"]
    assert 'tel3sis_health{part="sip"}' in alerts["Tel3sisSipRegistrationLost"]
    assert "tel3sis_disk_used_ratio > 0.9" in alerts["Tel3sisDiskAlmostFull"]


@pytest.mark.tools
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = _expressions(dashboard)
    assert len(exprs) >= 20
    # promtool parses PromQL in rule files: each query becomes a recording rule, with Grafana's
    # variables given the values Grafana would substitute.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {
                        "record": f"tel3sis:panel_{i}",
                        "expr": e.replace("$__rate_interval", "1m").replace("$instance", ".*"),
                    }
                    for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    checked = _promtool("check", "rules", str(tmp_path / "dashboard.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_dashboard_is_importable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "tel3sis" and dashboard["title"] == "TEL3SIS"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert all(p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
               for p in panels if p["type"] != "row")  # fmt: skip
    assert dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"
    # Panels do not overlap on Grafana's 24-column grid.
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, p["title"]
        assert g["x"] + g["w"] <= 24
        cells |= mine
