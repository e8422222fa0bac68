"""Lease-based leader election (coordination.k8s.io/v1), following client-go's leaderelection.

Why a Lease and not kopf's peering: kopf's peering is a priority scheme, not an election. Replicas
of one Deployment share a priority, and kopf then pauses *every* same-priority peer ("possibly
conflicting operators") instead of picking one, so two replicas would both sit idle; breaking the
tie needs per-pod priorities that a Deployment cannot give. Peering also needs its own
KopfPeering CRD and cluster-wide write access to it. A Lease is the standard Kubernetes mechanism
(kube-controller-manager, kube-scheduler and controller-runtime all use it), needs only
get/create/update on one named object, and has well-understood timing: the leader stops
reconciling within `renew_deadline` of its last successful renewal, while standbys wait the full
`lease_duration` from the moment they last saw the record change, so even with clock skew the old
leader is gone before a new one starts. kopf runs standalone (no peering) under this election.

The pure parts (record arithmetic, expiry, renew deadline) are plain functions over explicit
times; `LeaderElector` adds the API calls.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from arenastack_operator import constants

logger = logging.getLogger(__name__)

# client-go waits retry_period * (1 + random * JITTER) between attempts of a standby, so that
# standbys do not hit the apiserver in lockstep.
JITTER_FACTOR = 1.2


class LeadershipLost(Exception):
    """The lease could not be renewed within the renew deadline, or another holder took it."""


@dataclass(frozen=True)
class LeaseTiming:
    lease_duration: float = constants.DEFAULT_LEASE_DURATION_S
    renew_deadline: float = constants.DEFAULT_RENEW_DEADLINE_S
    retry_period: float = constants.DEFAULT_RETRY_PERIOD_S

    def validate(self) -> None:
        """Same constraints as client-go: otherwise two leaders could overlap."""
        if self.retry_period <= 0:
            raise ValueError(f"retry period must be positive, got {self.retry_period}")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError(
                f"lease duration ({self.lease_duration}s) must be greater than the renew "
                f"deadline ({self.renew_deadline}s)"
            )
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ValueError(
                f"renew deadline ({self.renew_deadline}s) must be greater than "
                f"{JITTER_FACTOR} x retry period ({self.retry_period}s)"
            )

    @property
    def request_timeout(self) -> float:
        """One API call must not eat the whole renew deadline, or a hung call would hide a loss."""
        return max(0.5, min(self.retry_period * 2, self.renew_deadline / 2))


@dataclass(frozen=True)
class LeaseRecord:
    """The election-relevant part of a Lease's spec, plus its resourceVersion for CAS updates."""

    holder: str | None
    lease_duration: float
    acquire_time: datetime | None
    renew_time: datetime | None
    transitions: int
    resource_version: str | None = None

    def same_contents(self, other: LeaseRecord | None) -> bool:
        """Whether only the resourceVersion differs (how a holder's renewal is detected)."""
        return other is not None and replace(self, resource_version=None) == replace(
            other, resource_version=None
        )


def is_held_by_other(
    record: LeaseRecord | None, identity: str, observed_at: float, now: float
) -> bool:
    """Whether a valid lease of someone else blocks us.

    Expiry is measured from `observed_at`, the local monotonic time when we last saw the record
    change, not from the record's renewTime: clocks of different machines may disagree, our own
    monotonic clock cannot (that is what client-go does too).
    """
    if record is None or not record.holder or record.holder == identity:
        return False
    return now < observed_at + record.lease_duration


def next_observation(
    previous: LeaseRecord | None,
    previous_observed_at: float,
    current: LeaseRecord | None,
    now: float,
) -> float:
    """The new `observed_at`: reset whenever the record changed (the holder renewed or changed)."""
    if current is not None and current.same_contents(previous):
        return previous_observed_at
    return now


def claimed_record(
    current: LeaseRecord | None, identity: str, lease_duration: float, wall_now: datetime
) -> LeaseRecord:
    """The record to write to acquire or renew the lease for `identity`."""
    if current is not None and current.holder == identity:
        return replace(current, lease_duration=lease_duration, renew_time=wall_now)
    return LeaseRecord(
        holder=identity,
        lease_duration=lease_duration,
        acquire_time=wall_now,
        renew_time=wall_now,
        transitions=(current.transitions + 1) if current is not None else 0,
        resource_version=current.resource_version if current is not None else None,
    )


def released_record(current: LeaseRecord, wall_now: datetime) -> LeaseRecord:
    """What a leader writes on a clean shutdown so a standby can take over at once.

    Like client-go's ReleaseOnCancel: an empty holder and a 1-second duration.
    """
    return replace(
        current, holder=None, lease_duration=1, acquire_time=wall_now, renew_time=wall_now
    )


def renew_deadline_passed(last_renewed_at: float, now: float, timing: LeaseTiming) -> bool:
    return now - last_renewed_at >= timing.renew_deadline


def standby_wait(timing: LeaseTiming, rand: Callable[[], float] = random.random) -> float:
    return timing.retry_period * (1 + rand() * (JITTER_FACTOR - 1))


# -- API access ------------------------------------------------------------------------------


def _record_from_lease(lease: client.V1Lease) -> LeaseRecord:
    spec = lease.spec or client.V1LeaseSpec()
    return LeaseRecord(
        holder=spec.holder_identity or None,
        lease_duration=float(spec.lease_duration_seconds or 0),
        acquire_time=spec.acquire_time,
        renew_time=spec.renew_time,
        transitions=spec.lease_transitions or 0,
        resource_version=lease.metadata.resource_version if lease.metadata else None,
    )


def _lease_from_record(record: LeaseRecord, namespace: str, name: str) -> client.V1Lease:
    return client.V1Lease(
        metadata=client.V1ObjectMeta(
            name=name,
            namespace=namespace,
            resource_version=record.resource_version,
            labels={
                constants.LABEL_PART_OF: constants.PART_OF,
                constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
            },
        ),
        spec=client.V1LeaseSpec(
            holder_identity=record.holder,
            # The API field is whole seconds; round up so a sub-second duration is never 0.
            lease_duration_seconds=max(1, int(-(-record.lease_duration // 1))),
            acquire_time=record.acquire_time,
            renew_time=record.renew_time,
            lease_transitions=record.transitions,
        ),
    )


class LeaseClient:
    """Reads and writes one Lease with optimistic concurrency (resourceVersion)."""

    def __init__(
        self, api_client: client.ApiClient, namespace: str, name: str, timeout: float
    ) -> None:
        self._api = client.CoordinationV1Api(api_client)
        self.namespace = namespace
        self.name = name
        self._timeout = timeout

    def get(self) -> LeaseRecord | None:
        try:
            lease = self._api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self._timeout
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return _record_from_lease(lease)

    def write(self, record: LeaseRecord) -> LeaseRecord | None:
        """Create or update; None when someone else changed the lease first (409)."""
        body = _lease_from_record(record, self.namespace, self.name)
        try:
            if record.resource_version is None:
                lease = self._api.create_namespaced_lease(
                    self.namespace, body, _request_timeout=self._timeout
                )
            else:
                lease = self._api.replace_namespaced_lease(
                    self.name, self.namespace, body, _request_timeout=self._timeout
                )
        except ApiException as e:
            if e.status == 409:
                return None
            raise
        return _record_from_lease(lease)


def _wall_now() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    """Acquires, renews and releases the lease; blocking API calls run in a worker thread."""

    def __init__(
        self,
        lease: LeaseClient,
        identity: str,
        timing: LeaseTiming,
        *,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease = lease
        self.identity = identity
        self.timing = timing
        self.is_leader = False
        self.observed_holder: str | None = None
        # Monotonic time of the last successful round trip; health checks read it.
        self.last_contact: float | None = None
        self._on_change = on_change
        self._clock = clock
        self._record: LeaseRecord | None = None
        self._observed_at = 0.0

    def _set_leader(self, value: bool) -> None:
        if value != self.is_leader:
            self.is_leader = value
            if self._on_change is not None:
                self._on_change(value)

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        result = await asyncio.to_thread(fn, *args)
        self.last_contact = self._clock()
        return result

    async def try_acquire_or_renew(self) -> bool:
        """One attempt, as client-go's tryAcquireOrRenew."""
        current = await self._call(self.lease.get)
        now = self._clock()
        self._observed_at = next_observation(self._record, self._observed_at, current, now)
        self._record = current
        self.observed_holder = current.holder if current is not None else None
        if is_held_by_other(current, self.identity, self._observed_at, now):
            return False
        claim = claimed_record(current, self.identity, self.timing.lease_duration, _wall_now())
        written = await self._call(self.lease.write, claim)
        if written is None:
            return False
        if current is None or current.holder != self.identity:
            logger.info(
                "Acquired the lease",
                extra={
                    "lease": self.lease.name,
                    "identity": self.identity,
                    "previous_holder": current.holder if current else None,
                },
            )
        self._record = written
        self._observed_at = self._clock()
        self.observed_holder = self.identity
        return True

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait as a standby until the lease is ours (True) or `stop` is set (False)."""
        logger.info(
            "Waiting for the lease",
            extra={"lease": f"{self.lease.namespace}/{self.lease.name}", "identity": self.identity},
        )
        while not stop.is_set():
            try:
                if await self.try_acquire_or_renew():
                    self._set_leader(True)
                    return True
            except Exception as e:  # any API failure means: try again later
                logger.warning("Lease attempt failed: %s", e, extra={"identity": self.identity})
            try:
                await asyncio.wait_for(stop.wait(), standby_wait(self.timing))
            except TimeoutError:
                pass
        return False

    async def hold(self) -> None:
        """Renew every retry period; raise LeadershipLost once the renew deadline passes.

        Runs until cancelled (clean shutdown) or until leadership is lost.
        """
        last_renewed = self._clock()
        while True:
            await asyncio.sleep(self.timing.retry_period)
            try:
                remaining = self.timing.renew_deadline - (self._clock() - last_renewed)
                renewed = await asyncio.wait_for(self.try_acquire_or_renew(), max(remaining, 0))
            except TimeoutError:
                renewed = False
            except asyncio.CancelledError:
                raise
            except Exception as e:  # retried until the deadline decides
                logger.warning("Lease renewal failed: %s", e, extra={"identity": self.identity})
                renewed = False
            if renewed:
                last_renewed = self._clock()
                continue
            if self.observed_holder not in (None, self.identity):
                self._set_leader(False)
                raise LeadershipLost(f"the lease is now held by {self.observed_holder}")
            if renew_deadline_passed(last_renewed, self._clock(), self.timing):
                self._set_leader(False)
                raise LeadershipLost(
                    f"could not renew the lease within {self.timing.renew_deadline}s"
                )

    async def release(self) -> bool:
        """Give the lease up if we hold it, so a standby takes over without waiting for expiry.

        Re-reads first: a renewal cancelled mid-flight may still have changed the resourceVersion.
        """
        if not self.is_leader:
            return False
        self._set_leader(False)
        for _ in range(3):
            try:
                current = await self._call(self.lease.get)
                if current is None or current.holder != self.identity:
                    return False
                written = await self._call(self.lease.write, released_record(current, _wall_now()))
            except Exception as e:  # the lease then simply expires
                logger.warning("Could not release the lease: %s", e)
                return False
            if written is not None:
                logger.info("Released the lease", extra={"lease": self.lease.name})
                return True
        logger.warning("Could not release the lease: it kept changing under us")
        return False
