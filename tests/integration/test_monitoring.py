"""The chart's alert rules and dashboards against real Prometheus and promtool: the rules pass
promtool's checks and unit tests, every dashboard query parses, and the operator's panels (and
the Ray panels fed by the operator) return data from a real Prometheus that scraped the real
operator reconciling a RayCluster on simulated nodes."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from arenastack_cluster.cluster import CHART_DIR, REPO_ROOT, toolchain_bin
from arenastack_cluster.processes import Process, free_port, wait_for
from arenastack_dashboards import common
from arenastack_dashboards.__main__ import rendered

pytestmark = pytest.mark.integration

RULE_FILES = sorted((CHART_DIR / "rules").glob("*.rules.yaml"))
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
    rules = CHART_DIR / "rules" / tests.name.replace(".rules.test.yaml", ".rules.yaml")
    assert tested == set(re.findall(r"- alert: (\w+)", rules.read_text()))


def _plain(expr: str) -> str:
    """A panel's query as Prometheus takes it: Grafana's variables filled in."""
    return re.sub(r"\$(\w+)", ".*", expr.replace(common.RATE, "15s"))


def test_every_dashboard_query_parses(promtool, tmp_path):
    """promtool parses each query as the expression of a recording rule."""
    rules = [
        {"record": f"panel:{name}:{i}", "expr": _plain(expr)}
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


def _query(base: str, expr: str) -> dict:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _result_when_up(base: str, expr: str) -> list:
    try:
        return _query(base, expr)["data"]["result"]
    except OSError:  # not listening yet
        return []


def test_operator_panels_return_data_from_real_scrapes(
    tmp_path, operator_runner, crds, namespace, cluster
):
    op = operator_runner.start()
    op.wait_role("leader")
    # A RayCluster on simulated nodes: reconciles, apiserver calls and per-group pod series.
    cluster.kubectl(
        "apply", "-n", namespace,
        "-f", str(REPO_ROOT / "operator" / "examples" / "raycluster-sample.yaml"),
    )  # fmt: skip

    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in RULE_FILES],
        "scrape_configs": [
            {
                "job_name": "arenastack-operator",
                # As the chart's ServiceMonitor: the objects' namespaces, not the operator's.
                "honor_labels": True,
                "static_configs": [
                    {"targets": [f"127.0.0.1:{op.metrics_port}"], "labels": {"pod": op.identity}}
                ],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom = Process(tmp_path, "prometheus")
    prom.start(
        [
            str(toolchain_bin(build=False) / "prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            "the RayCluster's pods scraped by Prometheus",
            lambda: _result_when_up(
                base, f'arenastack_operator_raycluster_pods{{namespace="{namespace}"}}'
            ),
            60,
            prom,
        )
        time.sleep(20)  # enough scrapes for rate() over the 15 s window
        panels = [
            (name, title, expr)
            for name in ("operator", "ray")
            for title, expr in common.queries(DASHBOARDS[name])
            if not NOT_FROM_THE_OPERATOR.search(expr)
        ]
        assert len(panels) >= 14
        empty = []
        for name, title, expr in panels:
            body = _query(base, _plain(expr))
            assert body["status"] == "success", (name, title, body)
            if not body["data"]["result"]:
                empty.append(f"{name} / {title}: {expr}")
        assert not empty, "panels without data:\n" + "\n".join(empty)
        for name, model in DASHBOARDS.items():
            for variable, query in common.variable_queries(model):
                if name in ("operator", "ray"):
                    values = _label_values(base, query)
                    assert values, f"{name}: variable {variable} ({query}) has no values"
        assert namespace in _label_values(base, common.variable_queries(DASHBOARDS["ray"])[0][1])
        leaders = _query(base, "sum(arenastack_operator_leader)")["data"]["result"]
        assert float(leaders[0]["value"][1]) == 1.0
        rules = json.loads(urllib.request.urlopen(f"{base}/api/v1/rules", timeout=5).read())
        health = {r["name"]: r["health"] for g in rules["data"]["groups"] for r in g["rules"]}
        expected = {m for p in RULE_FILES for m in re.findall(r"- alert: (\w+)", p.read_text())}
        assert set(health) == expected
        assert {h for h in health.values()} == {"ok"}, health
    finally:
        prom.stop()


def _label_values(base: str, query: str) -> list[str]:
    """What Grafana offers for a `label_values(selector, label)` variable."""
    selector, label = re.fullmatch(r"label_values\((.+), (\w+)\)", query).groups()
    url = f"{base}/api/v1/label/{label}/values?" + urllib.parse.urlencode(
        {"match[]": _plain(selector)}
    )
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())["data"]
