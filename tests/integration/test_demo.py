"""`make demo` must always run end to end: the kwok demo in a state folder of its own, the
local demo on the session's real node."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from arenastack_cluster import demo, modelclaim
from arenastack_cluster.cluster import REPO_ROOT, LocalCluster

pytestmark = pytest.mark.integration


def _demo(action: str, state: Path, profile: str) -> subprocess.CompletedProcess[str]:
    """The demo's command on the cluster whose state folder is `state`."""
    return subprocess.run(
        [sys.executable, "-m", "arenastack_cluster.cli", "demo", action, "--profile", profile],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO_ROOT,
        env={**os.environ, "ARENASTACK_STATE": str(state)},
    )


def test_kwok_demo_shows_the_stack_and_down_stops_it(tmp_path):
    state = tmp_path / "demo"
    try:
        proc = _demo("up", state, "kwok")
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout
        assert "rayclusters.ray.io" in out
        assert "inferencedeployments.arenastack.io" in out
        assert "/readyz  -> 200" in out
        assert "raycluster.ray.io/demo" in out  # the sample reached the API
        assert "arenastack_operator_reconciles_total" in out  # the operator's own metrics
        # Running it again is harmless.
        again = _demo("up", state, "kwok")
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
    finally:
        down = _demo("down", state, "kwok")
    assert down.returncode == 0, down.stderr
    assert not list((state / "run").glob("*.pid"))


@pytest.mark.e2e
def test_local_demo_runs_a_ray_job_serves_two_models_and_the_arena(local_cluster: LocalCluster):
    """What `make demo` does: the chart's operator pod turns the sample into a real Ray
    cluster whose workers compute the job, serves two models through their routers (one of
    them the real instruct model), runs the arena over them, and an evaluation judged by the
    instruct model. On the session's node, which `demo up` finds running (two real nodes on
    one host would share host paths, device plugins and sysctls among them, and the image
    store would be unpacked twice); `demo down` is `cluster down`, which the real-node tests
    check, so here the demo's objects are deleted instead."""
    cl = local_cluster
    try:
        proc = _demo("up", cl.state, "local")
        assert proc.returncode == 0, proc.stderr + proc.stdout[-3000:]
        out = proc.stdout
        assert "sum of squares 0..99 = 328350 computed by tasks on ['demo-cpu-worker-" in out
        assert out.count("demo-cpu-worker-") >= 4  # two workers in the table and the answer
        assert 'arenastack_operator_managed_objects{kind="RayCluster",phase="Ready"} 1.0' in out
        # Two models served through their routers...
        assert re.search(
            r"smollm2\s+smollm2\s+1\s+http://smollm2-router\.demo\.svc\.cluster\.local:8000/v1", out
        )
        assert "smollm2 via http://" in out and "tiny via http://" in out
        # The instruct model's answer is readable English; the random model's is not.
        answers = {m[0]: m[2] for m in re.findall(r"(smollm2|tiny) via \S+: (['\"])(.*)\2\n", out)}
        common = r"\b(the|a|an|is|are|I|I'm|you|to|and|of|in|here|hello|welcome)\b"
        assert len(re.findall(common, answers["smollm2"], re.IGNORECASE)) >= 3, answers
        assert len(re.findall(common, answers["tiny"], re.IGNORECASE)) < 3, answers
        # ...and the arena seeded from the real counts, then one battle between them.
        assert "leaderboard from 1,670,250 real battles (2024-08-14)" in out
        assert re.search(r"\n\s+1\s+chatgpt-4o-latest\s+1315\.\d", out)
        assert re.search(r"\n\s+61\s+mixtral-8x7b-instruct-v0\.1\s+1114\.0\n", out)
        assert re.search(r"voted model_a -> revealed: A = (smollm2|tiny), B = (smollm2|tiny)", out)
        assert "leaderboard now counts 1,670,251 battles" in out
        assert re.search(r"battle page http://[\d.]+:8080/", out)
        # The evaluation ran to the end and printed its judge board.
        assert re.search(r"mt-bench-demo\s+Succeeded\s+smollm2\s+3\s", out), out[-3000:]
        assert "battles: planned 3, judged 3, errors 0, unparseable verdicts 0" in out
        assert re.search(r"judge judge:smollm2: position consistency \d\.\d\d", out)
        # Where the dashboards are: the chart's files and the sidecar's ConfigMaps.
        assert "files: charts/arenastack/dashboards/arena.json, " in out
        for name in ("arena", "operator", "ray", "serving"):
            assert f"configmap/arenastack-dashboard-{name}" in out
        assert "cluster: already running" in out
    finally:
        cl.helm("uninstall", demo.RELEASE, "-n", demo.NAMESPACE, "--wait", check=False)
        for namespace in (demo.DEMO_NAMESPACE, demo.NAMESPACE):
            cl.kubectl("delete", "namespace", namespace, "--timeout=300s", check=False, timeout=330)
        modelclaim.release(cl, demo.DEMO_NAMESPACE)
