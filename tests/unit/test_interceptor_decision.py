"""The INFO line of a call that changes something: its subject, what came of it and its time, nothing else."""

from __future__ import annotations

import pytest

from cfs_csi.cloud.deadline import Call, count_cloud, deadline_in, remaining
from cfs_csi.csi import csi_pb2
from cfs_csi.driver.interceptor import decision, outcome, shown, subject
from cfs_csi.volume.names import QUOTE_LIMIT

VOLUME = csi_pb2.Volume(volume_id="cfs-abc", capacity_bytes=10 << 30, volume_context={"host": "10.0.0.1"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("pvc-0b9d1f0e", "pvc-0b9d1f0e"),
        ("a+b.c_d-e:f/g", "a+b.c_d-e:f/g"),
        ("", "''"),
        ("two\nlines", "'two\\nlines'"),
        ("with space", "'with space'"),
        ("caf\u00e9", "'caf\\xe9'"),
        ("\u202etxt.exe", "'\\u202etxt.exe'"),
        ("x" * 1000, "'" + "x" * QUOTE_LIMIT + "...[1000 characters]'"),
    ],
)
def test_untrusted_values_are_shown_cut_and_escaped(value: str, expected: str) -> None:
    assert shown(value) == expected
    assert "\n" not in shown(value) and len(shown(value)) < 2 * QUOTE_LIMIT


@pytest.mark.parametrize(
    ("request_message", "expected"),
    [
        (csi_pb2.CreateVolumeRequest(name="pvc-a", secrets={"secretKey": "S3CR3T"}), "pvc-a"),
        (csi_pb2.DeleteVolumeRequest(volume_id="cfs-a", secrets={"k": "S3CR3T"}), "cfs-a"),
        (csi_pb2.DeleteSnapshotRequest(snapshot_id="snap-a"), "snap-a"),
        (csi_pb2.CreateSnapshotRequest(name="snap-b", source_volume_id="cfs-a"), "snap-b"),
        (csi_pb2.ControllerExpandVolumeRequest(volume_id="cfs-a"), "cfs-a"),
        (csi_pb2.CreateVolumeRequest(), ""),
        (csi_pb2.ProbeRequest(), ""),
    ],
)
def test_the_subject_is_the_name_or_id_and_never_a_secret(request_message: object, expected: str) -> None:
    assert subject(request_message) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (csi_pb2.CreateVolumeResponse(volume=VOLUME), f"volume cfs-abc, {10 << 30} bytes"),
        (csi_pb2.CreateVolumeResponse(volume=csi_pb2.Volume(volume_id="cfs\nx")), "volume 'cfs\\nx', 0 bytes"),
        (csi_pb2.DeleteVolumeResponse(), "done"),
        (csi_pb2.ControllerExpandVolumeResponse(capacity_bytes=5), "5 bytes"),
        (
            csi_pb2.CreateSnapshotResponse(snapshot=csi_pb2.Snapshot(snapshot_id="snap-1", size_bytes=7)),
            "snapshot snap-1, 7 bytes, ready False",
        ),
    ],
)
def test_the_outcome_names_what_was_made(response: object, expected: str) -> None:
    assert outcome(response) == expected  # type: ignore[arg-type]


def test_the_line_splits_the_time_into_the_clouds_and_the_drivers_own() -> None:
    request = csi_pb2.CreateVolumeRequest(name="pvc-a", parameters={"vpcid": "vpc-1"}, secrets={"k": "S3CR3T"})
    response = csi_pb2.CreateVolumeResponse(volume=VOLUME)
    with deadline_in(None) as call:
        count_cloud(0.002)
        count_cloud(0.0015)
    line = decision("CreateVolume", request, response, 0.0051, call)
    assert line == f"CreateVolume pvc-a: volume cfs-abc, {10 << 30} bytes in 5.1 ms (cloud 3.5 ms in 2 calls)"
    assert decision("DeleteVolume", csi_pb2.DeleteVolumeRequest(), csi_pb2.DeleteVolumeResponse(), 0.0004, Call()) == (
        "DeleteVolume: done in 0.4 ms"
    )


def test_cloud_time_counts_only_inside_a_call_and_the_deadline_is_per_call() -> None:
    count_cloud(1.0)  # outside any call: nowhere to count, no error
    assert remaining(7.0) == 7.0
    with deadline_in(30.0) as outer:
        count_cloud(0.25)
        with deadline_in(None) as inner:
            count_cloud(0.5)
            assert remaining(7.0) == 7.0
        assert 29.0 < remaining(7.0) <= 30.0
    assert (outer.cloud_seconds, outer.cloud_calls) == (0.25, 1)
    assert (inner.cloud_seconds, inner.cloud_calls) == (0.5, 1)
    assert remaining(7.0) == 7.0
