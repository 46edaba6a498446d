"""Where the cloud credentials come from: the first source that is configured wins.

1. ``TENCENTCLOUD_API_SECRET_ID`` / ``TENCENTCLOUD_API_SECRET_KEY`` (the names the vendor's driver reads);
2. ``TENCENTCLOUD_SECRET_ID`` / ``TENCENTCLOUD_SECRET_KEY`` (the SDK's own names);
3. files of a mounted Secret (``--credentials-dir``), re-read on every call so a rotated Secret takes effect;
4. the CVM instance role: temporary keys and a session token from the metadata service (``--metadata-url``,
   so a test can serve them), refreshed before they expire;
5. TKE OIDC (``TKE_*`` environment of a pod with a service-account token).

Whitespace around every value is stripped: a key copied with a trailing newline breaks signing, and the
resulting error would never mention why. Values are never logged; :func:`describe` names only the source.
Every secret id, key and token read here, at start or on a refresh, is registered with
:func:`cfs_csi.logsetup.register_secret`, so a library that logs it (the SDK does, at DEBUG) logs
``[redacted]`` instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cfs_csi.cloud.tencent.metadata import Metadata, MetadataError
from cfs_csi.logsetup import register_secret

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
ROLE_PATH = "cam/security-credentials/"
#: Temporary keys are renewed this long before they expire: a request signed now may still be checked
#: up to five minutes later (the cloud's allowed clock skew).
ROLE_REFRESH_MARGIN = 300.0


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


class _SdkAttributes:
    """The attribute names the synchronous SDK reads, each taken from a fresh :meth:`get_credential_info`
    (so a rotated file or a renewed role key is what gets used)."""

    def get_credential_info(self) -> tuple[str, str, str | None]:
        raise NotImplementedError

    @property
    def secretId(self) -> str:
        return self.get_credential_info()[0]

    @property
    def secretKey(self) -> str:
        return self.get_credential_info()[1]

    @property
    def token(self) -> str | None:
        return self.get_credential_info()[2]


@dataclass(frozen=True)
class FileCredential(_SdkAttributes):
    """A Secret mounted as files; read on every signature so rotation needs no restart."""

    directory: Path
    id_file: str
    key_file: str
    source: str = ""

    def get_credential_info(self) -> tuple[str, str, str | None]:
        secret_id = (self.directory / self.id_file).read_text().strip()
        secret_key = (self.directory / self.key_file).read_text().strip()
        _register(secret_id, secret_key, None)
        return secret_id, secret_key, None


def from_environment(env: Mapping[str, str]) -> StaticCredential | None:
    for id_name, key_name in ENV_PAIRS:
        secret_id, secret_key = env.get(id_name, "").strip(), env.get(key_name, "").strip()
        if secret_id and secret_key:
            _register(secret_id, secret_key, None)
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
        found = _tke_oidc(env)
    if found is None:
        raise CredentialError(
            "no cloud credentials: set TENCENTCLOUD_API_SECRET_ID/TENCENTCLOUD_API_SECRET_KEY (for example from "
            "a Secret), mount a credentials directory, or run on a CVM with an instance role or with TKE OIDC"
        )
    return found


def describe(credential: SdkCredential) -> str:
    """Where the credentials come from, fit for a log line (never the values)."""
    return getattr(credential, "source", "") or type(credential).__name__


def _register(secret_id: str | None, secret_key: str | None, token: str | None) -> None:
    for value in (secret_id, secret_key, token):
        register_secret(value)


@dataclass(frozen=True)
class RoleKeys:
    """Temporary keys of an instance role, as the metadata service hands them out."""

    secret_id: str = field(repr=False)
    secret_key: str = field(repr=False)
    token: str = field(repr=False)
    expires: float


def parse_role_keys(text: str) -> RoleKeys:
    """The metadata service's answer for a role (``TmpSecretId``, ``TmpSecretKey``, ``Token``,
    ``ExpiredTime``); :class:`CredentialError` naming what is wrong, never quoting the text (it holds keys)."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        raise CredentialError("the metadata service's role credentials are not JSON") from None
    if not isinstance(data, dict):
        raise CredentialError("the metadata service's role credentials are not a JSON object")
    if data.get("Code", "Success") != "Success":
        raise CredentialError(f"the metadata service refused the role credentials (Code {str(data['Code'])[:64]})")
    values = {name: str(data.get(name) or "").strip() for name in ("TmpSecretId", "TmpSecretKey", "Token")}
    _register(values["TmpSecretId"], values["TmpSecretKey"], values["Token"])
    missing = [name for name, value in values.items() if not value]
    expires = data.get("ExpiredTime")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        missing.append("ExpiredTime")
    if missing:
        raise CredentialError(f"the metadata service's role credentials lack {', '.join(missing)}")
    return RoleKeys(values["TmpSecretId"], values["TmpSecretKey"], values["Token"], float(expires or 0))


class InstanceRoleCredential(_SdkAttributes):
    """The CVM instance role's temporary keys, asked from *our* metadata client and renewed before expiry.

    Not the SDK's ``CVMRoleCredential``: that one ignores ``--metadata-url``, asks without a timeout (a hung
    metadata service would hang signing), and on failure silently signs with ``None``. Here a failed renewal
    keeps the current keys while they are valid, then raises :class:`CredentialError` saying why.
    """

    def __init__(self, metadata: Metadata, role: str, clock: Callable[[], float] = time.time) -> None:
        self.role = role
        self.source = f"CVM instance role {role}"
        self._metadata = metadata
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: RoleKeys | None = None

    def __repr__(self) -> str:
        return f"InstanceRoleCredential(role={self.role!r})"

    def cached(self) -> tuple[str, str, str | None] | None:
        """The current keys if no renewal is due, without waiting for anything (no lock, no metadata service);
        ``None``: call :meth:`get_credential_info`, which may ask the metadata service, off the event loop."""
        keys = self._keys
        if keys is None or keys.expires - self._clock() <= ROLE_REFRESH_MARGIN:
            return None
        return keys.secret_id, keys.secret_key, keys.token

    def get_credential_info(self) -> tuple[str, str, str | None]:
        with self._lock:
            keys = self._keys
            now = self._clock()
            if keys is None or keys.expires - now <= ROLE_REFRESH_MARGIN:
                try:
                    keys = self._keys = parse_role_keys(self._metadata.get(ROLE_PATH + self.role))
                except (MetadataError, CredentialError) as exc:
                    if keys is None or keys.expires <= now:
                        raise CredentialError(f"cannot get keys of the CVM instance role {self.role}: {exc}") from None
                    log.warning("renewing the keys of the CVM instance role %s failed (%s); the current keys "
                                "are valid for %.0f more seconds", self.role, exc, keys.expires - now)  # fmt: skip
            return keys.secret_id, keys.secret_key, keys.token


class RegisteringCredential(_SdkAttributes):
    """Wraps a credential whose refresh we do not control (TKE OIDC): every value it hands out is registered
    for redaction before the SDK can log it in a request."""

    def __init__(self, inner: Any, source: str) -> None:
        self._inner = inner
        self.source = source

    def __repr__(self) -> str:
        return f"RegisteringCredential(source={self.source!r})"

    def get_credential_info(self) -> tuple[str, str, str | None]:
        secret_id, secret_key, token = self._inner.get_credential_info()
        _register(secret_id, secret_key, token)
        return str(secret_id), str(secret_key), token


def _cvm_role(metadata: Metadata) -> SdkCredential | None:
    """The instance role, if the metadata service names one; its keys are fetched now so that a role without
    usable keys fails at start, not on the first volume."""
    try:
        role_name = metadata.get(ROLE_PATH).splitlines()[0].strip()
    except MetadataError as exc:
        log.info("no CVM instance role: %s", exc)
        return None
    role = InstanceRoleCredential(metadata, role_name)
    role.get_credential_info()
    return role


def _tke_oidc(env: Mapping[str, str]) -> SdkCredential | None:  # pragma: no cover - needs TKE
    from tencentcloud.common.credential import DefaultTkeOIDCRoleArnProvider

    # The web identity token is sent (and, by the SDK at DEBUG, logged) on every refresh.
    with contextlib.suppress(OSError):
        register_secret(Path(env["TKE_WEB_IDENTITY_TOKEN_FILE"]).read_text().strip())
    provider = DefaultTkeOIDCRoleArnProvider().get_credentials()
    return RegisteringCredential(provider, f"TKE OIDC role {env.get('TKE_ROLE_ARN', '')}")
