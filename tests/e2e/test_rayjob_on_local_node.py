"""RayJobs on the real node, reconciled by the chart's operator pod: the example runs to
SUCCEEDED through its submitter Job and its cluster is deleted after; a failing entrypoint
(submitted by the operator itself, HTTPMode) is retried once (backoffLimit 1) on a new
cluster, then ends FAILED with Ray's message; SidecarMode submits from the head pod; a suspended job
makes no cluster until it is released; deleting a running RayJob stops its Ray job; in
InteractiveMode the job waits for the one you submit by hand, then follows it; deletionRules
delete the cluster, then the RayJob itself, on time."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "operator" / "examples" / "rayjob-sample.yaml"
NAMESPACE = "rayjob-e2e"
TIMEOUT_S = 420


def _get(cl, kind: str, name: str) -> dict[str, Any] | None:
    out = cl.kubectl("get", kind, name, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def _apply(cl, *docs: dict[str, Any]) -> None:
    cl.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump_all(docs))


def _wait(cl, name: str, done, what: str, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        job = _get(cl, "rayjob", name)
        if job is not None and done(job.get("status") or {}):
            return job
        time.sleep(2)
    pods = cl.kubectl("get", "pods,jobs,rayclusters", "-n", NAMESPACE, "-o", "wide", check=False)
    events = cl.kubectl("get", "events", "-n", NAMESPACE, check=False)
    raise AssertionError(
        f"RayJob {name}: not {what} in {timeout:.0f} s; status {(job or {}).get('status')}\n"
        f"{pods.stdout}\n{events.stdout[-4000:]}"
    )


def _variant(example: dict[str, Any], name: str, **spec: Any) -> dict[str, Any]:
    job = copy.deepcopy(example)
    job["metadata"]["name"] = name
    job["spec"].update(spec)
    return job


def _deployment(phase: str):
    return lambda status: status.get("jobDeploymentStatus") == phase


@pytest.fixture(scope="module")
def example(local_cluster, chart_operator):
    cl = local_cluster
    cl.kubectl("create", "namespace", NAMESPACE, check=False)
    rayjob, config_map = yaml.safe_load_all(EXAMPLE.read_text())
    _apply(cl, config_map)
    yield rayjob
    cl.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=180s", check=False)


def test_jobs_succeed_fail_and_release_their_clusters(local_cluster, example):
    cl = local_cluster
    failing = _variant(
        example, "fails", submissionMode="HTTPMode", backoffLimit=1,
        entrypoint="python -c \"raise SystemExit('no input rows')\"",
    )  # fmt: skip
    _apply(cl, example, failing)

    done = _wait(cl, "pi", lambda s: s.get("jobDeploymentStatus") in ("Complete", "Failed"),
                 "finished")  # fmt: skip
    status = done["status"]
    assert (status["jobStatus"], status["jobDeploymentStatus"]) == ("SUCCEEDED", "Complete"), status
    assert status["succeeded"] == 1 and status["failed"] == 0
    assert status["jobId"].startswith("pi-") and status["rayClusterName"].startswith("pi-")
    assert status["dashboardURL"] == (
        f"{status['rayClusterName']}-head-svc.{NAMESPACE}.svc.cluster.local:8265"
    )
    assert status["rayJobInfo"]["startTime"] <= status["rayJobInfo"]["endTime"]
    # The submitter followed the driver's output, and is kept for it.
    logs = cl.kubectl("logs", "-n", NAMESPACE, "job/pi").stdout
    assert "pi is about 3.1" in logs, logs[-2000:]
    # shutdownAfterJobFinishes with a TTL of 0: the cluster goes, its pods with it.
    deadline = time.monotonic() + 120
    while _get(cl, "raycluster", status["rayClusterName"]) is not None:
        assert time.monotonic() < deadline, "the finished job's RayCluster was not deleted"
        time.sleep(2)
    assert _get(cl, "job", "pi") is not None

    # SidecarMode (after the others: three Ray heads starting at once on two cores can starve
    # a head's dashboard past Ray's own 30 s start-up limit): the submitter runs in the head
    # pod, beside Ray; no submitter Job.
    _apply(cl, _variant(example, "beside", submissionMode="SidecarMode"))
    beside = _wait(cl, "beside", _deployment("Complete"), "Complete")["status"]
    assert beside["jobStatus"] == "SUCCEEDED" and beside["succeeded"] == 1, beside
    assert _get(cl, "job", "beside") is None

    failed = _wait(cl, "fails", _deployment("Failed"), "Failed")["status"]
    assert failed["jobStatus"] == "FAILED" and failed["reason"] == "AppFailed", failed
    assert "no input rows" in failed["message"] or "exit code 1" in failed["message"], failed
    # backoffLimit 1: a second attempt, on a cluster of its own, before the end.
    assert failed["failed"] == 2, failed
    events = json.loads(cl.kubectl(
        "get", "events", "-n", NAMESPACE, "--field-selector",
        "involvedObject.name=fails,reason=Retrying", "-o", "json").stdout)["items"]  # fmt: skip
    assert len(events) == 1 and events[0]["message"].startswith("Running -> Retrying"), events
    assert _get(cl, "job", "fails") is None  # HTTPMode: no submitter


def test_suspend_holds_a_job_and_deleting_a_running_job_stops_it(local_cluster, example):
    cl = local_cluster
    held = _variant(example, "held", suspend=True)
    long = _variant(example, "long", entrypoint="python -c 'import time; time.sleep(600)'")
    _apply(cl, held, long)
    _wait(cl, "held", _deployment("Suspended"), "Suspended", timeout=60)
    running = _wait(cl, "long", lambda s: s.get("jobStatus") == "RUNNING", "RUNNING")["status"]
    clusters = cl.kubectl("get", "rayclusters", "-n", NAMESPACE, "-o", "name").stdout.split()
    assert not [c for c in clusters if "held-" in c], clusters

    cl.kubectl("patch", "rayjob", "held", "-n", NAMESPACE, "--type=merge",
               "-p", '{"spec":{"suspend":false}}')  # fmt: skip
    cl.kubectl("delete", "rayjob", "long", "-n", NAMESPACE, "--wait=true", "--timeout=60s")
    events = cl.kubectl(
        "get", "events", "-n", NAMESPACE, "--field-selector",
        "involvedObject.name=long,reason=StoppedRayJob", "-o", "json",
    )  # fmt: skip
    messages = [e["message"] for e in json.loads(events.stdout)["items"]]
    assert messages == [f"Stopped Ray job {running['jobId']}"], messages

    resumed = _wait(cl, "held", _deployment("Complete"), "Complete")["status"]
    assert resumed["jobStatus"] == "SUCCEEDED", resumed


def test_interactive_mode_and_deletion_rules(local_cluster, example):
    cl = local_cluster
    mine = _variant(example, "mine", submissionMode="InteractiveMode")
    del mine["spec"]["entrypoint"]  # you submit it
    rules = [
        {"policy": "DeleteCluster", "condition": {"jobStatus": "SUCCEEDED"}},
        {"policy": "DeleteSelf", "condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 20}},
    ]
    tidy = _variant(example, "tidy", shutdownAfterJobFinishes=False,
                    deletionStrategy={"deletionRules": rules})  # fmt: skip
    _apply(cl, mine, tidy)
    waiting = _wait(cl, "mine", _deployment("Waiting"), "Waiting")["status"]
    assert "jobId" not in waiting and waiting["dashboardURL"], waiting
    head = cl.kubectl(
        "get",
        "pods",
        "-n",
        NAMESPACE,
        "-o",
        "name",
        "-l",
        f"ray.io/cluster={waiting['rayClusterName']},ray.io/node-type=head",
    ).stdout
    submit = ["ray", "job", "submit", "--address", "http://127.0.0.1:8265", "--no-wait",
              "--submission-id", "by-hand-1", "--", "python", "-c", "print('by hand')"]  # fmt: skip
    cl.kubectl("exec", "-n", NAMESPACE, head.strip(), "-c", "ray-head", "--", *submit)
    cl.kubectl("patch", "rayjob", "mine", "-n", NAMESPACE, "--type=merge",
               "-p", '{"spec":{"jobId":"by-hand-1"}}')  # fmt: skip
    done = _wait(cl, "mine", _deployment("Complete"), "Complete")["status"]
    assert (done["jobId"], done["jobStatus"]) == ("by-hand-1", "SUCCEEDED"), done

    # deletionRules: the cluster at once, the RayJob itself 20 s after the end.
    ended = _wait(cl, "tidy", _deployment("Complete"), "Complete")["status"]
    deadline = time.monotonic() + 120
    while _get(cl, "raycluster", ended["rayClusterName"]) is not None:
        assert time.monotonic() < deadline, "DeleteCluster did not delete the job's cluster"
        time.sleep(2)
    assert _get(cl, "rayjob", "tidy") is not None  # not before its 20 s
    while _get(cl, "rayjob", "tidy") is not None:
        assert time.monotonic() < deadline, "DeleteSelf did not delete the RayJob"
        time.sleep(2)
