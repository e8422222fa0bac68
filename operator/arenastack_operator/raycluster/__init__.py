"""KubeRay's `ray.io/v1` RayCluster, reconciled by arenastack.

Layers, each usable without the next:
- spec.py: the typed API (it also generates the CRD); model.py: a parsed cluster with KubeRay's
  defaults and the checks the schema cannot make.
- Pure builders: pods.py (head and worker pods), service.py (head and headless Services),
  autoscaler.py (sidecar and its RBAC), plan.py (what to create and delete), status.py
  (KubeRay's status).
  `python -m arenastack_operator.raycluster.render manifest.yaml` prints what they build.
- handlers.py: watch events -> work queue -> reconcile with kubeclient.py.

Behaviour worth knowing:
- Scale-down with in-tree autoscaling deletes only the pods in scaleStrategy.workersToDelete;
  without it, those first, then pods that are not Ready, then the newest.
- Pods count only when not terminating and owned (by uid) by the cluster.
- A spec the apiserver accepts but no pod can come from (GCS fault tolerance without Redis,
  the rocksdb backend, non-numeric rayStartParams sizes, conflicting autoscaler versions) sets
  condition ReplicaFailure with reason InvalidRayClusterSpec and state `failed`; pods the
  apiserver refuses set ReplicaFailure with FailedCreateHeadPod/FailedCreateWorkerPod.
- The head Service is created once and not updated afterwards (as KubeRay does).
- GCS fault tolerance in Redis (gcsFaultToleranceOptions, or KubeRay's older annotation
  ray.io/ft-enabled with RAY_REDIS_ADDRESS on the head): the cluster carries KubeRay's
  finalizer; once deleted, its pods go, then a Job built from the head pod deletes its storage
  namespace from Redis, then the finalizer (best effort: a failed Job or a namespace being
  deleted lets it go with a warning).
- Accelerators Ray does not detect in a pod (google.com/tpu, aws.amazon.com/neuroncore limits)
  become Ray resources (TPU, neuron_cores) unless --resources names one; multi-host worker
  groups (numOfHosts > 1) get the headless Service `<cluster>-headless` over every worker.
- ray.io/overwrite-container-cmd: "true" keeps the Ray container's command as written (it runs
  $KUBERAY_GEN_RAY_START_CMD itself); the autoscaler's generated command is likewise in
  $KUBERAY_GEN_AUTOSCALER_START_CMD for autoscalerOptions.args to wrap.
- Token authentication (authOptions, mode token; Ray >= 2.52): auth.py makes the Secret
  `<cluster>` with a random token (unless authOptions.secretName names one); every Ray
  container, wait-gcs-ready and the autoscaler get RAY_AUTH_MODE and RAY_AUTH_TOKEN by
  reference to it.

Refused as not supported yet (ReplicaFailure, InvalidRayClusterSpec, with the reason):
authOptions.enableK8sTokenAuth, tlsOptions.enabled, networkPolicy, historyServerOptions,
headGroupSpec.enableIngress, and the rocksdb GCS backend (as KubeRay does without its feature
gate). Not done yet: multi-host replica labels for numOfHosts > 1 (pods are counted as
replicas x numOfHosts, but not grouped).
"""
