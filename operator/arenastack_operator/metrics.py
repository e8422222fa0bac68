"""The operator's Prometheus metrics, kept in their own registry (one instance per process)."""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

NAMESPACE = "arenastack_operator"

# Reconciles range from a status patch (tens of ms) to building many child objects (seconds).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

RESULT_SUCCESS = "success"
RESULT_RETRY = "retry"  # kopf.TemporaryError: kopf retries after the given delay
RESULT_ERROR = "error"  # any other exception (kopf retries with backoff, or gives up if permanent)
RESULT_CANCELLED = "cancelled"  # the operator stopped while the handler ran
RESULTS = (RESULT_SUCCESS, RESULT_RETRY, RESULT_ERROR, RESULT_CANCELLED)


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.reconciles = Counter(
            "reconciles",
            "Reconcile handler runs, by resource kind and result.",
            ["kind", "result"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.reconcile_duration = Histogram(
            "reconcile_duration_seconds",
            "Wall time of reconcile handler runs, by resource kind.",
            ["kind"],
            namespace=NAMESPACE,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.managed_objects = Gauge(
            "managed_objects",
            "Custom resources the operator currently manages, by kind and phase.",
            ["kind", "phase"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.leader = Gauge(
            "leader",
            "1 while this replica holds the leader lease and reconciles, 0 while on standby.",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.leadership_acquisitions = Counter(
            "leadership_acquisitions",
            "Times this replica acquired the leader lease.",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.api_requests = Counter(
            "api_requests",
            "Requests of the reconcilers to the apiserver, by kind, method, resource and code.",
            ["kind", "method", "resource", "code"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "workqueue_depth",
            "Objects waiting in a kind's work queue (not counting those being reconciled).",
            ["kind"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.scaling_decisions = Counter(
            "inferencedeployment_scaling_decisions",
            "Replica changes the autoscaler made, by InferenceDeployment and direction.",
            ["namespace", "inferencedeployment", "direction"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.objects = ObjectSeries()
        self.registry.register(self.objects)
        self.info = Info(
            "build",
            "Identity of this operator replica.",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self._phases: dict[str, PhaseTracker] = {}
        self._phases_lock = threading.Lock()

    def with_process_collectors(self) -> OperatorMetrics:
        """Add the standard process_*/python_* series (only once per process: they are global)."""
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        return self

    def phases(self, kind: str) -> PhaseTracker:
        with self._phases_lock:
            if kind not in self._phases:
                self._phases[kind] = PhaseTracker(self.managed_objects, kind)
            return self._phases[kind]

    def start_kind(self, kind: str) -> None:
        """Export a kind's reconcile series at 0 before its first reconcile, so that rates and
        alerts over them have data (a missing series and none happening look alike)."""
        for result in RESULTS:
            self.reconciles.labels(kind=kind, result=result)
        self.reconcile_duration.labels(kind=kind)

    def api_requests_of(self, kind: str) -> Callable[[str, str, int], None]:
        """What a kind's KubeClient calls with each response (KubeClient's `count`)."""

        def count(method: str, resource: str, status: int) -> None:
            self.api_requests.labels(kind, method, resource, str(status)).inc()

        return count

    def set_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)
        if leading:
            self.leadership_acquisitions.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class PhaseTracker:
    """Keeps `managed_objects{kind,phase}` equal to the count of known objects in each phase.

    A phase that empties stays exported as 0 rather than vanishing, so rate/alert queries over it
    do not see gaps.
    """

    def __init__(self, gauge: Gauge, kind: str) -> None:
        self._gauge = gauge
        self._kind = kind
        self._by_object: dict[str, str] = {}
        self._lock = threading.Lock()

    def observe(self, key: str, phase: str) -> None:
        with self._lock:
            previous = self._by_object.get(key)
            if previous == phase:
                return
            self._by_object[key] = phase
            self._publish({phase} | ({previous} if previous else set()))

    def forget(self, key: str) -> None:
        with self._lock:
            previous = self._by_object.pop(key, None)
            if previous is not None:
                self._publish({previous})

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(Tally(self._by_object.values()))

    def _publish(self, phases: set[str]) -> None:
        tally = Tally(self._by_object.values())
        for phase in phases:
            self._gauge.labels(kind=self._kind, phase=phase).set(tally.get(phase, 0))


# -- per-object series --------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """One per-object gauge: its name after the namespace prefix, help, and the labels it has
    beside `namespace` and the object's name (labelled with the kind in lower case)."""

    name: str
    help: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sample:
    family: Family
    value: float
    labels: tuple[str, ...] = ()  # values of family.labels, in order


class ObjectSeries(Collector):
    """Gauges about each managed object (replicas desired and ready, the autoscaler's reading,
    an evaluation's progress), exported as last reported and dropped with the object.

    Each object may have several sources (its status as watched, its pods as the reconciler
    counted them), so one source's update never erases another's samples.
    """

    def __init__(self) -> None:
        self._by_object: dict[tuple[str, str, str], dict[str, tuple[Sample, ...]]] = {}
        self._families: dict[str, tuple[str, Family]] = {}
        self._lock = threading.Lock()

    def set(
        self, kind: str, namespace: str, name: str, source: str, samples: Iterable[Sample]
    ) -> None:
        samples = tuple(samples)
        with self._lock:
            for sample in samples:
                self._families.setdefault(sample.family.name, (kind, sample.family))
            self._by_object.setdefault((kind, namespace, name), {})[source] = samples

    def forget(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            self._by_object.pop((kind, namespace, name), None)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # the families appear as objects report them

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            families = dict(self._families)
            objects = {key: dict(sources) for key, sources in self._by_object.items()}
        out: dict[str, GaugeMetricFamily] = {}
        for name, (kind, family) in families.items():
            out[name] = GaugeMetricFamily(
                f"{NAMESPACE}_{name}",
                family.help,
                labels=["namespace", kind.lower(), *family.labels],
            )
        for (_, namespace, obj), sources in objects.items():
            for samples in sources.values():
                for sample in samples:
                    out[sample.family.name].add_metric(
                        [namespace, obj, *sample.labels], sample.value
                    )
        yield from out.values()


def samples_of(
    family: Family, values: Sequence[tuple[tuple[str, ...], float | None]]
) -> list[Sample]:
    """Samples of one family, leaving out values that are not known (None)."""
    return [Sample(family, float(v), labels) for labels, v in values if v is not None]
