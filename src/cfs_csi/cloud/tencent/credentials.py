"""Where the cloud credentials come from: the first source that is configured wins.

1. ``TENCENTCLOUD_API_SECRET_ID`` / ``TENCENTCLOUD_API_SECRET_KEY`` (the names the vendor's driver reads);
2. ``TENCENTCLOUD_SECRET_ID`` / ``TENCENTCLOUD_SECRET_KEY`` (the SDK's own names);
3. files of a mounted Secret (``--credentials-dir``), re-read on every call so a rotated Secret takes effect;
4. the CVM instance role (metadata service);
5. TKE OIDC (``TKE_*`` environment of a pod with a service-account token).

Whitespace around every value is stripped: a key copied with a trailing newline breaks signing, and the
resulting error would never mention why. Values are never logged; :func:`describe` names only the source.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cfs_csi.cloud.tencent.metadata import Metadata, MetadataError

log = logging.getLogger(__name__)

ENV_PAIRS = (
    ("TENCENTCLOUD_API_SECRET_ID", "TENCENTCLOUD_API_SECRET_KEY"),
    ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"),
)
#: File names accepted in a credentials directory (Secret keys), id first then key.
FILE_PAIRS = (
    ("TENCENTCLOUD_API_SECRET_ID", "TENCENTCLOUD_API_SECRET_KEY"),
    ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"),
    ("secretId", "secretKey"),
)
TKE_OIDC_ENV = ("TKE_REGION", "TKE_PROVIDER_ID", "TKE_WEB_IDENTITY_TOKEN_FILE", "TKE_ROLE_ARN")


class CredentialError(RuntimeError):
    """No source is configured, or the configured one is unusable."""


class SdkCredential(Protocol):
    """What the SDK's signer calls."""

    def get_credential_info(self) -> tuple[str, str, str | None]: ...


@dataclass(frozen=True)
class StaticCredential:
    secret_id: str = field(repr=False)
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = ""

    def get_credential_info(self) -> tuple[str, str, str | None]:
        return self.secret_id, self.secret_key, self.token

    # The synchronous SDK reads these attribute names.
    @property
    def secretId(self) -> str:
        return self.secret_id

    @property
    def secretKey(self) -> str:
        return self.secret_key


@dataclass(frozen=True)
class FileCredential:
    """A Secret mounted as files; read on every signature so rotation needs no restart."""

    directory: Path
    id_file: str
    key_file: str
    source: str = ""

    def get_credential_info(self) -> tuple[str, str, str | None]:
        secret_id = (self.directory / self.id_file).read_text().strip()
        secret_key = (self.directory / self.key_file).read_text().strip()
        return secret_id, secret_key, None

    @property
    def secretId(self) -> str:
        return self.get_credential_info()[0]

    @property
    def secretKey(self) -> str:
        return self.get_credential_info()[1]

    @property
    def token(self) -> str | None:
        return None


def from_environment(env: Mapping[str, str]) -> StaticCredential | None:
    for id_name, key_name in ENV_PAIRS:
        secret_id, secret_key = env.get(id_name, "").strip(), env.get(key_name, "").strip()
        if secret_id and secret_key:
            return StaticCredential(secret_id, secret_key, source=f"environment ({id_name})")
        if secret_id or secret_key:
            raise CredentialError(f"only one of {id_name} and {key_name} is set")
    return None


def from_directory(directory: Path | None) -> FileCredential | None:
    if directory is None or not directory.is_dir():
        return None
    for id_file, key_file in FILE_PAIRS:
        if (directory / id_file).is_file() and (directory / key_file).is_file():
            credential = FileCredential(directory, id_file, key_file, source=f"files in {directory}")
            secret_id, secret_key, _ = credential.get_credential_info()
            if not secret_id or not secret_key:
                raise CredentialError(f"credential files in {directory} are empty")
            return credential
    return None


def resolve(env: Mapping[str, str], directory: Path | None, metadata: Metadata | None) -> SdkCredential:
    """The first configured source, in the documented order; :class:`CredentialError` if there is none.

    ``metadata`` is the CVM metadata service to ask for an instance role (``None``: do not ask).
    """
    found: SdkCredential | None = from_environment(env) or from_directory(directory)
    if found is None and metadata is not None:
        found = _cvm_role(metadata)
    if found is None and all(env.get(name) for name in TKE_OIDC_ENV):
        found = _tke_oidc()
    if found is None:
        raise CredentialError(
            "no cloud credentials: set TENCENTCLOUD_API_SECRET_ID/TENCENTCLOUD_API_SECRET_KEY (for example from "
            "a Secret), mount a credentials directory, or run on a CVM with an instance role or with TKE OIDC"
        )
    return found


def describe(credential: SdkCredential) -> str:
    """Where the credentials come from, fit for a log line (never the values)."""
    return getattr(credential, "source", "") or type(credential).__name__


def _cvm_role(metadata: Metadata) -> SdkCredential | None:
    """The instance role, if the metadata service names one (asked with our bounded client first)."""
    try:
        role_name = metadata.get("cam/security-credentials/").splitlines()[0].strip()
    except MetadataError as exc:
        log.info("no CVM instance role: %s", exc)
        return None
    from tencentcloud.common.credential import CVMRoleCredential

    role = CVMRoleCredential(role_name=role_name)
    role.source = f"CVM instance role {role_name}"
    return role  # type: ignore[no-any-return]


def _tke_oidc() -> SdkCredential | None:  # pragma: no cover - needs TKE
    from tencentcloud.common.credential import DefaultTkeOIDCRoleArnProvider

    return DefaultTkeOIDCRoleArnProvider().get_credentials()  # type: ignore[no-any-return]
