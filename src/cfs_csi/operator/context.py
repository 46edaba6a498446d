"""What the operator's controllers share: configuration, clients, and the informers' caches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from cfs_csi.cloud.base import FileStorage
from cfs_csi.kube.events import EventPoster
from cfs_csi.kube.liveness import Liveness
from cfs_csi.kube.rest import Client
from cfs_csi.operator.desired import ProvisionerTemplate
from cfs_csi.operator.shared import TCFS_GROUP, TCFS_PLURAL, TCFS_VERSION

#: The component name of the Events the operator posts (``kubectl describe`` shows it as "From").
COMPONENT = "cfs-csi-operator"
CLAIMS = "/api/v1/persistentvolumeclaims"
VOLUMES = "/api/v1/persistentvolumes"
CLASSES = "/apis/storage.k8s.io/v1/storageclasses"


def at(collection: str, name: str) -> str:
    """The path of object ``name`` in ``collection``; the name is quoted, since a Tcfs spec may name anything."""
    return f"{collection}/{quote(name, safe='')}"


@dataclass
class OperatorContext:
    namespace: str
    storage: FileStorage
    template: ProvisionerTemplate
    client: Client
    events: EventPoster | None = None
    #: The StorageClass informer's cache, by name.
    classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The Tcfs informer's cache (Tcfs objects of :attr:`namespace`), by name; status patches update it too.
    tcfs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The beats of its Lease loop and watches (``--health-port``'s ``/healthz``).
    liveness: Liveness = field(default_factory=Liveness)

    def __post_init__(self) -> None:
        if self.events is None:
            self.events = EventPoster(self.client, COMPONENT, aggregate=True)

    @property
    def tcfs_path(self) -> str:
        return f"/apis/{TCFS_GROUP}/{TCFS_VERSION}/namespaces/{self.namespace}/{TCFS_PLURAL}"

    @property
    def deployments_path(self) -> str:
        return f"/apis/apps/v1/namespaces/{self.namespace}/deployments"

    @property
    def claims_path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/persistentvolumeclaims"

    def post(self, involved: dict[str, Any], kind: str, reason: str, message: str, warning: bool = False) -> None:
        """An Event about ``involved`` (posted in the background, repeats aggregated)."""
        assert self.events is not None
        if kind == "Tcfs":
            involved = {**involved, "apiVersion": f"{TCFS_GROUP}/{TCFS_VERSION}"}
        self.events.post(involved, kind, reason, message, warning)
