"""The committed stubs are exactly what our csi.proto generates (with the pinned grpcio-tools)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_generated_stubs_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_proto.py"), "--check"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_the_registration_protocol_is_the_kubelets_wire_contract() -> None:
    """Names and field numbers the kubelet sends and expects (k8s.io/kubelet pluginregistration v1)."""
    from cfs_csi.registration import pluginregistration_pb2 as reg

    service = reg.DESCRIPTOR.services_by_name["Registration"]
    assert service.full_name == "pluginregistration.Registration"
    assert {m.name: (m.input_type.full_name, m.output_type.full_name) for m in service.methods} == {
        "GetInfo": ("pluginregistration.InfoRequest", "pluginregistration.PluginInfo"),
        "NotifyRegistrationStatus": ("pluginregistration.RegistrationStatus",
                                     "pluginregistration.RegistrationStatusResponse"),
    }  # fmt: skip
    fields = {
        name: {f.name: (f.number, f.type, f.is_repeated) for f in reg.DESCRIPTOR.message_types_by_name[name].fields}
        for name in ("InfoRequest", "PluginInfo", "RegistrationStatus", "RegistrationStatusResponse")
    }
    string, boolean, single, repeated = 9, 8, False, True  # FieldDescriptor.TYPE_*; is_repeated
    assert fields == {
        "InfoRequest": {},
        "PluginInfo": {"type": (1, string, single), "name": (2, string, single), "endpoint": (3, string, single),
                       "supported_versions": (4, string, repeated)},
        "RegistrationStatus": {"plugin_registered": (1, boolean, single), "error": (2, string, single)},
        "RegistrationStatusResponse": {},
    }  # fmt: skip
