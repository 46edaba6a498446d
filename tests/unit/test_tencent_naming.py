from __future__ import annotations

import pytest

from cfs_csi.cloud.tencent.naming import client_token, fs_name

NAMES = [
    ("seed name with cluster", "cls-abc123", "pvc-a11e120e-130c-4aff-9901-17b7b91b3f1d",
     "cls-abc123_pvc-a11e120e-130c-4aff-9901-17b7b91b3f1d"),
    ("no cluster id", "", "pvc-1", "pvc-1"),
    ("exactly 64 bytes stays", "", "x" * 64, "x" * 64),
]  # fmt: skip


@pytest.mark.parametrize(("case", "cluster", "volume", "expected"), NAMES, ids=[c[0] for c in NAMES])
def test_fs_name(case: str, cluster: str, volume: str, expected: str) -> None:
    assert fs_name(cluster, volume) == expected


def test_long_names_are_shortened_deterministically_and_stay_distinct() -> None:
    first, second = "a" * 127 + "1", "a" * 127 + "2"
    assert fs_name("cls-x", first) == fs_name("cls-x", first)
    assert fs_name("cls-x", first) != fs_name("cls-x", second)
    assert len(fs_name("cls-x", first).encode()) <= 64
    assert fs_name("cls-x", first).startswith("cls-x_aaaa")
    assert len(fs_name("", "é" * 100).encode()) <= 64  # multi-byte characters are never cut in half


def test_client_token() -> None:
    assert client_token("n") == client_token("n") != client_token("m")
    assert len(client_token("x" * 64)) <= 64 and client_token("n").isascii()
