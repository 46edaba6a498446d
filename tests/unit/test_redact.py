"""Secrets never reach a log line: every field marked csi_secret is cleared, at any depth."""

from __future__ import annotations

from cfs_csi.csi import csi_pb2
from cfs_csi.driver.interceptor import describe


def test_secrets_are_removed_from_logged_requests() -> None:
    request = csi_pb2.CreateVolumeRequest(
        name="pvc-1", parameters={"zone": "ap-guangzhou-3"}, secrets={"secretKey": "TOPSECRET"}
    )
    text = describe(request)
    assert "TOPSECRET" not in text and "secretKey" not in text
    assert "pvc-1" in text and "ap-guangzhou-3" in text
    assert request.secrets["secretKey"] == "TOPSECRET"  # the request itself is untouched


def test_every_secrets_field_is_marked() -> None:
    marked = []
    for message in csi_pb2.DESCRIPTOR.message_types_by_name.values():
        for field in message.fields:
            if field.name == "secrets":
                assert field.GetOptions().Extensions[csi_pb2.csi_secret], message.name
                marked.append(message.name)
    assert "NodePublishVolumeRequest" in marked and "DeleteVolumeRequest" in marked


def test_node_publish_secrets_removed() -> None:
    request = csi_pb2.NodePublishVolumeRequest(volume_id="cfs-1", secrets={"token": "hunter2"})
    assert "hunter2" not in describe(request)
