"""Kubernetes Events about an object (what ``kubectl describe`` shows), posted without holding up the work.

Events are for people: posting one is never allowed to fail or delay what it reports. :class:`EventPoster`
posts in the background and only logs a failure. Messages pass through :func:`cfs_csi.logsetup.redact` (they
become readable to everyone who can read events) and are cut to the API's 1024 characters.

With ``aggregate``, an event repeated about the same object (same type, reason and message) is not posted
again: the first one's ``count`` and ``lastTimestamp`` are patched, as Kubernetes' own components do
(``kubectl describe`` shows "x5 over 10m"), so a condition that lasts stays visible (the API server drops an
Event an hour after its last update) without a new object per retry or resync. It takes ``patch`` on events.
A restarted process does not know what it posted before, so the first time it is about to post a warning it looks
for that Event (same object, type, reason, message and our component) and counts on it instead: the same warning
is not posted again per restart either. That takes ``list`` on events, once per warning per process.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
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


#: What makes two events "the same" for aggregation: the object (by uid), the type, the reason and the message.
Key = tuple[str, str, str, str, str]


def event_key(body: dict[str, Any]) -> Key:
    involved = body["involvedObject"]
    identity = involved.get("uid") or f"{involved.get('kind')}/{involved.get('namespace')}/{involved.get('name')}"
    return (str(identity), body["metadata"]["namespace"], body["type"], body["reason"], body["message"])


class EventPoster:
    def __init__(self, client: Client, component: str, aggregate: bool = False, remember: int = 1024) -> None:
        self.client, self.component = client, component
        self.aggregate, self.remember = aggregate, remember
        self._tasks: set[asyncio.Task[None]] = set()
        #: Aggregated events posted so far, oldest first: key -> (the Event's name, its count).
        self._posted: OrderedDict[Key, tuple[str, int]] = OrderedDict()

    def post(self, involved: dict[str, Any], kind: str, reason: str, message: str, warning: bool = False) -> None:
        body = event_body(involved, kind, reason, message, self.component, datetime.now(UTC), warning)
        task = asyncio.create_task(self._send(body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, body: dict[str, Any]) -> None:
        namespace = body["metadata"]["namespace"]
        key = event_key(body) if self.aggregate else None
        try:
            if key is not None and await self._repeat(key, body):
                return
            created = await self.client.create(f"/api/v1/namespaces/{namespace}/events", body)
        except ApiError as exc:
            log.warning("could not post event %s about %s: %s", body["reason"], body["involvedObject"]["name"], exc)
            return
        if key is not None:
            self._posted[key] = (str((created or {}).get("metadata", {}).get("name", "")), 1)
            while len(self._posted) > self.remember:
                self._posted.popitem(last=False)

    async def _repeat(self, key: Key, body: dict[str, Any]) -> bool:
        """Count ``body`` on the event already posted for ``key``; False if there is none (any more)."""
        found = self._posted.get(key)
        if found is None:
            # Only a warning repeats across restarts (the same failure retried); a Normal event (Provisioning,
            # Created...) is posted once per object, so looking for an earlier one would only cost a list each.
            found = await self._earlier(key, body) if body["type"] == "Warning" else None
            if found is None:
                return False
        if not found[0]:
            return False
        name, count = found
        patch = {"count": count + 1, "lastTimestamp": body["lastTimestamp"]}
        try:
            await self.client.patch(f"/api/v1/namespaces/{key[1]}/events/{name}", patch)
        except ApiError as exc:
            if exc.status != 404:  # 404: expired (an hour after its last update), so a new one is posted
                raise
            self._posted.pop(key, None)
            return False
        self._posted[key] = (name, count + 1)
        self._posted.move_to_end(key)
        return True

    async def _earlier(self, key: Key, body: dict[str, Any]) -> tuple[str, int] | None:
        """The Event an earlier run of this component posted for ``key`` (name, count), if the API still has it."""
        involved = body["involvedObject"]
        selector = [f"reason={body['reason']}", f"type={body['type']}"]
        if involved.get("uid"):
            selector.append(f"involvedObject.uid={involved['uid']}")
        else:
            selector.append(f"involvedObject.name={involved.get('name', '')}")
        listed = await self.client.list(f"/api/v1/namespaces/{key[1]}/events",
                                        params={"fieldSelector": ",".join(selector)})  # fmt: skip
        for event in listed.get("items") or []:
            source = (event.get("source") or {}).get("component")
            if event.get("message") == body["message"] and source == self.component:
                return str(event["metadata"]["name"]), int(event.get("count") or 1)
        return None

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (a little) for events still being posted, at shutdown."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
