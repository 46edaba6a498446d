# ruff: noqa: S105 - error codes that contain "Token" or "Secret", not secrets
"""The error answer of the API, and the codes the emulator uses.

Every code here is a real one: the common codes of Tencent Cloud API 3.0 or a CFS code listed in the SDK's
``tencentcloud/cfs/v20190719/errorcodes.py``. The messages are ours.
"""

from __future__ import annotations

# Common (gateway) codes.
AUTH_INVALID_AUTHORIZATION = "AuthFailure.InvalidAuthorization"
AUTH_SECRET_ID_NOT_FOUND = "AuthFailure.SecretIdNotFound"
AUTH_SIGNATURE_EXPIRE = "AuthFailure.SignatureExpire"
AUTH_SIGNATURE_FAILURE = "AuthFailure.SignatureFailure"
INTERNAL_ERROR = "InternalError"
INVALID_ACTION = "InvalidAction"
INVALID_PARAMETER = "InvalidParameter"
INVALID_PARAMETER_VALUE = "InvalidParameterValue"
LIMIT_EXCEEDED = "LimitExceeded"
MISSING_PARAMETER = "MissingParameter"
NO_SUCH_VERSION = "NoSuchVersion"
REQUEST_LIMIT_EXCEEDED = "RequestLimitExceeded"
REQUEST_SIZE_LIMIT_EXCEEDED = "RequestSizeLimitExceeded"
UNKNOWN_PARAMETER = "UnknownParameter"
UNSUPPORTED_OPERATION = "UnsupportedOperation"
UNSUPPORTED_REGION = "UnsupportedRegion"
RESOURCE_NOT_FOUND = "ResourceNotFound"

# CFS codes (errorcodes.py).
CLIENT_TOKEN_IN_USE = "FailedOperation.ClientTokenInUse"
CLIENT_TOKEN_LIMIT_EXCEEDED = "InvalidParameterValue.ClientTokenLimitExceeded"
DUPLICATED_TAG_KEY = "InvalidParameterValue.DuplicatedTagKey"
FILE_SYSTEM_NOT_FOUND = "ResourceNotFound.FileSystemNotFound"
FS_NAME_LIMIT_EXCEEDED = "InvalidParameterValue.FsNameLimitExceeded"
INVALID_CLIENT_TOKEN = "InvalidParameterValue.InvalidClientToken"
INVALID_ENCRYPTED = "InvalidParameterValue.InvalidEncrypted"
INVALID_FS_STATUS = "InvalidParameterValue.InvalidFsStatus"
INVALID_NET_INTERFACE = "InvalidParameterValue.InvalidNetInterface"
INVALID_PGROUP_ID = "InvalidParameterValue.InvalidPgroupId"
INVALID_PROTOCOL = "InvalidParameterValue.InvalidProtocol"
INVALID_RESOURCE_TAGS = "InvalidParameterValue.InvalidResourceTags"
INVALID_STORAGE_TYPE = "InvalidParameterValue.InvalidStorageType"
INVALID_SUBNET_ID = "InvalidParameterValue.InvalidSubnetId"
INVALID_TAG_KEY = "InvalidParameterValue.InvalidTagKey"
INVALID_TAG_VALUE = "InvalidParameterValue.InvalidTagValue"
INVALID_TURBO_CAPACITY = "InvalidParameterValue.InvalidTurboCapacity"
INVALID_VPC_ID = "InvalidParameterValue.InvalidVpcId"
INVALID_ZONE = "InvalidParameterValue.InvalidZoneOrZoneId"
BASIC_NETWORK_NOT_SUPPORTED = "UnsupportedOperation.BasicNetInterfaceNotSupported"
MISSING_FILE_SYSTEM_ID = "InvalidParameterValue.MissingFileSystemId"
MISSING_VPC_PARAMETER = "InvalidParameterValue.MissingVpcParameter"
MISSING_ZONE = "InvalidParameterValue.MissingZoneOrZoneId"
TAG_KEY_LIMIT_EXCEEDED = "InvalidParameterValue.TagKeyLimitExceeded"
TAG_LIMIT_EXCEEDED = "ResourceInsufficient.TagLimitExceeded"
TAG_VALUE_LIMIT_EXCEEDED = "InvalidParameterValue.TagValueLimitExceeded"
ZONE_REGION_MISMATCH = "InvalidParameterValue.ZoneIdRegionNotMatch"
PGROUP_NOT_FOUND = "ResourceNotFound.PgroupNotFound"
# directory quotas
CFS_PATH = "InvalidParameterValue.CfsPath"
QUOTA_CAP_LIMIT = "InvalidParameterValue.QuotaCapLimitError"
QUOTA_FILE_LIMIT = "InvalidParameterValue.QuotaFileLimitError"
QUOTA_USER_ID = "InvalidParameterValue.QuotaUserIdError"
QUOTA_USER_TYPE = "InvalidParameterValue.QuotaUserTypeError"
QUOTA_DIR_NESTED = "InvalidParameterValue.ProjectQuotasDirNested"
QUOTAS_EXCEEDED = "InvalidParameterValue.ProjectQuotasExceeded"
# file system size limit
INVALID_FS_SIZE_LIMIT = "InvalidParameterValue.InvalidFsSizeLimit"
FS_SIZE_LIMIT_EXCEEDED = "InvalidParameterValue.FsSizeLimitExceeded"
# snapshots
SNAPSHOT_NOT_FOUND = "ResourceNotFound.SnapshotNotFound"
INVALID_SNAPSHOT_NAME = "InvalidParameterValue.InvalidSnapshotName"
SNAPSHOT_NAME_LIMIT_EXCEEDED = "InvalidParameterValue.SnapshotNameLimitExceeded"
INVALID_SNAPSHOT_STATUS = "InvalidParameterValue.InvalidSnapshotStatus"
SNAPSHOT_SIZE_LIMIT_EXCEEDED = "ResourceInsufficient.SnapshotSizeLimitExceeded"
TAG_KEY_FILTER_LIMIT_EXCEEDED = "InvalidParameterValue.TagKeyFilterLimitExceeded"
TAG_VALUE_FILTER_LIMIT_EXCEEDED = "InvalidParameterValue.TagValueFilterLimitExceeded"


class ApiError(Exception):
    """A request the cloud refuses: answered as HTTP 200 with ``Response.Error`` (the real envelope)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
