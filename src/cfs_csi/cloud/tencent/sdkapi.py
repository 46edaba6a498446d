"""The CFS API through the official async SDK: only where an HTTP proxy from the environment applies.

:mod:`.api` speaks to the endpoint directly; the SDK's httpx client honours ``HTTPS_PROXY``/``NO_PROXY``, so a
controller behind a proxy keeps working as it did. Imported only then: the SDK and httpx cost the controller
about 15 MB and 0.3 s of start-up.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Mapping
from typing import Any

import httpx
from tencentcloud.cfs.v20190719 import cfs_client_async
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from cfs_csi.cloud.deadline import count_cloud
from cfs_csi.cloud.tencent.api import ApiError
from cfs_csi.cloud.tencent.credentials import SdkCredential


def mark_sniffio_absent() -> bool:
    """Record ``sniffio`` as absent when it is not installed; True if it was recorded.

    httpcore (under httpx) tries ``import sniffio`` four times per request to tell trio from asyncio. When it is
    not installed, every try searches each ``sys.path`` entry again (64 µs here); with ``None`` in
    ``sys.modules`` the import fails at once (2 µs) and httpcore takes asyncio, as it does anyway without
    sniffio. Where sniffio is installed, nothing changes.
    """
    if "sniffio" in sys.modules or importlib.util.find_spec("sniffio") is not None:
        return False
    sys.modules["sniffio"] = None  # type: ignore[assignment]
    return True


class SdkApi:
    """:class:`~cfs_csi.cloud.tencent.api.CloudApi` over the SDK's generic call, keep-alive on."""

    def __init__(self, scheme: str, endpoint: str, region: str, credential: SdkCredential, timeout: float) -> None:
        mark_sniffio_absent()
        http = HttpProfile(protocol=scheme, endpoint=endpoint, reqTimeout=int(max(1, timeout)), keepAlive=True)
        profile = ClientProfile(httpProfile=http)
        profile.disable_region_breaker = True
        self._client = cfs_client_async.CfsClient(credential, region, profile)

    async def call(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The SDK's generic call (signing, error envelope) with the answer as parsed JSON, no typed models."""
        started = time.monotonic()
        try:
            answer = await self._client.call_and_deserialize(action, dict(params), dict)
        except TencentCloudSDKException as exc:
            raise ApiError(action, str(exc.get_code()), str(exc.get_message())) from None
        except httpx.HTTPError as exc:
            raise ApiError(action, "ClientNetworkError", type(exc).__name__) from None
        finally:
            count_cloud(time.monotonic() - started)  # the SDK's signing and models included: no finer split
        response = answer.get("Response") if isinstance(answer, dict) else None
        if not isinstance(response, dict):
            raise ApiError(action, "ServerNetworkError", "the answer has no Response object")
        return response

    async def close(self) -> None:
        await self._client.close()
