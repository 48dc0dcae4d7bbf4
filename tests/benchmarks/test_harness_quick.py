"""The benchmark harness runs end to end in --quick mode; no figure here is judged by its size."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("picows", reason="the load generator needs picows (pip install -e '.[bench]')")
pytest.importorskip("psutil", reason="the harness reads server memory with psutil (pip install -e '.[bench]')")

from benchmarks import cli

# The figure each scenario is about; the test asks only that it was measured.
HEADLINE = {
    "throughput": "calls_per_s",
    "latency": "p99_us",
    "batch": "ms",
    "scale": "total_s",
    "deflate": "calls_per_s",
}
# The client scenarios, against our server: the figure each is about.
CLIENT_HEADLINE = {
    "client-gather": "calls_per_s",
    "client-window": "calls_per_s",
    "client-latency": "p50_us",
    "client-batch": "ms",
}


def test_a_quick_run_against_our_server_and_the_echo_peer_records_every_figure_and_stops_its_servers(
    tmp_path: Path,
) -> None:
    """A --quick run against ours and echo gives a figure per scenario and server (and client), leaving no process."""
    scenarios = ",".join([*HEADLINE, *CLIENT_HEADLINE])
    status = cli.main(
        ["--quick", "--servers", "ours,echo", "--scenarios", scenarios, "--out", str(tmp_path), "--no-chart"]
    )

    assert status == 0
    [path] = tmp_path.glob("bench-quick-*.json")
    doc = json.loads(path.read_text())
    assert set(doc["scenarios"]) == set(HEADLINE) | set(CLIENT_HEADLINE)
    for key, metric in HEADLINE.items():
        section = doc["scenarios"][key]
        for name in ("ours", "echo"):
            rounds = section["rounds"][name]
            assert rounds and not [r for r in rounds if "failed" in r], (key, name, rounds)
            assert section["median"][name][metric] > 0, (key, name)
            # Every answer was checked; a wrong one would make the figures meaningless.
            assert section["median"][name]["errors_total"] == 0, (key, name)
    for key, metric in CLIENT_HEADLINE.items():
        section = doc["scenarios"][key]
        assert {"loadgen", "ours"} <= set(section["servers"]), key
        for name in section["servers"]:
            rounds = section["rounds"][name]
            assert rounds and not [r for r in rounds if "failed" in r], (key, name, rounds)
            assert section["median"][name][metric] > 0, (key, name)
            assert section["median"][name]["errors_total"] == 0, (key, name)
    goals = {bar["scenario"]: bar for bar in doc["bars"] if bar["scenario"] in CLIENT_HEADLINE}
    assert set(goals) == set(CLIENT_HEADLINE)
    assert all(bar["value"] is not None for bar in goals.values())
    started = [p["pid"] for section in doc["scenarios"].values() for p in section["processes"]]
    assert len(started) == 2 * len(HEADLINE) + len(CLIENT_HEADLINE)
    for pid in started:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # Drawn again from the raw figures: the servers' chart and the clients' beside it.
    pytest.importorskip("matplotlib", reason="the charts need matplotlib (pip install -e '.[bench]')")
    assert cli.main(["--report", str(path)]) == 0
    assert path.with_suffix(".png").stat().st_size > 0
    assert path.with_name(f"{path.stem}-clients.png").stat().st_size > 0


def test_a_quick_run_of_the_operations_scenarios_compares_workers_and_metrics(tmp_path: Path) -> None:
    """--quick connections and metrics: 1 worker against 2, metrics on against off; every call answered."""
    status = cli.main(
        [
            "--quick",
            "--servers",
            "ours,ours-2w,ours-nometrics",
            "--scenarios",
            "connections,metrics",
            "--out",
            str(tmp_path),
            "--no-chart",
        ]
    )

    assert status == 0
    [path] = tmp_path.glob("bench-quick-*.json")
    doc = json.loads(path.read_text())
    for key, servers in (("connections", ("ours", "ours-2w")), ("metrics", ("ours", "ours-nometrics"))):
        section = doc["scenarios"][key]
        for name in servers:
            assert section["median"][name]["calls_per_s"] > 0, (key, name)
            assert section["median"][name]["errors_total"] == 0, (key, name)
    assert doc["scenarios"]["connections"]["median"]["ours-2w"]["calls_per_server_cpu_s"] > 0
    assert doc["scenarios"]["connections"]["ratios"]["calls_per_s"]["ours"]["ours-2w"] > 0
    started = [p["pid"] for section in doc["scenarios"].values() for p in section["processes"]]
    for pid in started:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
