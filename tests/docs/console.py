"""``console`` blocks: ``$ command`` lines run in one bash, their output compared with the block's."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import dataclass

from sybil import Example

from .page import COMMAND_TIMEOUT_S, Page, claim_unshown_output, mismatch, page_of

__all__ = ["Command", "evaluate_console", "parse_console"]

_SERVER_COMMAND = re.compile(
    r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*"  # RPC_MAX_BATCH=2 ...
    r"(?:\./scripts/serve|(?:\.venv/bin/)?python3? -m rpc_server|(?:\.venv/bin/)?rpc-server)(?:\s|$)"
)


@dataclass
class Command:
    text: str
    expected: str
    line: int  # within the block, from 0

    @property
    def starts_server(self) -> bool:
        return bool(_SERVER_COMMAND.match(self.text))


def parse_console(source: str) -> list[Command]:
    """``$ command`` lines and the output under each; a trailing ``\\`` continues a command.

    Raises:
        ValueError: text before the first ``$ `` line.
    """
    commands: list[Command] = []
    continuing = False
    for number, line in enumerate(source.splitlines()):
        if continuing:
            commands[-1].text += "\n" + line
        elif line.startswith("$ ") or line == "$":
            commands.append(Command(line[2:], "", number))
        elif not commands:
            raise ValueError(f"line {number + 1} of the block is output with no '$ command' before it: {line!r}")
        else:
            commands[-1].expected += line + "\n"
            continue
        continuing = line.endswith("\\")
    return commands


def _run_shell(page: Page, commands: list[Command]) -> list[str]:
    """Run commands in one bash, in order; the output of each (stdout and stderr together)."""
    sentinel = f"--- end of command {os.urandom(8).hex()} ---"
    script = "exec 2>&1\n" + "".join(
        f"{page.to_actual(c.text)}\n__rc=$?; printf '%s\\n' '{sentinel}'; (exit $__rc)\n" for c in commands
    )
    script_path = page.workdir / ".console.sh"
    script_path.write_text(script)
    proc = subprocess.Popen(
        ["bash", "--noprofile", "--norc", str(script_path)],
        cwd=page.workdir,
        env=page.command_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=COMMAND_TIMEOUT_S * len(commands))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        out += f"\n(the commands did not finish within {COMMAND_TIMEOUT_S * len(commands):g} s)\n"
    parts = re.split(rf"\n?{re.escape(sentinel)}\n", out)
    # The text after the last sentinel belongs to no command (or, after a timeout, to the one cut short).
    outputs = parts[: len(commands)]
    return outputs + [""] * (len(commands) - len(outputs))


def evaluate_console(example: Example) -> str | None:
    problem = claim_unshown_output(example)
    if problem:
        return problem
    page = page_of(example)
    commands = parse_console(str(example.parsed))
    group: list[Command] = []

    def run_group() -> str | None:
        if not group:
            return None
        outputs = _run_shell(page, group)
        for command, output in zip(group, outputs, strict=False):
            problem = mismatch(command.expected, page.to_canonical(output))
            if problem:
                return f"$ {command.text}  (line {example.line + 1 + command.line})\n{problem}"
        group.clear()
        return None

    page.url()  # RPC_URL must name a server before the first command
    for command in commands:
        if command.starts_server:
            problem = run_group() or page.start_server(command.text, command.expected)
            if problem:
                return f"$ {command.text}  (line {example.line + 1 + command.line})\n{problem}"
        else:
            group.append(command)
    return run_group()
