"""``scripts/run-local.sh`` tells the truth: every example line it prints works as printed, on both backends.

The lines are run the way a user pastes them into another shell (argv split as a shell would; ``> FILE`` saves
the output), including the ``nsenter`` lines that show the published target from inside the driver's mount
namespace. A file written there must land in the directory the script says holds the volume's files; an RPC
error goes to stderr with exit status 1; SIGTERM stops everything the script started.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import read_until

REPO = Path(__file__).resolve().parents[2]


def _run_printed(line: str) -> subprocess.CompletedProcess[str]:
    """One printed example, as a shell would run it (only ``> FILE`` is shell syntax in them)."""
    words = shlex.split(line)
    if ">" in words:
        at = words.index(">")
        words, output = words[:at], words[at + 1]
        result = subprocess.run(words, capture_output=True, text=True, timeout=60, check=False)
        Path(output).write_text(result.stdout)
        return result
    return subprocess.run(words, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("mode", ["local", "emulator"])
def test_every_printed_example_works_as_printed(mode: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    argv = [str(REPO / "scripts" / "run-local.sh"), *(["--emulator"] if mode == "emulator" else [])]
    script = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "CFS_CSI_LOCAL_STATE": str(state)})  # fmt: skip
    try:
        printed = read_until(script, "Stop with Ctrl-C", timeout=120)
        examples = [line.strip() for line in printed if line.startswith("  ")]
        assert len(examples) == 8, printed
        results = {}
        for line in examples:
            result = _run_printed(line)
            assert result.returncode == 0, f"{line}\n{result.stdout}{result.stderr}"
            results[line] = result
        created = json.loads((state / "demo.json").read_text())
        assert created["capacityBytes"] == str(10 * 2**30)
        [listing] = [r.stdout for line, r in results.items() if " ls -l " in line]
        assert "hello" in listing  # the nsenter line sees the file written through the target
        [stats] = [json.loads(r.stdout) for line, r in results.items() if " stats " in line]
        assert {u["unit"] for u in stats["usage"]} == {"BYTES", "INODES"}
        # Outside the driver's namespace the target is the empty directory underneath, as the text says.
        target = state / "kubelet" / "pods" / "demo" / "mount"
        assert not (target / "hello").exists()
        # An RPC error: stderr, exit status 1.
        client = shlex.split(examples[0])[:-1]
        failed = subprocess.run([*client, "stats", "no-such-volume", str(target)], capture_output=True, text=True,
                                timeout=60, check=False)  # fmt: skip
        assert failed.returncode == 1 and not failed.stdout
        assert failed.stderr.startswith(("NOT_FOUND: ", "INVALID_ARGUMENT: ")), failed.stderr
    finally:
        script.send_signal(signal.SIGTERM)
        try:
            script.wait(30)
        except subprocess.TimeoutExpired:
            script.kill()
            raise
    # Everything it started is gone: no process still serves the socket's state directory.
    time.sleep(0.5)
    leftovers = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline_mentions(int(p), str(state))]
    assert leftovers == []


def test_files_land_where_the_script_says(tmp_path: Path) -> None:
    state = tmp_path / "state"
    script = subprocess.Popen([str(REPO / "scripts" / "run-local.sh")], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "CFS_CSI_LOCAL_STATE": str(state)})  # fmt: skip
    try:
        printed = read_until(script, "Stop with Ctrl-C", timeout=120)
        examples = [line.strip() for line in printed if line.startswith("  ")]
        for line in examples[1:4]:  # create, publish, touch
            assert _run_printed(line).returncode == 0, line
        volume = json.loads((state / "demo.json").read_text())["volumeContext"]
        [where] = [line for line in printed if "Its files live in" in line]
        directory = where.split("Its files live in ", 1)[1].strip()
        directory = directory.replace("<host>", volume["host"]).replace("<fsid>", volume["fsid"])
        assert (Path(directory) / "hello").is_file()
    finally:
        script.send_signal(signal.SIGTERM)
        script.wait(30)


def _cmdline_mentions(pid: int, text: str) -> bool:
    try:
        return text in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
