"""The reconcile instrumentation: counters by result, duration histogram, objects by phase."""

import asyncio

import kopf
import pytest

from arenastack_operator.metrics import OperatorMetrics
from arenastack_operator.reconcile import instrumented, object_key, phase_of


def sample(metrics: OperatorMetrics, name: str, **labels) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def reconciles(metrics, kind, result) -> float:
    return sample(metrics, "arenastack_operator_reconciles_total", kind=kind, result=result)


def durations(metrics, kind) -> float:
    return sample(metrics, "arenastack_operator_reconcile_duration_seconds_count", kind=kind)


def test_sync_handler_success_is_counted_and_timed():
    metrics = OperatorMetrics()

    @instrumented("RayCluster", metrics)
    def handler(x, **_):
        return x * 2

    assert handler(21, body={}) == 42
    assert handler.__name__ == "handler"
    assert reconciles(metrics, "RayCluster", "success") == 1
    assert durations(metrics, "RayCluster") == 1
    assert reconciles(metrics, "RayCluster", "error") == 0


@pytest.mark.parametrize(
    ("error", "result"),
    [
        (RuntimeError("boom"), "error"),
        (kopf.PermanentError("bad spec"), "error"),
        (kopf.TemporaryError("not yet", delay=1), "retry"),
    ],
)
def test_sync_handler_failures_are_classified_and_reraised(error, result):
    metrics = OperatorMetrics()

    @instrumented("InferenceDeployment", metrics)
    def handler(**_):
        raise error

    with pytest.raises(type(error)):
        handler()
    assert reconciles(metrics, "InferenceDeployment", result) == 1
    assert reconciles(metrics, "InferenceDeployment", "success") == 0
    assert durations(metrics, "InferenceDeployment") == 1


async def test_async_handler_is_awaited_and_counted():
    metrics = OperatorMetrics()

    @instrumented("ArenaEvaluation", metrics)
    async def handler(**_):
        await asyncio.sleep(0.01)
        return "done"

    assert asyncio.iscoroutinefunction(handler)
    assert await handler() == "done"
    assert reconciles(metrics, "ArenaEvaluation", "success") == 1
    total = sample(
        metrics, "arenastack_operator_reconcile_duration_seconds_sum", kind="ArenaEvaluation"
    )
    assert total >= 0.01


async def test_async_handler_cancelled_at_shutdown_is_counted_as_cancelled():
    metrics = OperatorMetrics()
    started = asyncio.Event()

    @instrumented("RayCluster", metrics)
    async def handler(**_):
        started.set()
        await asyncio.sleep(60)

    task = asyncio.create_task(handler())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reconciles(metrics, "RayCluster", "cancelled") == 1


def test_phase_tracker_counts_objects_per_phase_and_forgets_deleted_ones():
    metrics = OperatorMetrics()
    tracker = metrics.phases("RayCluster")

    def gauge(phase):
        return sample(
            metrics, "arenastack_operator_managed_objects", kind="RayCluster", phase=phase
        )

    tracker.observe("ns/a", "Pending")
    tracker.observe("ns/b", "Pending")
    assert gauge("Pending") == 2
    tracker.observe("ns/a", "Ready")
    assert (gauge("Pending"), gauge("Ready")) == (1, 1)
    tracker.observe("ns/a", "Ready")  # no change, no double count
    assert gauge("Ready") == 1
    tracker.forget("ns/a")
    tracker.forget("ns/unknown")
    assert (gauge("Pending"), gauge("Ready")) == (1, 0)
    assert tracker.counts() == {"Pending": 1}


def test_phase_of_prefers_explicit_phase_then_conditions():
    assert phase_of({}) == "Pending"
    assert phase_of({"status": {"state": "ready"}}) == "Ready"  # KubeRay's RayCluster
    assert phase_of({"status": {"phase": "Running"}}) == "Running"
    conditions = [
        {"type": "Ready", "status": "True"},
        {"type": "Degraded", "status": "True"},
    ]
    assert phase_of({"status": {"conditions": conditions}}) == "Degraded"
    progressing = [{"type": "Progressing", "status": "True"}, {"type": "Ready", "status": "False"}]
    assert phase_of({"status": {"conditions": progressing}}) == "Progressing"


def test_object_key():
    assert object_key({"metadata": {"namespace": "ns", "name": "x"}}) == "ns/x"


def test_exposition_has_the_documented_series():
    metrics = OperatorMetrics()

    @instrumented("RayCluster", metrics)
    def handler(**_):
        return None

    handler()
    metrics.phases("RayCluster").observe("ns/a", "Ready")
    metrics.set_leader(True)
    text = metrics.exposition().decode()
    for line in (
        'arenastack_operator_reconciles_total{kind="RayCluster",result="success"} 1.0',
        'arenastack_operator_reconcile_duration_seconds_count{kind="RayCluster"} 1.0',
        'arenastack_operator_managed_objects{kind="RayCluster",phase="Ready"} 1.0',
        "arenastack_operator_leader 1.0",
        "arenastack_operator_leadership_acquisitions_total 1.0",
    ):
        assert line in text.splitlines(), line
