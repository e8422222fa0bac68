"""LeaderElector against the real apiserver, with the chart's ServiceAccount credentials: many
contenders, one winner; release hands over without waiting for expiry."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from kubernetes import client
from operator_runner import TIMING

from arenastack_operator import kube
from arenastack_operator.election import LeaderElector, LeaseClient

pytestmark = pytest.mark.integration


@pytest.fixture
def lease_client(operator_runner) -> Iterator[LeaseClient]:
    # operator_runner: the chart's credentials and a freshly deleted lease.
    api = client.ApiClient(kube.load_configuration(operator_runner.kubeconfig))
    yield LeaseClient(
        api, operator_runner.lease_namespace, operator_runner.lease_name, TIMING.request_timeout
    )
    api.close()


async def test_concurrent_contenders_elect_exactly_one(lease_client):
    electors = [LeaderElector(lease_client, f"c{i}", TIMING) for i in range(4)]
    # All try at once, twice: creates and updates race on resourceVersion; one must win.
    for _ in range(2):
        won = await asyncio.gather(*(e.try_acquire_or_renew() for e in electors))
        assert sum(won) == 1, won
    (leader,) = [e for e, w in zip(electors, won, strict=True) if w]
    record = lease_client.get()
    assert record.holder == leader.identity
    assert record.transitions == 0
    assert record.lease_duration == TIMING.lease_duration
    assert {e.observed_holder for e in electors} == {leader.identity}

    # The leader renews (same acquire time), the others still cannot take it.
    assert await leader.try_acquire_or_renew()
    renewed = lease_client.get()
    assert renewed.acquire_time == record.acquire_time and renewed.renew_time > record.renew_time
    others = [e for e in electors if e is not leader]
    assert not any(await asyncio.gather(*(e.try_acquire_or_renew() for e in others)))

    # Released: the next contender acquires at once and the transition is counted.
    assert await leader.acquire(asyncio.Event())  # already the holder: leads at once
    assert await leader.release()
    assert lease_client.get().holder is None
    assert await others[0].try_acquire_or_renew()
    taken = lease_client.get()
    assert (taken.holder, taken.transitions) == (others[0].identity, 1)


async def test_acquire_waits_until_the_holder_stops_renewing(lease_client):
    holder = LeaderElector(lease_client, "holder", TIMING)
    standby = LeaderElector(lease_client, "standby", TIMING)
    assert await holder.try_acquire_or_renew()
    stop = asyncio.Event()
    waiting = asyncio.create_task(standby.acquire(stop))
    # While the holder renews, the standby keeps waiting.
    for _ in range(6):
        await asyncio.sleep(TIMING.retry_period)
        assert await holder.try_acquire_or_renew()
    assert not waiting.done() and not standby.is_leader
    # The holder vanishes without releasing; the standby leads after the lease expires.
    loop = asyncio.get_running_loop()
    vanished_at = loop.time()
    assert await asyncio.wait_for(waiting, TIMING.lease_duration * 3)
    assert loop.time() - vanished_at >= TIMING.lease_duration - TIMING.retry_period * 1.2
    assert standby.is_leader and lease_client.get().holder == "standby"
