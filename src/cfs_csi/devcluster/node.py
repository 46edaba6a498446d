"""A real single-node: a private containerd and the real kubelet next to the loopback control plane.

Nothing of the host may change, so the node lives in a mount namespace of its own, held open by a ``sleep``
(the *holder*) and entered with ``nsenter`` by everything the node runs (containerd, its shims, the kubelet,
``ctr``). Inside it:

- ``/run`` is a fresh tmpfs and ``/var/lib``, ``/var/log`` are bind mounts of directories under the node's
  root, because containerd's shims, CNI's cache and the kubelet's ``/var/log/containers`` links use fixed host
  paths. The kubelet's root is the usual ``/var/lib/kubelet`` (so charts work with their defaults), made an
  rshared mount point so mounts made under it (volumes, CSI publishes) propagate into pods.
- the six ``/proc/sys`` files the kubelet always writes are covered by bind mounts of copies, so the host's
  kernel settings never change.
- pods that do not use the host network get addresses on a bridge (:func:`cni_conflist`) that lives in the
  holder's own network namespace, with the host ends of their veth pairs: the host's network never changes.

When the holder and every process of the namespace have gone, so have all the node's mounts; teardown
therefore stops the kubelet, deletes every container through containerd, stops containerd, kills whatever is
still in the namespace (and the container processes below its shims), and removes the cgroup directories the
run created. What could not be removed is reported, never ignored.

Decisions (what is missing, the configuration files, what a leftover is) are pure functions; the
:class:`Node` methods do the I/O.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cfs_csi.devcluster import ociimage
from cfs_csi.devcluster.cluster import ControlPlane, Process, free_port, spawn, write_kubeconfig
from cfs_csi.devcluster.pki import issue_node

log = logging.getLogger(__name__)

NODE_TOOLS = ("kubelet", "kube-scheduler")
NODE_NAME = "cfs-csi-node"
CRI_NAMESPACE = "k8s.io"  # containerd's namespace for the CRI's containers
KUBELET_DIR = "/var/lib/kubelet"  # inside the node's mount namespace
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
CNI_PLUGINS = ("loopback", "bridge", "host-local")
POD_SUBNET = "10.244.0.0/24"  # only ever seen inside the node's own network namespace
BRIDGE = "cfscsi0"
SOCKET_PATH_MAX = 104  # containerd refuses longer unix socket paths (sun_path, as portable code counts it)
BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static

# Host programs the node needs, with the Debian package that provides each (for the skip reason).
PROGRAMS = {
    "containerd": "containerd", "containerd-shim-runc-v2": "containerd", "ctr": "containerd", "runc": "runc",
    "nsenter": "util-linux", "unshare": "util-linux", "mount": "mount", "sleep": "coreutils",
}  # fmt: skip

# The kubelet writes these at start whatever its configuration says (kubelet's setupKernelTunables).
KERNEL_TUNABLES = (
    "vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
)  # fmt: skip

# Plugins that would touch host paths outside the node's root (``/opt/containerd``) or that are useless here.
DISABLED_PLUGINS = (
    "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
)  # fmt: skip


class NodeUnavailable(RuntimeError):
    """This machine cannot run the node (a program or kernel feature is missing): callers skip, with why."""


# --- pure decisions ------------------------------------------------------------------------------------------


def missing_requirements(
    which: Callable[[str], str | None], filesystems: str, cni_plugins: Iterable[str], busybox: bool
) -> list[str]:
    """Why this machine cannot run the node (empty when it can); each reason names the Debian package."""
    reasons = [f"{name} not found (Debian package {package})" for name, package in PROGRAMS.items() if not which(name)]
    if "overlay" not in {line.split()[-1] for line in filesystems.splitlines() if line.strip()}:
        reasons.append("the kernel has no overlay file system (containerd's overlayfs snapshotter needs it)")
    missing = [name for name in CNI_PLUGINS if name not in set(cni_plugins)]
    if missing:
        package = "Debian package containernetworking-plugins"
        reasons.append(f"no {', '.join(missing)} CNI plugin in {CNI_BIN_DIR} ({package})")
    if not busybox:
        reasons.append(f"no static busybox at {BUSYBOX} (Debian package busybox-static)")
    return reasons


@dataclass(frozen=True)
class Layout:
    """Where everything of one node lives, all under ``root`` (seen from the host)."""

    root: Path

    @property
    def socket(self) -> Path:
        return self.root / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd.toml"

    @property
    def cni_dir(self) -> Path:
        return self.root / "cni"

    @property
    def cni_bin_dir(self) -> Path:
        """The plugins containerd runs: links to Debian's, and :func:`bridge_wrapper` in place of ``bridge``."""
        return self.root / "cni-bin"

    @property
    def ipam_dir(self) -> Path:
        return self.root / "cni-ipam"

    @property
    def var_lib(self) -> Path:
        return self.root / "var-lib"

    @property
    def var_log(self) -> Path:
        return self.root / "var-log"

    @property
    def kubelet_dir(self) -> Path:
        """The kubelet's root as the host sees it (``/var/lib/kubelet`` inside the node)."""
        return self.var_lib / "kubelet"

    @property
    def sysctl_dir(self) -> Path:
        return self.root / "sysctl"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


def _toml_string(value: str | Path) -> str:
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def containerd_config(layout: Layout, sandbox_image: str) -> str:
    """A private containerd: own root, state and socket; CRI with overlayfs, runc on cgroupfs.

    ``restrict_oom_score_adj``: without CAP_SYS_RESOURCE a sandbox cannot lower its oom_score_adj below ours.
    ``disable_apparmor``: no profile is loaded for a private instance. ``netns_mounts_under_state_dir`` keeps
    pod network namespaces out of ``/var/run/netns``.
    """
    cri = '[plugins."io.containerd.grpc.v1.cri"'
    return "\n".join([
        "version = 2",
        f"root = {_toml_string(layout.root / 'containerd' / 'root')}",
        f"state = {_toml_string(layout.root / 'containerd' / 'state')}",
        f"disabled_plugins = {json.dumps(list(DISABLED_PLUGINS))}",
        "[grpc]", f"  address = {_toml_string(layout.socket)}",
        "[ttrpc]", f"  address = {_toml_string(str(layout.socket) + '.ttrpc')}",
        f"{cri}]",
        f"  sandbox_image = {_toml_string(sandbox_image)}",
        "  restrict_oom_score_adj = true", "  disable_apparmor = true", "  enable_selinux = false",
        '  stream_server_address = "127.0.0.1"', '  stream_server_port = "0"',
        "  netns_mounts_under_state_dir = true",
        f"{cri}.containerd]", '  snapshotter = "overlayfs"', '  default_runtime_name = "runc"',
        f"{cri}.containerd.runtimes.runc]", '  runtime_type = "io.containerd.runc.v2"',
        f"{cri}.containerd.runtimes.runc.options]", "  SystemdCgroup = false",
        f"{cri}.cni]", f"  bin_dir = {_toml_string(layout.cni_bin_dir)}",
        f"  conf_dir = {_toml_string(layout.cni_dir)}",
        "",
    ])  # fmt: skip


def cni_conflist(ipam_dir: Path) -> str:
    """A single-node bridge network: each pod gets an address of :data:`POD_SUBNET` on ``eth0``.

    A pod sandbox without an address on an interface is refused by containerd ("failed to find network info"),
    so pods that do not use the host network (every pod of Kubernetes' storage e2e suite) need one. The bridge
    and the host ends of the veth pairs live in the node's network namespace (:func:`bridge_wrapper`), so the
    host's network never changes; addresses are leased in ``ipam_dir`` under the node's root.
    """
    ipam = {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]], "dataDir": str(ipam_dir)}
    bridge = {
        "type": "bridge",
        "bridge": BRIDGE,
        "isGateway": False,
        "ipMasq": False,
        "hairpinMode": True,
        "ipam": ipam,
    }
    return json.dumps({"cniVersion": "1.0.0", "name": "cfs-csi-dev", "plugins": [bridge]}, indent=2)


def bridge_wrapper(net_ns: str, plugin: Path = CNI_BIN_DIR / "bridge") -> str:
    """The ``bridge`` plugin containerd runs: Debian's, entered into the node's network namespace ``net_ns``.

    CNI plugins run in containerd's network namespace (the host's here) and the bridge plugin makes its bridge
    there. Run in the node's own namespace instead, the bridge and the veths' host ends are made there and go
    with it; the pod end is moved into the pod's namespace by path (``CNI_NETNS``), which works from anywhere.
    """
    return f"#!/bin/sh\nexec /usr/bin/nsenter --net={net_ns} -- {plugin}\n"


@dataclass(frozen=True)
class KubeletPorts:
    port: int
    healthz: int


def kubelet_config(layout: Layout, ca_cert: Path, serving_cert: Path, serving_key: Path, ports: KubeletPorts) -> str:
    """The KubeletConfiguration of a node that changes nothing on the host.

    No cgroup hierarchy of its own (``cgroupsPerQOS: false``, cgroupfs, v1 accepted), no iptables chains, low
    eviction thresholds (a busy CI disk must not evict the test's pods). Only clients with a certificate from
    the dev CA (the API server's) may call it, and those may do anything: a dev cluster trusts its CA.
    """
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": "127.0.0.1", "port": ports.port, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": ports.healthz,
        "tlsCertFile": str(serving_cert), "tlsPrivateKeyFile": str(serving_key),
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                           "x509": {"clientCAFile": str(ca_cert)}},
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": f"unix://{layout.socket}",
        "cgroupDriver": "cgroupfs", "cgroupsPerQOS": False, "enforceNodeAllocatable": [], "failCgroupV1": False,
        "failSwapOn": False, "makeIPTablesUtilChains": False, "protectKernelDefaults": False,
        "resolvConf": str(layout.root / "resolv.conf"),
        "evictionHard": {"memory.available": "10Mi", "nodefs.available": "1%", "nodefs.inodesFree": "1%",
                         "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "rotateCertificates": False, "serverTLSBootstrap": False,
        "registerNode": True, "nodeStatusUpdateFrequency": "4s", "syncFrequency": "5s",
        "fileCheckFrequency": "5s", "httpCheckFrequency": "5s", "shutdownGracePeriod": "0s",
    }  # fmt: skip
    return json.dumps(config, indent=2)  # YAML is a superset of JSON


UNINITIALIZED_TAINT = "node.cloudprovider.kubernetes.io/uninitialized"


def addresses_patch(name: str) -> dict[str, object]:
    """The Node status addresses the harness sets, acting as the cloud's node controller.

    A kubelet refuses to report a loopback address itself, but this node is only reachable on 127.0.0.1 (it
    must not listen on a real interface). With ``--cloud-provider=external`` the kubelet leaves the addresses
    to "the cloud" once they are set, and taints the node (:data:`UNINITIALIZED_TAINT`) until the cloud is done.
    """
    return {"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                     {"type": "Hostname", "address": name}]}}  # fmt: skip


def initialized_taints_patch(node: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch removing :data:`UNINITIALIZED_TAINT` (guarded by resourceVersion); None when absent."""
    taints = node.get("spec", {}).get("taints") or []
    kept = [t for t in taints if t.get("key") != UNINITIALIZED_TAINT]
    if len(kept) == len(taints):
        return None
    return {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]}, "spec": {"taints": kept or None}}


def api_server_env(server: str) -> dict[str, str]:
    """The environment that points in-cluster clients of a pod at the API server itself.

    Without kube-proxy nothing routes the ``kubernetes`` Service's ClusterIP; a ``hostNetwork`` pod reaches the
    dev API server on its loopback address instead, and an explicit container env wins over the kubelet's.
    """
    url = urllib.parse.urlsplit(server)
    if url.scheme != "https" or not url.hostname or not url.port:
        raise ValueError(f"not an https URL with a host and a port: {server!r}")
    return {"KUBERNETES_SERVICE_HOST": url.hostname, "KUBERNETES_SERVICE_PORT": str(url.port)}


def kubelet_argv(kubelet: Path, layout: Layout, kubeconfig: Path, node_name: str) -> list[str]:
    return [
        str(kubelet), f"--config={layout.root / 'kubelet.yaml'}", f"--kubeconfig={kubeconfig}",
        f"--root-dir={KUBELET_DIR}", f"--cert-dir={layout.root / 'kubelet-pki'}",
        f"--hostname-override={node_name}", "--cloud-provider=external", "--v=1",
    ]  # fmt: skip


def namespace_mounts(layout: Layout) -> list[list[str]]:
    """The ``mount`` argument lists that prepare the node's mount namespace, in order."""
    mounts = [
        ["-t", "tmpfs", "-o", "mode=0755,size=64m", "cfs-csi-node-run", "/run"],
        ["--bind", str(layout.var_lib), "/var/lib"],
        ["--bind", str(layout.var_log), "/var/log"],
        ["--bind", KUBELET_DIR, KUBELET_DIR],
        ["--make-rshared", KUBELET_DIR],
    ]
    mounts += [["--bind", str(layout.sysctl_dir / t.replace("/", ".")), f"/proc/sys/{t}"] for t in KERNEL_TUNABLES]
    return mounts


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    mount_ns: str
    cmdline: str
    started: int = 0  # clock ticks after boot: with the pid, names one process even if the pid is reused


def node_processes(processes: Iterable[ProcInfo], node_ns: str, exclude: Iterable[int] = ()) -> list[int]:
    """Every process of the node: those in its mount namespace, and every descendant of one (the containers,
    which have mount namespaces of their own), except ``exclude``.

    Membership of a namespace this run created is what proves a process ours; nothing is matched by name.
    """
    table = list(processes)
    children: dict[int, list[int]] = {}
    for proc in table:
        children.setdefault(proc.ppid, []).append(proc.pid)
    found: set[int] = set()
    pending = [proc.pid for proc in table if proc.mount_ns == node_ns]
    while pending:
        pid = pending.pop()
        if pid not in found:
            found.add(pid)
            pending.extend(children.get(pid, ()))
    return sorted(found - set(exclude))


def _deepest_first(paths: Iterable[str]) -> list[str]:
    return sorted(paths, key=lambda p: (-p.count("/"), p))


def owned_cgroups(
    before: Iterable[str], after: Iterable[str], containers: Iterable[str]
) -> tuple[list[str], list[str]]:
    """The cgroup directories this node made, deepest first (the order ``rmdir`` needs), in two lists.

    Ours for certain: a directory that appeared during the run and is named after one of our containers (runc
    names them ``/k8s.io/<id>``: the pods have no cgroup parent). Maybe shared: a ``k8s.io`` directory that
    appeared during the run (another node on the machine may be using it); it is removed only if empty, and
    its removal failing is no leftover.
    """
    created = set(after) - set(before)
    ids = set(containers)
    ours = {path for path in created if path.rsplit("/", 1)[-1] in ids}
    parents = {path for path in created if path.rsplit("/", 1)[-1] == CRI_NAMESPACE} - ours
    return _deepest_first(ours), _deepest_first(parents)


# --- I/O -----------------------------------------------------------------------------------------------------


def check_requirements() -> None:
    """Raise :class:`NodeUnavailable` naming everything missing on this machine."""
    filesystems = Path("/proc/filesystems").read_text() if Path("/proc/filesystems").exists() else ""
    plugins = [p.name for p in CNI_BIN_DIR.iterdir()] if CNI_BIN_DIR.is_dir() else []
    reasons = missing_requirements(shutil.which, filesystems, plugins, BUSYBOX.is_file())
    if reasons:
        raise NodeUnavailable("; ".join(reasons))


def _process_table() -> list[ProcInfo]:
    table = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid, started = _stat(int(entry))
            ns = os.readlink(f"/proc/{entry}/ns/mnt")
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or a kernel thread
        table.append(ProcInfo(int(entry), ppid, ns, cmdline.strip(), started))
    return table


def _stat(pid: int) -> tuple[int, int]:
    """(parent pid, start time) from ``/proc/<pid>/stat``; the command name may contain spaces and parens."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[19])


def _kill_if_same(process: ProcInfo) -> None:
    """SIGKILL ``process`` only if its pid still names it: the pidfd pins the process, the start time proves it."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return
    try:
        if _stat(process.pid)[1] == process.started:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except (OSError, IndexError, ValueError):
        pass  # it exited meanwhile
    finally:
        os.close(pidfd)


CGROUP_ROOT = Path("/sys/fs/cgroup")


def _cgroup_dirs(depth: int = 3) -> set[str]:
    """Cgroup directories down to ``depth`` below each hierarchy (runc makes ``/k8s.io/<id>``)."""
    found: set[str] = set()
    if not CGROUP_ROOT.is_dir():
        return found
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        hierarchies = [CGROUP_ROOT]  # cgroup v2 only: one hierarchy, mounted right there
    else:
        hierarchies = [h for h in CGROUP_ROOT.iterdir() if h.is_dir() and not h.is_symlink()]  # v1 or hybrid
    for hierarchy in hierarchies:
        for current, dirs, _ in os.walk(hierarchy):
            rel = Path(current).relative_to(hierarchy)
            if len(rel.parts) >= depth:
                dirs.clear()
            if rel.parts:
                found.add(current)
    return found


def _run(argv: list[str], timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    return result


@dataclass
class Node:
    name: str
    layout: Layout
    holder: subprocess.Popen[bytes]
    mount_ns: str
    cgroups_before: set[str]
    tunables_at_start: dict[str, str] = field(default_factory=dict)  # the host's values, never changed
    processes: list[Process] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    kubelet_command: list[str] = field(default_factory=list)  # inside the node (no nsenter prefix)

    def enter(self) -> list[str]:
        """The argv prefix that runs a program inside the node's mount namespace."""
        return ["nsenter", f"--target={self.holder.pid}", "--mount", "--"]

    def ctr(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        """``ctr`` against this node's containerd, in the CRI's namespace (``k8s.io``)."""
        argv = [*self.enter(), "ctr", f"--address={self.layout.socket}", f"--namespace={CRI_NAMESPACE}", *args]
        return _run(argv, timeout, check).stdout

    def import_image(self, archive: Path, timeout: float = 300) -> None:
        """Import an OCI or docker archive (readable from the host) into the node's containerd."""
        self.ctr("images", "import", str(archive), timeout=timeout)

    def mountinfo(self) -> str:
        """The node's mount table (where volume mounts are made), read from the host."""
        return Path(f"/proc/{self.holder.pid}/mountinfo").read_text()

    def kernel_tunables(self) -> dict[str, str]:
        """What the kubelet believes it set (its private copies), for diagnostics."""
        return {t: (self.layout.sysctl_dir / t.replace("/", ".")).read_text().strip() for t in KERNEL_TUNABLES}

    def check(self) -> None:
        for process in self.processes:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited ({process.popen.returncode}):\n{process.tail()}")

    def process(self, name: str) -> Process:
        [found] = [p for p in self.processes if p.name == name]
        return found

    def restart_kubelet(self, while_stopped: Callable[[], object] | None = None) -> Process:
        """Stop the kubelet (its pods keep running, as on a real node), run ``while_stopped``, start it again."""
        old = self.process("kubelet")
        old.stop()
        self.processes.remove(old)
        if while_stopped is not None:
            while_stopped()
        kubelet = spawn("kubelet", [*self.enter(), *self.kubelet_command], self.layout.logs)
        self.processes.append(kubelet)
        return kubelet

    def _containerd_alive(self) -> bool:
        return any(p.name == "containerd" and p.alive() for p in self.processes)

    def _task_ids(self) -> list[str]:
        """The containers with a task, from containerd's own state directory: known even if containerd died."""
        tasks = self.layout.root / "containerd" / "state" / "io.containerd.runtime.v2.task" / CRI_NAMESPACE
        return sorted(p.name for p in tasks.iterdir()) if tasks.is_dir() else []

    def _delete_containers(self) -> list[str]:
        """Delete every container through containerd (task first) if it still runs; return every id known."""
        containers = set(self._task_ids())
        if not self._containerd_alive():
            return sorted(containers)
        try:
            listed = self.ctr("containers", "list", "--quiet", timeout=30, check=False).split()
            containers.update(listed)
            for container in listed:
                self.ctr("tasks", "delete", "--force", container, timeout=30, check=False)
                self.ctr("containers", "delete", container, timeout=30, check=False)
        except subprocess.TimeoutExpired:
            log.warning("containerd did not answer while deleting containers; killing what is left instead")
        return sorted(containers)

    def _kill_namespace(self) -> list[int]:
        """SIGKILL what is still in the node (by namespace and descent); return what survived."""
        survivors: list[int] = []
        for _ in range(20):
            table = _process_table()
            pids = node_processes(table, self.mount_ns, exclude=[self.holder.pid])
            if not pids:
                return []
            by_pid = {p.pid: p for p in table}
            for pid in pids:
                _kill_if_same(by_pid[pid])
            time.sleep(0.25)
            survivors = pids
        return survivors

    def _remove_cgroups(self, containers: list[str], attempts: int = 20) -> list[str]:
        """Remove the cgroups our containers had; a cgroup v1 directory can stay busy for a moment after its
        last process died, hence the retries. Returns those that would not go."""
        failed: dict[str, str] = {}
        for _ in range(attempts):
            ours, parents = owned_cgroups(self.cgroups_before, _cgroup_dirs(), containers)
            failed = {}
            for path in ours:
                try:
                    os.rmdir(path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    failed[path] = exc.strerror or str(exc)
            for path in parents:
                with contextlib.suppress(OSError):
                    os.rmdir(path)
            if not failed:
                break
            time.sleep(0.25)
        return [f"cgroup {path}: {error}" for path, error in sorted(failed.items())]

    def stop(self, remove_root: bool = False) -> list[str]:
        """Stop everything and remove what the run created; return (and log) whatever could not be removed.

        ``remove_root`` also deletes the node's directory (logs included); otherwise the caller's root goes.
        """
        leftovers: list[str] = []
        for name in ("kubelet", "kube-scheduler"):
            for process in [p for p in self.processes if p.name == name]:
                process.stop()
        containers = self._delete_containers() if self.holder.poll() is None else []
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.holder.poll() is None:
            leftovers += [f"process {pid} survived SIGKILL" for pid in self._kill_namespace()]
            self.holder.kill()
            self.holder.wait(15)
        leftovers += self._remove_cgroups(containers)
        host_mounts = Path("/proc/self/mountinfo").read_text()
        leftovers += [f"mount {line.split()[4]}" for line in host_mounts.splitlines() if str(self.layout.root) in line]
        if remove_root and not leftovers:
            shutil.rmtree(self.layout.root, ignore_errors=True)
        self.leftovers = leftovers
        if leftovers:
            log.warning("the node left behind (remove by hand):\n  %s", "\n  ".join(leftovers))
        return leftovers


def _wait(what: str, ready: Callable[[], bool], node: Node, timeout: float, process: Process | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise RuntimeError(f"{process.name} exited while starting:\n{process.tail()}")
        with contextlib.suppress(httpx.HTTPError, subprocess.SubprocessError, OSError):
            if ready():
                return
        time.sleep(0.5)
    tail = f":\n{process.tail()}" if process else ""
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s{tail}")


def _prepare(layout: Layout, plane: ControlPlane, name: str, ports: KubeletPorts) -> Path:
    """Write every file of the node under its root; return the kubelet's kubeconfig."""
    for directory in (layout.cni_dir, layout.kubelet_dir, layout.var_log, layout.sysctl_dir, layout.logs):
        directory.mkdir(parents=True, exist_ok=True)
    for tunable in KERNEL_TUNABLES:
        (layout.sysctl_dir / tunable.replace("/", ".")).write_text(Path(f"/proc/sys/{tunable}").read_text())
    resolv = Path("/etc/resolv.conf")
    (layout.root / "resolv.conf").write_text(resolv.read_text() if resolv.exists() else "nameserver 127.0.0.1\n")
    layout.containerd_config.write_text(containerd_config(layout, ociimage.PAUSE_IMAGE))
    (layout.cni_dir / "10-bridge.conflist").write_text(cni_conflist(layout.ipam_dir))
    certs = issue_node(plane.pki, layout.root / "pki", name)
    (layout.root / "kubelet.yaml").write_text(
        kubelet_config(layout, plane.pki.ca_cert, certs.serving_cert, certs.serving_key, ports)
    )
    kubeconfig = layout.root / "kubelet.kubeconfig"
    write_kubeconfig(kubeconfig, plane.server, plane.pki, certs.client_cert, certs.client_key, f"system:node:{name}")
    return kubeconfig


def _start_holder(layout: Layout) -> tuple[subprocess.Popen[bytes], str]:
    own_ns = os.readlink("/proc/self/ns/mnt")
    holder = subprocess.Popen(["unshare", "--mount", "--net", "--propagation", "private", "--", "sleep", "infinity"],
                              stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if holder.poll() is not None:
            raise RuntimeError(f"unshare --mount exited {holder.returncode}")
        with contextlib.suppress(OSError):
            ns = os.readlink(f"/proc/{holder.pid}/ns/mnt")
            if ns != own_ns and Path(f"/proc/{holder.pid}/comm").read_text().strip() == "sleep":
                return holder, ns
        time.sleep(0.05)
    holder.kill()
    raise RuntimeError("the node's mount namespace did not appear within 10s")


def _install_cni(layout: Layout, net_ns: str) -> None:
    layout.cni_bin_dir.mkdir(exist_ok=True)
    for name in CNI_PLUGINS:
        if name != "bridge":
            (layout.cni_bin_dir / name).symlink_to(CNI_BIN_DIR / name)
    wrapper = layout.cni_bin_dir / "bridge"
    wrapper.write_text(bridge_wrapper(net_ns))
    wrapper.chmod(0o755)


def _check_overlay(node: Node) -> None:
    """Mount an overlay below the node's root once: proves containerd's snapshotter can work on this disk."""
    probe = node.layout.root / "overlay-probe"
    for part in ("lower", "upper", "work", "merged"):
        (probe / part).mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={probe / 'lower'},upperdir={probe / 'upper'},workdir={probe / 'work'}"
    result = _run([*node.enter(), "mount", "-t", "overlay", "-o", options, "overlay", str(probe / "merged")],
                  check=False)  # fmt: skip
    if result.returncode != 0:
        raise NodeUnavailable(f"overlayfs cannot be mounted under {node.layout.root}: {result.stderr.strip()}")
    _run([*node.enter(), "umount", str(probe / "merged")])
    shutil.rmtree(probe, ignore_errors=True)


def _ready(node: Mapping[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _initialize(api: httpx.Client, name: str, attempts: int = 20) -> None:
    """Do the cloud node controller's job: set the node's addresses, then lift the uninitialized taint."""
    merge = {"Content-Type": "application/merge-patch+json"}
    api.patch("/status", content=json.dumps(addresses_patch(name)), headers=merge).raise_for_status()
    for _ in range(attempts):
        patch = initialized_taints_patch(api.get("").raise_for_status().json())
        if patch is None:
            return
        response = api.patch("", content=json.dumps(patch), headers=merge)
        if response.status_code != 409:  # 409: another controller changed the node meanwhile; read again
            response.raise_for_status()
    raise RuntimeError(f"could not remove the {UNINITIALIZED_TAINT} taint from node {name}")


def start(plane: ControlPlane, tools: Mapping[str, Path], name: str = NODE_NAME, timeout: float = 180) -> Node:
    """Start the node under ``<plane.root>/<name>`` and wait until the Node object is Ready.

    :class:`NodeUnavailable` when the machine lacks something (callers skip); any other failure stops what was
    started and raises.
    """
    check_requirements()
    layout = Layout(plane.root / name)
    longest = len(os.fsencode(layout.socket)) + len(".ttrpc")
    if longest > SOCKET_PATH_MAX:
        raise ValueError(f"{layout.root} is too deep for containerd's sockets ({longest} bytes, at most "
                         f"{SOCKET_PATH_MAX}): use a shorter working directory")  # fmt: skip
    layout.root.mkdir(parents=True, exist_ok=False)  # a second node of the same name would share its files
    ports = KubeletPorts(free_port(), free_port())
    kubeconfig = _prepare(layout, plane, name, ports)
    cgroups_before = _cgroup_dirs()
    holder, ns = _start_holder(layout)
    tunables = {t: (layout.sysctl_dir / t.replace("/", ".")).read_text().strip() for t in KERNEL_TUNABLES}
    node = Node(name, layout, holder, ns, cgroups_before, tunables)
    try:
        _install_cni(layout, f"/proc/{holder.pid}/ns/net")
        for mount in namespace_mounts(layout):
            _run([*node.enter(), "mount", *mount])
        _check_overlay(node)
        containerd = spawn("containerd", [*node.enter(), "containerd", f"--config={layout.containerd_config}"],
                           layout.logs)  # fmt: skip
        node.processes.append(containerd)
        _wait("containerd", lambda: bool(node.ctr("version", timeout=10, check=False)), node, 60, containerd)
        archive = ociimage.write(layout.root / "dev-images.tar", BUSYBOX)
        node.import_image(archive)
        archive.unlink()

        scheduler_config = layout.root / "scheduler.kubeconfig"
        write_kubeconfig(scheduler_config, plane.server, plane.pki, plane.pki.admin_cert, plane.pki.admin_key, "admin")
        node.processes.append(spawn("kube-scheduler", [
            str(tools["kube-scheduler"]), f"--kubeconfig={scheduler_config}",
            f"--authentication-kubeconfig={scheduler_config}", f"--authorization-kubeconfig={scheduler_config}",
            "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0", "--v=1",
        ], layout.logs))  # fmt: skip

        node.kubelet_command = kubelet_argv(tools["kubelet"], layout, kubeconfig, name)
        kubelet = spawn("kubelet", [*node.enter(), *node.kubelet_command], layout.logs)
        node.processes.append(kubelet)
        tls = ssl.create_default_context(cafile=str(plane.pki.ca_cert))
        tls.load_cert_chain(str(plane.pki.admin_cert), str(plane.pki.admin_key))
        with httpx.Client(base_url=f"{plane.server}/api/v1/nodes/{name}", verify=tls, timeout=10) as api:
            _wait(f"node {name} registered", lambda: api.get("").status_code == 200, node, timeout, kubelet)
            _initialize(api, name)
            _wait(f"node {name} Ready", lambda: _ready(api.get("").json()), node, timeout, kubelet)
        node.check()
    except BaseException:
        node.stop()
        raise
    log.info("node %s ready (containerd %s, kubelet root %s)", name, layout.socket, layout.kubelet_dir)
    return node
