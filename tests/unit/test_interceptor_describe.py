"""Log lines cut long values (issue 11, finding 10): a 1 MB name never becomes a 1 MB log line."""

from __future__ import annotations

from cfs_csi.csi import csi_pb2
from cfs_csi.driver.interceptor import LOG_VALUE_LIMIT, describe


def test_long_strings_are_cut_with_their_length_in_every_kind_of_field() -> None:
    huge = "n" * 1_000_000
    request = csi_pb2.CreateVolumeRequest(
        name=huge,
        parameters={"zone": huge, huge: "v"},
        secrets={"secretKey": huge},
        volume_capabilities=[csi_pb2.VolumeCapability(mount=csi_pb2.VolumeCapability.MountVolume(
            mount_flags=["ro", huge]
        ))],
    )  # fmt: skip
    text = describe(request)
    assert len(text) < 10 * LOG_VALUE_LIMIT
    assert "n" * (LOG_VALUE_LIMIT + 1) not in text
    assert text.count("[1000000 characters]") == 4  # name, a map value, a map key, a repeated string
    assert "secretKey" not in text
    assert request.name == huge and request.parameters["zone"] == huge  # the request itself is untouched


def test_short_values_are_logged_as_they_are() -> None:
    request = csi_pb2.DeleteVolumeRequest(volume_id="cfs-abc")
    assert describe(request) == 'volume_id: "cfs-abc"'
    exact = "x" * LOG_VALUE_LIMIT
    assert exact in describe(csi_pb2.DeleteVolumeRequest(volume_id=exact))
