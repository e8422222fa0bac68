"""The Helm chart against the real apiserver: install, objects match the values,
least-privilege RBAC, uninstall leaves only the CRDs."""

from __future__ import annotations

import json

import pytest
import yaml

from arenastack_cluster.cluster import CHART_DIR as CHART

pytestmark = pytest.mark.integration

FORBIDDEN_RESOURCES = {"*"}
# Secrets: the operator makes a token-authenticated RayCluster's token and reads a cluster's
# token to call its Jobs API; it never lists or watches them, nor changes or deletes one.
SECRET_VERBS = {"get", "create"}


def _objects(cluster, kind: str, release: str, namespace: str | None = None) -> list[dict]:
    scope = ["-n", namespace] if namespace else ["-A"]
    out = cluster.kubectl(
        "get", kind, *scope, "-l", f"app.kubernetes.io/instance={release}", "-o", "json"
    )
    return json.loads(out.stdout)["items"]


def test_values_schema_rejects_bad_values(cluster):
    proc = cluster.helm("template", "x", str(CHART), "--set", "operator.replicas=-1", check=False)
    assert proc.returncode != 0
    assert "replicas" in proc.stderr
    proc = cluster.helm("template", "x", str(CHART), "--set", "operator.logLevel=LOUD", check=False)
    assert proc.returncode != 0 and "logLevel" in proc.stderr


def test_operator_env_reaches_the_container_and_only_arenastack_settings_pass(cluster):
    rendered = cluster.helm("template", "x", str(CHART), "--set",
                            "operator.env.ARENASTACK_AUTOSCALE_INTERVAL=3").stdout  # fmt: skip
    (deploy,) = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment"]
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["ARENASTACK_AUTOSCALE_INTERVAL"] == {"name": "ARENASTACK_AUTOSCALE_INTERVAL",
                                                    "value": "3"}  # fmt: skip
    assert "POD_NAME" in env  # the chart's own variables stay
    proc = cluster.helm("template", "x", str(CHART), "--set", "operator.env.PATH=/x", check=False)
    assert proc.returncode != 0 and "/operator/env" in proc.stderr, proc.stderr


def test_install_matches_values_and_uninstall_leaves_only_crds(cluster, crds, namespace):
    release = f"chart-{namespace}"
    cluster.helm(
        "install",
        release,
        str(CHART),
        "-n",
        namespace,
        "--set",
        "operator.replicas=2",
        "--set",
        "operator.resources.limits.memory=768Mi",
        "--set",
        "operator.ports.metrics=9090",
        "--wait",
        "--timeout",
        "120s",
    )
    (deploy,) = _objects(cluster, "deployments", release, namespace)
    assert deploy["spec"]["replicas"] == 2
    assert deploy["status"].get("readyReplicas") == 2
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["memory"] == "768Mi"
    assert "--metrics-port=9090" in container["args"]
    # Security settings the chart promises.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"

    (svc,) = _objects(cluster, "services", release, namespace)
    assert svc["spec"]["ports"][0]["port"] == 9090
    (sa,) = _objects(cluster, "serviceaccounts", release, namespace)
    assert pod["serviceAccountName"] == sa["metadata"]["name"]

    (role,) = _objects(cluster, "clusterroles", release)
    for rule in role["rules"]:
        assert "*" not in rule["verbs"], rule
        assert not FORBIDDEN_RESOURCES & set(rule["resources"]), rule
        if "secrets" in rule["resources"]:
            assert rule["resources"] == ["secrets"] and set(rule["verbs"]) == SECRET_VERBS, rule
    (binding,) = _objects(cluster, "clusterrolebindings", release)
    assert binding["subjects"][0]["name"] == sa["metadata"]["name"]

    cluster.helm("uninstall", release, "-n", namespace, "--wait")
    for kind in ("deployments,services,serviceaccounts,roles,rolebindings,configmaps,secrets",):
        assert _objects(cluster, kind, release, namespace) == []
    assert _objects(cluster, "clusterroles,clusterrolebindings", release) == []
    # CRDs are not deleted by helm (uninstalling must never delete users' resources).
    left = cluster.kubectl("get", "crd", "-o", "name").stdout
    for name in crds:
        assert name in left


def test_namespaced_install_grants_a_role_not_a_clusterrole(cluster, crds, namespace):
    rendered = cluster.helm(
        "template",
        "r",
        str(CHART),
        "-n",
        namespace,
        "--set",
        "operator.watchAllNamespaces=false",
    ).stdout
    kinds = [d["kind"] for d in yaml.safe_load_all(rendered) if d]
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
    assert kinds.count("Role") == 2
    deploy = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment")
    assert f"--namespace={namespace}" in deploy["spec"]["template"]["spec"]["containers"][0]["args"]
