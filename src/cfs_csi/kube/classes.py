"""StorageClasses as an informer sees them, and the claims that arrived before their class.

The class and the claim come on separate watches, so a claim made right after its class can arrive first
(Kubernetes' storage e2e suite does exactly that). Such a claim waits here and is judged again when its class
arrives, not a resync later. The operator and the sub-directory provisioner both keep one.
"""

from __future__ import annotations

from typing import Any

Object = dict[str, Any]


class WaitingClaims(dict[str, dict[str, Object]]):
    """Claims whose class is not seen yet: by class name, then claim uid (no empty entries are kept)."""

    def add(self, class_name: str, uid: str, claim: Object) -> None:
        self.setdefault(class_name, {})[uid] = claim

    def drop(self, class_name: str, uid: str) -> None:
        waiting = self.get(class_name)
        if waiting is not None:
            waiting.pop(uid, None)
            if not waiting:
                del self[class_name]


def class_event(classes: dict[str, Object], waiting: WaitingClaims, kind: str, storage_class: Object) -> list[Object]:
    """Keep ``classes`` as the watch says; return the claims that waited for this class (now to be judged)."""
    name = str(storage_class["metadata"]["name"])
    if kind == "DELETED":
        classes.pop(name, None)
        return []
    classes[name] = storage_class
    return list(waiting.pop(name, {}).values())
