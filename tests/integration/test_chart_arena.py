"""The chart's arena vote service (arena.enabled): what it renders for each storage choice, the
values schema's refusals, an install on the kwok cluster, and the arena running as a pod on the
local node, where it answers /healthz and serves the leaderboard seeded from the real
2024-08-14 battle counts."""

from __future__ import annotations

import json
import urllib.request

import pytest
import yaml
from kube_helpers import get

from arenastack_arena.ratings import EloScale, fit_bt, load_leaderbot_json
from arenastack_cluster.arena_data import chatbot_arena_counts
from arenastack_cluster.arenaclient import ArenaClient
from arenastack_cluster.cluster import CHART_DIR as CHART
from arenastack_cluster.demo_serving import (
    ANCHOR,
    ANCHOR_RATING,
    JUDGE_SECRET,
    arena_values,
    seed_votes,
)
from arenastack_cluster.processes import ClusterError

pytestmark = pytest.mark.integration

ADMIN_SECRET = "arena-admin"
ARENA_COMPONENT = "app.kubernetes.io/component=arena"
TOKEN_IN_CLEAR = "s3cret-token-never-rendered"


def render(cluster, *values: str) -> dict[str, list[dict]]:
    out = cluster.helm("template", "r", str(CHART), "-n", "ns", "--set", "arena.enabled=true",
                       *values).stdout  # fmt: skip
    by_kind: dict[str, list[dict]] = {}
    for doc in yaml.safe_load_all(out):
        if doc and doc["metadata"]["name"].startswith("r-arenastack-arena"):
            by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


def test_sqlite_render_has_the_operators_security_a_claim_and_a_secret_token(cluster):
    objs = render(cluster, "--set", f"arena.adminToken.existingSecret={ADMIN_SECRET}",
                  "--set", "arena.persistence.size=5Gi",
                  "--set", "arena.models[0].name=m1",
                  "--set", "arena.models[0].endpoint=http://m1-router.x.svc:8000/v1",
                  "--set", "arena.leaderboard.anchor=m1",
                  "--set", "arena.leaderboard.anchorRating=1114",
                  "--set", "metrics.serviceMonitor.enabled=true")  # fmt: skip
    (deploy,) = objs["Deployment"]
    assert deploy["spec"]["replicas"] == 1 and deploy["spec"]["strategy"]["type"] == "Recreate"
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("ghcr.io/arenastack/arena:")
    assert container["command"] == ["python", "-m", "arenastack_arena.service"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False  # the service never calls the API
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["resources"]["limits"]["memory"]

    env = env_of(container)
    assert env["ARENA_DATABASE_URL"]["value"] == "sqlite:////data/arena.db"
    assert env["ARENA_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": ADMIN_SECRET, "key": "token"}  # fmt: skip
    assert env["ARENA_LEADERBOARD_ANCHOR"]["value"] == "m1"
    assert env["ARENA_LEADERBOARD_ANCHOR_RATING"]["value"] == "1114"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    (claim,) = objs["PersistentVolumeClaim"]
    assert volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"] == claim["metadata"][
        "name"]  # fmt: skip
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    # The model list reaches the service as its models file, from a ConfigMap.
    (models_cm,) = objs["ConfigMap"]
    assert yaml.safe_load(models_cm["data"]["models.yaml"])["models"][0]["name"] == "m1"
    models_dir = next(p for p, n in mounts.items() if volumes[n].get("configMap"))
    assert env["ARENA_MODELS_FILE"]["value"] == f"{models_dir}/models.yaml"

    (svc,) = objs["Service"]
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    assert svc["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]
    (monitor,) = objs["ServiceMonitor"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]


def test_postgresql_render_reads_the_url_from_a_secret_and_needs_no_claim(cluster):
    objs = render(cluster, "--set", "arena.database.existingSecret=arena-pg",
                  "--set", "arena.replicas=2")  # fmt: skip
    assert "PersistentVolumeClaim" not in objs and "ServiceMonitor" not in objs
    (deploy,) = objs["Deployment"]
    assert deploy["spec"]["replicas"] == 2 and "strategy" not in deploy["spec"]
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    env = env_of(container)
    assert env["ARENA_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "arena-pg",
                                                                      "key": "url"}  # fmt: skip
    assert "ARENA_ADMIN_TOKEN" not in env  # no Secret named: the admin API stays off
    assert "/data" not in {m["mountPath"] for m in container["volumeMounts"]}


@pytest.mark.parametrize(
    ("values", "claim", "volume"),
    [
        (["arena.persistence.storageClass=fast"], {"storageClassName": "fast"}, "claim"),
        (["arena.persistence.storageClass=-"], {"storageClassName": ""}, "claim"),
        (["arena.persistence.existingClaim=votes"], None, {"claimName": "votes"}),
        (["arena.persistence.enabled=false"], None, None),
    ],
)
def test_sqlite_volume_choices(cluster, values, claim, volume):
    objs = render(cluster, *[a for v in values for a in ("--set", v)])
    claims = objs.get("PersistentVolumeClaim", [])
    assert [c["spec"].get("storageClassName") for c in claims] == (
        [claim["storageClassName"]] if claim else [])  # fmt: skip
    (data,) = [v for v in objs["Deployment"][0]["spec"]["template"]["spec"]["volumes"]
               if v["name"] == "data"]  # fmt: skip
    if volume is None:
        assert data["emptyDir"] == {}
    elif volume == "claim":
        assert data["persistentVolumeClaim"]["claimName"] == claims[0]["metadata"]["name"]
    else:
        assert data["persistentVolumeClaim"] == volume


def test_seed_counts_inline_or_from_a_configmap(cluster):
    seed_counts = chatbot_arena_counts()
    objs = render(cluster, "--set-file", f"arena.seedCounts.json={seed_counts}")
    (seed_cm,) = [c for c in objs["ConfigMap"] if "counts.json" in c["data"]]
    assert json.loads(seed_cm["data"]["counts.json"]) == json.loads(seed_counts.read_text())
    (container,) = objs["Deployment"][0]["spec"]["template"]["spec"]["containers"]
    assert env_of(container)["ARENA_SEED_COUNTS_FILE"]["value"].endswith("/counts.json")
    objs = render(cluster, "--set", "arena.seedCounts.existingConfigMap=my-counts")
    volumes = objs["Deployment"][0]["spec"]["template"]["spec"]["volumes"]
    assert any(v.get("configMap", {}).get("name") == "my-counts" for v in volumes)
    assert "ConfigMap" not in objs


@pytest.mark.parametrize(
    ("values", "named"),
    [
        (["arena.replicas=2"], "needs PostgreSQL"),  # two SQLite writers
        (["arena.adminToken.token=" + TOKEN_IN_CLEAR], "adminToken"),  # never in clear
        (["arena.database.url=postgresql://u:p@h/db"], "database"),  # a Secret, not a value
        (["arena.models[0].name=x", "arena.models[0].endpoint=ftp://x"], "endpoint"),
        (["arena.env.DEBUG=1"], "env"),
        (["arena.persistence.accessMode=Sometimes"], "accessMode"),
        (["arena.seedCounts.json=x", "arena.seedCounts.existingConfigMap=c"], "not both"),
    ],
)
def test_bad_arena_values_are_refused_naming_the_field(cluster, values, named):
    args = [a for v in values for a in ("--set", v)]
    proc = cluster.helm("template", "x", str(CHART), "--set", "arena.enabled=true", *args,
                        check=False)  # fmt: skip
    assert proc.returncode != 0
    assert named in proc.stderr, proc.stderr


def test_disabled_by_default(cluster):
    out = cluster.helm("template", "r", str(CHART)).stdout
    labels = [d["metadata"].get("labels") or {} for d in yaml.safe_load_all(out) if d]
    assert labels and not [x for x in labels if x.get("app.kubernetes.io/component") == "arena"]
    # The arena image still runs ArenaEvaluations (against an arena named in their spec), but
    # the operator has no default arena to post to.
    (operator,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment"]
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--evaluation-image=ghcr.io/arenastack/arena:0.1.0" in args
    assert not [a for a in args if a.startswith("--arena-url")]
    assert out.count("ghcr.io/arenastack/arena") == 1


def test_enabled_arena_is_the_operators_default_for_evaluations(cluster):
    out = cluster.helm("template", "r", str(CHART), "-n", "ns", "--set", "arena.enabled=true",
                       "--set", "arena.image.tag=9.9").stdout  # fmt: skip
    (operator,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment"
                   and d["metadata"]["name"] == "r-arenastack-operator"]  # fmt: skip
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--arena-url=http://r-arenastack-arena.ns.svc:80" in args
    assert "--evaluation-image=ghcr.io/arenastack/arena:9.9" in args


def test_judge_token_comes_from_a_secret(cluster):
    objs = render(cluster, "--set", "arena.judgeToken.existingSecret=judge")
    (container,) = objs["Deployment"][0]["spec"]["template"]["spec"]["containers"]
    assert env_of(container)["ARENA_JUDGE_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "judge", "key": "token"}
    }
    (container,) = render(cluster)["Deployment"][0]["spec"]["template"]["spec"]["containers"]
    assert "ARENA_JUDGE_TOKEN" not in env_of(container)


def test_install_on_kwok_binds_the_claim_and_keeps_it(cluster, crds, namespace):
    """A PersistentVolume stands in for a provisioner (kwok has none); the claim binds, the
    Deployment becomes available, and an uninstall keeps the votes' claim."""
    release = f"arena-{namespace}"
    pv = {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"pv-{namespace}"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": "", "hostPath": {"path": f"/tmp/{namespace}"},
                 "claimRef": {"namespace": namespace, "name": f"{release}-arenastack-arena-data"}},
    }  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pv))
    cluster.kubectl("create", "secret", "generic", ADMIN_SECRET, "-n", namespace,
                    f"--from-literal=token={TOKEN_IN_CLEAR}")  # fmt: skip
    try:
        cluster.helm("install", release, str(CHART), "-n", namespace,
                     "--set", "operator.replicas=0", "--set", "arena.enabled=true",
                     "--set", "arena.persistence.storageClass=-",
                     "--set", f"arena.adminToken.existingSecret={ADMIN_SECRET}",
                     "--wait", "--timeout", "120s")  # fmt: skip
        selector = f"app.kubernetes.io/instance={release},{ARENA_COMPONENT}"
        (claim,) = get(cluster, "pvc", namespace, selector=selector)
        assert claim["status"]["phase"] == "Bound"
        (deploy,) = get(cluster, "deployments", namespace, selector=selector)
        assert deploy["status"].get("availableReplicas") == 1
        (svc,) = get(cluster, "services", namespace, selector=selector)
        assert svc["spec"]["ports"][0]["port"] == 80
        # The token is only ever in the Secret: not in the release, nor in any object spec.
        manifest = cluster.helm("get", "manifest", release, "-n", namespace).stdout
        assert TOKEN_IN_CLEAR not in manifest
        cluster.helm("uninstall", release, "-n", namespace, "--wait")
        assert get(cluster, "deployments", namespace, selector=selector) == []
        (kept,) = get(cluster, "pvc", namespace, selector=selector)
        assert kept["metadata"]["name"] == claim["metadata"]["name"]
    finally:
        cluster.kubectl("delete", "pv", pv["metadata"]["name"], "--wait=false", check=False)


@pytest.mark.e2e
def test_arena_pod_on_the_local_node_serves_the_seeded_leaderboard(local_cluster, tmp_path):
    """The chart's arena runs as a real pod: /healthz, the leaderboard of the real 2024 counts
    anchored as the public board is (equal to the library's own fit), and the admin API behind
    the token from the Secret."""
    cl = local_cluster
    seed_counts = chatbot_arena_counts()
    namespace, release = "arena-localnode", "arena"
    cl.kubectl("create", "namespace", namespace)
    token = "local-node-token"
    cl.kubectl("create", "secret", "generic", ADMIN_SECRET, "-n", namespace,
               f"--from-literal=token={token}")  # fmt: skip
    # The demo's values name the judge API's Secret too; the pod would not start without it.
    cl.kubectl("create", "secret", "generic", JUDGE_SECRET, "-n", namespace,
               "--from-literal=token=local-node-judge-token")  # fmt: skip
    values = tmp_path / "values.yaml"
    model = {"name": "m1", "endpoint": "http://m1-router.x.svc:8000/v1"}
    values.write_text(yaml.safe_dump(arena_values([model])))
    try:
        try:
            cl.helm("install", release, str(CHART), "-n", namespace, "-f", str(values),
                    "--set", "operator.replicas=0",
                    "--set-file", f"arena.seedCounts.json={seed_counts}",
                    "--wait", "--timeout", "240s")  # fmt: skip
        except ClusterError:
            logs = cl.kubectl("logs", "-n", namespace, "-l", ARENA_COMPONENT, "--tail=50",
                              check=False).stdout  # fmt: skip
            raise AssertionError(f"arena pod never became ready:\n{logs}") from None
        (pod,) = get(cl, "pods", namespace, selector=ARENA_COMPONENT)
        base = f"http://{pod['status']['podIP']}:8080"
        with urllib.request.urlopen(base + "/healthz", timeout=5) as resp:
            assert resp.read() == b"ok"

        arena = ArenaClient(base, token)
        board = arena.wait_leaderboard(seed_votes(), timeout=180)
        assert board["votes"] == seed_votes() == 1_670_250
        rows = {row["model"]: row for row in board["rows"]}
        scale = EloScale(anchor=ANCHOR, anchor_rating=ANCHOR_RATING)
        expected = fit_bt(load_leaderbot_json(seed_counts), scale).as_dict()
        assert set(rows) == set(expected) and len(rows) == 129
        assert rows[ANCHOR]["rating"] == pytest.approx(ANCHOR_RATING, abs=0.01)
        top = board["rows"][0]
        assert top["rank"] == 1 and top["rating"] == pytest.approx(expected[top["model"]],
                                                                   abs=0.01)  # fmt: skip
        assert all(r["lower"] <= r["rating"] <= r["upper"] for r in board["rows"])

        # The token from the Secret opens the admin API; the model list came from values.
        admin = arena.call("GET", "/api/admin/models", admin=True)
        assert [m["name"] for m in admin] == ["m1"]
        with pytest.raises(ClusterError, match="401"):
            ArenaClient(base, "wrong").call("GET", "/api/admin/models", admin=True)
        # The UI's pages are served by the pod itself.
        with urllib.request.urlopen(base + "/leaderboard", timeout=5) as resp:
            assert b"<html" in resp.read().lower()
    finally:
        cl.helm("uninstall", release, "-n", namespace, "--wait", check=False)
        cl.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
