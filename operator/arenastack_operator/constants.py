"""Names, ports, labels and annotation keys of the operator: the single place they are defined.

Every other module (handlers, builders, tests, the chart's generator) imports them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# -- API groups and the kinds the operator reconciles ---------------------------------------------

GROUP: Final = "arenastack.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

RAY_GROUP: Final = "ray.io"
RAY_VERSION: Final = "v1"
RAY_API_VERSION: Final = f"{RAY_GROUP}/{RAY_VERSION}"

CATEGORY: Final = "arenastack"


@dataclass(frozen=True)
class KindRef:
    """One custom resource kind: what kopf needs to watch it and what metrics label it with."""

    group: str
    version: str
    kind: str
    plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def selector(self) -> tuple[str, str, str]:
        """Positional (group, version, plural) arguments for kopf's decorators."""
        return (self.group, self.version, self.plural)


RAYCLUSTER: Final = KindRef(RAY_GROUP, RAY_VERSION, "RayCluster", "rayclusters")
INFERENCEDEPLOYMENT: Final = KindRef(GROUP, VERSION, "InferenceDeployment", "inferencedeployments")
RAYJOB: Final = KindRef(RAY_GROUP, RAY_VERSION, "RayJob", "rayjobs")
ARENAEVALUATION: Final = KindRef(GROUP, VERSION, "ArenaEvaluation", "arenaevaluations")
MANAGED_KINDS: Final = (RAYCLUSTER, RAYJOB, INFERENCEDEPLOYMENT, ARENAEVALUATION)

# -- Labels (recommended Kubernetes labels plus our own) ------------------------------------------

LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
PART_OF: Final = "arenastack"
MANAGED_BY: Final = "arenastack-operator"

# -- Annotations and finalizer ---------------------------------------------------------------------

# kopf keeps its per-handler progress and last-handled configuration under this prefix. Annotations
# under a kopf storage prefix are excluded from kopf's change detection, so keys we add here (such
# as the reconciler's identity) never trigger another update handler run.
KOPF_ANNOTATION_PREFIX: Final = f"operator.{GROUP}"
DIFFBASE_KEY: Final = "last-handled-configuration"
FINALIZER: Final = f"{GROUP}/finalizer"
# On children the operator keeps up to date: the hash of the fields it last wrote.
ANNOTATION_APPLIED_HASH: Final = f"{GROUP}/applied-hash"

# -- Conditions ------------------------------------------------------------------------------------

CONDITION_READY: Final = "Ready"
CONDITION_PROGRESSING: Final = "Progressing"
CONDITION_DEGRADED: Final = "Degraded"

# -- Process: ports, leader election, environment --------------------------------------------------

OPERATOR_NAME: Final = "arenastack-operator"
DEFAULT_METRICS_PORT: Final = 8080
DEFAULT_HEALTH_PORT: Final = 8081
DEFAULT_BIND_ADDRESS: Final = "0.0.0.0"
HEALTHZ_PATH: Final = "/healthz"
READYZ_PATH: Final = "/readyz"
METRICS_PATH: Final = "/metrics"

DEFAULT_LEASE_NAME: Final = OPERATOR_NAME
# client-go's leaderelection defaults (kube-controller-manager uses the same values).
DEFAULT_LEASE_DURATION_S: Final = 15.0
DEFAULT_RENEW_DEADLINE_S: Final = 10.0
DEFAULT_RETRY_PERIOD_S: Final = 2.0
# How long a SIGTERMed leader waits for kopf before it gives up on its handlers. Longer than
# kopf's own fixed 5 s wait for tasks that outlive its shutdown (API discovery requests caught
# mid-retry by the stop wait for a re-login that never comes), so kopf always finishes itself.
DEFAULT_SHUTDOWN_TIMEOUT_S: Final = 10.0
# The arena image carries the evaluation runner; its tag follows the chart's appVersion.
DEFAULT_EVALUATION_IMAGE: Final = "ghcr.io/arenastack/arena:0.1.0"

# Exit status when the lease is lost: non-zero so the Deployment restarts the pod.
EXIT_LEADERSHIP_LOST: Final = 3
EXIT_CONFIG_ERROR: Final = 2
EXIT_FAILURE: Final = 1

ENV_PREFIX: Final = "ARENASTACK_"
SERVICEACCOUNT_NAMESPACE_FILE: Final = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
