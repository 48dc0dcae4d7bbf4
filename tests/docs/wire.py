"""``wire`` blocks: a transcript of one WebSocket connection, frame by frame."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from sybil import Example
from websockets.sync.client import connect as ws_connect

from .page import claim_unshown_output, indent, mismatch, page_of

__all__ = ["Frame", "evaluate_wire", "parse_wire"]

FRAME_TIMEOUT_S = 15.0
SKIPPED_FRAMES_LIMIT = 200


@dataclass
class Frame:
    direction: str  # "send", "expect" or "pass" (let frames pass until the next expected one)
    text: str
    line: int


def parse_wire(source: str) -> list[Frame]:
    """``→ frame`` sent, ``← frame`` expected, ``…`` frames let pass; indented lines continue a frame.

    Raises:
        ValueError: a line that is none of these.
    """
    frames: list[Frame] = []
    for number, line in enumerate(source.splitlines()):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("…"):
            frames.append(Frame("pass", stripped, number))
        elif line.startswith("→ "):
            frames.append(Frame("send", line[2:], number))
        elif line.startswith("← "):
            frames.append(Frame("expect", line[2:].strip(), number))
        elif line[0].isspace() and frames and frames[-1].direction != "pass":
            last = frames[-1]
            last.text += ("\n" + line) if last.direction == "send" else stripped
        else:
            raise ValueError(f"line {number + 1} of the block is not '→ frame', '← frame' or '…': {line!r}")
    if frames and frames[-1].direction == "pass":
        raise ValueError("a '…' line must come before the '←' line it waits for")
    return frames


def evaluate_wire(example: Example) -> str | None:
    problem = claim_unshown_output(example)
    if problem:
        return problem
    page = page_of(example)
    frames = parse_wire(str(example.parsed))
    probe_id = f"docs-probe-{os.urandom(4).hex()}"
    with ws_connect(page.url(), open_timeout=FRAME_TIMEOUT_S, close_timeout=FRAME_TIMEOUT_S) as ws:
        letting_pass = False
        for frame in frames:
            where = f"line {example.line + 1 + frame.line}"
            if frame.direction == "send":
                ws.send(page.to_actual(frame.text))
            elif frame.direction == "pass":
                letting_pass = True
            else:
                for _ in range(SKIPPED_FRAMES_LIMIT):
                    try:
                        got = ws.recv(timeout=FRAME_TIMEOUT_S)
                    except TimeoutError:
                        return f"{where}: no frame came within {FRAME_TIMEOUT_S:g} s; expected\n{indent(frame.text)}"
                    problem = mismatch(frame.text, page.to_canonical(str(got)))
                    if problem is None or not letting_pass:
                        break
                if problem:
                    return f"{where}: {problem}"
                letting_pass = False
        # Nothing may be left over: the next frame must answer a request sent now.
        ws.send(json.dumps({"jsonrpc": "2.0", "method": "docs.probe", "id": probe_id}))
        try:
            got = ws.recv(timeout=FRAME_TIMEOUT_S)
        except TimeoutError:
            return "the connection did not answer a last request: is it still open?"
        if probe_id not in str(got):
            return f"a frame came that the transcript does not show:\n{indent(str(got))}"
    return None
