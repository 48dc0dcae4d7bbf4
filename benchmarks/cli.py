"""The command line: ``python -m benchmarks`` (full run) and ``python -m benchmarks --quick``.

It raises the open-files limit for itself and the servers it starts, turns SIGTERM
and SIGHUP into the same orderly stop as Ctrl-C, runs the plan, prints the table and
writes the raw figures (JSON) and the chart (PNG) under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.util
import json
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from rpc_server.cli import positive_integer

__all__ = ["build_parser", "main"]

RESULTS = Path(__file__).resolve().parent / "results"
SERVERS = ("ours", "ours-key", "echo", "fastapi", "node", "picows-echo", "ours-2w", "ours-nometrics", "ours-uvloop")
SCENARIO_KEYS = (
    "throughput",
    "latency",
    "batch",
    "scale",
    "deflate",
    "connections",
    "metrics",
    "client-gather",
    "client-window",
    "client-latency",
    "client-batch",
)

EPILOG = """\
servers: ours (this project's server, as shipped), ours-key (the same with an API key
configured, its clients presenting it), echo (bare websockets: the limit),
fastapi (the seed's FastAPI + uvicorn), node (rpc-websockets; needs node and npm, and
is installed into benchmarks/.node/ on first use), picows-echo (the load generator's ceiling),
ours-2w (ours with --workers 2), ours-nometrics (ours with --no-metrics),
ours-uvloop (ours with --loop uvloop; latency and batch).

scenarios: throughput, latency, batch, scale, deflate, connections (1 worker and 2),
metrics (on and off) (see benchmarks/scenarios.py); and, against our server, the
clients: client-gather, client-window, client-latency, client-batch (see benchmarks/clients.py).

examples:
  python -m benchmarks                        the full run (several minutes)
  python -m benchmarks --quick                every scenario, tiny: checks the harness works
  python -m benchmarks --servers ours,echo --scenarios throughput,latency --rounds 9
  python -m benchmarks --servers ours,ours-2w,ours-nometrics --scenarios connections,metrics
  python -m benchmarks --servers ours --scenarios client-gather,client-window,client-latency,client-batch
"""


def _names(allowed: Sequence[str]) -> Any:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        unknown = [n for n in names if n not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}; not {', '.join(unknown) or text!r}")
        return names

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure this project's JSON-RPC WebSocket server against the limit and the peers.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="run each scenario tiny, in seconds (what CI runs)")
    add(
        "--rounds",
        type=positive_integer,
        help="interleaved rounds per scenario, and cycles of the scale scenario "
        "(default 5 rounds and 6 cycles; 2 and 2 with --quick)",
    )
    add("--servers", type=_names(SERVERS), default=SERVERS, help="comma-separated (default: all)")
    add("--scenarios", type=_names(SCENARIO_KEYS), default=SCENARIO_KEYS, help="comma-separated (default: all)")
    add("--out", type=Path, default=RESULTS, help="where the JSON and the PNG go (default %(default)s)")
    add("--no-chart", action="store_true", help="skip the PNG chart")
    add(
        "--report",
        type=Path,
        metavar="JSON",
        help="measure nothing: print the table and draw the chart again from a run's raw figures",
    )
    return parser


class Progress:
    """One progress line on a terminal, rewritten in place; plain lines elsewhere."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()

    def __call__(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:6.1f}s] {text}"
        if self.tty:
            self.stream.write("\r\x1b[K" + line[:160])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    # SIGTERM and SIGHUP unwind like Ctrl-C, so every finally block stops its servers.
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _report_again(path: Path, chart: bool) -> int:
    from . import report

    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"benchmarks: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    report.summarize(doc)
    print(report.render(doc))
    if chart:
        drawn = report.write_charts(doc, path.with_suffix(""))
        print(
            f"\ncharts: {', '.join(map(str, drawn))}"
            if drawn
            else "\ncharts: none (nothing to draw, or matplotlib is not installed)"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (0, or 1 when a measurement could not be made)."""
    args = build_parser().parse_args(argv)
    missing = [m for m in ("picows", "psutil", "orjson") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"benchmarks: {', '.join(missing)} not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    # Imported here, after the check, so that a missing package gives the line above.
    from . import report, runner, scenarios, servers
    from .errors import BenchError

    if args.report is not None:
        return _report_again(args.report, chart=not args.no_chart)
    sizes = scenarios.QUICK if args.quick else scenarios.FULL
    if args.rounds:
        sizes = scenarios.Sizes(**{**scenarios.describe(sizes), "rounds": args.rounds, "scale_cycles": args.rounds})
    plan = runner.Plan(sizes, args.servers, args.scenarios, args.quick)
    progress = Progress(sys.stderr)
    try:
        if "scale" in plan.scenarios:
            # The harness holds one socket per connection and so does the server; plus room for the rest.
            soft, hard = servers.raise_open_files_limit(2 * sizes.scale_connections + 1024)
            progress.note(f"open files limit: soft {soft}, hard {hard}")
        with _stop_on_signals():
            doc = asyncio.run(runner.run(plan, progress, progress.note))
    except KeyboardInterrupt:
        progress.note("benchmarks: interrupted; every server process was stopped")
        return 130
    except BenchError as exc:
        progress.note(f"benchmarks: {exc}")
        return 1
    finally:
        servers.stop_all()
    progress.clear()
    report.summarize(doc)
    print(report.render(doc))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    stem = f"bench-{doc['meta']['mode']}-{stamp}"
    json_path = report.write_json(doc, args.out / f"{stem}.json")
    print(f"\nraw figures: {json_path}")
    if not args.no_chart:
        charts = report.write_charts(doc, args.out / stem)
        print(
            f"charts: {', '.join(map(str, charts))}"
            if charts
            else "charts: none (nothing to draw, or matplotlib is not installed)"
        )
    failed = [
        f"{key}/{name}"
        for key, section in doc["scenarios"].items()
        for name, rounds in section["rounds"].items()
        if not rounds or any("failed" in r for r in rounds)
    ]
    if failed:
        print(f"benchmarks: some measurements failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
