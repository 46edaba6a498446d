"""``cfs-csi emulator`` and ``python -m cfs_csi.emulator``: run the CFS API emulator until SIGTERM or SIGINT.

With ``--listen HOST:0`` the kernel picks the port; the first line on stdout always says where the emulator
listens (``cfs-emulator listening on http://127.0.0.1:41234``), so a test or script can read it.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from cfs_csi import logsetup
from cfs_csi.emulator.actions import Cloud, CloudSettings
from cfs_csi.emulator.faults import FaultConfig, Faults
from cfs_csi.emulator.gateway import Gateway
from cfs_csi.emulator.server import Emulator
from cfs_csi.emulator.store import Store
from cfs_csi.volume.exports import ExportRoot

log = logging.getLogger(__name__)

# The vendor driver's variables first, then the SDK's own.
CREDENTIAL_VARIABLES = (
    ("TENCENTCLOUD_API_SECRET_ID", "TENCENTCLOUD_API_SECRET_KEY"),
    ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"),
)


def resolve_credentials(secret_id: str | None, secret_key: str | None, env: Mapping[str, str]) -> tuple[str, str]:
    """The one key pair the emulator accepts: flags first, then the environment; whitespace is stripped
    (a key pasted with a trailing newline is the classic way to break signing)."""
    sid = (secret_id or "").strip()
    key = (secret_key or "").strip()
    for id_var, key_var in CREDENTIAL_VARIABLES:
        sid = sid or env.get(id_var, "").strip()
        key = key or env.get(key_var, "").strip()
    if not sid or not key:
        names = " / ".join(f"{i} and {k}" for i, k in CREDENTIAL_VARIABLES)
        raise ValueError(f"no credentials: pass --secret-id and --secret-key, or set {names}")
    return sid, key


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6); port 0 lets the kernel choose."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"--listen wants HOST:PORT, not {value!r}")
    return host, int(port)


def _rate(value: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"a rate is between 0 and 1, not {value}")
    return rate


def _seconds(value: str) -> float:
    seconds = float(value)
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"a duration cannot be negative: {value}")
    return seconds


def _zones(value: str) -> tuple[str, ...]:
    zones = tuple(z.strip() for z in value.split(",") if z.strip())
    if not zones:
        raise argparse.ArgumentTypeError("--zones wants at least one zone")
    return zones


def _pgroup(value: str) -> tuple[str, str]:
    group_id, _, name = value.partition("=")
    if not re.fullmatch(r"pgroup-[a-z0-9]{8}", group_id) or len(name.encode()) > 64:
        raise argparse.ArgumentTypeError(f"--pgroup wants pgroup-xxxxxxxx[=NAME], not {value[:80]!r}")
    return group_id, name or group_id


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 0), help="HOST:PORT (default 127.0.0.1:0)")
    p.add_argument("--state", type=Path, required=True, help="SQLite file holding the file systems (created)")
    p.add_argument("--secret-id", default=None, help="accepted SecretId (default: environment, see docs)")
    p.add_argument("--secret-key", default=None, help="its SecretKey (prefer the environment)")
    p.add_argument(
        "--session-token",
        default=None,
        help="make the key pair a temporary one: requests must carry this X-TC-Token "
        "(default: env CFS_EMULATOR_SESSION_TOKEN; none: requests must carry no token)",
    )
    p.add_argument("--region", default="ap-guangzhou", help="the one region served (default ap-guangzhou)")
    p.add_argument("--export-root", type=Path, default=None, help="data directories: <dir>/<mount ip>/<fsid>/")
    p.add_argument("--create-delay", type=_seconds, default=1.0, help="seconds a file system stays creating")
    p.add_argument("--delete-delay", type=_seconds, default=0.0, help="seconds a file system stays deleting")
    p.add_argument("--quota-delay", type=_seconds, default=0.0, help="seconds a set quota stays inavailable")
    p.add_argument("--snapshot-delay", type=_seconds, default=1.0, help="seconds a new snapshot stays creating")
    p.add_argument("--client-token-ttl", type=_seconds, default=7200.0, help="seconds a ClientToken is remembered")
    p.add_argument(
        "--snapshot-max-bytes", type=int, default=1024**3, help="most content a snapshot copies (default 1 GiB)"
    )
    p.add_argument(
        "--zones", type=_zones, default=None, help="comma-separated zones of the region (default: a built-in table)"
    )
    p.add_argument(
        "--pgroup",
        type=_pgroup,
        action="append",
        default=[],
        help="a permission group that exists: pgroup-xxxxxxxx[=NAME] (repeatable; pgroupbasic always does)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed the RNG of ids and faults (reproducible runs)")
    faults = p.add_argument_group("injected faults (also settable at run time: PUT /admin/faults)")
    faults.add_argument("--throttle-rate", type=_rate, default=0.0, help="share answered RequestLimitExceeded")
    faults.add_argument("--error-rate", type=_rate, default=0.0, help="share answered with HTTP --error-status")
    faults.add_argument("--error-status", type=int, default=502, help="status of injected server errors")
    faults.add_argument("--latency-ms", type=_seconds, default=0.0, help="added to every answer")
    faults.add_argument("--timeout-rate", type=_rate, default=0.0, help="share executed but answered late")
    faults.add_argument("--timeout-delay", type=_seconds, default=30.0, help="how late (seconds)")
    faults.add_argument("--create-failed-rate", type=_rate, default=0.0, help="share of new file systems that fail")
    faults.add_argument("--stuck-rate", type=_rate, default=0.0, help="share that stay creating forever")
    faults.add_argument("--fault-actions", default="", help="comma-separated actions the request faults apply to")


def add_emulator_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("emulator", help="run a CFS cloud-API emulator (tests and demos; no cloud account needed)")
    add_arguments(p)
    p.set_defaults(run=run)


def fault_config(args: argparse.Namespace) -> FaultConfig:
    return FaultConfig(
        create_delay=args.create_delay,
        delete_delay=args.delete_delay,
        quota_delay=args.quota_delay,
        snapshot_delay=args.snapshot_delay,
        throttle_rate=args.throttle_rate,
        error_rate=args.error_rate,
        error_status=args.error_status,
        latency_ms=args.latency_ms,
        timeout_rate=args.timeout_rate,
        timeout_delay=args.timeout_delay,
        create_failed_rate=args.create_failed_rate,
        stuck_rate=args.stuck_rate,
        actions=tuple(a.strip() for a in args.fault_actions.split(",") if a.strip()),
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT. Start-up errors are raised as ValueError/OSError for the caller to print."""
    secret_id, secret_key = resolve_credentials(args.secret_id, args.secret_key, os.environ)
    token = (args.session_token or os.environ.get("CFS_EMULATOR_SESSION_TOKEN", "")).strip()
    for secret in (secret_id, secret_key, token):
        logsetup.register_secret(secret)
    # Not cryptographic: ids and faults only need to be unpredictable enough for tests, and reproducible.
    faults = Faults(fault_config(args), random.Random(args.seed))  # noqa: S311
    settings = CloudSettings(
        region=args.region,
        client_token_ttl=args.client_token_ttl,
        export_root=ExportRoot(args.export_root) if args.export_root else None,
        snapshot_max_bytes=args.snapshot_max_bytes,
        zones=args.zones,
        pgroups=tuple(args.pgroup),
    )
    args.state.parent.mkdir(parents=True, exist_ok=True)
    store = Store(args.state)
    try:
        cloud = Cloud(store, settings, faults, time.time, random.Random(args.seed))  # noqa: S311
        cloud.ensure_data_directories()
        tokens = {secret_id: token} if token else {}
        emulator = Emulator(args.listen, Gateway(cloud, faults, {secret_id: secret_key}, time.time, tokens))
        host, _ = args.listen
        if not _is_loopback(host):
            log.warning("listening on %s: the /admin/ API has no authentication; use loopback outside tests", host)
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        emulator.start()
        try:
            print(f"cfs-emulator listening on {emulator.url}", flush=True)
            log.info("region %s, state %s, export root %s", args.region, args.state, args.export_root)
            while not stop.wait(0.2):
                pass
        finally:
            emulator.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cfs-emulator", description="CFS cloud-API emulator for tests and demos")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument("--log-format", default="text", choices=logsetup.LOG_FORMATS)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logsetup.configure(args.log_level, log_format=args.log_format, component="cfs-emulator")
    try:
        return run(args)
    except (ValueError, OSError) as exc:
        print(f"cfs-emulator: error: {logsetup.redact(str(exc))}", file=sys.stderr)
        return 2
