"""Kubernetes Events about an object (what ``kubectl describe`` shows), posted without holding up the work.

Events are for people: posting one is never allowed to fail or delay what it reports. :class:`EventPoster`
posts in the background and only logs a failure. Messages pass through :func:`cfs_csi.logsetup.redact` (they
become readable to everyone who can read events) and are cut to the API's 1024 characters.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from cfs_csi import logsetup
from cfs_csi.kube.rest import ApiError, Client, format_time

log = logging.getLogger(__name__)

MAX_MESSAGE = 1024


def event_body(involved: dict[str, Any], kind: str, reason: str, message: str, component: str, now: datetime,
               warning: bool = False) -> dict[str, Any]:  # fmt: skip
    """The core/v1 Event for ``involved`` (an object as the API returned it; ``kind`` is its kind)."""
    metadata = involved.get("metadata") or {}
    namespace = metadata.get("namespace") or "default"  # cluster-scoped objects' events live in default
    stamp = format_time(now).split(".")[0] + "Z"  # Event timestamps are whole seconds
    text = logsetup.redact(message)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{metadata.get('name', 'object')}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion") or "v1",
            "kind": kind,
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "uid": metadata.get("uid"),
            "resourceVersion": metadata.get("resourceVersion"),
        },
        "reason": reason,
        "message": text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "...",
        "type": "Warning" if warning else "Normal",
        "source": {"component": component},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class EventPoster:
    def __init__(self, client: Client, component: str) -> None:
        self.client, self.component = client, component
        self._tasks: set[asyncio.Task[None]] = set()

    def post(self, involved: dict[str, Any], kind: str, reason: str, message: str, warning: bool = False) -> None:
        body = event_body(involved, kind, reason, message, self.component, datetime.now(UTC), warning)
        task = asyncio.create_task(self._send(body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, body: dict[str, Any]) -> None:
        namespace = body["metadata"]["namespace"]
        try:
            await self.client.create(f"/api/v1/namespaces/{namespace}/events", body)
        except ApiError as exc:
            log.warning("could not post event %s about %s: %s", body["reason"], body["involvedObject"]["name"], exc)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (a little) for events still being posted, at shutdown."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
