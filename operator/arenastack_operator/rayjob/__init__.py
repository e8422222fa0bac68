"""KubeRay's `ray.io/v1` RayJob, reconciled by arenastack.

Layers, each usable without the next:
- spec.py: the typed API (it also generates the CRD); model.py: a parsed job and the checks
  KubeRay makes at reconcile time.
- Pure builders: builders.py (the job's RayCluster, the submitter Job, the Jobs API body),
  status.py (one step of KubeRay's jobDeploymentStatus machine), deletion.py (what
  deletionStrategy deletes, and when).
- dashboard.py: Ray's Jobs API on the head; handlers.py: watch events -> work queue ->
  reconcile.

Behaviour worth knowing:
- The RayCluster is made from rayClusterSpec once (`<job>-<5 characters>`, owned by the job);
  later changes of rayClusterSpec do not reach it, as with KubeRay. With clusterSelector the
  job runs on the named existing cluster and never deletes it.
- K8sJobMode: a Job named after the RayJob runs `ray job submit --no-wait` (skipped when the
  job id exists already) and follows the job's logs, in the head's image unless
  submitterPodTemplate says otherwise. HTTPMode: the operator submits through the dashboard.
  SidecarMode: a submitter container in the head pod (restartPolicy Never) waits for the GCS,
  submits and follows; its exit code ends the job. InteractiveMode: once the cluster is
  ready the job is Waiting until spec.jobId names the job you submitted, then follows it.
- Status comes from the dashboard every 3 s while the job runs. Complete or Failed (reason
  AppFailed, SubmissionFailed or DeadlineExceeded) are final; shutdownAfterJobFinishes deletes
  the cluster ttlSecondsAfterFinished after the end, keeping the submitter Job for its logs.
- suspend deletes the cluster and submitter (Suspending -> Suspended); unsetting it starts
  the job afresh.
- backoffLimit: a failure (but a passed deadline) with retries left goes to Retrying, which
  deletes the cluster and submitter and starts again with a new job id and cluster; `failed`
  counts every attempt, and the job ends Failed after backoffLimit + 1 of them.

- deletionStrategy (deletion.py; behind a feature gate in KubeRay, always on here, with
  KubeRay's checks): deletionRules or the legacy onSuccess/onFailure pair; at each due time the
  most far-reaching policy not yet done acts (DeleteWorkers suspends every worker group,
  DeleteCluster, DeleteSelf).

Every field of KubeRay's RayJob is acted on; what KubeRay refuses is refused with
ValidationFailed and its reason.
"""
