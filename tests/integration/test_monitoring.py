"""The chart's alert rules and dashboard against real Prometheus and promtool:
the rules pass promtool's checks and unit tests, and every dashboard query runs
against a real Prometheus that scraped the real operator."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from arenastack_cluster.cluster import CHART_DIR, REPO_ROOT, toolchain_bin
from arenastack_cluster.processes import Process, free_port, wait_for

pytestmark = pytest.mark.integration

RULES = CHART_DIR / "rules" / "operator.rules.yaml"
RULE_TESTS = REPO_ROOT / "tests" / "unit" / "promtool" / "operator.rules.test.yaml"
DASHBOARD = CHART_DIR / "dashboards" / "operator.json"


@pytest.fixture(scope="module")
def promtool() -> str:
    return str(toolchain_bin(build=True, part="monitoring") / "promtool")


def test_rules_pass_promtool_check(promtool):
    proc = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 3 rules found" in proc.stdout


def test_rules_unit_tests(promtool):
    proc = subprocess.run(
        [promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_chart_wraps_the_same_rules(cluster):
    rendered = cluster.helm(
        "template", "r", str(CHART_DIR), "--set", "metrics.prometheusRule.enabled=true"
    ).stdout
    rule = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text())


def _query(base: str, expr: str) -> dict:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _result_when_up(base: str, expr: str) -> list:
    try:
        return _query(base, expr)["data"]["result"]
    except OSError:  # not listening yet
        return []


def _dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    # Grafana fills the variables in; Prometheus gets a plain regex.
    return [e.replace("$job", ".*") for e in exprs]


def test_dashboard_queries_run_on_real_scraped_metrics(
    tmp_path, operator_runner, crds, namespace, cluster
):
    op = operator_runner.start()
    op.wait_role("leader")
    # One reconcile so the reconcile series exist.
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        str(REPO_ROOT / "operator" / "examples" / "raycluster-sample.yaml"),
    )

    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "arenastack-operator",
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
            "a reconcile scraped by Prometheus",
            lambda: _result_when_up(base, "arenastack_operator_reconciles_total"),
            60,
            prom,
        )
        time.sleep(3)  # a few more scrapes so rate() has two points
        for expr in _dashboard_queries():
            body = _query(base, expr)
            assert body["status"] == "success", (expr, body)
        leaders = _query(base, "sum(arenastack_operator_leader)")["data"]["result"]
        assert float(leaders[0]["value"][1]) == 1.0
        rules = json.loads(urllib.request.urlopen(f"{base}/api/v1/rules", timeout=5).read())
        health = {r["name"]: r["health"] for g in rules["data"]["groups"] for r in g["rules"]}
        assert set(health) == {
            "ArenastackOperatorNoLeader",
            "ArenastackOperatorReconcileErrors",
            "ArenastackOperatorSlowReconciles",
        }
    finally:
        prom.stop()
