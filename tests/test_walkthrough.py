"""The README's "Your CSV to a running service", every command as written, end to end.

The commands are read from the README itself (its ``$ `` lines, between the
walk-through markers) and run in order in a directory laid out like a clone,
with ``model.base: auto`` resolving to a tiny encoder (``NABA_HOME``), so they
run offline in about a minute: import, init, the dry run, train, evaluate,
predict, a real ``naba serve`` process and an HTTP request to it, then the
Python block. Each line of output the README shows must start as the real
output does (the numbers differ: the encoder is tiny).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

README = ROOT / "README.md"
# Lines a run may or may not print: a warning that depends on the
# tokenizer, the one-off e5 conversion.
OPTIONAL = ("warning:", "wrote e5-small")
START, END = "<!-- --8<-- [start:walkthrough] -->", "<!-- --8<-- [end:walkthrough] -->"


def walkthrough() -> tuple[list[tuple[str, list[str]]], str]:
    """``([(command, output lines shown), ...], python block)`` from the README's walk-through."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(START) : text.index(END)]
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", section, re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
    python = re.search(r"```python\n(.*?)```", section, re.S)
    assert steps and python, "README.md: the walk-through has no console or python block"
    return steps, python.group(1)


def shown_prefix(line: str) -> str:
    """What a shown output line must start with: up to its first colon (or first word)."""
    head, colon, _ = line.partition(":")
    return head + colon if colon and len(head) <= 40 else line.split()[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readme_walkthrough_end_to_end(tmp_path, tiny_encoder, monkeypatch):
    steps, python = walkthrough()
    commands = [c.split()[0:2] for c, _ in steps]
    assert (
        ["naba", "init"] in commands
        and ["naba", "serve"] in commands
        and ["curl", "-s"] in commands
    )
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("data", "configs"):
        (clone / name).symlink_to(ROOT / name)
    home = tmp_path / "home"
    shutil.copytree(tiny_encoder, home / "encoders" / "e5-small")  # what `auto` finds
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "naba").write_text(f'#!/bin/sh\nexec {sys.executable} -m naba "$@"\n', encoding="utf-8")
    (shim / "naba").chmod(0o755)
    env = {
        **os.environ,
        "NABA_HOME": str(home),
        "PATH": f"{shim}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT / "src"),
        "HF_HUB_OFFLINE": "1",
    }
    port, server = free_port(), None
    try:
        for command, shown in steps:
            command = command.replace("8000", str(port))
            if command.startswith("naba serve"):
                args = shlex.split(command.rstrip("& "))
                server = subprocess.Popen(args, cwd=clone, env=env, stderr=subprocess.PIPE)
                wait_for(port, server)
                continue
            done = subprocess.run(
                ["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True
            )
            assert done.returncode == 0, f"$ {command}\n{done.stdout}\n{done.stderr}"
            if command.startswith("curl"):
                results = json.loads(done.stdout)["results"]
                assert results[0]["id"] == "a1" and results[0]["topics"]["labels"]
                continue
            lines = (done.stdout + done.stderr).splitlines()  # as a terminal shows them
            for line in shown:
                if line == "..." or line.startswith(OPTIONAL):
                    continue
                prefix = re.sub(r"\d+", r"\\d+", re.escape(shown_prefix(line)))
                assert any(re.match(prefix, out) for out in lines), (
                    f"$ {command}: the README shows {line!r}; the command printed:\n{done.stdout}"
                )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    monkeypatch.chdir(clone)
    namespace: dict = {}
    exec(compile(python, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    assert namespace["result"]["topics"]["labels"]


def wait_for(port: int, server: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"naba serve exited: {server.stderr.read().decode()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("naba serve did not answer /healthz")
