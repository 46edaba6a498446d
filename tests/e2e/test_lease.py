"""Leader election against the real kube-apiserver: one leader, hand-over on release and after a crash, loss,
and the 409 races that optimistic concurrency settles.

Short durations (2s lease, 0.5s renew) keep the tests quick; timing assertions are lower bounds that follow
from the protocol, or generous upper bounds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from cfs_csi.devcluster.cluster import ControlPlane, free_port
from cfs_csi.kube.lease import DEFAULT_LEASE_DURATION, LeaderElector, Leases, MicroTime
from cfs_csi.kube.rest import ApiError, Client, Config, load_config

NAMESPACE = "default"
FAST = {"lease_duration": 2, "renew_period": 0.5, "retry_period": 0.2}

Make = Callable[..., LeaderElector]


@pytest.fixture
def api(control_plane: ControlPlane) -> k8s.ApiClient:
    """The official client (a dev dependency): how the tests read and write Leases as another program would."""
    made: k8s.ApiClient = k8s_config.new_client_from_config(config_file=str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
    return made


@pytest.fixture
async def client(control_plane: ControlPlane) -> AsyncIterator[Client]:
    """The lean client the electors use."""
    async with Client.from_kubeconfig(str(control_plane.kubeconfig)) as made:
        yield made


@pytest.fixture
def lease_name() -> str:
    return f"lease-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def make(client: Client, lease_name: str) -> AsyncIterator[Make]:
    """Electors on this test's lease (fast periods, a harmless on_lost), all released afterwards."""
    made: list[LeaderElector] = []

    def factory(identity: str, leases: Any = None, **options: Any) -> LeaderElector:
        elector = LeaderElector(leases or client, lease_name, NAMESPACE, identity=identity,
                                **{"on_lost": lambda: None, **FAST, **options})  # fmt: skip
        made.append(elector)
        return elector

    yield factory
    for elector in made:
        await elector.release()


async def read_lease(api: k8s.ApiClient, name: str) -> k8s.V1LeaseSpec:
    lease = await asyncio.to_thread(k8s.CoordinationV1Api(api).read_namespaced_lease, name, NAMESPACE)
    assert lease.spec is not None
    return lease.spec


async def set_holder(api: k8s.ApiClient, name: str, holder: str) -> None:
    """Write ``holder`` into the lease as another program would (retrying our elector's concurrent renewals)."""
    leases = k8s.CoordinationV1Api(api)
    for _ in range(20):
        lease = await asyncio.to_thread(leases.read_namespaced_lease, name, NAMESPACE)
        assert lease.spec is not None
        lease.spec.holder_identity = holder
        lease.spec.renew_time = MicroTime.of(datetime.now(UTC))
        try:
            await asyncio.to_thread(leases.replace_namespaced_lease, name, NAMESPACE, lease)
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
    raise AssertionError("could not overwrite the lease")


async def test_one_leader_and_release_hands_over_at_once(make: Make, api: k8s.ApiClient, lease_name: str) -> None:
    # A 30s lease: a hand-over well within it can only come from the release, not from expiry.
    a = make("replica-a", lease_duration=30, renew_period=1)
    b = make("replica-b", lease_duration=30, renew_period=1)
    acquiring = {a: asyncio.create_task(a.acquire()), b: asyncio.create_task(b.acquire())}
    done, _ = await asyncio.wait(acquiring.values(), timeout=30, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1
    leader, follower = (a, b) if acquiring[a] in done else (b, a)
    leader.start_renewing()

    await asyncio.sleep(3)  # several renewals and many polls of the follower
    assert not acquiring[follower].done()
    assert leader.is_leader and not follower.is_leader
    spec = await read_lease(api, lease_name)
    assert spec.holder_identity == leader.identity
    assert spec.lease_transitions == 0

    released_at = time.monotonic()
    assert await leader.release()
    await asyncio.wait_for(acquiring[follower], timeout=20)
    assert time.monotonic() - released_at < 20  # far less than the 30s lease
    assert follower.is_leader and not leader.is_leader
    spec = await read_lease(api, lease_name)
    assert spec.holder_identity == follower.identity
    assert spec.lease_transitions == 1


async def test_crashed_leader_is_replaced_after_the_lease_duration(
    make: Make, api: k8s.ApiClient, lease_name: str
) -> None:
    a, b = make("replica-a"), make("replica-b")
    await asyncio.wait_for(a.acquire(), timeout=20)
    renewing = a.start_renewing()
    follower = asyncio.create_task(b.acquire())
    await asyncio.sleep(3)  # longer than the 2s lease: only the renewals keep it
    assert not follower.done()

    renewing.cancel()  # the crash: no more renewals, no release
    crashed_at = time.monotonic()
    await asyncio.wait_for(follower, timeout=20)
    # The last renewal was at most one renew period (plus a request) before the crash.
    assert time.monotonic() - crashed_at >= 1.0
    assert b.is_leader
    assert not a.is_leader  # the crashed holder never believes itself leader longer than the others do
    assert not a.lost  # cancelled, not lost
    spec = await read_lease(api, lease_name)
    assert spec.holder_identity == b.identity
    assert spec.lease_transitions == 1


async def test_another_holder_appearing_calls_on_lost(make: Make, api: k8s.ApiClient, lease_name: str) -> None:
    lost = asyncio.Event()
    a = make("replica-a", on_lost=lost.set)
    await asyncio.wait_for(a.acquire(), timeout=20)
    a.start_renewing()

    await set_holder(api, lease_name, "intruder")
    await asyncio.wait_for(lost.wait(), timeout=15)
    assert a.lost and "intruder" in (a.lost_reason or "")
    assert not a.is_leader
    assert not await a.release()  # never gives up a lease that is not ours
    assert (await read_lease(api, lease_name)).holder_identity == "intruder"


async def test_renewal_failing_for_the_lease_duration_calls_on_lost(
    make: Make, client: Client, lease_name: str, api: k8s.ApiClient
) -> None:
    leases = Leases(client, NAMESPACE, timeout=2)
    lost = asyncio.Event()
    a = make("replica-a", leases=leases, on_lost=lost.set)
    await asyncio.wait_for(a.acquire(), timeout=20)
    a.start_renewing()
    await asyncio.sleep(1)  # a renewal or two succeed

    async with Client(Config(server=f"https://127.0.0.1:{free_port()}", insecure=True)) as unreachable:
        leases.client = unreachable  # the API server is gone for a
        cut_at = time.monotonic()
        await asyncio.wait_for(lost.wait(), timeout=15)
        assert time.monotonic() - cut_at >= 1.0  # not before the tenure of the last renewal ran out
        assert "renewal" in (a.lost_reason or "")
        assert not a.is_leader
        leases.client = client  # so that the fixture's release finds nothing of a's to give up

    b = make("replica-b")
    await asyncio.wait_for(b.acquire(), timeout=20)  # the lease lapses and is taken over
    assert (await read_lease(api, lease_name)).lease_transitions == 1


class MeetAfterRead(Leases):
    """Holds its first read at a barrier shared with another replica, so both decide on the same version.

    Every status the server answers a write with is recorded, to show that the race went through the server.
    """

    def __init__(self, client: Client, barrier: asyncio.Barrier, refusals: list[int]) -> None:
        super().__init__(client, NAMESPACE, float(DEFAULT_LEASE_DURATION))
        self._barrier: asyncio.Barrier | None = barrier
        self._refusals = refusals

    async def read(self, name: str) -> dict[str, Any] | None:
        try:
            return await super().read(name)
        finally:
            barrier, self._barrier = self._barrier, None
            if barrier is not None:
                async with asyncio.timeout(20):
                    await barrier.wait()

    async def create(self, body: dict[str, Any]) -> None:
        try:
            await super().create(body)
        except ApiError as exc:
            self._refusals.append(exc.status)
            raise

    async def replace(self, name: str, body: dict[str, Any]) -> None:
        try:
            await super().replace(name, body)
        except ApiError as exc:
            self._refusals.append(exc.status)
            raise


async def race(make: Make, client: Client) -> tuple[list[LeaderElector], list[int]]:
    """Two replicas read the same lease, then both write; the electors that won, and the refusals."""
    barrier, refusals = asyncio.Barrier(2), list[int]()
    a = make("replica-a", leases=MeetAfterRead(client, barrier, refusals))
    b = make("replica-b", leases=MeetAfterRead(client, barrier, refusals))
    won = await asyncio.gather(a.try_acquire(), b.try_acquire())
    return [elector for elector, ok in zip((a, b), won, strict=True) if ok], refusals


async def test_a_create_race_has_one_winner(make: Make, api: k8s.ApiClient, client: Client, lease_name: str) -> None:
    winners, refusals = await race(make, client)
    assert len(winners) == 1
    assert refusals == [409]  # the loser's create: AlreadyExists
    spec = await read_lease(api, lease_name)
    assert spec.holder_identity == winners[0].identity
    assert spec.lease_transitions == 0


async def test_a_take_over_race_has_one_winner(make: Make, api: k8s.ApiClient, client: Client, lease_name: str) -> None:
    long_ago = MicroTime.of(datetime.now(UTC) - timedelta(minutes=5))
    expired = k8s.V1Lease(
        metadata=k8s.V1ObjectMeta(name=lease_name, namespace=NAMESPACE),
        spec=k8s.V1LeaseSpec(holder_identity="crashed", lease_duration_seconds=2, acquire_time=long_ago,
                             renew_time=long_ago, lease_transitions=4),
    )  # fmt: skip
    await asyncio.to_thread(k8s.CoordinationV1Api(api).create_namespaced_lease, NAMESPACE, expired)

    winners, refusals = await race(make, client)
    assert len(winners) == 1
    assert refusals == [409]  # the loser's replace: its resourceVersion was no longer current
    spec = await read_lease(api, lease_name)
    assert spec.holder_identity == winners[0].identity
    assert spec.lease_transitions == 5  # one take-over, counted once


async def test_context_manager_with_whole_second_timestamps(make: Make, api: k8s.ApiClient, lease_name: str) -> None:
    """A renewTime whose fraction is zero must still reach the server with six digits (else it answers 400)."""

    def whole_seconds() -> datetime:
        return datetime.now(UTC).replace(microsecond=0)

    async with asyncio.timeout(30), make("replica-a", clock=whole_seconds) as elector:
        assert elector.is_leader
        await asyncio.sleep(1.2)  # renewals with the same clock
        assert elector.is_leader
        spec = await read_lease(api, lease_name)
        assert spec.holder_identity == elector.identity
        assert spec.renew_time is not None and spec.renew_time.microsecond == 0
    assert not elector.is_leader
    assert (await read_lease(api, lease_name)).holder_identity == ""


async def test_the_client_finds_the_cluster_through_kubeconfig(
    control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    lean_from_env = load_config()
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    lean_explicit = load_config(str(control_plane.kubeconfig))  # the argument wins over the environment
    for config in (lean_from_env, lean_explicit):
        async with Client(config) as lean:  # a client certificate from files relative to the kubeconfig
            listed = await lean.list("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases")
            assert isinstance(listed["items"], list) and listed["metadata"]["resourceVersion"]
            with pytest.raises(ApiError) as missing:
                await lean.get("/api/v1/namespaces/kube-system/configmaps/no-such-map")
            assert missing.value.status == 404
