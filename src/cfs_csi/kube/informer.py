"""List, then watch, then list again: every object of a collection reaches a callback, and again at each resync.

The callback gets ``(type, object)`` with ``type`` ``ADDED``, ``MODIFIED`` or ``DELETED``, in the order the
API server sent them. Each list delivers every object as ``ADDED`` (and ``DELETED`` for any object the previous
list had and this one lacks): that re-delivery every ``resync`` seconds is what retries work whose first
attempt failed, as kopf's re-list did. A broken watch or a 410 Gone lists again at once; an API server that
does not answer is retried with a growing pause (capped), never given up.

The callback must not block: it decides and, for real work, starts a task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from cfs_csi.kube.liveness import Liveness
from cfs_csi.kube.rest import ApiError, Client

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], None]


#: Seconds beyond two re-list periods a watch may be silent (the API client's own timeouts, a slow list).
LIVENESS_MARGIN = 90.0


def _key(item: dict[str, Any]) -> str:
    metadata = item.get("metadata") or {}
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


class Informer:
    """One collection (``path``, e.g. ``/api/v1/persistentvolumes``) kept flowing into ``handler``.

    :attr:`synced` is set once the first list was delivered, so that a consumer of several collections can
    wait for the one it looks things up in (StorageClasses) before handling the others.
    """

    def __init__(
        self, client: Client, path: str, handler: Handler, resync: float = 60.0, liveness: Liveness | None = None
    ) -> None:
        self.client, self.path, self.handler = client, path, handler
        self.resync = max(1, int(resync))
        self.liveness = liveness
        self.synced = asyncio.Event()
        self._known: set[str] = set()

    async def run(self) -> None:
        """Until cancelled."""
        pause = 0.5
        while True:
            try:
                version = await self._list()
                pause = 0.5
                async for event in self.client.watch(self.path, version, self.resync):
                    self._beat()
                    kind, item = event.get("type", ""), event.get("object") or {}
                    if kind == "BOOKMARK":
                        continue
                    key = _key(item)
                    if kind == "DELETED":
                        self._known.discard(key)
                    else:
                        self._known.add(key)
                    self._deliver(kind, item)
            except Exception as exc:  # an answer we cannot read must not end the stream for good either
                if isinstance(exc, ApiError) and exc.status == 410:  # our version is too old: list again at once
                    continue
                # 429 is the API server asking for patience ("storage is (re)initializing" while a new CRD's storage
                # starts, or its own rate limits): expected at start-up, and the retry below is the answer.
                level = logging.DEBUG if isinstance(exc, ApiError) and exc.status == 429 else logging.WARNING
                log.log(level, "%s: %s; listing again in %.1fs", self.path, exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)

    def _beat(self) -> None:
        """Progress: a list or a watch event. The server ends a quiet watch after ``resync`` seconds and it is
        listed again, so more than two of those plus the client's timeouts without one means a stuck stream."""
        if self.liveness is not None:
            self.liveness.beat(f"watch {self.path}", 2 * self.resync + LIVENESS_MARGIN)

    async def _list(self) -> str:
        listed = await self.client.list(self.path)
        self._beat()
        keys = set()
        for item in listed["items"]:
            keys.add(_key(item))
            self._deliver("ADDED", item)
        for gone in self._known - keys:  # deleted while we were not watching
            namespace, _, name = gone.partition("/")
            metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
            self._deliver("DELETED", {"metadata": metadata})
        self._known = keys
        self.synced.set()
        version = str(listed["metadata"]["resourceVersion"])
        log.debug("%s: listed %d, watching from version %s", self.path, len(keys), version)
        return version

    def _deliver(self, kind: str, item: dict[str, Any]) -> None:
        try:
            self.handler(kind, item)
        except Exception:  # one bad object must not stop the stream for every other one
            log.exception("%s: handling %s %s failed", self.path, kind, _key(item))
