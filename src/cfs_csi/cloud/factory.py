"""Choose and build the file-storage backend named on the command line."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cfs_csi.cloud.base import FileStorage
from cfs_csi.cloud.local import LocalFileStorage

log = logging.getLogger(__name__)

BACKENDS = ("local", "tencent")
DEFAULT_CFS_ENDPOINT = "https://cfs.internal.tencentcloudapi.com"


@dataclass(frozen=True)
class BackendOptions:
    name: str
    state_dir: Path
    local_host: str = "127.0.0.1"
    region: str = ""
    zone: str = ""
    cluster_id: str = ""
    cfs_endpoint: str = DEFAULT_CFS_ENDPOINT
    credentials_dir: Path | None = None
    metadata_url: str = ""
    cloud_timeout: float = 10.0
    poll_interval: float = 1.0


def split_endpoint(url: str) -> tuple[str, str]:
    """``https://host[:port]`` -> (scheme, host[:port]); the scheme is required so nothing is guessed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"--cfs-endpoint {url!r} must look like https://cfs.internal.tencentcloudapi.com")
    return parts.scheme, parts.netloc


def make_backend(options: BackendOptions) -> FileStorage:
    if options.name == "local":
        return LocalFileStorage(options.state_dir, host=options.local_host)
    if options.name == "tencent":
        return _tencent(options)
    raise ValueError(f"unknown backend {options.name!r}; choose one of {', '.join(BACKENDS)}")


def _tencent(options: BackendOptions) -> FileStorage:
    # Imported here: the node plugin and the local backend never load the cloud SDK.
    from cfs_csi.cloud.tencent import credentials
    from cfs_csi.cloud.tencent.backend import TencentConfig, TencentFileStorage
    from cfs_csi.cloud.tencent.metadata import DEFAULT_URL, Metadata, MetadataError, region_and_zone

    scheme, endpoint = split_endpoint(options.cfs_endpoint)
    metadata = Metadata(options.metadata_url or DEFAULT_URL)
    try:
        region, zone = region_and_zone(options.region, options.zone, metadata)
        credential = credentials.resolve(os.environ, options.credentials_dir, metadata)
    except (MetadataError, credentials.CredentialError) as exc:
        raise RuntimeError(str(exc)) from None
    log.info("CFS backend: region %s, default zone %s, endpoint %s://%s, credentials from %s",
             region, zone or "(none)", scheme, endpoint, credentials.describe(credential))  # fmt: skip
    config = TencentConfig(
        region=region, default_zone=zone, endpoint=endpoint, scheme=scheme, cluster_id=options.cluster_id,
        request_timeout=options.cloud_timeout, poll_interval=options.poll_interval,
    )  # fmt: skip
    return TencentFileStorage(config, credential)
