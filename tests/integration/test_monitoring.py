"""The chart's alert rules and dashboards against real Prometheus and promtool: the rules pass
promtool's checks and unit tests, every dashboard query parses, and the operator's panels (and
the Ray panels fed by the operator) return data from a real Prometheus that scraped the real
operator reconciling a RayCluster on simulated nodes."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from monitoring import RULE_FILES, alert_names, plain, prometheus, static_job

from arenastack_cluster.cluster import CHART_DIR, REPO_ROOT, toolchain_bin
from arenastack_dashboards import common
from arenastack_dashboards.__main__ import rendered

pytestmark = pytest.mark.integration

RULE_TESTS = sorted((REPO_ROOT / "tests" / "unit" / "promtool").glob("*.rules.test.yaml"))
DASHBOARDS = rendered()
# Series that only real workloads export (Ray's nodes, vLLM's engines and router, the arena):
# the end-to-end tier checks the panels over them.
NOT_FROM_THE_OPERATOR = re.compile(r"\b(ray_(node|object_store)|vllm[:_]|arena_)")


@pytest.fixture(scope="module")
def promtool() -> str:
    return str(toolchain_bin(build=True, part="monitoring") / "promtool")


def test_every_area_has_rules_and_rule_tests() -> None:
    areas = {p.name.removesuffix(".rules.yaml") for p in RULE_FILES}
    assert areas == {"operator", "serving", "ray", "arena"}
    assert {p.name.removesuffix(".rules.test.yaml") for p in RULE_TESTS} == areas


def test_rules_pass_promtool_check(promtool):
    proc = subprocess.run(
        [promtool, "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(RULE_FILES)


@pytest.mark.parametrize("tests", RULE_TESTS, ids=lambda p: p.name)
def test_rules_unit_tests(promtool, tests: Path):
    """Each alert fires on the series that should fire it and not on those beside them."""
    proc = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tested = set(re.findall(r"alertname: (\w+)", tests.read_text()))
    assert tested == alert_names(CHART_DIR / "rules" / tests.name.replace(".test.yaml", ".yaml"))


def test_every_dashboard_query_parses(promtool, tmp_path):
    """promtool parses each query as the expression of a recording rule."""
    rules = [
        {"record": f"panel:{name}:{i}", "expr": plain(expr)}
        for name, model in DASHBOARDS.items()
        for i, (_, expr) in enumerate(common.queries(model))
    ]
    path = tmp_path / "panels.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _rendered_chart(cluster, *args: str) -> list[dict]:
    out = cluster.helm("template", "r", str(CHART_DIR), *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_chart_wraps_the_same_rules(cluster):
    docs = _rendered_chart(cluster, "--set", "metrics.prometheusRule.enabled=true")
    rules = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "PrometheusRule"}
    assert rules == {
        f"r-arenastack-{p.name.removesuffix('.rules.yaml')}": yaml.safe_load(p.read_text())
        for p in RULE_FILES
    }


def test_chart_ships_each_dashboard_for_the_sidecar_under_the_chosen_label(cluster):
    docs = _rendered_chart(
        cluster, "--set", "metrics.grafanaDashboards.label=dashboards.example.com/grafana",
        "--set", "metrics.grafanaDashboards.labelValue=yes",
    )  # fmt: skip
    maps = [d for d in docs if d["kind"] == "ConfigMap" and "-dashboard-" in d["metadata"]["name"]]
    assert len(maps) == len(DASHBOARDS)
    for config_map in maps:
        assert config_map["metadata"]["labels"]["dashboards.example.com/grafana"] == "yes"
        ((key, text),) = config_map["data"].items()
        name = key.removeprefix("arenastack-").removesuffix(".json")
        assert json.loads(text) == DASHBOARDS[name]


def test_chart_monitors_every_component_when_asked(cluster):
    docs = _rendered_chart(
        cluster, "--set", "metrics.serviceMonitor.enabled=true", "--set", "arena.enabled=true",
        "--set", "metrics.podMonitors.engines=true", "--set", "metrics.podMonitors.routers=true",
        "--set", "metrics.podMonitors.ray=true",
    )  # fmt: skip
    monitors = {d["metadata"]["name"]: d for d in docs if d["kind"].endswith("Monitor")}
    assert set(monitors) == {
        "r-arenastack-operator", "r-arenastack-arena",
        "r-arenastack-engines", "r-arenastack-routers", "r-arenastack-ray",
    }  # fmt: skip
    assert monitors["r-arenastack-operator"]["spec"]["endpoints"][0]["honorLabels"] is True
    ray = monitors["r-arenastack-ray"]["spec"]
    assert ray["namespaceSelector"] == {"any": True}
    targets = {r["targetLabel"] for r in ray["podMetricsEndpoints"][0]["relabelings"]}
    assert {"raycluster", "group"} <= targets
    engines = monitors["r-arenastack-engines"]["spec"]["podMetricsEndpoints"][0]
    assert "inferencedeployment" in {r["targetLabel"] for r in engines["relabelings"]}
    assert not [d for d in _rendered_chart(cluster) if d["kind"] == "PodMonitor"]


def test_operator_panels_return_data_from_real_scrapes(
    tmp_path, operator_runner, crds, namespace, cluster, promtool
):
    op = operator_runner.start()
    op.wait_role("leader")
    # A RayCluster on simulated nodes: reconciles, apiserver calls and per-group pod series.
    cluster.kubectl(
        "apply", "-n", namespace,
        "-f", str(REPO_ROOT / "operator" / "examples" / "raycluster-sample.yaml"),
    )  # fmt: skip
    # As the chart's ServiceMonitor: the objects' namespaces, not the operator's.
    job = static_job(
        "arenastack-operator", {f"127.0.0.1:{op.metrics_port}": {"pod": op.identity}}, True
    )
    with prometheus(tmp_path, [job]) as prom:
        prom.wait_for(
            "the RayCluster's pods scraped by Prometheus",
            f'arenastack_operator_raycluster_pods{{namespace="{namespace}"}}',
            60,
        )
        time.sleep(20)  # enough scrapes for rate() over its window
        empty = prom.empty_panels(DASHBOARDS["operator"])
        empty += prom.empty_panels(DASHBOARDS["ray"], skip=NOT_FROM_THE_OPERATOR)
        assert not empty, "panels without data:\n" + "\n".join(empty)
        for name in ("operator", "ray"):
            for variable, query in common.variable_queries(DASHBOARDS[name]):
                assert prom.label_values(query), f"{name}: ${variable} ({query}) has no values"
        namespaces = common.variable_queries(DASHBOARDS["ray"])[0][1]
        assert namespace in prom.label_values(namespaces)
        assert float(prom.query("sum(arenastack_operator_leader)")[0]["value"][1]) == 1.0
        health = prom.rule_health()
        assert set(health) == set().union(*map(alert_names, RULE_FILES))
        assert set(health.values()) == {"ok"}, health
    # What Prometheus scraped follows its naming and type conventions.
    with urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert "arenastack_operator_raycluster_pods{" in text
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
