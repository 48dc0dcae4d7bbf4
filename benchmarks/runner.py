"""The run: each scenario's servers started side by side, measured interleaved, then stopped.

For each scenario every server it compares is started fresh, as its own process,
warmed up, and then measured in rounds, interleaved (A B C A B C ...), so that a
slow patch of the machine falls on every server alike. The servers are stopped
before the next scenario starts, whatever happens. Every measurement is bounded
in count and in time, so a run stops by itself.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from picows import WSError

from .clients import CLIENT_SCENARIOS, CLIENTS, ClientScenario, Load, available, measure
from .errors import BenchError
from .scenarios import SCENARIOS, Scenario, Sizes, describe
from .servers import CATALOG, availability, ensure_node_peer, node_versions, running

__all__ = ["Plan", "machine", "run"]

_PACKAGES = (
    "websockets",
    "uvloop",
    "jsonrpc-websocket",
    "picows",
    "orjson",
    "jsonrpcserver",
    "fastapi",
    "starlette",
    "uvicorn",
    "psutil",
    "matplotlib",
)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to run: the sizes, the servers (names in :data:`CATALOG`) and the scenarios (keys)."""

    sizes: Sizes
    servers: tuple[str, ...]
    scenarios: tuple[str, ...]
    quick: bool
    log_dir: Path | None = None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _git(*args: str) -> str:
    # Read-only: which code was measured, and whether it had changes not yet committed.
    try:
        done = subprocess.run(
            ["git", *args], cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def code_version() -> dict[str, Any]:
    """The commit measured, and whether rpc_server/ or rpc_client/ differed from it."""
    return {
        "commit": _git("rev-parse", "--short", "HEAD"),
        "rpc_server_modified": bool(_git("status", "--porcelain", "--", "rpc_server")),
        "rpc_client_modified": bool(_git("status", "--porcelain", "--", "rpc_client")),
    }


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = next(
        (line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines() if "model name" in line), ""
    )
    memory = next(
        (line.split(":", 1)[1].strip() for line in _read("/proc/meminfo").splitlines() if "MemTotal" in line), ""
    )
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": model,
        "memory": memory,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "somaxconn": _read("/proc/sys/net/core/somaxconn").strip(),
        "load_average_at_start": list(os.getloadavg()),
        "versions": versions,
    }


async def _measure(scenario: Scenario, plan: Plan, progress: Callable[[str], None]) -> dict[str, Any]:
    sizes = plan.sizes
    names = [n for n in scenario.servers if n in plan.servers]
    specs = [CATALOG[n] for n in names]
    rounds = scenario.rounds(sizes)
    raw: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    processes: list[dict[str, Any]] = []
    warmup_failures: dict[str, str] = {}
    title = f"{scenario.number} {scenario.title(sizes)}"
    progress(f"{title}: starting {', '.join(names)}")

    def start_failed(name: str, why: str) -> None:
        raw[name].append({"failed": why})
        progress(f"{title}: {name} did not start")

    with running(specs, scenario.compression, plan.log_dir, start_failed) as servers:
        for server in servers:
            processes.append({"server": server.spec.name, "pid": server.pid, "url": server.url})
        for server in servers:
            progress(f"{title}: warming up {server.spec.name}")
            try:
                await scenario.warmup(server, sizes)
            except (BenchError, OSError, WSError) as exc:
                # Worth a try at the measurement all the same; the note says why it may fail.
                warmup_failures[server.spec.name] = f"{type(exc).__name__}: {exc}"
        for r in range(rounds):
            for server in servers:
                name = server.spec.name
                progress(f"{title}: round {r + 1}/{rounds} · {name}")
                if not server.alive():
                    raw[name].append({"failed": f"the server process exited: {server.log_tail()}"})
                    continue
                try:
                    raw[name].append(await scenario.measure(server, sizes))
                except (BenchError, OSError, WSError) as exc:
                    raw[name].append({"failed": f"{type(exc).__name__}: {exc}"})
        for server in servers:
            server.stop()
    for record, server in zip(processes, servers, strict=True):
        record["returncode"] = server.returncode
    return {
        "title": title,
        "servers": names,
        "compression": scenario.compression,
        "rounds": raw,
        "processes": processes,
        "warmup_failures": warmup_failures,
    }


def client_load(sizes: Sizes) -> Load:
    """The client scenarios' sizes, taken from the server scenarios' own."""
    return Load(
        calls=sizes.throughput_calls,
        window=sizes.window,
        sequential=sizes.latency_calls,
        batch_size=sizes.batch_size,
        batch_repeats=sizes.batch_repeats,
        timeout=sizes.timeout,
    )


async def _measure_clients(scenario: ClientScenario, plan: Plan, progress: Callable[[str], None]) -> dict[str, Any]:
    """The clients, interleaved round by round, against one server of ours started for the scenario."""
    load = client_load(plan.sizes)
    mode = scenario.mode
    skipped = {name: why for name in CLIENTS if (why := available(name)) is not None}
    specs = [spec for name, spec in CLIENTS.items() if mode in spec.modes and name not in skipped]
    raw: dict[str, list[dict[str, Any]]] = {spec.name: [] for spec in specs}
    warmup_failures: dict[str, str] = {}
    processes: list[dict[str, Any]] = []
    title = f"{scenario.number} {scenario.title(load)}"
    progress(f"{title}: starting ours")
    warm = dataclasses.replace(load, calls=min(load.calls, 2000), sequential=min(load.sequential, 200), batch_repeats=1)

    def start_failed(name: str, why: str) -> None:
        for rounds in raw.values():
            rounds.append({"failed": f"the server did not start: {why}"})

    with running([CATALOG["ours"]], False, plan.log_dir, start_failed) as servers:
        for server in servers:
            processes.append({"server": server.spec.name, "pid": server.pid, "url": server.url})
            for spec in specs:
                progress(f"{title}: warming up {spec.name}")
                try:
                    await measure(spec, server.url, mode, warm)
                except Exception as exc:  # a client's own failure is a figure of the run, not its end
                    warmup_failures[spec.name] = f"{type(exc).__name__}: {exc}"
            for r in range(plan.sizes.rounds):
                for spec in specs:
                    progress(f"{title}: round {r + 1}/{plan.sizes.rounds} · {spec.name}")
                    if not server.alive():
                        raw[spec.name].append({"failed": f"the server process exited: {server.log_tail()}"})
                        continue
                    try:
                        raw[spec.name].append(await measure(spec, server.url, mode, load))
                    except Exception as exc:  # as above: recorded, and the run goes on
                        raw[spec.name].append({"failed": f"{type(exc).__name__}: {exc}"})
            server.stop()
    for record, server in zip(processes, servers, strict=True):
        record["returncode"] = server.returncode
    return {
        "title": title,
        "kind": "client",
        "servers": [spec.name for spec in specs],
        "labels": {spec.name: spec.label for spec in specs},
        "skipped": skipped,
        "compression": False,
        "rounds": raw,
        "processes": processes,
        "warmup_failures": warmup_failures,
    }


async def run(plan: Plan, progress: Callable[[str], None], note: Callable[[str], None]) -> dict[str, Any]:
    """Run the plan; give the raw figures with what they were measured on.

    Servers that cannot run here (a missing package, no Node) are left out with a note.
    """
    skipped: dict[str, str] = {}
    for name in plan.servers:
        reason = availability(name)
        if reason is None and name == "node":
            reason = ensure_node_peer(note)
        if reason is not None:
            skipped[name] = reason
            note(f"{name}: {reason}")
    runnable = tuple(n for n in plan.servers if n not in skipped)
    plan = Plan(plan.sizes, runnable, plan.scenarios, plan.quick, plan.log_dir)
    doc: dict[str, Any] = {
        "meta": {
            **machine(),
            "mode": "quick" if plan.quick else "full",
            "code": code_version(),
            "sizes": describe(plan.sizes),
            "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
            "servers": {n: CATALOG[n].label for n in runnable},
            "skipped": skipped,
        },
        "scenarios": {},
    }
    if "node" in runnable:
        doc["meta"]["versions"].update(node_versions())
    for key in plan.scenarios:
        if key in CLIENT_SCENARIOS:
            if "ours" in runnable:
                doc["scenarios"][key] = await _measure_clients(CLIENT_SCENARIOS[key], plan, progress)
            continue
        doc["scenarios"][key] = await _measure(SCENARIOS[key], plan, progress)
    doc["meta"]["load_average_at_end"] = list(os.getloadavg())
    return doc
