"""RayJob: validation, the pure builders, and single steps of the status machine."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from arenastack_operator.raycluster.model import Cluster
from arenastack_operator.rayjob import builders, model
from arenastack_operator.rayjob import status as st
from arenastack_operator.rayjob.model import InvalidSpec, Job

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)
CLUSTER_SPEC: dict[str, Any] = {
    "rayVersion": "2.46.0",
    "headGroupSpec": {
        "rayStartParams": {},
        "template": {
            "spec": {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.46.0"}]}
        },
    },
}


def job(**spec: Any) -> Job:
    body = {
        "metadata": {"name": "pi", "namespace": "ns", "uid": "u-1", "generation": 2,
                     "labels": {"team": "a"}},
        "spec": {"entrypoint": "python pi.py", "rayClusterSpec": CLUSTER_SPEC, **spec},
    }  # fmt: skip
    return Job.from_body(body)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"suspend": True}, "spec.suspend: a RayJob with shutdownAfterJobFinishes set to false"),
        ({"ttlSecondsAfterFinished": 10}, "spec.ttlSecondsAfterFinished is set but"),
        ({"rayClusterSpec": None}, "one of rayClusterSpec or clusterSelector must be set"),
        ({"clusterSelector": {"other": "x"}}, "must name the cluster under ray.io/cluster"),
        ({"activeDeadlineSeconds": 0}, "spec.activeDeadlineSeconds must be a positive"),
        ({"entrypoint": "  "}, "spec.entrypoint is required"),
        ({"runtimeEnvYAML": "a: [1"}, "spec.runtimeEnvYAML is not valid YAML"),
        ({"runtimeEnvYAML": "- a"}, "spec.runtimeEnvYAML must be a YAML mapping"),
        ({"entrypointResources": '{"a": "x"}'}, "spec.entrypointResources"),
        (
            {"submissionMode": "SidecarMode", "clusterSelector": {"ray.io/cluster": "x"}},
            "spec.clusterSelector is not supported in SidecarMode",
        ),
        (
            {"submissionMode": "SidecarMode", "submitterConfig": {"backoffLimit": 1}},
            "spec.submitterConfig is not supported in SidecarMode",
        ),
        (
            {
                "submissionMode": "SidecarMode",
                "rayClusterSpec": {
                    **CLUSTER_SPEC,
                    "headGroupSpec": {
                        "rayStartParams": {},
                        "template": {
                            "spec": {
                                "restartPolicy": "Always",
                                "containers": [{"name": "h", "image": "r"}],
                            }
                        },
                    },
                },
            },
            "restartPolicy must be Never or unset in SidecarMode",
        ),  # fmt: skip
        ({"backoffLimit": -1}, "spec.backoffLimit must not be negative"),
        (
            {"submissionMode": "InteractiveMode", "backoffLimit": 1},
            "spec.backoffLimit is incompatible with InteractiveMode",
        ),
        (
            {"rayClusterSpec": {**CLUSTER_SPEC, "tlsOptions": {"enabled": True}}},
            "spec.rayClusterSpec.tlsOptions",
        ),
    ],
)
def test_invalid_specs_are_refused_naming_the_field(spec, message):
    with pytest.raises(InvalidSpec, match=None) as caught:
        model.validate(job(**spec))
    assert message in str(caught.value)


def test_valid_specs_pass():
    model.validate(job())
    model.validate(job(clusterSelector={"ray.io/cluster": "shared"}, rayClusterSpec=None))
    model.validate(job(suspend=True, shutdownAfterJobFinishes=True, ttlSecondsAfterFinished=5))
    # A submitter of its own command needs no entrypoint (KubeRay's light-weight submitter).
    own = {"spec": {"containers": [{"name": "s", "image": "i", "command": ["/submitter"]}]}}
    model.validate(job(entrypoint=None, submitterPodTemplate=own))
    with pytest.raises(InvalidSpec, match="spec.entrypoint is required in HTTPMode"):
        model.validate(job(entrypoint=None, submitterPodTemplate=own, submissionMode="HTTPMode"))


def test_the_cluster_carries_the_jobs_labels_and_owner_and_its_spec():
    j = job(shutdownAfterJobFinishes=True)
    cluster = builders.ray_cluster(j, "pi-abcde", "pi-abcde")
    meta = cluster["metadata"]
    assert meta["name"] == "pi-abcde" and meta["namespace"] == "ns"
    assert meta["labels"] == {"team": "a", builders.LABEL_ORIGIN_NAME: "pi",
                              builders.LABEL_ORIGIN_KIND: "RayJob"}  # fmt: skip
    assert meta["ownerReferences"][0]["uid"] == "u-1"
    assert meta["ownerReferences"][0]["kind"] == "RayJob"
    assert cluster["spec"]["headGroupSpec"]["template"] == CLUSTER_SPEC["headGroupSpec"]["template"]


def test_the_jobs_head_service_selects_its_clusters_head_under_the_jobs_name():
    j = job(shutdownAfterJobFinishes=True)
    cluster = {**builders.ray_cluster(j, "pi-abcde", "pi-abcde"), "metadata": {
        **builders.ray_cluster(j, "pi-abcde", "pi-abcde")["metadata"], "uid": "c-1"}}  # fmt: skip
    svc = builders.head_service(j, cluster)
    meta = svc["metadata"]
    assert meta["name"] == "pi-head-svc" and meta["namespace"] == "ns"
    assert [(o["kind"], o["uid"]) for o in meta["ownerReferences"]] == [("RayJob", "u-1")]
    assert meta["labels"] == {
        builders.LABEL_ORIGIN_NAME: "pi",
        builders.LABEL_ORIGIN_KIND: "RayJob",
        "ray.io/node-type": "head",
        "ray.io/identifier": "pi-head",
    }
    selector = svc["spec"]["selector"]
    assert selector["ray.io/cluster"] == "pi-abcde" and selector["ray.io/node-type"] == "head"
    assert selector["ray.io/identifier"] == "pi-abcde-head"
    assert {p["name"] for p in svc["spec"]["ports"]} >= {"dashboard", "gcs-server", "client"}


def test_the_submitter_submits_once_then_follows_the_logs():
    j = job(runtimeEnvYAML="env_vars:\n  A: 'x y'\n", metadata={"k": "v"}, entrypointNumCpus=0.5)
    address = "pi-abcde-head-svc.ns.svc.cluster.local:8265"
    submitter = builders.submitter_job(j, _own_cluster(j), address, "pi-id")
    assert submitter["metadata"]["name"] == "pi"
    assert submitter["spec"]["backoffLimit"] == model.DEFAULT_SUBMITTER_BACKOFF_LIMIT
    pod = submitter["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    container = pod["containers"][0]
    assert container["image"] == "rayproject/ray:2.46.0"
    assert container["resources"] == builders.SUBMITTER_RESOURCES
    assert container["command"] == ["/bin/bash", "-ce", "--"]
    script = container["args"][0]
    check, submit, _, follow = script.split(" ; ")
    assert check.startswith("if ! ray job status --address http://" + address + " pi-id")
    assert submit.startswith("then ray job submit --address http://" + address + " --no-wait")
    words = shlex.split(submit.split(" -- ")[0])
    assert words[words.index("--runtime-env-json") + 1] == '{"env_vars": {"A": "x y"}}'
    assert words[words.index("--metadata-json") + 1] == '{"k": "v"}'
    assert words[words.index("--submission-id") + 1] == "pi-id"
    assert words[words.index("--entrypoint-num-cpus") + 1] == "0.500000"
    assert "-- python pi.py ; fi" in script
    assert follow == f"ray job logs --address http://{address} --follow pi-id"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env[builders.ENV_SUBMISSION_ID] == "pi-id"
    assert env[builders.ENV_DASHBOARD_ADDRESS] == address


def test_a_submitter_template_is_kept_and_its_command_wins():
    template = {"spec": {"restartPolicy": "OnFailure", "containers": [
        {"name": "mine", "image": "me:1", "command": ["my-submit"]}]}}  # fmt: skip
    j = job(submitterPodTemplate=template, submitterConfig={"backoffLimit": 0})
    submitter = builders.submitter_job(j, _own_cluster(j), "a:8265", "id")
    pod = submitter["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "OnFailure"
    assert pod["containers"][0]["command"] == ["my-submit"]
    assert "args" not in pod["containers"][0]
    assert submitter["spec"]["backoffLimit"] == 0


def test_sidecar_mode_submits_from_the_head_pod_once_its_gcs_answers():
    j = job(submissionMode="SidecarMode", entrypoint="python pi.py --n 3")
    model.validate(j)
    cluster = builders.ray_cluster(j, "pi-abcde", "pi-abcde")
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]
    assert head["restartPolicy"] == "Never"
    ray, sidecar = head["containers"]
    assert sidecar["name"] == "ray-job-submitter" and sidecar["image"] == ray["image"]
    assert sidecar["command"] == ["/bin/bash", "-ce", "--"]
    script = sidecar["args"][0]
    wait, submit = script.split("done ;")
    assert wait.startswith(
        "until wget --tries 1 -T 10 -q -O- http://localhost:8265/api/gcs_healthz"
    )
    assert shlex.split(submit) == [
        "ray", "job", "submit", "--address", "http://127.0.0.1:8265", "--submission-id",
        "pi-abcde", "--", "python", "pi.py", "--n", "3", ";"]  # fmt: skip
    assert "--no-wait" not in script and "ray job logs" not in script  # submit follows itself
    assert {e["name"]: e["value"] for e in sidecar["env"]}["RAY_JOB_SUBMISSION_ID"] == "pi-abcde"
    # Other modes leave the head as the user wrote it.
    plain = builders.ray_cluster(job(), "pi-abcde", "pi-abcde")
    assert len(plain["spec"]["headGroupSpec"]["template"]["spec"]["containers"]) == 1


def _head(state: dict[str, Any] | None) -> dict[str, Any]:
    statuses = [{"name": "ray-head", "state": {"running": {}}}]
    if state is not None:
        statuses.append({"name": "ray-job-submitter", "state": state})
    return {"status": {"containerStatuses": statuses}}


def test_the_sidecar_outcome_reads_the_head_pods_container_status():
    assert st.sidecar_outcome(_head(None)) == (False, None)
    assert st.sidecar_outcome(_head({"running": {}})) == (False, None)
    assert st.sidecar_outcome(_head({"terminated": {"exitCode": 0}})) == (True, None)
    failed = st.sidecar_outcome(_head({"terminated": {"exitCode": 1, "reason": "Error"}}))
    message = "Ray head pod container ray-job-submitter terminated with exit code 1: Error"
    assert failed == (True, message)


def _own_cluster(j: Job) -> Cluster:
    return Cluster.from_body(builders.ray_cluster(j, "pi-abcde", "pi-abcde"))


def test_a_cluster_with_token_auth_gives_its_submitters_the_token_by_reference():
    spec = {**CLUSTER_SPEC, "rayVersion": "2.60.0", "authOptions": {"mode": "token"}}
    j = job(rayClusterSpec=spec)
    model.validate(j)
    cluster = _own_cluster(j)
    assert cluster.token_auth and cluster.auth_secret_name == "pi-abcde"
    token = {"secretKeyRef": {"name": "pi-abcde", "key": "auth_token"}}
    submitter = builders.submitter_job(j, cluster, "a:8265", "id")
    env = submitter["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "RAY_AUTH_MODE", "value": "token"} in env
    assert {"name": "RAY_AUTH_TOKEN", "valueFrom": token} in env
    sidecar = builders.ray_cluster(job(rayClusterSpec=spec, submissionMode="SidecarMode"),
                                   "pi-abcde", "id")  # fmt: skip
    head = sidecar["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    assert {"name": "RAY_AUTH_TOKEN", "valueFrom": token} in head[-1]["env"]
    # Ray before 2.52 has no token authentication: refused, naming the version.
    with pytest.raises(InvalidSpec, match="minimum Ray version is 2.52.0, got 2.46.0"):
        model.validate(job(rayClusterSpec={**spec, "rayVersion": "2.46.0"}))


def test_the_http_submission_body():
    j = job(runtimeEnvYAML="pip: [numpy]", entrypointResources='{"custom": 1}')
    assert builders.submission(j, "id") == {
        "entrypoint": "python pi.py",
        "submission_id": "id",
        "runtime_env": {"pip": ["numpy"]},
        "entrypoint_resources": {"custom": 1},
    }


def test_the_dashboard_url_uses_the_clusters_dashboard_endpoint():
    assert builders.dashboard_url("c", "ns", {"endpoints": {"dashboard": "9000"}}) == (
        "c-head-svc.ns.svc.cluster.local:9000"
    )
    assert builders.dashboard_url("c", "ns", {}).endswith(":8265")
    named = {"head": {"serviceName": "mine"}}  # the cluster's head Service has its own name
    assert builders.dashboard_url("c", "ns", named) == "mine.ns.svc.cluster.local:8265"


def test_initial_status_chooses_names_once():
    first = st.initial(job(), {}, "abcde", NOW)
    assert first["jobId"] == "pi-abcde" and first["rayClusterName"] == "pi-abcde"
    assert first["jobDeploymentStatus"] == st.INITIALIZING
    assert first["startTime"] == "2026-12-02T12:00:00Z"
    again = st.initial(job(), first, "zzzzz", NOW)
    assert again["jobId"] == "pi-abcde" and again["rayClusterName"] == "pi-abcde"
    chosen = st.initial(
        job(jobId="mine", clusterSelector={"ray.io/cluster": "shared"}), {}, "x", NOW
    )
    assert chosen["jobId"] == "mine" and chosen["rayClusterName"] == "shared"


def test_the_deadline_fails_the_job_once_passed():
    j = job(activeDeadlineSeconds=60)
    status = st.initial(j, {}, "abcde", NOW)
    assert not st.deadline_passed(j, status, NOW + timedelta(seconds=59))
    assert st.deadline_passed(j, status, NOW + timedelta(seconds=60))
    failed = st.deadline_failure(j, status, NOW + timedelta(seconds=60))
    assert failed["jobDeploymentStatus"] == st.FAILED
    assert failed["reason"] == st.REASON_DEADLINE_EXCEEDED
    assert failed["failed"] == 1 and failed["succeeded"] == 0
    assert not st.deadline_passed(job(), status, NOW + timedelta(days=1))


def test_a_terminal_ray_job_ends_the_deployment_only_once_the_submitter_is_done():
    status = st.initial(job(), {}, "abcde", NOW)
    info = {"status": "SUCCEEDED", "message": "done", "start_time": 1764676800000,
            "end_time": 1764676860000}  # fmt: skip
    waiting = st.with_job_info(status, info, {"state": "ready"}, False, NOW)
    assert waiting["jobStatus"] == "SUCCEEDED"
    assert waiting["jobDeploymentStatus"] == st.INITIALIZING
    done = st.with_job_info(status, info, {"state": "ready"}, True, NOW)
    assert done["jobDeploymentStatus"] == st.COMPLETE and done["succeeded"] == 1
    assert done["endTime"] == "2026-12-02T12:00:00Z"
    assert done["rayJobInfo"] == {"startTime": "2025-12-02T12:00:00Z",
                                  "endTime": "2025-12-02T12:01:00Z"}  # fmt: skip
    failed = st.with_job_info(status, {**info, "status": "FAILED"}, {}, True, NOW)
    assert failed["jobDeploymentStatus"] == st.FAILED
    assert failed["reason"] == st.REASON_APP_FAILED and failed["failed"] == 1


def test_a_failure_is_retried_on_a_new_cluster_while_backoff_limit_allows():
    j = job(backoffLimit=2)
    status = st.initial(j, {}, "abcde", NOW)
    info = {"status": "FAILED", "message": "boom"}
    for attempt in (1, 2):
        failed = st.with_job_info(status, info, {}, True, NOW)
        retrying = st.retry_if_allowed(j, st.RUNNING, failed)
        assert retrying["jobDeploymentStatus"] == st.RETRYING and retrying["failed"] == attempt
        # Released, then back to New: a new job id and cluster, the counts kept.
        fresh = st.restarted(retrying)
        assert fresh["jobDeploymentStatus"] == st.NEW and "jobId" not in fresh
        status = st.initial(j, fresh, f"try{attempt}", NOW)
        assert status["rayClusterName"] == f"pi-try{attempt}"
    final = st.retry_if_allowed(j, st.RUNNING, st.with_job_info(status, info, {}, True, NOW))
    assert final["jobDeploymentStatus"] == st.FAILED and final["failed"] == 3
    # Without retries, a passed deadline, or a failure already recorded: as it is.
    no_retries = st.with_job_info(st.initial(job(), {}, "x", NOW), info, {}, True, NOW)
    assert st.retry_if_allowed(job(), st.RUNNING, no_retries)["jobDeploymentStatus"] == st.FAILED
    late = st.deadline_failure(j, st.initial(j, {}, "x", NOW), NOW)
    assert st.retry_if_allowed(j, st.RUNNING, late)["jobDeploymentStatus"] == st.FAILED
    assert st.retry_if_allowed(j, st.FAILED, final)["jobDeploymentStatus"] == st.FAILED


def test_interactive_mode_waits_for_the_users_job_id():
    j = job(submissionMode="InteractiveMode", entrypoint="")
    model.validate(j)  # no entrypoint: the user submits it
    status = st.initial(j, {}, "abcde", NOW)
    assert "jobId" not in status and status["rayClusterName"] == "pi-abcde"
    waiting = {**status, "jobDeploymentStatus": st.WAITING}
    assert st.job_id_given(j, waiting) == waiting
    named = job(submissionMode="InteractiveMode", entrypoint="", jobId="raysubmit_1")
    running = st.job_id_given(named, waiting)
    assert running["jobDeploymentStatus"] == st.RUNNING and running["jobId"] == "raysubmit_1"


def test_the_submitter_outcome_reads_the_jobs_conditions():
    assert st.submitter_outcome(None) == (False, None, None)
    running = {"status": {"active": 1}}
    assert st.submitter_outcome(running) == (False, None, None)
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True",
              "reason": "BackoffLimitExceeded", "message": "too many",
              "lastTransitionTime": "t"}]}}  # fmt: skip
    finished, message, when = st.submitter_outcome(failed)
    assert finished and when == "t"
    assert message == "Job submission has failed. Reason: BackoffLimitExceeded. Message: too many"
    complete = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert st.submitter_outcome(complete)[:2] == (True, None)


def test_suspending_forgets_the_run_and_resuming_starts_afresh():
    running = {**st.initial(job(), {}, "abcde", NOW), "jobStatus": "RUNNING",
               "dashboardURL": "x:8265", "message": "m"}  # fmt: skip
    suspended = st.suspended(running)
    assert suspended["jobDeploymentStatus"] == st.SUSPENDED and suspended["jobStatus"] == ""
    assert not {"jobId", "rayClusterName", "dashboardURL", "message"} & set(suspended)
    assert st.restarted(suspended)["jobDeploymentStatus"] == st.NEW


def test_the_cluster_of_a_finished_job_goes_after_the_ttl_only_when_asked():
    ended = {"endTime": "2026-12-02T12:00:00Z"}
    assert st.shutdown_at(job(), ended) is None
    j = job(shutdownAfterJobFinishes=True, ttlSecondsAfterFinished=30)
    assert st.shutdown_at(j, ended) == NOW + timedelta(seconds=30)
    selector = job(shutdownAfterJobFinishes=True, clusterSelector={"ray.io/cluster": "c"})
    assert st.shutdown_at(selector, ended) is None
