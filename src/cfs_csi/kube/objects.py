"""Small helpers over the official client used by every shared-mode component."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def read_or_none(read: Callable[..., Any], *args: Any) -> Any | None:
    """Call a client ``read_*`` method off the event loop; ``None`` when the object does not exist (404)."""
    from kubernetes.client.exceptions import ApiException

    try:
        return await asyncio.to_thread(read, *args)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


async def create_unless_exists(create: Callable[..., Any], *args: Any) -> bool:
    """Call a client ``create_*`` method off the event loop; False when the object already exists (409)."""
    from kubernetes.client.exceptions import ApiException

    try:
        await asyncio.to_thread(create, *args)
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True
