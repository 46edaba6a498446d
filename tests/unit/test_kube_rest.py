"""Finding the cluster from a kubeconfig or the pod's service account, and the Events we post (pure parts)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from cfs_csi import logsetup
from cfs_csi.kube.events import MAX_MESSAGE, event_body, event_key
from cfs_csi.kube.rest import Config, config_from_kubeconfig, format_time, load_config


def kubeconfig(user: dict[str, Any], cluster: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "dev",
        "clusters": [{"name": "dev", "cluster": cluster or {"server": "https://10.0.0.1:6443/",
                                                             "certificate-authority": "ca.crt"}}],
        "users": [{"name": "me", "user": user}],
        "contexts": [{"name": "other", "context": {"cluster": "nope", "user": "nope"}},
                     {"name": "dev", "context": {"cluster": "dev", "user": "me"}}],
    }  # fmt: skip


PEM = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({"token": "t0k3n"}, {"token": "t0k3n"}),
        ({"tokenFile": "sa/token"}, {"token_file": "/conf/sa/token"}),
        ({"client-certificate": "me.crt", "client-key": "/abs/me.key"},
         {"cert_file": "/conf/me.crt", "key_file": "/abs/me.key"}),
        ({"client-certificate-data": base64.b64encode(PEM).decode(),
          "client-key-data": base64.b64encode(b"k").decode()},
         {"cert_data": PEM, "key_data": b"k"}),
    ],
    ids=["token", "token-file", "cert-files-relative-to-the-kubeconfig", "cert-data"],
)  # fmt: skip
def test_credentials_of_the_current_context(user: dict[str, Any], expected: dict[str, Any]) -> None:
    config = config_from_kubeconfig([(Path("/conf/kubeconfig"), kubeconfig(user))])
    assert config == Config(server="https://10.0.0.1:6443", ca_file="/conf/ca.crt", **expected)


def test_a_config_never_shows_its_secrets() -> None:
    config = config_from_kubeconfig([(Path("/conf/kubeconfig"), kubeconfig({"token": "s3cret-t0ken"}))])
    assert "s3cret" not in repr(config) and "s3cret" not in str(config)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({**kubeconfig({}), "current-context": ""}, "no current-context"),
        ({**kubeconfig({}), "current-context": "other"}, "no cluster named 'nope'"),
        (kubeconfig({"exec": {"command": "aws"}}), "exec and auth-provider"),
    ],
)
def test_unusable_kubeconfigs_are_refused_with_why(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config_from_kubeconfig([(Path("/k"), document)])


def test_kubeconfig_list_and_order(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    only_users = kubeconfig({"token": "from-a"})
    del only_users["clusters"]
    first.write_text(yaml.safe_dump(only_users))
    second.write_text(yaml.safe_dump(kubeconfig({"token": "from-b"})))
    env = {"KUBECONFIG": f"{first}:{tmp_path / 'missing'}:{second}"}
    merged = load_config(None, env)  # the first file's context and user, the cluster from the second
    assert (merged.token, merged.server, merged.ca_file) == (
        "from-a",
        "https://10.0.0.1:6443",
        str(tmp_path / "ca.crt"),
    )
    assert load_config(str(second), env).token == "from-b"  # the argument wins over the environment
    with pytest.raises(ValueError, match="no kubeconfig"):
        load_config(str(tmp_path / "missing"), {})


def test_in_cluster_when_nothing_names_a_kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("pod-token")
    monkeypatch.setattr("cfs_csi.kube.rest.SERVICE_ACCOUNT", account)
    config = load_config(None, {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"})
    assert config == Config(server="https://[fd00::1]:443", ca_file=str(account / "ca.crt"),
                            token_file=str(account / "token"))  # fmt: skip


def test_events_are_cut_redacted_and_name_their_object() -> None:
    logsetup.register_secret("hunter2-secret-value")
    try:
        claim = {"apiVersion": "v1", "metadata": {"name": "c", "namespace": "ns", "uid": "u", "resourceVersion": "9"}}
        now = datetime(2025, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
        body = event_body(claim, "PersistentVolumeClaim", "ProvisioningFailed",
                          "key hunter2-secret-value " + "x" * 2000, "prov", now, warning=True)  # fmt: skip
    finally:
        logsetup.forget_secrets()
    assert body["metadata"] == {"generateName": "c.", "namespace": "ns"}
    assert body["involvedObject"] == {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": "c",
                                      "namespace": "ns", "uid": "u", "resourceVersion": "9"}  # fmt: skip
    assert "hunter2" not in body["message"] and len(body["message"]) == MAX_MESSAGE
    assert (body["type"], body["firstTimestamp"]) == ("Warning", "2025-03-01T12:00:00Z")
    pv = event_body({"metadata": {"name": "pv"}}, "PersistentVolume", "Provisioning", "m", "prov", now)
    assert (pv["metadata"]["namespace"], pv["type"]) == ("default", "Normal")  # cluster-scoped: in default


NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
TCFS = {"metadata": {"name": "t", "namespace": "kube-system", "uid": "u1"}}
SAME_KEY_CASES = [
    ("a repeat a minute later", (TCFS, "Tcfs", "CloudError", "down", True), True),
    ("another message", (TCFS, "Tcfs", "CloudError", "still down", True), False),
    ("another reason", (TCFS, "Tcfs", "FileSystemMissing", "down", True), False),
    ("Normal, not Warning", (TCFS, "Tcfs", "CloudError", "down", False), False),
    ("a Tcfs of that name made again", ({"metadata": {**TCFS["metadata"], "uid": "u2"}}, "Tcfs", "CloudError", "down",
                                        True), False),
]  # fmt: skip


@pytest.mark.parametrize(("case", "other", "same"), SAME_KEY_CASES, ids=[c[0] for c in SAME_KEY_CASES])
def test_which_events_are_counted_as_repeats(case: str, other: tuple[Any, ...], same: bool) -> None:
    first = event_body(TCFS, "Tcfs", "CloudError", "down", "cfs-csi-operator", NOW, warning=True)
    involved, kind, reason, message, warning = other
    later = event_body(involved, kind, reason, message, "cfs-csi-operator", NOW.replace(minute=1), warning=warning)
    assert (event_key(first) == event_key(later)) is same


def test_format_time() -> None:
    assert format_time(datetime(2025, 3, 1, 12, 0, 0)) == "2025-03-01T12:00:00.000000Z"
