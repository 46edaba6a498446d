"""``cfs-csi client``: call a running driver by hand, the way the CO would.

Arguments are checked before anything is sent (``KEY=VALUE`` pairs, sizes), so a typo gets a usage error naming
the flag, not a Python traceback. Results go to stdout as JSON; an RPC error goes to stderr as ``CODE: message``
with exit status 1, so scripts can tell them apart. Secrets given with ``--secret`` are sent in the request's
secrets field, which the driver never logs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from dataclasses import dataclass
from typing import Any

DEFAULT_ENDPOINT = "unix:///csi/csi.sock"
DEFAULT_SIZE = "10Gi"
VOLUME_HELP = "a volume id, or @FILE: the JSON create printed (saved with > FILE)"

_UNITS = {"": 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "Pi": 1024**5}
_QUANTITY = re.compile(r"^(?P<number>[0-9]+)(?P<unit>[KMGTP]i)?$")


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (the value may contain ``=``, the key may not be empty); an argparse type."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key.strip(), value


def byte_size(text: str) -> int:
    """A capacity in bytes: plain bytes (``1073741824``) or a binary quantity (``10Gi``, ``512Mi``)."""
    match = _QUANTITY.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size in bytes or a quantity such as 10Gi or 512Mi")
    size = int(match["number"]) * _UNITS[match["unit"] or ""]
    if size <= 0 or size >= 2**63:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range (1 byte to 8 EiB)")
    return size


@dataclass(frozen=True)
class VolumeRef:
    """A volume named on the command line: its id, or ``@FILE`` with the JSON that ``create`` printed (which
    also gives the volume context publish needs)."""

    volume_id: str
    context: dict[str, str]


def volume_ref(text: str) -> VolumeRef:
    """An argparse type: a volume id as it is, or ``@FILE`` read as create's printed volume."""
    if not text.startswith("@"):
        if not text:
            raise argparse.ArgumentTypeError("the volume id is empty")
        return VolumeRef(text, {})
    path = text[1:]
    try:
        with open(path, encoding="utf-8") as f:
            printed = json.load(f)
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{path}: not the JSON that create printed ({exc})") from None
    volume_id = printed.get("volumeId") if isinstance(printed, dict) else None
    context = printed.get("volumeContext") or {} if isinstance(printed, dict) else {}
    if not isinstance(volume_id, str) or not volume_id or not isinstance(context, dict):
        raise argparse.ArgumentTypeError(f"{path}: no volumeId in it (is it the output of create?)")
    return VolumeRef(volume_id, {str(k): str(v) for k, v in context.items()})


def _pairs(items: list[tuple[str, str]], flag: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in items:
        if key in found:
            raise SystemExit(f"cfs-csi client: error: {flag} {key} given twice")
        found[key] = value
    return found


def add_client_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    formatter = argparse.ArgumentDefaultsHelpFormatter
    p = sub.add_parser("client", help="call a running driver by hand (for trying it out)", formatter_class=formatter,
                       description=__doc__.split("\n\n", 1)[0] if __doc__ else None)  # fmt: skip
    p.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help="the driver's CSI socket")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("info", help="GetPluginInfo and Probe: name, version, readiness", formatter_class=formatter)

    create = actions.add_parser("create", help="CreateVolume; prints the volume (id, capacity, context)",
                                formatter_class=formatter)  # fmt: skip
    create.add_argument("name", help="the volume's name (the CO uses pvc-<uid>)")
    create.add_argument("--size", type=byte_size, default=DEFAULT_SIZE, metavar="BYTES",
                        help="required capacity: bytes, or a quantity such as 10Gi or 512Mi")  # fmt: skip
    create.add_argument("--param", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="a StorageClass parameter (repeat for more)")  # fmt: skip
    create.add_argument("--secret", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="a secret sent with the request, never logged (repeat for more)")  # fmt: skip

    delete = actions.add_parser("delete", help="DeleteVolume", formatter_class=formatter)
    delete.add_argument("volume", type=volume_ref, help=VOLUME_HELP)
    delete.add_argument("--secret", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="a secret sent with the request (repeat for more)")  # fmt: skip

    publish = actions.add_parser("publish", help="NodePublishVolume: mount the volume at TARGET",
                                 formatter_class=formatter)  # fmt: skip
    publish.add_argument("volume", type=volume_ref, help=VOLUME_HELP)
    publish.add_argument("target", help="the target path (below the node's <kubelet-dir>/pods)")
    publish.add_argument("--context", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                         help="a volume_context entry (host, fsid, vers, ...); with @FILE they come from it and "
                              "these override them")  # fmt: skip
    publish.add_argument("--mount-flag", action="append", default=[], metavar="FLAG",
                         help="an NFS mount option, as a class's mountOptions (repeat for more)")  # fmt: skip
    publish.add_argument("--readonly", action="store_true", help="mount read-only")
    publish.add_argument("--secret", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                         help="a secret sent with the request (repeat for more)")  # fmt: skip

    unpublish = actions.add_parser("unpublish", help="NodeUnpublishVolume: unmount TARGET", formatter_class=formatter)
    stats = actions.add_parser("stats", help="NodeGetVolumeStats of a published TARGET", formatter_class=formatter)
    for q in (unpublish, stats):
        q.add_argument("volume", type=volume_ref, help=VOLUME_HELP)
        q.add_argument("target", help="where the volume is published")
    p.set_defaults(run=lambda args: asyncio.run(client_main(args)))


async def client_main(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf import json_format

    from cfs_csi.client import CsiClient
    from cfs_csi.csi import csi_pb2

    def show(message: Any) -> None:
        print(json.dumps(json_format.MessageToDict(message), indent=2, sort_keys=True))

    secrets = _pairs(getattr(args, "secret", []), "--secret")
    async with CsiClient(args.endpoint) as client:
        try:
            if args.action == "info":
                show(await client.identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest()))
                show(await client.identity.Probe(csi_pb2.ProbeRequest()))
            elif args.action == "create":
                params = _pairs(args.param, "--param")
                show(await client.create_volume(args.name, params, args.size, secrets))
            elif args.action == "delete":
                await client.delete_volume(args.volume.volume_id, secrets)
            elif args.action == "publish":
                context = {**args.volume.context, **_pairs(args.context, "--context")}
                volume = csi_pb2.Volume(volume_id=args.volume.volume_id, volume_context=context)
                await client.publish(volume, args.target, args.readonly, tuple(args.mount_flag), secrets)
            elif args.action == "unpublish":
                await client.unpublish(args.volume.volume_id, args.target)
            elif args.action == "stats":
                show(await client.stats(args.volume.volume_id, args.target))
        except grpc.aio.AioRpcError as exc:
            print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    return 0
