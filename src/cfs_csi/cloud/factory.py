"""Choose and build the file-storage backend named on the command line."""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cfs_csi.cloud.base import FileStorage
from cfs_csi.cloud.ownership import VENDOR_FLAG

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
    delete_vendor_volumes: bool = False


def split_endpoint(url: str) -> tuple[str, str]:
    """``https://host[:port]`` -> (scheme, host[:port]); the scheme is required so nothing is guessed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"--cfs-endpoint {url!r} must look like https://cfs.internal.tencentcloudapi.com")
    return parts.scheme, parts.netloc


def make_backend(options: BackendOptions) -> FileStorage:
    if options.name == "local":
        from cfs_csi.cloud.local import LocalFileStorage  # here: a tencent controller never loads it

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
        delete_vendor_volumes=options.delete_vendor_volumes,
    )  # fmt: skip
    return TencentFileStorage(config, credential)


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that choose and configure a backend (shared by ``serve`` and ``operator``)."""
    parser.add_argument("--backend", choices=BACKENDS, default="local")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path("/var/lib/cfs-csi"),
        help="local backend file systems (<dir>/local) and node publications (<dir>/node)",
    )
    parser.add_argument("--local-host", default="127.0.0.1", help="mount-target address the local backend reports")
    cloud = parser.add_argument_group("tencent backend")
    cloud.add_argument("--region", default="", help="cloud region (default: the CVM metadata service)")
    cloud.add_argument("--zone", default="", help="zone for StorageClasses without one (default: metadata)")
    cloud.add_argument(
        "--cluster-id",
        default=os.environ.get("CLUSTER_ID", ""),
        help="prefix of file-system names, <cluster id>_<volume name> (env CLUSTER_ID)",
    )
    cloud.add_argument("--cfs-endpoint", default=DEFAULT_CFS_ENDPOINT, help="CFS API endpoint, with scheme")
    cloud.add_argument(
        "--credentials-dir",
        type=Path,
        default=None,
        help="directory of a mounted Secret with TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY",
    )
    cloud.add_argument("--metadata-url", default="", help="CVM metadata service (tests)")
    cloud.add_argument("--cloud-timeout", type=float, default=10.0, help="seconds per CFS API request")
    cloud.add_argument(
        "--cloud-poll-interval", type=float, default=1.0, help="seconds between checks of a file system being created"
    )
    cloud.add_argument(
        VENDOR_FLAG,
        action="store_true",
        help="let DeleteVolume delete untagged file systems named <cluster id>_pvc-<uid>, as the vendor's driver "
        "created them (default: refused with FAILED_PRECONDITION)",
    )


def backend_from_arguments(args: argparse.Namespace) -> FileStorage:
    return make_backend(
        BackendOptions(
            name=args.backend, state_dir=args.state_dir / "local", local_host=args.local_host, region=args.region,
            zone=args.zone, cluster_id=args.cluster_id, cfs_endpoint=args.cfs_endpoint,
            credentials_dir=args.credentials_dir, metadata_url=args.metadata_url, cloud_timeout=args.cloud_timeout,
            poll_interval=args.cloud_poll_interval, delete_vendor_volumes=args.delete_vendor_volumes,
        )
    )  # fmt: skip
