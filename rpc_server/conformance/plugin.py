"""The kit's command-line options, and the known deviations it marks as expected failures.

Loaded with :mod:`rpc_server.pytest_plugin` (the ``pytest11`` entry point),
since pytest reads options before it collects a package given with
``--pyargs``. It does nothing to a run that collects none of the kit's cases.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .cases import CASES, METHODS, Case
from .judge import Deviation
from .peer import Peer, method_missing

__all__ = ["Settings", "read_deviations"]

SETTINGS = pytest.StashKey["Settings"]()

# What the kit calls each method with, to learn whether the server has it.
_CHECK_PARAMS: dict[str, Any] = {"subtract": [42, 23], "sum": [1, 2, 4], "get_data": ...}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(
        "rpc-conformance", "JSON-RPC 2.0 conformance kit (pytest --pyargs rpc_server.conformance --rpc-url URL)"
    )
    group.addoption("--rpc-url", metavar="URL", help="the server to check: ws://HOST:PORT/PATH or wss://...")
    group.addoption(
        "--rpc-method",
        action="append",
        default=[],
        metavar="ROLE=NAME",
        help=f"the server's name for one of the methods the kit calls ({', '.join(METHODS)}); "
        "by default the specification's names, and 'sleep' for slow. Repeatable.",
    )
    group.addoption(
        "--rpc-slow-params",
        default="[0.5]",
        metavar="JSON",
        help="params of the slow method, which must answer later than subtract does (default: [0.5])",
    )
    group.addoption(
        "--rpc-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for the connection and for each answer (default: 5)",
    )
    group.addoption(
        "--rpc-header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a header for the opening handshake, such as credentials. Repeatable.",
    )
    group.addoption(
        "--rpc-deviations",
        metavar="FILE",
        help="the server's known deviations: lines of 'CASE-ID reason'; those cases are expected to fail (xfail)",
    )


@dataclass(slots=True)
class Settings:
    """The kit's options, read and checked once per run."""

    url: str
    names: dict[str, str]
    slow_params: Any
    timeout: float
    headers: list[tuple[str, str]]
    deviations: dict[str, str]
    _missing: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        """Raises: pytest.UsageError: an option is missing or malformed."""
        url = config.getoption("rpc_url")
        if not url:
            raise pytest.UsageError("the conformance kit needs the server's URL: --rpc-url ws://HOST:PORT/PATH")
        names = {role: role for role in METHODS} | {"slow": "sleep"}
        for item in config.getoption("rpc_method"):
            role, sep, name = item.partition("=")
            if not sep or role not in METHODS or not name:
                raise pytest.UsageError(f"--rpc-method {item!r}: give ROLE=NAME, ROLE one of {', '.join(METHODS)}")
            names[role] = name
        try:
            slow_params = json.loads(config.getoption("rpc_slow_params"))
        except ValueError as exc:
            raise pytest.UsageError(f"--rpc-slow-params is not JSON: {exc}") from None
        headers = []
        for item in config.getoption("rpc_header"):
            name, sep, value = item.partition(":")
            if not sep or not name.strip():
                raise pytest.UsageError(f"--rpc-header {item!r}: give 'NAME: VALUE'")
            headers.append((name.strip(), value.strip()))
        path = config.getoption("rpc_deviations")
        deviations = read_deviations(Path(path)) if path else {}
        return cls(url, names, slow_params, config.getoption("rpc_timeout"), headers, deviations)

    def connect(self) -> Peer:
        return Peer(self.url, timeout=self.timeout, headers=self.headers)

    def missing(self, role: str) -> str | None:
        """Why the cases that call this method cannot run, or None when the server has it."""
        if role not in self._missing:
            name = self.names[role]
            params = self.slow_params if role == "slow" else _CHECK_PARAMS[role]
            with self.connect() as peer:
                absent = method_missing(peer, name, params)
            option = f"--rpc-method {role}=NAME"
            self._missing[role] = (
                f"the server has no method {name!r} (it answers -32601 Method not found); "
                f"if it has one under another name, give {option}"
                if absent
                else None
            )
        return self._missing[role]


def read_deviations(path: Path) -> dict[str, str]:
    """A deviations file: ``CASE-ID reason...`` per line; blank lines and lines starting with ``#`` are skipped.

    Raises:
        pytest.UsageError: the file cannot be read, a line gives no reason, or names no case of the kit.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise pytest.UsageError(f"--rpc-deviations: cannot read {path}: {exc.strerror}") from None
    known = {case.id for case in CASES}
    deviations = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if parts[0] not in known:
            raise pytest.UsageError(f"{path}:{number}: the kit has no case {shlex.quote(parts[0])}")
        if len(parts) < 2:
            raise pytest.UsageError(f"{path}:{number}: say why {parts[0]} deviates, after its id")
        deviations[parts[0]] = parts[1]
    return deviations


def _case(item: pytest.Item) -> Case | None:
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("case") if callspec is not None else None
    return case if isinstance(case, Case) else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kit = [(item, case) for item in items if (case := _case(item)) is not None]
    if not kit:
        return
    settings = Settings.from_config(config)
    config.stash[SETTINGS] = settings
    for item, case in kit:
        reason = settings.deviations.get(case.id)
        if reason is not None:
            # strict: when the server is fixed, the case passes and the run says the list is out of date.
            item.add_marker(pytest.mark.xfail(reason=reason, raises=Deviation, strict=True))


def settings(config: pytest.Config) -> Settings:
    """The settings read at collection (for the kit's fixtures)."""
    return config.stash[SETTINGS]
