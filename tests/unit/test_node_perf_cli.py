"""The command line loads only the sub-command that runs (issue 15): which one argv names, and that the names and
defaults it keeps for that purpose match the real parsers and the node's own defaults."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from cfs_csi import DRIVER_NAME, cli
from cfs_csi.driver.node import NodeTimeouts


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["serve", "--component=node"], "serve"),
        (["--log-level", "DEBUG", "serve"], "serve"),
        (["--log-level=DEBUG", "operator", "--help"], "operator"),
        (["--log-level", "serve", "client"], "client"),  # "serve" is the option's value here
        (["subdir-provisioner"], "subdir-provisioner"),
        (["dev-cluster", "up"], "dev-cluster"),
        ([], None),
        (["--help"], None),
        (["--version"], None),
        (["serv"], None),  # a typo: the full parser says which commands exist
        (["-h", "serve"], None),
    ],
)
def test_command_named(argv: list[str], named: str | None) -> None:
    assert cli.command_named(argv) == named


def test_command_names_are_the_parsers_names() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    for name, add in cli._COMMANDS:
        before = set(sub.choices)
        add(sub)
        assert set(sub.choices) - before == {name}


def test_serve_defaults_are_the_node_defaults() -> None:
    parser = argparse.ArgumentParser()
    cli._serve_parser(parser.add_subparsers())
    args = parser.parse_args(["serve"])
    assert (args.mount_timeout, args.unmount_timeout, args.stats_timeout) == (
        NodeTimeouts.mount,
        NodeTimeouts.unmount,
        NodeTimeouts.stats,
    )


def test_refused_module_fails_loudly() -> None:
    code = (
        "import sys; from cfs_csi.cli import refuse_modules; refuse_modules(('ssl', '_ssl', '_hashlib'))\n"
        "import asyncio, hashlib\n"
        "assert 'ssl' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "assert hashlib.sha256(b'x').hexdigest().startswith('2d711642')  # the built-in SHA-256\n"
        "try:\n    import ssl\nexcept ImportError:\n    print('refused')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "refused"


def test_node_serve_loads_no_other_sub_command() -> None:
    """``serve --help`` (argument parsing of the node's command) imports none of the other sub-commands."""
    code = (
        "import sys\nfrom cfs_csi import cli\n"
        "try:\n    cli.main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kopf', 'kubernetes', 'tencentcloud', 'httpx', "
        "'sqlite3', 'grpc') or m.startswith(('cfs_csi.operator', 'cfs_csi.provisioner', 'cfs_csi.emulator', "
        "'cfs_csi.devcluster', 'cfs_csi.client', 'cfs_csi.driver'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    ("argv", "node"),
    [
        (["serve", "--component=node"], True),
        (["--log-level", "INFO", "serve", "--endpoint", "unix:///x", "--component", "node"], True),
        (["serve", "--component=all"], False),
        (["serve", "--component", "controller"], False),
        (["serve"], False),
        (["serve", "--component"], False),
        (["client", "--component=node"], False),
    ],
)
def test_node_only(argv: list[str], node: bool) -> None:
    assert cli.node_only(argv) is node


def _serve_options(node_alone: bool) -> dict[str, tuple[object, ...]]:
    sub = argparse.ArgumentParser().add_subparsers()
    cli._serve_parser(sub, node_alone=node_alone)
    serve = sub.choices["serve"]
    return {
        flag: (action.dest, type(action).__name__, action.type, action.choices, action.nargs)
        for action in serve._actions
        for flag in action.option_strings
    }


def test_the_node_alone_accepts_exactly_the_flags_of_serve() -> None:
    """The node parses ``serve`` without the cloud package (issue 15): every flag, its kind and type match."""
    assert _serve_options(node_alone=True) == _serve_options(node_alone=False)


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--component=node", "--backend=tencent", "--state-dir=/s"],
        ["serve", "--component=node", "--state-dir", "/s", "--mounter", "bind", "--export-root", "/e"],
    ],
)
def test_what_the_node_reads_parses_alike_either_way(argv: list[str]) -> None:
    def parse(node_alone: bool) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        cli._serve_parser(parser.add_subparsers(), node_alone=node_alone)
        return parser.parse_args(argv)

    alone, full = parse(True), parse(False)
    for key in ("backend", "state_dir", "mounter", "export_root", "kubelet_dir", "endpoint", "register", "grace"):
        assert getattr(alone, key) == getattr(full, key), key


def test_node_then_another_component_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--component=node", "--component=all"])
    assert exited.value.code == 2
    assert "give it once" in capsys.readouterr().err


def test_the_registration_socket_checked_before_the_bind_is_the_registrars(tmp_path: Path) -> None:
    from cfs_csi.registration.server import registration_socket

    assert cli.registration_socket_path(tmp_path) == registration_socket(tmp_path, DRIVER_NAME)
