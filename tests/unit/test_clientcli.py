"""``cfs-csi client``'s argument checks: a typo is a usage error naming the flag, never a traceback."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cfs_csi.cli import main
from cfs_csi.clientcli import VolumeRef, add_client_parser, byte_size, key_value, volume_ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [("vers=3", ("vers", "3")), ("a=b=c", ("a", "b=c")), (" zone =x", ("zone", "x")), ("empty=", ("empty", ""))],
)
def test_key_value_pairs(text: str, expected: tuple[str, str]) -> None:
    assert key_value(text) == expected


@pytest.mark.parametrize("text", ["foo", "=value", " =x", ""])
def test_a_pair_without_key_or_equals_sign_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not KEY=VALUE"):
        key_value(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1073741824", 2**30), ("10Gi", 10 * 2**30), ("512Mi", 512 * 2**20), ("1Ki", 1024), ("1", 1), ("2Ti", 2**41)],
)
def test_sizes_are_bytes_or_binary_quantities(text: str, expected: int) -> None:
    assert byte_size(text) == expected


@pytest.mark.parametrize("text", ["10G", "1.5Gi", "-1", "0", "ten", "10 Gi", "9999999Pi"])
def test_other_sizes_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        byte_size(text)


def test_a_volume_is_an_id_or_the_file_create_printed(tmp_path: Path) -> None:
    assert volume_ref("cfs-abc") == VolumeRef("cfs-abc", {})
    printed = tmp_path / "demo.json"
    printed.write_text(json.dumps({"volumeId": "cfs-abc", "capacityBytes": "1", "volumeContext": {"host": "h"}}))
    assert volume_ref(f"@{printed}") == VolumeRef("cfs-abc", {"host": "h"})
    printed.write_text("[]")
    with pytest.raises(argparse.ArgumentTypeError, match="no volumeId"):
        volume_ref(f"@{printed}")
    with pytest.raises(argparse.ArgumentTypeError, match="not the JSON that create printed"):
        volume_ref(f"@{tmp_path / 'missing.json'}")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["create", "demo", "--param", "foo"], "argument --param: 'foo' is not KEY=VALUE"),
        (["create", "demo", "--secret", "token"], "argument --secret: 'token' is not KEY=VALUE"),
        (["create", "demo", "--size", "10G"], "argument --size: '10G' is not a size in bytes"),
        (["publish", "v", "/t", "--context", "host"], "argument --context: 'host' is not KEY=VALUE"),
    ],
)
def test_bad_arguments_are_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["client", "--endpoint", "unix:///nonexistent.sock", *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def _parsers() -> dict[str, argparse.ArgumentParser]:
    root = argparse.ArgumentParser()
    add_client_parser(root.add_subparsers())
    [client_sub] = [a for a in root._actions if isinstance(a, argparse._SubParsersAction)]
    client = client_sub.choices["client"]
    [actions] = [a for a in client._actions if isinstance(a, argparse._SubParsersAction)]
    return {"client": client, **actions.choices}


def test_every_argument_of_every_sub_command_has_help() -> None:
    parsers = _parsers()
    assert set(parsers) == {"client", "info", "create", "delete", "publish", "unpublish", "stats"}
    for name, parser in parsers.items():
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{name} {action.option_strings or action.dest} has no help"


@pytest.mark.parametrize(("action", "shown"), [("create", "(default: 10Gi)"), ("publish", "--mount-flag FLAG")])
def test_help_shows_defaults_and_the_new_flags(action: str, shown: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["client", action, "--help"])
    assert shown in capsys.readouterr().out


def test_client_help_shows_the_default_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["client", "--help"])
    assert "(default: unix:///csi/csi.sock)" in capsys.readouterr().out
