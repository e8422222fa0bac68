"""kopf handlers for InferenceDeployment.

Thin on purpose: the real reconciler replaces `reconcile_inferencedeployment`.
"""

from __future__ import annotations

import kopf

from arenastack_operator import conditions, constants, reconcile
from arenastack_operator.metrics import OperatorMetrics

KIND = constants.INFERENCEDEPLOYMENT

# Skeleton: records status.observedGeneration and a Progressing condition only.
reconcile_inferencedeployment = conditions.observe_only


def register(registry: kopf.OperatorRegistry, metrics: OperatorMetrics) -> None:
    reconcile.register_reconciler(registry, KIND, metrics, reconcile_inferencedeployment)
