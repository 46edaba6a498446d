"""Shared-mode StorageClasses: which ones are shared, and the Tcfs spec each one asks for (pure).

A StorageClass is shared when its parameter ``subdir-share`` is ``"true"``; its provisioner must then be
``com.tencent.cloud.csi.tcfs.<its own name>``, the name the operator's sub-directory provisioner registers
under. Everything else about it is checked here too, so that a mistake shows as an event on the PVC that
uses the class instead of as a provisioner that never answers.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cfs_csi.volume.errors import InvalidArgument
from cfs_csi.volume.params import VolumeParameters, parse_parameters

TCFS_GROUP = "tcfsoperator.k8s.io"
TCFS_VERSION = "v1alpha1"
TCFS_PLURAL = "tcfs"
PROVISIONER_PREFIX = "com.tencent.cloud.csi.tcfs."

#: Parameters that belong to the sub-directory provisioner (or to shared mode), not to the cloud. The provisioner
#: validates their values (``directoryquota``: :func:`cfs_csi.provisioner.quotas.quota_mode`).
PROVISIONER_KEYS = frozenset(
    {"subdir-share", "pathpattern", "ondelete", "archiveondelete", "fromexistcfs", "reuseexistingdirectory",
     "directoryquota"}
)  # fmt: skip
ON_DELETE = ("delete", "retain")


def provisioner_name(storage_class: str) -> str:
    return PROVISIONER_PREFIX + storage_class


def shared_fs_name(storage_class: str) -> str:
    """The cloud name (before the cluster prefix) of a class's shared file system: ``sharedCFS-<class>``."""
    return f"sharedCFS-{storage_class}"


def is_shared(parameters: Mapping[str, str] | None) -> bool:
    return any(k.lower() == "subdir-share" and v.strip().lower() == "true" for k, v in (parameters or {}).items())


class ClassKind(enum.Enum):
    """What a claim's StorageClass means to the operator (see :func:`class_kind`)."""

    #: None of shared mode's business (a dedicated class, another driver's class).
    OTHER = "other"
    #: ``subdir-share: "true"``: validate it with :func:`parse_shared_class` and give it a Tcfs.
    SHARED = "shared"
    #: A ``com.tencent.cloud.csi.tcfs.*`` provisioner without ``subdir-share: "true"``: only a Tcfs made by hand
    #: can serve it; if none names that provisioner, its claims would wait forever (:func:`unserved_message`).
    PROVISIONER_ONLY = "provisioner-only"


def class_kind(storage_class: Mapping[str, Any]) -> ClassKind:
    """Classify a claim's StorageClass; :class:`InvalidArgument` when it is shared mode's but wrong.

    The ``com.tencent.cloud.csi.tcfs.`` prefix marks a class as shared mode's as surely as ``subdir-share`` does:
    nothing else serves that provisioner. So a misspelt ``subdir-share`` (``"yes"``) on such a class is an error
    to report on the claim, not a class to ignore (which left the claim Pending without a word). On a dedicated
    class the CSI controller refuses the same value itself.
    """
    values = [v for k, v in (storage_class.get("parameters") or {}).items() if k.strip().lower() == "subdir-share"]
    value = values[0].strip() if values else ""
    if value.lower() == "true":
        return ClassKind.SHARED
    provisioner = str(storage_class.get("provisioner") or "")
    if not provisioner.startswith(PROVISIONER_PREFIX):
        return ClassKind.OTHER
    if value.lower() not in ("", "false"):
        name = (storage_class.get("metadata") or {}).get("name", "")
        raise InvalidArgument(
            f'StorageClass {name}: subdir-share {value!r} is not "true" or "false"; its provisioner '
            f'{provisioner!r} is served only in shared mode, which needs subdir-share: "true"'
        )
    return ClassKind.PROVISIONER_ONLY


def unserved_message(storage_class: Mapping[str, Any]) -> str:
    """Why a :attr:`ClassKind.PROVISIONER_ONLY` class that no Tcfs serves gets no volumes."""
    name = (storage_class.get("metadata") or {}).get("name", "")
    return (
        f"StorageClass {name} has provisioner {storage_class.get('provisioner')!r}, which only shared mode serves, "
        'but not subdir-share: "true", and no Tcfs names that provisioner; set subdir-share: "true" (or use the '
        "provisioner com.tencent.cloud.csi.cfs for a file system per volume)"
    )


@dataclass(frozen=True)
class SharedClass:
    """A valid shared-mode StorageClass, reduced to what the Tcfs needs."""

    name: str
    uid: str
    params: VolumeParameters
    reclaim_policy: str
    from_exist_cfs: str = ""

    def tcfs_spec(self) -> dict[str, str]:
        spec = {
            "pgroupid": self.params.pgroup_id,
            "provisionername": provisioner_name(self.name),
            "reclaimpolicy": self.reclaim_policy,
            "storagetype": self.params.storage_type.value,
            "subnetid": self.params.subnet_id,
            "vpcid": self.params.vpc_id,
            "zone": self.params.zone,
            "vers": self.params.vers.value,
        }
        if self.from_exist_cfs:
            spec["fromExistCfs"] = self.from_exist_cfs
        return spec


def parse_shared_class(storage_class: Mapping[str, Any]) -> SharedClass:
    """Validate a shared-mode StorageClass object; :class:`InvalidArgument` says what is wrong."""
    metadata = storage_class.get("metadata") or {}
    name = str(metadata.get("name", ""))
    parameters: dict[str, str] = dict(storage_class.get("parameters") or {})
    expected = provisioner_name(name)
    if storage_class.get("provisioner") != expected:
        raise InvalidArgument(
            f'StorageClass {name} has subdir-share: "true" but provisioner {storage_class.get("provisioner")!r}; '
            f"shared mode needs provisioner {expected!r}"
        )
    folded = {key.strip().lower(): (key, value.strip()) for key, value in parameters.items()}
    on_delete = folded.get("ondelete", ("", ""))[1].lower()
    if on_delete and on_delete not in ON_DELETE:
        raise InvalidArgument(f"StorageClass {name}: onDelete {on_delete!r} is not one of {', '.join(ON_DELETE)}")
    archive = folded.get("archiveondelete", ("", ""))[1].lower()
    if archive and archive not in ("true", "false"):
        raise InvalidArgument(f'StorageClass {name}: archiveOnDelete {archive!r} is not "true" or "false"')
    from_exist = folded.get("fromexistcfs", ("", ""))[1]
    if from_exist and not from_exist.startswith("cfs-"):
        raise InvalidArgument(f"StorageClass {name}: fromExistCfs {from_exist!r} is not a file-system id (cfs-...)")
    cloud = {original: value for key, (original, value) in folded.items() if key not in PROVISIONER_KEYS}
    try:
        params = parse_parameters(cloud)
    except InvalidArgument as exc:
        raise InvalidArgument(f"StorageClass {name}: {exc}") from None
    return SharedClass(
        name=name,
        uid=str(metadata.get("uid", "")),
        params=params,
        reclaim_policy=str(storage_class.get("reclaimPolicy") or "Delete"),
        from_exist_cfs=from_exist,
    )


def tcfs_params(spec: Mapping[str, Any]) -> VolumeParameters:
    """The cloud parameters recorded in a Tcfs spec (as the vendor's objects spell them)."""
    raw = {key: str(spec[key]) for key in ("pgroupid", "storagetype", "subnetid", "vpcid", "zone", "vers")
           if spec.get(key)}  # fmt: skip
    return parse_parameters(raw)
