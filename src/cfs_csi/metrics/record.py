"""What instrumented code calls: one function per event, a no-op until a component installs its metrics.

This module imports only the standard library, so instrumenting a module (the interceptor, the cloud API client,
the mount runner, the statvfs probes) costs a process without metrics one attribute test per event and no
imports. :func:`install` is called once, by a component started with ``--metrics-port``, with a :class:`Sink` built
on prometheus_client (:mod:`cfs_csi.metrics.csi`, :mod:`cfs_csi.metrics.shared`).

The functions that turn raw values into label values are pure and bound each label to a fixed set: an unknown
value becomes ``other``, never itself.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Protocol


class Sink:
    """The events of every component, each ignored here: a component's metrics count those it has families for.
    Label values are already bounded when they arrive."""

    def rpc(self, method: str, code: str, seconds: float) -> None:
        """A CSI call (controller, node)."""

    def cloud_call(self, action: str, code: str, seconds: float) -> None:
        """A CFS API call (controller, operator, sub-directory provisioner)."""

    def cloud_retry(self, action: str, code: str, gave_up: bool) -> None:
        """A retryable CFS API error, retried or given up on."""

    def mount_command(self, command: str, outcome: str, seconds: float) -> None:
        """A mount or umount command (node)."""

    def volume_stats(self, outcome: str, seconds: float) -> None:
        """A statvfs of a volume (node)."""

    def reconcile(self, outcome: str, seconds: float) -> None:
        """A reconcile of one Tcfs (operator)."""

    def provision(self, operation: str, outcome: str, seconds: float) -> None:
        """A claim's directory provisioned or a released one deleted (sub-directory provisioner)."""

    def quota(self, operation: str, outcome: str) -> None:
        """A directory quota set or removed (sub-directory provisioner)."""


class HasStuck(Protocol):
    def stuck(self) -> list[str]: ...


_sink: Sink | None = None
#: (running, killed but not exited) mount commands (:func:`cfs_csi.mount.runner.census`), asked at scrape time.
_commands: Callable[[], tuple[int, int]] | None = None
#: Every live statvfs prober (:class:`cfs_csi.mount.stats.StatsProbes`), asked at scrape time for hung probes.
_probers: weakref.WeakSet[HasStuck] = weakref.WeakSet()


def install(sink: Sink | None) -> None:
    """Count events into ``sink`` from now on (None: stop counting)."""
    global _sink
    _sink = sink


def rpc(method: str, code: str, seconds: float) -> None:
    """A CSI call ended with gRPC status ``code`` (its name: ``OK``, ``NOT_FOUND``) after ``seconds``."""
    if _sink is not None:
        _sink.rpc(method, code, seconds)


def cloud_call(action: str, code: str, seconds: float) -> None:
    """A cloud API call ``action`` was answered (``code``: ``OK`` or the API's error code) after ``seconds``."""
    if _sink is not None:
        _sink.cloud_call(action, error_category(code), seconds)


def cloud_retry(error: BaseException, gave_up: bool) -> None:
    """A retryable cloud error: retried after a backoff, or ``gave_up`` (the time budget would run out)."""
    if _sink is not None:
        action = getattr(error, "action", None)
        code = getattr(error, "code", None)
        _sink.cloud_retry(
            action if isinstance(action, str) else "other",
            error_category(code) if isinstance(code, str) else "other",
            gave_up,
        )


def mount_command(argv0: str, outcome: str, seconds: float) -> None:
    """A ``mount`` or ``umount`` command ended (``outcome``: :data:`COMMAND_OUTCOMES`) after ``seconds``."""
    if _sink is not None:
        _sink.mount_command(command_label(argv0), bounded(outcome, COMMAND_OUTCOMES), seconds)


def volume_stats(outcome: str, seconds: float) -> None:
    """A ``statvfs`` of a volume answered (``outcome``: :data:`STATS_OUTCOMES`) after ``seconds``."""
    if _sink is not None:
        _sink.volume_stats(bounded(outcome, STATS_OUTCOMES), seconds)


def reconcile(outcome: str, seconds: float) -> None:
    """A Tcfs reconcile ended (``outcome``: :data:`RECONCILE_OUTCOMES`) after ``seconds``."""
    if _sink is not None:
        _sink.reconcile(bounded(outcome, RECONCILE_OUTCOMES), seconds)


def provision(operation: str, outcome: str, seconds: float) -> None:
    """A claim's directory was provisioned or a released one deleted (``operation``: ``provision``/``delete``;
    ``outcome``: :data:`PROVISION_OUTCOMES`) after ``seconds``."""
    if _sink is not None:
        _sink.provision(bounded(operation, PROVISION_OPERATIONS), bounded(outcome, PROVISION_OUTCOMES), seconds)


def quota(operation: str, outcome: str) -> None:
    """A directory quota was set or removed (``operation``: ``set``/``remove``; ``outcome``:
    :data:`QUOTA_OUTCOMES`)."""
    if _sink is not None:
        _sink.quota(bounded(operation, QUOTA_OPERATIONS), bounded(outcome, QUOTA_OUTCOMES))


def watch_stats(prober: HasStuck) -> None:
    """Ask ``prober`` at each scrape how many of its probes are hung (held weakly: it may go away)."""
    _probers.add(prober)


def watch_commands(census: Callable[[], tuple[int, int]]) -> None:
    """Ask ``census`` at each scrape how many mount commands run, and how many of them were killed in vain."""
    global _commands
    _commands = census


def running_commands() -> tuple[int, int]:
    """(running, killed but still not exited) mount commands; (0, 0) when the runner was never loaded."""
    return _commands() if _commands is not None else (0, 0)


def stuck_probes() -> int:
    """How many statvfs probes of every live prober are past their deadline and still blocked."""
    return sum(len(prober.stuck()) for prober in list(_probers))


#: The outcomes of a mount command (:func:`cfs_csi.mount.runner.run`).
COMMAND_OUTCOMES = frozenset({"ok", "failed", "not_found", "timeout", "cancelled", "not_started"})
#: The outcomes of a statvfs probe (:class:`cfs_csi.mount.stats.StatsProbes`): ``refused``: an earlier probe of
#: the same path is past its deadline, so the call was answered at once.
STATS_OUTCOMES = frozenset({"ok", "stale", "failed", "timeout", "refused", "cancelled"})
#: How a Tcfs reconcile ended: done, a temporary problem to retry later (reported on the Tcfs), an error.
RECONCILE_OUTCOMES = frozenset({"ok", "retry", "error"})
PROVISION_OPERATIONS = frozenset({"provision", "delete"})
#: ``refused``: the claim or volume was refused for good (an Event says why); ``error``: retried later.
PROVISION_OUTCOMES = frozenset({"ok", "refused", "error"})
QUOTA_OPERATIONS = frozenset({"set", "remove"})
#: ``failed``: the cloud refused or did not answer.
QUOTA_OUTCOMES = frozenset({"ok", "failed"})
#: The Ready condition's reasons a Tcfs can have (:mod:`cfs_csi.operator`); another is counted as ``other``.
TCFS_REASONS = frozenset(
    {
        "FileSystemReady",
        "FileSystemMissing",
        "FileSystemNotFound",
        "InvalidSpec",
        "Creating",
        "CloudError",
        "DeploymentNotOwned",
        "ShareVolumeNotOwned",
    }
)

#: The first part of the Tencent Cloud API's error codes (``ResourceNotFound.FileSystemNotFound``), plus the
#: SDK's network codes and ``Cancelled``; the part after the dot is left out (it is open-ended).
ERROR_CATEGORIES = frozenset(
    {
        "OK",
        "AuthFailure",
        "Cancelled",  # ours: the caller gave up (its deadline) before an answer came
        "ClientNetworkError",
        "FailedOperation",
        "InternalError",
        "InvalidAction",
        "InvalidParameter",
        "InvalidParameterValue",
        "LimitExceeded",
        "MissingParameter",
        "OperationDenied",
        "RequestLimitExceeded",
        "ResourceInUse",
        "ResourceInsufficient",
        "ResourceNotFound",
        "ResourceUnavailable",
        "ResourcesSoldOut",
        "ServerNetworkError",
        "UnauthorizedOperation",
        "UnknownParameter",
        "UnsupportedOperation",
    }
)
#: Error categories that mean the API is throttling us.
THROTTLING = frozenset({"RequestLimitExceeded"})


def bounded(value: str, allowed: frozenset[str]) -> str:
    """``value`` if it is one of ``allowed``, else ``other`` (pure)."""
    return value if value in allowed else "other"


def error_category(code: str) -> str:
    """The label of an API answer's code: ``OK``, or its category (the part before the first dot) when known,
    else ``other`` (pure)."""
    return bounded(code.split(".", 1)[0], ERROR_CATEGORIES)


def command_label(argv0: str) -> str:
    """``mount`` or ``umount`` (a full path's last part; the NFS helper ``mount.nfs`` counts as ``mount``, since
    the node runs it in mount's place), else ``other`` (pure)."""
    name = argv0.rsplit("/", 1)[-1]
    return bounded("mount" if name == "mount.nfs" else name, frozenset({"mount", "umount"}))
