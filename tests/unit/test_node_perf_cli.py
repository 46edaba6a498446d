"""The command line loads only the sub-command that runs (issue 15): which one argv names, and that the names and
defaults it keeps for that purpose match the real parsers and the node's own defaults."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from cfs_csi import cli
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
