"""From raw figures to the report: medians, ratios, the goals (bars), the table and the chart.

Everything here reads the document that :func:`benchmarks.runner.run` gives and adds
to it; nothing measures. Ratios are always taken between medians of the same run.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .clients import CLIENT_SCENARIOS
from .scenarios import SCENARIOS, Metric

__all__ = ["BARS", "Bar", "render", "summarize", "write_chart", "write_json"]

# The figures of the client scenarios that ratios are taken of.
_CLIENT_METRICS = {
    "gather": (Metric("calls_per_s", "calls/s", True),),
    "window": (Metric("calls_per_s", "calls/s", True),),
    "sequential": (Metric("p50_us", "p50 µs", False), Metric("p99_us", "p99 µs", False)),
    "batch": (Metric("ms", "ms", False),),
}


def _metrics(key: str) -> tuple[Metric, ...]:
    if key in CLIENT_SCENARIOS:
        return _CLIENT_METRICS[CLIENT_SCENARIOS[key].mode]
    return SCENARIOS[key].metrics


PEERS = ("ours-key", "ours-uvloop", "echo", "fastapi", "node", "picows-echo")


def _medians(rounds: list[dict[str, Any]]) -> dict[str, float]:
    good = [r for r in rounds if "failed" not in r]
    keys = {k for r in good for k, v in r.items() if isinstance(v, int | float)}
    return {k: statistics.median(r[k] for r in good if k in r) for k in sorted(keys)}


def _pair(ours: list[dict[str, Any]], theirs: list[dict[str, Any]], metric: str) -> dict[str, float] | None:
    # One figure against another within each round, then the spread: a round that fell on a
    # busy patch of the machine moves both figures of its pair, less so their ratio.
    ratios = [
        a[metric] / b[metric]
        for a, b in zip(ours, theirs, strict=False)
        if "failed" not in a and "failed" not in b and a.get(metric) and b.get(metric)
    ]
    if not ratios:
        return None
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def _paired(rounds: dict[str, list[dict[str, Any]]], metric: str) -> dict[str, dict[str, float]]:
    ours = rounds.get("ours", [])
    paired: dict[str, dict[str, float]] = {}
    for name, theirs in rounds.items():
        if name != "ours" and (pair := _pair(ours, theirs, metric)) is not None:
            paired[name] = pair
    return paired


def summarize(doc: dict[str, Any]) -> dict[str, Any]:
    """Add medians, ratios between servers, the scale drift, the deflate cost and the bars to ``doc``."""
    scenarios = doc["scenarios"]
    for key, section in scenarios.items():
        medians = {name: _medians(rounds) for name, rounds in section["rounds"].items()}
        for name, rounds in section["rounds"].items():
            good = [r for r in rounds if "failed" not in r]
            medians[name]["rounds_ok"] = len(good)
            medians[name]["rounds_failed"] = len(rounds) - len(good)
            if "errors" in medians[name]:
                medians[name]["errors_total"] = sum(r.get("errors", 0) for r in good)
            if key == "scale" and good:
                _scale_memory(medians[name], good)
        section["median"] = medians
        section["ratios"] = {}
        for metric in _metrics(key):
            table: dict[str, dict[str, float]] = {}
            for a, ma in medians.items():
                for b, mb in medians.items():
                    if a != b and ma.get(metric.key) and mb.get(metric.key):
                        table.setdefault(a, {})[b] = ma[metric.key] / mb[metric.key]
            section["ratios"][metric.key] = table
        section["paired"] = {metric.key: _paired(section["rounds"], metric.key) for metric in _metrics(key)}
    if "deflate" in scenarios and "throughput" in scenarios:
        plain = scenarios["throughput"]["median"]
        for name, figures in scenarios["deflate"]["median"].items():
            if plain.get(name, {}).get("calls_per_s") and figures.get("calls_per_s"):
                figures["kept_of_plain"] = figures["calls_per_s"] / plain[name]["calls_per_s"]
    doc["bars"] = [bar.check(doc) for bar in BARS]
    return doc


def _scale_memory(medians: dict[str, float], cycles: list[dict[str, Any]]) -> None:
    # Only the first cycle starts from a server that never held the connections: later
    # cycles reuse the memory it took (Python's allocator keeps it), so their
    # open-minus-idle is near zero. Memory figures are the first cycle's, and the
    # last cycle against the first shows whether memory stays flat.
    first, last = cycles[0], cycles[-1]
    for key in ("rss_idle_mb", "rss_open_mb", "rss_closed_mb", "kb_per_connection"):
        medians[key] = first[key]
    medians["rss_open_last_mb"] = last["rss_open_mb"]
    medians["rss_closed_last_mb"] = last["rss_closed_mb"]
    medians["rss_open_last_vs_first"] = last["rss_open_mb"] / first["rss_open_mb"]
    medians["rss_closed_last_vs_first"] = last["rss_closed_mb"] / first["rss_closed_mb"]
    medians["cycles"] = len(cycles)


# -- the goals: docs/performance.md lists them ------------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    """One goal: a figure of ours (``subject``), alone or against a peer's, and its limit."""

    text: str
    scenario: str
    metric: str
    peer: str | None
    limit: float
    at_most: bool
    subject: str = "ours"

    def value(self, doc: dict[str, Any]) -> float | None:
        section = doc["scenarios"].get(self.scenario)
        if section is None:
            return None
        medians = section["median"]
        ours = medians.get(self.subject, {}).get(self.metric)
        if ours is None:
            return None
        if self.peer is None:
            return float(ours)
        theirs = medians.get(self.peer, {}).get(self.metric)
        if not theirs:
            return None
        return float(ours) / float(theirs)

    def check(self, doc: dict[str, Any]) -> dict[str, Any]:
        value = self.value(doc)
        passed = None if value is None else (value <= self.limit if self.at_most else value >= self.limit)
        paired = None
        if self.peer is not None and self.scenario in doc["scenarios"]:
            rounds = doc["scenarios"][self.scenario]["rounds"]
            paired = _pair(rounds.get(self.subject, []), rounds.get(self.peer, []), self.metric)
        return {
            "paired": paired,
            "bar": self.text,
            "scenario": self.scenario,
            "metric": self.metric,
            "peer": self.peer,
            "subject": self.subject,
            "value": value,
            "limit": self.limit,
            "at_most": self.at_most,
            "passed": passed,
        }


BARS = (
    Bar("throughput ≥ 1.1× FastAPI", "throughput", "calls_per_s", "fastapi", 1.1, False),
    Bar("throughput ≥ 0.85× echo", "throughput", "calls_per_s", "echo", 0.85, False),
    # Issue 10: with an API key, at least 0.95x the throughput without; as ours ÷ ours-key, at most 1/0.95.
    Bar(
        "throughput with an API key ≥ 0.95× without (ours ÷ ours-key ≤ 1.053)",
        "throughput",
        "calls_per_s",
        "ours-key",
        1 / 0.95,
        True,
    ),
    Bar("latency p50 ≤ 1.3× echo p50", "latency", "p50_us", "echo", 1.3, True),
    Bar("latency p99 ≤ 2× echo p99", "latency", "p99_us", "echo", 2.0, True),
    # Issue 13: the batch and p50 against Node's, on the default loop; on uvloop beside them (no goal of its own).
    Bar("batch of 1,000 ≤ 1.0× Node's time", "batch", "ms", "node", 1.0, True),
    Bar("latency p50 ≤ 1.0× Node's", "latency", "p50_us", "node", 1.0, True),
    Bar("on uvloop: batch of 1,000 ≤ 1.0× Node's time", "batch", "ms", "node", 1.0, True, subject="ours-uvloop"),
    Bar("on uvloop: latency p50 ≤ 1.0× Node's", "latency", "p50_us", "node", 1.0, True, subject="ours-uvloop"),
    Bar("scale: 0 errors (all cycles)", "scale", "errors_total", None, 0.0, True),
    Bar("scale: total time ≤ FastAPI's", "scale", "total_s", "fastapi", 1.0, True),
    Bar("scale: ≤ 20 KB RSS per open connection", "scale", "kb_per_connection", None, 20.0, True),
    Bar("scale: RSS all open, last cycle ≤ 1.10× first", "scale", "rss_open_last_vs_first", None, 1.10, True),
    Bar("scale: RSS after close, last cycle ≤ 1.10× first", "scale", "rss_closed_last_vs_first", None, 1.10, True),
    # The client's goals (issue 13), against the load generator on the same server in the same run.
    Bar("client gather ≥ 0.6× the load generator", "client-gather", "calls_per_s", "loadgen", 0.6, False),
    Bar("client, 100 in flight ≥ 0.6× the load generator", "client-window", "calls_per_s", "loadgen", 0.6, False),
    Bar("client sequential p50 ≤ 1.2× the load generator's", "client-latency", "p50_us", "loadgen", 1.2, True),
    Bar("client batch of 1,000 ≤ 1.3× the load generator's", "client-batch", "ms", "loadgen", 1.3, True),
    Bar(
        "connect_sync sequential p50 ≤ 1.3× the async client's",
        "client-latency",
        "p50_us",
        "ours",
        1.3,
        True,
        subject="ours-sync",
    ),
)


# -- the table ------------------------------------------------------------------------


def _num(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


Column = tuple[str, Callable[[str, dict[str, Any], dict[str, Any]], str]]


def _ours_over(metric: str) -> Column:
    def cell(name: str, m: dict[str, Any], section: dict[str, Any]) -> str:
        if name == "ours":
            return ""
        return _ratio(section["ratios"].get(metric, {}).get("ours", {}).get(name))

    return (f"ours÷ {metric}", cell)


def _field(header: str, key: str, digits: int = 0) -> Column:
    return (header, lambda name, m, section: _num(m.get(key), digits))


def _over_loadgen(metric: str) -> Column:
    def cell(name: str, m: dict[str, Any], section: dict[str, Any]) -> str:
        if name == "loadgen":
            return ""
        return _ratio(section["ratios"].get(metric, {}).get(name, {}).get("loadgen"))

    return (f"÷ loadgen {metric}", cell)


_COLUMNS: dict[str, list[Column]] = {
    "throughput": [
        _field("calls/s", "calls_per_s"),
        _field("errors", "errors_total"),
        _field("loadgen µs/call", "client_cpu_us_per_call", 1),
        _field("server µs/call", "server_cpu_us_per_call", 1),
        _ours_over("calls_per_s"),
    ],
    "latency": [
        _field("p50 µs", "p50_us"),
        _field("p90 µs", "p90_us"),
        _field("p99 µs", "p99_us"),
        _field("max µs", "max_us"),
        _field("errors", "errors_total"),
        _ours_over("p50_us"),
        _ours_over("p99_us"),
    ],
    "batch": [
        _field("ms", "ms", 2),
        _field("min ms", "ms_min", 2),
        _field("errors", "errors_total"),
        ("how", lambda name, m, section: "pipelined" if m.get("pipelined") else "batch"),
        _ours_over("ms"),
    ],
    "scale": [
        _field("total s", "total_s", 2),
        _field("open+calls s", "open_and_calls_s", 2),
        _field("close s", "close_s", 2),
        _field("errors", "errors_total"),
        _field("RSS idle MB", "rss_idle_mb", 1),
        _field("all open MB", "rss_open_mb", 1),
        _field("closed MB", "rss_closed_mb", 1),
        _field("KB/conn", "kb_per_connection", 1),
        _field("last open MB", "rss_open_last_mb", 1),
        _field("last closed MB", "rss_closed_last_mb", 1),
        ("open last÷1st", lambda name, m, s: _ratio(m.get("rss_open_last_vs_first"))),
        ("closed last÷1st", lambda name, m, s: _ratio(m.get("rss_closed_last_vs_first"))),
        _ours_over("total_s"),
    ],
    "deflate": [
        _field("calls/s", "calls_per_s"),
        _field("errors", "errors_total"),
        ("negotiated", lambda name, m, s: "yes" if m.get("negotiated") else "NO"),
        ("kept of plain", lambda name, m, s: "–" if "kept_of_plain" not in m else f"{m['kept_of_plain']:.0%}"),
        _field("loadgen µs/call", "client_cpu_us_per_call", 1),
        _field("server µs/call", "server_cpu_us_per_call", 1),
        _ours_over("calls_per_s"),
    ],
    "connections": [
        _field("calls/s", "calls_per_s"),
        _field("errors", "errors_total"),
        _field("server CPU s", "server_cpu_s", 2),
        _field("server cores busy", "server_cores", 2),
        _field("calls/server-CPU-s", "calls_per_server_cpu_s"),
        _ours_over("calls_per_s"),
        _ours_over("calls_per_server_cpu_s"),
    ],
    "metrics": [
        _field("calls/s", "calls_per_s"),
        _field("errors", "errors_total"),
        _field("server µs/call", "server_cpu_us_per_call", 1),
        _ours_over("calls_per_s"),
    ],
}


_CLIENT_COLUMNS: dict[str, list[Column]] = {
    "gather": [
        _field("calls/s", "calls_per_s"),
        _field("errors", "errors_total"),
        _field("client µs/call", "client_cpu_us_per_call", 1),
        _over_loadgen("calls_per_s"),
    ],
    "sequential": [
        _field("p50 µs", "p50_us"),
        _field("p90 µs", "p90_us"),
        _field("p99 µs", "p99_us"),
        _field("errors", "errors_total"),
        _field("client µs/call", "client_cpu_us_per_call", 1),
        _over_loadgen("p50_us"),
    ],
    "batch": [
        _field("ms", "ms", 2),
        _field("min ms", "ms_min", 2),
        _field("errors", "errors_total"),
        _field("client µs/call", "client_cpu_us_per_call", 1),
        _over_loadgen("ms"),
    ],
}
_CLIENT_COLUMNS["window"] = _CLIENT_COLUMNS["gather"]


def _columns(key: str) -> list[Column]:
    if key in CLIENT_SCENARIOS:
        return _CLIENT_COLUMNS[CLIENT_SCENARIOS[key].mode]
    return _COLUMNS[key]


def _grid(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def render(doc: dict[str, Any]) -> str:
    """The report as text: one table per scenario, then the bars."""
    meta = doc["meta"]
    lines = [
        f"JSON-RPC over WebSocket benchmark · {meta['date']} · {meta['cores']} cores ({meta['cpu']}) · "
        f"Python {meta['python']} · {meta['mode']} mode, medians of the rounds",
        f"code: commit {meta.get('code', {}).get('commit') or '?'}"
        f"{' with uncommitted changes to rpc_server/' if meta.get('code', {}).get('rpc_server_modified') else ''}"
        f"{' with uncommitted changes to rpc_client/' if meta.get('code', {}).get('rpc_client_modified') else ''} · "
        f"load average at start {meta['load_average_at_start'][0]:.2f}, "
        f"at end {meta.get('load_average_at_end', [math.nan])[0]:.2f}",
    ]
    for name, reason in meta.get("skipped", {}).items():
        lines.append(f"note: {name} {reason}")
    for key, section in doc["scenarios"].items():
        columns = _columns(key)
        rounds = {n: len(r) for n, r in section["rounds"].items()}
        lines += ["", f"{section['title']} · {max(rounds.values(), default=0)} rounds"]
        client = section.get("kind") == "client"
        rows = [["client (against ours)" if client else "server", *(header for header, _ in columns)]]
        for name in section["servers"]:
            medians = section["median"].get(name, {})
            label = section["labels"].get(name, name) if client else meta["servers"].get(name, name)
            rows.append([label, *(cell(name, medians, section) for _, cell in columns)])
        lines += _grid(rows)
        for name, rounds_ in section["rounds"].items():
            for figures in rounds_:
                if "failed" in figures:
                    lines.append(f"  ! {name}: {figures['failed']}")
        for name, why in section.get("warmup_failures", {}).items():
            lines.append(f"  ! {name} warm-up: {why}")
        for name, why in section.get("skipped", {}).items():
            lines.append(f"  note: {name} {why}")
    if doc.get("bars"):
        lines += ["", "the goals (ours; ratios of the medians of this run, then of the rounds paired)"]
        for bar in doc["bars"]:
            if bar["scenario"] not in doc["scenarios"]:
                continue
            mark = {True: "PASS", False: "MISS", None: "n/a "}[bar["passed"]]
            value = "–" if bar["value"] is None else f"{bar['value']:.3g}"
            spread = ""
            if bar.get("paired"):
                p = bar["paired"]
                spread = f"  (round by round: median {p['median']:.3g}, {p['min']:.3g} to {p['max']:.3g})"
            lines.append(f"  [{mark}] {bar['bar']}: {value}{spread}")
    return "\n".join(lines)


def write_json(doc: dict[str, Any], path: Path) -> Path:
    """Write the document, raw figures and all, as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return path


# -- the chart -------------------------------------------------------------------------

_CHART_METRICS = (
    ("throughput", "calls_per_s", "throughput\n(↑ better)"),
    ("latency", "p50_us", "latency p50\n(↓ better)"),
    ("latency", "p99_us", "latency p99\n(↓ better)"),
    ("batch", "ms", "batch 1,000\n(↓ better)"),
    ("scale", "total_s", "scale total\n(↓ better)"),
    ("deflate", "calls_per_s", "deflate\nthroughput (↑)"),
)


_CLIENT_CHART_METRICS = (
    ("client-gather", "calls_per_s", "gather of 20,000\ncalls/s (↑ better)"),
    ("client-window", "calls_per_s", "100 in flight\ncalls/s (↑ better)"),
    ("client-latency", "p50_us", "sequential p50\n(↓ better)"),
    ("client-batch", "ms", "batch of 1,000\n(↓ better)"),
)

# A series of bars: its legend, and the ratio it draws, subject ÷ reference.
_Series = tuple[str, str, str]


def write_charts(doc: dict[str, Any], stem: Path) -> list[Path]:
    """Draw the server's chart (``STEM.png``) and the clients' (``STEM-clients.png``) for what the run measured.

    Returns the files written: none without matplotlib, or when the run measured neither.
    """
    charts = [
        write_chart(doc, stem.with_suffix(".png")),
        write_client_chart(doc, stem.with_name(f"{stem.name}-clients.png")),
    ]
    return [path for path in charts if path is not None]


def write_chart(doc: dict[str, Any], path: Path) -> Path | None:
    """Draw ours ÷ each peer for the headline figures, with the goals; None without matplotlib."""
    metrics = [m for m in _CHART_METRICS if m[0] in doc["scenarios"]]
    peers = [p for p in PEERS if any(p in doc["scenarios"][s]["median"] for s, _, _ in metrics)]
    series = [(f"ours ÷ {doc['meta']['servers'].get(peer, peer)}", "ours", peer) for peer in peers]
    title = "rpc_server against the limit and the peers"
    return _draw(doc, path, metrics, series, title, "ratio of medians, ours ÷ peer (log scale)")


def write_client_chart(doc: dict[str, Any], path: Path) -> Path | None:
    """Draw each client ÷ the load generator, against the same server, with the goals; None without matplotlib."""
    metrics = [m for m in _CLIENT_CHART_METRICS if m[0] in doc["scenarios"]]
    labels: dict[str, str] = {}
    for key, _, _ in metrics:
        labels.update(doc["scenarios"][key].get("labels", {}))
    series = [(f"{label} ÷ the load generator", name, "loadgen") for name, label in labels.items() if name != "loadgen"]
    title = "rpc_client and other Python clients against the picows load generator, on rpc_server"
    return _draw(doc, path, metrics, series, title, "ratio of medians, client ÷ load generator (log scale)")


def _draw(
    doc: dict[str, Any],
    path: Path,
    metrics: list[tuple[str, str, str]],
    series: list[_Series],
    title: str,
    ylabel: str,
) -> Path | None:
    """Bars of ``series`` over ``metrics``, with the goals on them as black ticks."""
    ratios = {
        (scenario, metric, subject, reference): doc["scenarios"][scenario]["ratios"]
        .get(metric, {})
        .get(subject, {})
        .get(reference)
        for scenario, metric, _ in metrics
        for _, subject, reference in series
    }
    series = [s for s in series if any(ratios[(m[0], m[1], s[1], s[2])] for m in metrics)]
    if not metrics or not series:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=110)
    width = 0.8 / len(series)

    def x_of(metric_at: int, series_at: int) -> float:
        return metric_at + (series_at - (len(series) - 1) / 2) * width

    for i, (label, subject, reference) in enumerate(series):
        xs, ys = [], []
        for j, (scenario, metric, _) in enumerate(metrics):
            value = ratios[(scenario, metric, subject, reference)]
            if value:
                xs.append(x_of(j, i))
                ys.append(value)
        bars = ax.bar(xs, ys, width, label=label)
        ax.bar_label(bars, labels=[f"{y:.2f}" for y in ys], fontsize=7, padding=2)
    pairs = [(subject, reference) for _, subject, reference in series]
    for bar in doc.get("bars", []):
        pair = (bar.get("subject", "ours"), bar["peer"])
        at = next((k for k, m in enumerate(metrics) if (m[0], m[1]) == (bar["scenario"], bar["metric"])), None)
        if at is None or pair not in pairs:
            continue
        x = x_of(at, pairs.index(pair))
        ax.plot([x - width / 2, x + width / 2], [bar["limit"]] * 2, color="black", linewidth=2)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_yscale("log")
    # Ticks at 1, 2 and 5 of each decade, written 0.5 and 2 rather than 5×10⁻¹ and 2×10⁰.
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(range(len(metrics)), [label for _, _, label in metrics])
    ax.set_ylabel(ylabel)
    meta = doc["meta"]
    ax.set_title(
        f"{title} · {meta['date']} · {meta['cores']} cores · {meta['mode']} run\nblack ticks: the goals", fontsize=10
    )
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
