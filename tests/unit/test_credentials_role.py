"""The CVM instance role's temporary keys and session token: parsed without quoting them, renewed before they
expire, kept while a renewal fails and they are still valid, and registered for log redaction."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cfs_csi import logsetup
from cfs_csi.cloud.tencent.credentials import (
    ROLE_REFRESH_MARGIN,
    CredentialError,
    InstanceRoleCredential,
    describe,
    parse_role_keys,
    resolve,
)
from cfs_csi.cloud.tencent.metadata import Metadata, MetadataError
from cfs_csi.logsetup import REDACTED, redact

SID, KEY, TOKEN = "AKIDroleunit0123456789abcdef", "rolekey-unit-0123456789", "roletoken-unit-abcdefghijklmnop"


def answer(**changes: object) -> str:
    data: dict[str, object] = {"TmpSecretId": SID, "TmpSecretKey": KEY, "Token": TOKEN, "ExpiredTime": 10_000,
                               "Code": "Success"}  # fmt: skip
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not None})


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    logsetup.forget_secrets()
    yield
    logsetup.forget_secrets()


BAD: list[tuple[str, str, str]] = [
    ("not JSON", "TmpSecretKey=" + KEY, "not JSON"),
    ("not an object", json.dumps([SID, KEY]), "not a JSON object"),
    ("refused", answer(Code="RoleNotFound"), "Code RoleNotFound"),
    ("no token", answer(Token=None), "lack Token"),
    ("empty key", answer(TmpSecretKey=""), "lack TmpSecretKey"),
    ("no expiry", answer(ExpiredTime=None), "lack ExpiredTime"),
    ("expiry not a number", answer(ExpiredTime="soon"), "lack ExpiredTime"),
]


@pytest.mark.parametrize(("case", "text", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_answers_are_named_without_quoting_them(case: str, text: str, message: str) -> None:
    with pytest.raises(CredentialError, match=message) as error:
        parse_role_keys(text)
    assert [v for v in (SID, KEY, TOKEN) if v in str(error.value)] == []


def test_a_good_answer() -> None:
    keys = parse_role_keys(answer())
    assert (keys.secret_id, keys.secret_key, keys.token, keys.expires) == (SID, KEY, TOKEN, 10_000.0)
    assert KEY not in repr(keys) and TOKEN not in repr(keys)


@dataclass
class MetadataService:
    """Stands in for the CVM metadata service (part of the cloud): answers in order, or fails."""

    answers: list[str | None]
    asked: list[str] = field(default_factory=list)

    def get(self, path: str) -> str:
        self.asked.append(path)
        text = self.answers.pop(0) if self.answers else None
        if text is None:
            raise MetadataError("metadata service did not answer")
        return text


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def role(service: MetadataService, clock: Clock) -> InstanceRoleCredential:
    return InstanceRoleCredential(service, "cfs-role", clock)  # type: ignore[arg-type]


def test_keys_are_reused_then_renewed_before_they_expire() -> None:
    clock = Clock()
    service = MetadataService([answer(ExpiredTime=5_000), answer(TmpSecretKey="renewed-key-0123", ExpiredTime=9_000)])
    credential = role(service, clock)
    assert credential.get_credential_info() == (SID, KEY, TOKEN)
    clock.now = 5_000 - ROLE_REFRESH_MARGIN - 1
    assert credential.get_credential_info() == (SID, KEY, TOKEN)
    assert service.asked == ["cam/security-credentials/cfs-role"]
    clock.now = 5_000 - ROLE_REFRESH_MARGIN
    assert credential.get_credential_info()[1] == "renewed-key-0123"
    assert len(service.asked) == 2


def test_a_failed_renewal_keeps_valid_keys_and_fails_once_they_expired() -> None:
    clock = Clock()
    credential = role(MetadataService([answer(ExpiredTime=5_000), None, None]), clock)
    credential.get_credential_info()
    clock.now = 4_990
    assert credential.get_credential_info() == (SID, KEY, TOKEN)
    clock.now = 5_000
    with pytest.raises(CredentialError, match="cannot get keys of the CVM instance role cfs-role"):
        credential.get_credential_info()


def test_no_answer_at_all_is_an_error() -> None:
    with pytest.raises(CredentialError, match="did not answer"):
        role(MetadataService([None]), Clock()).get_credential_info()


def test_every_value_read_is_registered_for_redaction() -> None:
    clock = Clock()
    service = MetadataService([answer(ExpiredTime=2_000), answer(Token="second-token-0123456789", ExpiredTime=9_000)])
    credential = role(service, clock)
    credential.get_credential_info()
    clock.now = 1_900
    credential.get_credential_info()
    line = f"id {SID} key {KEY} token {TOKEN} then second-token-0123456789"
    assert redact(line) == "id [redacted] key [redacted] token [redacted] then [redacted]"
    assert KEY not in repr(credential) and TOKEN not in repr(credential)


def test_resolve_takes_the_role_from_the_metadata_service_and_fetches_its_keys() -> None:
    service = MetadataService(["cfs-role\n", answer(ExpiredTime=2**40)])
    credential = resolve({}, None, service)  # type: ignore[arg-type]
    assert service.asked == ["cam/security-credentials/", "cam/security-credentials/cfs-role"]
    assert credential.get_credential_info() == (SID, KEY, TOKEN)
    assert describe(credential) == "CVM instance role cfs-role"


def test_resolve_fails_at_start_when_the_role_has_no_usable_keys() -> None:
    with pytest.raises(CredentialError, match="lack Token"):
        resolve({}, None, MetadataService(["cfs-role", answer(Token="")]))  # type: ignore[arg-type]


def test_environment_and_file_values_are_registered(tmp_path: Path) -> None:
    resolve({"TENCENTCLOUD_SECRET_ID": "AKIDenvironment01", "TENCENTCLOUD_SECRET_KEY": "environment-key"}, None, None)
    (tmp_path / "secretId").write_text("file-id-0123456789")
    (tmp_path / "secretKey").write_text("file-key-0123456789\n")
    credential = resolve({}, tmp_path, None)
    (tmp_path / "secretKey").write_text("rotated-key-0123456789")  # registered when it is read for a request
    credential.get_credential_info()
    line = "environment-key file-id-0123456789 file-key-0123456789 rotated-key-0123456789"
    assert redact(line) == " ".join([REDACTED] * 4)


def test_metadata_client_is_the_bounded_one() -> None:
    """The role's keys come through our Metadata client (timeouts, tries, --metadata-url), not urlopen."""
    dead = Metadata("http://127.0.0.1:9/", attempts=1, timeout=0.2)
    with pytest.raises(CredentialError, match=r"127\.0\.0\.1:9"):
        InstanceRoleCredential(dead, "cfs-role").get_credential_info()
