"""Progress reports for the command line: a tqdm bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
from typing import Any, TextIO

__all__ = ["ProgressDisplay", "progress_line"]


def _number(value: float) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def progress_line(done: float, total: float | None, message: str | None) -> str:
    """A progress report as one line: ``progress 3/10: step 3 of 10``."""
    line = f"progress {_number(done)}" + ("" if total is None else f"/{_number(total)}")
    return line if not message else f"{line}: {message}"


class ProgressDisplay:
    """Progress reports on stderr: a tqdm bar on a terminal, else :func:`progress_line` lines.

    Args:
        label: what the bar is for (the method's name).
        stream: where reports go; stderr when not given.
    """

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self._terminal = self.stream.isatty()
        self._bar: Any = None

    def __call__(self, done: float, total: float | None, message: str | None) -> None:
        if not self._terminal:
            print(progress_line(done, total, message), file=self.stream, flush=True)
            return
        if self._bar is None:
            from tqdm import tqdm  # only on a terminal: a plain run need not import it

            # No rate: a report's unit is the tool's own, so "it/s" would mean nothing.
            known = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
            unknown = "{desc}: {n_fmt} [{elapsed}{postfix}]"
            self._bar = tqdm(
                total=total,
                desc=self.label,
                file=self.stream,
                dynamic_ncols=True,
                bar_format=unknown if total is None else known,
            )
        bar = self._bar
        if total != bar.total:
            bar.total = total
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.update(done - bar.n)
        bar.refresh()

    def print(self, line: str) -> None:
        """Print a line of output on stdout without tearing the bar."""
        if self._bar is None:
            print(line, flush=True)
        else:
            self._bar.write(line, file=sys.stdout)
            sys.stdout.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
