"""kopf handlers for ArenaEvaluation.

Thin on purpose: the real reconciler replaces `reconcile_arenaevaluation`.
"""

from __future__ import annotations

import kopf

from arenastack_operator import conditions, constants, reconcile
from arenastack_operator.metrics import OperatorMetrics

KIND = constants.ARENAEVALUATION

# Skeleton: records status.observedGeneration and a Progressing condition only.
reconcile_arenaevaluation = conditions.observe_only


def register(registry: kopf.OperatorRegistry, metrics: OperatorMetrics) -> None:
    reconcile.register_reconciler(registry, KIND, metrics, reconcile_arenaevaluation)
