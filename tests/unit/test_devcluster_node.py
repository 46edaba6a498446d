"""The real node's decisions: what the machine lacks, its configuration files, what teardown may remove."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tomllib
from pathlib import Path

import pytest

from cfs_csi.devcluster import ociimage
from cfs_csi.devcluster.node import (
    CNI_PLUGINS,
    KERNEL_TUNABLES,
    KUBELET_DIR,
    POD_SUBNET,
    UNINITIALIZED_TAINT,
    KubeletPorts,
    Layout,
    ProcInfo,
    addresses_patch,
    api_server_env,
    bridge_wrapper,
    cni_conflist,
    containerd_config,
    initialized_taints_patch,
    kubelet_config,
    missing_requirements,
    namespace_mounts,
    node_processes,
    owned_cgroups,
)
from cfs_csi.devcluster.tools import KUBERNETES, TOOLS, kubernetes_version_flags

EVERYTHING = "nodev\tproc\nnodev\toverlay\n\text4\n"


@pytest.mark.parametrize(
    ("absent", "filesystems", "plugins", "busybox", "expected"),
    [
        (set(), EVERYTHING, ["bridge", "host-local", "loopback", "vlan"], True, []),
        ({"containerd", "ctr", "containerd-shim-runc-v2"}, EVERYTHING, list(CNI_PLUGINS), True,
         ["containerd not found (Debian package containerd)",
          "containerd-shim-runc-v2 not found (Debian package containerd)",
          "ctr not found (Debian package containerd)"]),
        ({"runc"}, EVERYTHING, list(CNI_PLUGINS), True, ["runc not found (Debian package runc)"]),
        (set(), "nodev\tproc\n\text4\n", list(CNI_PLUGINS), True,
         ["the kernel has no overlay file system (containerd's overlayfs snapshotter needs it)"]),
        (set(), EVERYTHING, ["bridge"], True,
         ["no loopback, host-local CNI plugin in /usr/lib/cni (Debian package containernetworking-plugins)"]),
        (set(), EVERYTHING, list(CNI_PLUGINS), False,
         ["no static busybox at /bin/busybox (Debian package busybox-static)"]),
    ],
)  # fmt: skip
def test_missing_requirements(
    absent: set[str], filesystems: str, plugins: list[str], busybox: bool, expected: list[str]
) -> None:
    def which(name: str) -> str | None:
        return None if name in absent else f"/usr/bin/{name}"

    assert missing_requirements(which, filesystems, plugins, busybox) == expected


def test_an_overlay_named_file_system_is_not_overlay() -> None:
    reasons = missing_requirements(lambda n: n, "nodev\tfuse.overlayish\n", list(CNI_PLUGINS), True)
    assert reasons == ["the kernel has no overlay file system (containerd's overlayfs snapshotter needs it)"]


LAYOUT = Layout(Path("/tmp/e2e root/node"))


def test_containerd_config_is_private_and_has_the_settings_this_machine_needs() -> None:
    config = tomllib.loads(containerd_config(LAYOUT, "cfs-csi.local/pause:dev"))
    assert config["root"].startswith("/tmp/e2e root/node/") and config["state"].startswith("/tmp/e2e root/node/")
    assert config["grpc"]["address"] == "/tmp/e2e root/node/containerd.sock"
    assert "io.containerd.internal.v1.opt" in config["disabled_plugins"]  # it would create /opt/containerd
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == "cfs-csi.local/pause:dev"
    assert cri["restrict_oom_score_adj"] is True and cri["disable_apparmor"] is True
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["containerd"]["snapshotter"] == "overlayfs"
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert cri["cni"] == {"bin_dir": "/tmp/e2e root/node/cni-bin", "conf_dir": "/tmp/e2e root/node/cni"}


def test_kubelet_config_listens_on_loopback_and_changes_nothing_on_the_host() -> None:
    config = json.loads(kubelet_config(LAYOUT, Path("/ca.crt"), Path("/k.crt"), Path("/k.key"), KubeletPorts(1, 2)))
    assert (config["address"], config["port"], config["healthzBindAddress"], config["readOnlyPort"]) == (
        "127.0.0.1", 1, "127.0.0.1", 0)  # fmt: skip
    assert config["authentication"]["anonymous"] == {"enabled": False}
    assert config["authentication"]["x509"] == {"clientCAFile": "/ca.crt"}
    assert config["cgroupsPerQOS"] is False and config["makeIPTablesUtilChains"] is False
    assert config["containerRuntimeEndpoint"] == "unix:///tmp/e2e root/node/containerd.sock"


def test_namespace_mounts_cover_every_tunable_and_share_the_kubelet_dir() -> None:
    mounts = namespace_mounts(LAYOUT)
    assert mounts[0][-1] == "/run"  # first: shims and CNI write below /run
    covered = [m[-1] for m in mounts if m[0] == "--bind" and m[-1].startswith("/proc/sys/")]
    assert covered == [f"/proc/sys/{t}" for t in KERNEL_TUNABLES]
    assert mounts.index(["--bind", KUBELET_DIR, KUBELET_DIR]) < mounts.index(["--make-rshared", KUBELET_DIR])
    assert mounts.index(["--bind", str(LAYOUT.var_lib), "/var/lib"]) < mounts.index(["--make-rshared", KUBELET_DIR])


def proc(pid: int, ppid: int, ns: str = "mnt:[host]") -> ProcInfo:
    return ProcInfo(pid, ppid, ns, f"p{pid}")


def test_node_processes_are_its_namespace_and_their_descendants_only() -> None:
    table = [
        proc(1, 0), proc(10, 1, "mnt:[node]"),  # holder
        proc(11, 10, "mnt:[node]"),  # containerd
        proc(20, 1, "mnt:[node]"),  # a shim, reparented to init
        proc(21, 20, "mnt:[pod]"), proc(22, 21, "mnt:[pod]"),  # a container and its child
        proc(30, 1), proc(31, 30, "mnt:[pod]"),  # somebody else's container: not ours
    ]  # fmt: skip
    assert node_processes(table, "mnt:[node]", exclude=[10]) == [11, 20, 21, 22]
    assert node_processes(table, "mnt:[gone]") == []


def test_owned_cgroups_by_container_id_and_only_the_k8s_io_parent() -> None:
    before = {"/cg/memory/system", "/cg/memory/other"}
    after = before | {
        "/cg/memory/k8s.io", "/cg/memory/k8s.io/aaa", "/cg/memory/k8s.io/bbb", "/cg/cpu/k8s.io", "/cg/cpu/k8s.io/aaa",
        "/cg/memory/someone-elses", "/cg/memory/k8s.io/ccc",
    }  # fmt: skip
    ours, parents = owned_cgroups(before, after, ["aaa", "bbb"])
    assert ours == ["/cg/cpu/k8s.io/aaa", "/cg/memory/k8s.io/aaa", "/cg/memory/k8s.io/bbb"]
    assert parents == ["/cg/cpu/k8s.io", "/cg/memory/k8s.io"]
    # A k8s.io that existed before the run is another's; nothing is removed that did not appear meanwhile.
    assert owned_cgroups(after, after, ["aaa"]) == ([], [])


def test_addresses_and_the_uninitialized_taint() -> None:
    assert addresses_patch("n1") == {"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                                              {"type": "Hostname", "address": "n1"}]}}  # fmt: skip
    other = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
    node = {"metadata": {"resourceVersion": "7"},
            "spec": {"taints": [other, {"key": UNINITIALIZED_TAINT, "effect": "NoSchedule"}]}}  # fmt: skip
    assert initialized_taints_patch(node) == {"metadata": {"resourceVersion": "7"}, "spec": {"taints": [other]}}
    alone = {"metadata": {"resourceVersion": "8"}, "spec": {"taints": [{"key": UNINITIALIZED_TAINT}]}}
    assert initialized_taints_patch(alone) == {"metadata": {"resourceVersion": "8"}, "spec": {"taints": None}}
    assert initialized_taints_patch({"metadata": {"resourceVersion": "9"}, "spec": {"taints": [other]}}) is None
    assert initialized_taints_patch({"metadata": {"resourceVersion": "9"}, "spec": {}}) is None


def test_kubelet_and_scheduler_are_built_like_the_api_server() -> None:
    for name in ("kubelet", "kube-scheduler"):
        tool = TOOLS[name]
        assert tool.module == "k8s.io/kubernetes" and tool.version == KUBERNETES
        assert tool.package == f"k8s.io/kubernetes/cmd/{name}"
        assert tool.ldflags == kubernetes_version_flags(KUBERNETES) and tool.pin("v1.37.2") == "v0.37.2"


# --- the OCI archive ------------------------------------------------------------------------------------------


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def read(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        extracted = tar.extractfile(name)
        assert extracted is not None
        return extracted.read()


def test_busybox_layer_has_links_for_applets_and_no_escapes() -> None:
    entries = ociimage.busybox_entries(b"\x7fELF", ["sh", "sleep", "busybox", "../evil", "ls", "sh"])
    layer = ociimage.layer_tar(entries)
    found = members(layer)
    assert found["bin/busybox"].isfile() and found["bin/busybox"].mode == 0o755
    assert {n for n, m in found.items() if m.issym()} == {"bin/sh", "bin/sleep", "bin/ls"}
    assert all(m.linkname == "busybox" for m in found.values() if m.issym())
    assert found["tmp"].isdir() and found["tmp"].mode == 0o1777
    assert all(m.mtime == 0 and m.uid == 0 for m in found.values())
    assert layer == ociimage.layer_tar(reversed(entries))  # reproducible whatever the order


def test_archive_is_an_oci_layout_whose_digests_match_and_names_each_image() -> None:
    layer = ociimage.layer_tar(ociimage.busybox_entries(b"binary", ["sh"]))
    data = ociimage.archive(ociimage.dev_images(), layer)
    assert json.loads(read(data, "oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(read(data, "index.json"))
    names = [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]]
    assert names == [ociimage.BUSYBOX_IMAGE, ociimage.PAUSE_IMAGE]

    def blob(digest: str) -> bytes:
        content = read(data, "blobs/sha256/" + digest.removeprefix("sha256:"))
        assert "sha256:" + hashlib.sha256(content).hexdigest() == digest
        return content

    entrypoints = []
    for descriptor in index["manifests"]:
        manifest = json.loads(blob(descriptor["digest"]))
        config = json.loads(blob(manifest["config"]["digest"]))
        [layer_descriptor] = manifest["layers"]
        assert blob(layer_descriptor["digest"]) == layer
        assert config["rootfs"]["diff_ids"] == [layer_descriptor["digest"]]  # uncompressed: diff id = digest
        entrypoints.append(config["config"]["Entrypoint"])
    assert entrypoints == [None, list(ociimage.PAUSE_COMMAND)]


def test_api_server_env_points_at_the_loopback_api_server() -> None:
    assert api_server_env("https://127.0.0.1:6443") == {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}  # fmt: skip
    for bad in ("http://127.0.0.1:6443", "https://127.0.0.1", "127.0.0.1:6443"):
        with pytest.raises(ValueError, match="not an https URL"):
            api_server_env(bad)


def test_pods_get_a_bridge_network_whose_bridge_lives_in_the_nodes_own_network_namespace() -> None:
    config = json.loads(cni_conflist(LAYOUT.ipam_dir))
    [bridge] = config["plugins"]
    assert bridge["type"] == "bridge" and not bridge["isGateway"] and not bridge["ipMasq"]  # no host route, no NAT
    assert bridge["ipam"] == {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]],
                              "dataDir": "/tmp/e2e root/node/cni-ipam"}  # fmt: skip
    script = bridge_wrapper("/proc/42/ns/net")
    assert script.splitlines() == ["#!/bin/sh", "exec /usr/bin/nsenter --net=/proc/42/ns/net -- /usr/lib/cni/bridge"]
    config = tomllib.loads(containerd_config(LAYOUT, "x"))
    assert config["plugins"]["io.containerd.grpc.v1.cri"]["cni"]["bin_dir"] == "/tmp/e2e root/node/cni-bin"


def test_the_e2e_suites_images_are_busybox_under_the_suites_names_and_agnhost_adds_its_binary() -> None:
    base = ociimage.layer_tar(ociimage.busybox_entries(b"busybox", ["sh"]))
    data = ociimage.archive(ociimage.e2e_images(b"agnhost-binary"), base)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        blobs = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    index = json.loads(blobs["index.json"])
    by_name = {m["annotations"]["io.containerd.image.name"]: m for m in index["manifests"]}
    assert set(by_name) == {ociimage.E2E_BUSYBOX, ociimage.E2E_AGNHOST, ociimage.E2E_NGINX, ociimage.E2E_GLIBC,
                            ociimage.E2E_PAUSE}  # fmt: skip

    def blob(digest: str) -> bytes:
        return blobs["blobs/sha256/" + digest.removeprefix("sha256:")]

    manifest = json.loads(blob(by_name[ociimage.E2E_AGNHOST]["digest"]))
    config = json.loads(blob(manifest["config"]["digest"]))
    assert config["config"]["Entrypoint"] == ["/agnhost"]
    assert config["rootfs"]["diff_ids"] == [layer["digest"] for layer in manifest["layers"]]
    base_layer, agnhost_layer = (blob(layer["digest"]) for layer in manifest["layers"])
    assert base_layer == base
    with tarfile.open(fileobj=io.BytesIO(agnhost_layer)) as tar:
        assert tar.extractfile("agnhost").read() == b"agnhost-binary"  # type: ignore[union-attr]
    nginx = json.loads(blob(by_name[ociimage.E2E_NGINX]["digest"]))
    assert [layer["digest"] for layer in nginx["layers"]] == [manifest["layers"][0]["digest"]]  # busybox only
