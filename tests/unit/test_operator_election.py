"""Timing and record logic of the Lease election (no API calls; those run in integration)."""

from datetime import UTC, datetime, timedelta

import pytest

from arenastack_operator import constants
from arenastack_operator.election import (
    JITTER_FACTOR,
    LeaseRecord,
    LeaseTiming,
    _lease_from_record,
    _record_from_lease,
    claimed_record,
    is_held_by_other,
    next_observation,
    released_record,
    renew_deadline_passed,
    standby_wait,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(holder="a", renew=T0, rv="1", transitions=0, duration=15.0) -> LeaseRecord:
    return LeaseRecord(
        holder=holder,
        lease_duration=duration,
        acquire_time=T0,
        renew_time=renew,
        transitions=transitions,
        resource_version=rv,
    )


def test_free_or_own_lease_is_not_blocking():
    assert not is_held_by_other(None, "b", observed_at=0, now=0)
    assert not is_held_by_other(record(holder=None), "b", observed_at=0, now=0)
    assert not is_held_by_other(record(holder="b"), "b", observed_at=0, now=0)


def test_other_holder_blocks_until_duration_after_last_observed_change():
    lease = record(holder="a", duration=15)
    assert is_held_by_other(lease, "b", observed_at=100, now=100)
    assert is_held_by_other(lease, "b", observed_at=100, now=114.9)
    assert not is_held_by_other(lease, "b", observed_at=100, now=115)


def test_expiry_ignores_the_record_wall_clock():
    # A renewTime far in the past (skewed clock of the holder) does not make the lease look
    # expired: only our own observation time counts.
    lease = record(holder="a", renew=T0 - timedelta(days=1))
    assert is_held_by_other(lease, "b", observed_at=50, now=51)


def test_observation_restarts_only_when_the_record_changes():
    seen = record(rv="1")
    same_but_new_rv = record(rv="2")
    renewed = record(renew=T0 + timedelta(seconds=2), rv="3")
    assert next_observation(seen, 10, same_but_new_rv, now=20) == 10
    assert next_observation(seen, 10, renewed, now=20) == 20
    assert next_observation(None, 0, seen, now=5) == 5
    assert next_observation(seen, 10, None, now=7) == 7


def test_renewal_keeps_acquire_time_and_transitions():
    mine = record(holder="a", transitions=4)
    later = T0 + timedelta(seconds=30)
    renewed = claimed_record(mine, "a", 15, later)
    assert renewed.holder == "a"
    assert renewed.acquire_time == T0
    assert renewed.renew_time == later
    assert renewed.transitions == 4
    assert renewed.resource_version == "1"  # the update is conditional on what we read


def test_takeover_counts_a_transition():
    later = T0 + timedelta(seconds=30)
    taken = claimed_record(record(holder="a", transitions=4), "b", 15, later)
    assert (taken.holder, taken.acquire_time, taken.transitions) == ("b", later, 5)
    assert taken.resource_version == "1"


def test_first_acquisition_creates():
    first = claimed_record(None, "a", 15, T0)
    assert first.transitions == 0
    assert first.resource_version is None  # no resourceVersion: create, not update


def test_release_frees_the_lease_for_immediate_takeover():
    freed = released_record(record(holder="a", transitions=2), T0)
    assert freed.holder is None
    assert freed.lease_duration == 1
    assert freed.transitions == 2
    assert not is_held_by_other(freed, "b", observed_at=0, now=0)


def test_renew_deadline():
    timing = LeaseTiming(lease_duration=15, renew_deadline=10, retry_period=2)
    assert not renew_deadline_passed(100, 109.9, timing)
    assert renew_deadline_passed(100, 110, timing)


def test_leader_gives_up_before_a_standby_may_take_over():
    # Whatever happens, the leader stops at last_renewed + renew_deadline, and a standby that
    # saw that renewal waits until at least last_renewed + lease_duration.
    timing = LeaseTiming()
    assert timing.renew_deadline < timing.lease_duration
    renewed_at = 1000.0
    leader_stops = renewed_at + timing.renew_deadline
    lease = record(holder="a", duration=timing.lease_duration)
    assert is_held_by_other(lease, "b", observed_at=renewed_at, now=leader_stops)


@pytest.mark.parametrize(
    ("timing", "message"),
    [
        (LeaseTiming(10, 10, 2), "lease duration"),
        (LeaseTiming(15, 2, 2), "renew deadline"),
        (LeaseTiming(15, 10, 0), "retry period"),
    ],
)
def test_invalid_timing_is_rejected_with_the_reason(timing, message):
    with pytest.raises(ValueError, match=message):
        timing.validate()


def test_defaults_are_client_go_defaults_and_valid():
    timing = LeaseTiming()
    timing.validate()
    assert (timing.lease_duration, timing.renew_deadline, timing.retry_period) == (15, 10, 2)
    assert constants.DEFAULT_LEASE_DURATION_S == 15


def test_standby_wait_is_jittered_within_bounds():
    timing = LeaseTiming()
    assert standby_wait(timing, rand=lambda: 0.0) == timing.retry_period
    assert standby_wait(timing, rand=lambda: 1.0) == pytest.approx(
        timing.retry_period * JITTER_FACTOR
    )


def test_request_timeout_leaves_room_within_the_renew_deadline():
    timing = LeaseTiming(lease_duration=4, renew_deadline=3, retry_period=0.5)
    assert timing.request_timeout <= timing.renew_deadline / 2


def test_lease_object_round_trip_rounds_durations_up():
    lease = _lease_from_record(record(duration=1.5, rv="7"), "ns", "name")
    assert lease.spec.lease_duration_seconds == 2
    assert lease.metadata.resource_version == "7"
    back = _record_from_lease(lease)
    assert back.holder == "a" and back.lease_duration == 2 and back.resource_version == "7"
    freed = _lease_from_record(released_record(record(), T0), "ns", "name")
    assert freed.spec.holder_identity is None
    assert freed.spec.lease_duration_seconds == 1
