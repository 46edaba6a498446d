"""CSI Identity: who we are, what we serve, and whether we are ready."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from google.protobuf import wrappers_pb2

from cfs_csi import DRIVER_NAME, __version__
from cfs_csi.cloud.errors import CloudError
from cfs_csi.csi import csi_pb2
from cfs_csi.driver.grpcserve import CallContext
from cfs_csi.mount.errors import MountError

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]


class IdentityServicer:
    """Served through :class:`cfs_csi.driver.grpcserve.GrpcServer` (``csi.v1.Identity``)."""

    def __init__(self, serves_controller: bool, checks: Sequence[ReadinessCheck]) -> None:
        self._serves_controller = serves_controller
        self._checks = list(checks)

    async def GetPluginInfo(
        self, request: csi_pb2.GetPluginInfoRequest, context: CallContext
    ) -> csi_pb2.GetPluginInfoResponse:
        return csi_pb2.GetPluginInfoResponse(name=DRIVER_NAME, vendor_version=__version__)

    async def GetPluginCapabilities(
        self, request: csi_pb2.GetPluginCapabilitiesRequest, context: CallContext
    ) -> csi_pb2.GetPluginCapabilitiesResponse:
        capabilities = []
        if self._serves_controller:
            service = csi_pb2.PluginCapability.Service(type=csi_pb2.PluginCapability.Service.CONTROLLER_SERVICE)
            capabilities.append(csi_pb2.PluginCapability(service=service))
            # Volumes grow while published (the csi-resizer sidecar, which talks to the controller, asks for this):
            # a file system's size limit or a directory quota is raised on the server, with no detach and no
            # remount. A node-only plugin says nothing of it: its part is the node capability EXPAND_VOLUME.
            expansion = csi_pb2.PluginCapability.VolumeExpansion(type=csi_pb2.PluginCapability.VolumeExpansion.ONLINE)
            capabilities.append(csi_pb2.PluginCapability(volume_expansion=expansion))
        return csi_pb2.GetPluginCapabilitiesResponse(capabilities=capabilities)

    async def Probe(self, request: csi_pb2.ProbeRequest, context: CallContext) -> csi_pb2.ProbeResponse:
        """Ready only when every dependency answers; a failing one is logged, not raised (CSI says so)."""
        for check in self._checks:
            try:
                await check()
            except (CloudError, MountError) as exc:
                log.warning("not ready: %s", exc)
                return csi_pb2.ProbeResponse(ready=wrappers_pb2.BoolValue(value=False))
        return csi_pb2.ProbeResponse(ready=wrappers_pb2.BoolValue(value=True))
