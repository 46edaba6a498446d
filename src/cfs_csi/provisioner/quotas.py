"""Directory quotas of shared-mode claims: what the class asks for and what each claim gets (pure, table-tested).

The StorageClass parameter ``directoryQuota`` says what a quota means to the class:

- ``best-effort`` (the default): a claim is provisioned even when its quota cannot be what it asks (claims
  under the 10 GiB minimum of CFS get 10 GiB) or cannot be set at all (storage type, API refusal, cloud down);
  a Warning event on the claim says why;
- ``required``: such a claim stays Pending with a ProvisioningFailed event, and nothing is left behind
  (no directory, no PV, no quota). Rounding up to whole GiB, the API's unit, is not a failure;
- ``off``: no quota is set or removed, and the cloud is never called for the class's claims.

Best-effort is the default so that every class and claim that worked before quotas keeps working: the example
claims ask for less than 10 GiB, classes written for the NFS sub-directory provisioner know nothing of quotas,
and a directory on a shared file system is still worth having when the quota API fails; the event makes the
gap visible. ``required`` is for whoever bills or plans by the claim's size.

The PV records the quota that was set in its CSI ``volumeAttributes`` as :data:`QUOTA_ATTRIBUTE` (the quota's
capacity in bytes, as the cloud reports it after setting it; absent when none was set). The node plugin reports
volume stats from it, and releasing the volume removes the quota only when the PV records one.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cfs_csi.cloud.errors import ErrorKind
from cfs_csi.volume.errors import InvalidArgument
from cfs_csi.volume.quota import GIB, quota_for_claim, quota_path

QUOTA_PARAMETER = "directoryQuota"
#: The PV attribute that records the quota set on the volume's directory: its capacity in bytes (decimal).
QUOTA_ATTRIBUTE = "quotaBytes"


class QuotaMode(enum.Enum):
    BEST_EFFORT = "best-effort"
    REQUIRED = "required"
    OFF = "off"


DEFAULT_MODE = QuotaMode.BEST_EFFORT


def quota_mode(parameters: Mapping[str, str] | None) -> QuotaMode:
    """The class's ``directoryQuota`` (case-insensitive key and value); absent is :data:`DEFAULT_MODE`."""
    values = [str(v) for k, v in (parameters or {}).items() if k.strip().lower() == QUOTA_PARAMETER.lower()]
    if not values:
        return DEFAULT_MODE
    value = values[0].strip().lower()
    for mode in QuotaMode:
        if value == mode.value:
            return mode
    known = ", ".join(f'"{m.value}"' for m in QuotaMode)
    raise InvalidArgument(f"StorageClass parameter {QUOTA_PARAMETER} {values[0][:64]!r} is not one of {known}")


_QUANTITY = re.compile(r"^([+]?[0-9]*\.?[0-9]+)([a-zA-Z]{0,2}|[eE][+-]?[0-9]{1,3})$")
_SUFFIX = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


def quantity_bytes(text: str) -> int:
    """A Kubernetes quantity (``20Gi``, ``1.5G``, ``500M``, ``1e9``, ``1500m``) in whole bytes, rounded up.

    InvalidArgument for anything else (the API server validates claims, so this is a last defence). Integer
    arithmetic only: exact, and no ``decimal`` module in a process that stays small.
    """
    match = _QUANTITY.match(text.strip())
    if not match:
        raise InvalidArgument(f"storage request {text[:64]!r} is not a quantity")
    number, suffix = match.groups()
    whole, _, fraction = number.lstrip("+").partition(".")
    numerator: int = int(whole + fraction or "0")
    denominator: int = 10 ** len(fraction)
    if re.fullmatch(r"[eE][+-]?[0-9]+", suffix):
        exponent = int(suffix[1:])
        scale: int = 10 ** abs(exponent)
        if exponent >= 0:
            numerator *= scale
        else:
            denominator *= scale
    elif suffix == "m":
        denominator *= 1000
    elif suffix in _SUFFIX:
        numerator *= _SUFFIX[suffix]
    else:
        raise InvalidArgument(f"storage request {text[:64]!r} has an unknown suffix {suffix!r}")
    return -(-numerator // denominator)


def claim_bytes(claim: Mapping[str, object]) -> int:
    """The claim's ``spec.resources.requests.storage`` in bytes; 0 when it asks for none."""
    spec = claim.get("spec")
    resources = spec.get("resources") if isinstance(spec, Mapping) else None
    requests = resources.get("requests") if isinstance(resources, Mapping) else None
    storage = requests.get("storage") if isinstance(requests, Mapping) else None
    return quantity_bytes(str(storage)) if storage not in (None, "") else 0


@dataclass(frozen=True)
class QuotaPlan:
    """What to do about the quota of one claim, decided before anything is touched.

    ``capacity_gib`` 0: no quota is set. ``problem``: why the claim will not get the quota it asks for (none,
    or one raised to the minimum); a required class refuses the claim for it, a best-effort class warns.
    ``note``: a harmless difference (rounded up to whole GiB), said in the success event.
    """

    mode: QuotaMode
    path: str = ""
    capacity_gib: int = 0
    problem: str = ""
    note: str = ""

    @property
    def refusal(self) -> str | None:
        """Why a required class refuses the claim before any directory is made; ``None`` to go on."""
        if self.mode is QuotaMode.REQUIRED and self.problem:
            return f"{QUOTA_PARAMETER} is required by the StorageClass, and {self.problem}"
        return None


def plan_quota(mode: QuotaMode, directory: str, size_bytes: int) -> QuotaPlan:
    """The quota of a claim of ``size_bytes`` whose directory is ``directory`` (relative to the share)."""
    if mode is QuotaMode.OFF:
        return QuotaPlan(mode)
    try:
        path = quota_path(directory)
    except InvalidArgument as exc:
        return QuotaPlan(mode, problem=f"no directory quota can name it: {exc}")
    decision = quota_for_claim(size_bytes)
    if not decision.possible:
        return QuotaPlan(mode, path, problem=decision.reason)
    whole = -(-size_bytes // GIB)
    if decision.capacity_gib > whole:  # raised to the API's minimum: a quota, but not the claim's size
        return QuotaPlan(mode, path, decision.capacity_gib, problem=decision.reason)
    return QuotaPlan(mode, path, decision.capacity_gib, note=decision.reason)


def set_may_have_happened(kind: ErrorKind | None) -> bool:
    """Whether a failed SetUserQuota may still have set the quota (so it must be removed before giving up).

    A refusal (invalid, denied, not ours, not found, exhausted) changed nothing; an answer that never came, an
    internal error or a quota set but not listed yet may have. ``None``: the cloud was never reached.
    """
    return kind in (ErrorKind.UNAVAILABLE, ErrorKind.INTERNAL, ErrorKind.PENDING)


def recorded_quota(attributes: Mapping[str, object]) -> int | None:
    """The quota a PV records (:data:`QUOTA_ATTRIBUTE`) in bytes; ``None`` if it records none (or nonsense)."""
    raw = str(attributes.get(QUOTA_ATTRIBUTE) or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**63 else None
