"""Credential sources in their documented order; values stripped, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from cfs_csi.cloud.tencent.credentials import CredentialError, describe, resolve
from cfs_csi.cloud.tencent.metadata import Metadata

NO_METADATA = None


def info(env: dict[str, str], directory: Path | None = None) -> tuple[str, str, str | None]:
    return resolve(env, directory, NO_METADATA).get_credential_info()


def test_vendor_names_win_over_sdk_names() -> None:
    env = {
        "TENCENTCLOUD_API_SECRET_ID": "AKIDvendor", "TENCENTCLOUD_API_SECRET_KEY": "vendorkey",
        "TENCENTCLOUD_SECRET_ID": "AKIDsdk", "TENCENTCLOUD_SECRET_KEY": "sdkkey",
    }  # fmt: skip
    assert info(env)[:2] == ("AKIDvendor", "vendorkey")


def test_sdk_names_and_whitespace_is_stripped() -> None:
    env = {"TENCENTCLOUD_SECRET_ID": " AKIDsdk\n", "TENCENTCLOUD_SECRET_KEY": "sdkkey\n"}
    assert info(env)[:2] == ("AKIDsdk", "sdkkey")


def test_half_a_pair_is_an_error() -> None:
    with pytest.raises(CredentialError, match="only one of"):
        info({"TENCENTCLOUD_API_SECRET_ID": "AKID"})


def test_secret_files_are_reread(tmp_path: Path) -> None:
    (tmp_path / "TENCENTCLOUD_SECRET_ID").write_text("AKIDfile\n")
    (tmp_path / "TENCENTCLOUD_SECRET_KEY").write_text("filekey\n")
    credential = resolve({}, tmp_path, NO_METADATA)
    assert credential.get_credential_info()[:2] == ("AKIDfile", "filekey")
    (tmp_path / "TENCENTCLOUD_SECRET_KEY").write_text("rotated")
    assert credential.get_credential_info()[1] == "rotated"
    assert "filekey" not in describe(credential) and "files in" in describe(credential)


def test_environment_wins_over_files(tmp_path: Path) -> None:
    (tmp_path / "secretId").write_text("AKIDfile")
    (tmp_path / "secretKey").write_text("filekey")
    env = {"TENCENTCLOUD_SECRET_ID": "AKIDenv", "TENCENTCLOUD_SECRET_KEY": "envkey"}
    assert info(env, tmp_path)[0] == "AKIDenv"
    assert info({}, tmp_path)[0] == "AKIDfile"


def test_nothing_configured_is_a_clear_error_without_values() -> None:
    dead = Metadata("http://127.0.0.1:9/", attempts=1, timeout=0.2)
    with pytest.raises(CredentialError, match="no cloud credentials"):
        resolve({"UNRELATED": "x"}, None, dead)


def test_repr_hides_values() -> None:
    credential = resolve({"TENCENTCLOUD_SECRET_ID": "AKIDx", "TENCENTCLOUD_SECRET_KEY": "topsecret"}, None, None)
    assert "topsecret" not in repr(credential) and "AKIDx" not in repr(credential)
