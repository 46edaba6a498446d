"""The operator's informers and when each Tcfs is reconciled (what kopf did for it before).

Three informers (:mod:`cfs_csi.kube.informer`): the Tcfs objects of the operator's namespace and every
StorageClass (caches, listed first), then every PVC (judged by :func:`.storageclass.tcfs_for_claim` against
those caches). A Tcfs is reconciled (:func:`.tcfs.reconcile`):

- when it is first seen (every Tcfs at start-up: what kopf called resume) and when its spec, labels or
  annotations change (not its status: the operator writes that itself);
- every :attr:`Operator.resync` seconds (30), to repair drift such as a Deployment deleted by hand;
- after a :class:`.tcfs.Retry` (or any error), after its delay, growing while the trouble lasts; a Tcfs waiting
  for its retry is skipped by the periodic pass, so a cloud outage is polled with backoff, not every 30 s.

One reconcile at a time per Tcfs (a change during one runs another right after it), at most
:data:`CONCURRENCY` at once. A claim seen before its class is judged again when the class arrives.

Tcfs objects written by the kopf-based operator carry kopf's finalizer, which nothing removes any more; it is
removed when seen, so that deleting such a Tcfs (or its class) is not blocked forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from cfs_csi.kube.classes import WaitingClaims, class_event
from cfs_csi.kube.informer import Informer
from cfs_csi.kube.rest import ApiError
from cfs_csi.metrics import record as metrics
from cfs_csi.operator.context import CLAIMS, CLASSES, OperatorContext, at
from cfs_csi.operator.storageclass import ensure_tcfs, pending_reason, served_provisioners, tcfs_for_claim
from cfs_csi.operator.tcfs import Retry, backoff, reconcile
from cfs_csi.volume.errors import InvalidArgument

log = logging.getLogger(__name__)

#: The finalizer the kopf-based operator put on every Tcfs (for its timer).
KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
#: Reconciles running at once: bounds the API server's and the cloud's load.
CONCURRENCY = 8
#: Base delay of the retry after an unexpected error (an API server that failed, say).
_WAIT_ERROR = 15


def fingerprint(tcfs: dict[str, Any]) -> tuple[Any, ...]:
    """What a change must touch for a Tcfs to be reconciled at once: its identity, spec, labels, annotations."""
    metadata = tcfs.get("metadata") or {}
    return (metadata.get("uid"), metadata.get("generation"), repr(tcfs.get("spec")), repr(metadata.get("labels")),
            repr(metadata.get("annotations")))  # fmt: skip


class Operator:
    """The informers of one :class:`OperatorContext`, and the reconciles they start."""

    def __init__(self, context: OperatorContext, resync: float = 30.0, relist: float = 300.0) -> None:
        self.context = context
        self.resync, self.relist = resync, relist
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._handled: dict[str, tuple[Any, ...]] = {}
        self._retries: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._busy: set[str] = set()  # Tcfs creations and finalizer removals in flight, by key
        self._waiting = WaitingClaims()  # claims whose class is not seen yet
        self._pending: dict[str, dict[str, dict[str, Any]]] = {}  # unbound claims by the Tcfs that serves them
        self._limit = asyncio.Semaphore(CONCURRENCY)

    async def run(self) -> None:
        """Until cancelled."""
        client, context = self.context.client, self.context
        live = context.liveness
        tcfs = Informer(client, context.tcfs_path, self._tcfs_event, self.relist, live)
        classes = Informer(client, CLASSES, self._class_event, self.relist, live)
        claims = Informer(client, CLAIMS, self._claim_event, self.relist, live)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(tcfs.run())
                group.create_task(classes.run())
                await tcfs.synced.wait()
                await classes.synced.wait()  # claims are judged by their class and by the Tcfs that exist
                group.create_task(claims.run())
                group.create_task(self._resync())
        finally:
            for timer in self._timers.values():
                timer.cancel()

    # --- Tcfs ----------------------------------------------------------------------------------------------

    def _tcfs_event(self, kind: str, tcfs: dict[str, Any]) -> None:
        name = str(tcfs["metadata"]["name"])
        if kind == "DELETED":
            self.context.tcfs.pop(name, None)
            self._handled.pop(name, None)
            self._retries.pop(name, None)
            timer = self._timers.pop(name, None)
            if timer is not None:
                timer.cancel()
            return
        self.context.tcfs[name] = tcfs
        self._tell_pending_claims(name, tcfs)
        if KOPF_FINALIZER in (tcfs["metadata"].get("finalizers") or []):
            self._spawn(f"finalizer/{name}", lambda: self._drop_kopf_finalizer(tcfs))
        if tcfs["metadata"].get("deletionTimestamp"):
            return  # its Deployment and share claim go with it (garbage collection); nothing to converge
        if self._handled.get(name) != fingerprint(tcfs):
            self._request(name)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync)
            for name in list(self.context.tcfs):
                if name not in self._timers:  # one waiting for its retry is looked at then
                    self._request(name)

    def _request(self, name: str) -> None:
        """Reconcile ``name`` now, or right after the reconcile of it that is running."""
        if name in self._running:
            self._again.add(name)
            return
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        self._running.add(name)
        task = asyncio.create_task(self._reconcile(name), name=f"tcfs/{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reconcile(self, name: str) -> None:
        try:
            while True:
                self._again.discard(name)
                tcfs = self.context.tcfs.get(name)
                if tcfs is None or tcfs["metadata"].get("deletionTimestamp"):
                    return
                # Recorded now: an event during this reconcile (our own status patch) calls for another one only
                # if it changed what this one started from.
                self._handled[name] = fingerprint(tcfs)
                retry = self._retries.get(name, 0)
                started, outcome = time.monotonic(), "ok"
                try:
                    async with self._limit:
                        started = time.monotonic()  # the reconcile's own time, not its wait for a slot
                        await reconcile(tcfs, self.context, retry)
                    self._retries.pop(name, None)
                except Retry as again:
                    outcome = "retry"
                    log.info("Tcfs %s: %s; again in %.0fs", name, again, again.delay)
                    self._retry_later(name, retry, again.delay)
                except Exception as exc:
                    outcome = "error"
                    delay = backoff(_WAIT_ERROR, retry)
                    log.warning("Tcfs %s: reconcile failed, again in %ds: %s", name, delay, exc)
                    self._retry_later(name, retry, delay)
                metrics.reconcile(outcome, time.monotonic() - started)
                if name not in self._again:
                    return
        finally:
            self._running.discard(name)

    def _retry_later(self, name: str, retry: int, delay: float) -> None:
        self._retries[name] = retry + 1
        if name in self._again:
            return  # a change came in: handled at once instead

        def fire() -> None:
            self._timers.pop(name, None)
            self._request(name)

        self._timers[name] = asyncio.get_running_loop().call_later(delay, fire)

    async def _drop_kopf_finalizer(self, tcfs: dict[str, Any]) -> None:
        metadata = tcfs["metadata"]
        kept = [f for f in metadata.get("finalizers") or [] if f != KOPF_FINALIZER]
        # resourceVersion makes it conditional: a list changed meanwhile is read again (the next event).
        patch = {"metadata": {"finalizers": kept or None, "resourceVersion": metadata["resourceVersion"]}}
        try:
            await self.context.client.patch(at(self.context.tcfs_path, metadata["name"]), patch)
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
            return
        log.info("Tcfs %s: removed the finalizer of the kopf-based operator", metadata["name"])

    # --- StorageClasses and claims -------------------------------------------------------------------------

    def _class_event(self, kind: str, storage_class: dict[str, Any]) -> None:
        for claim in class_event(self.context.classes, self._waiting, kind, storage_class):
            self._claim_event("MODIFIED", claim)

    def _claim_event(self, kind: str, claim: dict[str, Any]) -> None:
        class_name = str((claim.get("spec") or {}).get("storageClassName") or "")
        if not class_name:
            return
        uid = str(claim["metadata"].get("uid", ""))
        bound = (claim.get("status") or {}).get("phase") == "Bound"
        if kind == "DELETED" or bound:
            for claims in self._pending.values():
                claims.pop(uid, None)
            self._waiting.drop(class_name, uid)
            return
        storage_class = self.context.classes.get(class_name)
        if storage_class is None:
            self._waiting.add(class_name, uid, claim)
            return
        context = self.context
        try:
            wanted = tcfs_for_claim(claim, storage_class, served_provisioners(context.tcfs.values()), context.namespace)
        except InvalidArgument as exc:
            context.post(claim, "PersistentVolumeClaim", "InvalidSharedStorageClass", str(exc), warning=True)
            return
        if wanted is None:
            return
        tcfs_name = str(wanted["metadata"]["name"])
        self._pending.setdefault(tcfs_name, {})[uid] = claim
        existing = context.tcfs.get(tcfs_name)
        if existing is not None:
            self._tell_claim(claim, existing)
            return
        self._spawn(f"class/{class_name}", lambda: ensure_tcfs(context, claim, wanted))

    def _tell_pending_claims(self, name: str, tcfs: dict[str, Any]) -> None:
        for claim in list(self._pending.get(name, {}).values()):
            self._tell_claim(claim, tcfs)

    def _tell_claim(self, claim: dict[str, Any], tcfs: dict[str, Any]) -> None:
        """A Warning on a claim whose Tcfs is not Ready, with the Tcfs's reason: ``kubectl describe pvc`` is where
        a user looks, not the Tcfs. Repeats are counted on one Event (the poster aggregates)."""
        why = pending_reason(tcfs)
        if why is not None:
            self.context.post(claim, "PersistentVolumeClaim", why[0], why[1], warning=True)

    def _spawn(self, key: str, work: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Run ``work()`` unless work for ``key`` runs; an error is logged (the next event or re-list retries)."""
        if key in self._busy:
            return
        self._busy.add(key)

        async def guarded() -> None:
            try:
                await work()
            except Exception as exc:
                log.warning("%s failed, retried at the next event or re-list: %s", key, exc)
            finally:
                self._busy.discard(key)

        task = asyncio.create_task(guarded(), name=key)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
