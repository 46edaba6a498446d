"""Leader election on a ``coordination.k8s.io/v1`` Lease: only one replica of a component acts at a time.

The shared-mode operator and the sub-directory provisioner run with several replicas for availability, but two
of them provisioning the same claim would race on the same directory. Each replica runs a
:class:`LeaderElector` on one Lease; the one whose identity is in ``spec.holderIdentity`` acts, renews
``spec.renewTime`` every renew period, and the others poll every retry period until the lease is released or
lapses.

The module has two halves:

- pure decisions (:func:`decide`, :func:`released`, :func:`lease_expiry`, :func:`record_of`): data in, data
  out, table-tested;
- :class:`LeaderElector`: the reads and writes, through :class:`Leases` on the lean client of :mod:`.rest`
  (Leases as plain dicts). Every write carries the ``resourceVersion`` that was read (or is a create), so
  when two replicas decide at the same moment the API server accepts one write and answers the other 409.

Time: a lease is valid until ``renewTime + leaseDurationSeconds`` by the reader's wall clock, so clocks must
agree to well within the duration. The holder itself counts the duration from a monotonic reading taken
*before* it read the lease, so it always believes itself leader for no longer than the others believe it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, NoReturn

from cfs_csi.kube.rest import ApiError, Client

log = logging.getLogger(__name__)

DEFAULT_LEASE_DURATION = 15
DEFAULT_RENEW_PERIOD = 5.0
DEFAULT_RETRY_PERIOD = 2.0


# -- pure decisions ------------------------------------------------------------------------------------------


class MicroTime(datetime):
    """A UTC instant that reaches the API server in the exact form its ``MicroTime`` fields require.

    The server parses ``acquireTime``/``renewTime`` with the fixed layout ``2006-01-02T15:04:05.000000Z07:00``:
    exactly six fractional digits. ``datetime.isoformat()`` drops the fraction when it is zero, so one write in
    a million would be refused with 400; this subclass's ``isoformat`` always writes the six digits, whoever
    calls it (:func:`_spec` does, and so would the official client, which keeps the subclass).
    """

    @classmethod
    def of(cls, moment: datetime) -> MicroTime:
        """``moment`` (naive means UTC) as a UTC :class:`MicroTime`."""
        utc = as_utc(moment)
        return cls(utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, tzinfo=UTC)

    def isoformat(self, sep: str = "T", timespec: str = "microseconds") -> str:
        """RFC 3339 with microseconds and ``Z``, whatever ``timespec`` asks (the server accepts nothing else)."""
        return as_utc(self).strftime(f"%Y-%m-%d{sep}%H:%M:%S.%fZ")


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already (the API never sends local times)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LeaseRecord:
    """The part of a Lease's spec that leader election reads and writes.

    ``holder`` is ``""`` when nobody holds the lease (never created with one, or released).
    """

    holder: str
    renew_time: datetime | None
    duration_seconds: int | None
    acquire_time: datetime | None = None
    transitions: int = 0


class Action(enum.Enum):
    CREATE = "create"  # no Lease yet: create it, holding it
    TAKE_OVER = "take-over"  # free or lapsed: replace the holder, count a transition
    RENEW = "renew"  # we hold it: move renewTime on
    WAIT = "wait"  # someone else holds a valid lease


@dataclass(frozen=True)
class Decision:
    """What to do with the lease, and for every action but WAIT the spec to write."""

    action: Action
    record: LeaseRecord | None = None
    holder: str = ""  # WAIT: who holds it
    expires: datetime | None = None  # WAIT: when their lease lapses unless they renew


def lease_expiry(record: LeaseRecord, default_duration: int) -> datetime | None:
    """When ``record``'s lease lapses: its last renewal (or acquisition) plus its duration.

    The lease's own ``leaseDurationSeconds`` counts, because that is what its holder promised to renew within;
    ours is only a fallback for a lease written without one. No timestamp at all means it never was valid.
    """
    last = record.renew_time or record.acquire_time
    if last is None:
        return None
    duration = record.duration_seconds if record.duration_seconds is not None else default_duration
    return as_utc(last) + timedelta(seconds=duration)


def decide(current: LeaseRecord | None, identity: str, now: datetime, duration_seconds: int) -> Decision:
    """The next step for ``identity``, given the lease as read (``None``: it does not exist) at ``now``.

    A lease held by someone else stays theirs while ``now < renewTime + duration``; after that (or when its
    holder is empty) it is taken over. Renewing keeps ``acquireTime`` and the transition count; taking over
    starts a new tenure and counts one more transition. The record written always carries our duration.
    """
    stamp = MicroTime.of(now)
    if current is None:
        return Decision(Action.CREATE, LeaseRecord(identity, stamp, duration_seconds, stamp, 0))
    if current.holder == identity:
        acquired = MicroTime.of(current.acquire_time) if current.acquire_time is not None else stamp
        renewed = LeaseRecord(identity, stamp, duration_seconds, acquired, current.transitions)
        return Decision(Action.RENEW, renewed)
    if current.holder:
        expires = lease_expiry(current, duration_seconds)
        if expires is not None and as_utc(now) < expires:
            return Decision(Action.WAIT, holder=current.holder, expires=expires)
    taken = LeaseRecord(identity, stamp, duration_seconds, stamp, current.transitions + 1)
    return Decision(Action.TAKE_OVER, taken)


def released(current: LeaseRecord, identity: str, now: datetime) -> LeaseRecord | None:
    """The record that gives ``identity``'s lease up at ``now``, or ``None`` when it is not ours to give.

    The holder becomes empty, which :func:`decide` treats as free at once, so a waiting replica takes over at
    its next poll instead of after the duration. The transition count stays; the next holder adds one.
    """
    if current.holder != identity:
        return None
    return replace(current, holder="", renew_time=MicroTime.of(now))


def record_of(lease: Mapping[str, Any]) -> LeaseRecord:
    """The :class:`LeaseRecord` of a Lease as the API returned it (JSON as a dict)."""
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder=spec.get("holderIdentity") or "",
        renew_time=parse_time(spec.get("renewTime")),
        duration_seconds=spec.get("leaseDurationSeconds"),
        acquire_time=parse_time(spec.get("acquireTime")),
        transitions=spec.get("leaseTransitions") or 0,
    )


def parse_time(text: object) -> datetime | None:
    """An RFC 3339 time of the API (``Z``, with or without a fraction) as an aware datetime; None if absent."""
    if not text:
        return None
    return as_utc(datetime.fromisoformat(str(text).replace("Z", "+00:00")))


def default_identity() -> str:
    """``<hostname>_<random>``: the host (the pod name) for people, the suffix so a restart is a new holder."""
    return f"{socket.gethostname()}_{secrets.token_hex(4)}"


def exit_on_lost() -> NoReturn:
    """The default reaction to losing the lease: stop the process, so that it restarts as a follower.

    A replica that lost its lease may already be overlapping with the new leader; finishing its work would be
    unsafe, and there is no general way to abort it cleanly. ``SystemExit`` raised in an asyncio task leaves
    the event loop, so ``asyncio.run`` cancels the remaining tasks and the process exits with status 1.
    """
    log.critical("lost leadership; exiting so that the process restarts as a follower")
    raise SystemExit(1)


# -- I/O -----------------------------------------------------------------------------------------------------


class _Outcome(enum.Enum):
    """How one read-decide-write round ended."""

    LEADING = "leading"  # we hold the lease now
    HELD = "held"  # someone else holds a valid lease
    FREE = "free"  # renewing only: the lease is free or gone, so our tenure was interrupted
    FAILED = "failed"  # our write lost a race (409), or the API failed
    STOPPED = "stopped"  # renewing only: released meanwhile, nothing was done


class Leases:
    """The three calls leader election makes, on Leases of one namespace (a seam for tests to hold a call)."""

    def __init__(self, client: Client, namespace: str, timeout: float) -> None:
        self.client, self.timeout = client, timeout
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"

    async def read(self, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self.client.get_or_none(f"{self.path}/{name}", timeout=self.timeout)
        return found

    async def create(self, body: dict[str, Any]) -> None:
        await self.client.create(self.path, body, timeout=self.timeout)

    async def replace(self, name: str, body: dict[str, Any]) -> None:
        await self.client.replace(f"{self.path}/{name}", body, timeout=self.timeout)


class LeaderElector:
    """Leader election for one ``identity`` on the Lease ``namespace/name``.

    Typical use, with ``api`` a :class:`cfs_csi.kube.rest.Client` (or a :class:`Leases`)::

        async with LeaderElector(api, "cfs-csi-operator", namespace, on_lost=stop.set) as elector:
            await work(stop)

    which is :meth:`acquire`, then :meth:`start_renewing` (:meth:`hold` in a background task), then
    :meth:`release` on the way out. ``on_lost()`` is called, once, from the renewing task when renewal has
    failed for a whole lease duration or another holder appears (:attr:`lost_reason` says which). It must not
    block: set an event or cancel a task. The default, :func:`exit_on_lost`, ends the process; a callback that
    returns lets the caller stop its work itself and :meth:`acquire` again later.

    ``lease_duration`` is whole seconds (the API's unit); ``renew_period`` must be shorter so that a renewal
    can fail and be retried (every ``retry_period``) before the lease lapses.
    """

    def __init__(
        self,
        api: Client | Leases,
        name: str,
        namespace: str,
        *,
        identity: str | None = None,
        lease_duration: int = DEFAULT_LEASE_DURATION,
        renew_period: float = DEFAULT_RENEW_PERIOD,
        retry_period: float = DEFAULT_RETRY_PERIOD,
        on_lost: Callable[[], object] = exit_on_lost,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if lease_duration < 1:
            raise ValueError("lease_duration must be at least 1 second")
        if not 0 < renew_period < lease_duration:
            raise ValueError("renew_period must be positive and shorter than lease_duration")
        if retry_period <= 0:
            raise ValueError("retry_period must be positive")
        # Bounds each request; no answer is worth waiting for past the lease's own lifetime.
        self._leases = api if isinstance(api, Leases) else Leases(api, namespace, float(lease_duration))
        self.name = name
        self.namespace = namespace
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_period = renew_period
        self.retry_period = retry_period
        self._on_lost = on_lost
        #: Called at the start of every read-decide-write round (acquiring or renewing): a liveness beat.
        self.on_round: Callable[[], None] | None = None
        self._clock = clock
        self._deadline: float | None = None  # monotonic instant our tenure ends unless renewed
        self._write = asyncio.Lock()
        self._holding: asyncio.Task[None] | None = None
        self.lost_reason: str | None = None  # why leadership was lost, once it was

    @property
    def is_leader(self) -> bool:
        """True while our last successful write is younger than the lease duration (by the monotonic clock).

        Work done as leader should check this before each step that must not overlap with another replica.
        """
        return self._deadline is not None and time.monotonic() < self._deadline

    @property
    def lost(self) -> bool:
        """True once ``on_lost`` was called (until the lease is acquired again)."""
        return self.lost_reason is not None

    async def acquire(self) -> None:
        """Return once this identity holds the lease, trying every retry period; API errors are retried."""
        while True:
            try:
                if await self.try_acquire():
                    log.info("%s leads lease %s/%s", self.identity, self.namespace, self.name)
                    return
            except Exception as exc:
                log.warning("lease %s/%s: acquiring failed, retrying: %s", self.namespace, self.name, exc)
            await asyncio.sleep(self.retry_period)

    async def try_acquire(self) -> bool:
        """One round of read, decide, write: True if we hold the lease afterwards.

        A 409 (another replica wrote first, or created it first) is an answer, not an error: False.
        """
        outcome, _ = await self._round(renew_only=False)
        return outcome is _Outcome.LEADING

    async def hold(self) -> None:
        """Renew every renew period until cancelled, released, or lost (then ``on_lost`` is called).

        A failed renewal is retried every retry period, but never past the end of our tenure: at that instant
        other replicas may take over, so it is lost even if the API server merely was unreachable.
        """
        if not self.is_leader:
            raise RuntimeError(f"hold() needs the lease {self.namespace}/{self.name}: acquire() it first")
        next_try = time.monotonic() + self.renew_period
        while True:
            await asyncio.sleep(max(0.0, next_try - time.monotonic()))
            deadline = self._deadline
            if deadline is None:
                return  # released meanwhile
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._lose(f"no successful renewal for {self.lease_duration}s")
                return
            holder = ""
            try:
                async with asyncio.timeout(remaining):
                    outcome, holder = await self._round(renew_only=True)
            except TimeoutError:
                outcome = _Outcome.FAILED
                log.warning("lease %s/%s: renewal timed out", self.namespace, self.name)
            except Exception as exc:
                outcome = _Outcome.FAILED
                log.warning("lease %s/%s: renewal failed: %s", self.namespace, self.name, exc)
            if outcome is _Outcome.LEADING:
                next_try = time.monotonic() + self.renew_period
            elif outcome is _Outcome.STOPPED:
                return
            elif outcome is _Outcome.HELD:
                self._lose(f"the lease is held by {holder}")
                return
            elif outcome is _Outcome.FREE:
                self._lose("the lease was released or deleted by someone else")
                return
            else:
                next_try = min(time.monotonic() + self.retry_period, deadline)

    async def release(self) -> bool:
        """Give the lease up if we hold it, so the next replica takes over at once; True if we gave it up.

        Stops the renewing task started by ``async with``, and makes a :meth:`hold` run by the caller return
        quietly. Best effort, for a clean shutdown: an error is logged and the lease then lapses after its
        duration, as after a crash.
        """
        await self._stop_holding()
        try:
            async with self._write:
                self._deadline = None
                for _ in range(3):  # a 409 here is our own renewal landing late: read again
                    lease = await self._read()
                    if lease is None:
                        return False
                    record = released(record_of(lease), self.identity, self._clock())
                    if record is None:
                        return False
                    try:
                        await self._replace(lease, record)
                    except ApiError as exc:
                        if exc.status != 409:
                            raise
                        continue
                    log.info("%s released lease %s/%s", self.identity, self.namespace, self.name)
                    return True
        except Exception as exc:
            log.warning("lease %s/%s: release failed, it lapses instead: %s", self.namespace, self.name, exc)
        return False

    def start_renewing(self) -> asyncio.Task[None]:
        """Run :meth:`hold` in a background task (which :meth:`release` stops); call after :meth:`acquire`."""
        if self._holding is not None and not self._holding.done():
            raise RuntimeError(f"already renewing lease {self.namespace}/{self.name}")
        if not self.is_leader:
            raise RuntimeError(f"start_renewing() needs the lease {self.namespace}/{self.name}: acquire() it first")
        self._holding = asyncio.create_task(self.hold(), name=f"lease {self.namespace}/{self.name}")
        return self._holding

    async def __aenter__(self) -> LeaderElector:
        await self.acquire()
        self.start_renewing()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()

    # -- internals ---------------------------------------------------------------------------------------------

    def _lose(self, reason: str) -> None:
        self._deadline = None
        self.lost_reason = reason
        log.error("%s lost lease %s/%s: %s", self.identity, self.namespace, self.name, reason)
        self._on_lost()

    async def _stop_holding(self) -> None:
        task, self._holding = self._holding, None
        if task is None or task is asyncio.current_task():
            return
        task.cancel()
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            log.debug("lease %s/%s: renewing task ended with %r", self.namespace, self.name, task.exception())

    async def _round(self, *, renew_only: bool) -> tuple[_Outcome, str]:
        """Read, decide, write; the outcome, and the other holder for HELD.

        With ``renew_only`` (the renewing task) nothing but a renewal is written: a lease that is free or gone
        while we thought we held it means our tenure was interrupted, and must not be silently resumed.
        """
        if self.on_round is not None:
            self.on_round()
        async with self._write:
            if renew_only and self._deadline is None:
                return _Outcome.STOPPED, ""
            started = time.monotonic()  # before the read: our tenure never outlasts what others see
            lease = await self._read()
            current = None if lease is None else record_of(lease)
            decision = decide(current, self.identity, self._clock(), self.lease_duration)
            if decision.action is Action.WAIT:
                log.debug("lease %s/%s is held by %s until %s", self.namespace, self.name, decision.holder,
                          decision.expires)  # fmt: skip
                return _Outcome.HELD, decision.holder
            if renew_only and decision.action is not Action.RENEW:
                return _Outcome.FREE, ""
            assert decision.record is not None
            try:
                if lease is None:
                    await self._create(decision.record)
                else:
                    await self._replace(lease, decision.record)
            except ApiError as exc:
                if exc.status == 409:
                    log.debug("lease %s/%s: lost a race (%s)", self.namespace, self.name, decision.action.value)
                    return _Outcome.FAILED, ""
                raise
            if decision.action is Action.TAKE_OVER:
                previous = current.holder if current else ""
                log.info("%s took over lease %s/%s from %r", self.identity, self.namespace, self.name, previous)
            self._deadline = started + self.lease_duration
            self.lost_reason = None
            return _Outcome.LEADING, ""

    async def _read(self) -> dict[str, Any] | None:
        """The Lease as the API returns it, or None if it does not exist."""
        return await self._leases.read(self.name)

    async def _create(self, record: LeaseRecord) -> None:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace}, "spec": _spec(record, None)}  # fmt: skip
        await self._leases.create(body)

    async def _replace(self, lease: dict[str, Any], record: LeaseRecord) -> None:
        """PUT ``record`` over ``lease``, keeping its metadata, so its resourceVersion makes the write conditional."""
        body = {**lease, "spec": _spec(record, lease.get("spec"))}
        await self._leases.replace(self.name, body)


def _spec(record: LeaseRecord, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Lease spec for ``record``; fields leader election does not own are kept from ``previous``."""
    spec = dict(previous or {})
    spec.update(holderIdentity=record.holder, leaseDurationSeconds=record.duration_seconds,
                leaseTransitions=record.transitions)  # fmt: skip
    for key, moment in (("acquireTime", record.acquire_time), ("renewTime", record.renew_time)):
        if moment is None:
            spec.pop(key, None)
        else:
            spec[key] = MicroTime.of(moment).isoformat()
    return spec
