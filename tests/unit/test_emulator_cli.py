"""The emulator's command line: credentials, --listen, fault flags, and the sub-command registration."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cfs_csi.emulator import cli
from cfs_csi.emulator.faults import FaultConfig

API = {"TENCENTCLOUD_API_SECRET_ID": "api-id", "TENCENTCLOUD_API_SECRET_KEY": "api-key"}
SDK = {"TENCENTCLOUD_SECRET_ID": "sdk-id", "TENCENTCLOUD_SECRET_KEY": "sdk-key"}

CREDENTIALS = [
    ("flags win", "flag-id", "flag-key", {**API, **SDK}, ("flag-id", "flag-key")),
    ("vendor variables before the SDK's", None, None, {**API, **SDK}, ("api-id", "api-key")),
    ("SDK variables", None, None, SDK, ("sdk-id", "sdk-key")),
    ("whitespace stripped", " flag-id\n", "flag-key\n", {}, ("flag-id", "flag-key")),
    ("environment whitespace stripped", None, None,
     {"TENCENTCLOUD_SECRET_ID": "id \n", "TENCENTCLOUD_SECRET_KEY": "\tk"}, ("id", "k")),
    ("mixed sources", "flag-id", None, SDK, ("flag-id", "sdk-key")),
]  # fmt: skip


@pytest.mark.parametrize(("case", "sid", "key", "env", "expected"), CREDENTIALS, ids=[c[0] for c in CREDENTIALS])
def test_credentials(
    case: str, sid: str | None, key: str | None, env: dict[str, str], expected: tuple[str, str]
) -> None:
    assert cli.resolve_credentials(sid, key, env) == expected


@pytest.mark.parametrize(
    ("sid", "key", "env"),
    [(None, None, {}), ("id", None, {}), (None, None, {"TENCENTCLOUD_SECRET_ID": "id"}), (" ", "\n", {})],
)
def test_credentials_required(sid: str | None, key: str | None, env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="no credentials"):
        cli.resolve_credentials(sid, key, env)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("127.0.0.1:0", ("127.0.0.1", 0)), ("localhost:8080", ("localhost", 8080)), ("[::1]:9000", ("::1", 9000))],
)
def test_listen(value: str, expected: tuple[str, int]) -> None:
    assert cli.parse_listen(value) == expected


@pytest.mark.parametrize("value", ["8080", ":8080", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000"])
def test_listen_errors(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        cli.parse_listen(value)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    cli.add_emulator_parser(sub)
    return parser.parse_args(["emulator", *argv])


def test_sub_command_and_defaults() -> None:
    args = parse("--state", "s.db")
    assert args.run is cli.run
    assert (args.listen, args.state, args.region, args.export_root) == (
        ("127.0.0.1", 0),
        Path("s.db"),
        "ap-guangzhou",
        None,
    )
    assert (args.create_delay, args.client_token_ttl, args.seed) == (1.0, 7200.0, None)
    assert cli.fault_config(args) == FaultConfig(create_delay=1.0, delete_delay=0.0)


def test_fault_flags() -> None:
    args = parse(
        "--state", "s.db", "--throttle-rate", "0.2", "--error-rate", "0.05", "--error-status", "503",
        "--latency-ms", "15", "--timeout-rate", "0.05", "--timeout-delay", "3", "--create-failed-rate", "0.1",
        "--stuck-rate", "0.1", "--create-delay", "0.2", "--fault-actions", "CreateCfsFileSystem, DeleteCfsFileSystem",
    )  # fmt: skip
    assert cli.fault_config(args) == FaultConfig(
        create_delay=0.2,
        delete_delay=0.0,
        throttle_rate=0.2,
        error_rate=0.05,
        error_status=503,
        latency_ms=15,
        timeout_rate=0.05,
        timeout_delay=3,
        create_failed_rate=0.1,
        stuck_rate=0.1,
        actions=("CreateCfsFileSystem", "DeleteCfsFileSystem"),
    )


@pytest.mark.parametrize("flags", [["--throttle-rate", "2"], ["--create-delay", "-1"], ["--listen", "nope"], []])
def test_bad_flags(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(*flags) if flags else cli.main([])


def test_refuses_to_start_without_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in (*API, *SDK):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["--state", str(tmp_path / "s.db")]) == 2
    assert "no credentials" in capsys.readouterr().err
    assert not (tmp_path / "s.db").exists()


def test_inconsistent_fault_flags_are_a_start_up_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--state", str(tmp_path / "s.db"), "--secret-id", "i", "--secret-key", "k"]
    assert cli.main([*argv, "--throttle-rate", "0.6", "--error-rate", "0.6"]) == 2
    assert "must not exceed 1" in capsys.readouterr().err
