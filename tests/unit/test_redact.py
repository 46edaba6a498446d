"""Secrets never reach a log line: CSI secrets fields are cleared from logged requests, and every log record
of every logger is redacted by pattern and by registered value (issue 11, finding 14)."""

from __future__ import annotations

import io
import json
import logging
import secrets
import sys
import warnings
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from cfs_csi import logsetup
from cfs_csi.csi import csi_pb2
from cfs_csi.driver.interceptor import describe
from cfs_csi.logsetup import REDACTED, redact, redact_patterns, register_secret


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


# -- redaction by pattern (nothing registered) -----------------------------------------------------------------

SID = "AKIDpattern0123456789abcdefghijklmnop"
SIG = "5f3c" * 16
TOKEN = "sessTok-9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e"
JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLWJ5dGVz"
TC3 = f"TC3-HMAC-SHA256 Credential={SID}/2026-11-29/cfs/tc3_request, SignedHeaders=content-type;host, Signature={SIG}"

# (case, text, what must be gone, what must stay)
PATTERN_CASES: list[tuple[str, str, list[str], list[str]]] = [
    ("SDK request dump, lower-case headers (httpx)",
     f"POST http://cfs/?\nx-tc-action: CreateCfsFileSystem\nx-tc-token: {TOKEN}\nauthorization: {TC3}\nhost: cfs",
     [SID, SIG, TOKEN], ["x-tc-action: CreateCfsFileSystem", "x-tc-token: [redacted]", "authorization: [redacted]",
                         "host: cfs"]),
    ("headers as the synchronous SDK names them", f"Authorization: {TC3}\r\nX-TC-Token: {TOKEN}\r\nHost: h",
     [SID, SIG, TOKEN], ["Host: h"]),
    ("dict repr of headers", repr({"Authorization": TC3, "X-TC-Token": TOKEN, "X-TC-Region": "ap-guangzhou"}),
     [SID, SIG, TOKEN], ["'X-TC-Region': 'ap-guangzhou'"]),
    ("httpx raw header list (bytes tuples)", repr([(b"x-tc-token", TOKEN.encode()), (b"host", b"cfs")]),
     [TOKEN], ["(b'host', b'cfs')"]),
    ("whole request as bytes repr", repr(f"POST / HTTP/1.1\r\nAuthorization: {TC3}\r\n\r\n".encode()),
     [SID, SIG], ["POST / HTTP/1.1"]),
    ("a signature and credential anywhere", f"signing failed for Credential={SID}/x, Signature={SIG}",
     [SID, SIG], ["signing failed for Credential=[redacted]/x"]),
    ("role credentials JSON (metadata service, STS, OIDC answer)",
     json.dumps({"TmpSecretId": SID, "TmpSecretKey": "k3y-abc", "Token": TOKEN, "ExpiredTime": 1795976144}),
     [SID, "k3y-abc", TOKEN], ['"ExpiredTime": 1795976144']),
    ("OIDC request body", json.dumps({"ProviderId": "tke", "WebIdentityToken": JWT, "RoleArn": "qcs::cam::role"}),
     [JWT], ['"RoleArn": "qcs::cam::role"']),
    ("SecretId/SecretKey JSON", '{"SecretId":"AKIDzzzzzzzzzzzzzz","SecretKey":"plainkey1"}',
     ["AKIDzzzzzzzzzzzzzz", "plainkey1"], ['"SecretId":"[redacted]"']),
    ("legacy HmacSHA256 query string", f"GET /?Action=X&SecretId={SID}&Signature=ab%2Bcd%3D&Nonce=7",
     [SID, "ab%2Bcd%3D"], ["Action=X&", "&Nonce=7"]),
    ("environment dump", f"TENCENTCLOUD_SECRET_ID={SID} TENCENTCLOUD_SECRET_KEY=abcdef123456 HOME=/root",
     [SID, "abcdef123456"], ["HOME=/root"]),
    ("Kubernetes bearer token header", f"{{'authorization': 'Bearer {JWT}', 'accept': 'application/json'}}",
     [JWT], ["'accept': 'application/json'"]),
    ("bearer token in prose", "retrying with Bearer sha256~AbCdEf0123456789 after 401", ["sha256~AbCdEf0123456789"],
     ["retrying with Bearer [redacted] after 401"]),
    ("a bare JWT", f"token file holds {JWT}", [JWT], ["token file holds"]),
    ("a bare SecretId", f"AuthFailure.SecretIdNotFound for {SID}", [SID], ["AuthFailure.SecretIdNotFound for"]),
    ("exception text", f"TencentCloudSDKException(code=ClientError, message=bad header {{'X-TC-Token': '{TOKEN}'}})",
     [TOKEN], ["code=ClientError"]),
    ("password-like keys", "password=hunter2hunter client_secret: 'abc123def'", ["hunter2hunter", "abc123def"], []),
]  # fmt: skip

UNCHANGED = [
    "ClientToken=cfs-csi-0123abcd FsName=cls-test_pvc-1",
    "CFS CreateCfsFileSystem failed: AuthFailure.TokenFailure: the token expired",
    "AuthFailure.SecretIdNotFound (check for extra whitespace)",
    "credentials from CVM instance role cfs-role",
    "action=DescribeCfsFileSystems outcome=ok status=200 latency_ms=3.1",
    "Authorization: [redacted]",
    "",
]


@pytest.mark.parametrize(("case", "text", "gone", "kept"), PATTERN_CASES, ids=[c[0] for c in PATTERN_CASES])
def test_patterns(case: str, text: str, gone: list[str], kept: list[str]) -> None:
    cleaned = redact(text)
    assert [secret for secret in gone if secret in cleaned] == [], cleaned
    assert [part for part in kept if part not in cleaned] == [], cleaned
    assert REDACTED in cleaned
    assert redact(cleaned) == cleaned  # redacting twice changes nothing


@pytest.mark.parametrize("text", UNCHANGED)
def test_what_is_not_a_secret_stays(text: str) -> None:
    assert redact(text) == text


def test_text_without_a_trigger_word_is_returned_as_is() -> None:
    text = "a DEBUG line of 200 characters about a volume " * 5
    assert redact_patterns(text) is text


# -- redaction by registered value -----------------------------------------------------------------------------


@pytest.fixture
def registered() -> Iterator[str]:
    value = "rEg" + secrets.token_urlsafe(24) + "/+="
    register_secret(value)
    try:
        yield value
    finally:
        logsetup.forget_secrets()


class Holder:
    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Holder(value={self.value!r})"


def test_registered_values_are_redacted_in_every_form(registered: str) -> None:
    forms = {
        "plain": f"the key is {registered}.",
        "repr": repr(Holder(registered)),
        "exception": str(RuntimeError(f"signing with {registered} failed")),
        "url-encoded": f"GET /?k={quote(registered, safe='')}",
        "json with escaped slashes": json.dumps({"k": registered}).replace("/", "\\/"),
        "bytes repr": repr(registered.encode()),
        "inside a word": f"xx{registered}yy",
    }
    leaked = {name: text for name, text in forms.items() if registered in redact(text) or
              quote(registered, safe="") in redact(text) or registered.replace("/", "\\/") in redact(text)}  # fmt: skip
    assert leaked == {}
    assert all(REDACTED in redact(text) for text in forms.values())


def test_short_values_are_not_registered() -> None:
    register_secret("abc")
    register_secret("")
    register_secret(None)
    try:
        assert redact("abc is a word") == "abc is a word"
    finally:
        logsetup.forget_secrets()


# -- the logging layers ----------------------------------------------------------------------------------------


@pytest.fixture
def configured() -> Iterator[io.StringIO]:
    """``configure`` at DEBUG into a buffer; everything process-wide is put back afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, sys.excepthook
    stream = io.StringIO()
    logsetup.configure("DEBUG", stream=stream)
    try:
        yield stream
    finally:
        logsetup.unconfigure()
        logsetup.forget_secrets()
        root.handlers[:], _, _ = saved
        root.setLevel(saved[1])
        sys.excepthook = saved[2]


def test_log_args_and_tracebacks_are_redacted(configured: io.StringIO, registered: str) -> None:
    log = logging.getLogger("tencentcloud_sdk_common")
    log.debug("SendRequest:\n%s", f"authorization: {TC3}\nx-tc-token: {TOKEN}")
    log.debug("headers %r", {"X-TC-Token": registered})
    try:
        raise RuntimeError(f"call failed with key {registered}")
    except RuntimeError:
        logging.getLogger("cfs_csi.test").exception("unexpected")
    logging.getLogger("cfs_csi.test").info("stack", stack_info=True, extra={"note": registered})
    out = configured.getvalue()
    assert [s for s in (SID, SIG, TOKEN, registered) if s in out] == []
    assert "SendRequest" in out and "Traceback" in out and "RuntimeError: call failed with key [redacted]" in out


def test_a_handler_added_later_by_a_library_gets_redacted_records(configured: io.StringIO, registered: str) -> None:
    """The record factory layer: no formatter of ours on this handler, still nothing leaks."""
    stream = io.StringIO()
    late = logging.StreamHandler(stream)
    late.setFormatter(logging.Formatter("%(message)s"))
    library = logging.getLogger("a.library")
    library.addHandler(late)
    try:
        library.warning("token=%s value %s", "abcdefgh12345", registered)
    finally:
        library.removeHandler(late)
    assert stream.getvalue() == "token=[redacted] value [redacted]\n"


def test_library_formatters_output_is_redacted(configured: io.StringIO, registered: str) -> None:
    """The formatter layer: a handler whose formatter adds a field (as kopf's event poster and JSON formatter
    do) is wrapped by protect_handlers, so the final line is redacted too."""

    class Extra(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return f"{super().format(record)} ref={getattr(record, 'ref', '')}"

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(Extra("%(message)s"))
    poster = logging.getLogger("kopf.objects.test")
    poster.addHandler(handler)
    poster.propagate = False
    try:
        logsetup.protect_handlers()
        poster.info("posting", extra={"ref": {"X-TC-Token": TOKEN, "other": registered}})
    finally:
        poster.removeHandler(handler)
    assert stream.getvalue() == "posting ref={'X-TC-Token': '[redacted]', 'other': '[redacted]'}\n"


def test_warnings_and_uncaught_exceptions_go_through_redaction(configured: io.StringIO, registered: str) -> None:
    warnings.warn(f"deprecated call with Signature={SIG}", UserWarning, stacklevel=1)
    try:
        raise ValueError(f"bad key {registered}")
    except ValueError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    out = configured.getvalue()
    assert SIG not in out and registered not in out
    assert "Signature=[redacted]" in out and "ValueError: bad key [redacted]" in out
